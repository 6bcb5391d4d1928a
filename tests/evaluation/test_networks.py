"""Metrics against independent computations on small inputs, and the feature networks' loading paths."""

import math
import warnings

import pytest
import torch

from cxrldm.evaluation import classification, fidelity, similarity
from cxrldm.evaluation import networks as evaluation
from cxrldm.evaluation.similarity import ms_ssim


def whitened(n=500, d=4, seed=0):
    """Samples whose mean is exactly 0 and covariance exactly the identity."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    cov = x.T @ x / (n - 1)
    return x @ torch.linalg.inv(torch.linalg.cholesky(cov)).T


def test_frechet_distance_closed_forms():
    a = whitened()
    assert fidelity.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    assert fidelity.frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # covariances I and 4I: tr(I + 4I - 2 sqrt(4I)) = tr(I) = 4
    assert fidelity.frechet_distance(a, 2 * a) == pytest.approx(4.0, rel=1e-5)


def test_ms_ssim_is_one_for_identical_images_and_lower_otherwise():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(3, 1, 68, 68, generator=g), 5, 1)
    assert torch.allclose(ms_ssim(x, x, 3), torch.ones(3), atol=1e-5)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert (ms_ssim(x, noisy, 3) < 0.9).all()


def test_pair_indices_all_or_fixed_subset():
    everything = similarity.pair_indices(5, 0, seed=0)
    assert len(everything) == 10 and (everything[:, 0] < everything[:, 1]).all()
    subset = similarity.pair_indices(50, 100, seed=3)
    assert len(subset) == 100 and len({tuple(p) for p in subset.tolist()}) == 100
    assert torch.equal(subset, similarity.pair_indices(50, 100, seed=3))
    assert not torch.equal(subset, similarity.pair_indices(50, 100, seed=4))


def test_auroc_against_hand_counts():
    scores = torch.tensor([0.9, 0.8, 0.3, 0.3, 0.1])
    positive = torch.tensor([1, 0, 1, 0, 0])
    # positives 0.9 and 0.3 against negatives 0.8, 0.3, 0.1: wins 3 + (1 + 0.5 tie) = 4.5 of 6
    assert classification.auroc(scores, positive) == pytest.approx(4.5 / 6)
    assert math.isnan(classification.auroc(scores, torch.zeros(5)))


def test_xrv_transform_maps_to_the_networks_range_and_size():
    images = torch.cat([torch.zeros(1, 1, 64, 64), torch.ones(1, 1, 64, 64)])
    out = evaluation.xrv_transform(images)
    assert out.shape == (2, 1, 224, 224)
    assert torch.allclose(out[0], torch.full_like(out[0], -1024.0)) and torch.allclose(
        out[1], torch.full_like(out[1], 1024.0)
    )


def test_xrv_weights_load_through_the_restricted_unpickler(tmp_path):
    import torchxrayvision as xrv

    torch.manual_seed(0)
    release_like = xrv.models.DenseNet(weights=None)  # the release file is a whole pickled module
    path = evaluation.xrv_weights_file(tmp_path)
    torch.save(release_like, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = evaluation.XRVEvaluator(path)
    assert torch.equal(evaluator.model.classifier.weight, release_like.classifier.weight)
    assert "Cardiomegaly" in evaluator.labels and "Pleural Effusion" in evaluator.labels
    images = torch.rand(2, 1, 64, 64)
    assert evaluator.features(images).shape == (2, 1024)
    probabilities = evaluator.probabilities(images)
    assert probabilities.shape == (2, 18) and probabilities.min() >= 0 and probabilities.max() <= 1


def test_xrv_pickle_with_foreign_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": warnings.WarningMessage}, path)
    with pytest.raises(ValueError, match="outside torch.nn and torchxrayvision"):
        evaluation.load_xrv_densenet(path)


def test_missing_xrv_weights_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate.feature_network: evaluator_cnn"):
        evaluation.XRVEvaluator(evaluation.xrv_weights_file(tmp_path))


def test_trained_evaluator_learns_a_visible_label():
    """Bright-centred images are 'Cardiomegaly': the CNN must separate them on held-out images."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        labels = torch.randint(0, 2, (n,), generator=g).float()
        images = torch.rand(n, 1, 32, 32, generator=g) * 0.3
        images[:, :, 10:22, 10:22] += labels[:, None, None, None] * 0.5
        return images, labels[:, None]

    train_x, train_y = make(256)
    test_x, test_y = make(64)
    model = evaluation.train_evaluator_cnn(
        train_x, train_y, ["Cardiomegaly"], epochs=4, batch_size=32, lr=3e-3, seed=0, width=8
    )
    evaluator = evaluation.TrainedEvaluator(model, 32)
    assert classification.auroc(evaluator.probabilities(test_x)[:, 0], test_y[:, 0]) > 0.95
    assert evaluator.features(test_x).shape == (64, 32)  # the embedding, whatever the width
    assert isinstance(model, evaluation.EvaluatorCNN)


def test_lower_zone_contrast_tells_a_right_from_a_left_effusion():
    import numpy as np

    from cxrldm.demo import phantoms
    from cxrldm.demo.findings import Findings

    rng = np.random.default_rng(0)

    def films(side):
        findings = Findings(effusion_side=side, effusion_size="large") if side else Findings()
        return torch.stack(
            [torch.from_numpy(phantoms.render(findings, "PA", rng, 96, 96)).float()[None] / 255 for _ in range(6)]
        )

    right, left, clear = (classification.lower_zone_contrast(films(side)) for side in ("right", "left", None))
    assert right.min() > clear.max() > clear.min() > left.max()  # the patient's right is the image's left
    assert classification.auroc(torch.cat([right, left]), torch.tensor([1] * 6 + [0] * 6)) == 1.0


def test_label_targets_follow_the_chexpert_convention():
    """1 positive; 0 and not mentioned negative; -1 uncertain and studies without a label row unknown (NaN)."""
    import pandas as pd

    from cxrldm.evaluation.classification import label_targets, training_targets

    labels = pd.DataFrame(
        {"study_id": [1, 2, 3, 4], "Edema": [1.0, 0.0, -1.0, None], "Cardiomegaly": [None, 1.0, None, None]}
    ).set_index("study_id")
    targets = label_targets(labels, [4, 1, 99, 3, 2], ["Edema", "Cardiomegaly"])
    expected = torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [float("nan")] * 2, [float("nan"), 0.0], [0.0, 1.0]], dtype=torch.float64
    )
    assert torch.equal(targets.isnan(), expected.isnan())
    assert torch.equal(targets.nan_to_num(-5), expected.nan_to_num(-5))
    assert torch.equal(
        training_targets(labels, [4, 1, 99, 3, 2], ["Edema", "Cardiomegaly"]), expected.nan_to_num(0).float()
    )
