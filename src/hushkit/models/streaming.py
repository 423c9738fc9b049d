"""Streaming inference: a causal spectral model (crnn, crced, gtcrn) run chunk by chunk, with a fixed latency.

``StreamingEnhancer(model).process(chunk)`` takes chunks of any size (1 sample, 10 ms, 37 samples, a second) and
returns exactly as many samples as it was given; ``flush()`` at the end returns the rest. The concatenated output
is the offline ``model(audio)`` delayed by ``latency`` samples (zeros first)::

    concat(process(c) for c in chunks) + flush() == concat(zeros(latency), model(audio))   (float rounding aside)

Latency: ``model.algorithmic_latency_samples``, one STFT window, ``n_fft`` samples (crnn, gtcrn: 512 = 32 ms at
16 kHz; crced: 256 = 16 ms). Why: output hop block ``j`` is the overlap-add of the frames covering it, the last of
which ends ``n_fft - 1`` samples after the block starts (``ConvSTFT``'s framing); a sample therefore waits up to
``n_fft - 1`` samples for its last frame, and a fixed delay of ``n_fft`` (the models' latency convention, which
counts the current sample) always has it ready, whatever the chunk boundaries.

The work is done by ``StreamingStep``, a torch module that takes whole hop blocks of input and every piece of
state as explicit tensors (the last ``n_fft - hop`` input samples, the overlap-add tail of the last frames, and
the model's own frame state: conv history, RNN state, from ``stream_state`` / ``enhance_spectrum_step``) and
returns as many finished output samples and the new state. The same module is exported as the single-file ONNX
step graph (``hushkit.models.onnx_export.export_streaming_step``). ``StreamingEnhancer`` adds what any chunk size
needs around it: the input not yet a whole hop block, and finished output waiting for its turn (the delay). Each is
bounded by a window plus one chunk, so memory does not grow with the stream.

The offline reference is exactly causal as built (the frames end with their hop block, the convs look back, the
RNNs over time are unidirectional), so streaming equals it, up to float rounding, including both ends: ``flush()``
appends ``ConvSTFT``'s right zero padding. Every output sample is normalised by the steady-state overlap-added
window, which is what ``ConvISTFT`` divides by too (every sample lies under ``n_fft // hop`` frames).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import Denoiser, SpectralMaskDenoiser


def streaming_models() -> list[str]:
    """Registered architectures that can stream with their default arguments."""
    from hushkit.models import available_models, build_model

    return [name for name in available_models() if getattr(build_model(name), "supports_streaming", False)]


def check_streamable(model: Denoiser) -> SpectralMaskDenoiser:
    if not (isinstance(model, SpectralMaskDenoiser) and model.supports_streaming):
        raise ValueError(f"model {getattr(model, 'name', type(model).__name__)!r} (with these arguments) cannot "
                         "stream: streaming needs a causal spectral model (crnn with causal=true, crced, gtcrn)")
    return model


class StreamingStep(nn.Module):
    """Whole hop blocks of input and the state → as many finished output samples and the new state.

    ``forward(samples (B, M * hop), input_history, output_tail, *model_state)`` returns
    ``(output (B, M * hop), input_history, output_tail, *model_state)`` (the new state); ``initial_state(B)`` is the
    state before the first sample: ``input_history`` (B, n_fft - hop), the last input samples (starting as
    ``ConvSTFT``'s left zero padding), ``output_tail`` (B, n_fft - hop), the overlap-add of the frames so far past
    the finished samples, then ``model.stream_state(B)``.

    Output block ``k`` (each hop of the output) is the offline output at input positions
    ``k * hop - (n_fft - hop)`` onwards: the output runs ``n_fft - hop`` samples behind the hop blocks, and the
    first ``n_fft - hop`` output samples (before the signal starts) are ``ConvISTFT``'s cropped padding.
    """

    def __init__(self, model: SpectralMaskDenoiser):
        super().__init__()
        self.model = model
        self.n_fft, self.hop = model.n_fft, model.hop
        self.overlap = self.n_fft - self.hop
        # Steady-state normalisation of the overlap-add, per position in a hop block (as ConvISTFT's, which is
        # the same sum wherever every sample lies under n_fft // hop frames, i.e. everywhere it keeps).
        product = model.istft.window_product.reshape(-1)
        self.register_buffer("norm", product.reshape(-1, self.hop).sum(0).clamp_min(model.istft.eps),
                             persistent=False)

    def initial_state(self, batch: int) -> list[Tensor]:
        ref = self.norm
        return [ref.new_zeros(batch, self.overlap), ref.new_zeros(batch, self.overlap),
                *self.model.stream_state(batch)]

    def forward(self, samples: Tensor, input_history: Tensor, output_tail: Tensor, *model_state: Tensor
                ) -> tuple[Tensor, ...]:
        model, hop, overlap = self.model, self.hop, self.overlap
        frames = samples.shape[1] // hop
        segment = torch.cat([input_history, samples], dim=1)  # frame k ends with hop block k
        input_history = segment[:, segment.shape[1] - overlap :]
        spec = F.conv1d(segment[:, None], model.stft.basis, stride=hop)
        noisy_real, noisy_imag = spec[:, : model.n_bins], spec[:, model.n_bins :]
        real, imag, model_state = model.enhance_spectrum_step(noisy_real, noisy_imag, list(model_state))
        real, imag = model.limit_attenuation(real, noisy_real), model.limit_attenuation(imag, noisy_imag)
        wave = F.conv_transpose1d(torch.cat([real, imag], dim=1), model.istft.basis, stride=hop)[:, 0]
        wave = torch.cat([wave[:, :overlap] + output_tail, wave[:, overlap:]], dim=1)
        output = wave[:, : frames * hop] / self.norm.repeat(frames)
        return (output, input_history, wave[:, frames * hop :], *model_state)


class StreamingEnhancer:
    """Chunk in, same-size chunk out, ``latency`` samples behind; see the module docstring.

    Chunks are (samples,) for one stream or (streams, samples) for several at once (e.g. the channels of a file;
    their count is fixed by the first chunk). Puts the model in eval mode (BatchNorm running statistics).
    """

    def __init__(self, model: Denoiser):
        self.model = check_streamable(model).eval()
        self.step = StreamingStep(self.model)
        self.n_fft, self.hop = self.model.n_fft, self.model.hop
        self.latency = int(self.model.algorithmic_latency_samples)
        self.sample_rate = self.model.sample_rate
        ref = self.model.input_mean
        self._device, self._dtype = ref.device, ref.dtype
        self._streams: int | None = None
        self._squeeze = False
        self._received = self._emitted = 0

    @property
    def latency_seconds(self) -> float:
        return self.latency / self.sample_rate

    def _start(self, streams: int) -> None:
        self._streams = streams
        self._pending = torch.zeros(streams, 0, device=self._device, dtype=self._dtype)  # less than a hop block
        self._state = self.step.initial_state(streams)
        self._skip = self.n_fft - self.hop  # the first finished samples are ConvISTFT's cropped left padding
        self._ready = torch.zeros(streams, self.latency, device=self._device, dtype=self._dtype)  # the delay

    def _as_batch(self, chunk: np.ndarray | Tensor) -> Tensor:
        x = torch.as_tensor(np.asarray(chunk, dtype=np.float32) if not isinstance(chunk, Tensor) else chunk)
        squeeze = x.dim() == 1
        x = x[None] if squeeze else x
        if x.dim() != 2:
            raise ValueError(f"a chunk must be (samples,) or (streams, samples), got shape {tuple(x.shape)}")
        if self._streams is None:
            self._start(x.shape[0])
            self._squeeze = squeeze
        elif x.shape[0] != self._streams:
            raise ValueError(f"this stream has {self._streams} channel(s); got a chunk with {x.shape[0]}")
        return x.to(self._device, self._dtype)

    @torch.no_grad()
    def _run_frames(self) -> None:
        """Every whole hop block of pending input → the step → finished samples into `ready`."""
        frames = self._pending.shape[1] // self.hop
        if frames < 1:
            return
        done, *self._state = self.step(self._pending[:, : frames * self.hop], *self._state)
        self._pending = self._pending[:, frames * self.hop :]
        if self._skip:
            cut = min(self._skip, done.shape[1])
            done, self._skip = done[:, cut:], self._skip - cut
        self._ready = torch.cat([self._ready, done], dim=1)

    def _emit(self, count: int) -> np.ndarray:
        out, self._ready = self._ready[:, :count], self._ready[:, count:]
        self._emitted += out.shape[1]
        out = out.cpu().numpy()
        return out[0] if self._squeeze else out

    def process(self, chunk: np.ndarray | Tensor) -> np.ndarray:
        """Enhance the next `chunk`; returns as many samples, `latency` samples behind the input."""
        x = self._as_batch(chunk)
        self._received += x.shape[1]
        self._pending = torch.cat([self._pending, x], dim=1)
        self._run_frames()
        return self._emit(x.shape[1])

    def flush(self) -> np.ndarray:
        """End of stream: the last `latency` samples (the output then covers the input's length plus latency).
        The enhancer is reset and can take a new stream."""
        if self._streams is None:
            return np.zeros(0, np.float32)
        if self._received:
            # ConvSTFT's right padding: zeros up to the end of the last frame that starts within the signal.
            right = self.n_fft - 1 - (self._received - 1) % self.hop
            self._pending = torch.cat([self._pending, self._pending.new_zeros(self._streams, right)], dim=1)
            self._run_frames()
        out = self._emit(self._received + self.latency - self._emitted)
        self._streams, self._received, self._emitted = None, 0, 0
        return out


def stream_enhance(model: Denoiser, audio: np.ndarray, chunk: int) -> np.ndarray:
    """`audio` ((T,) or (streams, T)) through a StreamingEnhancer in chunks of `chunk` samples, latency removed:
    aligned with (and, for a causal model, equal to) the offline ``model(audio)``."""
    streamer = StreamingEnhancer(model)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[-1] == 0:
        return audio.copy()
    parts = [streamer.process(audio[..., start : start + chunk]) for start in range(0, audio.shape[-1], chunk)]
    parts.append(streamer.flush())
    return np.concatenate(parts, axis=-1)[..., streamer.latency :]
