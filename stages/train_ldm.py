"""Stage train_ldm: the text-conditioned diffusion UNet on the cached latents."""

import json
from functools import partial

import pandas as pd
import torch
from PIL import Image

from cxrldm import paths
from cxrldm.data.images import grid
from cxrldm.io import write_json
from cxrldm.models import latents, networks
from cxrldm.models.diffusion import DiffusionConfig, train_diffusion
from cxrldm.models.prompts import Conditioner, treat_deid_markers, whole_report
from cxrldm.models.text import TextEncoder
from cxrldm.models.training import NonFiniteLoss, seed_everything, setup_runtime
from cxrldm.sampling.generation import generate
from cxrldm.sampling.schedulers import make_scheduler
from dvclive import Live
from stages.common import fail, load_params, progress, run
from stages.resume import log_metrics, print_epoch, start_or_resume, write_timing

LATENTS = paths.LATENTS
CHECKPOINT = paths.checkpoint("train_ldm")
LIVE_DIR = paths.live_dir("train_ldm")
MODEL = paths.DIFFUSION


def report_sentences(split: str, deid_markers: str, deid_word: str) -> list[list[str]]:
    """Each latent row's prompt sentences, from its study's report, de-identification markers treated."""
    rows = pd.read_csv(LATENTS / f"{split}.csv")
    reports = pd.read_csv(paths.REPORTS).set_index("study_id")
    missing = set(rows.study_id) - set(reports.index)
    if missing:
        raise ValueError(f"{len(missing)} studies in {LATENTS / split}.csv have no row in data/reports.csv")
    return [treat_deid_markers(json.loads(reports.sentences[s]), deid_markers, deid_word) for s in rows.study_id]


def main():
    params = load_params()
    cfg, text = DiffusionConfig(**params["train_ldm"]), params["text_encoder"]
    runtime = setup_runtime(cfg.precision)
    seed_everything(cfg.seed)
    fingerprint, resuming = start_or_resume(
        "train_ldm", cfg.init_from, MODEL, runtime, CHECKPOINT, LIVE_DIR, "train_ldm.init_from"
    )
    scale_factor = json.loads(paths.SCALE_FACTOR.read_text())["scale_factor"]
    train, val = latents.load_latents(LATENTS, "train"), latents.load_latents(LATENTS, "validate")
    encoder = TextEncoder(
        text["model"],
        text["encoder_subfolder"],
        text["tokenizer_subfolder"],
        text["max_length"],
        runtime.device,
        windows=text["windows"],
    )
    sentences = report_sentences("train", cfg.deid_markers, cfg.deid_word)
    conditioner = Conditioner(
        encoder,
        sentences,
        cfg.max_sentences,
        cfg.condition_dropout,
        cfg.prompt_pool,
        cfg.seed,
        progress=progress,
        whole_share=cfg.whole_report_share,
    )
    val_contexts, text_counts = validation_contexts(cfg, encoder, conditioner, sentences)
    autoencoder, _ = networks.load_model(paths.AUTOENCODER, runtime.device)
    latent_shape = list(train["mu"].shape[1:])
    prompt_context = encoder.encode(list(cfg.sample_prompts)).cpu()
    print(
        f"diffusion: {len(train['mu'])} training latents {latent_shape}, scale factor {scale_factor:.4f}, "
        f"text width {encoder.width}, {runtime.device} {runtime.precision}, "
        + ("resuming" if resuming else "starting fresh")
    )

    live = Live(str(LIVE_DIR), resume=resuming, save_dvc_exp=False, dvcyaml=False) if runtime.is_main else None
    log = partial(log_epoch, live, cfg, autoencoder, prompt_context, conditioner, latent_shape, scale_factor, runtime)
    try:
        model, metrics = train_diffusion(
            cfg, train, val, conditioner, val_contexts, scale_factor, runtime, CHECKPOINT, fingerprint, log
        )
    except NonFiniteLoss as error:
        fail(f"train_ldm stopped: {error}; the last good checkpoint stays at {CHECKPOINT}")
    if runtime.is_main:
        live.end()
        kwargs = cfg.unet_kwargs(latent_shape[0], encoder.width)
        networks.save_model(
            model,
            "DiffusionModelUNet",
            kwargs,
            MODEL,
            {
                "latent_shape": latent_shape,
                "text_encoder": text,
                "ema": cfg.ema_decay > 0,
                "scheduler": {
                    "num_train_timesteps": cfg.num_train_timesteps,
                    "beta_start": cfg.beta_start,
                    "beta_end": cfg.beta_end,
                    "prediction_type": cfg.prediction_type,
                },
            },
        )
        write_json(
            paths.metrics("train_ldm"),
            {
                "n_params": networks.n_params(model),
                "epochs": cfg.epochs,
                "train_loss": round(metrics["train_loss"], 5),
                "val_loss": round(metrics["val_loss"], 5),
                "text_truncation": text_counts,
            },
        )
        write_timing("train_ldm", metrics["seconds"])


def validation_contexts(
    cfg: DiffusionConfig, encoder: TextEncoder, conditioner: Conditioner, sentences: list[list[str]]
) -> tuple[torch.Tensor, dict]:
    """The validation latents' contexts (one training-rule prompt per study, drawn with the stage's seed) and
    how much of the training text the encoder cuts (whole reports; the training prompts)."""
    val_generator = torch.Generator().manual_seed(cfg.seed)
    val_prompts = [
        conditioner.prompt(s, val_generator) for s in report_sentences("validate", cfg.deid_markers, cfg.deid_word)
    ]
    text_counts = {
        "whole_reports": encoder.truncation([whole_report(s) for s in sentences]),
        "training_prompts": getattr(conditioner, "truncation", None),
    }
    val_contexts = torch.cat([encoder.encode(val_prompts[i : i + 256]).cpu() for i in range(0, len(val_prompts), 256)])
    return val_contexts, text_counts


def log_epoch(
    live,
    cfg: DiffusionConfig,
    autoencoder,
    prompt_context: torch.Tensor,
    conditioner: Conditioner,
    latent_shape: list[int],
    scale_factor: float,
    runtime,
    epoch: int,
    metrics: dict,
    model,
) -> None:
    """An epoch's metrics to DVCLive and, every `sample_every` epochs and at the last, a grid of samples of the
    sample prompts (4 seeds each) from the model as it stands; a line to stdout."""
    log_metrics(live, epoch, metrics)
    if epoch % cfg.sample_every == 0 or epoch == cfg.epochs:
        columns = 4
        context = prompt_context.repeat_interleave(columns, 0)
        seeds = list(range(len(context)))
        images = generate(
            model,
            autoencoder,
            make_scheduler("ddim", **cfg.schedule),
            context,
            conditioner.null,
            seeds,
            latent_shape,
            scale_factor,
            cfg.sample_steps,
            cfg.sample_guidance,
            runtime,
        )
        live.log_image(f"samples/epoch_{epoch:04d}.png", Image.fromarray(grid(images, columns, gap=0)))
    print_epoch(epoch, metrics)


if __name__ == "__main__":
    run(main)
