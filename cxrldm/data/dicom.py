"""DICOM radiographs: pixels shown the way the file says they are shown, and the header fields a manifest needs.

Display (DICOM PS3.3 C.11): stored values -> modality LUT (RescaleSlope / RescaleIntercept) -> VOI LUT ->
8 bits, inverted for MONOCHROME1 (high values dark). The VOI LUT is the first item of a VOI LUT Sequence
(preferred where both are present, as pydicom's apply_voi_lut does), else the first of WindowCenter /
WindowWidth with VOILUTFunction LINEAR (the default), LINEAR_EXACT or SIGMOID. A file with neither, or
with a window that cannot be used (another function, a width below the standard's minimum), is windowed
to its full stored range when it is an 8-bit film without rescale (a display image already, shown as
stored, like a PNG), else to the 0.5th to 99.5th percentile of the pixels that are not padding. Padding
(PixelPaddingValue, through PixelPaddingRangeLimit when given) is left out of that percentile window and
shown black. Multi-frame and colour files are refused with one line naming the file.

Compressed transfer syntaxes are decoded by pydicom's plugins: pylibjpeg with pylibjpeg-libjpeg (JPEG
baseline, extended, lossless, JPEG-LS), pylibjpeg-openjpeg (JPEG 2000) and pylibjpeg-rle (RLE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi

PERCENTILES = (0.5, 99.5)
SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# ViewCodeSequence meanings (DICOM CID 4010, as MIMIC-CXR's metadata spells them) -> ViewPosition
VIEW_MEANINGS = {"postero-anterior": "PA", "antero-posterior": "AP", "lateral": "LATERAL", "left lateral": "LL"}
AGE = re.compile(r"^(\d{1,3})([DWMY])$")


class DicomError(ValueError):
    """A DICOM file that cannot be used: one line naming the file."""


@dataclass
class Display:
    pixels: np.ndarray          # (H, W) uint8
    window: str                 # the VOI transform applied, in words
    inverted: bool              # MONOCHROME1


def is_dicom(path: str | Path) -> bool:
    """A .dcm / .dicom file, or any file but a PNG / JPEG with the DICM preamble."""
    path = Path(path)
    if path.suffix.lower() in SUFFIXES:
        return True
    if path.suffix.lower() in IMAGE_SUFFIXES:     # spares the training loop an extra open per image
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _one_line(path, error: Exception) -> DicomError:
    return DicomError(f"{path}: not a usable DICOM radiograph: {type(error).__name__}: {' '.join(str(error).split())}")


def read_dataset(path: str | Path, pixels: bool = True) -> pydicom.Dataset:
    """The file's dataset (without reading the pixel data when `pixels` is False); DicomError otherwise."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except Exception as error:      # pydicom raises many types for broken files; each is one unreadable file
        raise _one_line(path, error) from None


def check_radiograph(ds: pydicom.Dataset, name) -> None:
    """One grayscale frame, or DicomError naming the file."""
    if "Rows" not in ds or "Columns" not in ds:
        raise DicomError(f"{name}: not an image (SOP class {ds.get('SOPClassUID', 'unknown')})")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise DicomError(f"{name}: multi-frame ({frames} frames); one radiograph per file is expected")
    photometric, samples = str(ds.get("PhotometricInterpretation", "")), int(ds.get("SamplesPerPixel") or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(f"{name}: colour ({photometric or 'no PhotometricInterpretation'}, {samples} samples per "
                         "pixel); chest X-rays are MONOCHROME1 or MONOCHROME2")


def padding_mask(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
    """True where the stored value is pixel padding (PixelPaddingValue, through PixelPaddingRangeLimit)."""
    if "PixelPaddingValue" not in ds:
        return np.zeros(stored.shape, bool)
    value = int(ds.PixelPaddingValue)
    limit = int(ds.get("PixelPaddingRangeLimit", value))
    return (stored >= min(value, limit)) & (stored <= max(value, limit))


def _first(value) -> float:
    return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)


def voi(ds: pydicom.Dataset, values: np.ndarray, padding: np.ndarray) -> tuple[np.ndarray, str]:
    """The VOI transform of modality values to [0, 1], and what it was, in words."""
    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        table = apply_voi(np.round(values).astype(np.int64), ds, index=0)     # a LUT's input is integer
        return table / (2 ** bits - 1), "VOI LUT sequence (first)"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
        words = f"{function} center {center:g} width {width:g}"
        if function == "SIGMOID" and width > 0:
            with np.errstate(over="ignore"):            # exp overflows far below the centre: the result is 0
                return 1 / (1 + np.exp(-4 * (values - center) / width)), words
        if function == "LINEAR_EXACT" and width > 0:
            return np.clip((values - center) / width + 0.5, 0, 1), words
        if function == "LINEAR" and width > 1:
            return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1), words
        if function == "LINEAR" and width == 1:
            return (values > center - 0.5).astype(np.float64), words
    rescaled = float(ds.get("RescaleSlope", 1) or 1) != 1 or float(ds.get("RescaleIntercept", 0) or 0) != 0
    if int(ds.BitsStored) <= 8 and not int(ds.PixelRepresentation) and not rescaled:
        low, high, words = 0.0, float(2 ** int(ds.BitsStored) - 1), "full range"
    else:
        inside = values[~padding] if (~padding).any() else values.ravel()
        low, high = (float(v) for v in np.percentile(inside, PERCENTILES))
        words = f"percentile {PERCENTILES[0]:g}-{PERCENTILES[1]:g}"
    high = max(high, low + 1e-9)
    return np.clip((values - low) / (high - low), 0, 1), f"{words} {low:g} to {high:g}"


def display(ds: pydicom.Dataset, name) -> Display:
    """The dataset's radiograph as an 8-bit display image (see the module's docstring)."""
    check_radiograph(ds, name)
    stored = ds.pixel_array
    padding = padding_mask(ds, stored)
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    shown, window = voi(ds, values, padding)
    pixels = np.round(shown * 255).astype(np.uint8)
    inverted = ds.PhotometricInterpretation == "MONOCHROME1"
    if inverted:
        pixels = 255 - pixels
    pixels[padding] = 0
    return Display(pixels, window, inverted)


def read_display(path: str | Path) -> Display:
    """A DICOM file's radiograph as an 8-bit display image; DicomError (one line naming the file) otherwise."""
    ds = read_dataset(path)
    try:
        return display(ds, path)
    except DicomError:
        raise
    except Exception as error:      # decoders and malformed values raise many types
        raise _one_line(path, error) from None


def view_of(ds: pydicom.Dataset) -> str:
    """ViewPosition, else the view code sequence's meaning as a ViewPosition; '' where unknown."""
    view = str(ds.get("ViewPosition") or "").strip().upper()
    if view:
        return view
    codes = ds.get("ViewCodeSequence") or []
    meaning = str(codes[0].get("CodeMeaning", "")).strip().lower() if codes else ""
    return VIEW_MEANINGS.get(meaning, "")


def age_of(ds: pydicom.Dataset) -> int | None:
    """Age in whole years from PatientAge (nnnY / M / W / D), else from PatientBirthDate and StudyDate."""
    match = AGE.match(str(ds.get("PatientAge") or "").strip().upper())
    if match:
        number, unit = int(match.group(1)), match.group(2)
        return number if unit == "Y" else number // {"M": 12, "W": 52, "D": 365}[unit]
    birth, study = str(ds.get("PatientBirthDate") or ""), str(ds.get("StudyDate") or "")
    if len(birth) == 8 and len(study) == 8 and birth.isdigit() and study.isdigit():
        years = int(study[:4]) - int(birth[:4])
        return years - (study[4:] < birth[4:])
    return None


def read_header(path: str | Path) -> dict:
    """The manifest fields of a DICOM radiograph, read without its pixel data: patient_id, study_uid,
    sop_uid, view, sex ('M', 'F', 'O' or ''), age (years or None). DicomError (one line) otherwise."""
    ds = read_dataset(path, pixels=False)
    try:
        check_radiograph(ds, path)
        header = {"patient_id": str(ds.get("PatientID") or "").strip(),
                  "study_uid": str(ds.get("StudyInstanceUID") or "").strip(),
                  "sop_uid": str(ds.get("SOPInstanceUID") or "").strip(),
                  "view": view_of(ds), "sex": str(ds.get("PatientSex") or "").strip().upper(), "age": age_of(ds)}
    except DicomError:
        raise
    except Exception as error:
        raise _one_line(path, error) from None
    for key, attribute in (("patient_id", "PatientID"), ("study_uid", "StudyInstanceUID")):
        if not header[key]:
            raise DicomError(f"{path}: no {attribute}; without it the image's patient or study is unknown")
    return header
