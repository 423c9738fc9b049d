import pandas as pd
import pytest

from hushkit.stages import download


def test_manifest_describes_every_file(corpus_dir, tiny_params):
    manifest = pd.read_csv(corpus_dir / "manifest.csv", keep_default_na=False)
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


def test_unknown_source_is_a_clear_error(tiny_params, tmp_path):
    params = {**tiny_params["download"], "source": "nowhere"}
    with pytest.raises(ValueError, match="unknown source 'nowhere'"):
        download.run(params, out=tmp_path)
