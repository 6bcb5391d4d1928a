"""A blinded reader study: draw it from the pipeline's outputs, export its answers.

    python -m cxrldm.app.study draw --real 20 --synthetic 20 --readers 4 [--project .] [--study reader_study]
    python -m cxrldm.app.study export [--study reader_study] [--out reader_study/answers.csv]

`draw` takes real test films (data/resized/images.csv, split == test) and report-conditioned samples
(data/report_samples/manifest.csv, purpose == test) and brings every one of them through the same steps:
the model's training transform (shortest side to the model's image size, Lanczos, centre square crop:
cxrldm.data.datasets.load_square), then one upscale to DISPLAY_SIZE (bicubic), then one PNG encoder
setting (no compression, so every file has the same byte size; no metadata). Films get random ids; the
answer key (study.json) stays in the study folder, which the server never serves. Each reader gets an
unguessable token and an own shuffled order of all films.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml
from PIL import Image

from cxrldm.data.datasets import load_square, read_images
from cxrldm.data.labels import read_labels
from cxrldm.evaluation.reader_study import COLUMNS as CSV_COLUMNS  # the reader_study stage's input
from cxrldm.io import atomic_path, write_json

# The CheXpert findings the pipeline evaluates (params: faithfulness.findings); a reader may tick them.
FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Edema", "Lung Opacity", "Support Devices")
DISPLAY_SIZE = 512  # every film is shown at this size, real or synthetic
UPSCALE = Image.Resampling.BICUBIC  # the one resampler from the model's size to DISPLAY_SIZE
STUDY_JSON = "study.json"
FILMS = "films"
DATABASE = "answers.sqlite"
ANSWERS_CSV = "answers.csv"


class StudyError(ValueError):
    """A study cannot be drawn or read: the message names the file or the count."""


def film_png(path: str | Path, model_size: int) -> bytes:
    """A film as the reader sees it: the model's training transform, one upscale, one encoder setting.
    A fresh image carries no metadata; compress_level 0 (stored deflate blocks) makes the byte size a function
    of the dimensions alone, so a file's size says nothing about its content."""
    square = Image.fromarray(load_square(path, model_size)).resize((DISPLAY_SIZE, DISPLAY_SIZE), UPSCALE)
    buffer = io.BytesIO()
    square.save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def project_params(project: Path) -> dict:
    path = project / "params.yaml"
    if not path.is_file():
        raise StudyError(f"{path} not found: --project must be the pipeline's folder")
    return yaml.safe_load(path.read_text())


def positive_findings(labels: pd.DataFrame, study_id, findings) -> list[str]:
    """The study's findings labelled 1 (positive), in the list's order; none if the study has no labels."""
    if study_id not in labels.index:
        return []
    row = labels.loc[study_id]
    return [f for f in findings if f in row.index and row[f] == 1]


def sample_size(paths: list[Path]) -> int:
    """The model's image size: the size of its samples, which must all be one square size."""
    sizes = set()
    for path in paths:
        with Image.open(path) as image:
            sizes.add(image.size)
    if len(sizes) != 1 or len({*next(iter(sizes))}) != 1:
        raise StudyError(f"the samples are not all one square size: {sorted(sizes)}")
    return next(iter(sizes))[0]


def candidates(project: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real test films and test report samples, each with its study_id and file path."""
    resized, samples = project / "data" / "resized", project / "data" / "report_samples"
    for table in (resized / "images.csv", samples / "manifest.csv"):
        if not table.is_file():
            raise StudyError(f"{table} not found: run the pipeline first (dvc repro)")
    real = read_images(resized)
    real = real[real.split == "test"].assign(file=lambda t: [resized / p for p in t.path])
    synthetic = pd.read_csv(samples / "manifest.csv")
    synthetic = synthetic[synthetic.purpose == "test"].assign(file=lambda t: [samples / p for p in t.file])
    return real.reset_index(drop=True), synthetic.reset_index(drop=True)


def draw(
    project: str | Path, study_dir: str | Path, n_real: int, n_synthetic: int, n_readers: int, seed: int = 0
) -> dict:
    """Draw a study into `study_dir` (which must not hold one): the films, the answer key and the readers."""
    project, study_dir = Path(project), Path(study_dir)
    if (study_dir / STUDY_JSON).exists():
        raise StudyError(
            f"{study_dir / STUDY_JSON} exists: a drawn study is never overwritten (answers may "
            "refer to it); choose another --study folder"
        )
    if n_real < 0 or n_synthetic < 0 or n_real + n_synthetic == 0 or n_readers < 1:
        raise StudyError("need --real and --synthetic >= 0 (not both 0) and --readers >= 1")
    params = project_params(project)
    data = dict(params["data"])
    data["root"] = str(project / data["root"])
    labels = read_labels(data, list(FINDINGS))
    real, synthetic = candidates(project)
    for name, table, n in (("real test films", real, n_real), ("test report samples", synthetic, n_synthetic)):
        if n > len(table):
            raise StudyError(f"asked for {n} {name}, the pipeline has {len(table)}")
    model_size = sample_size(list(synthetic.file))
    rng = random.Random(seed)
    chosen = [("real", row) for row in real.iloc[sorted(rng.sample(range(len(real)), n_real))].itertuples()]
    chosen += [
        ("synthetic", row)
        for row in synthetic.iloc[sorted(rng.sample(range(len(synthetic)), n_synthetic))].itertuples()
    ]
    ids = set()
    while len(ids) < len(chosen):
        ids.add(secrets.token_hex(8))
    shuffler = secrets.SystemRandom()
    ids = shuffler.sample(sorted(ids), len(ids))  # random ids in random order: unrelated to the class
    films = []
    for film_id, (truth, row) in zip(ids, chosen):
        films.append(
            {
                "id": film_id,
                "truth": truth,
                "source": str(Path(row.file).relative_to(project)),
                "study_id": int(row.study_id),
                "findings_truth": positive_findings(labels, int(row.study_id), FINDINGS),
            }
        )
    films.sort(key=lambda f: f["id"])  # written in id order, never class order
    (study_dir / FILMS).mkdir(parents=True, exist_ok=True)
    for film in films:
        with atomic_path(study_dir / FILMS / f"{film['id']}.png") as tmp:
            tmp.write_bytes(film_png(project / film["source"], model_size))
    readers = [
        {
            "label": f"reader{k}",
            "token": secrets.token_urlsafe(24),
            "order": shuffler.sample([f["id"] for f in films], len(films)),
        }
        for k in range(1, n_readers + 1)
    ]
    study = {
        "id": secrets.token_hex(8),
        "created": now(),
        "model_size": model_size,
        "display_size": DISPLAY_SIZE,
        "findings": list(FINDINGS),
        "films": films,
        "readers": readers,
    }
    write_json(study_dir / STUDY_JSON, study)
    return study


def now() -> str:
    """The time in ISO 8601, UTC, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load(study_dir: str | Path) -> dict:
    path = Path(study_dir) / STUDY_JSON
    if not path.is_file():
        raise StudyError(f"{path} not found: draw a study first (python -m cxrldm.app.study draw ...)")
    return json.loads(path.read_text())


def database_url(study_dir: str | Path, url: str | None = None) -> str:
    """The answers database: a URL (a shared server, e.g. postgresql://...) or the study's SQLite file."""
    return url or f"sqlite:///{Path(study_dir).resolve() / DATABASE}"


def export(study_dir: str | Path, out: str | Path, url: str | None = None) -> int:
    """Write every answer, in the order given, as the reader_study stage reads them; returns the row count."""
    from cxrldm.app import answers

    study = load(study_dir)
    films = {f["id"]: f for f in study["films"]}
    engine = answers.connect(database_url(study_dir, url))
    rows = answers.rows(engine, study["id"])
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            film = films[row["film"]]
            writer.writerow(
                [
                    row["reader"],
                    row["film"],
                    film["truth"],
                    row["answer"],
                    row["confidence"],
                    row["findings_given"],
                    row["findings_answered"],
                    ";".join(film["findings_truth"]),
                    row["answered_at"],
                ]
            )
    engine.dispose()
    return len(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="cxrldm study", description="Draw a blinded reader study, or export its answers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    drawing = commands.add_parser("draw", help="draw films and reader links from the pipeline's outputs")
    drawing.add_argument("--real", type=int, required=True, help="real test films")
    drawing.add_argument("--synthetic", type=int, required=True, help="report-conditioned test samples")
    drawing.add_argument("--readers", type=int, required=True)
    drawing.add_argument("--seed", type=int, default=0, help="which films are drawn (ids and orders are random)")
    drawing.add_argument("--project", default=".", help="the pipeline's folder (params.yaml, data/)")
    drawing.add_argument("--study", default="reader_study", help="the study folder to create")
    drawing.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the app will be served")
    exporting = commands.add_parser("export", help="write the answers as CSV for the reader_study stage")
    exporting.add_argument("--study", default="reader_study")
    exporting.add_argument("--out", default=None, help="default: STUDY/answers.csv")
    exporting.add_argument("--database", default=None, help="database URL (default: STUDY/answers.sqlite)")
    args = parser.parse_args(argv)
    try:
        if args.command == "draw":
            study = draw(args.project, args.study, args.real, args.synthetic, args.readers, args.seed)
            print(f"drew {len(study['films'])} films into {args.study}; one link per reader (keep them private):")
            for reader in study["readers"]:
                print(f"{reader['label']}: {args.base_url.rstrip('/')}/study/{reader['token']}")
        else:
            out = args.out or str(Path(args.study) / ANSWERS_CSV)
            print(f"wrote {export(args.study, out, args.database)} answers to {out}")
    except (ValueError, FileNotFoundError) as error:  # StudyError, and read_labels' one line
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
