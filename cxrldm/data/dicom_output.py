"""Synthetic and edited radiographs as DICOM files that cannot pass for a patient's.

Each is a Secondary Capture image built by highdicom (which checks the object as it builds it): 8-bit
MONOCHROME2 with a window that shows it as stored (the same pixels as the PNG), fresh UIDs, ImageType
DERIVED\\SECONDARY, ConversionType SYN (synthetic image), SyntheticData YES, a series description and
image comments that say how it was made (the prompt, seed, guidance, strength, model hash), and
BurnedInAnnotation saying whether a label was drawn into the pixels. The patient is SYNTHETIC and the study
new, so no input patient's identifier is carried, unless an edited film asks to keep its source's patient
and study; an edited film references a DICOM source in SourceImageSequence.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import generate_uid

from cxrldm.io import atomic_path

MANUFACTURER = "cxrldm"
SYNTHETIC_PATIENT = {"patient_name": "SYNTHETIC^IMAGE", "patient_id": "SYNTHETIC"}
LABEL = "SYNTHETIC"
ORIENTATION = ("L", "F")       # a PA film: rows run to the patient's left, columns to the feet
MAX_COMMENT = 10240            # ImageComments is LT


def burn_label(pixels: np.ndarray, text: str = LABEL) -> np.ndarray:
    """The pixels with `text` in white on a black box in the top-left corner, PIL's default font at about
    a sixteenth of the image's height."""
    image = Image.fromarray(pixels)
    font = ImageFont.load_default(size=max(8, pixels.shape[0] // 16))
    margin = max(1, pixels.shape[0] // 64)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"                    # no anti-aliasing: the letters are pure white at any size
    left, top, right, bottom = draw.textbbox((margin, margin), text, font=font)
    draw.rectangle((left - margin, top - margin, right + margin, bottom + margin), fill=0)
    draw.text((margin, margin), text, fill=255, font=font)
    return np.asarray(image).copy()


def secondary_capture(pixels: np.ndarray, description: str, comments: str, study_uid: str, series_uid: str,
                      instance_number: int, source: pydicom.Dataset | None = None, keep_patient: bool = False,
                      burned_in: bool = False, software: str = "") -> pydicom.Dataset:
    """An (H, W) uint8 image as a Secondary Capture dataset (see the module's docstring). `description` is
    the series description (at most 64 characters), `comments` the image comments. `source`: the DICOM
    dataset an edited film came from; with `keep_patient` the film joins the source's patient and study
    (study_uid is then not used)."""
    now = datetime.now()
    common = dict(pixel_array=pixels, photometric_interpretation="MONOCHROME2", bits_allocated=8,
                  coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=1,
                  sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer=MANUFACTURER,
                  patient_orientation=ORIENTATION, specific_character_set="ISO_IR 192")
    if source is not None and keep_patient:
        ds = hd.sc.SCImage.from_ref_dataset(source, **common)
    else:
        ds = hd.sc.SCImage(**common, **SYNTHETIC_PATIENT, study_instance_uid=study_uid, study_id="SYNTHETIC",
                           study_date=now.date(), study_time=now.time())
        ds.StudyDescription = "SYNTHETIC CHEST X-RAY"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "no patient: a synthetic image"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "SYN"
    ds.SyntheticData = "YES"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesDescription = description[:64]
    ds.DerivationDescription = description[:1024]
    ds.ImageComments = comments[:MAX_COMMENT]
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.WindowCenter, ds.WindowWidth = 128, 256      # LINEAR: shows stored value v as v, like the PNG
    if software:
        ds.SoftwareVersions = software[:64]
    if source is not None:
        reference = pydicom.Dataset()
        reference.ReferencedSOPClassUID = source.SOPClassUID
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        purpose = pydicom.Dataset()
        purpose.CodeValue, purpose.CodingSchemeDesignator = "121322", "DCM"
        purpose.CodeMeaning = "Source image for image processing operation"
        reference.PurposeOfReferenceCodeSequence = [purpose]
        ds.SourceImageSequence = [reference]
    return ds


def write(ds: pydicom.Dataset, path: str | Path) -> None:
    """The dataset as a DICOM Part 10 file, atomically."""
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
