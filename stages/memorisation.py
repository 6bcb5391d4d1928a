"""Stage memorisation: does the model copy training patients?

Images generated from training-split reports are each matched to their nearest training image, in the
feature network's space and in a low-resolution pixel space. The null distribution is the same
nearest-training-neighbour distance for the real test images (new patients); a synthetic image closer
than the null's `percentile`-th percentile is flagged. Also counted: how often the nearest training image
is the very image whose report made the prompt. Written to metrics/memorisation.json, with the closest
pairs of each space in metrics/memorisation_pairs.png (synthetic above, training below)."""


import numpy as np
import torch
from PIL import Image

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.evaluation import memorisation, networks, samples
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.io import atomic_path, write_json
from stages.common import load_params, progress, run

SAMPLES, RESIZED, PAIRS = paths.REPORT_SAMPLES, paths.RESIZED, paths.MEMORISATION_PAIRS


def main():
    params = load_params()
    p, e = params["memorisation"], params["evaluate"]
    manifest, synthetic = samples.report_samples(SAMPLES, "train")
    size = synthetic.shape[-1]
    training, test = read_split(RESIZED, "train"), read_split(RESIZED, "test")
    training_images = load_images(RESIZED, training.path, size, progress)
    test_images = load_images(RESIZED, test.path, size, progress)
    network = networks.load_network(e["feature_network"], e["xrv_cache_dir"], paths.EVALUATOR)
    spaces = {network.name: network.features,
              f"pixels_{p['pixel_size']}": lambda images: memorisation.pixel_space(images, p["pixel_size"])}
    source = torch.tensor(manifest.source_path.map({path: i for i, path in enumerate(training.path)}).to_numpy())

    results = {"n_synthetic": len(manifest), "n_training": len(training), "n_null": len(test),
               "studies": int(manifest.study_id.nunique()), "percentile": p["percentile"], "spaces": {}}
    rows = []
    for space, embed in spaces.items():
        reference = embed(training_images)
        distances, nearest = memorisation.nearest_neighbours(embed(synthetic), reference)
        null, _ = memorisation.nearest_neighbours(embed(test_images), reference)
        report = memorisation.audit(distances, null, p["percentile"], nearest, top_k=p["top_pairs"])
        flagged = (distances < report["threshold"]).double()
        report["flagged_fraction"] = mean_interval(flagged, e["resamples"], e["seed"])
        report["nearest_is_source_fraction"] = mean_interval((nearest == source).double(), e["resamples"], e["seed"])
        results["spaces"][space] = report
        rows.append(memorisation.pairs_grid(synthetic[report["closest_synthetic"]],
                                            training_images[report["closest_training"]]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1])), constant_values=255) for r in rows]
    with atomic_path(PAIRS) as tmp:
        Image.fromarray(np.concatenate(rows)[:-6]).save(tmp, format="PNG")
    write_json(paths.metrics("memorisation"), results)
    for space, report in results["spaces"].items():
        print(f"{space}: {report['flagged_count']} of {len(manifest)} flagged below {report['threshold']:.4g} "
              f"(null's p{p['percentile']}); nearest is the prompt's own image for "
              f"{report['nearest_is_source_fraction']['value']:.3f}")


if __name__ == "__main__":
    run(main)
