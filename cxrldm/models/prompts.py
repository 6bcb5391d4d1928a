"""Text prompts from report sentences, and the conditioning the UNet sees during training."""

from __future__ import annotations

import re

import torch

from cxrldm.models import DEID_MARKERS, PROMPT_RULES
from cxrldm.models.text import NULL_PROMPT, TextEncoder

_MARKER = re.compile(r"_{2,}")  # MIMIC's de-identified text: "___"


def treat_deid_markers(sentences: list[str], mode: str, word: str = "") -> list[str]:
    """Report sentences with MIMIC's `___` de-identification markers kept, dropped, or replaced by `word`
    (mode keep / drop / replace). Markers in training prompts drive memorisation (Dutt et al. 2025), so
    this is an experiment's choice; a sentence left empty is left out."""
    if mode not in DEID_MARKERS:
        raise ValueError(f"deid_markers must be one of {DEID_MARKERS}, got {mode!r}")
    if mode == "keep":
        return list(sentences)
    treated = [_MARKER.sub(word if mode == "replace" else "", s) for s in sentences]
    treated = [re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s{2,}", " ", s)).strip() for s in treated]
    return [s for s in treated if s.strip(" .,;:")]


def draw_prompt(sentences: list[str], max_sentences: int, generator: torch.Generator | None = None) -> str:
    """1 to `max_sentences` (inclusive) distinct sentences in random order; the null prompt when the
    report has none."""
    if not sentences:
        return NULL_PROMPT
    k = int(torch.randint(1, min(max_sentences, len(sentences)) + 1, (1,), generator=generator))
    order = torch.randperm(len(sentences), generator=generator)[:k]
    return " ".join(sentences[i] for i in order.tolist())


def whole_report(sentences: list[str]) -> str:
    """The report's whole text (findings, then impression): what faithfulness is scored on."""
    return " ".join(sentences)


def report_prompt(
    sentences: list[str],
    rule: str,
    max_sentences: int,
    whole_share: float = 0.0,
    generator: torch.Generator | None = None,
) -> str:
    """The one report-to-prompt rule of training and sampling. `rule` "whole": the whole report; "drawn":
    1 to `max_sentences` random sentences (the seed's training rule), or with probability `whole_share` the
    whole report (no random number is drawn for that when `whole_share` is 0)."""
    if rule == "whole" or (whole_share > 0 and float(torch.rand(1, generator=generator)) < whole_share):
        return whole_report(sentences)
    if rule not in PROMPT_RULES:
        raise ValueError(f"a prompt rule is one of {PROMPT_RULES}, got {rule!r}")
    return draw_prompt(sentences, max_sentences, generator)


class Conditioner:
    """Context embeddings for training rows: each row's prompt drawn from its report sentences, replaced
    by the null prompt with probability `dropout` (classifier-free guidance training).

    With `pool > 0`, `pool` prompts per row are drawn once (from `seed`) and encoded once, so a step only
    looks embeddings up: on a CPU the text encoder otherwise costs more than the UNet step. With
    `pool == 0` every step draws and encodes fresh prompts, as the seed does."""

    def __init__(
        self,
        encoder: TextEncoder,
        sentences: list[list[str]],
        max_sentences: int,
        dropout: float,
        pool: int = 0,
        seed: int = 0,
        batch_size: int = 256,
        progress=None,
        whole_share: float = 0.0,
    ):
        self.encoder, self.sentences = encoder, sentences
        self.max_sentences, self.dropout, self.pool, self.whole_share = max_sentences, dropout, pool, whole_share
        self.null = encoder.null_condition().cpu()
        if pool:
            generator = torch.Generator().manual_seed(seed)
            drawn = [[self.prompt(s, generator) for _ in range(pool)] for s in sentences]
            unique = sorted({p for row in drawn for p in row})
            self.truncation = encoder.truncation(unique)
            position = {p: i for i, p in enumerate(unique)}
            self.pool_index = torch.tensor([[position[p] for p in row] for row in drawn])
            batches = range(0, len(unique), batch_size)
            self.table = torch.cat(
                [
                    encoder.condition(unique[i : i + batch_size]).cpu()
                    for i in (progress(batches, desc="encoding prompts") if progress else batches)
                ]
            )

    def prompt(self, sentences: list[str], generator: torch.Generator | None) -> str:
        return report_prompt(sentences, "drawn", self.max_sentences, self.whole_share, generator)

    def __call__(
        self, rows: torch.Tensor, generator: torch.Generator | None = None, part: slice = slice(None)
    ) -> torch.Tensor:
        """(len(rows[part]), max_length, width) on the CPU. The random choices are drawn for all `rows`, so a
        process that computes only its `part` of a global batch agrees with one that computes it all."""
        keep = torch.rand(len(rows), generator=generator) >= self.dropout
        if self.pool:
            choice = torch.randint(0, self.pool, (len(rows),), generator=generator)
            context = self.table[self.pool_index[rows, choice]][part]
        else:
            prompts = [self.prompt(self.sentences[r], generator) for r in rows.tolist()]
            context = self.encoder.condition(prompts[part]).cpu()
        return torch.where(keep[part, None, None], context, self.null)
