"""The diffusion training step with cached latents (what train_ldm does) against encoding the images
through the autoencoder every step (the reference implementation's way), same UNet, batch and context.

    python benchmarks/ldm_step.py [--profile params.yaml] [--steps 10]
    python benchmarks/ldm_step.py --profile configs/mimic.yaml --context-width 1024 --batch 2 --steps 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cxrldm.models import networks
from cxrldm.models.diffusion import DiffusionConfig, build_training, draw_step, train_step
from cxrldm.models.training import Runtime, resolve_precision


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=str(ROOT / "params.yaml"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--context-width", type=int, default=384, help="text encoder width (demo 384, seed 1024)")
    parser.add_argument("--batch", type=int, default=None, help="override the profile's batch size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.profile).read_text())
    cfg = DiffusionConfig(**params["train_ldm"])
    ae = params["train_aekl"]
    ae_kwargs = networks.autoencoder_kwargs(
        ae["channels"], ae["latent_channels"], ae["num_res_blocks"], norm_num_groups=ae["norm_num_groups"]
    )
    device = torch.device(args.device)
    runtime = Runtime(device, resolve_precision(cfg.precision, device))
    torch.manual_seed(0)
    autoencoder = networks.build("AutoencoderKL", ae_kwargs).to(device).eval()
    unet, ema, optimizer, warmup, scaler = build_training(cfg, ae["latent_channels"], args.context_width, runtime)
    scheduler = cfg.noise_schedule()
    size, batch = ae["image_size"], args.batch or cfg.batch_size
    images = torch.rand(batch, 1, size, size, device=device)
    with torch.no_grad():
        mu, sigma = autoencoder.encode(images)
    context = torch.randn(batch, params["text_encoder"]["max_length"], args.context_width, device=device)

    def step(m, s):
        latents, noise, timesteps = (t.to(device) for t in draw_step(m, s, 0.5, cfg.num_train_timesteps, None))
        train_step(unet, ema, optimizer, warmup, scaler, scheduler, latents, noise, timesteps, context, cfg, runtime)

    def cached():
        step(mu, sigma)

    def encode_every_step():
        with torch.no_grad(), runtime.autocast():
            m, s = autoencoder.encode(images)
        step(m.float(), s.float())

    def seconds_per_step(step) -> float:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.steps

    encoding = seconds_per_step(encode_every_step)
    caching = seconds_per_step(cached)
    print(
        f"{Path(args.profile).name}: UNet {networks.n_params(unet) / 1e6:.2f} M params, autoencoder "
        f"{networks.n_params(autoencoder) / 1e6:.2f} M, {size} px images -> latents {list(mu.shape[1:])}, batch {batch}, "
        f"{device} {runtime.precision}, {args.steps} timed steps\n"
    )
    print("| latents | s/step | images/s |")
    print("|---|---:|---:|")
    print(f"| encoded by the autoencoder every step (reference) | {encoding:.3f} | {batch / encoding:.1f} |")
    print(f"| cached once by the scale_factor stage (ours) | {caching:.3f} | {batch / caching:.1f} |")
    print(f"\nspeed-up: {encoding / caching:.2f}x")


if __name__ == "__main__":
    main()
