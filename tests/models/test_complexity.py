"""MAC counting and real-time factor (hushkit.models.complexity), for every registered model and hand-checked cases."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hushkit.models import Denoiser, build_model, capture_init
from hushkit.models.complexity import macs_per_second, real_time_factor, recurrent_macs
from tests.models.test_models import CONFIGS, IDS


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny workloads: one intra-op thread is faster than two contending ones (and keeps the other core free)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(name: str, kwargs: dict) -> Denoiser:
    torch.manual_seed(0)
    return build_model(name, **kwargs)


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


def _hooks(model: nn.Module) -> dict[str, tuple[int, int]]:
    return {name: (len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in model.named_modules()}


class _OneConv(Denoiser):
    """One Conv1d(1 -> 4, kernel 5, 'same' padding), channels averaged (a reduction: not counted)."""

    @capture_init
    def __init__(self, sample_rate: int = 8000):
        super().__init__(sample_rate=sample_rate)
        self.conv = nn.Conv1d(1, 4, 5, padding=2)

    def forward(self, noisy):
        return self.conv(noisy[:, None]).mean(dim=1)


class _Recurrent(Denoiser):
    """Blocks of 4 samples through a 2-layer bidirectional GRU/LSTM (hidden 6) and a Linear(12 -> 4) back."""

    @capture_init
    def __init__(self, sample_rate: int = 8000, rnn: str = "gru"):
        super().__init__(sample_rate=sample_rate)
        cls = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = cls(4, 6, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(12, 4)

    def forward(self, noisy):
        x, _ = self.rnn(noisy.reshape(noisy.shape[0], -1, 4))
        return self.out(x).reshape(noisy.shape)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_macs_are_positive_finite_and_linear_in_length(name, kwargs):
    model = _model(name, kwargs)
    one, two = macs_per_second(model, 1.0), macs_per_second(model, 2.0)
    assert math.isfinite(one) and one > 0
    # Per second of audio: the same for 1 s and 2 s (i.e. MACs(2 s) ~ 2 x MACs(1 s)) up to edge frames / padding.
    assert two == pytest.approx(one, rel=0.05), (one, two)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("train", [True, False])
def test_counting_leaves_the_model_unchanged(name, kwargs, train):
    model = _model(name, kwargs).train(train)
    children = list(model.children())
    if train and children:  # a mixed state must survive too
        children[0].eval()
    modes = _modes(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = _hooks(model)
    macs_per_second(model, 0.25)
    real_time_factor(model, seconds=0.1, repeats=1)
    assert _modes(model) == modes
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert _hooks(model) == hooks


def test_one_conv_by_hand():
    model = _OneConv(sample_rate=8000)
    # 0.5 s at 8 kHz = 4000 samples, 'same' padding: 4000 outputs x 4 channels x 1 input channel x 5 taps,
    # per 0.5 s; the bias and the channel mean are not counted.
    assert macs_per_second(model, 0.5) == 4000 * 4 * 1 * 5 / 0.5 == 160_000
    assert macs_per_second(model, 1.0) == 8000 * 4 * 5


@pytest.mark.parametrize("rnn,gates", [("gru", 3), ("lstm", 4)])
def test_recurrent_by_formula(rnn, gates):
    model = _Recurrent(sample_rate=400, rnn=rnn)
    steps = 400 // 4  # 1 s, blocks of 4 samples, batch 1
    # per step, per direction: gates * hidden * (input + hidden); layer 0 input 4, layer 1 input 2 x 6.
    per_step = 2 * gates * 6 * (4 + 6) + 2 * gates * 6 * (12 + 6)
    linear = 12 * 4
    assert recurrent_macs(model.rnn, steps) == per_step * steps
    assert macs_per_second(model, 1.0) == (per_step + linear) * steps


def test_gru_formula_matches_the_counted_cpu_decomposition():
    # On CPU, nn.GRU runs as per-step addmm calls that FlopCounterMode counts: an independent check of the formula.
    from torch.utils.flop_counter import FlopCounterMode

    gru = nn.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 11, 5)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        gru(x)
    assert counter.get_total_flops() == 2 * recurrent_macs(gru, 3 * 11)


def test_lstm_projection_is_counted():
    lstm = nn.LSTM(5, 8, proj_size=3)
    # layer 0 only: 4 gates x 8 x (5 + 3) + 8 x 3 projection, per step
    assert recurrent_macs(lstm, 10) == (4 * 8 * (5 + 3) + 8 * 3) * 10


def test_real_time_factor_restores_threads():
    model = _OneConv(sample_rate=8000)
    before = torch.get_num_threads()
    rtf = real_time_factor(model, seconds=0.5, threads=2 if before == 1 else 1, repeats=2)
    assert math.isfinite(rtf) and 0 < rtf < 1  # one small conv over 0.5 s of audio
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="repeats"):
        real_time_factor(model, repeats=0)
