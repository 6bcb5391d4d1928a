"""How well edits worked (stage edit's measures), against the stage's former inline computations and by value."""

import math

import pytest
import torch

from cxrldm.evaluation import classification, edits
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.evaluation.memorisation import nearest_neighbours, pixel_space
from cxrldm.evaluation.similarity import ms_ssim
from cxrldm.sampling.editing import zone_mask

SIZE = 64


class Stand_in:
    """A stand-in classifier and feature network: probabilities from the brightness of rows (finding f: rows
    f::3), features the films pooled to 4 x 4."""

    name, labels = "stand_in", ["Cardiomegaly", "Pleural Effusion", "Edema"]

    def probabilities(self, images):
        return torch.stack([images[:, 0, f::3].mean(dim=(1, 2)) for f in range(3)], 1)

    def features(self, images):
        return torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1)


def old_stage_measures(
    classifier,
    network,
    originals,
    pixel_size,
    kernel,
    threshold,
    options,
    spec,
    index,
    before,
    edited,
    raw,
    reconstruction,
    edit,
    keep,
):
    """Stage edit's measurement of one edit as it was written in the stage (the reference, verbatim but for names)."""
    original_features, original_pixels = network.features(originals), pixel_space(originals, pixel_size)
    (column,) = classification.classifier_columns(classifier, [spec["finding"]], f"edit.edits {spec['name']}")
    present = spec["target"] == "present"
    probability_before = classifier.probabilities(before)[:, column]
    probability_after = classifier.probabilities(edited)[:, column]
    at_target_before = (probability_before >= threshold) == present
    at_target_after = (probability_after >= threshold) == present
    fixed = keep if spec.get("keep") else 1 - edit
    outside = 1 - edit

    def outside_change(images):
        return ((images - before).abs() * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp(min=1)

    raw_in_fixed = before * (1 - fixed) + raw * fixed

    def identity(space, originals_in_space, images):
        return mean_interval((nearest_neighbours(space(images), originals_in_space)[1] == index).double(), **options)

    entry = {
        "probability_before": mean_interval(probability_before, **options),
        "probability_after": mean_interval(probability_after, **options),
        "probability_change": mean_interval(probability_after - probability_before, **options),
        "at_target_before": float(at_target_before.double().mean()),
        "at_target_after": mean_interval(at_target_after.double(), **options),
        "outside_change_pasted": mean_interval(outside_change(edited), **options),
        "outside_change_raw": mean_interval(outside_change(raw), **options),
        "outside_change_reconstruction": mean_interval(outside_change(reconstruction), **options),
        "fixed_region_ms_ssim_raw": mean_interval(ms_ssim(raw_in_fixed, before, kernel), **options),
        "identity_top1_features": identity(network.features, original_features, edited),
        "identity_top1_features_raw": identity(network.features, original_features, raw),
        "identity_top1_pixels": identity(lambda x: pixel_space(x, pixel_size), original_pixels, edited),
    }
    flippable = ~at_target_before
    entry["flip_rate"] = (
        mean_interval(at_target_after[flippable].double(), **options)
        if flippable.any()
        else {"value": None, "n": 0, "note": "every film was already at the target"}
    )
    entry["n_flippable"] = int(flippable.sum())
    contrast = None
    if spec.get("side"):
        contrast = classification.lower_zone_contrast(edited)
        entry["lower_zone_contrast_change"] = mean_interval(
            contrast - classification.lower_zone_contrast(before), **options
        )
    return entry, probability_before, probability_after, contrast


def smooth(n, seed):
    images = torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool2d(images, 5, 1, 2)


@pytest.mark.parametrize(
    "spec",
    [
        {
            "name": "add_right",
            "finding": "Pleural Effusion",
            "target": "present",
            "mask": "right_lower",
            "side": "right",
        },
        {"name": "remove_heart", "finding": "Cardiomegaly", "target": "absent", "mask": "heart", "keep": "right_lower"},
    ],
)
def test_the_judge_measures_what_the_stage_measured_inline(spec):
    originals = smooth(8, 0)
    index = torch.tensor([5, 1, 6, 2])
    before = originals[index]
    edit_mask = zone_mask(spec["mask"], SIZE, SIZE).expand_as(before)
    keep_mask = (zone_mask(spec["keep"], SIZE, SIZE) if spec.get("keep") else torch.zeros(SIZE, SIZE)).expand_as(before)
    raw = (before + 0.3 * smooth(4, 1)).clamp(0, 1)
    weights = edit_mask * (1 - keep_mask)
    edited = before * (1 - weights) + raw * weights
    reconstruction = (before + 0.05 * smooth(4, 2)).clamp(0, 1)
    network, options, threshold = Stand_in(), {"resamples": 60, "seed": 2}, 0.5
    judge = edits.EditJudge(network, network, originals, 16, 3, threshold, **options)
    fixed = keep_mask if spec.get("keep") else 1 - edit_mask
    got = judge.measure(
        spec["finding"],
        spec["target"],
        f"edit.edits {spec['name']}",
        index,
        before,
        edited,
        raw,
        reconstruction,
        edit_mask,
        fixed,
        bool(spec.get("side")),
    )
    entry, before_p, after_p, contrast = old_stage_measures(
        network,
        network,
        originals,
        16,
        3,
        threshold,
        options,
        spec,
        index,
        before,
        edited,
        raw,
        reconstruction,
        edit_mask,
        keep_mask,
    )
    assert got.entry == entry
    assert torch.equal(got.probability_before, before_p) and torch.equal(got.probability_after, after_p)
    assert (got.contrast is None) == (contrast is None) and (contrast is None or torch.equal(got.contrast, contrast))
    # by value: paste-back changes nothing outside the mask; each film is nearest its own original in pixels
    assert got.entry["outside_change_pasted"]["value"] == 0 and got.entry["outside_change_raw"]["value"] > 0.01
    assert got.entry["identity_top1_pixels"]["value"] == 1.0


def test_success_by_hand():
    before = torch.tensor([0.2, 0.6, 0.1, 0.3])
    after = torch.tensor([0.7, 0.9, 0.4, 0.8])
    result = edits.success(before, after, 0.5, True, resamples=50, seed=0)
    assert result["at_target_before"] == 0.25 and result["at_target_after"]["value"] == 0.75
    assert result["n_flippable"] == 3 and result["flip_rate"]["value"] == pytest.approx(2 / 3)
    assert result["probability_change"]["value"] == pytest.approx(0.4)
    absent = edits.success(before, after, 0.5, False, resamples=50, seed=0)  # towards below the threshold
    assert absent["at_target_before"] == 0.75 and absent["n_flippable"] == 1 and absent["flip_rate"]["value"] == 0.0
    done = edits.success(after, after, 0.3, True, resamples=50, seed=0)
    assert done["flip_rate"] == {"value": None, "n": 0, "note": "every film was already at the target"}


def test_outside_change_counts_only_outside_pixels():
    before = torch.zeros(2, 1, 4, 4)
    images = before.clone()
    images[:, :, :2] = 1.0  # the top half changed by 1
    outside = torch.zeros(2, 1, 4, 4)
    outside[0, :, :1] = 1  # film 0: outside is the top row (changed)
    outside[1, :, 3:] = 1  # film 1: the bottom row (unchanged)
    assert edits.outside_change(images, before, outside).tolist() == [1.0, 0.0]
    assert edits.outside_change(images, before, torch.zeros_like(outside)).tolist() == [0.0, 0.0]  # none: 0


def test_identity_top1_is_the_share_nearest_their_own_original():
    originals = torch.eye(4)
    edited = originals[[0, 1, 3, 2]] + 0.1
    assert edits.identity_top1(edited, originals, torch.tensor([0, 1, 2, 3]), 20, 0)["value"] == 0.5
    assert math.isclose(edits.identity_top1(edited, originals, torch.tensor([0, 1, 3, 2]), 20, 0)["value"], 1.0)
