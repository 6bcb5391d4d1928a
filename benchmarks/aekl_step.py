"""Time one full autoencoder training step (generator + discriminator update, adversarial term on) for the
demo profile and for the seed's configuration at a reduced resolution, in fp32 and bf16 autocast (and
fp16 with loss scaling on a GPU).

    python benchmarks/aekl_step.py [--seed-size 256] [--seed-batch 4] [--steps 3] [--precisions fp32,bf16]

On CPUs without AVX512-BF16/AMX, bf16 convolutions take a slow reference path (about 20x slower than
fp32); `precision: auto` picks fp32 there.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cxrldm.models import networks
from cxrldm.models.autoencoder import AutoencoderConfig, SampledAutoencoder, build_training, train_step
from cxrldm.models.training import Runtime


def profile(path: Path, **overrides) -> AutoencoderConfig:
    cfg = AutoencoderConfig(**yaml.safe_load(path.read_text())["train_aekl"])
    return dataclasses.replace(cfg, **overrides)


def time_steps(cfg: AutoencoderConfig, runtime: Runtime, steps: int) -> tuple[float, float | None]:
    """(seconds per step after one warm-up step, peak GPU memory in GiB or None on the CPU)."""
    torch.manual_seed(0)
    autoencoder, *rest = build_training(cfg, runtime)
    model = SampledAutoencoder(autoencoder)
    images = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size, device=runtime.device)
    eps = torch.randn(
        [cfg.batch_size, *networks.latent_shape(cfg.autoencoder_kwargs(), cfg.image_size)], device=runtime.device
    )

    def step():
        train_step(images, eps, model, *rest, cfg, runtime, adversarial=True)

    step()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps, torch.cuda.max_memory_allocated() / 2**30
    return (time.perf_counter() - start) / steps, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-size", type=int, default=256)
    parser.add_argument("--seed-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default=None, help="comma-separated; default fp32,bf16 (+fp16 on a GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    precisions = (
        args.precisions.split(",")
        if args.precisions
        else (["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else []))
    )
    # The perceptual trunk may be absent offline; the seed row says whether it ran.
    seed = profile(ROOT / "configs/mimic.yaml", image_size=args.seed_size, batch_size=args.seed_batch)
    try:
        build_training(dataclasses.replace(seed, adv_weight=0), Runtime(torch.device("cpu"), "fp32"))
    except FileNotFoundError:
        seed = dataclasses.replace(seed, perceptual_weight=0.0)
    rows = [("demo (params.yaml)", profile(ROOT / "params.yaml")), (f"seed @{args.seed_size}px", seed)]
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} timed steps\n"
    )
    print("| configuration | params | image | batch | perceptual | precision | s/step | images/s | peak GPU GiB |")
    print("|---|---:|---:|---:|---|---|---:|---:|---:|")
    for name, cfg in rows:
        n = networks.n_params(networks.build("AutoencoderKL", cfg.autoencoder_kwargs()))
        for precision in precisions:
            seconds, memory = time_steps(cfg, Runtime(device, precision), args.steps)
            print(
                f"| {name} | {n / 1e6:.2f} M | {cfg.image_size} | {cfg.batch_size} | "
                f"{'on' if cfg.perceptual_weight else 'off'} | {precision} | {seconds:.3f} | "
                f"{cfg.batch_size / seconds:.1f} | {'-' if memory is None else f'{memory:.2f}'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
