"""The report-conditioned samples the sample_reports stage wrote, with their studies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from cxrldm.data.datasets import load_images


def report_samples(directory: str | Path, purpose: str) -> tuple[pd.DataFrame, torch.Tensor]:
    """The rows of stage sample_reports' manifest for one purpose (test / train), and their images."""
    directory = Path(directory)
    manifest = pd.read_csv(directory / "manifest.csv", keep_default_na=False)
    manifest = manifest[manifest.purpose == purpose].reset_index(drop=True)
    if not len(manifest):
        raise ValueError(f"{directory / 'manifest.csv'} has no {purpose} rows: set sample_reports.{purpose}_studies")
    from PIL import Image
    size = Image.open(directory / manifest.file[0]).size[0]
    return manifest, load_images(directory, manifest.file, size)
