"""Import published weights in monai-generative's format (the MONAI model-zoo bundle
`cxr_image_synthesis_latent_diffusion_model`: models/autoencoder.pth and models/diffusion_model.pth,
scale factor 0.3, Stable Diffusion 2.1's text encoder) into this pipeline's model files, so sampling
and evaluation run without training.

    python -m cxrldm.cli.import_bundle BUNDLE_DIR --out models [--profile configs/mimic.yaml] [--scale-factor 0.3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from cxrldm.io import write_json
from cxrldm.models import networks
from cxrldm.models.diffusion import DiffusionConfig
from cxrldm.models.text import encoder_width

BUNDLE_SCALE_FACTOR = 0.3


CLIP_START, CLIP_END = 49406, 49407  # <|startoftext|>, <|endoftext|> in CLIP's (and SD 2.1's) vocabulary


def load_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def import_bundle(bundle: str | Path, out: str | Path, params: dict, scale_factor: float = BUNDLE_SCALE_FACTOR) -> dict:
    """Convert the bundle's two state dicts with the architectures of a params profile; returns a summary."""
    bundle, out = Path(bundle), Path(out)
    ae = params["train_aekl"]
    ae_kwargs = networks.autoencoder_kwargs(
        ae["channels"], ae["latent_channels"], ae["num_res_blocks"], norm_num_groups=ae["norm_num_groups"]
    )
    autoencoder = networks.build("AutoencoderKL", ae_kwargs)
    autoencoder.load_old_state_dict(load_state_dict(bundle / "models" / "autoencoder.pth"))
    text = params["text_encoder"]
    cfg = DiffusionConfig(**params["train_ldm"])
    unet_kwargs = cfg.unet_kwargs(ae["latent_channels"], encoder_width(text["model"], text["encoder_subfolder"]))
    unet = networks.build("DiffusionModelUNet", unet_kwargs)
    unet.load_old_state_dict(load_state_dict(bundle / "models" / "diffusion_model.pth"))
    latent_shape = networks.latent_shape(ae_kwargs, ae["image_size"])
    networks.save_model(
        autoencoder,
        "AutoencoderKL",
        ae_kwargs,
        out / "autoencoder.safetensors",
        {"image_size": ae["image_size"], "latent_shape": latent_shape, "imported_from": str(bundle)},
    )
    networks.save_model(
        unet,
        "DiffusionModelUNet",
        unet_kwargs,
        out / "diffusion.safetensors",
        {
            "latent_shape": latent_shape,
            "text_encoder": text,
            "ema": False,
            "imported_from": str(bundle),
            # the null condition the bundle was trained with: CLIP's start token, then end tokens to the full length
            "null_token_ids": [CLIP_START] + [CLIP_END] * (text["max_length"] - 1),
            "scheduler": {
                "num_train_timesteps": cfg.num_train_timesteps,
                "beta_start": cfg.beta_start,
                "beta_end": cfg.beta_end,
                "prediction_type": cfg.prediction_type,
            },
        },
    )
    write_json(out / "scale_factor.json", {"scale_factor": scale_factor, "source": f"imported with {bundle}"})
    return {
        "autoencoder_params": networks.n_params(autoencoder),
        "unet_params": networks.n_params(unet),
        "scale_factor": scale_factor,
        "out": str(out),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Import published weights in monai-generative's format (the MONAI "
        "model-zoo CXR latent diffusion bundle) into this pipeline's model files."
    )
    parser.add_argument("bundle", help="bundle directory holding models/autoencoder.pth and models/diffusion_model.pth")
    parser.add_argument("--out", default="models")
    parser.add_argument("--profile", default="configs/mimic.yaml", help="params profile with the architectures")
    parser.add_argument("--scale-factor", type=float, default=BUNDLE_SCALE_FACTOR)
    args = parser.parse_args(argv)
    try:
        params = yaml.safe_load(Path(args.profile).read_text())
        print(import_bundle(args.bundle, args.out, params, args.scale_factor))
    except (FileNotFoundError, RuntimeError) as error:
        raise SystemExit(f"error: {str(error).splitlines()[0]}") from None


if __name__ == "__main__":
    main()
