"""Published monai-generative weights import into the pipeline's format and give the same outputs."""

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from cxrldm.cli.import_bundle import import_bundle
from cxrldm.models import networks
from cxrldm.models.diffusion import DiffusionConfig

ROOT = Path(__file__).resolve().parents[2]


def old_kwargs(kwargs: dict) -> dict:
    return {("num_channels" if k == "channels" else k): v for k, v in kwargs.items()}


def test_bundle_weights_import_and_reproduce_outputs(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from generative.networks.nets import AutoencoderKL, DiffusionModelUNet
    params = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    ae = params["train_aekl"]
    ae_kwargs = networks.autoencoder_kwargs(
        ae["channels"], ae["latent_channels"], ae["num_res_blocks"], norm_num_groups=ae["norm_num_groups"]
    )
    unet_kwargs = DiffusionConfig(**params["train_ldm"]).unet_kwargs(ae["latent_channels"], 384)
    torch.manual_seed(0)
    old_ae, old_unet = (
        AutoencoderKL(**old_kwargs(ae_kwargs)).eval(),
        DiffusionModelUNet(**old_kwargs(unet_kwargs)).eval(),
    )
    (tmp_path / "bundle" / "models").mkdir(parents=True)
    torch.save(old_ae.state_dict(), tmp_path / "bundle/models/autoencoder.pth")
    torch.save(old_unet.state_dict(), tmp_path / "bundle/models/diffusion_model.pth")

    summary = import_bundle(tmp_path / "bundle", tmp_path / "models", params)
    assert summary["scale_factor"] == 0.3
    assert json.loads((tmp_path / "models/scale_factor.json").read_text())["scale_factor"] == 0.3
    autoencoder, _ = networks.load_model(tmp_path / "models/autoencoder.safetensors")
    unet, description = networks.load_model(tmp_path / "models/diffusion.safetensors")
    assert description["text_encoder"] == params["text_encoder"]
    # sampling uses the null condition the published weights were trained with, not the tokenised ""
    assert description["null_token_ids"] == [49406] + [49407] * (params["text_encoder"]["max_length"] - 1)
    x = torch.rand(1, 1, ae["image_size"], ae["image_size"])
    z, t, context = torch.randn(1, 3, 8, 8), torch.tensor([10]), torch.randn(1, 4, 384)
    with torch.no_grad():
        assert torch.allclose(old_ae.reconstruct(x), autoencoder.reconstruct(x), atol=1e-5)
        assert torch.allclose(old_unet(z, t, context), unet(z, t, context), atol=1e-5)


def test_missing_bundle_file_is_one_line(tmp_path):
    from cxrldm.cli.import_bundle import main

    with pytest.raises(SystemExit, match=r"error: .*autoencoder.pth not found"):
        main([str(tmp_path), "--out", str(tmp_path / "models"), "--profile", str(ROOT / "configs" / "tiny.yaml")])
