"""The reader study's pages: one film at a time, answered real or synthetic with a confidence and, if the
reader wants, the findings. A reader's token opens only that reader's study; the answer key (study.json)
never leaves the server; each answer is committed before the reply."""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cxrldm.app import answers
from cxrldm.app.errors import one_line_error
from cxrldm.app.study import FILMS, now


class Answer(BaseModel):
    """What the reader page's form can send (static/reader.js) and nothing else: strict types (true or "3" is
    no confidence), no other fields; the choices, the range and the findings are checked by the route."""

    model_config = ConfigDict(extra="forbid", strict=True)

    film: str = Field(max_length=32)
    answer: str
    confidence: int
    findings: list[str] | None = None  # None: the findings part was not given


def router(study: dict, study_dir: Path, engine, static: Path) -> APIRouter:
    api = APIRouter()
    films = {f["id"] for f in study["films"]}
    findings = study["findings"]  # the study's own list, as drawn

    def reader_of(token: str) -> dict:
        found = None
        for reader in study["readers"]:  # compare every token in constant time
            if hmac.compare_digest(reader["token"].encode(), token.encode()):
                found = reader
        if found is None:
            raise one_line_error(404, "unknown study link: check the address you were given")
        return found

    def state(reader: dict, index: int | None = None) -> dict:
        given = answers.answered(engine, study["id"], reader["label"])
        order = reader["order"]
        if index is None:  # resume at the first unanswered film
            index = next((i for i, f in enumerate(order) if f not in given), len(order))
        if not 0 <= index <= len(order):
            raise one_line_error(404, f"no film {index + 1}: the study has {len(order)}")
        film = order[index] if index < len(order) else None
        previous = given.get(film) if film else None
        return {
            "reader": reader["label"],
            "total": len(order),
            "answered": sum(f in given for f in order),
            "index": index,
            "film": film,
            "findings": list(findings),
            "previous": None
            if previous is None
            else {k: previous[k] for k in ("answer", "confidence", "findings_given", "findings_answered")},
        }

    @api.get("/study/{token}")
    def page(token: str):
        reader_of(token)
        return Response(
            (static / "reader.html").read_bytes(),
            media_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    @api.get("/study/{token}/state")
    def current(token: str, index: int | None = None):
        return state(reader_of(token), index)

    @api.get("/study/{token}/film/{film}.png")
    def film_png(token: str, film: str):
        reader = reader_of(token)
        if film not in films or film not in reader["order"]:
            raise one_line_error(404, "unknown film")
        # the bytes only: no Last-Modified or ETag that could order the films by when they were written
        return Response(
            (study_dir / FILMS / f"{film}.png").read_bytes(),
            media_type="image/png",
            headers={"Cache-Control": "no-store"},
        )

    @api.post("/study/{token}/answer")
    def answer(token: str, given: Answer):
        reader = reader_of(token)
        if given.film not in reader["order"]:
            raise one_line_error(404, "unknown film")
        if given.answer not in ("real", "synthetic"):
            raise one_line_error(422, "answer must be real or synthetic")
        if not 1 <= given.confidence <= 5:
            raise one_line_error(422, "confidence must be 1 to 5")
        unknown = sorted(set(given.findings or []) - set(findings))
        if unknown:
            raise one_line_error(422, f"unknown findings: {', '.join(unknown)}")
        if given.findings and len(set(given.findings)) < len(given.findings):
            raise one_line_error(422, "findings: a finding given twice")
        ticked = [f for f in findings if f in (given.findings or [])]
        answers.add(
            engine,
            {
                "study": study["id"],
                "reader": reader["label"],
                "film": given.film,
                "answer": given.answer,
                "confidence": given.confidence,
                "findings_given": int(given.findings is not None),
                "findings_answered": ";".join(ticked),
                "answered_at": now(),
            },
        )
        return state(reader)  # committed above, before this reply

    return api
