"""The evaluation page's sections: the evaluation's headline numbers as tables and small charts, from the
metrics JSON files as the evaluation stages write them (cxrldm/report/html_kit.py draws them). A part it does
not recognise is left out of the charts but still appears in the generic tables."""

from __future__ import annotations

from cxrldm.report.html_kit import (
    esc,
    flatten,
    format_value,
    grid_table,
    interval_of,
    is_interval,
    number,
    svg_bars,
)

# -- the evaluation's headline numbers (schemas as the evaluation stages write them) ---------------------


def headline_rows(evaluate: dict) -> list[list[str]]:
    """[metric, formatted value] for FID (and its baselines), KID, PRDC and MS-SSIM in evaluate.json."""
    rows = []
    for key in sorted(evaluate):
        value = evaluate[key]
        if key.startswith(("fid_", "kid_")) and not isinstance(value, (list, str)):
            if isinstance(value, dict) and not is_interval(value):
                rows += [[f"{key}.{k}", format_value(v)] for k, v in flatten(value)]
            else:
                rows.append([key, format_value(value)])
        elif key.startswith("prdc_") and isinstance(value, dict):
            for metric in ("precision", "recall", "density", "coverage"):
                if metric in value:
                    rows.append([f"{metric} ({key[5:]})", format_value(value[metric])])
        elif key.startswith(("ms_ssim_", "psnr_", "edge_energy_")) and (
            number(value) is not None or is_interval(value)
        ):
            rows.append([key, format_value(value)])
        elif key.startswith("reconstruction_fidelity_") and isinstance(value, dict):
            for metric in ("fid", "recall", "coverage"):
                if metric in value:
                    rows.append([f"reconstructions: {metric} ({key[24:]})", format_value(value[metric])])
    return rows


REALISM_ROWS = {
    "control_real_vs_real": "control: real films vs other real films (should be near 0.5)",
    "control_blurred": "control: real films vs blurred real films (should be near 1)",
    "reconstructions": "the autoencoder's reconstructions of held-out films",
    "unconditional": "unconditional samples",
    "report_conditioned": "samples from real reports",
}


def realism_rows(realism: dict) -> list[list[str]]:
    """[set, judge AUROC, sharpness-alone AUROC, black-share AUROC, images] per comparison of realism.json."""
    rows = []
    for key, name in REALISM_ROWS.items():
        entry = realism.get(key)
        if isinstance(entry, dict) and is_interval(entry):
            images = f"{entry.get('n_negative', '?')} real, {entry.get('n_positive', '?')} generated"
            rows.append(
                [
                    name,
                    format_value(entry),
                    format_value(entry.get("sharpness_auroc")),
                    format_value(entry.get("black_share_auroc")),
                    images,
                ]
            )
    return rows


def faithfulness_bars(faithfulness: dict) -> tuple[str, list[str]]:
    """(svg_bars of each finding's synthetic AUROC next to its real-image ceiling, notes on skipped findings)."""
    findings = faithfulness.get("findings") if isinstance(faithfulness, dict) else None
    if not isinstance(findings, dict) or not findings:
        return "", []
    groups, notes = [], []
    for finding, entry in findings.items():
        if not isinstance(entry, dict):
            continue
        bars = [
            (name, *interval_of(entry[key]))
            for key, name in (("synthetic_auroc", "synthetic"), ("real_auroc", "real (ceiling)"))
            if key in entry
        ]
        groups.append((finding if entry.get("informative", True) else f"{finding} (uninformative)", bars))
        if entry.get("skipped"):
            notes.append(f"{finding}: skipped ({entry['skipped']})")
        if entry.get("uninformative_because"):
            notes.append(f"{finding}: uninformative, {entry['uninformative_because']}")
    svg = svg_bars(
        groups, "Faithfulness: AUROC per finding", x_range=(0.0, 1.0), x_label="AUROC (95% interval)", reference=0.5
    )
    return svg, notes


def subgroup_rows(faithfulness: dict) -> list[list[str]]:
    """[subgroup, studies, mean faithfulness AUROC synthetic, real, FID] per subgroup of each column."""
    subgroups = faithfulness.get("subgroups") if isinstance(faithfulness, dict) else None
    if not isinstance(subgroups, dict):
        return []
    return [
        [
            f"{column} = {name}",
            format_value(g.get("n_studies")),
            format_value(g.get("synthetic_mean_auroc")),
            format_value(g.get("real_mean_auroc")),
            format_value(g["fid"]) if is_interval(g.get("fid")) else str((g.get("fid") or {}).get("skipped", "")),
        ]
        for column, groups in subgroups.items()
        if isinstance(groups, dict)
        for name, g in groups.items()
        if isinstance(g, dict)
    ]


def memorisation_rows(memorisation: dict) -> list[list[str]]:
    """[space, threshold, flagged fraction, real test films flagged, nearest is the prompt's own image,
    nearest is its patient's] for each space (feature, pixel, ...) that has a flagged fraction, at the top
    level or under "spaces", then the union of the spaces where there is one."""
    spaces = memorisation.get("spaces") if isinstance(memorisation.get("spaces"), dict) else memorisation
    rows = [
        [
            space,
            format_value(entry.get("threshold")),
            format_value(entry.get("flagged_fraction")),
            format_value(entry.get("null_flagged_fraction")),
            format_value(entry.get("nearest_is_source_fraction")),
            format_value(entry.get("nearest_is_source_patient_fraction")),
        ]
        for space, entry in spaces.items()
        if isinstance(entry, dict) and "flagged_fraction" in entry
    ]
    union = memorisation.get("union")
    if rows and isinstance(union, dict):
        rows.append(
            [
                "any space (union)",
                "",
                format_value(union.get("flagged_fraction")),
                format_value(union.get("null_flagged_fraction")),
                "",
                "",
            ]
        )
    return rows


def planted_rows(memorisation: dict) -> tuple[list[str], list[list[str]]]:
    """The planted-copy check as (header, rows): per planted copy, 'flagged / planted' in each space and
    in the union."""
    planted = memorisation.get("planted") if isinstance(memorisation, dict) else None
    if not isinstance(planted, dict) or not planted:
        return [], []
    columns = list(
        dict.fromkeys(k for counts in planted.values() if isinstance(counts, dict) for k in counts if k != "n")
    )
    rows = [
        [spec, *(f"{counts[c]} / {counts.get('n', '?')}" if c in counts else "\u2013" for c in columns)]
        for spec, counts in planted.items()
        if isinstance(counts, dict)
    ]
    return ["planted copy", *columns], rows


def reidentification_rows(memorisation: dict) -> list[list[str]]:
    """[comparison, AUROC, top-1, chance top-1, queries] for each re-identification entry."""
    reid = memorisation.get("reidentification") if isinstance(memorisation, dict) else None
    if not isinstance(reid, dict):
        return []
    names = {
        "synthetic_vs_source": "synthetic image vs its prompt's patient (training films)",
        "real_test_patients": "real test film vs its patient's other films (ceiling)",
    }
    return [
        [
            names.get(name, name),
            format_value(r.get("auroc")),
            format_value(r.get("top1")),
            format_value(r.get("chance_top1")),
            format_value(r.get("n_queries")),
        ]
        for name, r in reid.items()
        if isinstance(r, dict)
    ]


def utility_table(utility: dict) -> str:
    """Findings x training sets (synthetic, real, both) of the downstream classifier's AUROC."""
    auroc = utility.get("auroc") if isinstance(utility, dict) else None
    if not isinstance(auroc, dict):
        return ""
    sets = [name for name, per in auroc.items() if isinstance(per, dict)]
    findings = list(dict.fromkeys(f for name in sets for f in auroc[name]))
    if not findings:
        return ""
    rows = [[f, *(format_value(auroc[name][f]) if f in auroc[name] else "\u2013" for name in sets)] for f in findings]
    return grid_table(["finding", *(f"trained on {name}" for name in sets)], rows)


def edit_summary(edit: dict) -> str:
    """Bars of the classifier's probability of each edit's finding before and after the edit, and a table
    of flip rate, side, preservation and identity per edit (schema of stage edit's metrics/edit.json)."""
    edits = edit.get("edits") if isinstance(edit, dict) else None
    if not isinstance(edits, dict) or not edits:
        return ""
    groups = [
        (
            f"{name} ({entry.get('target', '')})",
            [
                (label, *interval_of(entry[key]))
                for key, label in (("probability_before", "before"), ("probability_after", "after"))
                if key in entry
            ],
        )
        for name, entry in edits.items()
        if isinstance(entry, dict)
    ]
    svg = svg_bars(
        groups,
        "Edits: classifier probability of the finding",
        x_range=(0.0, 1.0),
        x_label="mean probability (95% interval)",
    )
    columns = (
        ("flip_rate", "flip rate"),
        ("outside_change_raw", "change outside the mask, no paste-back"),
        ("fixed_region_ms_ssim_raw", "MS-SSIM of the kept region, no paste-back"),
        ("identity_top1_pixels", "own original nearest (pixels)"),
        ("identity_top1_features", "own original nearest (features)"),
    )
    rows = [
        [name, *(format_value(entry.get(key)) for key, _ in columns)]
        for name, entry in edits.items()
        if isinstance(entry, dict)
    ]
    html_parts = [f'<div class="charts">{svg}</div>', grid_table(["edit", *(label for _, label in columns)], rows)]
    side = edit.get("laterality")
    if isinstance(side, dict) and "auroc_right_vs_left" in side:
        html_parts.append(
            f'<p class="note">Side: lower-zone contrast AUROC of the right over the left effusion '
            f"edits {esc(format_value(side['auroc_right_vs_left']))}.</p>"
        )
    return "".join(html_parts)


def reader_study_html(study: dict) -> str:
    """Pooled and per-reader results of the blinded reader study (stage reader_study), or a line saying
    there are no answers yet."""
    if not isinstance(study, dict) or "n_answers" not in study:
        return ""
    if not study["n_answers"]:
        return (
            '<p class="note">No answers yet: run a study with the app (docs/app.md) and export its answers '
            "to reader_study/answers.csv.</p>"
        )
    columns = (
        ("accuracy", "accuracy (real vs synthetic)"),
        ("auroc_confidence", "AUROC of the confidence"),
        ("synthetic_called_real", "synthetic films called real"),
    )
    pooled = study.get("pooled") or {}
    rows = [
        [
            "all readers (interval over films)",
            str(study["n_answers"]),
            *(format_value(pooled.get(key)) for key, _ in columns),
        ]
    ]
    rows += [
        [
            f"{reader} (interval over its films)",
            str(r.get("answers")),
            *(format_value(r.get(key)) for key, _ in columns),
        ]
        for reader, r in (study.get("readers") or {}).items()
        if isinstance(r, dict)
    ]
    kappa = (study.get("agreement") or {}).get("mean_kappa")
    note = (
        f'<p class="note">{study["n_readers"]} readers, {study["n_films"]} films; mean Cohen\'s kappa between '
        f"readers {esc(format_value(kappa))}. Accuracy 0.5 is chance.</p>"
    )
    return grid_table(["readers", "answers", *(label for _, label in columns)], rows) + note


def summary_html(metrics: dict[str, dict]) -> str:
    """The Summary section from whichever of the metrics files were read (keys: evaluate, faithfulness,
    memorisation, utility, edit, reader_study); parts whose data is missing are left out."""
    parts = []
    rows = headline_rows(metrics.get("evaluate") or {})
    if rows:
        parts.append("<h3>Fidelity and diversity</h3>" + grid_table(["metric", "value [95% interval] (n)"], rows))
    if (metrics.get("evaluate") or {}).get("feature_network_note"):
        parts.append(f'<p class="note">{esc(metrics["evaluate"]["feature_network_note"])}</p>')
    rows = realism_rows(metrics.get("realism") or {})
    if rows:
        parts.append(
            "<h3>Realism: can a fresh CNN tell real films from generated ones?</h3>"
            + grid_table(
                ["set", "judge AUROC [95% interval over images]", "sharpness alone", "black share alone", "images"],
                rows,
            )
            + '<p class="note">0.5: the judge cannot tell them apart; 1: it always can. The two controls in the '
            "same run bound what the test can see.</p>"
        )
    svg, notes = faithfulness_bars(metrics.get("faithfulness") or {})
    if svg:
        parts.append(f'<h3>Faithfulness</h3><div class="charts">{svg}</div>')
        parts += [f'<p class="note">{esc(note)}</p>' for note in notes]
    rows = subgroup_rows(metrics.get("faithfulness") or {})
    if rows:
        parts.append(
            "<h3>Faithfulness and fidelity per subgroup</h3>"
            + grid_table(["subgroup", "studies", "mean AUROC, synthetic", "mean AUROC, real (ceiling)", "FID"], rows)
        )
    memorisation = metrics.get("memorisation") or {}
    rows = memorisation_rows(memorisation)
    if rows:
        header = [
            "space",
            "threshold",
            "flagged fraction",
            "real test films flagged",
            "nearest is the prompt's own image",
            "nearest is its patient's film",
        ]
        parts.append("<h3>Memorisation</h3>" + grid_table(header, rows))
    header, rows = planted_rows(memorisation)
    if rows:
        parts.append("<h3>Planted copies of training films: flagged</h3>" + grid_table(header, rows))
    rows = reidentification_rows(memorisation)
    if rows:
        parts.append(
            "<h3>Patient re-identification</h3>"
            + grid_table(
                ["comparison", "AUROC (per query, mean)", "top-1 is the patient's", "chance top-1", "queries"], rows
            )
        )
    table = utility_table(metrics.get("utility") or {})
    if table:
        parts.append("<h3>Utility: downstream classifier AUROC</h3>" + table)
    edits = edit_summary(metrics.get("edit") or {})
    if edits:
        parts.append("<h3>Text-guided edits of test films</h3>" + edits)
    study = reader_study_html(metrics.get("reader_study") or {})
    if study:
        parts.append("<h3>Blinded reader study: real or synthetic?</h3>" + study)
    return "\n".join(parts) or '<p class="note">No evaluation metrics found.</p>'
