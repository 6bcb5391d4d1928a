"""Stage filter_pa: the table of PA images with their patient-disjoint split, from MIMIC-CXR-JPG's metadata
or from a manifest (data.format)."""

from pathlib import Path

from cxrldm import paths
from cxrldm.data import layout, tables
from cxrldm.data.manifest import metadata_view, read_manifest
from cxrldm.io import write_csv, write_json
from stages.common import load_params, run

OUT = paths.PA_TABLE


def main():
    params = load_params()
    p, data = params["filter_pa"], params["data"]
    root, index, checksums_file = Path(data["root"]), data["index"], data["checksums"]
    layout.require(root, "data.root (the images' directory)")
    if data["format"] == "manifest":
        manifest = read_manifest(root / index)
        metadata = metadata_view(manifest, p["view"])
        if p["split"] == "official" and "split" not in manifest:
            raise ValueError(
                f"filter_pa.split: official needs a split column in the manifest {root / index}; "
                "set by_patient for a split by hashed patient"
            )
        split = manifest[["dicom_id", "split"]] if p["split"] == "official" else None
        # sha256: the manifest's column, else a checksum file (naming the manifest itself means none)
        if "sha256" in manifest:
            checksums = dict(zip(manifest.path, manifest.sha256.fillna("")))
        else:
            checksums = {} if checksums_file == index else tables.read_checksums(root / checksums_file)
    else:
        metadata = tables.read_table(root / index, layout.METADATA_COLUMNS, "metadata")
        split = (
            tables.read_table(root / p["split_file"], layout.SPLIT_COLUMNS, "split file")
            if p["split"] == "official"
            else None
        )
        checksums = tables.read_checksums(root / checksums_file)
    fractions = (p["train_fraction"], p["validate_fraction"], p["test_fraction"])
    table, counts = tables.select_pa(metadata, split, root, checksums, fractions, p["split_seed"], p["view"])
    empty = [name for name in layout.SPLITS if not counts[f"{name}_images"]]
    if empty:  # every later stage needs each split: training, validation, the test set of the evaluation
        raise ValueError(
            f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty: "
            f"{counts['pa_images']} {p['view']} images in all ({counts})"
        )
    write_csv(OUT, table)
    write_json(paths.metrics("filter_pa"), counts)
    print(counts)


if __name__ == "__main__":
    run(main)
