"""Stage evaluate: MS-SSIM, PSNR, edge energy and feature-space FID / coverage of reconstructions against
their originals, and MS-SSIM diversity; FID, precision / recall / density / coverage
and KID of the unconditional samples on a feature network's features; prompt adherence and laterality by
a classifier. Every metric with its count and 95% bootstrap interval, in metrics/evaluate.json.

Adherence compares a finding prompt's images with two references, each with its real-film counterpart.
Against the null prompt's images (auroc_vs_null), which are a draw from all films, positives among them:
its counterpart is the test films labelled positive against all test films, so a model that draws typical
positive films scores about that, and even a perfect one at most 1 - prevalence / 2. Against a normal
report's images (auroc_vs_normal, evaluate.normal_prompt): its counterpart is positive against negative
test films, the classifier's own AUROC, so this one can and should come close to 1."""

import torch

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, networks, samples, similarity
from cxrldm.evaluation.fidelity import fidelity, fidelity_with_baselines
from cxrldm.evaluation.intervals import mean_interval
from cxrldm.evaluation.realism import to_8bit
from cxrldm.evaluation.similarity import ms_ssim
from cxrldm.io import write_json
from cxrldm.models import networks as nets
from cxrldm.models.autoencoder import reconstruct
from cxrldm.models.training import setup_runtime
from stages.common import load_params, progress, run

RESIZED, SAMPLES = paths.RESIZED, paths.SAMPLES


def main():
    params = load_params()
    p = params["evaluate"]
    options = {"resamples": p["resamples"], "seed": p["seed"]}
    runtime = setup_runtime(p["precision"])
    autoencoder, description = nets.load_model(paths.AUTOENCODER, runtime.device)
    size, kernel = description["image_size"], p["ms_ssim_kernel"]
    manifest, all_samples = samples.prompt_samples(SAMPLES)  # every sample read once; rows picked below
    unconditional = samples.rows_images(manifest, all_samples, manifest[manifest.group == "unconditional"])
    test = read_split(RESIZED, "test")
    n_test = min(len(test), p["n_test"])
    needed = max(n_test, min(len(test), p["n_reconstruction"]))
    test_images = load_images(RESIZED, test.path[:needed], size, progress)
    results = {
        "ms_ssim_settings": {"kernel_size": kernel, "scales": 5, "image_size": size},
        "intervals": {"level": 0.95, "resamples": p["resamples"], "method": "bootstrap over images"},
    }
    recon_images = test_images[: p["n_reconstruction"]]
    recon = torch.cat([reconstruct(autoencoder, b, runtime).cpu() for b in recon_images.split(64)])
    results["ms_ssim_reconstruction"] = mean_interval(ms_ssim(recon, recon_images, kernel), **options)
    recon_8bit, originals_8bit = to_8bit(recon), to_8bit(recon_images)  # as the films are stored
    results["psnr_reconstruction"] = mean_interval(similarity.psnr(recon_8bit, originals_8bit), **options)
    results["edge_energy_reconstruction"] = mean_interval(
        similarity.edge_energy_ratio(recon_8bit, originals_8bit), **options
    )
    results["ms_ssim_samples"] = similarity.mean_pairwise_ms_ssim(unconditional, p["pairs"], kernel, **options)
    results["ms_ssim_test"] = similarity.mean_pairwise_ms_ssim(test_images[:n_test], p["pairs"], kernel, **options)
    network = networks.load_network(p["feature_network"], p["xrv_cache_dir"], paths.EVALUATOR)
    results.update(
        fidelity_with_baselines(network, test_images[:n_test], unconditional, p["prdc_k"], p["kid_subsets"], **options)
    )
    recon_scores = fidelity(
        network.features(recon_images), network.features(recon), p["prdc_k"], kid_subsets=p["kid_subsets"], **options
    )
    recon_scores.pop("kid")
    results[f"reconstruction_fidelity_{network.name}"] = recon_scores  # fid, precision, recall, density, coverage
    classifier = networks.load_network(p["classifier"], p["xrv_cache_dir"], paths.EVALUATOR)
    null_probabilities = classifier.probabilities(unconditional)
    labels = read_labels(params["data"], [])
    test_probabilities = classifier.probabilities(test_images)
    normal = samples.normal_prompt_rows(manifest, p["normal_prompt"], "evaluate.normal_prompt")
    results[f"adherence_{classifier.name}"] = classification.adherence(
        classifier,
        manifest,
        all_samples,
        null_probabilities,
        test_probabilities,
        labels,
        test.study_id[:needed],
        normal,
        **options,
    )
    sided = manifest[manifest.side != ""]
    if {"left", "right"} <= set(sided.side):
        results["laterality"] = classification.prompt_laterality(
            samples.rows_images(manifest, all_samples, sided),
            torch.tensor((sided.side == "right").to_numpy()),
            unconditional,
            **options,
        )
    write_json(paths.metrics("evaluate"), results)
    print(
        {
            k: round(v["value"], 4) if isinstance(v, dict) and "value" in v else v
            for k, v in results.items()
            if not isinstance(v, dict) or "value" in v
        }
    )


if __name__ == "__main__":
    run(main)
