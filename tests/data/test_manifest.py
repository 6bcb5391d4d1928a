"""Any collection through one manifest (data.format: manifest): the demo's manifest gives the data stages
the same outputs as its MIMIC layout; bad manifests get one line naming the column and a row; prompts from
a template over labels and metadata (a label-only manifest through the whole tiny pipeline:
tests/cli/test_dicom_manifest.py)."""

import shutil

import numpy as np
import pandas as pd
import pytest
from pipeline_project import make_project, pristine_copy, ran_stages, run, set_param

from cxrldm.data import manifest as mf

MANIFEST_DATA = {
    "data.format": "manifest",
    "data.index": "manifest.csv",
    "data.labels": "manifest.csv",
    "data.checksums": "SHA256SUMS.txt",
    "data.reports": "data/demo/manifest.csv",
    "filter_pa.split_file": "manifest.csv",
}


def write(tmp_path, rows: dict, name="m.csv"):
    pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
    return tmp_path / name


GOOD = {"path": ["a/1.png", "a/2.png", "b/3.png"], "subject_id": [1, 1, 2], "study_id": [10, 11, 20]}


def test_a_minimal_manifest_reads_with_defaults(tmp_path):
    table = mf.read_manifest(write(tmp_path, GOOD))
    assert table.dicom_id.tolist() == ["1", "2", "3"] and table.view.tolist() == ["", "", ""]
    assert table.subject_id.dtype == np.int64


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"subject_id": None},
            "m.csv: missing required column subject_id (a manifest needs path, subject_id, study_id)",
        ),
        (
            {"path": ["a/1.png", "a/1.png", "b/3.png"]},
            "m.csv: column path, rows 1 and 2: the same image 'a/1.png' twice",
        ),
        ({"split": ["train", "test", "train"]}, "m.csv: column split, rows 1 and 2: subject 1 is in train and test"),
        (
            {"split": ["train", "train", "valid"]},
            "m.csv: column split, row 3: 'valid'; expected one of train, validate, test",
        ),
        ({"view": ["PA", "Frontal", "PA"]}, "m.csv: column view, row 2: unknown view 'FRONTAL'"),
        ({"Cardiomegaly": [1, 2, 0]}, "m.csv: column Cardiomegaly, row 2: 2; expected 1, 0, -1 or blank"),
        ({"study_id": [10, "x", 20]}, "m.csv: column study_id, row 2: 'x' is not an integer"),
    ],
)
def test_bad_manifests_are_one_line_naming_column_and_row(tmp_path, change, message):
    rows = {k: v for k, v in {**GOOD, **change}.items() if v is not None}  # None: the column left out
    with pytest.raises(mf.ManifestError) as error:
        mf.read_manifest(write(tmp_path, rows))
    assert message in str(error.value), str(error.value)
    assert "\n" not in str(error.value)


def test_templates_fill_findings_in_words_and_metadata_columns():
    values = {"age": 64.0, "sex": "F", "Cardiomegaly": 1.0, "Pleural Effusion": 1.0, "Edema": -1.0, "No Finding": None}
    assert (
        mf.render_template("{age} year old {sex}. {findings}", values)
        == "64 year old F. Cardiomegaly, pleural effusion."
    )
    assert mf.render_template("{findings}", {"No Finding": 1.0}) == "No finding."
    assert mf.render_template("{sex} patient. {findings}", {"Edema": 1.0}) == "patient. Edema."  # missing: blank


@pytest.mark.pipeline
def test_the_demo_manifest_gives_the_same_data_stage_outputs_as_its_mimic_layout(tmp_path):
    project = make_project(tmp_path / "project")
    run(project, "repro", "extract_reports", "resize")
    outputs = ["data/pa.csv", "data/reports.csv", "data/resized"]
    for path in outputs:
        target = tmp_path / "mimic" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if (project / path).is_dir():
            shutil.copytree(project / path, target)
        else:
            shutil.copy(project / path, target)
    for dotted, value in MANIFEST_DATA.items():
        set_param(project, dotted, value)
    ran = ran_stages(run(project, "repro", "extract_reports", "resize").stdout)
    assert {"filter_pa", "extract_reports"} <= set(ran)
    for path in ("data/pa.csv", "data/reports.csv", "data/resized/images.csv"):
        assert (project / path).read_bytes() == (tmp_path / "mimic" / path).read_bytes(), path
    images = pd.read_csv(project / "data/resized/images.csv")
    assert len(images) > 10
    for relative in images.path:
        assert (project / "data/resized" / relative).read_bytes() == (
            tmp_path / "mimic/data/resized" / relative
        ).read_bytes()


@pytest.mark.pipeline
def test_a_template_naming_a_missing_column_is_one_line(tiny_project, tmp_path):
    project = pristine_copy(tiny_project, tmp_path / "project")
    for dotted, value in {
        **MANIFEST_DATA,
        "extract_reports.prompt": "template",
        "extract_reports.template": "{weight} kg. {findings}",
    }.items():
        set_param(project, dotted, value)
    result = run(project, "repro", "extract_reports", check=False)
    assert result.returncode != 0
    assert "error: extract_reports.template: {weight} is not a column of the manifest or the labels" in result.stderr


def test_a_studys_report_comes_from_its_first_row_with_text():
    import stages.extract_reports

    manifest = pd.DataFrame(
        {
            "path": ["a/lat.png", "a/pa.png", "b/pa.png"],
            "subject_id": [1, 1, 2],
            "study_id": [10, 10, 20],
            "report": ["", "FINDINGS: The heart is enlarged.", ""],
        }
    )
    studies = pd.DataFrame({"subject_id": [1, 2], "study_id": [10, 20]})
    (first, missing_first), (second, missing_second) = stages.extract_reports.manifest_reports(manifest, studies)
    assert first["sentences"] == ["The heart is enlarged."] and not missing_first
    assert second["sentences"] == [] and missing_second


def test_ages_as_text_are_read_as_numbers_or_unknown():
    from cxrldm.data.labels import subgroup_names

    ages = pd.Series(["65", "39", "065Y", None, 40.0])
    assert subgroup_names(ages, "age", [40, 65]).tolist() == [">=65", "<40", "unknown", "unknown", "40-64"]
    assert subgroup_names(pd.Series(["F", "", None]), "sex", []).tolist() == ["F", "unknown", "unknown"]


def test_parquet_tables_read_with_pyarrow_or_say_it_is_needed(tmp_path):
    from cxrldm.data import tables

    path = tmp_path / "labels.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(
            ValueError, match=r"labels.parquet: reading Parquet needs pyarrow; pip install pyarrow"
        ) as error:
            tables.read_table(path, ["study_id"], "label file")
        assert "\n" not in str(error.value)
        with pytest.raises(mf.ManifestError, match="reading Parquet needs pyarrow"):
            mf.read_manifest(path)
        return
    pd.DataFrame(GOOD).to_parquet(path)
    assert tables.read_table(path, ["study_id"], "label file").study_id.tolist() == [10, 11, 20]
    assert mf.read_manifest(path).dicom_id.tolist() == ["1", "2", "3"]
