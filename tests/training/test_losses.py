import pytest
import torch

from hushkit.training.losses import LOSSES, combined_loss, si_sdr_loss


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_is_lower_for_a_closer_estimate(name):
    torch.manual_seed(0)
    clean = torch.randn(2, 8000)
    noise = torch.randn(2, 8000)
    close, far = LOSSES[name](clean + 0.05 * noise, clean), LOSSES[name](clean + noise, clean)
    assert close < far


def test_si_sdr_loss_ignores_scale():
    clean = torch.randn(1, 4000)
    assert si_sdr_loss(0.3 * clean, clean) < -60


def test_combined_loss_rejects_unknown_and_all_zero():
    with pytest.raises(ValueError, match="unknown loss"):
        combined_loss({"nope": 1.0})
    with pytest.raises(ValueError, match="every weight is zero"):
        combined_loss({"spectral": 0.0})
