"""Writing outputs atomically: a reader (or an interrupted run) never sees a half-written file."""

from __future__ import annotations

import glob
import hashlib
import json
import math
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


def write_json(
    path: str | Path, data, *, indent: int = 2, sort_keys: bool = True, default=None, clean_stale: bool = True
) -> None:
    """Every JSON file the project writes: strict JSON (RFC 8259), so NaN and infinities are refused with a
    one-line ValueError naming the file and the keys that hold them, and nothing is written. A number that
    is undefined is written as null with the reason beside it: in an interval dict a "note" ("undefined:
    ...", cxrldm.evaluation.intervals), elsewhere a sibling "<key>_note". Indented, keys sorted (unless
    told otherwise), a newline at the end; `default` as json.dumps's; clean_stale as atomic_path's."""
    try:
        text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=False, default=default)
    except ValueError:
        keys = non_finite(data)
        if not keys:
            raise
        raise ValueError(
            f"{path}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}: not a finite number, "
            "which JSON cannot hold (write None with a note saying why)"
        ) from None
    with atomic_path(path, clean_stale) as tmp:
        tmp.write_text(text + "\n")


def non_finite(data, where: str = "") -> list[str]:
    """The places ('pooled.auroc.value', 'rows[2]') of the NaN and infinite floats inside data."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [where or "(the value)"]
    if isinstance(data, dict):
        return [key for k, v in data.items() for key in non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(data, (list, tuple)):
        return [key for i, v in enumerate(data) for key in non_finite(v, f"{where}[{i}]")]
    return []


def write_csv(path: str | Path, frame, **kwargs) -> None:
    """Write a pandas DataFrame; compression follows the file name (.csv.gz) and gzip gets no timestamp
    in its header so identical tables give identical bytes."""
    path = Path(path)
    if path.suffix == ".gz":
        kwargs.setdefault("compression", {"method": "gzip", "mtime": 0})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, **kwargs)
