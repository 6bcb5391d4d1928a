"""Evaluation: feature networks, fidelity, faithfulness, intervals, memorisation and privacy.

COPY_KINDS lists the planted-copy transformations (`memorisation.planted`); it lives here, free of
imports, so the param checks can import it without making every stage depend on the privacy code."""

COPY_KINDS = ("exact", "blur", "shift", "mirror", "crop", "rotate", "noise", "contrast")
