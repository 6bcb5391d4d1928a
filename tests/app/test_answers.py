"""The reader-study answer endpoint accepts only what the reader page's form can send (static/reader.js):
a film of the reader's, real or synthetic, an integer confidence 1 to 5 and the study's findings or null.
Anything else (true or "3" for the confidence, unknown fields, findings that are not a list of the study's
names) is a 422 with one line naming the field, and stores nothing. A hand-written study served with
--study-only, so no pipeline is needed."""

import json

import pytest
from helpers import Server, http, state

from cxrldm.app import answers
from cxrldm.app.study import STUDY_JSON, database_url

FILMS = ["0123456789abcdef", "fedcba9876543210"]
TOKEN = "a-reader-token-of-thirty-two-chars"


@pytest.fixture(scope="module")
def study_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("answers")
    study = {
        "id": "5ca1ab1e5ca1ab1e",
        "created": "2026-12-05T10:00:00.000Z",
        "model_size": 64,
        "display_size": 512,
        "findings": ["Cardiomegaly", "Pleural Effusion"],
        "films": [
            {"id": FILMS[0], "truth": "real", "source": "a.png", "study_id": 1, "findings_truth": []},
            {"id": FILMS[1], "truth": "synthetic", "source": "b.png", "study_id": 2, "findings_truth": []},
        ],
        "readers": [{"label": "reader1", "token": TOKEN, "order": FILMS}],
    }
    (folder / "study").mkdir()
    (folder / "study" / STUDY_JSON).write_text(json.dumps(study))
    server = Server("--study-only", "--study", folder / "study", log=folder / "server.log").start()
    yield server, folder / "study", study
    server.stop()


def stored(study_dir, study) -> list[dict]:
    engine = answers.connect(database_url(study_dir))
    rows = answers.rows(engine, study["id"])
    engine.dispose()
    return rows


GOOD = {"film": FILMS[0], "answer": "real", "confidence": 3, "findings": None}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"confidence": True}, "confidence: Input should be a valid integer"),
        ({"confidence": False}, "confidence: Input should be a valid integer"),
        ({"confidence": "3"}, "confidence: Input should be a valid integer"),
        ({"confidence": 3.0}, "confidence: Input should be a valid integer"),
        ({"confidence": 6}, "confidence must be 1 to 5"),
        ({"confidence": 0}, "confidence must be 1 to 5"),
        ({"confidence": None}, "confidence: Input should be a valid integer"),
        ({"answer": True}, "answer: Input should be a valid string"),
        ({"answer": "Real"}, "answer must be real or synthetic"),
        ({"film": 1}, "film: Input should be a valid string"),
        ({"findings": "Cardiomegaly"}, "findings"),
        ({"findings": [True]}, "findings"),
        ({"findings": ["Fracture"]}, "unknown findings: Fracture"),
        ({"findings": ["Cardiomegaly", "Cardiomegaly"]}, "findings: a finding given twice"),
        ({"reader": "reader2"}, "reader: Extra inputs are not permitted"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_an_answer_the_form_cannot_send_is_refused_naming_the_field_and_stores_nothing(study_server, change, words):
    server, study_dir, study = study_server
    before = stored(study_dir, study)
    status, _, reply = http("POST", f"{server.url}/study/{TOKEN}/answer", json_body={**GOOD, **change})
    assert status == 422, (status, reply[:300])
    message = json.loads(reply)["detail"]
    assert isinstance(message, str) and "\n" not in message and words in message, message
    assert stored(study_dir, study) == before


def test_a_missing_field_is_refused_naming_it(study_server):
    server, _, _ = study_server
    for field in ("film", "answer", "confidence"):
        body = {k: v for k, v in GOOD.items() if k != field}
        status, _, reply = http("POST", f"{server.url}/study/{TOKEN}/answer", json_body=body)
        assert status == 422 and json.loads(reply)["detail"] == f"{field}: Field required", reply


def test_what_the_form_sends_is_stored_as_sent(study_server):
    server, study_dir, study = study_server
    status, _, reply = http(
        "POST",
        f"{server.url}/study/{TOKEN}/answer",
        json_body={
            "film": FILMS[1],
            "answer": "synthetic",
            "confidence": 5,
            "findings": ["Pleural Effusion", "Cardiomegaly"],
        },
    )
    assert status == 200, reply
    status, _, reply = http("POST", f"{server.url}/study/{TOKEN}/answer", json_body={**GOOD, "confidence": 1})
    assert status == 200, reply
    rows = [
        {k: r[k] for k in ("film", "answer", "confidence", "findings_given", "findings_answered")}
        for r in stored(study_dir, study)
    ]
    assert rows[-2:] == [
        {
            "film": FILMS[1],
            "answer": "synthetic",
            "confidence": 5,
            "findings_given": 1,
            "findings_answered": "Cardiomegaly;Pleural Effusion",
        },
        {"film": FILMS[0], "answer": "real", "confidence": 1, "findings_given": 0, "findings_answered": ""},
    ]
    assert state(server.url, TOKEN)["answered"] == 2
