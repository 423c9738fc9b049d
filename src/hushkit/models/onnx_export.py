"""ONNX export of any Denoiser as one waveform→waveform graph, and a torch-vs-onnxruntime parity check; and of a
streamable model's one-hop streaming step as its own graph, with every piece of state as explicit tensors.

The offline graph takes ``noisy`` (batch, samples) float32 and returns ``enhanced`` (batch, samples); both axes
are dynamic (another waveform model names its own input and output: a tagger's graph, hushkit.tagging.export). STFT
models export as plain Conv / ConvTranspose nodes (see ``stft.py``), so one file holds everything. The step graph is
described at ``export_streaming_step``.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from hushkit import __version__
from hushkit.io import atomic_path

INPUT, OUTPUT = "noisy", "enhanced"
AXES = {0: "batch", 1: "samples"}
STEP_INPUT, STEP_OUTPUT = "samples", "enhanced"
NEXT = "next_"  # prefix of a state output: the same tensor for the next call


def _device(model: torch.nn.Module) -> torch.device:
    return next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))


def _export(module: torch.nn.Module, model: torch.nn.Module, args: tuple, path: Path, opset: int,
            input_names: list[str], output_names: list[str], dynamic_axes: dict,
            metadata: dict[str, str] | None = None) -> Path:
    """Trace `module` (which runs `model`, put in eval mode meanwhile) on `args` into one checked ONNX file."""
    was_training = model.training
    model.eval()
    try:
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about size arithmetic it records symbolically; parity on a new length checks it.
            # The RNN exporter warns about batch sizes when the initial state is not an input: every hushkit
            # model builds it from the input's batch size, and the parity tests run other batch sizes.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1",
                                    category=UserWarning)
            torch.onnx.export(module, args, buffer, dynamo=False, opset_version=opset, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    finally:
        model.train(was_training)
    graph = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    with atomic_path(path) as tmp:
        onnx.save(graph, str(tmp))
    return path


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, opset: int = 17, example_seconds: float = 1.0,
                input_name: str = INPUT, output_name: str = OUTPUT, output_axes: dict[int, str] | None = None,
                metadata: dict[str, str] | None = None) -> Path:
    """Export `model` (in eval mode), a waveform (batch, samples) model, to a single self-contained ONNX file at
    `path`, atomically, with `metadata` in its metadata_props. The output's dynamic axes are `output_axes` (default:
    batch and samples, a waveform's)."""
    rate = int(getattr(model, "sample_rate", 16000))
    example = torch.randn(2, max(1, int(round(example_seconds * rate))), generator=torch.Generator().manual_seed(0))
    return _export(model, model, (example.to(_device(model)),), Path(path), opset, [input_name], [output_name],
                   {input_name: AXES, output_name: AXES if output_axes is None else output_axes}, metadata)


def checkpoint_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """What an ONNX graph needs to be used alone, from its checkpoint's `meta` (hushkit.models.load_checkpoint):
    its sample rate and where it came from (the model, its arguments, the hushkit version)."""
    return {"sample_rate": str(meta["sample_rate"]), "model": meta["model"], "hushkit": __version__,
            "args": json.dumps(meta["args"], sort_keys=True)}


def step_state_names(model_states: int) -> list[str]:
    """Names of the step graph's state inputs; each output is the same name prefixed with ``next_``."""
    return ["input_history", "output_tail", *(f"model_state_{i}" for i in range(model_states))]


def export_streaming_step(model: torch.nn.Module, path: str | os.PathLike, *, opset: int = 17) -> Path:
    """Export the streaming step of a streamable model (``hushkit.models.streaming.StreamingStep``: the same module
    ``StreamingEnhancer`` runs) as one self-contained ONNX graph at `path`, atomically.

    One call takes the next hop of input and the state, and returns a hop of output and the new state:

    inputs
        ``samples`` (batch, hop) float32: the next ``hop`` input samples of each stream;
        ``input_history`` (batch, n_fft - hop): the input samples before them;
        ``output_tail`` (batch, n_fft - hop): the overlap-add of earlier frames not yet finished;
        ``model_state_0``, ``model_state_1``, ...: the model's frame state, in the order and shapes of
        ``model.stream_state(batch)`` (conv histories, RNN states; see the model's docstring).
    outputs
        ``enhanced`` (batch, hop): finished output samples;
        ``next_input_history``, ``next_output_tail``, ``next_model_state_0``, ...: the state for the next call.

    Every state input starts as zeros (its shape is in the graph, with ``batch`` the only dynamic axis). The
    output runs ``n_fft - hop`` samples behind the input blocks: call ``k``'s output is the offline model's output
    at input positions ``k * hop - (n_fft - hop)`` onwards, so the first ``n_fft - hop`` output samples come before
    the signal (drop them), and after the last input, hops of zeros bring out the rest (``run_streaming_step``
    does both). The file's metadata (``metadata_props``) holds ``sample_rate``, ``hop``, ``n_fft``,
    ``output_delay_samples`` (n_fft - hop), ``model`` and ``args`` (JSON).
    """
    from hushkit.models.streaming import StreamingStep, check_streamable

    model = check_streamable(model)
    step = StreamingStep(model)
    device = _device(model)
    state = [t.to(device) for t in step.initial_state(2)]
    names = step_state_names(len(state) - 2)
    axes = {STEP_INPUT: {0: "batch"}, STEP_OUTPUT: {0: "batch"}}
    for name, one, two in zip(names, step.initial_state(1), state):
        batch_axes = [axis for axis, (a, b) in enumerate(zip(one.shape, two.shape)) if a != b]
        if len(one.shape) != len(two.shape) or [(one.shape[a], two.shape[a]) for a in batch_axes] != [(1, 2)]:
            raise ValueError(f"{type(model).__name__}: stream state {name!r} has no single batch axis "
                             f"(shapes {tuple(one.shape)} for batch 1, {tuple(two.shape)} for batch 2)")
        axes[name] = axes[NEXT + name] = {batch_axes[0]: "batch"}
    samples = torch.randn(2, model.hop, generator=torch.Generator().manual_seed(0)).to(device)
    metadata = {"sample_rate": str(model.sample_rate), "hop": str(model.hop), "n_fft": str(model.n_fft),
                "output_delay_samples": str(model.n_fft - model.hop), "model": str(model.name),
                "args": json.dumps(model.config, sort_keys=True)}
    return _export(step, model, (samples, *state), Path(path), opset, [STEP_INPUT, *names],
                   [STEP_OUTPUT, *(NEXT + name for name in names)], axes, metadata)


def onnx_session(onnx_path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session; `threads` intra-op threads (None: onnxruntime's default, every core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def onnx_parity(model: torch.nn.Module, onnx_path: str | os.PathLike, audio: np.ndarray, *, input_name: str = INPUT,
                output_name: str = OUTPUT) -> float:
    """Max |torch - onnxruntime| of the output for `audio` ((T,) or (B, T)); run it on a length other than the
    export example's to show the time axis is really dynamic."""
    batch = np.asarray(audio, dtype=np.float32)
    if batch.ndim == 1:
        batch = batch[None]
    if batch.ndim != 2:
        raise ValueError(f"audio must be (samples,) or (batch, samples), got shape {batch.shape}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(torch.from_numpy(batch).to(_device(model))).cpu().numpy()
    finally:
        model.train(was_training)
    (got,) = onnx_session(onnx_path).run([output_name], {input_name: batch})
    if got.shape != expected.shape:
        raise ValueError(f"{onnx_path}: ONNX output shape {got.shape} != torch output shape {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected))) if expected.size else 0.0


def run_streaming_step(onnx_path: str | os.PathLike, audio: np.ndarray) -> np.ndarray:
    """`audio` ((T,) or (B, T)) through a step graph of ``export_streaming_step`` one hop per call, in
    onnxruntime: zero initial state, zeros after the end, the output delay dropped, so the result lines up with
    (and equals, up to float rounding) the offline ``model(audio)``."""
    batch = np.asarray(audio, dtype=np.float32)
    squeeze = batch.ndim == 1
    batch = batch[None] if squeeze else batch
    session = onnx_session(onnx_path, threads=1)  # a hop's work is too small to share between threads
    meta = session.get_modelmeta().custom_metadata_map
    hop, delay = int(meta["hop"]), int(meta["output_delay_samples"])
    streams, length = batch.shape
    state = {value.name: np.zeros([streams if isinstance(d, str) else d for d in value.shape], np.float32)
             for value in session.get_inputs() if value.name != STEP_INPUT}
    names = list(state)
    calls = -(-(length + delay) // hop)  # enough hops to bring out the last sample
    padded = np.concatenate([batch, np.zeros((streams, calls * hop - length), np.float32)], axis=1)
    outputs = []
    for call in range(calls):
        enhanced, *new_state = session.run([STEP_OUTPUT, *(NEXT + n for n in names)],
                                           {STEP_INPUT: padded[:, call * hop : (call + 1) * hop], **state})
        outputs.append(enhanced)
        state = dict(zip(names, new_state))
    out = np.concatenate(outputs, axis=1)[:, delay : delay + length]
    return out[0] if squeeze else out
