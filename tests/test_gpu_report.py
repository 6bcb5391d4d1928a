"""benchmarks/gpu_report.py --toy runs every item of the GPU report on the CPU at tiny sizes: each row of the
table is there, and the JSON holds the same. (The numbers are the benchmark's business.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (start of a table row, how many rows start so)
ROWS = [
    ("| bf16 matmul |", 1),
    ("| train_ldm | reference:", 2),  # the fixed batch and the largest
    ("| train_ldm | ours:", 4),  # SDPA, + channels-last, + torch.compile, the largest (eager)
    ("| train_ldm speed-up |", 2),  # at the fixed batch, at the largest batches
    ("| train_aekl | fp32,", 2),
    ("| train_aekl | bf16,", 2),
    ("| sampling | DDIM", 2),
]
SUMMARY = {
    "matmul_bf16_tflops",
    "unet_train_gflop_per_image",
    "sdpa_kernels",
    "train_ldm_picked",
    "train_ldm_speedup",
    "train_ldm_largest_batch",
    "train_ldm_speedup_largest",
    "train_aekl_largest_batch",
    "sampling_largest_batch",
}


def gpu_report(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_report.py"), "--toy", *args],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_toy_report_has_every_row_in_the_table_and_the_json(tmp_path):
    result = gpu_report(tmp_path, "--json", "report.json")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| item")]
    for start, count in ROWS:
        assert sum(line.startswith(start) for line in table) == count, (start, result.stdout)
    assert len(table) == sum(count for _, count in ROWS), result.stdout
    assert sum("largest that fits" in line for line in table) == 5, result.stdout
    assert "| picked |" in result.stdout or "; picked |" in result.stdout

    report = json.loads((tmp_path / "report.json").read_text())
    assert {
        "device",
        "torch",
        "monai",
        "profile",
        "toy",
        "budget_s",
        "unet_parameters",
        "datasheet_bf16_tflops",
        "elapsed_s",
        "summary",
        "rows",
        "skipped",
        "failed",
    } <= report.keys()
    assert report["toy"] and report["skipped"] == [] and report["failed"] == []
    assert report["summary"].keys() >= SUMMARY, report["summary"]
    assert report["summary"]["train_ldm_largest_batch"].keys() == {"ours", "reference"}
    assert report["summary"]["train_aekl_largest_batch"].keys() == {"fp32", "bf16"}
    assert len(report["rows"]) == len(table)
    for row, line in zip(report["rows"], table):
        assert line.startswith(f"| {row['item']} | {row['configuration']} |")
        if row["item"] in ("train_ldm", "train_aekl", "sampling"):
            assert row["images_per_s"] > 0 and row["batch"] >= 2, row
        if row["item"] == "train_ldm":
            assert row["tflops"] > 0 and row["of_matmul"] > 0, row
        if row["item"] == "train_ldm speed-up":
            assert row["speedup"] > 0, row


def test_budget_skips_what_does_not_fit_with_a_line_saying_so(tmp_path):
    result = gpu_report(tmp_path, "--budget-s", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Skipped for the time budget (--budget-s 0): bf16 matmul; " in result.stdout
    assert "train_ldm reference, batch 2" in result.stdout


def test_largest_batch_doubles_then_backs_off_halfway_and_survives_out_of_memory(monkeypatch):
    """What the toy run never meets: running out of memory."""
    monkeypatch.setattr(sys, "path", [str(ROOT / "benchmarks"), *sys.path])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gpu_report
    import torch

    def make_step(batch):
        def step():
            if batch > 300:
                raise torch.OutOfMemoryError(f"CUDA out of memory (batch {batch})")

        return step

    recovered = []
    assert gpu_report.measure(make_step, 512, 1, torch.device("cpu"), lambda: recovered.append(True)) is None
    assert recovered == [True]
    largest, trials, stop = gpu_report.largest_batch(
        lambda b: gpu_report.measure(make_step, b, 1, torch.device("cpu")),
        {"batch": 32, "wall_s": 0.0},
        4096,
        gpu_report.Budget(1e9),
    )
    assert list(trials) == [32, 64, 128, 256, 512, 384, 320]
    assert largest["batch"] == 256 and stop == "out of memory at 320"
    _, trials, stop = gpu_report.largest_batch(lambda b: None, {"batch": 32, "wall_s": 0.0}, 64, gpu_report.Budget(-1))
    assert list(trials) == [32] and stop == "time budget"
