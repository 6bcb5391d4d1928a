"""A manifest (cxrldm.data.manifest) from a folder of DICOM radiographs, reading headers only (and the element
headers up to the file's end, so a file that does not hold the pixel data it promises is unreadable; nothing
is decoded).

    python -m cxrldm.cli.dicom_manifest FOLDER [--out FOLDER/manifest.csv]

Writes OUT with path (relative to FOLDER, so FOLDER is data.root), subject_id, study_id, dicom_id, view, sex
and age; OUT's stem + _ids.csv with the PatientID or StudyInstanceUID each integer stands for (identifiers:
keep it with the images, never beside shared results); OUT's stem + _unreadable.csv with each DICOM file that
could not be used and why, in plain words (dicom.read_header: empty, not DICOM, cut short, no pixel data, ...). Files that neither end in .dcm nor start with the DICM preamble are ignored.

subject_id is PatientID where every PatientID is an integer, else patients numbered 1, 2, ... in sorted
order; study_id numbers the StudyInstanceUIDs 1, 2, ... in sorted order. dicom_id is the file name without
its extension where those are unique (MIMIC-CXR's layout), else the SOPInstanceUID. view comes from
ViewPosition or the view code sequence (blank where unknown, so filter_pa leaves the image out), sex from
PatientSex, age in years from PatientAge (or birth and study dates).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from cxrldm.data import dicom
from cxrldm.data.manifest import VIEWS
from cxrldm.io import write_csv

COLUMNS = ["path", "subject_id", "study_id", "dicom_id", "view", "sex", "age"]


def numbered(values: pd.Series, keep_integers: bool) -> dict[str, int]:
    """original -> integer: the integers themselves where all are (and keep_integers), else 1, 2, ... sorted."""
    unique = sorted(set(values))
    if keep_integers and all(v.isdigit() and len(v) <= 18 for v in unique):
        return {v: int(v) for v in unique}
    return {v: k for k, v in enumerate(unique, 1)}


def scan(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """(manifest, id mapping, unreadable files, number of ignored non-DICOM files) of every file under folder."""
    headers, unreadable, ignored, first_of = [], [], 0, {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if not dicom.is_dicom(path):
            ignored += 1
            continue
        try:
            header = dicom.read_header(path)
        except dicom.DicomError as error:
            unreadable.append({"path": relative, "reason": str(error)})
            continue
        if header["sop_uid"] in first_of:
            unreadable.append(
                {"path": relative, "reason": f"{path}: the same SOPInstanceUID as {first_of[header['sop_uid']]}"}
            )
            continue
        first_of[header["sop_uid"]] = relative
        headers.append({"path": relative, **header})
    table = pd.DataFrame(headers, columns=["path", "patient_id", "study_uid", "sop_uid", "view", "sex", "age"])
    subjects = numbered(table.patient_id, keep_integers=True)
    studies = numbered(table.study_uid, keep_integers=False)
    stems = table.path.map(lambda p: Path(p).stem)
    manifest = pd.DataFrame(
        {
            "path": table.path,
            "subject_id": table.patient_id.map(subjects),
            "study_id": table.study_uid.map(studies),
            "dicom_id": stems if not stems.duplicated().any() else table.sop_uid,
            "view": table.view.where(table.view.isin(VIEWS), ""),
            "sex": table.sex,
            "age": table.age.astype("Int64"),
        },
        columns=COLUMNS,
    )
    ids = pd.DataFrame(
        [{"column": "subject_id", "id": i, "original": v} for v, i in subjects.items()]
        + [{"column": "study_id", "id": i, "original": v} for v, i in studies.items()],
        columns=["column", "id", "original"],
    )
    return manifest, ids, pd.DataFrame(unreadable, columns=["path", "reason"]), ignored


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a manifest from a folder of DICOM radiographs.")
    parser.add_argument("folder", help="the folder to walk (it becomes data.root)")
    parser.add_argument("--out", help="the manifest to write (default FOLDER/manifest.csv)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise SystemExit(f"error: {folder}: not a folder")
    out = Path(args.out) if args.out else folder / "manifest.csv"
    manifest, ids, unreadable, ignored = scan(folder)
    if not len(manifest):
        raise SystemExit(
            f"error: {folder}: no usable DICOM radiograph ({len(unreadable)} unreadable, {ignored} other files)"
        )
    write_csv(out, manifest)
    write_csv(out.with_name(out.stem + "_ids.csv"), ids)
    write_csv(out.with_name(out.stem + "_unreadable.csv"), unreadable)
    unknown = int((manifest.view == "").sum())
    print(
        f"wrote {out}: {len(manifest)} images of {manifest.subject_id.nunique()} patients in "
        f"{manifest.study_id.nunique()} studies ({unknown} with no known view); {len(unreadable)} unreadable "
        f"DICOM files listed in {out.stem}_unreadable.csv; {ignored} other files ignored"
    )
    for row in unreadable.head(10).itertuples():
        print(f"unreadable: {row.reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
