"""The layers point one way: the library (hushkit.*) never imports a stage, a stage never imports another stage
(only the stages' shared shell, hushkit.stages._cli), and one list turns telemetry off everywhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import hushkit
from tests.test_dvc_deps import ROOT, SRC, imported_modules

SHELL = "hushkit.stages._cli"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "hushkit").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def is_stage(name: str) -> bool:
    return name.startswith("hushkit.stages.") and name != SHELL


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_point_down(name):
    imported = imported_modules(modules()[name], name)
    if name.startswith("hushkit.stages"):
        assert not {m for m in imported if is_stage(m) and m != name}, f"{name} imports another stage"
    else:
        assert not {m for m in imported if m.startswith("hushkit.stages")}, f"library module {name} imports a stage"


def top_level(name: str) -> str:
    """hushkit.models.crnn -> models; hushkit.io -> io; hushkit -> hushkit."""
    return name.split(".")[1] if "." in name else name


def test_the_library_packages_import_each_other_without_cycles():
    """Layers, not a web: between hushkit's top-level modules and packages (models, tagging, evaluation, ...),
    imports form no cycle, so a lower layer never reaches up to one that builds on it."""
    edges: dict[str, set[str]] = {}
    for name, path in modules().items():
        for imported in imported_modules(path, name):
            if top_level(imported) not in (top_level(name), "hushkit"):
                edges.setdefault(top_level(name), set()).add(top_level(imported))
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if node in trail:
            cycle = trail[trail.index(node):] + (node,)
            raise AssertionError("imports run in a cycle: " + " -> ".join(cycle))
        if node not in done:
            for target in sorted(edges.get(node, ())):
                visit(target, trail + (node,))
            done.add(node)

    for node in sorted(edges):
        visit(node, ())


def test_flows_and_benchmarks_use_the_library_not_the_stages():
    scripts = sorted((ROOT / "pipelines").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    for path in scripts:
        imported = imported_modules(path, "scripts." + path.stem)
        assert not {m for m in imported if is_stage(m)}, f"{path.relative_to(ROOT)} imports a stage"


def test_the_makefile_turns_off_the_same_telemetry_as_the_package():
    exported = dict(re.findall(r"^export (\w+) := (\S+)$", (ROOT / "Makefile").read_text(), re.M))
    exported.pop("PATH", None)
    assert exported and all(hushkit.TELEMETRY_OFF.get(key) == value for key, value in exported.items()), exported
