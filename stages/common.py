"""What every stage shares: its params from params.yaml, worker count, progress bars."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

PARAMS_FILE = "params.yaml"


def _read_params(path: str = PARAMS_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


RECORD_ENV = "CXRLDM_RECORD_PARAMS"     # a directory: record the params each stage reads (RecordingParams)
_read: set[str] = set()                 # the dotted params this process's code read, when recording


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
        super().__init__({key: RecordingParams(value, read, f"{prefix}{key}.") if isinstance(value, dict)
                          else value for key, value in data.items()})
        self._read, self._prefix = read, prefix

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if not isinstance(value, RecordingParams):
            self._read.add(f"{self._prefix}{key}")
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

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
    folder.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}")
    tmp.write_text(json.dumps(sorted(read), indent=1))
    os.replace(tmp, file)


def workers() -> int:
    """CPU worker processes: every core unless CXRLDM_WORKERS says otherwise (not a param: the
    outputs don't depend on it)."""
    return int(os.environ.get("CXRLDM_WORKERS", 0)) or os.cpu_count() or 1


def progress(iterable=None, **kwargs):
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, mininterval=1.0, **kwargs)


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


TIMING = Path("metrics/timing")


def write_timing(stage: str, seconds: float) -> None:
    """A training stage's wall-clock seconds, in metrics/timing/<stage>.json: dvc.yaml lists these files as
    metrics (so `dvc metrics show` has them) but no stage declares them, so they stay out of dvc.lock."""
    from cxrldm.io import write_json
    write_json(TIMING / f"{stage}.json", {"seconds": round(seconds, 1)})


def fail(message: str) -> None:
    """Stop the stage with one line on stderr (no traceback) and a non-zero exit status."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def check_init_from(init_from: str, own_output: Path, param: str) -> None:
    """A fine-tune cannot start from the stage's own output: DVC removes a stage's outputs before it runs."""
    if init_from and Path(init_from).resolve() == own_output.resolve():
        fail(f"{param}: {init_from} is this stage's own output, which DVC removes before the stage runs; copy "
             f"it first (mkdir -p models/init && cp {own_output} models/init/start.safetensors) and name the copy")


def stage_name() -> str:
    """The running stage: `python -m stages.train_ldm` is stage train_ldm."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return (spec.name if spec else Path(sys.argv[0]).stem).rsplit(".", 1)[-1]


def check_stage_params(stage: str, dvc_file: str = "dvc.yaml") -> None:
    """Check every param the stage lists in dvc.yaml (and those its cmd and deps interpolate) against
    cxrldm/params_check.py, before any data is read or output touched."""
    from cxrldm.params_check import check
    spec = yaml.safe_load(Path(dvc_file).read_text())["stages"][stage]
    text = " ".join([spec["cmd"], *map(str, spec.get("deps", []))])
    check(_read_params(), [*spec.get("params", []), *dict.fromkeys(re.findall(r"\$\{([^}]+)\}", text))])


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
