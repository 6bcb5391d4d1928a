"""HFVisionFeatures on tiny randomly initialised models saved to disk and loaded through the real
AutoModel / AutoImageProcessor path: a DINOv2 like RAD-DINO (shortest-edge resize + centre crop, bicubic,
RAD-DINO's mean/std) and a ViT (exact resize, bilinear, no crop), against independent preprocessing."""

from types import SimpleNamespace

import pytest
import torch
import torchvision.transforms.v2.functional as tvF
from tiny_models import RAD_DINO_MEAN, RAD_DINO_STD, save_dinov2, save_vit
from torchvision.transforms import InterpolationMode

from cxrldm.evaluation.features import HFVisionFeatures, model_slug, pooled


def dinov2_reference(images):
    """RAD-DINO's recipe written out: shorter side to 56 (bicubic, antialiased), centre 56 x 56, clamp, normalise.
    The crop offset is transformers' floor((side - 56) / 2), not torchvision center_crop's round()."""
    x = tvF.resize(images.repeat(1, 3, 1, 1), 56, interpolation=InterpolationMode.BICUBIC, antialias=True)
    top, left = (x.shape[-2] - 56) // 2, (x.shape[-1] - 56) // 2
    x = x[..., top : top + 56, left : left + 56].clamp(0, 1)
    return tvF.normalize(x, [RAD_DINO_MEAN] * 3, [RAD_DINO_STD] * 3)


def vit_reference(images):
    x = tvF.resize(images.repeat(1, 3, 1, 1), [32, 32], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return (x.clamp(0, 1) - 0.5) / 0.5


FAMILIES = {"rad-dino": (save_dinov2, dinov2_reference), "tiny-vit": (save_vit, vit_reference)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_models")
    for folder, (save, _) in FAMILIES.items():
        save(root / folder)
    return root


@pytest.fixture(scope="module")
def dino(saved):
    return HFVisionFeatures(str(saved / "rad-dino"), batch_size=3)


def images(n, height=70, width=84, seed=0):
    return torch.rand(n, 1, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("folder", list(FAMILIES))
def test_features_are_pooler_output_of_independently_preprocessed_images(saved, folder):
    from transformers import AutoModel

    network = HFVisionFeatures(str(saved / folder), batch_size=2)
    x = images(5)
    features = network.features(x)
    assert features.shape == (5, 32) and features.dtype == torch.float32
    model = AutoModel.from_pretrained(saved / folder).eval()
    with torch.no_grad():
        expected = model(pixel_values=FAMILIES[folder][1](x)).pooler_output
    assert torch.allclose(features, expected, atol=1e-5), (features - expected).abs().max()


def test_transform_equals_the_models_own_image_processor(saved, dino):
    """transformers' processor on the same [0, 1] images (no 1/255 rescale), clamped as 8-bit input would be."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(saved / "rad-dino")
    x = images(4, 90, 64)
    official = processor(images=list(x.repeat(1, 3, 1, 1)), do_rescale=False, return_tensors="pt").pixel_values
    low, high = -RAD_DINO_MEAN / RAD_DINO_STD, (1 - RAD_DINO_MEAN) / RAD_DINO_STD
    ours = dino.transform(x)
    assert ours.shape == (4, 3, 56, 56)
    assert torch.allclose(ours, official.clamp(low, high), atol=1e-5)


def test_identical_images_give_identical_features_whatever_their_batch(dino):
    x = images(7)
    together = dino.features(x)  # batches of 3: 3 + 3 + 1
    alone = torch.cat([dino.features(x[i : i + 1]) for i in range(7)])
    mixed = dino.features(torch.cat([images(2, seed=9), x[4:5]]))[2]
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(mixed, together[4], atol=1e-5)
    assert not torch.allclose(together[0], together[1], atol=1e-3)  # different images, different features


def test_grayscale_and_its_three_channel_replication_agree(dino):
    x = images(3, 64, 64)
    assert torch.allclose(dino.features(x), dino.features(x.repeat(1, 3, 1, 1)), atol=1e-6)


def test_name_labels_and_no_probabilities(saved, dino):
    assert model_slug("microsoft/rad-dino") == "hf_microsoft_rad_dino"
    assert model_slug(str(saved / "rad-dino")) == "hf_rad_dino" == dino.name
    assert dino.labels == []
    with pytest.raises(NotImplementedError, match="feature network only"):
        dino.probabilities(images(1))


@pytest.mark.parametrize("where", ["directory", "hub id"])
def test_missing_model_is_a_one_line_error(tmp_path, where):
    model = str(tmp_path / "rad-dino") if where == "directory" else "cxrldm-tests/no-such-model"
    with pytest.raises(FileNotFoundError) as error:
        HFVisionFeatures(model)
    message = str(error.value)
    assert "\n" not in message and repr(model) in message
    assert "hf download" in message and "point the param at that directory" in message


def test_pooling_fallbacks_without_a_pooler():
    tokens = torch.randn(2, 5, 4)
    assert torch.equal(pooled(SimpleNamespace(pooler_output=None, last_hidden_state=tokens)), tokens[:, 0])
    maps = torch.randn(2, 4, 3, 3)
    assert torch.allclose(pooled(SimpleNamespace(pooler_output=None, last_hidden_state=maps)), maps.mean((2, 3)))
    assert pooled(SimpleNamespace(pooler_output=maps[..., :1, :1], last_hidden_state=None)).shape == (2, 4)
