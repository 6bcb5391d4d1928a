"""What every stage shares: its params from params.yaml, worker count, progress bars."""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from cxrldm.io import write_json

PARAMS_FILE = "params.yaml"


def _read_params(path: str = PARAMS_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


RECORD_ENV = "CXRLDM_RECORD_PARAMS"  # a directory: record the params each stage reads (RecordingParams)


_read: set[str] = set()  # the dotted params this process's code read, when recording


def load_params(path: str = PARAMS_FILE) -> dict:
    """params.yaml as a dict; under CXRLDM_RECORD_PARAMS a RecordingParams view of it."""
    folder = os.environ.get(RECORD_ENV)
    if not folder:
        return _read_params(path)
    atexit.unregister(_write_read_params)  # once per process however often the params are loaded
    atexit.register(_write_read_params, Path(folder))
    return RecordingParams(_read_params(path), _read)


class RecordingParams(dict):
    """A params dict that notes the dotted name of every leaf (any value that is not a section) it hands
    out. It exists for tests/test_params_read.py: with CXRLDM_RECORD_PARAMS=DIR each stage process writes
    the params its code read to DIR/<stage>.json at exit, and the test checks that every stage lists in
    dvc.yaml exactly those (a param read but not listed would leave the stage wrongly cached). Reads
    through [], get, items, values, `**`, dict(), == and json.dumps all count; sections are views too."""

    def __init__(self, data: dict, read: set, prefix: str = ""):
        super().__init__(
            {
                key: RecordingParams(value, read, f"{prefix}{key}.") if isinstance(value, dict) else value
                for key, value in data.items()
            }
        )
        self._read, self._prefix = read, prefix

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if not isinstance(value, RecordingParams):
            self._read.add(f"{self._prefix}{key}")
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default  # noqa: SIM401 (self.get is this method)

    def __iter__(self):  # overriding it turns off CPython's `**`/dict() fast path that skips __getitem__
        return iter(list(self.keys()))

    def items(self):
        return [(key, self[key]) for key in self]

    def values(self):
        return [self[key] for key in self]

    def plain(self) -> dict:
        """A plain nested copy; reads every leaf."""
        return {key: value.plain() if isinstance(value, RecordingParams) else value for key, value in self.items()}

    def __eq__(self, other):
        return self.plain() == other

    def __ne__(self, other):
        return self.plain() != other

    __hash__ = None
    copy = plain


def _write_read_params(folder: Path) -> None:
    """Merge this process's reads into folder/<stage>.json (a stage may run in several processes)."""
    file = folder / f"{stage_name()}.json"
    read = _read | set(json.loads(file.read_text())) if file.exists() else _read
    write_json(file, sorted(read), indent=1, sort_keys=False, clean_stale=False)  # another process may be writing


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


def stage_name() -> str:
    """The running stage: `python -m stages.train_ldm` is stage train_ldm."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return (spec.name if spec else Path(sys.argv[0]).stem).rsplit(".", 1)[-1]


def check_stage_params(stage: str, dvc_file: str = "dvc.yaml") -> None:
    """Check every param the stage lists in dvc.yaml (and those its cmd and deps interpolate) against
    cxrldm/params.py, before any data is read or output touched; and that params.yaml holds no unknown key."""
    from cxrldm.params import check, check_known

    spec = yaml.safe_load(Path(dvc_file).read_text())["stages"][stage]
    text = " ".join([spec["cmd"], *map(str, spec.get("deps", []))])
    params = _read_params()
    check_known(params, PARAMS_FILE)
    check(params, [*spec.get("params", []), *dict.fromkeys(re.findall(r"\$\{([^}]+)\}", text))])


def run(main, stage: str | None = None) -> None:
    """Check the stage's params, then run its main(); expected input problems end in one line, not a
    traceback."""
    try:
        check_stage_params(stage or stage_name())
        main()
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(str(error) if not isinstance(error, KeyError) else f"missing param {error} in {PARAMS_FILE}")


def param(params: dict, dotted: str):
    value = params
    for key in dotted.split("."):
        value = value[key]
    return value
