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
from cxrldm.data.images import grid
from cxrldm.evaluation import classification, faithfulness, fidelity, networks, samples
from cxrldm.io import atomic_dir, write_json
from stages.common import load_params, progress, run

SAMPLES, RESIZED, GRIDS = paths.REPORT_SAMPLES, paths.RESIZED, paths.FINDING_GRIDS
MIN_STUDIES = "faithfulness.min_studies"


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
    network = (
        classifier
        if e["feature_network"] == e["classifier"]
        else networks.load_network(e["feature_network"], e["xrv_cache_dir"], paths.EVALUATOR)
    )
    synthetic_features, real_features = network.features(synthetic), network.features(real)
    fidelity_options = {"k": e["prdc_k"], "kid_subsets": e["kid_subsets"], **options}

    results = {
        "classifier": classifier.name,
        "feature_network": network.name,
        "n_studies": len(manifest),
        "min_studies": p["min_studies"],
        "findings": {
            finding: faithfulness.finding_entry(
                synthetic_probability[:, column],
                real_probability[:, column],
                target,
                synthetic_features,
                real_features,
                p["min_studies"],
                p["min_ceiling"],
                param=MIN_STUDIES,
                **fidelity_options,
            )
            for finding, column, target in zip(findings, columns, targets.T)
        },
    }
    results.update(faithfulness.summary(results["findings"]))
    results["all_studies"] = fidelity.fidelity(
        real_features, synthetic_features, e["prdc_k"], kid_subsets=e["kid_subsets"], **options
    )
    demographics_file = params["data"]["demographics"]
    demographics = labels.read_demographics(demographics_file, p["subgroups"]) if p["subgroups"] else None
    results["subgroups"] = {
        column: {
            name: faithfulness.subgroup_entry(
                rows.index.to_numpy(),
                targets,
                synthetic_probability,
                real_probability,
                columns,
                real_features,
                synthetic_features,
                p["min_studies"],
                param=MIN_STUDIES,
                **fidelity_options,
            )
            for name, rows in subgroups(demographics, column, manifest.subject_id, p["age_bands"])
        }
        for column in p["subgroups"]
    }
    write_grids(findings, targets, synthetic, real)
    write_json(paths.metrics("faithfulness"), results)
    report_lines(results)


def write_grids(findings: list[str], targets: torch.Tensor, synthetic: torch.Tensor, real: torch.Tensor) -> None:
    """A grid per finding of up to 8 of its positive studies: synthetic images above, real ones below."""
    with atomic_dir(GRIDS) as tmp:
        for finding, target in zip(findings, targets.T):
            shown = (target == 1).nonzero().flatten()[:8]
            if len(shown):
                pixels = grid(torch.cat([synthetic[shown], real[shown]]), len(shown))
                Image.fromarray(pixels).save(tmp / f"{finding.lower().replace(' ', '_')}.png")


def subgroups(demographics, column: str, subject_ids, age_bands: list[int]):
    """Each study's subgroup of `column` (its patient's; age in bands)."""
    names = labels.subgroup_names(demographics[column].reindex(subject_ids).reset_index(drop=True), column, age_bands)
    return names.groupby(names, sort=True)


def report_lines(results: dict) -> None:
    for finding, entry in results["findings"].items():
        auc, auc_real = entry["synthetic_auroc"]["value"], entry["real_auroc"]["value"]
        print(
            f"{finding}: faithfulness AUROC {auc if auc is None else round(auc, 3)} "
            f"(real images {auc_real if auc_real is None else round(auc_real, 3)}), "
            f"{entry['n_positive']} positive studies"
        )


if __name__ == "__main__":
    run(main)
