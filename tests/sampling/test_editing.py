"""Text-guided editing (cxrldm.cli.edit) on the tiny project's trained models: strength 0 is the identity,
paste-back keeps every pixel outside the edit mask, an all-keep mask changes nothing (and holds the latent
to the original's at every step), the same seed gives the same edit; bad inputs get one line; the CLI
edits any PNG; stage edit measures what it claims (by value, on planted edits)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from pipeline_project import pristine_copy, run_cli

from cxrldm.sampling import editing as edit
from cxrldm.sampling.editing import EditError

pytestmark = pytest.mark.pipeline

PROMPT = "There is a large right pleural effusion."


@pytest.fixture(scope="module")
def project(tiny_project, tmp_path_factory):
    """The tiny run as committed: tests of other modules may have changed the shared project's workspace."""
    return pristine_copy(tiny_project, tmp_path_factory.mktemp("edit") / "project")


@pytest.fixture(scope="module")
def models(project):
    from cxrldm.sampling.generation import load_models

    return load_models(project / "models", precision="fp32")


@pytest.fixture(scope="module")
def films(project, models):
    from cxrldm.data.datasets import load_images

    table = pd.read_csv(project / "data/resized/images.csv").head(3)
    return load_images(project / "data/resized", table.path, models.image_size)


def run_edit(models, images, strength=0.8, seeds=None, **kwargs):
    seeds = list(range(len(images))) if seeds is None else seeds
    return edit.edit_images(models, images, [PROMPT] * len(images), seeds, strength, 3.0, 10, **kwargs)


def zone(name, images):
    return edit.zone_mask(name, *images.shape[-2:]).expand_as(images).clone()


def test_strength_zero_returns_the_input_exactly(models, films):
    result = run_edit(models, films, strength=0.0, edit_masks=zone("right_lower", films))
    assert torch.equal(result.edited, films) and torch.equal(result.raw, films)


def test_paste_back_keeps_every_pixel_outside_the_edit_mask(models, films):
    mask = zone("right_lower", films)
    result = run_edit(models, films, edit_masks=mask)
    outside = mask == 0
    assert torch.equal(result.edited[outside], films[outside])
    assert (result.edited[~outside] != films[~outside]).float().mean() > 0.5  # and it did edit inside
    assert (result.raw[outside] != films[outside]).any()  # which the raw decode does not keep


def test_an_all_keep_mask_changes_nothing_and_holds_the_latent_at_every_step(models, films):
    from cxrldm.models.autoencoder import reconstruct

    result = run_edit(models, films, keep_masks=torch.ones_like(films))
    assert torch.equal(result.edited, films)
    # with every latent cell kept, the last step's latent is the original's: the raw decode is the
    # autoencoder's reconstruction
    torch.testing.assert_close(result.raw, reconstruct(models.autoencoder, films, models.runtime).cpu())


def test_the_keep_mask_wins_over_the_edit_mask(models, films):
    keep = zone("heart", films)
    result = run_edit(models, films, edit_masks=torch.ones_like(films), keep_masks=keep)
    assert torch.equal(result.edited[keep == 1], films[keep == 1])
    assert (result.edited[keep == 0] != films[keep == 0]).any()


def test_the_same_seed_gives_the_same_edit_and_another_seed_another(models, films):
    first, again = run_edit(models, films), run_edit(models, films)
    other = run_edit(models, films, seeds=[10, 11, 12])
    assert torch.equal(first.edited, again.edited)
    assert not torch.equal(first.edited, other.edited)


def test_more_strength_changes_more(models, films):
    changes = [(run_edit(models, films, strength=s).raw - films).abs().mean() for s in (0.2, 1.0)]
    assert changes[0] < changes[1]


def test_strength_runs_its_share_of_the_steps_and_is_bounded():
    assert edit.start_index(0.5, 50) == 25 and edit.start_index(1.0, 50) == 0 and edit.start_index(0.0, 50) == 50
    for bad in (-0.1, 1.5):
        with pytest.raises(EditError, match="strength must be in"):
            edit.start_index(bad, 50)


def test_an_empty_edit_mask_is_refused(models, films):
    with pytest.raises(EditError, match="selects no pixel"):
        run_edit(models, films, edit_masks=torch.zeros_like(films))


def test_feathering_is_zero_outside_the_mask_and_one_deep_inside():
    mask = torch.zeros(32, 32)
    mask[8:24, 8:24] = 1
    weights = edit.feather(mask, 2.0)
    assert torch.equal(weights[mask == 0], torch.zeros(int((mask == 0).sum())))
    assert weights[16, 16] == pytest.approx(1, abs=1e-6) and 0 <= weights[8, 16] < 0.5 and (weights <= 1).all()
    assert weights[8:16, 16].diff().ge(0).all()  # rising from the border inwards


def test_masks_of_any_size_with_the_images_aspect_are_resized(tmp_path):
    pixels = np.zeros((50, 40), np.uint8)
    pixels[25:, :20] = 255
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    mask = edit.read_mask(tmp_path / "mask.png", 100, 80)
    assert mask.shape == (100, 80) and mask[60, 10] == 1 and mask[10, 10] == 0 and mask[60, 70] == 0


def test_a_mask_of_another_aspect_ratio_is_one_line_naming_it(tmp_path):
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(tmp_path / "square.png")
    with pytest.raises(EditError, match=r"square.png: mask is 50x50 .*aspect ratio") as error:
        edit.read_mask(tmp_path / "square.png", 100, 80)
    assert "\n" not in str(error.value)


def test_colour_images_are_refused_and_grey_rgb_and_16_bit_converted(tmp_path):
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(EditError, match="colour.png: a colour image"):
        edit.read_grayscale(tmp_path / "colour.png")
    grey = np.stack([np.arange(64, dtype=np.uint8).reshape(8, 8)] * 3, -1)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert np.array_equal(edit.read_grayscale(tmp_path / "grey.png"), grey[..., 0])
    deep = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(deep).save(tmp_path / "deep.png")
    converted = edit.read_grayscale(tmp_path / "deep.png")
    assert converted.dtype == np.uint8 and converted.max() == 255 and converted[0, 0] == 0


def test_zones_put_the_patients_right_on_the_image_left():
    right, left = edit.zone_mask("right_lower", 100, 100), edit.zone_mask("left_lower", 100, 100)
    assert right[:, :50].sum() > 0 and right[:, 50:].sum() == 0
    assert left[:, 50:].sum() > 0 and left[:, :50].sum() == 0
    with pytest.raises(EditError, match="unknown mask zone 'lungs'"):
        edit.zone_mask("lungs", 10, 10)


def cli(*args, cwd):
    return run_cli("edit", *args, cwd=cwd)


def test_the_cli_edits_any_png_keeping_pixels_outside_the_mask_byte_for_byte(project, tmp_path):
    table = pd.read_csv(project / "data/resized/images.csv")
    source = np.asarray(Image.open(project / "data/resized" / table.path[0]).convert("L"))
    image = np.ascontiguousarray(np.pad(source, ((0, 0), (7, 0)), mode="edge")[:, : source.shape[1] - 3])
    Image.fromarray(image).save(tmp_path / "film.png")  # non-square, another size than the model's
    mask = np.zeros(image.shape, np.uint8)
    mask[image.shape[0] // 2 :, : image.shape[1] // 2] = 255
    Image.fromarray(mask[::2, ::2]).save(tmp_path / "edit_mask.png")  # half the resolution, same aspect
    out = tmp_path / "out"
    common = [
        "--image",
        str(tmp_path / "film.png"),
        "--prompt",
        PROMPT,
        "--out",
        str(out),
        "--steps",
        "6",
        "--models",
        str(project / "models"),
    ]
    masked = cli(*common, "--edit-mask", str(tmp_path / "edit_mask.png"), "--strength", "0.9", cwd=tmp_path)
    assert masked.returncode == 0, masked.stderr
    edited = np.asarray(Image.open(out / "film_seed0_edited.png"))
    assert edited.shape == image.shape and edited.dtype == np.uint8
    selected = np.asarray(Image.fromarray(mask[::2, ::2]).resize(image.shape[::-1], Image.Resampling.NEAREST)) >= 128
    assert np.array_equal(edited[~selected], image[~selected]) and (edited[selected] != image[selected]).any()
    difference = np.asarray(Image.open(out / "film_seed0_difference.png")).astype(int)
    assert (difference[~selected] == 128).all()  # mid-grey: unchanged
    whole = cli(*common, "--seed", "1", cwd=tmp_path)  # no mask: the centred square is edited
    assert whole.returncode == 0, whole.stderr
    tiny = cli(*common, "--seed", "2", "--strength", "0.005", cwd=tmp_path)  # rounds to no step: the film itself
    assert tiny.returncode == 0, tiny.stderr
    assert np.array_equal(np.asarray(Image.open(out / "film_seed2_edited.png")), image)
    rows = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert rows.seed.tolist() == [0, 1, 2] and rows.edit_mask.tolist() == [str(tmp_path / "edit_mask.png"), "", ""]
    assert rows.strength.tolist() == [0.9, 0.5, 0.005] and rows.edited.tolist()[1] == "film_seed1_edited.png"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strength", "1.5"], "error: strength must be in [0, 1], got 1.5"),
        (["--edit-mask", "square.png"], "error: square.png: mask is 20x20"),
        (["--edit-mask", "empty.png"], "error: empty.png: the edit mask selects no pixel"),
        (["--edit-mask", "lungs"], "error: lungs: neither a mask file nor a zone (whole, right_lower"),
    ],
)
def test_bad_cli_input_is_one_line(project, tmp_path, extra, message):
    Image.fromarray(np.full((40, 30), 100, np.uint8)).save(tmp_path / "film.png")
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "square.png")
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(tmp_path / "empty.png")
    result = cli(
        "--image",
        "film.png",
        "--prompt",
        PROMPT,
        "--out",
        "out",
        "--models",
        str(project / "models"),
        *extra,
        cwd=tmp_path,
    )
    assert result.returncode == 1 and result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_the_edit_stage_writes_grids_and_measures_identity_and_success_by_value(tiny_project, tmp_path, monkeypatch):
    """The stage on the tiny project, then with planted edits: returning each film unchanged gives
    probability change 0, no flips and identity 1; returning another patient's film gives identity 0."""
    import stages.edit

    project = pristine_copy(tiny_project, tmp_path / "project")
    monkeypatch.chdir(project)
    stages.edit.main()
    metrics = json.loads((project / "metrics/edit.json").read_text())
    names = [e["name"] for e in yaml.safe_load((project / "params.yaml").read_text())["edit"]["edits"]]
    assert sorted(metrics["edits"]) == sorted(names)
    for name, entry in metrics["edits"].items():
        assert entry["outside_change_pasted"]["value"] == 0 and entry["outside_change_raw"]["value"] > 0
        assert (project / f"metrics/edit_grids/{name}.png").is_file()
    assert metrics["laterality"]["n_right"] == metrics["edits"]["add_right_effusion"]["n"] == 2
    assert metrics["laterality"]["n_left"] == metrics["edits"]["add_left_effusion"]["n"] == 2
    manifest = pd.read_csv(project / "data/edits/manifest.csv")
    assert len(manifest) == sum(e["n"] for e in metrics["edits"].values()) and manifest.seed.is_unique
    assert all((project / "data/edits" / f).is_file() for f in manifest.file)

    def planted(shift):
        def fake(models, images, prompts, seeds, *args, **kwargs):
            weights = torch.ones_like(images)
            return edit.EditResult(images.roll(shift, 0), images.roll(shift, 0), weights)

        return fake

    monkeypatch.setattr(edit, "edit_images", planted(0))  # what edit_runs calls
    stages.edit.main()
    unchanged = json.loads((project / "metrics/edit.json").read_text())["edits"]
    for entry in unchanged.values():
        assert entry["probability_change"]["value"] == 0 and entry["identity_top1_pixels"]["value"] == 1
        assert entry["identity_top1_features"]["value"] == 1
        assert entry["flip_rate"]["value"] in (0, None)
    monkeypatch.setattr(edit, "edit_images", planted(1))  # what edit_runs calls
    stages.edit.main()
    swapped = json.loads((project / "metrics/edit.json").read_text())["edits"]
    for entry in swapped.values():
        assert entry["identity_top1_pixels"]["value"] == 0
