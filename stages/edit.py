"""Stage edit: counterfactual edits of real test films (cxrldm.cli.edit), and how well they worked.

Each entry of `edit.edits` takes up to `images_per_edit` test films (source `normal`: CheXpert's No Finding;
`any`; or a finding the film has), edits them towards its prompt inside its mask (a fixed zone or a PNG) and
measures, with counts and 95% bootstrap intervals over the films:
- success: the classifier's probability of the finding before and after, and the flip rate at
  `threshold` among the films not already at the target;
- side (sided edits): the lower-zone contrast of the right and the left edits, and their AUROC;
- preservation: mean absolute pixel change outside the edit mask with paste-back (0 by construction),
  without it, and of a plain autoencoder reconstruction (the floor without paste-back); and MS-SSIM to
  the original of the region that must not change (the keep mask, else outside the edit mask);
- identity: how often an edited film's nearest test original is its own original, in the feature
  network's space (which a finding-trained network organises by finding) and in memorisation's
  32 x 32 standardised pixel space.
Written to metrics/edit.json; edited images and a manifest to data/edits; a grid per edit (original |
edited | difference, four films a row) to metrics/edit_grids. With edit.dicom each edited film is also a
DICOM Secondary Capture marked "edited by a generative model" (cxrldm.data.dicom_output), with no patient
module of the film it came from (the resized PNG, whose hash it records)."""


import pandas as pd
import torch
from PIL import Image

from cxrldm import paths
from cxrldm.data import dicom_output
from cxrldm.data.datasets import load_images, read_split
from cxrldm.data.images import save_png, to_uint8
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, networks
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.evaluation.memorisation import nearest_neighbours, pixel_space
from cxrldm.evaluation.similarity import ms_ssim
from cxrldm.io import atomic_dir, file_sha256, write_csv, write_json
from cxrldm.models.autoencoder import reconstruct
from cxrldm.data.images import grid
from cxrldm.sampling.editing import difference_map, edit_images, mask_from
from cxrldm.sampling.generation import load_models
from stages.common import load_params, progress, run

RESIZED, OUT, GRIDS = paths.RESIZED, paths.EDITS, paths.EDIT_GRIDS
GRID_FILMS = 4                      # films per grid row


def source_films(test: pd.DataFrame, labels: pd.DataFrame, source: str, limit: int) -> pd.DataFrame:
    """The first `limit` test films (by study) whose CheXpert label `source` is 1 (`normal`: No Finding;
    `any`: every film)."""
    if source == "any":
        return test.sort_values("study_id").head(limit)
    column = "No Finding" if source == "normal" else source
    positive = labels.reindex(test.study_id)[column].to_numpy() == 1.0
    return test[positive].sort_values("study_id").head(limit)


def main():
    params = load_params()
    p, e = params["edit"], params["evaluate"]
    pixel_size = params["memorisation"]["pixel_size"]   # the identity check uses the audit's pixel space
    options = {"resamples": e["resamples"], "seed": e["seed"]}
    test = read_split(RESIZED, "test").drop_duplicates("study_id")
    columns = sorted({x["finding"] for x in p["edits"]} | {x["source"] for x in p["edits"] if x["source"] not in ("normal", "any")})
    normal = ["No Finding"] if any(x["source"] == "normal" for x in p["edits"]) else []
    labels = read_labels(params["data"], [*normal, *columns])
    models = load_models(paths.MODELS, p["precision"])
    size = models.image_size
    originals = load_images(RESIZED, test.path, size, progress)
    position = {path: i for i, path in enumerate(test.path)}
    classifier = networks.load_network(e["classifier"], e["xrv_cache_dir"], paths.EVALUATOR)
    network = classifier if e["feature_network"] == e["classifier"] else \
        networks.load_network(e["feature_network"], e["xrv_cache_dir"], paths.EVALUATOR)
    original_features, original_pixels = network.features(originals), pixel_space(originals, pixel_size)

    results, rows, grids, contrasts, k = {"edits": {}}, [], {}, {}, 0
    if p["dicom"]:
        model = dicom_output.model_hash(paths.MODELS)
        study = dicom_output.stable_uid("edit", model, p["seed"])
    with atomic_dir(OUT) as tmp:
        for spec in p["edits"]:
            films = source_films(test, labels, spec["source"], p["images_per_edit"])
            if len(films) < 2:
                raise ValueError(f"edit.edits {spec['name']}: {len(films)} test films with source "
                                 f"{spec['source']!r}; an edit needs at least 2")
            index = torch.tensor([position[path] for path in films.path])
            before = originals[index]
            edit = mask_from(spec["mask"], size, size, 1.0).expand_as(before)
            keep = mask_from(spec.get("keep"), size, size, 0.0).expand_as(before)
            seeds = [p["seed"] * 1_000_000 + k + i for i in range(len(films))]
            k += len(films)
            result = edit_images(models, before, [spec["prompt"]] * len(films), seeds, p["strength"],
                                 p["guidance_scale"], p["steps"], edit, keep, p["feather_px"], p["batch_size"])
            column, = classification.classifier_columns(classifier, [spec["finding"]], f"edit.edits {spec['name']}")
            present = spec["target"] == "present"
            probability_before = classifier.probabilities(before)[:, column]
            probability_after = classifier.probabilities(result.edited)[:, column]
            at_target_before = (probability_before >= p["threshold"]) == present
            at_target_after = (probability_after >= p["threshold"]) == present
            # the region that must not change: the keep mask, or everything outside the edit mask
            fixed = keep if spec.get("keep") else 1 - edit
            outside = 1 - edit
            def outside_change(images):
                return ((images - before).abs() * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp(min=1)
            raw_in_fixed = before * (1 - fixed) + result.raw * fixed       # only the fixed region's change counts
            def identity(space, originals_in_space, images):
                return mean_interval((nearest_neighbours(space(images), originals_in_space)[1] == index).double(),
                                     **options)
            entry = {
                "prompt": spec["prompt"], "finding": spec["finding"], "target": spec["target"],
                "source": spec["source"], "mask": spec["mask"], "keep": spec.get("keep") or "", "n": len(films),
                "probability_before": mean_interval(probability_before, **options),
                "probability_after": mean_interval(probability_after, **options),
                "probability_change": mean_interval(probability_after - probability_before, **options),
                "at_target_before": float(at_target_before.double().mean()),
                "at_target_after": mean_interval(at_target_after.double(), **options),
                "outside_change_pasted": mean_interval(outside_change(result.edited), **options),
                "outside_change_raw": mean_interval(outside_change(result.raw), **options),
                # the autoencoder alone: most of the raw change outside the mask is its reconstruction error
                "outside_change_reconstruction": mean_interval(outside_change(
                    reconstruct(models.autoencoder, before, models.runtime).cpu()), **options),
                "fixed_region_ms_ssim_raw": mean_interval(ms_ssim(raw_in_fixed, before, e["ms_ssim_kernel"]), **options),
                "identity_top1_features": identity(network.features, original_features, result.edited),
                "identity_top1_features_raw": identity(network.features, original_features, result.raw),
                "identity_top1_pixels": identity(lambda x: pixel_space(x, pixel_size), original_pixels, result.edited),
            }
            flippable = ~at_target_before
            entry["flip_rate"] = (mean_interval(at_target_after[flippable].double(), **options) if flippable.any()
                                  else {"value": None, "n": 0, "note": "every film was already at the target"})
            entry["n_flippable"] = int(flippable.sum())
            if spec.get("side"):
                contrast = classification.lower_zone_contrast(result.edited)
                contrasts[spec["side"]] = contrasts.get(spec["side"], []) + [contrast]
                entry["lower_zone_contrast_change"] = mean_interval(contrast - classification.lower_zone_contrast(before),
                                                                    **options)
            results["edits"][spec["name"]] = entry
            for i, (row, seed) in enumerate(zip(films.itertuples(index=False), seeds)):
                name = f"{spec['name']}_s{row.study_id}_seed{seed}.png"
                save_png(result.edited[i], tmp / name)
                rows.append({"edit": spec["name"], "subject_id": row.subject_id, "study_id": row.study_id,
                             "source_path": row.path, "prompt": spec["prompt"], "mask": spec["mask"],
                             "keep": spec.get("keep") or "", "strength": p["strength"], "seed": seed, "file": name,
                             "probability_before": float(probability_before[i]),
                             "probability_after": float(probability_after[i])})
                if p["dicom"]:
                    rows[-1]["dicom"] = name.replace(".png", ".dcm")
                    comments = dicom_output.edited_comments(spec["prompt"], {
                        "seed": seed, "strength": p["strength"], "guidance": p["guidance_scale"], "steps": p["steps"],
                        "feather px": p["feather_px"], "precision": p["precision"],
                        "edit mask": spec["mask"], "keep mask": spec.get("keep") or "none",
                        "source sha256": file_sha256(RESIZED / row.path)}, model)
                    dicom_output.write_stage_film(to_uint8(result.edited[i]),
                                                  tmp / rows[-1]["dicom"], dicom_output.EDITED, comments, study,
                                                  len(rows), model)
            shown = slice(0, 2 * GRID_FILMS)
            triples = torch.stack([before[shown], result.edited[shown], difference_map(result.edited, before)[shown]], 1)
            grids[spec["name"]] = grid(triples.flatten(0, 1), 3 * GRID_FILMS)
        write_csv(tmp / "manifest.csv", pd.DataFrame(rows))
    if {"left", "right"} <= set(contrasts):
        right, left = torch.cat(contrasts["right"]), torch.cat(contrasts["left"])
        # lower-zone brightness, image left minus image right: a right effusion raises it (README)
        results["laterality"] = {"right_edits": float(right.mean()), "left_edits": float(left.mean()),
                                 "auroc_right_vs_left": classification.two_group_auroc_interval(right, left, **options),
                                 "n_right": len(right), "n_left": len(left)}
    results.update({"strength": p["strength"], "guidance_scale": p["guidance_scale"], "steps": p["steps"],
                    "threshold": p["threshold"], "classifier": classifier.name, "feature_network": network.name,
                    "n_test_originals": len(test)})
    with atomic_dir(GRIDS) as tmp:
        for name, pixels in grids.items():
            Image.fromarray(pixels).save(tmp / f"{name}.png")
    write_json(paths.metrics("edit"), results)
    for name, entry in results["edits"].items():
        flip = entry["flip_rate"]["value"]
        print(f"{name}: P({entry['finding']}) {entry['probability_before']['value']:.3f} -> "
              f"{entry['probability_after']['value']:.3f}, flip rate {flip if flip is None else round(flip, 3)} "
              f"of {entry['n_flippable']}, identity {entry['identity_top1_features']['value']:.3f} "
              f"(pixels {entry['identity_top1_pixels']['value']:.3f}), outside change raw "
              f"{entry['outside_change_raw']['value']:.4f}")
    if "laterality" in results:
        print(f"side AUROC right vs left edits: {results['laterality']['auroc_right_vs_left']['value']:.3f}")


if __name__ == "__main__":
    run(main)
