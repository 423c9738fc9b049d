"""Compute cost of a Denoiser: multiply-accumulates per second of audio, and real-time factor on the CPU.

``macs_per_second`` counts with ``torch.utils.flop_counter.FlopCounterMode`` (which counts a multiply-add as
2 FLOPs, so MACs = FLOPs / 2) and replaces whatever it sees inside recurrent layers by an analytic count, because
FlopCounterMode only knows matmul and convolution kernels: on CPU a GRU / vanilla RNN decomposes into per-step
``addmm`` calls (counted), but an LSTM runs as one ``aten.mkldnn_rnn_layer`` call per layer (not counted: 0, torch
2.13), and FlopCounterMode has no formula for the fused cuDNN kernel (``aten._cudnn_rnn``) either. See
``macs_per_second`` for what is and is not included.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["macs_per_second", "real_time_factor", "recurrent_macs"]

_GATES = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}


def recurrent_macs(rnn: nn.RNNBase, steps: int) -> int:
    """Weight multiply-accumulates of `rnn` (nn.GRU / nn.LSTM / nn.RNN) over `steps` sequence elements (time steps
    summed over the batch), every layer and direction: per step, per layer, per direction
    ``gates * hidden * (input + hidden)`` (gates: GRU 3, LSTM 4, RNN 1; ``input`` is the layer's input width,
    ``num_directions * hidden`` above the first layer), plus ``hidden * proj_size`` for an LSTM with a projection
    (whose recurrent input is then ``proj_size`` wide). Biases and the gate nonlinearities / elementwise products
    are not counted."""
    gates = next((g for cls, g in _GATES.items() if isinstance(rnn, cls)), None)
    if gates is None:
        raise TypeError(f"unsupported recurrent module {type(rnn).__name__}")
    hidden = rnn.hidden_size
    proj = getattr(rnn, "proj_size", 0) or 0
    out = proj or hidden  # width of h_t: the recurrent input and the layer's output per direction
    directions = 2 if rnn.bidirectional else 1
    total = 0
    for layer in range(rnn.num_layers):
        width = rnn.input_size if layer == 0 else directions * out
        per_step = gates * hidden * (width + out) + hidden * proj
        total += directions * per_step
    return total * int(steps)


def _sequence_steps(rnn: nn.RNNBase, args: tuple, kwargs: dict) -> int:
    """Time steps summed over the batch of the input to an RNN forward."""
    x = args[0] if args else kwargs.get("input")
    if isinstance(x, PackedSequence):
        return int(x.batch_sizes.sum())
    if not isinstance(x, Tensor):
        raise TypeError(f"cannot read the sequence length of a {type(x).__name__} input to {type(rnn).__name__}")
    if x.dim() == 2:  # unbatched (T, features)
        return int(x.shape[0])
    return int(x.shape[0] * x.shape[1])  # (B, T, F) or (T, B, F): the product either way


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def macs_per_second(model: nn.Module, seconds: float = 1.0) -> float:
    """Multiply-accumulates that ``model``'s forward needs per second of audio at ``model.sample_rate``.

    Counted once on a ``(1, round(seconds * sample_rate))`` input in eval mode under ``torch.no_grad()`` and
    divided by the input's duration; the model's train/eval flags (every submodule's) are restored afterwards.
    For a model whose cost is linear in the length this is independent of ``seconds`` up to edge effects (STFT
    frames beyond the signal, padding to a stride multiple).

    Counted (weight MACs, FlopCounterMode's FLOPs / 2): convolutions of every kind (including grouped /
    depthwise, transposed, and the fixed-basis conv STFT / ISTFT of the spectral models — a DFT by matrix
    product, ``n_fft * (n_fft + 2)`` MACs a frame, which an FFT would do in far fewer), matmuls (``mm``, ``bmm``,
    ``addmm``, ``baddbmm``: ``nn.Linear`` and attention) and the recurrent layers ``nn.GRU`` / ``nn.LSTM`` /
    ``nn.RNN``, whose cost is computed analytically (``recurrent_macs``) from the sequence length each call sees
    and replaces whatever FlopCounterMode counted inside them, so the figure is the same on every device and
    backend. Not counted: biases, and every elementwise or reduction op — activations, normalisation
    (BatchNorm, GroupNorm, LayerNorm), masking, log / exp / sqrt, padding, concatenation — which are typically a
    few per cent of the MACs of a conv / RNN model but can dominate the wall time of a small one.
    """
    sample_rate = int(model.sample_rate)
    samples = max(1, round(float(seconds) * sample_rate))
    modes = {module: module.training for module in model.modules()}
    recurrent = [m for m in model.modules() if isinstance(m, tuple(_GATES))]
    counter = FlopCounterMode(display=False)
    stack: list[int] = []
    adjustment = 0  # FLOPs: analytic RNN count minus what the counter saw inside RNN calls

    def before(module: nn.RNNBase, args: tuple, kwargs: dict[str, Any]) -> None:
        stack.append(counter.get_total_flops())

    def after(module: nn.RNNBase, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        nonlocal adjustment
        seen = counter.get_total_flops() - stack.pop()
        adjustment += 2 * recurrent_macs(module, _sequence_steps(module, args, kwargs)) - seen

    handles = []
    try:
        for module in recurrent:
            handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(module.register_forward_hook(after, with_kwargs=True))
        model.eval()
        x = torch.zeros(1, samples, device=_model_device(model))
        x.normal_(generator=torch.Generator(device=x.device).manual_seed(0)).mul_(0.1)
        with torch.no_grad(), counter:
            model(x)
        flops = counter.get_total_flops() + adjustment
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return flops / 2 / (samples / sample_rate)


def real_time_factor(model: nn.Module, seconds: float = 4.0, threads: int = 1, repeats: int = 3) -> float:
    """Wall time of one inference forward (eval mode, ``torch.no_grad()``, batch 1) on ``seconds`` of audio,
    divided by ``seconds``: below 1 is faster than real time. Median of ``repeats`` timed runs after one
    warm-up, with ``torch.set_num_threads(threads)`` for the duration (restored afterwards, as are the model's
    train/eval flags). Runs on the model's device; on CUDA the device is synchronised around each run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sample_rate = int(model.sample_rate)
    samples = max(1, round(float(seconds) * sample_rate))
    device = _model_device(model)
    modes = {module: module.training for module in model.modules()}
    previous_threads = torch.get_num_threads()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    try:
        torch.set_num_threads(int(threads))
        model.eval()
        x = torch.zeros(1, samples, device=device)
        x.normal_(generator=torch.Generator(device=device).manual_seed(0)).mul_(0.1)
        times = []
        with torch.no_grad():
            model(x)  # warm-up
            for _ in range(int(repeats)):
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
        for module, training in modes.items():
            module.training = training
    return statistics.median(times) / (samples / sample_rate)
