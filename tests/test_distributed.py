"""Two CPU processes under torchrun (gloo) take the same training steps as one process on the same global batch."""

import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def train(tmp_path, processes: int) -> dict:
    out = tmp_path / f"weights_{processes}.pt"
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    result = subprocess.run([*launcher, str(WORKER), str(out)], capture_output=True, text=True,
                            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out, weights_only=True)


def test_two_processes_take_the_single_process_steps(tmp_path):
    single, double = train(tmp_path, 1), train(tmp_path, 2)
    for model in ("autoencoder", "unet"):
        initial = single["initial"][model]
        moved = max((single[model][k] - initial[k]).abs().max().item() for k in initial)
        apart = max((single[model][k] - double[model][k]).abs().max().item() for k in initial)
        assert moved > 1e-3                       # the steps changed the weights ...
        # ... and two processes changed them the same way; Adam's first steps divide by the gradient's
        # magnitude, so summation-order differences in near-zero gradients show at about 1e-4 at most
        assert apart < 0.05 * moved, (model, apart, moved)
