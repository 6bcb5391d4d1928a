"""MS-SSIM between images: reconstruction quality and, over pairs of samples, diversity; PSNR and the
edge-energy ratio of reconstructions against their originals."""

from __future__ import annotations

import torch

from cxrldm.evaluation.intervals import pairwise_mean_interval
from cxrldm.evaluation.realism import sharpness
from cxrldm.models.autoencoder import ms_ssim  # the one MS-SSIM; the autoencoder's validation uses it too


def pair_indices(n: int, pairs: int, seed: int) -> torch.Tensor:
    """(P, 2) index pairs i < j: all of them when `pairs` is 0 or covers them all, else a fixed random subset."""
    all_pairs = torch.combinations(torch.arange(n), 2)
    if pairs <= 0 or pairs >= len(all_pairs):
        return all_pairs
    choice = torch.randperm(len(all_pairs), generator=torch.Generator().manual_seed(seed))[:pairs]
    return all_pairs[choice.sort().values]


def pairwise_ms_ssim(
    images: torch.Tensor, pairs: torch.Tensor, kernel_size: int, batch_size: int = 256
) -> torch.Tensor:
    """MS-SSIM of each of the (P, 2) index pairs of the images, computed `batch_size` pairs at a time."""
    return torch.cat(
        [ms_ssim(images[chunk[:, 0]], images[chunk[:, 1]], kernel_size) for chunk in pairs.split(batch_size)]
    )


def mean_pairwise_ms_ssim(
    images: torch.Tensor, pairs: int, kernel_size: int, resamples: int = 1000, seed: int = 0, batch_size: int = 256
) -> dict:
    """Mean MS-SSIM over pairs of the images (pair_indices: all pairs where `pairs` is 0, else that many drawn
    with `seed`): low means diverse. With its interval over the images (intervals.pairwise_mean_interval) and
    "pairs", the number of pairs."""
    index = pair_indices(len(images), pairs, seed)
    scores = pairwise_ms_ssim(images, index, kernel_size, batch_size)
    return {**pairwise_mean_interval(scores, index, len(images), resamples=resamples, seed=seed), "pairs": len(index)}


def psnr(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per image: peak signal-to-noise ratio in dB against its reference, for images in [0, 1] (peak 1);
    identical images get 100 dB rather than infinity."""
    mse = (images.float() - references.float()).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def edge_energy_ratio(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per image: its edge and line energy (realism.sharpness, the mean absolute Laplacian) over its
    reference's. 1 keeps the fine structure; a decoder that blurs leads and rib edges scores below 1, one
    that adds noise above."""
    return sharpness(images.float()) / sharpness(references.float()).clamp_min(1e-8)
