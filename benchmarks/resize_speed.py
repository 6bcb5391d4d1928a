"""Resize throughput on MIMIC-sized JPEGs: plain full decode + Lanczos against JPEG draft decode +
Lanczos (what the resize stage does), single process, with the pixel difference between the two.

    python benchmarks/resize_speed.py [--n 24] [--size 512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cxrldm.data.images import load_resized
from cxrldm.demo import phantoms
from cxrldm.demo.findings import Findings


def make_originals(folder: Path, n: int) -> list[Path]:
    """Phantom radiographs at MIMIC's size (about 2500 x 3000), JPEG quality 95 like MIMIC-CXR-JPG."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        height, width = int(rng.integers(2800, 3100)), int(rng.integers(2400, 2600))
        pixels = phantoms.render(Findings(cardiomegaly=i % 4), "PA", rng, height, width)
        paths.append(folder / f"{i}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=95)
    return paths


def images_per_second(paths, size, draft) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    outputs = [np.asarray(load_resized(p, size, draft=draft)) for p in paths]
    return len(paths) / (time.perf_counter() - start), outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_originals(Path(folder), args.n)
        images_per_second(paths[:2], args.size, False)  # warm the file cache and PIL
        plain_speed, plain = images_per_second(paths, args.size, draft=False)
        draft_speed, draft = images_per_second(paths, args.size, draft=True)
    diff = np.concatenate([np.abs(a.astype(int) - b.astype(int)).ravel() for a, b in zip(plain, draft)])
    print(f"{args.n} JPEGs of ~2500x3000 -> shortest side {args.size}, one process\n")
    print("| method                       | images/s | max abs diff | mean abs diff |")
    print("|------------------------------|---------:|-------------:|--------------:|")
    print(f"| plain decode + Lanczos       | {plain_speed:8.1f} |            - |             - |")
    print(f"| draft decode + Lanczos (ours)| {draft_speed:8.1f} | {diff.max():12d} | {diff.mean():13.3f} |")
    print(
        f"\nspeed-up: {draft_speed / plain_speed:.2f}x; pixels differing by more than 2 levels: "
        f"{(diff > 2).mean() * 100:.3f}%"
    )


if __name__ == "__main__":
    main()
