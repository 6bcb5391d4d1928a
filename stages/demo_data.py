"""Stage demo_data: generate the embedded demo dataset in MIMIC-CXR layout under data/demo."""

from functools import partial

from cxrldm import paths
from cxrldm.demo import dataset as demo
from cxrldm.io import atomic_dir, write_json
from stages.common import load_params, progress, run, workers

OUT = paths.DEMO


def main():
    p = load_params()["demo_data"]
    with atomic_dir(OUT) as tmp:
        counts = demo.generate(
            tmp,
            n_studies=p["n_studies"],
            seed=p["seed"],
            min_side=p["min_side"],
            workers=workers(),
            progress=partial(progress, desc="demo images"),
        )
    write_json(paths.metrics("demo_data"), counts)
    print(counts)


if __name__ == "__main__":
    run(main)
