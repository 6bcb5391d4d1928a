"""Run by test_distributed.py, alone or under torchrun, as `ddp_worker.py OUT [MODE]`.

train (default): two epochs of a tiny autoencoder (the second with the adversarial term and discriminator
updates) and of a tiny diffusion model; the main process saves the resulting weights to OUT.
nan_on_rank1: the autoencoder where only process 1's images are NaN; every process writes OUT.rankN.txt
with the name of the error that stopped it.
resume_mismatch: process 0 finds OUT's autoencoder checkpoint, the others none; as for nan_on_rank1."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from cxrldm.models import networks
from cxrldm.models.autoencoder import AutoencoderConfig, train_autoencoder
from cxrldm.models.diffusion import DiffusionConfig, train_diffusion
from cxrldm.models.training import setup_runtime

# Instance norm in the discriminator: CPU processes can't share batch statistics (no SyncBatchNorm on the
# CPU), and with them per process the adversarial epoch could not equal the single-process one.
AE = AutoencoderConfig(
    seed=0,
    image_size=48,
    channels=[8, 8],
    latent_channels=2,
    num_res_blocks=1,
    norm_num_groups=4,
    disc_channels=8,
    disc_layers=2,
    disc_norm="instance",
    perceptual_network="squeeze",
    perceptual_weight=0.0,
    kl_weight=1e-3,
    spectral_weight=0.0,
    adv_weight=0.1,
    adv_start_epoch=1,
    lr_g=1e-3,
    lr_d=1e-3,
    grad_clip=1.0,
    batch_size=4,
    epochs=2,
    augment_p=0.5,
    augment_degrees=5.0,
    augment_translate_px=1.0,
    augment_scale=0.01,
    augment_flip_p=0.5,
    augment_shift_p=0.5,
    augment_shift=0.05,
    augment_gamma_p=0.5,
    augment_gamma=0.05,
    precision="fp32",
    val_every=1,
    val_images=2,
    ms_ssim_kernel=3,
    in_memory=True,
    num_workers=0,
)
LDM = DiffusionConfig(
    seed=0,
    channels=[8, 8],
    attention_levels=[False, True],
    num_head_channels=[0, 8],
    num_res_blocks=1,
    norm_num_groups=8,
    num_train_timesteps=1000,
    beta_start=0.0015,
    beta_end=0.0205,
    prediction_type="v_prediction",
    lr=1e-3,
    weight_decay=0.01,
    warmup_steps=1,
    grad_clip=1.0,
    ema_decay=0.0,
    batch_size=4,
    epochs=1,
    max_sentences=5,
    whole_report_share=0.0,
    deid_markers="keep",
    deid_word="",
    condition_dropout=0.5,
    prompt_pool=2,
    precision="fp32",
    val_every=1,
    sample_every=1,
    sample_prompts=[],
    sample_steps=1,
    sample_guidance=1.0,
)


class FixedConditioner:
    """A stand-in with the Conditioner's interface and randomness, without a text model."""

    def __init__(self, n: int):
        self.table = torch.randn(n, 2, 3, 5, generator=torch.Generator().manual_seed(5))
        self.null = torch.zeros(1, 3, 5)

    def __call__(self, rows, generator=None, part=slice(None)):
        keep = torch.rand(len(rows), generator=generator) >= 0.5
        choice = torch.randint(0, 2, (len(rows),), generator=generator)
        context = self.table[rows, choice][part]
        return torch.where(keep[part, None, None], context, self.null)


def stopped_by(out: str, runtime, images, checkpoint: Path) -> None:
    try:
        train_autoencoder(AE, list(images), images[:2], runtime, checkpoint, "x")
        error = "nothing"
    except Exception as stop:
        error = type(stop).__name__
    Path(f"{out}.rank{runtime.rank}.txt").write_text(error)


def main(out: str, mode: str = "train"):
    runtime = setup_runtime("fp32", "cpu")
    g = torch.Generator().manual_seed(1)
    images = torch.nn.functional.avg_pool2d(torch.rand(8, 1, 51, 51, generator=g), 4, 1)
    if mode == "nan_on_rank1":
        return stopped_by(
            out, runtime, images * float("nan") if runtime.rank == 1 else images, Path(f"{out}.nan{runtime.rank}.pt")
        )
    if mode == "resume_mismatch":
        checkpoint = Path(out).with_suffix(".ae.pt") if runtime.rank == 0 else Path(f"{out}.none.pt")
        return stopped_by(out, runtime, images, checkpoint)
    autoencoder, _ = train_autoencoder(AE, list(images), images[:2], runtime, Path(out).with_suffix(".ae.pt"), "x")
    latents = {"mu": torch.randn(8, 3, 8, 8, generator=g), "sigma": torch.rand(8, 3, 8, 8, generator=g) * 0.1}
    unet, _ = train_diffusion(
        LDM,
        latents,
        {k: v[:2] for k, v in latents.items()},
        FixedConditioner(8),
        torch.zeros(2, 3, 5),
        0.7,
        runtime,
        Path(out).with_suffix(".ldm.pt"),
        "x",
    )
    if runtime.is_main:
        torch.manual_seed(AE.seed)
        initial_autoencoder = networks.build("AutoencoderKL", AE.autoencoder_kwargs())
        torch.manual_seed(LDM.seed)
        initial_unet = networks.build("DiffusionModelUNet", LDM.unet_kwargs(3, 5))
        torch.save(
            {
                "autoencoder": autoencoder.state_dict(),
                "unet": unet.state_dict(),
                "initial": {"autoencoder": initial_autoencoder.state_dict(), "unet": initial_unet.state_dict()},
            },
            out,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
