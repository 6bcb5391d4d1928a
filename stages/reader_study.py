"""Stage reader_study: the blinded reader study's exported answers (reader_study.answers, written by
`python -m cxrldm.app.study export`) as metrics/reader_study.json: per-reader and pooled accuracy, the AUROC
of the confidence, the share of synthetic films called real, agreement between readers (Cohen's kappa) and
results per finding, each with a 95% interval (cxrldm.evaluation.reader_study). With no answers yet it
writes the counts (0) and nothing else."""

from cxrldm import paths
from cxrldm.evaluation.reader_study import read_answers, study_metrics
from cxrldm.io import write_json
from stages.common import load_params, run


def main():
    params = load_params()
    answers = read_answers(params["reader_study"]["answers"])
    e = params["evaluate"]
    metrics = study_metrics(answers, e["resamples"], e["seed"])
    write_json(paths.metrics("reader_study"), metrics)
    print(f"{metrics['n_answers']} answers from {metrics['n_readers']} readers on {metrics['n_films']} films")


if __name__ == "__main__":
    run(main)
