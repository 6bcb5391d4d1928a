"""Stage realism: can a freshly trained CNN tell real films from what the model makes? A classifier
two-sample test (cxrldm.evaluation.realism) of the same real training films against the autoencoder's
reconstructions of held-out films, the unconditional samples and the report-conditioned samples, with two
controls that bound it: other real films (near 0.5) and those films blurred (clearly above). Each AUROC
has its 95% bootstrap interval over images, in metrics/realism.json."""

import torch

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.data.filters import gaussian_blur
from cxrldm.evaluation import samples
from cxrldm.evaluation.realism import to_8bit, two_sample_test
from cxrldm.io import write_json
from cxrldm.models import networks as nets
from cxrldm.models.autoencoder import reconstruct
from cxrldm.models.training import setup_runtime
from stages.common import load_params, progress, run


def films(p: dict, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(real, other real, held-out originals): two disjoint draws of `realism.images` training films, and up
    to that many validation and test films for the autoencoder to reconstruct."""
    n = p["images"]
    train = read_split(paths.RESIZED, "train")
    if len(train) < 2 * n:
        raise ValueError(f"realism.images: {n} needs {2 * n} training films (two real sides), there are {len(train)}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(p["seed"]))[: 2 * n]
    real = load_images(paths.RESIZED, train.path.iloc[order.numpy()], size, progress)
    held_out = [read_split(paths.RESIZED, s).path for s in ("validate", "test")]
    originals = load_images(paths.RESIZED, [*held_out[0], *held_out[1]][:n], size, progress)
    return real[:n], real[n:], originals


def judge_options(p: dict, runtime) -> dict:
    options = {k: p[k] for k in ("folds", "epochs", "width", "batch_size", "lr", "seed", "resamples")}
    return options | {"bf16": runtime.precision == "bf16"}


def main():
    params = load_params()
    p = params["realism"]
    runtime = setup_runtime(p["precision"], device="cpu")
    autoencoder, description = nets.load_model(paths.AUTOENCODER, runtime.device)
    size, n = description["image_size"], p["images"]
    real, other_real, originals = films(p, size)
    manifest, prompt_images = samples.prompt_samples(paths.SAMPLES)
    generated = {
        "control_real_vs_real": other_real,
        "control_blurred": gaussian_blur(other_real, p["blur_sigma"]),
        "reconstructions": torch.cat([reconstruct(autoencoder, b, runtime).cpu() for b in originals.split(64)]),
        "unconditional": samples.rows_images(manifest, prompt_images, manifest[manifest.group == "unconditional"]),
        "report_conditioned": samples.report_samples(paths.REPORT_SAMPLES, None)[1],
    }
    results = {
        "intervals": {"level": 0.95, "resamples": p["resamples"], "method": "bootstrap over images"},
        "blur_sigma_px": p["blur_sigma"],
        "image_size": size,
    }
    for name, images in progress(generated.items(), desc="realism tests"):
        m = min(n, len(images))
        results[name] = two_sample_test(real[:m], to_8bit(images[:m]), **judge_options(p, runtime))
    write_json(paths.metrics("realism"), results)
    print({k: round(v["value"], 3) for k, v in results.items() if isinstance(v, dict) and "value" in v})


if __name__ == "__main__":
    run(main)
