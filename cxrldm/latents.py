"""Latent distributions of the training images, computed once by the autoencoder, and the scale factor
that brings the latents to unit variance for diffusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
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


def save_latents(folder: str | Path, split: str, mu: torch.Tensor, sigma: torch.Tensor) -> None:
    """`<split>.mu.npy` and `<split>.sigma.npy` (float16, N x C x h x w): plain NumPy arrays that training
    memory-maps, so 96k latents (4.7 GB) are neither loaded whole nor copied per process."""
    for name, array in (("mu", mu), ("sigma", sigma)):
        with atomic_path(Path(folder) / f"{split}.{name}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array.numpy(), allow_pickle=False)


def load_latents(folder: str | Path, split: str) -> dict[str, np.ndarray]:
    """{"mu", "sigma"}: read-only memory maps of what save_latents wrote."""
    return {name: np.load(Path(folder) / f"{split}.{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ("mu", "sigma")}


def rows(array, index) -> torch.Tensor:
    """The rows `index` (a slice or an index tensor) of a latent array (memory map or tensor) as a tensor."""
    if isinstance(array, torch.Tensor):
        return array[index]
    index = index.numpy() if isinstance(index, torch.Tensor) else index
    return torch.from_numpy(np.array(array[index]))   # a copy: memory maps are read-only


def sample_latents(mu: torch.Tensor, sigma: torch.Tensor, scale_factor: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """scale_factor * (mu + sigma * eps): what the diffusion model learns to generate."""
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float32).to(mu.device)
    return scale_factor * (mu.float() + sigma.float() * eps)
