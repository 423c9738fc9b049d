"""GTCRN: grouped temporal convolutional recurrent network (after Rong et al., ICASSP 2024, "GTCRN: a speech
enhancement model requiring ultralow computational resources"), a causal complex-mask model of some 25k
parameters.

Data flow per STFT frame (512 / hop 256, sqrt-Hann, through ``ConvSTFT`` / ``ConvISTFT``: one ONNX graph):

* **Input features**, 3 channels per bin: the normalised log power (``input_mean`` / ``input_std`` per bin, learnt
  by ``prepare``, as in every ``SpectralMaskDenoiser``) and the real and imaginary parts power-law compressed
  (``X |X|^(c - 1)``, c = 0.3). The paper feeds magnitude, real and imaginary parts; the normalised log power and
  the compression make the input well scaled whatever the recording level.
* **ERB band merging** (fixed buffers, not trained): the low ``low_bins`` (65) bins are kept, the upper 192 are
  merged into ``erb_bands`` (64) bands with triangular filters equally spaced on the ERB-rate scale (129 bands).
  The inverse matrix interpolates band values back to bins (its rows sum to 1, so a flat band mask stays flat).
  Both are applied in banded form (each band or bin only touches its few neighbours; see ``banded``).
* **Subband feature extraction** (SFE): each band is stacked with its two neighbours (kernel 3), channels x 3.
* **Encoder**: two conv blocks (kernel 5 over bands, stride 2: 129 → 65 → 33; the second grouped in 2), then
  grouped temporal convolution blocks (GTConv) with time dilations ``dilations`` (1, 2, 5). A GTConv splits its
  channels in two; one half goes through SFE → point-wise conv → depthwise 3x3 conv, dilated and causal in time
  → point-wise conv → temporal recurrent attention (TRA: per-channel frame energy → recurrent layer → sigmoid
  gain); the halves are concatenated and shuffled (interleaved), so the next block mixes both.
* **Grouped dual-path RNN** x ``rnn_layers`` (2): an intra-frame bidirectional RNN over the bands of each frame
  and an inter-frame unidirectional RNN over time for each band, each split into 2 groups of channels with their
  own RNN, followed by a linear layer, LayerNorm over (bands, channels) and a residual connection.
* **Decoder**: the GTConvs in reverse dilation order, then two transposed conv blocks back to 129 bands and 2
  channels (tanh), with the encoder outputs added at each level (skip connections).
* **Complex ratio mask**: the 2 channels through the inverse ERB matrix are the real and imaginary parts of a
  mask for all 257 bins, applied to the noisy complex spectrum by complex multiplication. It is initialised near
  the real mask 0.5 (see ``GTCRN.__init__``).

Recurrent layers: the paper's are GRUs (``rnn="gru"``); ours default to LSTMs (``rnn="lstm"``) because torch runs a
CPU LSTM layer as one fused oneDNN kernel and a GRU step by step, op by op. At these sizes the LSTMs make the
inference forward, the per-hop streaming step and the training step faster, and a short CPU training reach a
better model in the same time; they cost a third more recurrent MACs and parameters.

Causal in time: every conv looks back only (the depthwise convs carry ``2 * dilation`` past frames), the
normalisations are per frame (BatchNorm in eval mode, LayerNorm over one frame), the inter-frame RNNs and TRA run
forward in time. So a mask frame depends on its own and earlier STFT frames; the latency is one window.

Streaming: the whole network is written as a step over the next M >= 1 frames with explicit state
(``stream_state``, ``enhance_spectrum_step``); the offline forward is that step over all frames from the initial
state, so streaming and offline are one implementation. State (every tensor batch-first), in module order: per
encoder GTConv its depthwise conv's input history (B, C, 2 * dilation, 33) and its TRA state, (B, C) h and c
(LSTM) or h (GRU); per dual-path block the inter-frame RNN state of both groups side by side, (B, 33, C) h and c
or h; then the decoder GTConvs like the encoder's (C = ``channels``, 33 bands with the defaults).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import SpectralMaskDenoiser, capture_init, register_model

COMPRESSION = 0.3  # power-law exponent of the real / imaginary input features
RNNS = ("lstm", "gru")  # choices of every recurrent layer
GROUPS = 2  # channel groups of the GTConv split, the grouped conv and the grouped RNNs


def _erb_rate(hz: np.ndarray) -> np.ndarray:
    """Glasberg & Moore's ERB-rate scale (Cams)."""
    return 21.4 * np.log10(1.0 + 0.00437 * hz)


def _erb_rate_to_hz(rate: np.ndarray) -> np.ndarray:
    return (10.0 ** (rate / 21.4) - 1.0) / 0.00437


def erb_matrices(n_bins: int, low_bins: int, bands: int, sample_rate: int) -> tuple[Tensor, Tensor]:
    """(merge (bands, high), split (high, bands)) for the ``high = n_bins - low_bins`` upper bins.

    Band centres are equally spaced on the ERB-rate scale from bin ``low_bins`` to the Nyquist bin; ``split`` is the
    piecewise-linear interpolation from the centres to every bin (triangular filters, each bin's weights sum to 1);
    ``merge`` is ``split`` transposed with each band's weights normalised to sum to 1 (a weighted average).
    """
    high = n_bins - low_bins
    if not 2 <= bands <= high:
        raise ValueError(f"erb_bands must be between 2 and the {high} bins above low_bins, got {bands}")
    bin_hz = sample_rate / (2.0 * (n_bins - 1))
    rates = np.linspace(_erb_rate(np.array(low_bins * bin_hz)), _erb_rate(np.array((n_bins - 1) * bin_hz)), bands)
    centres = np.clip(_erb_rate_to_hz(rates) / bin_hz - low_bins, 0.0, high - 1.0)  # fractional high-bin positions
    positions = np.arange(high, dtype=np.float64)
    split = np.stack([np.interp(positions, centres, row) for row in np.eye(bands)], axis=1)  # (high, bands)
    weight = split.sum(axis=0)
    if (weight <= 0).any():
        raise ValueError(f"{bands} ERB bands are too many for {high} bins: some bands would hold no bin")
    merge = (split / weight).T
    return torch.from_numpy(merge).float(), torch.from_numpy(split).float()


def banded(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """A (rows, cols) matrix as (index, weight), each (rows, width): row ``r`` of ``matrix @ x`` is
    ``sum_w weight[r, w] * x[index[r, w]]``, over a window of ``width`` consecutive columns that holds the row's
    first to last non-zero. For the ERB matrices (each band or bin is a few neighbours) this multiplies far fewer
    zeros than the dense product: the same result for a fraction of the MACs."""
    rows, cols = matrix.shape
    nonzero = (matrix != 0).float()
    first = nonzero.argmax(dim=1)
    last = cols - 1 - nonzero.flip(1).argmax(dim=1)
    width = int((last - first + 1).max())
    index = first.clamp(max=cols - width)[:, None] + torch.arange(width)
    return index, matrix.gather(1, index)


def apply_banded(x: Tensor, index: Tensor, weight: Tensor) -> Tensor:
    """(..., cols) → (..., rows): ``x @ matrix.T`` for ``(index, weight) = banded(matrix)``."""
    # index_select, not x[..., index]: its backward adds each gathered column back in index order, where advanced
    # indexing's backward adds them with atomics whose order (hence rounding) depends on thread timing on CPU.
    gathered = torch.index_select(x, -1, index.reshape(-1)).unflatten(-1, index.shape)
    return torch.einsum("...rw,rw->...r", gathered, weight)


def subband_unfold(x: Tensor, kernel: int = 3) -> Tensor:
    """(B, C, T, F) → (B, C * kernel, T, F): each band stacked with its neighbours (zeros beyond the edges)."""
    pad = kernel // 2
    bands = x.shape[-1]
    padded = F.pad(x, (pad, pad))
    return torch.cat([padded[..., shift : shift + bands] for shift in range(kernel)], dim=1)


def channel_shuffle(a: Tensor, b: Tensor) -> Tensor:
    """Interleave the channels of two (B, C, T, F) halves: a0, b0, a1, b1, ..."""
    return torch.stack([a, b], dim=2).flatten(1, 2)


class _ConvBlock(nn.Module):
    """Conv (or transposed conv) over bands, stride 2 in frequency, 1 frame in time → BatchNorm → activation."""

    def __init__(self, in_channels: int, out_channels: int, *, groups: int = 1, transposed: bool = False,
                 output_padding: int = 0, activation: str = "prelu"):
        super().__init__()
        if transposed:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, (1, 5), stride=(1, 2), padding=(0, 2),
                                           output_padding=(0, output_padding), groups=groups)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, (1, 5), stride=(1, 2), padding=(0, 2), groups=groups)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.PReLU(out_channels) if activation == "prelu" else nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.norm(self.conv(x)))


def _recurrent(kind: str, input_size: int, hidden_size: int, bidirectional: bool = False) -> nn.RNNBase:
    return (nn.LSTM if kind == "lstm" else nn.GRU)(input_size, hidden_size, batch_first=True,
                                                   bidirectional=bidirectional)


def _state_count(rnn: nn.RNNBase) -> int:
    return 2 if isinstance(rnn, nn.LSTM) else 1


def _run(rnn: nn.RNNBase, x: Tensor, state: list[Tensor] | None) -> tuple[Tensor, list[Tensor]]:
    """One-layer `rnn` over (N, L, input) from `state` ([h] for a GRU, [h, c] for an LSTM, each (N, hidden); None:
    zeros, built from the input's size so an exported graph keeps its batch dynamic) → (output, its last state)."""
    if state is None:
        zeros = x.new_zeros(2 if rnn.bidirectional else 1, x.shape[0], rnn.hidden_size)
        carried = [zeros] * _state_count(rnn)
    else:
        carried = [s[None] for s in state]
    out, last = rnn(x, tuple(carried) if isinstance(rnn, nn.LSTM) else carried[0])
    return out, [s[-1] for s in (last if isinstance(rnn, nn.LSTM) else (last,))]


class _TemporalAttention(nn.Module):
    """TRA: per-channel energy of each frame (mean square over bands) → recurrent layer over time (width
    2 * channels) → linear → sigmoid: a gain per channel and frame. State: the recurrent layer's, (B, 2 * channels)
    each (h for a GRU; h and c for an LSTM)."""

    def __init__(self, channels: int, rnn: str):
        super().__init__()
        self.rnn = _recurrent(rnn, channels, 2 * channels)
        self.fc = nn.Linear(2 * channels, channels)
        self.states = _state_count(self.rnn)

    def initial_state(self, ref: Tensor, batch: int) -> list[Tensor]:
        return [ref.new_zeros(batch, self.rnn.hidden_size) for _ in range(self.states)]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        energy = (x * x).mean(dim=-1).transpose(1, 2)  # (B, T, C)
        out, state = _run(self.rnn, energy, state)
        gain = torch.sigmoid(self.fc(out)).transpose(1, 2)  # (B, C, T)
        return x * gain[..., None], state


class _GTConv(nn.Module):
    """Grouped temporal convolution block on (B, channels, T, bands): see the module docstring.
    State: the depthwise conv's last ``2 * dilation`` input frames, then the TRA state."""

    def __init__(self, channels: int, bands: int, dilation: int, rnn: str):
        super().__init__()
        half = channels // GROUPS
        self.bands, self.history = bands, 2 * dilation
        self.point_in = nn.Sequential(nn.Conv2d(3 * half, channels, 1), nn.BatchNorm2d(channels), nn.PReLU(channels))
        self.depthwise = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=(0, 1), dilation=(dilation, 1), groups=channels),
            nn.BatchNorm2d(channels), nn.PReLU(channels))
        self.point_out = nn.Sequential(nn.Conv2d(channels, half, 1), nn.BatchNorm2d(half))
        self.attention = _TemporalAttention(half, rnn)
        self.states = 1 + self.attention.states

    def initial_state(self, ref: Tensor, batch: int) -> list[Tensor]:
        channels = self.depthwise[0].in_channels
        return [ref.new_zeros(batch, channels, self.history, self.bands), *self.attention.initial_state(ref, batch)]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        active, passive = x.chunk(GROUPS, dim=1)
        y = torch.cat([state[0], self.point_in(subband_unfold(active))], dim=2)  # past frames, then the new ones
        history = y[:, :, y.shape[2] - self.history :]
        y, attention_state = self.attention(self.point_out(self.depthwise(y)), state[1:])
        return channel_shuffle(y, passive), [history, *attention_state]


class _GroupedRNN(nn.Module):
    """``GROUPS`` recurrent layers side by side, each on its own slice of the (N, L, width) input's channels;
    output width = input width (a bidirectional layer's two directions share a group's width). State of a
    unidirectional one: the groups' states side by side, (N, width) each (h, or h and c); None: zeros."""

    def __init__(self, width: int, bidirectional: bool, rnn: str):
        super().__init__()
        self.part = width // GROUPS
        self.size = self.part // (2 if bidirectional else 1)
        self.rnns = nn.ModuleList(_recurrent(rnn, self.part, self.size, bidirectional) for _ in range(GROUPS))
        self.states = _state_count(self.rnns[0])

    def forward(self, x: Tensor, state: list[Tensor] | None) -> tuple[Tensor, list[Tensor]]:
        outputs, states = [], []
        for group, rnn in enumerate(self.rnns):
            part = x[..., group * self.part : (group + 1) * self.part]
            carried = None if state is None else \
                [s[:, group * self.size : (group + 1) * self.size].contiguous() for s in state]
            out, last = _run(rnn, part, carried)
            outputs.append(out)
            states.append(last)
        return torch.cat(outputs, dim=-1), [torch.cat(parts, dim=-1) for parts in zip(*states)]


class _DualPathGRNN(nn.Module):
    """Intra-frame (bidirectional, over bands) then inter-frame (causal, over time) grouped RNN, each followed by
    linear → LayerNorm(bands, channels) → residual. State: the inter-frame RNN's, (B, bands, channels) each."""

    def __init__(self, channels: int, bands: int, rnn: str):
        super().__init__()
        self.intra = _GroupedRNN(channels, bidirectional=True, rnn=rnn)
        self.intra_fc = nn.Linear(channels, channels)
        self.intra_norm = nn.LayerNorm((bands, channels))
        self.inter = _GroupedRNN(channels, bidirectional=False, rnn=rnn)
        self.inter_fc = nn.Linear(channels, channels)
        self.inter_norm = nn.LayerNorm((bands, channels))
        self.states = self.inter.states

    def initial_state(self, ref: Tensor, batch: int) -> list[Tensor]:
        bands, channels = self.inter_norm.normalized_shape
        return [ref.new_zeros(batch, bands, channels) for _ in range(self.states)]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        batch, channels, frames, bands = x.shape
        x = x.permute(0, 2, 3, 1)  # (B, T, F, C)
        intra, _ = self.intra(x.reshape(batch * frames, bands, channels), None)
        x = x + self.intra_norm(self.intra_fc(intra).reshape(batch, frames, bands, channels))
        across = x.transpose(1, 2).reshape(batch * bands, frames, channels)
        inter, state = self.inter(across, [s.reshape(batch * bands, channels) for s in state])
        inter = self.inter_fc(inter).reshape(batch, bands, frames, channels).transpose(1, 2)
        x = x + self.inter_norm(inter)
        return x.permute(0, 3, 1, 2), [s.reshape(batch, bands, channels) for s in state]


def _strided(bands: int) -> int:
    """Bands after a kernel-5, stride-2, padding-2 conv."""
    return (bands - 1) // 2 + 1


@register_model("gtcrn")
class GTCRN(SpectralMaskDenoiser):
    """Grouped temporal convolutional recurrent network with a complex ratio mask; see the module docstring.

    ``channels`` (16, a multiple of 4) is the width of every block after the first conv, ``dilations`` the GTConvs'
    time dilations (the decoder uses them reversed), ``rnn_layers`` the grouped dual-path RNN blocks, ``rnn`` the
    kind of every recurrent layer ("lstm", or the paper's "gru"); ``low_bins`` and ``erb_bands`` set the ERB band
    merging (65 + 64 = 129 bands for 257 bins).
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 256,
        window: str = "sqrt_hann",
        channels: int = 16,
        dilations: Sequence[int] = (1, 2, 5),
        rnn_layers: int = 2,
        rnn: str = "lstm",
        low_bins: int = 65,
        erb_bands: int = 64,
    ):
        super().__init__(sample_rate=sample_rate, n_fft=n_fft, hop=hop, window=window)
        channels, dilations = int(channels), [int(d) for d in dilations]
        if channels < 4 or channels % (2 * GROUPS):
            raise ValueError(f"channels must be a positive multiple of {2 * GROUPS}, got {channels}")
        if any(d < 1 for d in dilations) or rnn_layers < 0:
            raise ValueError(f"dilations must be positive and rnn_layers >= 0, got {dilations}, {rnn_layers}")
        rnn = str(rnn).lower()
        if rnn not in RNNS:
            raise ValueError(f"rnn must be one of {RNNS}, got {rnn!r}")
        if not 1 <= low_bins < self.n_bins:
            raise ValueError(f"low_bins must be between 1 and {self.n_bins - 1}, got {low_bins}")
        self.low_bins = int(low_bins)
        # Fixed, rebuilt from the config (not trained, not saved): the ERB matrices, kept in banded form.
        for name, matrix in zip(("merge", "split"), erb_matrices(self.n_bins, self.low_bins, int(erb_bands),
                                                                 self.sample_rate)):
            index, weight = banded(matrix)
            self.register_buffer(f"erb_{name}_index", index, persistent=False)
            self.register_buffer(f"erb_{name}_weight", weight, persistent=False)
        self.bands = [self.low_bins + int(erb_bands)]
        self.bands += [_strided(self.bands[0]), _strided(_strided(self.bands[0]))]
        inner = self.bands[2]
        self.encoder_convs = nn.ModuleList([
            _ConvBlock(3 * 3, channels),  # 3 features x 3 neighbouring bands (SFE)
            _ConvBlock(channels, channels, groups=GROUPS),
        ])
        self.encoder_blocks = nn.ModuleList(_GTConv(channels, inner, d, rnn) for d in dilations)
        self.rnns = nn.ModuleList(_DualPathGRNN(channels, inner, rnn) for _ in range(int(rnn_layers)))
        self.decoder_blocks = nn.ModuleList(_GTConv(channels, inner, d, rnn) for d in reversed(dilations))
        self.decoder_convs = nn.ModuleList([
            _ConvBlock(channels, channels, groups=GROUPS, transposed=True,
                       output_padding=self.bands[1] - (2 * inner - 1)),
            _ConvBlock(channels, 2, transposed=True, output_padding=self.bands[0] - (2 * self.bands[1] - 1),
                       activation="tanh"),
        ])
        # Start near the real mask 0.5 (the sigmoid-mask models' start: the noisy input, halved) rather than a
        # random complex mask, which scrambles the spectrum: short CPU trainings would spend their first hundreds
        # of steps undoing it. The decoder's last BatchNorm sets the mask's scale (small) and offset.
        mask_norm = self.decoder_convs[-1].norm
        nn.init.constant_(mask_norm.weight, 0.1)
        with torch.no_grad():
            mask_norm.bias.copy_(torch.tensor([math.atanh(0.5), 0.0]))

    @property
    def algorithmic_latency_samples(self) -> int:
        return self.n_fft  # causal over frames: one window, as every causal SpectralMaskDenoiser

    @property
    def supports_streaming(self) -> bool:
        return True

    def merge_bands(self, x: Tensor) -> Tensor:
        """(..., n_bins) → (..., low_bins + erb_bands)."""
        high = apply_banded(x[..., self.low_bins :], self.erb_merge_index, self.erb_merge_weight)
        return torch.cat([x[..., : self.low_bins], high], dim=-1)

    def split_bands(self, x: Tensor) -> Tensor:
        """(..., low_bins + erb_bands) → (..., n_bins)."""
        high = apply_banded(x[..., self.low_bins :], self.erb_split_index, self.erb_split_weight)
        return torch.cat([x[..., : self.low_bins], high], dim=-1)

    def _stateful_blocks(self) -> list[nn.Module]:
        """The blocks that carry state across frames, in the order of ``stream_state``."""
        return [*self.encoder_blocks, *self.rnns, *self.decoder_blocks]

    def stream_state(self, batch: int) -> list[Tensor]:
        """Zeros: the offline forward's start (see the module docstring for the tensors and their order)."""
        return [t for block in self._stateful_blocks() for t in block.initial_state(self.input_mean, batch)]

    def features(self, real: Tensor, imag: Tensor) -> Tensor:
        """Noisy spectrum (B, n_bins, T) each → (B, 3, T, n_bins): normalised log power, compressed real / imag."""
        power = real * real + imag * imag
        scale = (power + 1e-12) ** ((COMPRESSION - 1.0) / 2.0)
        log_power = self.normalise(self._log_magnitude(real, imag))
        return torch.stack([log_power, real * scale, imag * scale], dim=1).transpose(2, 3)

    def enhance_spectrum_step(self, real: Tensor, imag: Tensor, state: list[Tensor]
                              ) -> tuple[Tensor, Tensor, list[Tensor]]:
        x = subband_unfold(self.merge_bands(self.features(real, imag)))  # (B, 9, T, 129)
        # Channels-last speeds up the convs' backward in the CPU training step; a no-op in ONNX.
        x = x.contiguous(memory_format=torch.channels_last)
        new_state: list[Tensor] = []

        def advance(block: nn.Module, x: Tensor) -> Tensor:
            at = len(new_state)  # every block before this one has appended its state
            x, block_state = block(x, state[at : at + block.states])
            new_state.extend(block_state)
            return x

        skips = []
        for conv in self.encoder_convs:
            x = conv(x)
            skips.append(x)
        for block in self.encoder_blocks:
            x = advance(block, x)
            skips.append(x)
        for block in self.rnns:
            x = advance(block, x)
        for block in self.decoder_blocks:
            x = advance(block, x + skips.pop())
        for conv in self.decoder_convs:
            x = conv(x + skips.pop())
        mask = self.split_bands(x).transpose(2, 3)  # (B, 2, n_bins, T)
        mask_real, mask_imag = mask[:, 0], mask[:, 1]
        return real * mask_real - imag * mask_imag, real * mask_imag + imag * mask_real, new_state

    def enhance_spectrum(self, real: Tensor, imag: Tensor) -> tuple[Tensor, Tensor]:
        enhanced_real, enhanced_imag, _ = self.enhance_spectrum_step(real, imag, self.stream_state(real.shape[0]))
        return enhanced_real, enhanced_imag
