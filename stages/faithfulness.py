"""Stage faithfulness: do images generated from a test study's own report show what the report says?

Per finding: the classifier's AUROC on the synthetic images against the studies' CheXpert labels, next to
the same classifier's AUROC on the studies' real images (its ceiling); and the conditional fidelity
(FID, precision, recall, density, coverage, KID) between the synthetic and real images of the studies with
that finding, where at least `min_studies` have it; every finding listed with its counts, so the long
tail stays visible. Written to metrics/faithfulness.json, with a grid per finding (synthetic above real)."""

from pathlib import Path

import torch
from PIL import Image

from cxrldm.data import load_images
from cxrldm.evaluation import suite
from cxrldm.io import atomic_dir, write_json
from stages.common import load_params, progress, run

SAMPLES, RESIZED, GRIDS = Path("data/report_samples"), Path("data/resized"), Path("metrics/finding_grids")


def mean_of(entries: dict, key: str):
    values = [e[key]["value"] for e in entries.values() if e[key]["value"] is not None]
    return sum(values) / len(values) if values else None


def main():
    params = load_params()
    p, e = params["faithfulness"], params["evaluate"]
    options = {"resamples": e["resamples"], "seed": e["seed"]}
    manifest, synthetic = suite.report_samples(SAMPLES, "test")
    real = load_images(RESIZED, manifest.source_path, synthetic.shape[-1], progress)
    findings = p["findings"]
    targets = suite.label_targets(suite.read_labels(params["data"], findings), manifest.study_id, findings)

    classifier = suite.load_network(e["classifier"], e["xrv_cache_dir"])
    columns = suite.classifier_columns(classifier, findings, "faithfulness.findings")
    synthetic_probability, real_probability = classifier.probabilities(synthetic), classifier.probabilities(real)
    network = suite.load_network(e["feature_network"], e["xrv_cache_dir"])
    synthetic_features, real_features = network.features(synthetic), network.features(real)

    results = {"classifier": classifier.name, "feature_network": network.name, "n_studies": len(manifest),
               "min_studies": p["min_studies"], "findings": {}}
    grids = {}
    for finding, column, target in zip(findings, columns, targets.T):
        entry = {"synthetic_auroc": suite.auroc_interval(synthetic_probability[:, column], target, **options),
                 "real_auroc": suite.auroc_interval(real_probability[:, column], target, **options)}
        positive = (target == 1).nonzero().flatten()
        entry["n_positive"], entry["n_uncertain"] = len(positive), int(target.isnan().sum())
        if len(positive) >= max(p["min_studies"], 3):
            entry["fidelity"] = suite.fidelity(real_features[positive], synthetic_features[positive],
                                               e["prdc_k"], kid_subsets=e["kid_subsets"], **options)
        else:
            entry["fidelity"] = {"skipped": f"{len(positive)} studies with the finding, fewer than "
                                            f"faithfulness.min_studies ({p['min_studies']})"}
        results["findings"][finding] = entry
        if len(positive):
            shown = positive[:8]
            grids[finding] = suite.grid(torch.cat([synthetic[shown], real[shown]]), len(shown))
    results["mean_synthetic_auroc"] = mean_of(results["findings"], "synthetic_auroc")
    results["mean_real_auroc"] = mean_of(results["findings"], "real_auroc")
    results["all_studies"] = suite.fidelity(real_features, synthetic_features, e["prdc_k"],
                                            kid_subsets=e["kid_subsets"], **options)
    with atomic_dir(GRIDS) as tmp:
        for finding, pixels in grids.items():
            Image.fromarray(pixels).save(tmp / f"{finding.lower().replace(' ', '_')}.png")
    write_json("metrics/faithfulness.json", results)
    for finding, entry in results["findings"].items():
        auc, auc_real = entry["synthetic_auroc"]["value"], entry["real_auroc"]["value"]
        print(f"{finding}: faithfulness AUROC {auc if auc is None else round(auc, 3)} "
              f"(real images {auc_real if auc_real is None else round(auc_real, 3)}), "
              f"{entry['n_positive']} positive studies")


if __name__ == "__main__":
    run(main)
