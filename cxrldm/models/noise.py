"""The forward (noising) process the diffusion model is trained on, and what it learns to predict. The
samplers in cxrldm.sampling.schedulers run the same schedule backwards."""

from __future__ import annotations

import torch
from monai.networks.schedulers import DDPMScheduler


def noise_schedule(num_train_timesteps: int, beta_start: float, beta_end: float, prediction_type: str) -> DDPMScheduler:
    """The forward process training noises latents with: DDPM on the seed's scaled-linear betas. Latents are
    not bounded to [-1, 1], so it must not clip the predicted clean sample (MONAI clips by default)."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        schedule="scaled_linear_beta",
        beta_start=beta_start,
        beta_end=beta_end,
        prediction_type=prediction_type,
        clip_sample=False,
    )


def training_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict: the velocity sqrt(a_t) eps - sqrt(1 - a_t) x0 for v-prediction,
    else the noise."""
    if scheduler.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise
