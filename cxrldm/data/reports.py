"""Parse MIMIC-CXR 2.0.0 free-text radiology reports into findings, impression and prompt sentences.

Section names are normalised the way the MIT-LCP mimic-cxr section parser names them (`preamble`,
`examination`, `indication`, `history`, `technique`, `comparison`, `findings`, `impression`, ...).
Reports are read from an unpacked `files/...` tree or straight from `mimic-cxr-reports.zip`."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# An upper-case header at the start of a line, ended by a colon (" FINDINGS:"); FINAL REPORT and
# ADDENDUM also stand alone on their line without one.
_HEADER = re.compile(
    r"^[ \t]*(?:(?P<titled>[A-Z][A-Z ()/,&-]*?)[ \t]*:|(?P<bare>FINAL REPORT|ADDENDUM)[ \t]*$)",
    re.MULTILINE,
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
# "1." or "2)" followed by whitespace; "1.5 cm" has no whitespace after the dot.
_LIST_NUMBER = re.compile(r"(?<!\S)(\d{1,2})[.)]\s+")
_NOTHING_TO_SAY = re.compile(r"[\W_]*")  # only punctuation, spaces and "___"

_SECTION_SPELLINGS = {
    "final report": ("final report",),
    "examination": ("examination", "exam", "type of examination"),
    "indication": ("indication", "reason for examination", "reason for exam", "clinical indication"),
    "history": ("history", "clinical history", "clinical information", "patient history"),
    "technique": ("technique",),
    "comparison": ("comparison", "comparisons", "comparison exam", "comparison film", "reference exam"),
    "findings": ("findings", "finding"),
    "impression": (
        "impression",
        "impressions",
        "conclusion",
        "conclusions",
        "summary",
        "findings and impression",
        "impression and findings",
        "findings/impression",
    ),
    "wet read": ("wet read", "wetread"),
    "addendum": ("addendum",),
    "notification": ("notification",),
    "recommendations": ("recommendation", "recommendations", "recommendation(s)"),
    "comment": ("comment", "comments"),
}
_SECTION_NAMES = {spelling: name for name, spellings in _SECTION_SPELLINGS.items() for spelling in spellings}
# Unlisted headers that mention one of these are that section ("PROVISIONAL FINDINGS IMPRESSION (PFI)");
# impression comes first because merged findings-and-impression headers count as impression.
_MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")
# Sections whose first paragraph is their whole content, so a further paragraph is unlabelled text.
_CONTEXT_SECTIONS = frozenset({"examination", "indication", "history", "technique", "comparison"})
_ABBREVIATIONS = frozenset({"dr.", "drs.", "mr.", "mrs.", "ms.", "approx.", "e.g.", "i.e.", "vs.", "cf."})


def _section_name(header: str) -> str | None:
    """Normalised name of a header, or None when the header is not a report section
    ("PA AND LATERAL VIEWS OF THE CHEST" describes the study, it does not open a section)."""
    spelling = " ".join(header.lower().split())
    if spelling in _SECTION_NAMES:
        return _SECTION_NAMES[spelling]
    return next((main for main in _MAIN_SECTIONS if main in spelling), None)


def split_sections(text: str) -> dict[str, str]:
    """Normalised section name -> raw text of that section, in order of appearance.

    The text before the first recognised header is the "preamble" (the whole report when there is no
    header). A header's text starts right after its colon, so it may share the header's line. A section
    that occurs more than once keeps its first position and gets the texts joined."""
    headers = [
        (name, match)
        for match in _HEADER.finditer(text)
        if (name := _section_name(match["titled"] or match["bare"])) is not None
    ]
    sections = {"preamble": text[: headers[0][1].start()] if headers else text}
    ends = [match.start() for _, match in headers[1:]] + [len(text)]
    for (name, match), end in zip(headers, ends):
        body = text[match.end() : end]
        sections[name] = sections[name] + "\n" + body if name in sections else body
    return sections


def _clean(text: str) -> str:
    return " ".join(text.split())


def _unlabelled_findings(sections: dict[str, str]) -> str:
    """Findings written without a FINDINGS header.

    The candidate is the section right before IMPRESSION, or the last section when there is no
    IMPRESSION. If it is a context section (examination, indication, history, technique, comparison)
    and holds more than one non-blank paragraph, its first paragraph is its own content and the
    paragraphs after it are the findings. Anything else (preamble, FINAL REPORT, a one-paragraph
    section) yields "": no guessing where the header's own text ends."""
    names = list(sections)
    position = names.index("impression") - 1 if "impression" in names else len(names) - 1
    if names[position] not in _CONTEXT_SECTIONS:
        return ""
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(sections[names[position]]) if p.strip()]
    return "\n".join(paragraphs[1:])


def extract_findings_impression(text: str) -> tuple[str, str]:
    """Cleaned (findings, impression) of a report, "" for an absent one.

    Cleaning joins wrapped lines and paragraphs with single spaces and strips. FINDINGS AND IMPRESSION,
    CONCLUSION and the like count as impression. Without a (non-empty) FINDINGS section, findings come
    from the unlabelled paragraphs described in `_unlabelled_findings`."""
    sections = split_sections(text)
    findings = sections.get("findings", "")
    if not findings.strip():
        findings = _unlabelled_findings(sections)
    return _clean(findings), _clean(sections.get("impression", ""))


def _list_items(text: str) -> list[str]:
    """Cut text at list numbers, dropping them. A number counts as a list number at the start of the
    text or of a sentence, or anywhere when it is the next number of the list in progress (items that
    lack a full stop: "1. Cardiomegaly 2. Effusion"); "ribs 5 through 7. No fracture" keeps its 7."""
    items, start, next_number = [], 0, None
    for match in _LIST_NUMBER.finditer(text):
        number = int(match[1])
        at_sentence_start = text[: match.start()].rstrip()[-1:] in ("", ".", "!", "?", ":", ";")
        if at_sentence_start or number == next_number:
            items.append(text[start : match.start()])
            start, next_number = match.end(), number + 1
    return items + [text[start:]]


def _continues_sentence(sentence: str, fragment: str) -> bool:
    """Whether a break after `sentence` was a false one: an abbreviation ("Dr. ___", "approx. 2 cm")
    or a lower-case continuation ("10 a.m. on ___")."""
    last_word = sentence.split()[-1].lstrip("([").lower()
    return last_word in _ABBREVIATIONS or fragment[0].islower()


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, each stripped and ending with its own punctuation (if any), list numbers
    removed, decimals, abbreviations and "___" kept inside their sentence. Fragments with nothing but
    punctuation or "___" are dropped."""
    sentences = []
    for item in _list_items(_clean(text)):
        item_sentences: list[str] = []
        for fragment in _SENTENCE_BREAK.split(item.strip()):
            if item_sentences and fragment and _continues_sentence(item_sentences[-1], fragment):
                item_sentences[-1] += " " + fragment
            else:
                item_sentences.append(fragment)
        sentences += item_sentences
    return [s for s in sentences if not _NOTHING_TO_SAY.fullmatch(s)]


def parse_report(text: str) -> dict:
    """{"findings": str, "impression": str, "sentences": findings' sentences + impression's}."""
    findings, impression = extract_findings_impression(text)
    return {
        "findings": findings,
        "impression": impression,
        "sentences": split_sentences(findings) + split_sentences(impression),
    }


def read_reports(source: str | Path, study_paths: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    """(path, text) for each report path ("files/p10/p10000032/s50414267.txt"); text is None when the
    report is missing, and a ReportText that says whether its bytes were valid UTF-8 otherwise. `source` is a directory holding `files/...` or `mimic-cxr-reports.zip`, whose
    members may sit under one top-level folder. Raises FileNotFoundError at once for a missing source."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"report source not found: {source}")
    if source.is_dir():
        return _read_from_directory(source, study_paths)
    return _read_from_zip(source, study_paths)


class ReportText(str):
    """A report's text; `invalid_utf8` is True when its bytes were not UTF-8 and were read as Latin-1
    (every byte a character, nothing replaced or lost)."""

    invalid_utf8 = False


def decode_report(data: bytes) -> ReportText:
    try:
        return ReportText(data.decode("utf-8"))
    except UnicodeDecodeError:
        text = ReportText(data.decode("latin-1"))
        text.invalid_utf8 = True
        return text


def _read_from_directory(root: Path, study_paths: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    for relative in study_paths:
        path = root / relative
        yield relative, decode_report(path.read_bytes()) if path.is_file() else None


def _member_prefix(names: Iterable[str]) -> str:
    """The folder the members sit in: "" for "files/...", "top/" for "top/files/..."."""
    for name in names:
        parts = name.split("/")
        if parts[0] == "files":
            return ""
        if len(parts) > 2 and parts[1] == "files":
            return parts[0] + "/"
    return ""


def _read_from_zip(archive_path: Path, study_paths: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    with zipfile.ZipFile(archive_path) as archive:
        members = set(archive.namelist())
        prefix = _member_prefix(archive.namelist())
        for relative in study_paths:
            member = prefix + relative
            text = decode_report(archive.read(member)) if member in members else None
            yield relative, text
