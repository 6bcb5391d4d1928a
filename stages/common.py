"""What every stage shares: its params from params.yaml, worker count, progress bars."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

PARAMS_FILE = "params.yaml"


def load_params(path: str = PARAMS_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def workers() -> int:
    """CPU worker processes: every core unless CXRLDM_WORKERS says otherwise (not a param: the
    outputs don't depend on it)."""
    return int(os.environ.get("CXRLDM_WORKERS", 0)) or os.cpu_count() or 1


def progress(iterable=None, **kwargs):
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, mininterval=1.0, **kwargs)


def fail(message: str) -> None:
    """Stop the stage with one line on stderr (no traceback) and a non-zero exit status."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def run(main) -> None:
    """Run a stage's main(); expected input problems end in one line, not a traceback."""
    try:
        main()
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(str(error) if not isinstance(error, KeyError) else f"missing param {error} in {PARAMS_FILE}")


def param(params: dict, dotted: str):
    value = params
    for key in dotted.split("."):
        value = value[key]
    return value


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
    params = load_params()
    spec = yaml.safe_load(Path(dvc_file).read_text())["stages"][stage]
    digest = hashlib.sha256(resolved.encode())
    for name in spec.get("params", []):
        digest.update(f"{name}={json.dumps(param(params, name), sort_keys=True)}".encode())
    for dep in spec.get("deps", []):
        _hash_dep(Path(re.sub(r"\$\{([^}]+)\}", lambda m: str(param(params, m[1])), dep)), digest)
    return digest.hexdigest()
