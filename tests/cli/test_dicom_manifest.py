"""A manifest from a folder of DICOM files (python -m cxrldm.cli.dicom_manifest): several patients, views,
sexes and ages become a manifest that read_manifest accepts, with the id mapping beside it; unreadable
files are listed with the reason and counted, never fatal, and a file that does not hold the pixel data its
header promises (empty, not DICOM, header or pixel data cut short, no pixel data, compressed fragments cut
short) is among them with what is wrong in plain words; the tiny demo's films as DICOM studies (12-bit,
MONOCHROME1, windowed), with labels joined and no report text, give the same resized images as the demo's
JPEGs and train, sample and evaluate the whole tiny pipeline, whose sample and edit stages then write their
films as valid DICOM (sample.dicom, edit.dicom) that carry nothing of the source patients."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_files import PATIENT, encapsulated, iod_problems, jpeg_lossless, radiograph, save, values_found
from PIL import Image
from pipeline_project import pristine_copy, ran_stages, run, set_param
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, RLELossless

from cxrldm.cli import dicom_manifest
from cxrldm.data.dicom_output import model_hash
from cxrldm.data.manifest import read_manifest

STUDY_ROOT = "1.2.826.0.1.3680043.10.543."


def view_code(meaning: str) -> list[Dataset]:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10214", "SRT", meaning
    return [code]


def film(folder, relative, patient, study, **attributes):
    ds = radiograph(
        np.full((8, 6), 100, np.uint8), PatientID=patient, StudyInstanceUID=STUDY_ROOT + study, **attributes
    )
    for absent in ("PatientAge", "PatientBirthDate", "PatientSex", "ViewPosition"):
        if attributes.get(absent) is None and absent in ds:
            del ds[absent]
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    return save(ds, folder / relative)


def test_a_folder_of_dicom_studies_becomes_a_manifest_with_its_id_mapping_and_unreadable_files(tmp_path, capsys):
    root = tmp_path / "export"
    film(root, "A/1/pa.dcm", "MRN-A", "1", ViewPosition="PA", PatientSex="F", PatientAge="067Y")
    film(root, "A/1/lat.dcm", "MRN-A", "1", ViewPosition="LATERAL", PatientSex="F", PatientAge="067Y")
    film(
        root,
        "A/2/frontal.dcm",
        "MRN-A",
        "2",
        ViewCodeSequence=view_code("postero-anterior"),
        PatientSex="F",
        PatientAge="068Y",
    )
    film(
        root,
        "B/3/IM0001",
        "MRN-B",
        "3",
        ViewPosition="AP",
        PatientSex="M",
        PatientBirthDate="19600701",
        StudyDate="20150630",
    )  # no suffix: the DICM preamble
    film(root, "C/4/odd.dcm", "MRN-C", "4", ViewPosition="XYZ", PatientAge="006M")
    bad = radiograph(np.zeros((8, 6), np.uint8))
    del bad.PatientID
    save(bad, root / "C/4/anonymous.dcm")
    (root / "C/4/broken.dcm").write_bytes(b"not a dicom file")
    shutil.copy(root / "A/1/pa.dcm", root / "C/4/copy.dcm")
    (root / "A/1.txt").write_text("FINDINGS: none.")  # a report: ignored
    dicom_manifest.main([str(root)])
    out = capsys.readouterr()
    assert "5 images of 3 patients in 4 studies (1 with no known view); 3 unreadable" in out.out
    assert "1 other files ignored" in out.out and len(out.err.strip().splitlines()) == 3
    manifest = read_manifest(root / "manifest.csv")
    rows = manifest.set_index("path")
    assert rows.loc["A/1/pa.dcm", ["subject_id", "study_id", "view", "sex", "age"]].tolist() == [1, 1, "PA", "F", 67]
    assert rows.loc["A/1/lat.dcm", "view"] == "LATERAL" and rows.loc["A/2/frontal.dcm", "view"] == "PA"
    assert rows.loc["B/3/IM0001", ["subject_id", "view", "sex", "age"]].tolist() == [2, "AP", "M", 54]
    assert rows.loc["C/4/odd.dcm", ["view", "sex", "age"]].tolist() == ["", "", 0]
    assert rows.loc["B/3/IM0001", "dicom_id"] == "IM0001" and rows.loc["A/1/pa.dcm", "dicom_id"] == "pa"
    ids = pd.read_csv(root / "manifest_ids.csv", dtype=str)
    patients = dict(zip(ids[ids.column == "subject_id"].original, ids[ids.column == "subject_id"].id.astype(int)))
    assert patients == {"MRN-A": 1, "MRN-B": 2, "MRN-C": 3}
    studies = ids[ids.column == "study_id"]
    assert dict(zip(studies.original, studies.id.astype(int)))[STUDY_ROOT + "3"] == rows.loc["B/3/IM0001", "study_id"]
    unreadable = pd.read_csv(root / "manifest_unreadable.csv").set_index("path").reason
    assert set(unreadable.index) == {"C/4/anonymous.dcm", "C/4/broken.dcm", "C/4/copy.dcm"}
    assert "no PatientID" in unreadable["C/4/anonymous.dcm"] and "A/1/pa.dcm" in unreadable["C/4/copy.dcm"]
    assert "not a DICOM file (no DICM preamble; it looks like text)" in unreadable["C/4/broken.dcm"]


def test_integer_patient_ids_are_kept_and_repeated_file_names_give_sop_instance_uids(tmp_path):
    root = tmp_path / "export"
    first = film(root, "s1/IM0001.dcm", "10000032", "7", ViewPosition="PA")
    film(root, "s2/IM0001.dcm", "10000764", "8", ViewPosition="PA")
    dicom_manifest.main([str(root), "--out", str(tmp_path / "m.csv")])
    manifest = read_manifest(tmp_path / "m.csv")
    assert manifest.subject_id.tolist() == [10000032, 10000764]
    from pydicom import dcmread

    assert manifest.dicom_id[0] == dcmread(first).SOPInstanceUID and (tmp_path / "m_unreadable.csv").is_file()


def broken_files(root) -> dict[str, str]:
    """A folder's broken DICOM files (beside a good film) -> the words their reason must hold."""
    good = (root / "good.dcm").read_bytes()
    (root / "empty.dcm").write_bytes(b"")
    (root / "notes.dcm").write_text("FINDINGS: no acute process.\nIMPRESSION: normal chest.\n")
    Image.fromarray(np.zeros((8, 6), np.uint8)).save(root / "renamed.dcm", format="PNG")
    (root / "header.dcm").write_bytes(good[:400])  # cut inside the header
    (root / "cut.dcm").write_bytes(good[:-10])  # cut inside the pixel data
    short = radiograph(np.full((8, 6), 100, np.uint8), PatientID="MRN-S", StudyInstanceUID=STUDY_ROOT + "9")
    short.PixelData = short.PixelData[:20]  # the element itself too short
    save(short, root / "short.dcm")
    no_pixels = radiograph(np.full((8, 6), 100, np.uint8), PatientID="MRN-S", StudyInstanceUID=STUDY_ROOT + "9")
    del no_pixels.PixelData
    save(no_pixels, root / "no_pixels.dcm")
    stored = np.arange(48, dtype=np.uint16).reshape(8, 6) * 80
    lossless = encapsulated(
        radiograph(stored, 12, PatientID="MRN-S", StudyInstanceUID=STUDY_ROOT + "9"),
        jpeg_lossless(stored, 12),
        JPEGLosslessSV1,
    )
    whole = Path(save(lossless, root / "lossless.dcm")).read_bytes()
    (root / "lossless.dcm").unlink()
    (root / "fragment_cut.dcm").write_bytes(whole[:-30])  # cut inside the one fragment
    (root / "no_delimiter.dcm").write_bytes(whole[:-8])  # the fragment whole, no delimiter
    empty = radiograph(np.full((8, 6), 100, np.uint8), PatientID="MRN-S", StudyInstanceUID=STUDY_ROOT + "9")
    empty.PixelData = (
        b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # an empty offset table, no fragment
    )
    empty["PixelData"].VR = "OB"
    empty.file_meta.TransferSyntaxUID = RLELossless
    save(empty, root / "no_fragment.dcm")
    # a transfer syntax rewritten by a broken tool (same lengths): native data said to be RLE, JPEG said to be native
    native = ExplicitVRLittleEndian.encode() + b"\x00"
    (root / "native_as_rle.dcm").write_bytes(good.replace(native, RLELossless.encode() + b"\x00", 1))
    native = native.ljust(len(JPEGLosslessSV1), b"\x00")
    (root / "compressed_as_native.dcm").write_bytes(whole.replace(JPEGLosslessSV1.encode(), native, 1))
    return {
        "empty.dcm": "empty file",
        "notes.dcm": "not a DICOM file (no DICM preamble; it looks like text)",
        "renamed.dcm": "not a DICOM file (no DICM preamble; it looks like a PNG image)",
        "header.dcm": "truncated: header cut short (the file ends after 400 bytes, inside element",
        "cut.dcm": "pixel data cut short: 38 of 48 bytes (8 x 6 pixels of 8 bits)",
        "short.dcm": "pixel data cut short: 20 of 48 bytes",
        "no_pixels.dcm": "no pixel data (Rows and Columns but no Pixel Data element",
        "fragment_cut.dcm": "pixel data cut short: compressed (JPEG Lossless, Non-Hierarchical, First-Order "
        "Prediction (Process 14 [Selection Value 1])), the file ends inside fragment 1",
        "no_delimiter.dcm": "pixel data cut short: compressed (JPEG Lossless, Non-Hierarchical, First-Order "
        "Prediction (Process 14 [Selection Value 1])), the file ends after fragment 1, "
        "without the sequence delimiter",
        "no_fragment.dcm": "no pixel data (the compressed Pixel Data holds no fragment)",
        "native_as_rle.dcm": "uncompressed pixel data under a compressed transfer syntax (RLE Lossless)",
        "compressed_as_native.dcm": "compressed pixel data under an uncompressed transfer syntax (Explicit VR Little Endian)",
    }


def test_broken_files_are_listed_with_what_is_wrong_in_plain_words_without_decoding(tmp_path, capsys):
    root = tmp_path / "export"
    film(root, "good.dcm", "MRN-G", "1", ViewPosition="PA")
    padded = film(root, "padded.dcm", "MRN-P", "2", ViewPosition="PA")
    with open(padded, "ab") as f:  # bytes after the pixel data leave the image whole, as for pydicom
        f.write(b"\x00\x00\x00")
    expected = broken_files(root)
    dicom_manifest.main([str(root)])
    out = capsys.readouterr()
    assert f"wrote {root / 'manifest.csv'}: 2 images of 2 patients" in out.out
    assert f"{len(expected)} unreadable DICOM files listed in manifest_unreadable.csv" in out.out
    assert read_manifest(root / "manifest.csv").path.tolist() == ["good.dcm", "padded.dcm"]
    unreadable = pd.read_csv(root / "manifest_unreadable.csv").set_index("path").reason
    assert sorted(unreadable.index) == sorted(expected)
    for name, words in expected.items():
        reason = unreadable[name]
        assert reason.startswith(f"{root / name}: {words}") and "\n" not in reason, reason
        assert "force" not in reason.lower(), reason
    assert [line for line in out.err.splitlines() if "force" in line.lower()] == []


def test_a_folder_without_usable_dicom_files_is_one_line(tmp_path, capsys):
    (tmp_path / "broken.dcm").write_bytes(b"x")
    with pytest.raises(SystemExit, match="no usable DICOM radiograph \\(1 unreadable, 0 other files\\)"):
        dicom_manifest.main([str(tmp_path)])


@pytest.mark.pipeline
def test_a_dicom_export_trains_the_whole_tiny_pipeline_through_a_label_only_manifest_and_films_leave_as_dicom(
    tiny_project, tmp_path
):
    project = pristine_copy(tiny_project, tmp_path / "project")
    set_param(project, "resize.draft", False)  # a JPEG decoded in full, as the DICOM files hold it
    run(project, "repro", "resize")
    reference = pd.read_csv(project / "data/resized/images.csv", dtype={"dicom_id": str})
    shutil.copytree(project / "data/resized", tmp_path / "jpeg_resized")
    demo = pd.read_csv(project / "data/demo/manifest.csv")
    root = project / "data/dicom"  # beside the DVC outputs, as a hospital export would be
    for row in demo.itertuples():
        pixels = np.asarray(Image.open(project / "data/demo" / row.path).convert("L"))
        stored = 16 * (255 - pixels.astype(np.uint16)) + 8  # shown as `pixels` by the window and MONOCHROME1
        view = {"ViewPosition": row.view} if row.view == "PA" else {"ViewCodeSequence": view_code("lateral")}
        ds = radiograph(
            stored,
            12,
            "MONOCHROME1",
            WindowCenter="2048.5",
            WindowWidth="4081",
            PatientID=str(row.subject_id),
            StudyInstanceUID=STUDY_ROOT + str(row.study_id),
            PatientSex=row.sex,
            PatientAge=f"{int(row.age):03d}Y",
            **view,
        )
        target = root / row.path.replace(".jpg", ".dcm")
        target.parent.mkdir(parents=True, exist_ok=True)
        save(ds, target)
    dicom_manifest.main([str(root)])
    # the hospital joins its labels to the files; no report text: prompts come from a template
    manifest = pd.read_csv(root / "manifest.csv", dtype={"dicom_id": str})
    labels = demo.drop(columns=["subject_id", "study_id", "view", "split", "sex", "age", "report"])
    manifest = manifest.merge(labels.assign(path=labels.path.str.replace(".jpg", ".dcm")), on="path", validate="1:1")
    manifest.to_csv(root / "manifest.csv", index=False)
    for dotted, value in {
        "data.format": "manifest",
        "data.root": "data/dicom",
        "data.index": "manifest.csv",
        "data.labels": "manifest.csv",
        "data.checksums": "manifest.csv",
        "data.reports": "data/dicom/manifest.csv",
        "filter_pa.split": "by_patient",
        "filter_pa.split_file": "manifest.csv",
        "filter_pa.train_fraction": 0.6,
        "filter_pa.validate_fraction": 0.2,
        "filter_pa.test_fraction": 0.2,
        "extract_reports.prompt": "template",
        "extract_reports.template": "{age} year old {sex}. {findings}",
        "sample.dicom": True,
        "edit.dicom": True,
    }.items():
        set_param(project, dotted, value)
    ran = ran_stages(run(project, "repro", "evaluate", "edit").stdout)
    assert {"filter_pa", "resize", "extract_reports", "train_aekl", "train_ldm", "sample", "evaluate", "edit"} <= set(
        ran
    )
    images = pd.read_csv(project / "data/resized/images.csv", dtype={"dicom_id": str}, keep_default_na=False)
    assert sorted(images.dicom_id) == sorted(reference.dicom_id)  # the same PA films, no more
    assert set(images.window) == {"LINEAR center 2048.5 width 4081"} and set(images.inverted) == {"yes"}
    for relative in reference.path:
        assert (project / "data/resized" / relative).read_bytes() == (tmp_path / "jpeg_resized" / relative).read_bytes()
    reports = pd.read_csv(project / "data/reports.csv")
    prompts = [json.loads(s) for s in reports.sentences]
    first = manifest.drop_duplicates("study_id").set_index("study_id").loc[reports.study_id[0]]
    assert all(len(p) == 1 and " year old " in p[0] for p in prompts)
    assert prompts[0][0].startswith(f"{first.age} year old {first.sex}. ")
    assert json.loads((project / "metrics/evaluate.json").read_text())["fid_evaluator_cnn"]["value"] > 0
    # sample.dicom and edit.dicom: the stages' films as valid DICOM marked synthetic, holding nothing of the
    # source films' patients (byte-for-byte reproducibility: tests/data/test_dicom_writing.py)
    model = model_hash(project / "models")
    samples, edits = (
        pd.read_csv(project / "data/samples/manifest.csv"),
        pd.read_csv(project / "data/edits/manifest.csv"),
    )
    # the source files' name, dates, accession, physician and institution, every study's UID and every
    # PatientID (their sex, StudyID and StudyTime are too short to search for: "F" or a few digits occur anywhere)
    identifiers = [
        PATIENT[k]
        for k in (
            "PatientName",
            "PatientBirthDate",
            "StudyDate",
            "AccessionNumber",
            "ReferringPhysicianName",
            "InstitutionName",
        )
    ]
    identifiers += [STUDY_ROOT + str(i) for i in demo.study_id]
    patient_ids = sorted({str(i) for i in demo.subject_id})  # each file's PatientID
    films = {}
    for folder, rows in (("samples", samples), ("edits", edits)):
        assert rows.dicom.tolist() == [name.replace(".png", ".dcm") for name in rows.file]
        for row in rows.itertuples():
            path = project / "data" / folder / row.dicom
            film = films[path] = pydicom.dcmread(path)
            assert iod_problems(path) == [] and np.array_equal(
                film.pixel_array, np.asarray(Image.open(path.with_suffix(".png")))
            )
            assert (
                film.SyntheticData == "YES"
                and film.PatientID == "SYNTHETIC"
                and f"seed: {row.seed}" in film.ImageComments
            )
            assert f"model sha256: {model}" in film.ImageComments and "StudyDate" in film and not film.StudyDate
            assert not [e.keyword for e in film.iterall() if e.VR in ("DA", "TM", "DT") and e.value]  # no dates
            assert values_found(film, identifiers) == []
            assert values_found(film, patient_ids, skip_vrs=("UI",)) == []  # 8 digits: a UID may hold them by chance
    sample_film, edited_film = (
        films[project / "data/samples" / samples.dicom[0]],
        films[project / "data/edits" / edits.dicom[0]],
    )
    assert (
        sample_film.SeriesDescription.startswith("SYNTHETIC")
        and f"prompt: {samples.prompt[0]}" in sample_film.ImageComments
    )
    assert (
        edited_film.SeriesDescription == "EDITED BY A GENERATIVE MODEL"
        and "source sha256: " in edited_film.ImageComments
    )
    assert len({f.SOPInstanceUID for f in films.values()}) == len(films)
