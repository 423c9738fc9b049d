import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from hushkit import __version__
from hushkit.cli import app
from hushkit.models import build_model, save_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, build_model("crced", sample_rate=16000).eval())
    return path


@pytest.fixture(scope="module")
def onnx_model(checkpoint):
    from hushkit.models import load_checkpoint
    from hushkit.models.onnx_export import checkpoint_metadata, export_onnx

    model, meta = load_checkpoint(checkpoint)
    return export_onnx(model, checkpoint.with_suffix(".onnx"), metadata=checkpoint_metadata(meta))


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("rate, channels, suffix, subtype", [(44100, 2, ".wav", "PCM_16"), (8000, 1, ".flac", "PCM_24")])
def test_enhance_keeps_rate_channels_and_subtype(tmp_path, checkpoint, onnx_model, rate, channels, suffix, subtype):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((int(1.3 * rate), channels))).astype(np.float32)
    src = tmp_path / f"in{suffix}"
    sf.write(src, audio, rate, subtype=subtype)
    for model in (checkpoint, onnx_model):
        dst = tmp_path / f"out_{model.suffix[1:]}{suffix}"
        result = runner.invoke(app, ["enhance", str(src), "-o", str(dst), "--model", str(model)])
        assert result.exit_code == 0, result.output
        info = sf.info(dst)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (rate, channels, len(audio), subtype)


@pytest.mark.parametrize("content", [b"just some text\n", b""])
def test_enhance_rejects_non_audio_with_one_line(tmp_path, checkpoint, content):
    src = tmp_path / "notes.wav"
    src.write_bytes(content)
    result = runner.invoke(app, ["enhance", str(src), "-o", str(tmp_path / "out.wav"), "--model", str(checkpoint)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(src) in lines[0]
    assert not (tmp_path / "out.wav").exists()


def test_enhance_missing_model_is_a_clear_error(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(1600, np.float32), 16000)
    result = runner.invoke(app, ["enhance", str(src), "-o", str(tmp_path / "o.wav"), "--model", "nope.pt"])
    assert result.exit_code != 0 and "nope.pt" in result.output


def test_default_model_is_the_pipelines_best(tmp_path, checkpoint, monkeypatch):
    import json
    import shutil

    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(1600, np.float32), 16000)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["enhance", str(src), "-o", "o.wav"])
    assert result.exit_code != 0 and "data/summary/summary.json" in result.output and "make repro" in result.output
    (tmp_path / "data" / "summary").mkdir(parents=True)
    (tmp_path / "data" / "summary" / "summary.json").write_text(json.dumps({"best": "crced"}))
    (tmp_path / "data" / "train" / "crced").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "data" / "train" / "crced" / "model.pt")
    result = runner.invoke(app, ["enhance", str(src), "-o", "o.wav"])
    assert result.exit_code == 0, result.output
    assert "crced" in result.output and (tmp_path / "o.wav").is_file()


def _corrupt_onnx(tmp_path, onnx_model):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(onnx_model.read_bytes()[:200])  # cut short: protobuf cannot parse it
    return path


def _zero_rate_onnx(tmp_path, onnx_model):
    import onnx

    model = onnx.load(str(onnx_model))
    for prop in model.metadata_props:
        if prop.key == "sample_rate":
            prop.value = "0"
    path = tmp_path / "zero_rate.onnx"
    onnx.save(model, str(path))
    return path


def _broken_graph_onnx(tmp_path, onnx_model):
    import onnx

    model = onnx.load(str(onnx_model))
    del model.graph.node[0]  # a later node's input is now produced by nothing
    path = tmp_path / "broken_graph.onnx"
    onnx.save(model, str(path))
    return path


def _random_pt(tmp_path, onnx_model):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


@pytest.mark.parametrize("make, problem", [
    (_corrupt_onnx, "not an ONNX model"),
    (_zero_rate_onnx, "recorded sample rate '0' is not a positive whole number of Hz"),
    (_broken_graph_onnx, "onnxruntime cannot load it"),
    (_random_pt, "not a hushkit checkpoint (not a torch.save archive)"),
])
def test_unusable_model_file_is_one_line_naming_it(tmp_path, onnx_model, make, problem):
    model = make(tmp_path, onnx_model)
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(1600, np.float32), 16000)
    result = runner.invoke(app, ["enhance", str(src), "-o", str(tmp_path / "o.wav"), "--model", str(model)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {model}: ") and problem in lines[0]
    assert "file an issue" not in lines[0]
    assert not (tmp_path / "o.wav").exists()
