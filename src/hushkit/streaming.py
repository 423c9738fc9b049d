"""Streaming inference: a causal spectral-mask model (crnn, crced) run chunk by chunk, with a fixed latency.

``StreamingEnhancer(model).process(chunk)`` takes chunks of any size (1 sample, 10 ms, 37 samples, a second) and
returns exactly as many samples as it was given; ``flush()`` at the end returns the rest. The concatenated output
is the offline ``model(audio)`` delayed by ``latency`` samples (zeros first)::

    concat(process(c) for c in chunks) + flush() == concat(zeros(latency), model(audio))   (float rounding aside)

Latency: ``model.algorithmic_latency_samples``, one STFT window, ``n_fft`` samples (crnn: 512 = 32 ms at 16 kHz;
crced: 256 = 16 ms). Why: output hop block ``j`` is the overlap-add of the frames covering it, the last of which
ends ``n_fft - 1`` samples after the block starts (``ConvSTFT``'s framing); a sample therefore waits up to
``n_fft - 1`` samples for its last frame, and a fixed delay of ``n_fft`` (the models' latency convention, which
counts the current sample) always has it ready, whatever the chunk boundaries.

State carried between chunks: the input samples not yet in a complete frame (plus the window's overlap, which
starts as ``ConvSTFT``'s left zero padding), the model's frame state (conv history, RNN state: the model's
``stream_state`` / ``estimate_mask_step``), the overlap-add tail of the last frames, and finished output waiting
for its turn. Each is bounded by a window plus one chunk, so memory does not grow with the stream.

The offline reference is exactly causal as built (the frames end with their hop block, the convs look back, the
RNN is unidirectional), so streaming equals it, up to float rounding, including both ends: ``flush()`` appends
``ConvSTFT``'s right zero padding. Every output sample is normalised by the steady-state overlap-added window,
which is what ``ConvISTFT`` divides by too (every sample lies under ``n_fft // hop`` frames).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hushkit.models.base import Denoiser, SpectralMaskDenoiser


def streaming_models() -> list[str]:
    """Registered architectures that can stream with their default arguments."""
    from hushkit.models import available_models, build_model

    return [name for name in available_models() if getattr(build_model(name), "supports_streaming", False)]


def check_streamable(model: Denoiser) -> SpectralMaskDenoiser:
    if not (isinstance(model, SpectralMaskDenoiser) and model.supports_streaming):
        raise ValueError(f"model {getattr(model, 'name', type(model).__name__)!r} (with these arguments) cannot "
                         "stream: streaming needs a causal spectral-mask model (crnn with causal=true, crced)")
    return model


class StreamingEnhancer:
    """Chunk in, same-size chunk out, ``latency`` samples behind; see the module docstring.

    Chunks are (samples,) for one stream or (streams, samples) for several at once (e.g. the channels of a file;
    their count is fixed by the first chunk). Puts the model in eval mode (BatchNorm running statistics).
    """

    def __init__(self, model: Denoiser):
        self.model = check_streamable(model).eval()
        self.n_fft, self.hop = self.model.n_fft, self.model.hop
        self.latency = int(self.model.algorithmic_latency_samples)
        self.sample_rate = self.model.sample_rate
        ref = self.model.input_mean
        self._device, self._dtype = ref.device, ref.dtype
        # Steady-state normalisation of the overlap-add, per position in a hop block (as ConvISTFT's, which is
        # the same sum wherever every sample lies under n_fft // hop frames, i.e. everywhere it keeps).
        product = self.model.istft.window_product.reshape(-1)
        self._norm = product.reshape(-1, self.hop).sum(0).clamp_min(self.model.istft.eps)
        self._streams: int | None = None
        self._squeeze = False
        self._received = self._emitted = 0

    @property
    def latency_seconds(self) -> float:
        return self.latency / self.sample_rate

    def _start(self, streams: int) -> None:
        self._streams = streams
        self._pending = torch.zeros(streams, self.n_fft - self.hop, device=self._device, dtype=self._dtype)
        self._tail = self._pending.clone()  # overlap-add of frames so far, not yet complete
        self._skip = self.n_fft - self.hop  # the first completed samples are ConvISTFT's cropped left padding
        self._ready = torch.zeros(streams, self.latency, device=self._device, dtype=self._dtype)  # the delay
        self._state = self.model.stream_state(streams)

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
        """Every complete frame in the pending input → model → overlap-add → finished samples into `ready`."""
        n_fft, hop = self.n_fft, self.hop
        frames = (self._pending.shape[1] - (n_fft - hop)) // hop
        if frames < 1:
            return
        segment = self._pending[:, : (frames - 1) * hop + n_fft]
        self._pending = self._pending[:, frames * hop :]
        model = self.model
        spec = F.conv1d(segment[:, None], model.stft.basis, stride=hop)
        real, imag = spec[:, : model.n_bins], spec[:, model.n_bins :]
        mask, self._state = model.estimate_mask_step(model.normalise(model._log_magnitude(real, imag)), self._state)
        wave = F.conv_transpose1d(torch.cat([real * mask, imag * mask], dim=1), model.istft.basis, stride=hop)[:, 0]
        wave[:, : n_fft - hop] += self._tail
        done, self._tail = wave[:, : frames * hop], wave[:, frames * hop :]
        done = done / self._norm.repeat(frames)
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
