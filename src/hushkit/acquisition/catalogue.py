"""Public speech and noise corpora in code: where each lives, what its archives must hash to, how to read its layout.

`get_corpus(name)` gives a `Corpus`; `fetch_corpus(name, cache, dest)` downloads its archives (verified, resumable,
cached; see hushkit.acquisition.fetch), extracts each into `dest/<archive stem>/` and returns `corpus.parse(dest)`,
one row per audio file (the parsers are in hushkit.acquisition.parsers).

Checksums are the publishers' own: OpenSLR's md5sum.txt (LibriSpeech, MUSAN), Zenodo's per-file md5 (DEMAND,
UrbanSound8K) and Edinburgh DataShare's per-bitstream md5 (VoiceBank+DEMAND). GitHub branch/tag archives (MS-SNSD,
ESC-50, FSDD) have none: they are trusted on first use (fetch records their sha256 and verifies against it later).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import pandas as pd

from hushkit.acquisition import parsers
from hushkit.acquisition.archives import extract
from hushkit.acquisition.fetch import Resource, fetch

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
        archive_format="zip", parse=parsers.parse_voicebank_demand,
        note="Valentini-Botinhao 2017, 28-speaker training set (11572 pairs) and 824-pair test set (p232, p257), "
             "48 kHz. md5 per file as Edinburgh DataShare (DSpace) shows it for each bitstream.",
    ),
    Corpus(
        name="ms_snsd", kind="noise",
        resources=(Resource("https://github.com/microsoft/MS-SNSD/archive/refs/heads/master.zip",
                            "MS-SNSD-master.zip"),),
        license="Code MIT; audio under its sources' terms: PTDB-TUG ODbL 1.0, Edinburgh 56-speaker CC BY 4.0, "
                "Freesound CC0, DEMAND CC BY-SA 3.0",
        homepage="https://github.com/microsoft/MS-SNSD", archive_format="zip", parse=parsers.parse_ms_snsd,
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
        parse=parsers.parse_librispeech,
        note="5.4 h of read English, 40 speakers, FLAC 16 kHz. md5 from OpenSLR's resources/12/md5sum.txt; mirrors: "
             "us.openslr.org, openslr.elda.org.",
    ),
    Corpus(
        name="demand", kind="noise",
        resources=tuple(Resource(_ZENODO_DEMAND.format(f"{env}_16k.zip"), f"{env}_16k.zip", md5=md5, size=size)
                        for env, size, md5 in _DEMAND_16K),
        license="CC BY-SA 3.0 (per the DEMAND documentation; check the Zenodo record before redistributing)",
        homepage="https://zenodo.org/records/1227121", archive_format="zip", parse=parsers.parse_demand,
        note="16-channel recordings of 17 environments at 16 kHz, 5 min each (SCAFE exists only at 48 kHz and is "
             "left out). md5 and size per file from the Zenodo record.",
    ),
    Corpus(
        name="esc50", kind="noise",
        resources=(Resource("https://github.com/karolpiczak/ESC-50/archive/refs/heads/master.zip",
                            "ESC-50-master.zip"),),
        license="CC BY-NC 3.0", homepage="https://github.com/karolpiczak/ESC-50", archive_format="zip",
        parse=parsers.parse_esc50,
        note="2000 five-second clips in 50 classes, 5 folds, 44.1 kHz. " + TOFU_NOTE,
    ),
    Corpus(
        name="urbansound8k", kind="noise",
        resources=(Resource("https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
                            "UrbanSound8K.tar.gz", md5="9aa69802bbf37fb986f71ec1483a196e"),),
        license="CC BY-NC 3.0", homepage="https://urbansounddataset.weebly.com/urbansound8k.html",
        archive_format="tar.gz", parse=parsers.parse_urbansound8k,
        note="8732 clips (<= 4 s) in 10 urban classes, 10 folds, mixed sample rates. md5 from Zenodo record "
             "1203745.",
    ),
    Corpus(
        name="fsdd", kind="speech",
        resources=(Resource("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip",
                            "free-spoken-digit-dataset-1.0.10.zip"),),
        license="CC BY-SA 4.0", homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        archive_format="zip", parse=parsers.parse_fsdd,
        note="Free Spoken Digit Dataset v1.0.10: 3000 spoken English digits, 6 speakers, 8 kHz. " + TOFU_NOTE,
    ),
    Corpus(
        name="musan", kind="noise",
        resources=(Resource("https://www.openslr.org/resources/17/musan.tar.gz", "musan.tar.gz",
                            md5="0c472d4fc0c5141eca47ad1ffeb2a7df", size=11_086_114_085),),
        license="CC BY 4.0 (individual files carry their sources' licences, listed in the archive)",
        homepage="https://www.openslr.org/17", archive_format="tar.gz", parse=parsers.parse_musan,
        note="Music, noise and speech (babble source), 16 kHz, about 11 GB. md5 from OpenSLR's resources/17 "
             "listing; mirrors: us.openslr.org, openslr.elda.org.",
    ),
    Corpus(
        name="common_voice", kind="speech", resources=(), license="CC0 1.0",
        homepage="https://commonvoice.mozilla.org/datasets", archive_format="none", parse=parsers.parse_common_voice,
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
