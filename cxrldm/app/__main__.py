"""Serve the web app: cxrldm app [--host 127.0.0.1] [--port 8000] [--models models] [--study reader_study]"""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    import uvicorn

    from cxrldm.app.server import MAX_PIXELS, MAX_UPLOAD_BYTES, create_app

    parser = argparse.ArgumentParser(
        prog="cxrldm app", description="Generate, edit and run a reader study in the browser."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--models", default="models", help="directory with the trained models")
    parser.add_argument("--study", default="reader_study", help="the reader study folder (from study draw)")
    parser.add_argument("--database", default=None, help="answers database URL (default: STUDY/answers.sqlite)")
    parser.add_argument("--study-only", action="store_true", help="serve the reader study only (no generate/edit)")
    parser.add_argument("--work", default=None, help="folder for uploads and results (default: a temporary one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-upload-bytes", type=int, default=MAX_UPLOAD_BYTES)
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch's threads for every job (default: per job, the CPUs idle when it starts, at most those this "
        "process may use: its affinity, cgroup quota and OMP_NUM_THREADS)",
    )
    args = parser.parse_args(argv)
    app = create_app(
        args.models,
        args.study,
        args.database,
        args.work,
        args.study_only,
        args.device,
        args.max_upload_bytes,
        args.max_pixels,
        args.threads,
    )
    pages = "the reader study only: /study/<token>" if args.study_only else "generate: /generate, edit: /edit"
    print(f"cxr-ldm app on http://{args.host}:{args.port}/ ({pages})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
