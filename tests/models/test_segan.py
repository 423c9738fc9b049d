"""SEGAN specifics: the generator's layout and latent, its discriminator, and the LSGAN training pieces.

(The Denoiser contract, checkpoints and ONNX parity of the default generator are covered by the generic tests.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hushkit.models import build_model, load_checkpoint, save_checkpoint
from hushkit.models.onnx_export import export_onnx, onnx_parity
from hushkit.models.segan import PAPER_CHANNELS, SEGAN, SEGANDiscriminator
from hushkit.training.adversarial import AdversarialStep, lsgan_discriminator_loss, lsgan_generator_loss

SMALL = {"channels": [4, 8, 8, 16, 16], "kernel_size": 11, "z_channels": 8}


def _conv_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


def test_depth_follows_the_constructor():
    default = build_model("segan")
    assert len(default.channels) == 11 and default.kernel_size == 31  # the paper's layout ...
    assert len(_conv_layers(default)) == default.num_conv_layers == 22  # ... 22 conv layers with the decoder
    small = build_model("segan", **SMALL)
    convs = _conv_layers(small)
    assert len(convs) == small.num_conv_layers == 10
    assert [c.out_channels for c in small.encoder.modules() if isinstance(c, nn.Conv1d)] == SMALL["channels"]
    assert all(c.kernel_size == (11,) and c.stride == (2,) for c in convs)
    assert small.decoder[-1].out_channels == 1 and small.stride == 32
    paper = SEGAN(channels=PAPER_CHANNELS, z_channels=1024, preemphasis=0.95)
    assert paper.num_conv_layers == 22 and paper.decoder[0].in_channels == 2048


@pytest.mark.parametrize("kwargs", [SMALL, {**SMALL, "preemphasis": 0.95, "normalize": False, "z_channels": 0}])
def test_small_configs_keep_shape(kwargs):
    model = build_model("segan", **kwargs).eval()
    with torch.no_grad():
        for length in (1, 31, 32, 33, 1000):
            x = 0.1 * torch.randn(2, length)
            y = model(x)
            assert y.shape == x.shape and torch.isfinite(y).all()
        assert model(0.1 * torch.randn(77)).shape == (77,)


def test_eval_is_deterministic_train_samples_z():
    torch.manual_seed(0)
    model = build_model("segan", **SMALL, residual=False)  # residual: the last layer starts at 0, hiding z
    x = 0.1 * torch.randn(2, 3000)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        a, b = model(x), model(x)
        assert not torch.allclose(a, b)
        # z = 0 in eval mode: the same as feeding zeros through the full first decoder kernel.
        model.eval()
        deconv, calls = model.decoder[0], []
        hook = deconv.register_forward_hook(lambda *args: calls.append(1))
        assert model(x).shape == x.shape and not calls  # eval skips the z slice instead of calling the module
        hook.remove()


def test_eval_z_zero_equals_concatenated_zeros(monkeypatch):
    torch.manual_seed(0)
    model = build_model("segan", **SMALL).train()
    x = 0.1 * torch.randn(2, 700)
    # Train mode with z drawn as zeros must give the eval output (up to float rounding).
    monkeypatch.setattr(torch, "randn", lambda *shape, **kw: torch.zeros(*shape, **kw))
    with torch.no_grad():
        zeros_z = model(x)
    monkeypatch.undo()
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), zeros_z, atol=1e-6)


def test_level_invariance_and_silence():
    torch.manual_seed(0)
    model = build_model("segan", **SMALL).eval()
    x = torch.randn(2, 4000)
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    with torch.no_grad():
        quiet, loud = 10 ** (-35 / 20), 10 ** (-10 / 20)
        assert torch.allclose(model(quiet * x) / quiet, model(loud * x) / loud, atol=1e-4)
        silence = model(torch.zeros(2, 4000))
    assert torch.isfinite(silence).all() and silence.abs().max() < 1e-3
    grad_input = torch.zeros(1, 500, requires_grad=True)
    model.train()(grad_input).sum().backward()
    assert torch.isfinite(grad_input.grad).all()


def test_deemphasis_inverts_preemphasis():
    model = build_model("segan", **{**SMALL, "preemphasis": 0.95})
    x = torch.randn(3, 5000, dtype=torch.float32)
    assert torch.allclose(model._deemphasise(model._preemphasise(x)), x, atol=1e-4)
    assert "deemphasis_kernel" not in model.state_dict()  # derived from the config, not saved


def test_preemphasis_config_exports_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_model("segan", **{**SMALL, "preemphasis": 0.95}).eval()
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    x = 0.1 * torch.randn(2, 4321)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    path = export_onnx(model, tmp_path / "m.onnx", example_seconds=0.25)
    rng = np.random.default_rng(0)
    for shape in [(2, 4321), (1, 1), (3, 999)]:
        assert onnx_parity(model, path, (0.1 * rng.standard_normal(shape)).astype(np.float32)) <= 1e-4


@pytest.mark.parametrize("length", [1, 255, 16000, 16001])
def test_discriminator_scores_one_per_example(length):
    d = build_model("segan", **SMALL).make_discriminator()
    for batch in (1, 3):
        noisy, clean = 0.1 * torch.randn(batch, length), 0.1 * torch.randn(batch, length)
        scores = d(noisy, clean)
        assert scores.shape == (batch,) and torch.isfinite(scores).all()


def test_discriminator_scores_examples_independently():
    d = build_model("segan", **SMALL).make_discriminator().eval()
    noisy, clean = 0.1 * torch.randn(4, 2000), 0.1 * torch.randn(4, 2000)
    with torch.no_grad():
        together = d(noisy, clean)
        alone = torch.cat([d(noisy[i : i + 1], clean[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_make_discriminator_builds_from_config():
    model = build_model("segan", **SMALL, d_channels=[4, 6, 8], d_fc_frames=4)
    rebuilt = build_model("segan", **model.config)
    d1, d2 = model.make_discriminator(), rebuilt.make_discriminator()
    assert isinstance(d1, SEGANDiscriminator) and d1 is not model.make_discriminator()
    assert {k: v.shape for k, v in d1.state_dict().items()} == {k: v.shape for k, v in d2.state_dict().items()}
    assert [c.out_channels for c in _conv_layers(d1)] == [4, 6, 8, 1] and d1.fc_frames == 4
    assert d1.kernel_size == 11
    # Default: half the generator's widths; the discriminator is not part of the generator's weights.
    default = build_model("segan", **SMALL).make_discriminator()
    assert default.channels == [4, 4, 4, 8, 8]
    assert not any(k.startswith(("d_", "discriminator")) for k in model.state_dict())


def test_lsgan_losses_match_their_formulas():
    torch.manual_seed(0)
    d = build_model("segan", **SMALL).make_discriminator().eval()
    noisy, clean = 0.1 * torch.randn(3, 1000), 0.1 * torch.randn(3, 1000)
    enhanced = (0.1 * torch.randn(3, 1000)).requires_grad_()
    with torch.no_grad():
        real, fake = d(noisy, clean), d(noisy, enhanced)
    d_loss = lsgan_discriminator_loss(d, noisy, clean, enhanced)
    assert torch.allclose(d_loss, 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean(), atol=1e-6)
    d_loss.backward()
    assert enhanced.grad is None  # the D loss does not reach the generator
    g_loss = lsgan_generator_loss(d, noisy, enhanced)
    assert torch.allclose(g_loss, 0.5 * ((fake - 1) ** 2).mean(), atol=1e-6)


def test_discriminator_steps_lower_its_loss():
    torch.manual_seed(0)
    model = build_model("segan", **SMALL)
    step = AdversarialStep.for_model(model, lr=1e-3)
    t = torch.arange(4000) / 16000
    clean = 0.3 * torch.sin(2 * torch.pi * 300 * t).repeat(4, 1)
    noisy = clean + 0.1 * torch.randn_like(clean)
    with torch.no_grad():
        enhanced = model.eval()(noisy)
    losses = [step.discriminator_step(noisy, clean, enhanced) for _ in range(8)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert set(step.stats) >= {"d_loss", "d_grad_norm", "d_real", "d_fake"}


def test_adversarial_step_updates_d_and_returns_a_generator_only_term():
    torch.manual_seed(0)
    model = build_model("segan", **SMALL).train()
    step = AdversarialStep.for_model(model)
    d = step.discriminator
    noisy, clean = 0.1 * torch.randn(2, 3000), 0.1 * torch.randn(2, 3000)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    enhanced = model(noisy)
    term = step(noisy, clean, enhanced)
    assert term.dim() == 0 and term.requires_grad and "g_adv" in step.stats
    assert any(not torch.equal(before[k], v) for k, v in d.state_dict().items())  # D was stepped
    for p in d.parameters():
        p.grad = None
    (term + (enhanced - clean).abs().mean()).backward()
    assert all(p.grad is None for p in d.parameters())  # the generator's backward leaves D alone
    assert all(p.requires_grad for p in d.parameters())  # and D is trainable again
    assert all(p.grad is not None for p in model.parameters())
    restored = AdversarialStep.for_model(build_model("segan", **model.config))
    restored.load_state_dict(step.state_dict())


def test_only_models_with_a_discriminator_train_adversarially():
    assert AdversarialStep.for_model(build_model("crced")) is None
    assert isinstance(AdversarialStep.for_model(build_model("segan", **SMALL)), AdversarialStep)


def test_residual_generator_starts_as_the_identity():
    torch.manual_seed(0)
    x = 0.1 * torch.randn(2, 3001)
    assert torch.allclose(build_model("segan", **SMALL).eval()(x), x, atol=1e-6)
    assert not torch.allclose(build_model("segan", **SMALL, residual=False).eval()(x), x, atol=1e-3)


SMALL_FB = {"channels": [8, 8, 16], "kernel_size": 5, "z_channels": 4, "filterbank": 16, "norm": True}


def test_filterbank_generator_gates_coefficients_of_any_length(tmp_path):
    """filterbank > 0: the strided convs run over the Fourier-initialised filterbank's frames (L channels in and
    out) and gate its coefficients; any length works, eval is deterministic, and the ONNX graph matches."""
    torch.manual_seed(0)
    model = build_model("segan", **SMALL_FB)
    assert model.encoder[0][0].in_channels == 16 and model.decoder[-1].out_channels == 16
    assert not model.residual
    # Look-ahead in frames of 8 samples after a 16-sample window: 2 * (5 // 2) * (2**3 - 1) = 28 frames.
    assert model.algorithmic_latency_samples == 16 + 28 * 8
    model.eval()
    with torch.no_grad():
        for length in (1, 7, 8, 9, 1000):
            x = 0.1 * torch.randn(2, length)
            y = model(x)
            assert y.shape == x.shape and torch.isfinite(y).all() and torch.equal(y, model(x))
    path = export_onnx(model, tmp_path / "segan_fb.onnx", example_seconds=0.1)
    rng = np.random.default_rng(0)
    for shape in [(2, 3001), (1, 17)]:
        assert onnx_parity(model, path, (0.05 * rng.standard_normal(shape)).astype(np.float32)) <= 1e-4, shape


@pytest.mark.parametrize("bad", [{"filterbank": 7}, {"filterbank": 1}])
def test_bad_filterbank(bad):
    with pytest.raises(ValueError, match="filterbank"):
        build_model("segan", **SMALL, **bad)
