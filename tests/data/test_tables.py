import pandas as pd
import pytest

from cxrldm.data import layout, tables


def metadata(rows):
    return pd.DataFrame([{"dicom_id": d, "subject_id": s, "study_id": t, "ViewPosition": v} for d, s, t, v in rows])


def touch_images(root, table):
    for row in table.itertuples():
        path = root / layout.image_path(row.subject_id, row.study_id, row.dicom_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jpg")


ROWS = [
    ("a", 10000001, 50000001, "PA"),
    ("b", 10000001, 50000001, "LATERAL"),
    ("c", 10000002, 50000002, "AP"),
    ("d", 10000002, 50000003, "PA"),
    ("e", 10000003, 50000004, None),
    ("f", 10000004, 50000005, "PA"),
    ("g", 10000005, 50000006, "PA"),
]


def test_keeps_only_pa_and_counts_missing_images(tmp_path):
    meta = metadata(ROWS)
    touch_images(tmp_path, meta[meta.dicom_id != "g"])
    split = meta.assign(split=["train", "train", "test", "test", "validate", "train", "train"])
    pa, counts = tables.select_pa(meta, split, tmp_path, {"files/p10/p10000001/s50000001/a.jpg": "ff"})
    assert list(pa.dicom_id) == ["a", "d", "f"]
    assert list(pa.split) == ["train", "test", "train"]
    assert list(pa.sha256) == ["ff", "", ""]
    assert pa.path[0] == "files/p10/p10000001/s50000001/a.jpg"
    assert counts["view_images"] == 4 and counts["missing_on_disk"] == 1 and counts["pa_images"] == 3
    assert list(pa.columns) == tables.PA_COLUMNS


def test_mimic_cxrs_dicom_release_is_found_where_there_is_no_jpeg(tmp_path):
    meta = metadata(ROWS[:1] + ROWS[3:4])
    touch_images(tmp_path, meta[meta.dicom_id == "a"])
    dcm = tmp_path / "files/p10/p10000002/s50000003/d.dcm"  # MIMIC-CXR 2.0.0: same folders, .dcm
    dcm.parent.mkdir(parents=True)
    dcm.write_bytes(b"dcm")
    pa, counts = tables.select_pa(meta, meta.assign(split="train"), tmp_path, {})
    assert list(pa.path) == ["files/p10/p10000001/s50000001/a.jpg", "files/p10/p10000002/s50000003/d.dcm"]
    assert counts["missing_on_disk"] == 0


def test_images_absent_from_the_split_file_are_dropped_and_counted(tmp_path):
    meta = metadata(ROWS)
    touch_images(tmp_path, meta)
    split = meta[meta.dicom_id != "f"].assign(split="train")
    pa, counts = tables.select_pa(meta, split, tmp_path, {})
    assert "f" not in set(pa.dicom_id) and counts["not_in_split_file"] == 1


def test_a_split_file_that_leaks_a_patient_is_refused(tmp_path):
    meta = metadata([("a", 10000001, 50000001, "PA"), ("b", 10000001, 50000002, "PA")])
    touch_images(tmp_path, meta)
    split = meta.assign(split=["train", "test"])
    with pytest.raises(ValueError, match="more than one split"):
        tables.select_pa(meta, split, tmp_path, {})


def test_patient_split_is_grouped_deterministic_and_stable():
    subjects = list(range(10_000_000, 10_004_000))
    split = tables.patient_split(subjects + subjects[:50], (0.8, 0.1, 0.1), seed=1)
    assert len(split) == len(subjects)  # one entry per patient
    assert split.equals(tables.patient_split(subjects, (0.8, 0.1, 0.1), seed=1))
    fractions = split.value_counts(normalize=True)
    assert abs(fractions["train"] - 0.8) < 0.03 and abs(fractions["test"] - 0.1) < 0.02
    fewer = tables.patient_split(subjects[::3], (0.8, 0.1, 0.1), seed=1)
    assert (fewer == split[fewer.index]).all()  # other patients never move anyone
    assert not split.equals(tables.patient_split(subjects, (0.8, 0.1, 0.1), seed=2))
    with pytest.raises(ValueError, match="sum to 1"):
        tables.patient_split(subjects, (0.8, 0.1, 0.2), seed=1)


def test_by_patient_split_never_puts_a_patient_in_two_splits(tmp_path):
    rows = [(f"d{i}", 10_000_000 + i % 40, 50_000_000 + i, "PA") for i in range(200)]
    meta = metadata(rows)
    touch_images(tmp_path, meta)
    pa, _ = tables.select_pa(meta, None, tmp_path, {}, seed=7)
    assert (pa.groupby("subject_id").split.nunique() == 1).all()
    assert set(pa.split) == set(layout.SPLITS)


def test_demo_split_file_is_patient_disjoint(demo_root):
    split = pd.read_csv(demo_root / layout.SPLIT_CSV)
    assert (split.groupby("subject_id").split.nunique() == 1).all()


def test_read_table_names_the_file_when_columns_are_missing(tmp_path):
    path = tmp_path / "meta.csv"
    pd.DataFrame({"dicom_id": ["a"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"meta\.csv lacks columns \['subject_id'\]"):
        tables.read_table(path, ["dicom_id", "subject_id"], "metadata")
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        tables.read_table(tmp_path / "nowhere.csv", ["dicom_id"], "metadata")


def test_a_view_no_image_has_is_refused_with_the_views_present(tmp_path):
    meta = metadata(ROWS)
    touch_images(tmp_path, meta)
    with pytest.raises(
        ValueError,
        match=r"filter_pa.view: no image has ViewPosition 'XX'; the views present are "
        r"PA \(4\), LATERAL \(1\), AP \(1\), \(blank\) \(1\)",
    ):
        tables.select_pa(meta, None, tmp_path, {}, view="XX")
