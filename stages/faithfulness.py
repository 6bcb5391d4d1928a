"""Stage faithfulness: do images generated from a test study's own report show what the report says?

Per finding: the classifier's AUROC on the synthetic images against the studies' CheXpert labels, next to
the same classifier's AUROC on the studies' real images (its ceiling); and the conditional fidelity
(FID, precision, recall, density, coverage, KID) between the synthetic and real images of the studies with
that finding, where at least `min_studies` have it; every finding listed with its counts, so the long
tail stays visible; and per subgroup of `subgroups` (sex, age bands from data.demographics) the mean
faithfulness AUROC on synthetic and real images and the FID, so a fairness gap is visible. Written to
metrics/faithfulness.json, with a grid per finding (synthetic above real)."""


import torch
from PIL import Image

from cxrldm import paths
from cxrldm.data import labels
from cxrldm.data.datasets import load_images
from cxrldm.evaluation import classification, fidelity, networks, samples
from cxrldm.evaluation.intervals import bootstrap_interval
from cxrldm.io import atomic_dir, write_json
from cxrldm.data.images import grid
from stages.common import load_params, progress, run

SAMPLES, RESIZED, GRIDS = paths.REPORT_SAMPLES, paths.RESIZED, paths.FINDING_GRIDS


def mean_of(entries: dict, key: str):
    values = [e[key]["value"] for e in entries.values() if e[key]["value"] is not None]
    return sum(values) / len(values) if values else None


def mean_auroc(probability: torch.Tensor, targets: torch.Tensor, columns: list[int]):
    """Mean over findings of the AUROC (findings without both classes left out; NaN if none has them)."""
    values = [classification.auroc(probability[:, c][~t.isnan()], t[~t.isnan()]) for c, t in zip(columns, targets.T)]
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def subgroup_entry(rows, targets, synthetic_probability, real_probability, columns, real_features,
                   synthetic_features, min_studies, e, options) -> dict:
    """One subgroup's studies: mean faithfulness AUROC on the synthetic and the real images (bootstrap over
    the subgroup's studies) and FID between them where the subgroup has at least `min_studies`."""
    index = torch.tensor(rows)
    entry = {"n_studies": len(index)}
    for name, probability in (("synthetic", synthetic_probability), ("real", real_probability)):
        interval = bootstrap_interval(lambda i: mean_auroc(probability[index[i]], targets[index[i]], columns),
                                      len(index), **options, undefined="no finding has both classes in the subgroup")
        # no finding with both classes in the subgroup: no AUROC
        entry[f"{name}_mean_auroc"] = {k: None if isinstance(v, float) and v != v else v for k, v in interval.items()}
    if len(index) >= max(min_studies, 3):
        entry["fid"] = fidelity.fidelity(real_features[index], synthetic_features[index], e["prdc_k"],
                                      kid_subsets=e["kid_subsets"], **options)["fid"]
    else:
        entry["fid"] = {"skipped": f"{len(index)} studies, fewer than faithfulness.min_studies ({min_studies})"}
    return entry


def main():
    params = load_params()
    p, e = params["faithfulness"], params["evaluate"]
    options = {"resamples": e["resamples"], "seed": e["seed"]}
    manifest, synthetic = samples.report_samples(SAMPLES, "test")
    real = load_images(RESIZED, manifest.source_path, synthetic.shape[-1], progress)
    findings = p["findings"]
    targets = classification.label_targets(labels.read_labels(params["data"], findings), manifest.study_id, findings)

    classifier = networks.load_network(e["classifier"], e["xrv_cache_dir"], paths.EVALUATOR)
    columns = classification.classifier_columns(classifier, findings, "faithfulness.findings")
    synthetic_probability, real_probability = classifier.probabilities(synthetic), classifier.probabilities(real)
    network = classifier if e["feature_network"] == e["classifier"] else \
        networks.load_network(e["feature_network"], e["xrv_cache_dir"], paths.EVALUATOR)
    synthetic_features, real_features = network.features(synthetic), network.features(real)

    results = {"classifier": classifier.name, "feature_network": network.name, "n_studies": len(manifest),
               "min_studies": p["min_studies"], "findings": {}}
    grids = {}
    for finding, column, target in zip(findings, columns, targets.T):
        entry = {"synthetic_auroc": classification.auroc_interval(synthetic_probability[:, column], target, **options),
                 "real_auroc": classification.auroc_interval(real_probability[:, column], target, **options)}
        note = classification.ceiling_note(entry["real_auroc"], p["min_ceiling"])
        entry["informative"] = note is None
        if note:
            entry["uninformative_because"] = note
        positive = (target == 1).nonzero().flatten()
        entry["n_positive"], entry["n_uncertain"] = len(positive), int(target.isnan().sum())
        if len(positive) >= max(p["min_studies"], 3):
            entry["fidelity"] = fidelity.fidelity(real_features[positive], synthetic_features[positive],
                                               e["prdc_k"], kid_subsets=e["kid_subsets"], **options)
        else:
            entry["fidelity"] = {"skipped": f"{len(positive)} studies with the finding, fewer than "
                                            f"faithfulness.min_studies ({p['min_studies']})"}
        results["findings"][finding] = entry
        if len(positive):
            shown = positive[:8]
            grids[finding] = grid(torch.cat([synthetic[shown], real[shown]]), len(shown))
    results["mean_synthetic_auroc"] = mean_of(results["findings"], "synthetic_auroc")
    informative = {f: entry for f, entry in results["findings"].items() if entry["informative"]}
    results["uninformative_findings"] = sorted(set(results["findings"]) - set(informative))
    results["mean_synthetic_auroc_informative"] = mean_of(informative, "synthetic_auroc") if informative else None
    results["mean_real_auroc_informative"] = mean_of(informative, "real_auroc") if informative else None
    results["mean_real_auroc"] = mean_of(results["findings"], "real_auroc")
    results["all_studies"] = fidelity.fidelity(real_features, synthetic_features, e["prdc_k"],
                                            kid_subsets=e["kid_subsets"], **options)
    demographics_file = params["data"]["demographics"]
    demographics = labels.read_demographics(demographics_file, p["subgroups"]) if p["subgroups"] else None
    results["subgroups"] = {}
    for column in p["subgroups"]:
        names = labels.subgroup_names(demographics[column].reindex(manifest.subject_id).reset_index(drop=True),
                                     column, p["age_bands"])
        results["subgroups"][column] = {
            name: subgroup_entry(rows.index.to_numpy(), targets, synthetic_probability, real_probability, columns,
                                 real_features, synthetic_features, p["min_studies"], e, options)
            for name, rows in names.groupby(names, sort=True)}
    with atomic_dir(GRIDS) as tmp:
        for finding, pixels in grids.items():
            Image.fromarray(pixels).save(tmp / f"{finding.lower().replace(' ', '_')}.png")
    write_json(paths.metrics("faithfulness"), results)
    for finding, entry in results["findings"].items():
        auc, auc_real = entry["synthetic_auroc"]["value"], entry["real_auroc"]["value"]
        print(f"{finding}: faithfulness AUROC {auc if auc is None else round(auc, 3)} "
              f"(real images {auc_real if auc_real is None else round(auc_real, 3)}), "
              f"{entry['n_positive']} positive studies")


if __name__ == "__main__":
    run(main)
