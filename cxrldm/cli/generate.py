"""Generate chest X-rays from report text with the trained models, without DVC.

    python -m cxrldm.cli.generate --prompt "Large right pleural effusion." --n 4 --out samples/ [--dicom] [--burn-label]

With --dicom each image is also written as a DICOM Secondary Capture marked synthetic (cxrldm.data.dicom_output),
one new study and series per run; --burn-label draws "SYNTHETIC" into the pixels of the PNG and the DICOM.
The library is cxrldm.sampling.runs (generate_run), which the web app calls too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from cxrldm.sampling import SAMPLERS
from cxrldm.sampling.generation import load_models
from cxrldm.sampling.runs import GENERATE_DEFAULTS, generate_run, read_manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate chest X-rays from report text.")
    parser.add_argument("--prompt", action="append", required=True, help="report text; repeat for several prompts")
    parser.add_argument("--n", type=int, default=4, help="images per prompt")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--guidance",
        type=float,
        default=GENERATE_DEFAULTS["guidance"],
        help="classifier-free guidance scale (seed: 7.0)",
    )
    parser.add_argument("--steps", type=int, default=GENERATE_DEFAULTS["steps"])
    parser.add_argument("--sampler", default=GENERATE_DEFAULTS["sampler"], choices=SAMPLERS)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="first seed; image k uses seed + k (default: 0, or after the last seed already in OUT)",
    )
    parser.add_argument("--models", default="models", help="directory with the trained models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dicom", action="store_true", help="also write each image as a DICOM file marked synthetic")
    parser.add_argument("--burn-label", action="store_true", help='draw "SYNTHETIC" into the pixels')
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = read_manifest(out / "manifest.csv")  # a run into the same directory adds to it, never overwrites
    used = {int(row["seed"]) for row in rows}
    first = args.seed if args.seed is not None else max(used, default=-1) + 1
    prompts = [p for p in args.prompt for _ in range(args.n)]
    seeds = [first + k for k in range(len(prompts))]
    if used & set(seeds):
        raise SystemExit(
            f"error: seed {min(used & set(seeds))} is already in {out / 'manifest.csv'}; "
            "leave out --seed to continue after the last one, or choose another --out"
        )
    try:
        models = load_models(args.models, device=args.device)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    try:
        rows = generate_run(
            models,
            args.models,
            out,
            prompts,
            seeds,
            args.guidance,
            args.steps,
            args.sampler,
            args.dicom,
            args.burn_label,
            progress=tqdm,
        )
    except ValueError as error:  # e.g. ddpm with fewer steps than training timesteps
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {len(prompts)} images to {out}; manifest.csv lists {len(rows)}")


if __name__ == "__main__":
    main()
