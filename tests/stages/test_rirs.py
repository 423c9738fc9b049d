"""The RIR bank: seeded, every simulated RT60 (measured by Schroeder integration) in the range asked for, aligned,
split like speakers; the user's own RIR files join it, unusable ones are listed, never fatal."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hushkit import reverb
from hushkit.stages import rirs

RATE = 16000


def test_schroeder_integration_measures_a_known_decay():
    """Noise under an exponential envelope that falls 60 dB in `rt60` seconds has that RT60."""
    rng = np.random.default_rng(0)
    for rt60 in (0.3, 0.7):
        t = np.arange(int(1.5 * rt60 * RATE)) / RATE
        rir = rng.standard_normal(t.size) * 10 ** (-3 * t / rt60)
        assert reverb.schroeder_rt60(rir, RATE) == pytest.approx(rt60, rel=0.05)
    assert np.isnan(reverb.schroeder_rt60(np.ones(100), RATE))  # never decays


def test_the_bank_is_seeded_in_range_aligned_and_split(rirs_dir, tiny_params, tmp_path):
    params = tiny_params["rirs"]
    index = pd.read_csv(rirs_dir / "index.csv")
    bank = np.load(rirs_dir / "rirs.npy")
    assert len(index) == len(bank) == params["count"]
    low, high = params["rt60"]["low"], params["rt60"]["high"]
    for row, rir in zip(index.itertuples(), bank):
        measured = reverb.schroeder_rt60(rir[: row.length], RATE)
        # measured again on the stored (truncated, aligned) RIR: the promise holds for what training convolves with
        assert low - 0.05 <= measured <= high + 0.05, (row.id, measured)
        assert low <= row.rt60 <= high
        assert rir[0] == pytest.approx(1.0) and np.abs(rir).max() == pytest.approx(1.0)
    assert set(index.split) == {"train", "val", "test"}
    rirs.run(params, out=tmp_path / "again", download_params=tiny_params["download"])
    assert (tmp_path / "again" / "rirs.npy").read_bytes() == (rirs_dir / "rirs.npy").read_bytes()
    rirs.run({**params, "seed": params["seed"] + 1}, out=tmp_path / "other", download_params=tiny_params["download"])
    assert not np.array_equal(np.load(tmp_path / "other" / "rirs.npy"), bank)


def test_local_rirs_join_the_bank_and_bad_files_are_listed(tiny_params, tmp_path):
    folder = tmp_path / "measured"
    folder.mkdir()
    t = np.arange(8000) / 8000
    decay = np.random.default_rng(1).standard_normal(t.size) * 10 ** (-3 * t / 0.4)
    sf.write(folder / "hall.wav", np.stack([np.r_[np.zeros(50), decay[:-50]]] * 2, axis=1), 8000)  # stereo, 8 kHz
    (folder / "broken.wav").write_bytes(b"not audio")
    params = {**tiny_params["rirs"], "count": 4, "local": str(folder)}
    rirs.run(params, out=tmp_path / "bank", download_params=tiny_params["download"])
    index = pd.read_csv(tmp_path / "bank" / "index.csv")
    local = index[index.source == str(folder / "hall.wav")]
    assert len(local) == 1 and local.rt60.iat[0] == pytest.approx(0.4, rel=0.1)
    rejected = pd.read_csv(tmp_path / "bank" / "rejected.csv")
    assert list(rejected.path) == [str(folder / "broken.wav")] and "not readable" in rejected.reason.iat[0]


def test_a_range_no_room_can_reach_is_a_clear_error(tiny_params, tmp_path):
    params = {**tiny_params["rirs"], "count": 1, "rt60": {"low": 0.001, "high": 0.002}}
    with pytest.raises(ValueError, match="did not reach an RT60"):
        rirs.run(params, out=tmp_path, download_params=tiny_params["download"])
