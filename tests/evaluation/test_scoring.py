import numpy as np
import pandas as pd
import pytest

from hushkit.audio import read_audio
from hushkit.evaluation import systems
from hushkit.evaluation.scoring import score_system, spread
from hushkit.evaluation.scoring import test_split as split_of


def test_spread_takes_every_snr_level_of_an_utterance_major_split():
    ids = [f"t{i:03d}" for i in range(100)]
    test = pd.DataFrame({"id": ids, "level": [i % 5 for i in range(100)]})
    chosen = spread(test, 20)
    assert len(chosen) == 20 and chosen[0] == "t000" and chosen[-1] == "t099"
    assert test.set_index("id").loc[chosen].level.value_counts().min() >= 3
    assert list(spread(test, None)) == ids and list(spread(test, 500)) == ids


@pytest.fixture(scope="module")
def scored(mix_dir, tmp_path_factory):
    test = split_of(mix_dir, 4)
    out = tmp_path_factory.mktemp("scoring")
    table = score_system("dsp", systems.baseline("dsp"), mix_dir, test, out / "checks",
                         dnsmos_ids=pd.Index(test.id[:2]), examples=(out / "examples", pd.Index(test.id[1:2])),
                         workers=2)
    return test, out, table


def test_scores_every_file_with_dnsmos_only_where_asked(scored):
    test, _, table = scored
    assert list(table.id) == list(test.id) and (table.system == "dsp").all()
    assert table.dnsmos_ovr.notna().tolist() == [True, True, False, False]
    assert table.dnsmos_ovr.dropna().between(1, 5).all()
    assert np.isfinite(table[["pesq", "stoi", "estoi", "si_sdr"]].to_numpy()).all()


def test_scores_are_kept_at_the_precision_the_tables_store(scored):
    """Below it a score may differ between runs on the same audio (ESTOI does, in its last bits): what the stages
    compute from the scores (means, the check report's fingerprint) must be what per_file.csv holds."""
    from hushkit.io import TABLE_DECIMALS
    from hushkit.metrics import DNSMOS, METRICS

    _, _, table = scored
    values = table[[*METRICS, *DNSMOS]]
    assert values.equals(values.round(TABLE_DECIMALS))


def test_times_each_file_and_keeps_the_examples(scored, mix_dir):
    test, out, table = scored
    assert (table.seconds > 0).all() and (table.rtf == table.seconds / table.duration).all()
    kept = sorted(p.stem for p in (out / "examples").glob("*.wav"))
    assert kept == [test.id.iloc[1]]
    audio, rate = read_audio(out / "examples" / f"{kept[0]}.wav")
    clean, _ = read_audio(mix_dir / test.clean_path.iloc[1])
    assert rate == int(test.sample_rate.iloc[0]) and audio.shape == clean.shape


def test_a_system_that_changes_the_length_is_named(mix_dir, tmp_path, monkeypatch):
    from hushkit import baselines

    baselines._load_all()
    monkeypatch.setitem(baselines._FACTORIES, "halves", lambda rate: lambda audio: audio[: len(audio) // 2])
    test = split_of(mix_dir, 2)
    with pytest.raises(ValueError, match="halves returned"):
        score_system("halves", systems.baseline("halves"), mix_dir, test, tmp_path, workers=1)
