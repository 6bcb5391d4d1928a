"""Edit a chest X-ray towards a report text from the command line (the library is
cxrldm.sampling.editing).

    python -m cxrldm.cli.edit --image IN.png --prompt "Large right pleural effusion." --out DIR \\
        [--strength 0.5] [--edit-mask EDIT.png] [--keep-mask KEEP.png] [--dicom [--keep-patient]] [--burn-label]

The image and masks may be DICOM files (displayed as their headers say, cxrldm.data.dicom). --dicom also
writes the edited film as a DICOM Secondary Capture marked "edited by a generative model"
(cxrldm.data.dicom_output): a new patient (SYNTHETIC) and study unless --keep-patient copies the source's
patient and study; a DICOM source is referenced in SourceImageSequence. --burn-label draws "SYNTHETIC" into
the edited film's pixels (PNG and DICOM).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydicom.uid import generate_uid

from cxrldm.data import dicom, dicom_output
from cxrldm.data.images import save_gray
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

MANIFEST_COLUMNS = ["input", "prompt", "edit_mask", "keep_mask", "strength", "guidance", "steps", "seed",
                    "feather_px", "edited", "difference", "dicom"]


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
    EditError (or dicom.DicomError) with one line naming the bad input."""
    source = dicom.read_dataset(image, pixels=False) if dicom.is_dicom(image) else None
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


def edit_film(models, models_dir, image, prompt: str, out, strength: float = 0.5, guidance: float = 3.0,
              steps: int = 50, seed: int = 0, edit_mask: str | None = None, keep_mask: str | None = None,
              feather_px: float = 2.0, dicom_out: bool = False, keep_patient: bool = False,
              burn_label: bool = False, progress=None) -> EditRun:
    """Edit one film as `python -m cxrldm.cli.edit` does (the command line and the web app both call this):
    writes the edited film, its difference map (and DICOM) into `out` and adds the run's row to
    out/manifest.csv. Raises EditError for bad input."""
    from cxrldm.cli.generate import read_manifest

    pixels, edit_full, keep_full, source = check_inputs(image, edit_mask, keep_mask, strength, steps, dicom_out,
                                                        keep_patient)
    height, width = pixels.shape
    top, left, side = square_crop_box(height, width)
    scale = models.image_size / side
    model_edit = F.interpolate(edit_full[top:top + side, left:left + side][None, None], size=models.image_size,
                               mode="area")
    model_keep = F.interpolate(keep_full[top:top + side, left:left + side][None, None], size=models.image_size,
                               mode="area")
    inside = torch.zeros(height, width)
    inside[top:top + side, left:left + side] = 1.0          # the model sees only the centred square
    weights = feather(edit_full * (1 - keep_full) * inside, feather_px / scale)
    result = edit_images(models, to_model(pixels, models.image_size), [prompt], [seed], strength,
                         guidance, steps, (model_edit > 0).float(), (model_keep > 0).float(),
                         feather_px, progress=progress)
    denoised = start_index(strength, steps) < steps       # else no step ran: the film itself
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
        comments = dicom_output.edited_comments(prompt, {
            "seed": seed, "strength": strength, "guidance": guidance, "steps": steps,
            "edit mask": mask_words(edit_mask, "whole"), "keep mask": mask_words(keep_mask, "none"),
            "source sha256": file_sha256(image)}, model)
        dicom_output.write(dicom_output.secondary_capture(
            edited, dicom_output.EDITED, comments, generate_uid(),
            generate_uid(), 1, source=source, keep_patient=keep_patient,
            burned_in=burn_label, software=f"cxrldm model {model[:16]}"), out / names["dicom"])
    rows = read_manifest(out / "manifest.csv")
    row = {"input": str(image), "prompt": prompt, "edit_mask": edit_mask or "",
           "keep_mask": keep_mask or "", "strength": strength, "guidance": guidance,
           "steps": steps, "seed": seed, "feather_px": feather_px, **names}
    rows.append(row)
    write_csv(out / "manifest.csv", pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    return EditRun(names, row, pixels, edited, difference, changed)


def main(argv=None) -> None:
    from tqdm import tqdm

    from cxrldm.sampling.generation import load_models

    parser = argparse.ArgumentParser(description="Edit a chest X-ray towards a report text.")
    parser.add_argument("--image", required=True, help="input radiograph (PNG, JPEG or DICOM; grayscale)")
    parser.add_argument("--prompt", required=True, help="report text of the wanted image")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--strength", type=float, default=0.5, help="0: unchanged ... 1: a new image")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of a full denoising (strength 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edit-mask", help=f"where change is allowed: a PNG (>= 128 selects) or a zone: {', '.join(ZONES)}")
    parser.add_argument("--keep-mask", help="where nothing may change: a PNG or a zone")
    parser.add_argument("--feather", type=float, default=2.0, help="paste-back border width in model pixels")
    parser.add_argument("--models", default="models", help="directory with the trained models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dicom", action="store_true", help="also write the edited film as a DICOM file marked edited")
    parser.add_argument("--keep-patient", action="store_true",
                        help="with --dicom and a DICOM input: the edited film keeps the source's patient and study")
    parser.add_argument("--burn-label", action="store_true", help='draw "SYNTHETIC" into the edited pixels')
    args = parser.parse_args(argv)
    try:
        check_inputs(args.image, args.edit_mask, args.keep_mask, args.strength, args.steps, args.dicom,
                     args.keep_patient)
        models = load_models(args.models, device=args.device)
        run = edit_film(models, args.models, args.image, args.prompt, args.out, args.strength, args.guidance,
                        args.steps, args.seed, args.edit_mask, args.keep_mask, args.feather, args.dicom,
                        args.keep_patient, args.burn_label, progress=tqdm)
    except (EditError, dicom.DicomError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {Path(args.out) / run.names['edited']} and its difference map: {run.changed} of "
          f"{run.edited.size} pixels changed")


if __name__ == "__main__":
    main()
