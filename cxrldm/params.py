"""What every leaf of params.yaml may hold, checked before a stage reads data or touches an output.

`check(params, names)` validates the named leaf params (a stage's list in dvc.yaml) and the relations
among them, and raises ParamError with one line naming the param, its value and what is allowed.
Every leaf of params.yaml has a rule here (a test holds the two together).

`cxrldm check [FILE]` checks a whole params file before DVC reads it: DVC puts the path params into
dvc.yaml's dependencies while parsing, and stops at a null or empty one with only "ERROR: unexpected
error", before any stage (and so any stage's check) runs. `make demo` runs it first."""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cxrldm.evaluation import COPY_KINDS, parse_copy
from cxrldm.models import DEID_MARKERS, PRECISIONS, PROMPT_RULES
from cxrldm.sampling import SAMPLERS


class ParamError(ValueError):
    """A param value that is not allowed: one line, naming it."""


@dataclass(frozen=True)
class Rule:
    allowed: str  # what is allowed, for the message
    accepts: Callable[[Any], bool]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    bounds = f" >= {low}" if high is None and low is not None else f" in [{low}, {high}]" if low is not None else ""
    return Rule(
        f"an integer{bounds}", lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high)
    )


def number(low: float | None = None, high: float | None = None, above: float | None = None) -> Rule:
    if above is not None:
        return Rule(f"a number > {above:g}", lambda v: _is_number(v) and v > above)
    text = (
        f" in [{low:g}, {high:g}]"
        if low is not None and high is not None
        else f" >= {low:g}"
        if low is not None
        else ""
    )
    return Rule(
        f"a number{text}", lambda v: _is_number(v) and (low is None or v >= low) and (high is None or v <= high)
    )


def choice(*values) -> Rule:
    return Rule("one of " + ", ".join(map(str, values)), lambda v: isinstance(v, (str, bool, int)) and v in values)


def text(empty: bool = False) -> Rule:
    return Rule(
        "a string" if empty else "a non-empty string", lambda v: isinstance(v, str) and (empty or bool(v.strip()))
    )


BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))


def items(rule: Rule, min_length: int = 1) -> Rule:
    return Rule(
        f"a list of at least {min_length} items, each {rule.allowed}",
        lambda v: isinstance(v, list) and len(v) >= min_length and all(rule.accepts(x) for x in v),
    )


def optional(rule: Rule) -> Rule:
    return Rule(f"null or {rule.allowed}", lambda v: v is None or rule.accepts(v))


def _prompt(v) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("text"), str)
        and bool(v["text"].strip())
        and set(v) <= {"text", "finding", "side"}
        and (v.get("finding") is None or isinstance(v["finding"], str))
        and v.get("side") in (None, "left", "right")
    )


EDIT_KEYS = {"name", "prompt", "finding", "target", "source", "mask", "keep", "side"}


def _edit(v) -> bool:
    def named(key):
        return isinstance(v.get(key), str) and bool(v[key].strip())

    return (
        isinstance(v, dict)
        and set(v) <= EDIT_KEYS
        and all(named(k) for k in ("name", "prompt", "finding", "source", "mask"))
        and v.get("target") in ("present", "absent")
        and v.get("side") in (None, "left", "right")
        and (v.get("keep") is None or isinstance(v["keep"], str))
    )


def _copy(v) -> bool:
    try:
        return bool(parse_copy(v))
    except ValueError:
        return False


SEED, PRECISION = integer(0), choice(*PRECISIONS)
POSITIVE, COUNT = integer(1), integer(0)
RATE, WEIGHT = number(above=0), number(0)

RULES: dict[str, Rule] = {
    "data.format": choice("mimic", "manifest"),
    "data.root": text(),
    "data.reports": text(),
    "data.index": text(),
    "data.labels": text(),
    "data.checksums": text(),
    "data.demographics": text(),
    "extract_reports.prompt": choice("report", "template"),
    "extract_reports.template": text(),
    "demo_data.seed": SEED,
    "demo_data.n_studies": POSITIVE,
    "demo_data.min_side": integer(16),
    "filter_pa.view": text(),
    "filter_pa.split": choice("official", "by_patient"),
    "filter_pa.split_file": text(),
    "filter_pa.split_seed": SEED,
    "filter_pa.train_fraction": number(0, 1),
    "filter_pa.validate_fraction": number(0, 1),
    "filter_pa.test_fraction": number(0, 1),
    "resize.size": integer(16),
    "resize.draft": BOOLEAN,
    "train_aekl.seed": SEED,
    "train_aekl.image_size": integer(8),
    "train_aekl.channels": items(POSITIVE),
    "train_aekl.latent_channels": POSITIVE,
    "train_aekl.num_res_blocks": POSITIVE,
    "train_aekl.norm_num_groups": POSITIVE,
    "train_aekl.disc_channels": POSITIVE,
    "train_aekl.disc_layers": POSITIVE,
    "train_aekl.disc_norm": choice("batch", "instance"),
    "train_aekl.perceptual_network": choice("squeeze", "alex", "vgg"),
    "train_aekl.perceptual_weight": WEIGHT,
    "train_aekl.kl_weight": WEIGHT,
    "train_aekl.spectral_weight": WEIGHT,
    "train_aekl.adv_weight": WEIGHT,
    "train_aekl.adv_start_epoch": COUNT,
    "train_aekl.lr_g": RATE,
    "train_aekl.lr_d": RATE,
    "train_aekl.grad_clip": WEIGHT,
    "train_aekl.batch_size": POSITIVE,
    "train_aekl.epochs": POSITIVE,
    "train_aekl.augment_p": number(0, 1),
    "train_aekl.augment_degrees": number(0, 180),
    "train_aekl.augment_translate_px": WEIGHT,
    "train_aekl.augment_scale": number(0, 0.5),
    "train_aekl.augment_flip_p": number(0, 1),
    "train_aekl.augment_shift_p": number(0, 1),
    "train_aekl.augment_shift": number(0, 0.5),
    "train_aekl.augment_gamma_p": number(0, 1),
    "train_aekl.augment_gamma": number(0, 0.5),
    "train_aekl.precision": PRECISION,
    "train_aekl.val_every": POSITIVE,
    "train_aekl.val_images": POSITIVE,
    "train_aekl.ms_ssim_kernel": integer(1),
    "train_aekl.in_memory": BOOLEAN,
    "train_aekl.num_workers": COUNT,
    "train_aekl.init_from": text(empty=True),
    "text_encoder.model": text(),
    "text_encoder.encoder_subfolder": text(empty=True),
    "text_encoder.tokenizer_subfolder": text(empty=True),
    "text_encoder.max_length": integer(2),
    "scale_factor.override": optional(number(above=0)),
    "scale_factor.batch_size": POSITIVE,
    "scale_factor.precision": PRECISION,
    "train_ldm.seed": SEED,
    "train_ldm.channels": items(POSITIVE),
    "train_ldm.attention_levels": items(BOOLEAN),
    "train_ldm.num_head_channels": items(COUNT),
    "train_ldm.num_res_blocks": POSITIVE,
    "train_ldm.norm_num_groups": POSITIVE,
    "train_ldm.num_train_timesteps": integer(2),
    "train_ldm.beta_start": number(above=0),
    "train_ldm.beta_end": number(above=0),
    "train_ldm.prediction_type": choice("epsilon", "v_prediction", "sample"),
    "train_ldm.lr": RATE,
    "train_ldm.weight_decay": WEIGHT,
    "train_ldm.warmup_steps": COUNT,
    "train_ldm.grad_clip": WEIGHT,
    "train_ldm.lr_schedule": choice("constant", "cosine"),
    "train_ldm.ema_decay": number(0, 0.99999),
    "train_ldm.batch_size": POSITIVE,
    "train_ldm.epochs": POSITIVE,
    "train_ldm.max_sentences": POSITIVE,
    "train_ldm.deid_markers": choice(*DEID_MARKERS),
    "train_ldm.whole_report_share": number(0, 1),
    "text_encoder.windows": POSITIVE,
    "sample_reports.prompt": choice(*PROMPT_RULES),
    "faithfulness.min_ceiling": number(0, 1),
    "train_ldm.deid_word": text(empty=True),
    "train_ldm.condition_dropout": number(0, 1),
    "train_ldm.prompt_pool": COUNT,
    "train_ldm.precision": PRECISION,
    "train_ldm.val_every": POSITIVE,
    "train_ldm.sample_every": POSITIVE,
    "train_ldm.sample_prompts": items(text(), 0),
    "train_ldm.sample_steps": POSITIVE,
    "train_ldm.sample_guidance": WEIGHT,
    "train_ldm.init_from": text(empty=True),
    "train_evaluator.seed": SEED,
    "train_evaluator.image_size": integer(16),
    "train_evaluator.labels": items(text()),
    "train_evaluator.width": POSITIVE,
    "train_evaluator.epochs": POSITIVE,
    "train_evaluator.batch_size": POSITIVE,
    "train_evaluator.lr": RATE,
    "train_evaluator.precision": PRECISION,
    "sample.seed": SEED,
    "sample.prompts": items(Rule("{text, finding, side: left/right}", _prompt), 0),
    "sample.prompts_file": optional(text(empty=True)),
    "sample.n_per_prompt": POSITIVE,
    "sample.n_unconditional": POSITIVE,
    "sample.sampler": choice(*SAMPLERS),
    "sample.steps": POSITIVE,
    "sample.guidance_scale": WEIGHT,
    "sample.batch_size": POSITIVE,
    "sample.precision": PRECISION,
    "sample.dicom": BOOLEAN,
    "sample_reports.seed": SEED,
    "sample_reports.test_studies": COUNT,
    "sample_reports.train_studies": COUNT,
    "sample_reports.seeds_per_prompt": POSITIVE,
    "evaluate.feature_network": Rule(
        "xrv, evaluator_cnn or hf:<hub id or directory>",
        lambda v: v in ("xrv", "evaluator_cnn") or (isinstance(v, str) and v.startswith("hf:") and len(v) > 3),
    ),
    "evaluate.classifier": choice("xrv", "evaluator_cnn"),
    "evaluate.normal_prompt": optional(integer(0)),
    "evaluate.prdc_k": POSITIVE,
    "evaluate.kid_subsets": POSITIVE,
    "evaluate.resamples": POSITIVE,
    "evaluate.xrv_cache_dir": text(),
    "evaluate.n_reconstruction": POSITIVE,
    "evaluate.n_test": integer(3),
    "evaluate.pairs": COUNT,
    "evaluate.ms_ssim_kernel": integer(1),
    "evaluate.seed": SEED,
    "evaluate.precision": PRECISION,
    "realism.images": integer(2),
    "realism.folds": integer(2),
    "realism.epochs": POSITIVE,
    "realism.width": POSITIVE,
    "realism.batch_size": integer(2),
    "realism.lr": RATE,
    "realism.blur_sigma": number(above=0),
    "realism.resamples": POSITIVE,
    "realism.seed": SEED,
    "realism.precision": PRECISION,
    "faithfulness.findings": items(text()),
    "faithfulness.min_studies": integer(3),
    "faithfulness.subgroups": items(text(), 0),
    "faithfulness.age_bands": items(integer(1), 0),
    "memorisation.percentile": number(0, 100),
    "memorisation.pixel_size": integer(4),
    "memorisation.top_pairs": POSITIVE,
    "memorisation.planted_count": POSITIVE,
    "memorisation.spaces": items(choice("features", "pixels", "copy_detector")),
    "memorisation.reidentification": BOOLEAN,
    "memorisation.copy_views": items(Rule("kind[:magnitude] with kind one of " + ", ".join(COPY_KINDS), _copy), 0),
    "memorisation.planted": items(Rule("kind[:magnitude] with kind one of " + ", ".join(COPY_KINDS), _copy), 0),
    "privacy.seed": SEED,
    "privacy.image_size": integer(16),
    "privacy.width": POSITIVE,
    "privacy.embed_dim": POSITIVE,
    "privacy.temperature": number(above=0),
    "privacy.epochs": POSITIVE,
    "privacy.reid_epochs": POSITIVE,
    "privacy.batch_size": integer(2),
    "privacy.lr": RATE,
    "privacy.precision": PRECISION,
    "edit.seed": SEED,
    "edit.strength": number(0, 1),
    "edit.steps": POSITIVE,
    "edit.guidance_scale": WEIGHT,
    "edit.feather_px": WEIGHT,
    "edit.images_per_edit": integer(2),
    "edit.threshold": number(0, 1),
    "edit.batch_size": POSITIVE,
    "edit.precision": PRECISION,
    "edit.dicom": BOOLEAN,
    "reader_study.answers": text(),
    "edit.edits": items(
        Rule(
            "{name, prompt, finding, target: present/absent, source: normal/any/<finding>, "
            "mask: <zone or PNG>, keep (optional), side (optional): left/right}",
            _edit,
        )
    ),
}


def _odd(v) -> bool:
    return v % 2 == 1


# Relations among params: (the params involved, a test of their values, what is allowed). Checked when a
# stage lists every param involved.
RELATIONS = [
    (("train_aekl.ms_ssim_kernel",), _odd, "an odd kernel size"),
    (("evaluate.ms_ssim_kernel",), _odd, "an odd kernel size"),
    (
        ("train_aekl.image_size", "train_aekl.channels"),
        lambda size, channels: size % 2 ** (len(channels) - 1) == 0,
        "an image size divisible by 2^(levels - 1), the autoencoder's downsampling",
    ),
    (
        ("train_aekl.channels", "train_aekl.norm_num_groups"),
        lambda channels, groups: all(c % groups == 0 for c in channels),
        "channels divisible by norm_num_groups",
    ),
    (
        ("train_ldm.channels", "train_ldm.norm_num_groups"),
        lambda channels, groups: all(c % groups == 0 for c in channels),
        "channels divisible by norm_num_groups",
    ),
    (
        ("train_ldm.channels", "train_ldm.attention_levels", "train_ldm.num_head_channels"),
        lambda c, a, h: len(c) == len(a) == len(h),
        "one attention level and head width per channel level",
    ),
    (("train_ldm.beta_start", "train_ldm.beta_end"), lambda start, end: start < end < 1, "beta_start < beta_end < 1"),
    (
        ("train_aekl.adv_start_epoch", "train_aekl.epochs"),
        lambda start, epochs: start <= epochs,
        "adv_start_epoch <= epochs",
    ),
    (
        ("filter_pa.train_fraction", "filter_pa.validate_fraction", "filter_pa.test_fraction"),
        lambda *f: abs(sum(f) - 1) < 1e-6 and f[0] > 0 and f[2] > 0,
        "fractions summing to 1, train and test above 0",
    ),
    (("realism.images", "realism.folds"), lambda n, k: n >= k, "at least as many images as folds"),
    (("memorisation.percentile",), lambda p: 0 < p < 100, "a percentile strictly between 0 and 100"),
    (("edit.edits",), lambda edits: len({e["name"] for e in edits}) == len(edits), "edits with distinct names"),
]


def leaf(params: dict, dotted: str):
    node = params
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ParamError(f"{dotted}: missing from params.yaml")
        node = node[key]
    return node


def unknown_keys(params: dict, prefix: str = "") -> list[str]:
    """Dotted names in `params` that no rule knows: a leaf without a rule, or a section no rule lies under."""
    unknown = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if name in RULES:
            continue
        if isinstance(value, dict) and any(rule.startswith(name + ".") for rule in RULES):
            unknown += unknown_keys(value, name + ".")
        else:
            unknown.append(name)
    return unknown


def check_known(params: dict, file: str = "params.yaml") -> None:
    """Raise ParamError (one line) for the first key of `params` that no rule knows, with the nearest known
    key: a typo would otherwise leave the stage on its old value without a word."""
    for name in unknown_keys(params):
        sections = {rule.rsplit(".", 1)[0] for rule in RULES}
        nearest = difflib.get_close_matches(name, [*RULES, *sections], n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        raise ParamError(f"{name}: unknown key in {file}{hint}")


def check(params: dict, names) -> None:
    """Raise ParamError (one line) for the first of `names` whose value breaks its rule or a relation."""
    names = list(names)
    for name in names:
        rule = RULES.get(name)
        if rule is None:
            raise ParamError(f"{name}: no rule in cxrldm/params.py (add one)")
        value = leaf(params, name)
        if not rule.accepts(value):
            raise ParamError(f"{name}: {value!r} is not allowed; expected {rule.allowed}")
    listed = set(names)
    for involved, holds, allowed in RELATIONS:
        if set(involved) <= listed:
            values = [leaf(params, n) for n in involved]
            if not holds(*values):
                shown = ", ".join(f"{n}={v!r}" for n, v in zip(involved, values))
                raise ParamError(f"{shown}: not allowed; expected {allowed}")


def check_file(path: str) -> int:
    """Every key of the params file known and every leaf and relation allowed; ParamError (one line,
    naming the file and the param) otherwise. Returns the number of leaves checked."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise ParamError(f"{path}: cannot be read: {str(error).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise ParamError(f"{path}: not a YAML mapping of sections")
    try:
        check_known(params, path)
        check(params, RULES)
    except ParamError as error:
        raise ParamError(f"{path}: {error}") from None
    return len(RULES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Check a params file (every key known, every value allowed).")
    parser.add_argument("file", nargs="?", default="params.yaml", help="the params file (default params.yaml)")
    args = parser.parse_args(argv)
    try:
        n = check_file(args.file)
    except ParamError as error:
        raise SystemExit(f"cxrldm check: {error}") from None
    print(f"{args.file}: {n} params allowed")
