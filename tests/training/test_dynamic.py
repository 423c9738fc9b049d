"""Dynamic mixing: batches drawn from (seed, step) alone, at the SNR drawn, with reverberation, EQ and clipping as
configured, from the features stage's pools."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import fftconvolve

from hushkit.mixing import snr_db
from hushkit.reverb import early_part
from hushkit.config import DynamicMixingParams, TrainConfig
from hushkit.training.dynamic import DynamicMixer, Pool, training_source

RATE = 16000
CPU = torch.device("cpu")
EVERYTHING = {"second_noise": 0.5, "eq": 0.5, "bandlimit": 0.5, "clipping": 0.3,
              "reverb": {"p": 0.5, "target": "early", "early_ms": 50.0}}


def pool(kind: str, count: int, seed: int, speakers: list[str] | None = None) -> Pool:
    """Speech-like (bursts with pauses) or noise-like (steady) signals of random lengths, packed like the pools
    (without `speakers`, every utterance is its own speaker's)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(count):
        length = int(rng.integers(RATE // 2, 3 * RATE))
        audio = rng.standard_normal(length) * 0.05
        if kind == "speech":  # syllable-rate bursts with silent gaps, so active-frame power matters
            envelope = (np.sin(2 * np.pi * rng.uniform(2, 5) * np.arange(length) / RATE) > 0.2)
            audio = audio * envelope
        parts.append(audio.astype(np.float32))
    lengths = [len(p) for p in parts]
    index = pd.DataFrame({"offset": np.concatenate([[0], np.cumsum(lengths)[:-1]]), "length": lengths})
    if speakers is not None:
        index["speaker"] = speakers
    return Pool(np.concatenate(parts), index, CPU)


def rir_bank(count: int = 4, length: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(3)
    decay = np.exp(-np.arange(length) / (0.05 * RATE))
    bank = (rng.standard_normal((count, length)) * 0.3 * decay).astype(np.float32)
    bank[:, 0] = 1.0  # aligned: the direct path at sample 0
    return bank


def settings_of(section: dict) -> DynamicMixingParams:
    return DynamicMixingParams.parse(section, "train.dynamic_mixing")


def mixer(seed: int = 0, **settings) -> DynamicMixer:
    return DynamicMixer(pool("speech", 6, 1), pool("noise", 4, 2), rir_bank(), settings_of(settings),
                        RATE, seed, CPU)


def test_a_batch_is_a_function_of_seed_and_step_alone():
    first, second = mixer(**EVERYTHING), mixer(**EVERYTHING)
    later = second.batch(7, 8, 4000)  # another step first: nothing carries over between calls
    for a, b in zip(first.batch(3, 8, 4000), second.batch(3, 8, 4000)):
        assert torch.equal(a, b)
    assert not torch.equal(first.batch(4, 8, 4000)[0], first.batch(3, 8, 4000)[0])
    assert torch.equal(first.batch(7, 8, 4000)[0], later[0])
    assert not torch.equal(mixer(seed=1, **EVERYTHING).batch(3, 8, 4000)[0], first.batch(3, 8, 4000)[0])


def test_a_part_of_a_batch_is_that_part_of_the_whole_batch():
    whole = mixer(**EVERYTHING).batch(2, 8, 3000)
    for part in (slice(0, 4), slice(4, 8)):
        for full, piece in zip(whole, mixer(**EVERYTHING).batch(2, 8, 3000, part=part)):
            torch.testing.assert_close(piece, full[part], rtol=0, atol=1e-6)


@pytest.mark.parametrize("settings", [{}, {"second_noise": 1.0, "eq": 1.0, "bandlimit": 1.0,
                                           "reverb": {"p": 1.0}}, {"babble": {"p": 1.0}}])
def test_the_realized_snr_is_the_drawn_one(settings):
    mix = mixer(**settings)
    draws = mix.draw(11, 16, 8000)
    made = mix.components(draws, 8000)
    assert torch.allclose(made["unclipped"], made["speech"] + made["noise"], atol=1e-6)
    realized = [snr_db(s.numpy(), n.numpy(), RATE) for s, n in zip(made["speech"], made["noise"])]
    np.testing.assert_allclose(realized, draws.snr_db, atol=0.5)
    assert draws.snr_db.min() >= -5.0 and draws.snr_db.max() <= 25.0


def test_babble_is_other_speakers_speech_and_leaves_every_other_draw_as_it_was():
    speakers = ["a", "a", "b", "b", "c", "c"]

    def mix(**settings) -> DynamicMixer:
        return DynamicMixer(pool("speech", 6, 1, speakers), pool("noise", 4, 2), None, settings_of(settings), RATE,
                            0, CPU)

    babbling, plain = mix(babble={"p": 1.0, "talkers": 3}), mix()
    draws, before = babbling.draw(5, 32, 8000), plain.draw(5, 32, 8000)
    for name, value in vars(before).items():
        if not name.startswith("babble"):
            np.testing.assert_array_equal(getattr(draws, name), value, err_msg=name)
    assert draws.babble_on.all() and not before.babble_on.any() and draws.babble_rows.shape == (32, 3)
    own = np.array(speakers)[draws.speech_row][:, None]
    assert not (np.array(speakers)[draws.babble_rows] == own).any()
    noise = babbling.components(draws, 8000)["noise"]
    talkers = torch.stack([babbling.speech.crops(draws.babble_rows[:, k], draws.babble_starts[:, k], 8000, loop=True)
                           for k in range(3)], 1)
    expected = (talkers / talkers.square().mean(-1, keepdim=True).sqrt()).sum(1)
    torch.testing.assert_close(noise / noise.norm(dim=-1, keepdim=True),
                               expected / expected.norm(dim=-1, keepdim=True), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="at least two speakers"):
        DynamicMixer(pool("speech", 2, 1, ["a", "a"]), pool("noise", 2, 2), None,
                     settings_of({"babble": {"p": 0.5}}), RATE, 0, CPU)


def test_levels_are_drawn_and_nothing_exceeds_the_peak_limit():
    mix = mixer(level_dbfs={"low": -30.0, "high": -20.0})
    noisy, target = mix.batch(0, 32, 8000)
    rms_db = 20 * torch.log10(noisy.square().mean(-1).sqrt())
    assert noisy.abs().max() <= 0.99 + 1e-6 and target.abs().max() <= 0.99 + 1e-6
    assert ((rms_db >= -30.01) & (rms_db <= -19.99)).float().mean() > 0.9  # the rest: lowered by the peak limit


def test_clipping_clips_the_mixture_only():
    mix = mixer(clipping=1.0)
    made = mix.components(mix.draw(0, 8, 8000), 8000)
    ceiling = made["noisy"].abs().amax(-1)
    assert (ceiling < made["unclipped"].abs().amax(-1)).all()
    assert torch.equal(made["target"], made["speech"])  # no reverb: the target is the dry speech, never clipped


@pytest.mark.parametrize("target", ["early", "dry"])
def test_reverberation_convolves_the_speech_and_its_target_is_the_early_or_dry_speech(target):
    mix = mixer(reverb={"p": 1.0, "target": target, "early_ms": 50.0})
    segment, draws = 6000, mix.draw(5, 4, 6000)
    made = mix.components(draws, segment)
    for i in range(4):
        row, start = draws.speech_row[i], draws.speech_start[i]
        context = mix.rirs.shape[1]
        crop = mix.speech.crops(np.array([row]), np.array([start - context]), segment + context, loop=False)[0]
        rir = mix.rirs[draws.rir_row[i]].numpy()
        wet = fftconvolve(crop.numpy(), rir)[context:context + segment]
        reference = (fftconvolve(crop.numpy(), early_part(rir, RATE, 50.0))[context:context + segment]
                     if target == "early" else crop.numpy()[context:])
        gain = made["speech"][i].norm() / np.linalg.norm(wet)  # the level and SNR gains scale both alike
        np.testing.assert_allclose(made["speech"][i].numpy(), gain.item() * wet, atol=2e-5)
        np.testing.assert_allclose(made["target"][i].numpy(), gain.item() * reference, atol=2e-5)


def test_settings_are_checked_naming_the_key():
    with pytest.raises(ValueError,
                       match=r"^train.dynamic_mixing: unknown key 'snr'; known: babble, bandlimit, clipping, "):
        settings_of({"snr": 3})
    with pytest.raises(ValueError, match=r"^train.dynamic_mixing.clipping must be in \[0.0, 1.0\] \(a probability\)"):
        settings_of({"clipping": 2})
    with pytest.raises(ValueError, match=r"^train.dynamic_mixing.snr_db.distribution must be one of"):
        settings_of({"snr_db": {"distribution": "beta"}})
    with pytest.raises(ValueError, match=r"^train.dynamic_mixing.level_dbfs.high must be <= 0 dBFS"):
        settings_of({"level_dbfs": {"low": -10.0, "high": 3.0}})
    with pytest.raises(ValueError, match="needs training RIRs"):
        DynamicMixer(pool("speech", 2, 1), pool("noise", 2, 2), None, settings_of({"reverb": {"p": 1}}), RATE, 0, CPU)


def test_the_pipeline_source_mixes_from_the_features_pools(features_dir, rirs_dir):
    def config(**settings) -> TrainConfig:
        return TrainConfig.parse({"epochs": 1, "batch_size": 4, "steps_per_epoch": 1, "lr": 1e-3, **settings}, "train")

    source = training_source(config(mixing="dynamic", dynamic_mixing=EVERYTHING), features_dir, rirs_dir, RATE,
                             device=CPU)
    noisy, clean = source.batch(0, 4, RATE, np.random.default_rng(0))
    assert noisy.shape == clean.shape == (4, RATE) and torch.isfinite(noisy).all()
    speech = np.load(features_dir / "pools" / "speech.npy")
    assert len(source.speech.audio) == len(speech)
    fixed = training_source(config(mixing="fixed"), features_dir, None, RATE, device=CPU)
    assert fixed.batch(0, 4, 8000, np.random.default_rng(0))[0].shape == (4, 8000)
    with pytest.raises(ValueError, match="mixing must be one of"):
        config(mixing="premixed")
