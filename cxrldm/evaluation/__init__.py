"""Evaluation: feature networks, fidelity, faithfulness, intervals, memorisation and privacy.

COPY_KINDS lists the copy transformations (`memorisation.planted` and `copy_views`) and parse_copy reads
one; they live here, free of heavy imports, so the param checks use them without making every stage depend
on the privacy code."""

import math

COPY_KINDS = ("exact", "blur", "shift", "mirror", "crop", "rotate", "noise", "contrast")


def parse_copy(spec) -> tuple[str, float]:
    """'shift:2' -> ('shift', 2.0); 'mirror' -> ('mirror', 0.0). ValueError naming the spec (one line) when
    the kind is unknown or the magnitude is not a finite number."""
    kind, _, magnitude = str(spec).partition(":")
    if not isinstance(spec, str) or kind not in COPY_KINDS:
        raise ValueError(f"unknown copy {spec!r}, expected one of {', '.join(COPY_KINDS)} (with :magnitude)")
    try:
        value = float(magnitude) if magnitude else 0.0
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"copy {spec!r} has a magnitude that is not a finite number")
    return kind, value
