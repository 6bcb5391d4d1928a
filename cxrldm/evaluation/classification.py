"""Classifier-based metrics: each study's CheXpert targets, AUROC with its count and 95% bootstrap
interval (small JSON dicts {"value", "low", "high", "n", "resamples"}), and the lower-zone contrast
that checks which side an effusion is drawn on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrldm.data.datasets import load_images, read_split
from cxrldm.evaluation.intervals import bootstrap_interval
from cxrldm.evaluation.samples import rows_images


def lower_zones(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (N, 1, H, W in [0, 1]): mean brightness of the image-left and of the image-right lower chest
    (rows 50-85%, columns 15-45% and 55-85%). A PA film shows the patient's right on the image's left."""
    height, width = images.shape[-2:]
    lower = images[..., int(height * 0.50) : int(height * 0.85), :]
    return (
        lower[..., int(width * 0.15) : int(width * 0.45)].mean(dim=(1, 2, 3)),
        lower[..., int(width * 0.55) : int(width * 0.85)].mean(dim=(1, 2, 3)),
    )


def lower_zone_contrast(images: torch.Tensor) -> torch.Tensor:
    """Per image: the image-left lower zone's brightness minus the image-right one's. A right pleural effusion
    raises this number and a left one lowers it: a side check where the classifier has no side labels."""
    image_left, image_right = lower_zones(images)
    return image_left - image_right


def laterality(right: torch.Tensor, left: torch.Tensor, what: str, resamples: int, seed: int) -> dict:
    """The side check of images meant to show a right and a left effusion, from their lower_zone_contrast
    values (image left minus image right: a right effusion raises it): each group's mean ("right_<what>",
    "left_<what>"), the AUROC of right above left with its interval, and the counts."""
    return {
        f"right_{what}": float(right.mean()),
        f"left_{what}": float(left.mean()),
        "auroc_right_vs_left": two_group_auroc_interval(right, left, resamples, seed),
        "n_right": len(right),
        "n_left": len(left),
    }


def prompt_laterality(
    images: torch.Tensor, right: torch.Tensor, null_images: torch.Tensor, resamples: int, seed: int
) -> dict:
    """laterality of images prompted with a right (`right` True) or a left effusion, and each side's
    one_sidedness against the null prompt's images."""
    contrast = lower_zone_contrast(images)
    return {
        **laterality(contrast[right], contrast[~right], "prompts", resamples, seed),
        "one_sided": {
            side: one_sidedness(images[mask], null_images, side, resamples=resamples, seed=seed)
            for side, mask in (("right", right), ("left", ~right))
        },
    }


def one_sidedness(images: torch.Tensor, null_images: torch.Tensor, side: str, **interval) -> dict:
    """Whether images prompted with a `side` (patient's right / left) effusion whiten that side only: the AUROC
    of each lower zone's brightness against the null prompt's images, for the stated side's zone (the image's
    left for a right effusion) and the opposite one. One-sided: stated near 1, opposite near 0.5; an opposite
    AUROC near the stated one means the prompt draws both sides (bilateral), which the right-vs-left contrast
    alone does not show."""
    stated = 0 if side == "right" else 1
    zones, null_zones = lower_zones(images), lower_zones(null_images)
    return {
        "stated_zone_auroc": two_group_auroc_interval(zones[stated], null_zones[stated], **interval),
        "opposite_zone_auroc": two_group_auroc_interval(zones[1 - stated], null_zones[1 - stated], **interval),
    }


def ceiling_note(real_auroc: dict, min_ceiling: float) -> str | None:
    """None when the classifier separates a finding on the real films clearly above chance (the lower end
    of its AUROC interval above `min_ceiling`); otherwise why its results for that finding (faithfulness,
    adherence, utility, edit success) carry no information."""
    value, low, high = real_auroc.get("value"), real_auroc.get("low"), real_auroc.get("high")
    if value is None or low is None:
        return "the real films lack one of the classes, so the classifier's ceiling is unknown"
    if low > min_ceiling:
        return None
    return (
        f"the classifier's AUROC on the real films is {value:.2f} [{low:.2f}, {high:.2f}], not clearly above "
        f"{min_ceiling}: it cannot tell this finding apart, so neither can its score of the synthetic images; "
        f"use a pretrained classifier (evaluate.classifier: xrv) or train the evaluator longer"
    )


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN without both classes."""
    pos, neg = scores[positive.bool()], scores[~positive.bool()]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def label_aurocs(scores: torch.Tensor, targets: torch.Tensor, labels: list[str]) -> tuple[dict, dict]:
    """({label: AUROC rounded to 4 places, or None}, {label: why it is undefined}) for the columns of `scores`
    against 0/1 `targets`: a label whose films hold only one class has no AUROC, and strict JSON no NaN."""
    aurocs, notes = {}, {}
    for i, label in enumerate(labels):
        value = auroc(scores[:, i], targets[:, i])
        aurocs[label] = round(value, 4) if value == value else None
        if value != value:
            which = "positive" if not targets[:, i].bool().any() else "negative"
            notes[label] = f"undefined: no {which} film among those scored"
    return aurocs, notes


def classifier_columns(network, findings: list[str], param: str) -> list[int]:
    """The classifier's output column of each finding, or a one-line error naming the param."""
    missing = [f for f in findings if f not in network.labels]
    if missing:
        raise ValueError(f"{param}: {missing} not among the labels of {network.name} {network.labels}")
    return [network.labels.index(f) for f in findings]


def label_targets(labels: pd.DataFrame, study_ids, findings: list[str]) -> torch.Tensor:
    """(N, F) float targets for the studies: 1 positive, 0 negative or not mentioned, NaN uncertain (-1) or
    a study without a label row, which the AUROCs leave out."""
    study_ids = list(study_ids)
    values = labels.reindex(study_ids)[findings].to_numpy(dtype=float)
    targets = np.where(values == 1.0, 1.0, np.where(values == -1.0, np.nan, 0.0))
    targets[~np.isin(study_ids, labels.index.to_numpy())] = np.nan  # no label row at all: unknown, not negative
    return torch.tensor(targets)


def training_targets(labels: pd.DataFrame, study_ids, findings: list[str]) -> torch.Tensor:
    """(N, F) float32 training targets: a finding counts as present only when its label is 1.0."""
    return label_targets(labels, study_ids, findings).nan_to_num(0.0).float()


def labelled_split(
    resized_dir: str | Path, split: str, labels: pd.DataFrame, findings: list[str], size: int, progress=None
) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """A split's rows, images (N, 1, size, size) and label targets (label_targets: NaN where uncertain)."""
    table = read_split(resized_dir, split)
    return table, load_images(resized_dir, table.path, size, progress), label_targets(labels, table.study_id, findings)


def auroc_interval(scores: torch.Tensor, targets: torch.Tensor, resamples: int, seed: int) -> dict:
    """AUROC of scores against 0/1 targets (NaN targets left out) with its bootstrap interval over items,
    and the class counts."""
    known = ~targets.isnan()
    scores, positive = scores[known].double(), targets[known].bool()
    counts = {"n_positive": int(positive.sum()), "n_negative": int((~positive).sum())}
    if not counts["n_positive"] or not counts["n_negative"]:
        return {
            "value": None,
            "low": None,
            "high": None,
            "n": len(scores),
            "resamples": 0,
            **counts,
            "note": f"undefined: no {'positive' if not counts['n_positive'] else 'negative'} item with a known label",
        }
    result = bootstrap_interval(lambda i: auroc(scores[i], positive[i]), len(scores), resamples=resamples, seed=seed)
    return {**result, **counts}


def finding_aurocs(
    scores: torch.Tensor, targets: torch.Tensor, findings: list[str], resamples: int, seed: int
) -> tuple[dict, float | None]:
    """auroc_interval of each finding's column of scores (N, F) against its targets, and their mean over the
    findings that have a value (None where none has)."""
    aurocs = {f: auroc_interval(scores[:, i], targets[:, i], resamples, seed) for i, f in enumerate(findings)}
    known = [a["value"] for a in aurocs.values() if a["value"] is not None]
    return aurocs, sum(known) / len(known) if known else None


def positive_vs_all(scores: torch.Tensor, targets: torch.Tensor, resamples: int, seed: int) -> dict:
    """AUROC of the scores of the items with target 1 against the scores of all items with a known target
    (NaN targets left out), with its interval over items: adherence's yardstick on real films, whose
    reference group (like the null prompt's images) holds the positives too, so that it is at most
    1 - prevalence / 2 even for a perfect classifier."""
    known = ~targets.isnan()
    scores, positive = scores[known].double(), targets[known] == 1
    counts = {"n_positive": int(positive.sum()), "n_all": len(scores)}
    if not counts["n_positive"]:
        return {
            "value": None,
            "low": None,
            "high": None,
            **counts,
            "note": "undefined: no positive item with a known label",
        }
    return {**two_group_auroc_interval(scores[positive], scores, resamples, seed), **counts}


def real_adherence(
    scores: torch.Tensor, labels: pd.DataFrame, study_ids, finding: str, reference: str, resamples: int, seed: int
) -> dict:
    """Adherence's yardstick on real films: the films labelled positive for `finding` against all films with a
    known label (`reference` "all", as the null prompt's images) or against the negative ones ("negative", as a
    normal report's images; this is the classifier's own AUROC). A finding the label file has no column for gets
    no value and says so, since the classifier may know findings it lacks."""
    if finding not in labels.columns:
        return {
            "value": None,
            "low": None,
            "high": None,
            "skipped": f"the label file (data.labels) has no {finding!r} column",
        }
    targets = label_targets(labels, study_ids, [finding])[:, 0]
    compare = {"all": positive_vs_all, "negative": auroc_interval}[reference]
    return compare(scores, targets, resamples, seed)


def two_group_auroc_interval(group: torch.Tensor, reference: torch.Tensor, resamples: int, seed: int) -> dict:
    """AUROC of `group` scores above `reference` scores, each group resampled on its own."""

    def statistic(a, b):
        return auroc(torch.cat([group[a], reference[b]]), torch.cat([torch.ones(len(a)), torch.zeros(len(b))]))

    return bootstrap_interval(statistic, len(group), len(reference), resamples=resamples, seed=seed)


def adherence(
    classifier,
    manifest: pd.DataFrame,
    images: torch.Tensor,
    null_probabilities: torch.Tensor,
    real_probabilities: torch.Tensor,
    labels: pd.DataFrame,
    study_ids,
    normal: pd.DataFrame | None,
    resamples: int,
    seed: int,
) -> dict:
    """Prompt adherence of each finding prompt of the sample stage's manifest (its rows with a finding, by group;
    `images` one per manifest row), in the classifier's column of the finding: the prompt's images against the
    null prompt's (`null_probabilities`, auroc_vs_null) and, given the `normal` report's rows, against those
    (auroc_vs_normal), each next to its real-film counterpart (real_adherence of `real_probabilities`, the
    classifier's on the real films of `study_ids`)."""
    interval = {"resamples": resamples, "seed": seed}
    normal_probabilities = None if normal is None else classifier.probabilities(rows_images(manifest, images, normal))
    results = {}
    for group, rows in manifest[manifest.finding != ""].groupby("group", sort=False):
        finding, prompt = rows.finding.iloc[0], rows.prompt.iloc[0]
        (column,) = classifier_columns(classifier, [finding], f"sample prompt {prompt!r}")
        probabilities = classifier.probabilities(rows_images(manifest, images, rows))[:, column]
        real = real_probabilities[:, column]
        entry = results[f"prompt{int(group):03d}"] = {
            "finding": finding,
            "prompt": prompt,
            "prompt_probability": float(probabilities.mean()),
            "null_probability": float(null_probabilities[:, column].mean()),
            "auroc_vs_null": two_group_auroc_interval(probabilities, null_probabilities[:, column], **interval),
            "real_positive_vs_all": real_adherence(real, labels, study_ids, finding, "all", **interval),
        }
        if normal_probabilities is not None:
            entry.update(
                {
                    "normal_prompt": normal.prompt.iloc[0],
                    "normal_probability": float(normal_probabilities[:, column].mean()),
                    "auroc_vs_normal": two_group_auroc_interval(
                        probabilities, normal_probabilities[:, column], **interval
                    ),
                    "real_positive_vs_negative": real_adherence(
                        real, labels, study_ids, finding, "negative", **interval
                    ),
                }
            )
    return results
