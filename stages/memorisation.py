"""Stage memorisation: does the model copy training films, or draw the patient behind them?

Images generated from training-split reports are each matched to their nearest training film in every
space of `memorisation.spaces`: the feature network's, a low-resolution pixel space and the copy
detector's (stage train_privacy). The null distribution is the same nearest-training distance for the real
test films (new patients); a synthetic image closer than the null's q-th percentile is flagged in that
space, and flagged by the audit when any space flags it (the union). One level q for every space, the
largest up to `memorisation.percentile` at which the union flags at most `percentile`% of the real test
films (`space_percentile` in the metrics): calibrating each space alone would let the union flag up to
one such share per space. The copy detector matches
each training film in several poses as well (`memorisation.copy_views`: small shifts, crop, rotations). Counted too: how often the
nearest training film is the prompt's own image, or any film of the prompt's patient.

Planted-copy check: transformed copies of training films (`memorisation.planted`) go through the same
spaces and thresholds; the table says how many each space and the union flag. Re-identification: the
re-identifier scores each synthetic image against every training film, and the prompt's patient is
ranked among all training patients (AUROC, top-1); the same network on the real test patients who have
several films is its ceiling. Written to metrics/memorisation.json, with the closest pairs of each space in
metrics/memorisation_pairs.png (synthetic above, training below)."""

from functools import partial

import torch
from PIL import Image

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.evaluation import memorisation, networks, privacy, samples
from cxrldm.io import atomic_path, write_json
from stages.common import load_params, progress, run

SAMPLES, RESIZED, PAIRS = paths.REPORT_SAMPLES, paths.RESIZED, paths.MEMORISATION_PAIRS


def audit_spaces(names: list[str], p: dict, e: dict) -> dict:
    """{space name: (images -> (N, D) embedding, the poses its training films are matched in)} for the
    spaces named in memorisation.spaces; the copy detector matches the films in memorisation.copy_views."""
    spaces = {}
    for name in names:
        if name == "features":
            network = networks.load_network(e["feature_network"], e["xrv_cache_dir"], paths.EVALUATOR)
            spaces[network.name] = network.features, []
        elif name == "pixels":
            spaces[f"pixels_{p['pixel_size']}"] = partial(memorisation.pixel_space, size=p["pixel_size"]), []
        elif name == "copy_detector":
            spaces["copy_detector"] = privacy.load_embedding(paths.COPY_DETECTOR), p["copy_views"]
        else:
            raise ValueError(f"memorisation.spaces: unknown space {name!r}, expected features, pixels or copy_detector")
    return spaces


def main():
    params = load_params()
    p, e = params["memorisation"], params["evaluate"]
    manifest, synthetic = samples.report_samples(SAMPLES, "train")
    training, test = read_split(RESIZED, "train"), read_split(RESIZED, "test")
    training_images = load_images(RESIZED, training.path, synthetic.shape[-1], progress)
    test_images = load_images(RESIZED, test.path, synthetic.shape[-1], progress)
    # the planted copies are of the prompts' own source films (then other training films, where too few)
    source, planted_order = memorisation.prompt_sources(manifest.source_path, training.path)
    training_patients = torch.tensor(training.subject_id.to_numpy())
    prompt_patients = torch.tensor(manifest.subject_id.to_numpy())
    planted = privacy.planted_copies(training_images[planted_order[: p["planted_count"]]], p["planted"], seed=e["seed"])
    audit, pairs = memorisation.space_audit(
        audit_spaces(p["spaces"], p, e),
        synthetic,
        training_images,
        test_images,
        planted,
        source,
        training_patients,
        prompt_patients,
        p["percentile"],
        p["top_pairs"],
        e["resamples"],
        e["seed"],
    )
    results = {
        "n_synthetic": len(manifest),
        "n_training": len(training),
        "n_null": len(test),
        "studies": int(manifest.study_id.nunique()),
        "percentile": p["percentile"],
        **audit,
    }
    if p["reidentification"]:
        results["reidentification"] = privacy.reidentification_check(
            privacy.load_embedding(paths.REIDENTIFIER),
            synthetic,
            training_images,
            test_images,
            prompt_patients,
            training_patients,
            torch.tensor(test.subject_id.to_numpy()),
            e["resamples"],
            e["seed"],
        )
    with atomic_path(PAIRS) as tmp:
        Image.fromarray(pairs).save(tmp, format="PNG")
    write_json(paths.metrics("memorisation"), results)
    report_lines(results, len(manifest))


def report_lines(results: dict, n: int) -> None:
    for space, report in results["spaces"].items():
        print(
            f"{space}: {report['flagged_count']} of {n} flagged below {report['threshold']:.4g} "
            f"(null's p{results['space_percentile']:.3g}); nearest is the prompt's own image for "
            f"{report['nearest_is_source_fraction']['value']:.3f}, its patient's for "
            f"{report['nearest_is_source_patient_fraction']['value']:.3f}"
        )
    print(
        f"union of spaces: {results['union']['flagged_count']} of {n} flagged; real test films flagged "
        f"{results['union']['null_flagged_fraction']:.3f}"
    )
    for spec, counts in results["planted"].items():
        print(f"planted {spec}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for name, r in results.get("reidentification", {}).items():
        if r["n_queries"]:
            print(
                f"re-identification, {name}: AUROC {r['auroc']['value']:.3f}, top-1 {r['top1']['value']:.3f} "
                f"(chance {r['chance_top1']:.4f}, {r['n_queries']} queries)"
            )


if __name__ == "__main__":
    run(main)
