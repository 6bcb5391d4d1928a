"""The samples the sample stage wrote (prompt groups, unconditional ones) and the report-conditioned ones
the sample_reports stage wrote, with their studies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from cxrldm.data.datasets import load_images
from cxrldm.data.images import load_array


def report_samples(directory: str | Path, purpose: str | None) -> tuple[pd.DataFrame, torch.Tensor]:
    """The rows of stage sample_reports' manifest for one purpose (test / train; None: all), and their images."""
    directory = Path(directory)
    manifest = pd.read_csv(directory / "manifest.csv", keep_default_na=False)
    if purpose is not None:
        manifest = manifest[manifest.purpose == purpose].reset_index(drop=True)
    if not len(manifest):
        raise ValueError(
            f"{directory / 'manifest.csv'} has no {purpose or ''} rows: set sample_reports.{purpose or 'test'}_studies"
        )
    from PIL import Image

    size = Image.open(directory / manifest.file[0]).size[0]
    return manifest, load_images(directory, manifest.file, size)


def prompt_samples(directory: str | Path) -> tuple[pd.DataFrame, torch.Tensor]:
    """The sample stage's manifest and every image of it, (N, 1, H, W) in [0, 1], read once in the
    manifest's order (rows_images picks a part)."""
    directory = Path(directory)
    manifest = pd.read_csv(directory / "manifest.csv", keep_default_na=False)
    images = torch.stack([torch.from_numpy(load_array(directory / f).copy()) for f in manifest.file])
    return manifest, images.unsqueeze(1).float() / 255


def rows_images(manifest: pd.DataFrame, images: torch.Tensor, rows: pd.DataFrame) -> torch.Tensor:
    """The images of some rows of the manifest (`images` holds one per manifest row, in its order)."""
    return images[torch.from_numpy(manifest.index.isin(rows.index))]


def normal_prompt_rows(manifest: pd.DataFrame, normal_prompt, param: str) -> pd.DataFrame | None:
    """The manifest rows of a normal report's prompt (its index in the sample prompts), or None where
    `normal_prompt` is None; a prompt that has a finding, or none at all, is a one-line error naming `param`."""
    if normal_prompt is None:
        return None
    rows = manifest[manifest.group.astype(str) == str(normal_prompt)]
    if rows.empty or (rows.finding != "").any():
        without = sorted(set(manifest.group[manifest.finding == ""].astype(str)) - {"unconditional"})
        raise ValueError(
            f"{param}: {normal_prompt} is not a sample prompt without a finding "
            f"(prompts without one: {', '.join(without) or 'none'}; null: compare with the null prompt only)"
        )
    return rows
