"""Experiments side by side: sweeps and seed replicates in one view, from `dvc exp show --json`.

    dvc exp run --queue -S sample.guidance_scale=1,2,5,7 ; dvc queue start     # a sweep, or
    dvc exp run --queue -S train_ldm.seed=0,1,2 ; dvc queue start              # seed replicates, or both
    python -m cxrldm.report.experiments [--out metrics/experiments.html] [--json FILE] [--param P]
                                        [--where P=V ...] [--default P=V ...]
                                        [any other option, passed on to `dvc exp show`, e.g. --all-commits]
    (`python -m cxrldm.report.sweep` is the same command, with metrics/guidance_sweep.html as its page)

Each row of `dvc exp show` (the workspace, each baseline commit and its experiments) is a run: its leaf
params from params.yaml and its headline metrics, each (value, low, high) with the image interval the
metrics file holds. Runs that differ only in seed params (any param whose leaf name is `seed`) are
replicates of one recipe; the recipe is the values of the params that vary across runs other than seeds
(the swept params, found unless --param names one). Each group gets the mean, standard deviation, min
and max of every metric across its runs. Written: an offline HTML page (fidelity against faithfulness,
laterality and adherence, one point per group with its spread; tables of every run and every group), a
CSV of every run (same stem, .csv) and a JSON summary (same stem, .json) that the evaluation page shows.

Which images the fidelity axis measures follows the swept param: guidance and the other sampling params
(`sample.*`, `sample_reports.*`) leave the unconditional samples unchanged, so their fidelity is the
report-conditioned set's (faithfulness.json `all_studies`); training params change both sets.

Facts about `dvc exp show --json` (dvc 3.67, see tests/fixtures/exp_show.json) this relies on: a list of
baseline rows (the first is "workspace"), each {"rev", "name", "data", "error", "experiments"}; an
experiment is {"name", "executor", "revs": [row]}; a row's data holds "params" and "metrics" as
{file: {"data": {...}}}. Lists and nulls inside metrics are dropped and NaN is written as a bare NaN.
A failed experiment carries the metrics of the workspace it started from, a queued one none: rows whose
run failed, is queued or still running get no metrics here. The workspace row is dropped when it repeats
another row (after a plain `dvc exp run` it is that experiment's result), and a baseline row when one of
its own finished experiments has its params (queued with the commit's own params, it re-ran the commit's
pipeline: the same training run, and where the metrics differ the commit's were stale): a repeat is no
replicate.

`--where P=V` keeps the runs whose param P is V (values read as YAML, so 8e-4 matches 0.0008), to put one
recipe's runs in the view when the list holds other sweeps; `--default P=V` gives V to runs made before P
existed, so they join the runs that set it to V."""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from cxrldm.io import atomic_path, write_json
from cxrldm.report import html_kit as kit

EVALUATE = "metrics/evaluate.json"
FAITHFULNESS = "metrics/faithfulness.json"
REALISM = "metrics/realism.json"
NO_METRICS_STATES = ("failed", "queued", "running")
SAMPLING_SECTIONS = ("sample", "sample_reports")
FIDELITY = ("fid", "coverage", "precision", "recall")
SETS = {"conditioned": "report-conditioned", "unconditional": "unconditional"}
SOURCES = {
    "conditioned": "report-conditioned images (faithfulness.json all_studies)",
    "unconditional": "unconditional samples (evaluate.json)",
}
IMAGE_INTERVALS = "95% bootstrap intervals over images (studies for the report-conditioned set), within one run"

# headline metrics in page order: key -> label; per-finding and per-prompt keys are "finding:<name>",
# "adherence:<id>" (against the null prompt's images) and "adherence_normal:<id>" (against a normal report's)
LABELS = {
    "faithfulness": "mean faithfulness AUROC (synthetic)",
    "faithfulness_ceiling": "mean AUROC on real images (ceiling)",
    "faithfulness_ratio": "faithfulness / ceiling",
    "laterality": "laterality AUROC (right vs left)",
    "adherence": "mean adherence AUROC (prompt vs null)",
    "adherence_normal": "mean adherence AUROC (prompt vs normal report)",
    **{f"{s}_{m}": f"{m} ({label})" if m != "fid" else f"FID ({label})" for s, label in SETS.items() for m in FIDELITY},
    "diversity_ms_ssim": "MS-SSIM between samples (diversity, lower is more diverse)",
    "realism_reconstructions": "realism AUROC (reconstructions; 0.5 is real)",
    "realism_unconditional": "realism AUROC (unconditional; 0.5 is real)",
    "realism_report_conditioned": "realism AUROC (report-conditioned; 0.5 is real)",
}
SUMMARY_KEYS = (
    "faithfulness",
    "faithfulness_ratio",
    "laterality",
    "adherence",
    "adherence_normal",
    "conditioned_fid",
    "conditioned_coverage",
    "unconditional_fid",
    "unconditional_coverage",
    "diversity_ms_ssim",
    "realism_reconstructions",
    "realism_unconditional",
    "realism_report_conditioned",
)


KINDS = {"finding": "synthetic AUROC", "adherence": "adherence AUROC", "adherence_normal": "adherence AUROC vs normal"}


def label(key: str) -> str:
    kind, colon, name = key.partition(":")
    if colon and kind in KINDS:
        return f"{KINDS[kind]}, {name}"
    return LABELS.get(key, key)


# -- reading runs ------------------------------------------------------------------------------------


def _file_data(files: dict | None, path: str) -> dict:
    """The parsed content of `path` among a row's params or metrics files (matched by path, else by name)."""
    files = files or {}
    entry = files.get(path)
    if entry is None:
        entry = next((v for k, v in files.items() if Path(k).name == Path(path).name), None)
    data = (entry or {}).get("data")
    return data if isinstance(data, dict) else {}


def _dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def headline_metrics(evaluate: dict, faithfulness: dict, realism: dict | None = None) -> dict[str, tuple]:
    """{key: (value, low, high)} of the headline metrics found (value finite; low/high None without interval)."""
    out = {}

    def put(key, x):
        if kit.interval_of(x)[0] is not None:
            out[key] = kit.interval_of(x)

    findings = {name: entry for name, entry in _dict(faithfulness.get("findings")).items() if isinstance(entry, dict)}
    for name, entry in findings.items():
        put(f"finding:{name}", entry.get("synthetic_auroc"))
    scored = [name for name in findings if f"finding:{name}" in out]
    put("faithfulness", faithfulness.get("mean_synthetic_auroc", _mean(out[f"finding:{name}"][0] for name in scored)))
    put(
        "faithfulness_ceiling",
        faithfulness.get(
            "mean_real_auroc", _mean(kit.interval_of(findings[name].get("real_auroc"))[0] for name in scored)
        ),
    )
    if "faithfulness" in out and out.get("faithfulness_ceiling", (0,))[0]:
        put("faithfulness_ratio", out["faithfulness"][0] / out["faithfulness_ceiling"][0])
    for metric in FIDELITY:
        put(f"conditioned_{metric}", _dict(faithfulness.get("all_studies")).get(metric))
    fid = next(
        (
            evaluate[k]
            for k in sorted(evaluate)
            if k.startswith("fid_") and "baseline" not in k and kit.interval_of(evaluate[k])[0] is not None
        ),
        None,
    )
    put("unconditional_fid", fid)
    prdc = next((evaluate[k] for k in sorted(evaluate) if k.startswith("prdc_") and isinstance(evaluate[k], dict)), {})
    for metric in FIDELITY[1:]:
        put(f"unconditional_{metric}", prdc.get(metric))
    put("laterality", _dict(evaluate.get("laterality")).get("auroc_right_vs_left"))
    prompts = {
        name: entry
        for key in sorted(evaluate)
        if key.startswith("adherence_")
        for name, entry in _dict(evaluate[key]).items()
        if isinstance(entry, dict)
    }
    for kind, field in (("adherence", "auroc_vs_null"), ("adherence_normal", "auroc_vs_normal")):
        for name, entry in prompts.items():
            put(f"{kind}:{name}", entry.get(field))
        put(kind, _mean(out[f"{kind}:{name}"][0] for name in prompts if f"{kind}:{name}" in out))
    put("diversity_ms_ssim", evaluate.get("ms_ssim_samples"))
    for name in ("reconstructions", "unconditional", "report_conditioned"):
        put(f"realism_{name}", _dict(realism).get(name))
    return out


def run_of(row: dict, kind: str, state: str | None) -> dict:
    """{name, rev, kind, state, params: {dotted leaf: value}, metrics: {key: (value, low, high)}} of one row."""
    data = row.get("data") or {}
    state = "failed" if row.get("error") is not None else state or "done"
    metrics = {} if state in NO_METRICS_STATES else data.get("metrics") or {}
    params = {}
    for file, entry in (data.get("params") or {}).items():
        prefix = "" if Path(file).name == "params.yaml" else f"{file}:"
        params.update({prefix + key: value for key, value in kit.flatten((entry or {}).get("data") or {})})
    return {
        "name": row.get("name") or row.get("rev"),
        "rev": row.get("rev"),
        "kind": kind,
        "state": state,
        "params": params,
        "metrics": headline_metrics(
            _file_data(metrics, EVALUATE), _file_data(metrics, FAITHFULNESS), _file_data(metrics, REALISM)
        ),
    }


def runs_from_exp_show(data: list) -> list[dict]:
    """One run per workspace / baseline / experiment row of `dvc exp show --json` output, repeats left out."""
    runs, repeats = [], []
    for baseline in data:
        head = run_of(baseline, "workspace" if baseline.get("rev") == "workspace" else "baseline", None)
        own = [
            run_of(row, "experiment", (experiment.get("executor") or {}).get("state"))
            for experiment in baseline.get("experiments") or []
            for row in experiment.get("revs") or []
        ]
        # a commit's row whose params one of its own finished experiments has is that training run, seed
        # included: the experiment re-ran the commit's pipeline, so where their metrics differ the commit's were
        # stale (a queued, running or failed one has no metrics and leaves the commit's row in place)
        stale = head["kind"] == "baseline" and any(e["params"] == head["params"] and e["metrics"] for e in own)
        runs += own if stale else [head, *own]
        repeats += [(r["params"], r["metrics"]) for r in [head, *own] if r["kind"] != "workspace"]
    # the workspace row after a plain `dvc exp run` (or at a clean commit) repeats that run's row
    return [r for r in runs if r["kind"] != "workspace" or (r["params"], r["metrics"]) not in repeats]


def assignment(text: str) -> tuple[str, object]:
    """'train_ldm.lr=8e-4' -> ('train_ldm.lr', 0.0008): the value read as YAML, as `dvc exp run -S` does."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"expected PARAM=VALUE (e.g. train_ldm.lr=8e-4), got {text!r}")
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # YAML 1.1 reads 8e-4 (no dot) as text; dvc and params.yaml mean a number
        with contextlib.suppress(ValueError):
            parsed = float(parsed)
    return key.strip(), parsed


def select_runs(
    runs: list[dict], where: list[tuple[str, object]] = (), defaults: list[tuple[str, object]] = ()
) -> list[dict]:
    """The runs whose params match every (param, value) of `where`, after giving each `defaults` param its
    value in the runs that lack it. A `where` param that no run has is an error (a typo would select none)."""
    for run in runs:
        for key, value in defaults:
            run["params"].setdefault(key, value)
    for key, value in where:
        if not any(key in r["params"] for r in runs):
            raise ValueError(f"--where {key}: no run has this param (dotted, as in params.yaml)")
        runs = [r for r in runs if key in r["params"] and same_value_key(r["params"][key]) == same_value_key(value)]
    return runs


def exp_show(extra_args: list[str]) -> list:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", *extra_args], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {result.stderr.strip() or result.stdout.strip()}")
    return json.loads(result.stdout)


# -- grouping replicates -----------------------------------------------------------------------------


def is_seed(param: str) -> bool:
    return param.rsplit(".", 1)[-1].rsplit(":", 1)[-1] == "seed"


def same_value_key(value) -> str:
    """A key under which equal param values are equal: `-S x=3` stores 3, params.yaml's 3.0 is 3.0."""

    def canonical(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, list):
            return [canonical(x) for x in v]
        if isinstance(v, dict):
            return {k: canonical(x) for k, x in v.items()}
        return v

    return json.dumps(canonical(value), sort_keys=True)


def varying_params(runs: list[dict]) -> list[str]:
    """Params whose value differs between the runs that have metrics, in params.yaml order."""
    measured = [r for r in runs if r["metrics"]]
    keys = list(dict.fromkeys(k for r in measured for k in r["params"]))
    return [k for k in keys if len({same_value_key(r["params"].get(k)) for r in measured}) > 1]


def stats(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value), min, max and n of the values."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _text(value) -> str:
    return (
        kit.format_number(float(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else kit.format_number(value)
    )


def group_runs(runs: list[dict], param: str | None = None) -> tuple[list[str], list[str], list[dict]]:
    """(swept params, seed params, groups). Runs with metrics that share the values of every varying param
    other than seeds form one group {label, params, runs, metrics: {key: stats across its runs}}; groups come
    in the order of the swept values. `param` goes first among the swept params (kept even if constant).
    Sets each run's "group" to its group's label."""
    varying = varying_params(runs)
    seeds = [k for k in varying if is_seed(k)]
    swept = ([param] if param else []) + [k for k in varying if not is_seed(k) and k != param]
    groups: dict[str, dict] = {}
    for run in runs:
        if not run["metrics"]:
            continue
        values = {k: run["params"].get(k) for k in swept}
        text = (
            ", ".join(_text(v) if len(swept) == 1 else f"{k.rsplit('.', 1)[-1]}={_text(v)}" for k, v in values.items())
            or "all runs"
        )
        group = groups.setdefault(same_value_key(values), {"label": text, "params": values, "runs": []})
        group["runs"].append(run)
        run["group"] = text
    for group in groups.values():
        members = group["runs"]
        keys = dict.fromkeys(k for r in members for k in r["metrics"])
        group["metrics"] = {k: stats([r["metrics"][k][0] for r in members if k in r["metrics"]]) for k in keys}
        group["runs"] = [r["name"] for r in members]
    order = lambda g: [(0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in g["params"].values()]
    return swept, seeds, sorted(groups.values(), key=order)


def fidelity_sets(swept: list[str]) -> list[str]:
    """The image sets whose fidelity the swept params move: sampling params only the report-conditioned
    set, anything else (training params; seeds alone) both."""
    if swept and all(p.split(".", 1)[0] in SAMPLING_SECTIONS for p in swept):
        return ["conditioned"]
    return ["conditioned", "unconditional"]


def summary(runs: list[dict], param: str | None = None) -> dict:
    """Everything the page, the JSON file and the evaluation page show (plain JSON types)."""
    swept, seeds, groups = group_runs(runs, param)
    keys = list(dict.fromkeys(k for g in groups for k in g["metrics"]))
    across = (
        ("over the runs of a group, which differ only in " + ", ".join(seeds))
        if seeds
        else "(none here: every group has one run)"
    )
    return {
        "swept_params": swept,
        "seed_params": seeds,
        "fidelity_sets": fidelity_sets(swept),
        "intervals": {
            "image": IMAGE_INTERVALS,
            "across_runs": f"mean, standard deviation (n - 1), min and max {across}",
        },
        "headline": [k for k in SUMMARY_KEYS if k in keys],
        "labels": {k: label(k) for k in keys},
        "groups": groups,
        "runs": [
            {
                "name": r["name"],
                "rev": r["rev"],
                "kind": r["kind"],
                "state": r["state"],
                "group": r.get("group"),
                "params": {k: r["params"].get(k) for k in swept + seeds},
                "metrics": {k: dict(zip(kit.INTERVAL_KEYS, v)) for k, v in r["metrics"].items()},
            }
            for r in runs
        ],
    }


# -- the page ----------------------------------------------------------------------------------------


def points(data: dict) -> list[tuple[str, dict]]:
    """(label, {metric: (value, low, high)}) per plotted point: a group of several runs is its mean with the
    range across runs, a single run its value with its image interval. When all runs are one group (seed
    replicates only), every run is a point, labelled with its seeds."""
    runs = {r["name"]: r for r in data["runs"]}
    own = lambda name: {k: tuple(v[i] for i in kit.INTERVAL_KEYS) for k, v in runs[name]["metrics"].items()}
    groups = data["groups"]
    if len(groups) == 1 and len(groups[0]["runs"]) > 1:
        seeds = data["seed_params"]
        name = (lambda k: k) if len(seeds) > 1 else (lambda k: k.rsplit(".", 1)[-1])
        return [
            (", ".join(f"{name(k)} {_text(runs[n]['params'][k])}" for k in seeds) or n, own(n))
            for n in groups[0]["runs"]
        ]
    out = []
    for g in groups:
        if len(g["runs"]) == 1:
            out.append((g["label"], own(g["runs"][0])))
        else:
            spread = {k: (stat["mean"], stat["min"], stat["max"]) for k, stat in g["metrics"].items()}
            out.append((f"{g['label']} (n={len(g['runs'])})", spread))
    return out


def charts(data: dict) -> str:
    """Fidelity of the images the swept params change (x) against faithfulness (y): FID and coverage of each
    image set; laterality and adherence (y) against the first set's FID."""
    pts = points(data)
    ceiling = _mean(
        g["metrics"]["faithfulness_ceiling"]["mean"] for g in data["groups"] if "faithfulness_ceiling" in g["metrics"]
    )
    first = data["fidelity_sets"][0]
    pairs = [(f"{s}_{m}", "faithfulness") for s in data["fidelity_sets"] for m in ("fid", "coverage")]
    pairs[1:1] = [(f"{first}_fid", "laterality"), (f"{first}_fid", "adherence")]
    svgs = []
    for x_key, y_key in pairs:
        if not any(y_key in metrics for _, metrics in pts):
            continue
        none = (None, None, None)
        xy = [(m.get(x_key, none), m.get(y_key, none), text) for text, m in pts]
        y_label = label(y_key).split(" (")[0]
        svgs.append(
            kit.svg_scatter(
                [(x[0], y[0], text, x[1], x[2], y[1], y[2]) for x, y, text in xy],
                label(x_key),
                y_label,
                f"{label(x_key)} vs {y_label}",
                connect=len(data["groups"]) > 1,
                reference_y=ceiling if y_key == "faithfulness" else None,
            )
        )
    return f'<div class="charts">{"".join(svgs)}</div>'


def group_table(group: dict, data: dict) -> str:
    """Metrics x (each run's value [image interval], then mean, sd, min, max and n across the runs) of a group."""
    runs = {r["name"]: r["metrics"] for r in data["runs"]}
    cell = lambda m: kit.format_value(m) if m["low"] is not None else kit.format_number(m["value"])
    rows = [
        [
            label(key),
            *(cell(runs[name][key]) if key in runs[name] else "\u2013" for name in group["runs"]),
            *(kit.format_number(stat[k]) for k in ("mean", "sd", "min", "max", "n")),
        ]
        for key, stat in group["metrics"].items()
    ]
    return kit.grid_table(["metric", *group["runs"], "mean", "sd", "min", "max", "n runs"], rows)


def write_report(out: Path, runs: list[dict], param: str | None = None) -> dict:
    """Write the page (`.html` added if missing), a CSV of the runs and the JSON summary (same stem); return
    the summary."""
    out = html_path(out)
    data = summary(runs, param)
    swept, seeds = data["swept_params"], data["seed_params"]
    sources = " and ".join(SOURCES[s] for s in data["fidelity_sets"])
    replicates_only = len(data["groups"]) == 1 and len(data["groups"][0]["runs"]) > 1
    points_are = (
        "Each point is one run, labelled with its seeds, its whiskers its image intervals."
        if replicates_only
        else "A point with (n=...) is the mean of that many runs, its whiskers the range across them; a "
        "single run's whiskers are its image interval."
    )
    note = (
        f"Swept: {', '.join(swept) or 'nothing'}; "
        f"{'replicates differ only in ' + ', '.join(seeds) if seeds else 'no seed param varies'}. "
        f"Fidelity is measured on the {sources}: sampling params such as guidance do not change the "
        f"unconditional samples. {points_are} The dashed line is the real-image ceiling of faithfulness."
    )
    intervals = (
        f"Image intervals, in brackets: {IMAGE_INTERVALS}. Across-run spread: "
        f"{data['intervals']['across_runs']}. Failed, queued and running experiments have no metrics "
        f"and belong to no group."
    )
    title = ", ".join(swept) or ("seed replicates" if seeds else "one recipe")
    kit.write_page(
        out,
        f"Experiments: {title}",
        [
            ("Fidelity against faithfulness", charts(data) + f'<p class="note">{html.escape(note)}</p>'),
            (
                "Groups: mean and spread across runs",
                experiments_table(data) + f'<p class="note">{html.escape(intervals)}</p>',
            ),
            *((f"Group {g['label']}: every run", group_table(g, data)) for g in data["groups"]),
            (
                "Runs",
                kit.grid_table(
                    ["run", "state", "group", *swept, *seeds],
                    [
                        [
                            str(r["name"]),
                            r["state"],
                            r["group"] or "\u2013",
                            *(_text(r["params"].get(k)) for k in swept + seeds),
                        ]
                        for r in data["runs"]
                    ],
                ),
            ),
        ],
    )
    write_csv(out.with_suffix(".csv"), runs, swept + seeds)
    write_json(out.with_suffix(".json"), data, indent=1, sort_keys=False, default=str)
    return data


def write_csv(path: Path, runs: list[dict], params: list[str]) -> None:
    keys = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    columns = [
        "name",
        "rev",
        "kind",
        "state",
        "group",
        *params,
        *(f"{k}{suffix}" for k in keys for suffix in ("", "_low", "_high")),
    ]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in runs:
            row = {
                "name": r["name"],
                "rev": r["rev"],
                "kind": r["kind"],
                "state": r["state"],
                "group": r.get("group") or "",
                **{k: r["params"].get(k, "") for k in params},
            }
            for k, values in r["metrics"].items():
                row.update({f"{k}{suffix}": "" if v is None else v for suffix, v in zip(("", "_low", "_high"), values)})
            writer.writerow(row)


def html_path(out) -> Path:
    """`out` with `.html` added unless it already ends in .html or .htm, so that it opens in a browser."""
    out = Path(out)
    return out if out.suffix.lower() in (".html", ".htm") else out.with_name(out.name + ".html")


def experiments_table(summary: dict) -> str:
    """Headline metrics x groups of runs from an experiments summary (the JSON that `python -m
    cxrldm.report.experiments` writes): the mean over a group's runs +- their standard deviation (min to
    max, n runs), or a single run's value."""
    groups = [g for g in summary.get("groups") or [] if isinstance(g, dict)]
    labels = summary.get("labels") or {}
    keys = [k for k in summary.get("headline") or [] if any(k in (g.get("metrics") or {}) for g in groups)]

    def cell(s) -> str:
        if not isinstance(s, dict):
            return "\u2013"
        if (kit.number(s.get("n")) or 0) < 2:
            return kit.format_number(s.get("mean"))
        return (
            f"{kit.format_number(s.get('mean'))} \u00b1 {kit.format_number(s.get('sd'))} "
            f"({kit.format_number(s.get('min'))} to {kit.format_number(s.get('max'))}, n={s.get('n')})"
        )

    rows = [[str(labels.get(k, k)), *(cell((g.get("metrics") or {}).get(k)) for g in groups)] for k in keys]
    swept = ", ".join(summary.get("swept_params") or []) or "group"
    return kit.grid_table([f"metric \\ {swept}", *(str(g.get("label")) for g in groups)], rows) if rows else ""


def experiments_section(summary: dict, link: str | None = None) -> str:
    """A link to the experiments page next to this one (when there is one) and the compact table of its
    summary, with what the spread is over."""
    parts = (
        [
            f'<p><a href="{kit.esc(link)}">{kit.esc(link)}</a>: every experiment DVC knows of, fidelity against '
            f"faithfulness per group of runs.</p>"
        ]
        if link
        else []
    )
    table = experiments_table(summary)
    if table:
        across = (summary.get("intervals") or {}).get("across_runs", "")
        parts.append(
            table + f'<p class="note">Across runs: {kit.esc(across)}. Gathered when the experiments page was '
            f"written, not by this pipeline run.</p>"
        )
    return "".join(parts)


def main(argv=None, default_out: str = "metrics/experiments.html") -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(default_out),
        help="the page (.html added if missing); the CSV and the JSON summary get its stem",
    )
    parser.add_argument("--json", type=Path, help="read this saved `dvc exp show --json` output instead of running it")
    parser.add_argument(
        "--param",
        help="the swept param (dotted, in params.yaml); default: every param that varies across runs, other than seeds",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="keep only the runs with this param value (repeatable)",
    )
    parser.add_argument(
        "--default",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="the value of a param in runs made before it existed (repeatable)",
    )
    args, extra = parser.parse_known_args(argv)
    try:
        where, defaults = [assignment(a) for a in args.where], [assignment(a) for a in args.default]
        data = json.loads(args.json.read_text(encoding="utf-8")) if args.json else exp_show(extra)
        runs = select_runs(runs_from_exp_show(data), where, defaults)
    except (OSError, RuntimeError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    out = html_path(args.out)
    result = write_report(out, runs, args.param)
    print(
        f"wrote {out}, {out.with_suffix('.csv')} and {out.with_suffix('.json')}: {len(runs)} runs, "
        f"{len(result['groups'])} groups, swept {', '.join(result['swept_params']) or 'nothing'}"
    )


if __name__ == "__main__":
    main()
