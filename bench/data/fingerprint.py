"""The dataset half of a feature-cache key: what the files are, not where they are.

`files_identity(paths, root)` hashes, in dataset order, one line per file::

    <path relative to root, '/'-separated>\\t<size in bytes>\\t<mtime_ns>\\t<extra (label, crop box)>

into `files_sha256`, and the same lines without size and mtime into `list_sha256` (the file list
alone: it tells "files were replaced" from "files were added, removed or relabelled"). The absolute
root is never part of the key, so a moved dataset or a copied BENCH_HOME keeps its cache as long as
the copy keeps modification times (`mv`, `cp -a`, `rsync -a`); a plain `cp -r` refreshes them and the
features are re-extracted once (never a stale hit). An image replaced in place by one of the same
size gets a new mtime, hence a new key. Contents are not hashed (ImageNet would be read in full on
every run); `touch`-ing files only costs a re-extraction.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence

from bench.errors import DataError

IDENTITY_SCHEME = "relpath+size+mtime_ns/v2"


def relative(path: str | Path, root: str | Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def files_identity(paths: Sequence[str | Path], root: str | Path, extra: Iterable | None = None) -> dict:
    """{"n", "files_sha256", "list_sha256", "scheme"} for `paths` (in order) relative to `root`."""
    content, listing = hashlib.sha256(), hashlib.sha256()
    extras = list(extra) if extra is not None else [""] * len(paths)
    if len(extras) != len(paths):
        raise ValueError("one extra value per file is required")
    for p, x in zip(paths, extras):
        rel = relative(p, root)
        try:
            st = os.stat(p)
        except OSError as exc:
            raise DataError(p, f"cannot read file ({exc.strerror or exc})") from None
        content.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\t{x}\n".encode())
        listing.update(f"{rel}\t{x}\n".encode())
    return {"n": len(paths), "files_sha256": content.hexdigest()[:24], "list_sha256": listing.hexdigest()[:24],
            "scheme": IDENTITY_SCHEME}


__all__ = ["IDENTITY_SCHEME", "files_identity", "relative"]
