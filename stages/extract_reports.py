"""Stage extract_reports: findings, impression and prompt sentences of every study with a PA image."""

import json

import pandas as pd

from cxrldm import filtering, layout
from cxrldm.io import write_csv, write_json
from cxrldm.reports import parse_report, read_reports
from stages.common import load_params, progress, run

OUT = "data/reports.csv"


def main():
    source = load_params()["data"]["reports"]
    layout.require(source, "data.reports (directory with files/ or mimic-cxr-reports.zip)")
    studies = filtering.read_table("data/pa.csv", filtering.PA_COLUMNS, "PA table")
    studies = studies.drop_duplicates("study_id")[["subject_id", "study_id"]]
    paths = [layout.report_path(s, t) for s, t in studies.itertuples(index=False)]
    rows, counts = [], {"studies": len(paths), "missing_report": 0, "no_findings": 0, "no_impression": 0,
                        "no_sections": 0, "sentences": 0, "invalid_utf8": 0}
    for (subject, study), (_, text) in zip(studies.itertuples(index=False),
                                           progress(read_reports(source, paths), total=len(paths), desc="reports")):
        report = parse_report(text) if text is not None else {"findings": "", "impression": "", "sentences": []}
        counts["missing_report"] += text is None
        counts["invalid_utf8"] += bool(getattr(text, "invalid_utf8", False))
        counts["no_findings"] += not report["findings"]
        counts["no_impression"] += not report["impression"]
        counts["no_sections"] += not report["findings"] and not report["impression"]
        counts["sentences"] += len(report["sentences"])
        rows.append({"subject_id": subject, "study_id": study, "findings": report["findings"],
                     "impression": report["impression"], "sentences": json.dumps(report["sentences"])})
    if not counts["sentences"]:
        raise ValueError(f"no report text: none of the {len(paths)} studies' reports in {source} has findings or "
                         f"impression sentences ({counts})")
    write_csv(OUT, pd.DataFrame(rows))
    write_json("metrics/extract_reports.json", counts)
    print(counts)


if __name__ == "__main__":
    run(main)
