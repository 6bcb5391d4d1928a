"""The web app: Generate and Edit pages on the pipeline's models, and the reader study's pages.
create_app builds it; python -m cxrldm.app serves it (uvicorn)."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from cxrldm.app import answers, edit, errors, generate, reader, study
from cxrldm.app.errors import one_line_error
from cxrldm.app.jobs import Jobs, public
from cxrldm.app.profile import load_profile

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 20_000_000  # a request body, and so a film upload, of at most 20 MB
MAX_PIXELS = 36_000_000  # a film of at most 36 megapixels (MIMIC's are 5 to 9), checked before decoding
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BodyLimit:
    """Refuses request bodies over `limit` bytes before they are read (413), and POSTs without a length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            message, status = None, 200
            if length is None or not length.isdigit():
                message, status = "a request body needs a Content-Length", 411
            elif int(length) > self.limit:
                message, status = f"request of {int(length):,} bytes, over the upload limit of {self.limit:,}", 413
            if message:
                await JSONResponse({"detail": message}, status)(scope, receive, send)
                return
            received = 0

            async def counted():
                nonlocal received
                event = await receive()
                received += len(event.get("body", b""))
                if received > self.limit:  # a body longer than its Content-Length said
                    raise RuntimeError("request body over the limit")
                return event

            return await self.app(scope, counted, send)
        return await self.app(scope, receive, send)


def create_app(
    models_dir: str | Path = "models",
    study_dir: str | Path | None = "reader_study",
    database: str | None = None,
    work_dir: str | Path | None = None,
    study_only: bool = False,
    device: str = "auto",
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    threads: int | None = None,
) -> FastAPI:
    """The app; `threads`: torch's for every job (default: the CPUs idle when a job starts, cxrldm.app.cpus)."""
    app = FastAPI(title="cxr-ldm", docs_url=None, redoc_url=None, openapi_url=None)

    errors.install(app)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_middleware(BodyLimit, limit=max_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    drawn = study_dir is not None and (Path(study_dir) / study.STUDY_JSON).is_file()
    if drawn:
        definition = study.load(study_dir)
        engine = answers.connect(study.database_url(study_dir, database))
        app.state.engine = engine
        app.include_router(reader.router(definition, Path(study_dir), engine, STATIC))
    else:

        @app.get("/study/{rest:path}")
        def no_study(rest: str):
            raise one_line_error(404, "no reader study is served here: draw one (python -m cxrldm.app.study draw)")

    def page(name: str):
        return FileResponse(STATIC / name, media_type="text/html")

    if study_only:
        return app

    profile = load_profile(models_dir)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="cxrldm-app-"))
    jobs = Jobs(models_dir, work, device, threads=threads)
    app.state.jobs = jobs
    app.include_router(generate.router(jobs, str(models_dir), profile.generate))
    app.include_router(edit.router(jobs, str(models_dir), max_bytes, max_pixels, profile.edit))

    app.get("/")(lambda: page("index.html"))
    app.get("/generate")(lambda: page("generate.html"))
    app.get("/edit")(lambda: page("edit.html"))

    def job_of(job_id: str) -> dict:
        job = jobs.get(job_id)
        if job is None:
            raise one_line_error(404, "unknown job")
        return job

    @app.get("/api/status")
    def status():
        return {
            "models": jobs.loading,
            "models_dir": str(models_dir),
            "profile": profile.public(),
            "threads": threads or f"the idle CPUs when a job starts, at most {jobs.limit}",
        }

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str):
        return public(job_of(job_id))

    def done_files(job_id: str) -> tuple[Path, list[str]]:
        job = job_of(job_id)
        if job["state"] != "done":
            raise one_line_error(409, f"the job is {job['state']}")
        return job["folder"], job["result"]["files"]

    @app.get("/api/jobs/{job_id}/files/{name}")
    def job_file(job_id: str, name: str):
        folder, files = done_files(job_id)
        if name not in files:  # only the job's own files, by name: no paths
            raise one_line_error(404, "unknown file")
        return FileResponse(folder / name, filename=name if not name.endswith(".png") else None)

    @app.get("/api/jobs/{job_id}/download.zip")
    def job_zip(job_id: str):
        folder, files = done_files(job_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in files:
                archive.write(folder / name, f"cxrldm_{job_id[:8]}/{name}")
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="cxrldm_{job_id[:8]}.zip"'},
        )

    return app
