"""Faithfulness per finding and per subgroup, against stage faithfulness's former inline code and by value."""

import pytest
import torch

from cxrldm.evaluation import classification, faithfulness, fidelity
from cxrldm.evaluation.intervals import bootstrap_interval

OPTIONS = {"resamples": 40, "seed": 3}


def old_stage_findings(
    findings,
    columns,
    targets,
    synthetic_probability,
    real_probability,
    synthetic_features,
    real_features,
    p,
    e,
    options,
):
    """The stage's per-finding loop and summary as they were written in the stage (the reference)."""

    def mean_of(entries, key):
        values = [x[key]["value"] for x in entries.values() if x[key]["value"] is not None]
        return sum(values) / len(values) if values else None

    results = {"findings": {}}
    for finding, column, target in zip(findings, columns, targets.T):
        entry = {
            "synthetic_auroc": classification.auroc_interval(synthetic_probability[:, column], target, **options),
            "real_auroc": classification.auroc_interval(real_probability[:, column], target, **options),
        }
        note = classification.ceiling_note(entry["real_auroc"], p["min_ceiling"])
        entry["informative"] = note is None
        if note:
            entry["uninformative_because"] = note
        positive = (target == 1).nonzero().flatten()
        entry["n_positive"], entry["n_uncertain"] = len(positive), int(target.isnan().sum())
        if len(positive) >= max(p["min_studies"], 3):
            entry["fidelity"] = fidelity.fidelity(
                real_features[positive],
                synthetic_features[positive],
                e["prdc_k"],
                kid_subsets=e["kid_subsets"],
                **options,
            )
        else:
            entry["fidelity"] = {
                "skipped": f"{len(positive)} studies with the finding, fewer than "
                f"faithfulness.min_studies ({p['min_studies']})"
            }
        results["findings"][finding] = entry
    results["mean_synthetic_auroc"] = mean_of(results["findings"], "synthetic_auroc")
    informative = {f: entry for f, entry in results["findings"].items() if entry["informative"]}
    results["uninformative_findings"] = sorted(set(results["findings"]) - set(informative))
    results["mean_synthetic_auroc_informative"] = mean_of(informative, "synthetic_auroc") if informative else None
    results["mean_real_auroc_informative"] = mean_of(informative, "real_auroc") if informative else None
    results["mean_real_auroc"] = mean_of(results["findings"], "real_auroc")
    return results


def old_mean_auroc(probability, targets, columns):
    values = [classification.auroc(probability[:, c][~t.isnan()], t[~t.isnan()]) for c, t in zip(columns, targets.T)]
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def old_subgroup_entry(
    rows,
    targets,
    synthetic_probability,
    real_probability,
    columns,
    real_features,
    synthetic_features,
    min_studies,
    e,
    options,
):
    index = torch.tensor(rows)
    entry = {"n_studies": len(index)}
    for name, probability in (("synthetic", synthetic_probability), ("real", real_probability)):
        interval = bootstrap_interval(
            lambda i: old_mean_auroc(probability[index[i]], targets[index[i]], columns), len(index), **options
        )
        entry[f"{name}_mean_auroc"] = {k: None if isinstance(v, float) and v != v else v for k, v in interval.items()}
    if len(index) >= max(min_studies, 3):
        entry["fid"] = fidelity.fidelity(
            real_features[index], synthetic_features[index], e["prdc_k"], kid_subsets=e["kid_subsets"], **options
        )["fid"]
    else:
        entry["fid"] = {"skipped": f"{len(index)} studies, fewer than faithfulness.min_studies ({min_studies})"}
    return entry


@pytest.fixture
def studies():
    """16 studies, 3 findings: Cardiomegaly in 6 (the real and synthetic scores follow it, the synthetic ones
    less), Edema in 2 (too few for fidelity), No Finding never (no AUROC); one uncertain label."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.zeros(16, 3)
    targets[:6, 0] = 1
    targets[6, 0] = float("nan")
    targets[[7, 9], 1] = 1
    real_p = torch.rand(16, 4, generator=generator) * 0.5
    real_p[:, 1] += targets[:, 0].nan_to_num(0) * 0.5
    synthetic_p = torch.rand(16, 4, generator=generator) * 0.7
    synthetic_p[:, 1] += targets[:, 0].nan_to_num(0) * 0.3
    real_f = torch.randn(16, 5, generator=generator, dtype=torch.float64)
    synthetic_f = real_f + 0.3 * torch.randn(16, 5, generator=generator, dtype=torch.float64)
    return ["Cardiomegaly", "Edema", "No Finding"], [1, 2, 0], targets, synthetic_p, real_p, synthetic_f, real_f


def test_finding_entries_and_summary_are_the_stage_s_former_loop(studies):
    findings, columns, targets, synthetic_p, real_p, synthetic_f, real_f = studies
    p, e = {"min_studies": 3, "min_ceiling": 0.6}, {"prdc_k": 2, "kid_subsets": 4}
    entries = {
        finding: faithfulness.finding_entry(
            synthetic_p[:, column],
            real_p[:, column],
            target,
            synthetic_f,
            real_f,
            p["min_studies"],
            p["min_ceiling"],
            e["prdc_k"],
            e["kid_subsets"],
            param="faithfulness.min_studies",
            **OPTIONS,
        )
        for finding, column, target in zip(findings, columns, targets.T)
    }
    got = {"findings": entries, **faithfulness.summary(entries)}
    assert got == old_stage_findings(
        findings, columns, targets, synthetic_p, real_p, synthetic_f, real_f, p, e, OPTIONS
    )
    heart = entries["Cardiomegaly"]
    assert heart["real_auroc"]["value"] == 1.0 and heart["informative"] and "fid" in heart["fidelity"]
    assert (heart["n_positive"], heart["n_uncertain"]) == (6, 1)
    assert entries["Edema"]["fidelity"] == {
        "skipped": "2 studies with the finding, fewer than faithfulness.min_studies (3)"
    }
    assert got["uninformative_findings"] == ["Edema", "No Finding"]  # 2 positives; none at all
    assert entries["No Finding"]["uninformative_because"].startswith("the real films lack one of the classes")
    assert got["mean_real_auroc"] == pytest.approx(
        (heart["real_auroc"]["value"] + entries["Edema"]["real_auroc"]["value"]) / 2
    )


@pytest.mark.parametrize("rows", [list(range(16)), [0, 1, 7, 12, 13], [2, 8]])
def test_subgroup_entry_is_the_stage_s_former_one(studies, rows):
    findings, columns, targets, synthetic_p, real_p, synthetic_f, real_f = studies
    e = {"prdc_k": 2, "kid_subsets": 4}
    got = faithfulness.subgroup_entry(
        rows,
        targets,
        synthetic_p,
        real_p,
        columns,
        real_f,
        synthetic_f,
        4,
        e["prdc_k"],
        e["kid_subsets"],
        param="faithfulness.min_studies",
        **OPTIONS,
    )
    assert got == old_subgroup_entry(rows, targets, synthetic_p, real_p, columns, real_f, synthetic_f, 4, e, OPTIONS)
    assert got["n_studies"] == len(rows) and ("value" in got["fid"]) == (len(rows) >= 4)


def test_mean_auroc_leaves_out_findings_without_both_classes():
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0], [float("nan"), 0.0], [1.0, 0.0]])
    probability = torch.tensor([[0.9, 0.1], [0.2, 0.2], [0.0, 0.3], [0.8, 0.4]])
    assert faithfulness.mean_auroc(probability, targets, [0, 1]) == 1.0  # the second has no positive
    assert faithfulness.mean_auroc(probability, targets[:, 1:], [1]) != faithfulness.mean_auroc(
        probability, targets[:, 1:], [1]
    )
    assert (
        faithfulness.mean_of({"a": {"x": {"value": 1.0}}, "b": {"x": {"value": None}}, "c": {"x": {"value": 0.5}}}, "x")
        == 0.75
    )
    assert faithfulness.mean_of({"b": {"x": {"value": None}}}, "x") is None
