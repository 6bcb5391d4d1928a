"""Drawing a reader study and exporting its answers; blinding: a film's file says nothing of its class."""

import csv
import io
import json
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import http
from PIL import Image

from cxrldm.app import answers
from cxrldm.app.study import (
    CSV_COLUMNS,
    DISPLAY_SIZE,
    FINDINGS,
    STUDY_JSON,
    StudyError,
    database_url,
    draw,
    export,
    main,
)
from cxrldm.data.datasets import load_square


def chunks(data: bytes) -> list[str]:
    """The PNG's chunk types in file order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    names, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        names.append(data[at + 4 : at + 8].decode("latin-1"))
        at += 12 + length
    return names


def features(data: bytes) -> list[float]:
    """What a file tells without looking at its pixels: byte size, dimensions, its chunk list."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        info = len(image.info)
    return [len(data), width, height, zlib.crc32("".join(chunks(data)).encode()), info]


def nearest_centroid_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-centroid classifier on standardised features (ties: class 0)."""
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
    right = 0
    for i in range(len(x)):
        rest = np.arange(len(x)) != i
        distances = [np.linalg.norm(x[i] - x[rest & (y == k)].mean(0)) for k in (0, 1)]
        right += int(distances[1] < distances[0]) == y[i]
    return right / len(x)


def assert_blind(files: dict[str, bytes], truth: dict[str, str]):
    ids = sorted(files)
    x = np.array([features(files[i]) for i in ids], dtype=float)
    y = np.array([truth[i] == "synthetic" for i in ids], dtype=int)
    assert nearest_centroid_accuracy(x, y) <= 0.6, "size, dimensions or chunks tell the classes apart"
    assert len({tuple(chunks(files[i])) for i in ids}) == 1, "the films' PNG chunk lists differ"
    assert set(chunks(files[ids[0]])) == {"IHDR", "IDAT", "IEND"}, "a film carries a metadata chunk"
    assert len({len(files[i]) for i in ids}) == 1, "the films' byte sizes differ"


def fake_project(root: Path, n: int = 12) -> Path:
    """A pipeline's outputs without the pipeline: real films of various sizes, smooth and bright; synthetic ones
    48 px, noisy and dark; so any leak of content into the file's size would show."""
    rng = np.random.default_rng(0)
    (root / "data" / "demo").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"data": {"root": "data/demo", "labels": "labels.csv"}}))
    labels, images, samples = [], [], []
    for k in range(n):
        study = 50000000 + k
        positive = {f: float(k % 2 == j % 2) for j, f in enumerate(FINDINGS)}
        labels.append({"subject_id": k, "study_id": study, **positive})
        width, height = int(rng.integers(80, 130)), int(rng.integers(90, 150))
        ramp = np.linspace(60, 220, width)[None, :].repeat(height, 0)
        path = Path("files") / f"real{k}.png"
        (root / "data" / "resized" / "files").mkdir(parents=True, exist_ok=True)
        Image.fromarray(ramp.astype(np.uint8)).save(root / "data" / "resized" / path)
        images.append({"dicom_id": f"d{k}", "subject_id": k, "study_id": study, "split": "test", "path": str(path)})
        (root / "data" / "report_samples").mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 90, (48, 48), dtype=np.uint8)
        Image.fromarray(noise).save(root / "data" / "report_samples" / f"s{k}.png")
        samples.append({"purpose": "test", "study_id": study, "file": f"s{k}.png"})
    import pandas as pd

    pd.DataFrame(labels).to_csv(root / "data" / "demo" / "labels.csv", index=False)
    pd.DataFrame(images).to_csv(root / "data" / "resized" / "images.csv", index=False)
    pd.DataFrame(samples).to_csv(root / "data" / "report_samples" / "manifest.csv", index=False)
    return root


def test_films_of_either_class_are_the_same_kind_of_file(tmp_path):
    study = draw(fake_project(tmp_path / "project"), tmp_path / "study", 12, 12, 2)
    files = {f["id"]: (tmp_path / "study" / "films" / f"{f['id']}.png").read_bytes() for f in study["films"]}
    truth = {f["id"]: f["truth"] for f in study["films"]}
    assert_blind(files, truth)
    for data in files.values():
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (DISPLAY_SIZE, DISPLAY_SIZE) and image.mode == "L" and not image.info
    ids = [f["id"] for f in study["films"]]
    assert ids == sorted(ids)  # listed (and written) in the order of random ids, not of class
    assert [f["truth"] for f in study["films"]] != ["real"] * 12 + ["synthetic"] * 12
    orders = [r["order"] for r in study["readers"]]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(ids)


def test_every_film_goes_through_the_models_training_transform_then_one_upscale(tmp_path):
    project = fake_project(tmp_path / "project", 3)
    study = draw(project, tmp_path / "study", 3, 3, 1)
    assert study["model_size"] == 48
    for film in study["films"]:
        expected = Image.fromarray(load_square(project / film["source"], 48)).resize(
            (DISPLAY_SIZE,) * 2, Image.Resampling.BICUBIC
        )
        with Image.open(tmp_path / "study" / "films" / f"{film['id']}.png") as shown:
            assert np.array_equal(np.asarray(shown), np.asarray(expected))


def test_a_drawn_study_is_never_overwritten_and_bad_counts_are_one_line(tmp_path, capsys):
    project = fake_project(tmp_path / "project", 3)
    draw(project, tmp_path / "study", 1, 1, 1)
    before = (tmp_path / "study" / STUDY_JSON).read_bytes()
    with pytest.raises(StudyError, match="never overwritten"):
        draw(project, tmp_path / "study", 1, 1, 1)
    assert (tmp_path / "study" / STUDY_JSON).read_bytes() == before
    with pytest.raises(SystemExit, match="asked for 5 real test films, the pipeline has 3"):
        main(
            [
                "draw",
                "--project",
                str(project),
                "--study",
                str(tmp_path / "other"),
                "--real",
                "5",
                "--synthetic",
                "1",
                "--readers",
                "1",
            ]
        )
    main(
        [
            "draw",
            "--project",
            str(project),
            "--study",
            str(tmp_path / "third"),
            "--real",
            "1",
            "--synthetic",
            "1",
            "--readers",
            "2",
        ]
    )
    links = [line for line in capsys.readouterr().out.splitlines() if "/study/" in line]
    tokens = [r["token"] for r in json.loads((tmp_path / "third" / STUDY_JSON).read_text())["readers"]]
    assert len(links) == 2 and all(t in "".join(links) and len(t) >= 32 for t in tokens)


def test_export_writes_every_answer_in_order_with_the_key(tmp_path):
    project = fake_project(tmp_path / "project", 4)
    study = draw(project, tmp_path / "study", 2, 2, 2)
    engine = answers.connect(database_url(tmp_path / "study"))
    films = {f["id"]: f for f in study["films"]}
    first, second = study["readers"][0]["order"][:2]
    given = [
        ("reader1", first, "real", 4, 1, "Edema;Cardiomegaly"),
        ("reader2", first, "synthetic", 2, 0, ""),
        ("reader1", first, "synthetic", 5, 0, ""),
        ("reader1", second, "real", 1, 1, ""),
    ]
    for reader, film, value, confidence, findings_given, ticked in given:
        answers.add(
            engine,
            {
                "study": study["id"],
                "reader": reader,
                "film": film,
                "answer": value,
                "confidence": confidence,
                "findings_given": findings_given,
                "findings_answered": ticked,
                "answered_at": "2026-01-01T00:00:00.000Z",
            },
        )
    out = tmp_path / "answers.csv"
    assert export(tmp_path / "study", out) == 4
    text = out.read_text(encoding="utf-8")
    assert (
        text.splitlines()[0]
        == ",".join(CSV_COLUMNS)
        == ("reader,film,truth,answer,confidence,findings_given,findings_answered,findings_truth,answered_at")
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [
        (r["reader"], r["film"], r["answer"], int(r["confidence"]), int(r["findings_given"]), r["findings_answered"])
        for r in rows
    ] == [g[:6] for g in given]
    assert all(r["truth"] == films[r["film"]]["truth"] for r in rows)
    assert rows[0]["findings_truth"] == ";".join(films[first]["findings_truth"]) != ""
    assert all(r["reader"] in ("reader1", "reader2") for r in rows)


@pytest.mark.pipeline
def test_the_served_films_cannot_be_told_apart_by_size_headers_or_metadata(served):
    server, study, _ = served
    token = study["readers"][2]["token"]
    files, headers = {}, {}
    for film in study["films"]:
        status, header, data = http("GET", f"{server.url}/study/{token}/film/{film['id']}.png")
        assert status == 200
        files[film["id"]] = data
        headers[film["id"]] = {k.lower(): v for k, v in header.items() if k.lower() != "date"}
    assert_blind(files, {f["id"]: f["truth"] for f in study["films"]})
    assert len({json.dumps(h, sort_keys=True) for h in headers.values()}) == 1
    assert not {"last-modified", "etag"} & set(next(iter(headers.values())))
    page = http("GET", f"{server.url}/study/{token}/state")[2].decode()
    assert not {"truth", "synthetic", "report_samples", "resized", "source"} & set(page.replace('"', " ").split())


@pytest.mark.pipeline
def test_a_study_from_the_pipeline_has_its_films_findings(served, tiny_project):
    _, study, _ = served
    import pandas as pd

    labels = pd.read_csv(tiny_project / "data" / "demo" / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    for film in study["films"]:
        assert film["findings_truth"] == [f for f in FINDINGS if labels.loc[film["study_id"], f] == 1]
        assert film["source"].startswith("data/resized/" if film["truth"] == "real" else "data/report_samples/test_")
    assert any(film["findings_truth"] for film in study["films"])
    assert datetime.fromisoformat(study["created"].replace("Z", "+00:00")).tzinfo is not None
