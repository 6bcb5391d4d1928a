"""Any chest X-ray collection through one manifest: a CSV or Parquet file with a row per image.

Required columns: `path` (the image, relative to data.root), `subject_id`, `study_id` (integers).
Optional: `dicom_id` (default: the file name without extension), `view` (PA, AP, LATERAL, ...; blank is
unknown), `split` (train / validate / test), `sha256`, `report` (free text, parsed like MIMIC's) or
`findings` / `impression` (used as they are), CheXpert's 14 label columns (1 / 0 / -1 / blank), and any
metadata columns (`sex`, `age`, ...), which prompt templates may name. Every problem is one line naming
the file, the column and a row (rows count from 1, the header not included)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cxrldm.data import layout
from cxrldm.data.labels import CHEXPERT_LABELS

REQUIRED = ("path", "subject_id", "study_id")
TEXT_COLUMNS = ("path", "dicom_id", "view", "split", "sha256", "report", "findings", "impression", "sex")
# ViewPosition values of MIMIC-CXR-JPG's metadata, and blank (unknown)
VIEWS = (
    "PA",
    "AP",
    "LATERAL",
    "LL",
    "AP AXIAL",
    "AP LLD",
    "AP RLD",
    "PA LLD",
    "PA RLD",
    "LAO",
    "RAO",
    "LPO",
    "XTABLE LATERAL",
    "SWIMMERS",
    "",
)
LABEL_VALUES = (1.0, 0.0, -1.0)


class ManifestError(ValueError):
    """A manifest that cannot be used: one line naming the file, the column and a row."""


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _row(frame: pd.DataFrame, mask) -> int:
    return int(frame.index[mask][0]) + 1


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest's rows, checked, with `dicom_id` filled in and `view` / `split` as strings ("" blank)."""
    path = layout.require(path, "the manifest (data.root / data.index)")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(
                path,
                dtype=dict.fromkeys(TEXT_COLUMNS, str),
                keep_default_na=False,
                na_values={c: [""] for c in CHEXPERT_LABELS},
            )
    except ImportError:
        raise ManifestError(f"{path}: reading Parquet needs pyarrow; pip install pyarrow, or use CSV") from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ManifestError(f"{path}: not a readable manifest: {error}") from None
    table = table.reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(a manifest needs {', '.join(REQUIRED)})"
        )
    if not len(table):
        raise ManifestError(f"{path}: no rows")
    for column in ("subject_id", "study_id"):
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() | (numbers != numbers.round())
        if bad.any():
            raise ManifestError(
                f"{path}: column {column}, row {_row(table, bad)}: "
                f"{_shown(table[column][bad].iloc[0])} is not an integer"
            )
        table[column] = numbers.astype("int64")
    table["path"] = table["path"].astype(str).str.strip()
    blank = table.path == ""
    if blank.any():
        raise ManifestError(f"{path}: column path, row {_row(table, blank)}: empty")
    repeated = table.path.duplicated(keep=False)
    if repeated.any():
        first = table.path[repeated].iloc[0]
        rows = [i + 1 for i in table.index[table.path == first]]
        raise ManifestError(f"{path}: column path, rows {rows[0]} and {rows[1]}: the same image {first!r} twice")
    if "dicom_id" not in table.columns or (table.dicom_id.fillna("") == "").all():
        table["dicom_id"] = [Path(p).stem for p in table.path]
    repeated = table.dicom_id.duplicated(keep=False)
    if repeated.any():
        raise ManifestError(
            f"{path}: column dicom_id, row {_row(table, repeated)}: {table.dicom_id[repeated].iloc[0]!r} "
            "names two images; give a dicom_id column that is unique"
        )
    table["view"] = table["view"].fillna("").astype(str).str.strip().str.upper() if "view" in table else ""
    unknown = ~table.view.isin(VIEWS)
    if unknown.any():
        raise ManifestError(
            f"{path}: column view, row {_row(table, unknown)}: unknown view {table.view[unknown].iloc[0]!r}; "
            f"expected one of {', '.join(v for v in VIEWS if v)} or blank"
        )
    if "split" in table:
        table["split"] = table.split.fillna("").astype(str).str.strip()
        unknown = ~table.split.isin(layout.SPLITS)
        if unknown.any():
            raise ManifestError(
                f"{path}: column split, row {_row(table, unknown)}: {table.split[unknown].iloc[0]!r}; "
                f"expected one of {', '.join(layout.SPLITS)}"
            )
        splits = table.groupby("subject_id").split.nunique()
        leaking = splits[splits > 1]
        if len(leaking):
            subject = leaking.index[0]
            rows = table[table.subject_id == subject].drop_duplicates("split")
            raise ManifestError(
                f"{path}: column split, rows {rows.index[0] + 1} and {rows.index[1] + 1}: subject "
                f"{subject} is in {rows.split.iloc[0]} and {rows.split.iloc[1]}; splits must keep "
                "each patient in one"
            )
    for label in CHEXPERT_LABELS:
        if label in table:
            values = pd.to_numeric(table[label], errors="coerce")
            bad = ~(values.isin(LABEL_VALUES) | table[label].isna())
            if bad.any():
                raise ManifestError(
                    f"{path}: column {label}, row {_row(table, bad)}: {_shown(table[label][bad].iloc[0])}; "
                    "expected 1, 0, -1 or blank"
                )
            table[label] = values
    return table


def metadata_view(manifest: pd.DataFrame, view: str) -> pd.DataFrame:
    """The manifest as MIMIC's metadata table for filtering.select_pa (with its own paths); without a view
    column every image counts as `view`."""
    views = manifest.view if (manifest.view != "").any() else pd.Series(view, index=manifest.index)
    return pd.DataFrame(
        {
            "dicom_id": manifest.dicom_id,
            "subject_id": manifest.subject_id,
            "study_id": manifest.study_id,
            "ViewPosition": views,
            "path": manifest.path,
        }
    )


def report_of(row) -> tuple[str | None, str, str]:
    """(free-text report or None, findings, impression) of a manifest row."""

    def text(name):
        value = getattr(row, name, "")
        return "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()

    report = text("report")
    return (report or None) if hasattr(row, "report") else None, text("findings"), text("impression")


FIELD = re.compile(r"\{([^{}]+)\}")


def template_fields(template: str) -> list[str]:
    return FIELD.findall(template)


def positive_findings(labels: dict) -> str:
    """CheXpert's positive labels in words, as a sentence: 'Cardiomegaly, pleural effusion.' or 'No finding.'"""
    names = [name for name in CHEXPERT_LABELS if name != "No Finding" and labels.get(name) == 1.0]
    if not names:
        return "No finding."
    words = [names[0]] + [n.lower() for n in names[1:]]
    return ", ".join(words) + "."


def render_template(template: str, values: dict) -> str:
    """The template with each {field} replaced: {findings} by positive_findings, others by the value of that
    metadata column (integers without decimals); blank where the value is missing."""

    def value(match):
        name = match.group(1)
        if name == "findings":
            return positive_findings(values)
        v = values.get(name)
        if v is None or (isinstance(v, float) and v != v):
            return ""
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    return " ".join(FIELD.sub(value, template).split())
