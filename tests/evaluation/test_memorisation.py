"""The memorisation audit: planted copies of training radiographs are flagged in feature and pixel space
while independent images are flagged at about the calibration percentile; the chunked nearest-neighbour
search against brute force; the threshold and quantiles against numpy."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrldm.demo import phantoms
from cxrldm.demo.findings import Findings
from cxrldm.evaluation import memorisation

PERCENTILE = 5
SIZE = 256  # 1-2 px shifts are light at this size, as on MIMIC's 256-512 px images
FINDINGS = (
    Findings(),
    Findings(cardiomegaly=2),
    Findings(effusion_side="right", effusion_size="moderate"),
    Findings(edema=2),
)


def films(n: int, seed: int) -> torch.Tensor:
    """n phantom PA radiographs of new patients (N, 1, SIZE, SIZE) in [0, 1], rendered at the phantoms'
    internal resolution and upsampled (quicker than rendering at SIZE, same anatomy)."""
    rng = np.random.default_rng(seed)
    small = torch.stack(
        [torch.from_numpy(phantoms.render(FINDINGS[i % 4], "PA", rng, 160, 160)).float()[None] / 255 for i in range(n)]
    )
    return F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(0, 1)


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The image content moved dy rows down and dx columns right, the edge repeated into the gap."""
    pad = max(abs(dy), abs(dx))
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad - dy : pad - dy + images.shape[-2], pad - dx : pad - dx + images.shape[-1]]


def random_cnn_features(images: torch.Tensor) -> torch.Tensor:
    """A fixed random CNN with average pooling: an (N, 512) embedding standing in for a feature network."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 5, 2, 2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, 2, 1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4),
            torch.nn.Flatten(),
        )
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
    planted = torch.cat(
        [
            training[:10],
            (training[10:20] + noise).clamp(0, 1),
            torch.cat([shifted(training[20 + i : 21 + i], dy, dx) for i, (dy, dx) in enumerate(shifts)]),
        ]
    )
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
    assert torch.equal(synthetic_i[copies], torch.arange(30))  # each matched to its own source
    assert (synthetic_d[50:60] == 0).all()  # exact copies read exactly 0
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
    queries[5] = references[40]  # an exact copy
    exact = torch.cdist(queries.double(), references.double())
    distances, indices = memorisation.nearest_neighbours(queries, references)
    assert torch.equal(indices, exact.argmin(dim=1))
    torch.testing.assert_close(distances.double(), exact.min(dim=1).values, rtol=1e-5, atol=1e-5)
    assert indices[5] == 40 and distances[5] == 0


@pytest.mark.parametrize("chunk", [64, 100, 299, 10_000])
def test_chunked_search_equals_the_unchunked_one(chunk):
    g = torch.Generator().manual_seed(1)
    queries, references = torch.randn(300, 24, generator=g) + 3, torch.randn(701, 24, generator=g) + 3
    queries[::50] = references[-6:] + 1e-3  # near copies in the last chunks
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
    report = memorisation.audit(synthetic, null, 1, synthetic_neighbours=neighbours, quantiles=(1, 5, 25, 50), top_k=6)
    json.dumps(report)  # plain types only
    for side, values in (("synthetic_quantiles", synthetic), ("null_quantiles", null)):
        assert list(report[side]) == ["p1", "p5", "p25", "p50"]
        np.testing.assert_allclose(
            list(report[side].values()), np.percentile(values.double().numpy(), [1, 5, 25, 50]), rtol=1e-12
        )
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
    torch.testing.assert_close(raw[0].view(16, 16)[0, 0], images[0, 0, :4, :3].mean())  # area average
    as_uint8 = (images * 255).round().byte()
    torch.testing.assert_close(
        memorisation.pixel_space(as_uint8, 16, normalise=False),
        memorisation.pixel_space(as_uint8.float() / 255, 16, normalise=False),
    )


def test_pairs_grid_puts_each_synthetic_image_above_its_training_match():
    synthetic = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(7))
    training = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(8))
    grid = memorisation.pairs_grid(synthetic, training, gap=2)
    assert grid.dtype == np.uint8 and grid.shape == (64, 3 * 32 + 2 * 2)
    np.testing.assert_array_equal(grid[:32, 34:66], (synthetic[1, 0] * 255).round().byte().numpy())
    assert (grid[:, 32:34] == 255).all()
    small = F.interpolate(training, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    np.testing.assert_array_equal(grid[32:, 68:], (small[2, 0].clamp(0, 1) * 255).round().byte().numpy())


def old_stage_audit(
    spaces,
    synthetic,
    training_images,
    test_images,
    planted,
    source,
    training_patients,
    prompt_patients,
    percentile,
    top_pairs,
    resamples,
    seed,
):
    """Stage memorisation's audit as it was written in the stage before it moved to space_audit (the reference)."""
    from cxrldm.evaluation import privacy
    from cxrldm.evaluation.intervals import mean_interval

    def fraction(flags):
        return mean_interval(flags.double(), resamples, seed)

    planted_films = next(iter(planted.values()))
    results = {"spaces": {}, "planted": {spec: {"n": len(planted_films)} for spec in planted}}
    measured = {}
    for space, (embed, views) in spaces.items():
        reference = embed(privacy.gallery_views(training_images, views))
        distances, nearest = memorisation.nearest_neighbours(embed(synthetic), reference)
        null, _ = memorisation.nearest_neighbours(embed(test_images), reference)
        planted_distances = {
            spec: memorisation.nearest_neighbours(embed(copies), reference)[0] for spec, copies in planted.items()
        }
        measured[space] = distances, nearest % len(training_images), null, planted_distances
    level = memorisation.joint_percentile([null for _, _, null, _ in measured.values()], percentile)
    results["space_percentile"] = level
    flags, null_flags, rows = [], [], []
    for space, (distances, nearest, null, planted_distances) in measured.items():
        report = memorisation.audit(distances, null, level, nearest, top_k=top_pairs)
        flags.append(distances < report["threshold"])
        null_flags.append(null < report["threshold"])
        report["flagged_fraction"] = fraction(flags[-1])
        report["nearest_is_source_fraction"] = fraction(nearest == source)
        report["nearest_is_source_patient_fraction"] = fraction(training_patients[nearest] == prompt_patients)
        for spec, copy_distances in planted_distances.items():
            results["planted"][spec][space] = int((copy_distances < report["threshold"]).sum())
        results["spaces"][space] = report
        rows.append(
            memorisation.pairs_grid(synthetic[report["closest_synthetic"]], training_images[report["closest_training"]])
        )
    union = torch.stack(flags).any(0)
    results["union"] = {
        "flagged_count": int(union.sum()),
        "flagged_fraction": fraction(union),
        "null_flagged_fraction": float(torch.stack(null_flags).any(0).double().mean()),
    }
    for spec in planted:
        caught = torch.stack([measured[space][3][spec] < results["spaces"][space]["threshold"] for space in measured])
        results["planted"][spec]["union"] = int(caught.any(0).sum())
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1])), constant_values=255) for r in rows]
    return results, np.concatenate(rows)[:-6]


@pytest.fixture(scope="module")
def small_cohort():
    """64 px films: 24 training (patients 0-11, two films each), 16 held out, 12 synthetic of which the first 4
    are exact copies of training films 3, 5, 7, 9 (their prompts' own sources)."""
    training = F.interpolate(films(24, seed=5), size=(64, 64), mode="area")
    held_out = F.interpolate(films(16, seed=6), size=(64, 64), mode="area")
    synthetic = torch.cat([training[[3, 5, 7, 9]], F.interpolate(films(8, seed=7), size=(64, 64), mode="area")])
    return training, held_out, synthetic


def test_space_audit_is_the_stage_s_former_audit_and_flags_planted_copies(small_cohort):
    from functools import partial

    from cxrldm.evaluation import privacy

    training, held_out, synthetic = small_cohort
    spaces = {
        "features": (random_cnn_features, []),
        "pixels_16": (partial(memorisation.pixel_space, size=16), ["shift:1"]),
    }
    source = torch.tensor([3, 5, 7, 9] + [-1] * 8)
    training_patients = torch.arange(24) // 2
    prompt_patients = torch.tensor([1, 2, 3, 4] + [1, 2, 3, 4, 5, 6, 7, 8])
    planted = privacy.planted_copies(training[:4], ["exact", "shift:1", "noise:0.02"], seed=1)
    arguments = (
        spaces,
        synthetic,
        training,
        held_out,
        planted,
        source,
        training_patients,
        prompt_patients,
        10.0,
        3,
        50,
        2,
    )
    results, pairs = memorisation.space_audit(*arguments)
    old_results, old_pairs = old_stage_audit(*arguments)
    assert json.dumps(results, sort_keys=True) == json.dumps(old_results, sort_keys=True)
    assert np.array_equal(pairs, old_pairs) and pairs.dtype == np.uint8
    # the copies are flagged in every space and are their prompts' own films; the union flags them too
    for space in spaces:
        assert results["spaces"][space]["flagged_count"] >= 4
        assert results["spaces"][space]["nearest_is_source_fraction"]["value"] >= 4 / 12
    assert results["union"]["flagged_count"] >= 4 and results["union"]["null_flagged_fraction"] <= 0.10
    assert results["planted"]["exact"] == {"n": 4, "features": 4, "pixels_16": 4, "union": 4}
    assert 0 <= results["space_percentile"] <= 10.0
    assert pairs.shape[0] == 2 * (2 * 64) + 6  # a row of pairs per space, 6 px apart


def test_prompt_sources_index_the_training_films_and_plant_the_sources_first():
    import pandas as pd

    source, order = memorisation.prompt_sources(
        pd.Series(["c.png", "x.png", "a.png", "c.png"]), ["a.png", "b.png", "c.png", "d.png"]
    )
    assert source.tolist() == [2, -1, 0, 2] and source.dtype == torch.int64
    assert order == [2, 0, 1, 3]


def test_stack_rows_pads_to_the_widest_with_white_gaps():
    rows = [np.zeros((2, 3), np.uint8), np.full((1, 5), 7, np.uint8)]
    stacked = memorisation.stack_rows(rows, gap=2)
    assert stacked.shape == (2 + 2 + 1, 5)
    assert (stacked[:2, :3] == 0).all() and (stacked[:2, 3:] == 255).all() and (stacked[2:4] == 255).all()
    assert (stacked[4] == 7).all()
