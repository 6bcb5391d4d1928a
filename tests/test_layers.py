"""The import layers of pyproject.toml hold, and the tool that checks them (`lint-imports`, run by `make test`)
catches an upward import and a cycle: both are planted in a copy of the code and must go red."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_project import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def code_copy(tmp_path) -> Path:
    for folder in ("cxrldm", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=folder, capture_output=True, text=True, env=env)


def plant(file: Path, line: str) -> None:
    text = file.read_text()
    head, _, tail = text.partition("\nfrom ")
    file.write_text(f"{head}\n{line}\nfrom {tail}")


def test_the_layers_and_acyclic_contracts_hold_on_the_code(code_copy):
    result = lint_imports(code_copy)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_upward_import_is_caught(code_copy):
    plant(code_copy / "cxrldm" / "models" / "networks.py", "from cxrldm.evaluation import similarity")
    result = lint_imports(code_copy)
    assert result.returncode != 0
    assert "cxrldm.models is not allowed to import cxrldm.evaluation" in result.stdout
    assert "cxrldm.models.networks -> cxrldm.evaluation.similarity" in result.stdout


def test_an_import_between_siblings_of_one_layer_is_caught(code_copy):
    plant(code_copy / "cxrldm" / "sampling" / "guidance.py", "from cxrldm.evaluation import intervals")
    result = lint_imports(code_copy)
    assert result.returncode != 0
    assert "cxrldm.sampling is not allowed to import cxrldm.evaluation" in result.stdout


def test_a_cycle_inside_a_package_is_caught(code_copy):
    plant(code_copy / "cxrldm" / "data" / "layout.py", "from cxrldm.data import tables")  # tables imports layout
    result = lint_imports(code_copy)
    assert result.returncode != 0
    assert "No cycles are allowed in cxrldm.data." in result.stdout
