"""Click to image in the web app on a busy machine: the app's job path (cxrldm.app.jobs.Jobs, the same
generate_run the page's button starts; no HTTP) timed from submit to done, with torch's threads fixed at
the CPUs the process may use (before: the app's default until now) against the CPUs idle when the job
starts (after: the default now), with 0, 1 and 2 other processes keeping a CPU busy each.

    python benchmarks/app_threads.py [--models models] [--images 4] [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cxrldm.app.cpus import usable_cpus
from cxrldm.app.jobs import Jobs
from cxrldm.sampling.runs import generate_run

PROMPT = "There is a large right pleural effusion."


def spin() -> None:
    while True:
        pass


def click_to_image(jobs: Jobs, models_dir: str, images: int, steps: int, seed: int) -> tuple[float, int]:
    """Seconds from submitting a generate job to its end, and the threads it ran with."""

    def work(models, folder):
        seeds = list(range(seed, seed + images))
        return {"rows": generate_run(models, models_dir, folder, [PROMPT] * images, seeds, 5.0, steps, "ddim")}

    started = time.perf_counter()
    job = jobs.submit("generate", lambda models: 2 * steps * images, work, {})
    while jobs.get(job["id"])["state"] not in ("done", "error"):
        time.sleep(0.02)
    state = jobs.get(job["id"])
    if state["state"] == "error":
        raise SystemExit(f"app_threads: the job failed: {state['message']}")
    return time.perf_counter() - started, state["threads"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    limit = usable_cpus()
    modes = {f"fixed {limit} (before)": limit, "idle CPUs per job (after)": None}
    print(f"| busy processes | threads | click to image, s (median of {args.repeats}) | threads used |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for load in args.loads:
            spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(load)]
            for p in spinners:
                p.start()
            try:
                time.sleep(1.0)  # let the load show in /proc/stat
                for name, threads in modes.items():
                    jobs = Jobs(args.models, Path(work) / f"{load}-{threads}", threads=threads)
                    click_to_image(jobs, args.models, 1, 2, 0)  # models loaded and warm before timing
                    runs = [click_to_image(jobs, args.models, args.images, args.steps, k) for k in range(args.repeats)]
                    seconds = statistics.median(r[0] for r in runs)
                    used = sorted({r[1] for r in runs})
                    print(f"| {load} | {name} | {seconds:.1f} | {', '.join(map(str, used))} |", flush=True)
                    jobs.executor.shutdown(wait=True)
            finally:
                for p in spinners:
                    p.terminate()


if __name__ == "__main__":
    main()
