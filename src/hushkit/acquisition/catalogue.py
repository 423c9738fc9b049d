"""Public speech and noise corpora in code: where each lives, what its archives must hash to, how to read its layout.

`get_corpus(name)` gives a `Corpus`; `fetch_corpus(name, cache, dest)` downloads its archives (verified, resumable,
cached; see hushkit.acquisition.fetch), extracts each into `dest/<archive stem>/` and returns `corpus.parse(dest)`.
Every parser returns one row per audio file with COLUMNS, paths relative to the root it was given, and raises
ValueError naming the path and the corpus when an expected file or folder is missing.

Checksums are the publishers' own: OpenSLR's md5sum.txt (LibriSpeech, MUSAN), Zenodo's per-file md5 (DEMAND,
UrbanSound8K) and Edinburgh DataShare's per-bitstream md5 (VoiceBank+DEMAND). GitHub branch/tag archives (MS-SNSD,
ESC-50, FSDD) have none: they are trusted on first use (fetch records their sha256 and verifies against it later).
"""
from __future__ import annotations

import csv
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import pandas as pd

from hushkit.acquisition.fetch import Resource, extract, fetch

COLUMNS = ["path", "kind", "speaker", "category", "language", "split", "pair_id"]
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg"})
SEARCH_DEPTH = 4  # how deep below the root a corpus's own top folder may sit (archives add a level or two)

TOFU_NOTE = "No checksum is published for this archive: trusted on first use (fetch records its sha256)."


@dataclass(frozen=True)
class Corpus:
    name: str
    kind: Literal["speech", "noise", "paired"]
    resources: tuple[Resource, ...]
    license: str
    homepage: str
    archive_format: str  # "zip", "tar.gz", or "none" for a folder the user provides
    parse: Callable[[Path], pd.DataFrame]
    note: str = ""


# --------------------------------------------------------------------------------------------------------- helpers


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


# ------------------------------------------------------------------------------------------------------- catalogue

_DATASHARE = "https://datashare.ed.ac.uk/bitstreams/{}/download"
_ZENODO_DEMAND = "https://zenodo.org/records/1227121/files/{}?download=1"
# DEMAND 16 kHz archives: (environment, bytes, md5), the md5 and size shown on the Zenodo record 1227121.
_DEMAND_16K = (
    ("DKITCHEN", 110_501_049, "7ffbf52d7f4699f96927846103dc8788"),
    ("DLIVING", 80_170_627, "46741384d9e434a0bd8b3ec1830b6052"),
    ("DWASHING", 102_343_250, "7e5ee9437ce9409c5f9a779b6212a240"),
    ("NFIELD", 86_536_782, "a740046c6f4e174e16f5d568aaec5024"),
    ("NPARK", 86_029_332, "80f1385a34d7f1705758926b57f138ce"),
    ("NRIVER", 98_689_565, "54264db61d3fe073fb81f2e40e0d19b5"),
    ("OHALLWAY", 77_941_854, "fe918bbb0e63e73d09ba7f4843ef33f1"),
    ("OMEETING", 82_703_355, "62f7cfe7fe6d30b7d8a215fe37c2dfd2"),
    ("OOFFICE", 88_995_191, "7b61cc2d182d5a654cb9c3101ddd4041"),
    ("PCAFETER", 107_431_494, "99927d148128254141a9417d051510bb"),
    ("PRESTO", 111_292_815, "b98d2e6854eeebb397f29a8ad7457092"),
    ("PSTATION", 119_441_094, "d7448009f6c2aeb6ba570375df1750a3"),
    ("SPSQUARE", 110_928_528, "205d0e7b8fe74504a2f8d252fc414b9e"),
    ("STRAFFIC", 118_572_691, "2efa87262f272bbf9ba578088e81939c"),
    ("TBUS", 128_916_709, "706b11b0d8504f9f3b3f3211e91b3863"),
    ("TCAR", 130_045_975, "4d930012796bd298932245a26189f973"),
    ("TMETRO", 126_589_090, "95daf4df678e13b120e14211e6d89571"),
)

_CORPORA = (
    Corpus(
        name="voicebank_demand", kind="paired",
        resources=(
            Resource(_DATASHARE.format("245452b6-6235-44b6-a6f9-e7eb19797769"), "clean_trainset_28spk_wav.zip",
                     md5="d2d5a45ec32f8fcbf201bde0447e20ba", size=2_486_057_279),
            Resource(_DATASHARE.format("ecb5a102-bb00-46d3-8af5-40c79823b837"), "noisy_trainset_28spk_wav.zip",
                     md5="1fca9e8bafb8cd069f6653c6d92f9e9c", size=2_830_205_201),
            Resource(_DATASHARE.format("dec213d3-bf57-4777-9663-c24bdce92d5e"), "clean_testset_wav.zip",
                     md5="34eb1c0ba7ef667e9b966866c542fc16"),
            Resource(_DATASHARE.format("13c1bfbf-14a6-41db-9b41-8f7310f01ad5"), "noisy_testset_wav.zip",
                     md5="fb1b86caa31e8ba5b506c0c64da9aab5"),
        ),
        license="CC BY 4.0", homepage="https://datashare.ed.ac.uk/handle/10283/2791 (doi:10.7488/ds/2117)",
        archive_format="zip", parse=parse_voicebank_demand,
        note="Valentini-Botinhao 2017, 28-speaker training set (11572 pairs) and 824-pair test set (p232, p257), "
             "48 kHz. md5 per file as Edinburgh DataShare (DSpace) shows it for each bitstream.",
    ),
    Corpus(
        name="ms_snsd", kind="noise",
        resources=(Resource("https://github.com/microsoft/MS-SNSD/archive/refs/heads/master.zip",
                            "MS-SNSD-master.zip"),),
        license="Code MIT; audio under its sources' terms: PTDB-TUG ODbL 1.0, Edinburgh 56-speaker CC BY 4.0, "
                "Freesound CC0, DEMAND CC BY-SA 3.0",
        homepage="https://github.com/microsoft/MS-SNSD", archive_format="zip", parse=parse_ms_snsd,
        note="Noise (AirConditioner, Babble, Typing, ...) and clean speech kept apart for mixing at any SNR, "
             "16 kHz: listed as a noise corpus, its rows hold both kinds. A GitHub branch archive: its bytes "
             "change whenever master does, so a later re-download may fail the recorded sha256 (delete "
             "MS-SNSD-master.zip.sha256 to accept it). " + TOFU_NOTE,
    ),
    Corpus(
        name="librispeech_dev_clean", kind="speech",
        resources=(Resource("https://www.openslr.org/resources/12/dev-clean.tar.gz", "dev-clean.tar.gz",
                            md5="42e2234ba48799c1f50f24a7926300a1", size=337_926_286),),
        license="CC BY 4.0", homepage="https://www.openslr.org/12", archive_format="tar.gz",
        parse=parse_librispeech,
        note="5.4 h of read English, 40 speakers, FLAC 16 kHz. md5 from OpenSLR's resources/12/md5sum.txt; mirrors: "
             "us.openslr.org, openslr.elda.org.",
    ),
    Corpus(
        name="demand", kind="noise",
        resources=tuple(Resource(_ZENODO_DEMAND.format(f"{env}_16k.zip"), f"{env}_16k.zip", md5=md5, size=size)
                        for env, size, md5 in _DEMAND_16K),
        license="CC BY-SA 3.0 (per the DEMAND documentation; check the Zenodo record before redistributing)",
        homepage="https://zenodo.org/records/1227121", archive_format="zip", parse=parse_demand,
        note="16-channel recordings of 17 environments at 16 kHz, 5 min each (SCAFE exists only at 48 kHz and is "
             "left out). md5 and size per file from the Zenodo record.",
    ),
    Corpus(
        name="esc50", kind="noise",
        resources=(Resource("https://github.com/karolpiczak/ESC-50/archive/refs/heads/master.zip",
                            "ESC-50-master.zip"),),
        license="CC BY-NC 3.0", homepage="https://github.com/karolpiczak/ESC-50", archive_format="zip",
        parse=parse_esc50,
        note="2000 five-second clips in 50 classes, 5 folds, 44.1 kHz. " + TOFU_NOTE,
    ),
    Corpus(
        name="urbansound8k", kind="noise",
        resources=(Resource("https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
                            "UrbanSound8K.tar.gz", md5="9aa69802bbf37fb986f71ec1483a196e"),),
        license="CC BY-NC 3.0", homepage="https://urbansounddataset.weebly.com/urbansound8k.html",
        archive_format="tar.gz", parse=parse_urbansound8k,
        note="8732 clips (<= 4 s) in 10 urban classes, 10 folds, mixed sample rates. md5 from Zenodo record "
             "1203745.",
    ),
    Corpus(
        name="fsdd", kind="speech",
        resources=(Resource("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip",
                            "free-spoken-digit-dataset-1.0.10.zip"),),
        license="CC BY-SA 4.0", homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        archive_format="zip", parse=parse_fsdd,
        note="Free Spoken Digit Dataset v1.0.10: 3000 spoken English digits, 6 speakers, 8 kHz. " + TOFU_NOTE,
    ),
    Corpus(
        name="musan", kind="noise",
        resources=(Resource("https://www.openslr.org/resources/17/musan.tar.gz", "musan.tar.gz",
                            md5="0c472d4fc0c5141eca47ad1ffeb2a7df", size=11_086_114_085),),
        license="CC BY 4.0 (individual files carry their sources' licences, listed in the archive)",
        homepage="https://www.openslr.org/17", archive_format="tar.gz", parse=parse_musan,
        note="Music, noise and speech (babble source), 16 kHz, about 11 GB. md5 from OpenSLR's resources/17 "
             "listing; mirrors: us.openslr.org, openslr.elda.org.",
    ),
    Corpus(
        name="common_voice", kind="speech", resources=(), license="CC0 1.0",
        homepage="https://commonvoice.mozilla.org/datasets", archive_format="none", parse=parse_common_voice,
        note="Downloading needs an account, so nothing is fetched: download a language yourself, extract it and "
             "point parse (or fetch_corpus's dest) at the folder holding validated.tsv and clips/.",
    ),
)

CATALOGUE: dict[str, Corpus] = {corpus.name: corpus for corpus in _CORPORA}


def get_corpus(name: str) -> Corpus:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(sorted(CATALOGUE))}") from None


def archive_stem(filename: str) -> str:
    """`dev-clean.tar.gz` -> `dev-clean`: the folder fetch_corpus extracts an archive into."""
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def fetch_corpus(corpus: Corpus | str, cache: Path, dest: Path, **fetch_kwargs: Any) -> pd.DataFrame:
    """Download (or reuse) every archive of `corpus` into `cache`, extract each into `dest/<stem>` and parse `dest`.

    A corpus without resources (common_voice) is parsed from `dest` as the user left it.
    """
    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    dest = Path(dest)
    for resource in corpus.resources:
        archive = fetch(resource, Path(cache), **fetch_kwargs)
        extract(archive, dest / archive_stem(resource.filename))
    return corpus.parse(dest)
