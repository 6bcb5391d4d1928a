"""GPU smoke test of the seed configuration: a few steps of each training stage and of sampling, with
step time, images/s and peak GPU memory for fp32, bf16 and fp16 (with loss scaling).

    python benchmarks/gpu_smoke.py [--profile configs/mimic.yaml] [--ae-batch 8] [--ldm-batch 32]
                                   [--sample-batch 16] [--steps 3] [--precisions fp32,bf16,fp16]

Random inputs stand in for data (shapes are what matter); the text context is random at the profile's
encoder width, so no hub download is needed. On a CPU it runs too (use small batches, --precisions fp32) and
reports the resident-memory high-water mark instead, a rough proxy for what the same work needs on a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # only the encoder width is needed; known ones are built in
sys.path.insert(0, str(ROOT))
from cxrldm.models import networks
from cxrldm.models.autoencoder import AutoencoderConfig, SampledAutoencoder
from cxrldm.models.autoencoder import build_training as build_autoencoder_training
from cxrldm.models.autoencoder import train_step as autoencoder_step
from cxrldm.models.diffusion import DiffusionConfig, build_training, draw_step, train_step
from cxrldm.models.text import encoder_width
from cxrldm.models.training import Runtime
from cxrldm.sampling.generation import generate
from cxrldm.sampling.schedulers import make_scheduler


def cpu_peak_gib(reset: bool = False) -> float | None:
    """This process's resident-memory high-water mark (Linux); reset=True restarts it from the current size."""
    if reset:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return None
    try:
        status = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**20


def timed(step, steps: int, device: torch.device, warmup=None) -> tuple[float, float | None]:
    """(seconds per call after one warm-up call (of `warmup` when given, e.g. a shorter run of the same work),
    peak memory in GiB: allocated on the GPU, or the process's resident set on the CPU, model and optimiser
    state included)."""
    (warmup or step)()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        cpu_peak_gib(reset=True)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps, torch.cuda.max_memory_allocated() / 2**30
    return (time.perf_counter() - start) / steps, cpu_peak_gib()


def autoencoder_case(params, runtime, batch):
    cfg = dataclasses.replace(AutoencoderConfig(**params["train_aekl"]), perceptual_weight=0.0)  # trunk may be offline
    autoencoder, *rest = build_autoencoder_training(cfg, runtime)
    model = SampledAutoencoder(autoencoder)
    images = torch.rand(batch, 1, cfg.image_size, cfg.image_size, device=runtime.device)
    eps = torch.randn([batch, *networks.latent_shape(cfg.autoencoder_kwargs(), cfg.image_size)], device=runtime.device)
    return lambda: autoencoder_step(
        images, eps, model, *rest, dataclasses.replace(cfg, batch_size=batch), runtime, adversarial=True
    )


def diffusion_case(params, runtime, batch, width):
    cfg = DiffusionConfig(**params["train_ldm"])
    ae = AutoencoderConfig(**params["train_aekl"])
    shape = networks.latent_shape(ae.autoencoder_kwargs(), ae.image_size)
    unet, ema, optimizer, warmup, scaler = build_training(cfg, shape[0], width, runtime)
    scheduler = cfg.noise_schedule()
    mu, sigma = torch.randn(batch, *shape), torch.rand(batch, *shape) * 0.1
    context = torch.randn(batch, params["text_encoder"]["max_length"], width, device=runtime.device)

    def step():
        latents, noise, timesteps = (t.to(runtime.device) for t in draw_step(mu, sigma, 0.3, 1000, None))
        train_step(unet, ema, optimizer, warmup, scaler, scheduler, latents, noise, timesteps, context, cfg, runtime)

    return step


def sampling_case(params, runtime, batch, width, sample_steps, cfg: DiffusionConfig | None = None):
    """generate() of `batch` images; the returned step takes another number of DDIM steps too. `cfg`: the
    UNet's (default: the profile's train_ldm)."""
    cfg = cfg or DiffusionConfig(**params["train_ldm"])
    ae = AutoencoderConfig(**params["train_aekl"])
    autoencoder = networks.build("AutoencoderKL", ae.autoencoder_kwargs()).to(runtime.device).eval()
    unet = networks.build("DiffusionModelUNet", cfg.unet_kwargs(ae.latent_channels, width)).to(runtime.device).eval()
    context = torch.randn(batch, params["text_encoder"]["max_length"], width)
    shape = networks.latent_shape(ae.autoencoder_kwargs(), ae.image_size)

    def step(steps=sample_steps):
        scheduler = make_scheduler("ddim", 1000, cfg.beta_start, cfg.beta_end, cfg.prediction_type)
        return generate(
            unet,
            autoencoder,
            scheduler,
            context,
            torch.zeros(1, *context.shape[1:]),
            list(range(batch)),
            shape,
            0.3,
            steps,
            params["sample"]["guidance_scale"],
            runtime,
        )

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=str(ROOT / "configs" / "mimic.yaml"))
    parser.add_argument("--ae-batch", type=int, default=8)
    parser.add_argument("--ldm-batch", type=int, default=32)
    parser.add_argument("--sample-batch", type=int, default=16)
    parser.add_argument("--sample-steps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.profile).read_text())
    device = torch.device(args.device)
    width = encoder_width(params["text_encoder"]["model"], params["text_encoder"]["encoder_subfolder"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, profile {Path(args.profile).name}\n")
    print(f"| work | precision | batch | s/step | images/s | peak {'GPU' if device.type == 'cuda' else 'RSS'} GiB |")
    print("|---|---|---:|---:|---:|---:|")
    for precision in args.precisions.split(","):
        if precision == "fp16" and device.type != "cuda":
            continue
        runtime = Runtime(device, precision)
        cases = [
            ("train_aekl step", args.ae_batch, lambda: autoencoder_case(params, runtime, args.ae_batch)),
            ("train_ldm step", args.ldm_batch, lambda: diffusion_case(params, runtime, args.ldm_batch, width)),
            (
                f"sampling, {args.sample_steps} DDIM steps + decode",
                args.sample_batch,
                lambda: sampling_case(params, runtime, args.sample_batch, width, args.sample_steps),
            ),
        ]
        for work, batch, build in cases:  # one case's models alive at a time
            step = build()
            seconds, memory = timed(step, args.steps, device)
            print(
                f"| {work} | {precision} | {batch} | {seconds:.3f} | {batch / seconds:.1f} | "
                f"{'-' if memory is None else f'{memory:.1f}'} |",
                flush=True,
            )
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
