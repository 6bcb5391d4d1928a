"""Latent distributions of the training images, computed once by the autoencoder, and the scale factor
that brings the latents to unit variance for diffusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrldm.io import atomic_path
from cxrldm.models.training import Runtime


class LatentMoments:
    """Running float64 sums over every latent element, so the scale factor of 96k images needs no more
    memory than one batch: Var(z) = Var(mu) + E[sigma^2] for z = mu + sigma * eps, eps ~ N(0, 1)."""

    def __init__(self):
        self.count, self.sum_mu, self.sum_mu2, self.sum_sigma2 = 0, 0.0, 0.0, 0.0

    def add(self, mu: torch.Tensor, sigma: torch.Tensor) -> None:
        mu, sigma = mu.double(), sigma.double()
        self.count += mu.numel()
        self.sum_mu += float(mu.sum())
        self.sum_mu2 += float(mu.pow(2).sum())
        self.sum_sigma2 += float(sigma.pow(2).sum())

    @property
    def std(self) -> float:
        mean = self.sum_mu / self.count
        return float(np.sqrt(max(self.sum_mu2 / self.count - mean**2, 0.0) + self.sum_sigma2 / self.count))


def latent_std(mu: torch.Tensor, sigma: torch.Tensor) -> float:
    """Standard deviation over all elements of z = mu + sigma * eps in closed form (no sampling noise,
    no single batch)."""
    moments = LatentMoments()
    moments.add(mu, sigma)
    return moments.std


@torch.no_grad()
def encode_to_files(
    autoencoder,
    dataset,
    runtime: Runtime,
    batch_size: int,
    folder: str | Path,
    split: str,
    num_workers: int = 0,
    progress=None,
) -> float:
    """Encode every image once, in dataset order, into `<split>.mu.npy` and `<split>.sigma.npy` (float16,
    N x C x h x w, written batch by batch into memory maps) and return the latents' standard deviation."""
    if not len(dataset):
        raise ValueError(f"no {split} images to encode")
    autoencoder = autoencoder.to(runtime.device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    moments, arrays, start = LatentMoments(), {}, 0
    with (
        atomic_path(Path(folder) / f"{split}.mu.npy") as mu_tmp,
        atomic_path(Path(folder) / f"{split}.sigma.npy") as sigma_tmp,
    ):
        for images in progress(loader, desc=f"encoding {split}") if progress else loader:
            with runtime.autocast():
                mu, sigma = (t.float().cpu() for t in autoencoder.encode(images.to(runtime.device)))
            if not arrays:
                shape = (len(dataset), *mu.shape[1:])
                arrays = {
                    "mu": np.lib.format.open_memmap(mu_tmp, "w+", np.float16, shape),
                    "sigma": np.lib.format.open_memmap(sigma_tmp, "w+", np.float16, shape),
                }
            mu, sigma = mu.half(), sigma.half()
            arrays["mu"][start : start + len(mu)] = mu.numpy()
            arrays["sigma"][start : start + len(mu)] = sigma.numpy()
            moments.add(mu, sigma)  # of the stored float16 values, which training reads
            start += len(mu)
        for array in arrays.values():
            array.flush()
        del arrays
    return moments.std


def load_latents(folder: str | Path, split: str) -> dict[str, np.ndarray]:
    """{"mu", "sigma"}: read-only memory maps of what encode_to_files wrote (96k latents: 4.7 GB, neither
    loaded whole nor copied per process)."""
    return {
        name: np.load(Path(folder) / f"{split}.{name}.npy", mmap_mode="r", allow_pickle=False)
        for name in ("mu", "sigma")
    }


def rows(array, index) -> torch.Tensor:
    """The rows `index` (a slice or an index tensor) of a latent array (memory map or tensor) as a tensor."""
    if isinstance(array, torch.Tensor):
        return array[index]
    index = index.numpy() if isinstance(index, torch.Tensor) else index
    return torch.from_numpy(np.array(array[index]))  # a copy: memory maps are read-only


def sample_latents(
    mu: torch.Tensor, sigma: torch.Tensor, scale_factor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """scale_factor * (mu + sigma * eps): what the diffusion model learns to generate."""
    eps = torch.randn(mu.shape, generator=generator, dtype=torch.float32).to(mu.device)
    return scale_factor * (mu.float() + sigma.float() * eps)
