"""Live denoising of a raw PCM stream: signed 16-bit little-endian frames (S16_LE, any rate and channel count) read
from a byte stream in small blocks, each enhanced and written out as soon as it is read, never waiting for the end::

    arecord -f S16_LE -r 16000 -c 1 | hushkit enhance - -o - | aplay -f S16_LE -r 16000 -c 1

The audio goes through the same ``ResampledStream`` as ``hushkit enhance --stream FILE`` (a StreamingEnhancer
between streaming resamplers; each channel its own stream), and each block read is answered by a block of the same
length, so the output is exactly as long as the input. The stream's output trails its input by a fixed ``delay``
of frames: the model's algorithmic latency (the StreamingEnhancer's ``latency``; one STFT window for crnn and
crced) plus, at a rate other than the model's, the resamplers' delay and the bursts they work in. The output
therefore starts with ``delay`` frames of silence and then is the file path's output:
``live == concat(zeros(delay), file_path_output)[:len(input)]``, sample for sample once both are quantised to 16
bits (the same libsndfile conversion) when the file path reads blocks of the same size (``--chunk-seconds 0.01``).
With other blocks the model sees the frames in other batches and float rounding may move a sample by one step.

``delay`` is measured, not assumed: the largest lag of the stream's output behind its input over minutes of blocks
of the live size (frame counts only, see ``output_delay``) is the smallest delay at which the output never runs
dry. Should it run dry all the same, silence is inserted (the delay grows; counted and reported). A throwaway
stream then runs a second of quiet noise through the model (timing it and warming it up); the live run times each
block from the moment it was read to the moment its output was written and flushed.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np
import soundfile as sf

from hushkit.enhance import ResampledStream
from hushkit.inference import Enhancer

SAMPLE_BYTES = 2  # S16_LE
BLOCK_SECONDS = 0.01  # the default block: 10 ms, a short wait for a block to fill (and arecord's usual period)
WARMUP_SECONDS = 1.0  # of quiet noise through the model before the stream: timing and warm-up
LAG_SECONDS = 300.0  # of blocks simulated (counts only) to find the output delay; about 0.3 s of work


def check_format(rate: int, channels: int, block_frames: int) -> None:
    """ValueError for a stream description that cannot be right."""
    if rate <= 0:
        raise ValueError(f"--rate {rate}: the sample rate must be a positive number of Hz")
    if channels <= 0:
        raise ValueError(f"--channels {channels}: a stream needs at least one channel")
    if block_frames <= 0:
        raise ValueError(f"block of {block_frames} frames: need at least one frame per block")


def decode(data: bytes, rate: int, channels: int) -> np.ndarray:
    """S16_LE bytes (whole frames) → (frames, channels) float32, read by libsndfile as the file path reads PCM."""
    if not data:
        return np.zeros((0, channels), np.float32)
    return sf.read(io.BytesIO(data), dtype="float32", always_2d=True, format="RAW", subtype="PCM_16",
                   endian="LITTLE", samplerate=rate, channels=channels)[0]


def encode(audio: np.ndarray, rate: int) -> bytes:
    """(frames, channels) float → S16_LE bytes, clipped and quantised by libsndfile as the file path writes them."""
    if not len(audio):
        return b""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), rate, format="RAW", subtype="PCM_16", endian="LITTLE")
    return buffer.getvalue()


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q)) * 1000 if seconds else float("nan")


class _SameSize:
    """Stands in for a model's stream when only frame counts matter: a StreamingEnhancer returns as many frames as
    it is given, `latency` behind (its public contract), so a ResampledStream around this stand-in yields exactly
    as many frames, block for block, as around the model, at the cost of the resamplers alone."""

    def __init__(self, latency: int, sample_rate: int):
        self.latency, self.sample_rate = latency, sample_rate

    def streamer(self) -> "_SameSize":
        return self

    def process(self, chunk: np.ndarray) -> np.ndarray:
        return np.zeros_like(chunk)


def output_delay(enhancer: Enhancer, rate: int, channels: int, block_frames: int,
                 seconds: float = LAG_SECONDS) -> int:
    """The largest lag (frames) of a ResampledStream's output behind its input over `seconds` of `block_frames`
    blocks: the smallest fixed delay at which a live output answering each block with as many frames never runs
    dry. At the model's rate it is the model's latency; otherwise the resamplers' bursts drift against the blocks
    with a long period, hence the long (and cheap: no model) run."""
    stream = ResampledStream(_SameSize(enhancer.streamer().latency, enhancer.sample_rate), rate, channels)
    silence = np.zeros((block_frames, channels), np.float32)
    lag = produced = 0
    for block in range(1, max(1, round(seconds * rate / block_frames)) + 1):
        produced += len(stream.push(silence))
        lag = max(lag, block * block_frames - produced)
    return lag


def processing_times(enhancer: Enhancer, rate: int, channels: int, block_frames: int,
                     seconds: float = WARMUP_SECONDS) -> list[float]:
    """Seconds each block of quiet noise takes through a throwaway stream (which also warms the model up)."""
    stream = ResampledStream(enhancer, rate, channels)
    noise = np.random.default_rng(0).standard_normal((max(1, round(seconds * rate / block_frames)), block_frames,
                                                      channels)).astype(np.float32) * 0.01
    times = []
    for block in noise:
        start = time.perf_counter()
        stream.push(block)
        times.append(time.perf_counter() - start)
    return times


@dataclass
class LiveRun:
    """What a live run did: frames in (= frames out), blocks, each block's read-to-written time, how often the
    output would have run dry (silence inserted, the delay grown), and why it ended."""
    rate: int
    delay: int
    frames: int = 0
    block_seconds: list[float] = field(default_factory=list)
    underruns: int = 0
    ended: str = "end of input"

    def summary(self, block_frames: int) -> str:
        if not self.block_seconds:
            return f"live: {self.ended}; no audio"
        p95 = percentile_ms(self.block_seconds, 95)
        total = (self.delay + block_frames) / self.rate * 1000 + p95
        dry = f"; {self.underruns} underrun(s): silence inserted" if self.underruns else ""
        return (f"live: {self.ended}; {self.frames / self.rate:.2f} s in {len(self.block_seconds)} blocks; "
                f"processing per block (read -> output written): median {percentile_ms(self.block_seconds, 50):.2f} "
                f"ms, p95 {p95:.2f} ms, max {percentile_ms(self.block_seconds, 100):.2f} ms; latency = delay "
                f"{self.delay / self.rate * 1000:.1f} ms + block {block_frames / self.rate * 1000:.1f} ms + "
                f"processing {p95:.2f} ms (p95) = {total:.1f} ms{dry}")


def _read_block(source: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the input."""
    parts, got = [], 0
    while got < size:
        data = source.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def run_live(source: BinaryIO, sink: BinaryIO, enhancer: Enhancer, *, rate: int, channels: int, block_frames: int,
             report: Callable[[str], None]) -> LiveRun:
    """Enhance S16_LE from `source` into `sink` block by block until the input ends, the output is closed or the
    user interrupts; `report` gets the latency lines (start and end). ValueError if the input ends inside a frame
    (after everything before it was written)."""
    check_format(rate, channels, block_frames)
    delay = output_delay(enhancer, rate, channels, block_frames)
    warmup = processing_times(enhancer, rate, channels, block_frames)
    run, stream = LiveRun(rate, delay), ResampledStream(enhancer, rate, channels)
    model_delay = stream.streamer.latency * rate / enhancer.sample_rate
    report(f"live: S16_LE at {rate} Hz, {channels} channel(s), {block_frames / rate * 1000:.1f} ms blocks, through "
           f"{enhancer.description} at {enhancer.sample_rate} Hz")
    report(f"live: output delay {delay} frames = {delay / rate * 1000:.1f} ms (model latency "
           f"{model_delay / rate * 1000:.1f} ms + resampling {(delay - model_delay) / rate * 1000:.1f} ms): the "
           f"first {delay} frames out are silence; warm-up processing per block: median "
           f"{percentile_ms(warmup, 50):.2f} ms, p95 {percentile_ms(warmup, 95):.2f} ms")
    ready = np.zeros((delay, channels), np.float32)  # output waiting for its turn, starting with the delay
    frame_bytes = SAMPLE_BYTES * channels
    stray = 0
    try:
        while True:
            data = _read_block(source, block_frames * frame_bytes)
            start = time.perf_counter()
            stray = len(data) % frame_bytes
            block = decode(data[: len(data) - stray], rate, channels)
            if len(block):
                ready = np.concatenate([ready, stream.push(block)])
                if len(ready) < len(block):
                    run.underruns += 1
                    ready = np.concatenate([np.zeros((len(block) - len(ready), channels), np.float32), ready])
                sink.write(encode(ready[: len(block)], rate))
                sink.flush()
                ready = ready[len(block):]
                run.frames += len(block)
                run.block_seconds.append(time.perf_counter() - start)
            if len(data) < block_frames * frame_bytes:
                break
    except BrokenPipeError:
        run.ended = "output closed"
    except KeyboardInterrupt:
        run.ended = "interrupted"
    report(run.summary(block_frames))
    if stray:
        raise ValueError(f"standard input ended inside a frame ({stray} stray byte(s)): S16_LE with {channels} "
                         f"channel(s) comes in whole frames of {frame_bytes} bytes")
    return run
