"""Classifier-free guidance."""

from __future__ import annotations

import torch


def guided_prediction(
    unet, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, null_context: torch.Tensor, guidance: float
) -> torch.Tensor:
    """Classifier-free guidance: the null condition's prediction plus `guidance` times the difference to the
    prompt's, both halves in one batch (null first); guidance 1 is the prompt alone, 0 the null alone."""
    if guidance == 1.0:
        return unet(x, t, context).float()
    both = unet(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null_context, context]))
    unconditional, conditional = both.float().chunk(2)
    return unconditional + guidance * (conditional - unconditional)
