"""Stage evaluate: MS-SSIM of reconstructions and diversity, Frechet distance and prompt adherence on the
features and outputs of a chest X-ray network, written to metrics/evaluate.json."""

from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from cxrldm import evaluation, nets
from cxrldm.autoencoder import ms_ssim, reconstruct
from cxrldm.data import load_images, read_split
from cxrldm.images import load_array
from cxrldm.io import write_json
from cxrldm.training import setup_runtime
from stages.common import load_params, progress, run

RESIZED, SAMPLES = Path("data/resized"), Path("data/samples")


def load_samples(manifest: pd.DataFrame) -> torch.Tensor:
    return torch.stack([torch.from_numpy(load_array(SAMPLES / f).copy()) for f in manifest.file]).unsqueeze(1).float() / 255


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The test images blurred (sigma 2 px at 64 px): a real-but-degraded reference for the FID scale."""
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))


def feature_network(p: dict):
    if p["feature_network"] == "xrv":
        return evaluation.XRVEvaluator(evaluation.xrv_weights_file(p["xrv_cache_dir"]))
    if p["feature_network"] == "evaluator_cnn":
        model, description = nets.load_model("models/evaluator.safetensors")
        return evaluation.TrainedEvaluator(model, description["image_size"])
    raise ValueError(f"evaluate.feature_network must be 'xrv' or 'evaluator_cnn', got {p['feature_network']!r}")


def main():
    p = load_params()["evaluate"]
    runtime = setup_runtime(p["precision"])
    autoencoder, description = nets.load_model("models/autoencoder.safetensors", runtime.device)
    size, kernel = description["image_size"], p["ms_ssim_kernel"]
    manifest = pd.read_csv(SAMPLES / "manifest.csv", keep_default_na=False)
    all_samples = load_samples(manifest)               # every sample read once; rows picked by mask below
    def picked(rows: pd.DataFrame) -> torch.Tensor:
        return all_samples[torch.from_numpy(manifest.index.isin(rows.index))]
    samples = picked(manifest[manifest.group == "unconditional"])
    test = read_split(RESIZED, "test")
    n_test = min(len(test), p["n_test"])
    needed = max(n_test, min(len(test), p["n_reconstruction"]))
    test_images = load_images(RESIZED, test.path[:needed], size, progress)
    results = {"ms_ssim_settings": {"kernel_size": kernel, "scales": 5, "image_size": size}}

    recon_images = test_images[:p["n_reconstruction"]]
    recon = torch.cat([reconstruct(autoencoder, b, runtime).cpu() for b in recon_images.split(64)])
    results["ms_ssim_reconstruction"] = float(ms_ssim(recon, recon_images, kernel).mean())
    results["n_reconstruction"] = len(recon_images)

    sample_pairs = evaluation.pair_indices(len(samples), p["pairs"], p["seed"])
    test_pairs = evaluation.pair_indices(n_test, p["pairs"], p["seed"])
    results["ms_ssim_samples"] = evaluation.mean_pairwise_ms_ssim(samples, sample_pairs, kernel)
    results["ms_ssim_test"] = evaluation.mean_pairwise_ms_ssim(test_images[:n_test], test_pairs, kernel)
    results.update(n_samples=len(samples), n_test=n_test, n_pairs_samples=len(sample_pairs), n_pairs_test=len(test_pairs))

    network = feature_network(p)
    real = network.features(test_images[:n_test])
    noise = torch.rand(n_test, 1, size, size, generator=torch.Generator().manual_seed(p["seed"]))
    blurred = gaussian_blur(test_images[:n_test], sigma=size / 32)
    fid = f"fid_{network.name}"
    results[fid] = evaluation.frechet_distance(network.features(samples), real)
    results[f"{fid}_noise_baseline"] = evaluation.frechet_distance(network.features(noise), real)
    results[f"{fid}_blur_baseline"] = evaluation.frechet_distance(network.features(blurred), real)

    null_probabilities = network.probabilities(samples)
    adherence = {}
    for group, rows in manifest[manifest.finding != ""].groupby("group", sort=False):
        finding = rows.finding.iloc[0]
        if finding not in network.labels:
            raise ValueError(f"sample prompt {rows.prompt.iloc[0]!r}: finding {finding!r} is not a label of "
                             f"{network.name} ({network.labels})")
        column = network.labels.index(finding)
        probabilities = network.probabilities(picked(rows))[:, column]
        adherence[f"prompt{int(group):03d}"] = {
            "finding": finding, "prompt": rows.prompt.iloc[0], "prompt_probability": float(probabilities.mean()),
            "null_probability": float(null_probabilities[:, column].mean()),
            "auroc_vs_null": evaluation.auroc(torch.cat([probabilities, null_probabilities[:, column]]),
                                              torch.cat([torch.ones(len(probabilities)),
                                                         torch.zeros(len(null_probabilities))]))}
    results[f"adherence_{network.name}"] = adherence
    sided = manifest[manifest.side != ""]
    if {"left", "right"} <= set(sided.side):
        contrast = evaluation.lower_zone_contrast(picked(sided))
        right = torch.tensor((sided.side == "right").to_numpy())
        # lower-zone brightness, image left minus image right: a right effusion raises it (README)
        results["laterality"] = {
            "right_prompts": float(contrast[right].mean()), "left_prompts": float(contrast[~right].mean()),
            "auroc_right_vs_left": evaluation.auroc(contrast, right), "n_right": int(right.sum()),
            "n_left": int((~right).sum())}
    write_json("metrics/evaluate.json", results)
    print({k: v for k, v in results.items() if not isinstance(v, dict)})


if __name__ == "__main__":
    run(main)
