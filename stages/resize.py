"""Stage resize: every PA image to 8-bit PNG with its shortest side at resize.size."""

import pandas as pd

from cxrldm import paths
from cxrldm.data import layout, tables
from cxrldm.data.resize import require_space, resize_all
from cxrldm.io import atomic_dir, write_csv, write_json
from stages.common import load_params, progress, run, workers

OUT = paths.RESIZED
PREFLIGHT = 32  # images resized before the disk space for the rest is estimated
# window, inverted: how a DICOM file was displayed (cxrldm.data.dicom); blank for JPEG / PNG
IMAGE_COLUMNS = [
    "dicom_id",
    "subject_id",
    "study_id",
    "split",
    "path",
    "width",
    "height",
    "sha256",
    "window",
    "inverted",
]


def main():
    params = load_params()
    size, draft = params["resize"]["size"], params["resize"]["draft"]
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"resize.size must be an integer of at least 16, got {size!r}")
    root = layout.require(params["data"]["root"], "data.root (MIMIC-CXR-JPG directory)")
    table = tables.read_table(paths.PA_TABLE, tables.PA_COLUMNS, "PA table")
    rows, skipped, written = [], [], []
    with atomic_dir(OUT) as tmp:
        results = resize_all(table.path, root, tmp, size, workers=workers(), draft=draft)
        for k, (row, (path, width, height, digest, error, window, inverted)) in enumerate(
            zip(table.itertuples(index=False), progress(results, total=len(table), desc="resize")), 1
        ):
            if error:
                skipped.append({"dicom_id": row.dicom_id, "source": row.path, "error": error})
            else:
                rows.append(
                    {
                        "dicom_id": row.dicom_id,
                        "subject_id": row.subject_id,
                        "study_id": row.study_id,
                        "split": row.split,
                        "path": path,
                        "width": width,
                        "height": height,
                        "sha256": digest,
                        "window": window,
                        "inverted": inverted,
                    }
                )
                if len(written) < PREFLIGHT:
                    written.append((tmp / path).stat().st_size)
                    if len(written) == PREFLIGHT:
                        require_space(tmp, written, len(table) - k)
        write_csv(tmp / "images.csv", pd.DataFrame(rows, columns=IMAGE_COLUMNS))
        write_csv(tmp / "skipped.csv", pd.DataFrame(skipped, columns=["dicom_id", "source", "error"]))
    counts = {"resized": len(rows), "skipped": len(skipped), "size": size}
    write_json(paths.metrics("resize"), counts)
    print(counts)
    for s in skipped[:10]:
        print(f"skipped {s['source']}: {s['error']}")


if __name__ == "__main__":
    run(main)
