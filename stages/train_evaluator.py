"""Stage train_evaluator: a small chest X-ray classifier trained on the training split's CheXpert labels.
It stands in for torchxrayvision's pretrained network where those weights cannot be had (the demo,
air-gapped servers); metrics computed with it are named after it."""

from cxrldm import paths
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification
from cxrldm.evaluation import networks as evaluation
from cxrldm.io import write_json
from cxrldm.models import networks as nets
from stages.common import load_params, progress, run

RESIZED = paths.RESIZED
MODEL = paths.EVALUATOR


def main():
    params = load_params()
    p = params["train_evaluator"]
    labels = read_labels(params["data"], p["labels"])
    train, train_images, _ = classification.labelled_split(RESIZED, "train", labels, p["labels"], p["image_size"])
    validate, val_images, _ = classification.labelled_split(RESIZED, "validate", labels, p["labels"], p["image_size"])
    model = evaluation.train_evaluator_cnn(
        train_images,
        classification.training_targets(labels, train.study_id, p["labels"]),
        p["labels"],
        p["epochs"],
        p["batch_size"],
        p["lr"],
        p["seed"],
        p["width"],
        progress=progress,
        precision=p["precision"],
    )
    scores = evaluation.TrainedEvaluator(model, p["image_size"]).probabilities(val_images)
    val_targets = classification.training_targets(labels, validate.study_id, p["labels"])
    aurocs, undefined = classification.label_aurocs(scores, val_targets, p["labels"])
    nets.save_model(
        model, "EvaluatorCNN", {"labels": p["labels"], "width": p["width"]}, MODEL, {"image_size": p["image_size"]}
    )
    write_json(
        paths.metrics("train_evaluator"),
        {
            "val_auroc": aurocs,
            **({"val_auroc_note": undefined} if undefined else {}),
            "n_train": len(train_images),
            "n_validate": len(val_images),
        },
    )
    print({"val_auroc": aurocs})


if __name__ == "__main__":
    run(main)
