"""The evaluation stages on a copy of the tiny project, checked by value on planted report samples:
faithfulness of real images equals the classifier's ceiling and follows each study's own image; the
memorisation audit flags planted copies of training images and few real new patients; the utility's
real-image classifier is the evaluator itself and scores its known AUROC."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from pipeline_project import pristine_copy

from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification

pytestmark = pytest.mark.pipeline


@pytest.fixture
def project(tiny_project, tmp_path):
    return pristine_copy(tiny_project, tmp_path / "project")


def params(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def plant_report_samples(project: Path, rows: pd.DataFrame, images: torch.Tensor) -> None:
    """Replace data/report_samples with the given manifest rows (purpose, subject_id, study_id,
    source_path) and images (N, 1, H, W) in [0, 1]."""
    from cxrldm.data.images import save_png

    out = project / "data" / "report_samples"
    shutil.rmtree(out)
    out.mkdir()
    rows = rows.reset_index(drop=True).assign(
        prompt="planted", seed=range(len(rows)), guidance=3.0, sampler="ddim", steps=2
    )
    rows["file"] = [f"{purpose}_{k:04d}.png" for k, purpose in enumerate(rows.purpose)]
    for file, image in zip(rows.file, images):
        save_png(image, out / file)
    rows.to_csv(out / "manifest.csv", index=False)


def resized(project: Path, size: int) -> tuple[pd.DataFrame, torch.Tensor]:
    from cxrldm.data.datasets import load_images

    table = pd.read_csv(project / "data" / "resized" / "images.csv", dtype={"dicom_id": str})
    table = table.drop_duplicates("study_id").reset_index(drop=True)
    return table, load_images(project / "data" / "resized", table.path, size)


def image_size(project: Path) -> int:
    return json.loads((project / "models" / "autoencoder.json").read_text())["image_size"]


def test_faithfulness_of_real_images_is_the_ceiling_and_follows_each_study(project, monkeypatch):
    """Synthetic images that are the studies' own real images score exactly the real-image AUROC (the
    ceiling) and perfect fidelity; the same images handed to the wrong studies do not."""
    import stages.faithfulness

    table, images = resized(project, image_size(project))  # every split: more studies than the test split
    rows = table.assign(purpose="test", source_path=table.path)[["purpose", "subject_id", "study_id", "source_path"]]
    assert params(project)["faithfulness"]["min_studies"] == 3
    monkeypatch.chdir(project)

    plant_report_samples(project, rows, images)
    stages.faithfulness.main()
    own = json.loads(Path("metrics/faithfulness.json").read_text())
    assert own["n_studies"] == len(table)
    tested = 0
    for finding, entry in own["findings"].items():
        assert entry["synthetic_auroc"] == entry["real_auroc"], f"{finding}: real images must score the ceiling"
        if entry["synthetic_auroc"]["value"] is not None:
            tested += 1
            assert (
                entry["synthetic_auroc"]["low"] <= entry["synthetic_auroc"]["value"] <= entry["synthetic_auroc"]["high"]
            )
        if "fid" in entry["fidelity"]:
            fidelity = entry["fidelity"]
            assert fidelity["fid"]["value"] == pytest.approx(0, abs=1e-6)
            assert fidelity["precision"]["value"] == fidelity["recall"]["value"] == fidelity["coverage"]["value"] == 1
            assert fidelity["fid"]["n"] == [entry["n_positive"]] * 2
        else:
            assert entry["n_positive"] < 3 and "fewer than" in entry["fidelity"]["skipped"]
    assert tested >= 1, "the planted studies must hold both classes of some finding"
    # the ceiling itself, computed here from the evaluator and the label file
    from cxrldm.evaluation import networks as evaluation
    from cxrldm.evaluation.networks import load_cnn

    model, description = load_cnn(Path("models/evaluator.safetensors"))
    probabilities = evaluation.TrainedEvaluator(model, description["image_size"]).probabilities(images)
    findings = params(project)["faithfulness"]["findings"]
    labels = read_labels(params(project)["data"], findings)
    for finding in findings:
        value = labels.reindex(table.study_id)[finding].to_numpy()
        known = torch.tensor(value != -1.0)
        positive = torch.tensor(value == 1.0)[known]
        scores = probabilities[known, model.labels.index(finding)]
        expected = classification.auroc(scores, positive) if 0 < positive.sum() < len(positive) else None
        assert own["findings"][finding]["real_auroc"]["value"] == (
            None if expected is None else pytest.approx(expected)
        )
        assert own["findings"][finding]["n_positive"] == int(positive.sum())
    assert own["mean_synthetic_auroc"] == own["mean_real_auroc"]
    assert list(Path("metrics/finding_grids").glob("*.png"))
    # per subgroup: the same identity, over studies that partition all of them, by the patients' records
    patients = pd.read_csv(Path(params(project)["data"]["demographics"])).set_index("subject_id")
    for column, groups in own["subgroups"].items():
        assert sum(g["n_studies"] for g in groups.values()) == len(table)
        for name, group in groups.items():
            assert group["synthetic_mean_auroc"] == group["real_mean_auroc"], (column, name)
    sexes = patients.gender.reindex(table.subject_id)
    assert {name: g["n_studies"] for name, g in own["subgroups"]["sex"].items()} == sexes.value_counts().to_dict()

    shifted = torch.roll(images, 1, dims=0)  # each study gets its neighbour's image
    plant_report_samples(project, rows, shifted)
    stages.faithfulness.main()
    wrong = json.loads(Path("metrics/faithfulness.json").read_text())
    differs = [
        f
        for f, e in wrong["findings"].items()
        if e["synthetic_auroc"]["value"] is not None and e["synthetic_auroc"]["value"] != e["real_auroc"]["value"]
    ]
    assert differs, "images given to the wrong studies must not score the ceiling"
    assert any(
        g["synthetic_mean_auroc"]["value"] != g["real_mean_auroc"]["value"]
        for groups in wrong["subgroups"].values()
        for g in groups.values()
        if g["real_mean_auroc"]["value"] is not None
    ), "nor in a subgroup"


def test_a_classifier_at_chance_gets_its_findings_marked_uninformative(project, monkeypatch):
    """The evaluator with its output layer zeroed scores every film 0.5: its real-image AUROC is chance, so
    faithfulness marks every finding it scores as uninformative and says why, and the page shows it."""
    import stages.faithfulness
    from cxrldm.evaluation.networks import load_cnn
    from cxrldm.models import networks as nets
    from cxrldm.report import evaluation_page as page

    table, images = resized(project, image_size(project))
    rows = table.assign(purpose="test", source_path=table.path)[["purpose", "subject_id", "study_id", "source_path"]]
    monkeypatch.chdir(project)
    plant_report_samples(project, rows, images)
    model, description = load_cnn(Path("models/evaluator.safetensors"))
    torch.nn.init.zeros_(model.classifier.weight)
    torch.nn.init.zeros_(model.classifier.bias)
    nets.save_model(
        model,
        "EvaluatorCNN",
        description["kwargs"],
        Path("models/evaluator.safetensors"),
        {"image_size": description["image_size"]},
    )
    stages.faithfulness.main()
    results = json.loads(Path("metrics/faithfulness.json").read_text())
    scored = [f for f, e in results["findings"].items() if e["real_auroc"]["value"] is not None]
    assert scored, "the planted studies must hold both classes of some finding"
    for finding in scored:
        entry = results["findings"][finding]
        assert entry["real_auroc"]["value"] == 0.5
        assert "not clearly above" in entry["uninformative_because"], finding
    assert set(scored) <= set(results["uninformative_findings"])
    assert "uninformative" in page.summary_html({"faithfulness": results})


def test_memorisation_flags_planted_copies_and_few_new_patients(project, monkeypatch):
    """Among the synthetic images: exact copies and lightly perturbed copies of training images, and real
    test images (new patients). The copies are flagged in both spaces, with their own training image as
    nearest; the test images land near the null's own flagged share."""
    import stages.memorisation
    from cxrldm.data.datasets import load_images, read_split

    size = image_size(project)
    resized_dir = project / "data" / "resized"
    train, test = read_split(resized_dir, "train"), read_split(resized_dir, "test")
    train_images, test_images = load_images(resized_dir, train.path, size), load_images(resized_dir, test.path, size)
    n = min(6, len(train))
    noise = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 0.01
    copies = torch.cat([train_images[:n], (train_images[:n] + noise).clamp(0, 1)])
    rows = pd.concat([train[:n], train[:n], test]).assign(purpose="train", source_path=lambda t: t.path)
    plant_report_samples(
        project, rows[["purpose", "subject_id", "study_id", "source_path"]], torch.cat([copies, test_images])
    )
    monkeypatch.chdir(project)
    stages.memorisation.main()
    results = json.loads(Path("metrics/memorisation.json").read_text())
    assert results["n_synthetic"] == 2 * n + len(test) and results["n_null"] == len(test)
    p = params(project)["memorisation"]
    pixels = f"pixels_{p['pixel_size']}"
    assert set(results["spaces"]) == {"evaluator_cnn", pixels, "copy_detector"}
    for space, report in results["spaces"].items():
        # the tiny profile's copy detector trains for one epoch: only the exact copies are sure to be flagged
        copies = n if space == "copy_detector" else 2 * n
        assert report["flagged_count"] >= copies, f"{space}: planted copies not flagged"
        assert set(report["closest_synthetic"][:copies]) <= set(range(2 * n))
        assert report["flagged_fraction"]["value"] == pytest.approx(report["flagged_count"] / results["n_synthetic"])
        # the nearest training image of each copy is its own source; the test images' sources are not training images
        assert report["nearest_is_source_fraction"]["value"] >= copies / results["n_synthetic"] - 1e-9
        if space != "copy_detector":
            assert report["nearest_is_source_fraction"]["value"] == pytest.approx(2 * n / results["n_synthetic"])
        assert report["nearest_is_source_patient_fraction"]["value"] >= report["nearest_is_source_fraction"]["value"]
        assert report["flagged_count"] - 2 * n <= max(1, len(test) * report["null_flagged_fraction"] + 1)
    union = results["union"]
    assert union["flagged_count"] >= max(r["flagged_count"] for r in results["spaces"].values())
    assert union["null_flagged_fraction"] >= max(r["null_flagged_fraction"] for r in results["spaces"].values())
    # the planted-copy check: every spec, counts per space and in their union
    assert sorted(results["planted"]) == sorted(p["planted"])
    for counts in results["planted"].values():
        assert counts["n"] == min(p["planted_count"], len(train))
        assert max(counts[space] for space in results["spaces"]) <= counts["union"] <= counts["n"]
    assert results["planted"]["exact"]["union"] == results["planted"]["exact"]["n"]
    assert results["planted"]["exact"][pixels] == results["planted"]["exact"]["n"]
    reid = results["reidentification"]
    assert reid["synthetic_vs_source"]["n_queries"] == 2 * n  # the test images' patients are not in training
    assert Path("metrics/memorisation_pairs.png").is_file()


def test_the_real_image_classifier_of_utility_is_the_evaluator(project, monkeypatch):
    """utility's real-only arm is train_evaluator's model (the same recipe on the same images): it scores
    exactly the evaluator's AUROC on the test split, finding by finding."""
    import stages.utility
    from cxrldm.evaluation import networks as evaluation
    from cxrldm.evaluation.networks import load_cnn

    monkeypatch.chdir(project)
    stages.utility.main()
    p = params(project)
    findings = p["train_evaluator"]["labels"]
    results = json.loads(Path("metrics/utility.json").read_text())
    model, description = load_cnn(Path("models/evaluator.safetensors"))
    labels = read_labels(p["data"], findings)
    _, images, targets = classification.labelled_split(
        Path("data/resized"), "test", labels, findings, description["image_size"]
    )
    scores = evaluation.TrainedEvaluator(model, description["image_size"]).probabilities(images)
    assert results["n_test"] == len(images)
    assert set(results["auroc"]) == {"synthetic", "real", "both"}
    synthetic = pd.read_csv(Path("data/report_samples/manifest.csv"))
    assert results["n_train"]["synthetic"] == (synthetic.purpose == "train").sum()
    assert results["n_train"]["both"] == results["n_train"]["real"] + results["n_train"]["synthetic"]
    for i, finding in enumerate(findings):
        known = ~targets[:, i].isnan()
        positive = targets[known, i].bool()
        expected = classification.auroc(scores[known, i], positive) if 0 < positive.sum() < len(positive) else None
        assert results["auroc"]["real"][finding]["value"] == (
            pytest.approx(expected, abs=1e-12) if expected is not None else None
        )


def test_evaluate_and_memorisation_take_a_hugging_face_feature_network_from_a_directory(project, monkeypatch):
    """evaluate.feature_network: hf:<directory> (a tiny random RAD-DINO-family model saved offline): FID,
    PRDC, KID and the memorisation audit come out under its name; adherence stays the classifier's."""
    from tiny_models import save_dinov2

    import stages.evaluate
    import stages.memorisation

    model_dir = project / "models" / "rad-dino-tiny"
    save_dinov2(model_dir)
    p = params(project)
    p["evaluate"]["feature_network"] = f"hf:{model_dir}"
    (project / "params.yaml").write_text(yaml.safe_dump(p))
    monkeypatch.chdir(project)
    stages.evaluate.main()
    stages.memorisation.main()
    results = json.loads(Path("metrics/evaluate.json").read_text())
    assert {"fid_hf_rad_dino_tiny", "kid_hf_rad_dino_tiny", "prdc_hf_rad_dino_tiny", "adherence_evaluator_cnn"} <= set(
        results
    )
    assert set(results["prdc_hf_rad_dino_tiny"]) >= {"precision", "recall", "density", "coverage"}
    assert "hf_rad_dino_tiny" in json.loads(Path("metrics/memorisation.json").read_text())["spaces"]


def test_evaluate_fidelity_compares_the_samples_against_the_test_images_in_that_order(project, monkeypatch):
    """PRDC is not symmetric: precision asks whether samples fall among the real images, recall the
    reverse. On planted unconditional samples (normal phantoms), evaluate's numbers are those of
    (real = test images, generated = samples) and differ from the swapped order."""
    import numpy as np

    import stages.evaluate
    from cxrldm.data.datasets import load_images, read_split
    from cxrldm.data.images import save_png
    from cxrldm.demo import phantoms
    from cxrldm.demo.findings import Findings
    from cxrldm.evaluation import networks as evaluation
    from cxrldm.evaluation.fidelity import precision_recall_density_coverage
    from cxrldm.evaluation.networks import load_cnn

    size, p = image_size(project), params(project)["evaluate"]
    rng = np.random.default_rng(1)
    fakes = torch.stack([torch.from_numpy(phantoms.render(Findings(), "PA", rng, size, size)) for _ in range(9)])
    fakes = fakes.unsqueeze(1).float() / 255
    out = project / "data" / "samples"
    shutil.rmtree(out)
    out.mkdir()
    rows = [
        {
            "group": "unconditional",
            "prompt": "",
            "finding": "",
            "side": "",
            "seed": k,
            "guidance": 3.0,
            "sampler": "ddim",
            "steps": 2,
            "file": f"unconditional_seed{k}.png",
        }
        for k in range(len(fakes))
    ]
    for row, image in zip(rows, fakes):
        save_png(image, out / row["file"])
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    monkeypatch.chdir(project)
    stages.evaluate.main()
    results = json.loads(Path("metrics/evaluate.json").read_text())["prdc_evaluator_cnn"]

    test = read_split(Path("data/resized"), "test")
    real_images = load_images(Path("data/resized"), test.path[: min(len(test), p["n_test"])], size)
    model, description = load_cnn(Path("models/evaluator.safetensors"))
    network = evaluation.TrainedEvaluator(model, description["image_size"])
    real, fake = network.features(real_images), network.features(fakes)
    k = min(p["prdc_k"], len(real) - 1, len(fake) - 1)
    expected = precision_recall_density_coverage(real, fake, k)
    swapped = precision_recall_density_coverage(fake, real, k)
    names = ("precision", "recall", "density", "coverage")
    assert any(expected[n] != swapped[n] for n in names), "planted data cannot tell the order apart"
    assert {n: results[n]["value"] for n in names} == pytest.approx({n: expected[n] for n in names})
    assert results["k"] == k and results["precision"]["n"] == [len(real), len(fake)]


def test_realism_trains_its_own_judge_and_its_controls_bound_it(project, monkeypatch):
    """The realism stage on the tiny project: every comparison is there, with its counts, and the result
    does not move when every network the model was trained or tuned with is unreadable (the evaluator, the
    privacy audit's networks): a shortcut through their features would crash or change the numbers."""
    import stages.realism

    monkeypatch.chdir(project)
    stages.realism.main()
    first = json.loads(Path("metrics/realism.json").read_text())
    judged = ["control_real_vs_real", "control_blurred", "reconstructions", "unconditional", "report_conditioned"]
    assert set(judged) <= set(first)
    n = params(project)["realism"]["images"]
    for name in judged:
        assert 2 <= first[name]["n_negative"] == first[name]["n_positive"] <= n  # the same count each side
        assert first[name]["judge"]["folds"] == params(project)["realism"]["folds"]
    for network in ("evaluator", "copy_detector", "reidentifier"):
        Path(f"models/{network}.safetensors").write_bytes(b"not a network")
    stages.realism.main()
    assert json.loads(Path("metrics/realism.json").read_text()) == first


def test_the_autoencoder_screen_prints_a_row_per_variant_and_seed(project, monkeypatch, capsys):
    """benchmarks/autoencoder_realism.py on the tiny project: trains each variant, judges its reconstructions
    with the realism stage's films and judge, and saves the grid it was asked for."""
    import runpy
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "autoencoder_realism.py"
    monkeypatch.chdir(project)
    argv = [str(script), "baseline", "epochs=1,adv_start_epoch=0", "--seeds", "0", "--grids", "grids"]
    monkeypatch.setattr(sys, "argv", argv)
    with torch.random.fork_rng():
        runpy.run_path(str(script), run_name="__main__")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and " | 0 | " in line]
    assert [row.split(" | ")[0] for row in rows] == ["| baseline", "| epochs=1,adv_start_epoch=0"]
    assert sorted(p.name for p in Path("grids").iterdir()) == [
        "baseline_seed0.png",
        "epochs1_adv_start_epoch0_seed0.png",
    ]
