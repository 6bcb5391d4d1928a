"""The one model builder: MONAI's generative networks from plain keyword dicts, saved and loaded as safetensors
with the architecture beside them in JSON (no pickles). The evaluation's own networks live in
cxrldm.evaluation.networks and go through the same save and load."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet, PatchDiscriminator
from safetensors.torch import load_file, save_file

from cxrldm.io import atomic_path, write_json
from cxrldm.models.training import unwrap

BUILDERS = {
    "AutoencoderKL": AutoencoderKL,
    "DiffusionModelUNet": DiffusionModelUNet,
    "PatchDiscriminator": PatchDiscriminator,
}


def autoencoder_kwargs(
    channels, latent_channels: int, num_res_blocks: int, attention_levels=None, norm_num_groups: int = 32
) -> dict:
    """AutoencoderKL arguments for one-channel 2-D radiographs; non-local attention off as in the seed."""
    channels = [int(c) for c in channels]
    return {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 1,
        "channels": channels,
        "latent_channels": int(latent_channels),
        "num_res_blocks": int(num_res_blocks),
        "attention_levels": [bool(a) for a in attention_levels] if attention_levels else [False] * len(channels),
        "norm_num_groups": int(norm_num_groups),
        "with_encoder_nonlocal_attn": False,
        "with_decoder_nonlocal_attn": False,
    }


def discriminator_kwargs(channels: int, num_layers: int, norm: str = "batch") -> dict:
    if norm not in ("batch", "instance"):
        raise ValueError(f"train_aekl.disc_norm must be 'batch' or 'instance', got {norm!r}")
    return {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 1,
        "channels": int(channels),
        "num_layers_d": int(num_layers),
        "norm": norm.upper(),
    }


def build(kind: str, kwargs: dict, builders: dict = BUILDERS) -> torch.nn.Module:
    """The network of `kind` (a key of `builders`: the generative networks by default; the evaluation's
    networks pass their own) from its keyword arguments."""
    if kind not in builders:
        raise ValueError(f"unknown network kind {kind!r}; known: {sorted(builders)}")
    return builders[kind](**kwargs)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def latent_shape(kwargs: dict, image_size: int) -> list[int]:
    """(C, H, W) of the autoencoder's latent for square images: one halving per level but the last."""
    factor = 2 ** (len(kwargs["channels"]) - 1)
    return [kwargs["latent_channels"], image_size // factor, image_size // factor]


def save_model(model: torch.nn.Module, kind: str, kwargs: dict, path: str | Path, extra: dict | None = None) -> None:
    """Weights to `path` (.safetensors), architecture to the same name with .json."""
    path = Path(path)
    model = unwrap(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    write_json(path.with_suffix(".json"), {"kind": kind, "kwargs": kwargs, **(extra or {})}, sort_keys=False)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", builders: dict = BUILDERS
) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, its JSON description) from save_model's files."""
    path = Path(path)
    description = json.loads(path.with_suffix(".json").read_text())
    model = build(description["kind"], description["kwargs"], builders)
    model.load_state_dict(load_file(str(path), device="cpu"))
    return model.to(device).eval(), description


def init_weights(model: torch.nn.Module, path: str | Path, param: str) -> None:
    """Load a safetensors file (an earlier run's model, or cxrldm.cli.import_bundle's) into `model` before
    training: fine-tuning. The architecture must match; otherwise one line saying which keys differ."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{param}: {path} not found")
    state, own = load_file(str(path)), unwrap(model).state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or reshaped:
        parts = [
            f"{len(keys)} {what} (e.g. {keys[0]}{detail(keys[0])})"
            for keys, what, detail in (
                (missing, "missing from the file", lambda k: ""),
                (unexpected, "not in the model", lambda k: ""),
                (
                    reshaped,
                    "of another shape",
                    lambda k: f": file {tuple(state[k].shape)}, model {tuple(own[k].shape)}",
                ),
            )
            if keys
        ]
        raise ValueError(f"{param}: {path} does not fit the architecture in params.yaml: keys {'; '.join(parts)}")
    unwrap(model).load_state_dict(state)
