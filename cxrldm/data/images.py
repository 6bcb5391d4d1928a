"""The one image loader: 8-bit grayscale radiographs, resized by their shortest side. DICOM files (.dcm or the
DICM preamble) are displayed by cxrldm.data.dicom (modality and VOI LUTs, MONOCHROME1, padding); others by PIL.
And the one image grid: tiles in rows, used by every stage that shows images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cxrldm.data import dicom
from cxrldm.io import atomic_path

RESAMPLE = Image.Resampling.LANCZOS


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the shortest side at `short_side` and the aspect ratio kept."""
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_resized(path: str | Path, short_side: int, draft: bool = True) -> Image.Image:
    """Decode a JPEG/PNG/DICOM as 8-bit grayscale with its shortest side resized to `short_side`.

    With `draft`, a JPEG is decoded at a reduced DCT scale (1/2, 1/4, 1/8) that still leaves at least
    twice the target size, so the final Lanczos resample sees enough pixels to stay sharp; it is
    several times faster on 2500-3000 px originals. Raises OSError (PIL's UnidentifiedImageError is
    one) or ValueError (dicom.DicomError is one) for unreadable or truncated files.
    """
    return load_resized_display(path, short_side, draft)[0]


def load_resized_display(
    path: str | Path, short_side: int, draft: bool = True
) -> tuple[Image.Image, dicom.Display | None]:
    """load_resized's image, and for a DICOM file how it was displayed (None for other files)."""
    if dicom.is_dicom(path):
        shown = dicom.read_display(path)
        image = Image.fromarray(shown.pixels)
        size = target_size(image.width, image.height, short_side)
        return (image.resize(size, RESAMPLE) if image.size != size else image), shown
    with Image.open(path) as image:
        size = target_size(image.width, image.height, short_side)
        if draft and image.format == "JPEG":
            image.draft("L", (2 * size[0], 2 * size[1]))
        image = image.convert("L") if image.mode != "L" else image
        image.load()
        return (image.resize(size, RESAMPLE) if image.size != size else image.copy()), None


def load_array(path: str | Path) -> np.ndarray:
    """A grayscale image (or a DICOM file's display image) as a uint8 array (height, width)."""
    if dicom.is_dicom(path):
        return dicom.read_display(path).pixels
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def save_gray(pixels: np.ndarray, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, H, W) in [0, 1] -> (H, W) 8-bit grey levels, rounded."""
    return (image[0].clamp(0, 1) * 255).round().byte().numpy()


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """(1, H, W) in [0, 1] -> 8-bit grayscale PNG."""
    with atomic_path(path, clean_stale=False) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")


def grid(images: torch.Tensor, columns: int, gap: int = 2, row_gap: int | None = None, fill: float = 1.0) -> np.ndarray:
    """uint8 grid of (N, 1, H, W) images in [0, 1], `columns` wide: `gap` pixels between columns and
    `row_gap` (default: `gap`) between rows, gaps and unfilled cells at `fill` (1 white, 0 black)."""
    n, _, height, width = images.shape
    row_gap = gap if row_gap is None else row_gap
    rows = max(1, -(-n // columns))
    canvas = torch.full((rows * (height + row_gap) - row_gap, columns * (width + gap) - gap), float(fill))
    for i, image in enumerate(images[:, 0].float().clamp(0, 1)):
        top, left = (i // columns) * (height + row_gap), (i % columns) * (width + gap)
        canvas[top : top + height, left : left + width] = image
    return (canvas * 255).round().byte().numpy()
