"""A training checkpoint is resumed only by the run it belongs to: stage_fingerprint over params, deps
and what `auto` settings resolved to."""

import yaml

from stages.resume import stage_fingerprint

DVC_YAML = {"stages": {"train": {"cmd": "python -m stages.train", "deps": ["code.py", "${data.root}/table.csv"],
                                 "params": ["train.lr", "data.root"]}}}


def project(tmp_path, lr=0.1, other=1, code="x = 1\n", table="a,b\n"):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": lr, "other": other},
                                                          "data": {"root": "data"}}))
    (tmp_path / "code.py").write_text(code)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "table.csv").write_text(table)
    return stage_fingerprint("train", resolved="precision=fp32")


def test_fingerprint_follows_listed_params_deps_and_resolved_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = project(tmp_path)
    assert project(tmp_path) == base                              # same inputs, same run
    assert project(tmp_path, other=2) == base                     # a param the stage does not list
    assert project(tmp_path, lr=0.2) != base
    assert project(tmp_path, code="x = 2\n") != base
    assert project(tmp_path, table="a,b\n1,2\n") != base          # a dep found through a param
    project(tmp_path)
    assert stage_fingerprint("train", resolved="precision=bf16") != base
