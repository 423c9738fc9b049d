"""Enhancing a user's files: any format, rate, channel count and bit depth soundfile reads in; the same rate,
channels and subtype out (format by the output's extension), with memory bounded by a chunk, not the file.

Two paths, both reading and writing the file block by block:

* **chunked** (default, any model): overlapping chunks (``chunk_seconds``, default 10 s, overlapping by
  ``overlap_seconds``, 0.5 s), each resampled to the model's rate, enhanced (all channels as one batch) and
  resampled back on its own; neighbouring chunks cross-fade over the middle half of their overlap, so each chunk
  has a quarter of the overlap (125 ms) of context on either side that its output never contributes to. For a
  model whose receptive field fits in that margin (crced; crnn once its RNN state has forgotten its start) the
  result equals whole-file processing; a file shorter than a chunk *is* whole-file processing.
* **streaming** (``stream=True``, causal models: crnn, crced): the file goes through a ``ResampledStream`` (a
  ``StreamingEnhancer`` between streaming resamplers) block by block with all state carried, so the output equals
  whole-file offline processing exactly (float rounding aside), with the latency removed. ``hushkit.live`` runs the
  same stream on raw PCM from standard input.

An output is written through a temp file and renamed into place; one that cannot be written is an OutputError
naming it.
"""
from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import soundfile as sf
import soxr

from hushkit.audio import AudioReadError
from hushkit.inference import Enhancer
from hushkit.io import OutputError, atomic_output

# Extensions whose format libsndfile names differently (soundfile otherwise takes the extension, upper-cased).
FORMAT_ALIASES = {"AIF": "AIFF", "AIFC": "AIFF", "OGA": "OGG", "OPUS": "OGG", "SPH": "NIST", "SF": "IRCAM"}
Progress = Callable[[int], None]
# Chunk starts fall on multiples of this many model-rate samples: a multiple of every registered model's STFT hop,
# filterbank hop x total stride and SEGAN's 2**11 (see `block_step`); 256 ms at 16 kHz.
ALIGN = 4096


def audio_format(path: Path) -> str | None:
    """The libsndfile format an extension means (``None``: not an audio extension)."""
    ext = path.suffix[1:].upper()
    ext = FORMAT_ALIASES.get(ext, ext)
    return ext if ext and ext in sf.available_formats() and ext != "RAW" else None


# --- which files, written where ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    source: Path
    relative: Path  # its place under an output folder: the tree below the folder (or glob base) it was found in


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and audio_format(p))


def _glob_base(pattern: str) -> Path:
    """The part of a glob before its first wildcard component (what the matches are made relative to)."""
    parts = Path(pattern).parts
    fixed = [part for part in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Job]:
    """Files as given (any extension), folders searched recursively and globs (``**`` too, when the shell left
    them unexpanded: quoted) for files with an audio extension. FileNotFoundError for an input naming nothing."""
    jobs: dict[Path, Job] = {}
    for item in inputs:
        text, path = str(item), Path(item)
        if path.is_dir():
            found = [Job(p, p.relative_to(path)) for p in _audio_files(path)]
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no audio files")
        elif path.is_file():  # an existing name wins over reading it as a glob (e.g. 'take[1].wav')
            found = [Job(path, Path(path.name))]
        elif glob.has_magic(text):
            base, found = _glob_base(text), []
            for match in map(Path, sorted(glob.glob(text, recursive=True))):
                if match.is_dir():
                    found += [Job(p, p.relative_to(base)) for p in _audio_files(match)]
                elif match.is_file() and audio_format(match):
                    found.append(Job(match, match.relative_to(base)))
            if not found:
                raise FileNotFoundError(f"{text}: no audio file matches")
        else:
            raise FileNotFoundError(f"{text}: no such file, folder or matching glob")
        for job in found:
            jobs.setdefault(job.source.resolve(), job)  # named twice (folder and glob): enhanced once
    return list(jobs.values())


def plan_outputs(inputs: Sequence[str | os.PathLike], output: Path) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: `output` is the file for a single input file (unless it is an existing
    folder), else the folder under which the inputs' relative tree is mirrored (same file names and formats)."""
    jobs = expand_inputs(inputs)
    output = Path(output)
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    if single and not output.is_dir():
        pairs = [(jobs[0].source, output)]
    elif output.exists() and not output.is_dir():
        raise ValueError(f"{output}: is a file; with several inputs (or a folder or glob) --output is the folder "
                         "to write them under")
    else:
        pairs = [(job.source, output / job.relative) for job in jobs]
    seen: dict[Path, Path] = {}
    for source, destination in pairs:
        if destination.resolve() == source.resolve():
            raise ValueError(f"{destination}: output would overwrite its input; choose another --output")
        if destination.resolve() in seen:
            raise ValueError(f"{seen[destination.resolve()]} and {source} would both be written to {destination}")
        seen[destination.resolve()] = source
    return pairs


# --- one file ---------------------------------------------------------------------------------------------------
def open_audio(path: Path) -> sf.SoundFile:
    """Open for reading; AudioReadError naming the file if it is not usable audio."""
    if not path.is_file():
        raise AudioReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes)")
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioReadError(f"{path}: not readable as audio ({err})") from None
    if handle.frames == 0:
        handle.close()
        raise AudioReadError(f"{path}: contains no audio frames")
    return handle


def output_format(output_path: Path, subtype: str) -> tuple[str, str]:
    """(format, subtype) to write: the format the extension names, the input's subtype where it allows it."""
    out_format = audio_format(output_path)
    if out_format is None:
        raise ValueError(f"{output_path}: unsupported output extension (use .wav, .flac, .ogg, ... as soundfile "
                         "writes)")
    if output_path.suffix.lower() == ".opus":
        return out_format, "OPUS"
    return out_format, subtype if sf.check_format(out_format, subtype) else sf.default_subtype(out_format)


def _blocks(handle: sf.SoundFile, size: int, overlap: int) -> Iterator[np.ndarray]:
    """Consecutive (frames, channels) blocks of `size` frames, each starting `size - overlap` after the last; the
    last block is shorter (but longer than `overlap`). Sequential reads: any format, no seeking."""
    block = handle.read(size, dtype="float32", always_2d=True)
    while len(block):
        if not np.all(np.isfinite(block)):
            raise AudioReadError(f"{handle.name}: contains NaN or infinite samples")
        yield block
        if len(block) < size:
            return
        new = handle.read(size - overlap, dtype="float32", always_2d=True)
        if not len(new):
            return
        block = np.concatenate([block[len(block) - overlap :], new])


def _fit(audio: np.ndarray, frames: int) -> np.ndarray:
    """Crop or zero-pad (frames, channels) to `frames`: resampling there and back can be a sample off."""
    if len(audio) >= frames:
        return audio[:frames]
    return np.pad(audio, ((0, frames - len(audio)), (0, 0)))


def enhance_block(audio: np.ndarray, sample_rate: int, enhancer: Enhancer) -> np.ndarray:
    """(frames, channels) at any rate → enhanced at the model's rate (channels as one batch) → back at the input's."""
    at_model = _resample(audio, sample_rate, enhancer.sample_rate)
    enhanced = np.ascontiguousarray(enhancer(np.ascontiguousarray(at_model.T)).T)
    return _fit(_resample(enhanced, enhancer.sample_rate, sample_rate), len(audio))


def _resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def block_step(rate: int, model_rate: int, step: int) -> int:
    """`step` (file frames between chunk starts) rounded down to whole periods of the models' frame grid: every
    chunk then starts on the same STFT frame / stride grid (and resampling phase) as whole-file processing does,
    so its output is the same wherever its context suffices (a shift by a fraction of a hop would change every
    frame). The grid is ``ALIGN`` model samples (a multiple of every registered model's hop and total stride),
    also a whole number of file frames. Left as is for rate pairs whose common period exceeds half the step."""
    unit_model = math.lcm(ALIGN, model_rate // math.gcd(rate, model_rate))
    unit_file = unit_model * rate // model_rate
    return step // unit_file * unit_file if unit_file <= step // 2 else step


def crossfade_weights(overlap: int) -> np.ndarray:
    """Weight of the later chunk over an overlap: 0 for its first quarter (the later chunk's warm-up), a raised
    cosine over the middle half, 1 for the last quarter (the earlier chunk's end effects)."""
    margin = overlap // 4
    middle = overlap - 2 * margin
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(middle) + 0.5) / max(middle, 1))
    return np.concatenate([np.zeros(margin), ramp, np.ones(margin)]).astype(np.float32)[:, None]


def _chunked(handle: sf.SoundFile, enhancer: Enhancer, chunk: int, overlap: int) -> Iterator[tuple[np.ndarray, int]]:
    """(enhanced frames ready to write, input frames consumed) per block."""
    pending: np.ndarray | None = None  # the last block's output over the overlap with the next one
    weights = crossfade_weights(overlap)
    for index, block in enumerate(_blocks(handle, chunk, overlap)):
        out = enhance_block(block, handle.samplerate, enhancer)
        if pending is not None:
            out[:overlap] = pending * (1.0 - weights) + out[:overlap] * weights
        keep = min(overlap, len(out))
        pending = out[len(out) - keep :]
        yield out[: len(out) - keep], len(block) - (overlap if index else 0)
    if pending is not None:
        yield pending, 0


class ResampledStream:
    """A StreamingEnhancer at any rate and channel count: (frames, channels) blocks at `rate` in, enhanced blocks at
    `rate` out, the model's latency dropped from the front (the output lines up with the input). Rates other than
    the model's go through streaming resamplers, their state carried like the model's. The resamplers work in
    bursts, so a block's output may be shorter or longer than the block; `push(..., last=True)` ends the stream
    and returns everything left."""

    def __init__(self, enhancer: Enhancer, rate: int, channels: int):
        self.streamer = enhancer.streamer()
        self.channels = channels
        self._resampling = rate != enhancer.sample_rate
        if self._resampling:
            self._to_model = soxr.ResampleStream(rate, enhancer.sample_rate, channels, dtype="float32", quality="HQ")
            self._back = soxr.ResampleStream(enhancer.sample_rate, rate, channels, dtype="float32", quality="HQ")
        self._skip = self.streamer.latency

    def push(self, audio: np.ndarray, last: bool = False) -> np.ndarray:
        x = self._to_model.resample_chunk(audio, last=last) if self._resampling else audio
        y = self.streamer.process(np.ascontiguousarray(x.T)).T
        if last:
            y = np.concatenate([y, self.streamer.flush().reshape(self.channels, -1).T])
        cut = min(self._skip, len(y))
        y, self._skip = y[cut:], self._skip - cut
        return self._back.resample_chunk(np.ascontiguousarray(y), last=last) if self._resampling else y


def _streamed(handle: sf.SoundFile, enhancer: Enhancer, chunk: int) -> Iterator[tuple[np.ndarray, int]]:
    """The whole file through one ResampledStream, cut or padded to the file's length."""
    stream, written, total = ResampledStream(enhancer, handle.samplerate, handle.channels), 0, handle.frames
    for block in _blocks(handle, chunk, 0):
        out = stream.push(block)[: max(0, total - written)]
        written += len(out)
        yield out, len(block)
    yield _fit(stream.push(np.zeros((0, handle.channels), np.float32), last=True), max(0, total - written)), 0


def enhance_file(input_path: str | os.PathLike, output_path: str | os.PathLike,
                 model: Enhancer | str | os.PathLike, *, overwrite: bool = False, chunk_seconds: float = 10.0,
                 overlap_seconds: float = 0.5, stream: bool = False, on_progress: Progress | None = None) -> float:
    """Denoise one audio file into `output_path`; returns the seconds of audio processed.

    `model` is a loaded Enhancer (``load_enhancer``: load once, enhance many files) or anything ``load_enhancer``
    takes (a ``.pt`` checkpoint, an ``.onnx``/``.ts`` export, an MLflow URI or run id). The input may be any format,
    rate, channel count and bit depth soundfile reads; the output keeps its rate, channels and subtype, in the
    format its extension names. It is written to a temp file renamed into place (a failure leaves nothing), and an
    existing `output_path` is refused (FileExistsError) unless `overwrite`. `stream=True` runs a causal model
    (crnn, crced, gtcrn) chunk by chunk with its state carried; `on_progress(frames)` is called with the input
    frames each block consumed. A bad input raises AudioReadError naming the file."""
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.exists() and not overwrite:
        raise FileExistsError(f"{output_path}: exists; pass overwrite=True to replace it")
    if not isinstance(model, Enhancer):
        from hushkit.inference import load_enhancer

        model = load_enhancer(model)
    enhancer = model
    if chunk_seconds <= 0 or not (stream or 0 <= overlap_seconds <= chunk_seconds / 2):
        raise ValueError(f"need chunk_seconds > 0 and 0 <= overlap_seconds <= chunk_seconds / 2, got "
                         f"{chunk_seconds} and {overlap_seconds}")
    with open_audio(input_path) as handle:
        rate, channels, frames = handle.samplerate, handle.channels, handle.frames
        out_format, subtype = output_format(output_path, handle.subtype)
        chunk = max(1, int(round(chunk_seconds * rate)))
        overlap = min(int(round(overlap_seconds * rate)), chunk // 2)
        chunk = block_step(rate, enhancer.sample_rate, chunk - overlap) + overlap
        parts = _streamed(handle, enhancer, chunk) if stream else _chunked(handle, enhancer, chunk, overlap)
        with atomic_output(output_path) as tmp:
            try:
                sink = sf.SoundFile(str(tmp), "w", samplerate=rate, channels=channels, subtype=subtype,
                                    format=out_format)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise ValueError(f"{output_path}: cannot write {out_format} {subtype} at {rate} Hz with {channels} "
                                 f"channel(s) ({getattr(err, 'error_string', err)})") from None
            with sink:
                for audio, consumed in parts:
                    try:
                        sink.write(np.clip(audio, -1.0, 1.0))
                    except sf.LibsndfileError as err:  # e.g. a full disk
                        raise OutputError(f"{output_path}: cannot write ({err.error_string})") from None
                    if on_progress and consumed:
                        on_progress(consumed)
    return frames / rate

