"""Stage scale_factor: encode the training and validation images once, store their latent
distributions, and compute the factor that scales the training latents to unit variance."""

import json

from cxrldm import paths
from cxrldm.data.datasets import RadiographDataset, read_split
from cxrldm.io import atomic_dir, write_csv, write_json
from cxrldm.models import latents, networks
from cxrldm.models.training import setup_runtime
from stages.common import load_params, progress, run, workers

RESIZED = paths.RESIZED
OUT = paths.LATENTS
FACTOR = paths.SCALE_FACTOR


def main():
    p = load_params()["scale_factor"]
    runtime = setup_runtime(p["precision"])
    autoencoder, description = networks.load_model(paths.AUTOENCODER, runtime.device)
    size = description["image_size"]
    with atomic_dir(OUT) as tmp:
        for split in ("train", "validate"):
            table = read_split(RESIZED, split)
            dataset = RadiographDataset(RESIZED, table.path, size, in_memory=False)
            split_std = latents.encode_to_files(
                autoencoder,
                dataset,
                runtime,
                p["batch_size"],
                tmp,
                split,
                num_workers=min(workers(), 8),
                progress=progress,
            )
            write_csv(tmp / f"{split}.csv", table[["dicom_id", "subject_id", "study_id"]])
            if split == "train":
                std, n_images = split_std, len(table)
    override = p["override"]
    if override is not None and not (isinstance(override, (int, float)) and override > 0):
        raise ValueError(f"scale_factor.override must be a positive number or null, got {override!r}")
    factor = float(override) if override is not None else 1.0 / std
    info = {
        "scale_factor": factor,
        "latent_std": std,
        "n_images": n_images,
        "source": "override" if override is not None else "1/std of the training latents",
    }
    write_json(FACTOR, info)
    write_json(paths.metrics("scale_factor"), {k: info[k] for k in ("scale_factor", "latent_std", "n_images")})
    print(json.dumps(info))


if __name__ == "__main__":
    run(main)
