"""Faults and attacks against the real server: each gets a 4xx with a one-line message and changes nothing."""

import io
import json
import socket

import numpy as np
import pytest
from helpers import answer, http, multipart, state, upload
from PIL import Image

from cxrldm.app import answers
from cxrldm.app.study import database_url

pytestmark = pytest.mark.pipeline


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def snapshot(folder):
    """What a refused request must not change: the answers and the uploaded films."""
    engine = answers.connect(database_url(folder / "study"))
    rows = answers.count(engine, json.loads((folder / "study" / "study.json").read_text())["id"])
    engine.dispose()
    return rows, sorted(p.name for p in (folder / "work" / "uploads").iterdir())


def refused(status, body, code, words):
    assert status == code, (status, body[:200])
    message = json.loads(body)["detail"]
    assert isinstance(message, str) and "\n" not in message and words in message, message


def test_a_token_opens_only_its_own_readers_study(served):
    server, study, folder = served
    one, two = study["readers"][2], study["readers"][1]  # reader3 never answers in these tests
    film = two["order"][0]
    before = state(server.url, one["token"])
    assert answer(server.url, two["token"], film, "synthetic", 5, ["Edema"])[0] == 200
    seen = state(server.url, one["token"])
    assert seen == before and seen["reader"] == "reader3"
    assert (seen["answered"], seen["previous"]) == (0, None)
    own = state(server.url, two["token"])
    assert own["answered"] == 1 and own["reader"] == "reader2"
    page = http("GET", f"{server.url}/study/{one['token']}/state?index={one['order'].index(film)}")[2].decode()
    assert "Edema" not in page.split('"findings"')[0] and '"previous":null' in page  # reader2's answer stays theirs


def test_unknown_tokens_are_refused(served):
    server, study, folder = served
    before = snapshot(folder)
    film = study["films"][0]["id"]
    wrong = study["readers"][0]["token"][:-1] + ("A" if study["readers"][0]["token"][-1] != "A" else "B")
    for method, path in [
        ("GET", f"/study/{wrong}"),
        ("GET", f"/study/{wrong}/state"),
        ("GET", f"/study/{wrong}/film/{film}.png"),
        ("GET", "/study/x/state"),
    ]:
        status, _, body = http(method, server.url + path)
        refused(status, body, 404, "unknown study link")
    status, _, body = http(
        "POST", f"{server.url}/study/{wrong}/answer", json_body={"film": film, "answer": "real", "confidence": 3}
    )
    refused(status, body, 404, "unknown study link")
    assert snapshot(folder) == before


def test_bad_answers_are_refused(served):
    server, study, folder = served
    reader = study["readers"][3]
    before = snapshot(folder)
    for given, code, words in [
        ({"answer": "maybe"}, 422, "real or synthetic"),
        ({"confidence": 6}, 422, "1 to 5"),
        ({"confidence": 0}, 422, "1 to 5"),
        ({"findings": ["Fracture"]}, 422, "Fracture"),
        ({"film": "0123456789abcdef"}, 404, "unknown film"),
    ]:
        body = {"film": reader["order"][0], "answer": "real", "confidence": 3, **given}
        status, _, reply = http("POST", f"{server.url}/study/{reader['token']}/answer", json_body=body)
        refused(status, reply, code, words)
    status, _, reply = http("POST", f"{server.url}/study/{reader['token']}/answer", b"not json", "application/json")
    assert status == 422 and "\n" not in json.loads(reply)["detail"]
    assert snapshot(folder) == before


def test_paths_outside_the_served_folders_are_refused(served):
    server, study, folder = served
    token = study["readers"][0]["token"]
    for path in [
        f"/study/{token}/film/..%2Fstudy.json",
        f"/study/{token}/film/%2e%2e%2fstudy.json.png",
        f"/study/{token}/film/..%2F..%2Fstudy%2Fstudy.json.png",
        f"/study/{token}/../../study.json",
        "/static/..%2Fserver.py",
        "/static/%2e%2e/%2e%2e/app/study.py",
        "/static/../../../etc/passwd",
        "/api/films/..%2F..%2Fstudy",
        "/api/jobs/..%2Fuploads/files/..%2F..%2Fstudy.json",
        f"/study/{token}/film/{study['films'][0]['id']}.png%2F..%2F..%2Fstudy.json",
    ]:
        status, _, body = http("GET", server.url + path)
        assert 400 <= status < 500, (path, status)
        assert b"truth" not in body and b"import" not in body and b"root:" not in body, path


def test_oversize_non_image_and_colour_uploads_are_refused(served):
    server, study, folder = served
    before = snapshot(folder)
    grey = np.tile(np.arange(200, dtype=np.uint8), (200, 1))
    noise = np.random.default_rng(0).integers(0, 255, (560, 560), dtype=np.uint8)  # > 300,000 bytes as PNG
    colour = np.stack([grey, grey, 255 - grey], -1)
    cases = [
        ("big.png", png(noise), 413, "over the upload limit"),
        ("wide.png", png(np.zeros((600, 600), np.uint8)), 413, "over the limit of 250,000 pixels"),
        ("notes.png", b"this is a text file, not a film\n" * 10, 415, "not a PNG or JPEG image"),
        ("bad.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, 400, "not a readable PNG"),
        ("colour.png", png(colour), 400, "colour image"),
    ]
    for name, data, code, words in cases:
        status, reply = upload(server.url, name, data)
        refused(status, json.dumps(reply), code, words)
        assert str(folder) not in reply["detail"]
    assert snapshot(folder) == before
    status, reply = upload(server.url, "grey_rgb.png", png(np.stack([grey] * 3, -1)))  # grey RGB is a film
    assert status == 200 and (reply["width"], reply["height"]) == (200, 200)


def test_a_body_larger_than_the_limit_is_refused_before_it_is_read(served):
    server, _, folder = served
    before = snapshot(folder)
    body, content_type = multipart({}, {"file": ("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(400_000))})
    status, _, reply = http("POST", server.url + "/api/films", body, content_type)
    refused(status, reply, 413, "over the upload limit")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:  # 10 GB announced, none sent
        connection.sendall(
            f"POST /api/films HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: 10000000000\r\n\r\n".encode()
        )
        head = b""
        while b"upload limit" not in head and (chunk := connection.recv(4096)):
            head += chunk
        head = head.decode(errors="replace")
    assert head.startswith("HTTP/1.1 413") and "over the upload limit" in head, head
    status, _, reply = http("POST", server.url + "/api/films", b"", "multipart/form-data; boundary=x")
    assert status == 422 or status == 400, reply  # an empty form: no file
    assert snapshot(folder) == before
