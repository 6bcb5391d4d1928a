"""Drive the web app in headless Chromium as a user would, on trained models: time a generation (click to
images shown) and an edit, answer a reader study, export it, and take the screenshots of docs/app.md.

    python scripts/app_tour.py --project . --models models --films 20 --shots docs/images

Everything it writes besides the screenshots (a copy of the models, the study, its answers) goes to a
temporary folder. Needs Chromium (apt-get install chromium) and playwright."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app")]


LOADED = "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)"


def click_and_wait(page) -> float:
    """Seconds from a click on the page's Go button to its result's images shown."""
    start = time.monotonic()
    page.click("#go")
    page.wait_for_selector("#result:not(.hidden)", timeout=600_000)
    page.wait_for_function(LOADED, arg="#images img")
    return time.monotonic() - start


def main() -> None:
    from helpers import Server, http
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from cxrldm.app.study import draw, export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=".", help="the pipeline's folder (models/, data/, params.yaml)")
    parser.add_argument("--models", default=None, help="default: PROJECT/models")
    parser.add_argument("--films", type=int, default=20, help="films of the reader study (half real)")
    parser.add_argument("--shots", default=None, help="folder for app_generate.png, app_edit.png, app_reader.png")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    work = Path(tempfile.mkdtemp(prefix="app-tour-"))
    models = work / "models"
    shutil.copytree(Path(args.models or project / "models"), models, ignore=shutil.ignore_patterns("checkpoints"))
    study = draw(project, work / "study", args.films // 2, args.films - args.films // 2, 1)
    server = Server("--models", models, "--study", work / "study", "--work", work / "jobs", log=work / "server.log")
    server.start()
    while json.loads(http("GET", server.url + "/api/status")[2])["models"] == "loading":  # time the work, not the load
        time.sleep(0.2)
    shots = Path(args.shots) if args.shots else work
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            page.goto(server.url + "/generate")
            page.fill("#prompt", "There is a large right pleural effusion.")
            page.fill("#n", "4")
            page.fill("#steps", "50")
            page.fill("#guidance", "5")
            generate_s = click_and_wait(page)
            page.screenshot(path=str(shots / "app_generate.png"), full_page=True)

            film = next(
                f for f in study["films"] if f["truth"] == "real" and "Pleural Effusion" not in f["findings_truth"]
            )
            page.goto(server.url + "/edit")
            page.set_input_files("#file", str(project / film["source"]))
            page.wait_for_selector("#painter:not(.hidden)")
            box = page.locator("#canvas").bounding_box()
            at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])
            page.eval_on_selector("#brush", "b => b.value = 70")
            for y in (0.55, 0.65, 0.75, 0.85):  # the patient's right lower zone (image left)
                page.mouse.move(*at(0.1, y))
                page.mouse.down()
                page.mouse.move(*at(0.45, y), steps=8)
                page.mouse.up()
            page.check("input[name=tool][value=keep]")
            page.eval_on_selector("#brush", "b => b.value = 40")
            page.mouse.move(*at(0.62, 0.3))
            page.mouse.down()
            page.mouse.move(*at(0.62, 0.45), steps=5)
            page.mouse.up()
            page.fill("#prompt", "There is a large right pleural effusion.")
            page.fill("#strength", "0.6")
            page.fill("#steps", "50")
            edit_s = click_and_wait(page)
            page.screenshot(path=str(shots / "app_edit.png"), full_page=True)

            reader = study["readers"][0]
            page.goto(f"{server.url}/study/{reader['token']}")
            for k in range(len(reader["order"])):
                page.wait_for_selector(f"#message:text('Film {k + 1} of {len(reader['order'])}')")
                page.wait_for_function(LOADED, arg="#film")
                page.check(f"input[name=answer][value={('real', 'synthetic')[k % 2]}]")
                page.check(f"input[name=confidence][value='{k % 5 + 1}']")
                if k % 3 == 0:
                    page.check("#give-findings")
                    page.check("input[name=finding][value='Cardiomegaly']")
                if k == 2:
                    page.screenshot(path=str(shots / "app_reader.png"), full_page=True)
                page.click("#submit")
            page.wait_for_selector("#done:not(.hidden)")
            browser.close()
    finally:
        server.stop()
    rows = export(work / "study", work / "answers.csv")
    with open(work / "answers.csv", newline="") as f:
        right = sum(r["truth"] == r["answer"] for r in csv.DictReader(f))
    print(f"| generate 4 images, 50 DDIM steps, click to images shown | {generate_s:.1f} s |")
    with Image.open(project / film["source"]) as image:
        size = f"{image.width} x {image.height}"
    print(f"| edit one {size} film (strength 0.6 of 50 steps), click to images shown | {edit_s:.1f} s |")
    print(f"reader session: {rows} answers exported to {work / 'answers.csv'} ({right} right, a scripted reader)")
    print(f"screenshots in {shots}")


if __name__ == "__main__":
    main()
