"""How well counterfactual edits of real films worked (stage edit), with counts and bootstrap intervals over
the films:
- success: the classifier's probability of the finding before and after, and the flip rate at a threshold
  among the films not already at the target;
- side (sided edits): the change of the lower-zone contrast (classification.lower_zone_contrast);
- preservation: mean absolute pixel change outside the edit mask with paste-back, without it, and of a plain
  autoencoder reconstruction (the floor without paste-back); MS-SSIM to the original of the region that must
  not change;
- identity: how often an edited film's nearest original is its own, in a feature network's space and in
  memorisation's standardised pixel space."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cxrldm.evaluation.classification import classifier_columns, lower_zone_contrast
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.evaluation.memorisation import nearest_neighbours, pixel_space
from cxrldm.evaluation.similarity import ms_ssim


def outside_change(images: torch.Tensor, before: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Per image: the mean absolute change from `before` over the pixels where `outside` is 1."""
    return ((images - before).abs() * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp(min=1)


def success(
    probability_before: torch.Tensor,
    probability_after: torch.Tensor,
    threshold: float,
    present: bool,
    resamples: int,
    seed: int,
) -> dict:
    """The classifier's probability of the finding before and after the edit and its change; the share of films at
    the target (probability >= threshold when `present`, below it otherwise) before and after; and the flip rate,
    the share at the target after among the films not at it before."""
    interval = {"resamples": resamples, "seed": seed}
    at_target_before = (probability_before >= threshold) == present
    at_target_after = (probability_after >= threshold) == present
    flippable = ~at_target_before
    return {
        "probability_before": mean_interval(probability_before, **interval),
        "probability_after": mean_interval(probability_after, **interval),
        "probability_change": mean_interval(probability_after - probability_before, **interval),
        "at_target_before": float(at_target_before.double().mean()),
        "at_target_after": mean_interval(at_target_after.double(), **interval),
        "flip_rate": (
            mean_interval(at_target_after[flippable].double(), **interval)
            if flippable.any()
            else {"value": None, "n": 0, "note": "every film was already at the target"}
        ),
        "n_flippable": int(flippable.sum()),
    }


def preservation(
    before: torch.Tensor,
    edited: torch.Tensor,
    raw: torch.Tensor,
    reconstruction: torch.Tensor,
    edit_mask: torch.Tensor,
    fixed: torch.Tensor,
    kernel_size: int,
    resamples: int,
    seed: int,
) -> dict:
    """What stayed: the change outside the edit mask of the edited films (with paste-back), of the raw edits and
    of the autoencoder's reconstructions of the originals (most of the raw change outside is its error); and the
    MS-SSIM to the originals of the raw edits in the region that must not change (`fixed`, 1 there), the rest
    of each film being its original."""
    interval = {"resamples": resamples, "seed": seed}
    outside = 1 - edit_mask
    raw_in_fixed = before * (1 - fixed) + raw * fixed  # only the fixed region's change counts
    return {
        "outside_change_pasted": mean_interval(outside_change(edited, before, outside), **interval),
        "outside_change_raw": mean_interval(outside_change(raw, before, outside), **interval),
        "outside_change_reconstruction": mean_interval(outside_change(reconstruction, before, outside), **interval),
        "fixed_region_ms_ssim_raw": mean_interval(ms_ssim(raw_in_fixed, before, kernel_size), **interval),
    }


def identity_top1(
    embedded: torch.Tensor, originals: torch.Tensor, index: torch.Tensor, resamples: int, seed: int
) -> dict:
    """The share of edited films (embedded) whose nearest original (embedded the same way) is their own (`index`)."""
    return mean_interval((nearest_neighbours(embedded, originals)[1] == index).double(), resamples, seed)


@dataclass
class EditMeasures:
    entry: dict  # the edit's metrics, JSON-ready
    probability_before: torch.Tensor  # per film, the classifier's probability of the finding
    probability_after: torch.Tensor
    contrast: torch.Tensor | None  # per film, the edited film's lower-zone contrast (sided edits)


class EditJudge:
    """Measures edits of films drawn from `originals` (N, 1, S, S): success by the classifier, identity in the
    feature network's space and in memorisation's pixel space at `pixel_size`, preservation with MS-SSIM at
    `kernel_size`; intervals with `resamples` and `seed`."""

    def __init__(
        self,
        classifier,
        network,
        originals: torch.Tensor,
        pixel_size: int,
        kernel_size: int,
        threshold: float,
        resamples: int,
        seed: int,
    ):
        self.classifier, self.network, self.pixel_size = classifier, network, pixel_size
        self.kernel_size, self.threshold = kernel_size, threshold
        self.interval = {"resamples": resamples, "seed": seed}
        self.original_features, self.original_pixels = network.features(originals), pixel_space(originals, pixel_size)

    def measure(
        self,
        finding: str,
        target: str,
        param: str,
        index: torch.Tensor,
        before: torch.Tensor,
        edited: torch.Tensor,
        raw: torch.Tensor,
        reconstruction: torch.Tensor,
        edit_mask: torch.Tensor,
        fixed: torch.Tensor,
        sided: bool,
    ) -> EditMeasures:
        """An edit of the originals at `index` (`before`) towards `finding` being `target` ("present" or not):
        `edited` with paste-back, `raw` without, `reconstruction` the originals through the autoencoder alone;
        `fixed` is 1 where nothing may change. `param` names the edit in an error (a finding the classifier lacks)."""
        (column,) = classifier_columns(self.classifier, [finding], param)
        probability_before = self.classifier.probabilities(before)[:, column]
        probability_after = self.classifier.probabilities(edited)[:, column]
        features = self.network.features
        entry = {
            **success(probability_before, probability_after, self.threshold, target == "present", **self.interval),
            **preservation(before, edited, raw, reconstruction, edit_mask, fixed, self.kernel_size, **self.interval),
            "identity_top1_features": identity_top1(features(edited), self.original_features, index, **self.interval),
            "identity_top1_features_raw": identity_top1(features(raw), self.original_features, index, **self.interval),
            "identity_top1_pixels": identity_top1(
                pixel_space(edited, self.pixel_size), self.original_pixels, index, **self.interval
            ),
        }
        contrast = lower_zone_contrast(edited) if sided else None
        if sided:
            entry["lower_zone_contrast_change"] = mean_interval(contrast - lower_zone_contrast(before), **self.interval)
        return EditMeasures(entry, probability_before, probability_after, contrast)
