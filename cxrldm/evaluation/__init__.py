"""Metrics of generated radiographs: MS-SSIM (reconstruction and diversity), Frechet distance on the
features of a chest X-ray network, and prompt adherence measured by that network's classifier.

Two feature networks share one interface: torchxrayvision's `densenet121-res224-all` (the seed's,
pretrained weights from a configured cache directory) and a small CNN trained by the pipeline itself
on the training split's labels (for the demo and air-gapped machines). Each applies one transform to
every image it sees, so samples and real images are always treated identically."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from monai.metrics import FIDMetric

from ..autoencoder import ms_ssim
from ..nets import EvaluatorCNN

XRV_WEIGHTS = "densenet121-res224-all"


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors (N, D) (MONAI's FID)."""
    return float(FIDMetric()(features_a.double(), features_b.double()))


def pair_indices(n: int, pairs: int, seed: int) -> torch.Tensor:
    """(P, 2) index pairs i < j: all of them when `pairs` is 0 or covers them all, else a fixed random subset."""
    all_pairs = torch.combinations(torch.arange(n), 2)
    if pairs <= 0 or pairs >= len(all_pairs):
        return all_pairs
    choice = torch.randperm(len(all_pairs), generator=torch.Generator().manual_seed(seed))[:pairs]
    return all_pairs[choice.sort().values]


def mean_pairwise_ms_ssim(images: torch.Tensor, pairs: torch.Tensor, kernel_size: int, batch_size: int = 256) -> float:
    """Mean MS-SSIM over the given image pairs: low means diverse."""
    scores = [ms_ssim(images[chunk[:, 0]], images[chunk[:, 1]], kernel_size) for chunk in pairs.split(batch_size)]
    return float(torch.cat(scores).mean())


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
            "or set evaluate.feature_network: evaluator_cnn")
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


def lower_zone_contrast(images: torch.Tensor) -> torch.Tensor:
    """Per image (N, 1, H, W in [0, 1]): mean brightness of the image-left lower chest minus the image-right
    one (rows 50-85%, columns 15-45% and 55-85%). A PA film shows the patient's right on the image's left,
    so a right pleural effusion raises this number and a left one lowers it: a side check where the
    classifier has no side labels."""
    height, width = images.shape[-2:]
    lower = images[..., int(height * 0.50):int(height * 0.85), :]
    image_left = lower[..., int(width * 0.15):int(width * 0.45)].mean(dim=(1, 2, 3))
    image_right = lower[..., int(width * 0.55):int(width * 0.85)].mean(dim=(1, 2, 3))
    return image_left - image_right


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN without both classes."""
    pos, neg = scores[positive.bool()], scores[~positive.bool()]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def train_evaluator_cnn(images: torch.Tensor, targets: torch.Tensor, labels: list[str], epochs: int, batch_size: int,
                        lr: float, seed: int, width: int = 32, progress=None, precision: str = "fp32") -> EvaluatorCNN:
    """Fit EvaluatorCNN to multi-label targets (N, L) in {0, 1} with light affine augmentation, on the CPU;
    precision `auto` or `bf16` trains under bf16 autocast where the CPU has bf16 kernels (about 2x faster)."""
    from ..data import random_affine
    from ..training import resolve_precision
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
            rows = order[start:start + batch_size]
            batch = random_affine(images[rows], p=0.8, degrees=5.0, translate_px=2.0, scale=0.05)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                logits = model(batch)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()
