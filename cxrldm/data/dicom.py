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

A file's structure is checked without decoding it (layout, check_pixel_data): an empty file, one without the
DICM preamble (said to look like text, a PNG image, ...), one whose header or pixel data the file cuts short,
one with no Pixel Data, or native pixel data shorter than Rows x Columns x samples x bytes x frames, or
compressed fragments the file cuts short, are each one line saying so in plain words.

Compressed transfer syntaxes are decoded by pydicom's plugins: pylibjpeg with pylibjpeg-libjpeg (JPEG
baseline, extended, lossless, JPEG-LS), pylibjpeg-openjpeg (JPEG 2000) and pylibjpeg-rle (RLE).
"""

from __future__ import annotations

import codecs
import io
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi
from pydicom.uid import UID

PERCENTILES = (0.5, 99.5)
SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# ViewCodeSequence meanings (DICOM CID 4010, as MIMIC-CXR's metadata spells them) -> ViewPosition
VIEW_MEANINGS = {"postero-anterior": "PA", "antero-posterior": "AP", "lateral": "LATERAL", "left lateral": "LL"}
AGE = re.compile(r"^(\d{1,3})([DWMY])$")
# what a file without the DICM preamble looks like, by its first bytes
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF", "a PDF document"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)
LONG_LENGTH_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())  # PS3.5 7.1.2: 4-byte length
ITEM, ITEM_END, SEQUENCE_END, PIXEL_DATA, UNDEFINED = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD, 0x7FE00010, 0xFFFFFFFF


class DicomError(ValueError):
    """A DICOM file that cannot be used: one line naming the file."""


@dataclass
class Display:
    pixels: np.ndarray  # (H, W) uint8
    window: str  # the VOI transform applied, in words
    inverted: bool  # MONOCHROME1


def is_dicom(path: str | Path) -> bool:
    """A .dcm / .dicom file, or any file but a PNG / JPEG with the DICM preamble."""
    path = Path(path)
    if path.suffix.lower() in SUFFIXES:
        return True
    if path.suffix.lower() in IMAGE_SUFFIXES:  # spares the training loop an extra open per image
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _one_line(path, error: Exception) -> DicomError:
    return DicomError(f"{path}: not a usable DICOM radiograph: {type(error).__name__}: {' '.join(str(error).split())}")


def not_dicom(path: str | Path) -> str:
    """Why the file cannot be DICOM, in words ('empty file', 'not a DICOM file (no DICM preamble; it looks like
    text)'), or '' where it starts with the preamble."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head:
        return "empty file"
    if head[128:132] == b"DICM":
        return ""
    looks = next((words for signature, words in SIGNATURES if head.startswith(signature)), "")
    if not looks:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at 1024 bytes is text
            looks = "text" if text and all(c.isprintable() or c in "\t\n\r\f" for c in text) else ""
        except UnicodeDecodeError:
            pass
    return "not a DICOM file (no DICM preamble" + (f"; it looks like {looks})" if looks else ")")


def read_dataset(path: str | Path, pixels: bool = True) -> pydicom.Dataset:
    """The file's dataset (without reading the pixel data when `pixels` is False); DicomError otherwise."""
    try:
        reason = not_dicom(path)
    except OSError as error:
        raise DicomError(f"{path}: cannot be read: {error.strerror or error}") from None
    if reason:
        raise DicomError(f"{path}: {reason}")
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except Exception as error:  # pydicom raises many types for broken files; each is one unreadable file
        raise _one_line(path, error) from None


class _Cut(Exception):
    """The data ends inside an element; args: (the element's tag, the byte at which the data ends)."""


class _Corrupt(Exception):
    """An element that cannot be where it is; args: (what, in words)."""


@dataclass
class Layout:
    """Where a DICOM file's Pixel Data lies, found by walking its elements' headers without reading values."""

    syntax: UID  # TransferSyntaxUID ('' where the file meta has none)
    size: int  # bytes of the dataset's data (the file; inflated for a deflated syntax)
    pixels: int | None = None  # offset of Pixel Data's value; None without Pixel Data
    length: int | None = None  # its defined length; None where encapsulated (undefined length)
    fragments: int = 0  # encapsulated: fragments present in full
    cut: str = ""  # encapsulated: where the data ends inside them, in words
    last: int | None = None  # the tag of the last element of the dataset read in full


class _Walk:
    """Element headers read one after another over `size` bytes of f, values skipped (PS3.5 7.1, 7.5)."""

    def __init__(self, f, size: int, layout: Layout):
        self.f, self.size, self.layout = f, size, layout

    def read(self, n: int, tag: int) -> bytes:
        data = self.f.read(n)
        if len(data) < n:
            raise _Cut(tag, self.size)
        return data

    def skip(self, n: int, tag: int) -> None:
        if self.f.tell() + n > self.size:
            raise _Cut(tag, self.size)
        self.f.seek(n, 1)

    def header(self, explicit: bool, endian: str) -> tuple[int, bytes | None, int]:
        """(tag, VR or None where implicit or an item, length) of the next element."""
        group, element = struct.unpack(endian + "HH", self.read(4, None))
        tag = group << 16 | element
        if group == 0xFFFE or not explicit:
            return tag, None, struct.unpack(endian + "L", self.read(4, tag))[0]
        vr = self.read(2, tag)
        if not (vr.isalpha() and vr.isupper()):  # an implicit VR element in explicit data, read as pydicom does
            return tag, None, struct.unpack(endian + "L", vr + self.read(2, tag))[0]
        if vr in LONG_LENGTH_VRS:
            return tag, vr, struct.unpack(endian + "L", self.read(6, tag)[2:])[0]
        return tag, vr, struct.unpack(endian + "H", self.read(2, tag))[0]

    def elements(self, explicit: bool, endian: str, nested: bool = False) -> None:
        """The elements up to the end of the data (the dataset) or an item delimiter (an item of a sequence);
        the dataset's up to its Pixel Data (what follows, padding or a signature, leaves the image whole)."""
        while nested or self.f.tell() < self.size:
            tag, vr, length = self.header(explicit, endian)
            if nested and tag == ITEM_END:
                return
            if tag == PIXEL_DATA and not nested:
                self.pixel_data(length, endian)
                return
            if length == UNDEFINED:  # a sequence (UN's items are implicit VR little endian, PS3.5 6.2.2)
                self.sequence(tag, explicit and vr != b"UN", endian if vr != b"UN" else "<")
            else:
                self.skip(length, tag)
            if not nested:
                self.layout.last = tag

    def sequence(self, tag: int, explicit: bool, endian: str) -> None:
        while True:
            item, _, length = self.header(explicit, endian)
            if item == SEQUENCE_END:
                return
            if item != ITEM:
                raise _Corrupt(f"element {pydicom.tag.Tag(item)} where an item of {pydicom.tag.Tag(tag)} should be")
            if length == UNDEFINED:
                self.elements(explicit, endian, nested=True)
            else:
                self.skip(length, tag)

    def pixel_data(self, length: int, endian: str) -> None:
        """Pixel Data's place in the layout: its offset and defined length, or its fragments (encapsulated)."""
        self.layout.pixels = self.f.tell()
        if length != UNDEFINED:
            self.layout.length = length
            return
        count, between = 0, True  # items read in full: the basic offset table's, then one per fragment
        try:
            while True:
                between = True
                tag, _, length = self.header(False, endian)
                if tag == SEQUENCE_END:
                    return
                if tag != ITEM or length == UNDEFINED:
                    self.layout.cut = f"element {pydicom.tag.Tag(tag)} where a fragment should be"
                    return
                between = False
                self.skip(length, tag)
                count += 1
                self.layout.fragments = count - 1
        except _Cut:
            self.layout.cut = (
                "the file ends inside the basic offset table"
                if count == 0
                else f"the file ends inside fragment {count}"
                if not between
                else "the file ends after the basic offset table"
                if count == 1
                else f"the file ends after fragment {count - 1}, without the sequence delimiter"
            )


def _dataset_encoding(f, syntax: UID) -> tuple[bool, str]:
    """(explicit VR, struct endianness) of the dataset at f's position; guessed as pydicom does without a
    TransferSyntaxUID (explicit where the first element's VR is two capitals)."""
    if not syntax:
        start = f.tell()
        head = f.read(6)
        f.seek(start)
        return (len(head) == 6 and head[4:6].isalpha() and head[4:6].isupper()), "<"
    if syntax == pydicom.uid.ImplicitVRLittleEndian:
        return False, "<"
    return True, ">" if syntax == pydicom.uid.ExplicitVRBigEndian else "<"


def layout(path: str | Path) -> Layout:
    """The file's Pixel Data layout, found by walking its elements' headers (values skipped, nothing decoded);
    DicomError in plain words where it is no DICOM file or its header is cut short or corrupt."""
    try:
        reason = not_dicom(path)
        if reason:
            raise DicomError(f"{path}: {reason}")
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(132)
            found = Layout(UID(""), size)
            walk = _Walk(f, size, found)
            try:
                while True:  # the file meta group (0002,eeee), explicit VR little endian (PS3.10 7.1)
                    start = f.tell()
                    if f.read(2) != b"\x02\x00":
                        f.seek(start)
                        break
                    f.seek(start)
                    tag, _, length = walk.header(True, "<")
                    if tag == 0x00020010:
                        found.syntax = UID(walk.read(length, tag).decode("ascii", "replace").strip("\x00 "))
                    else:
                        walk.skip(length, tag)
                if f.tell() == size:
                    raise _Cut(None, size)
                explicit, endian = _dataset_encoding(f, found.syntax)
                if found.syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
                    try:
                        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                        data = inflate.decompress(f.read()) + inflate.flush()
                    except zlib.error as error:
                        raise _Corrupt(f"deflated data that cannot be inflated ({error})") from None
                    if not inflate.eof:
                        raise _Cut(None, size)
                    walk = _Walk(io.BytesIO(data), len(data), found)
                    found.size = len(data)
                walk.elements(explicit, endian)
            except _Cut as cut:
                tag, at = cut.args
                inside = f", inside element {pydicom.tag.Tag(tag)}" if tag is not None else ""
                raise DicomError(
                    f"{path}: truncated: header cut short (the file ends after {at} bytes{inside})"
                ) from None
            except _Corrupt as corrupt:
                raise DicomError(f"{path}: corrupt header: {corrupt.args[0]}") from None
    except OSError as error:
        raise DicomError(f"{path}: cannot be read: {error.strerror or error}") from None
    return found


def _syntax_name(syntax: UID) -> str:
    return syntax.name if syntax else "no transfer syntax"


def check_pixel_data(ds: pydicom.Dataset, found: Layout, name) -> None:
    """DicomError in plain words unless the file holds the pixel data its header promises: native data at least
    Rows x Columns x samples x bytes per sample x frames long, or compressed fragments that the file holds in
    full up to the sequence delimiter (not decoded)."""
    if found.pixels is None:
        raise DicomError(
            f"{name}: no pixel data (Rows and Columns but no Pixel Data element; the file ends after "
            f"element {pydicom.tag.Tag(found.last)})"
        )
    if found.length is None:
        if found.cut:
            raise DicomError(f"{name}: pixel data cut short: compressed ({_syntax_name(found.syntax)}), {found.cut}")
        if not found.fragments:
            raise DicomError(f"{name}: no pixel data (the compressed Pixel Data holds no fragment)")
        if found.syntax.is_transfer_syntax and not found.syntax.is_encapsulated:
            raise DicomError(
                f"{name}: compressed pixel data under an uncompressed transfer syntax ({_syntax_name(found.syntax)})"
            )
        return
    if found.syntax.is_transfer_syntax and found.syntax.is_encapsulated:
        raise DicomError(
            f"{name}: uncompressed pixel data under a compressed transfer syntax ({_syntax_name(found.syntax)})"
        )
    if not ds.get("BitsAllocated"):
        raise DicomError(f"{name}: no BitsAllocated; the size of its pixel data is unknown")
    samples, frames = int(ds.get("SamplesPerPixel") or 1), int(ds.get("NumberOfFrames") or 1)
    expected = (int(ds.Rows) * int(ds.Columns) * samples * frames * int(ds.BitsAllocated) + 7) // 8
    present = min(found.length, found.size - found.pixels)
    if present < max(expected, found.length):
        shape = f"{ds.Rows} x {ds.Columns} pixels" + (f" x {samples} samples" if samples > 1 else "")
        raise DicomError(
            f"{name}: pixel data cut short: {present} of {max(expected, found.length)} bytes "
            f"({shape}{f' x {frames} frames' if frames > 1 else ''} of {ds.BitsAllocated} bits)"
        )


def check_radiograph(ds: pydicom.Dataset, name) -> None:
    """One grayscale frame, or DicomError naming the file."""
    if "Rows" not in ds or "Columns" not in ds:
        raise DicomError(f"{name}: not an image (SOP class {ds.get('SOPClassUID', 'unknown')})")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise DicomError(f"{name}: multi-frame ({frames} frames); one radiograph per file is expected")
    photometric, samples = str(ds.get("PhotometricInterpretation", "")), int(ds.get("SamplesPerPixel") or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(
            f"{name}: colour ({photometric or 'no PhotometricInterpretation'}, {samples} samples per "
            "pixel); chest X-rays are MONOCHROME1 or MONOCHROME2"
        )


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
        table = apply_voi(np.round(values).astype(np.int64), ds, index=0)  # a LUT's input is integer
        return table / (2**bits - 1), "VOI LUT sequence (first)"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
        words = f"{function} center {center:g} width {width:g}"
        if function == "SIGMOID" and width > 0:
            with np.errstate(over="ignore"):  # exp overflows far below the centre: the result is 0
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
    except Exception as error:  # decoders and malformed values raise many types
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
    sop_uid, view, sex ('M', 'F', 'O' or ''), age (years or None). DicomError (one line) otherwise, and where
    the file does not hold the pixel data its header promises (layout, check_pixel_data)."""
    found = layout(path)
    ds = read_dataset(path, pixels=False)
    if found.pixels is None and "Rows" not in ds and (found.last or 0) < 0x00280010:
        raise DicomError(
            f"{path}: not an image, or cut short: the file ends after element "
            f"{pydicom.tag.Tag(found.last or 0)}, before any Rows, Columns or Pixel Data"
        )
    try:
        check_radiograph(ds, path)
        check_pixel_data(ds, found, path)
        header = {
            "patient_id": str(ds.get("PatientID") or "").strip(),
            "study_uid": str(ds.get("StudyInstanceUID") or "").strip(),
            "sop_uid": str(ds.get("SOPInstanceUID") or "").strip(),
            "view": view_of(ds),
            "sex": str(ds.get("PatientSex") or "").strip().upper(),
            "age": age_of(ds),
        }
    except DicomError:
        raise
    except Exception as error:
        raise _one_line(path, error) from None
    for key, attribute in (("patient_id", "PatientID"), ("study_uid", "StudyInstanceUID")):
        if not header[key]:
            raise DicomError(f"{path}: no {attribute}; without it the image's patient or study is unknown")
    return header
