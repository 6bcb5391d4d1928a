"""PRDC, KID and bootstrap intervals: hand-computed cases, independent loops and limiting cases."""

import itertools
import json
import math

import pytest
import torch

from cxrldm.evaluation.classification import auroc
from cxrldm.evaluation.fidelity import (
    kernel_inception_distance,
    kid_kernels,
    kth_neighbour_distances,
    mmd2_from_counts,
    prdc_from_counts,
    prdc_indicators,
    precision_recall_density_coverage,
)
from cxrldm.evaluation.intervals import bootstrap_interval, mean_interval


def gaussian(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_prdc_by_hand_in_one_dimension():
    # k = 1. Real radii: 0 -> 1, 1 -> 1, 3 -> 2. Fake radii: 1.5 -> 3, 4.5 -> 3, 9 -> 0.5, 9.5 -> 0.5.
    real = torch.tensor([[0.0], [1.0], [3.0]])
    fake = torch.tensor([[1.5], [4.5], [9.0], [9.5]])
    metrics = precision_recall_density_coverage(real, fake, k=1)
    # 1.5 lies in the balls of 1 and 3, 4.5 in the ball of 3, 9 and 9.5 in none
    assert metrics["precision"] == pytest.approx(2 / 4)
    assert metrics["density"] == pytest.approx((2 + 1) / (1 * 4))
    # every real lies in the ball of fake 1.5 (radius 3), though real 0 is 1.5 from its nearest fake
    assert metrics["recall"] == pytest.approx(1.0)
    # real 0: nearest fake 1.5 away, its own radius 1 (the fake's radius 3 would cover it); 1 and 3 covered
    assert metrics["coverage"] == pytest.approx(2 / 3)
    assert (metrics["k"], metrics["n_real"], metrics["n_fake"]) == (1, 3, 4)


def test_prdc_by_hand_in_two_dimensions_with_k_2():
    # reals at the corners of a unit square: 2nd neighbour of each is 1 away (the diagonal is sqrt 2)
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # fake-fake distances 0.4 (first two), sqrt 0.41 = 0.640 (first, third), sqrt 0.97 = 0.985 (second, third)
    fake = torch.tensor([[0.5, 0.0], [0.9, 0.0], [0.0, -0.4]])
    torch.testing.assert_close(kth_neighbour_distances(fake, 2), torch.tensor([0.41, 0.97, 0.97]).double().sqrt())
    metrics = precision_recall_density_coverage(real, fake, k=2)
    # (0.5, 0): balls of (0,0), (1,0), and (0,1)/(1,1) at sqrt(1.25) > 1 -> 2; (0.9, 0): (0,0), (1,0),
    # (1,1) at 1.005 > 1 -> 2; (0, -0.4): (0,0) only -> 1
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["density"] == pytest.approx(5 / (2 * 3))
    # reals covered: (0,0) and (1,0) have fakes within 1; (0,1) nearest fake (0.5,0) at 1.118; (1,1) at 1.005
    assert metrics["coverage"] == pytest.approx(2 / 4)
    # fake balls 0.640, 0.985, 0.985: (0,0) in (0.5,0)'s, (1,0) in (0.9,0)'s, (1,1) 1.005 from (0.9,0): none
    assert metrics["recall"] == pytest.approx(2 / 4)


def test_prdc_of_a_set_against_itself():
    real = gaussian(200, 8, seed=0)
    metrics = precision_recall_density_coverage(real, real.clone(), k=5)
    assert metrics["precision"] == metrics["recall"] == metrics["coverage"] == 1.0
    # open balls hold the twins of their centre and of k - 1 neighbours, not of the k-th on the boundary
    # (closed balls: 1 + 1/k)
    assert metrics["density"] == pytest.approx(1.0, abs=0.01)


def test_prdc_of_distant_fakes_is_zero():
    real = gaussian(200, 8, seed=0)
    metrics = precision_recall_density_coverage(real, gaussian(200, 8, seed=1, shift=50.0), k=5)
    assert metrics["precision"] == metrics["recall"] == metrics["density"] == metrics["coverage"] == 0.0
    noise = precision_recall_density_coverage(real, 10 * gaussian(200, 8, seed=2), k=5)
    assert noise["precision"] < 0.05 and noise["density"] < 0.05 and noise["coverage"] < 0.1


def test_mode_dropping_keeps_precision_and_halves_recall_and_coverage():
    centres = torch.tensor([[0.0, 0.0], [30.0, 0.0]], dtype=torch.float64)
    real = torch.cat([gaussian(150, 2, seed=0) + centres[0], gaussian(150, 2, seed=1) + centres[1]])
    fake = gaussian(300, 2, seed=2) + centres[0]
    metrics = precision_recall_density_coverage(real, fake, k=5)
    assert metrics["precision"] > 0.9
    assert 0.4 < metrics["recall"] <= 0.5
    assert 0.4 < metrics["coverage"] <= 0.5
    both = precision_recall_density_coverage(real, torch.cat([fake[:150], gaussian(150, 2, seed=3) + centres[1]]))
    assert both["recall"] > 0.9 and both["coverage"] > 0.9


def test_chunked_distances_match_unchunked():
    real, fake = gaussian(37, 5, seed=0), gaussian(29, 5, seed=1, shift=0.3)
    torch.testing.assert_close(kth_neighbour_distances(real, 3, chunk=4), kth_neighbour_distances(real, 3, chunk=1000))
    small, whole = prdc_indicators(real, fake, 3, chunk=4), prdc_indicators(real, fake, 3, chunk=1000)
    for name in ("real_balls_per_fake", "real_covered", "real_in_fake_ball"):
        assert torch.equal(getattr(small, name), getattr(whole, name))
    assert precision_recall_density_coverage(real, fake, 3, chunk=4) == precision_recall_density_coverage(real, fake, 3)


def polynomial(x, y):
    return (float(x @ y) / len(x) + 1) ** 3


def mmd2_by_loops(x, y):
    m, n = len(x), len(y)
    xx = sum(polynomial(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(polynomial(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(polynomial(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_against_a_double_loop():
    x, y = gaussian(5, 3, seed=0), gaussian(5, 3, seed=1, shift=0.5)
    kid = kernel_inception_distance(x, y, subsets=7)
    assert kid["mean"] == pytest.approx(mmd2_by_loops(x, y), rel=1e-9)
    assert kid["std"] == pytest.approx(0.0, abs=1e-12) and kid["subset_size"] == 5 and kid["subsets"] == 7
    # 6 reals and 4 fakes: subsets of 4 reals without replacement, each of the 15 equally likely
    x6 = gaussian(6, 3, seed=2)
    exact = torch.tensor(
        [mmd2_by_loops(x6[list(rows)], y[:4]) for rows in itertools.combinations(range(6), 4)], dtype=torch.float64
    )
    kid = kernel_inception_distance(x6, y[:4], subsets=3000, seed=1)
    assert kid["subset_size"] == 4
    assert kid["mean"] == pytest.approx(float(exact.mean()), abs=0.1 * float(exact.std()))
    assert kid["std"] == pytest.approx(float(exact.std(correction=0)), rel=0.1)
    # two subsets a, b: mean (a + b) / 2 and the population std |a - b| / 2 (torch-fidelity's np.std)
    two = kernel_inception_distance(x6, y[:4], subsets=2, seed=0)
    assert two["std"] > 0 and any(
        two["mean"] == pytest.approx(float(a + b) / 2, rel=1e-9)
        and two["std"] == pytest.approx(abs(float(a - b)) / 2, rel=1e-9)
        for a, b in itertools.combinations(exact, 2)
    )


def test_mmd2_counts_leave_out_pairs_of_an_item_with_itself():
    x, y = gaussian(4, 3, seed=0), gaussian(3, 3, seed=1)
    counts_x, counts_y = torch.tensor([[2.0, 0.0, 1.0, 1.0]]), torch.tensor([[1.0, 3.0, 0.0]])
    rows_x, rows_y = [0, 0, 2, 3], [0, 1, 1, 1]
    xs, ys = x[rows_x], y[rows_y]
    # repeats of one item pair with the other items, never with each other
    xx = [polynomial(xs[a], xs[b]) for a in range(4) for b in range(4) if rows_x[a] != rows_x[b]]
    yy = [polynomial(ys[a], ys[b]) for a in range(4) for b in range(4) if rows_y[a] != rows_y[b]]
    xy = [polynomial(xs[a], ys[b]) for a in range(4) for b in range(4)]
    expected = sum(xx) / len(xx) + sum(yy) / len(yy) - 2 * sum(xy) / len(xy)
    assert float(mmd2_from_counts(kid_kernels(x, y), counts_x, counts_y)[0]) == pytest.approx(expected, rel=1e-9)


def test_kid_near_zero_for_one_distribution_and_positive_for_shifted_sets():
    real = gaussian(300, 16, seed=0)
    same = kernel_inception_distance(real, gaussian(300, 16, seed=1))
    shifted = kernel_inception_distance(real, gaussian(300, 16, seed=1, shift=1.0))
    itself = kernel_inception_distance(real, real)
    assert shifted["mean"] > 0.5
    assert abs(same["mean"]) < 0.02 * shifted["mean"] and abs(itself["mean"]) < 0.02 * shifted["mean"]


def test_kid_is_deterministic_for_a_seed():
    real, fake = gaussian(40, 4, seed=0), gaussian(25, 4, seed=1, shift=0.2)
    assert kernel_inception_distance(real, fake, seed=3) == kernel_inception_distance(real, fake, seed=3)
    assert kernel_inception_distance(real, fake, seed=3) != kernel_inception_distance(real, fake, seed=4)


def test_mean_interval_width_contains_the_value_and_narrows():
    values = gaussian(400, 1, seed=0).flatten()
    interval = mean_interval(values, resamples=1000, seed=0)
    assert interval["value"] == pytest.approx(float(values.mean()))
    assert interval["low"] < interval["value"] < interval["high"]
    assert interval["high"] - interval["low"] == pytest.approx(2 * 1.96 / math.sqrt(400), rel=0.1)
    assert (interval["n"], interval["resamples"]) == (400, 1000)
    larger = mean_interval(gaussian(1600, 1, seed=1).flatten(), resamples=1000, seed=0)
    assert larger["high"] - larger["low"] == pytest.approx((interval["high"] - interval["low"]) / 2, rel=0.15)
    assert mean_interval(values, resamples=1000, seed=0) == interval
    assert mean_interval(values, resamples=1000, seed=1) != interval
    assert json.loads(json.dumps(interval)) == interval


def test_counts_and_indices_draw_the_same_resamples():
    values = gaussian(50, 1, seed=0).flatten()
    by_counts = mean_interval(values, resamples=300, seed=5)
    by_indices = bootstrap_interval(lambda i: float(values[i].mean()), 50, resamples=300, seed=5)
    assert by_indices == pytest.approx(by_counts, rel=1e-12)


def test_auroc_interval_skips_resamples_without_both_classes():
    scores = torch.linspace(0, 1, 12)
    labels = torch.zeros(12)
    labels[[9, 6]] = 1
    interval = bootstrap_interval(lambda i: auroc(scores[i], labels[i]), 12, resamples=400, seed=0)
    assert interval["value"] == pytest.approx(auroc(scores, labels))
    # a resample of 12 misses both positives with chance (10/12)^12 = 11%
    assert 300 < interval["resamples"] < 400
    assert interval["low"] <= interval["value"] <= interval["high"] <= 1


def test_two_sided_bootstrap_of_prdc_and_kid():
    real, fake = gaussian(60, 4, seed=0), gaussian(40, 4, seed=1, shift=0.5)
    indicators = prdc_indicators(real, fake, k=3)
    prdc = bootstrap_interval(lambda r, f: prdc_from_counts(indicators, r, f), 60, 40, resamples=200, counts=True)
    point = precision_recall_density_coverage(real, fake, k=3)
    assert set(prdc) == {"precision", "recall", "density", "coverage"}
    for name, interval in prdc.items():
        assert interval["value"] == point[name] and interval["n"] == [60, 40] and interval["resamples"] == 200
        assert interval["low"] <= interval["value"] <= interval["high"] and interval["low"] < interval["high"]
    # larger sets: each interval roughly centred on its value (not so when repeats count: balls resampled too,
    # repeated items paired in KID)
    real, fake = gaussian(500, 8, seed=2), gaussian(500, 8, seed=3, shift=0.2)
    indicators = prdc_indicators(real, fake, k=5)
    prdc = bootstrap_interval(lambda r, f: prdc_from_counts(indicators, r, f), 500, 500, resamples=300, counts=True)
    kernels = kid_kernels(real, fake)
    kid = bootstrap_interval(lambda r, f: mmd2_from_counts(kernels, r, f), 500, 500, resamples=300, counts=True)
    assert kid["value"] == pytest.approx(kernel_inception_distance(real, fake)["mean"], rel=1e-12)
    for interval in [*prdc.values(), kid]:
        middle, half = (interval["low"] + interval["high"]) / 2, (interval["high"] - interval["low"]) / 2
        assert abs(middle - interval["value"]) < 0.3 * half
    assert json.loads(json.dumps(prdc)) == prdc


def test_basic_interval_reflects_the_percentile_one_about_the_value():
    from cxrldm.evaluation.intervals import basic_interval

    shifted = {"value": 5.0, "low": 6.0, "high": 9.0, "n": [10, 10], "resamples": 100}
    assert basic_interval(shifted) == {**shifted, "low": 1.0, "high": 4.0}
    assert basic_interval({**shifted, "value": 1.0})["low"] == 0.0  # a distance stays >= 0
    assert basic_interval({**shifted, "value": 1.0}, floor=None)["low"] == -7.0


def test_pairwise_interval_resamples_images_not_pairs():
    """Pair scores a_i + a_j share their images' terms: resampling the images sees that dependence and is
    about sqrt(n / 2) times wider than a bootstrap over the (dependent) pairs."""
    from cxrldm.evaluation.intervals import mean_interval, pairwise_mean_interval

    n = 40
    a = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pairs = torch.combinations(torch.arange(n), 2)
    scores = a[pairs[:, 0]] + a[pairs[:, 1]]
    by_images = pairwise_mean_interval(scores, pairs, n, resamples=400)
    by_pairs = mean_interval(scores, resamples=400)
    assert by_images["value"] == pytest.approx(float(scores.mean()))
    assert by_images["n"] == n and by_images["resamples"] == 400
    assert by_images["low"] < by_images["value"] < by_images["high"]
    assert (by_images["high"] - by_images["low"]) > 3 * (by_pairs["high"] - by_pairs["low"])
    # the interval of twice the mean of the a_i, which the pair mean is
    direct = mean_interval(2 * a, resamples=400)
    assert (by_images["high"] - by_images["low"]) == pytest.approx(direct["high"] - direct["low"], rel=0.35)


def test_fidelity_reports_the_basic_fid_interval_and_keeps_real_and_generated_apart():
    """suite.fidelity: FID's interval is the percentile one reflected about the value; precision is of
    the generated set (a generated set covering half the real modes has precision 1, recall about 1/2)."""
    from cxrldm.evaluation.fidelity import fidelity, frechet_distance

    real = torch.cat([gaussian(60, 4, 0), gaussian(60, 4, 1, shift=20.0)])
    generated = gaussian(60, 4, 2)  # one of the two real modes only
    result = fidelity(real, generated, k=5, resamples=200, seed=3, kid_subsets=10)
    percentile = bootstrap_interval(
        lambda r, f: frechet_distance(generated[f], real[r]), len(real), len(generated), resamples=200, seed=3
    )
    assert result["fid"]["value"] == pytest.approx(percentile["value"])
    assert result["fid"]["low"] == pytest.approx(max(0.0, 2 * percentile["value"] - percentile["high"]))
    assert result["fid"]["high"] == pytest.approx(max(0.0, 2 * percentile["value"] - percentile["low"]))
    assert result["precision"]["value"] > 0.9 and 0.4 < result["recall"]["value"] < 0.6
    assert 0.4 < result["coverage"]["value"] < 0.6 and result["precision"]["n"] == [120, 60]
    assert result["kid"]["value"] > 0 and result["kid"]["low"] <= result["kid"]["high"]


def test_frechet_distance_agrees_with_monai_and_stays_real_on_rank_deficient_sets():
    """The same number as MONAI's FIDMetric on well-conditioned sets; on a set with fewer samples than
    dimensions and duplicated rows (a bootstrap resample of a small subgroup), where a general matrix square
    root turns complex and MONAI refuses, a finite, non-negative distance."""
    from monai.metrics import FIDMetric

    from cxrldm.evaluation.fidelity import frechet_distance

    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 8, generator=generator), torch.randn(150, 8, generator=generator) * 1.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(float(FIDMetric()(a.double(), b.double())), rel=1e-6)
    small = torch.randn(6, 32, generator=generator)
    resample = small[torch.tensor([0, 0, 1, 2, 2, 3])]
    value = frechet_distance(resample, small * 0.9 + 0.1)
    assert value == value and value >= 0
    assert frechet_distance(small, small) == pytest.approx(0.0, abs=1e-5)


class PooledFeatures:
    """A stand-in feature network: each image's brightness and its fine detail (the absolute difference from a
    3 x 3 local mean), each average-pooled to 2 x 2 (8 features)."""

    name = "pooled"

    def features(self, images):
        detail = (images - torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)).abs()
        pool = torch.nn.functional.adaptive_avg_pool2d
        return torch.cat([pool(images, 2).flatten(1), pool(detail, 2).flatten(1)], 1)


def old_evaluate_fidelity_block(network, test_images, samples, size, k, kid_subsets, options):
    """Stage evaluate's fidelity block and blur as they were written in the stage (the reference)."""
    import torch.nn.functional as F

    from cxrldm.evaluation.fidelity import fidelity, frechet_distance

    def gaussian_blur(images, sigma):
        radius = int(3 * sigma)
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        padded = F.pad(images, (radius,) * 4, mode="replicate")
        blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
        return F.conv2d(blurred, kernel.view(1, 1, -1, 1))

    results, n_test = {}, len(test_images)
    real = network.features(test_images)
    noise = torch.rand(n_test, 1, size, size, generator=torch.Generator().manual_seed(options["seed"]))
    blurred = gaussian_blur(test_images, sigma=size / 32)
    fidelity_scores = fidelity(real, network.features(samples), k, kid_subsets=kid_subsets, **options)
    fid = f"fid_{network.name}"
    results[fid] = fidelity_scores.pop("fid")
    results[f"{fid}_noise_baseline"] = frechet_distance(network.features(noise), real)
    results[f"{fid}_blur_baseline"] = frechet_distance(network.features(blurred), real)
    results[f"kid_{network.name}"] = fidelity_scores.pop("kid")
    results[f"prdc_{network.name}"] = fidelity_scores
    if results[f"{fid}_blur_baseline"] <= results[fid]["value"]:
        results["feature_network_note"] = (
            f"blurred test images are as close to the real ones as the samples under "
            f"{network.name} (FID {results[f'{fid}_blur_baseline']:.1f} vs "
            f"{results[fid]['value']:.1f}): this FID cannot rank the samples above a blur"
        )
    return results


@pytest.mark.parametrize("size, copies", [(32, True), (48, False)])
def test_fidelity_with_baselines_is_evaluate_s_former_block(size, copies):
    from cxrldm.evaluation.fidelity import fidelity_with_baselines

    generator = torch.Generator().manual_seed(size)
    real = torch.rand(12, 1, size, size, generator=generator)
    fake = real[:10].clone() if copies else (torch.rand(10, 1, size, size, generator=generator) + 0.3).clamp(0, 1)
    options = {"resamples": 30, "seed": 4}
    got = fidelity_with_baselines(PooledFeatures(), real, fake, 3, 5, **options)
    assert got == old_evaluate_fidelity_block(PooledFeatures(), real, fake, size, 3, 5, options)
    assert {"fid_pooled", "fid_pooled_noise_baseline", "fid_pooled_blur_baseline", "kid_pooled", "prdc_pooled"} <= set(
        got
    )
    # the note where a blur of the real images is as close as the fakes: not for copies of the real images
    assert ("feature_network_note" in got) == (got["fid_pooled_blur_baseline"] <= got["fid_pooled"]["value"])
    assert ("feature_network_note" in got) == (not copies)
