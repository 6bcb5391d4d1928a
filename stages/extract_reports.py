"""Stage extract_reports: findings, impression and prompt sentences of every study with a PA image.

The text comes from MIMIC's reports (data.format mimic), from a manifest's `report` or `findings` /
`impression` columns (manifest), or, with extract_reports.prompt: template, from a template over the
study's labels and the manifest's metadata columns (one prompt sentence per study: the whole text)."""

import json
from pathlib import Path

import pandas as pd

from cxrldm import paths
from cxrldm.data import layout, tables
from cxrldm.data.labels import CHEXPERT_LABELS
from cxrldm.data.manifest import (
    read_manifest,
    render_template,
    report_of,
    template_fields,
)
from cxrldm.data.reports import parse_report, read_reports, split_sentences
from cxrldm.io import write_csv, write_json
from stages.common import load_params, progress, run

OUT = paths.REPORTS


def mimic_texts(source: str, studies: pd.DataFrame):
    """(text or None) per study, from MIMIC's reports zip or directory."""
    layout.require(source, "data.reports (directory with files/ or mimic-cxr-reports.zip)")
    paths = [layout.report_path(s, t) for s, t in studies.itertuples(index=False)]
    for _, text in progress(read_reports(source, paths), total=len(paths), desc="reports"):
        yield text


def parsed(text) -> dict:
    return parse_report(text) if text is not None else {"findings": "", "impression": "", "sentences": []}


def manifest_reports(manifest: pd.DataFrame, studies: pd.DataFrame):
    """Per study: its first row with a report, parsed, or with findings / impression, used as they are."""
    texts = [c for c in ("report", "findings", "impression") if c in manifest]
    has_text = (
        manifest[texts].fillna("").astype(str).apply(lambda c: c.str.strip() != "").any(axis=1)
        if texts
        else pd.Series(False, index=manifest.index)
    )
    rows = manifest.assign(_text=~has_text).sort_values(["study_id", "_text"], kind="stable")
    rows = rows.drop_duplicates("study_id").set_index("study_id")
    for study in studies.study_id:
        row = rows.loc[study]
        text, findings, impression = report_of(row)
        if text is not None:
            yield parsed(text), False
        elif findings or impression:
            yield (
                {
                    "findings": findings,
                    "impression": impression,
                    "sentences": split_sentences(findings) + split_sentences(impression),
                },
                False,
            )
        else:
            yield parsed(None), True


def template_reports(template: str, studies: pd.DataFrame, values: pd.DataFrame):
    """Per study: the template filled from its labels and metadata, as its one prompt sentence."""
    missing = [f for f in template_fields(template) if f != "findings" and f not in values.columns]
    if missing:
        raise ValueError(
            f"extract_reports.template: {{{missing[0]}}} is not a column of the manifest or the "
            f"labels (columns: {', '.join(map(str, values.columns))})"
        )
    rows = values.drop_duplicates("study_id").set_index("study_id")
    for study in studies.study_id:
        filled = render_template(template, rows.loc[study].to_dict() if study in rows.index else {})
        yield {"findings": filled, "impression": "", "sentences": [filled] if filled else []}, False


def main():
    params = load_params()
    data, p = params["data"], params["extract_reports"]
    root, source, manifest_mode = Path(data["root"]), data["reports"], data["format"] == "manifest"
    index, labels_file, template = data["index"], data["labels"], p["template"]
    studies = tables.read_table(paths.PA_TABLE, tables.PA_COLUMNS, "PA table")
    studies = studies.drop_duplicates("study_id")[["subject_id", "study_id"]]
    manifest = read_manifest(root / index) if manifest_mode else None
    if p["prompt"] == "template":
        labels = tables.read_table(root / labels_file, ["study_id"], "label file (data.labels)")
        labels = labels[[c for c in labels.columns if c in CHEXPERT_LABELS or c == "study_id"]]
        values = labels.drop_duplicates("study_id")
        if manifest is not None:
            extra = [c for c in manifest.columns if c not in values.columns]
            values = values.merge(
                manifest[extra + ["study_id"]].drop_duplicates("study_id"), on="study_id", how="outer"
            )
        reports = template_reports(template, studies, values)
    elif manifest is not None:
        reports = manifest_reports(manifest, studies)
    else:
        reports = (
            ({**parsed(text), "invalid_utf8": getattr(text, "invalid_utf8", False)}, text is None)
            for text in mimic_texts(source, studies)
        )
    rows, counts = (
        [],
        {
            "studies": len(studies),
            "missing_report": 0,
            "no_findings": 0,
            "no_impression": 0,
            "no_sections": 0,
            "sentences": 0,
            "invalid_utf8": 0,
        },
    )
    for (subject, study), (report, missing) in zip(studies.itertuples(index=False), reports):
        counts["missing_report"] += missing
        counts["no_findings"] += not report["findings"]
        counts["no_impression"] += not report["impression"]
        counts["no_sections"] += not report["findings"] and not report["impression"]
        counts["sentences"] += len(report["sentences"])
        counts["invalid_utf8"] += bool(report.get("invalid_utf8"))
        rows.append(
            {
                "subject_id": subject,
                "study_id": study,
                "findings": report["findings"],
                "impression": report["impression"],
                "sentences": json.dumps(report["sentences"]),
            }
        )
    if not counts["sentences"]:
        raise ValueError(
            f"no report text: none of the {len(studies)} studies has findings or impression sentences ({counts})"
        )
    write_csv(OUT, pd.DataFrame(rows))
    write_json(paths.metrics("extract_reports"), counts)
    print(counts)


if __name__ == "__main__":
    run(main)
