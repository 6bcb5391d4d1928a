"""The app's refusals: one line each, in the reply's `detail`. Used by the server and every router."""

from __future__ import annotations

from fastapi import HTTPException


def one_line_error(status: int, message: str) -> HTTPException:
    return HTTPException(status, message.splitlines()[0] if message else "error")
