"""Floating-point work of the seed configuration, counted (torch's FlopCounterMode, which counts the
convolutions and matrix products, on one real training step per network, batch 1), and the GPU time it implies for the seed's epochs on MIMIC-CXR's PA training
split at a stated sustained throughput. A planning estimate for GPUs not measured here; gpu_smoke.py
measures real step times where a GPU is available.

    python benchmarks/seed_flops.py [--profile configs/mimic.yaml] [--images 94000] [--tflops 100 400]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from cxrldm.models import networks
from cxrldm.models.autoencoder import AutoencoderConfig, SampledAutoencoder, build_training
from cxrldm.models.autoencoder import train_step as autoencoder_step
from cxrldm.models.diffusion import DiffusionConfig
from cxrldm.models.text import encoder_width
from cxrldm.models.training import Runtime


def counted(step) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def autoencoder_flops(params: dict) -> float:
    """One image through the generator update and the discriminator update (adversarial phase), without
    the perceptual network (its SqueezeNet adds little and may be offline)."""
    cfg = dataclasses.replace(AutoencoderConfig(**params["train_aekl"]), perceptual_weight=0.0, batch_size=1)
    runtime = Runtime(torch.device("cpu"), "fp32")
    autoencoder, *rest = build_training(cfg, runtime)
    images = torch.rand(1, 1, cfg.image_size, cfg.image_size)
    eps = torch.randn([1, *networks.latent_shape(cfg.autoencoder_kwargs(), cfg.image_size)])
    return counted(
        lambda: autoencoder_step(images, eps, SampledAutoencoder(autoencoder), *rest, cfg, runtime, adversarial=True)
    )


def unet_flops(params: dict) -> float:
    """One latent through the UNet's forward and backward."""
    cfg, ae, text = DiffusionConfig(**params["train_ldm"]), params["train_aekl"], params["text_encoder"]
    width = encoder_width(text["model"], text["encoder_subfolder"])
    unet = networks.build("DiffusionModelUNet", cfg.unet_kwargs(ae["latent_channels"], width))
    shape = networks.latent_shape(AutoencoderConfig(**ae).autoencoder_kwargs(), ae["image_size"])
    x, context = torch.randn(1, *shape), torch.randn(1, text["max_length"], width)
    return counted(lambda: unet(x, torch.tensor([500]), context).square().mean().backward())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=str(ROOT / "configs" / "mimic.yaml"))
    parser.add_argument("--images", type=int, default=94_000, help="PA training images (MIMIC-CXR: about 94k)")
    parser.add_argument(
        "--tflops",
        type=float,
        nargs="+",
        default=[100.0, 400.0],
        help="sustained TFLOP/s of the whole job to project for",
    )
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.profile).read_text())
    rows = [
        ("train_aekl", autoencoder_flops(params), params["train_aekl"]["epochs"]),
        ("train_ldm", unet_flops(params), params["train_ldm"]["epochs"]),
    ]
    header = " | ".join(f"GPU-hours at {t:g} TFLOP/s" for t in args.tflops)
    print(f"profile {Path(args.profile).name}, {args.images:,} training images\n")
    print(f"| stage | GFLOP per image per step | epochs | total PFLOP | {header} |")
    print("|---|---:|---:|---:|" + "---:|" * len(args.tflops))
    for stage, flops, epochs in rows:
        total = flops * args.images * epochs
        hours = " | ".join(f"{total / (t * 1e12) / 3600:.1f}" for t in args.tflops)
        print(f"| {stage} | {flops / 1e9:.1f} | {epochs} | {total / 1e15:,.0f} | {hours} |")


if __name__ == "__main__":
    main()
