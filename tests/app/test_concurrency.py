"""Four readers answering at once lose nothing; a server killed (SIGKILL) mid-study keeps every answer it
acknowledged, and reopening a link continues at the first unanswered film."""

import csv
import threading

import pytest
from helpers import Server, answer, draw_study, state

from cxrldm.app.study import export

pytestmark = pytest.mark.pipeline


@pytest.fixture
def study_server(tiny_project, tmp_path):
    study = draw_study(tiny_project, tmp_path / "study", readers=4)
    server = Server("--study-only", "--study", tmp_path / "study", log=tmp_path / "server.log")
    yield server, study, tmp_path
    server.stop()


def exported(folder):
    export(folder / "study", folder / "answers.csv")
    with open(folder / "answers.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_four_readers_answering_at_once_lose_nothing(study_server):
    server, study, folder = study_server
    server.start()
    acknowledged, errors = [], []

    def read(reader, rounds=3):
        for k in range(rounds):  # every film answered three times: changes are new rows
            for film in reader["order"]:
                status, reply = answer(server.url, reader["token"], film, ("real", "synthetic")[k % 2], k + 1)
                (acknowledged if status == 200 else errors).append((reader["label"], film, k + 1))

    threads = [threading.Thread(target=read, args=(reader,)) for reader in study["readers"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = exported(folder)
    assert len(rows) == len(acknowledged) == 4 * 3 * len(study["films"])
    assert sorted((r["reader"], r["film"], int(r["confidence"])) for r in rows) == sorted(acknowledged)
    for reader in study["readers"]:
        assert state(server.url, reader["token"])["answered"] == len(study["films"])


def test_answers_acknowledged_before_a_kill_survive_it(study_server):
    server, study, folder = study_server
    server.start()
    given = {r["label"]: [] for r in study["readers"]}
    enough = threading.Event()

    def read(reader):
        for k in range(1000):
            film = reader["order"][k % len(reader["order"])]
            try:
                status, _ = answer(server.url, reader["token"], film, "real", k % 5 + 1)
            except OSError:  # the server is gone
                return
            if status != 200:
                return
            given[reader["label"]].append((film, str(k % 5 + 1)))
            if sum(map(len, given.values())) >= 40:
                enough.set()

    threads = [threading.Thread(target=read, args=(reader,)) for reader in study["readers"]]
    for thread in threads:
        thread.start()
    assert enough.wait(60)
    server.kill()  # SIGKILL while the four are still answering
    for thread in threads:
        thread.join()
    server.start()
    rows = exported(folder)
    for reader in study["readers"]:
        kept = [(r["film"], r["confidence"]) for r in rows if r["reader"] == reader["label"]]
        acknowledged = given[reader["label"]]
        assert kept[: len(acknowledged)] == acknowledged  # every acknowledged answer, in order
        assert len(kept) <= len(acknowledged) + 1  # at most the one in flight besides
        answered = {film for film, _ in kept}
        first_open = next((i for i, f in enumerate(reader["order"]) if f not in answered), len(reader["order"]))
        assert state(server.url, reader["token"])["index"] == first_open  # the link continues there
