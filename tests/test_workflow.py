"""How people live with the project: reproducible runs, a DVC remote, the experiment queue."""

import json
import time

import pytest
import yaml
from pipeline_project import commit, run

pytestmark = pytest.mark.pipeline


def clone(source, target, shared_cache: bool):
    """A fresh git clone of the committed tiny project; with `shared_cache` its outputs come from the
    source's DVC cache instead of being recomputed."""
    run(source.parent, "git", "clone", "-q", str(source), str(target))
    if shared_cache:
        run(target, "cache", "dir", str(source / ".dvc" / "cache"))
        run(target, "checkout")
    return target


def lock_outputs(lock: dict) -> dict:
    """(stage, output path) -> the output's hash, from a parsed dvc.lock."""
    return {(stage, out["path"]): out["md5"] for stage, spec in lock["stages"].items() for out in spec.get("outs", [])}


def test_two_clean_runs_give_a_byte_identical_lock(tiny_project, tmp_path):
    """Wall-clock time stays out of every output DVC hashes (it lives in metrics/timing/, listed as metrics
    but declared by no stage), so a clean re-run gives the committed dvc.lock byte for byte and `dvc status`
    against it is clean."""
    again = clone(tiny_project, tmp_path / "again", shared_cache=False)
    (again / "dvc.lock").unlink()  # run from nothing, not from the recorded state
    run(again, "repro")
    recorded = run(tiny_project, "git", "show", "HEAD:dvc.lock").stdout
    assert (again / "dvc.lock").read_text() == recorded
    for stage in ("train_aekl", "train_ldm"):
        assert json.loads((again / "metrics" / "timing" / f"{stage}.json").read_text())["seconds"] > 0
    assert "seconds" not in (again / "metrics" / "train_aekl.json").read_text()


def test_push_to_a_local_remote_and_pull_into_a_fresh_clone(tiny_project, tmp_path):
    origin = clone(tiny_project, tmp_path / "origin", shared_cache=True)
    run(origin, "remote", "add", "-d", "storage", str(tmp_path / "remote"))
    run(origin, "push")
    commit(origin, "add a local remote")
    fresh = tmp_path / "fresh"
    run(tmp_path, "git", "clone", "-q", str(origin), str(fresh))
    run(fresh, "pull")
    assert (fresh / "models/diffusion.safetensors").is_file()
    assert "up to date" in run(fresh, "status").stdout


def test_experiment_queue_runs_two_experiments(tiny_project, tmp_path):
    project = clone(tiny_project, tmp_path / "queue", shared_cache=True)
    for min_studies in (4, 5):  # a param that re-runs one cheap stage (not the tiny profile's 3)
        run(project, "exp", "run", "--queue", "-S", f"faithfulness.min_studies={min_studies}")
    run(project, "queue", "start", "-j", "1")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = run(project, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    experiments = json.loads(run(project, "exp", "show", "--json").stdout)
    min_studies = set()
    for commit_entry in experiments:
        for exp in commit_entry.get("experiments") or []:
            for revision in exp["revs"]:
                data = revision["data"]
                min_studies.add(data["params"]["params.yaml"]["data"]["faithfulness"]["min_studies"])
                assert (
                    data["metrics"]["metrics/faithfulness.json"]["data"]["min_studies"]
                    == data["params"]["params.yaml"]["data"]["faithfulness"]["min_studies"]
                )
    assert min_studies == {4, 5}


def test_pull_request_workflow_tests_runs_the_pipeline_then_reports():
    from pipeline_project import ROOT

    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["test"]["steps"]
    scripts = [step.get("run", "") for step in steps]
    order = [
        next(i for i, s in enumerate(scripts) if marker in s)
        for marker in (".ci/run", "dvc repro", "dvc metrics diff", "comment create")
    ]
    assert order == sorted(order) and len(set(order)) == 3  # tests, tiny pipeline, then one report step
    report = scripts[order[2]]
    assert "dvc params diff" in report and "sample_grids" in report
