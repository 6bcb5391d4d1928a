"""Any Hugging Face vision backbone as a feature network for the Frechet distance, e.g. RAD-DINO
(`microsoft/rad-dino`, a DINOv2 ViT-B/14 trained on chest X-rays), whose pooled 768-d output is the feature
space of the CheXGenBench benchmark (2025).

Same interface as `XRVEvaluator` and `TrainedEvaluator` (`.name`, `.labels`, `.features`), but a pure
feature network: `.labels` is empty and `.probabilities` raises.

The transform copies the model's own image processor (its preprocessor_config.json) but runs in torch on
the whole batch, so samples and real images pass through one identical, vectorised transform:

  (N, 1, H, W) in [0, 1]
  -> resize as the processor's `size` says: `shortest_edge` s scales the shorter side to s keeping the aspect
     ratio (longer side int(s * long / short), as transformers does), `height`/`width` to exactly that size;
     interpolation = the processor's `resample` (PIL codes: 3 bicubic, 2 bilinear, 0 nearest; 1 lanczos
     becomes bicubic, as transformers does off-CPU), antialiased as transformers' torchvision backend does
  -> clamp to [0, 1] (bicubic overshoot; an 8-bit image, what the processor was made for, cannot leave it)
  -> centre crop to `crop_size` where `do_center_crop` (zero padding where the crop is larger, as transformers)
  -> x * 255 * rescale_factor (= x for the usual 1/255, so [0, 1] is the processor's rescaled 8-bit range)
  -> 3 channels (grey replicated) and (x - image_mean) / image_std per channel where `do_normalize`.

A directory without a preprocessor config gets a square resize to the model config's `image_size`
(bicubic) and ImageNet mean/std, with a warning.

Features: the model's `pooler_output` (for DINOv2 / RAD-DINO the layer-normed CLS token, 768-d); for a
model without a pooler, the CLS token (`last_hidden_state[:, 0]`) of a token sequence, or the spatial mean
of a (N, C, h, w) feature map."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

# PIL resampling codes -> torch.nn.functional.interpolate modes (LANCZOS: bicubic, as transformers on GPU)
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def model_slug(model: str) -> str:
    """`hf_<id>` for a metric name: a hub id in full (microsoft/rad-dino -> hf_microsoft_rad_dino), a local
    directory by its folder name (/models/rad-dino -> hf_rad_dino)."""
    path = Path(model).expanduser()
    text = path.name if path.is_dir() or _looks_like_path(model) else model
    return "hf_" + (re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "model")


def _looks_like_path(model: str) -> bool:
    """Not a hub id (`name` or `namespace/name`): absolute, relative with ./ ~ .., or nested deeper."""
    return model.startswith(("/", ".", "~")) or "\\" in model or model.rstrip("/").count("/") > 1


def _missing(model: str, detail: str = "") -> FileNotFoundError:
    hub_id = model if not _looks_like_path(model) else "<hub id, e.g. microsoft/rad-dino>"
    target = model if _looks_like_path(model) else f"models/{Path(model).name}"
    offline = " (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
    return FileNotFoundError(
        f"Hugging Face vision model {model!r} not found{offline}: download it on a machine with internet "
        f"(`hf download {hub_id} --local-dir {target}`, or `huggingface-cli download ...` with an older "
        f"huggingface_hub) and point the param at that directory{': ' + detail if detail else ''}"
    )


def _size(spec, key: str):
    """A size entry from a transformers SizeDict (5.x) or a plain dict (4.x)."""
    return spec.get(key) if isinstance(spec, dict) else getattr(spec, key, None)


class HFVisionFeatures:
    """A Hugging Face vision backbone (hub id or local directory) in eval mode, float32, no gradients."""

    def __init__(self, model: str, device: str | torch.device = "cpu", batch_size: int = 32):
        from transformers import AutoImageProcessor, AutoModel

        source = str(model)
        if _looks_like_path(source) and not Path(source).expanduser().is_dir():
            raise _missing(source, "no such directory")
        if Path(source).expanduser().is_dir():
            source = str(Path(source).expanduser())
        try:
            network = AutoModel.from_pretrained(source)
        except OSError as error:
            raise _missing(str(model), str(error).splitlines()[0] if str(error) else "") from None
        self.model = network.float().eval().requires_grad_(False).to(device)
        self.device, self.batch_size = torch.device(device), batch_size
        self.source, self.name, self.labels = str(model), model_slug(str(model)), []
        try:
            processor = AutoImageProcessor.from_pretrained(source)
        except OSError:
            processor = None
        self._configure(processor)

    def _configure(self, processor) -> None:
        """Read the resize / crop / normalisation of the transform from the image processor."""
        if processor is None:
            size = getattr(self.model.config, "image_size", None)
            if size is None:
                raise ValueError(f"{self.source}: no preprocessor config and no image_size in the model config")
            height, width = (size, size) if isinstance(size, int) else tuple(size)
            warnings.warn(
                f"{self.source} has no preprocessor config: resizing to {height} x {width} (bicubic) "
                "and normalising with ImageNet mean/std",
                stacklevel=2,
            )
            self.resize, self.mode, self.crop = {"height": height, "width": width}, "bicubic", None
            self.scale, self.mean, self.std = 1.0, IMAGENET_MEAN, IMAGENET_STD
            return
        self.resize = None
        if getattr(processor, "do_resize", True):
            spec = processor.size
            if _size(spec, "height") and _size(spec, "width"):
                self.resize = {"height": int(_size(spec, "height")), "width": int(_size(spec, "width"))}
            elif _size(spec, "shortest_edge") and not _size(spec, "longest_edge"):
                self.resize = {"shortest_edge": int(_size(spec, "shortest_edge"))}
            else:
                raise ValueError(f"{self.source}: unsupported image processor size {spec}")
        resample = getattr(processor, "resample", 2)
        resample = int(getattr(resample, "value", resample)) if not isinstance(resample, str) else resample
        if resample not in _RESAMPLE:
            raise ValueError(f"{self.source}: unsupported image processor resample {resample!r}")
        self.mode = _RESAMPLE[resample]
        crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
        self.crop = (int(_size(crop, "height")), int(_size(crop, "width"))) if crop is not None else None
        self.scale = 255.0 * (float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0)
        if getattr(processor, "do_normalize", True):
            self.mean, self.std = _triple(processor.image_mean), _triple(processor.image_std)
        else:
            self.mean, self.std = (0.0,) * 3, (1.0,) * 3

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) in [0, 1] -> the model's pixel_values (N, 3, h, w): resize, clamp, centre crop,
        rescale, normalise (module docstring); every image of a batch at once."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        if self.resize is not None:
            height, width = x.shape[-2:]
            if "shortest_edge" in self.resize:
                short, long = sorted((height, width))
                new_short, new_long = self.resize["shortest_edge"], int(self.resize["shortest_edge"] * long / short)
                target = (new_short, new_long) if height <= width else (new_long, new_short)
            else:
                target = (self.resize["height"], self.resize["width"])
            if target != (height, width):
                smooth = self.mode != "nearest"
                x = F.interpolate(
                    x, size=target, mode=self.mode, antialias=smooth, align_corners=False if smooth else None
                )
        x = x.clamp(0.0, 1.0)
        if self.crop is not None:
            x = _center_crop(x, *self.crop)
        if abs(self.scale - 1.0) > 1e-6:
            x = x * self.scale
        x = x.expand(-1, 3, -1, -1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) float32 on the CPU: pooled outputs, `batch_size` images at a time."""
        out = [
            pooled(self.model(pixel_values=self.transform(b.to(self.device)))).float().cpu()
            for b in images.split(self.batch_size)
        ]
        return torch.cat(out)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"{self.name} is a feature network only (no classifier, labels = []): it gives features for the "
            "Frechet distance, not finding probabilities; use feature_network xrv or evaluator_cnn for adherence"
        )


def pooled(outputs) -> torch.Tensor:
    """`pooler_output` flattened to (N, D); without one, the CLS token of a (N, T, D) token sequence or the
    spatial mean of a (N, C, h, w) feature map."""
    pooler = getattr(outputs, "pooler_output", None)
    if pooler is not None:
        return pooler.flatten(1)
    hidden = outputs.last_hidden_state
    return hidden[:, 0] if hidden.ndim == 3 else hidden.mean(dim=tuple(range(2, hidden.ndim)))


def _triple(values) -> tuple[float, float, float]:
    values = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(values) not in (1, 3):
        raise ValueError(f"expected 1 or 3 channel statistics, got {values}")
    return tuple(values * 3) if len(values) == 1 else tuple(values)


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """transformers' centre crop: zero padding (left/top gets the floor half) where the crop is larger."""
    pad_h, pad_w = max(height - x.shape[-2], 0), max(width - x.shape[-1], 0)
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
    top, left = int((x.shape[-2] - height) / 2.0), int((x.shape[-1] - width) / 2.0)
    return x[..., top : top + height, left : left + width]
