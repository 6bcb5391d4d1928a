"""The app's tests drive the real server: a uvicorn subprocess on a free port of 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def draw_study(project: Path, folder: Path, readers: int = 4) -> dict:
    """A study of 3 real and 3 synthetic films (all the tiny project's test films) for `readers` readers."""
    from cxrldm.app.study import draw

    return draw(project, folder, 3, 3, readers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """python -m cxrldm.app in a subprocess; `kill` sends SIGKILL (no clean shutdown), `start` again serves
    the same study and database."""

    def __init__(self, *args: str, log: Path):
        self.args, self.log, self.process = [str(a) for a in args], log, None

    def start(self) -> Server:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cxrldm.app", "--port", str(self.port), *self.args],
            cwd=ROOT,
            env=env,
            stdout=open(self.log, "a"),  # noqa: SIM115 (the server writes to it until it stops)
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/static/style.css", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start in 90 s")

    def kill(self) -> None:
        self.process.kill()  # SIGKILL
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    content_type: str | None = None,
    json_body=None,
    timeout: float = 60,
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request; HTTP errors are returned, not raised."""
    if json_body is not None:
        body, content_type = json.dumps(json_body).encode(), "application/json"
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart/form-data body: fields {name: value}, files {name: (filename, bytes)}."""
    boundary = secrets.token_hex(16)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(url: str, filename: str, data: bytes) -> tuple[int, dict]:
    body, content_type = multipart({}, {"file": (filename, data)})
    status, _, reply = http("POST", url + "/api/films", body, content_type)
    return status, json.loads(reply)


def answer(url: str, token: str, film: str, given: str = "real", confidence: int = 3, findings=None):
    status, _, reply = http(
        "POST",
        f"{url}/study/{token}/answer",
        json_body={"film": film, "answer": given, "confidence": confidence, "findings": findings},
    )
    try:
        return status, json.loads(reply)
    except ValueError:  # e.g. a 500's plain text
        return status, reply.decode(errors="replace")


def state(url: str, token: str) -> dict:
    status, _, reply = http("GET", f"{url}/study/{token}/state")
    assert status == 200, reply
    return json.loads(reply)


def wait_job(url: str, job: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while job["state"] not in ("done", "error"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = json.loads(http("GET", f"{url}/api/jobs/{job['id']}")[2])
    return job
