"""Latent distributions of the training images, computed once by the autoencoder, and the scale factor
that brings the latents to unit variance for diffusion."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from .io import atomic_path
from .training import Runtime


@torch.no_grad()
def encode_dataset(autoencoder, dataset, runtime: Runtime, batch_size: int, num_workers: int = 0,
                   progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) of every image, float16 on the CPU (N, C, h, w); in dataset order."""
    autoencoder = autoencoder.to(runtime.device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    mus, sigmas = [], []
    for images in progress(loader, desc="encoding") if progress else loader:
        with runtime.autocast():
            mu, sigma = autoencoder.encode(images.to(runtime.device))
        mus.append(mu.float().cpu().half())
        sigmas.append(sigma.float().cpu().half())
    return torch.cat(mus), torch.cat(sigmas)


def latent_std(mu: torch.Tensor, sigma: torch.Tensor) -> float:
    """Standard deviation over all elements of z = mu + sigma * eps, eps ~ N(0, 1), in closed form:
    Var(z) = Var(mu) + E[sigma^2] (no sampling noise, no single batch)."""
    mu, sigma = mu.double(), sigma.double()
    return float(torch.sqrt(mu.var(unbiased=False) + sigma.pow(2).mean()))


def save_latents(path: str | Path, mu: torch.Tensor, sigma: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        save_file({"mu": mu.contiguous(), "sigma": sigma.contiguous()}, str(tmp))


def load_latents(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def sample_latents(mu: torch.Tensor, sigma: torch.Tensor, scale_factor: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """scale_factor * (mu + sigma * eps): what the diffusion model learns to generate."""
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float32).to(mu.device)
    return scale_factor * (mu.float() + sigma.float() * eps)
