"""CR-CED: Cascaded Redundant Convolutional Encoder-Decoder (Park & Lee 2016, arXiv 1609.07132,
"A Fully Convolutional Neural Network for Speech Enhancement").

As in the paper:

* fully convolutional and "redundant": no pooling or striding, the frequency axis keeps its full resolution
  through every layer; each layer is conv → BatchNorm → ReLU;
* "cascaded": a block of conv layers with filter counts ``filters`` (18, 30, 8) and frequency widths ``widths``
  (9, 5, 9) repeated ``repeats`` times (paper: 5; our default 1, for CPU training speed: see ``CRCED``), then
  one output conv with a single filter (frequency width ``out_width``);
* the input is ``context`` (8) consecutive noisy magnitude frames: a 2-D conv over (frequency, time) whose first
  layer spans ``context`` frames in time (causal: the current frame and the ``context - 1`` before it), all later
  layers width 1 in time, so each output frame sees only its own context window;
* skip connections between corresponding layers (our reading of the paper's wiring): the output of layer j of
  a repeat is added to the output of layer j of the next repeat (same shape), which keeps the cascade trainable;
* the noisy phase is used for reconstruction.

Our variant: features are log power, log(|STFT|^2), normalised per frequency (``input_mean``/``input_std``, learnt once by
``prepare``), and the output layer is a sigmoid mask in [0, 1] on the noisy complex spectrum, inverted by a
conv-transpose ISTFT inside the model (waveform in, waveform out, one ONNX graph).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import SpectralMaskDenoiser, capture_init, register_model


class _ConvBNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, freq_width: int, time_width: int = 1):
        super().__init__()
        self.time_width = time_width
        # BatchNorm follows, so the conv bias would be redundant.
        self.conv = nn.Conv2d(in_channels, out_channels, (freq_width, time_width), padding=(freq_width // 2, 0),
                              bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.time_width == 1:
            return F.relu(self.norm(self.conv(x)), inplace=True)
        # Causal context: pad past frames only. The (freq x time) kernel is applied as a width-1-in-time conv over
        # the `time_width` shifted copies stacked as channels: the same sums, ~1.6x faster on CPU than a conv
        # whose input has one channel (oneDNN handles that case poorly).
        kt, frames = self.time_width, x.shape[-1]
        padded = F.pad(x, (kt - 1, 0))
        stacked = torch.stack([padded[..., dt : dt + frames] for dt in range(kt)], dim=2)  # (B, C, kt, F, frames)
        stacked = stacked.flatten(1, 2).contiguous(memory_format=torch.channels_last)
        w = self.conv.weight  # (out, in, kf, kt) -> (out, in * kt, kf, 1)
        w = w.permute(0, 1, 3, 2).reshape(w.shape[0], -1, w.shape[2], 1)
        return F.relu(self.norm(F.conv2d(stacked, w, padding=self.conv.padding)), inplace=True)


@register_model("crced")
class CRCED(SpectralMaskDenoiser):
    """Cascaded redundant convolutional encoder-decoder producing a spectral mask (see the module docstring).

    Defaults: the paper's layer shapes (filters 18-30-8, widths 9-5-9, 8 context frames) but ``repeats=1``
    (6.3k parameters) and ``hop=128`` (50 % overlap), to keep a CPU training step cheap. The paper's full
    cascade is ``repeats=5`` (31.4k parameters, about five times the cost); ``hop=64`` doubles the frames and the
    cost. On CPU the cost is dominated by memory traffic of the
    full-resolution activations (BatchNorm, ReLU), and oneDNN pads channels to multiples of 16, so e.g.
    ``filters=(16, 16, 8), repeats=2`` costs about the same as one paper block.
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 256,
        hop: int = 128,
        context: int = 8,
        filters: Sequence[int] = (18, 30, 8),
        widths: Sequence[int] = (9, 5, 9),
        repeats: int = 1,
        out_width: int = 9,
        window: str = "sqrt_hann",
    ):
        super().__init__(sample_rate=sample_rate, n_fft=n_fft, hop=hop, window=window)
        filters, widths = [int(f) for f in filters], [int(w) for w in widths]
        if not filters or len(filters) != len(widths):
            raise ValueError(f"filters {filters} and widths {widths} must be non-empty and of equal length")
        if any(w < 1 or w % 2 == 0 for w in [*widths, out_width]):
            raise ValueError(f"frequency widths must be odd (symmetric 'same' padding), got {widths}, {out_width}")
        if any(f < 1 for f in filters) or repeats < 1 or context < 1:
            raise ValueError("filters, repeats and context must be positive")
        self.context, self.repeats = int(context), int(repeats)
        layers, in_channels = [], 1
        for r in range(self.repeats):
            for j, (out_channels, width) in enumerate(zip(filters, widths)):
                time_width = self.context if (r == 0 and j == 0) else 1
                layers.append(_ConvBNReLU(in_channels, out_channels, width, time_width))
                in_channels = out_channels
        self.layers = nn.ModuleList(layers)
        self.block = len(filters)
        self.output = nn.Conv2d(in_channels, 1, (out_width, 1), padding=(out_width // 2, 0))

    @property
    def supports_streaming(self) -> bool:
        return True  # the first layer looks `context - 1` frames back, every later layer at its own frame only

    def stream_state(self, batch: int) -> list[Tensor]:
        """The last ``context - 1`` normalised feature frames (B, F, context - 1); zeros = the offline padding."""
        return [self.input_mean.new_zeros(batch, self.n_bins, self.context - 1)]

    def estimate_mask_step(self, features: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        past = self.context - 1
        x = torch.cat([state[0], features], dim=-1)
        # Masks of the first `past` frames (computed over zero padding) belong to earlier blocks: dropped.
        return self.estimate_mask(x)[..., past:], [x[..., x.shape[-1] - past :]]

    def estimate_mask(self, features: Tensor) -> Tensor:
        # (B, 1, F, frames); channels-last runs the small-channel convs ~2x faster on CPU (no-op in ONNX).
        x = features[:, None].contiguous(memory_format=torch.channels_last)
        previous: list[Tensor] = []
        for r in range(self.repeats):
            current = []
            for j in range(self.block):
                x = self.layers[r * self.block + j](x)
                if r > 0:
                    x = x + previous[j]
                current.append(x)
            previous = current
        return torch.sigmoid(self.output(x))[:, 0]
