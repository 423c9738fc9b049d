"""The learned filterbanks (the windowed Fourier start, samples as a filterbank) and the encoder-masker-decoder base
that the learned-filterbank models share."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hushkit.models import FilterbankDenoiser, capture_init
from hushkit.models.filterbank import FourierFilterbank, SampleFrames, check_filterbank_argument, fourier_basis, \
    windowed_fourier_filters


@pytest.mark.parametrize("L", [2, 8, 64])
def test_fourier_basis_is_orthonormal_and_one_frequency_per_row(L):
    basis = fourier_basis(L)
    assert torch.allclose(basis @ basis.T, torch.eye(L, dtype=torch.float64), atol=1e-12)
    # Every row is one DFT frequency, lowest first: its energy sits in a single bin of the L-point DFT.
    spectrum = torch.fft.rfft(basis, dim=1).abs() ** 2
    peak = spectrum.argmax(dim=1)
    assert torch.all(peak.diff() >= 0) and peak[0] == 0 and peak[-1] == L // 2
    assert torch.all(spectrum.max(dim=1).values >= 0.99 * spectrum.sum(dim=1))


def test_windowed_filters_reconstruct_perfectly_at_half_overlap():
    L = 32
    filters = windowed_fourier_filters(L)[:, None, :]  # (L, 1, L)
    x = torch.randn(2, 1, 40 * L)
    padded = F.pad(x, (L // 2, L // 2))
    y = F.conv_transpose1d(F.conv1d(padded, filters, stride=L // 2), filters, stride=L // 2)
    assert torch.allclose(y[..., L // 2 : L // 2 + x.shape[-1]][..., L:-L], x[..., L:-L], atol=1e-5)


@pytest.mark.parametrize("bad", [0, 1, 7])
def test_bad_filter_length(bad):
    with pytest.raises(ValueError, match="even integer"):
        windowed_fourier_filters(bad)


@pytest.mark.parametrize("samples", [1, 15, 16, 17, 1001])
@pytest.mark.parametrize("multiple", [1, 8])
def test_filterbank_starts_as_perfect_reconstruction_for_any_length(samples, multiple):
    bank = FourierFilterbank(16)
    x = torch.randn(3, 1, samples)
    coefficients = bank.analyse(x, multiple=multiple)
    assert coefficients.shape[:2] == (3, 16) and coefficients.shape[-1] % multiple == 0
    assert torch.allclose(bank.synthesise(coefficients, samples), x[:, 0], atol=1e-5)


@pytest.mark.parametrize("residual", [True, False])
def test_sample_frames_pad_to_the_stride_and_crop_back(residual):
    frames = SampleFrames(residual)
    x = torch.randn(2, 1, 13)
    padded = frames.analyse(x, multiple=8)
    assert padded.shape == (2, 1, 16) and torch.equal(padded[..., :13], x) and not padded[..., 13:].any()
    estimate = torch.randn_like(padded)
    expected = estimate + padded if residual else estimate
    assert torch.equal(frames.synthesise(frames.combine(padded, estimate), 13), expected[:, 0, :13])
    assert list(frames.state_dict()) == []


class _GateOnly(FilterbankDenoiser):
    """A model that supplies nothing but its masker: a constant estimate."""

    @capture_init
    def __init__(self, filterbank: int = 16, value: float = 60.0):
        super().__init__()
        self.value = value
        self.frame_multiple = 4
        self.add_domain(filterbank, residual=True)

    def masker(self, features):
        return torch.full_like(features, self.value)


@pytest.mark.parametrize("samples", [1, 15, 16, 17, 1001])
def test_a_masker_alone_makes_a_model_of_any_length(samples):
    """With every gate open (sigmoid(60) == 1 in float32) the Fourier filterbank gives its input back; on samples,
    a zero correction does."""
    x = torch.randn(3, samples)
    gated, residual = _GateOnly(16), _GateOnly(0, value=0.0)
    assert gated.config == {"filterbank": 16, "value": 60.0} and isinstance(gated.bank, FourierFilterbank)
    assert torch.allclose(gated(x), x, atol=1e-5) and gated(x[0]).shape == (samples,)
    assert torch.equal(residual(x), x)
    assert [name for name, _ in gated.named_parameters()] == ["input_norm.weight", "input_norm.bias",
                                                              "bank.analysis.weight", "bank.synthesis.weight"]
    with pytest.raises(ValueError, match="batch, samples"):
        gated(x[:, None])


@pytest.mark.parametrize("bad", [1, 3, 7, 2.5])
def test_bad_filterbank_argument(bad):
    assert check_filterbank_argument(0) == 0 and check_filterbank_argument(64) == 64
    with pytest.raises(ValueError, match="filterbank must be 0"):
        check_filterbank_argument(bad)
