"""The KL-regularised autoencoder: its losses, its training loop and its validation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import JukeboxLoss, PatchAdversarialLoss, PerceptualLoss
from monai.metrics import MultiScaleSSIMMetric
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cxrldm.data.augmentation import (
    affine_params,
    photometric,
    photometric_params,
    warp,
)
from cxrldm.data.images import grid
from cxrldm.models import networks
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

# torchvision's file name for the SqueezeNet 1.1 ImageNet weights that LPIPS(squeeze) uses as its trunk.
SQUEEZENET_FILE = "squeezenet1_1-b8a52dc0.pth"


@dataclass(frozen=True)
class AutoencoderConfig:
    """Every hyper-parameter of train_aekl (the keys of params.yaml's train_aekl section)."""

    seed: int
    image_size: int
    channels: list
    latent_channels: int
    num_res_blocks: int
    norm_num_groups: int
    disc_channels: int
    disc_layers: int
    disc_norm: str  # batch (the seed) or instance
    perceptual_network: str
    perceptual_weight: float
    kl_weight: float
    spectral_weight: float  # MONAI's JukeboxLoss: the FFT amplitudes' squared difference (0: off, the seed)
    adv_weight: float
    adv_start_epoch: int  # epochs trained without the adversarial term before it starts
    lr_g: float
    lr_d: float
    grad_clip: float
    batch_size: int
    epochs: int
    augment_p: float
    augment_degrees: float
    augment_translate_px: float
    augment_scale: float
    augment_flip_p: float
    augment_shift_p: float
    augment_shift: float
    augment_gamma_p: float
    augment_gamma: float
    precision: str
    val_every: int
    val_images: int
    ms_ssim_kernel: int
    in_memory: bool
    num_workers: int
    init_from: str = ""  # a safetensors file to fine-tune from ("": random initialisation)

    def autoencoder_kwargs(self) -> dict:
        return networks.autoencoder_kwargs(
            self.channels, self.latent_channels, self.num_res_blocks, norm_num_groups=self.norm_num_groups
        )


def kl_loss(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over C, H, W, averaged over the batch."""
    mu, sigma = mu.float(), sigma.float()
    per_image = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2)) - 1).flatten(1).sum(1)
    return per_image.mean()


def perceptual_loss(network: str) -> torch.nn.Module:
    """MONAI's LPIPS-style perceptual loss. Its ImageNet trunk comes from torchvision's model store under
    $TORCH_HOME/hub/checkpoints; without network access it must already be there."""
    if network == "squeeze":
        weights = Path(torch.hub.get_dir()) / "checkpoints" / SQUEEZENET_FILE
        if not weights.exists():
            raise FileNotFoundError(
                f"perceptual network 'squeeze' needs torchvision's SqueezeNet 1.1 weights at {weights}: copy "
                f"{SQUEEZENET_FILE} there (or set TORCH_HOME), or set train_aekl.perceptual_weight: 0"
            )
    return PerceptualLoss(spatial_dims=2, network_type=network, is_fake_3d=False)


def generator_loss(images, reconstruction, mu, sigma, cfg: AutoencoderConfig, perceptual, disc_logits):
    """The seed's generator loss: L1 + w_p LPIPS + w_kl KL (+ w_adv least-squares adversarial term when
    `disc_logits` is given), plus w_s times a spectral term where spectral_weight > 0: L1 alone is met by
    a blur that averages thin lines away, while the FFT amplitudes keep the fine structure's energy (and
    need no pretrained network). Returns the total and its parts."""
    parts = {"l1": F.l1_loss(reconstruction.float(), images.float()), "kl": kl_loss(mu, sigma)}
    total = parts["l1"] + cfg.kl_weight * parts["kl"]
    if cfg.spectral_weight > 0:
        parts["spectral"] = JukeboxLoss(spatial_dims=2)(reconstruction.float(), images.float())
        total = total + cfg.spectral_weight * parts["spectral"]
    if perceptual is not None:
        parts["perceptual"] = perceptual(reconstruction.float(), images.float())
        total = total + cfg.perceptual_weight * parts["perceptual"]
    if disc_logits is not None:
        parts["adversarial"] = least_squares()(disc_logits, target_is_real=True, for_discriminator=False)
        total = total + cfg.adv_weight * parts["adversarial"]
    return total, parts


def least_squares() -> PatchAdversarialLoss:
    # Plain (D(x) - target)^2 as in the seed; MONAI's default first passes the logits through a LeakyReLU.
    return PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)


def discriminator_loss(logits_fake, logits_real) -> torch.Tensor:
    adversarial = least_squares()
    return 0.5 * (
        adversarial(logits_fake, target_is_real=False, for_discriminator=True)
        + adversarial(logits_real, target_is_real=True, for_discriminator=True)
    )


class DiscriminatorPair(torch.nn.Module):
    """The patch discriminator on fakes and on reals, two calls with their own batch statistics as in the
    seed, inside one forward: DistributedDataParallel allows one forward per backward."""

    def __init__(self, discriminator: torch.nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.discriminator(fake.contiguous())[-1], self.discriminator(real.contiguous())[-1]


def ms_ssim(a: torch.Tensor, b: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-image MS-SSIM (5 scales, Gaussian kernel) of images in [0, 1]: reconstruction quality here, and
    diversity over pairs of samples in cxrldm.evaluation.similarity."""
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=kernel_size)
    return metric(a.float().cpu(), b.float().cpu()).flatten()


@torch.no_grad()
def reconstruct(autoencoder, images: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Deterministic reconstructions (the latent mean, no sampling), clipped to [0, 1]."""
    autoencoder = unwrap(autoencoder)
    with runtime.autocast():
        mu, _ = autoencoder.encode(images.to(runtime.device))
        return autoencoder.decode(mu).float().clamp(0, 1)


def validate(autoencoder, images: torch.Tensor, runtime: Runtime, kernel_size: int, batch_size: int):
    """Mean L1 and MS-SSIM of the reconstructions of `images`, and the reconstructions."""
    autoencoder.eval()
    recon = torch.cat([reconstruct(autoencoder, batch, runtime).cpu() for batch in images.split(batch_size)])
    autoencoder.train()
    return {
        "val_l1": F.l1_loss(recon, images).item(),
        "val_ms_ssim": ms_ssim(recon, images, kernel_size).mean().item(),
    }, recon


def comparison_grid(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8) -> np.ndarray:
    """uint8 image: originals on the top row, their reconstructions below."""
    shown = min(columns, len(originals))
    return grid(torch.cat([originals[:shown], reconstructions[:shown]]), shown, gap=0)


class SampledAutoencoder(torch.nn.Module):
    """AutoencoderKL's forward with the reparameterisation noise passed in, so that the noise of each image
    is drawn with the rest of the step's randomness (see training.step_generator)."""

    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, images, eps):
        mu, sigma = self.autoencoder.encode(images)
        return self.autoencoder.decode(mu + sigma * eps.to(mu.dtype)), mu, sigma


def build_training(cfg: AutoencoderConfig, runtime: Runtime):
    """(autoencoder, DiscriminatorPair, perceptual loss or None, generator and discriminator optimisers, scaler)."""
    autoencoder = networks.build("AutoencoderKL", cfg.autoencoder_kwargs())
    if cfg.init_from:
        networks.init_weights(autoencoder, cfg.init_from, "train_aekl.init_from")
    autoencoder = autoencoder.to(runtime.device)
    discriminator = networks.build(
        "PatchDiscriminator", networks.discriminator_kwargs(cfg.disc_channels, cfg.disc_layers, cfg.disc_norm)
    )
    if runtime.world_size > 1 and runtime.device.type == "cuda":
        # batch statistics over the global batch, as on one device (SyncBatchNorm has no CPU kernels, so
        # CPU processes normalise over their own part of the batch)
        discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
    discriminator = DiscriminatorPair(discriminator).to(runtime.device)
    perceptual = perceptual_loss(cfg.perceptual_network).to(runtime.device) if cfg.perceptual_weight > 0 else None
    opt_g = torch.optim.Adam(autoencoder.parameters(), lr=cfg.lr_g)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d)
    return autoencoder, discriminator, perceptual, opt_g, opt_d, runtime.grad_scaler()


def train_step(
    images,
    eps,
    model,
    discriminator,
    perceptual,
    opt_g,
    opt_d,
    scaler,
    cfg: AutoencoderConfig,
    runtime: Runtime,
    adversarial: bool,
    where: str = "",
) -> dict[str, float]:
    """One generator update and, when `adversarial`, one discriminator update. `model` is a
    SampledAutoencoder and `discriminator` a DiscriminatorPair (each in DistributedDataParallel when
    distributed). Returns the losses; `discriminator` is the unweighted discriminator loss."""
    with runtime.autocast():
        reconstruction, mu, sigma = model(images, eps)
        # The generator's adversarial term goes through the bare discriminator: its gradients there are
        # discarded, so they need no synchronisation between processes.
        logits_fake = unwrap(discriminator).discriminator(reconstruction.contiguous())[-1] if adversarial else None
        loss_g, parts = generator_loss(images, reconstruction, mu, sigma, cfg, perceptual, logits_fake)
    check_finite(loss_g, f"{where} (generator loss)", runtime)
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    if cfg.grad_clip > 0:
        scaler.unscale_(opt_g)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(opt_g)
    if adversarial:
        with runtime.autocast():
            logits_fake, logits_real = discriminator(reconstruction.detach(), images)
            loss_d = discriminator_loss(logits_fake, logits_real)
        check_finite(loss_d, f"{where} (discriminator loss)", runtime)
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(cfg.adv_weight * loss_d).backward()  # weighted like the generator's term, as in the seed
        if cfg.grad_clip > 0:
            scaler.unscale_(opt_d)
            torch.nn.utils.clip_grad_norm_(discriminator.parameters(), cfg.grad_clip)
        scaler.step(opt_d)
        parts["discriminator"] = loss_d
    scaler.update()
    return {name: value.item() for name, value in {"loss": loss_g, **parts}.items()}


def train_autoencoder(
    cfg: AutoencoderConfig,
    train_set: Dataset,
    val_images: torch.Tensor,
    runtime: Runtime,
    checkpoint: Path,
    fingerprint: str,
    on_epoch: Callable[[int, dict, np.ndarray | None], None] = lambda *a: None,
):
    """Train from scratch or resume from `checkpoint` when it has the same fingerprint. Saves a
    checkpoint after every epoch; `on_epoch(epoch, metrics, grid)` is called on the main process.
    Under torchrun every process takes its slice of each global batch. Returns (autoencoder, final metrics)."""
    torch.manual_seed(cfg.seed)
    autoencoder, discriminator, perceptual, opt_g, opt_d, scaler = build_training(cfg, runtime)
    modules = {
        "autoencoder": autoencoder,
        "discriminator": discriminator,
        "opt_g": opt_g,
        "opt_d": opt_d,
        "scaler": scaler,
    }
    state = load_checkpoint(checkpoint, fingerprint, modules, runtime)
    first_epoch = state["epoch"] + 1 if state else 1
    seconds = load_elapsed(checkpoint, fingerprint, state["epoch"]) if state else 0.0
    metrics = {**state["metrics"], "seconds": seconds} if state else {}
    model = SampledAutoencoder(autoencoder)
    part = local_part(runtime, cfg.batch_size)
    if runtime.world_size > 1:
        model, discriminator = DistributedDataParallel(model), DistributedDataParallel(discriminator)
    latent_shape = networks.latent_shape(cfg.autoencoder_kwargs(), cfg.image_size)
    for epoch in range(first_epoch, cfg.epochs + 1):
        started = time.perf_counter()
        batches = global_batches(len(train_set), cfg.batch_size, cfg.seed, epoch)
        loader = DataLoader(train_set, batch_sampler=[b[part].tolist() for b in batches], num_workers=cfg.num_workers)
        adversarial = epoch > cfg.adv_start_epoch and cfg.adv_weight > 0  # after adv_start_epoch epochs, as the seed
        sums: dict[str, float] = {}
        steps = tqdm(
            loader,
            desc=f"autoencoder epoch {epoch}/{cfg.epochs}",
            disable=not runtime.is_main,
            leave=False,
            mininterval=2.0,
        )
        for step, images in enumerate(steps):
            generator = step_generator(cfg.seed, epoch, step)
            theta = affine_params(
                cfg.batch_size,
                cfg.image_size,
                cfg.augment_p,
                cfg.augment_degrees,
                cfg.augment_translate_px,
                cfg.augment_scale,
                generator,
            )[part]
            eps = torch.randn([cfg.batch_size, *latent_shape], generator=generator)[part].to(runtime.device)
            tone = photometric_params(
                cfg.batch_size,
                cfg.augment_flip_p,
                cfg.augment_shift_p,
                cfg.augment_shift,
                cfg.augment_gamma_p,
                cfg.augment_gamma,
                generator,
            )
            images = photometric(warp(images.to(runtime.device), theta), *(t[part] for t in tone))
            parts = train_step(
                images,
                eps,
                model,
                discriminator,
                perceptual,
                opt_g,
                opt_d,
                scaler,
                cfg,
                runtime,
                adversarial,
                where=f"epoch {epoch} step {step}",
            )
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value
        metrics = {
            f"train_{name}": total / max(1, len(loader)) for name, total in mean_over_processes(sums, runtime).items()
        }
        grid = None
        if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
            val, recon = validate(autoencoder, val_images, runtime, cfg.ms_ssim_kernel, cfg.batch_size)
            metrics.update(val)
            grid = comparison_grid(val_images, recon)
        seconds += time.perf_counter() - started
        metrics["seconds"] = seconds
        if runtime.is_main:  # logs first: a checkpoint of epoch e means epoch e is logged (stages trim on resume)
            on_epoch(epoch, metrics, grid)
            save_checkpoint(
                checkpoint,
                fingerprint,
                epoch,
                modules,
                {"metrics": {k: v for k, v in metrics.items() if k != "seconds"}},
            )
            save_elapsed(checkpoint, fingerprint, epoch, seconds)
    return autoencoder, metrics
