"""The benchmark scripts run end to end at toy sizes, so a library change that breaks one shows up here
(their timings are not checked; they are the benchmarks' business)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")

CASES = {
    "resize_speed": (["--n", "2"], ["draft decode + Lanczos (ours)", "speed-up:"]),
    "aekl_step": (["--seed-size", "32", "--seed-batch", "1", "--steps", "1", "--precisions", "fp32"],
                  ["| demo (params.yaml) |", "| seed @32px | 4.61 M |"]),
    "ldm_step": (["--profile", TINY, "--steps", "1"], ["cached once by the scale_factor stage (ours)", "speed-up:"]),
    "seed_flops": (["--profile", TINY, "--images", "100", "--tflops", "1"],
                   ["| train_aekl |", "| train_ldm |", "GPU-hours at 1 TFLOP/s"]),
    "gpu_smoke": (["--profile", TINY, "--precisions", "fp32", "--steps", "1", "--ae-batch", "1", "--ldm-batch", "1",
                   "--sample-batch", "1", "--sample-steps", "1", "--device", "cpu"],
                  ["| train_aekl step | fp32 | 1 |", "| train_ldm step | fp32 | 1 |", "| sampling, 1 DDIM steps"]),
    "memorisation_audit": (["--quick"], ["chunked exact search (ours)", "PROJECTION (not measured)"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_prints_its_table(name, tmp_path):
    args, expected_rows = CASES[name]
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], cwd=tmp_path,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in expected_rows:
        assert row in result.stdout, result.stdout
