"""Two CPU processes under torchrun (gloo) take the same training steps as one process on the same global batch."""

import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def launch(out: Path, processes: int, mode: str = "train") -> None:
    launcher = (
        [sys.executable]
        if processes == 1
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    )
    result = subprocess.run(
        [*launcher, str(WORKER), str(out), mode],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def train(tmp_path, processes: int) -> dict:
    out = tmp_path / f"weights_{processes}.pt"
    launch(out, processes)
    return torch.load(out, weights_only=True)


def test_two_processes_take_the_single_process_steps(tmp_path):
    single, double = train(tmp_path, 1), train(tmp_path, 2)
    for model in ("autoencoder", "unet"):
        initial = single["initial"][model]
        moved = max((single[model][k] - initial[k]).abs().max().item() for k in initial)
        apart = max((single[model][k] - double[model][k]).abs().max().item() for k in initial)
        assert moved > 1e-3  # the steps changed the weights ...
        # ... and two processes changed them the same way; Adam's first steps divide by the gradient's
        # magnitude, so summation-order differences in near-zero gradients show, at under 1% of the change
        assert apart < 0.01 * moved, (model, apart, moved)


def test_a_non_finite_loss_on_one_process_stops_every_process(tmp_path):
    out = tmp_path / "nan"
    launch(out, 2, "nan_on_rank1")  # a process stopping alone would leave the other waiting: timeout
    assert [(tmp_path / f"nan.rank{r}.txt").read_text() for r in (0, 1)] == ["NonFiniteLoss"] * 2


def test_processes_that_see_different_checkpoints_refuse_to_resume(tmp_path):
    out = tmp_path / "weights.pt"
    launch(out, 1)  # leaves weights.ae.pt, which only process 0 will find
    launch(out, 2, "resume_mismatch")
    assert [(tmp_path / f"weights.pt.rank{r}.txt").read_text() for r in (0, 1)] == ["RuntimeError"] * 2
