import librosa
import numpy as np
import pytest
import torch

from hushkit.models.logmel import LOG_FLOOR, LogMel, mel_filterbank


def test_mel_filters_are_librosas_htk_filters():
    ours = mel_filterbank(16000, 512, 64)
    theirs = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0.0, fmax=8000.0, htk=True, norm=None)
    np.testing.assert_allclose(ours, theirs.T, atol=1e-6)


def test_mel_filters_peak_in_order_and_cover_the_band():
    bank = mel_filterbank(16000, 512, 40, f_min=50.0, f_max=7600.0)
    assert bank.shape == (257, 40) and (bank >= 0).all() and bank.max() <= 1.0
    peaks = bank.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # centres rise with the filter index
    bins = np.arange(257) * 16000 / 512
    inside = (bins > 120) & (bins < 7500)
    assert (bank[inside].sum(axis=1) > 0).all()  # no frequency inside the band is missed
    with pytest.raises(ValueError, match="f_min"):
        mel_filterbank(16000, 512, 40, f_min=9000.0)


def test_power_is_torch_stfts_and_features_are_its_log_mel():
    frontend = LogMel(16000, n_mels=64, win_ms=25.0, hop_ms=10.0)
    assert (frontend.win, frontend.hop, frontend.n_fft) == (400, 160, 512)
    x = 0.1 * torch.randn(2, 16000 + 37, dtype=torch.float32)
    window = torch.hann_window(400, dtype=torch.float64)
    stft = torch.stft(x.double(), 512, hop_length=160, win_length=400, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    power = stft.abs() ** 2  # (B, 257, frames)
    expected = torch.log(power.transpose(1, 2) @ torch.from_numpy(mel_filterbank(16000, 512, 64)) + LOG_FLOOR)
    features = frontend(x)
    assert features.shape == (2, (16000 + 37) // 160 + 1, 64) == expected.shape
    torch.testing.assert_close(features.double(), expected, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("samples", [1, 159, 160, 161, 4000])
def test_any_length_gives_length_over_hop_plus_one_frames(samples):
    frontend = LogMel(16000, n_mels=32)
    features = frontend(torch.zeros(3, samples))
    assert features.shape == (3, samples // 160 + 1, 32) == (3, frontend.frames(samples), 32)
    assert torch.isfinite(features).all()  # digital silence stays finite (the log floor)
    with pytest.raises(ValueError, match="batch, samples"):
        frontend(torch.zeros(samples))


def test_frames_are_centred_on_multiples_of_the_hop():
    x = torch.zeros(1, 8000)
    x[0, 1600] = 1.0  # an impulse at frame 10's centre
    energy = LogMel(16000, n_mels=16)(x).exp().sum(dim=2)[0]
    assert int(energy.argmax()) == 10
    assert energy[10] > 10 * energy[8] and energy[10] > 10 * energy[12]
