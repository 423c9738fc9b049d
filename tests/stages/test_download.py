"""The download stage: the synthetic corpus as it always was, local folders and downloaded corpora ingested (every
file accepted or quarantined with its reason), sources combined, and a failure only for an unusable accepted set."""
from __future__ import annotations

import copy
import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from hushkit.checks import DataCheckError
from hushkit.acquisition import catalogue
from hushkit.params import deep_merge
from hushkit.stages import download

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real-small"


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def _tone(path: Path, seed: int, *, seconds: float = 1.0, rate: int = 22050, channels: int = 1,
          level: float = 0.3, subtype: str = "PCM_16") -> Path:
    """Distinct, non-silent audio (sines below 3 kHz plus a little noise) at any rate and channel count."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    cols = [sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(100, 3000, 3), rng.uniform(0, 6, 3)))
            * level / 3 + 0.01 * rng.standard_normal(t.size) for _ in range(channels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack(cols, axis=1).astype(np.float32), rate, subtype=subtype)
    return path


def _local_params(tiny_params: dict, tmp_path: Path, speech: Path, noise: Path, **extra) -> dict:
    params = copy.deepcopy(tiny_params["download"])
    params.update(sources=["local"], local={"speech": str(speech), "noise": str(noise), "language": "en"},
                  cache=str(tmp_path / "cache"), **extra)
    return params


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """A speech folder (4 speakers, two files each, mixed formats) and a noise folder (2 categories x 3), each with
    bad files beside the good ones; returns the folders and the expected reason per bad file (by file name)."""
    speech, noise = tmp_path / "my-speech", tmp_path / "my-noise"
    for i, spk in enumerate(["alice", "bob", "carol", "dave"]):
        _tone(speech / spk / "a.wav", 10 * i, rate=44100, channels=2, seconds=2.0)
        _tone(speech / spk / "b.flac", 10 * i + 1, rate=8000, seconds=1.5, subtype="PCM_24")
    for i, cat in enumerate(["fan", "street"]):
        for j in range(3):
            _tone(noise / cat / f"{cat}{j}.wav", 100 + 10 * i + j, rate=48000, seconds=2.0)
    bad = {}
    sf.write(speech / "alice" / "silence.wav", np.zeros(16000, np.float32), 16000)
    bad["silence.wav"] = "silent"
    _tone(speech / "bob" / "blip.wav", 7, seconds=0.1)
    bad["blip.wav"] = "too_short"
    (speech / "carol" / "broken.wav").write_bytes(b"RIFF\x00\x01\x02garbage" * 10)
    bad["broken.wav"] = "unreadable"
    (speech / "notes.txt").write_text("recorded in the kitchen\n")
    bad["notes.txt"] = "not_audio"
    (noise / "fan" / "fan9.wav").write_bytes((noise / "fan" / "fan0.wav").read_bytes())
    bad["fan9.wav"] = "duplicate"  # a copy of fan0.wav, which sorts first
    _tone(noise / "street" / "loud.wav", 9, level=30.0)  # clipped to full scale on writing
    bad["loud.wav"] = "clipped"
    return speech, noise, bad


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------------- synthetic


def test_manifest_describes_every_file(corpus_dir, tiny_params):
    manifest = _read(corpus_dir / "manifest.csv")
    cfg = tiny_params["download"]
    speech = manifest[manifest.kind == "speech"]
    assert speech.speaker.nunique() == len(cfg["speech"]["languages"]) * cfg["speech"]["speakers_per_language"]
    assert set(speech.language) == set(cfg["speech"]["languages"])
    assert set(manifest[manifest.kind == "noise"].category) == set(cfg["noise"]["categories"])
    assert (manifest.sample_rate == cfg["sample_rate"]).all()
    assert all((corpus_dir / p).is_file() for p in manifest.path)
    assert {"path", "kind", "speaker", "category", "duration", "sample_rate", "sha256", "source", "license"} <= set(
        manifest.columns)


def test_same_params_give_byte_identical_manifest(corpus_dir, tiny_params, tmp_path):
    download.run(tiny_params["download"], out=tmp_path / "again")
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (corpus_dir / "manifest.csv").read_bytes()


def test_synthetic_alone_quarantines_nothing_and_keeps_its_layout(corpus_dir):
    assert (corpus_dir / "quarantine.csv").read_text() == "corpus,kind,source,reason,detail\n"
    manifest = _read(corpus_dir / "manifest.csv")
    assert manifest.path.str.match(r"^(speech|noise)/").all()  # the paths it always had: no source prefix


@pytest.mark.parametrize("sources, message", [
    (["nowhere"], "unknown source 'nowhere'"),
    (["voicebank_demand:speech"], "voicebank_demand is a paired corpus .* taken whole: list it as voicebank_demand"),
    (["synthetic", "synthetic:noise"], "lists 'synthetic' twice"),
    (["local:music"], "must be speech or noise"),
    ([], r"download.sources must not be empty \(list at least one of: synthetic, local"),
])
def test_bad_sources_are_clear_errors_before_any_work(tiny_params, tmp_path, sources, message):
    with pytest.raises(ValueError, match=message):
        download.run({**tiny_params["download"], "sources": sources}, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_old_single_source_key_says_what_replaced_it(tiny_params, tmp_path):
    params = {k: v for k, v in tiny_params["download"].items() if k != "sources"}
    with pytest.raises(ValueError, match=r"download.source was replaced by download.sources.*\[synthetic\]"):
        download.run({**params, "source": "synthetic"}, out=tmp_path)


def test_unknown_minimum_and_ingest_keys_are_refused(tiny_params, tmp_path):
    with pytest.raises(ValueError, match=r"download.minimum: unknown key 'speakerz'; known: noise_categories, "):
        download.run({**tiny_params["download"], "minimum": {"speakerz": 3}}, out=tmp_path)
    with pytest.raises(ValueError, match=r"download.ingest: unknown key 'min_second'; known: clip_fraction, "):
        download.run({**tiny_params["download"], "ingest": {"min_second": 1}}, out=tmp_path)


# ----------------------------------------------------------------------------------------------------------- local


def test_local_folders_are_ingested_and_bad_files_quarantined(folders, tiny_params, tmp_path):
    speech, noise, bad = folders
    before = {**_tree(speech), **{f"n/{k}": v for k, v in _tree(noise).items()}}
    out = tmp_path / "corpus"
    download.run(_local_params(tiny_params, tmp_path, speech, noise), out=out)

    manifest = _read(out / "manifest.csv")
    speech_rows = manifest[manifest.kind == "speech"]
    assert sorted(speech_rows.speaker.unique()) == ["local:alice", "local:bob", "local:carol", "local:dave"]
    assert len(speech_rows) == 8 and set(speech_rows.language) == {"en"}
    noise_rows = manifest[manifest.kind == "noise"]
    assert len(noise_rows) == 6 and set(noise_rows.category) == {"fan", "street"}
    assert manifest.path.str.match(r"^local/(speech|noise)/.*\.flac$").all()
    assert (manifest.license == "user-supplied").all() and (manifest.sample_rate == 16000).all()
    assert all((out / p).is_file() for p in manifest.path)
    for row in manifest.itertuples():  # the source column names the original; the sha256 is the file's
        assert Path(row.source).is_file() and Path(row.source).is_relative_to(tmp_path)
        assert sf.info(out / row.path).samplerate == 16000 and sf.info(out / row.path).channels == 1

    quarantine = _read(out / "quarantine.csv")
    assert list(quarantine.columns) == ["corpus", "kind", "source", "reason", "detail"]
    assert dict(zip((Path(s).name for s in quarantine.source), quarantine.reason)) == bad
    assert (quarantine.corpus == "local").all() and (quarantine.detail.str.len() > 10).all()
    assert {**_tree(speech), **{f"n/{k}": v for k, v in _tree(noise).items()}} == before  # sources untouched
    for report in ("usable.json", "manifest.json", "local_speech_files.json", "local_noise_files.json"):
        assert (out / "checks" / report).is_file()


def test_a_rerun_takes_ingested_audio_from_the_cache(folders, tiny_params, tmp_path, monkeypatch):
    speech, noise, _ = folders
    params = _local_params(tiny_params, tmp_path, speech, noise)
    download.run(params, out=tmp_path / "first")
    from hushkit.acquisition import ingest

    decoded = []
    convert = ingest._convert
    monkeypatch.setattr(ingest, "_convert", lambda path, *args: decoded.append(str(path)) or convert(path, *args))
    download.run(params, out=tmp_path / "second")  # DVC deletes the output before a rerun: the cache is elsewhere
    for name in ("manifest.csv", "quarantine.csv"):
        assert (tmp_path / "second" / name).read_bytes() == (tmp_path / "first" / name).read_bytes()
    # accepted files come from the cache; only rejected ones (not cached) are looked at again
    assert decoded and not set(decoded) & set(_read(tmp_path / "second" / "manifest.csv").source)


def test_a_missing_local_folder_is_named(tiny_params, tmp_path):
    params = _local_params(tiny_params, tmp_path, tmp_path / "nope", tmp_path / "nope2")
    with pytest.raises(FileNotFoundError, match=r"download.local.speech: folder .*nope does not exist"):
        download.run(params, out=tmp_path / "out")


def test_an_unusable_accepted_set_fails_naming_the_minimum(folders, tiny_params, tmp_path):
    speech, noise, _ = folders
    silent = tmp_path / "silent-speech"
    for i in range(5):
        silent.joinpath(f"s{i}").mkdir(parents=True)
        sf.write(silent / f"s{i}" / "x.wav", np.full(16000, 1e-5, np.float32), 16000)
    out = tmp_path / "corpus"
    with pytest.raises(DataCheckError) as info:
        download.run(_local_params(tiny_params, tmp_path, silent, noise), out=out)
    message = str(info.value)
    assert message.startswith("the accepted corpus is unusable, below download.minimum: speakers 0 < 3; "
                              "speech_minutes 0 < 0.2 (6 files accepted, 7 quarantined: silent 5, ")
    assert "quarantine.csv" in message and "expect_column_values_to_be_between(column=speakers" in message
    assert set(_read(out / "quarantine.csv").reason) == {"silent", "duplicate", "clipped"}  # written before failing
    assert not (out / "manifest.csv").exists()


def test_synthetic_and_local_combine(folders, corpus_dir, tiny_params, tmp_path):
    speech, noise, _ = folders
    params = _local_params(tiny_params, tmp_path, speech, noise)
    params["sources"] = ["synthetic", "local:noise"]
    out = tmp_path / "corpus"
    download.run(params, out=out)
    manifest = _read(out / "manifest.csv")
    synthetic = _read(corpus_dir / "manifest.csv")
    # the synthetic rows and files are exactly those of the synthetic corpus alone
    pd.testing.assert_frame_equal(manifest[~manifest.path.str.startswith("local/")].reset_index(drop=True), synthetic)
    assert all((out / p).read_bytes() == (corpus_dir / p).read_bytes() for p in synthetic.path)
    local = manifest[manifest.path.str.startswith("local/")]
    assert set(local.kind) == {"noise"} and len(local) == 6
    assert set(manifest[manifest.kind == "noise"].category) == {*tiny_params["download"]["noise"]["categories"],
                                                                "fan", "street"}
    assert set(_read(out / "quarantine.csv").kind) == {"noise"}  # the speech folder was not read


def test_synthetic_kind_restriction_drops_the_other_kind(folders, tiny_params, tmp_path):
    speech, noise, _ = folders
    params = _local_params(tiny_params, tmp_path, speech, noise)
    params["sources"] = ["synthetic:noise", "local:speech"]
    out = tmp_path / "corpus"
    download.run(params, out=out)
    manifest = _read(out / "manifest.csv")
    assert set(manifest[manifest.kind == "speech"].speaker.str.split(":").str[0]) == {"local"}
    assert not (out / "speech").exists() and (out / "noise").is_dir()


# ------------------------------------------------------------------------------------------------------- catalogue




def test_a_catalogue_corpus_is_downloaded_once_and_ingested(file_server, folders, tiny_params, tmp_path,
                                                            monkeypatch):
    served, base = file_server
    staging = tmp_path / "staging" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    for i, spk in enumerate(["jackson", "nicolas", "theo", "yweweler"]):
        for digit in range(2):
            _tone(staging / f"{digit}_{spk}_0.wav", 50 + 10 * i + digit, rate=8000, seconds=0.8)
    sf.write(staging / "9_theo_1.wav", np.zeros(8000, np.float32), 8000)  # silent: quarantined
    with zipfile.ZipFile(served / "fsdd.zip", "w") as zf:
        for f in sorted(staging.rglob("*.wav")):
            zf.write(f, f.relative_to(staging.parent.parent).as_posix())
    fsdd = catalogue.get_corpus("fsdd")
    monkeypatch.setitem(catalogue.CATALOGUE, "fsdd", dataclasses.replace(
        fsdd, resources=(dataclasses.replace(fsdd.resources[0], url=f"{base}/fsdd.zip"),)))

    _, noise, _ = folders
    params = _local_params(tiny_params, tmp_path, tmp_path / "unused", noise)
    params["sources"] = ["fsdd", "local:noise"]
    params["minimum"] = {**params["minimum"], "speech_minutes": 0.1}  # 8 spoken digits: 6 s
    out = tmp_path / "corpus"
    download.run(params, out=out)
    manifest = _read(out / "manifest.csv")
    speech = manifest[manifest.kind == "speech"]
    assert sorted(speech.speaker.unique()) == ["fsdd:jackson", "fsdd:nicolas", "fsdd:theo", "fsdd:yweweler"]
    assert len(speech) == 8 and speech.path.str.startswith("fsdd/speech/").all()
    assert (speech.license == fsdd.license).all() and speech.source.str.startswith("fsdd:").all()
    quarantine = _read(out / "quarantine.csv")
    assert quarantine[quarantine.corpus == "fsdd"].reason.tolist() == ["silent"]
    assert (tmp_path / "cache" / "downloads" / "free-spoken-digit-dataset-1.0.10.zip").is_file()

    (served / "fsdd.zip").unlink()  # cached: a rerun needs no server
    download.run(params, out=tmp_path / "again")
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()


def test_a_catalogue_corpus_without_the_asked_kind_is_named(file_server, tiny_params, tmp_path, monkeypatch):
    served, base = file_server
    staging = tmp_path / "staging" / "fsdd" / "recordings"
    _tone(staging / "0_jackson_0.wav", 1, rate=8000)
    with zipfile.ZipFile(served / "fsdd.zip", "w") as zf:
        zf.write(staging / "0_jackson_0.wav", "fsdd/recordings/0_jackson_0.wav")
    fsdd = catalogue.get_corpus("fsdd")
    monkeypatch.setitem(catalogue.CATALOGUE, "fsdd", dataclasses.replace(
        fsdd, resources=(dataclasses.replace(fsdd.resources[0], url=f"{base}/fsdd.zip"),)))
    params = {**tiny_params["download"], "sources": ["fsdd:noise"], "cache": str(tmp_path / "cache")}
    with pytest.raises(ValueError, match=r"fsdd has no noise files \(it holds: speech\)"):
        download.run(params, out=tmp_path / "out")


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_profile_has_download_settings_the_stage_accepts(profile):
    """The checks the stage runs before any work: sources, ingest rules and minimums (a typo fails here, not after
    a 5-GB download)."""
    from hushkit.checks import suites
    from hushkit.acquisition.sources import ingest_rules, parse_sources
    from hushkit.config import DownloadParams
    from hushkit.params import load_params

    overlay = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text())
    settings = DownloadParams.parse(deep_merge(load_params(ROOT / "params.yaml"), overlay)["download"], "download")
    assert parse_sources(settings) and ingest_rules(settings)
    assert suites.usable_corpus(settings.minimum.set()) is not None


# ------------------------------------------------------------------------------------------------------ real-small


@pytest.fixture(scope="module")
def real_small(tmp_path_factory) -> tuple[dict, Path]:
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not present")
    from hushkit.params import load_params

    overlay = yaml.safe_load((ROOT / "profiles" / "real-small.yaml").read_text())
    params = deep_merge(load_params(ROOT / "params.yaml"), overlay)
    # the profile's folders are relative to the repo, as DVC runs the stage there
    local = params["download"]["local"]
    local.update(speech=str(ROOT / local["speech"]), noise=str(ROOT / local["noise"]))
    work = tmp_path_factory.mktemp("real-small")
    params["download"]["cache"] = str(work / "cache")
    # the synthetic noise of the unseen-noise condition, smaller than the profile's (its every category, faster)
    params["download"]["noise"].update(instances_per_category=2, seconds=2.0)
    download.run(params["download"], out=work / "corpus")
    return params, work


def test_real_small_profile_downloads_every_speaker_and_quarantines_the_duplicates(real_small):
    params, work = real_small
    manifest = _read(work / "corpus" / "manifest.csv")
    speech, noise = manifest[manifest.kind == "speech"], manifest[manifest.kind == "noise"]
    assert len(speech) == 251 and speech.speaker.nunique() == 251
    recorded, synthetic = noise[noise.source != "synthetic/procedural"], noise[noise.source == "synthetic/procedural"]
    assert len(recorded) == 98 and set(recorded.category) == {"uncategorized"}
    categories = params["download"]["noise"]["categories"]
    assert sorted(synthetic.category.unique()) == sorted(categories) and len(synthetic) == 2 * len(categories)
    quarantine = _read(work / "corpus" / "quarantine.csv")
    assert sorted(Path(s).name for s in quarantine.source) == ["n58.wav", "n9.wav"]
    assert set(quarantine.reason) == {"duplicate"}
    details = dict(zip((Path(s).name for s in quarantine.source), quarantine.detail))
    assert details["n58.wav"].endswith("n56.wav") and details["n9.wav"].endswith("n7.wav")


def test_real_small_profile_mixes(real_small, rirs_dir):
    from hushkit.stages import mix

    params, work = real_small
    mix.run(params["mix"], corpus=work / "corpus", out=work / "mix", rirs=rirs_dir)
    mixtures = _read(work / "mix" / "manifest.csv")
    counts = mixtures.split.value_counts()
    test_speakers, val_speakers = params["mix"]["test_speakers"], params["mix"]["val_speakers"]
    conditions = params["mix"]["conditions"]
    assert counts["test"] == (test_speakers * len(params["mix"]["test_snr_db"])
                              + conditions["unseen_noise"]["utterances"] + conditions["reverberant"]["utterances"])
    # the recorded noises train; every synthetic category is the unseen-noise condition's alone
    trained = set(mixtures[mixtures.split != "test"].noise_category)
    assert trained == {"uncategorized"}
    assert set(mixtures[mixtures.condition == "unseen_noise"].noise_category) <= set(
        conditions["unseen_noise"]["categories"])
    assert counts["val"] == val_speakers * params["mix"]["mixtures_per_utterance"]
    assert counts["train"] == (251 - test_speakers - val_speakers) * params["mix"]["mixtures_per_utterance"]
    noise_per_split = mixtures.groupby("split").noise_path.nunique()
    assert noise_per_split["test"] > 10  # the test split hears many noises unseen in training, not one
