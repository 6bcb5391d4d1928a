"""Every params profile has the same keys, and the seed profile builds the seed's models."""

from pathlib import Path

import pytest
import yaml

from cxrldm.cli.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted((ROOT / "configs").glob("*.yaml"))


def leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profiles_have_the_same_keys_as_params_yaml(profile):
    reference = set(leaves(yaml.safe_load((ROOT / "params.yaml").read_text())))
    assert set(leaves(yaml.safe_load(profile.read_text()))) == reference


def test_seed_profile_builds_the_seeds_models():
    summary = summarize(yaml.safe_load((ROOT / "configs" / "mimic.yaml").read_text()))
    assert summary["autoencoder"]["n_params"] == 4_607_848
    assert summary["autoencoder"]["latent_shape"] == [3, 64, 64]
    assert summary["unet"] == {"n_params": 263_636_995, "cross_attention_dim": 1024}


def test_seed_profile_values():
    seed = yaml.safe_load((ROOT / "configs" / "mimic.yaml").read_text())
    assert seed["filter_pa"]["view"] == "PA" and seed["resize"]["size"] == 512
    ae, ldm = seed["train_aekl"], seed["train_ldm"]
    assert (ae["perceptual_weight"], ae["kl_weight"], ae["adv_weight"], ae["adv_start_epoch"]) == (
        0.002,
        1e-8,
        0.005,
        5,
    )
    assert (ae["lr_g"], ae["lr_d"], ae["batch_size"], ae["epochs"], ae["grad_clip"]) == (5e-5, 1e-4, 96, 75, 1.0)
    assert (ldm["beta_start"], ldm["beta_end"], ldm["num_train_timesteps"]) == (0.0015, 0.0205, 1000)
    assert (ldm["prediction_type"], ldm["lr"], ldm["batch_size"], ldm["epochs"]) == ("v_prediction", 2.5e-5, 256, 500)
    assert (ldm["max_sentences"], ldm["condition_dropout"]) == (5, 0.1)
    assert seed["text_encoder"]["max_length"] == 77 and seed["sample"]["guidance_scale"] == 7.0
    assert (seed["evaluate"]["n_reconstruction"], seed["evaluate"]["n_test"], seed["sample"]["n_unconditional"]) == (
        5000,
        1000,
        1000,
    )
