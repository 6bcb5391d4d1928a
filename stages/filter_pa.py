"""Stage filter_pa: the table of PA images with their patient-disjoint split."""

from pathlib import Path

from cxrldm import filtering, layout
from cxrldm.io import write_csv, write_json
from stages.common import load_params, run

OUT = "data/pa.csv"


def main():
    params = load_params()
    p, root = params["filter_pa"], Path(params["data"]["root"])
    layout.require(root, "data.root (MIMIC-CXR-JPG directory)")
    metadata = filtering.read_table(root / layout.METADATA_CSV, layout.METADATA_COLUMNS, "metadata")
    if p["split"] == "official":
        split = filtering.read_table(root / p["split_file"], layout.SPLIT_COLUMNS, "split file")
    elif p["split"] == "by_patient":
        split = None
    else:
        raise ValueError(f"filter_pa.split must be 'official' or 'by_patient', got {p['split']!r}")
    fractions = (p["train_fraction"], p["validate_fraction"], p["test_fraction"])
    checksums = filtering.read_checksums(root / layout.CHECKSUMS)
    table, counts = filtering.select_pa(metadata, split, root, checksums, fractions, p["split_seed"], p["view"])
    empty = [name for name in layout.SPLITS if not counts[f"{name}_images"]]
    if empty:    # every later stage needs each split: training, validation, the test set of the evaluation
        raise ValueError(f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty: "
                         f"{counts['pa_images']} {p['view']} images in all ({counts})")
    write_csv(OUT, table)
    write_json("metrics/filter_pa.json", counts)
    print(counts)


if __name__ == "__main__":
    run(main)
