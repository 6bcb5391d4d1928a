"""A training checkpoint is resumed only by the run it belongs to: stage_fingerprint over params, deps
and what `auto` settings resolved to."""

import yaml

from stages.resume import stage_fingerprint

DVC_YAML = {
    "stages": {
        "train": {
            "cmd": "python -m stages.train",
            "deps": ["code.py", "${data.root}/table.csv"],
            "params": ["train.lr", "data.root"],
        }
    }
}


def project(tmp_path, lr=0.1, other=1, code="x = 1\n", table="a,b\n"):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"train": {"lr": lr, "other": other}, "data": {"root": "data"}})
    )
    (tmp_path / "code.py").write_text(code)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "table.csv").write_text(table)
    return stage_fingerprint("train", resolved="precision=fp32")


def test_fingerprint_follows_listed_params_deps_and_resolved_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = project(tmp_path)
    assert project(tmp_path) == base  # same inputs, same run
    assert project(tmp_path, other=2) == base  # a param the stage does not list
    assert project(tmp_path, lr=0.2) != base
    assert project(tmp_path, code="x = 2\n") != base
    assert project(tmp_path, table="a,b\n1,2\n") != base  # a dep found through a param
    project(tmp_path)
    assert stage_fingerprint("train", resolved="precision=bf16") != base


def test_a_training_stage_starts_fresh_or_resumes_its_own_checkpoint(tmp_path, monkeypatch):
    """start_or_resume: a fresh start clears DVCLive's folder; a checkpoint of the same run (fingerprint over the
    precision and the starting weights' content) resumes and DVCLive keeps only the epochs up to it."""
    from types import SimpleNamespace

    import pytest
    import torch

    from stages.resume import start_or_resume

    monkeypatch.chdir(tmp_path)
    project(tmp_path)
    runtime, checkpoint, live = (
        SimpleNamespace(precision="fp32", is_main=True),
        tmp_path / "ckpt" / "last.pt",
        tmp_path / "live",
    )

    def logged(epochs=3):
        (live / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
        (live / "plots" / "metrics" / "loss.tsv").write_text(
            "step\tloss\n" + "".join(f"{e}\t0.{e}\n" for e in range(epochs + 1))
        )
        (live / "plots" / "images").mkdir(parents=True, exist_ok=True)
        for e in range(1, epochs + 1):
            (live / "plots" / "images" / f"epoch_{e:04d}.png").write_bytes(b"")

    logged()
    fingerprint, resuming = start_or_resume(
        "train", "", tmp_path / "model.safetensors", runtime, checkpoint, live, "train.init_from"
    )
    assert fingerprint == stage_fingerprint("train", resolved="precision=fp32;init_from=") and not resuming
    assert not live.exists()

    logged()
    checkpoint.parent.mkdir()
    torch.save({"fingerprint": fingerprint, "epoch": 1}, checkpoint)
    assert start_or_resume("train", "", tmp_path / "model.safetensors", runtime, checkpoint, live, "p") == (
        fingerprint,
        True,
    )
    assert (live / "plots" / "metrics" / "loss.tsv").read_text() == "step\tloss\n0\t0.0\n1\t0.1\n"
    assert [p.name for p in (live / "plots" / "images").iterdir()] == ["epoch_0001.png"]

    (tmp_path / "start.safetensors").write_bytes(b"weights")  # another start: another run
    other, resuming = start_or_resume(
        "train", "start.safetensors", tmp_path / "model.safetensors", runtime, checkpoint, live, "train.init_from"
    )
    assert other != fingerprint and not resuming
    (tmp_path / "start.safetensors").write_bytes(b"other weights")
    assert (
        start_or_resume("train", "start.safetensors", tmp_path / "model.safetensors", runtime, checkpoint, live, "p")[0]
        != other
    )
    with pytest.raises(SystemExit):  # its own output as the start
        start_or_resume("train", "model.safetensors", tmp_path / "model.safetensors", runtime, checkpoint, live, "p")


def test_an_epoch_s_metrics_go_to_dvclive_but_its_seconds(capsys):
    from stages.resume import log_metrics, print_epoch

    class Live:
        step, logged = None, []

        def log_metric(self, name, value):
            self.logged.append((self.step, name, value))

    live = Live()
    log_metrics(live, 3, {"loss": 0.5, "seconds": 12.0, "lr": 1e-4})
    assert live.step == 3 and live.logged == [(3, "loss", 0.5), (3, "lr", 1e-4)]
    print_epoch(3, {"loss": 0.5, "seconds": 12.0})
    assert capsys.readouterr().out == "epoch 3: loss 0.5, seconds 12\n"
