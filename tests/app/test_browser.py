"""The three flows in a real headless browser (Chromium through Playwright) against the real server:
generate, edit with painted masks, a reader session to the end; and the downloads reproduce with the CLIs."""

import csv
import io
import re
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import http
from PIL import Image

from cxrldm.app.study import export

pytestmark = pytest.mark.pipeline
WAIT = 120_000  # ms


def fetch(url: str) -> bytes:
    status, _, body = http("GET", url)
    assert status == 200, (url, body[:200])
    return body


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


def unzip(url: str, target) -> Path:
    with zipfile.ZipFile(io.BytesIO(fetch(url))) as archive:
        archive.extractall(target)
        return target / archive.namelist()[0].split("/")[0]


def watch_status(page):
    """Record every text the page's status line shows (the progress while it works)."""
    page.evaluate("""() => { window.seen = [];
        new MutationObserver(() => window.seen.push(document.getElementById('status').textContent))
            .observe(document.getElementById('status'), {childList: true, characterData: true, subtree: true}); }""")


def images_loaded(page, selector):
    page.wait_for_function(f"""() => [...document.querySelectorAll('{selector}')]
                                      .every(i => i.complete && i.naturalWidth > 0)""")


def test_generate_in_the_browser_and_the_download_reproduces_it(browser, served, tmp_path, monkeypatch, tiny_project):
    server, _, _ = served
    page = browser.new_page()
    page.goto(server.url + "/generate")
    page.fill("#prompt", "Large left pleural effusion.")
    page.fill("#n", "2")
    page.fill("#steps", "4")
    page.fill("#seed", "7")
    watch_status(page)
    page.click("#go")
    page.wait_for_selector("#result:not(.hidden)", timeout=WAIT)
    images_loaded(page, "#images img")
    assert page.locator("#images img").count() == 2
    assert page.eval_on_selector("#progress", "p => p.value") == 1
    seen = page.evaluate("window.seen")
    assert any(re.fullmatch(r"step \d of 4|waiting for the model...", text) for text in seen), seen
    settings = page.inner_text("#settings")
    assert all(word in settings for word in ("Large left pleural effusion.", "ddim", "guidance\t3"))
    command = page.inner_text("#command")
    assert "--n 2 --seed 7 --guidance 3.0 --steps 4 --sampler ddim" in command
    folder = unzip(server.url + page.get_attribute("#zip", "href"), tmp_path)
    assert (folder / "command.sh").read_text().strip() == command
    from cxrldm.cli.generate import main

    monkeypatch.chdir(folder)
    main(shlex.split(command)[3:])
    for name in ("seed7.png", "seed8.png", "manifest.csv"):
        assert (folder / "my_samples" / name).read_bytes() == (folder / name).read_bytes(), name
    page.close()


def test_edit_with_painted_masks_in_the_browser_and_the_download_reproduces_it(
    browser, served, tmp_path, monkeypatch, tiny_project
):
    server, _, _ = served
    film = next((tiny_project / "data" / "resized" / "files").rglob("*.png"))
    page = browser.new_page()
    page.goto(server.url + "/edit")
    page.set_input_files("#file", str(film))
    page.wait_for_selector("#painter:not(.hidden)", timeout=WAIT)
    page.eval_on_selector("#brush", "b => b.value = 100")
    box = page.locator("#canvas").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])
    page.mouse.move(*at(0.1, 0.6))
    page.mouse.down()
    for k in range(1, 11):  # a stroke across the image's lower left
        page.mouse.move(*at(0.1 + 0.03 * k, 0.6 + 0.025 * k))
    page.mouse.up()
    page.check("input[name=tool][value=keep]")
    page.eval_on_selector("#brush", "b => b.value = 40")
    page.mouse.click(*at(0.25, 0.72))  # a spot that must not change
    page.fill("#prompt", "There is a large right pleural effusion.")
    page.fill("#strength", "0.8")
    page.fill("#steps", "5")
    watch_status(page)
    page.click("#go")
    page.wait_for_selector("#result:not(.hidden)", timeout=WAIT)
    images_loaded(page, "#images img")
    assert page.locator("#images img").count() == 3
    row = page.inner_text("#row")
    assert "edit_mask\tedit_mask.png" in row and "keep_mask\tkeep_mask.png" in row and "strength\t0.8" in row
    files = lambda selector: fetch(server.url + page.get_attribute(selector, "href"))
    edit, keep = pixels(files("#edit-mask")) > 127, pixels(files("#keep-mask")) > 127
    height, width = edit.shape
    assert edit.shape == keep.shape == pixels(film.read_bytes()).shape
    assert edit[int(0.7 * height), int(0.25 * width)] and not edit[int(0.2 * height), int(0.8 * width)]
    assert keep[int(0.72 * height), int(0.25 * width)] and keep.sum() < edit.sum()
    original, edited = pixels(film.read_bytes()), pixels(files("#edited"))
    assert (edited != original).any()
    assert (edited[~edit | keep] == original[~edit | keep]).all()  # nothing outside the edit mask, or kept
    command = page.inner_text("#command")
    folder = unzip(server.url + page.get_attribute("#zip", "href"), tmp_path)
    from cxrldm.cli.edit import main

    monkeypatch.chdir(folder)
    main(shlex.split(command)[3:])
    stem = film.stem + "_seed0"
    for name in (f"{stem}_edited.png", f"{stem}_difference.png", "manifest.csv"):
        assert (folder / "edits" / name).read_bytes() == (folder / name).read_bytes(), name
    page.close()


def test_a_reader_session_to_the_end_resumes_where_it_stopped(browser, served):
    server, study, folder = served
    reader = study["readers"][0]
    link = f"{server.url}/study/{reader['token']}"
    page = browser.new_page()
    page.goto(link)
    total = len(study["films"])
    for k in range(total):
        if k == 3:  # stop, and reopen the link later
            page.close()
            page = browser.new_page()
            page.goto(link)
        page.wait_for_selector(f"#message:text('Film {k + 1} of {total}')")
        images_loaded(page, "#film")
        assert page.get_attribute("#film", "src").endswith(f"/film/{reader['order'][k]}.png")
        page.check(f"input[name=answer][value={('real', 'synthetic')[k % 2]}]")
        page.check(f"input[name=confidence][value='{k % 5 + 1}']")
        if k % 2 == 0:
            page.check("#give-findings")
            page.check("input[name=finding][value='Pleural Effusion']")
        page.click("#submit")
    page.wait_for_selector("#done:not(.hidden)")
    assert page.inner_text("#progress-text") == f"{total} of {total} answered"
    page.click("#review")  # back to the last film: its answer is shown
    page.wait_for_selector(f"#message:text('Film {total} of {total}')")
    assert page.is_checked(f"input[name=answer][value={('real', 'synthetic')[(total - 1) % 2]}]")
    page.check("input[name=answer][value=real]")
    page.check("input[name=confidence][value='5']")
    page.click("#submit")  # a changed answer is a new row
    page.wait_for_selector("#done:not(.hidden)")
    page.close()
    export(folder / "study", folder / "answers.csv")
    with open(folder / "answers.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["reader"] == "reader1"]
    assert [r["film"] for r in rows] == reader["order"] + [reader["order"][-1]]
    assert [r["findings_given"] for r in rows[:4]] == ["1", "0", "1", "0"]
    assert rows[0]["findings_answered"] == "Pleural Effusion" and rows[1]["findings_answered"] == ""
    assert (rows[-1]["answer"], rows[-1]["confidence"]) == ("real", "5")
