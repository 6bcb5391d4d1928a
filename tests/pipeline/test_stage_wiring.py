"""The stages' wiring, checked by value on a copy of the tiny project: evaluate on planted samples whose every
metric has a known answer, the sample stage's seeds and manifest, atomic stage outputs, and train_ldm's
one-line stop on a non-finite loss. The stages' main() runs in-process where that is possible, so that
tools tracing the code (coverage, mutation testing) see it."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from pipeline_project import env, pristine_copy, set_param

from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, fidelity, similarity

pytestmark = pytest.mark.pipeline

# pytest.approx tolerance for a value a stage computes the same way as the test: the same network on the
# same tensors in the same batches gives the same floats (the tiny evaluator is barely trained, so its
# probabilities for different images differ only from the fifth decimal on: the tolerance is a few float32 ulps).
SAME = {"rel": 1e-7, "abs": 1e-12}


@pytest.fixture
def project(tiny_project, tmp_path):
    """A private copy of the session's tiny project (which is shared and never modified here)."""
    return pristine_copy(tiny_project, tmp_path / "project")


def params(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def set_params(project: Path, **sections: dict) -> None:
    values = params(project)
    for section, changes in sections.items():
        values[section].update(changes)
    (project / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))


def tree_hash(folder: Path) -> str:
    """Every file under `folder` (names and bytes, hidden files included)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def temporary_files(*folders: Path) -> list[str]:
    """Leftovers of cxrldm.io's atomic writes (.NAME.tmp-PID), files or directories."""
    return sorted(str(p) for folder in folders for p in folder.rglob(".*") if ".tmp-" in p.name)


def as_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W) arrays -> (N, 1, H, W) in [0, 1], as evaluate reads its samples."""
    return torch.stack([torch.from_numpy(a) for a in arrays]).unsqueeze(1).float() / 255


def clearly_apart(expected: float, wrong: dict[str, float], what: str, margin: float = 0.0) -> None:
    """The planted data must tell the right wiring from each wrong one by far more than SAME's tolerance."""
    for name, value in wrong.items():
        gap = abs(value - expected)
        assert gap > max(margin, 10 * (SAME["rel"] * abs(expected) + SAME["abs"])), (
            f"planted data cannot tell {what} from {name} ({expected!r} vs {value!r}): fix the test's data"
        )


def plant_samples(project: Path, size: int, test_images: torch.Tensor) -> pd.DataFrame:
    """Replace data/samples with n phantoms of known findings per prompt group, n of a prompts-file group without a
    finding, and n unconditional samples that are exact copies of evaluate's n test images; rows interleaved so
    that nothing works by position. Returns the manifest with each row's uint8 image in column `pixels`."""
    from cxrldm.data.images import save_png
    from cxrldm.demo import phantoms
    from cxrldm.demo.findings import Findings

    rng, n = np.random.default_rng(0), len(test_images)

    def film(findings):
        return phantoms.render(findings, "PA", rng, size, size)

    effusion = {side: Findings(effusion_side=side, effusion_size="large") for side in ("right", "left")}
    groups = [  # (group, prompt, finding, side, images)
        (0, "The heart is severely enlarged.", "Cardiomegaly", "", [film(Findings(cardiomegaly=3)) for _ in range(n)]),
        (
            1,
            "There is a large right pleural effusion.",
            "Pleural Effusion",
            "right",
            [film(effusion["right"]) for _ in range(n)],
        ),
        (
            2,
            "There is a large left pleural effusion.",
            "Pleural Effusion",
            "left",
            [film(effusion["left"]) for _ in range(n)],
        ),
        # the normal-report group, all but one of its films with the findings, so that adherence against it is
        # below 1 and ranks apart from adherence against the null (with one such film of three, the trained
        # evaluator of one machine scored both at 7/9)
        (
            3,
            "No acute cardiopulmonary process.",
            "",
            "",
            [film(Findings(cardiomegaly=3, effusion_side="bilateral", effusion_size="large")) for _ in range(n - 1)]
            + [film(Findings())],
        ),
        ("unconditional", "", "", "", [(image[0] * 255).round().byte().numpy() for image in test_images]),
    ]
    rows = [
        {
            "group": group,
            "prompt": prompt,
            "finding": finding,
            "side": side,
            "seed": 1000 * g + k,
            "guidance": 3.0,
            "sampler": "ddim",
            "steps": 2,
            "file": f"{group if group == 'unconditional' else f'prompt{group:03d}'}_seed{1000 * g + k}.png",
            "pixels": pixels,
        }
        for g, (group, prompt, finding, side, images) in enumerate(groups)
        for k, pixels in enumerate(images)
    ]
    rows.sort(key=lambda row: (row["seed"] % 1000, row["group"] != "unconditional"))  # round robin
    manifest = pd.DataFrame(rows)
    assert manifest.group[0] == "unconditional" and manifest.group.iloc[-1] == 3
    out = project / "data" / "samples"
    shutil.rmtree(out)
    out.mkdir()
    for file, pixels in zip(manifest.file, manifest.pixels):
        save_png(torch.from_numpy(pixels)[None].float() / 255, out / file)
    manifest.drop(columns="pixels").to_csv(out / "manifest.csv", index=False)
    return manifest


def plant_test_labels(project: Path, test_studies) -> None:
    """Give the test studies known labels in the project's label file: a different positive film per finding
    (so each finding's yardstick differs), and one uncertain (-1) label that must be left out."""
    data = params(project)["data"]
    path = project / data["root"] / data["labels"]
    labels = pd.read_csv(path)
    findings = [c for c in labels.columns if c not in ("subject_id", "study_id")]
    test = labels.study_id.isin(list(test_studies))
    labels.loc[test, findings] = 0.0
    for i, study in enumerate(test_studies):
        labels.loc[labels.study_id == study, findings[i :: len(test_studies)]] = 1.0
    labels.loc[labels.study_id == list(test_studies)[-1], "Pleural Effusion"] = -1.0
    labels.to_csv(path, index=False)


def test_evaluate_metrics_come_from_the_right_samples_groups_and_columns(project, monkeypatch):
    """evaluate on planted samples: FID and diversity of the unconditional ones, adherence per group and finding
    column against the unconditional null, laterality of the right/left groups, all equal to direct computations."""
    import stages.evaluate
    from cxrldm.data.datasets import load_images, read_split
    from cxrldm.evaluation import networks as evaluation
    from cxrldm.evaluation.networks import load_cnn

    p = params(project)["evaluate"]
    assert p["feature_network"] == "evaluator_cnn"
    size = json.loads((project / "models" / "autoencoder.json").read_text())["image_size"]
    test = read_split(project / "data" / "resized", "test")
    n_test = min(len(test), p["n_test"])
    assert n_test >= 3
    test_images = load_images(project / "data" / "resized", test.path[:n_test], size)
    manifest = plant_samples(project, size, test_images)
    plant_test_labels(project, test.study_id)
    set_params(project, evaluate={"normal_prompt": 3})  # the planted normal films' group

    monkeypatch.chdir(project)
    stages.evaluate.main()
    results = json.loads((project / "metrics" / "evaluate.json").read_text())

    model, description = load_cnn(project / "models" / "evaluator.safetensors")
    network = evaluation.TrainedEvaluator(model, description["image_size"])

    def images(mask) -> torch.Tensor:
        return as_tensor(list(manifest.pixels[mask]))

    unconditional, everything = images(manifest.group == "unconditional"), images(manifest.index >= 0)
    assert torch.equal(unconditional, test_images)

    # Frechet distance: the unconditional samples (copies of the test images) against the test images
    real = network.features(test_images)
    expected_fid = fidelity.frechet_distance(network.features(unconditional), real)
    all_fid = fidelity.frechet_distance(network.features(everything), real)
    clearly_apart(expected_fid, {"FID over all samples": all_fid}, "FID of the unconditional samples", margin=1e-9)
    assert results["fid_evaluator_cnn"]["value"] == pytest.approx(expected_fid, **SAME), (
        "FID not of the unconditional samples"
    )
    assert results["fid_evaluator_cnn"]["value"] < results["fid_evaluator_cnn_noise_baseline"]
    assert results["fid_evaluator_cnn"]["value"] < results["fid_evaluator_cnn_blur_baseline"]
    assert results["ms_ssim_samples"]["n"] == results["fid_evaluator_cnn"]["n"][1] == len(unconditional) == n_test

    # diversity: mean pairwise MS-SSIM of the unconditional samples only (here the test images themselves)
    kernel = p["ms_ssim_kernel"]
    pairs = similarity.pair_indices(len(unconditional), p["pairs"], p["seed"])
    expected_diversity = float(similarity.pairwise_ms_ssim(unconditional, pairs, kernel).mean())
    all_diversity = float(
        similarity.pairwise_ms_ssim(
            everything, similarity.pair_indices(len(everything), p["pairs"], p["seed"]), kernel
        ).mean()
    )
    clearly_apart(expected_diversity, {"all samples": all_diversity}, "diversity of the unconditional samples", 0.01)
    assert results["ms_ssim_samples"]["value"] == pytest.approx(expected_diversity, **SAME), (
        "ms_ssim_samples not of the unconditional samples"
    )
    assert results["ms_ssim_samples"]["value"] == pytest.approx(results["ms_ssim_test"]["value"], **SAME)
    assert results["ms_ssim_samples"]["pairs"] == len(pairs)

    # adherence: each group's images in its finding's column, against the unconditional samples in that column
    null = network.probabilities(unconditional)
    real_films = test[: max(n_test, min(len(test), p["n_reconstruction"]))]
    real_images = load_images(project / "data" / "resized", real_films.path, size)
    adherence = results["adherence_evaluator_cnn"]
    assert set(adherence) == {"prompt000", "prompt001", "prompt002"}  # group 3 has no finding
    for group in (0, 1, 2):
        rows = manifest[manifest.group == group]
        finding, column = rows.finding.iloc[0], network.labels.index(rows.finding.iloc[0])
        probabilities = network.probabilities(images(manifest.group == group))
        entry = adherence[f"prompt{group:03d}"]
        assert (entry["finding"], entry["prompt"]) == (finding, rows.prompt.iloc[0])
        expected = float(probabilities[:, column].mean())
        others = {
            f"column {network.labels[c]}": float(probabilities[:, c].mean())
            for c in range(len(network.labels))
            if c != column
        }
        others.update(
            {
                f"group {g}": float(network.probabilities(images(manifest.group == g))[:, column].mean())
                for g in (0, 1, 2, 3, "unconditional")
                if g != group
            }
        )
        clearly_apart(expected, others, f"group {group}'s {finding} probability")
        assert entry["prompt_probability"] == pytest.approx(expected, **SAME), (
            f"prompt{group:03d} prompt_probability not its images' mean {finding} probability"
        )
        expected_null = float(null[:, column].mean())
        wrong_nulls = {
            f"column {network.labels[c]}": float(null[:, c].mean()) for c in range(len(network.labels)) if c != column
        }
        wrong_nulls["all samples"] = float(network.probabilities(everything)[:, column].mean())
        wrong_nulls["conditional samples"] = float(
            network.probabilities(images(manifest.group != "unconditional"))[:, column].mean()
        )
        clearly_apart(expected_null, wrong_nulls, f"the null {finding} probability")
        assert entry["null_probability"] == pytest.approx(expected_null, **SAME), (
            f"prompt{group:03d} null_probability not the unconditional samples' mean {finding} probability"
        )
        labels = torch.cat([torch.ones(len(probabilities)), torch.zeros(len(null))])
        assert entry["auroc_vs_null"]["value"] == pytest.approx(
            classification.auroc(torch.cat([probabilities[:, column], null[:, column]]), labels), **SAME
        )

        # its real-film yardstick: the test films labelled positive for the finding against all test films
        real = entry["real_positive_vs_all"]
        targets = classification.label_targets(
            read_labels(params(project)["data"], [finding]), real_films.study_id, [finding]
        )[:, 0]
        known = ~targets.isnan()
        scores = network.probabilities(real_images[known])
        positive = targets[known] == 1
        assert real["n_positive"] == int(positive.sum()) >= 1 and real["n_all"] == int(known.sum())
        assert real["n_all"] == len(real_films) - (finding == "Pleural Effusion")  # the uncertain label left out

        def positive_vs_all(c: int) -> float:
            s = scores[:, c]
            return classification.auroc(
                torch.cat([s[positive], s]), torch.cat([torch.ones(int(positive.sum())), torch.zeros(len(s))])
            )

        assert real["value"] == pytest.approx(positive_vs_all(column), **SAME), (
            finding
        )  # real_adherence: tests/evaluation

        # against the normal report's images (group 3), and its real counterpart: positive against negative films
        normal = network.probabilities(images(manifest.group == 3))[:, column]
        assert entry["normal_probability"] == pytest.approx(float(normal.mean()), **SAME)
        clearly_apart(
            float(normal.mean()),
            {"null": expected_null, "prompt": expected},
            f"the normal prompt's {finding} probability",
        )

        def auroc_against(reference):
            return classification.auroc(
                torch.cat([probabilities[:, column], reference]),
                torch.cat([torch.ones(len(probabilities)), torch.zeros(len(reference))]),
            )

        clearly_apart(
            auroc_against(normal),
            {"against the null": auroc_against(null[:, column])},
            f"prompt{group:03d}'s AUROC against the normal report",
            margin=0.01,
        )
        assert entry["auroc_vs_normal"]["value"] == pytest.approx(auroc_against(normal), **SAME)
        assert entry["normal_prompt"] == "No acute cardiopulmonary process."
        assert entry["auroc_vs_normal"]["n"] == [len(probabilities), len(normal)]
        negative = real["n_all"] - real["n_positive"]
        assert entry["real_positive_vs_negative"]["n_negative"] == negative >= 1
        assert entry["real_positive_vs_negative"]["value"] == pytest.approx(
            classification.auroc(scores[:, column], positive), **SAME
        ), finding

    # laterality: a right effusion brightens the image-left lower zone (PA), so right > left, perfectly apart
    right = classification.lower_zone_contrast(images(manifest.side == "right"))
    left = classification.lower_zone_contrast(images(manifest.side == "left"))
    assert right.min() > left.max()
    laterality = results["laterality"]
    assert laterality["right_prompts"] == pytest.approx(float(right.mean()), **SAME), (
        "right_prompts not the right group's mean lower-zone contrast"
    )
    assert laterality["left_prompts"] == pytest.approx(float(left.mean()), **SAME), (
        "left_prompts not the left group's mean lower-zone contrast"
    )
    assert laterality["right_prompts"] > laterality["left_prompts"]
    assert laterality["auroc_right_vs_left"]["value"] == 1.0
    assert (laterality["n_right"], laterality["n_left"]) == (len(right), len(left)) == (n_test, n_test)

    # one-sidedness: each side's images against the null prompt's, in the stated side's lower zone (the image's
    # left for a right effusion) and in the opposite one; the planted one-sided phantoms tell the two apart
    null_zones = classification.lower_zones(unconditional)
    for side, stated in (("right", 0), ("left", 1)):
        zones = classification.lower_zones(images(manifest.side == side))

        def against_null(zone: int) -> float:
            labels = torch.cat([torch.ones(len(zones[zone])), torch.zeros(len(null_zones[zone]))])
            return classification.auroc(torch.cat([zones[zone], null_zones[zone]]), labels)

        entry = laterality["one_sided"][side]
        expected_stated, expected_opposite = against_null(stated), against_null(1 - stated)
        clearly_apart(expected_stated, {"the opposite zone": expected_opposite}, f"the {side} prompts' stated zone")
        assert entry["stated_zone_auroc"]["value"] == pytest.approx(expected_stated, **SAME), side
        assert entry["opposite_zone_auroc"]["value"] == pytest.approx(expected_opposite, **SAME), side
        assert entry["stated_zone_auroc"]["n"] == [len(zones[0]), len(null_zones[0])]


def expected_jobs(project: Path, p: dict) -> list[dict]:
    """The sample stage's images in order, from the params as documented: each prompt (params, then the
    prompts file) n_per_prompt times, then n_unconditional unconditional ones."""
    prompts = [(q["text"], q.get("finding") or "", q.get("side") or "") for q in p["prompts"]]
    if p["prompts_file"]:
        lines = (project / "configs" / "prompts" / p["prompts_file"]).read_text().splitlines()
        prompts += [(line.strip(), "", "") for line in lines if line.strip() and not line.strip().startswith("#")]
    jobs = [
        {"group": str(i), "prompt": text, "finding": finding, "side": side}
        for i, (text, finding, side) in enumerate(prompts)
        for _ in range(p["n_per_prompt"])
    ]
    return jobs + [{"group": "unconditional", "prompt": "", "finding": "", "side": ""}] * p["n_unconditional"]


def test_sample_records_seed_times_a_million_plus_k_per_image_and_writes_grids(project, monkeypatch):
    """sample: image k gets seed sample.seed * 1_000_000 + k, the one it was generated with; the manifest follows
    the params' prompts in order; files are unique and written; one grid per group."""
    from PIL import Image

    import stages.sample
    from cxrldm.sampling.generation import generate_images, load_models

    set_param(project, "sample.seed", 3)
    p = params(project)["sample"]
    jobs = expected_jobs(project, p)
    assert len({job["side"] for job in jobs}) > 1 and len({job["group"] for job in jobs}) > 2

    monkeypatch.chdir(project)
    stages.sample.main()

    out = project / "data" / "samples"
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False, dtype=str)
    assert list(manifest.columns) == [
        "group",
        "prompt",
        "finding",
        "side",
        "seed",
        "guidance",
        "sampler",
        "steps",
        "file",
    ]
    assert manifest.seed.astype(int).tolist() == [3 * 1_000_000 + k for k in range(len(jobs))], (
        "seeds are not sample.seed * 1_000_000 + k"
    )
    assert manifest[["group", "prompt", "finding", "side"]].to_dict("records") == jobs
    assert manifest.file.is_unique and {*manifest.file, "manifest.csv"} == {f.name for f in out.iterdir()}
    assert set(manifest.sampler) == {p["sampler"]} and set(manifest.steps.astype(int)) == {p["steps"]}
    assert set(manifest.guidance.astype(float)) == {p["guidance_scale"]}

    # the recorded seed is the one each image was generated with
    models = load_models(project / "models", p["precision"])
    again = generate_images(
        models,
        [job["prompt"] for job in jobs],
        [3 * 1_000_000 + k for k in range(len(jobs))],
        p["sampler"],
        p["steps"],
        p["guidance_scale"],
        p["batch_size"],
    )
    pixels = np.stack([np.asarray(Image.open(out / f)) for f in manifest.file]).astype(int)
    expected = (again[:, 0].clamp(0, 1) * 255).round().byte().numpy().astype(int)
    assert np.abs(pixels - expected).max() <= 1

    # one grid per group, named after its prompt, holding the group's images side by side (up to 8 a row)
    def slugged(text):
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].rstrip("-")

    names = {
        group: "unconditional.png" if group == "unconditional" else f"prompt{int(group):03d}_{slugged(prompt)}.png"
        for group, prompt in zip(manifest.group, manifest.prompt)
    }
    assert sorted(f.name for f in (project / "metrics" / "sample_grids").iterdir()) == sorted(names.values())
    for group, name in names.items():
        films = pixels[(manifest.group == group).to_numpy()][:16]
        rows = [np.hstack(films[i : i + 8]) for i in range(0, len(films), 8)]
        rows[-1] = np.pad(rows[-1], ((0, 0), (0, rows[0].shape[1] - rows[-1].shape[1])))
        with Image.open(project / "metrics" / "sample_grids" / name) as grid:
            assert np.array_equal(np.asarray(grid).astype(int), np.vstack(rows)), name


def test_sample_failing_part_way_leaves_the_previous_output_and_no_temporary_files(project, monkeypatch):
    """sample stopped after a few images: data/samples and the grids stay byte-for-byte the previous run's and no
    .NAME.tmp-PID file or directory is left under data/ or metrics/."""
    import stages.sample

    set_param(project, "sample.seed", 5)  # a complete new run would change every file
    before = {folder: tree_hash(project / folder) for folder in ("data/samples", "metrics/sample_grids")}
    real_save, saved = stages.sample.save_png, []

    def save_then_fail(image, path):
        if len(saved) == 3:
            raise RuntimeError("planted failure while writing the samples")
        real_save(image, path)
        saved.append(path)

    monkeypatch.setattr(stages.sample, "save_png", save_then_fail)
    monkeypatch.chdir(project)
    with pytest.raises(RuntimeError, match="planted failure"):
        stages.sample.main()
    assert len(saved) == 3
    assert {folder: tree_hash(project / folder) for folder in before} == before
    assert temporary_files(project / "data", project / "metrics") == []


def test_train_ldm_non_finite_loss_is_one_line_and_keeps_the_model(project):
    """train_ldm with an lr that blows the loss up in the first epoch: non-zero exit, the last stderr line is the
    error (no traceback), and the previous model and metrics stay."""
    kept = [project / "models" / "diffusion.safetensors", project / "metrics" / "train_ldm.json"]
    before = [hashlib.sha256(path.read_bytes()).hexdigest() for path in kept]
    set_param(project, "train_ldm.lr", 1e12)
    result = subprocess.run(
        [sys.executable, "-m", "stages.train_ldm"], cwd=project, env=env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0, result.stdout + result.stderr
    last_line = result.stderr.strip().splitlines()[-1]  # after the progress bars
    assert last_line.startswith("error: train_ldm stopped: non-finite loss"), result.stderr[-2000:]
    assert " at epoch 1 step " in last_line  # at once, not after an epoch's training
    assert "Traceback" not in result.stderr
    assert [hashlib.sha256(path.read_bytes()).hexdigest() for path in kept] == before
    assert temporary_files(project / "models", project / "metrics") == []
