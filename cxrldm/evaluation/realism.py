"""Can a freshly trained network tell real films from generated ones? A classifier two-sample test
(Lopez-Paz and Oquab, ICLR 2017): a small CNN, initialised at random and trained on nothing but the two
sets, scores every image out of fold (k folds; each image is scored by the network that did not train on
it). The AUROC of those scores, with its bootstrap interval over images, is about 0.5 where the sets cannot
be told apart and 1.0 where they always can. Both sets are rounded to 8-bit levels first, as films are
stored, so that no set is told apart by its number format.

Two controls in the same run pin the test's strength: real films against other real films (near 0.5), and
real films against real films blurred by a Gaussian of a pixel or so (near 1 for a test that sees fine
structure). The judge is never a network the model was trained or tuned with (not the evaluator, not a
loss network), so nothing the generator could have learnt to please decides.

Beside the network's AUROC, two one-number statistics say what gives a set away where it is simple:
sharpness (mean absolute Laplacian; AUROC that the real film is the sharper) and the share of pure-black
pixels (AUROC that the generated image has more)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cxrldm.evaluation.classification import auroc, auroc_interval, two_group_auroc_interval

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


class RealismCNN(nn.Module):
    """The judge: four levels of a 3x3 convolution (batch norm, leaky ReLU) and 2x average pooling, the first
    at full resolution so that fine structure reaches it. Every level's maps are averaged over the image
    into the one logit (generated, not real), so texture statistics at each scale (edge energy, grain) are
    one linear step from the answer, and layout is there too, from the deepest level."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.levels = nn.ModuleList()
        channels, widths = 1, (width, 2 * width, 4 * width, 4 * width)
        for out in widths:
            self.levels.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)
                )
            )
            channels = out
        self.head = nn.Linear(sum(widths) + widths[-1], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, pooled = (images - 0.5) / 0.25, []
        for level in self.levels:
            x = level(x)
            pooled.append(x.mean(dim=(2, 3)))
            x = F.avg_pool2d(x, 2)
        pooled.append(x.amax(dim=(2, 3)))
        return self.head(torch.cat(pooled, 1)).squeeze(1)


def to_8bit(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] rounded to the 256 levels of an 8-bit film."""
    return (images.float().clamp(0, 1) * 255).round() / 255


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Per image: the mean absolute Laplacian (edge and line energy), on 8-bit levels."""
    kernel = LAPLACIAN.to(images)[None, None]
    return F.conv2d(images, kernel).abs().mean(dim=(1, 2, 3))


def black_share(images: torch.Tensor) -> torch.Tensor:
    """Per image: the share of pixels at level 0."""
    return (images == 0).float().mean(dim=(1, 2, 3))


def fold_ids(is_generated: torch.Tensor, folds: int, generator: torch.Generator) -> torch.Tensor:
    """A fold for every image, each class dealt out evenly over the folds in a random order."""
    ids = torch.empty(len(is_generated), dtype=torch.long)
    for side in (False, True):
        rows = torch.nonzero(is_generated == side).flatten()
        ids[rows[torch.randperm(len(rows), generator=generator)]] = torch.arange(len(rows)) % folds
    return ids


def train_judge(
    images: torch.Tensor, is_generated: torch.Tensor, epochs: int, width: int, batch_size: int, lr: float, bf16: bool
) -> RealismCNN:
    """A fresh RealismCNN fitted to tell the two sets apart (random horizontal flips, the same for both)."""
    model = RealismCNN(width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    targets = is_generated.float()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for step in range(steps_per_epoch):
            rows = order[step * batch_size : (step + 1) * batch_size]
            batch = images[rows]
            flip = torch.rand(len(rows)) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                logits = model(batch)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def out_of_fold_scores(
    images: torch.Tensor,
    is_generated: torch.Tensor,
    folds: int,
    epochs: int,
    width: int,
    batch_size: int,
    lr: float,
    seed: int,
    bf16: bool = False,
) -> torch.Tensor:
    """Every image's logit from the judge trained on the other folds."""
    generator = torch.Generator().manual_seed(seed)
    ids = fold_ids(is_generated, folds, generator)
    scores = torch.empty(len(images))
    for fold in range(folds):
        held_out = ids == fold
        torch.manual_seed(seed * 1000 + fold)
        judge = train_judge(images[~held_out], is_generated[~held_out], epochs, width, batch_size, lr, bf16)
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            scores[held_out] = judge(images[held_out]).float()
    return scores


def two_sample_test(
    real: torch.Tensor,
    generated: torch.Tensor,
    folds: int = 5,
    epochs: int = 10,
    width: int = 8,
    batch_size: int = 16,
    lr: float = 1e-2,
    seed: int = 0,
    resamples: int = 1000,
    bf16: bool = False,
) -> dict:
    """The judge's out-of-fold AUROC (generated above real) with its bootstrap interval over images, and the
    two one-number statistics' AUROCs. Images (N, 1, H, W) in [0, 1], both sets at the same size."""
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"realism: real films {tuple(real.shape[1:])} and generated {tuple(generated.shape[1:])} differ"
        )
    if min(len(real), len(generated)) < folds:
        raise ValueError(f"realism: {len(real)} real and {len(generated)} generated images; need {folds} (folds) each")
    real, generated = to_8bit(real), to_8bit(generated)
    images = torch.cat([real, generated])
    is_generated = torch.cat([torch.zeros(len(real), dtype=torch.bool), torch.ones(len(generated), dtype=torch.bool)])
    scores = out_of_fold_scores(images, is_generated, folds, epochs, width, batch_size, lr, seed, bf16)
    result = auroc_interval(scores, is_generated.float(), resamples, seed)
    sharp_real, sharp_generated = sharpness(real).double(), sharpness(generated).double()
    result["sharpness_auroc"] = two_group_auroc_interval(sharp_real, sharp_generated, resamples, seed)
    result["black_share_auroc"] = auroc(torch.cat([black_share(real), black_share(generated)]).double(), is_generated)
    result["judge"] = {"folds": folds, "epochs": epochs, "width": width, "seed": seed}
    return result
