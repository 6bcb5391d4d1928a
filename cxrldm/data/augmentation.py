"""Augmentation of training radiographs: random affine warps and photometric changes, drawn per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_params(
    n: int,
    size: int,
    p: float,
    degrees: float,
    translate_px: float,
    scale: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n, 2, 3) affine matrices: random rotation (+-degrees), translation (+-translate_px pixels of a
    `size` image) and isotropic scaling (1 +- scale), each applied with probability p (else identity)."""

    def uniform(low, high):
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-degrees, degrees) * math.pi / 180
    zoom = uniform(1 - scale, 1 + scale)
    shift_x = uniform(-translate_px, translate_px) * 2 / size  # affine_grid works in [-1, 1]
    shift_y = uniform(-translate_px, translate_px) * 2 / size
    apply = torch.rand(n, generator=generator) < p
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    return torch.where(apply[:, None, None], theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(n, 2, 3))


def warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply affine matrices per image, bilinear, reflecting at the borders."""
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_affine(
    images: torch.Tensor,
    p: float,
    degrees: float,
    translate_px: float,
    scale: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    return warp(images, affine_params(len(images), images.shape[-1], p, degrees, translate_px, scale, generator))


def photometric_params(
    n: int,
    flip_p: float,
    shift_p: float,
    shift: float,
    gamma_p: float,
    gamma: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: a horizontal flip (probability flip_p), an intensity shift in [-shift, shift] (shift_p)
    and a contrast gamma in [1 - gamma, 1 + gamma] (gamma_p), as (flip (n,) bool, shift (n,), gamma (n,)).
    All drawn even when off, so the generator's stream does not depend on the probabilities."""
    u = torch.rand(5, n, generator=generator)
    flips = u[0] < flip_p
    shifts = torch.where(u[1] < shift_p, (u[2] * 2 - 1) * shift, torch.zeros(n))
    gammas = torch.where(u[3] < gamma_p, 1 + (u[4] * 2 - 1) * gamma, torch.ones(n))
    return flips, shifts, gammas


def photometric(images: torch.Tensor, flips: torch.Tensor, shifts: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """Flip, shift and gamma per image (N, C, H, W) in [0, 1], clipped to [0, 1]. For the autoencoder only:
    a flip swaps the patient's sides, so it never touches images paired with report text."""
    device = images.device
    images = torch.where(flips.to(device)[:, None, None, None], images.flip(-1), images)
    images = (images + shifts.to(device, images.dtype)[:, None, None, None]).clamp(0, 1)
    return images.pow(gammas.to(device, images.dtype)[:, None, None, None])
