"""Synthetic films as DICOM (cxrldm.data.dicom_output) checked by dicom-validator offline: a stage's film is
the same bytes whenever its inputs are, carries no date, and passes; the validator itself reports a missing
Type 1 and Type 2 attribute without dicom3tools' help."""

import shutil

import numpy as np
import pydicom
from dicom_files import iod_problems

from cxrldm.data import dicom_output

PIXELS = (np.arange(48 * 40).reshape(48, 40) % 251).astype(np.uint8)


def stage_film(path, comments="prompt: x | seed: 1"):
    dicom_output.write_stage_film(
        PIXELS, path, dicom_output.GENERATED, comments, dicom_output.stable_uid("study"), 1, "0" * 64
    )
    return path


def test_a_stage_film_is_the_same_bytes_for_the_same_inputs_undated_and_valid(tmp_path):
    first, again = stage_film(tmp_path / "a.dcm"), stage_film(tmp_path / "b.dcm")
    other = stage_film(tmp_path / "c.dcm", "prompt: x | seed: 2")
    assert first.read_bytes() == again.read_bytes()
    film = pydicom.dcmread(first)
    assert film.SOPInstanceUID != pydicom.dcmread(other).SOPInstanceUID
    assert not [e.keyword for e in film.iterall() if e.VR in ("DA", "TM", "DT") and e.value]
    assert np.array_equal(film.pixel_array, PIXELS) and film.SyntheticData == "YES"
    assert iod_problems(first) == []


def test_the_pypi_validator_alone_reports_a_missing_type_1_and_type_2_attribute(tmp_path, monkeypatch):
    film = pydicom.dcmread(stage_film(tmp_path / "a.dcm"))
    del film.ConversionType  # Type 1 of the SC Equipment module
    del film.PatientSex  # Type 2 of the Patient module
    film.save_as(tmp_path / "broken.dcm")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # as on a machine without dicom3tools
    assert iod_problems(tmp_path / "broken.dcm") == [
        "Patient: (0010,0040) TagMissing",
        "SC Equipment: (0008,0064) TagMissing",
    ]
