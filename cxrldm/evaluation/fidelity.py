"""Fidelity and diversity of generated features against real ones, next to the Frechet distance (the
package's frechet_distance): precision, recall, density and coverage (Naeem et al. 2020, "Reliable
Fidelity and Diversity Metrics for Generative Models") and the kernel inception distance (Binkowski et
al. 2018, as CheXGenBench reports it), on any (N, D) embedding.

Each splits into an O(N^2) part computed once (per-item k-NN ball indicators; the kernel matrices) and a
cheap part that counts every item a given number of times, so a bootstrap reweights items instead of
recomputing distances (intervals.bootstrap_interval with counts=True):

    indicators = prdc_indicators(real, fake, k=5)
    bootstrap_interval(lambda r, f: prdc_from_counts(indicators, r, f), len(real), len(fake), counts=True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cxrldm.data.filters import gaussian_blur
from cxrldm.evaluation.intervals import basic_interval, bootstrap_interval


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors (N, D): |mu_a - mu_b|^2 +
    tr(S_a + S_b - 2 (S_a S_b)^1/2), the FID formula (MONAI's FIDMetric computes the same). The trace of the
    matrix square root is taken as that of the symmetric S_a^1/2 S_b S_a^1/2, whose eigenvalues are real and
    non-negative: a general square root (scipy's sqrtm) turns complex on the rank-deficient covariances of
    small sets and bootstrap resamples, and MONAI then refuses."""
    a, b = features_a.double(), features_b.double()
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    cov_a, cov_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    root_a = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return max(0.0, mean_term + float(torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross))


def fidelity(
    real: torch.Tensor, fake: torch.Tensor, k: int = 5, resamples: int = 1000, seed: int = 0, kid_subsets: int = 100
) -> dict:
    """Frechet distance, precision / recall / density / coverage (k-NN, k capped below the smaller set) and
    KID of fake against real features, each with its interval:
    - FID: basic bootstrap over both sets (repeats inflate FID; the basic interval subtracts that shift);
    - PRDC: percentile bootstrap reweighting the averaged items, the other set's k-NN balls held fixed;
    - KID: its mean and spread over `kid_subsets` subsets (CheXGenBench), with the percentile interval of
      the full-set unbiased MMD^2 over reweighted items."""
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    if min(len(real), len(fake)) < 3:
        raise ValueError(f"fidelity needs at least 3 real and 3 generated images, got {len(real)} and {len(fake)}")
    sizes, options = (len(real), len(fake)), {"resamples": resamples, "seed": seed}
    fid = bootstrap_interval(lambda r, f: frechet_distance(fake[f], real[r]), *sizes, **options)
    k = min(k, len(real) - 1, len(fake) - 1)
    indicators = prdc_indicators(real, fake, k)
    prdc = bootstrap_interval(lambda r, f: prdc_from_counts(indicators, r, f), *sizes, counts=True, **options)
    kernels = kid_kernels(real, fake)
    mmd = bootstrap_interval(lambda r, f: mmd2_from_counts(kernels, r, f), *sizes, counts=True, **options)
    kid = kernel_inception_distance(real, fake, kid_subsets, seed=seed)
    return {
        "fid": basic_interval(fid),
        **prdc,
        "k": k,
        "kid": {
            **mmd,
            "value": kid["mean"],
            "std": kid["std"],
            "subsets": kid["subsets"],
            "subset_size": kid["subset_size"],
        },
    }


def blurred_reference(images: torch.Tensor) -> torch.Tensor:
    """Real images blurred (sigma 2 px at 64 px): a real-but-degraded reference for the FID scale."""
    sigma = images.shape[-1] / 32
    return gaussian_blur(images, sigma, radius=int(3 * sigma), border="replicate", pad_first=True)


def fidelity_with_baselines(
    network, real_images: torch.Tensor, fake_images: torch.Tensor, k: int, kid_subsets: int, resamples: int, seed: int
) -> dict:
    """fidelity of fake against real (N, 1, S, S) images in a feature network's space (`network.features`), as
    {"fid_<name>", "kid_<name>", "prdc_<name>"} after `network.name`, next to the FID of two references: uniform
    noise (seeded by `seed`) and the real images blurred (blurred_reference). Where the blur is as close as the
    fakes, "feature_network_note" says that this FID cannot rank them above a blur."""
    n, size = len(real_images), real_images.shape[-1]
    real = network.features(real_images)
    noise = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    blurred = blurred_reference(real_images)
    scores = fidelity(real, network.features(fake_images), k, kid_subsets=kid_subsets, resamples=resamples, seed=seed)
    fid = f"fid_{network.name}"
    results = {
        fid: scores.pop("fid"),
        f"{fid}_noise_baseline": frechet_distance(network.features(noise), real),
        f"{fid}_blur_baseline": frechet_distance(network.features(blurred), real),
        f"kid_{network.name}": scores.pop("kid"),
        f"prdc_{network.name}": scores,
    }
    if results[f"{fid}_blur_baseline"] <= results[fid]["value"]:
        results["feature_network_note"] = (
            f"blurred test images are as close to the real ones as the samples under "
            f"{network.name} (FID {results[f'{fid}_blur_baseline']:.1f} vs "
            f"{results[fid]['value']:.1f}): this FID cannot rank the samples above a blur"
        )
    return results


def kth_neighbour_distances(features: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Euclidean distance (float64) of each row (N, D) to its k-th nearest other row, itself excluded
    (an exact duplicate elsewhere counts, at distance 0). Memory: `chunk` x N distances at a time."""
    features = torch.as_tensor(features).double()
    if not 1 <= k < len(features):
        raise ValueError(f"k must be in [1, {len(features) - 1}] for {len(features)} rows, got {k}")
    radii = []
    for start in range(0, len(features), chunk):
        block = torch.cdist(features[start : start + chunk], features)
        rows = torch.arange(len(block), device=block.device)
        block[rows, rows + start] = float("inf")
        radii.append(block.kthvalue(k, dim=1).values)
    return torch.cat(radii)


@dataclass
class PRDCIndicators:
    """Per item, all PRDC needs: for each fake, how many real k-NN balls hold it (M,); for each real,
    whether some fake lies inside its own ball (N,), and whether it lies inside some fake's ball (N,)."""

    real_balls_per_fake: torch.Tensor
    real_covered: torch.Tensor
    real_in_fake_ball: torch.Tensor
    k: int


def prdc_indicators(real: torch.Tensor, fake: torch.Tensor, k: int = 5, chunk: int = 1024) -> PRDCIndicators:
    """Balls: each item's k-NN radius within its own set, open (`<`, as Naeem et al.'s reference code).
    Memory: `chunk` x max(N, M) float64 distances at a time."""
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    real_radii, fake_radii = kth_neighbour_distances(real, k, chunk), kth_neighbour_distances(fake, k, chunk)
    real_balls_per_fake = torch.zeros(len(fake), dtype=torch.long, device=fake.device)
    real_covered, real_in_fake_ball = [], []
    for start in range(0, len(real), chunk):
        distances = torch.cdist(real[start : start + chunk], fake)
        in_real_ball = distances < real_radii[start : start + chunk, None]
        real_balls_per_fake += in_real_ball.sum(0)
        real_covered.append(in_real_ball.any(1))
        real_in_fake_ball.append((distances < fake_radii[None, :]).any(1))
    return PRDCIndicators(real_balls_per_fake, torch.cat(real_covered), torch.cat(real_in_fake_ball), k)


def prdc_from_counts(
    indicators: PRDCIndicators, real_counts: torch.Tensor | None = None, fake_counts: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Precision, recall, density and coverage, (B,) float64 each, averaging over fake j counted
    fake_counts[b, j] times (precision, density) and real i counted real_counts[b, i] times (recall,
    coverage); (B, M) and (B, N), None: once each, B = 1.

    The other set's balls stay those of the full sets: a bootstrap over counts varies which items are
    averaged, not the manifold they are tested against. Resampling that too leaves ~63% distinct items
    in it, so precision, recall and coverage would shrink (2000 vs 2000 features: coverage 0.96, its
    interval 0.87-0.92)."""
    device = indicators.real_covered.device
    real_w = (torch.ones(1, len(indicators.real_covered)) if real_counts is None else real_counts).to(device).double()
    fake_w = (
        (torch.ones(1, len(indicators.real_balls_per_fake)) if fake_counts is None else fake_counts).to(device).double()
    )
    balls = indicators.real_balls_per_fake.double()
    total_real, total_fake = real_w.sum(1), fake_w.sum(1)
    return {
        "precision": fake_w @ (balls > 0).double() / total_fake,
        "recall": real_w @ indicators.real_in_fake_ball.double() / total_real,
        "density": fake_w @ balls / (indicators.k * total_fake),
        "coverage": real_w @ indicators.real_covered.double() / total_real,
    }


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5, chunk: int = 1024) -> dict:
    """Naeem et al.'s four metrics between real (N, D) and fake (M, D) features, with each set's k-NN
    balls: precision (fakes inside some real ball), recall (reals inside some fake ball), density (real
    balls holding a fake, per k M) and coverage (reals with a fake inside their own ball). A set against
    itself reads 1 for all four (open balls: each holds its centre's twin and k - 1 neighbours' twins)."""
    metrics = prdc_from_counts(prdc_indicators(real, fake, k, chunk))
    return {
        **{name: float(value[0]) for name, value in metrics.items()},
        "k": k,
        "n_real": len(real),
        "n_fake": len(fake),
    }


@dataclass
class KIDKernels:
    """Cubic polynomial kernel matrices (float64) within and between the real (N) and fake (M) features."""

    real_real: torch.Tensor
    fake_fake: torch.Tensor
    real_fake: torch.Tensor


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x . y / D + 1)^3 for all rows of a (N, D) and b (M, D), float64 (N, M)."""
    kernel = a.double() @ b.double().T
    return kernel.div_(a.shape[1]).add_(1).pow_(3)


def kid_kernels(real: torch.Tensor, fake: torch.Tensor) -> KIDKernels:
    """The three kernel matrices: (N + M)^2 float64 entries (5000 + 5000 items: 600 MB)."""
    real, fake = torch.as_tensor(real), torch.as_tensor(fake)
    return KIDKernels(polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake))


def mmd2_from_counts(
    kernels: KIDKernels, real_counts: torch.Tensor | None = None, fake_counts: torch.Tensor | None = None
) -> torch.Tensor:
    """Unbiased MMD^2 (B,) with real i counted real_counts[b, i] times and fake j fake_counts[b, j] times
    ((B, N), (B, M); None: once each). Within a set, pairs of an item with itself are left out, repeats
    included; between the sets every pair counts. With 0/1 counts: the estimator of that subset, as in
    torch-fidelity's KID."""
    device = kernels.real_fake.device
    real_w = (torch.ones(1, kernels.real_fake.shape[0]) if real_counts is None else real_counts).to(device).double()
    fake_w = (torch.ones(1, kernels.real_fake.shape[1]) if fake_counts is None else fake_counts).to(device).double()

    def within(kernel: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        pairs = ((w @ kernel) * w).sum(1) - (w.square() * kernel.diagonal()).sum(1)
        return pairs / (w.sum(1).square() - w.square().sum(1))

    between = ((real_w @ kernels.real_fake) * fake_w).sum(1) / (real_w.sum(1) * fake_w.sum(1))
    return within(kernels.real_real, real_w) + within(kernels.fake_fake, fake_w) - 2 * between


def kernel_inception_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int | None = None, seed: int = 0
) -> dict:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, over `subsets` random subsets drawn without
    replacement from each set, of size min(N, M) unless given (CheXGenBench: 100 of min(N, M)); equal
    set sizes make every subset the whole set (std 0). Mean and (population) standard deviation over
    subsets, as torch-fidelity. Cost: the kernel matrices once ((N + M)^2 D), then a matmul per side."""
    real, fake = torch.as_tensor(real), torch.as_tensor(fake)
    size = subset_size or min(len(real), len(fake))
    if not 2 <= size <= min(len(real), len(fake)):
        raise ValueError(f"subset size must be in [2, {min(len(real), len(fake))}], got {size}")
    generator = torch.Generator().manual_seed(seed)

    def subset_counts(n: int) -> torch.Tensor:
        chosen = torch.rand(subsets, n, generator=generator).argsort(dim=1)[:, :size]
        return torch.zeros(subsets, n, dtype=torch.float64).scatter_(1, chosen, 1.0)

    values = mmd2_from_counts(kid_kernels(real, fake), subset_counts(len(real)), subset_counts(len(fake)))
    return {
        "mean": float(values.mean()),
        "std": float(values.std(correction=0)),
        "subsets": subsets,
        "subset_size": size,
    }
