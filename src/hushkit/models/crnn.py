"""CRNN: convolutional-recurrent mask estimator (in the spirit of Tan & Wang 2018, "A Convolutional Recurrent
Neural Network for Real-Time Speech Enhancement", simplified for CPU training and later streaming).

* **Encoder**: a few 2-D convs over (frequency, time), each conv → BatchNorm → ELU, strided by 2 in frequency
  only (257 bins → 129 → 65 → 33 → 17 with the defaults), kernel ``freq_kernel`` (3) bins x ``time_kernel`` (2)
  frames, as in Tan & Wang's CRN. Causal: frame ``k`` of every layer sees frames ``k - time_kernel + 1 .. k``.
* **Recurrent layers**: the encoder output is flattened to ``channels[-1] * F'`` features per frame and fed to
  ``layers`` GRU (``rnn="gru"``, default) or LSTM (``rnn="lstm"``) layers of width ``hidden`` over time;
  unidirectional when ``causal`` (the default), bidirectional when ``causal=False`` (an offline model).
* **Decoder**: one linear layer per frame from the recurrent state back to the ``n_fft // 2 + 1`` bins, sigmoid:
  the mask multiplies the noisy complex spectrum (noisy phase), as for every ``SpectralMaskDenoiser``.

Streaming (``causal=True``, the default, is causal as built: ``ConvSTFT`` frames end with their hop block, the
convs look back only, the RNN is unidirectional): the state carried between frame blocks is the last
``time_kernel - 1`` input frames of each conv and the RNN hidden (and LSTM cell) state (``stream_state``,
``estimate_mask_step``; ``hushkit.models.streaming`` does the STFT side). Nothing else looks across frames.
ONNX (``dynamo=False``): one GRU/LSTM node per layer, the time axis stays dynamic.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import SpectralMaskDenoiser, capture_init, register_model

RNNS = ("gru", "lstm")


def strided_bins(bins: int, kernel: int, layers: int) -> list[int]:
    """Frequency sizes after each encoder layer (stride 2, 'same' padding ``kernel // 2``), input first."""
    sizes = [bins]
    for _ in range(layers):
        sizes.append((sizes[-1] + 2 * (kernel // 2) - kernel) // 2 + 1)
    return sizes


class _EncoderLayer(nn.Module):
    """Conv2d (freq stride 2; time causal or centred) → BatchNorm → ELU on (B, C, F, frames)."""

    def __init__(self, in_channels: int, out_channels: int, freq_kernel: int, time_kernel: int, causal: bool):
        super().__init__()
        # Output frame k sees input frames k - (time_kernel - 1 - lookahead) .. k + lookahead: causal, no look-ahead;
        # otherwise centred (for an even kernel the extra frame is in the past). Implemented as the conv padded by
        # time_kernel - 1 frames on both sides, cropped: the same sums, cheaper on CPU than padding the input.
        self.lookahead = 0 if causal else (time_kernel - 1) // 2
        self.trim = time_kernel - 1 - self.lookahead
        self.conv = nn.Conv2d(in_channels, out_channels, (freq_kernel, time_kernel), stride=(2, 1),
                              padding=(freq_kernel // 2, time_kernel - 1), bias=False)  # BatchNorm follows
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        x = x[..., self.lookahead : -self.trim] if self.trim else x[..., self.lookahead :]
        return F.elu(self.norm(x))


@register_model("crnn")
class CRNN(SpectralMaskDenoiser):
    """Conv encoder (strided in frequency, causal in time) → GRU/LSTM over time → linear decoder → sigmoid mask.

    Defaults (n_fft 512, hop 256, channels 16-32-32-32, 2 GRU layers of 256): 1.09 M parameters (1.43 M with
    LSTM); a training step (batch 16 x 2 s, forward + backward + AdamW) costs ~0.46 CPU-seconds on one core,
    about 0.7x a default crced step. The two GRU layers are about half of it, the encoder the other half.
    ``causal=False`` gives an offline model (centred conv kernels, bidirectional RNN) whose output depends on the
    whole utterance, so it has no ``algorithmic_latency_samples``.
    """

    @capture_init
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 256,
        channels: Sequence[int] = (16, 32, 32, 32),
        rnn: str = "gru",
        hidden: int = 256,
        layers: int = 2,
        causal: bool = True,
        freq_kernel: int = 3,
        time_kernel: int = 2,
        window: str = "sqrt_hann",
    ):
        super().__init__(sample_rate=sample_rate, n_fft=n_fft, hop=hop, window=window)
        channels = [int(c) for c in channels]
        rnn = str(rnn).lower()
        if rnn not in RNNS:
            raise ValueError(f"rnn must be one of {RNNS}, got {rnn!r}")
        if any(c < 1 for c in channels):
            raise ValueError(f"channels must be positive, got {channels}")
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be positive, got hidden={hidden}, layers={layers}")
        if freq_kernel < 1 or freq_kernel % 2 == 0 or time_kernel < 1:
            raise ValueError(f"freq_kernel must be odd and time_kernel positive, got {freq_kernel}, {time_kernel}")
        self.causal, self.rnn_type = bool(causal), rnn
        self.time_kernel = int(time_kernel)
        self.encoder_bins = strided_bins(self.n_bins, int(freq_kernel), len(channels))
        encoder, in_channels = [], 1
        for out_channels in channels:
            encoder.append(_EncoderLayer(in_channels, out_channels, int(freq_kernel), self.time_kernel, self.causal))
            in_channels = out_channels
        self.encoder = nn.ModuleList(encoder)
        features = in_channels * self.encoder_bins[-1]
        recurrent = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = recurrent(features, int(hidden), num_layers=int(layers), batch_first=True,
                             bidirectional=not self.causal)
        self.decoder = nn.Linear(int(hidden) * (1 if self.causal else 2), self.n_bins)

    @property
    def lookahead_frames(self) -> int:
        """Future frames a mask frame depends on through the convs (the bidirectional RNN aside)."""
        return sum(layer.lookahead for layer in self.encoder)

    @property
    def algorithmic_latency_samples(self) -> int:
        if not self.causal:
            raise ValueError("a non-causal crnn (bidirectional RNN) is an offline model: its output depends on the "
                             "whole utterance, so it has no finite algorithmic latency")
        return self.n_fft

    def initial_state(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Zero RNN state for the (B, frames, features) batch `x`: h0 (GRU) or (h0, c0) (LSTM). Explicit (rather
        than the RNN's implicit zeros) so the ONNX graph builds it from the input's batch size, and so a streaming
        implementation can pass the carried state in its place."""
        h0 = x.new_zeros(self.rnn.num_layers * (2 if self.rnn.bidirectional else 1), x.shape[0],
                         self.rnn.hidden_size)
        return h0 if self.rnn_type == "gru" else (h0, torch.zeros_like(h0))

    @property
    def supports_streaming(self) -> bool:
        return self.causal

    def stream_state(self, batch: int) -> list[Tensor]:
        """[past input frames of each conv layer (B, C_in, F_in, time_kernel - 1)..., h (, c)], all zeros: the
        offline forward's zero padding in time and zero initial RNN state."""
        if not self.causal:
            raise ValueError("a non-causal crnn (causal=False) cannot stream: its RNN is bidirectional")
        ref = self.input_mean
        past = self.time_kernel - 1
        convs = [ref.new_zeros(batch, layer.conv.in_channels, bins, past)
                 for layer, bins in zip(self.encoder, self.encoder_bins)]
        h0 = ref.new_zeros(self.rnn.num_layers, batch, self.rnn.hidden_size)
        return convs + ([h0] if self.rnn_type == "gru" else [h0, torch.zeros_like(h0)])

    def estimate_mask_step(self, features: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        past, layers = self.time_kernel - 1, len(self.encoder)
        x, new_state = features[:, None], []
        for layer, carried in zip(self.encoder, state[:layers]):
            # The layer over [carried past frames, new frames]; its first `past` outputs (computed over its own
            # zero padding) belong to earlier blocks: dropped. The rest equal the offline frames exactly.
            x = torch.cat([carried, x], dim=-1)
            new_state.append(x[..., x.shape[-1] - past :])
            x = layer(x)[..., past:]
        x = x.flatten(1, 2).transpose(1, 2)
        hidden = state[layers] if self.rnn_type == "gru" else (state[layers], state[layers + 1])
        x, hidden = self.rnn(x, hidden)
        new_state += [hidden] if self.rnn_type == "gru" else list(hidden)
        return torch.sigmoid(self.decoder(x)).transpose(1, 2), new_state

    def estimate_mask(self, features: Tensor) -> Tensor:
        x = features[:, None]  # (B, 1, F, frames)
        for layer in self.encoder:
            x = layer(x)
        x = x.flatten(1, 2).transpose(1, 2)  # (B, frames, C * F')
        x, _ = self.rnn(x, self.initial_state(x))
        return torch.sigmoid(self.decoder(x)).transpose(1, 2)  # (B, F, frames)
