"""scan: list the `local` source's folders (download.local, for the kinds download.sources takes from it) for the
download stage, which depends on this listing instead of on the folders.

    out   {kind: {folder, files: [{path, size, sha256}], rejected: [{path, reason, detail}]}}   ({} without `local`)

DVC runs this stage on every `dvc repro` (always_changed): it is cheap (a file is hashed again only when its size or
mtime changed), and the listing is byte-identical while the folders hold the same files, so the download stage reruns
only when something really changed. Only regular files are opened: a named pipe, a dangling link or a link loop in a
folder is listed with its reason (the download stage quarantines it), where DVC hashing the folder would hang or fail.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hushkit.acquisition.sources import scan_local
from hushkit.config import DownloadParams
from hushkit.io import write_json
from hushkit.stages._cli import stage_main


def run(section: dict[str, Any], *, out: Path) -> None:
    listing = scan_local(DownloadParams.parse(section, "download"))
    write_json(out, listing)
    for kind, folder in listing.items():
        size = sum(f["size"] for f in folder["files"]) / 1e6
        print(f"scan: local {kind} ({folder['folder']}): {len(folder['files'])} files ({size:.1f} MB), "
              f"{len(folder['rejected'])} entries that are not readable files")


def main(argv: list[str] | None = None) -> None:
    stage_main("download", run, argv)


if __name__ == "__main__":
    main()
