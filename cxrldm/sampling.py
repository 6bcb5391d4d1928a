"""Noise schedulers and guided generation: text -> latent (DDIM / DDPM / PNDM) -> image."""

from __future__ import annotations

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler

from .training import unwrap

SAMPLERS = ("ddim", "ddpm", "pndm")


def make_scheduler(kind: str, num_train_timesteps: int, beta_start: float, beta_end: float, prediction_type: str):
    """A MONAI scheduler on the seed's scaled-linear schedule. Latents are not bounded to [-1, 1], so
    DDPM and DDIM must not clip the predicted clean sample (MONAI clips by default)."""
    common = {"num_train_timesteps": num_train_timesteps, "schedule": "scaled_linear_beta",
              "beta_start": beta_start, "beta_end": beta_end, "prediction_type": prediction_type}
    if kind == "ddpm":
        return DDPMScheduler(clip_sample=False, **common)
    if kind == "ddim":
        return DDIMScheduler(clip_sample=False, **common)
    if kind == "pndm":
        return PNDMScheduler(skip_prk_steps=True, **common)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")


def check_steps(scheduler, steps: int) -> None:
    """MONAI's DDPM step always goes from t to t - 1, so DDPM sampling with fewer steps than training
    timesteps would skip noise levels and give wrong images; DDIM and PNDM are made for fewer steps."""
    if isinstance(scheduler, DDPMScheduler) and steps != scheduler.num_train_timesteps:
        raise ValueError(f"the ddpm sampler takes all {scheduler.num_train_timesteps} steps (got {steps}); "
                         "use ddim or pndm for fewer")


def training_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict: the velocity sqrt(a_t) eps - sqrt(1 - a_t) x0 for v-prediction,
    else the noise."""
    if scheduler.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def initial_noise(seeds: list[int], shape: list[int]) -> torch.Tensor:
    """One latent of N(0, 1) per seed, each from its own generator: an image depends only on its seed."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def guided_prediction(unet, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, null_context: torch.Tensor,
                      guidance: float) -> torch.Tensor:
    """Classifier-free guidance: the null condition's prediction plus `guidance` times the difference to the
    prompt's, both halves in one batch (null first); guidance 1 is the prompt alone, 0 the null alone."""
    if guidance == 1.0:
        return unet(x, t, context).float()
    both = unet(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null_context, context]))
    unconditional, conditional = both.float().chunk(2)
    return unconditional + guidance * (conditional - unconditional)


def denoise(unet, scheduler, x: torch.Tensor, timesteps, context: torch.Tensor, null_context: torch.Tensor,
            guidance: float, runtime, generators=None, after_step=None, progress=None) -> torch.Tensor:
    """Run the scheduler from latents `x` at timesteps[0] through the given timesteps (a tail of the
    scheduler's, for editing). `generators`: DDPM's per-image noise streams. `after_step(i, x)` may
    replace the latents after step i (masked editing puts the original back there)."""
    for i, t in enumerate(progress(timesteps, desc="sampling", leave=False) if progress else timesteps):
        t_batch = torch.full((len(x),), int(t), device=x.device, dtype=torch.long)
        with runtime.autocast():
            prediction = guided_prediction(unet, x, t_batch, context, null_context, guidance)
        if isinstance(scheduler, DDPMScheduler):   # stochastic steps: each image keeps its own noise stream
            x = torch.cat([scheduler.step(prediction[j:j + 1], int(t), x[j:j + 1], generator=g)[0]
                           for j, g in enumerate(generators)])
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
def generate(unet, autoencoder, scheduler, context: torch.Tensor, null_context: torch.Tensor, seeds: list[int],
             latent_shape: list[int], scale_factor: float, steps: int, guidance: float, runtime, progress=None):
    """Images (B, 1, H, W) in [0, 1], one per seed, guided by `guided_prediction`."""
    check_steps(scheduler, steps)
    device = runtime.device
    x = initial_noise(seeds, latent_shape).to(device)
    context, null_context = context.to(device), null_context.to(device).expand_as(context)
    scheduler.set_timesteps(steps, device=device)
    x = denoise(unet, scheduler, x, scheduler.timesteps, context, null_context, guidance, runtime,
                step_generators(seeds, device), progress=progress)
    return decode(autoencoder, x, scale_factor, runtime)
