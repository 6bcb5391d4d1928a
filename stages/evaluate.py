"""Stage evaluate: MS-SSIM of reconstructions and diversity; FID, precision / recall / density / coverage
and KID of the unconditional samples on a feature network's features; prompt adherence and laterality by
a classifier. Every metric with its count and 95% bootstrap interval, in metrics/evaluate.json.

Adherence compares a finding prompt's images with two references, each with its real-film counterpart.
Against the null prompt's images (auroc_vs_null), which are a draw from all films, positives among them:
its counterpart is the test films labelled positive against all test films, so a model that draws typical
positive films scores about that, and even a perfect one at most 1 - prevalence / 2. Against a normal
report's images (auroc_vs_normal, evaluate.normal_prompt): its counterpart is positive against negative
test films, the classifier's own AUROC, so this one can and should come close to 1."""


import pandas as pd
import torch

from cxrldm import paths
from cxrldm.data.datasets import load_images, read_split
from cxrldm.data.filters import gaussian_blur
from cxrldm.data.images import load_array
from cxrldm.data.labels import read_labels
from cxrldm.evaluation import classification, networks, similarity
from cxrldm.evaluation.fidelity import fidelity, frechet_distance
from cxrldm.evaluation.intervals import mean_interval, pairwise_mean_interval
from cxrldm.evaluation.similarity import ms_ssim
from cxrldm.io import write_json
from cxrldm.models import networks as nets
from cxrldm.models.autoencoder import reconstruct
from cxrldm.models.training import setup_runtime
from stages.common import load_params, progress, run

RESIZED, SAMPLES = paths.RESIZED, paths.SAMPLES


def load_samples(manifest: pd.DataFrame) -> torch.Tensor:
    return torch.stack([torch.from_numpy(load_array(SAMPLES / f).copy()) for f in manifest.file]).unsqueeze(1).float() / 255


def normal_prompt_rows(manifest: pd.DataFrame, normal_prompt) -> pd.DataFrame | None:
    """The manifest rows of the normal report's prompt (`evaluate.normal_prompt`, its index in sample.prompts),
    or None where the param is null."""
    if normal_prompt is None:
        return None
    rows = manifest[manifest.group.astype(str) == str(normal_prompt)]
    if rows.empty or (rows.finding != "").any():
        without = sorted(set(manifest.group[manifest.finding == ""].astype(str)) - {"unconditional"})
        raise ValueError(f"evaluate.normal_prompt: {normal_prompt} is not a sample prompt without a finding "
                         f"(prompts without one: {', '.join(without) or 'none'}; null: compare with the null prompt only)")
    return rows


def main():
    params = load_params()
    p = params["evaluate"]
    runtime = setup_runtime(p["precision"])
    autoencoder, description = nets.load_model(paths.AUTOENCODER, runtime.device)
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
    options = {"resamples": p["resamples"], "seed": p["seed"]}
    results = {"ms_ssim_settings": {"kernel_size": kernel, "scales": 5, "image_size": size},
               "intervals": {"level": 0.95, "resamples": p["resamples"], "method": "bootstrap over images"}}

    recon_images = test_images[:p["n_reconstruction"]]
    recon = torch.cat([reconstruct(autoencoder, b, runtime).cpu() for b in recon_images.split(64)])
    results["ms_ssim_reconstruction"] = mean_interval(ms_ssim(recon, recon_images, kernel), **options)

    for name, images, n in (("samples", samples, len(samples)), ("test", test_images[:n_test], n_test)):
        pairs = similarity.pair_indices(n, p["pairs"], p["seed"])
        scores = torch.cat([ms_ssim(images[c[:, 0]], images[c[:, 1]], kernel) for c in pairs.split(256)])
        results[f"ms_ssim_{name}"] = {**pairwise_mean_interval(scores, pairs, n, **options), "pairs": len(pairs)}

    network = networks.load_network(p["feature_network"], p["xrv_cache_dir"], paths.EVALUATOR)
    real = network.features(test_images[:n_test])
    noise = torch.rand(n_test, 1, size, size, generator=torch.Generator().manual_seed(p["seed"]))
    sigma = size / 32       # the test images blurred (sigma 2 px at 64 px): a real-but-degraded reference
    blurred = gaussian_blur(test_images[:n_test], sigma, radius=int(3 * sigma), border="replicate", pad_first=True)
    fidelity_scores = fidelity(real, network.features(samples), p["prdc_k"], kid_subsets=p["kid_subsets"], **options)
    fid = f"fid_{network.name}"
    results[fid] = fidelity_scores.pop("fid")
    results[f"{fid}_noise_baseline"] = frechet_distance(network.features(noise), real)
    results[f"{fid}_blur_baseline"] = frechet_distance(network.features(blurred), real)
    results[f"kid_{network.name}"] = fidelity_scores.pop("kid")
    results[f"prdc_{network.name}"] = fidelity_scores
    if results[f"{fid}_blur_baseline"] <= results[fid]["value"]:
        results["feature_network_note"] = (f"blurred test images are as close to the real ones as the samples under "
                                           f"{network.name} (FID {results[f'{fid}_blur_baseline']:.1f} vs "
                                           f"{results[fid]['value']:.1f}): this FID cannot rank the samples above a blur")

    classifier = networks.load_network(p["classifier"], p["xrv_cache_dir"], paths.EVALUATOR)
    null_probabilities = classifier.probabilities(samples)
    labels = read_labels(params["data"], [])
    test_probabilities = classifier.probabilities(test_images)
    normal = normal_prompt_rows(manifest, p["normal_prompt"])
    normal_probabilities = None if normal is None else classifier.probabilities(picked(normal))
    adherence = {}
    for group, rows in manifest[manifest.finding != ""].groupby("group", sort=False):
        finding = rows.finding.iloc[0]
        column, = classification.classifier_columns(classifier, [finding], f"sample prompt {rows.prompt.iloc[0]!r}")
        probabilities = classifier.probabilities(picked(rows))[:, column]
        def yardstick(reference):
            return classification.real_adherence(test_probabilities[:, column], labels, test.study_id[:needed],
                                                 finding, reference, **options)
        entry = adherence[f"prompt{int(group):03d}"] = {
            "finding": finding, "prompt": rows.prompt.iloc[0],
            "prompt_probability": float(probabilities.mean()),
            "null_probability": float(null_probabilities[:, column].mean()),
            "auroc_vs_null": classification.two_group_auroc_interval(probabilities, null_probabilities[:, column], **options),
            "real_positive_vs_all": yardstick("all")}
        if normal_probabilities is not None:
            entry.update({
                "normal_prompt": normal.prompt.iloc[0], "normal_probability": float(normal_probabilities[:, column].mean()),
                "auroc_vs_normal": classification.two_group_auroc_interval(
                    probabilities, normal_probabilities[:, column], **options),
                "real_positive_vs_negative": yardstick("negative")})
    results[f"adherence_{classifier.name}"] = adherence
    sided = manifest[manifest.side != ""]
    if {"left", "right"} <= set(sided.side):
        sided_images = picked(sided)
        contrast = classification.lower_zone_contrast(sided_images)
        right = torch.tensor((sided.side == "right").to_numpy())
        # lower-zone brightness, image left minus image right: a right effusion raises it (README)
        results["laterality"] = {
            "right_prompts": float(contrast[right].mean()), "left_prompts": float(contrast[~right].mean()),
            "auroc_right_vs_left": classification.two_group_auroc_interval(contrast[right], contrast[~right], **options),
            "n_right": int(right.sum()), "n_left": int((~right).sum()),
            "one_sided": {side: classification.one_sidedness(sided_images[mask], samples, side, **options)
                          for side, mask in (("right", right), ("left", ~right))}}
    write_json(paths.metrics("evaluate"), results)
    print({k: round(v["value"], 4) if isinstance(v, dict) and "value" in v else v for k, v in results.items()
           if not isinstance(v, dict) or "value" in v})


if __name__ == "__main__":
    run(main)
