"""The guidance sweep: the experiments page (cxrldm/report/experiments.py) under the name
metrics/guidance_sweep.html (with .csv and .json next to it). Same options:

    dvc exp run --queue -S sample.guidance_scale=1,2,5,7 ; dvc queue start
    python -m cxrldm.report.sweep [--out metrics/guidance_sweep.html] [--json FILE] [--param sample.guidance_scale]"""

from cxrldm.report.experiments import main as experiments_main


def main(argv=None) -> None:
    experiments_main(argv, default_out="metrics/guidance_sweep.html")


if __name__ == "__main__":
    main()
