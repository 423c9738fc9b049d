"""The windowed Fourier filterbank the learned-filterbank models start from."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hushkit.models.filterbank import FourierFilterbank, fourier_basis, windowed_fourier_filters


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
