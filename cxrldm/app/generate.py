"""The Generate page's API: report text in, images out, through the command line's own code path
(cxrldm.sampling.runs.generate_run), with the command that reproduces them."""

from __future__ import annotations

import math
import shlex

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cxrldm.app.errors import one_line_error
from cxrldm.sampling import SAMPLERS
from cxrldm.sampling.runs import generate_run
from cxrldm.sampling.schedulers import check_steps, make_scheduler


class Settings(BaseModel):
    prompt: str = Field(min_length=1, max_length=4000)
    n: int = Field(4, ge=1, le=16)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    guidance: float | None = Field(None, ge=0, le=50)  # None: the models' profile's (cxrldm.app.profile)
    steps: int | None = Field(None, ge=1, le=1000)
    sampler: str | None = None


def command(settings: Settings, models_dir: str) -> str:
    """The command line that writes the same images (seedN.png) and manifest rows."""
    return (
        f"python -m cxrldm.cli.generate --prompt {shlex.quote(settings.prompt)} --n {settings.n} "
        f"--seed {settings.seed} --guidance {settings.guidance} --steps {settings.steps} "
        f"--sampler {settings.sampler} --models {shlex.quote(models_dir)} --out my_samples"
    )


def router(jobs, models_arg: str, defaults: dict) -> APIRouter:
    """The API; `defaults`: guidance, steps and sampler for the settings a request leaves out."""
    api = APIRouter()

    @api.post("/api/generate")
    def start(settings: Settings):
        settings = settings.model_copy(update={k: v for k, v in defaults.items() if getattr(settings, k) is None})
        if settings.sampler not in SAMPLERS:
            raise one_line_error(422, f"sampler must be one of {', '.join(SAMPLERS)}")
        prompts = [settings.prompt] * settings.n
        seeds = [settings.seed + k for k in range(settings.n)]

        def total(models):
            scheduler = make_scheduler(settings.sampler, **models.schedule)
            check_steps(scheduler, settings.steps)
            scheduler.set_timesteps(settings.steps)
            return math.ceil(settings.n / 16) * len(scheduler.timesteps)  # generate_images' batches of 16

        def work(models, folder):
            rows = generate_run(
                models, jobs.models_dir, folder, prompts, seeds, settings.guidance, settings.steps, settings.sampler
            )
            line = command(settings, models_arg)
            (folder / "command.sh").write_text(line + "\n")
            return {
                "images": [{"file": r["file"], "seed": r["seed"]} for r in rows],
                "command": line,
                "files": [r["file"] for r in rows] + ["manifest.csv", "command.sh"],
            }

        return jobs.submit("generate", total, work, settings.model_dump())

    return api
