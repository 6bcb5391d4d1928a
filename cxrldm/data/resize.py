"""Resizing a table of radiographs in parallel, in constant memory, skipping unreadable files."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from multiprocessing import Pool
from pathlib import Path

from cxrldm.data.images import load_resized_display


def output_path(relative_jpg: str) -> str:
    """files/p10/.../<dicom_id>.jpg (or .dcm) -> files/p10/.../<dicom_id>.png (8-bit, lossless)."""
    return str(Path(relative_jpg).with_suffix(".png"))


def resize_one(job: tuple[str, str, str, int, bool]) -> tuple[str, int, int, str, str, str, str]:
    """(relative output path, width, height, sha256 of the PNG, error, window, inverted); error is '' on
    success; window and inverted ('yes' / 'no') say how a DICOM file was displayed, '' for other files."""
    source_root, target_root, relative, size, draft = job
    target = output_path(relative)
    try:
        image, shown = load_resized_display(Path(source_root) / relative, size, draft=draft)
    except (OSError, ValueError, SyntaxError) as error:  # PIL raises all three for broken files
        return target, 0, 0, "", f"{type(error).__name__}: {error}".replace("\n", " "), "", ""
    path = Path(target_root) / target
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG", compress_level=1)  # 3x faster than the default, 15% larger
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, path)
    window, inverted = (shown.window, "yes" if shown.inverted else "no") if shown else ("", "")
    return target, image.width, image.height, digest, "", window, inverted


def resize_all(
    paths: Iterable[str],
    source_root: str | Path,
    target_root: str | Path,
    size: int,
    workers: int = 0,
    draft: bool = True,
) -> Iterator[tuple[str, int, int, str, str]]:
    """Yield resize_one's result for every relative path, in input order. Memory stays constant:
    workers stream results back and hold one image each. workers=0 uses every CPU core."""
    jobs = ((str(source_root), str(target_root), p, size, draft) for p in paths)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield from map(resize_one, jobs)
        return
    with Pool(workers) as pool:
        yield from pool.imap(resize_one, jobs, chunksize=16)


def require_space(folder: str | Path, written_bytes: list[int], remaining: int, margin: float = 1.1) -> None:
    """Stop at once, with one line, when the images still to write (their mean size so far times
    `remaining`, plus a margin) do not fit on the disk holding `folder`, instead of failing hours in."""
    if not written_bytes or remaining <= 0:
        return
    need = sum(written_bytes) / len(written_bytes) * remaining * margin
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ValueError(
            f"not enough disk for resize: {remaining:,} more images of about "
            f"{sum(written_bytes) / len(written_bytes) / 1024:.0f} KiB need {need / 2**30:.2f} GiB, "
            f"{Path(folder).resolve()} has {free / 2**30:.2f} GiB free"
        )
