"""The whole pipeline through dvc itself, on the tiny profile: outputs, no-op re-runs, and which stages a
param change makes stale."""

import json
import re
import shutil
import sys

import pandas as pd
import pytest
import yaml
from pipeline_project import ROOT, ran_stages, run, set_param, stages

pytestmark = pytest.mark.pipeline

# Each stage and what lies downstream of it, written out by hand from the design.
REPORTS = {"sample_reports", "faithfulness", "memorisation", "utility", "evaluation_page"}
UPSTREAM_OF_MODELS = {"sample", "evaluate", "realism", "edit"} | REPORTS
DOWNSTREAM = {
    "demo_data": {
        "filter_pa",
        "resize",
        "extract_reports",
        "train_aekl",
        "scale_factor",
        "train_ldm",
        "train_evaluator",
        "train_privacy",
    }
    | UPSTREAM_OF_MODELS,
    "filter_pa": {
        "resize",
        "extract_reports",
        "train_aekl",
        "scale_factor",
        "train_ldm",
        "train_evaluator",
        "train_privacy",
    }
    | UPSTREAM_OF_MODELS,
    "resize": {"train_aekl", "scale_factor", "train_ldm", "train_evaluator", "train_privacy"} | UPSTREAM_OF_MODELS,
    "extract_reports": {"train_ldm"} | UPSTREAM_OF_MODELS,
    "train_aekl": {"scale_factor", "train_ldm"} | UPSTREAM_OF_MODELS,
    "scale_factor": {"train_ldm"} | UPSTREAM_OF_MODELS,
    "train_ldm": UPSTREAM_OF_MODELS,
    "train_evaluator": {"evaluate", "edit"} | REPORTS - {"sample_reports"},
    "train_privacy": {"memorisation", "evaluation_page"},
    "sample": {"evaluate", "realism", "evaluation_page"},
    "evaluate": {"evaluation_page"},
    "realism": {"evaluation_page"},
    "sample_reports": REPORTS - {"sample_reports"} | {"realism"},
    "faithfulness": {"evaluation_page"},
    "memorisation": {"evaluation_page"},
    "utility": {"evaluation_page"},
    "edit": {"evaluation_page"},
    "reader_study": {"evaluation_page"},
    "evaluation_page": set(),
}
# Representative leaf params, each with a new value: every stage's own, and params read by several stages.
CHANGES = {
    "demo_data.seed": 7,
    "filter_pa.split_seed": 3,
    "resize.size": 48,
    "data.reports": "data/demo",
    "train_aekl.lr_g": 5.0e-4,
    "scale_factor.override": 0.5,
    "train_ldm.lr": 1.0e-4,
    "train_ldm.deid_markers": "drop",  # train_ldm and sample_reports: the memorisation experiment
    "train_evaluator.lr": 1.0e-3,  # train_evaluator and utility (a classifier of its kind)
    "sample.seed": 5,
    "sample.guidance_scale": 2.0,  # sample and sample_reports: a guidance sweep moves every metric
    "evaluate.pairs": 3,
    "evaluate.resamples": 20,  # every stage with intervals, none that samples
    "sample_reports.seed": 5,
    "faithfulness.min_studies": 2,
    "realism.epochs": 2,
    "memorisation.percentile": 10.0,
    "privacy.epochs": 2,
    "memorisation.planted": ["mirror"],
    "memorisation.pixel_size": 8,  # memorisation and edit (its identity check uses the same space)
    "text_encoder.windows": 1,
    "sample_reports.prompt": "drawn",
    "edit.strength": 0.3,
    "extract_reports.template": "{findings} Nothing else.",
    "data.labels": "manifest.csv",  # every stage that reads labels: the prompts and the evaluation
}
# The stages that read each changed param (its own stage first), written out by hand.
READERS = {
    "train_ldm.deid_markers": {"train_ldm", "sample_reports"},
    "train_evaluator.lr": {"train_evaluator", "utility"},
    "sample.guidance_scale": {"sample", "sample_reports"},
    "memorisation.pixel_size": {"memorisation", "edit"},
    "evaluate.resamples": {"evaluate", "faithfulness", "memorisation", "utility", "edit", "reader_study"},
    "data.labels": {"extract_reports", "train_evaluator", "evaluate", "faithfulness", "utility", "edit"},
}


@pytest.fixture(scope="module")
def project(tiny_project):
    """The session's tiny project; these tests change its workspace (never its commits)."""
    return tiny_project


def test_first_repro_ran_every_stage(tiny_project_log):
    assert set(ran_stages(tiny_project_log)) == set(DOWNSTREAM)


def test_repro_writes_every_output_and_metric(project):
    images = pd.read_csv(project / "data/resized/images.csv")
    assert (images[["width", "height"]].min(axis=1) == 64).all()
    assert set(pd.read_csv(project / "data/reports.csv").study_id) == set(images.study_id)
    for name in ("autoencoder", "diffusion", "evaluator", "copy_detector", "reidentifier"):
        assert (project / f"models/{name}.safetensors").is_file() and (project / f"models/{name}.json").is_file()
    factor = json.loads((project / "models/scale_factor.json").read_text())
    assert factor["scale_factor"] == pytest.approx(1 / factor["latent_std"])
    manifest = pd.read_csv(project / "data/samples/manifest.csv")
    assert manifest.seed.is_unique and manifest.file.is_unique and len(manifest) == 3 * 2 + 4
    assert manifest.side.fillna("").tolist() == ["", "", "right", "right", "left", "left"] + [""] * 4
    evaluate = json.loads((project / "metrics/evaluate.json").read_text())
    assert {"ms_ssim_reconstruction", "ms_ssim_samples", "ms_ssim_test", "fid_evaluator_cnn"} <= set(evaluate)
    assert evaluate["laterality"]["n_right"] == evaluate["laterality"]["n_left"] == 2
    sample = yaml.safe_load((project / "params.yaml").read_text())["sample"]
    assert list(manifest.seed) == [sample["seed"] * 1_000_000 + k for k in range(len(manifest))]  # as documented
    # diversity and FID: unconditional samples only
    assert evaluate["ms_ssim_samples"]["n"] == evaluate["fid_evaluator_cnn"]["n"][1] == sample["n_unconditional"]
    assert evaluate["fid_evaluator_cnn"]["value"] < evaluate["fid_evaluator_cnn_noise_baseline"]
    for name in ("ms_ssim_samples", "ms_ssim_reconstruction"):
        metric = evaluate[name]
        assert 0 < metric["low"] <= metric["value"] <= metric["high"] < 1
    shown = run(project, "metrics", "show", "--json").stdout
    assert "val_ms_ssim" in shown and "fid_evaluator_cnn" in shown
    # the committed answers file holds only its header: the reader study says so, on the page too
    assert json.loads((project / "metrics/reader_study.json").read_text()) == {
        "n_answers": 0,
        "n_films": 0,
        "n_readers": 0,
    }
    assert "No answers yet" in (project / "metrics/evaluation.html").read_text()


def test_plots_page_renders_offline(project):
    run(project, "plots", "show", "-o", "plots_page")
    page = (project / "plots_page" / "index.html").read_text()
    assert "vegaEmbed(" in page and "function" in page  # the libraries are inlined
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", page)  # and nothing is fetched
    assert "train_l1" in page and "epoch_0002.png" in page  # loss curves and image grids


def test_training_curves_are_plotted_against_the_logged_epoch(project):
    shown = json.loads(run(project, "plots", "show", "--json", "-o", "plots_json").stdout)["data"]
    curves = sorted(project.glob("dvclive/*/plots/metrics/*.tsv"))
    assert curves
    for tsv in curves:
        logged = pd.read_csv(tsv, sep="\t")["step"].astype(str).tolist()
        spec = shown[tsv.relative_to(project).as_posix()][0]["content"]
        assert spec["encoding"]["x"]["field"] == "step"
        assert [str(row["step"]) for row in spec["data"]["values"]] == logged, tsv.name


def test_second_repro_is_a_no_op(project):
    assert ran_stages(run(project, "repro").stdout) == []
    assert "up to date" in run(project, "status").stdout


def test_every_param_is_a_listed_leaf():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    listed = {name for spec in stages().values() for name in spec.get("params", [])}
    listed |= {name for spec in stages().values() for name in re.findall(r"\$\{([^}]+)\}", spec["cmd"])}

    def leaves(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    assert set(leaves(params)) == listed, "every params.yaml leaf is listed by a stage, and nothing else"
    assert set(DOWNSTREAM) == set(stages())


@pytest.mark.parametrize("dotted", list(CHANGES))
def test_a_param_change_makes_exactly_its_readers_and_downstream_stale(project, dotted):
    readers = READERS.get(dotted, {next(s for s in stages() if dotted in stages()[s].get("params", []))})
    original = (project / "params.yaml").read_text()
    try:
        set_param(project, dotted, CHANGES[dotted])
        stale = run(project, "status", "--json").stdout
        would_run = set(ran_stages(run(project, "repro", "--dry", "--force-downstream").stdout))
    finally:
        (project / "params.yaml").write_text(original)
    assert set(json.loads(stale)) == readers  # the only stages whose own inputs changed
    assert would_run == readers.union(*(DOWNSTREAM[r] for r in readers))  # and everything downstream


def test_editing_the_prompts_file_makes_sample_stale(project):
    prompts = project / "configs" / "prompts" / "prompts.txt"
    original = prompts.read_text()
    try:
        prompts.write_text(original + "Small left apical pneumothorax.\n")
        assert set(json.loads(run(project, "status", "--json").stdout)) == {"sample"}
    finally:
        prompts.write_text(original)


def test_no_extra_prompts_file_is_a_param_change_dvc_can_parse(project):
    params = project / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("prompts_file: prompts.txt", "prompts_file: null"))
        result = run(project, "status", "--json")
        assert result.returncode == 0, result.stderr  # DVC 3.67 crashes on a null dependency path
        assert set(json.loads(result.stdout)) == {"sample"}
    finally:
        params.write_text(original)


def test_exp_run_reruns_the_changed_stage_and_downstream_only(project):
    # a stage near the end keeps this quick; which stages each param makes stale is checked above for all
    result = run(project, "exp", "run", "-S", "privacy.epochs=2")
    assert set(ran_stages(result.stdout)) == {"train_privacy"} | DOWNSTREAM["train_privacy"]


def test_data_without_a_split_file_gets_a_patient_split(project, tmp_path):
    root = tmp_path / "no_split"
    shutil.copytree(project / "data" / "demo", root, ignore=shutil.ignore_patterns("*-split.csv.gz"))
    original = (project / "params.yaml").read_text()
    try:
        for dotted, value in (
            ("data.root", str(root)),
            ("filter_pa.split", "by_patient"),
            ("filter_pa.split_file", "SHA256SUMS.txt"),
            ("filter_pa.train_fraction", 0.6),
            ("filter_pa.validate_fraction", 0.2),
            ("filter_pa.test_fraction", 0.2),
        ):
            set_param(project, dotted, value)
        run(project, "repro", "-s", "filter_pa")
        table = pd.read_csv(project / "data" / "pa.csv")
        assert set(table.split) == {"train", "validate", "test"}
        assert table.groupby("subject_id").split.nunique().max() == 1
    finally:
        (project / "params.yaml").write_text(original)
        run(project, "repro", "-s", "filter_pa")


def test_wrong_data_root_is_one_line(project):
    original = (project / "params.yaml").read_text()
    try:
        set_param(project, "data.root", "/nonexistent/mimic")
        result = run(project, "repro", "-s", "resize", "--force", check=False)
        assert result.returncode != 0
        assert "error: data.root (MIMIC-CXR-JPG directory) not found: /nonexistent/mimic\n" in result.stderr
        assert "Traceback" not in result.stderr
        result = run(project, "repro", "filter_pa", check=False)
        assert result.returncode != 0 and "/nonexistent/mimic/mimic-cxr-2.0.0-metadata.csv.gz" in result.stderr
    finally:
        (project / "params.yaml").write_text(original)


def test_generate_cli_writes_images_and_manifest(tiny_project, tmp_path, capsys):
    import subprocess
    import sys

    from pipeline_project import env

    out = tmp_path / "generated"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxrldm.cli.generate",
            "--models",
            str(tiny_project / "models"),
            "--prompt",
            "There is a large right pleural effusion.",
            "--prompt",
            "The heart is severely enlarged.",
            "--n",
            "2",
            "--steps",
            "2",
            "--seed",
            "10",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.seed) == [10, 11, 12, 13] and manifest.file.is_unique
    assert list(manifest.columns) == ["prompt", "seed", "guidance", "sampler", "steps", "file", "dicom"]
    assert all((out / f).is_file() for f in manifest.file)
    again = [
        sys.executable,
        "-m",
        "cxrldm.cli.generate",
        "--models",
        str(tiny_project / "models"),
        "--prompt",
        "No effusion.",
        "--n",
        "2",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    from cxrldm.cli import generate

    generate.main(again[3:])  # the same command, in this process
    manifest = pd.read_csv(out / "manifest.csv")  # the second run added after the first, overwrote nothing
    assert list(manifest.seed) == [10, 11, 12, 13, 14, 15] and manifest.file.is_unique
    assert list(manifest.prompt[-2:]) == ["No effusion."] * 2 and all((out / f).is_file() for f in manifest.file)

    # bad input, in this process (the one-line exits are the CLI's own, not a wrapper's): no traceback means
    # SystemExit rather than an exception
    def fails(argv) -> str:
        with pytest.raises(SystemExit) as exit_info:
            generate.main(argv)
        code = exit_info.value.code  # SystemExit("error: ...") prints its message at exit
        assert code not in (0, None)
        return code if isinstance(code, str) else capsys.readouterr().err.strip().splitlines()[-1]

    assert fails(again[3:] + ["--seed", "12"]).startswith("error: seed 12 is already in")
    assert len(pd.read_csv(out / "manifest.csv")) == 6
    assert fails(again[3:] + ["--sampler", "ddpm"]).startswith("error: the ddpm sampler takes all 1000 steps")
    assert len(pd.read_csv(out / "manifest.csv")) == 6
    assert fails(["--models", str(tmp_path / "none"), "--prompt", "x", "--out", str(out)]).startswith("error:")


def test_the_launcher_is_an_environment_variable_outside_what_dvc_hashes(tiny_project, tmp_path):
    """CXRLDM_LAUNCH picks the training stages' launcher (torchrun on GPU nodes); switching it leaves
    every stage up to date, and scripts/launch.sh really runs the command it names."""
    from pipeline_project import pristine_copy

    project = pristine_copy(tiny_project, tmp_path / "project")
    torchrun = {"CXRLDM_LAUNCH": "torchrun --standalone --nproc_per_node=8"}
    assert "up to date" in run(project, "status", extra_env=torchrun).stdout
    import subprocess

    from pipeline_project import env

    probe = subprocess.run(
        ["sh", "scripts/launch.sh", "-c", "import sys; print(sys.flags.utf8_mode)"],
        cwd=project,
        env={**env(), "CXRLDM_LAUNCH": f"{sys.executable} -X utf8"},
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "1", probe.stderr
