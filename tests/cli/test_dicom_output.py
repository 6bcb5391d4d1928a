"""DICOM output of the generate and edit commands (--dicom) on the tiny project's trained models: every file
is a valid Secondary Capture (tests/dicom_files.iod_problems: pydicom's value checks, the IOD's required
attributes, dciodvfy where installed) that reads back with the PNG's pixels, says it is synthetic or edited
and how it was made, and holds no identifier of the input patient unless --keep-patient asks for it."""

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_files import iod_problems, radiograph, save, values_found
from PIL import Image
from pipeline_project import run_cli

from cxrldm.data import dicom
from cxrldm.data.dicom_output import model_hash

pytestmark = pytest.mark.pipeline
PROMPT = "There is a large right pleural effusion."


def cli(module, *args, cwd):
    return run_cli(module, *args, cwd=cwd)


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_generated_films_are_valid_synthetic_secondary_captures_with_the_pngs_pixels(tiny_project, tmp_path):
    models = tiny_project / "models"
    result = cli(
        "generate",
        "--prompt",
        PROMPT,
        "--n",
        "2",
        "--seed",
        "5",
        "--steps",
        "4",
        "--out",
        "out",
        "--models",
        str(models),
        "--dicom",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(tmp_path / "out/manifest.csv")
    assert rows.dicom.tolist() == ["seed5.dcm", "seed6.dcm"]
    films = [pydicom.dcmread(tmp_path / "out" / name) for name in rows.dicom]
    for film, row in zip(films, rows.itertuples()):
        assert iod_problems(tmp_path / "out" / row.dicom) == []
        assert np.array_equal(film.pixel_array, png(tmp_path / "out" / row.file))
        assert np.array_equal(dicom.read_display(tmp_path / "out" / row.dicom).pixels, film.pixel_array)
        assert film.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert list(film.ImageType) == ["DERIVED", "SECONDARY"] and film.SyntheticData == "YES"
        assert film.ConversionType == "SYN" and film.BurnedInAnnotation == "NO"
        assert "SYNTHETIC" in film.SeriesDescription and film.PatientID == "SYNTHETIC"
        for words in (f"prompt: {PROMPT}", f"seed: {row.seed}", "guidance: 3.0", f"model sha256: {model_hash(models)}"):
            assert words in film.ImageComments
    assert (
        films[0].StudyInstanceUID == films[1].StudyInstanceUID
        and films[0].SeriesInstanceUID == films[1].SeriesInstanceUID
    )
    assert len({f.SOPInstanceUID for f in films} | {f.StudyInstanceUID for f in films}) == 3  # fresh UIDs
    labelled = cli(
        "generate",
        "--prompt",
        PROMPT,
        "--n",
        "1",
        "--seed",
        "5",
        "--steps",
        "4",
        "--out",
        "labelled",
        "--models",
        str(models),
        "--dicom",
        "--burn-label",
        cwd=tmp_path,
    )
    assert labelled.returncode == 0, labelled.stderr
    film = pydicom.dcmread(tmp_path / "labelled/seed5.dcm")
    plain = png(tmp_path / "out/seed5.png")
    changed = film.pixel_array != plain
    assert film.BurnedInAnnotation == "YES" and np.array_equal(film.pixel_array, png(tmp_path / "labelled/seed5.png"))
    assert changed.any() and np.nonzero(changed)[0].max() < plain.shape[0] // 3  # the label, at the top
    assert (film.pixel_array[changed] == 255).any()


@pytest.fixture
def patient_film(tiny_project, tmp_path):
    """A MONOCHROME1 12-bit DICOM of a tiny-project film, with identifiers, whose window shows the film's
    8-bit pixels exactly: stored = 16 * (255 - v) + 8, LINEAR center 2048.5 width 4081 -> 255 - v, inverted -> v."""
    table = pd.read_csv(tiny_project / "data/resized/images.csv")
    pixels = png(tiny_project / "data/resized" / table.path[0])
    stored = 16 * (255 - pixels.astype(np.uint16)) + 8
    ds = radiograph(
        stored,
        12,
        "MONOCHROME1",
        WindowCenter="2048.5",
        WindowWidth="4081",
        AcquisitionDate="20150312",
        ContentDate="20150312",
        ViewPosition="PA",
    )
    return save(ds, tmp_path / "patient.dcm"), ds, pixels


def test_an_edited_dicom_film_references_its_source_and_carries_no_identifier_of_its_patient(
    tiny_project, tmp_path, patient_film
):
    path, source, pixels = patient_film
    height, width = pixels.shape
    mask = np.zeros(pixels.shape, np.uint8)
    mask[height // 2 :, : width // 2] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = cli(
        "edit",
        "--image",
        path,
        "--prompt",
        PROMPT,
        "--out",
        "out",
        "--steps",
        "6",
        "--strength",
        "0.9",
        "--edit-mask",
        "mask.png",
        "--models",
        str(tiny_project / "models"),
        "--dicom",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    edited_png = png(tmp_path / "out/patient_seed0_edited.png")
    assert np.array_equal(edited_png[mask < 128], pixels[mask < 128])  # the DICOM input was shown right
    output = tmp_path / "out/patient_seed0_edited.dcm"
    film = pydicom.dcmread(output)
    assert iod_problems(output) == [] and np.array_equal(film.pixel_array, edited_png)
    assert film.SeriesDescription == "EDITED BY A GENERATIVE MODEL" and film.SyntheticData == "YES"
    assert "strength: 0.9" in film.ImageComments and "edit mask: file sha256 " in film.ImageComments
    reference = film.SourceImageSequence[0]
    assert (reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID) == (
        source.SOPClassUID,
        source.SOPInstanceUID,
    )
    identifiers = [
        str(source.PatientName),
        source.PatientID,
        source.StudyInstanceUID,
        source.AccessionNumber,
        source.StudyDate,
        source.PatientBirthDate,
        str(source.ReferringPhysicianName),
        source.InstitutionName,
        source.SeriesInstanceUID,
    ]
    assert values_found(film, identifiers) == []
    raw = output.read_bytes()
    assert not [value for value in identifiers if value.encode() in raw]
    kept = cli(
        "edit",
        "--image",
        path,
        "--prompt",
        PROMPT,
        "--out",
        "kept",
        "--steps",
        "6",
        "--models",
        str(tiny_project / "models"),
        "--dicom",
        "--keep-patient",
        cwd=tmp_path,
    )
    assert kept.returncode == 0, kept.stderr
    film = pydicom.dcmread(tmp_path / "kept/patient_seed0_edited.dcm")
    assert iod_problems(tmp_path / "kept/patient_seed0_edited.dcm") == []
    assert (film.PatientID, str(film.PatientName), film.StudyInstanceUID) == (
        source.PatientID,
        str(source.PatientName),
        source.StudyInstanceUID,
    )
    assert film.SeriesInstanceUID != source.SeriesInstanceUID and film.SyntheticData == "YES"


def test_an_edited_png_has_no_source_reference_and_keep_patient_needs_a_dicom_input(tiny_project, tmp_path):
    Image.fromarray(np.full((40, 30), 100, np.uint8)).save(tmp_path / "film.png")
    common = [
        "--image",
        "film.png",
        "--prompt",
        PROMPT,
        "--out",
        "out",
        "--steps",
        "4",
        "--models",
        str(tiny_project / "models"),
    ]
    refused = cli("edit", *common, "--dicom", "--keep-patient", cwd=tmp_path)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith("error: --keep-patient needs --dicom and a DICOM --image")
    result = cli("edit", *common, "--dicom", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    film = pydicom.dcmread(tmp_path / "out/film_seed0_edited.dcm")
    assert "SourceImageSequence" not in film and iod_problems(tmp_path / "out/film_seed0_edited.dcm") == []
    assert "source sha256: " in film.ImageComments and film.PatientID == "SYNTHETIC"
