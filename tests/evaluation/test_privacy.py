"""The privacy audit's pieces: copy transformations checked against independent constructions, the
contrastive loss against a hand computation, the re-identification ranking on known embeddings, and the
trained copy detector and re-identifier on rendered phantom films (copies of several kinds and
magnitudes flagged, another patient with the same findings not; same-patient pairs above others)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cxrldm.demo import phantoms
from cxrldm.demo.findings import Findings
from cxrldm.evaluation import memorisation, parse_copy, privacy

ROOT = Path(__file__).resolve().parents[2]


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 4, size // 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_an_integer_shift_moves_every_pixel_by_that_many():
    images = smooth_images(3)
    shifted = privacy.copy_transform(images, "shift", 2)
    torch.testing.assert_close(shifted[..., 2:, 2:], images[..., :-2, :-2], atol=1e-5, rtol=0)


def test_mirror_crop_rotation_contrast_and_noise_are_what_they_say():
    images = smooth_images(2)
    torch.testing.assert_close(privacy.copy_transform(images, "mirror"), images.flip(-1))
    # a quarter turn of a square image maps pixel centres onto pixel centres
    torch.testing.assert_close(
        privacy.copy_transform(images, "rotate", 90), images.rot90(1, (-2, -1)), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(privacy.copy_transform(images, "contrast", 1.3), images.pow(1.3))
    # a crop keeping half the side, rescaled back: the centre 16 x 16 block fills the image
    block = torch.zeros(1, 1, 32, 32)
    block[..., 8:24, 8:24] = 1.0
    assert privacy.copy_transform(block, "crop", 0.5)[..., 1:-1, 1:-1].min() > 0.99
    noisy = privacy.copy_transform(torch.full((1, 1, 64, 64), 0.5), "noise", 0.05, seed=4)
    assert (noisy - 0.5).std().item() == pytest.approx(0.05, rel=0.1)
    torch.testing.assert_close(noisy, privacy.copy_transform(torch.full((1, 1, 64, 64), 0.5), "noise", 0.05, seed=4))
    torch.testing.assert_close(privacy.copy_transform(images, "exact"), images)


def test_copy_specs_parse_and_bad_ones_say_which():
    assert parse_copy("shift:2") == ("shift", 2.0)
    assert parse_copy("mirror") == ("mirror", 0.0)
    for bad in ("smear:2", "blur:x", "blur:inf", "shift:nan"):
        with pytest.raises(ValueError, match=f"'{bad}'"):
            parse_copy(bad)


def test_gallery_views_keep_each_film_at_its_row_modulo_n():
    films = smooth_images(3)
    views = privacy.gallery_views(films, ["shift:2", "rotate:4", "crop:0.9"])
    assert len(views) == 3 * (1 + 8 + 2 + 1)
    torch.testing.assert_close(views[:3], films)
    # view 9 is the first rotation (-4 degrees), view 11 the crop
    torch.testing.assert_close(views[9 * 3 + 1], privacy.copy_transform(films, "rotate", -4)[1])
    torch.testing.assert_close(views[11 * 3 + 2], privacy.copy_transform(films, "crop", 0.9)[2])


def test_partners_come_from_the_same_group_and_are_another_film_where_one_exists():
    groups = torch.tensor([5, 3, 5, 9, 3, 3, 7, 5])
    for seed in range(20):
        partner = privacy.partners(groups, torch.Generator().manual_seed(seed))
        assert torch.equal(groups[partner], groups)
        alone = torch.tensor([(groups == g).sum() == 1 for g in groups])
        assert torch.equal(partner[alone], torch.arange(len(groups))[alone])
        assert (partner[~alone] != torch.arange(len(groups))[~alone]).all()


def test_supervised_contrastive_loss_matches_a_hand_computation():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    groups = torch.tensor([0, 0, 1, 2])
    t = 0.5
    sim = (z @ z.T / t).numpy()

    def term(i, j):
        others = [k for k in range(4) if k != i]
        return -(sim[i, j] - math.log(sum(math.exp(sim[i, k]) for k in others)))

    expected = (term(0, 1) + term(1, 0)) / 2  # samples 2 and 3 have no partner and are left out
    assert privacy.supervised_contrastive_loss(z, groups, t).item() == pytest.approx(expected, rel=1e-5)
    aligned = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    assert privacy.supervised_contrastive_loss(aligned, groups, t) < privacy.supervised_contrastive_loss(z, groups, t)


def test_reidentification_ranks_patients_and_leaves_each_query_out_of_its_own_gallery():
    generator = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(10, 16, generator=generator), dim=1)
    patients = torch.arange(10).repeat_interleave(2)
    clustered = torch.nn.functional.normalize(
        centres[patients] + 0.05 * torch.randn(20, 16, generator=generator), dim=1
    )
    result = privacy.reidentification(clustered, clustered, patients, patients, 100, 0, queries_lead_gallery=True)
    assert result["n_queries"] == 20
    assert result["auroc"]["value"] == 1.0 and result["top1"]["value"] == 1.0
    assert result["chance_top1"] == pytest.approx(1 / 19)
    # random embeddings: with its own row left out a query does not find itself
    noise = torch.nn.functional.normalize(torch.randn(20, 16, generator=generator), dim=1)
    result = privacy.reidentification(noise, noise, patients, patients, 100, 0, queries_lead_gallery=True)
    assert result["top1"]["value"] < 0.5
    # a gallery without the query's patient gives no queries
    assert privacy.reidentification(noise[:2], noise[2:], [0, 0], patients[2:] + 100)["n_queries"] == 0


# -- trained networks on phantom films ---------------------------------------------------------------

SIZE = 64
COPY_VIEWS = yaml.safe_load((ROOT / "params.yaml").read_text())["memorisation"]["copy_views"]  # the demo's


def render(anatomy, findings, seed):
    pixels = phantoms.render(findings, "PA", np.random.default_rng(seed), SIZE, SIZE, patient=anatomy)
    return torch.tensor(pixels, dtype=torch.float32)[None] / 255


@pytest.fixture(scope="module")
def films():
    """Training films of 60 patients (20 of them with a second study) and held-out films of 24 new
    patients, each with two studies; findings vary from study to study."""
    rng = np.random.default_rng(0)
    options = [
        Findings(),
        Findings(cardiomegaly=2),
        Findings(effusion_side="right", effusion_size="large"),
        Findings(edema=2),
        Findings(devices=("pacemaker",)),
    ]
    images, patients, findings = [], [], []
    for patient in range(84):
        anatomy = phantoms.sample_anatomy(rng)
        studies = 2 if patient < 20 or patient >= 60 else 1
        for _ in range(studies):
            chosen = int(rng.integers(len(options)))
            images.append(render(anatomy, options[chosen], int(rng.integers(2**31))))
            patients.append(patient)
            findings.append(chosen)
    images, patients = torch.stack(images), torch.tensor(patients)
    train = patients < 60
    return {
        "train": images[train],
        "train_patients": patients[train],
        "held_out": images[~train],
        "held_out_patients": patients[~train],
        "findings": torch.tensor(findings),
        "options": options,
        "rng": rng,
    }


@pytest.fixture(scope="module")
def detector(films):
    return privacy.train_embedding(
        films["train"],
        torch.arange(len(films["train"])),
        epochs=200,
        batch_size=16,
        lr=3e-3,
        seed=0,
        width=16,
        embed_dim=32,
        precision="auto",
    )


@pytest.fixture(scope="module")
def audit_spaces(films, detector):
    """(embed, reference embeddings, threshold) of the copy detector's space (with the demo's gallery
    views) and the pixel space, calibrated at the held-out films' 5th percentile."""
    spaces = []
    for embed, views in (
        (lambda x: privacy.embed(detector, x, SIZE), COPY_VIEWS),
        (lambda x: memorisation.pixel_space(x, 16), []),
    ):
        reference = embed(privacy.gallery_views(films["train"], views))
        null, _ = memorisation.nearest_neighbours(embed(films["held_out"]), reference)
        spaces.append((embed, reference, memorisation.calibrated_threshold(null, 5.0)))
    return spaces


@pytest.mark.parametrize(
    "spec",
    [
        "exact",
        "mirror",
        "shift:1",
        "shift:2",
        "shift:3",
        "crop:0.95",
        "crop:0.9",
        "rotate:2",
        "rotate:4",
        "blur:0.7",
        "noise:0.03",
        "contrast:1.25",
    ],
)
def test_the_copy_detector_and_pixels_flag_copies_of_every_kind(films, audit_spaces, spec):
    """Copies of 16 training films, flagged in the union of the copy detector's space (with the demo's
    gallery views; most magnitudes lie between them) and the pixel space."""
    copies = privacy.planted_copies(films["train"][:16], [spec], seed=1)[spec]
    flagged = torch.zeros(16, dtype=torch.bool)
    for embed, reference, threshold in audit_spaces:
        distances, _ = memorisation.nearest_neighbours(embed(copies), reference)
        flagged |= distances < threshold
    assert flagged.sum() >= 12, f"{spec}: {int(flagged.sum())} of 16 copies flagged (about 1 by chance)"


def test_pixels_alone_miss_moved_copies(films):
    """Why the copy detector is there: in the pixel space a 2-pixel shift or a mirror image is no copy."""
    train = films["train"]
    reference = memorisation.pixel_space(train, 16)
    null, _ = memorisation.nearest_neighbours(memorisation.pixel_space(films["held_out"], 16), reference)
    threshold = memorisation.calibrated_threshold(null, 5.0)
    for spec in ("shift:2", "mirror"):
        copies = privacy.planted_copies(train[:16], [spec])[spec]
        distances, _ = memorisation.nearest_neighbours(memorisation.pixel_space(copies, 16), reference)
        assert (distances < threshold).sum() <= 4, spec


def test_another_patient_with_the_same_findings_is_not_a_copy(films, detector):
    """New patients' films drawn with exactly the findings of training films are not flagged by the copy
    detector, while the training films' own copies are."""
    train = films["train"]
    reference = privacy.embed(detector, train, SIZE)
    null, _ = memorisation.nearest_neighbours(privacy.embed(detector, films["held_out"], SIZE), reference)
    threshold = memorisation.calibrated_threshold(null, 5.0)
    rng = np.random.default_rng(7)
    findings = films["findings"][:16]  # the first films are training films
    lookalikes = torch.stack(
        [render(phantoms.sample_anatomy(rng), films["options"][int(f)], int(rng.integers(2**31))) for f in findings]
    )
    distances, _ = memorisation.nearest_neighbours(privacy.embed(detector, lookalikes, SIZE), reference)
    own, _ = memorisation.nearest_neighbours(
        privacy.embed(detector, privacy.copy_transform(train[:16], "shift", 1), SIZE), reference
    )
    assert (distances < threshold).sum() <= 2
    assert (own < threshold).sum() >= 14


def test_the_reidentifier_scores_same_patient_pairs_above_others_on_new_patients(films):
    """Trained on the training patients (20 with two studies), the re-identifier ranks a held-out film's
    other study above other patients' films: AUROC well above 0.5 on 24 new patients."""
    model = privacy.train_embedding(
        films["train"],
        films["train_patients"],
        epochs=100,
        batch_size=16,
        lr=3e-3,
        seed=1,
        width=16,
        embed_dim=32,
        precision="auto",
    )
    embedded = privacy.embed(model, films["held_out"], SIZE)
    result = privacy.reidentification(
        embedded, embedded, films["held_out_patients"], films["held_out_patients"], 200, 0, queries_lead_gallery=True
    )
    assert result["n_queries"] == 48
    assert result["auroc"]["low"] > 0.6, result["auroc"]
    assert result["top1"]["value"] > 5 * result["chance_top1"]


def test_a_detector_trained_channels_last_saves_and_reloads(tmp_path, detector, films):
    """Training runs in the channels-last layout; the returned network is back in the default one, which
    safetensors needs, and reloads to the same embeddings."""
    from cxrldm.evaluation.networks import load_cnn
    from cxrldm.models import networks as nets

    assert all(p.is_contiguous() for p in detector.parameters())
    path = tmp_path / "detector.safetensors"
    nets.save_model(detector, "EmbeddingCNN", {"width": 16, "embed_dim": 32}, path, {"image_size": SIZE})
    reloaded, _ = load_cnn(path)
    torch.testing.assert_close(
        privacy.embed(reloaded, films["held_out"][:8], SIZE), privacy.embed(detector, films["held_out"][:8], SIZE)
    )


def test_a_saved_embedding_loads_as_a_function_embedding_at_its_size(tmp_path):
    from cxrldm.evaluation.networks import EmbeddingCNN
    from cxrldm.models import networks as nets

    torch.manual_seed(0)
    model = EmbeddingCNN(width=8, embed_dim=16).eval()
    nets.save_model(
        model, "EmbeddingCNN", {"width": 8, "embed_dim": 16}, tmp_path / "e.safetensors", {"image_size": 24}
    )
    images = torch.rand(5, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    embed = privacy.load_embedding(tmp_path / "e.safetensors")
    assert torch.equal(embed(images), privacy.embed(model, images, 24))
    assert not torch.equal(embed(images), privacy.embed(model, images, 40))  # resized to its own size


def old_stage_reidentify(
    embed, synthetic, training_images, test_images, prompt_patients, training_patients, test_patients, resamples, seed
):
    """Stage memorisation's reidentify as it was written in the stage (the reference)."""
    gallery = embed(training_images)
    test_embedded = embed(test_images)
    return {
        "synthetic_vs_source": privacy.reidentification(
            embed(synthetic), gallery, prompt_patients, training_patients, resamples, seed
        ),
        "real_test_patients": privacy.reidentification(
            test_embedded,
            torch.cat([test_embedded, gallery]),
            test_patients,
            torch.cat([test_patients, training_patients]),
            resamples,
            seed,
            queries_lead_gallery=True,
        ),
    }


def test_reidentification_check_is_the_stage_s_former_one():
    def embed(images):  # a stand-in embedding: pooled, unit length
        return torch.nn.functional.normalize(torch.nn.functional.adaptive_avg_pool2d(images, 3).flatten(1), dim=1)

    generator = torch.Generator().manual_seed(2)
    patients = torch.rand(6, 1, 12, 12, generator=generator)
    training = patients.repeat(2, 1, 1, 1) + 0.05 * torch.rand(12, 1, 12, 12, generator=generator)
    training_patients = torch.arange(12) % 6
    test = torch.rand(4, 1, 12, 12, generator=generator).repeat(2, 1, 1, 1)
    test_patients = torch.tensor([10, 11, 12, 13] * 2)
    synthetic, prompt_patients = patients[[0, 2, 4]] + 0.01, torch.tensor([0, 2, 4])
    got = privacy.reidentification_check(
        embed, synthetic, training, test, prompt_patients, training_patients, test_patients, 40, 1
    )
    assert got == old_stage_reidentify(
        embed, synthetic, training, test, prompt_patients, training_patients, test_patients, 40, 1
    )
    assert got["synthetic_vs_source"]["n_queries"] == 3 and got["synthetic_vs_source"]["top1"]["value"] == 1.0
    assert got["real_test_patients"]["n_queries"] == 8 and got["real_test_patients"]["auroc"]["value"] == 1.0
