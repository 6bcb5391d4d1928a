"""The app's refusals: one line each, as JSON ({"detail": ...}) for the pages' requests and API clients, and
as a small HTML page for a browser that navigates to a bad address (a mistyped study link)."""

from __future__ import annotations

import html

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} - cxr-ldm</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><header><strong>cxr-ldm</strong></header>
<main><h1>{status} {reason}</h1><p class="error">{message}</p></main></body></html>
"""
REASONS = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported file",
    422: "Invalid request",
}


def one_line_error(status: int, message: str) -> HTTPException:
    return HTTPException(status, message.splitlines()[0] if message else "error")


def wants_page(request: Request) -> bool:
    """A browser's navigation (its Accept names text/html); fetch() and API clients send */* or JSON."""
    return "text/html" in request.headers.get("accept", "")


def refusal(request: Request, status: int, message: str, headers: dict | None = None):
    if wants_page(request):
        page = PAGE.format(status=status, reason=REASONS.get(status, "Error"), message=html.escape(message))
        return HTMLResponse(page, status, headers=headers)
    return JSONResponse({"detail": message}, status, headers=headers)


def install(app: FastAPI) -> None:
    """Every refusal as one line: HTTPExceptions (ours and the router's 404 / 405) and invalid requests."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return refusal(request, error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return refusal(request, 422, f"{where}: {first.get('msg', 'invalid')}")
