"""What the pages tell: the defaults and the "trained on" line come from the loaded models' own record, a
DICOM film is edited as on the command line, a failed or refused request leaves no old result, a fast brush
stroke is one line, a bad link opened in the browser is an HTML page (the API keeps JSON), and the app hands
its thread choice to the jobs."""

import io
import json
import shlex
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from dicom_files import radiograph, save
from helpers import http, multipart, upload, wait_job
from PIL import Image

from cxrldm.app import server as app_server
from cxrldm.app.profile import load_profile
from cxrldm.data import dicom

pytestmark = pytest.mark.pipeline
WAIT = 120_000  # ms


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


def copy_models(project, target):
    shutil.copytree(project / "models", target / "models", ignore=shutil.ignore_patterns("checkpoints"))
    return target / "models"


def test_the_profile_is_the_pipelines_record_of_these_models(tiny_project, tmp_path):
    profile = load_profile(tiny_project / "models")  # the tiny profile's sample.* and edit.*
    assert profile.generate == {"guidance": 3.0, "steps": 2, "sampler": "ddim"}
    assert profile.edit == {"strength": 0.5, "guidance": 3.0, "steps": 4, "feather": 1.0}
    assert profile.phantoms and "embedded demo dataset (synthetic phantoms, 40 made-up studies" in profile.trained_on
    assert "sample.* and edit.* in dvc.lock" in profile.settings_from
    demo = tmp_path / "demo"  # the demo profile samples at guidance 5
    copy_models(tiny_project, demo)
    lock = yaml.safe_load((tiny_project / "dvc.lock").read_text())
    lock["stages"]["sample"]["params"]["params.yaml"]["sample.guidance_scale"] = 5.0
    (demo / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert load_profile(demo / "models").generate["guidance"] == 5.0
    lock["stages"]["filter_pa"]["params"]["params.yaml"]["data.root"] = "/data/mimic-cxr-jpg"
    (demo / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert (load_profile(demo / "models").trained_on, load_profile(demo / "models").phantoms) == (
        "MIMIC-CXR-JPG at /data/mimic-cxr-jpg",
        False,
    )
    with open(demo / "models" / "diffusion.safetensors", "ab") as f:  # other weights: the lock says nothing
        f.write(b"\0")
    other = load_profile(demo / "models")
    assert other.generate == {"guidance": 3.0, "steps": 50, "sampler": "ddim"} and not other.phantoms
    assert other.trained_on.startswith("unknown data")
    alone = load_profile(copy_models(tiny_project, tmp_path / "copy"))  # no dvc.lock beside them
    assert alone.trained_on.startswith("unknown data") and alone.edit["steps"] == 50
    description = json.loads((tmp_path / "copy" / "models" / "diffusion.json").read_text())
    (tmp_path / "copy" / "models" / "diffusion.json").write_text(json.dumps({**description, "imported_from": "bundle"}))
    assert load_profile(tmp_path / "copy" / "models").trained_on == "weights imported from bundle"


def test_the_pages_defaults_and_data_line_come_from_the_models_profile(browser, served):
    server, _, _ = served
    status = json.loads(http("GET", server.url + "/api/status")[2])
    assert status["profile"]["generate"]["steps"] == 2
    page = browser.new_page()
    page.goto(server.url + "/generate")
    page.wait_for_selector("#go:enabled")
    assert [page.input_value(k) for k in ("#guidance", "#steps", "#sampler")] == ["3", "2", "ddim"]
    assert "Models trained on the embedded demo dataset (synthetic phantoms" in page.inner_text("#models")
    page.goto(server.url + "/edit")
    page.wait_for_function("document.getElementById('models').textContent.length > 0")
    assert [page.input_value(k) for k in ("#strength", "#guidance", "#steps")] == ["0.5", "3", "4"]
    assert "synthetic phantoms" in page.inner_text("#models") and page.is_visible("#phantoms")
    assert "smooth grey patch" in page.inner_text("#phantoms")
    page.close()
    status, _, reply = http("POST", server.url + "/api/generate", json_body={"prompt": "No effusion.", "n": 1})
    job = wait_job(server.url, json.loads(reply))  # the API's defaults are the profile's too
    assert job["state"] == "done" and (job["settings"]["steps"], job["settings"]["guidance"]) == (2, 3.0)


def test_a_dicom_film_is_edited_as_the_command_line_edits_it(served, tmp_path, monkeypatch):
    server, _, _ = served
    stored = (np.add.outer(np.arange(96), np.arange(80)) * 20).astype(np.uint16)  # 12-bit, a window to apply
    path = save(radiograph(stored, bits_stored=12, WindowCenter=1800, WindowWidth=2400), tmp_path / "chest film.dcm")
    shown = dicom.read_display(path).pixels
    status, film = upload(server.url, "chest film.dcm", Path(path).read_bytes())
    assert status == 200 and (film["name"], film["width"], film["height"]) == ("chest_film.dcm", 80, 96), film
    status, headers, preview = http("GET", f"{server.url}/api/films/{film['film']}")
    assert status == 200 and headers["content-type"] == "image/png"
    assert (pixels_of(preview) == shown).all()  # as the one loader displays it
    mask = np.zeros((96, 80), np.uint8)
    mask[40:90, 10:50] = 255
    body, content_type = multipart(
        {"film": film["film"], "prompt": "Large left pleural effusion.", "steps": "4", "strength": "0.8"},
        {"edit_mask": ("edit_mask.png", png(mask))},
    )
    status, _, reply = http("POST", server.url + "/api/edit", body, content_type)
    assert status == 200, reply
    job = wait_job(server.url, json.loads(reply))
    assert job["state"] == "done", job
    result = job["result"]
    assert result["original"] == "chest_film.dcm" and result["shown"] == "chest_film_display.png"
    files = f"{server.url}/api/jobs/{job['id']}/files/"
    assert (pixels_of(http("GET", files + result["shown"])[2]) == shown).all()
    with zipfile.ZipFile(io.BytesIO(http("GET", f"{server.url}/api/jobs/{job['id']}/download.zip")[2])) as archive:
        archive.extractall(tmp_path / "zip")
        folder = tmp_path / "zip" / archive.namelist()[0].split("/")[0]
    from cxrldm.cli.edit import main

    monkeypatch.chdir(folder)
    main(shlex.split(result["command"])[3:])  # --image chest_film.dcm
    for name in (result["edited"], result["difference"], "manifest.csv"):
        assert (folder / "edits" / name).read_bytes() == (folder / name).read_bytes(), name


def test_dicom_uploads_keep_the_limits(served, tmp_path):
    server, _, _ = served
    huge = radiograph(np.zeros((4, 4), np.uint8))
    huge.Rows, huge.Columns = 1000, 1000  # the header alone is over 250,000 pixels
    status, reply = upload(server.url, "huge.dcm", Path(save(huge, tmp_path / "huge.dcm")).read_bytes())
    assert status == 413 and "1000x1000 pixels, over the limit of 250,000 pixels" in reply["detail"], reply
    broken = Path(save(radiograph(np.zeros((40, 40), np.uint8)), tmp_path / "b.dcm")).read_bytes()[:200]
    status, reply = upload(server.url, "broken.dcm", broken)
    assert status == 400 and reply["detail"].startswith("broken.dcm: ") and str(tmp_path) not in reply["detail"]
    status, reply = upload(server.url, "notes.dcm", b"plain text" * 30)
    assert status == 415 and "not a PNG or JPEG image or a DICOM file" in reply["detail"]


def film_on_canvas(page, server, project, brush: int):
    """The edit page with one of the project's films loaded; returns where a fraction (x, y) of the canvas is."""
    page.goto(server.url + "/edit")
    page.wait_for_selector("#go:enabled", state="attached")
    page.set_input_files("#file", str(next((project / "data" / "resized" / "files").rglob("*.png"))))
    page.wait_for_selector("#painter:not(.hidden)", timeout=WAIT)
    page.eval_on_selector("#brush", f"b => b.value = {brush}")
    box = page.locator("#canvas").bounding_box()
    return lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])


def test_a_failed_edit_leaves_no_old_result(browser, served, tiny_project):
    server, _, _ = served
    page = browser.new_page()
    page.mouse.click(*film_on_canvas(page, server, tiny_project, 100)(0.3, 0.7))
    page.fill("#steps", "3")
    page.click("#go")
    page.wait_for_selector("#result:not(.hidden)", timeout=WAIT)
    assert page.eval_on_selector("#progress", "p => p.value") == 1
    page.click("#clear")  # no edit mask: refused
    page.click("#go")
    page.wait_for_selector("#status.error")
    assert "selects no pixel" in page.inner_text("#status")
    assert page.is_hidden("#result") and page.eval_on_selector("#progress", "p => p.value") == 0
    page.close()


def test_a_fast_stroke_is_one_line_not_dots(browser, served, tiny_project):
    server, _, _ = served
    page = browser.new_page()
    at = film_on_canvas(page, server, tiny_project, 20)
    page.mouse.move(*at(0.1, 0.5))
    page.mouse.down()
    page.mouse.move(*at(0.9, 0.5), steps=1)  # one pointer event for the whole stroke
    page.mouse.up()
    row = page.evaluate("""() => { const y = Math.round(canvas.height / 2);
        return Array.from(edit.slice(y * canvas.width, (y + 1) * canvas.width)); }""")
    width = len(row)
    assert all(row[int(0.12 * width) : int(0.88 * width)]), "gaps in the stroke"
    assert not any(row[: int(0.05 * width)]) and not any(row[int(0.95 * width) :])
    page.close()


def test_a_refused_form_says_why_in_the_status_line(browser, served):
    server, _, _ = served
    page = browser.new_page()
    page.goto(server.url + "/generate")
    page.wait_for_selector("#go:enabled")
    page.fill("#n", "2")
    page.click("#go")
    page.wait_for_selector("#result:not(.hidden)", timeout=WAIT)
    assert page.inner_text("#status") == "done: 2 images"
    page.fill("#n", "0")  # the browser refuses it: no request
    page.click("#go")
    page.wait_for_selector("#status.error")
    assert page.inner_text("#status").startswith("Images: ") and "done" not in page.inner_text("#status")
    assert page.is_hidden("#result")
    page.close()


def test_a_bad_link_in_the_browser_is_a_page_and_the_api_keeps_json(browser, served):
    server, study, _ = served
    bad = f"{server.url}/study/{study['readers'][0]['token'][:-2]}xx"
    status, headers, body = http("GET", bad)
    assert status == 404 and json.loads(body) == {"detail": "unknown study link: check the address you were given"}
    with pytest.raises(urllib.error.HTTPError) as refused:  # a browser's navigation asks for HTML
        urllib.request.urlopen(urllib.request.Request(bad, headers={"Accept": "text/html,*/*;q=0.8"}))
    assert refused.value.code == 404 and refused.value.headers["content-type"].startswith("text/html")
    page_text = refused.value.read().decode()
    assert "unknown study link: check the address you were given" in page_text and '"detail"' not in page_text
    page = browser.new_page()
    response = page.goto(bad)
    assert response.status == 404
    assert "unknown study link" in page.inner_text("main") and "{" not in page.inner_text("body")
    response = page.goto(f"{server.url}/api/jobs/{'0' * 24}")  # any refusal a browser opens
    assert response.status == 404 and page.inner_text("main").endswith("unknown job")
    page.close()


def test_the_app_hands_its_thread_choice_to_the_jobs(tmp_path, monkeypatch):
    """Each job takes its threads when it starts (tests/app/test_cpus.py): --threads fixes them; without it
    the choice is bounded by the CPUs the process may use."""
    from cxrldm.app import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "usable_cpus", lambda: 1)
    app = app_server.create_app(tmp_path / "no models", None, work_dir=tmp_path / "work")
    app.state.jobs.executor.shutdown(wait=True)
    assert (app.state.jobs.threads, app.state.jobs.limit) == (None, 1)
    fixed = app_server.create_app(tmp_path / "no models", None, work_dir=tmp_path / "work2", threads=3)
    fixed.state.jobs.executor.shutdown(wait=True)
    assert fixed.state.jobs.threads == 3
