"""What the evaluation stages share: the feature networks and classifiers by name, the split's CheXpert
labels, and composite metrics that each carry their count and a 95% bootstrap interval, as small JSON
dicts {"value", "low", "high", "n", "resamples"} (intervals.bootstrap_interval)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import filtering, nets
from ..data import load_images, read_split
from . import XRVEvaluator, auroc, frechet_distance, xrv_weights_file
from .fidelity import kernel_inception_distance, kid_kernels, mmd2_from_counts, prdc_from_counts, prdc_indicators
from .intervals import basic_interval, bootstrap_interval

EVALUATOR_FILE = Path("models/evaluator.safetensors")


def load_network(spec: str, xrv_cache_dir: str, device: str | torch.device = "cpu"):
    """A feature network / classifier by its param value: `xrv` (torchxrayvision densenet121-res224-all from
    `xrv_cache_dir`), `evaluator_cnn` (stage train_evaluator's), or `hf:<hub id or local directory>` (any
    Hugging Face vision model's pooled output; features only)."""
    from . import TrainedEvaluator
    if spec == "xrv":
        return XRVEvaluator(xrv_weights_file(xrv_cache_dir), device)
    if spec == "evaluator_cnn":
        model, description = nets.load_model(EVALUATOR_FILE)
        return TrainedEvaluator(model, description["image_size"])
    if spec.startswith("hf:") and len(spec) > 3:
        from .hf_features import HFVisionFeatures
        return HFVisionFeatures(spec[3:], device)
    raise ValueError(f"a feature network must be 'xrv', 'evaluator_cnn' or 'hf:<hub id or directory>', got {spec!r}")


def classifier_columns(network, findings: list[str], param: str) -> list[int]:
    """The classifier's output column of each finding, or a one-line error naming the param."""
    missing = [f for f in findings if f not in network.labels]
    if missing:
        raise ValueError(f"{param}: {missing} not among the labels of {network.name} {network.labels}")
    return [network.labels.index(f) for f in findings]


def read_labels(data: dict, findings: list[str]) -> pd.DataFrame:
    """CheXpert labels per study_id (1 positive, 0 negative, -1 uncertain, NaN not mentioned) from the file
    that params' `data` section names (data.root / data.labels: MIMIC's, or a manifest's label columns)."""
    table = filtering.read_table(Path(data["root"]) / data["labels"], ["study_id", *findings], "label file (data.labels)")
    return table.drop(columns=["subject_id"], errors="ignore").drop_duplicates("study_id").set_index("study_id")


# MIMIC-IV's hosp/patients.csv.gz names; anchor_age is the age in anchor_year, close to the age at a study
DEMOGRAPHIC_NAMES = {"gender": "sex", "anchor_age": "age"}


def read_demographics(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """Per subject_id: the given columns (sex, age, ...) from a manifest, MIMIC-IV's patients table (gender
    and anchor_age read as sex and age) or any CSV with subject_id; one line naming the file otherwise."""
    table = filtering.read_table(path, ["subject_id"], "demographics file (data.demographics)")
    table = table.rename(columns={k: v for k, v in DEMOGRAPHIC_NAMES.items() if v not in table.columns})
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"faithfulness.subgroups: {missing} not among the columns of {path} "
                         f"({', '.join(map(str, table.columns))})")
    return table.drop_duplicates("subject_id").set_index("subject_id")[columns]


def subgroup_names(values: pd.Series, column: str, age_bands: list[int]) -> pd.Series:
    """Each value's subgroup: ages by the band edges ("<40", "40-64", ">=65"), anything else as it is;
    missing values as "unknown"."""
    if column == "age":
        edges = sorted(age_bands)
        values = pd.to_numeric(values, errors="coerce")      # e.g. DICOM's "065Y": unknown
        def band(age):
            if pd.isna(age):
                return "unknown"
            for low, high in zip([None] + edges, edges + [None]):
                if (low is None or age >= low) and (high is None or age < high):
                    return f"<{high}" if low is None else f">={low}" if high is None else f"{low}-{high - 1}"
        return values.map(band)
    return values.map(lambda v: "unknown" if pd.isna(v) or v == "" else str(v))


def label_targets(labels: pd.DataFrame, study_ids, findings: list[str]) -> torch.Tensor:
    """(N, F) float targets for the studies: 1 positive, 0 negative or not mentioned, NaN uncertain (-1) or
    a study without a label row, which the AUROCs leave out."""
    study_ids = list(study_ids)
    values = labels.reindex(study_ids)[findings].to_numpy(dtype=float)
    targets = np.where(values == 1.0, 1.0, np.where(values == -1.0, np.nan, 0.0))
    targets[~np.isin(study_ids, labels.index.to_numpy())] = np.nan     # no label row at all: unknown, not negative
    return torch.tensor(targets)


def training_targets(labels: pd.DataFrame, study_ids, findings: list[str]) -> torch.Tensor:
    """(N, F) float32 training targets: a finding counts as present only when its label is 1.0."""
    return label_targets(labels, study_ids, findings).nan_to_num(0.0).float()


def labelled_split(resized_dir: str | Path, split: str, labels: pd.DataFrame, findings: list[str], size: int,
                   progress=None) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """A split's rows, images (N, 1, size, size) and label targets (label_targets: NaN where uncertain)."""
    table = read_split(resized_dir, split)
    return table, load_images(resized_dir, table.path, size, progress), label_targets(labels, table.study_id, findings)


def report_samples(directory: str | Path, purpose: str) -> tuple[pd.DataFrame, torch.Tensor]:
    """The rows of stage sample_reports' manifest for one purpose (test / train), and their images."""
    directory = Path(directory)
    manifest = pd.read_csv(directory / "manifest.csv", keep_default_na=False)
    manifest = manifest[manifest.purpose == purpose].reset_index(drop=True)
    if not len(manifest):
        raise ValueError(f"{directory / 'manifest.csv'} has no {purpose} rows: set sample_reports.{purpose}_studies")
    from PIL import Image
    size = Image.open(directory / manifest.file[0]).size[0]
    return manifest, load_images(directory, manifest.file, size)


def auroc_interval(scores: torch.Tensor, targets: torch.Tensor, resamples: int, seed: int) -> dict:
    """AUROC of scores against 0/1 targets (NaN targets left out) with its bootstrap interval over items,
    and the class counts."""
    known = ~targets.isnan()
    scores, positive = scores[known].double(), targets[known].bool()
    counts = {"n_positive": int(positive.sum()), "n_negative": int((~positive).sum())}
    if not counts["n_positive"] or not counts["n_negative"]:
        return {"value": None, "low": None, "high": None, "n": len(scores), "resamples": 0, **counts}
    result = bootstrap_interval(lambda i: auroc(scores[i], positive[i]), len(scores), resamples=resamples, seed=seed)
    return {**result, **counts}


def two_group_auroc_interval(group: torch.Tensor, reference: torch.Tensor, resamples: int, seed: int) -> dict:
    """AUROC of `group` scores above `reference` scores, each group resampled on its own."""
    def statistic(a, b):
        return auroc(torch.cat([group[a], reference[b]]), torch.cat([torch.ones(len(a)), torch.zeros(len(b))]))
    return bootstrap_interval(statistic, len(group), len(reference), resamples=resamples, seed=seed)


def fidelity(real: torch.Tensor, fake: torch.Tensor, k: int = 5, resamples: int = 1000, seed: int = 0,
             kid_subsets: int = 100) -> dict:
    """Frechet distance, precision / recall / density / coverage (k-NN, k capped below the smaller set) and
    KID of fake against real features, each with its interval:
    - FID: basic bootstrap over both sets (repeats inflate FID; the basic interval subtracts that shift);
    - PRDC: percentile bootstrap reweighting the averaged items, the other set's k-NN balls held fixed;
    - KID: its mean and spread over `kid_subsets` subsets (CheXGenBench), with the percentile interval of
      the full-set unbiased MMD^2 over reweighted items."""
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    if min(len(real), len(fake)) < 3:
        raise ValueError(f"fidelity needs at least 3 real and 3 generated images, got {len(real)} and {len(fake)}")
    sizes, options = (len(real), len(fake)), {"resamples": resamples, "seed": seed}
    fid = bootstrap_interval(lambda r, f: frechet_distance(fake[f], real[r]), *sizes, **options)
    k = min(k, len(real) - 1, len(fake) - 1)
    indicators = prdc_indicators(real, fake, k)
    prdc = bootstrap_interval(lambda r, f: prdc_from_counts(indicators, r, f), *sizes, counts=True, **options)
    kernels = kid_kernels(real, fake)
    mmd = bootstrap_interval(lambda r, f: mmd2_from_counts(kernels, r, f), *sizes, counts=True, **options)
    kid = kernel_inception_distance(real, fake, kid_subsets, seed=seed)
    return {"fid": basic_interval(fid), **prdc, "k": k,
            "kid": {**mmd, "value": kid["mean"], "std": kid["std"], "subsets": kid["subsets"],
                    "subset_size": kid["subset_size"]}}


def grid(images: torch.Tensor, columns: int) -> np.ndarray:
    """uint8 grid of (N, 1, H, W) images in [0, 1], `columns` wide, white gaps, unfilled cells white."""
    n, _, height, width = images.shape
    rows = max(1, -(-n // columns))
    canvas = torch.ones(rows * (height + 2) - 2, columns * (width + 2) - 2)
    for i, image in enumerate(images[:, 0].clamp(0, 1)):
        top, left = (i // columns) * (height + 2), (i % columns) * (width + 2)
        canvas[top:top + height, left:left + width] = image
    return (canvas * 255).round().byte().numpy()
