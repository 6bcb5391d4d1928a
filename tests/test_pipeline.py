"""The data stages through dvc itself, on a tiny profile."""

import json

import pandas as pd
import pytest

from pipeline_project import make_project, ran_stages, run

pytestmark = pytest.mark.pipeline
DATA_STAGES = ["demo_data", "filter_pa", "resize", "extract_reports"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("project"))
    result = run(project, "repro", *DATA_STAGES)
    assert set(ran_stages(result.stdout)) == set(DATA_STAGES)
    return project


def test_repro_writes_the_tables_and_counts(project):
    counts = json.loads((project / "metrics/filter_pa.json").read_text())
    images = pd.read_csv(project / "data/resized/images.csv")
    reports = pd.read_csv(project / "data/reports.csv")
    assert counts["pa_images"] == len(images) > 0
    assert set(reports.study_id) == set(images.study_id)
    assert (images[["width", "height"]].min(axis=1) == 64).all()
    assert json.loads((project / "metrics/resize.json").read_text())["skipped"] == 0


def test_second_repro_is_a_no_op(project):
    result = run(project, "repro", *DATA_STAGES)
    assert ran_stages(result.stdout) == []
    assert "up to date" in run(project, "status").stdout


def test_changing_resize_size_reruns_resize_only(project):
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "tiny run")
    result = run(project, "exp", "run", "-S", "resize.size=48", *DATA_STAGES)
    assert ran_stages(result.stdout) == ["resize"]
    assert "demo_data" not in ran_stages(result.stdout)


def test_wrong_data_root_is_one_line(project):
    params = (project / "params.yaml").read_text()
    try:
        (project / "params.yaml").write_text(params.replace("root: data/demo", "root: /nonexistent/mimic"))
        result = run(project, "repro", "-s", "resize", "--force", check=False)
        assert result.returncode != 0
        assert "error: data.root (MIMIC-CXR-JPG directory) not found: /nonexistent/mimic\n" in result.stderr
        assert "Traceback" not in result.stderr
        result = run(project, "repro", "filter_pa", check=False)
        assert result.returncode != 0 and "/nonexistent/mimic/mimic-cxr-2.0.0-metadata.csv.gz" in result.stderr
    finally:
        (project / "params.yaml").write_text(params)
