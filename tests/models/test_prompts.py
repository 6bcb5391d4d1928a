"""De-identification markers in prompts: kept, dropped or replaced, as the experiment param says."""

import pytest

from cxrldm.models.prompts import treat_deid_markers

SENTENCES = [
    "Compared to the prior study of ___, there is no relevant change.",
    "Findings were communicated to Dr. ___ by telephone at ___ on ___.",
    "___.",
    "Moderate cardiomegaly.",
]


def test_keep_returns_the_sentences_unchanged():
    assert treat_deid_markers(SENTENCES, "keep") == SENTENCES


def test_drop_removes_markers_and_sentences_left_empty():
    assert treat_deid_markers(SENTENCES, "drop") == [
        "Compared to the prior study of, there is no relevant change.",
        "Findings were communicated to Dr. by telephone at on.",
        "Moderate cardiomegaly.",
    ]


def test_replace_puts_the_word_in_every_marker():
    treated = treat_deid_markers(SENTENCES, "replace", "unknown")
    assert treated[1] == "Findings were communicated to Dr. unknown by telephone at unknown on unknown."
    assert treated[2] == "unknown." and not any("_" in s for s in treated)


def test_an_unknown_mode_names_the_choices():
    with pytest.raises(ValueError, match="keep"):
        treat_deid_markers(SENTENCES, "mask")
