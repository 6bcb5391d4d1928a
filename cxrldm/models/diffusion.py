"""The latent diffusion model: a text-conditioned UNet trained on cached latents with v-prediction and
condition dropout for classifier-free guidance."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from cxrldm.models import networks
from cxrldm.models.latents import rows, sample_latents
from cxrldm.models.noise import noise_schedule, training_target
from cxrldm.models.prompts import Conditioner
from cxrldm.models.training import (
    Runtime,
    check_finite,
    global_batches,
    load_checkpoint,
    load_elapsed,
    local_part,
    mean_over_processes,
    save_checkpoint,
    save_elapsed,
    step_generator,
    unwrap,
)


@dataclass(frozen=True)
class DiffusionConfig:
    """Every hyper-parameter of train_ldm (the keys of params.yaml's train_ldm section)."""

    seed: int
    channels: list
    attention_levels: list
    num_head_channels: list
    num_res_blocks: int
    norm_num_groups: int
    num_train_timesteps: int
    beta_start: float
    beta_end: float
    prediction_type: str
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    ema_decay: float
    batch_size: int
    epochs: int
    max_sentences: int
    whole_report_share: float
    deid_markers: str
    deid_word: str
    condition_dropout: float
    prompt_pool: int
    precision: str
    val_every: int
    sample_every: int
    sample_prompts: list
    sample_steps: int
    sample_guidance: float
    init_from: str = ""  # a safetensors file to fine-tune from ("": random initialisation)
    lr_schedule: str = "constant"  # after the warm-up: constant (the seed) | cosine (to 0 at the last step)

    def unet_kwargs(self, latent_channels: int, context_width: int) -> dict:
        """DiffusionModelUNet arguments; the cross-attention width is the text encoder's, never a separate value."""
        return {
            "spatial_dims": 2,
            "in_channels": latent_channels,
            "out_channels": latent_channels,
            "num_res_blocks": int(self.num_res_blocks),
            "channels": [int(c) for c in self.channels],
            "attention_levels": [bool(a) for a in self.attention_levels],
            "num_head_channels": [int(h) for h in self.num_head_channels],
            "norm_num_groups": int(self.norm_num_groups),
            "with_conditioning": True,
            "cross_attention_dim": int(context_width),
        }

    @property
    def schedule(self) -> dict:
        """The noise schedule's arguments, as every scheduler takes them (sampling: make_scheduler(kind, **schedule))."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "prediction_type": self.prediction_type,
        }

    def noise_schedule(self):
        return noise_schedule(**self.schedule)


def diffusion_loss(
    unet,
    scheduler,
    latents: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    context: torch.Tensor,
    runtime: Runtime,
) -> torch.Tensor:
    """MSE between the UNet's prediction for the noised latents and its target (velocity or noise)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = training_target(scheduler, latents, noise, timesteps)
    with runtime.autocast():
        prediction = unet(noisy, timesteps, context)
    return F.mse_loss(prediction.float(), target)


def draw_step(mu, sigma, scale_factor: float, num_train_timesteps: int, generator: torch.Generator):
    """(scaled latents z, noise, timesteps) for a batch of latent distributions."""
    latents = sample_latents(mu, sigma, scale_factor, generator)
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, num_train_timesteps, (len(latents),), generator=generator)
    return latents, noise, timesteps


@torch.no_grad()
def validation_loss(unet, scheduler, mu, sigma, contexts, scale_factor, runtime: Runtime, batch_size: int) -> float:
    """Diffusion loss on validation latents with fixed noise, timesteps and prompts: comparable across epochs."""
    generator = torch.Generator().manual_seed(1234)
    unet.eval()
    total = 0.0
    for start in range(0, len(mu), batch_size):
        end = min(start + batch_size, len(mu))
        drawn = draw_step(
            rows(mu, slice(start, end)),
            rows(sigma, slice(start, end)),
            scale_factor,
            scheduler.num_train_timesteps,
            generator,
        )
        latents, noise, timesteps = (t.to(runtime.device) for t in drawn)
        loss = diffusion_loss(
            unet, scheduler, latents, noise, timesteps, contexts[start:end].to(runtime.device), runtime
        )
        total += loss.item() * (end - start)
    unet.train()
    return total / len(mu)


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """The learning rate's multiplier at optimiser step `step` (0-based): a linear warm-up over `warmup_steps`,
    then 1 (constant) or a half cosine that reaches 0 after `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"train_ldm.lr_schedule must be constant or cosine, got {schedule!r}")
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress))


def build_training(
    cfg: DiffusionConfig, latent_channels: int, context_width: int, runtime: Runtime, total_steps: int = 0
):
    """(unet, EMA copy or None, optimiser, LR schedule (warm-up, then cfg.lr_schedule over `total_steps`),
    scaler)."""
    if cfg.lr_schedule == "cosine" and total_steps <= cfg.warmup_steps:
        raise ValueError(
            f"train_ldm.lr_schedule cosine needs more steps than the warm-up's {cfg.warmup_steps}, got {total_steps}"
        )
    unet = networks.build("DiffusionModelUNet", cfg.unet_kwargs(latent_channels, context_width))
    if cfg.init_from:  # before the EMA copy is taken, so both start from the file
        networks.init_weights(unet, cfg.init_from, "train_ldm.init_from")
    unet = unet.to(runtime.device)
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg.warmup_steps, total_steps, cfg.lr_schedule)
    )
    return unet, ema, optimizer, warmup, runtime.grad_scaler()


def train_step(
    unet,
    ema,
    optimizer,
    warmup,
    scaler,
    scheduler,
    latents,
    noise,
    timesteps,
    context,
    cfg: DiffusionConfig,
    runtime: Runtime,
    where: str = "",
) -> float:
    loss = diffusion_loss(unet, scheduler, latents, noise, timesteps, context, runtime)
    check_finite(loss, where, runtime)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    warmup.step()
    if ema is not None:
        ema.update_parameters(unwrap(unet))
    return loss.item()


def train_diffusion(
    cfg: DiffusionConfig,
    train: dict,
    val: dict,
    conditioner: Conditioner,
    val_contexts,
    scale_factor: float,
    runtime: Runtime,
    checkpoint: Path,
    fingerprint: str,
    on_epoch: Callable[[int, dict, torch.nn.Module], None] = lambda *a: None,
):
    """Train on cached latent distributions (`train`/`val`: dicts with mu and sigma) from scratch, or resume
    from `checkpoint` with the same fingerprint. `on_epoch(epoch, metrics, model_for_sampling)` runs on the
    main process after each epoch's checkpoint. Returns (model for sampling: the EMA when on, metrics)."""
    torch.manual_seed(cfg.seed)
    latent_channels, width = train["mu"].shape[1], conditioner.null.shape[-1]
    steps_per_epoch = len(global_batches(len(train["mu"]), cfg.batch_size, cfg.seed, 1))
    unet, ema, optimizer, warmup, scaler = build_training(
        cfg, latent_channels, width, runtime, steps_per_epoch * cfg.epochs
    )
    scheduler = cfg.noise_schedule()
    modules = {"unet": unet, "optimizer": optimizer, "warmup": warmup, "scaler": scaler}
    if ema is not None:
        modules["ema"] = ema
    state = load_checkpoint(checkpoint, fingerprint, modules, runtime)
    first_epoch = state["epoch"] + 1 if state else 1
    seconds = load_elapsed(checkpoint, fingerprint, state["epoch"]) if state else 0.0
    metrics = {**state["metrics"], "seconds": seconds} if state else {}
    if cfg.init_from and not state and runtime.is_main:  # epoch 0 of a fine-tune: the starting model
        start = ema.module if ema is not None else unet
        on_epoch(
            0,
            {
                "val_loss": validation_loss(
                    start, scheduler, val["mu"], val["sigma"], val_contexts, scale_factor, runtime, cfg.batch_size
                )
            },
            start,
        )
    model = DistributedDataParallel(unet) if runtime.world_size > 1 else unet
    part = local_part(runtime, cfg.batch_size)
    for epoch in range(first_epoch, cfg.epochs + 1):
        started = time.perf_counter()
        losses = []
        batches = global_batches(len(train["mu"]), cfg.batch_size, cfg.seed, epoch)
        for step, batch in enumerate(
            tqdm(
                batches,
                desc=f"diffusion epoch {epoch}/{cfg.epochs}",
                leave=False,
                disable=not runtime.is_main,
                mininterval=2.0,
            )
        ):
            generator = step_generator(cfg.seed, epoch, step)
            drawn = draw_step(
                rows(train["mu"], batch), rows(train["sigma"], batch), scale_factor, cfg.num_train_timesteps, generator
            )
            latents, noise, timesteps = (t[part].to(runtime.device) for t in drawn)
            context = conditioner(batch, generator, part).to(runtime.device)
            losses.append(
                train_step(
                    model,
                    ema,
                    optimizer,
                    warmup,
                    scaler,
                    scheduler,
                    latents,
                    noise,
                    timesteps,
                    context,
                    cfg,
                    runtime,
                    f"epoch {epoch} step {step}",
                )
            )
        losses = mean_over_processes({"loss": sum(losses) / max(1, len(losses))}, runtime)
        metrics = {"train_loss": losses["loss"], "lr": optimizer.param_groups[0]["lr"]}
        sampler_model = ema.module if ema is not None else unet
        if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
            metrics["val_loss"] = validation_loss(
                sampler_model, scheduler, val["mu"], val["sigma"], val_contexts, scale_factor, runtime, cfg.batch_size
            )
        seconds += time.perf_counter() - started
        metrics["seconds"] = seconds
        if runtime.is_main:  # logs first: a checkpoint of epoch e means epoch e is logged (stages trim on resume)
            on_epoch(epoch, metrics, sampler_model)
            save_checkpoint(
                checkpoint,
                fingerprint,
                epoch,
                modules,
                {"metrics": {k: v for k, v in metrics.items() if k != "seconds"}},
            )
            save_elapsed(checkpoint, fingerprint, epoch, seconds)
    return (ema.module if ema is not None else unet), metrics
