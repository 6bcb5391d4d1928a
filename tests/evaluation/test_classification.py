"""A finding's classifier-based results count only where the classifier separates it on the real films:
its real-image AUROC interval must lie above faithfulness.min_ceiling."""

import pytest
import torch

from cxrldm.evaluation import classification
from cxrldm.evaluation.classification import auroc_interval, ceiling_note
from cxrldm.report.evaluation_page import faithfulness_bars


def real_auroc(separation: float, n: int = 60, seed: int = 0) -> dict:
    """The AUROC interval of a classifier whose scores move `separation` with the label, over n films."""
    generator = torch.Generator().manual_seed(seed)
    targets = (torch.arange(n) % 2).float()
    scores = torch.rand(n, generator=generator) + separation * targets
    return auroc_interval(scores, targets, resamples=500, seed=seed)


def test_a_classifier_at_chance_is_marked_uninformative_and_a_good_one_is_not():
    for seed in range(5):
        chance = real_auroc(0.0, seed=seed)
        assert chance["low"] < 0.6
        assert "not clearly above 0.6" in ceiling_note(chance, 0.6)
        assert ceiling_note(real_auroc(1.0, seed=seed), 0.6) is None


def test_the_threshold_is_the_interval_s_lower_end_not_the_value():
    interval = {"value": 0.7, "low": 0.55, "high": 0.85}
    assert ceiling_note(interval, 0.6) is not None  # value above, interval not clearly above
    assert ceiling_note(interval, 0.5) is None
    assert "unknown" in ceiling_note({"value": None, "low": None, "high": None}, 0.6)


def test_the_page_marks_uninformative_findings_and_says_why():
    faithfulness = {
        "findings": {
            "Edema": {
                "synthetic_auroc": {"value": 0.8, "low": 0.7, "high": 0.9},
                "real_auroc": {"value": 0.95, "low": 0.9, "high": 1.0},
                "informative": True,
            },
            "Pneumothorax": {
                "synthetic_auroc": {"value": 0.87, "low": 0.7, "high": 0.95},
                "real_auroc": {"value": 0.51, "low": 0.3, "high": 0.7},
                "informative": False,
                "uninformative_because": "the classifier's AUROC on the real films is 0.51",
            },
        }
    }
    svg, notes = faithfulness_bars(faithfulness)
    assert "Pneumothorax (uninformative)" in svg and "Edema (uninformative)" not in svg
    assert notes == ["Pneumothorax: uninformative, the classifier's AUROC on the real films is 0.51"]


def test_adherence_s_real_yardstick_is_the_positives_against_all_known_films():
    """A perfect classifier on films with prevalence q scores 1 - q / 2 (the positives are among "all", as
    positives are among the null prompt's images); uncertain (NaN) films are left out, not counted negative."""
    from cxrldm.evaluation.classification import positive_vs_all

    targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, float("nan"), float("nan")])
    perfect = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.0, 0.0])  # the uncertain films score lowest
    result = positive_vs_all(perfect, targets, resamples=200, seed=0)
    assert (result["n_positive"], result["n_all"]) == (2, 8)
    assert abs(result["value"] - (1 - (2 / 8) / 2)) < 1e-12  # 0.875, not the positives-vs-negatives 1.0
    reversed_ = positive_vs_all(1 - perfect, targets, resamples=200, seed=0)
    assert abs(reversed_["value"] - (2 / 8) / 2) < 1e-12
    assert positive_vs_all(perfect, torch.zeros(10), resamples=200, seed=0)["value"] is None


def test_a_finding_the_label_file_lacks_gets_no_yardstick_and_says_why():
    """The classifier may know a finding the label file has no column for (xrv's labels, a manifest's own):
    evaluate then writes no value and the reason instead of failing; a present column is scored as usual."""
    import pandas as pd

    from cxrldm.evaluation.classification import label_targets, positive_vs_all, real_adherence

    labels = pd.DataFrame({"study_id": [1, 2, 3, 4], "Cardiomegaly": [1.0, 0.0, -1.0, None]}).set_index("study_id")
    scores = torch.tensor([0.9, 0.2, 0.5, 0.1])
    missing = real_adherence(scores, labels, [1, 2, 3, 4], "Edema", "all", resamples=50, seed=0)
    assert missing["value"] is None and "no 'Edema' column" in missing["skipped"]
    present = real_adherence(scores, labels, [1, 2, 3, 4], "Cardiomegaly", "all", resamples=50, seed=0)
    assert present == positive_vs_all(scores, label_targets(labels, [1, 2, 3, 4], ["Cardiomegaly"])[:, 0], 50, 0)
    assert (present["n_positive"], present["n_all"]) == (1, 3)  # the uncertain study is left out


def test_real_adherence_against_negative_films_is_the_classifiers_auroc():
    """Against a normal report's images the real counterpart is positives against negatives only (the classifier's
    AUROC, uncertain labels left out, a finding not mentioned negative), not against all films."""
    import pandas as pd

    from cxrldm.evaluation.classification import real_adherence

    labels = pd.DataFrame({"study_id": [1, 2, 3, 4, 5], "Cardiomegaly": [1.0, 0.0, -1.0, None, 1.0]}).set_index(
        "study_id"
    )
    scores = torch.tensor([0.9, 0.2, 0.95, 0.1, 0.6])  # the uncertain study scores highest
    negative = real_adherence(scores, labels, [1, 2, 3, 4, 5], "Cardiomegaly", "negative", resamples=50, seed=0)
    assert negative["value"] == 1.0 and (negative["n_positive"], negative["n_negative"]) == (2, 2)
    assert real_adherence(scores, labels, [1, 2, 3, 4, 5], "Cardiomegaly", "all", 50, 0)["value"] < 1.0
    with pytest.raises(KeyError):
        real_adherence(scores, labels, [1, 2, 3, 4, 5], "Cardiomegaly", "normal", 50, 0)


class ColumnClassifier:
    """A stand-in classifier: finding f's probability is the mean brightness of image rows f::3 (each call
    counted, so that a test sees the images are scored once per group)."""

    name, labels = "stand_in", ["Cardiomegaly", "Pleural Effusion", "Edema"]

    def probabilities(self, images):
        return torch.stack([images[:, 0, f::3].mean(dim=(1, 2)) for f in range(3)], 1)


def sample_manifest(n: int = 5):
    """Prompt groups 0 (Cardiomegaly), 1 (Pleural Effusion, right), 2 (Pleural Effusion, left), 3 (normal, no
    finding; its first film shows both findings) and unconditional, interleaved; images whose brightness follows
    their group, with noise."""
    import pandas as pd

    groups = [
        (0, "Big heart.", "Cardiomegaly", ""),
        (1, "Right effusion.", "Pleural Effusion", "right"),
        (2, "Left effusion.", "Pleural Effusion", "left"),
        (3, "Normal.", "", ""),
        ("unconditional", "", "", ""),
    ]
    rows = [{"group": g, "prompt": t, "finding": f, "side": s} for k in range(n) for g, t, f, s in groups]
    manifest = pd.DataFrame(rows)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(len(manifest), 1, 12, 12, generator=generator) * 0.5
    for i, row in manifest.iterrows():
        if row.group == 3 and i < 5:  # one normal film with the findings: against the normal
            images[i, 0, 0::3] += 0.6  # reports' images, adherence is below 1 (against the null, 1)
            images[i, 0, 1::3] += 0.6
        if row.finding == "Cardiomegaly":
            images[i, 0, 0::3] += 0.4
        if row.side:
            zone = slice(0, 6) if row.side == "right" else slice(6, 12)  # a right effusion: the image's left
            images[i, 0, 6:, zone] += 0.3
            images[i, 0, 1::3] += 0.2
    return manifest, images


def old_evaluate_adherence(
    classifier, manifest, images, null_probabilities, test_probabilities, labels, study_ids, normal, options
):
    """Stage evaluate's adherence loop as it was written in the stage (the reference, verbatim but for names)."""

    def picked(rows):
        return images[torch.from_numpy(manifest.index.isin(rows.index))]

    normal_probabilities = None if normal is None else classifier.probabilities(picked(normal))
    adherence = {}
    for group, rows in manifest[manifest.finding != ""].groupby("group", sort=False):
        finding = rows.finding.iloc[0]
        (column,) = classification.classifier_columns(classifier, [finding], f"sample prompt {rows.prompt.iloc[0]!r}")
        probabilities = classifier.probabilities(picked(rows))[:, column]

        def yardstick(reference):
            return classification.real_adherence(
                test_probabilities[:, column], labels, study_ids, finding, reference, **options
            )

        entry = adherence[f"prompt{int(group):03d}"] = {
            "finding": finding,
            "prompt": rows.prompt.iloc[0],
            "prompt_probability": float(probabilities.mean()),
            "null_probability": float(null_probabilities[:, column].mean()),
            "auroc_vs_null": classification.two_group_auroc_interval(
                probabilities, null_probabilities[:, column], **options
            ),
            "real_positive_vs_all": yardstick("all"),
        }
        if normal_probabilities is not None:
            entry.update(
                {
                    "normal_prompt": normal.prompt.iloc[0],
                    "normal_probability": float(normal_probabilities[:, column].mean()),
                    "auroc_vs_normal": classification.two_group_auroc_interval(
                        probabilities, normal_probabilities[:, column], **options
                    ),
                    "real_positive_vs_negative": yardstick("negative"),
                }
            )
    return adherence


def real_films(n: int = 10):
    import pandas as pd

    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n, 1, 12, 12, generator=generator) * 0.5
    images[::2, 0, 0::3] += 0.4  # even films: cardiomegaly
    labels = pd.DataFrame(
        {"Cardiomegaly": [1.0, 0.0] * (n // 2), "Pleural Effusion": [0.0] * (n - 1) + [-1.0]},
        index=pd.Index(range(100, 100 + n), name="study_id"),
    )
    return images, labels, list(range(100, 100 + n))


@pytest.mark.parametrize("with_normal", [False, True])
def test_adherence_is_evaluate_s_former_loop(with_normal):
    from cxrldm.evaluation.samples import rows_images

    manifest, images = sample_manifest()
    classifier, options = ColumnClassifier(), {"resamples": 60, "seed": 3}
    real, labels, study_ids = real_films()
    null = classifier.probabilities(rows_images(manifest, images, manifest[manifest.group == "unconditional"]))
    real_probabilities = classifier.probabilities(real)
    normal = manifest[manifest.group.astype(str) == "3"] if with_normal else None
    got = classification.adherence(
        classifier, manifest, images, null, real_probabilities, labels, study_ids, normal, **options
    )
    assert got == old_evaluate_adherence(
        classifier, manifest, images, null, real_probabilities, labels, study_ids, normal, options
    )
    assert list(got) == ["prompt000", "prompt001", "prompt002"]
    heart = got["prompt000"]
    assert (heart["finding"], heart["prompt"]) == ("Cardiomegaly", "Big heart.")
    assert heart["auroc_vs_null"]["value"] == 1.0 and heart["prompt_probability"] > heart["null_probability"]
    assert heart["real_positive_vs_all"]["n_positive"] == 5
    assert ("auroc_vs_normal" in heart) == ("real_positive_vs_negative" in heart) == with_normal
    if with_normal:
        assert heart["normal_prompt"] == "Normal." and heart["real_positive_vs_negative"]["value"] == 1.0
        assert heart["auroc_vs_normal"]["value"] < 1.0 and heart["normal_probability"] > heart["null_probability"]


def test_adherence_names_the_prompt_whose_finding_the_classifier_lacks():
    manifest, images = sample_manifest(2)
    manifest.loc[manifest.group == 0, "finding"] = "Hernia"
    real, labels, study_ids = real_films()
    classifier = ColumnClassifier()
    with pytest.raises(ValueError, match=r"sample prompt 'Big heart.': \['Hernia'\]"):
        classification.adherence(
            classifier,
            manifest,
            images,
            classifier.probabilities(images[:2]),
            classifier.probabilities(real),
            labels,
            study_ids,
            None,
            10,
            0,
        )


def test_laterality_is_the_side_measure_evaluate_and_edit_wrote():
    right = torch.tensor([0.3, 0.2, 0.25, -0.01])
    left = torch.tensor([-0.2, 0.0, -0.1])
    got = classification.laterality(right, left, "edits", 80, 1)
    # as stage edit wrote it; stage evaluate wrote the same with "prompts" and counts of its boolean mask
    assert got == {
        "right_edits": float(right.mean()),
        "left_edits": float(left.mean()),
        "auroc_right_vs_left": classification.two_group_auroc_interval(right, left, resamples=80, seed=1),
        "n_right": 4,
        "n_left": 3,
    }
    assert got["auroc_right_vs_left"]["value"] == pytest.approx(11 / 12)
    assert list(classification.laterality(left, right, "prompts", 10, 0))[:2] == ["right_prompts", "left_prompts"]


def test_prompt_laterality_is_evaluate_s_former_block():
    from cxrldm.evaluation.samples import rows_images

    manifest, images = sample_manifest()
    options = {"resamples": 70, "seed": 5}
    sided = manifest[manifest.side != ""]
    sided_images = rows_images(manifest, images, sided)
    null = rows_images(manifest, images, manifest[manifest.group == "unconditional"])
    right = torch.tensor((sided.side == "right").to_numpy())
    got = classification.prompt_laterality(sided_images, right, null, **options)
    contrast = classification.lower_zone_contrast(sided_images)  # the stage's block, verbatim
    old = {
        "right_prompts": float(contrast[right].mean()),
        "left_prompts": float(contrast[~right].mean()),
        "auroc_right_vs_left": classification.two_group_auroc_interval(contrast[right], contrast[~right], **options),
        "n_right": int(right.sum()),
        "n_left": int((~right).sum()),
        "one_sided": {
            side: classification.one_sidedness(sided_images[mask], null, side, **options)
            for side, mask in (("right", right), ("left", ~right))
        },
    }
    assert got == old
    assert got["auroc_right_vs_left"]["value"] == 1.0 and got["right_prompts"] > got["left_prompts"]
    assert got["one_sided"]["right"]["stated_zone_auroc"]["value"] == 1.0


def test_finding_aurocs_are_utility_s_former_per_finding_aurocs_and_their_mean():
    generator = torch.Generator().manual_seed(4)
    targets = (torch.rand(20, 3, generator=generator) > 0.6).double()
    targets[:, 2] = 0  # a finding without positives: no value
    targets[3, 0] = float("nan")
    scores = torch.rand(20, 3, generator=generator) + 0.3 * targets.nan_to_num(0)
    findings = ["Cardiomegaly", "Edema", "Hernia"]
    aurocs, mean = classification.finding_aurocs(scores, targets, findings, 60, 2)
    old = {f: auroc_interval(scores[:, i], targets[:, i], 60, 2) for i, f in enumerate(findings)}  # as utility had it
    known = [a["value"] for a in old.values() if a["value"] is not None]
    assert aurocs == old and mean == sum(known) / len(known) and len(known) == 2
    assert classification.finding_aurocs(scores, targets[:, 2:], ["Hernia"], 10, 0)[1] is None


def test_label_aurocs_are_null_with_the_reason_where_a_label_has_one_class():
    from cxrldm.evaluation.classification import label_aurocs

    scores = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.7, 0.3, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    aurocs, notes = label_aurocs(scores, targets, ["Edema", "Pneumothorax", "Support Devices"])
    assert aurocs == {"Edema": 1.0, "Pneumothorax": None, "Support Devices": None}
    assert notes == {
        "Pneumothorax": "undefined: no positive film among those scored",
        "Support Devices": "undefined: no negative film among those scored",
    }
