"""ConvSTFT / ConvISTFT: perfect reconstruction, agreement with torch.stft, framing for any length."""
from __future__ import annotations

import pytest
import torch

from hushkit.models.stft import ConvISTFT, ConvSTFT, frame_padding, num_frames

LENGTHS = [1, 2, 63, 127, 128, 129, 255, 256, 257, 1001, 16000, 16001]
CONFIGS = [(256, 128, "sqrt_hann"), (256, 64, "sqrt_hann"), (512, 128, "hann"), (64, 16, "sqrt_hann")]


@pytest.mark.parametrize("n_fft,hop,window", CONFIGS)
@pytest.mark.parametrize("length", LENGTHS)
def test_perfect_reconstruction(n_fft, hop, window, length):
    x = torch.randn(3, length, generator=torch.Generator().manual_seed(length))
    stft, istft = ConvSTFT(n_fft, hop, window), ConvISTFT(n_fft, hop, window)
    real, imag = stft(x)
    assert real.shape == imag.shape == (3, n_fft // 2 + 1, num_frames(length, n_fft, hop))
    y = istft(real, imag, length)
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-5, rtol=0), (y - x).abs().max()


@pytest.mark.parametrize("n_fft,hop,window", CONFIGS)
def test_matches_torch_stft(n_fft, hop, window):
    """Same frames as torch.stft (no centring) on the padded signal, with the same window (float32 bases)."""
    length = 3001
    x = torch.randn(2, length, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    real, imag = ConvSTFT(n_fft, hop, window).double()(x)
    left, right = frame_padding(length, n_fft, hop)
    win = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    win = win.sqrt() if window == "sqrt_hann" else win
    ref = torch.stft(torch.nn.functional.pad(x, (left, right)), n_fft, hop, window=win, center=False,
                     return_complex=True)
    assert torch.allclose(real, ref.real, atol=1e-5) and torch.allclose(imag, ref.imag, atol=1e-5)


@pytest.mark.parametrize("length", [1, 100, 128, 129, 5000])
def test_every_sample_has_full_overlap(length):
    """Padding leaves no sample covered by fewer than n_fft / hop frames: the OLA weight is flat over x."""
    n_fft, hop = 256, 64
    left, right = frame_padding(length, n_fft, hop)
    frames = num_frames(length, n_fft, hop)
    assert (left + length + right - n_fft) % hop == 0 and (left + length + right - n_fft) // hop + 1 == frames
    win_sq = torch.hann_window(n_fft, periodic=True)
    ola = torch.nn.functional.conv_transpose1d(torch.ones(1, 1, frames), win_sq[None, None], stride=hop)[0, 0]
    covered = ola[left : left + length]
    assert torch.allclose(covered, torch.full_like(covered, 2.0), atol=1e-5)  # Hann at 75% overlap sums to 2


def test_gradients_flow_and_bases_are_fixed():
    stft, istft = ConvSTFT(256, 128), ConvISTFT(256, 128)
    assert not list(stft.parameters()) and not list(istft.parameters())
    assert stft.state_dict() == {} and istft.state_dict() == {}  # derived from the settings, never saved
    x = torch.randn(2, 1000, requires_grad=True)
    istft(*stft(x), 1000).square().sum().backward()
    assert torch.allclose(x.grad, 2 * x.detach(), atol=1e-4)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="hop must divide"):
        ConvSTFT(256, 100)
    with pytest.raises(ValueError, match="n_fft"):
        ConvISTFT(255, 5)
    with pytest.raises(ValueError, match="window"):
        ConvSTFT(256, 128, window="hamming")
