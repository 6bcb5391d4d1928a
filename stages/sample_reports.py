"""Stage sample_reports: images generated from real reports for the evaluation. One per test study from
that study's own report (the training prompt rule), for faithfulness and per-finding fidelity; and
`seeds_per_prompt` per training study, for the memorisation audit and the train-on-synthetic utility.
Sampler, steps and guidance are the sample stage's, so a guidance sweep moves every metric together.
Every image has its own recorded seed; images are written batch by batch, so memory stays flat."""

import json

import pandas as pd
import torch

from cxrldm import paths
from cxrldm.data.datasets import read_split
from cxrldm.data.images import save_png
from cxrldm.io import atomic_dir, write_csv, write_json
from cxrldm.models.prompts import report_prompt, treat_deid_markers
from cxrldm.sampling.generation import generate_images, image_seeds, load_models
from stages.common import load_params, progress, run

OUT = paths.REPORT_SAMPLES


def studies(split: str, limit: int, seed: int) -> pd.DataFrame:
    """One row per study of `split` (its first PA image), all of them or `limit` drawn at random."""
    table = read_split(paths.RESIZED, split).drop_duplicates("study_id").sort_values("study_id")
    if 0 < limit < len(table):
        order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed))[:limit]
        table = table.iloc[order.sort().values.numpy()]
    return table[["subject_id", "study_id", "dicom_id", "path"]].reset_index(drop=True)


def main():
    params = load_params()
    p, rule, sampling = params["sample_reports"], params["train_ldm"], params["sample"]
    if p["seeds_per_prompt"] < 1:
        raise ValueError(f"sample_reports.seeds_per_prompt must be at least 1, got {p['seeds_per_prompt']}")
    reports = pd.read_csv(paths.REPORTS).set_index("study_id")
    generator = torch.Generator().manual_seed(p["seed"])
    jobs = []
    for purpose, split, limit, copies in (
        ("test", "test", p["test_studies"], 1),
        ("train", "train", p["train_studies"], p["seeds_per_prompt"]),
    ):
        for row in studies(split, limit, p["seed"]).itertuples(index=False):
            sentences = treat_deid_markers(
                json.loads(reports.sentences[row.study_id]), rule["deid_markers"], rule["deid_word"]
            )
            for _ in range(copies):
                jobs.append(
                    {
                        "purpose": purpose,
                        "subject_id": row.subject_id,
                        "study_id": row.study_id,
                        "source_dicom_id": row.dicom_id,
                        "source_path": row.path,
                        "prompt": report_prompt(sentences, p["prompt"], rule["max_sentences"], 0.0, generator),
                    }
                )
    for job, seed in zip(jobs, image_seeds(p["seed"], len(jobs))):
        job["seed"] = seed
        job["file"] = f"{job['purpose']}_s{job['study_id']}_seed{job['seed']}.png"
    models = load_models(paths.MODELS, sampling["precision"])
    batch = sampling["batch_size"]
    with atomic_dir(OUT) as tmp:
        for start in progress(range(0, len(jobs), batch), desc="report samples"):
            chunk = jobs[start : start + batch]
            images = generate_images(
                models,
                [j["prompt"] for j in chunk],
                [j["seed"] for j in chunk],
                sampling["sampler"],
                sampling["steps"],
                sampling["guidance_scale"],
                batch,
            )
            for job, image in zip(chunk, images):
                save_png(image, tmp / job["file"])
        manifest = pd.DataFrame(jobs).assign(
            guidance=sampling["guidance_scale"], sampler=sampling["sampler"], steps=sampling["steps"]
        )
        write_csv(tmp / "manifest.csv", manifest)
    counts = manifest.purpose.value_counts().to_dict()
    write_json(
        paths.metrics("sample_reports"),
        {
            "prompt": p["prompt"],
            "images": counts,
            "text_truncation": {
                purpose: models.encoder.truncation(list(manifest.prompt[manifest.purpose == purpose]))
                for purpose in counts
            },
        },
    )
    print(
        f"{len(jobs)} report-conditioned images: {counts.get('test', 0)} test studies, "
        f"{counts.get('train', 0)} from training reports; {int((manifest.prompt == '').sum())} with the null prompt"
    )


if __name__ == "__main__":
    run(main)
