"""Faithfulness of images generated from studies' own reports (stage faithfulness): per finding, a classifier's
AUROC on the synthetic images against the studies' labels next to its AUROC on the studies' real images (its
ceiling), and the conditional fidelity of the studies with the finding; per subgroup of patients, the mean
faithfulness AUROC on synthetic and real images and the FID between them. Counts and 95% bootstrap intervals."""

from __future__ import annotations

import torch

from cxrldm.evaluation import fidelity
from cxrldm.evaluation.classification import auroc, auroc_interval, ceiling_note
from cxrldm.evaluation.intervals import bootstrap_interval


def mean_of(entries: dict, key: str):
    """The mean of entries' key's "value" where it has one; None where none has."""
    values = [e[key]["value"] for e in entries.values() if e[key]["value"] is not None]
    return sum(values) / len(values) if values else None


def mean_auroc(probability: torch.Tensor, targets: torch.Tensor, columns: list[int]):
    """Mean over findings of the AUROC (findings without both classes left out; NaN if none has them)."""
    values = [auroc(probability[:, c][~t.isnan()], t[~t.isnan()]) for c, t in zip(columns, targets.T)]
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def finding_entry(
    synthetic_probability: torch.Tensor,
    real_probability: torch.Tensor,
    target: torch.Tensor,
    synthetic_features: torch.Tensor,
    real_features: torch.Tensor,
    min_studies: int,
    min_ceiling: float,
    k: int,
    kid_subsets: int,
    resamples: int,
    seed: int,
    param: str,
) -> dict:
    """One finding over the studies (`target`: 1, 0 or NaN per study): the classifier's AUROC on the synthetic
    and the real images, whether the real one is informative (classification.ceiling_note), the counts, and the
    fidelity between the synthetic and real images of the positive studies where at least `min_studies` (and
    3) have it; `param` names min_studies where too few do."""
    interval = {"resamples": resamples, "seed": seed}
    entry = {
        "synthetic_auroc": auroc_interval(synthetic_probability, target, **interval),
        "real_auroc": auroc_interval(real_probability, target, **interval),
    }
    note = ceiling_note(entry["real_auroc"], min_ceiling)
    entry["informative"] = note is None
    if note:
        entry["uninformative_because"] = note
    positive = (target == 1).nonzero().flatten()
    entry["n_positive"], entry["n_uncertain"] = len(positive), int(target.isnan().sum())
    if len(positive) >= max(min_studies, 3):
        entry["fidelity"] = fidelity.fidelity(
            real_features[positive], synthetic_features[positive], k, kid_subsets=kid_subsets, **interval
        )
    else:
        entry["fidelity"] = {"skipped": f"{len(positive)} studies with the finding, fewer than {param} ({min_studies})"}
    return entry


def summary(findings: dict) -> dict:
    """Over the findings' entries: the mean synthetic and real AUROC, over all findings and over the informative
    ones, and the uninformative findings."""
    informative = {f: entry for f, entry in findings.items() if entry["informative"]}
    return {
        "mean_synthetic_auroc": mean_of(findings, "synthetic_auroc"),
        "uninformative_findings": sorted(set(findings) - set(informative)),
        "mean_synthetic_auroc_informative": mean_of(informative, "synthetic_auroc") if informative else None,
        "mean_real_auroc_informative": mean_of(informative, "real_auroc") if informative else None,
        "mean_real_auroc": mean_of(findings, "real_auroc"),
    }


def subgroup_entry(
    rows,
    targets: torch.Tensor,
    synthetic_probability: torch.Tensor,
    real_probability: torch.Tensor,
    columns: list[int],
    real_features: torch.Tensor,
    synthetic_features: torch.Tensor,
    min_studies: int,
    k: int,
    kid_subsets: int,
    resamples: int,
    seed: int,
    param: str,
) -> dict:
    """One subgroup's studies (`rows`, their positions): mean faithfulness AUROC on the synthetic and the real
    images (bootstrap over the subgroup's studies) and FID between them where the subgroup has at least
    `min_studies` (and 3); `param` names min_studies where it has fewer."""
    interval = {"resamples": resamples, "seed": seed}
    index = torch.tensor(rows)
    entry = {"n_studies": len(index)}
    for name, probability in (("synthetic", synthetic_probability), ("real", real_probability)):
        result = bootstrap_interval(
            lambda i: mean_auroc(probability[index[i]], targets[index[i]], columns),
            len(index),
            **interval,
            undefined="no finding has both classes in the subgroup",
        )
        entry[f"{name}_mean_auroc"] = result
    if len(index) >= max(min_studies, 3):
        entry["fid"] = fidelity.fidelity(
            real_features[index], synthetic_features[index], k, kid_subsets=kid_subsets, **interval
        )["fid"]
    else:
        entry["fid"] = {"skipped": f"{len(index)} studies, fewer than {param} ({min_studies})"}
    return entry
