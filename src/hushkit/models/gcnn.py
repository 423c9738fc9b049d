"""GCNN: a gated convolutional recurrent tagger with attention pooling, after Xu, Kong, Wang and Plumbley 2017,
"Large-scale weakly supervised audio classification using gated convolutional neural network" (arXiv 1710.00343),
the DCASE 2017 task 4 winner, scaled down for CPU training.

* **Gated convolutions**: on the log-mel spectrogram (frames x mel bands), blocks of ``convs_per_block`` gated
  3x3 conv layers; each layer is a linear conv and a gate conv of the same input, ``conv(x) * sigmoid(gate(x))``
  (the learnable gated linear unit, GLU, which lets every time-frequency unit be passed or held back), with
  BatchNorm on both halves. Each block ends with max pooling by 2 over frequency only: the time axis keeps its
  full frame rate, so the outputs can locate events. The paper stacks two gated layers per block of 64 or 128
  channels; the default here is one layer per block (``convs_per_block: 2`` for the paper's) of 16 to 32
  channels, which keeps a CPU training step about as cheap as tagcnn's.
* **Recurrent layer**: the pooled maps, flattened per frame (``channels[-1]`` x remaining bands), go through one
  bidirectional GRU of ``hidden`` units per direction.
* **Attention and localisation**: two linear layers per frame on the GRU's output give, for every class, a
  classification logit z_t (frame probability sigmoid(z_t), the localisation output) and an attention logit a_t;
  the clip probability is the attention-weighted mean of the frame probabilities, with weights softmax_t(a_t),
  so frames where a class is heard decide its clip score (hushkit.models.tagger.attention_pooled_logits).

The recurrent layer is where the gradients of such a model have been seen to vanish; train with
``train.grad_norms.recurrent_min`` (hushkit.training.gradients) to be warned.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from hushkit.models.base import capture_init, register_model
from hushkit.models.tagger import DEFAULT_LABELS, Tagger, attention_pooled_logits, check_positive


class GatedConv(nn.Module):
    """(B, C_in, frames, bands) → (B, C_out, frames, bands): BatchNorm(conv) * sigmoid(BatchNorm(gate conv)), both
    3x3 'same' convs computed as one conv of twice the channels."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(2 * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(self.norm(self.conv(x)), dim=1)  # first half * sigmoid(second half)


@register_model("gcnn")
class GatedCRNN(Tagger):
    @capture_init
    def __init__(self, labels: Sequence[str] = DEFAULT_LABELS, sample_rate: int = 16000, n_mels: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0, channels: Sequence[int] = (16, 32, 32),
                 convs_per_block: int = 1, hidden: int = 64, dropout: float = 0.2):
        super().__init__(labels=labels, sample_rate=sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms)
        channels = list(channels)
        check_positive(channels=channels, convs_per_block=convs_per_block, hidden=hidden)
        bands = self.n_mels >> len(channels)
        if bands < 1:
            raise ValueError(f"{len(channels)} blocks halve {self.n_mels} mel bands to nothing; use fewer blocks or "
                             "more bands")
        layers: list[nn.Module] = []
        previous = 1
        for width in channels:
            for _ in range(convs_per_block):
                layers.append(GatedConv(previous, width))
                previous = width
            layers.append(nn.MaxPool2d((1, 2)))  # frequency only
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(previous * bands, hidden, batch_first=True, bidirectional=True)
        self.classify = nn.Linear(2 * hidden, self.n_classes)
        self.attend = nn.Linear(2 * hidden, self.n_classes)

    def outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        x = self.convs(features[:, None])  # (B, C, frames, bands)
        x = x.permute(0, 2, 1, 3).flatten(2)  # (B, frames, C * bands)
        x, _ = self.rnn(self.dropout(x))
        x = self.dropout(x)
        frame_logits = self.classify(x)
        return attention_pooled_logits(frame_logits, self.attend(x)), frame_logits.sigmoid()
