"""The memorisation audit: planted copies of training radiographs are flagged in feature and pixel space
while independent images are flagged at about the calibration percentile; the chunked nearest-neighbour
search against brute force; the threshold and quantiles against numpy."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrldm.demo import phantoms
from cxrldm.evaluation import memorisation
from cxrldm.demo.findings import Findings

PERCENTILE = 5
SIZE = 256            # 1-2 px shifts are light at this size, as on MIMIC's 256-512 px images
FINDINGS = (Findings(), Findings(cardiomegaly=2), Findings(effusion_side="right", effusion_size="moderate"),
            Findings(edema=2))


def films(n: int, seed: int) -> torch.Tensor:
    """n phantom PA radiographs of new patients (N, 1, SIZE, SIZE) in [0, 1], rendered at the phantoms'
    internal resolution and upsampled (quicker than rendering at SIZE, same anatomy)."""
    rng = np.random.default_rng(seed)
    small = torch.stack([torch.from_numpy(phantoms.render(FINDINGS[i % 4], "PA", rng, 160, 160)).float()[None] / 255
                         for i in range(n)])
    return F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(0, 1)


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The image content moved dy rows down and dx columns right, the edge repeated into the gap."""
    pad = max(abs(dy), abs(dx))
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad - dy:pad - dy + images.shape[-2], pad - dx:pad - dx + images.shape[-1]]


def random_cnn_features(images: torch.Tensor) -> torch.Tensor:
    """A fixed random CNN with average pooling: an (N, 512) embedding standing in for a feature network."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5, 2, 2), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1),
                                  torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten())
    with torch.no_grad():
        return net(F.interpolate(images, size=(64, 64), mode="area"))


SPACES = {
    "features": random_cnn_features,
    "pixels16": lambda images: memorisation.pixel_space(images, 16),
    "pixels32": lambda images: memorisation.pixel_space(images, 32),
}


@pytest.fixture(scope="module")
def cohort():
    """Training films, held-out films of new patients (the null), and synthetic films: 50 independent
    ones followed by 30 planted copies of training films 0-29 (10 exact, 10 with noise, 10 shifted)."""
    training, held_out, independent = films(200, seed=0), films(160, seed=1), films(50, seed=2)
    noise = 0.02 * torch.randn(10, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    shifts = [(1, 0), (0, 1), (-1, 1), (2, 0), (0, -2), (1, 2), (-2, -1), (2, 2), (0, 1), (-1, 0)]
    planted = torch.cat([training[:10],
                         (training[10:20] + noise).clamp(0, 1),
                         torch.cat([shifted(training[20 + i:21 + i], dy, dx) for i, (dy, dx) in enumerate(shifts)])])
    return training, held_out, torch.cat([independent, planted])


@pytest.mark.parametrize("space", sorted(SPACES))
def test_planted_copies_are_flagged_and_new_patients_mostly_not(cohort, space):
    training, held_out, synthetic = (SPACES[space](t) for t in cohort)
    calibration, check = held_out[:120], held_out[120:]
    null, _ = memorisation.nearest_neighbours(calibration, training)
    synthetic_d, synthetic_i = memorisation.nearest_neighbours(synthetic, training)
    report = memorisation.audit(synthetic_d, null, PERCENTILE, synthetic_neighbours=synthetic_i, top_k=20)

    copies = torch.arange(50, 80)
    assert (synthetic_d[copies] < report["threshold"]).all(), (space, synthetic_d[copies], report["threshold"])
    assert torch.equal(synthetic_i[copies], torch.arange(30))          # each matched to its own source
    assert (synthetic_d[50:60] == 0).all()                               # exact copies read exactly 0
    # the grid's pairs: the exact and noisy copies are the closest (a shifted copy may trail a new patient)
    assert sorted(report["closest_synthetic"]) == list(range(50, 70))
    assert report["closest_training"] == [i - 50 for i in report["closest_synthetic"]]

    # images that copy nothing: new patients outside the calibration set and the independent synthetic ones
    check_d, _ = memorisation.nearest_neighbours(check, training)
    innocent = torch.cat([check_d, synthetic_d[:50]])
    rate = (innocent < report["threshold"]).double().mean().item()
    assert rate <= 3 * PERCENTILE / 100, (space, rate)
    assert report["flagged_count"] == 30 + int((synthetic_d[:50] < report["threshold"]).sum())
    assert report["flagged_fraction"] == pytest.approx(report["flagged_count"] / 80)
    assert report["null_flagged_fraction"] == pytest.approx(PERCENTILE / 100, abs=1 / 120)


def test_nearest_neighbours_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    queries, references = torch.randn(37, 11, generator=g), torch.randn(53, 11, generator=g)
    queries[5] = references[40]                                          # an exact copy
    exact = torch.cdist(queries.double(), references.double())
    distances, indices = memorisation.nearest_neighbours(queries, references)
    assert torch.equal(indices, exact.argmin(dim=1))
    torch.testing.assert_close(distances.double(), exact.min(dim=1).values, rtol=1e-5, atol=1e-5)
    assert indices[5] == 40 and distances[5] == 0


@pytest.mark.parametrize("chunk", [64, 100, 299, 10_000])
def test_chunked_search_equals_the_unchunked_one(chunk):
    g = torch.Generator().manual_seed(1)
    queries, references = torch.randn(300, 24, generator=g) + 3, torch.randn(701, 24, generator=g) + 3
    queries[::50] = references[-6:] + 1e-3                               # near copies in the last chunks
    full_d, full_i = memorisation.nearest_neighbours(queries, references, chunk=100_000)
    assert torch.equal(full_i, torch.cdist(queries.double(), references.double()).argmin(dim=1))
    d, i = memorisation.nearest_neighbours(queries, references, chunk=chunk)
    assert torch.equal(i, full_i)
    torch.testing.assert_close(d, full_d, rtol=0, atol=1e-6)
    assert torch.equal(i[::50], torch.arange(701 - 6, 701))


def test_nearest_neighbours_takes_half_precision_and_rejects_mismatched_shapes():
    references = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    d, i = memorisation.nearest_neighbours(references[[3, 17]].half(), references.half(), chunk=6)
    assert i.tolist() == [3, 17] and d.dtype == torch.float32 and (d == 0).all()
    with pytest.raises(ValueError):
        memorisation.nearest_neighbours(torch.zeros(3, 7), references)
    with pytest.raises(ValueError):
        memorisation.nearest_neighbours(torch.zeros(3, 8), references[:0])


@pytest.mark.parametrize("percentile", [0, 1, 2.5, 5, 50, 100])
def test_threshold_is_numpys_percentile_of_the_null(percentile):
    g = torch.Generator().manual_seed(4)
    null, synthetic = torch.rand(997, generator=g) + 1, torch.rand(300, generator=g)
    expected = np.percentile(null.double().numpy(), percentile)
    assert memorisation.calibrated_threshold(null, percentile) == pytest.approx(expected, rel=1e-12)
    report = memorisation.audit(synthetic, null, percentile)
    assert report["threshold"] == pytest.approx(expected, rel=1e-12)
    assert report["flagged_count"] == int((synthetic.double() < expected).sum())


def test_threshold_rejects_an_empty_null_and_a_percentile_outside_0_100():
    with pytest.raises(ValueError):
        memorisation.calibrated_threshold(torch.zeros(0), 5)
    with pytest.raises(ValueError):
        memorisation.calibrated_threshold(torch.ones(10), 101)


def test_audit_reports_quantiles_of_both_sides_and_the_closest_pairs():
    g = torch.Generator().manual_seed(5)
    synthetic, null = torch.rand(500, generator=g) * 2, torch.rand(400, generator=g) + 0.5
    neighbours = torch.randint(0, 10_000, (500,), generator=g)
    report = memorisation.audit(synthetic, null, 1, synthetic_neighbours=neighbours, quantiles=(1, 5, 25, 50),
                                top_k=6)
    json.dumps(report)                                                   # plain types only
    for side, values in (("synthetic_quantiles", synthetic), ("null_quantiles", null)):
        assert list(report[side]) == ["p1", "p5", "p25", "p50"]
        np.testing.assert_allclose(list(report[side].values()),
                                   np.percentile(values.double().numpy(), [1, 5, 25, 50]), rtol=1e-12)
    closest = torch.argsort(synthetic)[:6]
    assert report["closest_synthetic"] == closest.tolist()
    assert report["closest_training"] == neighbours[closest].tolist()
    np.testing.assert_allclose(report["closest_distances"], synthetic[closest].double().numpy())
    assert report["n_synthetic"] == 500 and report["n_null"] == 400
    assert report["flagged_count"] == int((synthetic.double() < np.percentile(null.double().numpy(), 1)).sum())


def test_pixel_space_is_low_resolution_standardised_and_blind_to_exposure():
    images = torch.rand(5, 1, 64, 48, generator=torch.Generator().manual_seed(6))
    pixels = memorisation.pixel_space(images, 16)
    assert pixels.shape == (5, 256)
    torch.testing.assert_close(pixels.mean(dim=1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(pixels.std(dim=1), torch.ones(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(memorisation.pixel_space(0.6 * images + 0.2, 16), pixels, atol=1e-4, rtol=0)
    raw = memorisation.pixel_space(images, 16, normalise=False)
    torch.testing.assert_close(raw[0].view(16, 16)[0, 0], images[0, 0, :4, :3].mean())   # area average
    as_uint8 = (images * 255).round().byte()
    torch.testing.assert_close(memorisation.pixel_space(as_uint8, 16, normalise=False),
                               memorisation.pixel_space(as_uint8.float() / 255, 16, normalise=False))


def test_pairs_grid_puts_each_synthetic_image_above_its_training_match():
    synthetic = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(7))
    training = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(8))
    grid = memorisation.pairs_grid(synthetic, training, gap=2)
    assert grid.dtype == np.uint8 and grid.shape == (64, 3 * 32 + 2 * 2)
    np.testing.assert_array_equal(grid[:32, 34:66], (synthetic[1, 0] * 255).round().byte().numpy())
    assert (grid[:, 32:34] == 255).all()
    small = F.interpolate(training, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    np.testing.assert_array_equal(grid[32:, 68:], (small[2, 0].clamp(0, 1) * 255).round().byte().numpy())
