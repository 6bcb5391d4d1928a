"""The benchmark scripts run end to end at toy sizes, so a library change that breaks one shows up here
(their timings are not checked; they are the benchmarks' business). Each runs as `python benchmarks/X.py`
would, inside this process (runpy), which spares an interpreter and MONAI start-up per script."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")

CASES = {
    "resize_speed": (["--n", "2"], ["draft decode + Lanczos (ours)", "speed-up:"]),
    "aekl_step": (
        ["--seed-size", "32", "--seed-batch", "1", "--steps", "1", "--precisions", "fp32"],
        ["| demo (params.yaml) |", "| seed @32px | 4.61 M |"],
    ),
    "ldm_step": (["--profile", TINY, "--steps", "1"], ["cached once by the scale_factor stage (ours)", "speed-up:"]),
    "seed_flops": (
        ["--profile", TINY, "--images", "100", "--tflops", "1"],
        ["| train_aekl |", "| train_ldm |", "GPU-hours at 1 TFLOP/s"],
    ),
    "gpu_smoke": (
        [
            "--profile",
            TINY,
            "--precisions",
            "fp32",
            "--steps",
            "1",
            "--ae-batch",
            "1",
            "--ldm-batch",
            "1",
            "--sample-batch",
            "1",
            "--sample-steps",
            "1",
            "--device",
            "cpu",
        ],
        ["| train_aekl step | fp32 | 1 |", "| train_ldm step | fp32 | 1 |", "| sampling, 1 DDIM steps"],
    ),
    "memorisation_audit": (["--quick"], ["chunked exact search (ours)", "PROJECTION (not measured)"]),
    "privacy_training": (
        ["--profile", TINY, "--epochs", "1", "--films", "64"],
        ["| default (contiguous) |", "| channels-last (train_privacy) |", "speed-up:"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_prints_its_table(name, tmp_path, monkeypatch, capsys):
    args, expected_rows = CASES[name]
    script = ROOT / "benchmarks" / f"{name}.py"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(script.parent))  # as `python benchmarks/X.py` puts its folder first
    try:
        with torch.random.fork_rng():  # the scripts seed torch: keep that to themselves
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        assert stop.code in (None, 0), f"{name} exited with {stop.code}"
    printed = capsys.readouterr().out
    for row in expected_rows:
        assert row in printed, printed


def test_stage_times_splits_dvc_repro_output_at_each_running_stage_line(capsys):
    """A fake clock ticks once per call: each stage gets the ticks from its "Running stage" line to the next."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from stage_times import stage_seconds
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    ticks = iter([0.0, 2.0, 5.0, 11.0, 11.5, 13.0])
    lines = [
        "Verifying data sources\n",
        "Running stage 'demo_data':\n",
        "> python -m stages.demo_data\n",
        "Running stage 'train_ldm':\n",
        "epoch 1\n",
        "Stage 'sample' is cached - skipping run, checking out outputs\n",
        "Running stage 'evaluate':\n",
        "done\n",
    ]
    stages, total = stage_seconds(lines, clock=lambda: next(ticks))
    assert (
        stages
        == [
            ("demo_data", "ran", 3.0),
            ("train_ldm", "ran", 6.0),
            ("sample", "skipped or restored", 0.5),
            ("evaluate", "ran", 1.5),
        ]
        and total == 13.0
    )
    assert "epoch 1" in capsys.readouterr().out


def test_app_threads_times_both_thread_choices_under_each_load(tiny_project, monkeypatch, capsys):
    script = ROOT / "benchmarks" / "app_threads.py"
    models = str(tiny_project / "models")
    args = ["--models", models, "--images", "1", "--steps", "2", "--repeats", "1", "--loads", "0", "1"]
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    with torch.random.fork_rng():
        runpy.run_path(str(script), run_name="__main__")
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line[:3] in ("| 0", "| 1")]
    assert [(r[0], r[1].split(" (")[1]) for r in rows] == [
        ("| 0", "before)"),
        ("| 0", "after)"),
        ("| 1", "before)"),
        ("| 1", "after)"),
    ]
    assert all(float(r[2]) > 0 for r in rows)
