"""Screen autoencoder levers by what the realism test sees in their reconstructions, before spending a full
`dvc exp run` on one: for each variant of params.yaml's train_aekl section and each training seed, train the
autoencoder (as stage train_aekl does, in a temporary folder), reconstruct the held-out films and print the
realism AUROC (the realism stage's judge, films and settings) with MS-SSIM, PSNR, edge energy and seconds.

    python benchmarks/autoencoder_realism.py baseline adv_weight=0.01,adv_start_epoch=10 --seeds 0 1 2

Run it in a workspace where `dvc repro resize` has run (it reads data/resized). Each variant is a comma-
separated list of train_aekl overrides (YAML values); `baseline` is params.yaml as it stands. Intervals are
over images, within one training run; the spread over seeds is the table's rows."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cxrldm import paths
from cxrldm.data.datasets import RadiographDataset, load_images, read_split
from cxrldm.evaluation import similarity
from cxrldm.evaluation.realism import to_8bit, two_sample_test
from cxrldm.models.autoencoder import AutoencoderConfig, comparison_grid, reconstruct, train_autoencoder
from cxrldm.models.training import seed_everything, setup_runtime
from stages.realism import films, judge_options


def overrides(variant: str) -> dict:
    if variant == "baseline":
        return {}
    pairs = [item.split("=", 1) for item in variant.split(",")]
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def screen(params: dict, variant: str, seed: int, grids: Path | None = None) -> dict:
    cfg = AutoencoderConfig(**{**params["train_aekl"], **overrides(variant), "seed": seed})
    runtime = setup_runtime(cfg.precision, device="cpu")
    seed_everything(cfg.seed)
    train = read_split(paths.RESIZED, "train")
    val = read_split(paths.RESIZED, "validate", limit=cfg.val_images)
    train_set = RadiographDataset(paths.RESIZED, train.path, cfg.image_size, True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        autoencoder, _ = train_autoencoder(
            cfg, train_set, load_images(paths.RESIZED, val.path, cfg.image_size), runtime, Path(folder) / "c.pt", "b"
        )
    seconds = time.perf_counter() - started
    real, _, originals = films(params["realism"], cfg.image_size)
    autoencoder.eval()
    with torch.no_grad():
        recon = to_8bit(torch.cat([reconstruct(autoencoder, b, runtime).cpu() for b in originals.split(64)]))
    originals = to_8bit(originals)
    if grids is not None:  # originals above, reconstructions below
        grids.mkdir(parents=True, exist_ok=True)
        name = variant.replace("=", "").replace(",", "_").replace(".", "p")
        Image.fromarray(comparison_grid(originals, recon)).save(grids / f"{name}_seed{seed}.png")
    realism = two_sample_test(real[: len(recon)], recon, **judge_options(params["realism"], runtime))
    return {
        "variant": variant,
        "seed": seed,
        "realism": realism,
        "ms_ssim": similarity.ms_ssim(recon, originals, cfg.ms_ssim_kernel).mean().item(),
        "psnr": similarity.psnr(recon, originals).mean().item(),
        "edge_energy": similarity.edge_energy_ratio(recon, originals).mean().item(),
        "seconds": seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="baseline, or key=value,key=value of train_aekl")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--grids", type=Path, help="a folder for each run's originals-over-reconstructions grid")
    args = parser.parse_args(argv)
    params = yaml.safe_load(Path(args.params).read_text())
    print(
        "| variant | seed | realism AUROC [95% over images] | sharpness alone | MS-SSIM | PSNR dB | edge energy | s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        for seed in args.seeds:
            r = screen(params, variant, seed, args.grids)
            a = r["realism"]
            print(
                f"| {variant} | {seed} | {a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}] | "
                f"{a['sharpness_auroc']['value']:.3f} | {r['ms_ssim']:.3f} | {r['psnr']:.2f} | "
                f"{r['edge_energy']:.3f} | {r['seconds']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
