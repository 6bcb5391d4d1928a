"""Stage train_aekl: the KL autoencoder with L1, perceptual, KL and patch-adversarial losses."""

from functools import partial

from PIL import Image

from cxrldm import paths
from cxrldm.data.datasets import RadiographDataset, load_images, read_split
from cxrldm.io import write_json
from cxrldm.models import networks
from cxrldm.models.autoencoder import AutoencoderConfig, train_autoencoder
from cxrldm.models.training import NonFiniteLoss, seed_everything, setup_runtime
from dvclive import Live
from stages.common import fail, load_params, progress, run
from stages.resume import log_metrics, print_epoch, start_or_resume, write_timing

RESIZED = paths.RESIZED
CHECKPOINT = paths.checkpoint("train_aekl")
LIVE_DIR = paths.live_dir("train_aekl")
MODEL = paths.AUTOENCODER


def main():
    cfg = AutoencoderConfig(**load_params()["train_aekl"])
    runtime = setup_runtime(cfg.precision)
    seed_everything(cfg.seed)
    fingerprint, resuming = start_or_resume(
        "train_aekl", cfg.init_from, MODEL, runtime, CHECKPOINT, LIVE_DIR, "train_aekl.init_from"
    )
    train = read_split(RESIZED, "train")
    val = read_split(RESIZED, "validate", limit=cfg.val_images)
    train_set = RadiographDataset(RESIZED, train.path, cfg.image_size, cfg.in_memory, progress)
    val_images = load_images(RESIZED, val.path, cfg.image_size)
    print(
        f"autoencoder: {len(train)} training and {len(val)} validation images at {cfg.image_size}px, "
        f"{runtime.device} {runtime.precision}, " + ("resuming" if resuming else "starting fresh")
    )

    live = Live(str(LIVE_DIR), resume=resuming, save_dvc_exp=False, dvcyaml=False) if runtime.is_main else None
    try:
        autoencoder, metrics = train_autoencoder(
            cfg, train_set, val_images, runtime, CHECKPOINT, fingerprint, partial(log_epoch, live)
        )
    except NonFiniteLoss as error:
        fail(f"train_aekl stopped: {error}; the last good checkpoint stays at {CHECKPOINT}")
    if runtime.is_main:
        live.end()
        kwargs = cfg.autoencoder_kwargs()
        networks.save_model(
            autoencoder,
            "AutoencoderKL",
            kwargs,
            MODEL,
            {"image_size": cfg.image_size, "latent_shape": networks.latent_shape(kwargs, cfg.image_size)},
        )
        write_json(
            paths.metrics("train_aekl"),
            {
                "n_params": networks.n_params(autoencoder),
                "epochs": cfg.epochs,
                "val_l1": round(metrics["val_l1"], 5),
                "val_ms_ssim": round(metrics["val_ms_ssim"], 5),
                "ms_ssim_kernel": cfg.ms_ssim_kernel,
                "image_size": cfg.image_size,
            },
        )
        write_timing("train_aekl", metrics["seconds"])


def log_epoch(live, epoch: int, metrics: dict, grid) -> None:
    """An epoch's metrics and reconstruction grid (when it has one) to DVCLive, a line to stdout."""
    log_metrics(live, epoch, metrics)
    if grid is not None:
        live.log_image(f"reconstructions/epoch_{epoch:04d}.png", Image.fromarray(grid))
    print_epoch(epoch, metrics)


if __name__ == "__main__":
    run(main)
