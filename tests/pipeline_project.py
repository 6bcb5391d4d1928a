"""A throw-away copy of the project running the tiny profile (configs/tiny.yaml), for tests that run dvc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["cxrldm", "stages", "configs", "scripts", "dvc.yaml", ".dvcignore", ".gitignore"]


def env() -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "CXRLDM_WORKERS": "2",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def run(cwd: Path, *args: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """`dvc ARGS` (or `git ...` when the first arg is git) in the project; extra_env adds to env()."""
    command = list(args) if args[0] == "git" else [sys.executable, "-m", "dvc", *args]
    result = subprocess.run(command, cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def set_param(project: Path, dotted: str, value) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    *sections, leaf = dotted.split(".")
    node = params
    for section in sections:
        node = node[section]
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(target: Path) -> Path:
    """A git + DVC repository holding the project's code with configs/tiny.yaml as params.yaml."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    shutil.copy(ROOT / "configs" / "tiny.yaml", target / "params.yaml")
    # no reader study's answers, whatever this checkout's local study holds: the header alone
    from cxrldm.evaluation.reader_study import COLUMNS

    (target / "reader_study").mkdir()
    (target / "reader_study" / "answers.csv").write_text(",".join(COLUMNS) + "\n")
    run(target, "git", "init", "-q")
    run(target, "init", "-q")
    run(target, "config", "core.analytics", "false")
    shutil.copy(ROOT / ".dvc" / "plots_offline.html", target / ".dvc" / "plots_offline.html")
    run(target, "config", "plots.html_template", "plots_offline.html")
    commit(target, "tiny project")
    return target


def commit(project: Path, message: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", message, "--allow-empty")


def ran_stages(output: str) -> list[str]:
    """Stage names from dvc's "Running stage 'x':" lines."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def pristine_copy(project: Path, target: Path) -> Path:
    """A private copy of a committed project as its last commit left it: other tests may have changed the
    shared project's workspace (params, an `exp run`, a failed stage whose outputs dvc removed first)."""
    shutil.copytree(project, target, symlinks=True)
    run(target, "git", "reset", "-q", "--hard")
    run(target, "checkout", "--force", "--quiet")
    return target


def run_cli(module: str, *args, cwd: Path):
    """`python -m cxrldm.cli.<module> ARGS` inside this process (no interpreter or MONAI start-up, about 5 s a
    call), with sys.argv, the working directory and what it prints as the command line would have them:
    returncode 0, or the SystemExit's (1 for a message, which then ends stderr), stdout and stderr."""
    import contextlib
    import importlib
    import io
    from types import SimpleNamespace

    main = importlib.import_module(f"cxrldm.cli.{module}").main
    argv, before, out, err = sys.argv, os.getcwd(), io.StringIO(), io.StringIO()
    sys.argv = [f"python -m cxrldm.cli.{module}", *map(str, args)]
    os.chdir(cwd)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main([str(a) for a in args])
    except SystemExit as stop:
        if isinstance(stop.code, str):
            err.write(stop.code + "\n")
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(before)
        sys.argv = argv
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
