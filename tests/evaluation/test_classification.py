"""A finding's classifier-based results count only where the classifier separates it on the real films:
its real-image AUROC interval must lie above faithfulness.min_ceiling."""

import pytest
import torch

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
    assert ceiling_note(interval, 0.6) is not None         # value above, interval not clearly above
    assert ceiling_note(interval, 0.5) is None
    assert "unknown" in ceiling_note({"value": None, "low": None, "high": None}, 0.6)


def test_the_page_marks_uninformative_findings_and_says_why():
    faithfulness = {"findings": {
        "Edema": {"synthetic_auroc": {"value": 0.8, "low": 0.7, "high": 0.9}, "real_auroc": {"value": 0.95, "low": 0.9,
                  "high": 1.0}, "informative": True},
        "Pneumothorax": {"synthetic_auroc": {"value": 0.87, "low": 0.7, "high": 0.95},
                         "real_auroc": {"value": 0.51, "low": 0.3, "high": 0.7}, "informative": False,
                         "uninformative_because": "the classifier's AUROC on the real films is 0.51"}}}
    svg, notes = faithfulness_bars(faithfulness)
    assert "Pneumothorax (uninformative)" in svg and "Edema (uninformative)" not in svg
    assert notes == ["Pneumothorax: uninformative, the classifier's AUROC on the real films is 0.51"]


def test_adherence_s_real_yardstick_is_the_positives_against_all_known_films():
    """A perfect classifier on films with prevalence q scores 1 - q / 2 (the positives are among "all", as
    positives are among the null prompt's images); uncertain (NaN) films are left out, not counted negative."""
    from cxrldm.evaluation.classification import positive_vs_all
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, float("nan"), float("nan")])
    perfect = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.0, 0.0])   # the uncertain films score lowest
    result = positive_vs_all(perfect, targets, resamples=200, seed=0)
    assert (result["n_positive"], result["n_all"]) == (2, 8)
    assert abs(result["value"] - (1 - (2 / 8) / 2)) < 1e-12          # 0.875, not the positives-vs-negatives 1.0
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
    assert (present["n_positive"], present["n_all"]) == (1, 3)       # the uncertain study is left out


def test_real_adherence_against_negative_films_is_the_classifiers_auroc():
    """Against a normal report's images the real counterpart is positives against negatives only (the classifier's
    AUROC, uncertain labels left out, a finding not mentioned negative), not against all films."""
    import pandas as pd

    from cxrldm.evaluation.classification import real_adherence
    labels = pd.DataFrame({"study_id": [1, 2, 3, 4, 5], "Cardiomegaly": [1.0, 0.0, -1.0, None, 1.0]}).set_index("study_id")
    scores = torch.tensor([0.9, 0.2, 0.95, 0.1, 0.6])                 # the uncertain study scores highest
    negative = real_adherence(scores, labels, [1, 2, 3, 4, 5], "Cardiomegaly", "negative", resamples=50, seed=0)
    assert negative["value"] == 1.0 and (negative["n_positive"], negative["n_negative"]) == (2, 2)
    assert real_adherence(scores, labels, [1, 2, 3, 4, 5], "Cardiomegaly", "all", 50, 0)["value"] < 1.0
    with pytest.raises(KeyError):
        real_adherence(scores, labels, [1, 2, 3, 4, 5], "Cardiomegaly", "normal", 50, 0)


def test_normal_prompt_must_name_a_prompt_without_a_finding():
    """evaluate.normal_prompt picks the images a finding prompt is contrasted with; a prompt that has a finding,
    or none at all, is a one-line error naming the param, not a silent comparison with the wrong images."""
    import pandas as pd
    from stages.evaluate import normal_prompt_rows

    manifest = pd.DataFrame({"group": ["unconditional", "0", "0", "1", "1"],
                             "prompt": ["", "Normal.", "Normal.", "Big heart.", "Big heart."],
                             "finding": ["", "", "", "Cardiomegaly", "Cardiomegaly"]})
    images = torch.arange(5.0)

    def picked(rows):
        return images[torch.from_numpy(manifest.index.isin(rows.index))]
    rows = normal_prompt_rows(manifest, 0)
    text, normal = rows.prompt.iloc[0], picked(rows)
    assert text == "Normal." and normal.tolist() == [1.0, 2.0]
    assert normal_prompt_rows(manifest, None) is None
    for wrong in (1, 7):
        with pytest.raises(ValueError, match=r"evaluate.normal_prompt: .*\(prompts without one: 0;"):
            normal_prompt_rows(manifest, wrong)
