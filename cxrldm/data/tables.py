"""Selecting the PA images of MIMIC-CXR-JPG, with a patient-disjoint split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from cxrldm.data import layout

PA_COLUMNS = ["dicom_id", "subject_id", "study_id", "split", "path", "sha256"]


def read_table(path: str | Path, columns, what: str) -> pd.DataFrame:
    """A CSV (or .csv.gz, or .parquet with pyarrow installed) that must hold `columns`; a one-line error
    naming the file otherwise."""
    path = layout.require(path, what)
    try:
        if Path(path).suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, dtype={"dicom_id": str, "ViewPosition": str, "split": str})
    except ImportError:
        raise ValueError(f"{what} {path}: reading Parquet needs pyarrow; pip install pyarrow, or use CSV") from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{what} {path} is not a readable table: {error}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} {path} lacks columns {missing}")
    return table


def read_checksums(path: str | Path) -> dict[str, str]:
    """relative path -> sha256 from a PhysioNet SHA256SUMS.txt ('<hash> <path>' per line)."""
    sums = {}
    with open(layout.require(path, "checksum file"), encoding="utf-8") as lines:
        for line in lines:
            digest, _, relative = line.strip().partition(" ")
            if relative:
                sums[relative.strip().removeprefix("./")] = digest
    return sums


def patient_split(subject_ids, fractions: tuple[float, float, float], seed: int) -> pd.Series:
    """A deterministic train/validate/test split grouped by patient: each subject goes to the split
    its hash falls into, so adding or removing other patients never moves anyone."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers that sum to 1, got {fractions}")
    edges = np.cumsum(fractions)[:2]

    def assign(subject: int) -> str:
        digest = hashlib.sha256(f"{seed}:{int(subject)}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return layout.SPLITS[int(np.searchsorted(edges, u, side="right"))]

    subjects = pd.Series(pd.unique(pd.Series(subject_ids)))
    return pd.Series(subjects.map(assign).values, index=subjects.values)


def select_pa(
    metadata: pd.DataFrame,
    split: pd.DataFrame | None,
    root: str | Path,
    checksums: dict[str, str],
    fractions=(0.8, 0.1, 0.1),
    seed: int = 0,
    view: str = "PA",
) -> tuple[pd.DataFrame, dict]:
    """PA images with dicom_id, subject_id, study_id, split, path, sha256, and counts.

    With a `path` column in `metadata` (a manifest's), those paths are used instead of MIMIC's layout.
    The split comes from the official split table when given (images it doesn't list are dropped
    and counted), otherwise from `patient_split`. Images missing on disk are counted and dropped.
    Raises ValueError if any patient ends up in two splits.
    """
    counts = {"metadata_images": len(metadata)}
    kept = ["dicom_id", "subject_id", "study_id"] + (["path"] if "path" in metadata else [])
    pa = metadata[metadata.ViewPosition == view][kept]
    counts["view_images"] = len(pa)
    if not len(pa):
        present = metadata.ViewPosition.fillna("(blank)").value_counts()
        raise ValueError(
            f"filter_pa.view: no image has ViewPosition {view!r}; the views present are "
            + ", ".join(f"{name} ({n})" for name, n in present.items())
        )
    if split is not None:
        pa = pa.merge(split[["dicom_id", "split"]], on="dicom_id", how="inner")
        counts["not_in_split_file"] = counts["view_images"] - len(pa)
    else:
        pa = pa.assign(split=pa.subject_id.map(patient_split(pa.subject_id, fractions, seed)))
    if "path" not in pa:  # MIMIC's layout (.jpg, or MIMIC-CXR's .dcm); a manifest brings its own paths
        pa = pa.assign(
            path=[
                layout.find_image(root, *row)
                for row in pa[["subject_id", "study_id", "dicom_id"]].itertuples(index=False)
            ]
        )
    present = np.array([(Path(root) / p).is_file() for p in pa.path], dtype=bool)
    counts["missing_on_disk"] = int((~present).sum())
    pa = pa[present].assign(sha256=lambda t: [checksums.get(p, "") for p in t.path])
    splits_per_patient = pa.groupby("subject_id").split.nunique()
    leaking = splits_per_patient[splits_per_patient > 1]
    if len(leaking):
        raise ValueError(
            f"{len(leaking)} patients are in more than one split (e.g. subject {leaking.index[0]}); "
            "the split file is not patient-disjoint"
        )
    pa = pa.sort_values(["subject_id", "study_id", "dicom_id"]).reset_index(drop=True)[PA_COLUMNS]
    counts["pa_images"] = len(pa)
    counts["patients"] = int(pa.subject_id.nunique())
    counts["studies"] = int(pa.study_id.nunique())
    for name in layout.SPLITS:
        counts[f"{name}_images"] = int((pa.split == name).sum())
    return pa, counts
