"""The data stages at MIMIC-CXR scale: a metadata / split / checksum / reports set the size of MIMIC-CXR-JPG
2.0.0 (377,110 images, 96,161 PA, 227,835 studies), PA images on disk only for a subset. Times and peak
memory of filter_pa and extract_reports (each in a fresh process), resize throughput on full-size JPEGs
with every core and its projection to 96,161 images, the disk the resized images and latents take, and
the memory of scale_factor's latent storage for 96,161 images (a stand-in encoder: storage, not the AE)
against collecting the latents in memory.

    python benchmarks/mimic_scale.py [--images 64] [--workdir /tmp/mimic_scale]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cxrldm.data import layout, tables
from cxrldm.data.reports import parse_report, read_reports
from cxrldm.data.resize import resize_all
from cxrldm.demo import phantoms
from cxrldm.demo.dataset import dicom_id, sample_findings
from cxrldm.demo.findings import Findings
from cxrldm.demo.reports import write_report

N_IMAGES, N_PA, N_STUDIES, N_SUBJECTS = 377_110, 96_161, 227_835, 65_379


def make_dataset(root: Path, with_images: int) -> None:
    rng = np.random.default_rng(0)
    subjects = rng.choice(np.arange(10_000_000, 20_000_000), N_SUBJECTS, replace=False)
    study_subject = np.sort(rng.choice(subjects, N_STUDIES))
    studies = rng.choice(np.arange(50_000_000, 60_000_000), N_STUDIES, replace=False)
    image_study = np.concatenate([np.arange(N_STUDIES), rng.integers(0, N_STUDIES, N_IMAGES - N_STUDIES)])
    views = np.array(
        ["PA"] * N_PA
        + ["AP"] * 147_173
        + ["LATERAL"] * 82_852
        + ["LL"] * 35_133
        + [""] * (N_IMAGES - N_PA - 147_173 - 82_852 - 35_133)
    )
    rng.shuffle(views)
    metadata = pd.DataFrame(
        {
            "dicom_id": [dicom_id(rng) for _ in range(N_IMAGES)],
            "subject_id": study_subject[image_study],
            "study_id": studies[image_study],
            "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
            "ViewPosition": views,
            "Rows": 3056,
            "Columns": 2544,
            "StudyDate": 21500101,
            "StudyTime": 80000.0,
            "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
            "ViewCodeSequence_CodeMeaning": "",
            "PatientOrientationCodeSequence_CodeMeaning": "Erect",
        }
    )
    metadata.loc[metadata.ViewPosition == "", "ViewPosition"] = None
    metadata.to_csv(root / layout.METADATA_CSV, index=False)
    split = tables.patient_split(metadata.subject_id, (0.98, 0.01, 0.01), 0)
    metadata[["dicom_id", "study_id", "subject_id"]].assign(split=metadata.subject_id.map(split)).to_csv(
        root / layout.SPLIT_CSV, index=False
    )
    paths = [
        layout.image_path(*row) for row in metadata[["subject_id", "study_id", "dicom_id"]].itertuples(index=False)
    ]
    (root / layout.CHECKSUMS).write_text("".join(f"{'0' * 64} {p}\n" for p in paths))
    pa_paths = [p for p, v in zip(paths, views) if v == "PA"]
    for p in pa_paths[:with_images]:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"")
    with zipfile.ZipFile(root / layout.REPORTS_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        for subject, study in zip(study_subject, studies):
            archive.writestr(layout.report_path(subject, study), write_report(sample_findings(rng, "PA"), "PA", rng))


def run_filter_pa(root: Path) -> str:
    metadata = tables.read_table(root / layout.METADATA_CSV, layout.METADATA_COLUMNS, "metadata")
    split = tables.read_table(root / layout.SPLIT_CSV, layout.SPLIT_COLUMNS, "split")
    table, counts = tables.select_pa(metadata, split, root, tables.read_checksums(root / layout.CHECKSUMS))
    return f"{counts['view_images']} PA rows, {counts['missing_on_disk']} missing on disk, {len(table)} kept"


def run_extract_reports(root: Path) -> str:
    metadata = pd.read_csv(root / layout.METADATA_CSV, usecols=["subject_id", "study_id", "ViewPosition"])
    studies = metadata[metadata.ViewPosition == "PA"].drop_duplicates("study_id")
    paths = [layout.report_path(s, t) for s, t in studies[["subject_id", "study_id"]].itertuples(index=False)]
    sentences = sum(len(parse_report(text)["sentences"]) for _, text in read_reports(root / layout.REPORTS_ZIP, paths))
    return f"{len(paths)} studies, {sentences} sentences"


def stand_in_encoder():
    """Returns 3x64x64 latents at once: the storage and statistics of scale_factor, not the autoencoder."""
    import torch

    class StandInEncoder(torch.nn.Module):
        def encode(self, images):
            n = len(images)
            return torch.full((n, 3, 64, 64), 0.5) + images[:, :1, :1, :1], torch.full((n, 3, 64, 64), 0.1)

    return StandInEncoder()


def placeholders(n: int):
    import torch

    return torch.arange(n, dtype=torch.float32).remainder(7).view(n, 1, 1, 1)


def run_latent_store(workdir: Path) -> str:
    """scale_factor's way: batches written into float16 memory maps, float64 running moments."""
    import torch

    from cxrldm.models import latents
    from cxrldm.models.training import Runtime

    std = latents.encode_to_files(
        stand_in_encoder(), placeholders(N_PA), Runtime(torch.device("cpu"), "fp32"), 256, workdir, "train"
    )
    size = sum(f.stat().st_size for f in workdir.glob("train.*.npy")) / 1e9
    return f"{N_PA} latents streamed to {size:.1f} GB of memory maps, std {std:.4f}"


def run_latent_concat(workdir: Path) -> str:
    """The simple way, at 1/8 of the images: collect every batch, concatenate, then the std in float64."""
    import torch

    n, encoder, images, mus, sigmas = N_PA // 8, stand_in_encoder(), placeholders(N_PA // 8), [], []
    for batch in images.split(256):
        mu, sigma = encoder.encode(batch)
        mus.append(mu.half())
        sigmas.append(sigma.half())
    mu, sigma = torch.cat(mus).double(), torch.cat(sigmas).double()
    std = float(torch.sqrt(mu.var(unbiased=False) + sigma.pow(2).mean()))
    return f"{n} latents concatenated in memory, std {std:.4f}"


def anonymous_kib() -> int:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


def with_peak_memory(function, root: Path) -> tuple[str, float]:
    """(summary, peak MiB) of function(root). On Linux the peak is of anonymous memory (RssAnon, polled):
    pages of memory-mapped files count as resident while written but are page cache, not a demand on RAM;
    ru_maxrss would also count what the parent held when it started this process."""
    if not Path("/proc/self/status").exists():
        summary = function(root)
        return summary, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak, done = [anonymous_kib()], threading.Event()

    def poll():
        while not done.wait(0.02):
            peak[0] = max(peak[0], anonymous_kib())

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        summary = function(root)
    finally:
        done.set()
        watcher.join()
    return summary, max(peak[0], anonymous_kib()) / 1024


def measured(function, root: Path) -> tuple[float, float, str]:
    """(seconds, peak resident memory in MiB, summary) of function(root) in a fresh process of its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        start = time.perf_counter()
        summary, peak_mib = pool.apply(with_peak_memory, (function, root))
        seconds = time.perf_counter() - start
    return seconds, peak_mib, summary


def resize_rate(folder: Path, n: int) -> tuple[float, float]:
    """(images/s on every core for ~2500x3000 JPEGs -> 512, mean PNG size in KB)."""
    rng = np.random.default_rng(1)
    (folder / "src").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = phantoms.render(Findings(cardiomegaly=i % 4), "PA", rng, 3056, 2544)
        Image.fromarray(pixels).save(folder / "src" / f"{i}.jpg", quality=95)
        paths.append(f"{i}.jpg")
    start = time.perf_counter()
    results = list(resize_all(paths, folder / "src", folder / "dst", 512))
    seconds = time.perf_counter() - start
    return n / seconds, np.mean([(folder / "dst" / r[0]).stat().st_size for r in results]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="full-size JPEGs for the resize rate")
    parser.add_argument("--workdir", default="/tmp/mimic_scale")
    args = parser.parse_args()
    root = Path(args.workdir) / "mimic-cxr-jpg"
    root.mkdir(parents=True, exist_ok=True)
    if not (root / layout.REPORTS_ZIP).exists():
        start = time.perf_counter()
        make_dataset(root, with_images=2_000)
        print(f"generated the MIMIC-sized set in {time.perf_counter() - start:.0f} s")
    print(f"{os.cpu_count()} CPU cores\n")
    print("| stage | seconds | peak anonymous memory MiB | what |")
    print("|---|---:|---:|---|")
    for name, function in (("filter_pa", run_filter_pa), ("extract_reports", run_extract_reports)):
        seconds, memory, summary = measured(function, root)
        print(f"| {name} | {seconds:.1f} | {memory:.0f} | {summary} |", flush=True)
    latent_dir = Path(args.workdir) / "latents"
    latent_dir.mkdir(exist_ok=True)
    for name, function in (
        ("scale_factor storage, ours", run_latent_store),
        ("scale_factor storage, in memory (1/8 of the images)", run_latent_concat),
    ):
        seconds, memory, summary = measured(function, latent_dir)
        print(f"| {name} | {seconds:.1f} | {memory:.0f} | {summary} |", flush=True)
    rate, png_kb = resize_rate(Path(args.workdir) / "resize", args.images)
    print(
        f"| resize ({args.images} JPEGs of 2544x3056) | {args.images / rate:.1f} | - | {rate:.1f} images/s on "
        f"{os.cpu_count()} cores: 96,161 PA images in {N_PA / rate / 3600:.1f} h |"
    )
    latents_gb = N_PA * 2 * 3 * 64 * 64 * 2 / 1e9
    print(f"\nresized PNGs at 512: {png_kb:.0f} KB each -> {N_PA * png_kb / 1024**2:.1f} GB for 96,161 images")
    print(
        f"latent cache (mu and sigma, float16, 3x64x64): {latents_gb:.1f} GB for 96,161 images "
        "(the LDM stage memory-maps it)"
    )


if __name__ == "__main__":
    main()
