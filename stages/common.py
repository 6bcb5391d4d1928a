"""What every stage shares: its params from params.yaml, worker count, progress bars."""

from __future__ import annotations

import os
import sys

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
