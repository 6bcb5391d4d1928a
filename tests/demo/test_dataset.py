"""The embedded demo dataset: MIMIC-CXR layout, columns, views, labels that agree with reports."""

import re
import zipfile

import numpy as np
import pandas as pd
from PIL import Image

from cxrldm.data import layout
from cxrldm.data.labels import CHEXPERT_LABELS
from cxrldm.data.reports import parse_report
from cxrldm.demo import dataset as demo
from cxrldm.io import file_sha256


def test_layout_and_columns(demo_root):
    metadata = pd.read_csv(demo_root / layout.METADATA_CSV, dtype={"dicom_id": str})
    assert tuple(metadata.columns) == layout.METADATA_COLUMNS
    assert tuple(pd.read_csv(demo_root / layout.SPLIT_CSV).columns) == layout.SPLIT_COLUMNS
    chexpert = pd.read_csv(demo_root / layout.CHEXPERT_CSV)
    assert list(chexpert.columns[:2]) == ["subject_id", "study_id"] and len(chexpert.columns) == 16
    assert tuple(chexpert.columns[2:]) == CHEXPERT_LABELS
    assert set(chexpert[list(CHEXPERT_LABELS)].stack().dropna()) <= {1.0, 0.0, -1.0}
    for row in metadata.itertuples():
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}", row.dicom_id)
        assert 10_000_000 <= row.subject_id < 20_000_000 and 50_000_000 <= row.study_id < 60_000_000
        image = demo_root / layout.image_path(row.subject_id, row.study_id, row.dicom_id)
        assert re.fullmatch(r"files/p1\d/p1\d{7}/s5\d{7}/[-0-9a-f]+\.jpg", str(image.relative_to(demo_root)))
        with Image.open(image) as jpeg:
            assert jpeg.format == "JPEG" and jpeg.mode == "L"
            assert (jpeg.height, jpeg.width) == (row.Rows, row.Columns) and min(jpeg.size) >= 96
        assert (demo_root / layout.report_path(row.subject_id, row.study_id)).is_file()


def test_views_include_what_filtering_must_drop(demo_root):
    metadata = pd.read_csv(demo_root / layout.METADATA_CSV)
    views = set(metadata.ViewPosition.fillna(""))
    assert {"PA", "LATERAL"} <= views and views - {"PA"}
    assert metadata.groupby("study_id").size().max() >= 2
    assert metadata.groupby("subject_id").study_id.nunique().max() >= 2


def test_reports_zip_and_checksums_match_the_files(demo_root):
    with zipfile.ZipFile(demo_root / layout.REPORTS_ZIP) as archive:
        for name in archive.namelist()[:10]:
            assert archive.read(name).decode() == (demo_root / name).read_text()
    sums = dict(line.split(" ")[::-1] for line in (demo_root / layout.CHECKSUMS).read_text().splitlines())
    assert layout.METADATA_CSV in sums and any(path.endswith(".jpg") for path in sums)
    assert sums[layout.METADATA_CSV] == file_sha256(demo_root / layout.METADATA_CSV)


def test_labels_agree_with_reports(demo_root):
    chexpert = pd.read_csv(demo_root / layout.CHEXPERT_CSV)
    checked = 0
    for row in chexpert.to_dict("records"):
        report = parse_report((demo_root / layout.report_path(row["subject_id"], row["study_id"])).read_text())
        text = " ".join(report["sentences"]).lower()
        if not text:
            continue  # a report without findings or impression, as some MIMIC reports are
        enlarged = re.search(r"heart is \w+ enlarged|\w+ enlarged heart", text) is not None
        effusion = re.search(r"(small|moderate|large) (left |right |bilateral )?pleural effusion", text) is not None
        assert (row["Cardiomegaly"] == 1.0) == enlarged, text
        assert (row["Pleural Effusion"] == 1.0) == effusion, text
        assert (row["No Finding"] == 1.0) == (
            "no acute cardiopulmonary process" in text
            or not (enlarged or effusion or "pneumothorax measuring" in text or "edema" in text or "lobe" in text)
        ), text
        checked += 1
    assert checked >= len(chexpert) * 0.8


def test_same_seed_same_bytes(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for folder, seed in ((a, 5), (b, 5), (c, 6)):
        folder.mkdir()
        demo.generate(folder, n_studies=6, seed=seed, min_side=80, workers=1)
    assert (a / layout.CHECKSUMS).read_text() == (b / layout.CHECKSUMS).read_text()
    assert (a / layout.CHECKSUMS).read_text() != (c / layout.CHECKSUMS).read_text()


def test_cardiomegaly_images_have_wider_hearts(demo_root):
    """The images show what the labels say: mean heart-row brightness is higher with cardiomegaly."""
    metadata = pd.read_csv(demo_root / layout.METADATA_CSV, dtype={"dicom_id": str})
    labels = pd.read_csv(demo_root / layout.CHEXPERT_CSV)
    pa = metadata[metadata.ViewPosition == "PA"].merge(labels, on=["subject_id", "study_id"])

    def lower_middle(row):
        with Image.open(demo_root / layout.image_path(row.subject_id, row.study_id, row.dicom_id)) as im:
            a = np.asarray(im.resize((64, 64)), dtype=float)
        return a[36:44, 24:48].mean()

    big = [lower_middle(r) for r in pa[pa.Cardiomegaly == 1.0].itertuples()]
    normal = [lower_middle(r) for r in pa[pa.Cardiomegaly == 0.0].itertuples()]
    assert big and normal and np.mean(big) > np.mean(normal)
