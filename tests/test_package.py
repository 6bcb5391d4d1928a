"""The package installs from the checkout and gives one `cxrldm` command that works from any directory.

The package is built as a wheel from a copy of what a checkout holds, then installed into a fresh virtual
environment that borrows the project's installed dependencies through a .pth file (installing PyTorch again
would take minutes) but holds its own copy of the package: the test fails if the build leaves out a module,
the app's static files, or the console script."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from PIL import Image
from pipeline_project import ROOT

pytestmark = pytest.mark.pipeline
PROMPT = "There is a large right pleural effusion."


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a new virtual environment into which `pip install .` put the checkout."""
    source, wheels, venv = (tmp_path_factory.mktemp(name) for name in ("source", "wheels", "venv"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "cxrldm", source / "cxrldm", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = wheels.glob("cxrldm-*.whl")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv / "bin"


def command(bin_dir: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [bin_dir / "cxrldm", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1", "PATH": f"{bin_dir}:{env['PATH']}"},
    )


def test_the_installed_command_lists_every_subcommand_from_another_directory(installed, tmp_path):
    from cxrldm.__main__ import COMMANDS

    result = command(installed, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert f"\n  {name} " in result.stdout
    where = subprocess.run(
        [installed / "python", "-c", "import cxrldm, cxrldm.app; print(cxrldm.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not where.startswith(str(ROOT)), f"the test imported the checkout, not the installed package: {where}"
    unknown = command(installed, "generat", cwd=tmp_path)
    assert unknown.returncode != 0 and "unknown command 'generat'; did you mean generate?" in unknown.stderr


HELP_OF_EVERY_COMMAND = """
import contextlib, io, sys
from cxrldm.__main__ import COMMANDS, main
for name in COMMANDS:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([name, "--help"])
    print(name, out.getvalue().startswith(f"usage: cxrldm {name}"))
"""


def test_every_subcommand_of_the_installed_package_answers_help(installed, tmp_path):
    result = subprocess.run(
        [installed / "python", "-c", HELP_OF_EVERY_COMMAND], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from cxrldm.__main__ import COMMANDS

    assert result.stdout.split("\n")[:-1] == [f"{name} True" for name in COMMANDS]


def test_the_installed_command_generates_from_the_tiny_models_in_another_directory(installed, tiny_project, tmp_path):
    result = command(
        installed,
        "generate",
        "--models",
        tiny_project / "models",
        "--prompt",
        PROMPT,
        "--n",
        "2",
        "--steps",
        "3",
        "--seed",
        "1",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    images = sorted((tmp_path / "out").glob("*.png"))
    assert len(images) == 2 and (tmp_path / "out" / "manifest.csv").is_file()
    assert Image.open(images[0]).mode == "L"
