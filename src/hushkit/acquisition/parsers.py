"""Readers of each corpus's folder layout: every parser returns one row per audio file with COLUMNS, paths
relative to the root it was given, and raises ValueError naming the path and the corpus when an expected file or
folder is missing. hushkit.acquisition.catalogue pairs each corpus with its parser.
"""
from __future__ import annotations

import csv
import re
from collections import deque
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

COLUMNS = ["path", "kind", "speaker", "category", "language", "split", "pair_id"]
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg"})
SEARCH_DEPTH = 4  # how deep below the root a corpus's own top folder may sit (archives add a level or two)


def _frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    df = df.astype(object).where(df.notna(), None)
    return df.sort_values("path", kind="stable").reset_index(drop=True)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name != "__MACOSX"


def _find(root: Path, corpus: str, relative: str, *, is_dir: bool = True) -> Path:
    """`root/relative`, or the shallowest `<dir>/relative` below root (an archive's own top folder, our extraction
    folder, or both), or root itself when it is relative's first folder; ValueError naming the path and the corpus
    when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{corpus}: {root} is not a directory")
    if Path(relative).parts[0] == root.name:  # the root is the corpus's own top folder (e.g. .../LibriSpeech)
        candidate = root.parent / relative
        if candidate.is_dir() if is_dir else candidate.is_file():
            return candidate
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        candidate = folder / relative
        if candidate.is_dir() if is_dir else candidate.is_file():
            return candidate
        if depth < SEARCH_DEPTH:
            queue.extend((child, depth + 1) for child in sorted(folder.iterdir()) if child.is_dir() and _visible(child))
    kind = "folder" if is_dir else "file"
    raise ValueError(f"{corpus}: expected {kind} {relative!r} not found in {root} (searched {SEARCH_DEPTH} levels)")


def _audio_files(folder: Path, suffixes: Iterable[str] = AUDIO_SUFFIXES) -> list[Path]:
    wanted = {s.lower() for s in suffixes}
    files = [p for p in folder.rglob("*") if p.suffix.lower() in wanted and p.is_file()
             and all(part != "__MACOSX" and not part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_csv(path: Path, corpus: str, required: Iterable[str], **kwargs: Any) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{corpus}: {path} lacks column(s) {', '.join(missing)} (has {', '.join(df.columns)})")
    return df


def _require_files(paths: Iterable[Path], corpus: str, listed_in: Path) -> None:
    """Every file a metadata table lists must exist; one listdir per folder, not one stat per file."""
    listings: dict[Path, set[str]] = {}
    missing = []
    for path in paths:
        if path.parent not in listings:
            listings[path.parent] = set(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else set()
        if path.name not in listings[path.parent]:
            missing.append(path)
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise ValueError(f"{corpus}: {len(missing)} file(s) listed in {listed_in} are missing, e.g. {shown}")


# --------------------------------------------------------------------------------------------------------- parsers

_VCTK_NAME = re.compile(r"(p\d+)_\d+")
_VOICEBANK_SETS = {"train": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav"),
                   "test": ("clean_testset_wav", "noisy_testset_wav")}


def parse_voicebank_demand(root: Path) -> pd.DataFrame:
    """clean/noisy pairs by file name (`p232_001.wav` -> speaker p232, pair_id p232_001); split from the train/test
    folders."""
    corpus, root = "voicebank_demand", Path(root)
    if not root.is_dir():
        raise ValueError(f"{corpus}: {root} is not a directory")
    rows = []
    for split, (clean_name, noisy_name) in _VOICEBANK_SETS.items():
        found = {}
        for role, name in (("clean", clean_name), ("noisy", noisy_name)):
            try:
                found[role] = _find(root, corpus, name)
            except ValueError:
                continue
        if not found:
            continue
        if len(found) == 1:
            have = next(iter(found))
            lacking = noisy_name if have == "clean" else clean_name
            raise ValueError(f"{corpus}: {split} set has {have} audio but no {lacking!r} folder in {root}")
        # A file without its partner is listed all the same: the download stage quarantines it as `unpaired`
        # (reported, not silently dropped, and not a reason to refuse the thousands of good pairs beside it).
        files = {role: {p.stem: p for p in _audio_files(folder, [".wav"])} for role, folder in found.items()}
        for role in ("clean", "noisy"):
            for stem, path in files[role].items():
                match = _VCTK_NAME.fullmatch(stem)
                if match is None:
                    raise ValueError(f"{corpus}: {path} is not named <speaker>_<utterance>.wav")
                rows.append({"path": _rel(path, root), "kind": role, "speaker": match[1], "language": "en",
                             "split": split, "pair_id": stem})
    if not rows:
        names = [n for pair in _VOICEBANK_SETS.values() for n in pair]
        raise ValueError(f"{corpus}: none of the folders {', '.join(names)} found in {root}")
    return _frame(rows)


_PTDB_NAME = re.compile(r"mic_([FM]\d+)_.*")


def parse_ms_snsd(root: Path) -> pd.DataFrame:
    """clean_{train,test} speech and noise_{train,test} noise; noise category is the name before `_<n>`."""
    corpus, root = "ms_snsd", Path(root)
    rows = []
    for split in ("train", "test"):
        for path in _audio_files(_find(root, corpus, f"clean_{split}"), [".wav"]):
            match = _VCTK_NAME.fullmatch(path.stem) or _PTDB_NAME.fullmatch(path.stem)
            rows.append({"path": _rel(path, root), "kind": "speech", "speaker": match[1] if match else None,
                         "language": "en", "split": split})
        for path in _audio_files(_find(root, corpus, f"noise_{split}"), [".wav"]):
            rows.append({"path": _rel(path, root), "kind": "noise", "category": re.sub(r"_\d+$", "", path.stem),
                         "split": split})
    return _frame(rows)


_LIBRI_NAME = re.compile(r"(\d+)-(\d+)-(\d+)")


def parse_librispeech(root: Path) -> pd.DataFrame:
    """LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac; speaker = spk, split = subset."""
    corpus, root = "librispeech_dev_clean", Path(root)
    top = _find(root, corpus, "LibriSpeech")
    subsets = [d for d in sorted(top.iterdir()) if d.is_dir() and _visible(d)]
    rows = []
    for subset in subsets:
        for path in _audio_files(subset, [".flac"]):
            match = _LIBRI_NAME.fullmatch(path.stem)
            if match is None:
                raise ValueError(f"{corpus}: {path} is not named <speaker>-<chapter>-<utterance>.flac")
            rows.append({"path": _rel(path, root), "kind": "speech", "speaker": match[1], "language": "en",
                         "split": subset.name})
    if not rows:
        raise ValueError(f"{corpus}: no .flac utterances under {top}")
    return _frame(rows)


_DEMAND_FOLDER = re.compile(r"([A-Z]+)(?:_(?:16|48)k)?")
_DEMAND_CHANNEL = re.compile(r"ch\d+")


def parse_demand(root: Path) -> pd.DataFrame:
    """<ENV>/chNN.wav (16 channels per environment); category = the environment folder (DKITCHEN, TBUS, ...)."""
    corpus, root = "demand", Path(root)
    rows = []
    for path in _audio_files(root, [".wav"]):
        env = _DEMAND_FOLDER.fullmatch(path.parent.name)
        if env is None or not _DEMAND_CHANNEL.fullmatch(path.stem):
            continue  # not a DEMAND channel file (e.g. something else the user put there)
        rows.append({"path": _rel(path, root), "kind": "noise", "category": env[1]})
    if not rows:
        raise ValueError(f"{corpus}: no <ENVIRONMENT>/chNN.wav files (e.g. DKITCHEN/ch01.wav) found in {root}")
    return _frame(rows)


def parse_esc50(root: Path) -> pd.DataFrame:
    """audio/<filename> with category and fold from meta/esc50.csv."""
    corpus, root = "esc50", Path(root)
    meta = _find(root, corpus, "meta/esc50.csv", is_dir=False)
    base = meta.parent.parent
    table = _read_csv(meta, corpus, ["filename", "fold", "category"])
    paths = [base / "audio" / name for name in table.filename]
    _require_files(paths, corpus, meta)
    return _frame({"path": _rel(p, root), "kind": "noise", "category": cat, "split": f"fold{fold}"}
                  for p, cat, fold in zip(paths, table.category, table.fold))


def parse_urbansound8k(root: Path) -> pd.DataFrame:
    """audio/fold<k>/<slice_file_name> with class and fold from metadata/UrbanSound8K.csv."""
    corpus, root = "urbansound8k", Path(root)
    meta = _find(root, corpus, "metadata/UrbanSound8K.csv", is_dir=False)
    base = meta.parent.parent
    table = _read_csv(meta, corpus, ["slice_file_name", "fold", "class"])
    paths = [base / "audio" / f"fold{fold}" / name for name, fold in zip(table.slice_file_name, table.fold)]
    _require_files(paths, corpus, meta)
    return _frame({"path": _rel(p, root), "kind": "noise", "category": cat, "split": f"fold{fold}"}
                  for p, cat, fold in zip(paths, table["class"], table.fold))


_FSDD_NAME = re.compile(r"(\d)_([A-Za-z]+)_(\d+)")


def parse_fsdd(root: Path) -> pd.DataFrame:
    """recordings/<digit>_<speaker>_<index>.wav."""
    corpus, root = "fsdd", Path(root)
    rows = []
    for path in _audio_files(_find(root, corpus, "recordings"), [".wav"]):
        match = _FSDD_NAME.fullmatch(path.stem)
        if match is None:
            raise ValueError(f"{corpus}: {path} is not named <digit>_<speaker>_<index>.wav")
        rows.append({"path": _rel(path, root), "kind": "speech", "speaker": match[2], "language": "en"})
    if not rows:
        raise ValueError(f"{corpus}: no recordings/*.wav found in {root}")
    return _frame(rows)


_MUSAN_PARTS = ("music", "noise", "speech")


def parse_musan(root: Path) -> pd.DataFrame:
    """musan/{music,noise,speech}/<source>/*.wav, all used as noise; category = music/noise/speech (babble)."""
    corpus, root = "musan", Path(root)
    top = _find(root, corpus, "musan/noise").parent  # not just "musan": fetch_corpus extracts into dest/musan/
    rows = []
    for part in _MUSAN_PARTS:
        folder = top / part
        if not folder.is_dir():
            raise ValueError(f"{corpus}: expected folder {folder} not found")
        rows += [{"path": _rel(p, root), "kind": "noise", "category": part} for p in _audio_files(folder, [".wav"])]
    return _frame(rows)


def parse_common_voice(root: Path) -> pd.DataFrame:
    """A Common Voice language folder the user downloaded: validated.tsv (client_id, path, locale) + clips/."""
    corpus, root = "common_voice", Path(root)
    tsv = _find(root, corpus, "validated.tsv", is_dir=False)
    clips = tsv.parent / "clips"
    if not clips.is_dir():
        raise ValueError(f"{corpus}: expected folder {clips} beside {tsv.name} not found")
    # Sentences hold bare quotes: read the TSV literally rather than as quoted CSV.
    table = _read_csv(tsv, corpus, ["client_id", "path"], sep="\t", quoting=csv.QUOTE_NONE)
    paths = [clips / name for name in table.path]
    _require_files(paths, corpus, tsv)
    languages = table["locale"] if "locale" in table.columns else [tsv.parent.name] * len(table)
    return _frame({"path": _rel(p, root), "kind": "speech", "speaker": spk, "language": lang or None}
                  for p, spk, lang in zip(paths, table.client_id, languages))
