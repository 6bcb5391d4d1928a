"""Guided generation: text -> latent (DDIM / DDPM / PNDM) -> image, and the trained models it runs on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.networks.schedulers import DDPMScheduler

from cxrldm.models import networks
from cxrldm.models.text import TextEncoder
from cxrldm.models.training import Runtime, setup_runtime, unwrap
from cxrldm.sampling.guidance import guided_prediction
from cxrldm.sampling.schedulers import check_steps, make_scheduler


def image_seeds(seed: int, n: int, offset: int = 0) -> list[int]:
    """The seeds of n images of a stage run with `seed`: image k (counted from `offset`, the images before
    these in the same run) gets seed * 1_000_000 + k, so every image has its own recorded seed."""
    return [seed * 1_000_000 + offset + k for k in range(n)]


def initial_noise(seeds: list[int], shape: list[int]) -> torch.Tensor:
    """One latent of N(0, 1) per seed, each from its own generator: an image depends only on its seed."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def denoise(
    unet,
    scheduler,
    x: torch.Tensor,
    timesteps,
    context: torch.Tensor,
    null_context: torch.Tensor,
    guidance: float,
    runtime,
    generators=None,
    after_step=None,
    progress=None,
) -> torch.Tensor:
    """Run the scheduler from latents `x` at timesteps[0] through the given timesteps (a tail of the
    scheduler's, for editing). `generators`: DDPM's per-image noise streams. `after_step(i, x)` may
    replace the latents after step i (masked editing puts the original back there)."""
    for i, t in enumerate(progress(timesteps, desc="sampling", leave=False) if progress else timesteps):
        t_batch = torch.full((len(x),), int(t), device=x.device, dtype=torch.long)
        with runtime.autocast():
            prediction = guided_prediction(unet, x, t_batch, context, null_context, guidance)
        if isinstance(scheduler, DDPMScheduler):  # stochastic steps: each image keeps its own noise stream
            x = torch.cat(
                [
                    scheduler.step(prediction[j : j + 1], int(t), x[j : j + 1], generator=g)[0]
                    for j, g in enumerate(generators)
                ]
            )
        else:
            x = scheduler.step(prediction, int(t), x)[0]
        if after_step is not None:
            x = after_step(i, x)
    return x


def step_generators(seeds: list[int], device) -> list[torch.Generator]:
    """DDPM's per-step noise: a stream of each image's own, apart from every image's starting noise."""
    return [torch.Generator(device).manual_seed(int(s) + (1 << 48)) for s in seeds]


@torch.no_grad()
def decode(autoencoder, latents: torch.Tensor, scale_factor: float, runtime) -> torch.Tensor:
    """Diffusion latents -> images in [0, 1] on the CPU: divided by the scale factor first (training
    multiplied them by it)."""
    autoencoder = unwrap(autoencoder)
    with runtime.autocast():
        images = autoencoder.decode(latents / scale_factor)
    return images.float().clamp(0, 1).cpu()


@torch.no_grad()
def generate(
    unet,
    autoencoder,
    scheduler,
    context: torch.Tensor,
    null_context: torch.Tensor,
    seeds: list[int],
    latent_shape: list[int],
    scale_factor: float,
    steps: int,
    guidance: float,
    runtime,
    progress=None,
):
    """Images (B, 1, H, W) in [0, 1], one per seed, guided by `guided_prediction`."""
    check_steps(scheduler, steps)
    device = runtime.device
    x = initial_noise(seeds, latent_shape).to(device)
    context, null_context = context.to(device), null_context.to(device).expand_as(context)
    scheduler.set_timesteps(steps, device=device)
    x = denoise(
        unet,
        scheduler,
        x,
        scheduler.timesteps,
        context,
        null_context,
        guidance,
        runtime,
        step_generators(seeds, device),
        progress=progress,
    )
    return decode(autoencoder, x, scale_factor, runtime)


@dataclass
class Models:
    unet: torch.nn.Module
    autoencoder: torch.nn.Module
    encoder: TextEncoder
    scale_factor: float
    latent_shape: list[int]
    schedule: dict  # num_train_timesteps, beta_start, beta_end, prediction_type
    runtime: Runtime
    image_size: int  # the autoencoder's square input size


def load_models(models_dir: str | Path = "models", precision: str = "auto", device: str = "auto") -> Models:
    """The trained diffusion UNet, autoencoder, the text encoder they were trained with, and the scale factor."""
    models_dir = Path(models_dir)
    runtime = setup_runtime(precision, device)
    for name in ("diffusion.safetensors", "autoencoder.safetensors", "scale_factor.json"):
        if not (models_dir / name).exists():
            raise FileNotFoundError(f"{models_dir / name} not found: train the models first (make demo / dvc repro)")
    unet, description = networks.load_model(models_dir / "diffusion.safetensors", runtime.device)
    autoencoder, autoencoder_description = networks.load_model(models_dir / "autoencoder.safetensors", runtime.device)
    text = description["text_encoder"]
    encoder = TextEncoder(
        text["model"],
        text["encoder_subfolder"],
        text["tokenizer_subfolder"],
        text["max_length"],
        runtime.device,
        null_token_ids=description.get("null_token_ids"),
        windows=text.get("windows", 1),
    )
    scale_factor = json.loads((models_dir / "scale_factor.json").read_text())["scale_factor"]
    return Models(
        unet,
        autoencoder,
        encoder,
        scale_factor,
        description["latent_shape"],
        description["scheduler"],
        runtime,
        autoencoder_description["image_size"],
    )


def generate_images(
    models: Models,
    prompts: list[str],
    seeds: list[int],
    sampler: str,
    steps: int,
    guidance: float,
    batch_size: int = 16,
    progress=None,
) -> torch.Tensor:
    """One image per (prompt, seed) pair, in [0, 1]; "" is the null prompt (unconditional)."""
    null = models.encoder.null_condition()
    images = []
    starts = range(0, len(prompts), batch_size)
    for start in progress(starts, desc="generating", total=len(starts)) if progress else starts:
        chunk, chunk_seeds = prompts[start : start + batch_size], seeds[start : start + batch_size]
        scheduler = make_scheduler(sampler, **models.schedule)
        images.append(
            generate(
                models.unet,
                models.autoencoder,
                scheduler,
                models.encoder.condition(chunk),
                null,
                chunk_seeds,
                models.latent_shape,
                models.scale_factor,
                steps,
                guidance,
                models.runtime,
            )
        )
    return torch.cat(images)
