"""DICOM input (cxrldm.data.dicom through the one image loader): files with known stored values must display
as an 8-bit image computed here in numpy from the standard's formulas (modality LUT, windows, VOI LUT
sequence, SIGMOID, MONOCHROME1, padding, 12 / 16 bit, signed), through every compressed syntax; a PNG and the
same pixels as plain DICOM resize to the same bytes; bad files are one line each and counted."""

import io

import numpy as np
import pytest
from dicom_files import encapsulated, jpeg_lossless, radiograph, save
from PIL import Image
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from cxrldm.data import dicom
from cxrldm.data.images import load_array, load_resized
from cxrldm.data.resize import resize_all
from cxrldm.sampling.editing import EditError, read_grayscale

ROWS, COLUMNS = 48, 64


def ramp(high: int, dtype=np.uint16, low: int = 0) -> np.ndarray:
    """Stored values from low to high across the image, with some texture."""
    rng = np.random.default_rng(high)
    values = np.linspace(low, high, ROWS * COLUMNS).reshape(ROWS, COLUMNS) + rng.normal(
        0, (high - low) / 50, (ROWS, COLUMNS)
    )
    return np.clip(np.round(values), low, high).astype(dtype)


def to_8bit(y: np.ndarray) -> np.ndarray:
    return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)


def linear(x, center, width):  # PS3.3 C.11.2.1.2.1
    return np.where(
        x <= center - 0.5 - (width - 1) / 2,
        0.0,
        np.where(x > center - 0.5 + (width - 1) / 2, 1.0, ((x - (center - 0.5)) / (width - 1) + 0.5)),
    )


def shown(tmp_path, ds, name="film.dcm"):
    return load_array(save(ds, tmp_path / name))


def test_a_16_bit_film_with_rescale_and_several_windows_uses_the_modality_lut_and_the_first_window(tmp_path):
    stored = ramp(60000)
    ds = radiograph(
        stored, 16, RescaleSlope="0.5", RescaleIntercept="-1024", WindowCenter=[8000, 20000], WindowWidth=[12000, 40000]
    )
    expected = to_8bit(linear(stored * 0.5 - 1024, 8000, 12000))
    assert np.array_equal(shown(tmp_path, ds), expected)
    assert 0 < expected.mean() < 255 and (expected == 255).any() and (expected == 0).any()


def test_a_12_bit_monochrome1_film_is_inverted_and_bits_above_bits_stored_are_ignored(tmp_path):
    stored = ramp(4095)
    junk = stored | 0xF000  # overlay bits above BitsStored, as old modalities wrote
    ds = radiograph(junk, 12, "MONOCHROME1", WindowCenter=2048, WindowWidth=4096)
    expected = 255 - to_8bit(linear(stored.astype(float), 2048, 4096))
    assert np.array_equal(shown(tmp_path, ds), expected)
    assert shown(tmp_path, ds)[0, 0] > 250 and shown(tmp_path, ds)[-1, -1] < 5  # low values are white


def test_signed_values_and_the_sigmoid_and_linear_exact_functions(tmp_path):
    stored = ramp(1500, np.int16, low=-1000)
    x = stored * 1.0 - 24
    sigmoid = radiograph(
        stored,
        16,
        signed=True,
        RescaleSlope=1,
        RescaleIntercept=-24,
        WindowCenter=40,
        WindowWidth=400,
        VOILUTFunction="SIGMOID",
    )
    assert np.array_equal(shown(tmp_path, sigmoid), to_8bit(1 / (1 + np.exp(-4 * (x - 40) / 400))))
    exact = radiograph(
        stored,
        16,
        signed=True,
        RescaleSlope=1,
        RescaleIntercept=-24,
        WindowCenter=40,
        WindowWidth=400,
        VOILUTFunction="LINEAR_EXACT",
    )
    assert np.array_equal(shown(tmp_path, exact, "exact.dcm"), to_8bit((x - 40) / 400 + 0.5))


def test_a_voi_lut_sequence_maps_through_its_table_and_wins_over_a_window(tmp_path):
    from pydicom.dataset import Dataset

    stored = ramp(4095)
    first, entries, bits = 1000, 2048, 12
    table = np.round(np.sqrt(np.linspace(0, 1, entries)) * (2**bits - 1)).astype(np.uint16)
    lut = Dataset()
    lut.LUTDescriptor = [entries, first, bits]
    lut.add_new("LUTData", "US", table.tolist())
    lut.LUTExplanation = "square root"
    ds = radiograph(stored, 12, WindowCenter=500, WindowWidth=100, VOILUTSequence=[lut])
    index = np.clip(stored.astype(int) - first, 0, entries - 1)
    expected = to_8bit(table[index] / (2**bits - 1))
    assert np.array_equal(shown(tmp_path, ds), expected)


def test_without_a_window_padding_is_left_out_of_the_percentile_window_and_shown_black(tmp_path):
    stored = ramp(3000, low=1000)
    stored[:, :20] = 4095  # a third of the film outside the exposure
    ds = radiograph(stored, 12, PixelPaddingValue=4095)
    inside = stored[:, 20:].astype(float)
    low, high = np.percentile(inside, [0.5, 99.5])
    expected = to_8bit((stored - low) / (high - low))
    expected[:, :20] = 0
    result = shown(tmp_path, ds)
    assert np.array_equal(result, expected)
    high_all = np.percentile(stored.astype(float), 99.5)  # padding counted would move the window
    assert not np.array_equal(result[:, 20:], to_8bit((stored - low) / (high_all - low))[:, 20:])


def test_a_padding_range_limit_pads_a_range_of_values_in_a_monochrome1_film(tmp_path):
    stored = ramp(3000, low=200)
    stored[-10:, :] = np.arange(COLUMNS) % 96  # padding 0..95, white if it were shown
    ds = radiograph(
        stored, 12, "MONOCHROME1", PixelPaddingValue=0, PixelPaddingRangeLimit=95, WindowCenter=1600, WindowWidth=2800
    )
    expected = 255 - to_8bit(linear(stored.astype(float), 1600, 2800))
    expected[-10:, :] = 0
    assert np.array_equal(shown(tmp_path, ds), expected)


def test_an_8_bit_film_without_a_window_is_shown_as_stored_and_found_without_its_suffix(tmp_path):
    stored = ramp(255, np.uint8)
    assert np.array_equal(shown(tmp_path, radiograph(stored)), stored)
    path = save(radiograph(stored, PhotometricInterpretation="MONOCHROME1"), tmp_path / "IM0001")  # no suffix
    assert dicom.is_dicom(path) and np.array_equal(load_array(path), 255 - stored)
    assert np.array_equal(read_grayscale(path), 255 - stored)  # the edit command reads it the same way


def test_a_12_bit_film_without_a_window_gets_the_percentile_window(tmp_path):
    stored = ramp(4095)
    low, high = np.percentile(stored.astype(float), [0.5, 99.5])
    assert np.array_equal(shown(tmp_path, radiograph(stored, 12)), to_8bit((stored - low) / (high - low)))


def compressed_12_bit(syntax, stored):
    ds = radiograph(stored, 12, "MONOCHROME1", WindowCenter=1800, WindowWidth=3000)
    if syntax == JPEGLosslessSV1:
        return encapsulated(ds, jpeg_lossless(stored, 12), syntax)
    ds.compress(syntax)  # pydicom's encoders: RLE (pydicom / pylibjpeg-rle), JPEG-LS (pyjpegls), J2K (openjpeg)
    return ds


@pytest.mark.parametrize(
    "syntax", [JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, RLELossless], ids=lambda s: s.name
)
def test_lossless_compressed_syntaxes_display_exactly_like_the_values_they_hold(tmp_path, syntax):
    stored = ramp(4095)
    ds = compressed_12_bit(syntax, stored)
    path = save(ds, tmp_path / "film.dcm")
    assert dicom.read_dataset(path).file_meta.TransferSyntaxUID == syntax
    expected = 255 - to_8bit(linear(stored.astype(float), 1800, 3000))
    assert np.array_equal(load_array(path), expected)


def test_jpeg_baseline_displays_what_a_jpeg_decoder_reads(tmp_path):
    stored = ramp(255, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=90)
    ds = encapsulated(radiograph(stored), buffer.getvalue(), JPEGBaseline8Bit)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(int)  # libjpeg-turbo, via PIL
    result = shown(tmp_path, ds).astype(int)
    assert np.abs(result - decoded).max() <= 1 and np.abs(result - stored).mean() < 4


def test_a_png_and_the_same_pixels_as_plain_dicom_resize_to_the_same_bytes(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (97, 131)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    save(radiograph(pixels), tmp_path / "b.dcm")
    out = tmp_path / "out"
    (png, *png_rest), (dcm, *dcm_rest) = resize_all(["a.png", "b.dcm"], tmp_path, out, 40, workers=1)
    assert png_rest[2] == dcm_rest[2] and png_rest[3] == dcm_rest[3] == ""  # sha256 equal, no error
    assert (out / png).read_bytes() == (out / dcm).read_bytes()
    assert png_rest[4:] == ["", ""] and dcm_rest[4:] == ["full range 0 to 255", "no"]  # window, inverted
    assert np.array_equal(np.asarray(load_resized(tmp_path / "b.dcm", 40)), np.asarray(Image.open(out / png)))


def bad_files(folder):
    stored = ramp(4095)
    frames = radiograph(np.concatenate([stored, stored]), 12, NumberOfFrames=2)
    frames.Rows = ROWS
    colour = radiograph(
        np.zeros((ROWS, COLUMNS, 3), np.uint8),
        PhotometricInterpretation="RGB",
        SamplesPerPixel=3,
        PlanarConfiguration=0,
    )
    truncated = radiograph(stored, 12)
    truncated.PixelData = truncated.PixelData[:100]
    save(frames, folder / "frames.dcm")
    save(colour, folder / "colour.dcm")
    save(truncated, folder / "truncated.dcm")
    (folder / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x07" * 50)
    (folder / "empty.dcm").write_bytes(b"")
    return {
        "frames.dcm": "multi-frame (2 frames)",
        "colour.dcm": "colour (RGB, 3 samples per pixel)",
        "truncated.dcm": "truncated.dcm",
        "garbage.dcm": "garbage.dcm",
        "empty.dcm": "empty.dcm",
    }


def test_bad_files_are_one_line_naming_the_file_and_resize_counts_them_without_losing_any(tmp_path):
    expected = bad_files(tmp_path)
    for name, words in expected.items():
        with pytest.raises(dicom.DicomError) as caught:
            dicom.read_display(tmp_path / name)
        message = str(caught.value)
        assert str(tmp_path / name) in message and words in message and "\n" not in message, message
        with pytest.raises(EditError, match=name):
            read_grayscale(tmp_path / name)
    save(radiograph(ramp(4095), 12), tmp_path / "good.dcm")
    names = ["good.dcm", *expected]
    results = list(resize_all(names, tmp_path, tmp_path / "out", 32, workers=1))
    errors = [r[4] for r in results]
    assert errors[0] == "" and all(e.startswith("DicomError: ") and "\n" not in e for e in errors[1:])
    assert len(results) == len(names) and (tmp_path / "out" / "good.png").is_file()
