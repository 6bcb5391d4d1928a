"""Runs on the trained models as the command line writes them, for `python -m cxrldm.cli.generate`,
`python -m cxrldm.cli.edit` and the web app alike: generate a run of images from prompts (seedN.png, and
DICOM) with its manifest.csv, edit one film (the edited film, its difference map, and DICOM) with its
manifest row, and read a run's manifest so a new run in the same folder adds to it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydicom.uid import generate_uid

from cxrldm.data import dicom_output
from cxrldm.data.dicom import is_dicom, read_dataset
from cxrldm.data.images import save_gray, to_uint8
from cxrldm.io import file_sha256, write_csv
from cxrldm.sampling.editing import (
    ZONES,
    EditError,
    difference_map,
    edit_images,
    feather,
    mask_from,
    read_grayscale,
    square_crop_box,
    start_index,
    to_image,
    to_model,
)
from cxrldm.sampling.generation import generate_images

GENERATE_COLUMNS = ["prompt", "seed", "guidance", "sampler", "steps", "file", "dicom"]
EDIT_COLUMNS = [
    "input",
    "prompt",
    "edit_mask",
    "keep_mask",
    "strength",
    "guidance",
    "steps",
    "seed",
    "feather_px",
    "edited",
    "difference",
    "dicom",
]
# the command line's defaults (the app's where no pipeline record of the models says otherwise)
GENERATE_DEFAULTS = {"guidance": 3.0, "steps": 50, "sampler": "ddim"}
EDIT_DEFAULTS = {"strength": 0.5, "guidance": 3.0, "steps": 50, "feather": 2.0}


def read_manifest(path: Path) -> list[dict]:
    """The rows of an earlier run's manifest.csv in the same output directory, so a new run adds to it."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def generate_run(
    models,
    models_dir,
    out,
    prompts: list[str],
    seeds: list[int],
    guidance: float,
    steps: int,
    sampler: str,
    dicom: bool = False,
    burn_label: bool = False,
    progress=None,
) -> list[dict]:
    """Generate one image per (prompt, seed) as the command line does (it and the web app both call this):
    writes seedN.png (and seedN.dcm) into `out` and adds the rows to out/manifest.csv; returns all its rows."""
    out = Path(out)
    rows = read_manifest(out / "manifest.csv")
    images = generate_images(models, prompts, seeds, sampler, steps, guidance, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    if dicom:  # the hash reads every model file: only for DICOM
        study, series, model = generate_uid(), generate_uid(), dicom_output.model_hash(models_dir)
    for number, (prompt, seed, image) in enumerate(zip(prompts, seeds, images), 1):
        name = f"seed{seed}.png"
        pixels = to_uint8(image)
        if burn_label:
            pixels = dicom_output.burn_label(pixels)
        save_gray(pixels, out / name)
        row = {
            "prompt": prompt,
            "seed": seed,
            "guidance": guidance,
            "sampler": sampler,
            "steps": steps,
            "file": name,
            "dicom": "",
        }
        if dicom:
            row["dicom"] = f"seed{seed}.dcm"
            comments = dicom_output.generated_comments(
                prompt, {"seed": seed, "guidance": guidance, "sampler": sampler, "steps": steps}, model
            )
            dicom_output.write(
                dicom_output.secondary_capture(
                    pixels,
                    dicom_output.GENERATED,
                    comments,
                    study,
                    series,
                    number,
                    burned_in=burn_label,
                    software=f"cxrldm model {model[:16]}",
                ),
                out / row["dicom"],
            )
        rows.append(row)
    write_csv(out / "manifest.csv", pd.DataFrame(rows, columns=GENERATE_COLUMNS))
    return rows


def mask_words(spec: str | None, default: str) -> str:
    """A mask as the DICOM comments record it: its zone, or a file by its hash (a file name may identify)."""
    if not spec:
        return default
    return spec if spec in ZONES else f"file sha256 {file_sha256(spec)}"


@dataclass
class EditRun:
    """What edit_film wrote: the file names in `out`, the manifest row and the pixel arrays."""

    names: dict
    row: dict
    original: np.ndarray
    edited: np.ndarray
    difference: np.ndarray
    changed: int


def check_inputs(image, edit_mask, keep_mask, strength, steps, dicom_out=False, keep_patient=False):
    """The film (uint8 H x W), its edit and keep masks at full size and the DICOM source (or None); raises
    EditError (or cxrldm.data.dicom.DicomError) with one line naming the bad input."""
    source = read_dataset(image, pixels=False) if is_dicom(image) else None
    if keep_patient and (source is None or not dicom_out):
        raise EditError("--keep-patient needs --dicom and a DICOM --image (it copies the source's patient)")
    pixels = read_grayscale(image)
    height, width = pixels.shape
    edit_full = mask_from(edit_mask, height, width, 1.0)
    keep_full = mask_from(keep_mask, height, width, 0.0)
    if edit_full.sum() == 0:
        raise EditError(f"{edit_mask}: the edit mask selects no pixel")
    start_index(strength, steps)
    return pixels, edit_full, keep_full, source


def edit_film(
    models,
    models_dir,
    image,
    prompt: str,
    out,
    strength: float = EDIT_DEFAULTS["strength"],
    guidance: float = EDIT_DEFAULTS["guidance"],
    steps: int = EDIT_DEFAULTS["steps"],
    seed: int = 0,
    edit_mask: str | None = None,
    keep_mask: str | None = None,
    feather_px: float = EDIT_DEFAULTS["feather"],
    dicom_out: bool = False,
    keep_patient: bool = False,
    burn_label: bool = False,
    progress=None,
) -> EditRun:
    """Edit one film as `python -m cxrldm.cli.edit` does (the command line and the web app both call this):
    writes the edited film, its difference map (and DICOM) into `out` and adds the run's row to
    out/manifest.csv. Raises EditError for bad input."""
    pixels, edit_full, keep_full, source = check_inputs(
        image, edit_mask, keep_mask, strength, steps, dicom_out, keep_patient
    )
    height, width = pixels.shape
    top, left, side = square_crop_box(height, width)
    scale = models.image_size / side
    model_edit = F.interpolate(
        edit_full[top : top + side, left : left + side][None, None], size=models.image_size, mode="area"
    )
    model_keep = F.interpolate(
        keep_full[top : top + side, left : left + side][None, None], size=models.image_size, mode="area"
    )
    inside = torch.zeros(height, width)
    inside[top : top + side, left : left + side] = 1.0  # the model sees only the centred square
    weights = feather(edit_full * (1 - keep_full) * inside, feather_px / scale)
    result = edit_images(
        models,
        to_model(pixels, models.image_size),
        [prompt],
        [seed],
        strength,
        guidance,
        steps,
        (model_edit > 0).float(),
        (model_keep > 0).float(),
        feather_px,
        progress=progress,
    )
    denoised = start_index(strength, steps) < steps  # else no step ran: the film itself
    edited = to_image(pixels, result.edited, weights) if denoised else pixels
    out = Path(out)
    stem = f"{Path(image).stem}_seed{seed}"
    names = {"edited": f"{stem}_edited.png", "difference": f"{stem}_difference.png"}
    difference = difference_map(torch.from_numpy(edited / 255.0), torch.from_numpy(pixels / 255.0))
    difference = (difference * 255).round().byte().numpy()
    changed = int((edited != pixels).sum())
    if burn_label:
        edited = dicom_output.burn_label(edited)
    save_gray(edited, out / names["edited"])
    save_gray(difference, out / names["difference"])
    names["dicom"] = f"{stem}_edited.dcm" if dicom_out else ""
    if dicom_out:
        model = dicom_output.model_hash(models_dir)
        comments = dicom_output.edited_comments(
            prompt,
            {
                "seed": seed,
                "strength": strength,
                "guidance": guidance,
                "steps": steps,
                "edit mask": mask_words(edit_mask, "whole"),
                "keep mask": mask_words(keep_mask, "none"),
                "source sha256": file_sha256(image),
            },
            model,
        )
        dicom_output.write(
            dicom_output.secondary_capture(
                edited,
                dicom_output.EDITED,
                comments,
                generate_uid(),
                generate_uid(),
                1,
                source=source,
                keep_patient=keep_patient,
                burned_in=burn_label,
                software=f"cxrldm model {model[:16]}",
            ),
            out / names["dicom"],
        )
    rows = read_manifest(out / "manifest.csv")
    row = {
        "input": str(image),
        "prompt": prompt,
        "edit_mask": edit_mask or "",
        "keep_mask": keep_mask or "",
        "strength": strength,
        "guidance": guidance,
        "steps": steps,
        "seed": seed,
        "feather_px": feather_px,
        **names,
    }
    rows.append(row)
    write_csv(out / "manifest.csv", pd.DataFrame(rows, columns=EDIT_COLUMNS))
    return EditRun(names, row, pixels, edited, difference, changed)
