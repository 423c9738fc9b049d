"""The importable package: `import hushkit` stays cheap, `from hushkit import load_enhancer, enhance_file` works, and
a feature whose packages come with an optional extra says which extra to install instead of a traceback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import hushkit
from hushkit.cli import app
from hushkit.errors import MissingExtraError, import_extra

runner = CliRunner()


def test_import_hushkit_loads_no_heavy_library():
    code = ("import sys, hushkit; heavy = [m for m in ('torch', 'numpy', 'pandas', 'mlflow', 'onnxruntime') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_the_public_api_loads_on_first_use():
    from hushkit import Enhancer, enhance_file, load_enhancer
    from hushkit.enhance import enhance_file as defined
    from hushkit.inference import Enhancer as enhancer_class, load_enhancer as loader

    assert (enhance_file, load_enhancer, Enhancer) == (defined, loader, enhancer_class)
    assert {"load_enhancer", "enhance_file"} <= set(hushkit.__all__) and "enhance_file" in dir(hushkit)
    with pytest.raises(AttributeError, match="no attribute 'tagger'"):
        hushkit.tagger  # noqa: B018


@pytest.mark.usefixtures("one_thread")
def test_enhance_file_takes_a_model_reference_and_keeps_an_existing_output(tmp_path, crnn_checkpoint):
    from hushkit import enhance_file, load_enhancer

    rate = 16000
    noisy = (0.1 * np.random.default_rng(0).standard_normal(rate // 2)).astype(np.float32)
    sf.write(tmp_path / "in.wav", noisy, rate, subtype="PCM_16")
    seconds = enhance_file(tmp_path / "in.wav", tmp_path / "out.wav", model=str(crnn_checkpoint))
    assert seconds == pytest.approx(0.5)
    written = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    expected = load_enhancer(crnn_checkpoint)(sf.read(tmp_path / "in.wav", dtype="float32")[0])
    np.testing.assert_allclose(written, expected, atol=1e-4)  # PCM_16 kept: a quantisation step apart at most

    (tmp_path / "kept.wav").write_bytes(b"not to be replaced")
    with pytest.raises(FileExistsError, match="kept.wav: exists; pass overwrite=True"):
        enhance_file(tmp_path / "in.wav", tmp_path / "kept.wav", model=crnn_checkpoint)
    assert (tmp_path / "kept.wav").read_bytes() == b"not to be replaced"
    enhance_file(tmp_path / "in.wav", tmp_path / "kept.wav", model=load_enhancer(crnn_checkpoint), overwrite=True)
    assert sf.info(tmp_path / "kept.wav").frames == rate // 2


def test_import_extra_names_the_extra_and_passes_other_import_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hushkit_absent_package", None)
    with pytest.raises(MissingExtraError, match=r"the thing needs the package hushkit_absent_package, which is not "
                                                r"installed: pip install 'hushkit\[pipeline\]'"):
        import_extra("hushkit_absent_package", "pipeline", "the thing")
    assert import_extra("json", "pipeline", "the thing").dumps(1) == "1"
    # an installed package that fails on a dependency of its own: its error, not a missing extra
    (tmp_path / "hushkit_broken_package.py").write_text("import hushkit_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="hushkit_absent_dependency") as raised:
        import_extra("hushkit_broken_package", "pipeline", "the thing")
    assert not isinstance(raised.value, MissingExtraError)


def _without_mlflow(monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")] + ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_an_mlflow_model_without_the_pipeline_extra_is_one_line(tmp_path, monkeypatch):
    sf.write(tmp_path / "in.wav", np.zeros(1600, np.float32), 16000)
    _without_mlflow(monkeypatch)
    result = runner.invoke(app, ["enhance", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"),
                                 "-m", "models:/hushkit-denoiser@champion"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "a model from MLflow" in result.output and "pip install 'hushkit[pipeline]'" in result.output
    assert not (tmp_path / "out.wav").exists()


def test_the_registry_commands_without_the_pipeline_extra_are_one_line(monkeypatch):
    _without_mlflow(monkeypatch)
    result = runner.invoke(app, ["history"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "the model registry" in result.output and "pip install 'hushkit[pipeline]'" in result.output


def test_baselines_without_their_runtime_name_the_extra_before_any_work(tmp_path, monkeypatch):
    from hushkit import baselines

    monkeypatch.setitem(baselines.RUNTIME_MODULES, "rnnoise", "hushkit_absent_runtime")
    assert baselines.missing_runtimes(["noisy", "dsp", "rnnoise", "deepfilternet3"]) == ["rnnoise"]
    with pytest.raises(MissingExtraError, match=r"rnnoise need the package\(s\) hushkit_absent_runtime"):
        baselines.build_baseline("rnnoise", 16000)

    params = tmp_path / "params.yaml"
    params.write_text("evaluate: {baselines: [noisy, rnnoise]}\ntrain: {architectures: []}\n")
    result = runner.invoke(app, ["evaluate", "--clean", str(tmp_path / "c"), "--noisy", str(tmp_path / "n"),
                                 "--params", str(params), "--out", str(tmp_path / "report")])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "pip install 'hushkit[baselines]'" in result.output and not (tmp_path / "report").exists()
