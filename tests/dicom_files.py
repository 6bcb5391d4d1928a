"""DICOM files with known pixels for the tests: a radiograph dataset with any stored values, and a lossless
JPEG (process 14, first-order prediction) encoder written from ITU T.81 Annex H, since no package on PyPI
encodes that syntax for pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

PATIENT = {
    "PatientName": "DOE^JANE^Q",
    "PatientID": "MRN0042137",
    "PatientBirthDate": "19510317",
    "PatientSex": "F",
    "StudyDate": "20150312",
    "StudyTime": "101500",
    "AccessionNumber": "ACC7788123",
    "StudyID": "4711",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "InstitutionName": "Saint Elsewhere",
}


def radiograph(
    stored: np.ndarray,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    signed: bool = False,
    **attributes,
) -> Dataset:
    """A DX For Presentation dataset of one frame holding `stored` as its stored values (uncompressed)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "DX"
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = stored.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if stored.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = stored.tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def save(ds: Dataset, path) -> str:
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def jpeg_lossless(pixels: np.ndarray, precision: int) -> bytes:
    """A lossless JPEG (SOF3, predictor 1, one component) of unsigned `pixels`, with one Huffman table in which
    each difference category 0..16 has the 5-bit code of its number."""
    rows, columns = pixels.shape
    x = pixels.astype(np.int64)
    prediction = np.empty_like(x)
    prediction[0, 0] = 1 << (precision - 1)
    prediction[0, 1:] = x[0, :-1]  # first row: the sample to the left
    prediction[1:, 0] = x[:-1, 0]  # first column: the sample above
    prediction[1:, 1:] = x[1:, :-1]  # elsewhere predictor 1: the left
    differences = (x - prediction) % 65536
    differences = np.where(differences > 32768, differences - 65536, differences)
    bits = []
    for difference in differences.ravel().tolist():
        category = 16 if difference == 32768 else abs(difference).bit_length()
        bits.append(format(category, "05b"))
        if 0 < category < 16:
            value = difference if difference > 0 else difference + (1 << category) - 1
            bits.append(format(value, f"0{category}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for k in range(0, len(stream), 8):
        byte = int(stream[k : k + 8], 2)
        data += bytes([byte, 0]) if byte == 0xFF else bytes([byte])  # byte stuffing
    counts = [0] * 16
    counts[4] = 17
    huffman = bytes([0x00]) + bytes(counts) + bytes(range(17))
    frame = bytes([precision]) + rows.to_bytes(2, "big") + columns.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    scan = bytes([1, 1, 0x00, 1, 0, 0])
    segment = lambda marker, body: bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body
    return b"\xff\xd8" + segment(0xC3, frame) + segment(0xC4, huffman) + segment(0xDA, scan) + bytes(data) + b"\xff\xd9"


def encapsulated(ds: Dataset, frame: bytes, syntax) -> Dataset:
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def values_found(ds: Dataset, needles, skip_vrs=()) -> list[str]:
    """'keyword: value' of every element (nested sequences too, except those of the VRs in skip_vrs) whose
    value contains one of the needles."""
    found = []
    for element in ds.iterall():
        if element.VR == "SQ" or element.tag == 0x7FE00010 or element.VR in skip_vrs:
            continue
        value = element.value.decode("latin-1") if isinstance(element.value, bytes) else str(element.value)
        found += [f"{element.keyword}: {value}" for needle in needles if needle in value]
    return found


# dicom3tools' dictionary and the 2020 tables of dicom-standard predate SyntheticData (0008,001C), added to
# the standard's SOP Common module later
DCIODVFY_OUTDATED = "(0x0008,0x001c)"
VALIDATOR_OUTDATED = "(0008,001C)"
_validator = []


def iod_validator():
    """dicom-validator's IOD validator over the standard's tables from PyPI (tests/iod_validation.py), built
    once per process."""
    import tempfile

    import iod_validation

    if not _validator:
        _validator.append(iod_validation.validator(tempfile.mkdtemp(prefix="dicom-standard-")))
    return _validator[0]


def iod_problems(path) -> list[str]:
    """What is wrong with a written DICOM file: pydicom's value checks of each element, dicom-validator's
    check of the IOD (every module's attributes by type and condition), and dicom3tools' dciodvfy where it
    is installed."""
    import shutil
    import subprocess

    from pydicom import config
    from pydicom.valuerep import validate_value

    problems = []
    ds = pydicom.dcmread(path)
    for element in ds.iterall():
        if element.VR == "SQ" or element.tag == 0x7FE00010:
            continue
        values = element.value if isinstance(element.value, pydicom.multival.MultiValue) else [element.value]
        for value in values:  # each value against its VR's characters and length (PS3.5 table 6.2-1)
            try:
                validate_value(element.VR, str(value) if element.VR in ("IS", "DS", "PN") else value, config.RAISE)
            except ValueError as error:
                problems.append(f"{element.keyword}: {error}")
    result = iod_validator().validate(str(path))[str(path)]
    problems += [
        f"{module}: {tag} {error.code.name}"
        for module, errors in result.module_errors.items()
        for tag, error in errors.items()
        if not (module == "General" and VALIDATOR_OUTDATED in str(tag))
    ]
    if result.errors and not result.module_errors:
        problems.append(f"dicom-validator: {result.errors} errors outside the modules")
    if ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
        problems.append("file meta and dataset disagree on the SOP Instance UID")
    if shutil.which("dciodvfy"):
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        problems += [
            line
            for line in (report.stdout + report.stderr).splitlines()
            if line.startswith("Error") and DCIODVFY_OUTDATED not in line
        ]
    return problems
