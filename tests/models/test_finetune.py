"""Fine-tuning from earlier weights (train_aekl.init_from, train_ldm.init_from): the weights are loaded
before training (a fine-tune's epoch 0 is the starting model), and weights of another architecture get
one line naming the keys that differ."""

import json

import pandas as pd
import pytest
import torch
from pipeline_project import pristine_copy, ran_stages, run, set_param
from safetensors.torch import save_file

from cxrldm.models import networks


def small_autoencoder(channels):
    return networks.build("AutoencoderKL", networks.autoencoder_kwargs(channels, 3, 1, norm_num_groups=8))


def test_init_weights_loads_a_matching_file_exactly(tmp_path):
    torch.manual_seed(0)
    source, target = small_autoencoder([8, 8]), small_autoencoder([8, 8])
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "start.safetensors"))
    networks.init_weights(target, tmp_path / "start.safetensors", "train_aekl.init_from")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_another_architecture_is_one_line_naming_the_keys(tmp_path):
    save_file(
        {k: v.contiguous() for k, v in small_autoencoder([8, 16]).state_dict().items()},
        str(tmp_path / "wider.safetensors"),
    )
    with pytest.raises(ValueError) as error:
        networks.init_weights(small_autoencoder([8, 8]), tmp_path / "wider.safetensors", "train_aekl.init_from")
    message = str(error.value)
    assert message.startswith("train_aekl.init_from: ") and "does not fit the architecture" in message
    assert "of another shape (e.g. " in message and ": file (16," in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="train_ldm.init_from: .*missing.safetensors not found"):
        networks.init_weights(small_autoencoder([8, 8]), tmp_path / "missing.safetensors", "train_ldm.init_from")


@pytest.mark.pipeline
def test_a_fine_tune_starts_from_the_given_model(tiny_project, tmp_path):
    """The first validation loss of a fine-tune (epoch 0, before any step) is the starting model's own
    last validation loss; training then moves on from there."""
    project = pristine_copy(tiny_project, tmp_path / "project")
    start_val_loss = json.loads((project / "metrics/train_ldm.json").read_text())["val_loss"]
    (project / "models/init").mkdir()
    (project / "models/init/start.safetensors").write_bytes((project / "models/diffusion.safetensors").read_bytes())
    set_param(project, "train_ldm.init_from", "models/init/start.safetensors")
    set_param(project, "train_ldm.epochs", 2)
    assert "train_ldm" in ran_stages(run(project, "repro", "train_ldm").stdout)
    logged = pd.read_csv(project / "dvclive/train_ldm/plots/metrics/val_loss.tsv", sep="\t")
    assert logged.step.tolist()[0] == 0
    assert logged.val_loss.iloc[0] == pytest.approx(start_val_loss, abs=1e-5)
    assert (project / "dvclive/train_ldm/plots/images/samples/epoch_0000.png").is_file()  # the start, sampled


@pytest.mark.pipeline
def test_starting_from_the_stages_own_output_is_one_line(tiny_project, tmp_path):
    project = pristine_copy(tiny_project, tmp_path / "project")
    set_param(project, "train_ldm.init_from", "models/diffusion.safetensors")
    result = run(project, "repro", "train_ldm", check=False)
    assert result.returncode != 0
    assert (
        "error: train_ldm.init_from: models/diffusion.safetensors is this stage's own output, which DVC "
        "removes before the stage runs; copy it first"
    ) in result.stderr
