"""Parameter counts and latent shape of the models a params profile builds.

python -m cxrldm.cli.summary configs/mimic.yaml
"""

from __future__ import annotations

import argparse
import json

import torch
import yaml

from cxrldm.models import networks
from cxrldm.models.diffusion import DiffusionConfig
from cxrldm.models.text import encoder_width


def summarize(params: dict) -> dict:
    ae = params["train_aekl"]
    kwargs = networks.autoencoder_kwargs(
        ae["channels"], ae["latent_channels"], ae["num_res_blocks"], norm_num_groups=ae["norm_num_groups"]
    )
    text = params["text_encoder"]
    width = encoder_width(text["model"], text["encoder_subfolder"])
    unet_kwargs = DiffusionConfig(**params["train_ldm"]).unet_kwargs(ae["latent_channels"], width)
    with torch.device("meta"):  # count parameters without allocating them
        autoencoder = networks.build("AutoencoderKL", kwargs)
        unet = networks.build("DiffusionModelUNet", unet_kwargs)
    return {
        "autoencoder": {
            "n_params": networks.n_params(autoencoder),
            "image_size": ae["image_size"],
            "latent_shape": networks.latent_shape(kwargs, ae["image_size"]),
        },
        "unet": {"n_params": networks.n_params(unet), "cross_attention_dim": width},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Parameter counts and latent shape of the autoencoder and the "
        "UNet a params profile builds (no weights are allocated)."
    )
    parser.add_argument("params_file", help="a params profile, e.g. params.yaml or configs/mimic.yaml")
    args = parser.parse_args(argv)
    with open(args.params_file, encoding="utf-8") as f:
        print(json.dumps(summarize(yaml.safe_load(f)), indent=2))


if __name__ == "__main__":
    main()
