"""Stage sample: images for each prompt and unconditional ones (the null condition), every image with its
own recorded seed, a manifest, and a grid per prompt for `dvc plots`. With sample.dicom each image is also
a DICOM Secondary Capture marked synthetic (cxrldm.data.dicom_output), listed in the manifest's dicom column."""

import re
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from cxrldm import paths
from cxrldm.data import dicom_output
from cxrldm.data.images import grid, save_png, to_uint8
from cxrldm.io import atomic_dir, write_csv
from cxrldm.sampling.generation import generate_images, image_seeds, load_models
from stages.common import load_params, progress, run

OUT = paths.SAMPLES
GRIDS = paths.SAMPLE_GRIDS
UNCONDITIONAL = "unconditional"


def read_prompts(p: dict) -> list[dict]:
    """[{"text", "finding"}] from params, plus one prompt per line of sample.prompts_file, a file in
    configs/prompts/ (blank and # lines skipped; null or "": none)."""
    prompts = [{"text": q["text"], "finding": q.get("finding"), "side": q.get("side")} for q in p["prompts"]]
    for q in prompts:
        if q["side"] not in (None, "left", "right"):
            raise ValueError(f"sample.prompts: side must be left, right or absent, got {q['side']!r} for {q['text']!r}")
    if p["prompts_file"]:
        path = paths.PROMPTS / p["prompts_file"]
        if Path(p["prompts_file"]).name != p["prompts_file"] or not path.is_file():
            raise FileNotFoundError(
                f"sample.prompts_file: {p['prompts_file']!r} is not a file in {paths.PROMPTS}/ (null: no extra prompts)"
            )
        lines = [line.strip() for line in path.read_text().splitlines()]
        prompts += [
            {"text": line, "finding": None, "side": None} for line in lines if line and not line.startswith("#")
        ]
    if not prompts:
        raise ValueError(
            "sample.prompts and sample.prompts_file hold no prompt: name at least one (unconditional "
            "samples come from sample.n_unconditional)"
        )
    if not all(q["text"] for q in prompts):
        raise ValueError("sample.prompts: an empty prompt; unconditional samples come from sample.n_unconditional")
    return prompts


def slug(text: str, length: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].rstrip("-")


def main():
    p = load_params()["sample"]
    prompts = read_prompts(p)
    jobs = [(i, q["text"], q["finding"], q["side"]) for i, q in enumerate(prompts) for _ in range(p["n_per_prompt"])]
    jobs += [(UNCONDITIONAL, "", None, None)] * p["n_unconditional"]
    seeds = image_seeds(p["seed"], len(jobs))
    models = load_models(paths.MODELS, p["precision"])
    images = generate_images(
        models,
        [job[1] for job in jobs],
        seeds,
        p["sampler"],
        p["steps"],
        p["guidance_scale"],
        p["batch_size"],
        progress,
    )
    rows = []
    if p["dicom"]:
        model = dicom_output.model_hash(paths.MODELS)
        study = dicom_output.stable_uid("sample", model, p["seed"])
    with atomic_dir(OUT) as tmp:
        for number, ((group, text, finding, side), seed, image) in enumerate(zip(jobs, seeds, images), 1):
            name = f"{group if group == UNCONDITIONAL else f'prompt{group:03d}'}_seed{seed}.png"
            save_png(image, tmp / name)
            settings = {"seed": seed, "guidance": p["guidance_scale"], "sampler": p["sampler"], "steps": p["steps"]}
            rows.append(
                {"group": group, "prompt": text, "finding": finding or "", "side": side or "", **settings, "file": name}
            )
            if p["dicom"]:
                rows[-1]["dicom"] = name.replace(".png", ".dcm")
                dicom_output.write_stage_film(
                    to_uint8(image),
                    tmp / rows[-1]["dicom"],
                    dicom_output.GENERATED,
                    dicom_output.generated_comments(text, {**settings, "precision": p["precision"]}, model),
                    study,
                    number,
                    model,
                )
        write_csv(tmp / "manifest.csv", pd.DataFrame(rows))
    with atomic_dir(GRIDS) as tmp:
        for group in dict.fromkeys(job[0] for job in jobs):
            chosen = torch.stack([im for job, im in zip(jobs, images) if job[0] == group][:16])
            name = UNCONDITIONAL if group == UNCONDITIONAL else f"prompt{group:03d}_{slug(prompts[group]['text'])}"
            Image.fromarray(grid(chosen, min(8, len(chosen)), gap=0, fill=0)).save(tmp / f"{name}.png")
    print(f"{len(rows)} images ({len(prompts)} prompts x {p['n_per_prompt']}, {p['n_unconditional']} unconditional)")


if __name__ == "__main__":
    run(main)
