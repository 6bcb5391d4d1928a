"""The one reader of the resize stage's images.csv, and the split reader built on it."""

import pandas as pd
import pytest

from cxrldm.data.datasets import read_images, read_split


@pytest.fixture
def resized(tmp_path):
    # dicom_ids that all look like numbers (leading zeros, an exponent) must stay the strings they are
    pd.DataFrame(
        {
            "dicom_id": ["0012", "1e5", "0034", "0099"],
            "subject_id": [1, 1, 2, 3],
            "study_id": [10, 10, 20, 30],
            "split": ["train", "test", "test", "validate"],
            "path": ["a.png", "b.png", "c.png", "d.png"],
        }
    ).to_csv(tmp_path / "images.csv", index=False)
    return tmp_path


def test_read_images_is_the_whole_table_with_dicom_ids_as_text(resized):
    table = read_images(resized)
    assert table.dicom_id.tolist() == ["0012", "1e5", "0034", "0099"]
    assert table.split.tolist() == ["train", "test", "test", "validate"]
    assert table.study_id.tolist() == [10, 10, 20, 30]


def test_read_split_keeps_one_split_in_file_order(resized):
    test = read_split(resized, "test")
    assert test.dicom_id.tolist() == ["1e5", "0034"] and test.index.tolist() == [0, 1]
    assert read_split(resized, "train", limit=1).path.tolist() == ["a.png"]
    with pytest.raises(ValueError, match="no 'nothing' images in"):
        read_split(resized, "nothing")
