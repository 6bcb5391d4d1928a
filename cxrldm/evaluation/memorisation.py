"""Memorisation audit: is a generated image a copy of a training image?

Each image generated from a TRAINING-split report is matched to its nearest training image, in a
feature space (any (N, D) embedding) and in a low-resolution pixel space. What counts as "too close"
is calibrated, not guessed (Dar et al. 2024; Koeken et al. 2025): the null distribution is the same
nearest-training-neighbour distance for real held-out images of new patients (the test split), and a
synthetic image closer to the training set than the null's low percentile is flagged.

    train_d, train_i = nearest_neighbours(synthetic_features, training_features)
    null_d, _ = nearest_neighbours(test_features, training_features)
    report = audit(train_d, null_d, percentile=1, synthetic_neighbours=train_i)

Over several spaces at once (space_audit), one level holds for all of them, chosen so that their union flags
at most the asked share of the held-out images (joint_percentile).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrldm.data.images import grid
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.evaluation.privacy import gallery_views

DEFAULT_QUANTILES = (1, 5, 25, 50)


def nearest_neighbours(
    queries: torch.Tensor, references: torch.Tensor, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean 1-NN of each query row (Q, D) among the reference rows (R, D): (distances (Q,),
    indices (Q,) into `references`), on the references' device.

    Works on float32 blocks of at most `chunk` queries x `chunk` references, so memory is bounded by
    `chunk`**2 whatever Q and R are: per block ||r||^2 - 2 q.r is one matmul, its row minimum is kept
    (ties go to the lowest index) and ||q||^2 is added to the minimum only. Both sides are centred on
    the references' mean first (distances do not change, the cancellation in the expansion shrinks),
    and the returned distance is recomputed directly as ||q - r_nearest||, so an exact copy reads 0."""
    queries, references = torch.as_tensor(queries), torch.as_tensor(references)
    if queries.ndim != 2 or references.ndim != 2 or queries.shape[1] != references.shape[1]:
        raise ValueError(f"expected (Q, D) and (R, D), got {tuple(queries.shape)} and {tuple(references.shape)}")
    if len(references) == 0:
        raise ValueError("no references to match against")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    device = references.device
    centre = references.mean(dim=0, dtype=torch.float64).to(device, torch.float32)
    best_d = torch.full((len(queries),), float("inf"), device=device)
    best_i = torch.zeros(len(queries), dtype=torch.long, device=device)
    for r0 in range(0, len(references), chunk):
        block_r = references[r0 : r0 + chunk].to(device, torch.float32) - centre
        r_sq = block_r.square().sum(dim=1)
        for q0 in range(0, len(queries), chunk):
            block_q = queries[q0 : q0 + chunk].to(device, torch.float32) - centre
            # ||r||^2 - 2 q.r for the whole block in one addmm; ||q||^2 is the same along the row
            partial = torch.addmm(r_sq[None, :], block_q, block_r.T, alpha=-2.0)
            values, where = partial.min(dim=1)
            values = values + block_q.square().sum(dim=1)
            better = values < best_d[q0 : q0 + chunk]
            best_d[q0 : q0 + chunk] = torch.where(better, values, best_d[q0 : q0 + chunk])
            best_i[q0 : q0 + chunk] = torch.where(better, where + r0, best_i[q0 : q0 + chunk])
    distances = best_d.clone()
    for q0 in range(0, len(queries), chunk):
        nearest = references[best_i[q0 : q0 + chunk]].to(device, torch.float32)
        distances[q0 : q0 + chunk] = (queries[q0 : q0 + chunk].to(device, torch.float32) - nearest).norm(dim=1)
    return distances, best_i


def pixel_space(images: torch.Tensor, size: int = 32, normalise: bool = True, batch_size: int = 512) -> torch.Tensor:
    """Low-resolution pixel representation (N, C * size * size), float32: images (N, C, H, W) (uint8 read
    as [0, 1]) area-averaged to size x size and flattened; with `normalise` each image is shifted and
    scaled to mean 0 and standard deviation 1, so an exposure or windowing change does not hide a copy."""
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got {tuple(images.shape)}")
    scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
    out = []
    for batch in images.split(batch_size):
        small = F.adaptive_avg_pool2d(batch.float() * scale, (size, size)).flatten(1)
        if normalise:
            small = (small - small.mean(dim=1, keepdim=True)) / (small.std(dim=1, keepdim=True) + 1e-6)
        out.append(small)
    return torch.cat(out) if out else torch.zeros(0, images.shape[1] * size * size)


def calibrated_threshold(null_distances: torch.Tensor, percentile: float) -> float:
    """The `percentile`-th percentile (0-100, numpy's linear interpolation) of the held-out images'
    nearest-training-neighbour distances: synthetic images closer than this are flagged."""
    null = np.asarray(torch.as_tensor(null_distances).detach().cpu().double())
    if null.size == 0:
        raise ValueError("the null distribution is empty: no held-out distances to calibrate on")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    return float(np.percentile(null, percentile))


def joint_percentile(nulls, percentile: float, steps: int = 200) -> float:
    """The largest level q in [0, percentile] (on a grid of `steps`) such that flagging a held-out image
    when any space's distance is below that space's q-th null percentile flags at most `percentile`% of
    the held-out images. `nulls`: one (N,) tensor of distances per space, the same N images in each; at
    q = 0 the threshold is each space's smallest null distance, which flags none of them."""
    nulls = [np.asarray(torch.as_tensor(n).detach().cpu().double()) for n in nulls]
    if not nulls or any(len(n) != len(nulls[0]) for n in nulls):
        raise ValueError("one null distance per held-out image in every space")
    for q in np.linspace(percentile, 0.0, steps + 1):
        flagged = np.zeros(len(nulls[0]), dtype=bool)
        for null in nulls:
            flagged |= null < calibrated_threshold(torch.as_tensor(null), float(q))
        if flagged.mean() <= percentile / 100 + 1e-12:
            return float(q)
    return 0.0


def audit(
    synthetic_distances: torch.Tensor,
    null_distances: torch.Tensor,
    percentile: float,
    synthetic_neighbours: torch.Tensor | None = None,
    quantiles=DEFAULT_QUANTILES,
    top_k: int = 8,
) -> dict:
    """Flag synthetic images whose nearest-training distance is below the null's `percentile`-th
    percentile. Plain (JSON-ready) dict: the threshold, flagged count and fraction, the fraction of the
    null itself below the threshold (about percentile / 100), percentiles of both distributions
    ({"p1": ...}), and the `top_k` closest synthetic images (indices, distances and, given
    `synthetic_neighbours`, their nearest training images) for a grid."""
    synthetic = torch.as_tensor(synthetic_distances).detach().cpu().double()
    null = torch.as_tensor(null_distances).detach().cpu().double()
    threshold = calibrated_threshold(null, percentile)
    flagged = synthetic < threshold
    order = torch.argsort(synthetic, stable=True)[:top_k]

    def describe(values: torch.Tensor) -> dict:
        if not len(values):  # None, not NaN: the metrics are strict JSON (cxrldm.io.write_json)
            return {**{f"p{q:g}": None for q in quantiles}, "note": "undefined: no distances"}
        return {f"p{q:g}": float(v) for q, v in zip(quantiles, np.percentile(values.numpy(), list(quantiles)))}

    report = {
        "percentile": float(percentile),
        "threshold": threshold,
        "n_synthetic": len(synthetic),
        "n_null": len(null),
        "flagged_count": int(flagged.sum()),
        "flagged_fraction": float(flagged.double().mean()) if len(synthetic) else 0.0,
        "null_flagged_fraction": float((null < threshold).double().mean()),
        "synthetic_quantiles": describe(synthetic),
        "null_quantiles": describe(null),
        "closest_synthetic": order.tolist(),
        "closest_distances": synthetic[order].tolist(),
    }
    if synthetic_neighbours is not None:
        report["closest_training"] = torch.as_tensor(synthetic_neighbours).cpu()[order].tolist()
    return report


def pairs_grid(synthetic: torch.Tensor, training: torch.Tensor, size: int | None = None, gap: int = 2) -> np.ndarray:
    """uint8 (2 * size, K * (size + gap) - gap) image of K matched pairs: the synthetic images (K, 1, H, W)
    in [0, 1] (or uint8) on the top row, each one's nearest training image below it, all resized to `size` (default:
    the synthetic images' height) and separated by white columns `gap` pixels wide."""
    if len(synthetic) != len(training):
        raise ValueError(f"{len(synthetic)} synthetic images but {len(training)} training images")
    size = size or synthetic.shape[-2]

    def resized(images: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(images)
        images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return images

    if not len(synthetic):
        return np.zeros((2 * size, 0), np.uint8)
    return grid(torch.cat([resized(synthetic), resized(training)]), len(synthetic), gap=gap, row_gap=0)


def prompt_sources(source_paths: pd.Series, training_paths) -> tuple[torch.Tensor, list[int]]:
    """Each prompt's own film among the training films (its index, -1 where its source is not one), and the
    order in which planted copies take training films: the prompts' own source films first (each once, in
    prompt order), then the other training films."""
    source = source_paths.map({path: i for i, path in enumerate(training_paths)})
    planted_order = list(dict.fromkeys(source.dropna().astype(int).tolist() + list(range(len(training_paths)))))
    return torch.tensor(source.fillna(-1).astype(int).to_numpy()), planted_order


def space_audit(
    spaces: dict,
    synthetic: torch.Tensor,
    training: torch.Tensor,
    null_images: torch.Tensor,
    planted: dict[str, torch.Tensor],
    source: torch.Tensor,
    training_patients: torch.Tensor,
    prompt_patients: torch.Tensor,
    percentile: float,
    top_k: int,
    resamples: int,
    seed: int,
) -> tuple[dict, np.ndarray]:
    """The audit in every space of `spaces` ({name: (images -> (N, D) embedding, the poses the training films
    are matched in, as privacy.gallery_views takes them)}) of synthetic images against the training films, the
    null being the held-out `null_images`. One level for all spaces (joint_percentile), so that their union
    flags at most `percentile`% of the null; per space its audit, flagged fraction and how often the nearest
    training film is the prompt's own (`source`) or its patient's; the union's counts; and how many of each
    set of `planted` copies each space and the union flag. Fractions have intervals (`resamples`, `seed`).
    Returns {"space_percentile", "spaces", "union", "planted"} and an image of each space's closest pairs
    (a row per space: synthetic above training)."""
    measured = {}
    for space, (embed, views) in spaces.items():
        reference = embed(gallery_views(training, views))
        distances, nearest = nearest_neighbours(embed(synthetic), reference)
        null, _ = nearest_neighbours(embed(null_images), reference)
        planted_distances = {spec: nearest_neighbours(embed(copies), reference)[0] for spec, copies in planted.items()}
        measured[space] = distances, nearest % len(training), null, planted_distances
    # one level for all spaces, so that the union flags at most `percentile`% of the new patients' films
    level = joint_percentile([null for _, _, null, _ in measured.values()], percentile)
    results = {
        "space_percentile": level,
        "spaces": {},
        "planted": {spec: {"n": len(copies)} for spec, copies in planted.items()},
    }
    flags, null_flags, rows = [], [], []
    for space, (distances, nearest, null, planted_distances) in measured.items():
        report = audit(distances, null, level, nearest, top_k=top_k)
        flags.append(distances < report["threshold"])
        null_flags.append(null < report["threshold"])
        report["flagged_fraction"] = mean_interval(flags[-1].double(), resamples, seed)
        report["nearest_is_source_fraction"] = mean_interval((nearest == source).double(), resamples, seed)
        report["nearest_is_source_patient_fraction"] = mean_interval(
            (training_patients[nearest] == prompt_patients).double(), resamples, seed
        )
        for spec, copy_distances in planted_distances.items():
            results["planted"][spec][space] = int((copy_distances < report["threshold"]).sum())
        results["spaces"][space] = report
        rows.append(pairs_grid(synthetic[report["closest_synthetic"]], training[report["closest_training"]]))
    union = torch.stack(flags).any(0)
    results["union"] = {
        "flagged_count": int(union.sum()),
        "flagged_fraction": mean_interval(union.double(), resamples, seed),
        "null_flagged_fraction": float(torch.stack(null_flags).any(0).double().mean()),
    }
    for spec in planted:
        caught = torch.stack([measured[space][3][spec] < results["spaces"][space]["threshold"] for space in measured])
        results["planted"][spec]["union"] = int(caught.any(0).sum())
    return results, stack_rows(rows)


def stack_rows(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """uint8 images one above the other, padded white on the right to the widest, `gap` white rows between."""
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, width - r.shape[1])), constant_values=255) for r in rows]
    return np.concatenate(rows)[:-gap]
