"""RNNoise (Valin 2018) through pyrnnoise's native library: 48 kHz, frames of 480 samples, output 960 samples
(20 ms) behind its input."""
from __future__ import annotations

import ctypes

import numpy as np

from hushkit.baselines import Enhance, register_baseline
from hushkit.baselines.framed import run_framed

FRAME = 480
DELAY = 960
# RNNoise works on 16-bit sample values held in floats.
SCALE = 32768.0


@register_baseline("rnnoise")
def rnnoise(sample_rate: int) -> Enhance:
    from pyrnnoise.rnnoise import lib  # the package's ctypes handle, argtypes/restype set by it

    def enhance(audio: np.ndarray) -> np.ndarray:
        state = lib.rnnoise_create(None)
        buffer = np.empty(FRAME, dtype=np.float32)
        pointer = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

        def process(frame: np.ndarray) -> np.ndarray:
            buffer[:] = frame * SCALE
            lib.rnnoise_process_frame(state, pointer, pointer)  # in place
            return buffer / SCALE

        try:
            return run_framed(audio, sample_rate, FRAME, DELAY, process)
        finally:
            lib.rnnoise_destroy(state)

    return enhance
