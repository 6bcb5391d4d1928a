"""Stage train_evaluator: a small chest X-ray classifier trained on the training split's CheXpert labels.
It stands in for torchxrayvision's pretrained network where those weights cannot be had (the demo,
air-gapped servers); metrics computed with it are named after it."""

from pathlib import Path

import pandas as pd
import torch

from cxrldm import evaluation, filtering, layout, nets
from cxrldm.data import load_images, read_split
from cxrldm.io import write_json
from stages.common import load_params, progress, run

RESIZED = Path("data/resized")
MODEL = Path("models/evaluator.safetensors")


def load_split(split: str, labels: list[str], chexpert: pd.DataFrame, size: int, limit=None):
    """(images (N, 1, size, size), targets (N, L)): a label counts as present only when it is 1.0."""
    table = read_split(RESIZED, split, limit).merge(chexpert, on="study_id", how="left")
    images = load_images(RESIZED, table.path, size)
    return images, torch.tensor((table[labels] == 1.0).to_numpy(), dtype=torch.float32)


def main():
    params = load_params()
    p = params["train_evaluator"]
    chexpert = filtering.read_table(Path(params["data"]["root"]) / layout.CHEXPERT_CSV,
                                    ["study_id", *p["labels"]], "CheXpert label file")
    chexpert = chexpert.drop(columns=["subject_id"], errors="ignore")
    train_images, train_targets = load_split("train", p["labels"], chexpert, p["image_size"])
    val_images, val_targets = load_split("validate", p["labels"], chexpert, p["image_size"])
    model = evaluation.train_evaluator_cnn(train_images, train_targets, p["labels"], p["epochs"], p["batch_size"],
                                           p["lr"], p["seed"], p["width"], progress=progress)
    scores = evaluation.TrainedEvaluator(model, p["image_size"]).probabilities(val_images)
    aurocs = {label: round(evaluation.auroc(scores[:, i], val_targets[:, i]), 4) for i, label in enumerate(p["labels"])}
    nets.save_model(model, "EvaluatorCNN", {"labels": p["labels"], "width": p["width"]}, MODEL,
                    {"image_size": p["image_size"]})
    write_json("metrics/train_evaluator.json", {"val_auroc": aurocs, "n_train": len(train_images),
                                                 "n_validate": len(val_images)})
    print({"val_auroc": aurocs})


if __name__ == "__main__":
    run(main)
