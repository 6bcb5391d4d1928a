"""Models: networks, autoencoder, diffusion, latents, text encoder, prompts and the training loop.

The allowed values of their choice params live here, free of imports, so the param checks can import
them without making every stage depend on the model code."""

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
PROMPT_RULES = ("whole", "drawn")  # report -> prompt: the whole report, or 1..max_sentences drawn
DEID_MARKERS = ("keep", "drop", "replace")  # what training does with MIMIC's ___ de-identification marks
