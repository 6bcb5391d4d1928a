"""MS-SSIM between images: reconstruction quality and, over pairs of samples, diversity."""

from __future__ import annotations

import torch
from monai.metrics import MultiScaleSSIMMetric


def ms_ssim(a: torch.Tensor, b: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-image MS-SSIM (5 scales, Gaussian kernel) of images in [0, 1]."""
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=kernel_size)
    return metric(a.float().cpu(), b.float().cpu()).flatten()


def pair_indices(n: int, pairs: int, seed: int) -> torch.Tensor:
    """(P, 2) index pairs i < j: all of them when `pairs` is 0 or covers them all, else a fixed random subset."""
    all_pairs = torch.combinations(torch.arange(n), 2)
    if pairs <= 0 or pairs >= len(all_pairs):
        return all_pairs
    choice = torch.randperm(len(all_pairs), generator=torch.Generator().manual_seed(seed))[:pairs]
    return all_pairs[choice.sort().values]


def mean_pairwise_ms_ssim(images: torch.Tensor, pairs: torch.Tensor, kernel_size: int, batch_size: int = 256) -> float:
    """Mean MS-SSIM over the given image pairs: low means diverse."""
    scores = [ms_ssim(images[chunk[:, 0]], images[chunk[:, 1]], kernel_size) for chunk in pairs.split(batch_size)]
    return float(torch.cat(scores).mean())
