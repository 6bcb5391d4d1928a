"""The networks the evaluation stages see images through, by name: torchxrayvision's `densenet121-res224-all`
(the seed's, pretrained weights from a configured cache directory), a Hugging Face vision model, or a small
CNN trained by the pipeline itself on the training split's labels (for the demo and air-gapped machines).
The pipeline's own CNNs (the evaluator, and the privacy audit's embedding network) are defined, trained and
loaded here. Each applies one transform to every image it sees, so samples and real
images are always treated identically."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cxrldm.models import networks as nets

XRV_WEIGHTS = "densenet121-res224-all"


def conv_trunk(width: int) -> tuple[nn.Sequential, int]:
    """Four levels of two 3x3 convolutions (batch norm, ReLU) and a 2x max-pool: (trunk, out channels)."""
    layers, channels = [], 1
    for out in (width, width * 2, width * 4, width * 4):
        layers += [
            nn.Conv2d(channels, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
            nn.Conv2d(out, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        channels = out
    return nn.Sequential(*layers), channels


class EmbeddingCNN(nn.Module):
    """The privacy audit's networks (copy detector, re-identifier): the evaluator's trunk, average and max
    pooled, projected to `embed_dim` and scaled to unit length."""

    def __init__(self, width: int = 16, embed_dim: int = 64):
        super().__init__()
        self.embed_dim = embed_dim
        self.features, channels = conv_trunk(width)
        self.project = nn.Sequential(
            nn.Linear(2 * channels, 2 * channels), nn.ReLU(inplace=True), nn.Linear(2 * channels, embed_dim)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features((images - 0.5) / 0.25)
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], 1)
        return F.normalize(self.project(pooled).float(), dim=1)


class EvaluatorCNN(nn.Module):
    """A small multi-label chest X-ray classifier. Its `embed_dim`-d embedding (a linear projection of the
    pooled convolutional features) serves for the Frechet distance: small enough that a few hundred
    images estimate its covariance."""

    def __init__(self, labels: list[str], width: int = 32, embed_dim: int = 32):
        super().__init__()
        self.labels = list(labels)
        self.features, channels = conv_trunk(width)
        self.project = nn.Linear(channels, embed_dim)
        self.classifier = nn.Linear(embed_dim, len(labels))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, embed_dim) embeddings of images in [0, 1], normalised the way the network was trained."""
        return self.project(F.adaptive_avg_pool2d(self.features((images - 0.5) / 0.25), 1).flatten(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(images))


BUILDERS = {"EvaluatorCNN": EvaluatorCNN, "EmbeddingCNN": EmbeddingCNN}


def load_cnn(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(network in eval mode, its JSON description) of an evaluator or embedding CNN saved with save_model."""
    return nets.load_model(path, device, BUILDERS)


class TrainedEvaluator:
    """The pipeline's own evaluator CNN (stage train_evaluator)."""

    def __init__(self, model: EvaluatorCNN, image_size: int):
        self.model, self.image_size = model.eval(), image_size
        self.name, self.labels = "evaluator_cnn", model.labels

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return images

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model.embed(self._prepare(b)) for b in images.split(64)])

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sigmoid(self.model(self._prepare(b))) for b in images.split(64)])


def xrv_transform(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> torchxrayvision's input: intensities in [-1024, 1024] at 224 x 224."""
    images = F.interpolate(images, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return images * 2048.0 - 1024.0


def load_xrv_densenet(weights_file: str | Path):
    """torchxrayvision's DenseNet with the release weights file, unpickled with torch's restricted
    (weights_only) loader that accepts nothing but torch.nn and torchxrayvision module classes."""
    import torchxrayvision as xrv

    weights_file = Path(weights_file)
    if not weights_file.is_file():
        raise FileNotFoundError(
            f"torchxrayvision weights {XRV_WEIGHTS} not found at {weights_file}: download "
            f"{xrv.models.model_urls[XRV_WEIGHTS]['weights_url']} there on a machine with internet, "
            "or set evaluate.feature_network: evaluator_cnn"
        )
    referenced = torch.serialization.get_unsafe_globals_in_checkpoint(str(weights_file))
    foreign = [g for g in referenced if not g.startswith(("torch.nn.modules.", "torchxrayvision.models."))]
    if foreign:
        raise ValueError(f"{weights_file} references code outside torch.nn and torchxrayvision: {foreign[:3]}")
    allowed = [_import(g) for g in referenced]
    with torch.serialization.safe_globals(allowed):
        saved = torch.load(weights_file, map_location="cpu", weights_only=True)
    model = xrv.models.DenseNet(weights=None)
    model.load_state_dict(saved.state_dict())
    # as torchxrayvision does after loading: calibrated outputs and the weights' label order
    model.op_threshs = torch.tensor(xrv.models.model_urls[XRV_WEIGHTS]["op_threshs"])
    model.pathologies = xrv.models.model_urls[XRV_WEIGHTS]["labels"]
    return model.eval()


def _import(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


class XRVEvaluator:
    """torchxrayvision densenet121-res224-all: 1024-d features (features2) and its 18 pathology outputs."""

    # CheXpert label names -> torchxrayvision's
    ALIASES = {"Pleural Effusion": "Effusion"}

    def __init__(self, weights_file: str | Path, device: str | torch.device = "cpu"):
        self.model = load_xrv_densenet(weights_file).to(device)
        self.device, self.name = torch.device(device), "xrv_densenet121_res224_all"
        self.labels = [next((k for k, v in self.ALIASES.items() if v == p), p) for p in self.model.pathologies]

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model.features2(xrv_transform(b).to(self.device)).cpu() for b in images.split(32)])

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        # op_norm-calibrated outputs: 0.5 at each pathology's operating threshold
        return torch.cat([self.model(xrv_transform(b).to(self.device)).cpu() for b in images.split(32)])


def xrv_weights_file(cache_dir: str | Path) -> Path:
    import torchxrayvision as xrv

    return Path(cache_dir).expanduser() / Path(xrv.models.model_urls[XRV_WEIGHTS]["weights_url"]).name


def train_evaluator_cnn(
    images: torch.Tensor,
    targets: torch.Tensor,
    labels: list[str],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    width: int = 32,
    progress=None,
    precision: str = "fp32",
) -> EvaluatorCNN:
    """Fit EvaluatorCNN to multi-label targets (N, L) in {0, 1} with light affine augmentation, on the CPU;
    precision `auto` or `bf16` trains under bf16 autocast where the CPU has bf16 kernels (about 2x faster)."""
    from cxrldm.data.augmentation import random_affine
    from cxrldm.models.training import resolve_precision

    bf16 = resolve_precision(precision, torch.device("cpu")) == "bf16"
    torch.manual_seed(seed)
    model = EvaluatorCNN(labels, width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, steps))
    model.train()
    epoch_iter = range(epochs)
    for _ in progress(epoch_iter, desc="evaluator epochs") if progress else epoch_iter:
        order = torch.randperm(len(images))
        for start in range(0, len(images) - batch_size + 1, batch_size):
            rows = order[start : start + batch_size]
            batch = random_affine(images[rows], p=0.8, degrees=5.0, translate_px=2.0, scale=0.05)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                logits = model(batch)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def load_network(
    spec: str, xrv_cache_dir: str, evaluator_file: str | Path | None = None, device: str | torch.device = "cpu"
):
    """A feature network / classifier by its param value: `xrv` (torchxrayvision densenet121-res224-all from
    `xrv_cache_dir`), `evaluator_cnn` (stage train_evaluator's, from `evaluator_file`), or `hf:<hub id or local directory>` (any
    Hugging Face vision model's pooled output; features only)."""
    if spec == "xrv":
        return XRVEvaluator(xrv_weights_file(xrv_cache_dir), device)
    if spec == "evaluator_cnn":
        if evaluator_file is None:
            raise ValueError("the evaluator_cnn network needs the trained evaluator's file")
        model, description = load_cnn(evaluator_file)
        return TrainedEvaluator(model, description["image_size"])
    if spec.startswith("hf:") and len(spec) > 3:
        from cxrldm.evaluation.features import HFVisionFeatures

        return HFVisionFeatures(spec[3:], device)
    raise ValueError(f"a feature network must be 'xrv', 'evaluator_cnn' or 'hf:<hub id or directory>', got {spec!r}")
