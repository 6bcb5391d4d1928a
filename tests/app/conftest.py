import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import Server, draw_study

LIMITS = ["--max-upload-bytes", "300000", "--max-pixels", "250000"]  # small, so the tests can exceed them cheaply


@pytest.fixture(scope="session")
def served(tiny_project, tmp_path_factory):
    """The app on the tiny project's models, serving a drawn study (3 real, 3 synthetic films, 4 readers)."""
    folder = tmp_path_factory.mktemp("app")
    study = draw_study(tiny_project, folder / "study")
    server = Server(
        "--models",
        tiny_project / "models",
        "--study",
        folder / "study",
        "--work",
        folder / "work",
        *LIMITS,
        log=folder / "server.log",
    ).start()
    yield server, study, folder
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright (the Debian package's Chromium; Playwright's own download is not needed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright missing: pip install playwright")
    path = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if path is None:
        pytest.skip("no Chromium to drive: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()
