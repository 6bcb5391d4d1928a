"""Every param is checked before a stage starts: a wrong type or value ends the stage with one line that
names the param, the value and what is allowed, never a traceback and never half-done work."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_project import ROOT, stages

from cxrldm.params import RULES, ParamError, check, check_file

PROFILES = ["params.yaml", "configs/tiny.yaml", "configs/mimic.yaml"]


def leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def load(profile: str) -> dict:
    return yaml.safe_load((ROOT / profile).read_text())


def with_value(params: dict, dotted: str, value) -> dict:
    params = yaml.safe_load(yaml.safe_dump(params))
    *sections, name = dotted.split(".")
    node = params
    for section in sections:
        node = node[section]
    node[name] = value
    return params


def wrong_type(value):
    """A value of another type than the param's own: text for numbers, lists and booleans, a number
    for text (a list where a string or number may be null)."""
    if isinstance(value, str):
        return 12345
    if value is None:
        return ["not", "a", "number"]
    return "not-a-number"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_leaf_has_a_rule_and_every_profile_passes(profile):
    params = load(profile)
    names = [name for name, _ in leaves(params)]
    assert set(names) == set(RULES), "params.yaml and cxrldm/params.py must name the same params"
    check(params, names)


def stage_listing(dotted: str) -> str:
    return next(
        name
        for name, spec in stages().items()
        if dotted in spec.get("params", []) or f"${{{dotted}}}" in spec["cmd"] + " ".join(spec.get("deps", []))
    )


@pytest.mark.parametrize("dotted", [name for name, _ in leaves(load("params.yaml"))])
def test_a_wrong_type_in_any_param_is_one_line_from_the_stage_that_lists_it(dotted, tmp_path, monkeypatch, capsys):
    from stages.common import check_stage_params, run

    params = load("params.yaml")
    value = wrong_type(dict(leaves(params))[dotted])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value(params, dotted, value)))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    stage = stage_listing(dotted)
    ran = []
    with pytest.raises(SystemExit):
        run(lambda: ran.append(True), stage=stage)
    message = capsys.readouterr().err
    assert not ran, "the stage's work started before its params were checked"
    assert message.count("\n") == 1 and message.startswith(f"error: {dotted}: {value!r} is not allowed; expected ")
    with pytest.raises(ParamError):
        check_stage_params(stage)


BAD = [  # the values a new user tried (issue 13), and what the one line must say
    ("sample", "sample.steps", 0, "sample.steps: 0 is not allowed; expected an integer >= 1"),
    ("sample", "sample.guidance_scale", "x", "sample.guidance_scale: 'x' is not allowed; expected a number >= 0"),
    ("sample", "sample.n_per_prompt", 0, "sample.n_per_prompt: 0 is not allowed; expected an integer >= 1"),
    ("train_ldm", "train_ldm.lr", "fast", "train_ldm.lr: 'fast' is not allowed; expected a number > 0"),
    ("train_aekl", "train_aekl.batch_size", 0, "train_aekl.batch_size: 0 is not allowed; expected an integer >= 1"),
    (
        "train_aekl",
        "train_aekl.image_size",
        66,
        "expected an image size divisible by 2^(levels - 1), the autoencoder's downsampling",
    ),
    ("evaluate", "evaluate.ms_ssim_kernel", 4, "evaluate.ms_ssim_kernel=4: not allowed; expected an odd kernel size"),
]


@pytest.mark.parametrize("stage, dotted, value, expected", BAD, ids=[row[1] for row in BAD])
def test_the_reported_bad_values_are_refused_with_one_line(stage, dotted, value, expected):
    with pytest.raises(ParamError, match="^.*$") as error:
        check(with_value(load("params.yaml"), dotted, value), stages()[stage]["params"])
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("stage, dotted, value, expected", BAD[:2], ids=[row[1] for row in BAD[:2]])
def test_a_stage_process_stops_with_the_line_and_no_traceback(stage, dotted, value, expected, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value(load("params.yaml"), dotted, value)))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {expected}" and "Traceback" not in result.stderr
    assert not (Path(tmp_path) / "data").exists()


# Zero results where they make no sense are errors, before any output is written.


def test_an_empty_prompt_list_is_refused():
    from stages.sample import read_prompts

    with pytest.raises(ValueError, match="sample.prompts and sample.prompts_file hold no prompt"):
        read_prompts({"prompts": [], "prompts_file": ""})


def test_reports_without_any_text_are_refused_and_nothing_is_written(tmp_path, monkeypatch):
    import stages.extract_reports
    from cxrldm.data import tables

    (tmp_path / "data").mkdir()
    pd = pytest.importorskip("pandas")
    rows = [
        {
            "dicom_id": f"d{i}",
            "subject_id": 10000000 + i,
            "study_id": 50000000 + i,
            "split": "train",
            "path": f"files/p10/p1000000{i}/s5000000{i}/d{i}.jpg",
            "sha256": "",
        }
        for i in range(3)
    ]
    pd.DataFrame(rows)[tables.PA_COLUMNS].to_csv(tmp_path / "data" / "pa.csv", index=False)
    for row in rows:
        report = tmp_path / "reports" / "files" / "p10" / f"p{row['subject_id']}" / f"s{row['study_id']}.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("EXAMINATION:  CHEST (PA AND LAT)\n\nINDICATION:  ___ with cough\n")
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "data": {"format": "mimic", "root": ".", "reports": "reports", "index": "unused", "labels": "unused"},
                "extract_reports": {"prompt": "report", "template": "{findings}"},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no report text: none of the 3 studies has findings or impression"):
        stages.extract_reports.main()
    assert not (tmp_path / "data" / "reports.csv").exists()


# A key no rule knows (a typo edited into params.yaml by hand) stops whichever stage runs first, with the
# nearest known key; `dvc exp run -S` refuses such keys itself, the file did not.

TYPOS = [
    ("sample.guidance_scal", "sample.guidance_scale"),
    ("train_ldm.learning_rate", "train_ldm.lr"),
    ("sampel", "sample"),
    ("evaluate.prdc", "evaluate.prdc_k"),
    ("extra.section", None),
]


@pytest.mark.parametrize("typo, nearest", TYPOS, ids=[row[0] for row in TYPOS])
def test_an_unknown_key_is_refused_with_the_nearest_known_one(typo, nearest):
    from cxrldm.params import check_known

    params = load("params.yaml")
    if typo == "sampel":
        params[typo] = params.pop("sample")
    elif typo == "extra.section":
        params["extra"] = {"section": 1}
        typo = "extra"
    else:
        params = with_value(params, typo, {"k": 5} if typo == "evaluate.prdc" else 5)
    with pytest.raises(ParamError) as error:
        check_known(params)
    hint = f"; did you mean {nearest}?" if nearest else ""
    assert str(error.value) == f"{typo}: unknown key in params.yaml{hint}"


def test_a_typo_in_params_yaml_stops_the_first_stage_with_one_line(tmp_path):
    params = with_value(load("params.yaml"), "sample.guidance_scal", 5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "stages.demo_data"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: sample.guidance_scal: unknown key in params.yaml; did you mean sample.guidance_scale?"
    )
    assert not (tmp_path / "data").exists()


# DVC puts some params into dvc.yaml's dependency paths while parsing, before any stage's check runs, and
# stops at a null or empty one with "ERROR: unexpected error". `cxrldm check` (run by `make demo`) names it.

INTERPOLATED = sorted(set(re.findall(r"\$\{([\w.]+)\}", (ROOT / "dvc.yaml").read_text())))


def test_dvc_yaml_interpolates_the_data_paths():
    assert {"data.root", "data.labels", "data.demographics", "reader_study.answers"} <= set(INTERPOLATED)
    assert "sample.prompts_file" not in INTERPOLATED  # null means no extra prompts: configs/prompts/ is the dependency


@pytest.mark.parametrize("dotted", INTERPOLATED)
@pytest.mark.parametrize("empty", [None, "", "  "])
def test_cxrldm_check_names_an_empty_path_param_that_dvc_would_crash_on(dotted, empty, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value(load("params.yaml"), dotted, empty)))
    with pytest.raises(ParamError, match=f"^{re.escape(str(path))}: {re.escape(dotted)}: .* is not allowed"):
        check_file(str(path))


def test_cxrldm_check_passes_every_profile_and_refuses_in_one_line(tmp_path):
    def cxrldm_check(file):
        command = [sys.executable, "-m", "cxrldm", "check", str(file)]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    for profile in PROFILES:
        good = cxrldm_check(profile)
        assert good.returncode == 0 and good.stdout.strip() == f"{profile}: {len(RULES)} params allowed"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(with_value(load("params.yaml"), "sample.prompts_file", None)))
    assert cxrldm_check(bad).returncode == 0  # no extra prompts is allowed
    bad.write_text(yaml.safe_dump(with_value(load("params.yaml"), "data.demographics", "")))
    result = cxrldm_check(bad)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"cxrldm check: {bad}: data.demographics: '' is not allowed; expected a non-empty string"
    )
    bad.write_text("data: [unclosed\n")
    result = cxrldm_check(bad)
    assert result.returncode == 1 and result.stderr.startswith(f"cxrldm check: {bad}: cannot be read:")
    assert len(result.stderr.strip().splitlines()) == 1
