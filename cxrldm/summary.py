"""Parameter counts and latent shape of the models a params profile builds.

    python -m cxrldm.summary configs/mimic.yaml
"""

from __future__ import annotations

import json
import sys

import torch
import yaml

from . import nets
from .diffusion import DiffusionConfig
from .text import encoder_width


def summarize(params: dict) -> dict:
    ae = params["train_aekl"]
    kwargs = nets.autoencoder_kwargs(ae["channels"], ae["latent_channels"], ae["num_res_blocks"],
                                     norm_num_groups=ae["norm_num_groups"])
    text = params["text_encoder"]
    width = encoder_width(text["model"], text["encoder_subfolder"])
    unet_kwargs = DiffusionConfig(**params["train_ldm"]).unet_kwargs(ae["latent_channels"], width)
    with torch.device("meta"):   # count parameters without allocating them
        autoencoder = nets.build("AutoencoderKL", kwargs)
        unet = nets.build("DiffusionModelUNet", unet_kwargs)
    return {"autoencoder": {"n_params": nets.n_params(autoencoder), "image_size": ae["image_size"],
                            "latent_shape": nets.latent_shape(kwargs, ae["image_size"])},
            "unet": {"n_params": nets.n_params(unet), "cross_attention_dim": width}}


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m cxrldm.summary PARAMS_FILE")
    with open(argv[0], encoding="utf-8") as f:
        print(json.dumps(summarize(yaml.safe_load(f)), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
