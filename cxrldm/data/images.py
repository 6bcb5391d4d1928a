"""The one image loader: 8-bit grayscale radiographs, resized by their shortest side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cxrldm.io import atomic_path

RESAMPLE = Image.Resampling.LANCZOS


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the shortest side at `short_side` and the aspect ratio kept."""
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_resized(path: str | Path, short_side: int, draft: bool = True) -> Image.Image:
    """Decode a JPEG/PNG as 8-bit grayscale with its shortest side resized to `short_side`.

    With `draft`, a JPEG is decoded at a reduced DCT scale (1/2, 1/4, 1/8) that still leaves at least
    twice the target size, so the final Lanczos resample sees enough pixels to stay sharp; it is
    several times faster on 2500-3000 px originals. Raises OSError (PIL's UnidentifiedImageError is
    one) for unreadable or truncated files.
    """
    with Image.open(path) as image:
        size = target_size(image.width, image.height, short_side)
        if draft and image.format == "JPEG":
            image.draft("L", (2 * size[0], 2 * size[1]))
        image = image.convert("L") if image.mode != "L" else image
        image.load()
        return image.resize(size, RESAMPLE) if image.size != size else image.copy()


def load_array(path: str | Path) -> np.ndarray:
    """A grayscale image as a uint8 array (height, width)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def save_gray(pixels: np.ndarray, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """(1, H, W) in [0, 1] -> 8-bit grayscale PNG."""
    pixels = (image[0].clamp(0, 1) * 255).round().byte().numpy()
    with atomic_path(path, clean_stale=False) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
