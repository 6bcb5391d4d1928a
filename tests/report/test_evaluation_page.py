"""The offline evaluation page and the experiments page (sweeps and seed replicates): every metric with its
interval is on the page, formatted; the page references nothing outside itself (no src/href but data: URIs
and #anchors, no scripts; the one exception, a link to the experiments page next to it); the images are the
files' exact bytes; the SVG charts are well-formed and their geometry follows the data; missing inputs and
unexpected schemas are skipped; the experiments page reads params and metrics from a real `dvc exp show
--json` capture (tests/fixtures/exp_show.json, dvc 3.67.1) and from captures built on its structure, plots
the fidelity of the images the swept param changes, and gathers seed replicates into one group with its
spread."""

import base64
import csv
import hashlib
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

from cxrldm.report import evaluation_page as page
from cxrldm.report import experiments, sweep
from cxrldm.report import html_kit as kit
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
        "prdc_evaluator_cnn": {
            "precision": iv(0.703125, 0.640625, 0.765625, [60, 64]),
            "recall": iv(0.58333, 0.5, 0.66667, [60, 64]),
            "density": iv(0.8125, 0.7125, 0.9125, [60, 64]),
            "coverage": iv(0.61667, 0.55, 0.68333, [60, 64]),
        },
        "ms_ssim_settings": {"image_size": 64, "kernel_size": 3, "scales": 5},
        "laterality": {"auroc_right_vs_left": 0.9609375, "n_left": 16},
    },
    "faithfulness": {
        "findings": {
            "Cardiomegaly": {
                "synthetic_auroc": iv(0.62, 0.51, 0.73, 32),
                "real_auroc": iv(0.97, 0.94, 0.995, 63),
                "n_positive": 16,
                "n_negative": 16,
                "fidelity": {"fid": iv(95.2, 86.2, 104.2, [16, 12])},
            },
            "Pleural Effusion": {
                "synthetic_auroc": iv(0.93, 0.88, 0.98, 32),
                "real_auroc": iv(0.9974, 0.99, 1.0, 63),
                "n_positive": 32,
                "n_negative": 32,
            },
            "Edema": {
                "synthetic_auroc": iv(None, None, None, 0, 0),
                "real_auroc": iv(0.9979, 0.995, 1.0, 63),
                "skipped": "no prompt mentions this finding",
            },
            "Pneumothorax": {
                "synthetic_auroc": iv(math.nan, math.nan, math.nan, 16, 0),
                "real_auroc": iv(0.9, 0.82, 0.98, 63),
            },
        }
    },
    "memorisation": {
        "feature": {
            "threshold": 0.1234,
            "flagged_fraction": iv(0.015625, 0.0, 0.046875, 64),
            "quantiles": {"0.01": 0.21, "0.5": 0.44},
            "nearest": [0.21, 0.25, 0.3],
        },
        "pixel": {"threshold": 12.5, "flagged_fraction": iv(0.0, 0.0, 0.0, 64)},
    },
    "utility": {
        "auroc": {
            "synthetic": {"Cardiomegaly": iv(0.91, 0.84, 0.97, 63)},
            "real": {"Cardiomegaly": iv(0.99, 0.97, 1.0, 63), "Edema": iv(0.95, 0.9, 0.99, 63)},
        }
    },
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
    return {
        name: png(folder / name, shade)
        for name, shade in (
            ("sample_grids/prompt001_the-heart-is-severely-enlarged.png", 40),
            ("sample_grids/unconditional.png", 80),
            ("finding_grids/Pleural_Effusion.png", 120),
            ("memorisation_pairs.png", 160),
        )
    }


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
    assert kit.format_interval(iv(81.00053985529516, 75.21234, 88.73111, [64, 60])) == "81 [75.21, 88.73] (n=64, 60)"
    assert kit.format_interval(iv(0.031234, 0.020231, 0.042229, 32)) == "0.03123 [0.02023, 0.04223] (n=32)"
    assert kit.format_interval({"value": 0.5, "low": 0.25, "high": 0.75}) == "0.5 [0.25, 0.75]"
    assert kit.format_interval(iv(None, None, None, 0)) == "\u2013 [\u2013, \u2013] (n=0)"
    assert kit.format_interval(iv(math.nan, math.nan, math.nan, 16)) == "NaN [NaN, NaN] (n=16)"
    assert [kit.format_number(x) for x in (1567.812525481596, 470, True, 1e-05, [0.21, 3])] == [
        "1568",
        "470",
        "True",
        "1e-05",
        "[0.21, 3]",
    ]


def test_metric_table_flattens_to_dotted_keys_with_one_row_per_interval():
    table = kit.metric_table(METRICS["memorisation"] | {"note": "<b>&"})
    rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table)
    cells = {key: re.sub(r"<[^>]+>", "", value) for key, value in rows}
    assert cells == {
        "feature.threshold": "0.1234",
        "feature.flagged_fraction": "0.01562 [0, 0.04688] (n=64)",
        "feature.quantiles.0.01": "0.21",
        "feature.quantiles.0.5": "0.44",
        "feature.nearest": "[0.21, 0.25, 0.3]",
        "pixel.threshold": "12.5",
        "pixel.flagged_fraction": "0 [0, 0] (n=64)",
        "note": "&lt;b&gt;&amp;",
    }
    assert 'title="1000 resamples"' in table


def test_page_holds_every_metric_formatted_with_its_interval(tmp_path, monkeypatch):
    text, _ = build(tmp_path, monkeypatch)
    for name, data in METRICS.items():
        assert f"<h2>{name}.json</h2>" in text
        for key, value in kit.flatten(data):
            if isinstance(value, (int, float, dict)):
                assert f"<th>{key}</th><td>" in text
                assert kit.format_value(value).replace("&", "&amp;") in text, (name, key)
    summary = re.search(r'<section id="summary">(.*?)</section>', text, re.S)[1]
    for expected in (
        "81 [75.21, 88.73] (n=64, 60)",  # FID
        "0.03123 [0.02023, 0.04223] (n=64, 60)",  # KID
        "0.7031 [0.6406, 0.7656] (n=60, 64)",  # precision
        "0.6167 [0.55, 0.6833] (n=60, 64)",  # coverage
        "0.01562 [0, 0.04688] (n=64)",  # flagged fraction, feature space
        "0.95 [0.9, 0.99] (n=63)",  # utility, real, Edema
        "Edema: skipped (no prompt mentions this finding)",
    ):
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
    for caption in (
        "prompt001: the heart is severely enlarged",
        "unconditional",
        "Pleural Effusion",
        "memorisation pairs",
    ):
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
    odd = {
        "evaluate": {"fid_x": "n/a", "prdc_x": [1, 2], "kid_x": {"a": 1}},
        "faithfulness": {"findings": ["Cardiomegaly"]},
        "memorisation": {"feature": [0.1], "pixel": {"x": 1}},
        "utility": {"auroc": 0.5},
        "train_ldm": {},
        "train_aekl": {"epochs": None, "nested": []},
    }
    text, _ = build(tmp_path, monkeypatch, metrics=odd, images=False)
    for name in odd:
        assert f"<h2>{name}.json</h2>" in text
    assert "<th>fid_x</th><td>n/a</td>" in text and "<th>prdc_x</th><td>[1, 2]</td>" in text
    assert_offline(text)
    svgs(text)


def test_write_page_is_atomic_and_replaces(tmp_path):
    out = tmp_path / "sub" / "page.html"
    kit.write_page(out, "first", [("A", "<p>a</p>")])
    kit.write_page(out, "T & <second>", [("A", "<p>one</p>"), ("A", "<p>two</p>")])
    text = out.read_text()
    assert "<title>T &amp; &lt;second&gt;</title>" in text and "first" not in text
    assert 'id="a"' in text and 'id="a-2"' in text  # duplicate headings get distinct anchors
    assert sorted(p.name for p in out.parent.iterdir()) == ["page.html"]
    assert_offline(text)


def bar_geometry(svg: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """{tooltip: (bar start, bar end, whisker start, whisker end)} of an svg_bars chart."""
    rects = [r for r in svg.iter(f"{SVG_NS}rect") if r.find(f"{SVG_NS}title") is not None]
    paths = list(svg.iter(f"{SVG_NS}path"))
    out = {}
    for rect, path in zip(rects, paths):
        xs = [float(v) for v in re.match(r"M([\d.]+) [\d.]+H([\d.]+)", path.get("d")).groups()]
        x, w = float(rect.get("x")), float(rect.get("width"))
        out[rect.find(f"{SVG_NS}title").text] = (x, x + w, xs[0], xs[1])
    return out


def test_bars_are_drawn_to_scale_with_whiskers_from_low_to_high():
    svg = kit.svg_bars(
        [
            ("A", [("synthetic", 0.6, 0.5, 0.7), ("real", 0.9, 0.85, 0.95)]),
            ("B", [("synthetic", None, None, None), ("real", 0.2, 0.1, 0.3)]),
        ],
        "t",
        x_range=(0.0, 1.0),
        reference=0.5,
    )
    root = ET.fromstring(svg)
    geometry = bar_geometry(root)
    assert set(geometry) == {"A, synthetic: 0.6 [0.5, 0.7]", "A, real: 0.9 [0.85, 0.95]", "B, real: 0.2 [0.1, 0.3]"}
    start, end, low, high = geometry["A, synthetic: 0.6 [0.5, 0.7]"]
    scale = (end - start) / 0.6
    for label, (value, lo, hi) in {
        "A, real: 0.9 [0.85, 0.95]": (0.9, 0.85, 0.95),
        "B, real: 0.2 [0.1, 0.3]": (0.2, 0.1, 0.3),
        "A, synthetic: 0.6 [0.5, 0.7]": (0.6, 0.5, 0.7),
    }.items():
        s, e, wl, wh = geometry[label]
        assert s == pytest.approx(start) and e - s == pytest.approx(value * scale, abs=0.2)
        assert wl - s == pytest.approx(lo * scale, abs=0.2) and wh - s == pytest.approx(hi * scale, abs=0.2)
    assert "synthetic: n/a" in svg
    reference = [line for line in root.iter(f"{SVG_NS}line") if line.get("class") == "reference"]
    assert len(reference) == 1 and float(reference[0].get("x1")) == pytest.approx(start + 0.5 * scale, abs=0.2)


def test_scatter_places_points_by_their_data_and_labels_them():
    svg = kit.svg_scatter(
        [(50.0, 0.7, "2"), (90.0, 0.9, "5"), (60.0, 0.6, "1"), (None, 0.5, "x"), (70.0, math.nan, "y")],
        "FID",
        "AUROC",
        "FID vs AUROC",
    )
    root = ET.fromstring(svg)
    circles = {
        c.find(f"{SVG_NS}title").text.split(":")[0]: (float(c.get("cx")), float(c.get("cy")))
        for c in root.iter(f"{SVG_NS}circle")
    }
    assert set(circles) == {"2", "5", "1"}
    assert circles["2"][0] < circles["1"][0] < circles["5"][0]  # x grows to the right
    assert circles["5"][1] < circles["2"][1] < circles["1"][1]  # y grows upwards
    (x0, y0), (x1, y1) = circles["2"], circles["5"]  # linear: "1" lies on the scale
    assert circles["1"][0] == pytest.approx(x0 + (x1 - x0) * 10 / 40, abs=0.2)
    assert circles["1"][1] == pytest.approx(y0 + (y1 - y0) * -0.1 / 0.2, abs=0.2)
    labels = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {"2", "5", "1", "FID", "AUROC", "FID vs AUROC"} <= labels
    assert "no points" in kit.svg_scatter([(None, 1, "a")], "x", "y", "empty")
    ET.fromstring(kit.svg_scatter([(1.0, 1.0, "<&>")], "x & y", "y", "one point"))


# -- experiments: sweeps and seed replicates -------------------------------------------------------------


def expected_sweep_point(g: float) -> tuple[float, float, float]:
    """The metrics the scratch project behind tests/fixtures/exp_show.json computed from its guidance:
    FID 50 + 12 |g - 2.2|^1.3, coverage 0.75 - 0.07 g, faithfulness the mean of two findings' synthetic AUROCs
    0.6 + 0.06 g and 0.55 + 0.07 g (a NaN and a null third and fourth finding are left out)."""
    return 50 + 12 * abs(g - 2.2) ** 1.3, 0.75 - 0.07 * g, ((0.6 + 0.06 * g) + (0.55 + 0.07 * g)) / 2


def test_runs_are_read_from_a_real_exp_show_capture():
    runs = {r["name"]: r for r in experiments.runs_from_exp_show(json.loads((DATA / "exp_show.json").read_text()))}
    # workspace (guidance 2, not committed), the baseline commit "main" (3), a plain `dvc exp run` (1, whose FID
    # is a plain float), a queued run that succeeded (5), one still queued (7) and one that failed ("bad")
    assert set(runs) == {"workspace", "main", "guid-1", "guid-5", "guid-7", "guid-bad"}
    for name, g in {"workspace": 2.0, "main": 3.0, "guid-1": 1.0, "guid-5": 5.0}.items():
        fid, coverage, faithfulness = expected_sweep_point(g)
        r = runs[name]
        assert r["params"] == {"sample.guidance_scale": g, "sample.steps": 10}
        assert r["metrics"]["unconditional_fid"][0] == pytest.approx(fid, abs=1e-4)
        assert r["metrics"]["unconditional_coverage"][0] == pytest.approx(coverage, abs=1e-4)
        assert r["metrics"]["faithfulness"][0] == pytest.approx(faithfulness, abs=1e-4)
        assert "finding:Pneumothorax" not in r["metrics"] and "finding:Edema" not in r["metrics"]
        assert "conditioned_fid" not in r["metrics"]  # this capture's faithfulness.json predates all_studies
    assert [runs[n]["kind"] for n in ("workspace", "main", "guid-1")] == ["workspace", "baseline", "experiment"]
    assert runs["guid-7"]["state"] == "queued" and runs["guid-7"]["params"]["sample.guidance_scale"] == 7.0
    # the failed run carries the metrics of the workspace it started from: they must not count as its own
    assert runs["guid-bad"]["state"] == "failed"
    assert runs["guid-7"]["metrics"] == {} and runs["guid-bad"]["metrics"] == {}


def test_headline_metrics_pick_each_set_and_skip_baselines_and_non_numbers():
    evaluate = {
        "fid_a_noise_baseline": 1500.0,
        "fid_b": {"value": 80.0, "low": 70.0, "high": 90.0},
        "prdc_b": {"coverage": {"value": 0.4}, "precision": 0.9},
        "laterality": {"auroc_right_vs_left": iv(0.74, 0.56, 0.91, 16)},
        "adherence_b": {
            "prompt001": {
                "auroc_vs_null": iv(0.9, 0.8, 1.0, 16),
                "finding": "Cardiomegaly",
                "auroc_vs_normal": iv(0.99, 0.95, 1.0, 16),
            },
            "prompt002": {"auroc_vs_null": 0.7, "auroc_vs_normal": 0.97},
        },
        "ms_ssim_samples": iv(0.68, 0.66, 0.69, 64),
    }
    faithfulness = {
        "findings": {
            "A": {"synthetic_auroc": 0.6, "real_auroc": 0.9},
            "B": {"synthetic_auroc": {"value": 0.8}, "real_auroc": 1.0},
            "C": {"synthetic_auroc": {"value": math.nan}, "real_auroc": 0.5},
            "D": {"skipped": "x"},
        },
        "all_studies": {"fid": iv(27.0, 3.0, 35.6, 61), "coverage": iv(0.7, 0.59, 0.82, 61)},
    }
    m = experiments.headline_metrics(evaluate, faithfulness)
    assert m["unconditional_fid"] == (80.0, 70.0, 90.0) and m["unconditional_coverage"] == (0.4, None, None)
    assert m["unconditional_precision"] == (0.9, None, None)
    assert m["conditioned_fid"] == (27.0, 3.0, 35.6) and m["conditioned_coverage"] == (0.7, 0.59, 0.82)
    assert m["finding:A"] == (0.6, None, None) and "finding:C" not in m and "finding:D" not in m
    assert m["faithfulness"][0] == pytest.approx(0.7) and m["faithfulness_ceiling"][0] == pytest.approx(0.95)
    assert m["faithfulness_ratio"][0] == pytest.approx(0.7 / 0.95)
    assert m["laterality"] == (0.74, 0.56, 0.91) and m["adherence:prompt001"] == (0.9, 0.8, 1.0)
    assert m["adherence"][0] == pytest.approx(0.8) and m["diversity_ms_ssim"] == (0.68, 0.66, 0.69)
    assert m["adherence_normal:prompt001"] == (0.99, 0.95, 1.0) and m["adherence_normal"][0] == pytest.approx(0.98)
    # the stage's own means win over the fallback
    m = experiments.headline_metrics({}, faithfulness | {"mean_synthetic_auroc": 0.75, "mean_real_auroc": 0.97})
    assert m["faithfulness"][0] == 0.75 and m["faithfulness_ceiling"][0] == 0.97
    assert experiments.headline_metrics({"fid_x": {"value": None}}, {"findings": []}) == {}
    realism = {"reconstructions": iv(0.61, 0.55, 0.68, 124), "control_blurred": iv(1.0, 1.0, 1.0, 128)}
    m = experiments.headline_metrics({}, {"findings": []}, realism)
    assert m == {"realism_reconstructions": (0.61, 0.55, 0.68)}  # the controls are the page's, not a headline


def test_the_realism_table_shows_every_comparison_with_its_images():
    entry = iv(0.97, 0.94, 0.99, 256) | {"n_positive": 124, "n_negative": 128, "black_share_auroc": 0.5}
    realism = {
        "control_real_vs_real": iv(0.52, 0.45, 0.59, 256) | {"n_positive": 128, "n_negative": 128},
        "reconstructions": entry | {"sharpness_auroc": iv(0.9, 0.86, 0.94, 252)},
        "intervals": {"level": 0.95},
    }
    html = page.summary_html({"realism": realism})
    assert "Realism" in html and "real films vs other real films" in html and "124 generated" in html
    assert "reconstructions of held-out films" in html and "0.9" in html
    assert "unconditional samples" not in html  # absent from the file, absent from the table


def test_a_workspace_that_repeats_an_experiment_is_dropped():
    data = json.loads((DATA / "exp_show.json").read_text())
    experiment = data[1]["experiments"][0]["revs"][0]
    data[0]["data"] = json.loads(json.dumps(experiment["data"]))
    names = [r["name"] for r in experiments.runs_from_exp_show(data)]
    assert "workspace" not in names and experiment["name"] in names


def test_out_names_open_in_a_browser():
    assert [experiments.html_path(p).name for p in ("guid", "a.html", "b.HTM", "sweep.v2", "dir/x")] == [
        "guid.html",
        "a.html",
        "b.HTM",
        "sweep.v2.html",
        "x.html",
    ]


def _rev(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def capture(runs: list[tuple[str, dict, dict, dict]]) -> list:
    """A `dvc exp show --json` made from the real capture's rows: the first of `runs` (name, params,
    evaluate.json, faithfulness.json) is the baseline commit "main" and the workspace (a clean checkout of
    it), the others its experiments, run from the queue and succeeded."""
    real = json.loads((DATA / "exp_show.json").read_text())
    workspace, baseline = real[0], real[1]
    template = next(e for e in baseline["experiments"] if e["name"] == "guid-5")

    def fill(row: dict, params: dict, evaluate: dict, faithfulness: dict) -> dict:
        row["data"]["params"]["params.yaml"]["data"] = params
        row["data"]["metrics"]["metrics/evaluate.json"]["data"] = evaluate
        row["data"]["metrics"]["metrics/faithfulness.json"]["data"] = faithfulness
        return row

    (_, *first), *others = runs
    fill(baseline, *first)
    fill(workspace, *json.loads(json.dumps(first)))
    baseline["experiments"] = []
    for name, *contents in others:
        experiment = json.loads(json.dumps(template))
        row = fill(experiment["revs"][0], *contents)
        experiment["name"] = row["name"] = name
        row["rev"] = row["data"]["rev"] = experiment["executor"]["local"]["task_id"] = _rev(name)
        baseline["experiments"].append(experiment)
    return json.loads(json.dumps(real))


def metrics_of(guidance: float, seed: int) -> tuple[dict, dict, dict]:
    """params.yaml, evaluate.json and faithfulness.json of a demo run as the stages write them (lists
    dropped, as `dvc exp show` drops them). Guidance leaves the unconditional samples as they are: evaluate's
    FID and coverage depend on the training seed only; the report-conditioned set moves with guidance."""
    params = {"sample": {"guidance_scale": guidance, "steps": 10, "seed": 0}, "train_ldm": {"lr": 0.0004, "seed": seed}}
    wobble = 0.02 * (seed - 1)  # training runs differ
    evaluate = {
        "fid_evaluator_cnn": {"value": 47.88 + 3 * seed, "low": 22.8, "high": 61.6, "resamples": 1000},
        "fid_evaluator_cnn_blur_baseline": 112.1,
        "prdc_evaluator_cnn": {
            "coverage": {"value": 0.623 - 0.01 * seed, "low": 0.49, "high": 0.74},
            "precision": {"value": 0.98, "low": 0.95, "high": 1.0},
            "k": 5,
        },
        "laterality": {
            "auroc_right_vs_left": {"value": 0.6 + 0.05 * guidance + wobble, "low": 0.5, "high": 0.95},
            "n_left": 16,
        },
        "adherence_evaluator_cnn": {
            "prompt001": {"auroc_vs_null": {"value": 0.7 + 0.04 * guidance, "low": 0.6, "high": 1.0}}
        },
        "ms_ssim_samples": {"value": 0.677, "low": 0.659, "high": 0.692},
    }
    synthetic = min(0.99, 0.6 + 0.06 * guidance + wobble)
    faithfulness = {
        "mean_synthetic_auroc": synthetic,
        "mean_real_auroc": 0.97,
        "findings": {
            "Cardiomegaly": {
                "synthetic_auroc": {"value": synthetic, "low": synthetic - 0.08, "high": min(1.0, synthetic + 0.07)},
                "real_auroc": {"value": 0.97, "low": 0.94, "high": 1.0},
            }
        },
        "all_studies": {
            "fid": {"value": 20 + 6 * guidance + 2 * seed, "low": 3.0 + 5 * guidance, "high": 35 + 6 * guidance},
            "coverage": {"value": 0.8 - 0.05 * guidance, "low": 0.6 - 0.05 * guidance, "high": 0.9 - 0.05 * guidance},
            "precision": {"value": 0.79, "low": 0.67, "high": 0.89},
            "recall": {"value": 0.79, "low": 0.69, "high": 0.89},
        },
    }
    return params, evaluate, faithfulness


def circles(chart: ET.Element) -> dict[str, tuple[float, float]]:
    return {
        c.find(f"{SVG_NS}title").text.split(":")[0]: (float(c.get("cx")), float(c.get("cy")))
        for c in chart.iter(f"{SVG_NS}circle")
    }


def chart_titled(text: str, title: str) -> ET.Element:
    return next(chart for chart in svgs(text) if chart.find(f"{SVG_NS}title").text == title)


def test_the_guidance_sweep_plots_the_fidelity_of_the_guided_images(tmp_path):
    """`dvc exp run --queue -S sample.guidance_scale=1,2,5,7` on a commit at 3: evaluate.json's FID and
    coverage are the same for every guidance (they measure the unconditional samples); the plotted FID and
    coverage must be the report-conditioned set's, which guidance moves."""
    guidance = {"main": 3.0, "exp-g1": 1.0, "exp-g2": 2.0, "exp-g5": 5.0, "exp-g7": 7.0}
    path = tmp_path / "exp_show.json"
    path.write_text(json.dumps(capture([(name, *metrics_of(g, 0)) for name, g in guidance.items()])))
    out = tmp_path / "metrics" / "guidance_sweep.html"
    sweep.main(["--json", str(path), "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["swept_params"] == ["sample.guidance_scale"] and data["fidelity_sets"] == ["conditioned"]
    assert [g["label"] for g in data["groups"]] == ["1", "2", "3", "5", "7"]
    text = out.read_text()
    assert_offline(text)
    assert len(svgs(text)) == 4 and "FID (unconditional)" not in text.split('id="groups')[0]
    for metric, fidelity in (("FID", lambda g: 20 + 6 * g), ("coverage", lambda g: 0.8 - 0.05 * g)):
        points = circles(chart_titled(text, f"{metric} (report-conditioned) vs mean faithfulness AUROC"))
        assert set(points) == {"1", "2", "3", "5", "7"}
        xs = {float(k): x for k, (x, _) in points.items()}
        # x follows the report-conditioned fidelity linearly: not one vertical line
        (g0, x0), (g1, x1) = (1.0, xs[1.0]), (7.0, xs[7.0])
        assert abs(x1 - x0) > 100
        for g, x in xs.items():
            assert x == pytest.approx(
                x0 + (x1 - x0) * (fidelity(g) - fidelity(g0)) / (fidelity(g1) - fidelity(g0)), abs=0.2
            )


def test_seed_replicates_come_out_as_one_group_with_their_spread(tmp_path):
    """`dvc exp run --queue -S train_ldm.seed=1,2` on a commit with seed 0: one recipe, three training runs."""
    runs = [(name, *metrics_of(3.0, seed)) for name, seed in (("main", 0), ("seed-1", 1), ("seed-2", 2))]
    path = tmp_path / "exp_show.json"
    path.write_text(json.dumps(capture(runs)))
    out = tmp_path / "metrics" / "experiments.html"
    experiments.main(["--json", str(path), "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["swept_params"] == [] and data["seed_params"] == ["train_ldm.seed"]
    assert data["fidelity_sets"] == ["conditioned", "unconditional"]  # a training seed changes both sets
    (group,) = data["groups"]
    assert group["runs"] == ["main", "seed-1", "seed-2"]
    values = [0.6 + 0.18 + 0.02 * (seed - 1) for seed in (0, 1, 2)]
    faithfulness = group["metrics"]["faithfulness"]
    assert faithfulness["mean"] == pytest.approx(sum(values) / 3) and faithfulness["n"] == 3
    assert faithfulness["sd"] == pytest.approx(0.02) and faithfulness["min"] == pytest.approx(values[0])
    assert faithfulness["max"] == pytest.approx(values[2])
    ratio = group["metrics"]["faithfulness_ratio"]
    assert ratio["mean"] == pytest.approx(sum(values) / 3 / 0.97)
    for key in (
        "finding:Cardiomegaly",
        "laterality",
        "adherence",
        "conditioned_fid",
        "conditioned_coverage",
        "unconditional_fid",
        "unconditional_coverage",
        "diversity_ms_ssim",
    ):
        assert group["metrics"][key]["n"] == 3, key
    assert group["metrics"]["unconditional_fid"]["sd"] == pytest.approx(3.0)
    text = out.read_text()
    assert_offline(text)
    # every run's value with its image interval, then the spread over runs, and what each is over
    table = re.search(r'<section id="group-all-runs-every-run">(.*?)</section>', text, re.S)[1]
    assert "<th>main</th><th>seed-1</th><th>seed-2</th><th>mean</th><th>sd</th>" in table
    assert kit.format_value({"value": values[1], "low": values[1] - 0.08, "high": values[1] + 0.07}) in table
    assert "bootstrap intervals over images" in text and "differ only in train_ldm.seed" in text
    assert "\u00b1 0.02 (" in text  # mean +- sd in the groups table
    # the charts show each training run labelled by its seed, for both image sets
    assert len(svgs(text)) == 6  # FID and coverage of both sets; laterality, adherence vs the first
    for title in ("FID (report-conditioned) vs laterality AUROC", "FID (unconditional) vs mean faithfulness AUROC"):
        assert set(circles(chart_titled(text, title))) == {"seed 0", "seed 1", "seed 2"}
    rows = list(csv.DictReader(io.StringIO(out.with_suffix(".csv").read_text())))
    assert [(r["name"], r["train_ldm.seed"], r["group"]) for r in rows] == [
        ("main", "0", "all runs"),
        ("seed-1", "1", "all runs"),
        ("seed-2", "2", "all runs"),
    ]


def test_a_value_queued_as_3_joins_the_baseline_s_3_point_0(tmp_path):
    """`dvc exp run -S sample.guidance_scale=3` stores the int 3; params.yaml holds 3.0. One recipe, one
    group (as the demo's sweep queued them)."""
    runs = [("main", *metrics_of(3.0, 0)), ("g3-s1", *metrics_of(3, 1)), ("g5-s1", *metrics_of(5, 1))]
    path = tmp_path / "exp_show.json"
    path.write_text(json.dumps(capture(runs)))
    data = experiments.write_report(
        tmp_path / "sweep.html", experiments.runs_from_exp_show(json.loads(path.read_text()))
    )
    assert [(g["label"], g["runs"]) for g in data["groups"]] == [("3", ["main", "g3-s1"]), ("5", ["g5-s1"])]


def test_a_sweep_over_training_seeds_draws_one_point_per_value_with_its_range(tmp_path):
    runs = [("main", *metrics_of(3.0, 0))] + [
        (f"g{g:g}-s{s}", *metrics_of(g, s)) for g in (1.0, 3.0, 5.0) for s in (0, 1, 2) if (g, s) != (3.0, 0)
    ]
    path = tmp_path / "exp_show.json"
    path.write_text(json.dumps(capture(runs)))
    out = tmp_path / "sweep.html"
    data = experiments.write_report(out, experiments.runs_from_exp_show(json.loads(path.read_text())))
    assert data["swept_params"] == ["sample.guidance_scale"] and data["seed_params"] == ["train_ldm.seed"]
    assert [(g["label"], len(g["runs"])) for g in data["groups"]] == [("1", 3), ("3", 3), ("5", 3)]
    chart = chart_titled(out.read_text(), "FID (report-conditioned) vs mean faithfulness AUROC")
    points = circles(chart)
    assert set(points) == {"1 (n=3)", "3 (n=3)", "5 (n=3)"}  # three labelled points, not nine
    # each point sits at its group's mean, its vertical whisker spans the group's min to max
    stats = {g["label"] + " (n=3)": g["metrics"]["faithfulness"] for g in data["groups"]}
    (a, (_, ya)), (b, (_, yb)) = sorted(points.items())[0], sorted(points.items())[-1]
    scale = (yb - ya) / (stats[b]["mean"] - stats[a]["mean"])
    whiskers = [
        re.search(r"M([\d.]+) ([\d.]+)V([\d.]+)", p.get("d")).groups()
        for p in chart.iter(f"{SVG_NS}path")
        if p.get("class") == "whisker"
    ]
    for name, (x, y) in points.items():
        x_, low, high = next((float(v) for v in w) for w in whiskers if abs(float(w[0]) - x) < 0.05)
        assert y == pytest.approx(ya + (stats[name]["mean"] - stats[a]["mean"]) * scale, abs=0.2)
        assert low == pytest.approx(ya + (stats[name]["min"] - stats[a]["mean"]) * scale, abs=0.2)
        assert high == pytest.approx(ya + (stats[name]["max"] - stats[a]["mean"]) * scale, abs=0.2)
    assert len(list(csv.DictReader(io.StringIO(out.with_suffix(".csv").read_text())))) == 9


def with_train_params(run: tuple, **train_ldm) -> tuple:
    name, params, evaluate, faithfulness = run
    params = json.loads(json.dumps(params))
    params["train_ldm"].update(train_ldm)
    return name, params, evaluate, faithfulness


def test_where_and_default_put_one_recipe_s_runs_in_the_view(tmp_path, capsys):
    """An experiments list holding two sweeps: lr 4e-4 runs made before `lr_schedule` existed, lr 8e-4 runs
    with it constant, and one with it cosine. --where keeps one recipe (8e-4 written as dvc -S takes it),
    --default lets the older runs join the constant ones."""
    runs = [with_train_params(("main", *metrics_of(3.0, 0)), lr=0.0008, lr_schedule="constant")]
    runs += [with_train_params((f"old-s{s}", *metrics_of(3.0, s))) for s in (0, 1)]  # lr 4e-4, no schedule
    runs += [with_train_params((f"new-s{s}", *metrics_of(3.0, s)), lr=0.0008, lr_schedule="constant") for s in (1, 2)]
    runs += [with_train_params(("cos-s1", *metrics_of(3.0, 1)), lr=0.0008, lr_schedule="cosine")]
    path = tmp_path / "exp_show.json"
    path.write_text(json.dumps(capture(runs)))
    out = tmp_path / "view.html"
    experiments.main(
        [
            "--json",
            str(path),
            "--out",
            str(out),
            "--where",
            "train_ldm.lr=8e-4",
            "--where",
            "train_ldm.lr_schedule=constant",
        ]
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in data["runs"]] == ["main", "new-s1", "new-s2"]
    assert data["swept_params"] == [] and [g["runs"] for g in data["groups"]] == [["main", "new-s1", "new-s2"]]
    experiments.main(
        [
            "--json",
            str(path),
            "--out",
            str(out),
            "--where",
            "train_ldm.lr_schedule=constant",
            "--default",
            "train_ldm.lr_schedule=constant",
        ]
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert {r["name"] for r in data["runs"]} == {"main", "old-s0", "old-s1", "new-s1", "new-s2"}
    assert [(g["label"], g["runs"]) for g in data["groups"]] == [
        ("0.0004", ["old-s0", "old-s1"]),
        ("0.0008", ["main", "new-s1", "new-s2"]),
    ]
    for bad, message in (
        (["--where", "train_ldm.lr"], "expected PARAM=VALUE"),
        (["--where", "train_ldm.lrr=1"], "--where train_ldm.lrr: no run has this param"),
    ):
        with pytest.raises(SystemExit, match=re.escape(message)):
            experiments.main(["--json", str(path), "--out", str(out), *bad])


def test_a_baseline_that_repeats_an_experiment_is_no_replicate():
    """Seeds 0, 1, 2 queued on a commit whose params are seed 0: its row and the seed-0 experiment are one
    training run, counted once, also where the commit's metrics are stale (an evaluate change re-ran there);
    a baseline with params of its own stays."""
    runs = [("main", *metrics_of(3.0, 0))] + [(f"s{s}", *metrics_of(3.0, s)) for s in (0, 1, 2)]
    names = [r["name"] for r in experiments.runs_from_exp_show(capture(runs))]
    assert names == ["s0", "s1", "s2"]
    runs[1] = ("s0", metrics_of(3.0, 0)[0], metrics_of(3.0, 3)[1], metrics_of(3.0, 3)[2])  # re-evaluated
    kept = experiments.runs_from_exp_show(capture(runs))
    assert [r["name"] for r in kept] == ["s0", "s1", "s2"]
    assert kept[0]["metrics"] == experiments.runs_from_exp_show(capture([runs[1]]))[0]["metrics"]  # the experiment's
    for state in ("failed", "running", "queued"):  # an s0 with no metrics yet hides nothing
        data = capture(runs)
        data[1]["experiments"][0]["executor"]["state"] = state
        kept = {r["name"]: r for r in experiments.runs_from_exp_show(data)}
        assert list(kept) == ["main", "s0", "s1", "s2"] and kept["main"]["metrics"] and not kept["s0"]["metrics"]
    runs[0] = ("main", *metrics_of(3.0, 7))  # seed 7: a run of its own
    assert [r["name"] for r in experiments.runs_from_exp_show(capture(runs))] == ["main", "s0", "s1", "s2"]
    # another commit with seed 0 (other code, other metrics) is no repeat of this commit's seed-0 experiment
    data = capture(runs)
    other = json.loads(json.dumps(data[1]))
    other.update(rev="0" * 40, name="older", experiments=[])
    other["data"]["params"] = data[1]["experiments"][0]["revs"][0]["data"]["params"]  # s0's params
    assert [r["name"] for r in experiments.runs_from_exp_show(data + [other])] == ["main", "s0", "s1", "s2", "older"]


def test_the_real_capture_draws_no_unconditional_fidelity_for_guidance(tmp_path, capsys):
    """The capture's faithfulness.json predates the report-conditioned set: the guidance sweep then draws no
    fidelity at all rather than the unconditional one; runs and states are all in the tables and the CSV."""
    out = tmp_path / "metrics" / "guidance_sweep.html"
    sweep.main(["--json", str(DATA / "exp_show.json"), "--out", str(out)])
    text = out.read_text()
    assert_offline(text)
    assert all(not list(chart.iter(f"{SVG_NS}circle")) for chart in svgs(text))
    assert "no points with both FID (report-conditioned) and mean faithfulness AUROC" in text
    rows = list(csv.DictReader(io.StringIO(out.with_suffix(".csv").read_text())))
    assert [r["name"] for r in rows] == ["workspace", "main", "guid-5", "guid-1", "guid-7", "guid-bad"]
    by_name = {r["name"]: r for r in rows}
    assert float(by_name["guid-5"]["unconditional_fid"]) == pytest.approx(expected_sweep_point(5.0)[0], abs=1e-4)
    assert by_name["guid-bad"]["unconditional_fid"] == "" and by_name["guid-bad"]["state"] == "failed"
    assert by_name["guid-bad"]["group"] == "" and by_name["guid-5"]["group"] == "5"
    assert "6 runs, 4 groups, swept sample.guidance_scale" in capsys.readouterr().out


def test_the_evaluation_page_links_the_sweep_and_shows_the_spread(tmp_path, monkeypatch):
    runs = [(name, *metrics_of(3.0, seed)) for name, seed in (("main", 0), ("seed-1", 1), ("seed-2", 2))]
    path = tmp_path / "exp_show.json"
    path.write_text(json.dumps(capture(runs)))
    experiments.main(["--json", str(path), "--out", str(tmp_path / "metrics" / "experiments")])
    assert (tmp_path / "metrics" / "experiments.html").is_file()
    text, _ = build(tmp_path, monkeypatch, images=False)
    section = re.search(r'<section id="experiments-experiments">(.*?)</section>', text, re.S)[1]
    assert '<a href="experiments.html">experiments.html</a>' in section
    assert re.search(
        r"<th>mean faithfulness AUROC \(synthetic\)</th><td>0\.78 \u00b1 0\.02 \(0\.76 to 0\.8, n=3\)</td>", section
    )
    assert "differ only in train_ldm.seed" in section
    assert [u for u in audit(text).urls if not u[2].startswith(("#", "data:"))] == [("a", "href", "experiments.html")]
    assert "guidance_sweep" not in text


# -- a real browser, where one is installed --------------------------------------------------------------

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)


@pytest.mark.skipif(BROWSER is None, reason="no chromium / google-chrome on PATH to render the page headless")
def test_page_renders_in_a_headless_browser(tmp_path, monkeypatch):
    build(tmp_path, monkeypatch)
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            (tmp_path / "metrics/evaluation.html").as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600)
    low, high = image.getextrema()
    assert high - low > 100, "the screenshot is blank"


def test_memorisation_rows_read_the_stage_s_spaces():
    interval = {"value": 0.02, "low": 0.0, "high": 0.05, "n": 150, "resamples": 1000}
    rows = page.memorisation_rows(
        {
            "n_synthetic": 150,
            "spaces": {
                "evaluator_cnn": {
                    "threshold": 0.7155,
                    "flagged_fraction": interval,
                    "nearest_is_source_fraction": interval,
                    "null_flagged_fraction": 0.0164,
                    "nearest_is_source_patient_fraction": interval,
                }
            },
            "union": {"flagged_fraction": interval, "null_flagged_fraction": 0.03},
        }
    )
    assert rows == [
        [
            "evaluator_cnn",
            kit.format_value(0.7155),
            kit.format_value(interval),
            "0.0164",
            kit.format_value(interval),
            kit.format_value(interval),
        ],
        ["any space (union)", "", kit.format_value(interval), "0.03", "", ""],
    ]


def test_the_planted_copy_table_and_re_identification_rows():
    memorisation = {
        "planted": {
            "shift:2": {"n": 20, "evaluator_cnn": 1, "pixels_32": 0, "copy_detector": 19, "union": 19},
            "mirror": {"n": 20, "evaluator_cnn": 0, "copy_detector": 20, "union": 20},
        },
        "reidentification": {
            "real_test_patients": {
                "n_queries": 24,
                "auroc": {"value": 0.9, "low": 0.8, "high": 0.95, "n": 24},
                "top1": {"value": 0.5, "low": 0.3, "high": 0.7, "n": 24},
                "chance_top1": 0.004,
            }
        },
    }
    header, rows = page.planted_rows(memorisation)
    assert header == ["planted copy", "evaluator_cnn", "pixels_32", "copy_detector", "union"]
    assert rows == [
        ["shift:2", "1 / 20", "0 / 20", "19 / 20", "19 / 20"],
        ["mirror", "0 / 20", "\u2013", "20 / 20", "20 / 20"],
    ]
    [row] = page.reidentification_rows(memorisation)
    assert row[0].startswith("real test film") and row[3] == "0.004" and row[4] == "24"
    html = page.summary_html({"memorisation": memorisation})
    assert "Planted copies" in html and "19 / 20" in html and "Patient re-identification" in html
