"""Edit a chest X-ray towards a report text from the command line (the library is
cxrldm.sampling.runs.edit_film, on cxrldm.sampling.editing; the web app calls it too).

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
from pathlib import Path

from cxrldm.data import dicom
from cxrldm.sampling.editing import ZONES, EditError
from cxrldm.sampling.runs import EDIT_DEFAULTS, check_inputs, edit_film


def main(argv=None) -> None:
    from tqdm import tqdm

    from cxrldm.sampling.generation import load_models

    parser = argparse.ArgumentParser(description="Edit a chest X-ray towards a report text.")
    parser.add_argument("--image", required=True, help="input radiograph (PNG, JPEG or DICOM; grayscale)")
    parser.add_argument("--prompt", required=True, help="report text of the wanted image")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--strength", type=float, default=EDIT_DEFAULTS["strength"], help="0: unchanged ... 1: a new image"
    )
    parser.add_argument("--guidance", type=float, default=EDIT_DEFAULTS["guidance"])
    parser.add_argument(
        "--steps", type=int, default=EDIT_DEFAULTS["steps"], help="DDIM steps of a full denoising (strength 1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--edit-mask", help=f"where change is allowed: a PNG (>= 128 selects) or a zone: {', '.join(ZONES)}"
    )
    parser.add_argument("--keep-mask", help="where nothing may change: a PNG or a zone")
    parser.add_argument(
        "--feather", type=float, default=EDIT_DEFAULTS["feather"], help="paste-back border width in model pixels"
    )
    parser.add_argument("--models", default="models", help="directory with the trained models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dicom", action="store_true", help="also write the edited film as a DICOM file marked edited")
    parser.add_argument(
        "--keep-patient",
        action="store_true",
        help="with --dicom and a DICOM input: the edited film keeps the source's patient and study",
    )
    parser.add_argument("--burn-label", action="store_true", help='draw "SYNTHETIC" into the edited pixels')
    args = parser.parse_args(argv)
    try:
        check_inputs(
            args.image, args.edit_mask, args.keep_mask, args.strength, args.steps, args.dicom, args.keep_patient
        )
        models = load_models(args.models, device=args.device)
        run = edit_film(
            models,
            args.models,
            args.image,
            args.prompt,
            args.out,
            args.strength,
            args.guidance,
            args.steps,
            args.seed,
            args.edit_mask,
            args.keep_mask,
            args.feather,
            args.dicom,
            args.keep_patient,
            args.burn_label,
            progress=tqdm,
        )
    except (EditError, dicom.DicomError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"wrote {Path(args.out) / run.names['edited']} and its difference map: {run.changed} of "
        f"{run.edited.size} pixels changed"
    )


if __name__ == "__main__":
    main()
