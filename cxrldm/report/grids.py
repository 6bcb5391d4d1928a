"""The one image grid: tiles in rows, used by every stage that shows images."""

from __future__ import annotations

import numpy as np
import torch


def grid(images: torch.Tensor, columns: int, gap: int = 2, row_gap: int | None = None, fill: float = 1.0) -> np.ndarray:
    """uint8 grid of (N, 1, H, W) images in [0, 1], `columns` wide: `gap` pixels between columns and
    `row_gap` (default: `gap`) between rows, gaps and unfilled cells at `fill` (1 white, 0 black)."""
    n, _, height, width = images.shape
    row_gap = gap if row_gap is None else row_gap
    rows = max(1, -(-n // columns))
    canvas = torch.full((rows * (height + row_gap) - row_gap, columns * (width + gap) - gap), float(fill))
    for i, image in enumerate(images[:, 0].float().clamp(0, 1)):
        top, left = (i // columns) * (height + row_gap), (i % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = image
    return (canvas * 255).round().byte().numpy()
