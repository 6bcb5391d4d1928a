"""Generate chest X-rays from report text with the trained models, without DVC.

    python -m cxrldm.cli.generate --prompt "Large right pleural effusion." --n 4 --out samples/ [--dicom] [--burn-label]

With --dicom each image is also written as a DICOM Secondary Capture marked synthetic (cxrldm.data.dicom_output),
one new study and series per run; --burn-label draws "SYNTHETIC" into the pixels of the PNG and the DICOM.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pandas as pd
from pydicom.uid import generate_uid
from tqdm import tqdm

from cxrldm.data import dicom_output
from cxrldm.data.images import save_gray, to_uint8
from cxrldm.io import write_csv
from cxrldm.sampling import SAMPLERS
from cxrldm.sampling.generation import generate_images, load_models

MANIFEST_COLUMNS = ["prompt", "seed", "guidance", "sampler", "steps", "file", "dicom"]
def read_manifest(path: Path) -> list[dict]:
    """The rows of an earlier run's manifest.csv in the same output directory, so a new run adds to it."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def generate_run(models, models_dir, out, prompts: list[str], seeds: list[int], guidance: float, steps: int,
                 sampler: str, dicom: bool = False, burn_label: bool = False, progress=None) -> list[dict]:
    """Generate one image per (prompt, seed) as the command line does (it and the web app both call this):
    writes seedN.png (and seedN.dcm) into `out` and adds the rows to out/manifest.csv; returns all its rows."""
    out = Path(out)
    rows = read_manifest(out / "manifest.csv")
    images = generate_images(models, prompts, seeds, sampler, steps, guidance, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    if dicom:                                          # the hash reads every model file: only for DICOM
        study, series, model = generate_uid(), generate_uid(), dicom_output.model_hash(models_dir)
    for number, (prompt, seed, image) in enumerate(zip(prompts, seeds, images), 1):
        name = f"seed{seed}.png"
        pixels = to_uint8(image)
        if burn_label:
            pixels = dicom_output.burn_label(pixels)
        save_gray(pixels, out / name)
        row = {"prompt": prompt, "seed": seed, "guidance": guidance, "sampler": sampler,
               "steps": steps, "file": name, "dicom": ""}
        if dicom:
            row["dicom"] = f"seed{seed}.dcm"
            comments = dicom_output.generated_comments(prompt, {"seed": seed, "guidance": guidance,
                                                                "sampler": sampler, "steps": steps}, model)
            dicom_output.write(dicom_output.secondary_capture(
                pixels, dicom_output.GENERATED, comments, study, series, number,
                burned_in=burn_label, software=f"cxrldm model {model[:16]}"), out / row["dicom"])
        rows.append(row)
    write_csv(out / "manifest.csv", pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate chest X-rays from report text.")
    parser.add_argument("--prompt", action="append", required=True, help="report text; repeat for several prompts")
    parser.add_argument("--n", type=int, default=4, help="images per prompt")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (seed: 7.0)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sampler", default="ddim", choices=SAMPLERS)
    parser.add_argument("--seed", type=int, default=None,
                        help="first seed; image k uses seed + k (default: 0, or after the last seed already in OUT)")
    parser.add_argument("--models", default="models", help="directory with the trained models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dicom", action="store_true", help="also write each image as a DICOM file marked synthetic")
    parser.add_argument("--burn-label", action="store_true", help='draw "SYNTHETIC" into the pixels')
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = read_manifest(out / "manifest.csv")   # a run into the same directory adds to it, never overwrites
    used = {int(row["seed"]) for row in rows}
    first = args.seed if args.seed is not None else max(used, default=-1) + 1
    prompts = [p for p in args.prompt for _ in range(args.n)]
    seeds = [first + k for k in range(len(prompts))]
    if used & set(seeds):
        raise SystemExit(f"error: seed {min(used & set(seeds))} is already in {out / 'manifest.csv'}; "
                         "leave out --seed to continue after the last one, or choose another --out")
    try:
        models = load_models(args.models, device=args.device)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    try:
        rows = generate_run(models, args.models, out, prompts, seeds, args.guidance, args.steps, args.sampler,
                            args.dicom, args.burn_label, progress=tqdm)
    except ValueError as error:                        # e.g. ddpm with fewer steps than training timesteps
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {len(prompts)} images to {out}; manifest.csv lists {len(rows)}")


if __name__ == "__main__":
    main()
