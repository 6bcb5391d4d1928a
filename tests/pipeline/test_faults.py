"""Faults that lose nothing: `dvc repro` killed with SIGKILL inside each long stage, then run again, gives
outputs identical to the uninterrupted run (the committed dvc.lock, byte for byte), leaves no temporary
files, and a training stage resumes from its checkpoint instead of starting over."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_project import env, pristine_copy, run

pytestmark = pytest.mark.pipeline

CHECKPOINTS = {
    "train_aekl": "models/checkpoints/train_aekl/last.pt",
    "train_ldm": "models/checkpoints/train_ldm/last.pt",
}
LONG_STAGES = ["resize", "train_aekl", "scale_factor", "train_ldm", "sample", "evaluate"]


def stage_process_started(stage: str) -> bool:
    """Whether a `python -m stages.<stage>` process is running (read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"stages.{stage}".encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def kill_point(project: Path, stage: str, started: float, rng: random.Random):
    """Wait for a point inside the stage's work: a new checkpoint (training), a resized image in the
    temporary output (resize), else the stage's process; then a random extra delay."""
    if stage in CHECKPOINTS:
        checkpoint = project / CHECKPOINTS[stage]
        return lambda: checkpoint.exists() and checkpoint.stat().st_mtime > started, rng.uniform(0, 0.3)
    if stage == "resize":
        return lambda: any((project / "data").glob(".resized.tmp-*/files/**/*.png")), rng.uniform(0, 0.1)
    return lambda: stage_process_started(stage), rng.uniform(0.3, 2.0)


def temporary_files(project: Path) -> list[str]:
    return sorted(
        str(p.relative_to(project))
        for folder in ("data", "models", "metrics", "dvclive")
        for p in (project / folder).rglob("*")
        if ".tmp" in p.name
    )


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the stage's process through /proc")
def test_a_stage_killed_at_a_random_point_reruns_to_the_same_outputs(tiny_project, tmp_path):
    project = pristine_copy(tiny_project, tmp_path / "project")
    recorded = (project / "dvc.lock").read_text()
    seed = int(os.environ.get("CXRLDM_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    for stage in LONG_STAGES:
        if stage in CHECKPOINTS:  # a finished run's checkpoint would be resumed at its end: start fresh
            (project / CHECKPOINTS[stage]).unlink(missing_ok=True)
        started = time.time()
        process = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", "-s", "--force", stage],
            cwd=project,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        reached, delay = kill_point(project, stage, started, rng)
        while not reached():
            assert process.poll() is None, f"{stage} ended before the kill point (seed {seed})"
            time.sleep(0.02)
        time.sleep(delay)
        assert process.poll() is None, f"{stage} ended before the kill (seed {seed}, delay {delay:.2f} s)"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        rerun = run(project, "repro", "-s", "--force", stage)
        if stage in CHECKPOINTS:
            assert "resuming" in rerun.stdout + rerun.stderr, f"{stage} restarted instead of resuming (seed {seed})"
        assert (project / "dvc.lock").read_text() == recorded, f"{stage}: outputs differ after the kill (seed {seed})"
        assert temporary_files(project) == [], f"{stage} left temporary files (seed {seed})"
