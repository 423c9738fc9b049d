"""The tagger contract, checked for every registered tagger, and the registry's kinds."""
from __future__ import annotations

import json
import math

import pytest
import torch

from hushkit.models import Denoiser, Tagger, available_models, build_model, load_checkpoint, save_checkpoint
from hushkit.models.tagger import attention_pooled_logits
from hushkit.models.tagger import DEFAULT_LABELS

TAGGERS = available_models("tagger")
LABELS = ["hum", "white", "speech"]


def _model(name: str, seed: int = 0, **kwargs) -> Tagger:
    torch.manual_seed(seed)
    return build_model(name, labels=LABELS, **kwargs)


def test_the_registry_keeps_denoisers_and_taggers_apart():
    assert TAGGERS == ["gcnn", "tagcnn"]
    denoisers = available_models()
    assert denoisers == available_models("denoiser") and "crced" in denoisers
    assert not set(denoisers) & set(TAGGERS)
    assert all(build_model(name).kind == "denoiser" for name in ("crced",))
    with pytest.raises(ValueError, match="unknown model kind"):
        available_models("vocoder")
    with pytest.raises(ValueError, match="gcnn"):  # an unknown name lists every registered model, taggers too
        build_model("no-such-model")


@pytest.mark.parametrize("name", TAGGERS)
def test_contract_attributes(name):
    model = _model(name)
    assert isinstance(model, Tagger) and not isinstance(model, Denoiser)
    assert model.kind == "tagger" and model.name == name and model.labels == LABELS and model.n_classes == 3
    assert 10_000 <= model.num_parameters <= 300_000, model.num_parameters
    json.dumps(model.config)
    rebuilt = build_model(name, **model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert build_model(name).labels == list(DEFAULT_LABELS)
    with pytest.raises(ValueError, match="distinct"):
        build_model(name, labels=["a", "a"])
    with pytest.raises(ValueError, match="channels"):
        build_model(name, channels=[])


@pytest.mark.parametrize("name", TAGGERS)
@pytest.mark.parametrize("samples", [1, 1601, 32000])
def test_clip_logits_and_frame_probabilities_for_any_length(name, samples):
    model = _model(name).eval()
    with torch.no_grad():
        x = 0.1 * torch.randn(2, samples)
        logits, frames = model(x), model.frame_probabilities(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert frames.shape[0] == 2 and frames.shape[2] == 3 and frames.shape[1] >= 1
    assert ((frames >= 0) & (frames <= 1)).all()
    # the frame outputs cover the clip at frame_hop_seconds apart
    covered = frames.shape[1] * model.frame_hop_seconds
    assert covered >= samples / model.sample_rate - model.frame_hop_seconds
    assert model(x[0]).shape == (1, 3)  # a single waveform is a batch of one


@pytest.mark.parametrize("name", TAGGERS)
def test_prepare_normalises_the_log_mel_features(name):
    model = _model(name)
    audio = 0.05 * torch.randn(4, 16000) * torch.linspace(0.2, 2.0, 16000)
    model.prepare(audio)
    features = model.features(audio)
    assert features.mean(dim=(0, 1)).abs().max() < 1e-3
    assert (features.std(dim=(0, 1)) - 1).abs().max() < 1e-2
    with pytest.raises(ValueError, match="one per mel band"):
        model.set_input_stats(torch.zeros(3), torch.ones(3))


@pytest.mark.parametrize("name", TAGGERS)
def test_checkpoints_round_trip_and_refuse_the_wrong_kind(name, tmp_path):
    model = _model(name)
    model.prepare(0.05 * torch.randn(2, 8000))
    path = save_checkpoint(tmp_path / "tagger.pt", model.eval(), epoch=3)
    loaded, meta = load_checkpoint(path, kind="tagger")
    assert type(loaded) is type(model) and loaded.labels == LABELS and meta["epoch"] == 3
    x = 0.1 * torch.randn(2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(ValueError, match=rf"tagger.pt: holds the tagger '{name}', not a denoiser"):
        load_checkpoint(path, kind="denoiser")
    assert load_checkpoint(path)[0].kind == "tagger"  # without a kind, any registered model loads


def test_a_denoiser_checkpoint_is_not_a_tagger(tmp_path):
    path = save_checkpoint(tmp_path / "crced.pt", build_model("crced").eval())
    with pytest.raises(ValueError, match="holds the denoiser 'crced', not a tagger"):
        load_checkpoint(path, kind="tagger")


def test_a_tagger_checkpoint_cannot_enhance(tmp_path):
    from hushkit.inference import from_checkpoint

    path = save_checkpoint(tmp_path / "gcnn.pt", _model("gcnn").eval())
    with pytest.raises(ValueError, match="gcnn.pt: holds the tagger 'gcnn', not a denoiser"):
        from_checkpoint(path)


@pytest.mark.parametrize("name", TAGGERS)
def test_training_steps_lower_the_binary_cross_entropy(name):
    torch.manual_seed(0)
    t = torch.arange(8000) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    x = torch.stack([tone + 0.05 * torch.randn_like(t), 0.3 * torch.randn_like(t), tone + 0.3 * torch.randn_like(t)])
    y = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]])
    model = _model(name).train()
    model.prepare(x)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses


def test_attention_pooling_is_the_logit_of_the_weighted_mean_probability():
    torch.manual_seed(0)
    frame_logits, attention = 3 * torch.randn(4, 50, 5), torch.randn(4, 50, 5)
    weights = torch.softmax(attention.double(), dim=1)
    probability = (weights * torch.sigmoid(frame_logits.double())).sum(dim=1)
    expected = torch.log(probability) - torch.log1p(-probability)
    torch.testing.assert_close(attention_pooled_logits(frame_logits.double(), attention.double()), expected)
    # Saturated frames keep a finite logit and a gradient (no clamp near probability 0 or 1).
    saturated = torch.full((1, 10, 1), 40.0, requires_grad=True)
    logit = attention_pooled_logits(-saturated, torch.zeros(1, 10, 1))
    logit.sum().backward()
    assert torch.isfinite(logit).all() and logit.item() < -39 and saturated.grad.abs().sum() > 0


def test_gcnn_frames_keep_the_front_ends_rate_and_localise():
    model = _model("gcnn").eval()
    with torch.no_grad():
        frames = model.frame_probabilities(torch.zeros(1, 16000))
    assert frames.shape == (1, 101, 3) and model.frame_hop_seconds == pytest.approx(0.01)


def test_tagcnn_frame_outputs_match_its_clip_output_on_a_stationary_input():
    model = _model("tagcnn").eval()
    channels = model.classifier[0].in_features

    class Stationary(torch.nn.Module):  # conv maps that do not change over time (the blocks' edges would)
        def forward(self, x):
            pattern = torch.linspace(-1.0, 1.0, channels)[None, :, None, None]
            return pattern.expand(x.shape[0], channels, x.shape[2] // 8, 4)

    model.blocks = Stationary()
    with torch.no_grad():
        clip, frames = model.outputs(torch.zeros(1, 100, model.n_mels))
    assert model.frame_hop_seconds == pytest.approx(0.08) and frames.shape == (1, 12, 3)
    for t in range(frames.shape[1]):
        torch.testing.assert_close(torch.logit(frames[0, t].double()), clip[0].double(), atol=1e-5, rtol=1e-5)
