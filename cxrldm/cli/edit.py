"""Edit a chest X-ray towards a report text from the command line (the library is
cxrldm.sampling.editing).

    python -m cxrldm.cli.edit --image IN.png --prompt "Large right pleural effusion." --out DIR \\
        [--strength 0.5] [--edit-mask EDIT.png] [--keep-mask KEEP.png]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
import torch.nn.functional as F

from cxrldm.data.images import save_gray
from cxrldm.io import atomic_path
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
                    "feather_px", "edited", "difference"]


def main(argv=None) -> None:
    from tqdm import tqdm

    from cxrldm.cli.generate import read_manifest
    from cxrldm.sampling.generation import load_models

    parser = argparse.ArgumentParser(description="Edit a chest X-ray towards a report text.")
    parser.add_argument("--image", required=True, help="input radiograph (PNG/JPEG, grayscale)")
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
    args = parser.parse_args(argv)
    try:
        pixels = read_grayscale(args.image)
        height, width = pixels.shape
        edit_full = mask_from(args.edit_mask, height, width, 1.0)
        keep_full = mask_from(args.keep_mask, height, width, 0.0)
        if edit_full.sum() == 0:
            raise EditError(f"{args.edit_mask}: the edit mask selects no pixel")
        start_index(args.strength, args.steps)
        models = load_models(args.models, device=args.device)
    except (EditError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    top, left, side = square_crop_box(height, width)
    scale = models.image_size / side
    model_edit = F.interpolate(edit_full[top:top + side, left:left + side][None, None], size=models.image_size,
                               mode="area")
    model_keep = F.interpolate(keep_full[top:top + side, left:left + side][None, None], size=models.image_size,
                               mode="area")
    inside = torch.zeros(height, width)
    inside[top:top + side, left:left + side] = 1.0          # the model sees only the centred square
    weights = feather(edit_full * (1 - keep_full) * inside, args.feather / scale)
    try:
        result = edit_images(models, to_model(pixels, models.image_size), [args.prompt], [args.seed], args.strength,
                             args.guidance, args.steps, (model_edit > 0).float(), (model_keep > 0).float(),
                             args.feather, progress=tqdm)
    except EditError as error:
        raise SystemExit(f"error: {error}") from None
    denoised = start_index(args.strength, args.steps) < args.steps       # else no step ran: the film itself
    edited = to_image(pixels, result.edited, weights) if denoised else pixels
    out = Path(args.out)
    stem = f"{Path(args.image).stem}_seed{args.seed}"
    names = {"edited": f"{stem}_edited.png", "difference": f"{stem}_difference.png"}
    difference = difference_map(torch.from_numpy(edited / 255.0), torch.from_numpy(pixels / 255.0))
    save_gray(edited, out / names["edited"])
    save_gray((difference * 255).round().byte().numpy(), out / names["difference"])
    rows = read_manifest(out / "manifest.csv")
    rows.append({"input": str(args.image), "prompt": args.prompt, "edit_mask": args.edit_mask or "",
                 "keep_mask": args.keep_mask or "", "strength": args.strength, "guidance": args.guidance,
                 "steps": args.steps, "seed": args.seed, "feather_px": args.feather, **names})
    with atomic_path(out / "manifest.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    changed = int((edited != pixels).sum())
    print(f"wrote {out / names['edited']} and its difference map: {changed} of {edited.size} pixels changed")


if __name__ == "__main__":
    main()
