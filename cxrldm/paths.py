"""Every artifact path of the pipeline, relative to the project root (where dvc runs the stages). dvc.yaml
names the same paths; the library takes paths as arguments and never reads these itself."""

from pathlib import Path

DATA, MODELS, METRICS = Path("data"), Path("models"), Path("metrics")

DEMO = DATA / "demo"  # the embedded demo dataset, in the MIMIC-CXR layout
PA_TABLE = DATA / "pa.csv"  # filter_pa: the PA images with split and checksum
RESIZED = DATA / "resized"  # resize: images.csv and the resized PNGs
REPORTS = DATA / "reports.csv"  # extract_reports: one prompt text per study
LATENTS = DATA / "latents"  # scale_factor: cached latent moments per split
SAMPLES = DATA / "samples"  # sample: fixed prompts and unconditional samples
REPORT_SAMPLES = DATA / "report_samples"  # sample_reports: images from test and training reports
EDITS = DATA / "edits"  # edit: edited films and their manifest
PROMPTS = Path("configs") / "prompts"  # sample.prompts_file names a file here; the folder is sample's dependency

AUTOENCODER = MODELS / "autoencoder.safetensors"
DIFFUSION = MODELS / "diffusion.safetensors"
SCALE_FACTOR = MODELS / "scale_factor.json"
EVALUATOR = MODELS / "evaluator.safetensors"
COPY_DETECTOR = MODELS / "copy_detector.safetensors"  # train_privacy: the copy detection space
REIDENTIFIER = MODELS / "reidentifier.safetensors"  # train_privacy: patient re-identification

SAMPLE_GRIDS = METRICS / "sample_grids"
FINDING_GRIDS = METRICS / "finding_grids"
EDIT_GRIDS = METRICS / "edit_grids"
MEMORISATION_PAIRS = METRICS / "memorisation_pairs.png"
EVALUATION_PAGE = METRICS / "evaluation.html"
TIMING = METRICS / "timing"  # wall-clock seconds, outside every stage's outputs


def metrics(stage: str) -> Path:
    """A stage's small metrics JSON."""
    return METRICS / f"{stage}.json"


def checkpoint(stage: str) -> Path:
    """A training stage's persisted checkpoint (resumed only when its fingerprint matches)."""
    return MODELS / "checkpoints" / stage / "last.pt"


def live_dir(stage: str) -> Path:
    """A training stage's DVCLive directory."""
    return Path("dvclive") / stage
