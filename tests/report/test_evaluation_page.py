"""The offline evaluation page and the guidance-sweep report: every metric with its interval is on the
page, formatted; the page references nothing outside itself (no src/href but data: URIs and #anchors, no
scripts); the images are the files' exact bytes; the SVG charts are well-formed and their geometry follows
the data; missing inputs and unexpected schemas are skipped; and the sweep reads the right guidance, FID,
coverage and faithfulness from a real `dvc exp show --json` capture (tests/fixtures/exp_show.json, dvc 3.67.1)."""

import base64
import csv
import io
import json
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from cxrldm.report import sweep
from cxrldm.report import evaluation_page as page
from stages import evaluation_page

DATA = Path(__file__).parents[1] / "fixtures"
SVG_NS = "{http://www.w3.org/2000/svg}"


def iv(value, low, high, n, resamples=1000):
    return {"value": value, "low": low, "high": high, "n": n, "resamples": resamples}


METRICS = {
    "evaluate": {
        "fid_evaluator_cnn": iv(81.00053985529516, 75.21234, 88.73111, [64, 60]),
        "fid_evaluator_cnn_blur_baseline": 156.78473624338486,
        "fid_evaluator_cnn_noise_baseline": 1567.812525481596,
        "kid_evaluator_cnn": iv(0.031234, 0.020231, 0.042229, [64, 60]),
        "prdc_evaluator_cnn": {"precision": iv(0.703125, 0.640625, 0.765625, [60, 64]),
                               "recall": iv(0.58333, 0.5, 0.66667, [60, 64]),
                               "density": iv(0.8125, 0.7125, 0.9125, [60, 64]),
                               "coverage": iv(0.61667, 0.55, 0.68333, [60, 64])},
        "ms_ssim_settings": {"image_size": 64, "kernel_size": 3, "scales": 5},
        "laterality": {"auroc_right_vs_left": 0.9609375, "n_left": 16},
    },
    "faithfulness": {"findings": {
        "Cardiomegaly": {"synthetic_auroc": iv(0.62, 0.51, 0.73, 32), "real_auroc": iv(0.97, 0.94, 0.995, 63),
                         "n_positive": 16, "n_negative": 16, "fidelity": {"fid": iv(95.2, 86.2, 104.2, [16, 12])}},
        "Pleural Effusion": {"synthetic_auroc": iv(0.93, 0.88, 0.98, 32), "real_auroc": iv(0.9974, 0.99, 1.0, 63),
                             "n_positive": 32, "n_negative": 32},
        "Edema": {"synthetic_auroc": iv(None, None, None, 0, 0), "real_auroc": iv(0.9979, 0.995, 1.0, 63),
                  "skipped": "no prompt mentions this finding"},
        "Pneumothorax": {"synthetic_auroc": iv(math.nan, math.nan, math.nan, 16, 0),
                         "real_auroc": iv(0.9, 0.82, 0.98, 63)},
    }},
    "memorisation": {"feature": {"threshold": 0.1234, "flagged_fraction": iv(0.015625, 0.0, 0.046875, 64),
                                 "quantiles": {"0.01": 0.21, "0.5": 0.44}, "nearest": [0.21, 0.25, 0.3]},
                     "pixel": {"threshold": 12.5, "flagged_fraction": iv(0.0, 0.0, 0.0, 64)}},
    "utility": {"auroc": {"synthetic": {"Cardiomegaly": iv(0.91, 0.84, 0.97, 63)},
                          "real": {"Cardiomegaly": iv(0.99, 0.97, 1.0, 63), "Edema": iv(0.95, 0.9, 0.99, 63)}}},
    "train_aekl": {"epochs": 25, "val_ms_ssim": 0.95005, "seconds": 83.9},
    "train_ldm": {"epochs": 70, "train_loss": 0.26259, "val_loss": 0.22986},
    "train_evaluator": {"n_train": 470, "val_auroc": {"Cardiomegaly": 1.0, "Lung Opacity": 0.8954}},
}


def png(path: Path, shade: int, size=(24, 8)) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, shade).save(path)
    return path.read_bytes()


def plant(folder: Path, metrics=METRICS, images=True) -> dict[str, bytes]:
    """Metrics files (and image grids) as the evaluation stages write them; {file name: bytes} of the PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in metrics.items():
        (folder / f"{name}.json").write_text(json.dumps(data, indent=2))
    if not images:
        return {}
    return {name: png(folder / name, shade) for name, shade in (
        ("sample_grids/prompt001_the-heart-is-severely-enlarged.png", 40),
        ("sample_grids/unconditional.png", 80),
        ("finding_grids/Pleural_Effusion.png", 120),
        ("memorisation_pairs.png", 160))}


def build(tmp_path, monkeypatch, **kwargs) -> tuple[str, dict[str, bytes]]:
    """Run the stage in-process in a project folder; the page's text and the planted images."""
    monkeypatch.chdir(tmp_path)
    images = plant(tmp_path / "metrics", **kwargs)
    evaluation_page.main()
    return (tmp_path / "metrics/evaluation.html").read_text(encoding="utf-8"), images


class Audit(HTMLParser):
    """Every tag, every URL-bearing attribute, every <img> source and every <svg> element's text span."""
    URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background"}

    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.images, self.ids = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in self.URL_ATTRS:
                self.urls.append((tag, name, value or ""))
            if name == "id":
                self.ids.add(value)
        if tag == "img":
            self.images.append(dict(attrs))


def audit(text: str) -> Audit:
    parser = Audit()
    parser.feed(text)
    parser.close()
    return parser


def assert_offline(text: str) -> Audit:
    found = audit(text)
    assert "script" not in found.tags and not {"iframe", "object", "embed", "link", "base"} & set(found.tags)
    for tag, name, value in found.urls:
        assert value.startswith("data:") or (value.startswith("#") and value[1:] in found.ids), (tag, name, value)
    style = "".join(re.findall(r"<style>(.*?)</style>", text, re.S))
    assert "url(" not in style and "@import" not in style
    assert not re.search(r"\son\w+\s*=", text), "an event-handler attribute"
    return found


def svgs(text: str) -> list[ET.Element]:
    blocks = re.findall(r"<svg\b.*?</svg>", text, re.S)
    return [ET.fromstring(block) for block in blocks]


# -- the library ---------------------------------------------------------------------------------------

def test_numbers_and_intervals_are_formatted_to_four_significant_digits():
    assert page.format_interval(iv(81.00053985529516, 75.21234, 88.73111, [64, 60])) == "81 [75.21, 88.73] (n=64, 60)"
    assert page.format_interval(iv(0.031234, 0.020231, 0.042229, 32)) == "0.03123 [0.02023, 0.04223] (n=32)"
    assert page.format_interval({"value": 0.5, "low": 0.25, "high": 0.75}) == "0.5 [0.25, 0.75]"
    assert page.format_interval(iv(None, None, None, 0)) == "\u2013 [\u2013, \u2013] (n=0)"
    assert page.format_interval(iv(math.nan, math.nan, math.nan, 16)) == "NaN [NaN, NaN] (n=16)"
    assert [page.format_number(x) for x in (1567.812525481596, 470, True, 1e-05, [0.21, 3])] == \
        ["1568", "470", "True", "1e-05", "[0.21, 3]"]


def test_metric_table_flattens_to_dotted_keys_with_one_row_per_interval():
    table = page.metric_table(METRICS["memorisation"] | {"note": "<b>&"})
    rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table)
    cells = {key: re.sub(r"<[^>]+>", "", value) for key, value in rows}
    assert cells == {"feature.threshold": "0.1234", "feature.flagged_fraction": "0.01562 [0, 0.04688] (n=64)",
                     "feature.quantiles.0.01": "0.21", "feature.quantiles.0.5": "0.44",
                     "feature.nearest": "[0.21, 0.25, 0.3]", "pixel.threshold": "12.5",
                     "pixel.flagged_fraction": "0 [0, 0] (n=64)", "note": "&lt;b&gt;&amp;"}
    assert 'title="1000 resamples"' in table


def test_page_holds_every_metric_formatted_with_its_interval(tmp_path, monkeypatch):
    text, _ = build(tmp_path, monkeypatch)
    for name, data in METRICS.items():
        assert f"<h2>{name}.json</h2>" in text
        for key, value in page.flatten(data):
            if isinstance(value, (int, float, dict)):
                assert f"<th>{key}</th><td>" in text
                assert page.format_value(value).replace("&", "&amp;") in text, (name, key)
    summary = re.search(r'<section id="summary">(.*?)</section>', text, re.S)[1]
    for expected in ("81 [75.21, 88.73] (n=64, 60)",            # FID
                     "0.03123 [0.02023, 0.04223] (n=64, 60)",   # KID
                     "0.7031 [0.6406, 0.7656] (n=60, 64)",      # precision
                     "0.6167 [0.55, 0.6833] (n=60, 64)",        # coverage
                     "0.01562 [0, 0.04688] (n=64)",             # flagged fraction, feature space
                     "0.95 [0.9, 0.99] (n=63)",                 # utility, real, Edema
                     "Edema: skipped (no prompt mentions this finding)"):
        assert expected in summary


def test_page_references_nothing_outside_itself(tmp_path, monkeypatch):
    text, _ = build(tmp_path, monkeypatch)
    found = assert_offline(text)
    assert found.urls, "the table of contents links to its sections"
    assert 'http-equiv="Content-Security-Policy"' in text and "default-src 'none'" in text


def test_images_are_embedded_byte_for_byte_with_captions(tmp_path, monkeypatch):
    text, images = build(tmp_path, monkeypatch)
    sources = [img["src"] for img in audit(text).images]
    assert len(sources) == len(images)
    decoded = [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in sources]
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert sorted(decoded) == sorted(images.values())
    for caption in ("prompt001: the heart is severely enlarged", "unconditional", "Pleural Effusion",
                    "memorisation pairs"):
        assert f"<figcaption>{caption}</figcaption>" in text


def test_missing_inputs_are_skipped(tmp_path, monkeypatch):
    text, _ = build(tmp_path, monkeypatch, metrics={}, images=False)
    assert "No evaluation metrics found" in text and "<img" not in text and ".json</h2>" not in text
    shutil.rmtree(tmp_path / "metrics")
    text, _ = build(tmp_path, monkeypatch, metrics={"evaluate": METRICS["evaluate"]}, images=False)
    assert "<h2>evaluate.json</h2>" in text and "faithfulness.json" not in text and "<svg" not in text
    assert "81 [75.21, 88.73]" in text
    assert_offline(text)


def test_unexpected_schemas_still_give_a_page(tmp_path, monkeypatch):
    odd = {"evaluate": {"fid_x": "n/a", "prdc_x": [1, 2], "kid_x": {"a": 1}},
           "faithfulness": {"findings": ["Cardiomegaly"]}, "memorisation": {"feature": [0.1], "pixel": {"x": 1}},
           "utility": {"auroc": 0.5}, "train_ldm": {}, "train_aekl": {"epochs": None, "nested": []}}
    text, _ = build(tmp_path, monkeypatch, metrics=odd, images=False)
    for name in odd:
        assert f"<h2>{name}.json</h2>" in text
    assert "<th>fid_x</th><td>n/a</td>" in text and "<th>prdc_x</th><td>[1, 2]</td>" in text
    assert_offline(text)
    svgs(text)


def test_write_page_is_atomic_and_replaces(tmp_path):
    out = tmp_path / "sub" / "page.html"
    page.write_page(out, "first", [("A", "<p>a</p>")])
    page.write_page(out, "T & <second>", [("A", "<p>one</p>"), ("A", "<p>two</p>")])
    text = out.read_text()
    assert "<title>T &amp; &lt;second&gt;</title>" in text and "first" not in text
    assert 'id="a"' in text and 'id="a-2"' in text      # duplicate headings get distinct anchors
    assert sorted(p.name for p in out.parent.iterdir()) == ["page.html"]
    assert_offline(text)


def bar_geometry(svg: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """{tooltip: (bar start, bar end, whisker start, whisker end)} of an svg_bars chart."""
    rects = [r for r in svg.iter(f"{SVG_NS}rect") if r.find(f"{SVG_NS}title") is not None]
    paths = [p for p in svg.iter(f"{SVG_NS}path")]
    out = {}
    for rect, path in zip(rects, paths):
        xs = [float(v) for v in re.match(r"M([\d.]+) [\d.]+H([\d.]+)", path.get("d")).groups()]
        x, w = float(rect.get("x")), float(rect.get("width"))
        out[rect.find(f"{SVG_NS}title").text] = (x, x + w, xs[0], xs[1])
    return out


def test_bars_are_drawn_to_scale_with_whiskers_from_low_to_high():
    svg = page.svg_bars([("A", [("synthetic", 0.6, 0.5, 0.7), ("real", 0.9, 0.85, 0.95)]),
                         ("B", [("synthetic", None, None, None), ("real", 0.2, 0.1, 0.3)])],
                        "t", x_range=(0.0, 1.0), reference=0.5)
    root = ET.fromstring(svg)
    geometry = bar_geometry(root)
    assert set(geometry) == {"A, synthetic: 0.6 [0.5, 0.7]", "A, real: 0.9 [0.85, 0.95]", "B, real: 0.2 [0.1, 0.3]"}
    start, end, low, high = geometry["A, synthetic: 0.6 [0.5, 0.7]"]
    scale = (end - start) / 0.6
    for label, (value, lo, hi) in {"A, real: 0.9 [0.85, 0.95]": (0.9, 0.85, 0.95),
                                   "B, real: 0.2 [0.1, 0.3]": (0.2, 0.1, 0.3),
                                   "A, synthetic: 0.6 [0.5, 0.7]": (0.6, 0.5, 0.7)}.items():
        s, e, wl, wh = geometry[label]
        assert s == pytest.approx(start) and e - s == pytest.approx(value * scale, abs=0.2)
        assert wl - s == pytest.approx(lo * scale, abs=0.2) and wh - s == pytest.approx(hi * scale, abs=0.2)
    assert "synthetic: n/a" in svg
    reference = [line for line in root.iter(f"{SVG_NS}line") if line.get("class") == "reference"]
    assert len(reference) == 1 and float(reference[0].get("x1")) == pytest.approx(start + 0.5 * scale, abs=0.2)


def test_scatter_places_points_by_their_data_and_labels_them():
    svg = page.svg_scatter([(50.0, 0.7, "2"), (90.0, 0.9, "5"), (60.0, 0.6, "1"), (None, 0.5, "x"),
                            (70.0, math.nan, "y")], "FID", "AUROC", "FID vs AUROC")
    root = ET.fromstring(svg)
    circles = {c.find(f"{SVG_NS}title").text.split(":")[0]: (float(c.get("cx")), float(c.get("cy")))
               for c in root.iter(f"{SVG_NS}circle")}
    assert set(circles) == {"2", "5", "1"}
    assert circles["2"][0] < circles["1"][0] < circles["5"][0]              # x grows to the right
    assert circles["5"][1] < circles["2"][1] < circles["1"][1]              # y grows upwards
    (x0, y0), (x1, y1) = circles["2"], circles["5"]                          # linear: "1" lies on the scale
    assert circles["1"][0] == pytest.approx(x0 + (x1 - x0) * 10 / 40, abs=0.2)
    assert circles["1"][1] == pytest.approx(y0 + (y1 - y0) * -0.1 / 0.2, abs=0.2)
    labels = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {"2", "5", "1", "FID", "AUROC", "FID vs AUROC"} <= labels
    assert "no points" in page.svg_scatter([(None, 1, "a")], "x", "y", "empty")
    ET.fromstring(page.svg_scatter([(1.0, 1.0, "<&>")], "x & y", "y", "one point"))


# -- the guidance sweep --------------------------------------------------------------------------------

def expected_sweep_point(g: float) -> tuple[float, float, float]:
    """The metrics the scratch project behind tests/fixtures/exp_show.json computed from its guidance:
    FID 50 + 12 |g - 2.2|^1.3, coverage 0.75 - 0.07 g, faithfulness the mean of two findings' synthetic AUROCs
    0.6 + 0.06 g and 0.55 + 0.07 g (a NaN and a null third and fourth finding are left out)."""
    return 50 + 12 * abs(g - 2.2) ** 1.3, 0.75 - 0.07 * g, ((0.6 + 0.06 * g) + (0.55 + 0.07 * g)) / 2


def test_sweep_reads_a_real_exp_show_capture():
    points = {p["name"]: p for p in sweep.points_from_exp_show(json.loads((DATA / "exp_show.json").read_text()))}
    # workspace (guidance 2, not committed), the baseline commit "main" (3), a plain `dvc exp run` (1, whose FID
    # is a plain float), a queued run that succeeded (5), one still queued (7) and one that failed ("bad")
    assert set(points) == {"workspace", "main", "guid-1", "guid-5", "guid-7", "guid-bad"}
    for name, g in {"workspace": 2.0, "main": 3.0, "guid-1": 1.0, "guid-5": 5.0}.items():
        fid, coverage, faithfulness = expected_sweep_point(g)
        p = points[name]
        assert p["guidance"] == g
        assert p["fid"] == pytest.approx(fid, abs=1e-4) and p["fid_key"] == "fid_evaluator_cnn"
        assert p["coverage"] == pytest.approx(coverage, abs=1e-4) and p["coverage_key"] == "prdc_evaluator_cnn"
        assert p["faithfulness"] == pytest.approx(faithfulness, abs=1e-4) and p["n_findings"] == 2
    assert [points[n]["kind"] for n in ("workspace", "main", "guid-1")] == ["workspace", "baseline", "experiment"]
    assert points["guid-7"]["state"] == "queued" and points["guid-7"]["guidance"] == 7.0
    # the failed run carries the metrics of the workspace it started from: they must not be plotted as its own
    assert points["guid-bad"]["state"] == "failed" and points["guid-bad"]["guidance"] is None
    for name in ("guid-7", "guid-bad"):
        assert points[name]["fid"] is None and points[name]["coverage"] is None and points[name]["faithfulness"] is None


def test_sweep_metric_pickers_skip_baselines_and_non_numbers():
    assert sweep.fid_of({"fid_a_noise_baseline": 1500.0, "fid_b": {"value": 80.0, "low": 70.0}}) == (80.0, "fid_b")
    assert sweep.fid_of({"fid_xrv": {"value": None}, "fid_xrv_blur_baseline": 157.0}) == (None, "fid_xrv")
    assert sweep.fid_of({"ms_ssim_samples": 0.6}) == (None, None)
    assert sweep.coverage_of({"prdc_x": {"precision": 0.9, "coverage": {"value": 0.4}}}) == (0.4, "prdc_x")
    assert sweep.coverage_of({"prdc_x": {"precision": 0.9}}) == (None, "prdc_x")
    assert sweep.faithfulness_of({"findings": {"A": {"synthetic_auroc": 0.6}, "B": {"synthetic_auroc": {"value": 0.8}},
                                               "C": {"synthetic_auroc": {"value": math.nan}}, "D": {"skipped": "x"},
                                               "E": {"real_auroc": {"value": 1.0}}}}) == (pytest.approx(0.7), 2)
    assert sweep.faithfulness_of({"findings": []}) == (None, 0)


def test_sweep_drops_a_workspace_that_repeats_an_experiment():
    data = json.loads((DATA / "exp_show.json").read_text())
    experiment = data[1]["experiments"][0]["revs"][0]
    data[0]["data"] = json.loads(json.dumps(experiment["data"]))
    names = [p["name"] for p in sweep.points_from_exp_show(data)]
    assert "workspace" not in names and experiment["name"] in names


def test_sweep_command_writes_an_offline_page_and_a_csv(tmp_path, capsys):
    out = tmp_path / "metrics" / "guidance_sweep.html"
    sweep.main(["--json", str(DATA / "exp_show.json"), "--out", str(out)])
    text = out.read_text()
    assert_offline(text)
    charts = svgs(text)
    assert len(charts) == 2
    for chart in charts:
        labels = sorted(c.find(f"{SVG_NS}title").text.split(":")[0] for c in chart.iter(f"{SVG_NS}circle"))
        assert labels == ["1", "2", "3", "5"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "metrics" / "guidance_sweep.csv").read_text())))
    assert [r["name"] for r in rows] == ["workspace", "main", "guid-5", "guid-1", "guid-7", "guid-bad"]
    by_name = {r["name"]: r for r in rows}
    assert float(by_name["guid-5"]["fid"]) == pytest.approx(expected_sweep_point(5.0)[0], abs=1e-4)
    assert by_name["guid-bad"]["fid"] == "" and by_name["guid-bad"]["state"] == "failed"
    assert "6 rows, 4 plotted" in capsys.readouterr().out


# -- a real browser, where one is installed --------------------------------------------------------------

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)


@pytest.mark.skipif(BROWSER is None, reason="no chromium / google-chrome on PATH to render the page headless")
def test_page_renders_in_a_headless_browser(tmp_path, monkeypatch):
    build(tmp_path, monkeypatch)
    shot = tmp_path / "page.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,1600",
                    (tmp_path / "metrics/evaluation.html").as_uri()], capture_output=True, timeout=60, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600)
    low, high = image.getextrema()
    assert high - low > 100, "the screenshot is blank"


def test_memorisation_rows_read_the_stage_s_spaces():
    interval = {"value": 0.02, "low": 0.0, "high": 0.05, "n": 150, "resamples": 1000}
    rows = page.memorisation_rows({"n_synthetic": 150, "spaces": {
        "evaluator_cnn": {"threshold": 0.7155, "flagged_fraction": interval, "nearest_is_source_fraction": interval}}})
    assert rows == [["evaluator_cnn", page.format_value(0.7155), page.format_value(interval),
                     page.format_value(interval)]]
