"""The HTML kit of the project's offline pages: numbers and intervals formatted, tables, hand-written SVG
charts, images as data: URIs, and one page template (no scripts, no external references).

Metrics follow the intervals convention of `cxrldm/evaluation/intervals.py`: a dict with "value", "low" and
"high" (and usually "n" and "resamples") is one number with its interval and is shown as
`value [low, high] (n=...)`. Everything here takes plain dicts and paths and tolerates missing or unexpected
keys."""

from __future__ import annotations

import base64
import html
import math
import mimetypes
import re
from pathlib import Path

from cxrldm.io import atomic_path

INTERVAL_KEYS = ("value", "low", "high")
SERIES_COLOURS = ("#3b6fb6", "#9aa5b1", "#d9822b", "#3f9c6d", "#8e5ea2")


# -- numbers -----------------------------------------------------------------------------------------


def number(x) -> float | None:
    """x as a finite float, or None (for None, NaN, infinities, strings, bools and dicts)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def format_number(x) -> str:
    """Ints as they are, floats to 4 significant digits, None as an en dash, anything else as text."""
    if x is None:
        return "\u2013"
    if isinstance(x, (bool, int)):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_number(v) for v in x) + "]"
    return str(x)


def is_interval(d) -> bool:
    return isinstance(d, dict) and all(key in d for key in INTERVAL_KEYS)


def format_interval(d: dict) -> str:
    """`value [low, high] (n=...)`; n may be a count or a list of counts (one per resampled set)."""
    text = f"{format_number(d.get('value'))} [{format_number(d.get('low'))}, {format_number(d.get('high'))}]"
    if "n" in d:
        n = d["n"]
        text += f" (n={', '.join(format_number(v) for v in n) if isinstance(n, (list, tuple)) else format_number(n)})"
    return text


def format_value(x) -> str:
    return format_interval(x) if is_interval(x) else format_number(x)


def interval_of(x) -> tuple[float | None, float | None, float | None]:
    """(value, low, high) of an interval dict, or (x, None, None) for a plain number; None where absent."""
    if isinstance(x, dict):
        return number(x.get("value")), number(x.get("low")), number(x.get("high"))
    return number(x), None, None


# -- tables ------------------------------------------------------------------------------------------


def flatten(data, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, leaf) pairs; interval dicts and lists of scalars are leaves, other lists are indexed."""
    if is_interval(data) or not isinstance(data, (dict, list, tuple)):
        return [(prefix, data)]
    if isinstance(data, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in data):
            return [(prefix, list(data))]
        items = [(str(i), v) for i, v in enumerate(data)]
    else:
        items = [(str(k), v) for k, v in data.items()]
    if not items:
        return [(prefix, data)]
    rows = []
    for key, value in items:
        rows += flatten(value, f"{prefix}.{key}" if prefix else key)
    return rows


def _cell(value) -> str:
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list):
        return html.escape("[" + ", ".join(format_number(v) if not isinstance(v, str) else v for v in value) + "]")
    title = f' title="{value["resamples"]} resamples"' if is_interval(value) and "resamples" in value else ""
    return f"<span{title}>{html.escape(format_value(value))}</span>" if title else html.escape(format_value(value))


def metric_table(data: dict) -> str:
    """Any metrics JSON as a two-column table of dotted keys and formatted values."""
    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{_cell(value)}</td></tr>" for key, value in flatten(data))
    return f'<table class="metrics"><tbody>{rows}</tbody></table>'


def grid_table(header: list[str], rows: list[list[str]]) -> str:
    """A table of already formatted (unescaped) text cells, the first column as row headers."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- SVG charts --------------------------------------------------------------------------------------


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick positions (steps of 1, 2 or 5 x 10^k) covering [low, high]."""
    if not high > low:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, t = [], start
    while t <= high + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < high:
        ticks.append(round(t, 12))
    return ticks


def _padded(values: list[float], fraction: float = 0.06) -> tuple[float, float]:
    """[min, max] of `values` widened by `fraction` of their range, so that no point sits on the frame."""
    low, high = min(values), max(values)
    pad = fraction * ((high - low) or abs(high) or 1.0)
    return low - pad, high + pad


def _text(x: float, y: float, text, cls: str, anchor: str = "start", attrs: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}"{attrs}>{esc(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{cls}"/>'


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
        f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" class="title">{esc(title)}</text>{body}</svg>'
    )


def svg_scatter(
    points,
    x_label: str,
    y_label: str,
    title: str,
    width: int = 440,
    height: int = 320,
    connect: bool = False,
    reference_y: float | None = None,
) -> str:
    """A scatter plot of (x, y, label) or (x, y, label, x_low, x_high, y_low, y_high) points, each labelled,
    with whiskers where low and high are given; points without finite x and y are left out. `connect`
    joins the points in the order given; `reference_y` draws a dashed horizontal line (e.g. a ceiling)."""
    pts = [
        (number(x), number(y), label, *(number(v) for v in bounds)) + (None,) * (4 - len(bounds))
        for x, y, label, *bounds in points
    ]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    left, right, top, bottom = 58, 20, 28, 46
    pw, ph = width - left - right, height - top - bottom
    if not pts:
        return _svg(
            width,
            height,
            title,
            _text(width / 2, height / 2, f"no points with both {x_label} and {y_label}", "note", "middle"),
        )
    xs = [v for p in pts for v in (p[0], p[3], p[4]) if v is not None]
    ys = [v for p in pts for v in (p[1], p[5], p[6]) if v is not None] + [number(reference_y)] * (
        number(reference_y) is not None
    )
    xt, yt = nice_ticks(*_padded(xs)), nice_ticks(*_padded(ys))
    sx = lambda x: left + (x - xt[0]) / (xt[-1] - xt[0]) * pw
    sy = lambda y: top + ph - (y - yt[0]) / (yt[-1] - yt[0]) * ph
    parts = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot"/>']
    for t in xt:
        parts.append(
            _line(sx(t), top, sx(t), top + ph, "gridline")
            + _text(sx(t), top + ph + 14, format_number(t), "tick", "middle")
        )
    for t in yt:
        parts.append(
            _line(left, sy(t), left + pw, sy(t), "gridline")
            + _text(left - 5, sy(t) + 4, format_number(t), "tick", "end")
        )
    parts.append(
        _text(left + pw / 2, height - 8, x_label, "axis", "middle")
        + _text(14, top + ph / 2, y_label, "axis", "middle", attrs=f' transform="rotate(-90 14 {top + ph / 2:.1f})"')
    )
    if number(reference_y) is not None:
        parts.append(_line(left, sy(reference_y), left + pw, sy(reference_y), "reference"))
    if connect and len(pts) > 1:
        parts.append(f'<polyline points="{" ".join(f"{sx(p[0]):.1f},{sy(p[1]):.1f}" for p in pts)}" class="curve"/>')
    for x, y, label, x_low, x_high, y_low, y_high in pts:
        whiskers = ""
        if x_low is not None and x_high is not None:
            whiskers += f"M{sx(x_low):.1f} {sy(y):.1f}H{sx(x_high):.1f}"
        if y_low is not None and y_high is not None:
            whiskers += f"M{sx(x):.1f} {sy(y_low):.1f}V{sy(y_high):.1f}"
        if whiskers:
            parts.append(f'<path d="{whiskers}" class="whisker"/>')
        anchor, dx = ("end", -7) if sx(x) > left + pw * 0.8 else ("start", 7)
        dy = 15 if sy(y) < top + 14 else -6
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{SERIES_COLOURS[0]}">'
            f"<title>{esc(label)}: {esc(x_label)} {esc(format_number(x))}, {esc(y_label)} "
            f"{esc(format_number(y))}</title></circle>" + _text(sx(x) + dx, sy(y) + dy, label, "label", anchor)
        )
    return _svg(width, height, title, "".join(parts))


def svg_bars(
    groups,
    title: str,
    x_range: tuple[float, float] | None = None,
    x_label: str = "",
    reference: float | None = None,
    width: int = 560,
) -> str:
    """Grouped horizontal bars with interval whiskers.

    groups: [(group label, [(series name, value, low, high), ...]), ...]; value, low and high may be None
    or NaN (the bar is then marked n/a, or drawn without whisker). x_range defaults to [0, largest value];
    `reference` draws a dashed vertical line (e.g. 0.5, chance for an AUROC)."""
    groups = [(str(g), list(bars)) for g, bars in groups]
    series = list(dict.fromkeys(name for _, bars in groups for name, *_ in bars))
    colour = {name: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, name in enumerate(series)}
    label_w = min(200, 14 + 7 * max([len(g) for g, _ in groups] + [4]))
    left, right, top, bar_h, gap = label_w, 48, 44, 14, 12
    n_bars = sum(max(1, len(bars)) for _, bars in groups)
    ph = n_bars * (bar_h + 2) + len(groups) * gap
    height = top + ph + 38
    pw = width - left - right
    if x_range is None:
        values = [number(v) for _, bars in groups for _, *vals in bars for v in vals]
        values = [v for v in values if v is not None]
        x_range = (min(0.0, *values), max(values)) if values else (0.0, 1.0)
    ticks = nice_ticks(*x_range)
    lo, hi = ticks[0], ticks[-1]
    sx = lambda x: left + (min(max(x, lo), hi) - lo) / (hi - lo) * pw
    parts = []
    legend_x = left
    for name in series:
        parts.append(
            f'<rect x="{legend_x}" y="26" width="10" height="10" fill="{colour[name]}"/>'
            f'<text x="{legend_x + 14}" y="35" class="tick">{esc(name)}</text>'
        )
        legend_x += 24 + 7 * len(name)
    for t in ticks:
        parts.append(
            _line(sx(t), top, sx(t), top + ph, "gridline")
            + _text(sx(t), top + ph + 14, format_number(t), "tick", "middle")
        )
    y = top + gap / 2
    for group, bars in groups:
        group_h = max(1, len(bars)) * (bar_h + 2)
        short = group if len(group) <= 26 else group[:25] + "\u2026"
        parts.append(
            f'<text x="{left - 6}" y="{y + group_h / 2 + 4:.1f}" text-anchor="end" class="label">{esc(short)}'
            f"<title>{esc(group)}</title></text>"
        )
        for name, value, low, high in bars:
            v, v_low, v_high = number(value), number(low), number(high)
            text = (
                format_interval({"value": value, "low": low, "high": high})
                if v_low is not None or v_high is not None
                else format_number(value)
            )
            tip = f"<title>{esc(group)}, {esc(name)}: {esc(text)}</title>"
            if v is None:
                parts.append(f'<text x="{left + 4}" y="{y + bar_h - 3}" class="note">{esc(name)}: n/a{tip}</text>')
            else:
                base = sx(min(max(0.0, lo), hi))  # bars start at zero where the axis shows it
                parts.append(
                    f'<rect x="{min(base, sx(v)):.1f}" y="{y:.1f}" width="{abs(sx(v) - base):.1f}" '
                    f'height="{bar_h}" fill="{colour[name]}">{tip}</rect>'
                )
                if v_low is not None and v_high is not None:
                    cy = y + bar_h / 2
                    parts.append(
                        f'<path d="M{sx(v_low):.1f} {cy:.1f}H{sx(v_high):.1f}M{sx(v_low):.1f} {cy - 4:.1f}V{cy + 4:.1f}'
                        f'M{sx(v_high):.1f} {cy - 4:.1f}V{cy + 4:.1f}" class="whisker"/>'
                    )
                end = max(sx(v), sx(v_high) if v_high is not None else sx(v))
                parts.append(_text(end + 4, y + bar_h - 3, format_number(v), "value"))
            y += bar_h + 2
        if not bars:
            y += bar_h + 2
        y += gap
    if reference is not None and lo <= reference <= hi:
        parts.append(_line(sx(reference), top, sx(reference), top + ph, "reference"))
    parts.append(
        _line(left, top, left, top + ph, "axisline") + _text(left + pw / 2, height - 6, x_label, "axis", "middle")
    )
    return _svg(width, height, title, "".join(parts))


# -- images and the page -----------------------------------------------------------------------------


def image_tag(path: str | Path, alt: str | None = None) -> str:
    """An <img> whose source is the file itself, base64-encoded in a data: URI."""
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:{mime};base64,{data}" alt="{esc(alt if alt is not None else path.stem)}">'


def caption_from_name(stem: str) -> str:
    """`prompt001_the-heart-is-enlarged` -> `prompt001: the heart is enlarged`; `Pleural_Effusion` ->
    `Pleural Effusion`."""
    head, sep, rest = stem.partition("_")
    if sep and re.fullmatch(r"[a-z]+\d+", head):
        return f"{head}: {rest.replace('-', ' ').replace('_', ' ')}"
    return stem.replace("_", " ").replace("-", " ")


def figures(paths, caption=caption_from_name) -> str:
    """Images in a wrapping row, each with a caption made from its file name."""
    items = "".join(
        f"<figure>{image_tag(p, caption(Path(p).stem))}<figcaption>{esc(caption(Path(p).stem))}</figcaption></figure>"
        for p in paths
    )
    return f'<div class="figures">{items}</div>'


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2328;
       max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 16px 0 6px; }
nav { font-size: 13px; color: #57606a; }
nav a { color: #0969da; margin-right: 12px; text-decoration: none; white-space: nowrap; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
table.metrics th { font-weight: normal; color: #424a53; font-size: 12.5px;
                   font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
table.grid thead th { background: #f6f8fa; } tbody tr:nth-child(even) { background: #fafbfc; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
svg.chart { background: #fff; border: 1px solid #eaeef2; border-radius: 4px; max-width: 100%; height: auto; }
svg .title { font: 600 13px sans-serif; fill: #1f2328; } svg .tick { font: 11px sans-serif; fill: #57606a; }
svg .axis { font: 12px sans-serif; fill: #1f2328; } svg .label { font: 11.5px sans-serif; fill: #1f2328; }
svg .value { font: 10.5px sans-serif; fill: #24292f; } svg .note { font: italic 11px sans-serif; fill: #8c959f; }
svg .plot { fill: none; stroke: #d0d7de; } svg .gridline { stroke: #eaeef2; } svg .axisline { stroke: #8c959f; }
svg .whisker { stroke: #1f2328; stroke-width: 1.3; fill: none; }
svg .curve { stroke: #9aa5b1; stroke-width: 1.2; fill: none; }
svg .reference { stroke: #cf222e; stroke-dasharray: 4 3; stroke-width: 1; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; flex: 1 1 520px; max-width: 100%; }
figure img { width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #eaeef2; }
figcaption { font-size: 12.5px; color: #424a53; }
p.note { color: #57606a; font-size: 13px; }
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _slug(text: str, used: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def render_page(title: str, sections) -> str:
    """The page as a string: a title, a table of contents and one <section> per (heading, html)."""
    used: set = set()
    sections = [(heading, _slug(heading, used), body) for heading, body in sections]
    nav = " ".join(f'<a href="#{slug}">{esc(heading)}</a>' for heading, slug, _ in sections)
    body = "\n".join(
        f'<section id="{slug}"><h2>{esc(heading)}</h2>\n{content}\n</section>' for heading, slug, content in sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n<nav>{nav}</nav>\n{body}\n"
        f"</body>\n</html>\n"
    )


def write_page(path: str | Path, title: str, sections) -> None:
    """Write render_page(title, sections) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(render_page(title, sections), encoding="utf-8")
