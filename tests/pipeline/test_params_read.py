"""Every stage lists in dvc.yaml exactly the params its code reads.

tiny_run (conftest.py) runs the whole tiny profile with CXRLDM_RECORD_PARAMS set, so each stage process
records the dotted params its code read (stages.common.RecordingParams). For every stage:

- required: its `params:` list and the `${...}` names in its deps. Each must be read by its code, else
  the listing is stale or sits on the wrong stage (e.g. sample.steps listed under evaluate).
- allowed: required plus the `${...}` names in its cmd (read by dvc, not the stage's code). Everything the code reads must be allowed, else a change of that param would
  leave the stage wrongly cached.

stage_fingerprint, which hashes every listed param, does not count as reading them.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from pipeline_project import ROOT, stages

from stages import common, resume
from stages.common import RecordingParams

INTERPOLATION = re.compile(r"\$\{([^}]+)\}")

# Listed params that the tiny profile's code path does not read; each must stay unread there (or go).
READ_ONLY_ON_ANOTHER_PATH: dict[str, str] = {}


def required_and_allowed(spec: dict) -> tuple[set, set]:
    deps = [dep for dep in spec.get("deps", []) if isinstance(dep, str)]
    required = set(spec.get("params", [])) | {name for dep in deps for name in INTERPOLATION.findall(dep)}
    return required, required | set(INTERPOLATION.findall(spec["cmd"]))


@pytest.mark.pipeline
def test_every_stage_lists_exactly_the_params_its_code_reads(tiny_run, params_read_dir):
    problems = []
    for stage, spec in stages().items():
        file = params_read_dir / f"{stage}.json"
        read = set(json.loads(file.read_text())) if file.exists() else set()
        required, allowed = required_and_allowed(spec)
        unlisted = sorted(read - allowed)
        unread = sorted(required - read - set(READ_ONLY_ON_ANOTHER_PATH))
        exempt_but_read = sorted(read & set(READ_ONLY_ON_ANOTHER_PATH))
        if unlisted:
            problems.append(f"{stage}: read but not listed in dvc.yaml: {unlisted}")
        if unread:
            problems.append(f"{stage}: listed in dvc.yaml but not read by its code: {unread}")
        if exempt_but_read:
            problems.append(f"{stage}: {exempt_but_read} read after all: drop from READ_ONLY_ON_ANOTHER_PATH")
    assert not problems, "params read vs listed per stage:\n" + "\n".join(problems)


def test_the_recording_view_records_each_leaf_it_hands_out():
    read = set()
    params = RecordingParams(
        {
            "a": {"x": 1, "y": [1, 2], "z": None, "deep": {"k": "v"}},
            "b": {"u": 2, "v": 3},
            "c": {"p": 1, "q": 2},
            "d": {"e": 5},
        },
        read,
    )
    section = params["a"]
    assert isinstance(section, dict) and isinstance(params, dict) and not read  # sections are no reads
    assert section["y"] == [1, 2] and section.get("z", 7) is None and section.get("missing", 7) == 7
    assert read == {"a.y", "a.z"}
    assert section["deep"]["k"] == "v" and "a.deep.k" in read
    assert (lambda **kw: kw)(**params["b"]) == {"u": 2, "v": 3} and {"b.u", "b.v"} <= read
    assert json.loads(json.dumps(params["c"])) == {"p": 1, "q": 2} and {"c.p", "c.q"} <= read
    assert params["d"] == {"e": 5} and "d.e" in read
    assert read == {"a.y", "a.z", "a.deep.k", "b.u", "b.v", "c.p", "c.q", "d.e"}  # a.x never handed out


def test_recording_is_off_without_the_variable_and_merged_over_processes(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"s": {"one": 1, "two": 2, "three": 3}}))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"fake": {"cmd": "x", "params": ["s.three"]}}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(common.RECORD_ENV, raising=False)
    assert type(common.load_params()) is dict
    monkeypatch.setenv(common.RECORD_ENV, str(tmp_path / "read"))
    before = set(common._read)
    resume.stage_fingerprint("fake")  # hashing listed params is no read
    assert common._read == before
    script = tmp_path / "fake_stage.py"
    script.write_text("import sys\nfrom stages.common import load_params\nload_params()['s'][sys.argv[1]]\n")
    for key in ("one", "two"):  # one stage, two processes
        subprocess.run(
            [sys.executable, str(script), key], check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    assert json.loads((tmp_path / "read" / "fake_stage.json").read_text()) == ["s.one", "s.two"]
