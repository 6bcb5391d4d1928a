import zipfile

import pytest

from cxrldm.data.reports import extract_findings_impression, parse_report, read_reports, split_sections, split_sentences


def report(*lines: str) -> str:
    return "\n".join(lines) + "\n"


STANDARD = report(
    "                                 FINAL REPORT",
    " EXAMINATION:  CHEST (PA AND LAT)",
    " ",
    " INDICATION:  ___ year old woman with shortness of breath  // eval for effusion",
    " ",
    " COMPARISON:  ___",
    " ",
    " FINDINGS: ",
    " ",
    " The heart size is moderately enlarged.  There is a small right pleural",
    " effusion with adjacent atelectasis.  A 1.5 cm nodular opacity projects over",
    " the left upper lobe.  No pneumothorax.",
    " ",
    " IMPRESSION: ",
    " ",
    " 1.  Moderate cardiomegaly.",
    " 2.  Small right pleural effusion.",
)


def test_split_sections_names_and_raw_text_in_order():
    sections = split_sections(STANDARD)
    assert list(sections) == [
        "preamble",
        "final report",
        "examination",
        "indication",
        "comparison",
        "findings",
        "impression",
    ]
    assert sections["preamble"] == ""
    assert sections["examination"] == "  CHEST (PA AND LAT)\n \n"
    assert sections["comparison"] == "  ___\n \n"
    assert sections["impression"] == " \n \n 1.  Moderate cardiomegaly.\n 2.  Small right pleural effusion.\n"


def test_standard_report_parses_to_joined_findings_and_list_free_sentences():
    assert parse_report(STANDARD) == {
        "findings": "The heart size is moderately enlarged. There is a small right pleural effusion with "
        "adjacent atelectasis. A 1.5 cm nodular opacity projects over the left upper lobe. "
        "No pneumothorax.",
        "impression": "1. Moderate cardiomegaly. 2. Small right pleural effusion.",
        "sentences": [
            "The heart size is moderately enlarged.",
            "There is a small right pleural effusion with adjacent atelectasis.",
            "A 1.5 cm nodular opacity projects over the left upper lobe.",
            "No pneumothorax.",
            "Moderate cardiomegaly.",
            "Small right pleural effusion.",
        ],
    }


@pytest.mark.parametrize(
    "header, name",
    [
        ("CONCLUSION", "impression"),
        ("CONCLUSIONS", "impression"),
        ("SUMMARY", "impression"),
        ("IMPRESSIONS", "impression"),
        ("FINDINGS AND IMPRESSION", "impression"),
        ("IMPRESSION AND FINDINGS", "impression"),
        ("FINDINGS/IMPRESSION", "impression"),
        ("PROVISIONAL FINDINGS IMPRESSION (PFI)", "impression"),
        ("FINDING", "findings"),
        ("CLINICAL HISTORY", "history"),
        ("REASON FOR EXAMINATION", "indication"),
        ("EXAM", "examination"),
        ("COMPARISONS", "comparison"),
        ("WET READ", "wet read"),
        ("NOTIFICATION", "notification"),
        ("RECOMMENDATION(S)", "recommendations"),
        ("TECHNIQUE", "technique"),
        ("ADDENDUM", "addendum"),
    ],
)
def test_header_synonyms_are_normalised(header, name):
    assert split_sections(report(f" {header}:  Some text.")) == {"preamble": "", name: "  Some text.\n"}


def test_study_description_line_is_not_a_section():
    text = report(" PA AND LATERAL VIEWS OF THE CHEST:", " ", " IMPRESSION:  Normal chest.")
    assert split_sections(text) == {
        "preamble": " PA AND LATERAL VIEWS OF THE CHEST:\n \n",
        "impression": "  Normal chest.\n",
    }


def test_report_without_sections_yields_nothing():
    text = report(" The lungs are clear.  No pleural effusion or pneumothorax.")
    assert split_sections(text) == {"preamble": text}
    assert parse_report(text) == {"findings": "", "impression": "", "sentences": []}


def test_unlabelled_paragraph_after_comparison_is_findings():
    text = report(
        "                                 FINAL REPORT",
        " INDICATION:  ___ year old man with cough.",
        " ",
        " COMPARISON:  Chest radiograph from ___.",
        " ",
        " The lungs are clear.  There is no pleural effusion.",
        " ",
        " The heart size is normal.",
        " ",
        " IMPRESSION:  No acute cardiopulmonary process.",
    )
    assert extract_findings_impression(text) == (
        "The lungs are clear. There is no pleural effusion. The heart size is normal.",
        "No acute cardiopulmonary process.",
    )


def test_comparison_text_on_its_own_paragraph_is_not_findings():
    text = report(
        " TECHNIQUE:  Chest PA and lateral.",
        " ",
        " COMPARISON: ",
        " ",
        " ___",
        " ",
        " The lungs are clear.",
        " ",
        " IMPRESSION: ",
        " ",
        " Normal chest.",
    )
    assert extract_findings_impression(text) == ("The lungs are clear.", "Normal chest.")


def test_unlabelled_paragraph_at_end_of_report_without_impression_is_findings():
    text = report(" COMPARISON:  None.", " ", " Mild cardiomegaly.  No edema.")
    assert extract_findings_impression(text) == ("Mild cardiomegaly. No edema.", "")


@pytest.mark.parametrize(
    "text",
    [
        # a one-paragraph context section holds only its own text
        report(" COMPARISON:  ___", " ", " IMPRESSION:  No acute process."),
        # FINAL REPORT's first paragraph is an unlabelled title, so its paragraphs are left alone
        report(
            "                                 FINAL REPORT",
            " CHEST RADIOGRAPH",
            " ",
            " The lungs are clear.",
            " ",
            " IMPRESSION:  No acute process.",
        ),
        # the paragraph must come right before IMPRESSION, not before another section
        report(
            " COMPARISON:  ___",
            " ",
            " Called to Dr. ___.",
            " NOTIFICATION:  Done.",
            " ",
            " IMPRESSION:  No acute process.",
        ),
    ],
)
def test_findings_fallback_is_conservative(text):
    assert extract_findings_impression(text) == ("", "No acute process.")


def test_findings_and_impression_header_is_impression():
    text = report(
        " COMPARISON:  None.", " ", " FINDINGS AND IMPRESSION: ", " ", " Lungs are clear.  Heart size is normal."
    )
    assert extract_findings_impression(text) == ("", "Lungs are clear. Heart size is normal.")


def test_conclusion_is_impression():
    text = report(" FINDINGS:  Small left effusion.", " ", " CONCLUSION:  Small left pleural effusion.")
    assert extract_findings_impression(text) == ("Small left effusion.", "Small left pleural effusion.")


def test_header_with_text_on_the_same_line_and_wrapped_lines():
    text = report(
        " FINDINGS:  There is mild pulmonary vascular congestion without frank",
        " pulmonary edema.    No focal consolidation.",
        " IMPRESSION:  Mild vascular congestion.",
    )
    assert extract_findings_impression(text) == (
        "There is mild pulmonary vascular congestion without frank pulmonary edema. No focal consolidation.",
        "Mild vascular congestion.",
    )


def test_wet_read_before_final_report_does_not_leak():
    text = report(
        " WET READ: ___ ___ ___ 9:14 AM",
        "  Right lower lobe opacity, likely pneumonia.",
        " ______________________________________________________________________________",
        "                                 FINAL REPORT",
        " COMPARISON:  ___",
        " ",
        " FINDINGS:  Right lower lobe consolidation.",
        " ",
        " IMPRESSION:  Right lower lobe pneumonia.",
    )
    sections = split_sections(text)
    assert list(sections) == ["preamble", "wet read", "final report", "comparison", "findings", "impression"]
    assert parse_report(text) == {
        "findings": "Right lower lobe consolidation.",
        "impression": "Right lower lobe pneumonia.",
        "sentences": ["Right lower lobe consolidation.", "Right lower lobe pneumonia."],
    }


def test_addendum_stays_out_of_impression():
    text = report(
        " IMPRESSION:  No pneumothorax.",
        " ",
        " ADDENDUM",
        " ",
        " Findings were discussed with Dr. ___ at ___ by telephone.",
    )
    assert extract_findings_impression(text) == ("", "No pneumothorax.")
    assert split_sections(text)["addendum"] == ("\n \n Findings were discussed with Dr. ___ at ___ by telephone.\n")


def test_repeated_section_texts_are_joined():
    text = report(" FINDINGS:  Lungs clear.", " IMPRESSION:  Clear.", " FINDINGS: ")
    assert split_sections(text) == {"preamble": "", "findings": "  Lungs clear.\n\n \n", "impression": "  Clear.\n"}
    assert extract_findings_impression(text) == ("Lungs clear.", "Clear.")


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("1. Foo. 2. Bar.", ["Foo.", "Bar."]),
        ("1.  No acute process.\n 2.  Small effusion.", ["No acute process.", "Small effusion."]),
        (
            " 1.  Mild pulmonary edema, slightly improved since ___.  2.  Small\n bilateral effusions.  3.  Right"
            "\n PICC in the SVC.",
            [
                "Mild pulmonary edema, slightly improved since ___.",
                "Small bilateral effusions.",
                "Right PICC in the SVC.",
            ],
        ),
        ("1. Cardiomegaly 2. Small effusion", ["Cardiomegaly", "Small effusion"]),
        ("1) Cardiomegaly. 2) Edema.", ["Cardiomegaly.", "Edema."]),
        ("Fractures of ribs 5 through 7. No pneumothorax.", ["Fractures of ribs 5 through 7.", "No pneumothorax."]),
    ],
)
def test_list_numbers_are_removed(text, sentences):
    assert split_sentences(text) == sentences


def test_decimals_and_measurements_stay_whole():
    assert split_sentences("A 1.5 cm nodule.  A 2.3 x 1.0 cm mass at T12.  Approx. 3 mm shift.") == [
        "A 1.5 cm nodule.",
        "A 2.3 x 1.0 cm mass at T12.",
        "Approx. 3 mm shift.",
    ]


def test_abbreviations_do_not_end_sentences():
    assert split_sentences(
        "Discussed with Dr. ___ at 10:30 a.m. on ___.  Opacity, e.g. pneumonia vs. "
        "atelectasis (i.e. collapse).  Done!  Effusion?"
    ) == [
        "Discussed with Dr. ___ at 10:30 a.m. on ___.",
        "Opacity, e.g. pneumonia vs. atelectasis (i.e. collapse).",
        "Done!",
        "Effusion?",
    ]


def test_blanks_stay_inside_sentences_but_are_not_sentences():
    assert split_sentences("___ year old man, compared to ___.  ___.  Lungs clear.  -- .  ___ ___.") == [
        "___ year old man, compared to ___.",
        "Lungs clear.",
    ]


def test_no_text_no_sentences():
    assert split_sentences("") == []
    assert split_sentences("  \n ") == []


REPORTS = {
    "files/p10/p10000032/s50414267.txt": "FINDINGS: Clear.\n",
    "files/p11/p11000001/s51000001.txt": "IMPRESSION: Normal.\n",
}
WANTED = ["files/p11/p11000001/s51000001.txt", "files/p10/p10000099/s59999999.txt", "files/p10/p10000032/s50414267.txt"]
EXPECTED = [
    ("files/p11/p11000001/s51000001.txt", "IMPRESSION: Normal.\n"),
    ("files/p10/p10000099/s59999999.txt", None),
    ("files/p10/p10000032/s50414267.txt", "FINDINGS: Clear.\n"),
]


def test_read_reports_from_directory(tmp_path):
    for relative, text in REPORTS.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert list(read_reports(tmp_path, WANTED)) == EXPECTED


@pytest.mark.parametrize("prefix", ["", "mimic-cxr-reports/"])
def test_read_reports_from_zip(tmp_path, prefix):
    archive = tmp_path / "mimic-cxr-reports.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        if prefix:
            zf.writestr(prefix, "")
        for relative, text in REPORTS.items():
            zf.writestr(prefix + relative, text)
    assert list(read_reports(str(archive), WANTED)) == EXPECTED


def test_read_reports_from_a_zip_keeps_undecodable_bytes_as_latin1(tmp_path):
    archive = tmp_path / "reports.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("files/p10/p10000032/s50414267.txt", b"heart \xff size\n")
    [(path, text)] = list(read_reports(archive, ["files/p10/p10000032/s50414267.txt"]))
    assert (path, text, text.invalid_utf8) == ("files/p10/p10000032/s50414267.txt", "heart \u00ff size\n", True)


def test_missing_source_raises_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "mimic-cxr-reports.zip"
    with pytest.raises(FileNotFoundError, match="nowhere/mimic-cxr-reports.zip"):
        read_reports(missing, WANTED)


def test_reports_that_are_not_utf8_are_read_as_latin1_and_flagged(tmp_path):
    from cxrldm.data.reports import decode_report, read_reports

    good, bad = "FINDINGS: Normal heart size. \u00b0".encode("utf-8"), b"FINDINGS: Pleural effusion \xb0 right.\n"
    assert decode_report(good) == "FINDINGS: Normal heart size. \u00b0" and not decode_report(good).invalid_utf8
    text = decode_report(bad)
    assert text == "FINDINGS: Pleural effusion \u00b0 right.\n" and text.invalid_utf8 and "\ufffd" not in text
    folder = tmp_path / "files" / "p10" / "p10000001"
    folder.mkdir(parents=True)
    (folder / "s50000001.txt").write_bytes(bad)
    [(_, read)] = list(read_reports(tmp_path, ["files/p10/p10000001/s50000001.txt"]))
    assert read.invalid_utf8
