"""A blinded reader study's answers (exported by `python -m cxrldm.app.study export`) as metrics.

Each row is one answer: a reader called a film real or synthetic with a confidence from 1 to 5 and may have
ticked the findings they saw. A later row for the same reader and film replaces an earlier one. Intervals
are 95% percentile bootstraps; pooled ones resample films (all of a film's answers together, since the
readers saw the same films), a reader's own ones resample that reader's films. A statistic the answers do
not define (the AUROC of one answer, or of answers on real films only) is None with a note saying why, in
the interval's "note" or, for the mean kappa, in "mean_kappa_note": the metrics are strict JSON.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pandas as pd
import torch

from cxrldm.evaluation.classification import auroc
from cxrldm.evaluation.intervals import bootstrap_interval, mean_interval

COLUMNS = [
    "reader",
    "film",
    "truth",
    "answer",
    "confidence",
    "findings_given",
    "findings_answered",
    "findings_truth",
    "answered_at",
]
CLASSES = ("real", "synthetic")


class AnswersError(ValueError):
    """A malformed answers file: one line naming the file, the column and the row."""


def read_answers(path: str | Path) -> pd.DataFrame:
    """The answers file's last answer per reader and film, checked; one-line AnswersError when malformed."""
    path = Path(path)
    if not path.is_file():
        raise AnswersError(f"{path}: no such answers file (python -m cxrldm.app.study export writes it)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise AnswersError(f"{path}: not a readable answers CSV ({' '.join(str(error).split())})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise AnswersError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    for column in ("truth", "answer"):
        bad = ~table[column].isin(CLASSES)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise AnswersError(
                f"{path}: column {column}, row {row + 1}: {table[column].iloc[row]!r}; expected real or synthetic"
            )
    for column, allowed in (("confidence", {"1", "2", "3", "4", "5"}), ("findings_given", {"0", "1"})):
        bad = ~table[column].isin(allowed)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise AnswersError(
                f"{path}: column {column}, row {row + 1}: {table[column].iloc[row]!r}; "
                f"expected one of {', '.join(sorted(allowed))}"
            )
    if table.groupby("film").truth.nunique().gt(1).any():
        film = table.groupby("film").truth.nunique().gt(1).idxmax()
        raise AnswersError(f"{path}: film {film} is both real and synthetic")
    table = table.drop_duplicates(["reader", "film"], keep="last").reset_index(drop=True)
    return table.astype({"confidence": int, "findings_given": int})


def synthetic_score(answers: pd.DataFrame) -> torch.Tensor:
    """How strongly each answer says synthetic: the confidence when it does, minus the confidence when it
    says real (a 10-step scale from sure-real -5 to sure-synthetic 5)."""
    sign = torch.tensor((answers.answer == "synthetic").to_numpy(), dtype=torch.float64) * 2 - 1
    return sign * torch.tensor(answers.confidence.to_numpy(), dtype=torch.float64)


def auroc_undefined(answers: pd.DataFrame) -> str:
    """Why the AUROC of the confidence would be undefined on these answers (for the interval's note)."""
    needs = "the AUROC needs answers on real and synthetic films"
    if len(answers) == 1:
        return f"one answer; {needs}"
    truths = set(answers.truth)
    return f"answers on {truths.pop()} films only; {needs}" if len(truths) == 1 else needs


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    """Cohen's kappa of two readers' real/synthetic calls on the same films; NaN where chance agreement is 1."""
    observed = float((a.to_numpy() == b.to_numpy()).mean())
    chance = sum(float((a == c).mean()) * float((b == c).mean()) for c in CLASSES)
    return (observed - chance) / (1 - chance) if chance < 1 else float("nan")


def pooled(answers: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Accuracy, the share of synthetic films called real and the AUROC of the confidence over every
    reader's answers, with intervals over films."""
    films = sorted(answers.film.unique())
    position = {film: i for i, film in enumerate(films)}
    rows_of = [torch.tensor(ix) for ix in answers.groupby(answers.film.map(position)).indices.values()]
    correct = torch.tensor((answers.answer == answers.truth).to_numpy(), dtype=torch.float64)
    synthetic = torch.tensor((answers.truth == "synthetic").to_numpy())
    called_real = torch.tensor((answers.answer == "real").to_numpy(), dtype=torch.float64)
    score = synthetic_score(answers)

    def statistic(index):
        rows = torch.cat([rows_of[i] for i in index])
        fooled = called_real[rows][synthetic[rows]]
        return {
            "accuracy": correct[rows].mean(),
            "auroc_confidence": auroc(score[rows], synthetic[rows]),
            "synthetic_called_real": fooled.mean() if len(fooled) else float("nan"),
        }

    undefined = {"auroc_confidence": auroc_undefined(answers), "synthetic_called_real": "no answer on a synthetic film"}
    return bootstrap_interval(statistic, len(films), resamples=resamples, seed=seed, undefined=undefined)


def one_reader(answers: pd.DataFrame, resamples: int, seed: int) -> dict:
    correct = torch.tensor((answers.answer == answers.truth).to_numpy(), dtype=torch.float64)
    synthetic = torch.tensor((answers.truth == "synthetic").to_numpy())
    score = synthetic_score(answers)
    result = {
        "answers": len(answers),
        "accuracy": mean_interval(correct, resamples, seed),
        "auroc_confidence": bootstrap_interval(
            lambda i: auroc(score[i], synthetic[i]),
            len(answers),
            resamples=resamples,
            seed=seed,
            undefined=auroc_undefined(answers),
        ),
    }
    if synthetic.any():
        result["synthetic_called_real"] = mean_interval(
            torch.tensor((answers.answer[synthetic.numpy()] == "real").to_numpy(), dtype=torch.float64), resamples, seed
        )
    return result


def agreement(answers: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Cohen's kappa of each pair of readers over the films both answered, with an interval over those films."""
    calls = answers.pivot(index="film", columns="reader", values="answer")
    pairs = {}
    for first, second in combinations(sorted(calls.columns), 2):
        both = calls[[first, second]].dropna()
        if len(both) < 2:
            continue
        a, b = both[first].reset_index(drop=True), both[second].reset_index(drop=True)
        pairs[f"{first} vs {second}"] = bootstrap_interval(
            lambda i: cohen_kappa(a.iloc[i.numpy()], b.iloc[i.numpy()]),
            len(both),
            resamples=resamples,
            seed=seed,
            undefined="both readers gave one and the same call on every film they share, so chance agreement is 1",
        )
    kappas = [p["value"] for p in pairs.values() if p["value"] is not None]
    if kappas:
        return {"pairs": pairs, "mean_kappa": sum(kappas) / len(kappas)}
    why = (
        "every pair's kappa is undefined"
        if pairs
        else "no two readers answered two films in common"
        if answers.reader.nunique() > 1
        else "one reader answered"
    )
    return {"pairs": pairs, "mean_kappa": None, "mean_kappa_note": f"undefined: {why}"}


def by_finding(answers: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Per finding: the real/synthetic accuracy on films that show it (interval over films), and, among
    answers that gave findings, how often readers ticked it on films with it and left it on films without
    (intervals over answers)."""
    truth = answers.findings_truth.str.split(";")
    ticked = answers.findings_answered.str.split(";")
    findings = sorted({f for names in truth for f in names if f})
    result = {}
    for finding in findings:
        has = truth.map(lambda names: finding in names).to_numpy()
        entry = {
            "answers": int(has.sum()),
            "accuracy": pooled(answers[has].reset_index(drop=True), resamples, seed)["accuracy"],
        }
        given = answers.findings_given.to_numpy() == 1
        saw = ticked.map(lambda names: finding in names).to_numpy()
        for name, rows in (("sensitivity", given & has), ("specificity", given & ~has)):
            if rows.any():
                hits = saw[rows] if name == "sensitivity" else ~saw[rows]
                entry[name] = mean_interval(torch.tensor(hits, dtype=torch.float64), resamples, seed)
        result[finding] = entry
    return result


def study_metrics(answers: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Counts, and with answers: pooled and per-reader metrics, agreement and per-finding results."""
    counts = {"n_answers": len(answers), "n_readers": answers.reader.nunique(), "n_films": answers.film.nunique()}
    if not len(answers):
        return counts
    return {
        **counts,
        "real_answers": int((answers.truth == "real").sum()),
        "synthetic_answers": int((answers.truth == "synthetic").sum()),
        "pooled": pooled(answers, resamples, seed),
        "readers": {
            reader: one_reader(group.reset_index(drop=True), resamples, seed)
            for reader, group in answers.groupby("reader")
        },
        "agreement": agreement(answers, resamples, seed),
        "findings": by_finding(answers, resamples, seed),
    }
