"""The realism test (a classifier two-sample test): about 0.5 for two sets of the same kind of film,
clearly above for films blurred by one pixel; every image scored by a judge that never trained on it; the
one-number statistics point the documented way."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrldm.data.filters import gaussian_blur
from cxrldm.demo import phantoms
from cxrldm.demo.findings import Findings
from cxrldm.evaluation import realism

SIZE = 48
FINDINGS = (Findings(), Findings(cardiomegaly=2), Findings(effusion_side="right", effusion_size="moderate"))
JUDGE = {"folds": 3, "epochs": 10, "width": 8, "batch_size": 16, "lr": 1e-2, "resamples": 200}


def films(n: int, seed: int) -> torch.Tensor:
    """n phantom PA films of new patients, (N, 1, SIZE, SIZE) in [0, 1] at 8-bit levels."""
    rng = np.random.default_rng(seed)
    rendered = [phantoms.render(FINDINGS[i % 3], "PA", rng, 128, 128) for i in range(n)]
    images = torch.from_numpy(np.stack(rendered)).float()[:, None] / 255
    return realism.to_8bit(F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", antialias=True))


@pytest.fixture(scope="module")
def two_sets():
    return films(48, seed=0), films(48, seed=1)


def test_two_sets_of_the_same_films_are_not_told_apart(two_sets):
    result = realism.two_sample_test(*two_sets, **JUDGE)
    assert 0.3 <= result["value"] <= 0.7 and result["low"] < 0.5 < result["high"], result
    assert (result["n_positive"], result["n_negative"]) == (48, 48)


def test_films_blurred_by_one_pixel_are_told_apart(two_sets):
    real, other = two_sets
    result = realism.two_sample_test(real, gaussian_blur(other, 1.0), **JUDGE)
    assert result["value"] >= 0.9, result
    assert result["sharpness_auroc"]["value"] == 1.0  # the real film is the sharper in every pair


def test_every_image_is_scored_by_a_judge_that_never_trained_on_it(monkeypatch):
    images = torch.rand(20, 1, 8, 8)
    is_generated = torch.arange(20) % 2 == 1
    seen = []

    class Memoriser(torch.nn.Module):
        """Scores an image by whether it trained on it: a judge that saw its test images would score 1."""

        def __init__(self, trained_on):
            super().__init__()
            self.trained_on = trained_on

        def forward(self, batch):
            return torch.tensor([float(any(torch.equal(x, t) for t in self.trained_on)) for x in batch])

    def train_judge(train_images, train_targets, *args):
        seen.append((len(train_images), int(train_targets.sum())))
        return Memoriser(train_images)

    monkeypatch.setattr(realism, "train_judge", train_judge)
    scores = realism.out_of_fold_scores(images, is_generated, folds=5, epochs=1, width=2, batch_size=4, lr=0.1, seed=0)
    assert scores.tolist() == [0.0] * 20
    assert seen == [(16, 8)] * 5  # each fold holds out 2 real and 2 generated images


def test_the_statistics_point_the_documented_way():
    flat = torch.full((6, 1, 16, 16), 0.5)
    textured = realism.to_8bit(flat + 0.1 * torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert (realism.sharpness(textured) > realism.sharpness(flat)).all()
    darker = flat.clone()
    darker[..., :4, :] = 0
    assert realism.black_share(darker).tolist() == [0.25] * 6 and realism.black_share(flat).tolist() == [0.0] * 6


def test_sets_of_other_sizes_or_too_few_images_are_refused():
    with pytest.raises(ValueError, match="differ"):
        realism.two_sample_test(torch.rand(6, 1, 8, 8), torch.rand(6, 1, 16, 16), folds=2)
    with pytest.raises(ValueError, match="need 5"):
        realism.two_sample_test(torch.rand(4, 1, 8, 8), torch.rand(6, 1, 8, 8), folds=5)
