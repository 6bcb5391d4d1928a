"""The Edit page's API: upload a film (PNG, JPEG or DICOM), send the painted masks, edit through the command
line's own code path (cxrldm.sampling.runs.edit_film), and hand back the edited film, masks, manifest row and
command."""

from __future__ import annotations

import io
import re
import secrets
import shlex
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse
from PIL import Image

from cxrldm.app.errors import one_line_error
from cxrldm.data import dicom
from cxrldm.data.images import save_gray
from cxrldm.io import write_csv
from cxrldm.sampling.editing import EditError, start_index
from cxrldm.sampling.runs import EDIT_COLUMNS, check_inputs, edit_film

FORMATS = {b"\x89PNG\r\n\x1a\n": ("PNG", ".png"), b"\xff\xd8\xff": ("JPEG", ".jpg")}
FILM_ID = re.compile(r"[0-9a-f]{24}")
SHOWN = "shown.display.png"  # a DICOM film's display image beside it (no film is so named: safe_stem has no dot)


def image_format(data: bytes) -> tuple[str, str] | None:
    """(PIL format, suffix) by the file's magic bytes: PNG or JPEG only."""
    return next((v for magic, v in FORMATS.items() if data.startswith(magic)), None)


def check_image(data: bytes, what: str, max_pixels: int) -> tuple[str, Image.Image]:
    """A PNG/JPEG's suffix and decoded image; refuses other files, unreadable ones and ones over max_pixels
    (checked from the header, before decoding)."""
    kind = image_format(data)
    if kind is None:
        raise one_line_error(415, f"{what}: not a PNG or JPEG image")
    try:
        image = Image.open(io.BytesIO(data), formats=[kind[0]])
        if image.width * image.height > max_pixels:
            raise one_line_error(
                413, f"{what}: {image.width}x{image.height} pixels, over the limit of {max_pixels:,} pixels"
            )
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise one_line_error(400, f"{what}: not a readable {kind[0]} image (truncated or corrupt)") from None
    return kind[1], image


def is_dicom(data: bytes) -> bool:
    """A DICOM file by its content: "DICM" after the 128-byte preamble (DICOM PS3.10)."""
    return data[128:132] == b"DICM"


def check_dicom(path: Path, what: str, max_pixels: int) -> None:
    """Refuses a DICOM film over max_pixels from its header, before its pixels are decoded."""
    header = dicom.read_dataset(path, pixels=False)
    rows, columns = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    if rows * columns > max_pixels:
        raise one_line_error(413, f"{what}: {columns}x{rows} pixels, over the limit of {max_pixels:,} pixels")


def safe_stem(name: str | None) -> str:
    """A file name's stem reduced to letters, digits, '-' and '_' (the edited film's name is built on it)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name or "film").stem).strip("_")[:60]
    return stem or "film"


def binary_mask(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """A painted mask (PNG from the page's canvas, any size) as an 8-bit 0/255 image (>= 128 selects)."""
    _, image = check_image(data, what, max_pixels)
    grey = np.asarray(image.convert("L"))
    return Image.fromarray(np.where(grey >= 128, 255, 0).astype(np.uint8))


def command(film: str, prompt: str, settings: dict, masks: dict, models_arg: str) -> str:
    """The command line that writes the same edited film and manifest row, run in the downloaded folder."""
    parts = [
        "python -m cxrldm.cli.edit",
        "--image",
        shlex.quote(film),
        "--prompt",
        shlex.quote(prompt),
        "--out",
        "edits",
    ]
    for option, name in masks.items():
        if name:
            parts += [option, name]
    for key in ("strength", "guidance", "steps", "seed", "feather"):
        parts += [f"--{key}", str(settings[key])]
    return " ".join(parts + ["--models", shlex.quote(models_arg)])


def router(jobs, models_arg: str, max_bytes: int, max_pixels: int, defaults: dict) -> APIRouter:
    """The API; `defaults`: strength, guidance, steps and feather for the settings a request leaves out."""
    api = APIRouter()
    uploads = jobs.work_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)

    def uploaded(film_id: str) -> Path:
        if not FILM_ID.fullmatch(film_id) or not (uploads / film_id).is_dir():
            raise one_line_error(404, "unknown film: upload it again")
        return next(p for p in (uploads / film_id).iterdir() if p.name != SHOWN)

    @api.post("/api/films")
    def upload(file: UploadFile = File(...)):
        data = file.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise one_line_error(413, f"{file.filename}: over the upload limit of {max_bytes:,} bytes")
        name = file.filename or "upload"
        if not is_dicom(data) and image_format(data) is None:
            raise one_line_error(415, f"{name}: not a PNG or JPEG image or a DICOM file")
        suffix = ".dcm" if is_dicom(data) else check_image(data, name, max_pixels)[0]
        with tempfile.TemporaryDirectory(dir=jobs.work_dir) as staging:
            path = Path(staging) / f"{safe_stem(file.filename)}{suffix}"
            path.write_bytes(data)
            try:
                if suffix == ".dcm":
                    check_dicom(path, name, max_pixels)
                pixels, *_ = check_inputs(path, None, None, 0.5, 50)  # the CLI's loader and checks
            except (EditError, dicom.DicomError) as error:
                raise one_line_error(400, str(error).replace(str(path), name)) from None
            film_id = secrets.token_hex(12)
            (uploads / film_id).mkdir()
            shutil.move(path, uploads / film_id / path.name)
            if suffix == ".dcm":  # a browser shows no DICOM: its display image
                save_gray(pixels, uploads / film_id / SHOWN)
        return {"film": film_id, "name": path.name, "width": int(pixels.shape[1]), "height": int(pixels.shape[0])}

    @api.get("/api/films/{film_id}")
    def film_image(film_id: str):
        path = uploaded(film_id)
        if (path.parent / SHOWN).is_file():
            return FileResponse(path.parent / SHOWN, media_type="image/png")
        return FileResponse(path, media_type="image/png" if path.suffix == ".png" else "image/jpeg")

    @api.post("/api/edit")
    def start(
        film: str = Form(...),
        prompt: str = Form(..., min_length=1, max_length=4000),
        strength: float | None = Form(None),
        guidance: float | None = Form(None),
        steps: int | None = Form(None, ge=1, le=1000),
        seed: int = Form(0, ge=0, le=2**31 - 1),
        feather: float | None = Form(None, ge=0, le=64),
        edit_mask: UploadFile = File(...),
        keep_mask: UploadFile | None = File(None),
    ):
        given = {"strength": strength, "guidance": guidance, "steps": steps, "seed": seed, "feather": feather}
        settings = {k: defaults[k] if v is None else v for k, v in given.items()}
        strength, guidance, steps, feather = (settings[k] for k in ("strength", "guidance", "steps", "feather"))
        source = uploaded(film)
        masks = {"--edit-mask": binary_mask(edit_mask.file.read(max_bytes + 1), "edit mask", max_pixels)}
        if keep_mask is not None:
            keep = binary_mask(keep_mask.file.read(max_bytes + 1), "keep mask", max_pixels)
            if np.asarray(keep).any():
                masks["--keep-mask"] = keep
        with tempfile.TemporaryDirectory(dir=jobs.work_dir) as staging:  # the CLI's checks before queueing
            names = {}
            for option, mask in masks.items():
                names[option] = f"{option[2:].replace('-', '_')}.png"
                mask.save(Path(staging) / names[option])
            try:
                check_inputs(
                    source,
                    *(str(Path(staging) / names[o]) if o in names else None for o in ("--edit-mask", "--keep-mask")),
                    strength,
                    steps,
                )
            except EditError as error:
                raise one_line_error(400, str(error).replace(staging + "/", "")) from None
        line = command(source.name, prompt, settings, names, models_arg)

        def total(models):
            return steps - start_index(strength, steps)

        def work(models, folder):
            shutil.copy(source, folder / source.name)
            for option, mask in masks.items():
                mask.save(folder / names[option])
            paths = {o: str(folder / n) for o, n in names.items()}
            run = edit_film(
                models,
                jobs.models_dir,
                folder / source.name,
                prompt,
                folder,
                strength,
                guidance,
                steps,
                seed,
                paths.get("--edit-mask"),
                paths.get("--keep-mask"),
                feather,
            )
            row = {
                **run.row,
                "input": source.name,
                "edit_mask": names.get("--edit-mask", ""),
                "keep_mask": names.get("--keep-mask", ""),
            }  # as the command, run in this folder, writes it
            write_csv(folder / "manifest.csv", pd.DataFrame([row], columns=EDIT_COLUMNS))
            (folder / "command.sh").write_text(line + "\n")
            films = [source.name]
            if source.suffix == ".dcm":  # a browser shows no DICOM: the film as the command read it
                films.append(f"{source.stem}_display.png")
                save_gray(run.original, folder / films[-1])
            return {
                "original": source.name,
                "shown": films[-1],
                "edited": run.names["edited"],
                "difference": run.names["difference"],
                "masks": list(names.values()),
                "row": {k: str(v) for k, v in row.items()},
                "command": line,
                "changed": run.changed,
                "pixels": int(run.edited.size),
                "files": [
                    *films,
                    run.names["edited"],
                    run.names["difference"],
                    *names.values(),
                    "manifest.csv",
                    "command.sh",
                ],
            }

        return jobs.submit("edit", total, work, {"prompt": prompt, **settings})

    return api
