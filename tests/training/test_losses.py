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


def test_undershoot_counts_only_the_speech_an_estimate_removes():
    torch.manual_seed(0)
    clean = torch.randn(2, 8000)
    undershoot = LOSSES["compressed_undershoot"]
    assert undershoot(2.0 * clean, clean) == 0.0
    assert undershoot(0.5 * clean, clean) > 0.0
    # beside the magnitude term it makes the loss asymmetric: removing speech costs more than as much excess
    asymmetric = combined_loss({"compressed_magnitude": 1.0, "compressed_undershoot": 1.0})
    symmetric = combined_loss({"compressed_magnitude": 1.0})
    assert asymmetric(0.5 * clean, clean) > symmetric(0.5 * clean, clean)
    assert asymmetric(1.5 * clean, clean) == symmetric(1.5 * clean, clean)


def test_combined_compressed_terms_equal_their_separate_sum():
    torch.manual_seed(1)
    clean, estimate = torch.randn(2, 4000), torch.randn(2, 4000)
    weights = {"compressed_magnitude": 0.7, "compressed_complex": 0.3, "compressed_undershoot": 0.5, "si_sdr": 0.01}
    separate = sum(w * LOSSES[name](estimate, clean) for name, w in weights.items())
    assert torch.isclose(combined_loss(weights)(estimate, clean), separate)
