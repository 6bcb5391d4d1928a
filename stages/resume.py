"""Resuming training stages: checkpoint fingerprints, DVCLive trimming, timing, fine-tune checks."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import yaml

from cxrldm import paths
from stages.common import _read_params, fail, param


def trim_live(live_dir: Path, epoch: int) -> None:
    """Drop what DVCLive logged after `epoch`, the checkpoint a run resumes from: epochs are logged before
    they are checkpointed, so a run killed in between logs that epoch again. Metric rows with a later step
    (or cut off mid-line) go, and images named epoch_NNNN after it."""
    from cxrldm.io import atomic_path

    for table in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = table.read_text().splitlines()
        kept = [row for row in rows if re.fullmatch(r"\d+\t[^\t]+", row) and int(row.split("\t")[0]) <= epoch]
        with atomic_path(table) as tmp:
            tmp.write_text("\n".join([header, *kept]) + "\n")
    for image in (live_dir / "plots" / "images").rglob("epoch_*.png"):
        if int(image.stem.removeprefix("epoch_")) > epoch:
            image.unlink()


TIMING = paths.TIMING


def write_timing(stage: str, seconds: float) -> None:
    """A training stage's wall-clock seconds, in metrics/timing/<stage>.json: dvc.yaml lists these files as
    metrics (so `dvc metrics show` has them) but no stage declares them, so they stay out of dvc.lock."""
    from cxrldm.io import write_json

    write_json(TIMING / f"{stage}.json", {"seconds": round(seconds, 1)})


def start_or_resume(
    stage: str, init_from: str, own_output: Path, runtime, checkpoint: Path, live_dir: Path, param: str
) -> tuple[str, bool]:
    """A training stage's start: `init_from` checked (check_init_from), the stage's fingerprint (stage_fingerprint,
    with the precision and the starting weights' content), and whether the checkpoint resumes it. On the main
    process a fresh start clears DVCLive's folder and a resume trims it to the checkpoint's epoch."""
    from cxrldm.io import file_sha256
    from cxrldm.models.training import checkpoint_epoch, checkpoint_matches

    check_init_from(init_from, own_output, param)
    # the starting weights' content, not just their path: a resumed run never mixes two starts
    start = file_sha256(init_from) if init_from and Path(init_from).is_file() else ""
    fingerprint = stage_fingerprint(stage, resolved=f"precision={runtime.precision};init_from={start}")
    resuming = checkpoint_matches(checkpoint, fingerprint)
    if not resuming and runtime.is_main:
        shutil.rmtree(live_dir, ignore_errors=True)
    elif runtime.is_main:
        trim_live(live_dir, checkpoint_epoch(checkpoint))
    return fingerprint, resuming


def log_metrics(live, epoch: int, metrics: dict) -> None:
    """An epoch's metrics (but its seconds) to DVCLive at that step."""
    live.step = epoch
    for name, value in metrics.items():
        if name != "seconds":
            live.log_metric(name, value)


def print_epoch(epoch: int, metrics: dict) -> None:
    print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


def check_init_from(init_from: str, own_output: Path, param: str) -> None:
    """A fine-tune cannot start from the stage's own output: DVC removes a stage's outputs before it runs."""
    if init_from and Path(init_from).resolve() == own_output.resolve():
        fail(
            f"{param}: {init_from} is this stage's own output, which DVC removes before the stage runs; copy "
            f"it first (mkdir -p models/init && cp {own_output} models/init/start.safetensors) and name the copy"
        )


def _hash_dep(path: Path, digest) -> None:
    """Files by content; directories by their file names and sizes plus the content of their top-level
    tables (the resize stage's images.csv holds each image's sha256)."""
    digest.update(str(path).encode())
    if path.is_file():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    elif path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{child.relative_to(path)}:{child.stat().st_size}".encode())
            if child.parent == path and child.suffix in (".csv", ".json"):
                digest.update(child.read_bytes())


def stage_fingerprint(stage: str, dvc_file: str = "dvc.yaml", resolved: str = "") -> str:
    """A hash of what a stage's result depends on: the values of the params it lists and the content
    of its deps, read from dvc.yaml so the two never disagree, plus `resolved`: what a param such as
    `precision: auto` turned into on this machine. A persisted checkpoint is resumed only when its
    fingerprint matches; after any param or input change the stage starts fresh."""
    params = _read_params()  # not load_params: hashing every listed param is not the code reading it
    spec = yaml.safe_load(Path(dvc_file).read_text())["stages"][stage]
    digest = hashlib.sha256(resolved.encode())
    for name in spec.get("params", []):
        digest.update(f"{name}={json.dumps(param(params, name), sort_keys=True)}".encode())
    for dep in spec.get("deps", []):
        _hash_dep(Path(re.sub(r"\$\{([^}]+)\}", lambda m: str(param(params, m[1])), dep)), digest)
    return digest.hexdigest()
