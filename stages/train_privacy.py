"""Stage train_privacy: the memorisation audit's two learned spaces, trained on the training films.

The copy detector learns to map a film and its transformed copies (shift, crop, rotation, mirror, blur,
noise, contrast) close together, each film its own class; the re-identifier learns to map films of the
same patient close together, each patient a class (cxrldm/evaluation/privacy.py). Their checks on the
validation split (transformed validation films found among the validation films; validation patients
re-identified) go to metrics/train_privacy.json."""

import torch

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.evaluation import privacy
from cxrldm.io import write_json
from cxrldm.models import networks as nets
from stages.common import load_params, progress, run


def main():
    p = load_params()["privacy"]
    training, validate = read_split(paths.RESIZED, "train"), read_split(paths.RESIZED, "validate")
    images = load_images(paths.RESIZED, training.path, p["image_size"], progress)
    val_images = load_images(paths.RESIZED, validate.path, p["image_size"], progress)
    shape = {"width": p["width"], "embed_dim": p["embed_dim"]}
    common = dict(
        batch_size=p["batch_size"],
        lr=p["lr"],
        width=p["width"],
        embed_dim=p["embed_dim"],
        temperature=p["temperature"],
        progress=progress,
        precision=p["precision"],
    )
    detector = privacy.train_embedding(
        images, torch.arange(len(images)), p["epochs"], seed=p["seed"], desc="copy detector epochs", **common
    )
    nets.save_model(detector, "EmbeddingCNN", shape, paths.COPY_DETECTOR, {"image_size": p["image_size"]})
    subjects = torch.tensor(training.subject_id.to_numpy())
    reidentifier = privacy.train_embedding(
        images, subjects, p["reid_epochs"], seed=p["seed"] + 1, desc="re-identifier epochs", **common
    )
    nets.save_model(reidentifier, "EmbeddingCNN", shape, paths.REIDENTIFIER, {"image_size": p["image_size"]})

    # copies of each validation film (a random mix of the transformations) found among the validation films
    copies = privacy.random_copies(val_images, torch.Generator().manual_seed(p["seed"]))
    val_ids = torch.arange(len(val_images))
    found = privacy.reidentification(
        privacy.embed(detector, copies, p["image_size"]),
        privacy.embed(detector, val_images, p["image_size"]),
        val_ids,
        val_ids,
    )
    embedded = privacy.embed(reidentifier, val_images, p["image_size"])
    patients = validate.subject_id.to_numpy()
    metrics = {
        "n_train": len(images),
        "n_train_patients": int(training.subject_id.nunique()),
        "copy_detector_validate": {"top1": found["top1"], "auroc": found["auroc"]},
        "reidentifier_validate": privacy.reidentification(
            embedded, embedded, patients, patients, queries_lead_gallery=True
        ),
    }
    write_json(paths.metrics("train_privacy"), metrics)
    print(
        f"copy detector: a random copy of a validation film finds its original first for "
        f"{found['top1']['value']:.3f}; re-identifier on validation patients: "
        f"{metrics['reidentifier_validate']['n_queries']} queries"
    )


if __name__ == "__main__":
    run(main)
