"""Every shell command in README.md and docs/*.md runs here, or is marked in its page as not run, with the
reason (the convention: docs/tests.md#commands-in-the-docs).

A command is a line of a code block (indented by four spaces, or fenced without a language or as sh, bash,
shell or console) whose first word, after `NAME=value` assignments, is one of PROGRAMS (a path ending in
one counts too: `.venv/bin/mutmut`); a trailing `\\` joins the next line, a `# comment` is dropped. A block
with one command holds only commands, so a new program's line is not skipped unseen. Each page's runnable
commands run in order, as typed, in a fresh copy of the tiny project (one per page; each code block starts
in its root with the committed files): `cxrldm ...` and `dvc ...` inside this process, the rest through
bash. `dvc repro` runs with `--dry`; `dvc exp run` runs with `--queue`, which checks what a typo breaks
(the `-S` values through Hydra's override grammar, param and stage names) and only stashes the experiment.
The reader's paths and placeholders become the test's through SUBSTITUTE alone."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from dicom_files import radiograph, save
from PIL import Image
from pipeline_project import ROOT, env, pristine_copy, run

pytestmark = [
    pytest.mark.pipeline,  # dvc's own, from running it in this process:
    pytest.mark.filterwarnings("ignore:_NoneStep.value will soon raise:DeprecationWarning"),
]

PAGES = ["README.md", *sorted(f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md"))]
PROGRAMS = {
    "dvc",
    "cxrldm",
    "python",
    "python3",
    "pytest",
    "make",
    "git",
    "pip",
    "source",
    "bash",
    "sh",
    "sbatch",
    "srun",
    "torchrun",
    "export",
    "apt-get",
    "npm",
    "validate_iods",
    "curl",
    "wget",
    "ls",
    "cat",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "cd",
    "hf",
    "huggingface-cli",
    "chromium",
    "mutmut",
    "docker",
    "conda",
    "uv",
}
SHELL_FENCES = {"", "sh", "bash", "shell", "console"}
# Right above a code block (blank lines between allowed): the whole block, or only its commands that start
# with the quoted text, is not run, for the reason given.
MARKER = re.compile(r"<!-- not run by the tests(?:, `(?P<prefix>[^`]+)`)?: (?P<reason>\S.*?) -->")
# Commands this test never runs: marked they must be (make's targets build the virtualenv or run the demo).
NEVER_RUN = (
    "make",
    "pip",
    "sbatch",
    "srun",
    "torchrun",
    "wget",
    "curl",
    "apt-get",
    "npm",
    "hf",
    "huggingface-cli",
    "docker",
    "conda",
    "dvc queue start",
    "cxrldm app",
    "mutmut",
    ".venv/bin/mutmut",
)
# The reader's paths and placeholders, as the test has them: {tmp} a temporary folder, {project} the copy.
SUBSTITUTE = {
    "/data/hospital": "{tmp}/hospital",  # a folder of DICOM films written by the test
    "/tmp/cxrldm-remote": "{tmp}/remote",
    "git clone <this repo> elsewhere && cd elsewhere": "git clone {project} {tmp}/elsewhere && cd {tmp}/elsewhere",
    "--real 20 --synthetic 20": "--real 2 --synthetic 2",  # the tiny profile has fewer test films
    "source .venv/bin/activate": "source {venv}/bin/activate",  # the virtualenv this test runs in
}
PLACEHOLDER = re.compile(r"<[A-Za-z][^<>]*>|\.\.\.")  # <this repo>, ...: substitute or mark
# Files the docs' commands read from the working directory, written into each copy by inputs().
INPUTS = ("film.png", "film.dcm", "edit_mask.png", "keep_mask.png", "devices.png")


@dataclass
class Command:
    page: str
    line: int
    text: str
    reason: str | None  # why it is not run, from the marker; None: it runs
    block: int  # line of the block's first line

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def strip_comment(line: str) -> str:
    """The line without a `# comment` (a # outside quotes, at the start or after a blank)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def argv_of(text: str) -> list[str]:
    """The words after NAME=value assignments."""
    rest = words(text)
    while rest and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", rest[0]):
        rest.pop(0)
    return rest


def program(text: str) -> str:
    return (argv_of(text) or [""])[0]


def never_run(segment: str) -> bool:
    argv = argv_of(segment)
    return any(argv[: len(never.split())] == never.split() for never in NEVER_RUN)


def is_command(text: str) -> bool:
    return program(text).rsplit("/", 1)[-1] in PROGRAMS


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def code_blocks(lines: list[str]):
    """(line number of the first line, [(line number, text)], the marker lines above it) for each code block
    a shell command may be in."""
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([\w-]*)", line)
        if fence:
            indent, ticks, info = fence.groups()
            j, body = i + 1, []
            while j < len(lines) and not lines[j].strip().startswith(ticks):
                body.append((j + 1, lines[j][len(indent) :]))
                j += 1
            if info.lower() in SHELL_FENCES:
                yield i + 2, body, markers_above(lines, i)
            i = j + 1
            continue
        indent = indentation(line)
        after_break = i == 0 or not lines[i - 1].strip() or MARKER.fullmatch(lines[i - 1].strip())
        if line.strip() and indent >= 4 and after_break:
            j, body = i, []
            while j < len(lines) and (not lines[j].strip() or indentation(lines[j]) >= indent):
                body.append((j + 1, lines[j][indent:]))
                j += 1
            yield i + 1, body, markers_above(lines, i)
            i = j
            continue
        i += 1


def markers_above(lines: list[str], start: int) -> list[tuple[int, str | None, str]]:
    found, k = [], start - 1
    while k >= 0 and (not lines[k].strip() or MARKER.fullmatch(lines[k].strip())):
        if lines[k].strip():
            marker = MARKER.fullmatch(lines[k].strip())
            found.append((k + 1, marker["prefix"], marker["reason"]))
        k -= 1
    return found


def logical_lines(body: list[tuple[int, str]]):
    """(line number, text) with comments dropped and `\\` continuations joined; blank and comment-only lines
    are left out."""
    start, parts = None, []
    for number, text in body:
        text = strip_comment(text)
        if not text.strip() and not parts:
            continue
        start = start or number
        if text.endswith("\\"):
            parts.append(text[:-1].strip())
            continue
        parts.append(text.strip())
        yield start, " ".join(part for part in parts if part)
        start, parts = None, []
    if parts:
        yield start, " ".join(parts)


def page_commands(page: str) -> tuple[list[Command], list[str]]:
    """The page's commands, and what is wrong with its markers and command blocks."""
    lines = (ROOT / page).read_text().splitlines()
    commands, problems = [], []
    for first, body, markers in code_blocks(lines):
        entries = list(logical_lines(body))
        found = [(number, text) for number, text in entries if is_command(text)]
        if not found:
            problems += [f"{page}:{line}: a marker above a code block without commands" for line, _, _ in markers]
            continue
        problems += [
            f"{page}:{number}: not a command in a block of commands (a new program? add it to PROGRAMS): {text}"
            for number, text in entries
            if not is_command(text)
        ]
        whole = [reason for _, prefix, reason in markers if prefix is None]
        for number, text in found:
            reasons = whole + [reason for _, prefix, reason in markers if prefix and text.startswith(prefix)]
            commands.append(Command(page, number, text, reasons[0] if reasons else None, first))
        for line, prefix, _ in markers:
            if prefix and not any(text.startswith(prefix) for _, text in found):
                problems.append(f"{page}:{line}: the marker's `{prefix}` starts no command of its block")
    return commands, problems


def all_commands() -> list[Command]:
    return [command for page in PAGES for command in page_commands(page)[0]]


def segments(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"\s&&\s", text)]


def names_what_exists(segment: str) -> str | None:
    """What a command names that this checkout lacks (checked for marked commands too): a cxrldm command,
    a python script, a make target."""
    argv = argv_of(segment)
    name = argv[0] if argv else ""
    if name == "cxrldm" and len(argv) > 1 and not argv[1].startswith("-"):
        from cxrldm.__main__ import COMMANDS

        return None if argv[1] in COMMANDS else f"no cxrldm command {argv[1]!r}"
    if name in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py"):
        return None if (ROOT / argv[1]).is_file() else f"no script {argv[1]}"
    if name == "make":
        targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))
        missing = [arg for arg in argv[1:] if "=" not in arg and not arg.startswith("-") and arg not in targets]
        return f"no make target {missing[0]}" if missing else None
    return None


# ---------------------------------------------------------------------------------------------------------
# The pages as written: extraction and markers (fast; no project needed)


def test_every_page_marks_its_commands_soundly():
    problems, commands = [], []
    for page in PAGES:
        found, wrong = page_commands(page)
        commands += found
        problems += wrong
    for command in commands:
        problems += [
            f"{command}: {missing}" for segment in segments(command.text) if (missing := names_what_exists(segment))
        ]
        if command.reason is None and any(never_run(segment) for segment in segments(command.text)):
            problems.append(f"{command}: the tests cannot run this; mark it (docs/tests.md#commands-in-the-docs)")
    assert not problems, "\n".join(problems)
    assert len(commands) > 50 and sum(command.reason is None for command in commands) > 30, len(commands)


def test_the_extraction_rules():
    page = [
        "Text:",
        "",
        "    dvc exp run -S 'a={x} y' \\",
        "        -S b=2   # a comment",
        "    # a comment line",
        '    cxrldm generate --prompt "a # not a comment" --n 1',
        "",
        "<!-- not run by the tests: GPU -->",
        "",
        "    torchrun -m x",
        "",
        "<!-- not run by the tests, `make app`: serves until stopped -->",
        "    make app",
        "    cxrldm summary x",
        "",
        "```python",
        "import os",
        "```",
        "",
        "    data/demo/files/x.jpg    a layout, not commands",
        "",
        '    CXRLDM_LAUNCH="torchrun --standalone" dvc repro',
    ]
    blocks = list(code_blocks(page))
    found = [
        (number, text, markers)
        for first, body, markers in blocks
        for number, text in logical_lines(body)
        if is_command(text)
    ]
    assert [(number, text) for number, text, _ in found] == [
        (3, "dvc exp run -S 'a={x} y' -S b=2"),
        (6, 'cxrldm generate --prompt "a # not a comment" --n 1'),
        (10, "torchrun -m x"),
        (13, "make app"),
        (14, "cxrldm summary x"),
        (22, 'CXRLDM_LAUNCH="torchrun --standalone" dvc repro'),
    ]
    assert found[2][2] == [(8, None, "GPU")] and found[3][2] == [(12, "make app", "serves until stopped")]
    assert not found[0][2] and not found[5][2]


# ---------------------------------------------------------------------------------------------------------
# Running them


def inputs(project: Path, tmp: Path) -> None:
    """The files the docs' commands name: a film as PNG and DICOM, masks, a hospital's DICOM folder."""
    film = sorted((project / "data" / "resized" / "files").rglob("*.png"))[0]  # a demo film, resized
    pixels = np.asarray(Image.open(film).convert("L"))
    Image.fromarray(pixels).save(project / "film.png")
    save(radiograph(np.ascontiguousarray(pixels), ViewPosition="PA"), project / "film.dcm")
    height, width = pixels.shape
    mask = np.zeros_like(pixels)
    mask[height // 2 :, : width // 2] = 255  # the patient's right lower zone
    Image.fromarray(mask).save(project / "edit_mask.png")
    keep = np.zeros_like(pixels)
    keep[: height // 8, : width // 8] = 255
    for name in ("keep_mask.png", "devices.png"):
        Image.fromarray(keep).save(project / name)
    for patient in range(3):
        folder = tmp / "hospital" / f"P{patient}" / "1"
        folder.mkdir(parents=True)
        save(
            radiograph(
                np.ascontiguousarray(pixels),
                PatientID=f"MRN{patient}",
                ViewPosition="PA",
                PatientSex="MF"[patient % 2],
                PatientAge=f"0{50 + patient}Y",
            ),
            folder / "pa.dcm",
        )


def substitute(text: str, tmp: Path, project: Path) -> str:
    for doc, ours in SUBSTITUTE.items():
        text = text.replace(doc, ours.format(tmp=tmp, project=project, venv=sys.prefix))
    return text


def rehearse(segment: str) -> str:
    """`dvc repro` with --dry; `dvc exp run` with --queue, which applies the -S values (Hydra's override
    grammar, names that params.yaml has) and checks the targets, then only stashes the experiment (--dry
    does not serve: DVC runs it in a temporary folder without the outputs, where every stage fails)."""
    argv = words(segment)
    if "--queue" in argv or "--dry" in argv:
        return segment
    segment = re.sub(r"\bdvc repro\b", "dvc repro --dry", segment, count=1)
    return re.sub(r"\bdvc exp run\b", "dvc exp run --queue", segment, count=1)


class BriefFormatter(logging.Formatter):
    """dvc's errors as one line each: `ERROR: message: the exception`, without the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        parts = (record.getMessage(), error, error and error.__cause__)
        return f"{record.levelname}: " + ": ".join(str(part) for part in parts if part)


def here(argv: list[str], cwd: Path) -> tuple[int, str]:
    """`cxrldm ...` or `dvc ...` inside this process (no interpreter, PyTorch or DVC start-up: seconds a
    command), in cwd, on one thread (two threads of a tiny network on two busy cores spin for minutes)."""
    import torch

    if argv[0] == "dvc":
        from dvc.cli import main
    else:
        from cxrldm.__main__ import main
    before, saved_argv, threads, output, code = os.getcwd(), sys.argv[:], torch.get_num_threads(), io.StringIO(), 0
    saved_environ = dict(os.environ)
    os.environ.update(env())  # what a subprocess would get: git's identity, PATH
    dvc_log = logging.StreamHandler(output)  # dvc's handlers hold the streams of its import
    dvc_log.setFormatter(BriefFormatter())
    logging.getLogger("dvc").addHandler(dvc_log)
    os.chdir(cwd)
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = main(argv[1:]) or 0
    except SystemExit as stop:
        if isinstance(stop.code, str):
            output.write(stop.code + "\n")
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    except Exception:
        output.write(traceback.format_exc())
        code = 1
    finally:
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(saved_environ)
        os.chdir(before)
        sys.argv = saved_argv
        logging.getLogger("dvc").removeHandler(dvc_log)
    return code, re.sub(r"\x1b\[[0-9;]*m", "", output.getvalue())


def run_command(text: str, cwd: Path, project: Path, tmp: Path) -> tuple[Path, int, str]:
    """Run one documented command line: its `&&` parts in order, stopping at the first failure."""
    output, text = "", substitute(text, tmp, project)
    if PLACEHOLDER.search(text):
        return cwd, 1, f"a placeholder ({PLACEHOLDER.search(text)[0]}): add it to SUBSTITUTE or mark the command"
    for segment in segments(text):
        argv = words(segment)
        if argv[0] == "cd":
            cwd = (cwd / Path(argv[1]).expanduser()).resolve()
            continue
        if never_run(segment):
            return cwd, 1, f"$ {segment}\nnot run: the tests cannot run this; mark it (docs/tests.md)"
        segment = rehearse(segment)
        if argv[0] in ("cxrldm", "dvc") and not re.search(r"[$*?~|<>;`]", segment):
            code, out = here(words(segment), cwd)
        else:
            shell_env = {**env(), "PYTHONPATH": str(ROOT)}  # the venv's cxrldm imports this checkout
            try:
                done = subprocess.run(
                    ["bash", "-c", segment], cwd=cwd, env=shell_env, capture_output=True, text=True, timeout=300
                )
                code, out = done.returncode, done.stdout + done.stderr
            except subprocess.TimeoutExpired:
                code, out = 124, "timed out after 300 s"
        output += f"$ {segment}\n{out}"
        if code:
            return cwd, code, output
    return cwd, 0, output


@pytest.fixture(scope="module")
def docs_base(tiny_project, tmp_path_factory):
    """The tiny project as committed, with a branch `main` (the docs compare against it) and the checkout's
    tests/ and benchmarks/ beside it (the docs run scripts from there)."""
    base = pristine_copy(tiny_project, tmp_path_factory.mktemp("docs") / "project")
    run(base, "git", "branch", "-f", "main")
    for name in ("tests", "benchmarks"):
        (base / name).symlink_to(ROOT / name)
    with open(base / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("\n/tests\n/benchmarks\n" + "".join(f"/{name}\n" for name in INPUTS))
    return base


def fresh_start(project: Path) -> None:
    """Where each code block starts: the project root with its files as committed and no queued experiments
    (an earlier block's would slow every `dvc exp show` down): DVC keeps them as stash commits under
    refs/exps/celery/stash and messages in .dvc/tmp/exps/celery, both gone as in a fresh clone."""
    run(project, "git", "checkout", "-q", "--", ".")
    run(project, "git", "update-ref", "-d", "refs/exps/celery/stash")
    shutil.rmtree(project / ".dvc" / "tmp" / "exps" / "celery", ignore_errors=True)


RUNNABLE = [page for page in PAGES if any(command.reason is None for command in page_commands(page)[0])]


@pytest.mark.parametrize("page", RUNNABLE)
def test_the_commands_of_each_page_run(page, docs_base, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(docs_base, project, symlinks=True)
    inputs(project, tmp_path)
    failures, block, cwd = [], None, project
    for command in page_commands(page)[0]:
        if command.block != block:
            block, cwd = command.block, project
            fresh_start(project)
        if command.reason is not None:
            continue
        cwd, code, output = run_command(command.text, cwd, project, tmp_path)
        if code:
            failures.append(
                f"{command}\n  exit {code}:\n" + "\n".join("    " + line for line in output.strip().splitlines()[-15:])
            )
    assert not failures, f"{len(failures)} documented commands fail:\n" + "\n".join(failures)
