import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small demo dataset, generated once per test session."""
    from cxrldm.demo import dataset as demo

    root = tmp_path_factory.mktemp("demo")
    demo.generate(root, n_studies=24, seed=3, min_side=96, workers=1)
    return root


@pytest.fixture(scope="session")
def params_read_dir(tmp_path_factory):
    """Where tiny_run's stages record the params their code read, one <stage>.json each (see
    stages.common.RecordingParams); outside the project, so dvc and git never see it."""
    return tmp_path_factory.mktemp("params_read")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, params_read_dir):
    """A git + DVC copy of the project on the tiny profile after one full `dvc repro`, committed."""
    from pipeline_project import commit, make_project, run

    prebuilt = os.environ.get("CXRLDM_TINY_PROJECT")  # scripts/mutation.sh builds one for all mutants
    if prebuilt:
        return Path(prebuilt), ""
    project = make_project(tmp_path_factory.mktemp("tiny_project"))
    log = run(project, "repro", extra_env={"CXRLDM_RECORD_PARAMS": str(params_read_dir)}).stdout
    commit(project, "tiny run")
    return project, log


@pytest.fixture(scope="session")
def tiny_project(tiny_run):
    return tiny_run[0]


@pytest.fixture(scope="session")
def tiny_project_log(tiny_run):
    return tiny_run[1]
