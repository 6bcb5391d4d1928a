"""Radiology reports for the demo dataset, written like MIMIC-CXR reports, quirks included:
missing or merged sections, CONCLUSION for IMPRESSION, numbered impressions, decimals, ___ for
de-identified text and lines wrapped at 79 characters with a leading space."""

from __future__ import annotations

import textwrap

import numpy as np

from cxrldm.demo.findings import Findings

CARDIOMEGALY_WORDS = {1: "mildly", 2: "moderately", 3: "severely"}
EDEMA_WORDS = {1: "mild", 2: "moderate", 3: "severe"}
DEVICE_FINDINGS = {
    "pacemaker": "A left-sided pacemaker is present with leads terminating in the right atrium and right ventricle.",
    "endotracheal tube": "The endotracheal tube terminates {:.1f} cm above the carina.",
    "central venous catheter": "A right internal jugular central venous catheter terminates in the mid SVC.",
}
DEVICE_IMPRESSIONS = {
    "pacemaker": "Pacemaker in standard position.",
    "endotracheal tube": "Endotracheal tube in appropriate position.",
    "central venous catheter": "Central venous catheter tip in the SVC.",
}
INDICATIONS = (
    "___ year old man with shortness of breath  // eval for pneumonia",
    "___ year old woman with chest pain  // r/o acute process",
    "___ year old man with fever and cough  // eval for infiltrate",
    "___ year old woman with dyspnea on exertion  // eval for effusion",
    "History: ___M with hypoxia",
    "___ year old woman s/p line placement  // position?",
)
EXAMINATIONS = {"PA": "CHEST (PA AND LAT)", "AP": "CHEST (PORTABLE AP)"}


def finding_sentences(f: Findings, rng: np.random.Generator) -> list[str]:
    sentences = []
    if f.cardiomegaly:
        sentences.append(f"The heart is {CARDIOMEGALY_WORDS[f.cardiomegaly]} enlarged.")
    else:
        sentences.append("The cardiomediastinal silhouette is within normal limits.")
    if f.effusion_side == "bilateral":
        sentences.append(f"There are {f.effusion_size} bilateral pleural effusions.")
    elif f.effusion_side:
        sentences.append(f"There is a {f.effusion_size} {f.effusion_side} pleural effusion.")
    if f.pneumothorax_side:
        depth = rng.uniform(1.0, 3.5)
        sentences.append(f"There is a {f.pneumothorax_side} apical pneumothorax measuring {depth:.1f} cm.")
    if f.opacity_lobe:
        kind = "consolidation" if f.opacity_is_consolidation else "opacity"
        sentences.append(f"There is a {kind} in the {f.opacity_lobe}.")
    if f.edema:
        sentences.append(f"There is {EDEMA_WORDS[f.edema]} pulmonary edema.")
    negatives = []
    if not f.effusion_side:
        negatives.append("pleural effusion")
    if not f.pneumothorax_side:
        negatives.append("pneumothorax")
    if not f.opacity_lobe and not f.edema:
        negatives.insert(0, "focal consolidation")
    if negatives:
        sentences.append(
            "No "
            + (" or ".join(negatives) if len(negatives) < 3 else ", ".join(negatives[:-1]) + " or " + negatives[-1])
            + "."
        )
    for device in f.devices:
        sentences.append(DEVICE_FINDINGS[device].format(rng.uniform(3.0, 6.0)))
    return sentences


def impression_items(f: Findings) -> list[str]:
    items = []
    if f.cardiomegaly:
        items.append(f"{CARDIOMEGALY_WORDS[f.cardiomegaly].capitalize()} enlarged heart.")
    if f.effusion_side == "bilateral":
        items.append(f"{f.effusion_size.capitalize()} bilateral pleural effusions.")
    elif f.effusion_side:
        items.append(f"{f.effusion_size.capitalize()} {f.effusion_side} pleural effusion.")
    if f.pneumothorax_side:
        items.append(f"{f.pneumothorax_side.capitalize()} pneumothorax.")
    if f.opacity_lobe:
        kind = "consolidation, concerning for pneumonia" if f.opacity_is_consolidation else "opacity"
        items.append(f"{f.opacity_lobe.capitalize()} {kind}.")
    if f.edema:
        items.append(f"{EDEMA_WORDS[f.edema].capitalize()} pulmonary edema.")
    items += [DEVICE_IMPRESSIONS[d] for d in f.devices]
    return items or ["No acute cardiopulmonary process."]


def wrap(text: str) -> list[str]:
    """MIMIC style: lines of at most 79 characters, each starting with a space."""
    return [" " + line for line in textwrap.wrap(text, 78)]


def section(header: str, body: str, same_line: bool) -> list[str]:
    if same_line:
        return wrap(f"{header}:  {body}") + [" "]
    return [f" {header}: ", " "] + wrap(body) + [" "]


def numbered(items: list[str]) -> str:
    """'1.  Foo.  2.  Bar.' wraps like a real numbered list; one item stays plain."""
    if len(items) == 1:
        return items[0]
    return "  ".join(f"{i}.  {item}" for i, item in enumerate(items, 1))


def write_report(f: Findings, view: str, rng: np.random.Generator) -> str:
    """A report in one of the styles seen in MIMIC-CXR, chosen at random."""
    style = rng.choice(
        [
            "standard",
            "standard",
            "standard",
            "no_findings_header",
            "merged",
            "conclusion",
            "impression_only",
            "no_sections",
        ],
        p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03],
    )
    findings = " ".join(finding_sentences(f, rng))
    items = impression_items(f)
    if rng.random() < 0.2:  # MIMIC's impressions often end so, de-identified; such markers drive memorisation
        items.append(
            str(
                rng.choice(
                    [
                        "Findings were communicated to Dr. ___ by telephone at ___ on ___.",
                        "Compared to the prior study of ___, there is no relevant change.",
                    ]
                )
            )
        )
    lines = [" " * 33 + "FINAL REPORT"]
    if rng.random() < 0.08:
        lines = [" WET READ: ___ ___ ___ 9:14 AM", "  Preliminary read, see final report.", " "] + lines
    lines += section("EXAMINATION", EXAMINATIONS.get(view, "CHEST (PA AND LAT)"), True)
    lines += section("INDICATION", str(rng.choice(INDICATIONS)), True)
    if rng.random() < 0.3:
        lines += section("TECHNIQUE", "Chest PA and lateral", True)
    lines += section("COMPARISON", str(rng.choice(["___", "None.", "Chest radiograph from ___."])), True)
    same_line = bool(rng.random() < 0.3)
    if style in ("standard", "conclusion"):
        lines += section("FINDINGS", findings, same_line)
        lines += section("CONCLUSION" if style == "conclusion" else "IMPRESSION", numbered(items), same_line)
    elif style == "no_findings_header":
        lines += wrap(findings) + [" "]
        lines += section("IMPRESSION", numbered(items), same_line)
    elif style == "merged":
        lines += section("FINDINGS AND IMPRESSION", findings, same_line)
    elif style == "impression_only":
        lines += section("IMPRESSION", numbered(items), same_line)
    # "no_sections": the report ends after the preamble, as some MIMIC reports do.
    if rng.random() < 0.05:
        lines += [" ADDENDUM: ", " ", *wrap("Findings were discussed with Dr. ___ at ___ by telephone.")]
    return "\n".join(lines) + "\n"
