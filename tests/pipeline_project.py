"""A throw-away copy of the project with a tiny profile, for tests that run dvc itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["cxrldm", "stages", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"]
TINY = {"demo_data": {"n_studies": 16, "min_side": 96}, "resize": {"size": 64}}


def env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1", "CXRLDM_WORKERS": "2", "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com"}


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dvc", *args] if args[0] != "git" else list(args)
    result = subprocess.run(command, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def set_params(project: Path, overrides: dict) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(target: Path, overrides: dict = TINY) -> Path:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    set_params(target, overrides)
    run(target, "git", "init", "-q")
    run(target, "init", "-q")
    run(target, "config", "core.analytics", "false")
    run(target, "git", "add", "-A")
    run(target, "git", "commit", "-qm", "tiny project")
    return target


def ran_stages(output: str) -> list[str]:
    """Stage names from dvc's "Running stage 'x':" lines."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]
