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
from cxrldm.data.images import grid, save_png, to_uint8
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, networks
from cxrldm.evaluation.edits import EditJudge
from cxrldm.io import atomic_dir, file_sha256, write_csv, write_json
from cxrldm.models.autoencoder import reconstruct
from cxrldm.sampling.editing import edit_runs, edit_triples, label_columns
from cxrldm.sampling.generation import load_models
from stages.common import load_params, progress, run

RESIZED, OUT, GRIDS = paths.RESIZED, paths.EDITS, paths.EDIT_GRIDS
GRID_FILMS = 4  # films per grid row


def main():
    params = load_params()
    p, e = params["edit"], params["evaluate"]
    options = {"resamples": e["resamples"], "seed": e["seed"]}
    test = read_split(RESIZED, "test").drop_duplicates("study_id")
    labels = read_labels(params["data"], label_columns(p["edits"]))
    models = load_models(paths.MODELS, p["precision"])
    originals = load_images(RESIZED, test.path, models.image_size, progress)
    classifier = networks.load_network(e["classifier"], e["xrv_cache_dir"], paths.EVALUATOR)
    network = (
        classifier
        if e["feature_network"] == e["classifier"]
        else networks.load_network(e["feature_network"], e["xrv_cache_dir"], paths.EVALUATOR)
    )
    judge = EditJudge(
        classifier,
        network,
        originals,
        params["memorisation"]["pixel_size"],
        e["ms_ssim_kernel"],
        p["threshold"],
        **options,
    )
    results, rows, grids, contrasts = {"edits": {}}, [], {}, {"right": [], "left": []}
    dicom = dicom_identity(p["seed"]) if p["dicom"] else None
    with atomic_dir(OUT) as tmp:
        for spec, edit in edit_runs(
            models,
            test,
            labels,
            originals,
            p["edits"],
            p["images_per_edit"],
            p["seed"],
            p["strength"],
            p["guidance_scale"],
            p["steps"],
            p["feather_px"],
            p["batch_size"],
            "edit.edits",
        ):
            measures = judge.measure(
                spec["finding"],
                spec["target"],
                f"edit.edits {spec['name']}",
                edit.index,
                edit.before,
                edit.result.edited,
                edit.result.raw,
                reconstruct(models.autoencoder, edit.before, models.runtime).cpu(),
                edit.edit_mask,
                edit.keep_mask if spec.get("keep") else 1 - edit.edit_mask,
                bool(spec.get("side")),
            )
            results["edits"][spec["name"]] = {**spec_fields(spec), "n": len(edit.films), **measures.entry}
            if spec.get("side"):
                contrasts[spec["side"]].append(measures.contrast)
            write_films(tmp, spec, edit, measures, p, rows, dicom)
            grids[spec["name"]] = grid(edit_triples(edit.before, edit.result.edited, 2 * GRID_FILMS), 3 * GRID_FILMS)
        write_csv(tmp / "manifest.csv", pd.DataFrame(rows))
    if contrasts["right"] and contrasts["left"]:
        results["laterality"] = classification.laterality(
            torch.cat(contrasts["right"]), torch.cat(contrasts["left"]), "edits", **options
        )
    results.update(
        {
            "strength": p["strength"],
            "guidance_scale": p["guidance_scale"],
            "steps": p["steps"],
            "threshold": p["threshold"],
            "classifier": classifier.name,
            "feature_network": network.name,
            "n_test_originals": len(test),
        }
    )
    with atomic_dir(GRIDS) as tmp:
        for name, pixels in grids.items():
            Image.fromarray(pixels).save(tmp / f"{name}.png")
    write_json(paths.metrics("edit"), results)
    report_lines(results)


def spec_fields(spec: dict) -> dict:
    return {
        "prompt": spec["prompt"],
        "finding": spec["finding"],
        "target": spec["target"],
        "source": spec["source"],
        "mask": spec["mask"],
        "keep": spec.get("keep") or "",
    }


def dicom_identity(seed: int) -> tuple[str, str]:
    """The model's hash and the edits' study UID, for the DICOM copies."""
    model = dicom_output.model_hash(paths.MODELS)
    return model, dicom_output.stable_uid("edit", model, seed)


def write_films(tmp, spec: dict, edit, measures, p: dict, rows: list, dicom: tuple[str, str] | None) -> None:
    """Each edited film as a PNG (and a DICOM copy with `dicom`), its manifest row appended to `rows`."""
    for i, (row, seed) in enumerate(zip(edit.films.itertuples(index=False), edit.seeds)):
        name = f"{spec['name']}_s{row.study_id}_seed{seed}.png"
        save_png(edit.result.edited[i], tmp / name)
        rows.append(
            {
                "edit": spec["name"],
                "subject_id": row.subject_id,
                "study_id": row.study_id,
                "source_path": row.path,
                "prompt": spec["prompt"],
                "mask": spec["mask"],
                "keep": spec.get("keep") or "",
                "strength": p["strength"],
                "seed": seed,
                "file": name,
                "probability_before": float(measures.probability_before[i]),
                "probability_after": float(measures.probability_after[i]),
            }
        )
        if dicom:
            model, study = dicom
            rows[-1]["dicom"] = name.replace(".png", ".dcm")
            comments = dicom_output.edited_comments(
                spec["prompt"],
                {
                    "seed": seed,
                    "strength": p["strength"],
                    "guidance": p["guidance_scale"],
                    "steps": p["steps"],
                    "feather px": p["feather_px"],
                    "precision": p["precision"],
                    "edit mask": spec["mask"],
                    "keep mask": spec.get("keep") or "none",
                    "source sha256": file_sha256(RESIZED / row.path),
                },
                model,
            )
            dicom_output.write_stage_film(
                to_uint8(edit.result.edited[i]),
                tmp / rows[-1]["dicom"],
                dicom_output.EDITED,
                comments,
                study,
                len(rows),
                model,
            )


def report_lines(results: dict) -> None:
    for name, entry in results["edits"].items():
        flip = entry["flip_rate"]["value"]
        print(
            f"{name}: P({entry['finding']}) {entry['probability_before']['value']:.3f} -> "
            f"{entry['probability_after']['value']:.3f}, flip rate {flip if flip is None else round(flip, 3)} "
            f"of {entry['n_flippable']}, identity {entry['identity_top1_features']['value']:.3f} "
            f"(pixels {entry['identity_top1_pixels']['value']:.3f}), outside change raw "
            f"{entry['outside_change_raw']['value']:.4f}"
        )
    if "laterality" in results:
        print(f"side AUROC right vs left edits: {results['laterality']['auroc_right_vs_left']['value']:.3f}")


if __name__ == "__main__":
    run(main)
