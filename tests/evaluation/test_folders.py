import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from hushkit.cli import app
from hushkit.evaluation.folders import evaluate_folders, input_snr_db, pair_files


def speech(text, rate):
    """A real synthesized sentence (espeak-ng) at `rate`, peak 0.5."""
    from hushkit.audio import resample
    from hushkit.corpus.espeak import synthesize

    audio, native = synthesize(text, "en-us", rate=170, pitch=50)
    audio = resample(audio, native, rate)
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.fixture
def folders(tmp_path):
    """Two pairs at 44.1 kHz: one at the top level (wav/flac, noisy in stereo), one in a sub-folder."""
    rate = 44100
    for n, (name, text) in enumerate([("talk.wav", "we talk in the hall"), ("street/walk.wav", "a walk outside")]):
        clean = speech(text, rate)
        noise = np.random.default_rng(10 + n).standard_normal(clean.size).astype(np.float32) * 0.02
        for side, audio, suffix in (("clean", clean, ".wav"), ("noisy", clean + noise, ".flac")):
            path = tmp_path / side / name.replace(".wav", suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.stack([audio, audio], 1) if side == "noisy" else audio, rate)
    return tmp_path / "clean", tmp_path / "noisy"


def test_pairs_match_by_relative_name_whatever_the_format(folders):
    pairs = pair_files(*folders)
    assert [key for key, _, _ in pairs] == ["street/walk", "talk"]
    assert pairs[1][2].suffix == ".flac"


def test_unmatched_names_are_listed(folders):
    clean, noisy = folders
    (noisy / "talk.flac").rename(noisy / "talks.flac")
    with pytest.raises(ValueError, match=r"1 noisy file\(s\) have no match .*: talks; 1 clean file\(s\) .*: talk"):
        pair_files(clean, noisy)


def test_input_snr_is_measured():
    clean = speech("five decibels", 16000)
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) / 10 ** (5 / 20)
    assert input_snr_db(clean, clean + noise, 16000) == pytest.approx(5.0, abs=0.6)


def test_scores_user_pairs_with_every_system_and_writes_the_report(folders, tmp_path):
    board = evaluate_folders(*folders, tmp_path / "out", models={}, baselines=["noisy", "dsp"], dnsmos_files=1,
                             report_examples=1)
    assert list(board.system) == ["noisy", "dsp"]
    leaderboard = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert leaderboard["dsp"]["files"] == 2 and leaderboard["dsp"]["dnsmos_files"] == 1
    assert leaderboard["dsp"]["si_sdr"]["delta"] > 0  # white noise at ~15 dB: the Wiener filter helps
    report = (tmp_path / "out" / "report.html").read_text()
    assert report.count("<audio") == 3  # noisy, dsp, clean


def test_cli_reports_mismatched_names_clearly(folders, tmp_path):
    clean, noisy = folders
    (clean / "talk.wav").unlink()
    result = CliRunner().invoke(app, ["evaluate", "--clean", str(clean), "--noisy", str(noisy),
                                      "--out", str(tmp_path / "out"), "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "file names do not match" in result.output and "talk" in result.output
