"""`autoencoder.ms_ssim` against an independent MS-SSIM (Wang, Simoncelli & Bovik 2003) written here.

The reference is plain numpy in float64: a Gaussian window (sigma 1.5) of the given size applied as a
*valid* convolution (no padding), k1 = 0.01, k2 = 0.03, data range 1; at scales 1..4 the mean over the
valid map of the contrast-structure term cs, at scale 5 the mean of the full SSIM map; negative means
clipped to 0 before the power; 2x2 average pooling (odd edge dropped) between scales; the published
weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). These are the conventions of MONAI's
`compute_ms_ssim`, which `ms_ssim` wraps.

The image pair is a smooth image and the same image plus per-pixel noise: the noise dominates the local
variance at scale 1 (low cs there), and 2x2 pooling averages it away at coarser scales (cs near 1), so
single-scale SSIM, uniform weights or a wrong weight order all give a clearly different number. A small
brightness offset makes the scale-5 luminance term matter too (cs instead of SSIM at scale 5 is caught).
"""

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from cxrldm.evaluation import similarity
from cxrldm.evaluation.intervals import pairwise_mean_interval
from cxrldm.evaluation.similarity import ms_ssim

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
K1, K2, SIGMA = 0.01, 0.03, 1.5
C1, C2 = K1**2, K2**2  # data range 1
TOL = 1e-5
# (kernel size, image side): MONAI needs side // 16 > kernel - 1.
CASES = [(3, 64), (7, 128)]


def gaussian_window(size: int, sigma: float = SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def filter_valid(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Correlate a 2D image with `window`, keeping only fully covered positions."""
    return np.einsum("ijkl,kl->ij", sliding_window_view(img, window.shape), window)


def ssim_maps(x: np.ndarray, y: np.ndarray, window: np.ndarray):
    mx, my = filter_valid(x, window), filter_valid(y, window)
    vx = filter_valid(x * x, window) - mx**2
    vy = filter_valid(y * y, window) - my**2
    cxy = filter_valid(x * y, window) - mx * my
    cs = (2 * cxy + C2) / (vx + vy + C2)
    luminance = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
    return luminance * cs, cs


def pool2(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def per_scale(x: np.ndarray, y: np.ndarray, kernel_size: int):
    """Per scale 1..5: (mean SSIM, mean cs) of one single-channel image pair."""
    window = gaussian_window(kernel_size)
    out = []
    for _ in WEIGHTS:
        ssim_map, cs_map = ssim_maps(x, y, window)
        out.append((ssim_map.mean(), cs_map.mean()))
        x, y = pool2(x), pool2(y)
    return out


def reference_ms_ssim(x: np.ndarray, y: np.ndarray, kernel_size: int, weights=WEIGHTS) -> float:
    scales = per_scale(x, y, kernel_size)
    terms = [cs for _, cs in scales[:-1]] + [scales[-1][0]]
    return float(np.prod([max(t, 0.0) ** w for t, w in zip(terms, weights)]))


def image_pair(side: int, noise: float, seed: int = 0, offset: float = 0.04):
    """A smooth image in about [0.2, 0.8] and it brightened by `offset` plus uniform per-pixel noise of
    amplitude `noise` (the offset makes the luminance term, used only at scale 5, differ from 1)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    smooth = (
        0.5
        + 0.18 * np.sin(2 * np.pi * (1.3 * xx + 0.4 * yy)) * np.cos(2 * np.pi * 0.9 * yy)
        + 0.12 * np.exp(-((xx - 0.35) ** 2 + (yy - 0.6) ** 2) / 0.02)
    )
    noisy = smooth + offset + np.random.default_rng(seed).uniform(-noise, noise, smooth.shape)
    assert smooth.min() >= 0 and smooth.max() <= 1 and noisy.min() >= 0 and noisy.max() <= 1
    return smooth, noisy


def batch(side: int):
    """Two pairs with different noise amplitudes, as float32 (N, 1, H, W) tensors; the reference is
    computed on the same float32 values."""
    pairs = [image_pair(side, 0.12, seed=0), image_pair(side, 0.05, seed=1)]
    a = np.stack([p[0] for p in pairs])[:, None].astype(np.float32)
    b = np.stack([p[1] for p in pairs])[:, None].astype(np.float32)
    return a, b


@pytest.mark.parametrize("kernel_size, side", CASES)
def test_pair_has_disagreeing_scales(kernel_size, side):
    """The fixture discriminates: per-scale values spread widely, so single-scale SSIM and other
    weightings land far (>> TOL) from MS-SSIM."""
    a, b = batch(side)
    x, y = a[0, 0].astype(np.float64), b[0, 0].astype(np.float64)
    scales = per_scale(x, y, kernel_size)
    cs = [c for _, c in scales]
    assert cs[0] < 0.6 and min(cs[2:]) > 0.85, f"per-scale cs {cs}"
    assert max(cs) - min(cs) > 0.3, f"per-scale cs {cs}"
    assert scales[-1][1] - scales[-1][0] > 1e-3, f"scale-5 SSIM {scales[-1][0]} vs cs {scales[-1][1]}"
    ms = reference_ms_ssim(x, y, kernel_size)
    assert abs(ms - scales[0][0]) > 0.1, f"MS-SSIM {ms} vs single-scale SSIM {scales[0][0]}"
    for other in [(0.2,) * 5, WEIGHTS[::-1]]:
        alt = reference_ms_ssim(x, y, kernel_size, weights=other)
        assert abs(ms - alt) > 0.05, f"MS-SSIM {ms} vs weights {other}: {alt}"


@pytest.mark.parametrize("kernel_size, side", CASES)
def test_ms_ssim_matches_independent_reference(kernel_size, side):
    a, b = batch(side)
    got = ms_ssim(torch.from_numpy(a), torch.from_numpy(b), kernel_size)
    assert tuple(got.shape) == (len(a),), f"expected one value per image, got shape {tuple(got.shape)}"
    want = [
        reference_ms_ssim(a[i, 0].astype(np.float64), b[i, 0].astype(np.float64), kernel_size) for i in range(len(a))
    ]
    np.testing.assert_allclose(
        got.numpy().astype(np.float64),
        want,
        rtol=0,
        atol=TOL,
        err_msg=f"ms_ssim vs independent MS-SSIM, kernel {kernel_size}, {side} px",
    )


def test_identical_images_score_one():
    a, _ = batch(64)
    got = ms_ssim(torch.from_numpy(a), torch.from_numpy(a), 3)
    np.testing.assert_allclose(got.numpy(), 1.0, rtol=0, atol=TOL)


def smooth_images(n: int, side: int = 68, seed: int = 1) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(
        torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed)), 5, 1
    )


def test_mean_pairwise_ms_ssim_averages_the_pairs():
    images = smooth_images(4)
    pairs = similarity.pair_indices(4, 0, 0)
    expected = (
        torch.stack([ms_ssim(images[i : i + 1], images[j : j + 1], 3)[0] for i, j in pairs.tolist()]).double().mean()
    )
    result = similarity.mean_pairwise_ms_ssim(images, 0, 3, resamples=50, batch_size=2)
    assert result["value"] == pytest.approx(float(expected), rel=1e-5)
    assert (result["pairs"], result["n"]) == (6, 4) and result["resamples"] <= 50  # no pair in some resamples
    assert result["low"] <= result["value"] <= result["high"]
    same = images[:1].repeat(3, 1, 1, 1)
    assert similarity.mean_pairwise_ms_ssim(same, 0, 3, resamples=20)["value"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("pairs", [0, 5])
def test_mean_pairwise_ms_ssim_is_evaluate_s_former_inline_computation(pairs):
    """Bit for bit what stage evaluate computed inline before it called this: the same pairs (all, or a subset
    drawn with the seed), scored 256 pairs a batch, the interval resampling the images, and the pair count."""
    images, kernel, resamples, seed = smooth_images(6, seed=4), 3, 40, 2
    index = similarity.pair_indices(len(images), pairs, seed)
    scores = torch.cat([ms_ssim(images[c[:, 0]], images[c[:, 1]], kernel) for c in index.split(256)])
    old = {**pairwise_mean_interval(scores, index, len(images), resamples=resamples, seed=seed), "pairs": len(index)}
    assert similarity.mean_pairwise_ms_ssim(images, pairs, kernel, resamples=resamples, seed=seed) == old
    assert old["pairs"] == (15 if pairs == 0 else 5)
    # MONAI's MS-SSIM of a pair moves in the last digits with the batch it is computed in: the batching is kept
    torch.testing.assert_close(similarity.pairwise_ms_ssim(images, index, kernel, batch_size=4), scores)


def test_psnr_is_ten_log_of_one_over_the_mean_squared_error():
    references = torch.full((2, 1, 8, 8), 0.5)
    images = references + torch.tensor([0.1, 0.01])[:, None, None, None]
    assert similarity.psnr(images, references).tolist() == pytest.approx([20.0, 40.0], abs=1e-4)
    assert similarity.psnr(references, references).tolist() == pytest.approx([100.0, 100.0])


def test_edge_energy_ratio_is_one_for_a_copy_and_falls_with_blur():
    from cxrldm.data.filters import gaussian_blur

    films = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert similarity.edge_energy_ratio(films, films).tolist() == pytest.approx([1.0] * 3)
    light, heavy = (similarity.edge_energy_ratio(gaussian_blur(films, s), films) for s in (0.5, 1.0))
    assert (heavy < light).all() and (light < 1).all()
