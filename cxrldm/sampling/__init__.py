"""Sampling: schedulers (one registry), guidance, generation and editing.

SAMPLERS is the list of allowed `sample.sampler` values; it lives here, free of imports, so the param
checks can import it without making every stage depend on the scheduler code."""

SAMPLERS = ("ddim", "ddpm", "pndm")
