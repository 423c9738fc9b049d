"""espeak-ng through ctypes: text -> float32 waveform, offline and deterministic.

The library and its voice data come from the `espeakng_loader` wheel. espeak-ng keeps global state
(one engine per process), so the engine is initialised once, lazily, under a process-wide lock.

Determinism: espeak-ng carries state from one utterance to the next (function-level statics in
wavegen.c such as the pitch-flutter phase), so in one process the same call gives slightly different
samples each time. Each utterance therefore runs in a forked child of the initialised (never used)
engine and the samples come back through a pipe; its random generator (breath noise in some
variants) is seeded before each utterance. Same arguments -> identical array, in any order, in any
process. Cost: about 15-20 ms per utterance (fork + voice load), fine for a corpus of a few hundred.
"""
from __future__ import annotations

import ctypes
import os
import struct
import threading
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT: the callback receives the samples and espeak_Synth returns only when done.
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_PARAMETER
espeakRATE, espeakVOLUME, espeakPITCH, espeakRANGE = 1, 2, 3, 4
POS_CHARACTER = 1
espeakCHARS_UTF8 = 1
EE_OK, EE_NOT_FOUND = 0, 2

DEFAULT_VOLUME = 100
RAND_SEED = 0x5EED

_STAGE_OK, _STAGE_VOICE, _STAGE_PARAM, _STAGE_SYNTH, _STAGE_CHILD = range(5)
_HEADER = struct.Struct("<iiq")  # stage, code, number of samples

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded, did not accept a voice, or failed to synthesise."""


class Synthesizer:
    """Process-wide espeak-ng engine. Use `Synthesizer().synthesize(...)`; instances share one engine."""

    _lock = threading.Lock()
    _lib: ctypes.CDLL | None = None
    _sample_rate: int = 0
    _callback = None  # the ctypes callback object must outlive the engine: keep a reference here
    _chunks: list[np.ndarray] = []
    _has_seed: bool = False
    _data_path: str = ""

    @property
    def sample_rate(self) -> int:
        with self._lock:
            self._ensure_initialised()
        return self._sample_rate

    @property
    def data_path(self) -> Path:
        with self._lock:
            self._ensure_initialised()
        return Path(self._data_path)

    @classmethod
    def _ensure_initialised(cls) -> None:
        if cls._lib is not None:
            return
        try:
            import espeakng_loader

            lib_path = espeakng_loader.get_library_path()
            data_path = espeakng_loader.get_data_path()
            lib = ctypes.CDLL(lib_path)
        except (ImportError, OSError, RuntimeError) as err:
            raise EspeakError(f"espeak-ng library could not be loaded (package espeakng_loader): {err}") from err

        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        has_seed = hasattr(lib, "espeak_ng_SetRandSeed")
        if has_seed:
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = None

        sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {sample_rate}; data path {data_path})")

        def _on_audio(wav, numsamples, _events):  # called by espeak-ng during espeak_Synth
            if numsamples > 0 and wav:
                cls._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            return 0  # 0 = continue synthesis

        cls._callback = _CALLBACK(_on_audio)
        lib.espeak_SetSynthCallback(cls._callback)
        cls._has_seed = has_seed
        cls._sample_rate = int(sample_rate)
        cls._data_path = data_path
        cls._lib = lib

    def synthesize(
        self, text: str, voice: str, *, rate: int, pitch: int, pitch_range: int = 50
    ) -> tuple[np.ndarray, int]:
        """Speak `text` with `voice` ("en-us+m3", "ru+f2", ...); return (float32 mono in [-1, 1], sample rate).

        rate: words per minute (80..450); pitch, pitch_range: 0..100. The result depends only on the
        arguments, never on what was synthesised before (see `_synth_isolated`).
        """
        if not text.strip():
            raise ValueError("synthesize: empty text")
        if not 80 <= rate <= 450:
            raise ValueError(f"synthesize: rate {rate} outside 80..450 words/min")
        for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
            if not 0 <= value <= 100:
                raise ValueError(f"synthesize: {name} {value} outside 0..100")
        args = (text, voice, int(rate), int(pitch), int(pitch_range))
        with self._lock:
            self._ensure_initialised()
            # espeak-ng silently ignores an unknown variant ("en-us+zz"): check it against the data dir.
            _, _, variant = voice.partition("+")
            if variant and not (Path(self._data_path) / "voices" / "!v" / variant).is_file():
                raise EspeakError(
                    f"espeak-ng voice {voice!r}: unknown variant {variant!r} "
                    f"(variants are the files in {self._data_path}/voices/!v, e.g. m1..m8, f1..f5)"
                )
            if hasattr(os, "fork"):
                stage, code, samples = self._synth_isolated(*args)
            else:  # no fork: still correct audio, but the pitch flutter phase depends on earlier calls
                stage, code, samples = self._synth_here(*args)
        if stage == _STAGE_VOICE:
            reason = "unknown voice" if code == EE_NOT_FOUND else f"error code {code}"
            raise EspeakError(
                f"espeak-ng rejected voice {voice!r} ({reason}); languages are files under {self._data_path}/lang, "
                f"variants under {self._data_path}/voices/!v (write 'language+variant', e.g. 'en-us+m3')"
            )
        if stage == _STAGE_PARAM:
            raise EspeakError(f"espeak_SetParameter failed with code {code} (rate={rate}, pitch={pitch})")
        if stage == _STAGE_SYNTH:
            raise EspeakError(f"espeak_Synth failed with code {code} for voice {voice!r}")
        if stage != _STAGE_OK:
            raise EspeakError(f"espeak-ng synthesis process failed (stage {stage}, code {code}) for voice {voice!r}")
        if samples.size == 0:
            raise EspeakError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
        return samples.astype(np.float32) / np.float32(32768.0), self._sample_rate

    @classmethod
    def _synth_here(cls, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> tuple[int, int, np.ndarray]:
        """Run espeak-ng in this process; return (stage, code, int16 samples). Caller holds the lock."""
        lib = cls._lib
        empty = np.zeros(0, np.int16)
        code = lib.espeak_SetVoiceByName(voice.encode("utf-8"))
        if code != EE_OK:
            return _STAGE_VOICE, code, empty
        for param, value in (
            (espeakRATE, rate), (espeakVOLUME, DEFAULT_VOLUME), (espeakPITCH, pitch), (espeakRANGE, pitch_range)
        ):
            code = lib.espeak_SetParameter(param, value, 0)
            if code != EE_OK:
                return _STAGE_PARAM, code, empty
        if cls._has_seed:
            lib.espeak_ng_SetRandSeed(RAND_SEED)
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        cls._chunks = []
        try:
            code = lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, espeakCHARS_UTF8, None, None)
            if code != EE_OK:
                return _STAGE_SYNTH, code, empty
            lib.espeak_Synchronize()
            chunks = cls._chunks
        finally:
            cls._chunks = []
        return _STAGE_OK, 0, (np.concatenate(chunks) if chunks else empty)

    @classmethod
    def _synth_isolated(cls, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> tuple[int, int, np.ndarray]:
        """Synthesise in a forked child so every utterance starts from the same engine state.

        espeak-ng keeps function-level statics across utterances (e.g. the pitch-flutter phase in
        wavegen.c's AdvanceParameters), so in-process the same call gives different samples each time.
        This process only initialises the engine and never synthesises; each child starts from that
        pristine state, synthesises once, sends the int16 samples back through a pipe and exits.
        """
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into the caller's code
            status = 1
            try:
                os.close(read_fd)
                try:
                    stage, code, samples = cls._synth_here(text, voice, rate, pitch, pitch_range)
                except BaseException:
                    stage, code, samples = _STAGE_CHILD, -1, np.zeros(0, np.int16)
                payload = _HEADER.pack(stage, code, samples.size) + samples.astype("<i2").tobytes()
                with os.fdopen(write_fd, "wb") as fh:
                    fh.write(payload)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        try:
            with os.fdopen(read_fd, "rb") as fh:
                payload = fh.read()
        finally:
            _, wait_status = os.waitpid(pid, 0)  # always reap the child, even when interrupted
        if len(payload) < _HEADER.size:
            raise EspeakError(f"espeak-ng child process died (wait status {wait_status}) for voice {voice!r}")
        stage, code, n = _HEADER.unpack_from(payload)
        samples = np.frombuffer(payload, dtype="<i2", count=n, offset=_HEADER.size).astype(np.int16)
        return stage, code, samples


_DEFAULT: Synthesizer | None = None


def synthesize(text: str, voice: str, *, rate: int, pitch: int, pitch_range: int = 50) -> tuple[np.ndarray, int]:
    """Module-level shortcut to the shared `Synthesizer`."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Synthesizer()
    return _DEFAULT.synthesize(text, voice, rate=rate, pitch=pitch, pitch_range=pitch_range)
