"""What the loaded models were made with, for the pages' defaults and their "trained on" line.

The model files themselves record only their architecture, text encoder and noise schedule (and, for
imported weights, the bundle they came from). The rest is in the pipeline's own record: the dvc.lock of the
project whose models folder they are in. It is used only where it vouches for these very files: the md5
that the lock's train_ldm stage wrote for the diffusion model must be the loaded file's. From it come the
data the models were trained on (data.* and, for the embedded demo, demo_data.*), and the settings the
pipeline samples with (sample.*: guidance, steps, sampler) and edits with (edit.*), where those stages ran
on these models too. Otherwise the pages keep the command line's defaults and say the data is unknown."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from cxrldm.sampling.runs import EDIT_DEFAULTS, GENERATE_DEFAULTS

FROM_PARAMS = {
    "generate": {"guidance": "sample.guidance_scale", "steps": "sample.steps", "sampler": "sample.sampler"},
    "edit": {
        "strength": "edit.strength",
        "guidance": "edit.guidance_scale",
        "steps": "edit.steps",
        "feather": "edit.feather_px",
    },
}
STAGES = {"generate": "sample", "edit": "edit"}


@dataclass
class Profile:
    generate: dict  # the Generate page's defaults: guidance, steps, sampler
    edit: dict  # the Edit page's: strength, guidance, steps, feather
    trained_on: str  # the data, in words
    phantoms: bool  # trained on the embedded demo's synthetic phantoms only
    settings_from: str  # where the defaults come from, in words

    def public(self) -> dict:
        return asdict(self)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files(stage: dict) -> dict:
    """{path: md5} of a dvc.lock stage's deps and outs."""
    return {entry["path"]: entry.get("md5") for entry in stage.get("deps", []) + stage.get("outs", [])}


def params(stage: dict) -> dict:
    """{dotted key: value} of the params a dvc.lock stage ran with."""
    return {key: value for values in stage.get("params", {}).values() for key, value in values.items()}


def training_data(lock: dict) -> tuple[str, bool]:
    """The data the lock's pipeline trained on, in words, and whether it is the demo's phantoms."""
    data, demo = params(lock.get("filter_pa", {})), lock.get("demo_data")
    root, layout = data.get("data.root", "?"), data.get("data.format")
    if demo is not None and root in files(demo):
        studies = params(demo).get("demo_data.n_studies")
        return (f"the embedded demo dataset (synthetic phantoms, {studies} made-up studies, no real radiograph)", True)
    if layout == "manifest":
        return f"the films that the manifest {root}/{data.get('data.index', '')} lists", False
    return f"MIMIC-CXR-JPG at {root}", False


def unrecorded(trained_on: str) -> Profile:
    """Models no pipeline record vouches for: the command line's defaults."""
    return Profile(dict(GENERATE_DEFAULTS), dict(EDIT_DEFAULTS), trained_on, False, "the command line's defaults")


def load_profile(models_dir: str | Path) -> Profile:
    models_dir = Path(models_dir).resolve()
    described = models_dir / "diffusion.json"
    description = json.loads(described.read_text()) if described.is_file() else {}
    if description.get("imported_from"):
        return unrecorded(f"weights imported from {description['imported_from']}")
    unknown = unrecorded(f"unknown data (no dvc.lock beside {models_dir.name}/ records these model files)")
    try:
        lock = yaml.safe_load((models_dir.parent / "dvc.lock").read_text())["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return unknown
    name = f"{models_dir.name}/diffusion.safetensors"
    recorded = files(lock.get("train_ldm", {})).get(name)
    if (
        recorded is None
        or not (models_dir / "diffusion.safetensors").is_file()
        or md5(models_dir / "diffusion.safetensors") != recorded
    ):
        return unknown
    trained_on, phantoms = training_data(lock)
    defaults = {"generate": dict(GENERATE_DEFAULTS), "edit": dict(EDIT_DEFAULTS)}
    used = []
    for tool, stage_name in STAGES.items():
        stage = lock.get(stage_name, {})
        if files(stage).get(name) == recorded:  # that stage ran on these models
            ran = params(stage)
            defaults[tool].update({k: ran[key] for k, key in FROM_PARAMS[tool].items() if key in ran})
            used.append(f"{stage_name}.*")
    settings_from = f"the pipeline's own ({' and '.join(used)} in dvc.lock)" if used else "the command line's defaults"
    return Profile(defaults["generate"], defaults["edit"], trained_on, phantoms, settings_from)
