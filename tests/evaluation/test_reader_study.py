"""Reader-study metrics from the app's exported answers (cxrldm.evaluation.reader_study): known accuracies,
AUROCs and kappas on constructed answers, the last answer per reader and film counts, intervals over films,
no answers gives the counts alone, and malformed files are one line naming the file, column and row."""

import pandas as pd
import pytest

from cxrldm.evaluation.reader_study import COLUMNS, AnswersError, cohen_kappa, read_answers, study_metrics


def answers_file(tmp_path, rows, name="answers.csv"):
    table = pd.DataFrame(rows, columns=COLUMNS[:5]).assign(
        findings_given=0, findings_answered="", findings_truth="", answered_at="2026-12-05T10:00:00Z"
    )
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


FILMS = [("f1", "real"), ("f2", "real"), ("f3", "synthetic"), ("f4", "synthetic")]


def test_a_perfect_reader_and_a_reader_fooled_by_every_synthetic_film(tmp_path):
    perfect = [("r1", film, truth, truth, 5) for film, truth in FILMS]
    fooled = [("r2", film, truth, "real", 3) for film, truth in FILMS]
    metrics = study_metrics(read_answers(answers_file(tmp_path, perfect + fooled)), 200, 0)
    assert (metrics["n_answers"], metrics["n_readers"], metrics["n_films"]) == (8, 2, 4)
    r1, r2 = metrics["readers"]["r1"], metrics["readers"]["r2"]
    assert r1["accuracy"]["value"] == 1.0 and r1["auroc_confidence"]["value"] == 1.0
    assert r1["synthetic_called_real"]["value"] == 0.0
    assert r2["accuracy"]["value"] == 0.5 and r2["synthetic_called_real"]["value"] == 1.0
    assert r2["auroc_confidence"]["value"] == 0.5  # the same score for every film
    pooled = metrics["pooled"]
    assert pooled["accuracy"]["value"] == 0.75 and pooled["synthetic_called_real"]["value"] == 0.5
    assert pooled["accuracy"]["n"] == 4  # resampled over films, not answers
    assert metrics["agreement"]["pairs"]["r1 vs r2"]["value"] == 0.0  # r2 always says real: chance agreement


def test_confidence_orders_the_films_for_the_auroc():
    from cxrldm.evaluation.reader_study import synthetic_score

    answers = pd.DataFrame({"answer": ["real", "real", "synthetic", "synthetic"], "confidence": [5, 1, 1, 5]})
    assert synthetic_score(answers).tolist() == [-5, -1, 1, 5]


def test_cohen_kappa_of_known_tables():
    a = pd.Series(["real", "real", "synthetic", "synthetic"])
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, a[::-1].reset_index(drop=True)) == -1.0
    # 10 films: agree on 7 (4 real, 3 synthetic); each reader says real 6 times: chance 0.6^2 + 0.4^2 = 0.52
    first = pd.Series(["real"] * 6 + ["synthetic"] * 4)
    second = pd.Series(["real"] * 4 + ["synthetic"] * 2 + ["real"] * 2 + ["synthetic"] * 2)
    assert cohen_kappa(first, second) == pytest.approx((0.6 - 0.52) / 0.48)


def test_a_later_answer_replaces_an_earlier_one_of_the_same_reader_and_film(tmp_path):
    rows = [
        ("r1", "f1", "real", "synthetic", 2),
        ("r1", "f2", "synthetic", "synthetic", 4),
        ("r1", "f1", "real", "real", 4),
    ]
    answers = read_answers(answers_file(tmp_path, rows))
    assert len(answers) == 2 and answers.set_index("film").answer["f1"] == "real"
    assert study_metrics(answers, 50, 0)["readers"]["r1"]["accuracy"]["value"] == 1.0


def test_findings_results_per_finding(tmp_path):
    rows = pd.DataFrame(
        {
            "reader": "r1",
            "film": ["f1", "f2", "f3", "f4"],
            "truth": ["real", "synthetic", "real", "synthetic"],
            "answer": ["real", "real", "real", "synthetic"],
            "confidence": 3,
            "findings_given": [1, 1, 1, 0],
            "findings_answered": ["Cardiomegaly", "", "Cardiomegaly;Edema", ""],
            "findings_truth": ["Cardiomegaly", "Cardiomegaly", "", "Edema"],
            "answered_at": "2026-12-05T10:00:00Z",
        }
    )
    rows.to_csv(tmp_path / "a.csv", index=False)
    findings = study_metrics(read_answers(tmp_path / "a.csv"), 50, 0)["findings"]
    cardiomegaly = findings["Cardiomegaly"]
    assert cardiomegaly["answers"] == 2 and cardiomegaly["accuracy"]["value"] == 0.5
    assert cardiomegaly["sensitivity"]["value"] == 0.5  # ticked on f1, not on f2
    assert cardiomegaly["specificity"]["value"] == 0.0  # ticked on f3, which has none
    assert "sensitivity" not in findings["Edema"]  # f4 gave no findings
    assert findings["Edema"]["specificity"]["value"] == pytest.approx(2 / 3)


def test_no_answers_yet_gives_the_counts_alone(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    assert study_metrics(read_answers(path), 100, 0) == {"n_answers": 0, "n_readers": 0, "n_films": 0}


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("r1", "f1", "real", "maybe", 3)], "column answer, row 1: 'maybe'; expected real or synthetic"),
        ([("r1", "f1", "real", "real", 3), ("r1", "f2", "real", "real", 9)], "column confidence, row 2: '9'"),
        ([("r1", "f1", "real", "real", 3), ("r2", "f1", "synthetic", "real", 3)], "film f1 is both real and synthetic"),
    ],
)
def test_malformed_answers_are_one_line_naming_the_file(tmp_path, rows, message):
    with pytest.raises(AnswersError) as error:
        read_answers(answers_file(tmp_path, rows))
    assert message in str(error.value) and "answers.csv" in str(error.value) and "\n" not in str(error.value)


def test_a_missing_file_or_column_is_one_line(tmp_path):
    with pytest.raises(AnswersError, match="no such answers file"):
        read_answers(tmp_path / "absent.csv")
    (tmp_path / "short.csv").write_text("reader,film\n")
    with pytest.raises(AnswersError, match="missing column\\(s\\) truth, answer"):
        read_answers(tmp_path / "short.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AnswersError, match="empty.csv: not a readable answers CSV"):
        read_answers(tmp_path / "empty.csv")
