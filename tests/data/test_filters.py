"""The one Gaussian blur: each of its three former copies (privacy's, evaluate's, editing's feather) gets
exactly its old result from it, bit for bit, and it is a blur."""

import math

import pytest
import torch
import torch.nn.functional as F

from cxrldm.data.filters import gaussian_blur


# The three blurs as they were written before they became one (kept verbatim as the reference).
def old_privacy_blur(images, sigma):
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-x.square() / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(images.shape[1], 1, 1)
    n, c, h, w = images.shape
    out = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel[:, :, None, :], groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel[:, :, :, None], groups=c)


def old_evaluate_blur(images, sigma):
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))


def old_feather_blur(flat, pixels):
    radius = max(1, math.ceil(2 * pixels))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * (pixels / 2) ** 2))
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


SHAPES = [(3, 1, 48, 48), (2, 1, 64, 40), (1, 1, 17, 23), (4, 1, 96, 96)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5, 2.0, 3.7])
def test_privacy_callers_get_the_old_blur_bit_for_bit(shape, sigma):
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(int(10 * sigma)))
    assert torch.equal(gaussian_blur(images, sigma), old_privacy_blur(images, sigma))
    three = torch.rand(2, 3, *shape[2:], generator=torch.Generator().manual_seed(1))  # several channels
    assert torch.equal(gaussian_blur(three, sigma), old_privacy_blur(three, sigma))


@pytest.mark.parametrize("shape", SHAPES)
def test_evaluate_gets_the_old_blur_bit_for_bit(shape):
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(shape[2]))
    for size in (8, 48, 64, 96, 256):  # evaluate's sigma is size / 32
        sigma = size / 32
        new = gaussian_blur(images, sigma, radius=int(3 * sigma), border="replicate", pad_first=True)
        assert torch.equal(new, old_evaluate_blur(images, sigma))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pixels", [0.3, 1, 2.0, 2.5, 4.0])
def test_feather_gets_the_old_blur_bit_for_bit(shape, pixels):
    flat = (torch.rand(*shape, generator=torch.Generator().manual_seed(7)) > 0.5).float()
    new = gaussian_blur(flat, pixels / 2, radius=max(1, math.ceil(2 * pixels)), border="replicate")
    assert torch.equal(new, old_feather_blur(flat, pixels))
    noise = torch.rand(*shape, generator=torch.Generator().manual_seed(8))
    new = gaussian_blur(noise, pixels / 2, radius=max(1, math.ceil(2 * pixels)), border="replicate")
    assert torch.equal(new, old_feather_blur(noise, pixels))


def test_it_is_a_normalised_gaussian_of_the_given_width():
    impulse = torch.zeros(1, 1, 41, 41)
    impulse[..., 20, 20] = 1.0
    blurred = gaussian_blur(impulse, 2.0)[0, 0].double()
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-6)
    offsets = torch.arange(41, dtype=torch.float64) - 20
    variance = (blurred.sum(0) * offsets.square()).sum().item()
    assert variance == pytest.approx(4.0, rel=0.02)
    assert torch.equal(gaussian_blur(impulse, 0.0), impulse)
    flat = torch.full((1, 1, 16, 16), 0.3)
    for border, pad_first in (("reflect", False), ("replicate", True), ("replicate", False)):
        torch.testing.assert_close(gaussian_blur(flat, 1.5, border=border, pad_first=pad_first), flat)
