"""Privacy audit networks: a copy detector and a patient re-identifier, and the planted-copy check.

A nearest-neighbour search in pixel space or in a classifier's feature space misses the copies a
diffusion model is known to make: a film shifted by two pixels, mirrored, cropped or slightly rotated is
the same patient's anatomy, yet far from the original in both spaces. Two learned embeddings close the gap:

- the *copy detector* is trained contrastively on the training films, each film its own class: a film
  and its transformed versions (shift, crop rescaled back, small rotation, mirror, blur, noise, contrast)
  map close together, different films apart (self-supervised copy detection, as used to find copies made
  by image diffusion models);
- the *re-identifier* is trained the same way with the patient as the class, so films of the same patient
  from different studies map close together (patient verification, after Packhaeuser et al. 2022).

Both are `EmbeddingCNN`s with unit-length outputs; distances are Euclidean, and the re-identifier's
score of a pair is its cosine similarity. `plant` makes the transformed copies the audit must flag.

    detector = train_embedding(images, torch.arange(len(images)), ...)        # each film its own class
    reidentifier = train_embedding(images, patient_ids, ...)                  # each patient a class
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from cxrldm.data.augmentation import warp
from cxrldm.data.filters import gaussian_blur
from cxrldm.evaluation import COPY_KINDS, parse_copy
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.evaluation.networks import EmbeddingCNN, load_cnn

# What a kind's magnitude means: blur sigma (px), shift (px, right and down), crop (side kept, rescaled
# back), rotate (degrees), noise (standard deviation, [0, 1] images), contrast (gamma).


def _affine(images: torch.Tensor, degrees: float = 0.0, zoom: float = 1.0, shift_px: tuple = (0.0, 0.0)):
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    size = images.shape[-1]
    # affine_grid maps output to input coordinates in [-1, 1]: a content shift right samples from the left
    theta = torch.tensor([[cos, -sin, -2 * shift_px[0] / size], [sin, cos, -2 * shift_px[1] / size]])
    return warp(images, theta.expand(len(images), 2, 3))


def copy_transform(images: torch.Tensor, kind: str, magnitude: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Transformed copies of images (N, 1, H, W) in [0, 1]: see COPY_KINDS. `seed` fixes the noise."""
    images = images.float()
    if kind == "exact":
        out = images.clone()
    elif kind == "blur":
        out = gaussian_blur(images, magnitude)
    elif kind == "shift":
        out = _affine(images, shift_px=(magnitude, magnitude))
    elif kind == "mirror":
        out = images.flip(-1)
    elif kind == "crop":
        if not 0 < magnitude <= 1:
            raise ValueError(f"a crop keeps a share of the side in (0, 1], got {magnitude}")
        out = _affine(images, zoom=1 / magnitude)
    elif kind == "rotate":
        out = _affine(images, degrees=magnitude)
    elif kind == "noise":
        generator = torch.Generator().manual_seed(seed)
        out = images + magnitude * torch.randn(images.shape, generator=generator)
    elif kind == "contrast":
        out = images.clamp(0, 1).pow(magnitude)
    else:
        raise ValueError(f"unknown copy kind {kind!r}, expected one of {COPY_KINDS}")
    return out.clamp(0, 1)


def random_copies(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image under a random mix of the copy transformations (the copy detector's training views):
    mirror (p 0.5), rotation up to 8 degrees, shift up to 4 px, crop down to 80% of the side, blur
    (p 0.4: a blend toward a sigma-1 px Gaussian blur, up to all of it), noise (p 0.4, sd up to 0.05)
    and a contrast gamma in [0.7, 1.4]."""
    n, size = len(images), images.shape[-1]
    u = torch.rand(9, n, generator=generator)
    angle = (u[0] * 2 - 1) * math.radians(8)
    zoom = 1 / (0.8 + 0.2 * u[1])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift_x, shift_y = (u[2] * 2 - 1) * 8 / size, (u[3] * 2 - 1) * 8 / size
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    out = warp(images.float(), theta)
    out = torch.where((u[4] < 0.5)[:, None, None, None], out.flip(-1), out)
    blurred = gaussian_blur(out, 1.0)
    blur_share = torch.where(u[5] < 0.4, u[5] / 0.4, torch.zeros(n))[:, None, None, None]
    out = out + blur_share * (blurred - out)  # between no blur and sigma 1 px
    noise = torch.randn(out.shape, generator=generator) * (0.05 * u[6])[:, None, None, None]
    out = out + torch.where((u[7] < 0.4)[:, None, None, None], noise, torch.zeros_like(noise))
    gamma = (0.7 + 0.7 * u[8])[:, None, None, None]
    return out.clamp(0, 1).pow(gamma)


def supervised_contrastive_loss(embeddings: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) of unit embeddings (B, D): each sample is pulled
    toward every other sample of its group and pushed from the rest; samples without a partner in the
    batch are left out."""
    similarity = embeddings @ embeddings.T / temperature
    eye = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    similarity = similarity.masked_fill(eye, float("-inf"))
    log_prob = similarity - similarity.logsumexp(dim=1, keepdim=True)
    positive = (groups[:, None] == groups[None, :]) & ~eye
    counts = positive.sum(1)
    per_sample = -log_prob.masked_fill(~positive, 0.0).sum(1) / counts.clamp(min=1)
    return per_sample[counts > 0].mean()


def partners(groups: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each item, the index of another item of its group drawn at random, or itself if it has none."""
    order = torch.argsort(groups, stable=True)
    sorted_groups = groups[order]
    first = torch.searchsorted(sorted_groups, sorted_groups, right=False)
    size = torch.searchsorted(sorted_groups, sorted_groups, right=True) - first
    # draw among the other size - 1 members: offset 1..size-1 from the item's own position, wrapped
    position = torch.arange(len(groups)) - first
    offset = 1 + (torch.rand(len(groups), generator=generator) * (size - 1).clamp(min=1)).long()
    other = first + (position + offset) % size  # a group of one wraps onto the item itself
    result = torch.empty_like(groups, dtype=torch.long)
    result[order] = order[other]
    return result


def train_embedding(
    images: torch.Tensor,
    groups: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    width: int = 16,
    embed_dim: int = 64,
    temperature: float = 0.1,
    progress=None,
    precision: str = "fp32",
    desc: str = "embedding epochs",
    channels_last: bool = True,
) -> EmbeddingCNN:
    """Train an EmbeddingCNN so that random copies (`random_copies`) of items of the same group land close
    together. Each step takes `batch_size` anchor images and, for each, a partner: another film of its
    group where it has one, else the anchor itself; both are seen as independent random copies.
    `channels_last` trains in that memory layout (about 1.5x faster for this narrow network on the CPU,
    benchmarks/privacy_training.py); the returned model is back in the default layout."""
    from cxrldm.models.training import resolve_precision

    bf16 = resolve_precision(precision, torch.device("cpu")) == "bf16"
    groups = torch.as_tensor(groups).long()
    if len(images) != len(groups):
        raise ValueError(f"{len(images)} images but {len(groups)} group labels")
    if len(images) < batch_size:
        raise ValueError(f"{len(images)} training images, fewer than one batch of {batch_size}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = EmbeddingCNN(width, embed_dim).to(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(images) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch))
    model.train()
    epoch_iter = range(epochs)
    for _ in progress(epoch_iter, desc=desc) if progress else epoch_iter:
        order = torch.randperm(len(images), generator=generator)
        partner = partners(groups, generator)
        for start in range(0, steps_per_epoch * batch_size, batch_size):
            anchors = order[start : start + batch_size]
            rows = torch.cat([anchors, partner[anchors]])
            views = random_copies(images[rows], generator).contiguous(memory_format=layout)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                embeddings = model(views)
            loss = supervised_contrastive_loss(embeddings.float(), groups[rows], temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.to(memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def embed(model: EmbeddingCNN, images: torch.Tensor, image_size: int, batch_size: int = 128) -> torch.Tensor:
    """(N, D) unit embeddings of images (N, 1, H, W) in [0, 1] (uint8 read as /255), resized to the
    network's `image_size`: the normalised sum of the image's and its mirror image's outputs, so a
    mirrored copy has exactly its original's embedding."""
    out = []
    for batch in torch.as_tensor(images).split(batch_size):
        batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
        if batch.shape[-1] != image_size:
            batch = F.interpolate(batch, size=(image_size, image_size), mode="bilinear", antialias=True)
        out.append(F.normalize(model(batch).float() + model(batch.flip(-1)).float(), dim=1))
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)


def load_embedding(path: str | Path):
    """A saved embedding network (stage train_privacy's copy detector or re-identifier) as a function
    images -> (N, D) unit embeddings (embed at the network's image size)."""
    model, description = load_cnn(path)
    return partial(embed, model, image_size=description["image_size"])


def reidentification(
    query: torch.Tensor,
    gallery: torch.Tensor,
    query_patients,
    gallery_patients,
    resamples: int = 1000,
    seed: int = 0,
    queries_lead_gallery: bool = False,
) -> dict:
    """How well unit embeddings tell a query's own patient among the gallery's. Per query that has at least
    one gallery film of its patient: the AUROC of its similarity to those films against its similarity to
    every other patient's film, and whether its most similar gallery film is its patient's (top-1). Means
    over queries with 95% intervals over the queries; `chance_top1` is the expected top-1 of a random
    ranking. With `queries_lead_gallery` the gallery's first rows are the queries themselves, and each
    query's own row is left out."""
    query_patients = torch.tensor(list(query_patients), dtype=torch.long)
    gallery_patients = torch.tensor(list(gallery_patients), dtype=torch.long)
    similarity = query.float() @ gallery.float().T
    same = query_patients[:, None] == gallery_patients[None, :]
    if queries_lead_gallery:
        own = torch.arange(len(query))
        similarity[own, own] = float("-inf")
        same[own, own] = False
    usable = same.any(1)
    aurocs, top1, chance = [], [], []
    for i in torch.nonzero(usable).flatten().tolist():
        valid = similarity[i] > float("-inf")
        s, positive = similarity[i][valid], same[i][valid]
        pos, neg = s[positive], s[~positive]
        greater = (pos[:, None] > neg[None, :]).double().mean() + 0.5 * (pos[:, None] == neg[None, :]).double().mean()
        aurocs.append(float(greater))
        top1.append(float(positive[s.argmax()]))
        chance.append(float(positive.double().mean()))
    if not aurocs:
        return {"n_queries": 0, "auroc": None, "top1": None, "chance_top1": None}
    return {
        "n_queries": len(aurocs),
        "auroc": mean_interval(torch.tensor(aurocs), resamples, seed),
        "top1": mean_interval(torch.tensor(top1), resamples, seed),
        "chance_top1": sum(chance) / len(chance),
    }


def planted_copies(films: torch.Tensor, specs, seed: int = 0) -> dict[str, torch.Tensor]:
    """{spec: transformed copies of `films`} for each 'kind:magnitude' spec (see `parse_copy`)."""
    return {str(spec): copy_transform(films, *parse_copy(spec), seed=seed) for spec in specs}


def gallery_views(images: torch.Tensor, specs) -> torch.Tensor:
    """The reference films in several poses, (V * N, 1, H, W): the films themselves, then for each spec
    'shift:m' the eight shifts by (+-m or 0, +-m or 0) pixels, 'rotate:m' the rotations by +-m degrees,
    'crop:m' the central crop keeping m of the side (rescaled back), any other kind its one copy. View v
    of film i is row v * N + i, so `row % N` is the film. Matching queries against these views makes a
    descriptor's remaining sensitivity to those moves irrelevant (test-time gallery expansion)."""
    views = [images.float()]
    for spec in specs:
        kind, magnitude = parse_copy(spec)
        if kind == "shift":
            views += [
                _affine(images.float(), shift_px=(dx * magnitude, dy * magnitude))
                for dx in (-1, 0, 1)
                for dy in (-1, 0, 1)
                if dx or dy
            ]
        elif kind == "rotate":
            views += [copy_transform(images, kind, sign * magnitude) for sign in (-1, 1)]
        else:
            views.append(copy_transform(images, kind, magnitude))
    return torch.cat(views)


def reidentification_check(
    embed,
    synthetic: torch.Tensor,
    training: torch.Tensor,
    test: torch.Tensor,
    prompt_patients,
    training_patients,
    test_patients,
    resamples: int,
    seed: int,
) -> dict:
    """The re-identifier's (`embed`) ranking of each synthetic image's prompt patient among the training
    patients, and its ceiling: the test films ranked against the other test films and all training films (new
    patients only)."""
    gallery = embed(training)
    test_embedded = embed(test)
    test_patients = torch.as_tensor(test_patients)
    return {
        "synthetic_vs_source": reidentification(
            embed(synthetic), gallery, prompt_patients, training_patients, resamples, seed
        ),
        "real_test_patients": reidentification(
            test_embedded,
            torch.cat([test_embedded, gallery]),
            test_patients,
            torch.cat([test_patients, training_patients]),
            resamples,
            seed,
            queries_lead_gallery=True,
        ),
    }
