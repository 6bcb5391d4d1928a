"""Text-guided editing of real radiographs (SDEdit with RadEdit's edit and keep masks).

The image is encoded, noised to the timestep that `strength` names (0: unchanged, 1: nearly pure noise,
a new image) and denoised towards the prompt with classifier-free guidance. After every step the latent
outside the edit mask, and inside the keep mask, is replaced by the original's latent noised to that
step's level, so only the edit region follows the prompt. At the end the original pixels go back outside
the edit mask and inside the keep mask, feathered inwards from the mask's border: every pixel there is
the original's exactly. The model sees the image's centred square at its own size; the result is pasted
back into the image at the image's resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from cxrldm.data import dicom
from cxrldm.data.filters import gaussian_blur
from cxrldm.models.training import unwrap
from cxrldm.sampling.generation import decode, denoise, image_seeds, initial_noise
from cxrldm.sampling.schedulers import make_scheduler

# Fixed zones as (top, bottom, left, right) fractions of the image. A PA film shows the patient's right
# on the image's left, so the patient's right lower zone is the image's lower left.
ZONES = {
    "whole": (0.0, 1.0, 0.0, 1.0),
    "right_lower": (0.45, 0.92, 0.03, 0.50),
    "left_lower": (0.45, 0.92, 0.50, 0.97),
    "lower_zones": (0.45, 0.92, 0.03, 0.97),
    "heart": (0.30, 0.88, 0.30, 0.85),
}


ASPECT_TOLERANCE = 0.01  # relative difference of width / height a mask may have from its image


class EditError(ValueError):
    """Bad input to an edit: the message names the file or the option."""


def zone_mask(zone: str, height: int, width: int) -> torch.Tensor:
    """(height, width) float mask of 0 and 1 for a fixed zone."""
    if zone not in ZONES:
        raise EditError(f"unknown mask zone {zone!r}: expected one of {', '.join(ZONES)} or a PNG file")
    top, bottom, left, right = ZONES[zone]
    mask = torch.zeros(height, width)
    mask[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = 1.0
    return mask


def read_grayscale(path: str | Path) -> np.ndarray:
    """An image file as a uint8 (H, W) array. A DICOM file is displayed as its header says
    (cxrldm.data.dicom). 16-bit and 32-bit grayscale are scaled to 8 bits by their maximum; RGB(A) whose three
    channels are equal is taken as grayscale; a colour image is refused."""
    path = Path(path)
    if dicom.is_dicom(path):
        try:
            return dicom.read_display(path).pixels
        except dicom.DicomError as error:
            raise EditError(str(error)) from None
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                pixels = np.asarray(image, dtype=np.float64)
                top = pixels.max()
                return np.round(pixels / top * 255).astype(np.uint8) if top > 0 else np.zeros(pixels.shape, np.uint8)
            if mode in ("RGB", "RGBA", "P", "LA", "PA"):
                rgb = np.asarray(image.convert("RGB"))
                if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                    raise EditError(
                        f"{path}: a colour image ({mode} with differing channels); chest X-rays "
                        "are grayscale: convert it first"
                    )
                return rgb[..., 0].copy()
            return np.asarray(image.convert("L")).copy()
    except (OSError, SyntaxError) as error:
        raise EditError(f"{path}: not a readable image ({error})") from None


def read_mask(path: str | Path, height: int, width: int) -> torch.Tensor:
    """A mask file (8-bit image, any size with the image's aspect ratio; >= 128 selects) resized to
    (height, width) by nearest neighbour, as a float mask of 0 and 1."""
    pixels = read_grayscale(path)
    mask_ratio, image_ratio = pixels.shape[1] / pixels.shape[0], width / height
    if abs(mask_ratio / image_ratio - 1) > ASPECT_TOLERANCE:
        raise EditError(
            f"{path}: mask is {pixels.shape[1]}x{pixels.shape[0]} (aspect {mask_ratio:.3f}), the image "
            f"{width}x{height} (aspect {image_ratio:.3f}); a mask must have its image's aspect ratio"
        )
    resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.NEAREST)
    return torch.from_numpy((np.asarray(resized) >= 128).astype(np.float32))


def mask_from(spec: str | None, height: int, width: int, default: float) -> torch.Tensor:
    """A zone name or a PNG path as a (height, width) mask; None: all `default`."""
    if spec is None or spec == "":
        return torch.full((height, width), default)
    if spec in ZONES:
        return zone_mask(spec, height, width)
    if not Path(spec).is_file():
        raise EditError(f"{spec}: neither a mask file nor a zone ({', '.join(ZONES)})")
    return read_mask(spec, height, width)


def feather(mask: torch.Tensor, pixels: float) -> torch.Tensor:
    """(..., H, W) 0/1 mask -> weights that rise from 0 at the mask's border to 1 about `pixels` inside it,
    and are exactly 0 outside it (so paste-back keeps every pixel outside the mask)."""
    if pixels <= 0:
        return mask.clone()
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    blurred = gaussian_blur(flat, pixels / 2, radius=max(1, math.ceil(2 * pixels)), border="replicate")
    return ((2 * blurred - 1).clamp(0, 1) * flat).reshape(mask.shape)


def paste_back(original: torch.Tensor, edited: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The edited pixels where `weights` is 1, the original's where it is 0, blended between."""
    return torch.where(weights > 0, original * (1 - weights) + edited * weights, original)


def difference_map(edited: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Edited minus original on a mid-grey ground: 0.5 is unchanged, brighter is brighter."""
    return (0.5 + (edited - original)).clamp(0, 1)


def latent_mask(mask: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) pixel mask -> (N, 1, h, w): a latent cell is in it if any of its pixels is."""
    return F.adaptive_max_pool2d(mask.float(), latent_size)


def start_index(strength: float, steps: int) -> int:
    """Index into the scheduler's timesteps where an edit of `strength` starts."""
    if not 0.0 <= strength <= 1.0:
        raise EditError(f"strength must be in [0, 1], got {strength}")
    return steps - round(strength * steps)


@dataclass
class EditResult:
    edited: torch.Tensor  # (N, 1, S, S) in [0, 1], original pixels put back outside the edit region
    raw: torch.Tensor  # the decoded edit without paste-back
    weights: torch.Tensor  # paste-back weights (feathered edit mask minus keep mask)


@torch.no_grad()
def edit_images(
    models,
    images: torch.Tensor,
    prompts: list[str],
    seeds: list[int],
    strength: float,
    guidance: float,
    steps: int,
    edit_masks: torch.Tensor | None = None,
    keep_masks: torch.Tensor | None = None,
    feather_px: float = 2.0,
    batch_size: int = 16,
    progress=None,
) -> EditResult:
    """Edit (N, 1, S, S) images in [0, 1] at the model's size towards one prompt each (DDIM).
    Masks are (N, 1, S, S) of 0 and 1: edit None = the whole image, keep None = nothing kept."""
    n = len(images)
    edit_masks = torch.ones_like(images) if edit_masks is None else edit_masks.float()
    keep_masks = torch.zeros_like(images) if keep_masks is None else keep_masks.float()
    if (edit_masks.flatten(1).sum(1) == 0).any():
        raise EditError("the edit mask selects no pixel")
    first = start_index(strength, steps)
    weights = feather(edit_masks * (1 - keep_masks), feather_px)
    if first == steps:  # strength 0: nothing is denoised
        return EditResult(images.clone(), images.clone(), weights)
    runtime, device = models.runtime, models.runtime.device
    autoencoder = unwrap(models.autoencoder)
    null = models.encoder.null_condition()
    raw = []
    starts = range(0, n, batch_size)
    for start in progress(starts, desc="editing", total=len(starts)) if progress else starts:
        part = slice(start, start + batch_size)
        with runtime.autocast():
            mu, _ = autoencoder.encode(images[part].to(device))
        original = mu.float() * models.scale_factor
        latent_size = tuple(original.shape[-2:])
        free = latent_mask(edit_masks[part], latent_size) * (1 - latent_mask(keep_masks[part], latent_size))
        free = free.to(device)
        noise = initial_noise(seeds[part], list(original.shape[1:])).to(device)
        scheduler = make_scheduler("ddim", **models.schedule)
        scheduler.set_timesteps(steps, device=device)
        timesteps = scheduler.timesteps[first:]

        def keep_original(i, x):
            if i + 1 < len(timesteps):
                level = scheduler.add_noise(original, noise, timesteps[i + 1].expand(len(x)))
            else:
                level = original
            return free * x + (1 - free) * level

        x = scheduler.add_noise(original, noise, timesteps[0].expand(len(original)))
        context = models.encoder.condition(prompts[part]).to(device)
        x = denoise(
            models.unet,
            scheduler,
            x,
            timesteps,
            context,
            null.to(device).expand_as(context),
            guidance,
            runtime,
            after_step=keep_original,
        )
        raw.append(decode(autoencoder, x, models.scale_factor, runtime))
    raw = torch.cat(raw)
    return EditResult(paste_back(images, raw, weights), raw, weights)


def label_columns(edits: list[dict]) -> list[str]:
    """The CheXpert label columns a list of edits (dicts with "finding" and "source") needs: No Finding where a
    source is `normal`, then every finding and every source that names one, sorted."""
    columns = sorted(
        {x["finding"] for x in edits} | {x["source"] for x in edits if x["source"] not in ("normal", "any")}
    )
    normal = ["No Finding"] if any(x["source"] == "normal" for x in edits) else []
    return [*normal, *columns]


def source_films(films: pd.DataFrame, labels: pd.DataFrame, source: str, limit: int) -> pd.DataFrame:
    """The first `limit` films (by study) whose CheXpert label `source` is 1 (`normal`: No Finding;
    `any`: every film)."""
    if source == "any":
        return films.sort_values("study_id").head(limit)
    column = "No Finding" if source == "normal" else source
    positive = labels.reindex(films.study_id)[column].to_numpy() == 1.0
    return films[positive].sort_values("study_id").head(limit)


@dataclass
class EditRun:
    films: pd.DataFrame  # the edited films' rows
    index: torch.Tensor  # their rows among the originals
    before: torch.Tensor  # the originals edited, (N, 1, S, S)
    edit_mask: torch.Tensor  # (N, 1, S, S) of 0 and 1
    keep_mask: torch.Tensor
    seeds: list[int]  # one per film
    result: EditResult


def edit_runs(
    models,
    films: pd.DataFrame,
    labels: pd.DataFrame,
    originals: torch.Tensor,
    edits: list[dict],
    limit: int,
    seed: int,
    strength: float,
    guidance: float,
    steps: int,
    feather_px: float,
    batch_size: int,
    param: str,
):
    """Each edit of `edits` (dicts with "name", "prompt", "source", "mask" and optionally "keep", a zone or a PNG)
    applied to up to `limit` of the films (one row per study, `originals` their images at the model's size) with
    that source (source_films): yields (edit, EditRun) in turn. Seeds follow image_seeds over all the edits'
    films, the count going on from one edit to the next. An edit with fewer than 2 films is an error naming
    `param`."""
    position = {path: i for i, path in enumerate(films.path)}
    size, offset = models.image_size, 0
    for spec in edits:
        chosen = source_films(films, labels, spec["source"], limit)
        if len(chosen) < 2:
            raise ValueError(
                f"{param} {spec['name']}: {len(chosen)} test films with source "
                f"{spec['source']!r}; an edit needs at least 2"
            )
        index = torch.tensor([position[path] for path in chosen.path])
        before = originals[index]
        edit = mask_from(spec["mask"], size, size, 1.0).expand_as(before)
        keep = mask_from(spec.get("keep"), size, size, 0.0).expand_as(before)
        seeds = image_seeds(seed, len(chosen), offset=offset)
        offset += len(chosen)
        result = edit_images(
            models,
            before,
            [spec["prompt"]] * len(chosen),
            seeds,
            strength,
            guidance,
            steps,
            edit,
            keep,
            feather_px,
            batch_size,
        )
        yield spec, EditRun(chosen, index, before, edit, keep, seeds, result)


def edit_triples(before: torch.Tensor, edited: torch.Tensor, n: int) -> torch.Tensor:
    """(3 n, 1, S, S): for each of the first n films its original, its edit and their difference_map, in turn."""
    shown = slice(0, n)
    return torch.stack([before[shown], edited[shown], difference_map(edited, before)[shown]], 1).flatten(0, 1)


def square_crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of an image's centred square, the part the model sees."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def to_model(pixels: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (H, W) -> (1, 1, size, size) in [0, 1]: the centred square, resized (Lanczos)."""
    top, left, side = square_crop_box(*pixels.shape)
    square = Image.fromarray(pixels[top : top + side, left : left + side]).resize(
        (size, size), Image.Resampling.LANCZOS
    )
    return torch.from_numpy(np.asarray(square).astype(np.float32) / 255)[None, None]


def to_image(pixels: np.ndarray, edited: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """The model-size edit (1, 1, S, S) pasted into the full-size uint8 image: upsampled into the centred
    square, blended by full-resolution weights (H, W); pixels with weight 0 stay the original's bytes."""
    height, width = pixels.shape
    top, left, side = square_crop_box(height, width)
    canvas = torch.from_numpy(pixels.astype(np.float32) / 255)
    canvas[top : top + side, left : left + side] = F.interpolate(
        edited, size=(side, side), mode="bilinear", align_corners=False
    )[0, 0]
    blended = paste_back(torch.from_numpy(pixels.astype(np.float32) / 255), canvas, weights)
    out = (blended * 255).round().clamp(0, 255).byte().numpy()
    return np.where(weights.numpy() > 0, out, pixels)
