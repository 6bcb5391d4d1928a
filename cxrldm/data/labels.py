"""Per-study tables: CheXpert labels and patient demographics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrldm.data import tables as filtering

# The 14 CheXpert labels of mimic-cxr-2.0.0-chexpert.csv.gz, in the file's column order.
CHEXPERT_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)


def read_labels(data: dict, findings: list[str]) -> pd.DataFrame:
    """CheXpert labels per study_id (1 positive, 0 negative, -1 uncertain, NaN not mentioned) from the file
    that params' `data` section names (data.root / data.labels: MIMIC's, or a manifest's label columns)."""
    table = filtering.read_table(
        Path(data["root"]) / data["labels"], ["study_id", *findings], "label file (data.labels)"
    )
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
        raise ValueError(
            f"faithfulness.subgroups: {missing} not among the columns of {path} ({', '.join(map(str, table.columns))})"
        )
    return table.drop_duplicates("subject_id").set_index("subject_id")[columns]


def subgroup_names(values: pd.Series, column: str, age_bands: list[int]) -> pd.Series:
    """Each value's subgroup: ages by the band edges ("<40", "40-64", ">=65"), anything else as it is;
    missing values as "unknown"."""
    if column == "age":
        edges = sorted(age_bands)
        values = pd.to_numeric(values, errors="coerce")  # e.g. DICOM's "065Y": unknown

        def band(age):
            if pd.isna(age):
                return "unknown"
            for low, high in zip([None] + edges, edges + [None]):
                if (low is None or age >= low) and (high is None or age < high):
                    return f"<{high}" if low is None else f">={low}" if high is None else f"{low}-{high - 1}"

        return values.map(band)
    return values.map(lambda v: "unknown" if pd.isna(v) or v == "" else str(v))
