"""Reading the sample stage's manifest and images, and picking a prompt group's rows."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cxrldm.evaluation.samples import normal_prompt_rows, prompt_samples, rows_images


def test_prompt_samples_reads_every_image_once_in_manifest_order(tmp_path):
    pixels = [np.full((8, 8), value, np.uint8) for value in (0, 51, 255)]
    files = ["unconditional_seed2.png", "prompt000_seed0.png", "prompt001_seed1.png"]
    for file, image in zip(files, pixels):
        Image.fromarray(image).save(tmp_path / file)
    pd.DataFrame(
        {
            "group": ["unconditional", 0, 1],
            "prompt": ["", "A.", "B."],
            "finding": ["", "", ""],
            "side": ["", "", ""],
            "file": files,
        }
    ).to_csv(tmp_path / "manifest.csv", index=False)
    manifest, images = prompt_samples(tmp_path)
    assert manifest.file.tolist() == files and manifest.finding.tolist() == ["", "", ""]  # no NaN for ""
    assert images.shape == (3, 1, 8, 8) and images.dtype == torch.float32
    assert torch.equal(images[:, 0, 0, 0], torch.tensor([0, 51, 255]).float() / 255)


def test_rows_images_picks_by_row_not_by_position():
    manifest = pd.DataFrame({"group": ["a", "b", "a", "b"]})
    images = torch.arange(4.0)[:, None]
    assert rows_images(manifest, images, manifest[manifest.group == "b"]).flatten().tolist() == [1.0, 3.0]
    assert rows_images(manifest, images, manifest[manifest.group == "c"]).shape == (0, 1)


def test_normal_prompt_must_name_a_prompt_without_a_finding():
    """evaluate.normal_prompt picks the images a finding prompt is contrasted with; a prompt that has a finding,
    or none at all, is a one-line error naming the param, not a silent comparison with the wrong images."""
    manifest = pd.DataFrame(
        {
            "group": ["unconditional", "0", "0", "1", "1"],
            "prompt": ["", "Normal.", "Normal.", "Big heart.", "Big heart."],
            "finding": ["", "", "", "Cardiomegaly", "Cardiomegaly"],
        }
    )
    images = torch.arange(5.0)
    rows = normal_prompt_rows(manifest, 0, "evaluate.normal_prompt")
    text, normal = rows.prompt.iloc[0], rows_images(manifest, images, rows)
    assert text == "Normal." and normal.tolist() == [1.0, 2.0]
    assert normal_prompt_rows(manifest, None, "evaluate.normal_prompt") is None
    for wrong in (1, 7):
        with pytest.raises(ValueError, match=r"evaluate.normal_prompt: .*\(prompts without one: 0;"):
            normal_prompt_rows(manifest, wrong, "evaluate.normal_prompt")
