"""`hushkit enhance - -o -`: raw S16_LE from standard input, enhanced to standard output as it arrives. It is the
file streaming path delayed by the stated number of frames, sample for sample after 16-bit quantisation; at
another rate and with several channels too; bad stream descriptions are one-line errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import hushkit
from hushkit.cli import app

SOURCES = Path(hushkit.__file__).resolve().parents[1]  # the subprocess runs the hushkit these tests import
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("one_thread")


def _pcm_file(path: Path, seconds: float, rate: int, channels: int) -> np.ndarray:
    """A gated tone in noise written as 16-bit PCM; returns its int16 frames (frames, channels)."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    sf.write(path, (tone[:, None] + 0.05 * rng.standard_normal((len(t), channels))).astype(np.float32), rate,
             subtype="PCM_16")
    return sf.read(path, dtype="int16", always_2d=True)[0]


def _live(pcm: np.ndarray, rate: int, model: Path, writes: list[int]) -> tuple[np.ndarray, str]:
    """Run the command in a subprocess, feeding `pcm` in writes of the given byte sizes (the rest in one more);
    returns (the int16 frames it wrote, its standard error)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCES), os.environ.get("PYTHONPATH", "")]),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    channels = pcm.shape[1]
    process = subprocess.Popen([sys.executable, "-m", "hushkit.cli", "enhance", "--stream", "-", "-o", "-", "--rate",
                                str(rate), "--channels", str(channels), "-m", str(model)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    data, offset = pcm.astype("<i2").tobytes(), 0
    try:
        for size in writes:  # uneven: mid-sample, mid-frame, across blocks, with pauses
            process.stdin.write(data[offset : offset + size])
            process.stdin.flush()
            offset += size
            time.sleep(0.05)
        out, err = process.communicate(data[offset:], timeout=600)
    finally:
        process.kill()
    assert process.returncode == 0, err.decode()
    return np.frombuffer(out, "<i2").reshape(-1, channels), err.decode()


def _file_stream(src: Path, dst: Path, model: Path, *extra: str) -> np.ndarray:
    result = runner.invoke(app, ["enhance", "--stream", str(src), "-o", str(dst), "-m", str(model), *extra])
    assert result.exit_code == 0, result.output
    return sf.read(dst, dtype="int16", always_2d=True)[0]


def _delay(stderr: str) -> int:
    return int(re.search(r"output delay (\d+) frames", stderr).group(1))


def test_live_stream_equals_the_file_stream_delayed(tmp_path, crnn_checkpoint):
    pcm = _pcm_file(tmp_path / "in.wav", 2.3, 16000, 1)
    live, stderr = _live(pcm, 16000, crnn_checkpoint, writes=[1, 333, 4097, 7, 20000])
    delay = _delay(stderr)
    assert delay == 512  # crnn's window at its own rate: no resampling
    assert "the first 512 frames out are silence" in stderr
    # Latency measured, not stated: per-block processing at the start (warm-up) and over the stream at the end.
    assert re.search(r"warm-up processing per block: median \d+\.\d+ ms, p95 \d+\.\d+ ms", stderr)
    assert re.search(r"processing per block \(read -> output written\): median \d+\.\d+ ms, p95 \d+\.\d+ ms", stderr)
    assert live.shape == pcm.shape  # as long as the input
    # The file path reading the same 10 ms blocks: the same numbers, delayed by `delay` frames.
    file_out = _file_stream(tmp_path / "in.wav", tmp_path / "file.wav", crnn_checkpoint, "--chunk-seconds", "0.01")
    assert np.all(live[:delay] == 0)
    assert np.array_equal(live[delay:], file_out[: len(pcm) - delay])
    # With its default 10 s chunks the file path batches frames differently: float rounding, at most 1 step.
    file_out = _file_stream(tmp_path / "in.wav", tmp_path / "file10.wav", crnn_checkpoint)
    assert np.abs(live[delay:].astype(int) - file_out[: len(pcm) - delay]).max() <= 1


def test_live_stream_at_44k_stereo(tmp_path, crnn_checkpoint):
    pcm = _pcm_file(tmp_path / "in.wav", 1.5, 44100, 2)
    live, stderr = _live(pcm, 44100, crnn_checkpoint, writes=[3, 10001])
    delay = _delay(stderr)
    assert delay > 512 * 44100 // 16000  # the model's window plus the resamplers' delay
    assert live.shape == pcm.shape and "underrun" not in stderr
    file_out = _file_stream(tmp_path / "in.wav", tmp_path / "file.wav", crnn_checkpoint, "--chunk-seconds", "0.01")
    assert np.all(live[:delay] == 0)
    assert np.array_equal(live[delay:], file_out[: len(pcm) - delay])
    assert file_out[: len(pcm) - delay].std() > 100  # both channels carry enhanced audio, not silence
    assert not np.array_equal(live[delay:, 0], live[delay:, 1])  # each channel its own stream


@pytest.mark.parametrize("args,stdin,message", [
    (["--rate", "0"], b"", "--rate 0: the sample rate must be a positive number of Hz"),
    (["--channels", "0"], b"", "--channels 0: a stream needs at least one channel"),
    (["--channels", "2"], bytes(4 * 1000 + 3), "standard input ended inside a frame (3 stray byte(s))"),
])
def test_bad_stream_descriptions_are_one_line_errors(crnn_checkpoint, args, stdin, message):
    result = runner.invoke(app, ["enhance", "-", "-o", "-", "-m", str(crnn_checkpoint), *args], input=stdin)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.output
    if stdin:  # the whole frames before the stray bytes were enhanced and written
        assert len(result.stdout_bytes) == 4 * 1000


@pytest.mark.parametrize("args,message", [
    (["-", "-o", "out.wav"], "give `-` as the only INPUT and `-o -`"),
    (["in.wav", "-o", "-"], "give `-` as the only INPUT and `-o -`"),
    (["in.wav", "-o", "out.wav", "--rate", "8000"], "--rate and --channels describe raw PCM on standard input"),
])
def test_stdin_and_stdout_go_together(tmp_path, crnn_checkpoint, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    sf.write("in.wav", np.zeros(1600, np.float32), 16000)
    result = runner.invoke(app, ["enhance", *args, "-m", str(crnn_checkpoint)])
    assert result.exit_code == 2 and message in result.output and len(result.output.splitlines()) == 1
    assert not (tmp_path / "out.wav").exists()
