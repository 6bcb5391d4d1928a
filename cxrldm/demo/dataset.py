"""The embedded demo dataset: synthetic studies in the exact MIMIC-CXR-JPG 2.0.0 + MIMIC-CXR 2.0.0
layout (images, reports, metadata, split, CheXpert labels, reports zip, SHA256SUMS.txt), and the same
dataset as one manifest (manifest.csv, with each patient's sex and age) for data.format: manifest, and a
MIMIC-IV-style patients.csv.gz (subject_id, gender, anchor_age, ...) for the demographics join."""

from __future__ import annotations

import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cxrldm.data import layout
from cxrldm.demo import phantoms
from cxrldm.demo.findings import DEVICES, LOBES, SIDES, SIZES, Findings
from cxrldm.demo.reports import write_report
from cxrldm.io import file_sha256

VIEW_CODES = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral", "": ""}
ZIP_DATE = (2019, 9, 1, 0, 0, 0)


@dataclass(frozen=True)
class DemoImage:
    subject_id: int
    study_id: int
    dicom_id: str
    view: str  # ViewPosition, "" when blank in the metadata
    height: int
    width: int
    findings: Findings
    anatomy: phantoms.PatientAnatomy
    seed: int


def sample_findings(rng: np.random.Generator, view: str) -> Findings:
    """A study's findings; about a quarter are normal, portable AP studies carry more devices."""
    if rng.random() < 0.25:
        return Findings()
    effusion = rng.random() < 0.3
    opacity = rng.random() < 0.2
    device_p = 0.35 if view == "AP" else 0.1
    return Findings(
        cardiomegaly=int(rng.choice(4, p=[0.6, 0.15, 0.15, 0.1])),
        effusion_side=str(rng.choice(SIDES)) if effusion else None,
        effusion_size=str(rng.choice(SIZES)) if effusion else None,
        pneumothorax_side=str(rng.choice(["left", "right"])) if rng.random() < 0.1 else None,
        opacity_lobe=str(rng.choice(LOBES)) if opacity else None,
        opacity_is_consolidation=bool(opacity and rng.random() < 0.5),
        edema=int(rng.choice(4, p=[0.85, 0.07, 0.05, 0.03])),
        devices=tuple(str(d) for d in DEVICES if rng.random() < device_p),
    )


def study_views(rng: np.random.Generator) -> tuple[str, list[str]]:
    """(the study's frontal view, the ViewPositions of its images): mostly PA + lateral, some
    portable AP only, some extra images with a blank ViewPosition or a left lateral."""
    frontal = "AP" if rng.random() < 0.15 else "PA"
    views = [frontal]
    if frontal == "PA" and rng.random() < 0.8:
        views.append("LATERAL" if rng.random() < 0.9 else "LL")
    if rng.random() < 0.07:
        views.append("")
    return frontal, views


def dicom_id(rng: np.random.Generator) -> str:
    """Same shape as MIMIC-CXR-JPG's: five groups of eight hex digits."""
    return "-".join(f"{int(x):08x}" for x in rng.integers(0, 2**32, size=5))


def image_shape(rng: np.random.Generator, view: str, min_side: int) -> tuple[int, int]:
    """(height, width) with the short side at least `min_side`: portrait frontals, landscape laterals
    now and then, as detector sizes vary."""
    short = int(min_side + rng.integers(0, min_side // 6))
    ratio = rng.uniform(1.0, 1.3)
    if view in ("LATERAL", "LL") and rng.random() < 0.3:
        return short, int(short * ratio)
    return int(short * ratio), short


def plan(n_studies: int, seed: int, min_side: int, split_fractions=(0.8, 0.1, 0.1)):
    """Everything about the dataset except pixels: images, reports, split, labels."""
    rng = np.random.default_rng(seed)
    images, reports, labels, split = [], {}, [], {}
    subject_ids = rng.choice(np.arange(10_000_000, 20_000_000), size=n_studies, replace=False)
    study_ids = rng.choice(np.arange(50_000_000, 60_000_000), size=n_studies, replace=False)
    study, patient = 0, 0
    while study < n_studies:
        subject = int(subject_ids[patient])
        anatomy = phantoms.sample_anatomy(rng)
        split[subject] = str(rng.choice(layout.SPLITS, p=split_fractions))
        n_patient_studies = min(n_studies - study, int(rng.choice([1, 2, 3], p=[0.85, 0.1, 0.05])))
        date = 21000101 + int(rng.integers(0, 90)) * 10000 + int(rng.integers(0, 12)) * 100
        for k in range(n_patient_studies):
            study_id = int(study_ids[study])
            frontal, views = study_views(rng)
            findings = sample_findings(rng, frontal)
            reports[layout.report_path(subject, study_id)] = write_report(findings, frontal, rng)
            labels.append({"subject_id": subject, "study_id": study_id, **findings.chexpert()})
            for view in views:
                height, width = image_shape(rng, view, min_side)
                images.append(
                    (
                        DemoImage(
                            subject,
                            study_id,
                            dicom_id(rng),
                            view,
                            height,
                            width,
                            findings,
                            anatomy,
                            int(rng.integers(2**31)),
                        ),
                        date + 100 * k,
                    )
                )
            study += 1
        patient += 1
    return images, reports, labels, split


def metadata_row(image: DemoImage, date: int) -> dict:
    portable = image.view == "AP"
    description = "CHEST (PORTABLE AP)" if portable else "CHEST (PA AND LAT)"
    return {
        "dicom_id": image.dicom_id,
        "subject_id": image.subject_id,
        "study_id": image.study_id,
        "PerformedProcedureStepDescription": description,
        "ViewPosition": image.view or None,
        "Rows": image.height,
        "Columns": image.width,
        "StudyDate": date,
        "StudyTime": 80000.0 + (image.seed % 100000) / 7.0,
        "ProcedureCodeSequence_CodeMeaning": description,
        "ViewCodeSequence_CodeMeaning": VIEW_CODES[image.view] or None,
        "PatientOrientationCodeSequence_CodeMeaning": "Recumbent" if portable else "Erect",
    }


def render_to(root: Path, image: DemoImage) -> str:
    # A blank ViewPosition in MIMIC is usually a frontal image whose header lacks the tag.
    view = image.view or "PA"
    pixels = phantoms.render(
        image.findings, view, np.random.default_rng(image.seed), image.height, image.width, patient=image.anatomy
    )
    relative = layout.image_path(image.subject_id, image.study_id, image.dicom_id)
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)
    return relative


MANIFEST = "manifest.csv"
PATIENTS = "patients.csv.gz"  # as MIMIC-IV's hosp/patients.csv.gz


def patients_table(images, seed: int) -> pd.DataFrame:
    """MIMIC-IV's patients table for the demo's patients: gender, anchor_age (the age at anchor_year, the
    year of the patient's first study), anchor_year_group, dod (empty)."""
    rows = {}
    for image, date in images:
        if image.subject_id not in rows:
            year = date // 10000
            person = demographics(image, seed)
            rows[image.subject_id] = {
                "subject_id": image.subject_id,
                "gender": person["sex"],
                "anchor_age": person["age"],
                "anchor_year": year,
                "anchor_year_group": f"{year - year % 3} - {year - year % 3 + 2}",
                "dod": "",
            }
    return pd.DataFrame(list(rows.values())).sort_values("subject_id")


def demographics(image: DemoImage, seed: int) -> dict:
    """The patient's sex and age: sex follows the phantom's breast shadow (so the films show it); age is
    drawn from the patient's own stream, apart from everything the images are drawn from."""
    age = int(np.random.default_rng([seed, image.subject_id]).integers(20, 91))
    return {"sex": "F" if image.anatomy.breast > 0 else "M", "age": age}


def manifest_rows(images, reports: dict, labels: list[dict], split: dict, seed: int) -> pd.DataFrame:
    """The dataset as one manifest (cxrldm/data/manifest.py): a row per image with its path, view, split,
    report text, CheXpert labels, sex and age."""
    by_study = {row["study_id"]: row for row in labels}
    rows = []
    for image, _ in images:
        study_labels = {k: v for k, v in by_study[image.study_id].items() if k not in ("subject_id", "study_id")}
        rows.append(
            {
                "path": layout.image_path(image.subject_id, image.study_id, image.dicom_id),
                "subject_id": image.subject_id,
                "study_id": image.study_id,
                "view": image.view,
                "split": split[image.subject_id],
                **demographics(image, seed),
                "report": reports[layout.report_path(image.subject_id, image.study_id)],
                **study_labels,
            }
        )
    return pd.DataFrame(rows)


def generate(root: str | Path, n_studies: int, seed: int, min_side: int = 600, workers: int = 2, progress=None) -> dict:
    """Write the demo dataset into `root` (an empty directory). Returns counts."""
    root = Path(root)
    images, reports, labels, split = plan(n_studies, seed, min_side)
    with ProcessPoolExecutor(workers) as pool:
        written = pool.map(render_to, [root] * len(images), [image for image, _ in images], chunksize=8)
        for _ in progress(written, total=len(images)) if progress else written:
            pass
    for relative, text in reports.items():
        (root / relative).write_text(text)
    with zipfile.ZipFile(root / layout.REPORTS_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, text in sorted(reports.items()):
            archive.writestr(zipfile.ZipInfo(relative, ZIP_DATE), text, zipfile.ZIP_DEFLATED)
    metadata = pd.DataFrame([metadata_row(image, date) for image, date in images], columns=layout.METADATA_COLUMNS)
    gz = {"method": "gzip", "mtime": 0}
    metadata.to_csv(root / layout.METADATA_CSV, index=False, compression=gz)
    split_table = metadata[["dicom_id", "study_id", "subject_id"]].assign(split=metadata.subject_id.map(split))
    split_table.to_csv(root / layout.SPLIT_CSV, index=False, compression=gz)
    pd.DataFrame(labels).to_csv(root / layout.CHEXPERT_CSV, index=False, compression=gz)
    manifest_rows(images, reports, labels, split, seed).to_csv(root / MANIFEST, index=False)
    patients_table(images, seed).to_csv(root / PATIENTS, index=False, compression=gz)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    (root / layout.CHECKSUMS).write_text("".join(f"{file_sha256(p)} {p.relative_to(root)}\n" for p in files))
    views = metadata.ViewPosition.fillna("blank").value_counts()
    return {
        "studies": len(reports),
        "patients": len(split),
        "images": len(images),
        **{f"images_{view}": int(n) for view, n in sorted(views.items())},
    }
