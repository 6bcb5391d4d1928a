"""Paths and file names of MIMIC-CXR-JPG 2.0.0 and MIMIC-CXR 2.0.0 (reports)."""

from __future__ import annotations

from pathlib import Path

METADATA_CSV = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT_CSV = "mimic-cxr-2.0.0-split.csv.gz"
CHEXPERT_CSV = "mimic-cxr-2.0.0-chexpert.csv.gz"
CHECKSUMS = "SHA256SUMS.txt"
REPORTS_ZIP = "mimic-cxr-reports.zip"

METADATA_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
SPLITS = ("train", "validate", "test")


def subject_dir(subject_id: int) -> str:
    """files/p10/p10000032: the group folder is 'p' + the first two digits of the 8-digit subject id."""
    subject = f"{int(subject_id):08d}"
    return f"files/p{subject[:2]}/p{subject}"


def image_path(subject_id: int, study_id: int, dicom_id: str) -> str:
    return f"{subject_dir(subject_id)}/s{int(study_id)}/{dicom_id}.jpg"


def find_image(root: str | Path, subject_id: int, study_id: int, dicom_id: str) -> str:
    """image_path's .jpg (MIMIC-CXR-JPG), or the .dcm beside it where only that exists (MIMIC-CXR's DICOM
    release, same folders and names)."""
    jpg = image_path(subject_id, study_id, dicom_id)
    dcm = jpg[: -len(".jpg")] + ".dcm"
    return dcm if not (Path(root) / jpg).is_file() and (Path(root) / dcm).is_file() else jpg


def report_path(subject_id: int, study_id: int) -> str:
    return f"{subject_dir(subject_id)}/s{int(study_id)}.txt"


def require(path: str | Path, what: str) -> Path:
    """The path, or a one-line FileNotFoundError that says which data param points at it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
