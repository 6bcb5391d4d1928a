"""Writing outputs atomically: a reader (or an interrupted run) never sees a half-written file."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path, clean_stale: bool = True):
    """Yield a temporary sibling path to write to; rename it onto `path` only if the block succeeds.
    Temporaries of `path` that a killed run left behind (SIGKILL skips the cleanup below) are removed
    first; one writer per path. `clean_stale=False` skips that directory scan, for the many files
    written into a fresh temporary directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path):
    """Yield an empty temporary directory; it replaces `path` (and whatever was there) on success."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        yield tmp
        if path.exists():
            shutil.rmtree(path)


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | Path, frame, **kwargs) -> None:
    """Write a pandas DataFrame; compression follows the file name (.csv.gz) and gzip gets no timestamp
    in its header so identical tables give identical bytes."""
    path = Path(path)
    if path.suffix == ".gz":
        kwargs.setdefault("compression", {"method": "gzip", "mtime": 0})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, **kwargs)
