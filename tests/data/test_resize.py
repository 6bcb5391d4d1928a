import hashlib

import numpy as np
import pytest
from PIL import Image

from cxrldm.data.images import load_resized, target_size
from cxrldm.data.resize import resize_all


@pytest.mark.parametrize(
    "w,h,side,expected",
    [
        (2500, 3000, 512, (512, 614)),
        (3000, 2500, 512, (614, 512)),
        (600, 600, 256, (256, 256)),
        (700, 600, 600, (700, 600)),
    ],
)
def test_target_size_keeps_aspect(w, h, side, expected):
    assert target_size(w, h, side) == expected


def gradient_jpeg(path, w, h):
    y, x = np.mgrid[0:h, 0:w]
    Image.fromarray(((x + y) * 255 / (w + h)).astype(np.uint8)).save(path, quality=95)


def test_draft_decode_matches_plain_decode(tmp_path):
    gradient_jpeg(tmp_path / "big.jpg", 2000, 2400)
    plain = np.asarray(load_resized(tmp_path / "big.jpg", 256, draft=False), dtype=int)
    fast = np.asarray(load_resized(tmp_path / "big.jpg", 256, draft=True), dtype=int)
    assert plain.shape == fast.shape == (307, 256)
    assert np.abs(plain - fast).max() <= 3


def test_resize_all_writes_png_and_skips_corrupt_and_truncated(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "files").mkdir(parents=True)
    gradient_jpeg(src / "files/good.jpg", 640, 800)
    gradient_jpeg(src / "files/wide.jpg", 900, 600)
    (src / "files/corrupt.jpg").write_bytes(b"not a jpeg at all")
    whole = (src / "files/good.jpg").read_bytes()
    (src / "files/truncated.jpg").write_bytes(whole[: len(whole) // 2])
    paths = ["files/good.jpg", "files/corrupt.jpg", "files/truncated.jpg", "files/wide.jpg"]
    results = list(resize_all(paths, src, dst, 128, workers=2))
    assert [r[0] for r in results] == ["files/good.png", "files/corrupt.png", "files/truncated.png", "files/wide.png"]
    assert results[0][1:3] == (128, 160) and results[3][1:3] == (192, 128)
    assert results[0][4] == results[3][4] == ""
    assert results[0][3] == hashlib.sha256((dst / "files/good.png").read_bytes()).hexdigest()
    assert results[1][4].startswith("UnidentifiedImageError") and "truncated" in results[2][4]
    assert sorted(p.name for p in (dst / "files").iterdir()) == ["good.png", "wide.png"]
    with Image.open(dst / "files/good.png") as out:
        assert out.mode == "L" and out.size == (128, 160)


def test_resize_stops_at_once_when_the_disk_cannot_hold_the_output(tmp_path, monkeypatch):
    """After PREFLIGHT images the stage projects the rest; a disk too small ends it with one line, the
    previous data/resized untouched and no temporary directory left."""
    import collections
    import shutil

    import pandas as pd
    import yaml

    import stages.resize
    from cxrldm.data import layout, tables

    monkeypatch.setattr(stages.resize, "PREFLIGHT", 2)
    root = tmp_path / "mimic"
    rows = []
    for k in range(5):
        path = layout.image_path(10000000 + k, 50000000 + k, f"d{k}")
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        gradient_jpeg(root / path, 300, 360)
        rows.append(
            {
                "dicom_id": f"d{k}",
                "subject_id": 10000000 + k,
                "study_id": 50000000 + k,
                "split": "train",
                "path": path,
                "sha256": "",
            }
        )
    (tmp_path / "data" / "resized").mkdir(parents=True)
    (tmp_path / "data" / "resized" / "images.csv").write_text("previous output\n")
    pd.DataFrame(rows)[tables.PA_COLUMNS].to_csv(tmp_path / "data" / "pa.csv", index=False)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"data": {"root": str(root)}, "resize": {"size": 64, "draft": True}})
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CXRLDM_WORKERS", "1")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(
        ValueError,
        match=r"^not enough disk for resize: 3 more images of about \d+ KiB need "
        r"0\.00 GiB, .* has 0\.00 GiB free$",
    ):
        stages.resize.main()
    assert (tmp_path / "data" / "resized" / "images.csv").read_text() == "previous output\n"
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []
