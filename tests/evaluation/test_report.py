"""The listening report: unit checks on the HTML, then headless Chromium proves the players really decode."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hushkit.evaluation.report import Clip, Example, ReportPart, write_report
from hushkit.tagging.plots import confusion_heatmap, per_class_bars

RATE = 16000
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Virtual time lets the page's media load and scripts run before the dump, without real waiting.
    # Checked by hand (Chromium 156): loadedmetadata fires for data-URI WAV with these flags alone;
    # no autoplay flag is needed because nothing plays, preload="auto" only fetches and decodes metadata.
    "--virtual-time-budget=10000",
]


def tone(freq: float, seconds: float = 1.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def make_examples(n: int = 2) -> list[Example]:
    examples = []
    for i in range(n):
        clean = tone(220 * (i + 1))
        clips = [Clip("noisy", tone(220 * (i + 1), noise=0.3, seed=i), RATE),
                 Clip("dsp", tone(220 * (i + 1), noise=0.05, seed=i), RATE),
                 Clip("clean", clean, RATE)]
        examples.append(Example(f"test{i:05d}", f"white noise at {5 * i} dB SNR", clips))
    return examples


def make_table() -> pd.DataFrame:
    return pd.DataFrame({
        "kind": ["input", "baseline", "model"],
        "pesq": [1.234567, 2.5, float("nan")],
        "system": ["noisy", "dsp <b>&\"x\"", "crnn"],
        "n": [100, 100, 100],
        "params": [float("nan"), 0.0, 123456.0],
    })


@pytest.fixture
def plot_png(tmp_path) -> Path:
    fig = Figure(figsize=(2, 1.5), dpi=50)
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1, 2], [1, 3, 2])
    out = tmp_path / "plot.png"
    fig.savefig(out)
    return out


@pytest.fixture
def tagging_part(tmp_path) -> ReportPart:
    """The taggers' section as the summary stage adds it, with the tagging plots' real PNGs."""
    labels = ["hum", "white", "speech"]
    per_class = {tagger: pd.DataFrame({"label": labels, "lwlrap": [0.9 - shift, 0.7 - shift, float("nan")],
                                       "low": [0.8 - shift, 0.5 - shift, float("nan")],
                                       "high": [1.0 - shift, 0.8 - shift, float("nan")]})
                 for tagger, shift in (("tagcnn", 0.1), ("gcnn", 0.0))}
    per_class_bars(per_class, tmp_path / "per_class.png")
    confusion_heatmap(np.array([[0.9, 0.1, 0.3], [0.2, 0.8, np.nan], [0.1, 0.2, 0.7]]), labels,
                      tmp_path / "confusion.png", title="gcnn")
    table = pd.DataFrame({"system": ["gcnn", "tagcnn", "chance"], "kind": ["model", "model", "input"],
                          "lwlrap": ["0.800 [0.700, 0.900]", "0.700 [0.600, 0.800]", "0.450"]})
    return ReportPart(anchor="tagging", heading="Tagging", text="Taggers on the test clips.", table=table,
                      figures=[("Per-class lwlrap", tmp_path / "per_class.png"),
                               ("Confusions", tmp_path / "confusion.png")])


@pytest.fixture
def report(tmp_path, plot_png, tagging_part) -> Path:
    out = tmp_path / "report.html"
    write_report(out, title="hushkit <eval>", intro="Scores on the test split.", table=make_table(),
                 plots=[("PESQ by SNR", plot_png)], examples=make_examples(),
                 notes=["Intervals: 95 % bootstrap over clips."], parts=[tagging_part])
    return out


def tagging_section(page: str) -> str:
    found = re.search(r'<section class="part" id="tagging">.*?</section>', page, re.S)
    assert found, "no tagging section"
    return found.group(0)


def leaderboard_rows(page: str) -> list[str]:
    table = re.search(r'<table id="leaderboard">.*?</table>', page, re.S)
    assert table, "no leaderboard table"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(0), re.S)
    return re.findall(r"<tr\b.*?</tr>", body.group(1), re.S)


def test_table_has_every_system_and_column_system_first(report):
    page = report.read_text()
    header = re.search(r'<table id="leaderboard"><thead><tr>(.*?)</tr></thead>', page, re.S).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == ["system", "kind", "pesq", "n", "params"]
    rows = leaderboard_rows(page)
    assert len(rows) == 3
    for row, name in zip(rows, ["noisy", "dsp &lt;b&gt;&amp;&quot;x&quot;", "crnn"]):
        assert re.search(r"<td>(.*?)</td>", row).group(1) == name
    assert 'class="kind-model"' in rows[2]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert cells[0][2:] == ["1.235", "100", ""]  # 3 decimals; NaN blank
    assert cells[1][2:] == ["2.500", "100", "0.000"]
    assert cells[2][2:] == ["", "100", "123456"]  # whole float >= 1000: no decimals


def test_text_is_escaped(report):
    page = report.read_text()
    assert "<b>" not in page and "dsp &lt;b&gt;&amp;&quot;x&quot;" in page
    assert "<title>hushkit &lt;eval&gt;</title>" in page


def test_page_is_self_contained(report):
    page = report.read_text().lower()
    for needle in ('src="http', "src='http", 'href="http', "href='http", "url(http", "//cdn", "@import"):
        assert needle not in page, needle
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:") for s in srcs)


def test_every_clip_has_a_player_and_a_spectrogram(report):
    page = report.read_text()
    assert page.count("<audio") == 6
    assert len(re.findall(r'<audio controls preload="auto" [^>]*src="data:audio/wav;base64,', page)) == 6
    assert len(re.findall(r'<img class="spec" src="data:image/png;base64,', page)) == 6
    assert page.count("<figure>") == 3 and page.count("<figcaption>PESQ by SNR</figcaption>") == 1


def test_the_tagging_section_has_its_table_and_figures_after_the_plots(report):
    page = report.read_text()
    section = tagging_section(page)
    assert "<h2>Tagging</h2>" in section and "Taggers on the test clips." in section
    rows = re.findall(r"<tr\b.*?</tr>", re.search(r'<table id="tagging-table">.*?</table>', section, re.S).group(0),
                      re.S)
    assert len(rows) == 4 and 'class="kind-input"' in rows[-1]  # the header and three taggers' rows
    assert re.findall(r"<figcaption>(.*?)</figcaption>", section) == ["Per-class lwlrap", "Confusions"]
    assert len(re.findall(r'<img src="data:image/png;base64,', section)) == 2
    assert page.index("<h2>Plots</h2>") < page.index(section) < page.index("<h2>Listen</h2>")


def test_bad_input_raises_naming_the_problem(tmp_path, plot_png):
    missing = tmp_path / "nope.png"
    kwargs = dict(title="t", intro="i", table=make_table())
    with pytest.raises(ValueError, match="nope.png"):
        write_report(tmp_path / "r.html", plots=[("x", plot_png), ("y", missing)], examples=[], **kwargs)
    empty = Example("test00009", "c", [Clip("crnn", np.zeros(0, np.float32), RATE)])
    with pytest.raises(ValueError, match=r"test00009.*crnn.*no samples"):
        write_report(tmp_path / "r.html", plots=[], examples=[empty], **kwargs)
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob(".r.html*"))


def chromium() -> str:
    # Debian's chromium here; GitHub's Ubuntu runners come with Google Chrome (same flags).
    binary = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                  "/usr/bin/chromium")
    if not Path(binary).exists():
        message = "chromium not installed (Debian: apt-get install chromium; `make test` does it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    return binary


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def test_report_renders_and_decodes_audio_in_headless_chromium(report, tmp_path):
    binary = chromium()
    url = report.resolve().as_uri()

    dom = run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", url).stdout
    assert len(leaderboard_rows(dom)) == 3
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-audio-error" not in body, body
    assert 'data-audio-ready="6"' in body, f"players did not all decode: {body}"
    # every image decoded: the plots, the spectrograms and the tagging section's per-class plot and confusions
    widths = re.findall(r'<img\b[^>]*\bdata-natural-width="(\d+)"', dom)
    assert len(widths) == len(re.findall(r"<img\b", dom)) == 1 + 6 + 2 and all(int(w) > 0 for w in widths), widths
    section = tagging_section(dom)
    assert len(re.findall(r"<tr\b", section)) == 4
    tagging_widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', section)]
    assert len(tagging_widths) == 2 and min(tagging_widths) > 100, tagging_widths

    shot = tmp_path / "report.png"
    run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.is_file() and shot.stat().st_size > 10_000
    if artifacts := os.environ.get("HUSHKIT_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(artifacts) / "report.png")
