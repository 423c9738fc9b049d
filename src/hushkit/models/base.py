"""The model registry, the Denoiser contract, and the machinery shared by spectral-mask and learned-filterbank models.

The registry holds models of two kinds (``Model.kind``): denoisers, which map a noisy waveform batch ``(B, T)``
float32 at ``model.sample_rate`` to an enhanced waveform of exactly the same shape, for any ``T >= 1`` (that keeps
training, evaluation, export and inference the same code for every architecture), and taggers
(hushkit.models.tagger), which map a waveform batch to clip-level label logits. ``available_models()`` lists the
denoisers, ``available_models("tagger")`` the taggers; building and checkpoints treat both alike.

Constructor arguments are recorded by ``@capture_init`` on every model's ``__init__`` (``model.config``, a
JSON-serialisable dict), so that ``build_model(model.name, **model.config)`` rebuilds an identical architecture: a
checkpoint needs nothing but itself. Models declare keyword arguments with defaults; tuples are recorded as lists.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
from typing import Any, Callable, ClassVar, Iterable, TypeVar

import torch
from torch import Tensor, nn

from hushkit.models.filterbank import FourierFilterbank, SampleFrames
from hushkit.models.stft import ConvISTFT, ConvSTFT

_REGISTRY: dict[str, type["Model"]] = {}
KINDS = ("denoiser", "tagger")

D = TypeVar("D", bound=type["Model"])


def register_model(name: str) -> Callable[[D], D]:
    """Class decorator: make a Denoiser or a tagger buildable by `name` (case-insensitive)."""
    key = name.lower()

    def decorate(cls: D) -> D:
        if not (isinstance(cls, type) and issubclass(cls, Model) and cls.kind in KINDS):
            raise TypeError(f"@register_model({name!r}) needs a Denoiser or tagger subclass, got {cls!r}")
        if not getattr(cls.__init__, "captures_config", False):
            raise TypeError(f"@register_model({name!r}): {cls.__qualname__}.__init__ needs @capture_init, which "
                            "records the arguments a checkpoint rebuilds the model from")
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[key].__qualname__}")
        cls.name = key
        _REGISTRY[key] = cls
        return cls

    return decorate


def available_models(kind: str = "denoiser") -> list[str]:
    """The registered models of `kind` (`denoiser` or `tagger`), sorted."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    return sorted(name for name, cls in _REGISTRY.items() if cls.kind == kind)


def model_class(name: str) -> type["Model"]:
    try:
        return _REGISTRY[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY)) or '(none)'}") \
            from None


def build_model(name: str, **kwargs: Any) -> "Model":
    """Instantiate the registered model `name` (case-insensitive) with constructor `kwargs`."""
    cls = model_class(name)
    try:
        inspect.signature(cls.__init__).bind(None, **kwargs)
    except TypeError as err:
        raise ValueError(f"model {cls.name!r}: bad arguments {sorted(kwargs)}: {err}") from None
    return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    """Tuples become lists (JSON has no tuples); anything JSON cannot hold is refused at construction time."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:  # numpy/torch scalar
        return value.item()
    return value


def _recorded_arguments(signature: inspect.Signature, self: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = signature.bind(self, *args, **kwargs)
    bound.apply_defaults()
    config: dict[str, Any] = {}
    for key, value in list(bound.arguments.items())[1:]:
        if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        else:
            config[key] = value
    config = _jsonable(config)
    try:
        json.dumps(config)
    except TypeError as err:
        raise TypeError(f"{type(self).__name__}: constructor arguments must be JSON-serialisable to be recorded in "
                        f"model.config: {err}") from None
    return config


def capture_init(init: Callable[..., None]) -> Callable[..., None]:
    """Decorator for a model's ``__init__``: record the arguments it is called with, defaults applied, as
    ``self.config`` (JSON-serialisable; tuples become lists, ``**kwargs`` are recorded flat), from which
    ``build_model(model.name, **model.config)`` rebuilds the architecture. Only the outermost decorated constructor
    records: the ``super().__init__(...)`` calls it makes do not replace its config. ``@register_model`` refuses a
    model whose constructor lacks it."""
    signature = inspect.signature(init)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        raise TypeError(f"{init.__qualname__}: *args cannot be recorded in model.config; use keyword arguments")

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if "config" not in self.__dict__:
            self.__dict__["config"] = _recorded_arguments(signature, self, args, kwargs)
        init(self, *args, **kwargs)

    __init__.captures_config = True  # type: ignore[attr-defined]
    return __init__


class Model(nn.Module):
    """Base of every registered model: a waveform ``(B, T)`` at ``self.sample_rate`` in; what comes out depends on
    its `kind` (a Denoiser's enhanced waveform, a tagger's label logits).

    Subclasses: take keyword arguments only, decorate ``__init__`` with ``@capture_init`` (which records them in
    ``self.config``), call ``super().__init__(sample_rate=sample_rate)``, implement ``forward`` and, if they learn
    input statistics, ``prepare``.
    """

    name: ClassVar[str] = ""  # set by @register_model
    kind: ClassVar[str] = ""  # one of KINDS, set by the kind's base class
    config: dict[str, Any]

    @capture_init
    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__()
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def prepare(self, noisy: Tensor | Iterable[Tensor]) -> None:
        """Learn whatever input statistics the model needs from training input audio ((B, T) batches), once,
        before training. The default: nothing to learn."""

    def extra_repr(self) -> str:
        return f"name={self.name!r}, sample_rate={self.sample_rate}"


class Denoiser(Model):
    """Base of every denoiser: ``forward(noisy (B, T)) -> enhanced (B, T)`` at ``self.sample_rate``; besides
    Model's duties, a subclass implements ``algorithmic_latency_samples``."""

    kind: ClassVar[str] = "denoiser"
    # The share of the noisy input mixed back into the output (0: none); see set_attenuation_limit.
    dry_gain: float = 0.0

    @property
    def algorithmic_latency_samples(self) -> int:
        """Samples an output sample waits for (window length and look-ahead), for a streaming implementation."""
        raise NotImplementedError(f"{type(self).__name__} must define algorithmic_latency_samples")

    @property
    def attenuation_limit_db(self) -> float | None:
        """The most the model attenuates its input, in dB (None: no limit)."""
        return None if self.dry_gain == 0 else -20.0 * math.log10(self.dry_gain)

    def set_attenuation_limit(self, db: float | None) -> None:
        """Limit the attenuation to `db` (None: no limit) by mixing the noisy input back in at -`db` dB, as
        DeepFilterNet's attenuation limit does: where a model would suppress speech together with the noise, the
        input shows through. Not a weight (training is unaffected); the checkpoint records it."""
        if db is not None and not (math.isfinite(db) and db > 0):
            raise ValueError(f"attenuation limit must be a positive number of dB or None, got {db}")
        self.dry_gain = 0.0 if db is None else 10.0 ** (-db / 20.0)

    def limit_attenuation(self, enhanced: Tensor, noisy: Tensor) -> Tensor:
        """`enhanced` with the noisy input mixed back in at the attenuation limit (waveforms or spectra alike:
        the mix is linear, so it commutes with the STFT)."""
        if self.dry_gain == 0:
            return enhanced
        return enhanced + self.dry_gain * (noisy - enhanced)


class SpectralMaskDenoiser(Denoiser):
    """Shared machinery of STFT-mask models: ConvSTFT → ``enhance_spectrum`` (the architecture) → ConvISTFT.

    The default ``enhance_spectrum`` is a real mask: normalised log-power features → ``estimate_mask`` → mask in
    [0, 1] × noisy complex spectrum (noisy phase); such subclasses implement
    ``estimate_mask(features (B, F, frames)) -> mask (B, F, frames)``. A model with another mapping (a complex
    mask, say) overrides ``enhance_spectrum`` (and ``enhance_spectrum_step`` to stream) instead.
    The per-frequency input normalisation (``input_mean``, ``input_std`` buffers, saved in the state_dict) is
    learnt once by ``prepare`` / ``set_input_stats``; defaults 0 and 1 are the identity.
    """

    @capture_init
    def __init__(self, sample_rate: int = 16000, n_fft: int = 256, hop: int = 128, window: str = "sqrt_hann"):
        super().__init__(sample_rate=sample_rate)
        self.n_fft, self.hop = int(n_fft), int(hop)
        self.stft = ConvSTFT(self.n_fft, self.hop, window)
        self.istft = ConvISTFT(self.n_fft, self.hop, window)
        self.n_bins = self.n_fft // 2 + 1
        self.register_buffer("input_mean", torch.zeros(self.n_bins))
        self.register_buffer("input_std", torch.ones(self.n_bins))

    @property
    def algorithmic_latency_samples(self) -> int:
        # Frame-based overlap-add: the first hop of output is complete once a whole window has arrived
        # (the worst single sample waits n_fft - 1 samples). Subclasses with look-ahead frames add hop per frame.
        return self.n_fft

    def input_features(self, noisy: Tensor) -> Tensor:
        """Un-normalised features, (B, F, frames): log power of the noisy STFT, floored at -100 dB."""
        real, imag = self.stft(noisy)
        return self._log_magnitude(real, imag)

    @staticmethod
    def _log_magnitude(real: Tensor, imag: Tensor) -> Tensor:
        # A true log, not log1p: speech sits at -20..-40 dBFS where log1p(|X|) is nearly linear and would hand
        # the network a heavy-tailed, badly conditioned input.
        return torch.log(real * real + imag * imag + 1e-10)

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per-frequency mean and standard deviation of `input_features` over training data."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        for label, value in (("mean", mean), ("std", std)):
            if value.numel() != self.n_bins:
                raise ValueError(f"input {label} must have {self.n_bins} values (one per bin), got {value.numel()}")
            if not torch.isfinite(value).all():
                raise ValueError(f"input {label} has non-finite values")
        if (std <= 0).any():
            raise ValueError("input std must be positive")
        self.input_mean.copy_(mean.to(self.input_mean.device))
        self.input_std.copy_(std.to(self.input_std.device))

    @torch.no_grad()
    def prepare(self, noisy: Tensor | Iterable[Tensor]) -> None:
        batches = [noisy] if isinstance(noisy, Tensor) else noisy
        total, total_sq, count = None, None, 0
        device = self.input_mean.device
        for batch in batches:
            batch = torch.as_tensor(batch, dtype=torch.float32, device=device)
            if batch.dim() == 1:
                batch = batch[None]
            feats = self.input_features(batch).double()  # (B, F, frames)
            s, s2 = feats.sum(dim=(0, 2)), (feats * feats).sum(dim=(0, 2))
            total = s if total is None else total + s
            total_sq = s2 if total_sq is None else total_sq + s2
            count += feats.shape[0] * feats.shape[2]
        if not count:
            raise ValueError("prepare() needs at least one non-empty batch of noisy audio")
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-5)
        self.set_input_stats(mean.float(), std.float())

    def estimate_mask(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def normalise(self, features: Tensor) -> Tensor:
        """(B, F, frames) log-power features → per-frequency normalised (frame by frame, so streaming shares it)."""
        return (features - self.input_mean[:, None]) / self.input_std[:, None]

    def enhance_spectrum(self, real: Tensor, imag: Tensor) -> tuple[Tensor, Tensor]:
        """Noisy complex spectrum (real, imag), each (B, F, frames) → the enhanced one. Default: the real mask
        of ``estimate_mask`` on the normalised log power."""
        mask = self.estimate_mask(self.normalise(self._log_magnitude(real, imag)))
        return real * mask, imag * mask

    # Streaming (hushkit.models.streaming): a model whose spectral mapping is causal over frames can run frame block by
    # frame block, carrying its state; it says so (``supports_streaming``), gives its initial state and either
    # ``estimate_mask_step`` (real-mask models) or, for any other mapping, ``enhance_spectrum_step``.
    @property
    def supports_streaming(self) -> bool:
        return False

    def stream_state(self, batch: int) -> list[Tensor]:
        """The state before the first frame (what the offline forward's zero padding / zero RNN state is)."""
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def estimate_mask_step(self, features: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Normalised features of the next frames (B, F, M), M >= 1 → (their mask (B, F, M), the new state), so
        that running all frames in any split equals ``estimate_mask`` on all of them at once."""
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def enhance_spectrum_step(self, real: Tensor, imag: Tensor, state: list[Tensor]
                              ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """The next frames' noisy spectrum (real, imag), each (B, F, M), M >= 1, and the state after the frames
        before → (their enhanced spectrum, the new state), so that running all frames in any split equals
        ``enhance_spectrum`` on all of them at once. Default: ``estimate_mask_step``'s real mask."""
        mask, state = self.estimate_mask_step(self.normalise(self._log_magnitude(real, imag)), state)
        return real * mask, imag * mask, state

    def forward(self, noisy: Tensor) -> Tensor:
        squeeze = noisy.dim() == 1
        if squeeze:
            noisy = noisy[None]
        noisy_real, noisy_imag = self.stft(noisy)
        real, imag = self.enhance_spectrum(noisy_real, noisy_imag)
        real, imag = self.limit_attenuation(real, noisy_real), self.limit_attenuation(imag, noisy_imag)
        enhanced = self.istft(real, imag, noisy.shape[-1])
        return enhanced[0] if squeeze else enhanced


class FilterbankDenoiser(Denoiser):
    """Shared machinery of learned-filterbank models: encoder (analysis filterbank) → ``masker`` (the architecture)
    → decoder (synthesis filterbank, cropped to the input's length); ``forward`` is written once, here.

    A subclass implements ``masker(coefficients (B, C, frames)) -> estimate (B, C, frames)``, which sees the
    coefficients through ``self.input_norm``, and may override these hooks:

    * ``normalise_level(noisy (B, T)) -> (x, gain)`` and ``restore_level(enhanced (B, T), gain)``: an
      utterance-level input normalisation that the output undoes (default: none);
    * ``encode(x (B, 1, T)) -> coefficients``: ``self.bank``'s analysis, frames appended up to a multiple of
      ``frame_multiple`` (the masker's total stride over frames);
    * ``combine(coefficients, estimate) -> enhanced coefficients``: ``self.bank``'s rule;
    * ``decode(enhanced coefficients, samples) -> (B, samples)``: ``self.bank``'s synthesis.

    ``add_domain`` sets ``self.bank`` and ``self.input_norm``: a ``FourierFilterbank``, whose coefficients the
    masker's output gates, behind a layer norm; or ``SampleFrames``, where the masker runs on the samples and its
    output is the waveform. A model with an encoder/decoder pair of its own (Conv-TasNet) overrides ``encode``,
    ``combine`` and ``decode`` instead.
    """

    frame_multiple: int = 1

    def add_domain(self, filterbank: int, residual: bool) -> None:
        """Run the masker over a ``filterbank``-filter ``FourierFilterbank`` after a layer norm of its coefficients
        (GroupNorm, one group), or, for ``filterbank=0``, over the samples (``SampleFrames(residual)``, no norm).
        The modules are registered and initialised when this is called: a model calls it after creating its
        masker's layers, whose random initialisation then draws first and whose weights come first in the
        state_dict."""
        if filterbank:
            self.input_norm: nn.Module = nn.GroupNorm(1, filterbank, eps=1e-8)
            self.bank: nn.Module = FourierFilterbank(filterbank)
        else:
            self.input_norm = nn.Identity()
            self.bank = SampleFrames(residual)

    def masker(self, features: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define masker")

    def normalise_level(self, noisy: Tensor) -> tuple[Tensor, Any]:
        return noisy, None

    def restore_level(self, enhanced: Tensor, gain: Any) -> Tensor:
        return enhanced

    def encode(self, x: Tensor) -> Tensor:
        return self.bank.analyse(x, multiple=self.frame_multiple)

    def combine(self, coefficients: Tensor, estimate: Tensor) -> Tensor:
        return self.bank.combine(coefficients, estimate)

    def decode(self, coefficients: Tensor, samples: int) -> Tensor:
        return self.bank.synthesise(coefficients, samples)

    def forward(self, noisy: Tensor) -> Tensor:
        squeeze = noisy.dim() == 1
        if squeeze:
            noisy = noisy[None]
        if noisy.dim() != 2:
            raise ValueError(f"expected a (batch, samples) waveform, got shape {tuple(noisy.shape)}")
        samples = noisy.shape[-1]
        x, gain = self.normalise_level(noisy)
        coefficients = self.encode(x[:, None])
        enhanced = self.combine(coefficients, self.masker(self.input_norm(coefficients)))
        out = self.limit_attenuation(self.restore_level(self.decode(enhanced, samples), gain), noisy)
        return out[0] if squeeze else out
