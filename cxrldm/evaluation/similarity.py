"""MS-SSIM between images: reconstruction quality and, over pairs of samples, diversity."""

from __future__ import annotations

import torch

from cxrldm.models.autoencoder import ms_ssim  # the one MS-SSIM; the autoencoder's validation uses it too


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
