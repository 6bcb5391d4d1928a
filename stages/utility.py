"""Stage utility: train on synthetic, test on real. A classifier of the evaluator's kind (train_evaluator's
architecture and training params) is trained on the images generated from training-split reports (labels
of those studies), on the real training images, and on both; each is tested on the real test split.
Per-finding AUROC with intervals in metrics/utility.json. The real-only classifier is train_evaluator's
model itself: the same recipe on the same images, so it is not trained twice."""

from functools import partial

import torch

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, samples
from cxrldm.evaluation import networks as evaluation
from cxrldm.io import write_json
from stages.common import load_params, progress, run

SAMPLES, RESIZED = paths.REPORT_SAMPLES, paths.RESIZED


def main():
    params = load_params()
    p, e = params["train_evaluator"], params["evaluate"]
    findings, size = p["labels"], p["image_size"]
    labels = read_labels(params["data"], findings)
    manifest, synthetic = samples.report_samples(SAMPLES, "train")
    synthetic = (
        torch.nn.functional.interpolate(synthetic, size=(size, size), mode="bilinear", antialias=True)
        if synthetic.shape[-1] != size
        else synthetic
    )
    train = read_split(RESIZED, "train")
    _, test_images, test_targets = classification.labelled_split(RESIZED, "test", labels, findings, size, progress)
    synthetic_targets = classification.training_targets(labels, manifest.study_id, findings)
    real_targets = classification.training_targets(labels, train.study_id, findings)
    train_on = partial(
        evaluation.train_evaluator_cnn,
        labels=findings,
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr=p["lr"],
        seed=p["seed"],
        width=p["width"],
        progress=progress,
        precision=p["precision"],
    )
    real = load_images(RESIZED, train.path, size, progress)
    # the real-only arm is train_evaluator's model (None: load it), trained on the same images the same way
    arms = {
        "synthetic": (synthetic, synthetic_targets),
        "real": None,
        "both": (torch.cat([real, synthetic]), torch.cat([real_targets, synthetic_targets])),
    }
    results = {"n_test": len(test_images), "n_train": {}, "auroc": {}, "mean_auroc": {}}
    for arm, data in arms.items():
        classifier = evaluation.load_cnn(paths.EVALUATOR)[0] if data is None else train_on(*data)
        scores = evaluation.TrainedEvaluator(classifier, size).probabilities(test_images)
        results["n_train"][arm] = len(train) if data is None else len(data[0])
        results["auroc"][arm], results["mean_auroc"][arm] = classification.finding_aurocs(
            scores, test_targets, findings, e["resamples"], e["seed"]
        )
    write_json(paths.metrics("utility"), results)
    print(
        "mean test AUROC by training data: "
        + ", ".join(
            f"{arm} {value:.3f} ({results['n_train'][arm]} images)"
            for arm, value in results["mean_auroc"].items()
            if value is not None
        )
    )


if __name__ == "__main__":
    run(main)
