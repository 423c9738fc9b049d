"""dvc.yaml tells the truth about code: every module a stage imports (directly or through other hushkit modules,
at the top or inside a function) is one of its deps, so changing it reruns the stage; and each stage tracks the
params that change its outputs, not the ones that only name where runs are logged."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The source file of the hushkit module `name` (a package's __init__.py), or None outside hushkit."""
    if name != "hushkit" and not name.startswith("hushkit."):
        return None
    path = SRC / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path, name: str) -> set[str]:
    """hushkit modules `path` imports anywhere in its body (and the packages above each, whose __init__ runs)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    closed = set()
    for module in found:
        parts = module.split(".")
        closed.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in closed if module_file(m) is not None}


def import_closure(module: str) -> set[Path]:
    seen, todo = set(), [module, *(".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1))]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imported_modules(module_file(name), name) - seen)
    return {module_file(name).relative_to(ROOT) for name in seen}


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_body(stage: dict) -> dict:
    return stage.get("do", stage)


def stage_module(stage: dict) -> str:
    words = stage_body(stage)["cmd"].split()
    return words[words.index("-m") + 1]


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_every_module_a_stage_imports_is_a_dependency(name):
    stage = stages()[name]
    deps = [d for d in stage_body(stage)["deps"] if not d.startswith("${")]
    missing = sorted(str(p) for p in import_closure(stage_module(stage)) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} imports {missing} but does not list them as deps"



@pytest.mark.parametrize("name", sorted(stages()))
def test_every_code_dependency_is_imported(name):
    """No stale code deps either: a module the stage no longer imports would rerun it for nothing."""
    stage = stages()[name]
    closure = import_closure(stage_module(stage))
    code = [Path(d) for d in stage_body(stage)["deps"] if d.startswith("src/")]
    stale = sorted(str(dep) for dep in code if not any(path == dep or dep in path.parents for path in closure))
    assert not stale, f"dvc.yaml stage {name!r} lists {stale} as deps but never imports them"

def test_the_import_closure_follows_lazy_and_package_imports():
    closure = import_closure("hushkit.stages.train")
    assert Path("src/hushkit/params.py") in closure  # architecture_params
    assert Path("src/hushkit/models/crnn.py") in closure  # imported by the models package
    assert Path("src/hushkit/__init__.py") in closure


@pytest.mark.parametrize("name", ["train", "evaluate"])
def test_training_and_scoring_do_not_track_the_architecture_list_or_the_tracking_store(name):
    params = stage_body(stages()[name])["params"]
    assert "train.architectures" not in params and "mlflow" not in params
