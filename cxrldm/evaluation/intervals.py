"""Percentile bootstrap intervals for evaluation metrics, as small JSON-ready dicts:
{"value": the statistic on all the data, "low", "high", "n": item count(s), "resamples": replicates used}.

Every side (one set of items, or real and fake features) is resampled with replacement, independently of
the others. The statistic sees each resample either as index tensors, one call per resample (any
statistic, at R times its own cost), or, with counts=True, as (B, n) matrices counting how often each item
was drawn in B resamples at once (a statistic of per-item weights: means, PRDC and KID from their
precomputed matrices, at a few matrix products per resample):

    mean_interval(flagged)                                                     # one set, vectorised
    bootstrap_interval(lambda i: auroc(scores[i], labels[i]), len(scores))     # R AUROCs
    indicators = prdc_indicators(real, fake)
    bootstrap_interval(lambda r, f: prdc_from_counts(indicators, r, f), len(real), len(fake), counts=True)
    kernels = kid_kernels(real, fake)
    bootstrap_interval(lambda r, f: mmd2_from_counts(kernels, r, f), len(real), len(fake), counts=True)

A statistic returning a dict gets a dict of intervals, all from the same resamples. Replicates that are
NaN (an AUROC resample without both classes) are skipped, and "resamples" says how many were left. A value
or bound that is not a finite number (NaN: an AUROC without both classes) is None, never NaN (JSON cannot
hold it, cxrldm.io.write_json), and the interval says why in "note": "undefined: <why>" for the value, with
`undefined` the caller's reason (by name for a dict statistic), or "interval undefined: ..." where only
the bounds are, since no resample gave a number.

A resample repeats items (~63% distinct), so a statistic that depends on how many distinct items it sees
gets an interval shifted away from its value: FID grows (500 vs 500 features, 64-d: 4.96 on the data,
interval 8.6-9.8), which is why PRDC and KID above discount repeats."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# index draws held at once: resamples x items, int64
_DRAW_ELEMENTS = 2**22


def bootstrap_interval(
    statistic: Callable,
    *sizes: int,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    counts: bool = False,
    undefined: str | dict = "",
) -> dict:
    """Percentile interval of `statistic` over `resamples` bootstrap resamples of sets of `sizes` items,
    deterministic for a seed (indices and counts modes draw the same resamples). `undefined`: why the
    statistic would not be a number (a dict of reasons by name for a dict statistic), for the note."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"need at least one non-empty set, got sizes {sizes}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    full = [torch.ones(1, n, dtype=torch.float64) if counts else torch.arange(n) for n in sizes]
    point, named = _as_dict(statistic(*full))
    replicates = {name: [] for name in point}
    generator = torch.Generator().manual_seed(seed)
    block = max(1, min(resamples, _DRAW_ELEMENTS // max(sizes)))
    for start in range(0, resamples, block):
        draws = [torch.randint(n, (min(block, resamples - start), n), generator=generator) for n in sizes]
        if counts:
            ones = torch.ones(draws[0].shape[0], 1, dtype=torch.float64)
            weights = [
                torch.zeros(len(d), n, dtype=torch.float64).scatter_add_(1, d, ones.expand_as(d))
                for d, n in zip(draws, sizes)
            ]
            values = _as_dict(statistic(*weights))[0]
        else:
            each = [_as_dict(statistic(*rows))[0] for rows in zip(*draws)]
            values = {name: [v[name] for v in each] for name in point}
        for name in point:
            replicates[name].append(torch.as_tensor(values[name], dtype=torch.float64).cpu().reshape(-1))
    tail = (1 - level) / 2
    intervals = {}
    for name, value in point.items():
        values = torch.cat(replicates[name])
        values = values[~values.isnan()]
        low, high = (
            torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
            if len(values)
            else (math.nan, math.nan)
        )
        value = float(torch.as_tensor(value, dtype=torch.float64).reshape(-1)[0])
        why = undefined.get(name, "") if isinstance(undefined, dict) else undefined
        intervals[name] = noted(
            {
                "value": value,
                "low": low,
                "high": high,
                "n": sizes[0] if len(sizes) == 1 else list(sizes),
                "resamples": len(values),
            },
            why,
        )
    return intervals if named else intervals[None]


def noted(interval: dict, why: str = "") -> dict:
    """The interval with None for each of value, low and high that is not a finite number, and a note saying
    why where one is (unchanged, and no note, where all are numbers)."""
    result = {
        k: None if k in ("value", "low", "high") and v is not None and not math.isfinite(v) else v
        for k, v in interval.items()
    }
    if result["value"] is None:
        result["note"] = f"undefined: {why or 'the statistic is not a number on these items'}"
    elif result["low"] is None or result["high"] is None:
        result["note"] = "interval undefined: no resample gave a number" + (f" ({why})" if why else "")
    return result


def mean_interval(values: torch.Tensor, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Interval of the mean of per-item values (MS-SSIM of pairs; 0/1 flags for a fraction), vectorised."""
    values = torch.as_tensor(values).double().flatten()
    return bootstrap_interval(
        lambda w: (w @ values) / w.sum(1), len(values), resamples=resamples, seed=seed, level=level, counts=True
    )


def _as_dict(value) -> tuple[dict, bool]:
    return (value, True) if isinstance(value, dict) else ({None: value}, False)


def basic_interval(interval: dict, floor: float | None = 0.0) -> dict:
    """The basic (reverse percentile) bootstrap interval, [2 v - high, 2 v - low], from a percentile one:
    for a statistic whose resamples are shifted away from its value (FID grows on resampled, repeated
    features), the shift is subtracted instead of reported. `floor` clips it (FID >= 0)."""
    if any(interval[k] is None for k in ("value", "low", "high")):
        return dict(interval)
    low, high = 2 * interval["value"] - interval["high"], 2 * interval["value"] - interval["low"]
    if floor is not None:
        low, high = max(low, floor), max(high, floor)
    return {**interval, "low": low, "high": high}


def pairwise_mean_interval(
    pair_values: torch.Tensor, pairs: torch.Tensor, n: int, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Interval of a mean over image pairs (MS-SSIM diversity) that resamples the n images, not the pairs:
    an image drawn w_i times gives pair (i, j) the weight w_i w_j, so pairs of an image with its own
    repeat never occur and the pairs' dependence through shared images is kept."""
    values, pairs = torch.as_tensor(pair_values).double(), torch.as_tensor(pairs)

    def mean(w: torch.Tensor) -> torch.Tensor:
        weights = w[:, pairs[:, 0]] * w[:, pairs[:, 1]]
        return (weights @ values) / weights.sum(1)

    return bootstrap_interval(mean, n, resamples=resamples, seed=seed, level=level, counts=True)
