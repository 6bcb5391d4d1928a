"""Training data: resized radiographs as square float tensors in [0, 1], and their augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from cxrldm.data.images import load_resized

IMAGES_CSV = "images.csv"


def read_images(resized_dir: str | Path) -> pd.DataFrame:
    """The resize stage's images.csv (every split): the one reader of that table."""
    return pd.read_csv(Path(resized_dir) / IMAGES_CSV, dtype={"dicom_id": str})


def read_split(resized_dir: str | Path, split: str, limit: int | None = None) -> pd.DataFrame:
    """Rows of the resize stage's images.csv for one split (train / validate / test)."""
    table = read_images(resized_dir)
    table = table[table.split == split].reset_index(drop=True)
    if not len(table):
        raise ValueError(f"no '{split}' images in {Path(resized_dir) / IMAGES_CSV}")
    return table.iloc[:limit] if limit else table


def load_square(path: str | Path, size: int) -> np.ndarray:
    """uint8 (size, size): shortest side resized to `size`, then the centre crop."""
    image = np.asarray(load_resized(path, size))
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


class RadiographDataset(Dataset):
    """Square 1-channel float images in [0, 1]. With `in_memory` every image is decoded once into a
    uint8 tensor (the demo: a few MB); otherwise each item is read from disk (MIMIC at 512 px: 25 GB)."""

    def __init__(self, root: str | Path, paths, size: int, in_memory: bool = True, progress=None):
        self.root, self.paths, self.size = Path(root), list(paths), size
        self.cache = None
        if in_memory:
            items = progress(self.paths, desc="loading images") if progress else self.paths
            self.cache = torch.from_numpy(np.stack([load_square(self.root / p, size) for p in items]))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = (
            self.cache[index]
            if self.cache is not None
            else torch.from_numpy(load_square(self.root / self.paths[index], self.size).copy())
        )
        return pixels.unsqueeze(0).float() / 255.0


def load_images(root: str | Path, paths, size: int, progress=None) -> torch.Tensor:
    """(N, 1, size, size) float images in [0, 1], each decoded once."""
    return RadiographDataset(root, paths, size, True, progress).cache.unsqueeze(1).float() / 255.0
