"""Generation and editing jobs: one at a time on the loaded models, in a worker thread, with progress
counted in denoising steps (a forward hook on the UNet) so the page can show it while it works."""

from __future__ import annotations

import secrets
import shutil
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from cxrldm.app.cpus import threads_now, usable_cpus
from cxrldm.sampling.generation import load_models


class Jobs:
    def __init__(
        self,
        models_dir: str | Path,
        work_dir: str | Path,
        device: str = "auto",
        keep: int = 50,
        threads: int | None = None,
    ):
        """`threads`: torch's threads for every job; None: the CPUs idle when each job starts (threads_now),
        at most the CPUs this process may use."""
        self.models_dir, self.work_dir, self.device, self.keep = Path(models_dir), Path(work_dir), device, keep
        self.threads, self.limit = threads, usable_cpus()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxrldm-job")
        self.lock = threading.Lock()
        self.jobs: dict[str, dict] = {}
        self._models, self.loading = None, "loading"
        self.executor.submit(self._warm)  # load the models at start, not on the first click

    def _warm(self):
        try:
            self.models()
            self.loading = "ready"
        except Exception as error:  # e.g. no trained models: the jobs will say so
            self.loading = f"error: {str(error).splitlines()[0]}"

    def models(self):
        """The trained models, loaded on first use (FileNotFoundError names what is missing)."""
        with self.lock:
            if self._models is None:
                self._models = load_models(self.models_dir, device=self.device)
            return self._models

    def submit(self, kind: str, total_steps, work, settings: dict) -> dict:
        """Queue `work(models, folder)` (returns the result dict); total_steps(models) is the UNet calls
        it will make. Returns the job's public state."""
        job_id = secrets.token_hex(12)
        folder = self.work_dir / job_id
        folder.mkdir()
        job = {
            "id": job_id,
            "kind": kind,
            "state": "queued",
            "done": 0,
            "total": 0,
            "message": "",
            "settings": settings,
            "result": None,
            "threads": None,
            "folder": folder,
        }
        with self.lock:
            self.jobs[job_id] = job
            self._forget_old()
        self.executor.submit(self._run, job, total_steps, work)
        return public(job)

    def _run(self, job, total_steps, work):
        try:
            models = self.models()
            job["threads"] = self.threads or threads_now(self.limit)
            torch.set_num_threads(job["threads"])  # in the job thread: OpenMP keeps a count per thread
            job["total"], job["state"] = total_steps(models), "running"

            def count(*_):
                job["done"] = min(job["done"] + 1, job["total"])

            hook = models.unet.register_forward_hook(count)
            try:
                job["result"] = work(models, job["folder"])
            finally:
                hook.remove()
            job["done"], job["state"] = job["total"], "done"
        except Exception as error:  # the page shows the one line; the log the traceback
            traceback.print_exc()
            job["state"], job["message"] = "error", str(error).splitlines()[0] if str(error) else repr(error)

    def get(self, job_id: str) -> dict | None:
        return self.jobs.get(job_id)

    def _forget_old(self):
        finished = [j for j in self.jobs.values() if j["state"] in ("done", "error")]
        for job in finished[: max(0, len(finished) - self.keep)]:
            shutil.rmtree(job["folder"], ignore_errors=True)
            del self.jobs[job["id"]]


def public(job: dict) -> dict:
    """What the page may see of a job (not its folder on the server)."""
    keys = ("id", "kind", "state", "done", "total", "message", "settings", "result", "threads")
    return {k: job[k] for k in keys}
