"""Every JSON file the project writes is strict JSON (RFC 8259: no NaN or Infinity, which strict parsers
reject): the committed metrics parse with a parser that refuses them, write_json refuses them with one line
naming the file and the keys and writes nothing, its bytes are those of the committed metrics, and a reader
study in which a reader answered once writes null with a note where the AUROC is undefined."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cxrldm.evaluation.intervals import bootstrap_interval, noted
from cxrldm.evaluation.reader_study import COLUMNS
from cxrldm.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def refuse(constant):
    raise ValueError(f"{constant} is not JSON")


def strict_loads(text: str):
    return json.loads(text, parse_constant=refuse)


def test_the_strict_parser_refuses_what_python_writes_for_nan_and_infinity():
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="is not JSON"):
            strict_loads(json.dumps({"auroc": value}))


def committed_json() -> list[Path]:
    return sorted([*ROOT.glob("metrics/**/*.json"), *ROOT.glob("dvclive/**/*.json")])


def test_every_committed_metrics_file_is_strict_json():
    files = committed_json()
    assert ROOT / "metrics/reader_study.json" in files and ROOT / "metrics/evaluate.json" in files
    for path in files:
        try:
            strict_loads(path.read_text())
        except ValueError as error:
            pytest.fail(f"{path.relative_to(ROOT)}: {error}")


def test_write_json_gives_the_committed_metrics_byte_for_byte(tmp_path):
    """Indentation, key order and float formatting unchanged: rewriting each stage's metrics file gives its bytes
    (experiments.json, written by cxrldm.report.experiments with indent 1 in its own key order, aside)."""
    files = [p for p in committed_json() if p.name != "experiments.json"]
    assert len(files) > 10
    for path in files:
        write_json(tmp_path / "again.json", json.loads(path.read_text()))
        assert (tmp_path / "again.json").read_bytes() == path.read_bytes(), path


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_write_json_refuses_a_non_finite_number_naming_the_file_and_the_key_and_writes_nothing(tmp_path, value):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": 1}\n')
    with pytest.raises(ValueError) as caught:
        write_json(path, {"pooled": {"auroc": {"value": value}}, "rows": [1.0, value]})
    message = str(caught.value)
    assert message.startswith(f"{path}: pooled.auroc.value, rows[1]: not a finite number") and "\n" not in message
    assert path.read_text() == '{"old": 1}\n' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_undefined_statistic_is_null_with_a_note_and_a_defined_one_is_unchanged():
    defined = bootstrap_interval(lambda i: i.double().mean(), 5, resamples=20)
    assert "note" not in defined and defined["value"] == 2.0
    assert noted(defined) == defined
    one_class = bootstrap_interval(lambda i: math.nan, 3, resamples=20, undefined="one class only")
    assert (one_class["value"], one_class["low"], one_class["high"]) == (None, None, None)
    assert one_class["note"] == "undefined: one class only" and one_class["resamples"] == 0
    bounds = noted({"value": 0.5, "low": math.nan, "high": math.nan, "n": 2, "resamples": 0}, "one class only")
    assert bounds["value"] == 0.5 and bounds["note"] == "interval undefined: no resample gave a number (one class only)"


def test_a_reader_study_in_which_a_reader_answered_once_writes_strict_json(tmp_path, monkeypatch):
    """r1 answers four films, r2 one: r2's AUROC is null with the reason beside it, never a bare NaN; the
    stage's own file (stages/reader_study.py) parses strictly."""
    rows = [
        ("r1", "f1", "real", "real", 4),
        ("r1", "f2", "real", "synthetic", 2),
        ("r1", "f3", "synthetic", "synthetic", 5),
        ("r1", "f4", "synthetic", "real", 3),
        ("r2", "f1", "real", "real", 3),
    ]
    table = pd.DataFrame(rows, columns=COLUMNS[:5]).assign(
        findings_given=0, findings_answered="", findings_truth="", answered_at="2026-12-05T10:00:00Z"
    )
    table.to_csv(tmp_path / "answers.csv", index=False)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"reader_study": {"answers": "answers.csv"}, "evaluate": {"resamples": 50, "seed": 0}})
    )
    monkeypatch.chdir(tmp_path)
    from stages import reader_study

    reader_study.main()
    metrics = strict_loads((tmp_path / "metrics/reader_study.json").read_text())
    r2 = metrics["readers"]["r2"]["auroc_confidence"]
    assert (r2["value"], r2["low"], r2["high"]) == (None, None, None)
    assert r2["note"] == "undefined: one answer; the AUROC needs answers on real and synthetic films"
    assert metrics["readers"]["r1"]["auroc_confidence"]["value"] == 0.75 and "note" not in metrics["pooled"]["accuracy"]
    assert metrics["agreement"] == {
        "pairs": {},
        "mean_kappa": None,
        "mean_kappa_note": "undefined: no two readers answered two films in common",
    }


def test_one_answer_in_all_leaves_every_undefined_statistic_null_with_its_reason(tmp_path):
    from cxrldm.evaluation.reader_study import read_answers, study_metrics

    table = pd.DataFrame([("r1", "f1", "real", "real", 4)], columns=COLUMNS[:5]).assign(
        findings_given=0, findings_answered="", findings_truth="", answered_at="2026-12-05T10:00:00Z"
    )
    table.to_csv(tmp_path / "answers.csv", index=False)
    metrics = study_metrics(read_answers(tmp_path / "answers.csv"), 50, 0)
    write_json(tmp_path / "reader_study.json", metrics)
    pooled = strict_loads((tmp_path / "reader_study.json").read_text())["pooled"]
    assert pooled["accuracy"]["value"] == 1.0
    assert pooled["auroc_confidence"]["note"].startswith("undefined: one answer")
    assert pooled["synthetic_called_real"] == {
        "value": None,
        "low": None,
        "high": None,
        "n": 1,
        "resamples": 0,
        "note": "undefined: no answer on a synthetic film",
    }
    assert metrics["agreement"]["mean_kappa_note"] == "undefined: one reader answered"


def test_the_other_undefined_statistics_are_null_with_a_note(tmp_path):
    """The memorisation audit's quantiles of no distances and an AUROC without one of the classes."""
    import torch

    from cxrldm.evaluation import classification, memorisation

    null = torch.rand(50, generator=torch.Generator().manual_seed(0))
    audit = memorisation.audit(torch.tensor([], dtype=torch.float64), null, 1)
    assert (
        audit["synthetic_quantiles"]["note"] == "undefined: no distances"
        and audit["synthetic_quantiles"]["p50"] is None
    )
    one_class = classification.auroc_interval(torch.rand(4), torch.ones(4), 20, 0)
    assert one_class["value"] is None and one_class["note"] == "undefined: no negative item with a known label"
    no_positive = classification.positive_vs_all(torch.rand(4), torch.zeros(4), 20, 0)
    assert no_positive["value"] is None and no_positive["note"] == "undefined: no positive item with a known label"
    write_json(tmp_path / "m.json", {"audit": audit, "one_class": one_class, "no_positive": no_positive})
    strict_loads((tmp_path / "m.json").read_text())
