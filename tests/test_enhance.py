"""`hushkit enhance`: files, folders and globs in; rate, channels and subtype kept; chunked equals whole-file;
the streaming path equals offline; unusable files named; every kind of --model reference."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from hushkit.cli import app
from hushkit.enhance import enhance_file
from hushkit.inference import load_enhancer
from hushkit.models import build_model, save_checkpoint

runner = CliRunner()
ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def densenet(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("densenet") / "model.pt", build_model("densenet").eval())


def _signal(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    return (tone[:, None] + 0.05 * rng.standard_normal((len(t), channels))).astype(np.float32)


def _enhance(*args: str):
    return runner.invoke(app, ["enhance", *args])


def test_folders_and_globs_keep_rate_channels_and_subtype(tmp_path, crnn_checkpoint):
    src = tmp_path / "in"
    (src / "deep" / "er").mkdir(parents=True)
    files = {  # relative path: (rate, channels, subtype)
        "deep/stereo.flac": (44100, 2, "PCM_24"),
        "deep/er/mono8k.wav": (8000, 1, "PCM_16"),
        "float48k.wav": (48000, 1, "FLOAT"),
        "deep/er/vorbis.ogg": (22050, 2, "VORBIS"),
    }
    for rel, (rate, channels, subtype) in files.items():
        sf.write(src / rel, _signal(0.7, rate, channels), rate, subtype=subtype)
    (src / "notes.txt").write_text("not audio, skipped in a folder")

    result = _enhance(str(src), "-o", str(tmp_path / "out"), "--model", str(crnn_checkpoint))
    assert result.exit_code == 0, result.output
    assert "4 of 4 files enhanced" in result.output
    for rel, (rate, channels, subtype) in files.items():
        info = sf.info(tmp_path / "out" / rel)  # the tree mirrored, names and formats kept
        assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype), rel
        assert info.frames == sf.info(src / rel).frames, rel
    assert not (tmp_path / "out" / "notes.txt").exists()

    # A quoted recursive glob, expanded by hushkit; relative to the glob's fixed prefix.
    result = _enhance(str(src / "**" / "*.flac"), str(src / "float48k.wav"), "-o", str(tmp_path / "globbed"),
                      "--model", str(crnn_checkpoint))
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "globbed").as_posix() for p in (tmp_path / "globbed").rglob("*.*"))
    assert written == ["deep/stereo.flac", "float48k.wav"]
    assert sf.info(tmp_path / "globbed" / "deep" / "stereo.flac").subtype == "PCM_24"

    result = _enhance(str(src / "**" / "*.mp3"), "-o", str(tmp_path / "none"), "--model", str(crnn_checkpoint))
    assert result.exit_code == 2 and "no audio file matches" in result.output


def test_single_file_output_is_a_file_with_format_by_extension(tmp_path, crnn_checkpoint):
    src = tmp_path / "take.flac"
    sf.write(src, _signal(1.2, 44100, 2), 44100, subtype="PCM_24")
    result = _enhance(str(src), "-o", str(tmp_path / "clean.wav"), "--model", str(crnn_checkpoint))
    assert result.exit_code == 0, result.output
    info = sf.info(tmp_path / "clean.wav")
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_24", 44100, 2)
    (tmp_path / "folder").mkdir()  # an existing folder as -o: the file goes inside it
    assert _enhance(str(src), "-o", str(tmp_path / "folder"), "--model", str(crnn_checkpoint)).exit_code == 0
    assert sf.info(tmp_path / "folder" / "take.flac").subtype == "PCM_24"
    result = _enhance(str(src), "-o", str(src), "--model", str(crnn_checkpoint))
    assert result.exit_code == 2 and "overwrite its input" in result.output


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2)])
def test_chunked_equals_whole_file(tmp_path, crnn_checkpoint, rate, channels):
    enhancer = load_enhancer(crnn_checkpoint)
    src = tmp_path / "long.wav"
    sf.write(src, _signal(25.0, rate, channels), rate, subtype="FLOAT")
    enhance_file(src, tmp_path / "whole.wav", enhancer, chunk_seconds=30.0)  # one chunk: the whole file
    steps = []
    enhance_file(src, tmp_path / "chunked.wav", enhancer, chunk_seconds=10.0, overlap_seconds=0.5,
                 on_progress=steps.append)
    whole, _ = sf.read(tmp_path / "whole.wav", always_2d=True)
    chunked, _ = sf.read(tmp_path / "chunked.wav", always_2d=True)
    assert len(steps) == 3 and sum(steps) == len(whole) == 25 * rate  # three overlapping 10 s chunks
    assert whole.shape == chunked.shape == (25 * rate, channels)
    assert np.abs(chunked - whole).max() <= ATOL


def test_stream_equals_offline(tmp_path, crnn_checkpoint, densenet):
    enhancer = load_enhancer(crnn_checkpoint)
    audio = _signal(3.3, 16000, 1)
    src = tmp_path / "in.wav"
    sf.write(src, audio, 16000, subtype="FLOAT")
    result = _enhance(str(src), "-o", str(tmp_path / "streamed.wav"), "--model", str(crnn_checkpoint), "--stream",
                      "--chunk-seconds", "0.37")
    assert result.exit_code == 0, result.output
    streamed, _ = sf.read(tmp_path / "streamed.wav", dtype="float32")
    offline = enhancer(audio[:, 0])
    assert streamed.shape == offline.shape and np.abs(streamed - offline).max() <= ATOL
    # Stereo at 44.1 kHz: streaming resamplers too; equal to whole-file processing.
    src = tmp_path / "stereo.flac"
    sf.write(src, _signal(2.0, 44100, 2), 44100, subtype="PCM_24")
    enhance_file(src, tmp_path / "s.wav", enhancer, stream=True, chunk_seconds=0.25)
    enhance_file(src, tmp_path / "w.wav", enhancer)
    info = sf.info(tmp_path / "s.wav")
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_24")
    assert np.abs(sf.read(tmp_path / "s.wav")[0] - sf.read(tmp_path / "w.wav")[0]).max() <= 2e-4  # 24-bit steps

    result = _enhance(str(src), "-o", str(tmp_path / "x.wav"), "--model", str(densenet), "--stream")
    assert result.exit_code == 2 and "cannot stream" in result.output and not (tmp_path / "x.wav").exists()


def test_unreadable_file_is_named_and_the_rest_enhanced(tmp_path, crnn_checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "good.wav", _signal(0.5, 16000, 1), 16000)
    (src / "broken.wav").write_text("this is not a RIFF file")
    result = _enhance(str(src), "-o", str(tmp_path / "out"), "--model", str(crnn_checkpoint))
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(src / "broken.wav") in errors[0] and "not readable as audio" in errors[0]
    assert "1 of 2 files enhanced" in result.output
    assert (tmp_path / "out" / "good.wav").is_file() and not (tmp_path / "out" / "broken.wav").exists()
    result = _enhance(str(tmp_path / "missing"), "-o", str(tmp_path / "o.wav"), "--model", str(crnn_checkpoint))
    assert result.exit_code == 2 and "missing: no such file, folder or matching glob" in result.output


def test_model_by_mlflow_run_id_and_uri(tmp_path, crnn_checkpoint, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("enhance-test")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(crnn_checkpoint), artifact_path="model")
    run_id = run.info.run_id
    for reference in (run_id, f"runs:/{run_id}/model"):
        enhancer = load_enhancer(reference)
        assert enhancer.sample_rate == 16000 and enhancer.model is not None and "crnn" in enhancer.description
    with pytest.raises(ValueError, match="runs:/0{32}/model"):
        load_enhancer("0" * 32)


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, crnn_checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(src / name, _signal(0.5, 16000, 1), 16000)
    unrelated = tmp_path / "notes.wav"
    unrelated.write_bytes(b"an unrelated file that happens to have this name")
    result = _enhance(str(src / "a.wav"), "-o", str(unrelated), "--model", str(crnn_checkpoint))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{unrelated}: exists; pass --overwrite to replace it" in result.output
    assert unrelated.read_bytes() == b"an unrelated file that happens to have this name"
    result = _enhance(str(src / "a.wav"), "-o", str(unrelated), "--model", str(crnn_checkpoint), "--overwrite")
    assert result.exit_code == 0, result.output
    assert sf.info(unrelated).frames == 8000

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").write_bytes(b"kept")
    result = _enhance(str(src), "-o", str(out), "--model", str(crnn_checkpoint))
    assert result.exit_code == 2  # a folder run names each file left alone, writes the rest, and says so
    assert f"{out / 'a.wav'}: exists; pass --overwrite" in result.output
    assert "1 of 2 files enhanced" in result.output and "1 skipped (output exists" in result.output
    assert (out / "a.wav").read_bytes() == b"kept" and sf.info(out / "b.wav").frames == 8000
    result = _enhance(str(src), "-o", str(out), "--model", str(crnn_checkpoint), "--overwrite")
    assert result.exit_code == 0 and "2 of 2 files enhanced" in result.output
    assert sf.info(out / "a.wav").frames == 8000


@pytest.mark.parametrize("blocker", ["file-for-folder", "read-only-folder"])
def test_unwritable_output_is_one_line_and_the_batch_goes_on(tmp_path, crnn_checkpoint, blocker):
    import os

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a.wav", "sub/b.wav", "z.wav"):
        sf.write(src / name, _signal(0.5, 16000, 1), 16000)
    out = tmp_path / "out"
    if blocker == "file-for-folder":  # out/sub is a file: out/sub/b.wav cannot be made, whoever runs this
        out.mkdir()
        (out / "sub").write_text("a file where the tree needs a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (out / "sub").mkdir(parents=True)
        (out / "sub").chmod(0o555)
    try:
        result = _enhance(str(src), "-o", str(out), "--model", str(crnn_checkpoint))
    finally:
        if (out / "sub").is_dir():
            (out / "sub").chmod(0o755)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {out / 'sub' / 'b.wav'}: cannot write (")
    assert ".tmp" not in errors[0]  # the user's path, never the temp file's
    assert "2 of 3 files enhanced" in result.output and "1 failed" in result.output
    assert sf.info(out / "a.wav").frames == sf.info(out / "z.wav").frames == 8000  # the files after it too


def test_an_existing_file_as_output_of_several_inputs_is_refused(tmp_path, crnn_checkpoint):
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, _signal(0.5, 16000, 1), 16000)
    target = tmp_path / "taken.wav"
    target.write_bytes(b"kept")
    result = _enhance(str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-o", str(target), "--model",
                      str(crnn_checkpoint))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{target}: is a file; with several inputs" in result.output
    assert target.read_bytes() == b"kept"
