"""Stage evaluation_page: every evaluation and training metric and the sample, finding and memorisation
image grids, the edits and the reader study on one offline HTML page, metrics/evaluation.html (no scripts, no external references: the
images are embedded and the charts are inline SVG). Whatever input is missing is left out; it reads no
params."""

import json
from pathlib import Path

from cxrldm import paths
from cxrldm.report import evaluation_page as page
from cxrldm.report import html_kit as kit
from cxrldm.report.experiments import experiments_section
from stages.common import run

METRICS = paths.METRICS
OUTPUT = METRICS / "evaluation.html"
EXPERIMENTS = ("experiments", "guidance_sweep")  # pages of python -m cxrldm.report.experiments / .sweep
FILES = (
    "evaluate",
    "realism",
    "faithfulness",
    "memorisation",
    "utility",
    "edit",
    "reader_study",
    "train_aekl",
    "train_ldm",
    "train_evaluator",
    "train_privacy",
)


def read_metrics(folder: Path = METRICS) -> dict[str, dict]:
    """{name: parsed JSON} for each of FILES present in `folder`."""
    return {
        name: json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        for name in FILES
        if (folder / f"{name}.json").is_file()
    }


def sections(folder: Path = METRICS) -> list[tuple[str, str]]:
    metrics = read_metrics(folder)
    out = [("Summary", page.summary_html(metrics))]
    for stem in EXPERIMENTS:  # written outside the pipeline: shown when present, not a dependency
        html_file, json_file = folder / f"{stem}.html", folder / f"{stem}.json"
        if html_file.is_file() or json_file.is_file():
            summary = json.loads(json_file.read_text(encoding="utf-8")) if json_file.is_file() else {}
            out.append(
                (f"Experiments ({stem})", experiments_section(summary, html_file.name if html_file.is_file() else None))
            )
    out += [(f"{name}.json", kit.metric_table(data)) for name, data in metrics.items()]
    for heading, grids in (
        ("Samples per prompt", sorted((folder / "sample_grids").glob("*.png"))),
        ("Samples per finding", sorted((folder / "finding_grids").glob("*.png"))),
        ("Closest synthetic / training pairs", [folder / "memorisation_pairs.png"]),
        ("Edits: original | edited | difference", sorted((folder / "edit_grids").glob("*.png"))),
    ):
        grids = [path for path in grids if path.is_file()]
        if grids:
            out.append((heading, kit.figures(grids)))
    return out


def main():
    kit.write_page(OUTPUT, "Evaluation", sections())
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    run(main)
