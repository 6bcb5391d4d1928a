"""Generate chest X-rays from report text with the trained models, without DVC.

    python -m cxrldm.generate --prompt "Large right pleural effusion." --n 4 --out samples/
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from . import nets
from .io import atomic_path
from .sampling import generate, make_scheduler
from .text import TextEncoder
from .training import Runtime, setup_runtime


@dataclass
class Models:
    unet: torch.nn.Module
    autoencoder: torch.nn.Module
    encoder: TextEncoder
    scale_factor: float
    latent_shape: list[int]
    schedule: dict          # num_train_timesteps, beta_start, beta_end, prediction_type
    runtime: Runtime
    image_size: int         # the autoencoder's square input size


def load_models(models_dir: str | Path = "models", precision: str = "auto", device: str = "auto") -> Models:
    """The trained diffusion UNet, autoencoder, the text encoder they were trained with, and the scale factor."""
    models_dir = Path(models_dir)
    runtime = setup_runtime(precision, device)
    for name in ("diffusion.safetensors", "autoencoder.safetensors", "scale_factor.json"):
        if not (models_dir / name).exists():
            raise FileNotFoundError(f"{models_dir / name} not found: train the models first (make demo / dvc repro)")
    unet, description = nets.load_model(models_dir / "diffusion.safetensors", runtime.device)
    autoencoder, autoencoder_description = nets.load_model(models_dir / "autoencoder.safetensors", runtime.device)
    text = description["text_encoder"]
    encoder = TextEncoder(text["model"], text["encoder_subfolder"], text["tokenizer_subfolder"], text["max_length"],
                          runtime.device, null_token_ids=description.get("null_token_ids"))
    scale_factor = json.loads((models_dir / "scale_factor.json").read_text())["scale_factor"]
    return Models(unet, autoencoder, encoder, scale_factor, description["latent_shape"], description["scheduler"], runtime,
                  autoencoder_description["image_size"])


def generate_images(models: Models, prompts: list[str], seeds: list[int], sampler: str, steps: int, guidance: float,
                    batch_size: int = 16, progress=None) -> torch.Tensor:
    """One image per (prompt, seed) pair, in [0, 1]; "" is the null prompt (unconditional)."""
    null = models.encoder.null_condition()
    images = []
    starts = range(0, len(prompts), batch_size)
    for start in progress(starts, desc="generating", total=len(starts)) if progress else starts:
        chunk, chunk_seeds = prompts[start:start + batch_size], seeds[start:start + batch_size]
        scheduler = make_scheduler(sampler, **models.schedule)
        images.append(generate(models.unet, models.autoencoder, scheduler, models.encoder.condition(chunk), null,
                               chunk_seeds, models.latent_shape, models.scale_factor, steps, guidance, models.runtime))
    return torch.cat(images)


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """(1, H, W) in [0, 1] -> 8-bit grayscale PNG."""
    pixels = (image[0].clamp(0, 1) * 255).round().byte().numpy()
    with atomic_path(path, clean_stale=False) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


MANIFEST_COLUMNS = ["prompt", "seed", "guidance", "sampler", "steps", "file"]


def read_manifest(path: Path) -> list[dict]:
    """The rows of an earlier run's manifest.csv in the same output directory, so a new run adds to it."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate chest X-rays from report text.")
    parser.add_argument("--prompt", action="append", required=True, help="report text; repeat for several prompts")
    parser.add_argument("--n", type=int, default=4, help="images per prompt")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (seed: 7.0)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "pndm"])
    parser.add_argument("--seed", type=int, default=None,
                        help="first seed; image k uses seed + k (default: 0, or after the last seed already in OUT)")
    parser.add_argument("--models", default="models", help="directory with the trained models")
    parser.add_argument("--device", default="auto")
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
        images = generate_images(models, prompts, seeds, args.sampler, args.steps, args.guidance, progress=tqdm)
    except ValueError as error:                        # e.g. ddpm with fewer steps than training timesteps
        raise SystemExit(f"error: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    for prompt, seed, image in zip(prompts, seeds, images):
        name = f"seed{seed}.png"
        save_png(image, out / name)
        rows.append({"prompt": prompt, "seed": seed, "guidance": args.guidance, "sampler": args.sampler,
                     "steps": args.steps, "file": name})
    with atomic_path(out / "manifest.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(prompts)} images to {out}; manifest.csv lists {len(rows)}")


if __name__ == "__main__":
    main()
