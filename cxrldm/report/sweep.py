"""The guidance sweep: fidelity and diversity against faithfulness for every experiment DVC knows of.

    dvc exp run --queue -S sample.guidance_scale=1.5 ... ; dvc queue start     # the sweep itself
    python -m cxrldm.report.sweep [--out metrics/guidance_sweep.html] [--json FILE] [--param sample.guidance_scale]
                           [any other option, passed on to `dvc exp show`, e.g. --all-commits]

It reads `dvc exp show --json` (or a saved copy of it with --json), takes from each row (the workspace,
each baseline commit and its experiments) the guidance param from params.yaml, the FID (the `fid_*` key
of metrics/evaluate.json that is not a baseline) and PRDC coverage (`prdc_*` -> coverage) there, and the
mean over findings of the synthetic-image AUROC in metrics/faithfulness.json, and writes an offline HTML
page with two scatter plots (FID and coverage against mean faithfulness, each point labelled with its
guidance) and a CSV of the same rows next to it (same stem, .csv).

Facts about `dvc exp show --json` (dvc 3.67, see tests/data/exp_show.json) this relies on: a list of
baseline rows (the first is "workspace"), each {"rev", "name", "data", "error", "experiments"}; an
experiment is {"name", "executor", "revs": [row]}; a row's data holds "params" and "metrics" as
{file: {"data": {...}}}. Lists and nulls inside metrics are dropped and NaN is written as a bare NaN.
A failed experiment carries the metrics of the workspace it started from, a queued one none: rows whose
run failed, is queued or still running get no metrics here. The workspace row is dropped when it repeats
another row (after a plain `dvc exp run` it is that experiment's result)."""

from __future__ import annotations

import argparse
import csv
import html
import json
import math
import subprocess
import sys
from pathlib import Path

from cxrldm.report import evaluation_page as page
from cxrldm.io import atomic_path

PARAM = "sample.guidance_scale"
EVALUATE = "metrics/evaluate.json"
FAITHFULNESS = "metrics/faithfulness.json"
COLUMNS = ("name", "rev", "kind", "state", "guidance", "fid", "coverage", "faithfulness", "n_findings",
           "fid_key", "coverage_key")
NO_METRICS_STATES = ("failed", "queued", "running")


def _number(x) -> float | None:
    if isinstance(x, dict):
        x = x.get("value")
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _file_data(files: dict | None, path: str) -> dict:
    """The parsed content of `path` among a row's params or metrics files (matched by path, else by name)."""
    files = files or {}
    entry = files.get(path)
    if entry is None:
        entry = next((v for k, v in files.items() if Path(k).name == Path(path).name), None)
    data = (entry or {}).get("data")
    return data if isinstance(data, dict) else {}


def _dotted(data: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def fid_of(evaluate: dict) -> tuple[float | None, str | None]:
    keys = sorted(k for k in evaluate if k.startswith("fid_") and "baseline" not in k)
    for key in keys:
        if _number(evaluate[key]) is not None:
            return _number(evaluate[key]), key
    return None, keys[0] if keys else None


def coverage_of(evaluate: dict) -> tuple[float | None, str | None]:
    keys = sorted(k for k in evaluate if k.startswith("prdc_") and isinstance(evaluate[k], dict))
    for key in keys:
        if _number(evaluate[key].get("coverage")) is not None:
            return _number(evaluate[key]["coverage"]), key
    return None, keys[0] if keys else None


def faithfulness_of(faithfulness: dict) -> tuple[float | None, int]:
    """Mean synthetic AUROC over the findings that have a finite one, and how many those are."""
    findings = faithfulness.get("findings")
    values = [_number(entry.get("synthetic_auroc")) for entry in findings.values() if isinstance(entry, dict)] \
        if isinstance(findings, dict) else []
    values = [v for v in values if v is not None]
    return (sum(values) / len(values) if values else None), len(values)


def point(row: dict, kind: str, state: str | None, param: str = PARAM) -> dict:
    data = row.get("data") or {}
    failed = row.get("error") is not None or state in NO_METRICS_STATES
    metrics = {} if failed else data.get("metrics") or {}
    evaluate = _file_data(metrics, EVALUATE)
    fid, fid_key = fid_of(evaluate)
    coverage, coverage_key = coverage_of(evaluate)
    faithfulness, n_findings = faithfulness_of(_file_data(metrics, FAITHFULNESS))
    return {"name": row.get("name") or row.get("rev"), "rev": row.get("rev"), "kind": kind,
            "state": "failed" if row.get("error") is not None else state or "done",
            "guidance": _number(_dotted(_file_data(data.get("params"), "params.yaml"), param)),
            "fid": fid, "coverage": coverage, "faithfulness": faithfulness, "n_findings": n_findings,
            "fid_key": fid_key, "coverage_key": coverage_key}


def points_from_exp_show(data: list, param: str = PARAM) -> list[dict]:
    """One dict per workspace / baseline / experiment row of `dvc exp show --json` output (keys: COLUMNS)."""
    points = []
    for baseline in data:
        kind = "workspace" if baseline.get("rev") == "workspace" else "baseline"
        points.append(point(baseline, kind, None, param))
        for experiment in baseline.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state")
            for row in experiment.get("revs") or []:
                points.append(point(row, "experiment", state, param))
    measured = ("guidance", "fid", "coverage", "faithfulness")
    others = [tuple(p[k] for k in measured) for p in points if p["kind"] != "workspace"]
    return [p for p in points if p["kind"] != "workspace" or tuple(p[k] for k in measured) not in others]


def exp_show(extra_args: list[str]) -> list:
    result = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *extra_args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {result.stderr.strip() or result.stdout.strip()}")
    return json.loads(result.stdout)


def _label(p: dict) -> str:
    return f"{p['guidance']:g}" if p["guidance"] is not None else str(p["name"])


def write_csv(path: Path, points: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if p[k] is None else p[k]) for k in COLUMNS} for p in points)


def write_report(out: Path, points: list[dict], param: str = PARAM) -> None:
    out = Path(out)
    faith = "mean faithfulness AUROC"
    charts = (page.svg_scatter([(p["fid"], p["faithfulness"], _label(p)) for p in points], "FID", faith,
                               f"FID vs {faith}")
              + page.svg_scatter([(p["coverage"], p["faithfulness"], _label(p)) for p in points], "coverage", faith,
                                 f"Coverage vs {faith}"))
    rows = [[str(p["name"]), *(page.format_number(p[k]) for k in COLUMNS[2:])] for p in points]
    page.write_page(out, "Guidance sweep", [
        ("Fidelity and diversity against faithfulness", f'<div class="charts">{charts}</div>'
         f'<p class="note">Each point is labelled with its {html.escape(param)}. Lower FID and higher coverage are '
         f'better; faithfulness is the mean over findings of the classifier\'s AUROC on synthetic images. Failed, '
         f'queued and running experiments have no metrics.</p>'),
        ("Experiments", page.grid_table(list(COLUMNS[:1] + COLUMNS[2:]), rows))])
    write_csv(out.with_suffix(".csv"), points)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("metrics/guidance_sweep.html"))
    parser.add_argument("--json", type=Path, help="read this saved `dvc exp show --json` output instead of running it")
    parser.add_argument("--param", default=PARAM, help="the swept param (dotted, in params.yaml)")
    args, extra = parser.parse_known_args(argv)
    try:
        data = json.loads(args.json.read_text(encoding="utf-8")) if args.json else exp_show(extra)
    except (OSError, RuntimeError, ValueError) as error:
        raise SystemExit(f"error: {error}")
    points = points_from_exp_show(data, args.param)
    write_report(args.out, points, args.param)
    plotted = sum(p["faithfulness"] is not None and (p["fid"] is not None or p["coverage"] is not None) for p in points)
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}: {len(points)} rows, {plotted} plotted")


if __name__ == "__main__":
    main()
