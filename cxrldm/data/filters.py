"""The one Gaussian blur, shared by editing's feathered paste-back, the privacy audit's transformed copies
and evaluate's blurred reference images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(
    images: torch.Tensor, sigma: float, radius: int | None = None, border: str = "reflect", pad_first: bool = False
) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) images; sigma in pixels (0 or less: the images unchanged).

    The kernel runs over -radius..radius (default max(1, ceil(3 sigma))), normalised to sum 1, in the images'
    dtype. `border` is F.pad's mode ("reflect", "replicate"). The rows are blurred, then the columns; each
    axis is padded just before its pass, or with `pad_first` both axes at once before the first."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma)) if radius is None else radius
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-x.square() / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(images.shape[1], 1, 1)
    channels = images.shape[1]
    if pad_first:
        out = F.pad(images, (radius,) * 4, mode=border)
        out = F.conv2d(out, kernel[:, :, None, :], groups=channels)
        return F.conv2d(out, kernel[:, :, :, None], groups=channels)
    out = F.pad(images, (radius, radius, 0, 0), mode=border)
    out = F.conv2d(out, kernel[:, :, None, :], groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode=border)
    return F.conv2d(out, kernel[:, :, :, None], groups=channels)
