"""The samplers (one registry: SAMPLERS) on the noise schedule the diffusion model was trained with."""

from __future__ import annotations

from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, PNDMScheduler

from cxrldm.models.noise import noise_schedule
from cxrldm.sampling import SAMPLERS


def make_scheduler(kind: str, num_train_timesteps: int, beta_start: float, beta_end: float, prediction_type: str):
    """A MONAI scheduler on the seed's scaled-linear schedule. Latents are not bounded to [-1, 1], so
    DDPM and DDIM must not clip the predicted clean sample (MONAI clips by default)."""
    common = {
        "num_train_timesteps": num_train_timesteps,
        "schedule": "scaled_linear_beta",
        "beta_start": beta_start,
        "beta_end": beta_end,
        "prediction_type": prediction_type,
    }
    if kind == "ddpm":
        return noise_schedule(num_train_timesteps, beta_start, beta_end, prediction_type)
    if kind == "ddim":
        return DDIMScheduler(clip_sample=False, **common)
    if kind == "pndm":
        return PNDMScheduler(skip_prk_steps=True, **common)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")


def check_steps(scheduler, steps: int) -> None:
    """MONAI's DDPM step always goes from t to t - 1, so DDPM sampling with fewer steps than training
    timesteps would skip noise levels and give wrong images; DDIM and PNDM are made for fewer steps."""
    if isinstance(scheduler, DDPMScheduler) and steps != scheduler.num_train_timesteps:
        raise ValueError(
            f"the ddpm sampler takes all {scheduler.num_train_timesteps} steps (got {steps}); "
            "use ddim or pndm for fewer"
        )
