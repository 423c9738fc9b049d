"""The listening report: one self-contained HTML page (leaderboard, plots, audio players, spectrograms).

Everything is inlined as data URIs, so the page opens offline, can be attached to a run and makes no network requests.
"""
from __future__ import annotations

import base64
import html
import io
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hushkit.io import atomic_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPEC_SIZE_IN = (3.2, 1.6)
SPEC_DPI = 80
SPEC_RANGE_DB = 80.0  # colour range below the example's loudest bin


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == is ambiguous
class Clip:
    label: str  # "noisy", "clean", or a system name ("dsp", "crnn", ...)
    audio: np.ndarray  # mono float32
    sample_rate: int


@dataclass(frozen=True)
class Example:
    id: str  # e.g. "test00012"
    caption: str  # e.g. "babble noise at 5 dB SNR"
    clips: list[Clip]  # in display order: noisy, each system..., clean


@dataclass(frozen=True, eq=False)  # eq=False: comparing DataFrames with == is ambiguous
class ReportPart:
    """A section of its own after the plots (e.g. the audio taggers'): a heading, a paragraph, a table (a `kind`
    column styles its rows as the leaderboard's) and figures (caption, PNG file)."""

    anchor: str  # the section's id; its table's is `<anchor>-table`
    heading: str
    text: str
    table: pd.DataFrame
    figures: Sequence[tuple[str, Path]] = ()


def write_report(path: Path, *, title: str, intro: str, table: pd.DataFrame, plots: list[tuple[str, Path]],
                 examples: list[Example], notes: Sequence[str] = (),
                 sections: Sequence[tuple[str, pd.DataFrame]] = (), parts: Sequence[ReportPart] = ()) -> None:
    """Write the report to `path` atomically; ValueError names the bad input before anything is written."""
    plots = [(caption, Path(png)) for caption, png in plots]
    for _, png in [*plots, *(figure for part in parts for figure in part.figures)]:
        _check_png(Path(png))
    for example in examples:
        for clip in example.clips:
            _check_clip(example, clip)

    body = [f"<h1>{_esc(title)}</h1>", f"<p>{_esc(intro)}</p>", "<h2>Leaderboard</h2>", _table_html(table)]
    body += [f"<p class=\"note\">{_esc(note)}</p>" for note in notes]
    for heading, part in sections:
        body += [f"<h2>{_esc(heading)}</h2>", _table_html(part)]
    if plots:
        body.append("<h2>Plots</h2>")
        body += [_figure_html(caption, png) for caption, png in plots]
    body += [_part_html(part) for part in parts]
    if examples:
        body.append("<h2>Listen</h2>")
        body += [_example_html(example) for example in examples]
    page = _PAGE.format(title=_esc(title), css=_CSS, body="\n".join(body), script=_SCRIPT)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


# --- validation -------------------------------------------------------------------------------------------------

def _check_png(png: Path) -> None:
    if not png.is_file():
        raise ValueError(f"plot file does not exist: {png}")
    with open(png, "rb") as fh:
        if fh.read(len(PNG_MAGIC)) != PNG_MAGIC:
            raise ValueError(f"plot file is not a PNG: {png}")


def _check_clip(example: Example, clip: Clip) -> None:
    where = f"example {example.id!r}, clip {clip.label!r}"
    audio = np.asarray(clip.audio)
    if audio.ndim != 1:
        raise ValueError(f"{where}: audio must be mono (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError(f"{where}: audio has no samples")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"{where}: audio has NaN or infinite samples")
    if clip.sample_rate <= 0:
        raise ValueError(f"{where}: sample rate must be positive, got {clip.sample_rate}")


# --- leaderboard ------------------------------------------------------------------------------------------------

def _table_html(table: pd.DataFrame, table_id: str = "leaderboard") -> str:
    # The system name is what a reader scans for, so it leads whatever order the caller used.
    columns = list(table.columns)
    if "system" in columns:
        columns.remove("system")
        columns.insert(0, "system")
    head = "".join(f"<th>{_esc(col)}</th>" for col in columns)
    rows = []
    for _, row in table[columns].iterrows():
        css = f" class=\"kind-{_css_token(row['kind'])}\"" if "kind" in columns else ""
        cells = "".join(_cell_html(row[col]) for col in columns)
        rows.append(f"<tr{css}>{cells}</tr>")
    return (f"<table id=\"{_css_token(table_id)}\"><thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n" + "\n".join(rows) + "\n</tbody></table>")


def _cell_html(value: object) -> str:
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return f"<td class=\"num\">{_esc(_format_number(value))}</td>"
    return f"<td>{'' if _is_missing(value) else _esc(value)}</td>"


def _format_number(value: numbers.Number) -> str:
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return ""
    if math.isfinite(value) and value.is_integer() and abs(value) >= 1000:
        return f"{value:.0f}"  # counts and sample rates: decimals would only be noise
    return f"{value:.3f}"


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-like cells
        return False


# --- plots and examples -----------------------------------------------------------------------------------------

def _figure_html(caption: str, png: Path) -> str:
    return (f"<figure><img src=\"{_data_uri('image/png', png.read_bytes())}\" alt=\"{_esc(caption)}\">"
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _part_html(part: ReportPart) -> str:
    anchor = _css_token(part.anchor)
    figures = "".join(_figure_html(caption, Path(png)) for caption, png in part.figures)
    return (f"<section class=\"part\" id=\"{anchor}\"><h2>{_esc(part.heading)}</h2><p>{_esc(part.text)}</p>"
            f"{_table_html(part.table, f'{anchor}-table')}{figures}</section>")


def _example_html(example: Example) -> str:
    audios = [np.clip(np.asarray(clip.audio, dtype=np.float32), -1.0, 1.0) for clip in example.clips]
    specs = [_spectrogram_db(audio, clip.sample_rate) for audio, clip in zip(audios, example.clips)]
    # One colour scale per example, so a quieter residual really looks darker than the noisy input.
    vmax = max(float(spec.max()) for spec in specs) if specs else 0.0
    vmin = vmax - SPEC_RANGE_DB
    cells = []
    for clip, audio, spec in zip(example.clips, audios, specs):
        label = _esc(clip.label)
        wav = _data_uri("audio/wav", _wav_bytes(audio, clip.sample_rate))
        png = _data_uri("image/png", _spectrogram_png(spec, vmin, vmax))
        cells.append(f"<div class=\"clip\"><div class=\"label\">{label}</div>"
                     f"<audio controls preload=\"auto\" data-label=\"{label}\" src=\"{wav}\"></audio>"
                     f"<img class=\"spec\" src=\"{png}\" alt=\"spectrogram of {label}\"></div>")
    return (f"<section class=\"example\" id=\"ex-{_css_token(example.id)}\">"
            f"<h3>{_esc(example.id)}: {_esc(example.caption)}</h3>"
            f"<div class=\"clips\">{''.join(cells)}</div></section>")


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()  # 16-bit PCM: what every browser decodes, at half the size of float WAV
    sf.write(buf, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _spectrogram_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-magnitude STFT in dB, (freq, time); ~32 ms Hann frames, 75 % overlap."""
    n_fft = max(64, 2 ** int(round(math.log2(sample_rate * 0.032))))
    audio = np.pad(audio, (0, max(0, n_fft - audio.size)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[:: n_fft // 4]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1))
    return 20.0 * np.log10(magnitude.T + 1e-8)


def _spectrogram_png(spec: np.ndarray, vmin: float, vmax: float) -> bytes:
    # Figure + Agg canvas rather than pyplot: no global state, no GUI backend, safe in worker processes.
    fig = Figure(figsize=SPEC_SIZE_IN, dpi=SPEC_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --- helpers and page template ----------------------------------------------------------------------------------

def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _css_token(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(value))


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# The CSP forbids every fetch except inline data, so a stray external link cannot leak into the report unnoticed.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; media-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
<script>{script}</script>
</body>
</html>
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.kind-input { color: #777; }
tr.kind-baseline { background: #f6f6f6; }
tr.kind-model { font-weight: 600; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption, .note { color: #555; font-size: 0.9em; }
.clips { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 0.8em; }
.clip { border: 1px solid #ddd; border-radius: 4px; padding: 0.4em; }
.clip .label { font-weight: 600; margin-bottom: 0.3em; }
.clip audio, .clip img { display: block; width: 100%; }
"""

# Marks the body once every player has decoded its metadata (or one failed), and each image with its decoded width
# once the page has loaded (0: not decoded), so a headless browser can check them.
_SCRIPT = """
window.addEventListener("load", () => {
  for (const img of document.images) {
    img.dataset.naturalWidth = String(img.complete ? img.naturalWidth : 0);
  }
});
(() => {
  const players = Array.from(document.querySelectorAll("audio"));
  const check = () => {
    if (players.every((a) => Number.isFinite(a.duration) && a.duration > 0)) {
      document.body.dataset.audioReady = String(players.length);
    }
  };
  for (const a of players) {
    a.addEventListener("loadedmetadata", check);
    a.addEventListener("error", () => { document.body.dataset.audioError = a.dataset.label || "?"; });
  }
  check();  // metadata may already be in before the listeners were attached
})();
"""
