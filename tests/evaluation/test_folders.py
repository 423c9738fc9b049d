import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from hushkit.cli import app
from hushkit.evaluation.folders import evaluate_folders, input_snr_db, pair_files
from hushkit.models import build_model, save_checkpoint
from hushkit.tagging.inference import load_tagger, predicted_categories


def speech(text, rate):
    """A real synthesized sentence (espeak-ng) at `rate`, peak 0.5."""
    from hushkit.audio import resample
    from hushkit.synthetic.espeak import synthesize

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


def _silent_clean(clean, noisy, tmp_path):
    sf.write(clean / "talk.wav", np.zeros(sf.info(clean / "talk.wav").frames, np.float32), 44100)
    return clean / "talk.wav", "silent (level -inf dBFS, below -60); a clean reference must hold the speech", []


def _nan_noisy(clean, noisy, tmp_path):
    audio, rate = sf.read(noisy / "talk.flac", dtype="float32")
    audio[1000] = np.nan
    (noisy / "talk.flac").unlink()
    sf.write(noisy / "talk.wav", audio, rate, subtype="FLOAT")
    return noisy / "talk.wav", "contains NaN or infinite samples", []


def _escaping_name(clean, noisy, tmp_path):
    return "model name '../../escape'", "use letters, digits, '.', '_' and '-'", ["-m", "../../escape=model.pt"]


def _out_holding_the_inputs(clean, noisy, tmp_path):
    return tmp_path, f"holds the input folder {clean}", ["--out", str(tmp_path), "--overwrite"]


@pytest.mark.parametrize("spoil", [_silent_clean, _nan_noisy, _escaping_name, _out_holding_the_inputs])
def test_cli_names_the_users_file_or_option_in_one_line(folders, tmp_path, monkeypatch, spoil):
    clean, noisy = folders
    named, problem, args = spoil(clean, noisy, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--clean", str(clean), "--noisy", str(noisy), "--out",
                                      str(tmp_path / "out"), "--params", str(tmp_path / "none.yaml"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}") and problem in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "noisy"]  # nothing written, here or above
    assert not (tmp_path.parent / "escape").exists()


def test_out_is_replaced_only_when_asked_and_only_once_complete(folders, tmp_path, monkeypatch):
    from hushkit.evaluation import folders as module
    from hushkit.io import OutputError

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(OutputError, match="not empty; choose another or pass --overwrite"):
        evaluate_folders(*folders, out, models={}, baselines=["noisy"])
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    def scorer_dies(*args, **kwargs):  # after the pairs were prepared (written) in the new folder
        raise RuntimeError("scorer died")

    monkeypatch.setattr(module, "score_system", scorer_dies)
    with pytest.raises(RuntimeError, match="scorer died"):
        evaluate_folders(*folders, out, models={}, baselines=["noisy"], overwrite=True)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]  # a failed run changes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "noisy", "out"]  # and leaves no temp folder
    monkeypatch.undo()

    evaluate_folders(*folders, out, models={}, baselines=["noisy"], dnsmos_files=0, report_examples=0,
                     overwrite=True)
    assert (out / "leaderboard.json").is_file() and not (out / "mine.txt").exists()  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "noisy", "out"]


def test_model_names_are_checked(folders, tmp_path):
    for name, match in (("a/b", "use letters"), (".hidden", "use letters"), ("dsp", "also a baseline's")):
        with pytest.raises(ValueError, match=match):
            evaluate_folders(*folders, tmp_path / "out", models={name: "model.pt"}, baselines=["noisy", "dsp"])
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["evaluate", "--clean", str(folders[0]), "--noisy", str(folders[1]), "-m",
                                      "x/net.pt", "-m", "y/net.pt", "--out", str(tmp_path / "out"),
                                      "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2  # one name for two models: the second no longer silently replaces the first
    assert "two models named 'net' (x/net.pt and y/net.pt); name them with -m NAME=REF" in result.output


# --- the breakdown by the noise category a tagger predicts for each noisy file --------------------------------------

def evaluate_cli(folders, out, params, *args):
    """`hushkit evaluate` with the noisy input alone scored (fast), no DNSMOS and no listening examples."""
    params.write_text(yaml.safe_dump({"train": {"architectures": []}, "tagging": {"architectures": ["tagcnn", "gcnn"]},
                                      "evaluate": {"baselines": ["noisy"], "dnsmos_files": 0, "report_examples": 0}}))
    return CliRunner().invoke(app, ["evaluate", "--clean", str(folders[0]), "--noisy", str(folders[1]),
                                    "--out", str(out), "--params", str(params), *map(str, args)])


def test_tagger_breaks_the_scores_down_by_each_noisy_files_predicted_category(folders, tmp_path,
                                                                             untrained_tagger_checkpoint):
    result = evaluate_cli(folders, tmp_path / "out", tmp_path / "params.yaml", "--tagger", untrained_tagger_checkpoint)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    per_file = pd.read_csv(out / "per_file.csv")
    # the tagger's own prediction on each prepared noisy file (the audio scored)
    expected = predicted_categories(load_tagger(untrained_tagger_checkpoint),
                                    {i: out / "audio" / "noisy" / f"{i}.wav" for i in per_file.id})
    assert dict(zip(per_file.id, per_file.predicted_category)) == dict(zip(expected.id, expected.predicted_category))
    assert set(pd.read_csv(out / "by_predicted_category.csv").predicted_category) == set(expected.predicted_category)
    heading = f"By predicted noise category (predicted by {untrained_tagger_checkpoint}, not labelled): pesq"
    assert f"## {heading}" in (out / "leaderboard.md").read_text() and heading in result.stdout
    assert f"<h2>{heading}</h2>" in (out / "report.html").read_text()
    assert "note:" not in result.stderr


def test_the_default_tagger_is_the_repros_best_and_none_turns_it_off(folders, tmp_path, untrained_tagger_checkpoint,
                                                                     monkeypatch):
    from tests.test_cli_tag import repro_outputs

    monkeypatch.chdir(tmp_path)
    missing = evaluate_cli(folders, tmp_path / "missing", tmp_path / "params.yaml")
    assert missing.exit_code == 0, missing.output
    assert missing.stderr.splitlines() == [
        "note: scores not broken down by predicted noise category: data/tagging holds no trained and evaluated "
        "tagger of tagging.architectures (tagcnn, gcnn); --tagger CKPT names one"]
    assert not (tmp_path / "missing" / "by_predicted_category.csv").exists()
    repro_outputs(Path("data/tagging"), untrained_tagger_checkpoint, {"tagcnn": 0.6, "gcnn": 0.7})
    found = evaluate_cli(folders, tmp_path / "found", tmp_path / "params.yaml")
    assert found.exit_code == 0 and found.stderr == ""
    assert "(predicted by data/tagging/train/gcnn/model.pt, not labelled)" in (tmp_path / "found" /
                                                                             "leaderboard.md").read_text()
    off = evaluate_cli(folders, tmp_path / "off", tmp_path / "params.yaml", "--tagger", "none")
    assert off.exit_code == 0 and off.stderr == ""
    assert not (tmp_path / "off" / "by_predicted_category.csv").exists()
    assert "predicted" not in (tmp_path / "off" / "leaderboard.md").read_text()


def test_a_tagger_that_is_not_one_is_one_line(folders, tmp_path):
    denoiser = tmp_path / "denoiser.pt"
    save_checkpoint(denoiser, build_model("crced").eval())
    result = evaluate_cli(folders, tmp_path / "out", tmp_path / "params.yaml", "--tagger", denoiser)
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: {denoiser}: holds the denoiser 'crced', not a tagger"]
    assert not (tmp_path / "out").exists()
