"""Stage utility: train on synthetic, test on real. A classifier of the evaluator's kind (train_evaluator's
architecture and training params) is trained on the images generated from training-split reports (labels
of those studies), on the real training images, and on both; each is tested on the real test split.
Per-finding AUROC with intervals in metrics/utility.json. The real-only classifier is train_evaluator's
model itself: the same recipe on the same images, so it is not trained twice."""


import torch

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, samples
from cxrldm.evaluation import networks as evaluation
from cxrldm.io import write_json
from cxrldm.models import networks as nets
from stages.common import load_params, progress, run

SAMPLES, RESIZED = paths.REPORT_SAMPLES, paths.RESIZED


def main():
    params = load_params()
    p, e = params["train_evaluator"], params["evaluate"]
    findings, size = p["labels"], p["image_size"]
    labels = read_labels(params["data"], findings)
    manifest, synthetic = samples.report_samples(SAMPLES, "train")
    synthetic = torch.nn.functional.interpolate(synthetic, size=(size, size), mode="bilinear", antialias=True) \
        if synthetic.shape[-1] != size else synthetic
    train = read_split(RESIZED, "train")
    _, test_images, test_targets = classification.labelled_split(RESIZED, "test", labels, findings, size, progress)
    synthetic_targets = classification.training_targets(labels, manifest.study_id, findings)
    real_targets = classification.training_targets(labels, train.study_id, findings)

    def train_on(images, targets):
        return evaluation.train_evaluator_cnn(images, targets, findings, p["epochs"], p["batch_size"], p["lr"],
                                              p["seed"], p["width"], progress=progress, precision=p["precision"])

    real = load_images(RESIZED, train.path, size, progress)
    arms = {"synthetic": (len(synthetic), lambda: train_on(synthetic, synthetic_targets)),
            "real": (len(train), lambda: evaluation.load_cnn(paths.EVALUATOR)[0]),
            "both": (len(train) + len(synthetic),
                     lambda: train_on(torch.cat([real, synthetic]), torch.cat([real_targets, synthetic_targets])))}
    results = {"n_test": len(test_images), "n_train": {}, "auroc": {}, "mean_auroc": {}}
    for arm, (n_images, classifier) in arms.items():
        scores = evaluation.TrainedEvaluator(classifier(), size).probabilities(test_images)
        aurocs = {f: classification.auroc_interval(scores[:, i], test_targets[:, i], e["resamples"], e["seed"])
                  for i, f in enumerate(findings)}
        known = [a["value"] for a in aurocs.values() if a["value"] is not None]
        results["n_train"][arm], results["auroc"][arm] = n_images, aurocs
        results["mean_auroc"][arm] = sum(known) / len(known) if known else None
    write_json(paths.metrics("utility"), results)
    print("mean test AUROC by training data: " + ", ".join(
        f"{arm} {value:.3f} ({results['n_train'][arm]} images)" for arm, value in results["mean_auroc"].items()
        if value is not None))


if __name__ == "__main__":
    run(main)
