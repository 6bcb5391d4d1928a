"""Tiny randomly initialised Hugging Face vision models saved to a directory, for the tests of the real
loading path (tests/evaluation/test_features.py) and of the stages that take such a network."""

import torch

RAD_DINO_MEAN, RAD_DINO_STD = 0.5307, 0.2583
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def save_dinov2(directory):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**TINY, image_size=56, patch_size=14)).save_pretrained(directory)
    BitImageProcessor(
        size={"shortest_edge": 56},
        crop_size={"height": 56, "width": 56},
        resample=3,
        image_mean=[RAD_DINO_MEAN] * 3,
        image_std=[RAD_DINO_STD] * 3,
    ).save_pretrained(directory)


def save_vit(directory):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(1)
    ViTModel(ViTConfig(**TINY, image_size=32, patch_size=8)).save_pretrained(directory)
    ViTImageProcessor(
        size={"height": 32, "width": 32}, resample=2, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(directory)
