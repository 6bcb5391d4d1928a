"""Behaviour of the synthetic radiograph renderer: each finding must show where and how it should."""

import dataclasses

import numpy as np
import pytest

from cxrldm.demo.findings import LOBES, Findings
from cxrldm.demo.phantoms import heart_width_fraction, render, sample_anatomy

HEIGHT, WIDTH = 350, 300
PATIENT_SEED = 1


def patient_anatomy(seed=None):
    return sample_anatomy(np.random.default_rng(PATIENT_SEED if seed is None else seed))


def draw(findings=Findings(), view="PA", seed=0, patient_seed=None, height=HEIGHT, width=WIDTH):
    patient = patient_anatomy(patient_seed)
    return render(findings, view, np.random.default_rng(seed), height, width, patient=patient).astype(float)


def dark_runs(row, threshold):
    """(start, end) of the dark stretches of a row that touch neither end of it: lungs, not the air
    around the body."""
    dark = np.concatenate([[False], row < threshold, [False]])
    edges = np.flatnonzero(np.diff(dark.astype(int)))
    runs = list(zip(edges[::2], edges[1::2]))
    return [(a, b) for a, b in runs if a > 0 and b < len(row) and b - a > 0.03 * len(row)]


def lung_runs(image, block=4):
    """From pixels, per row of `block`-pixel blocks: the dark runs left and right of the image's middle."""
    h, w = image.shape
    blocks = (
        image[: h // block * block, : w // block * block]
        .reshape(h // block, block, w // block, block)
        .mean(axis=(1, 3))
    )
    chest = blocks[int(0.2 * len(blocks)) : int(0.7 * len(blocks)), blocks.shape[1] // 5 : -blocks.shape[1] // 5]
    threshold = 0.5 * (np.percentile(chest, 10) + np.percentile(chest, 90))
    centre = blocks.shape[1] / 2
    for row in blocks:
        runs = dark_runs(row, threshold)
        yield [run for run in runs if run[1] <= centre], [run for run in runs if run[0] >= centre]


def lung_boxes(image, block=4):
    """From pixels: (top, bottom, left, right) of the image-left and the image-right lung field."""
    found = ([], [])
    for index, sides in enumerate(lung_runs(image, block)):
        for runs, side in zip(sides, found):
            side.extend((index, start, end) for start, end in runs)
    boxes = []
    for side in found:
        rows, starts, ends = np.array(side).T
        boxes.append((block * rows.min(), block * (rows.max() + 1), block * starts.min(), block * ends.max()))
    return boxes


def box_mean(image, box, rows, cols):
    """Mean brightness of part of a lung field, given as fractions of its box, from its top and its left."""
    top, bottom, left, right = box
    r0, r1 = top + int(rows[0] * (bottom - top)), top + int(rows[1] * (bottom - top))
    c0, c1 = left + int(cols[0] * (right - left)), left + int(cols[1] * (right - left))
    return image[r0:r1, c0:c1].mean()


def measured_cardiothoracic_ratio(image):
    """From pixels: the widest bright gap between the lungs in the lower half of the lung fields (above
    the diaphragm domes) over the widest span of the lungs."""
    lungs = {
        index: (left[0][0], left[-1][1], right[0][0], right[-1][1])
        for index, (left, right) in enumerate(lung_runs(image))
        if left and right
    }
    top, bottom = min(lungs), max(lungs)
    thorax = max(outer_right - outer_left for outer_left, _, _, outer_right in lungs.values())
    band = range(top + int(0.55 * (bottom - top)), top + int(0.8 * (bottom - top)))
    heart = max(lungs[row][2] - lungs[row][1] for row in band if row in lungs)
    return heart / thorax


def near_white(image):
    return image >= 240


def test_same_generator_state_gives_the_same_image():
    findings = Findings(cardiomegaly=1, effusion_side="left", effusion_size="small", devices=("pacemaker",))
    first = render(findings, "PA", np.random.default_rng(7), 300, 260)
    again = render(findings, "PA", np.random.default_rng(7), 300, 260)
    other = render(findings, "PA", np.random.default_rng(8), 300, 260)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_without_a_patient_the_anatomy_comes_from_the_generator():
    rng = np.random.default_rng(3)
    patient = sample_anatomy(rng)
    explicit = render(Findings(), "AP", rng, 200, 180, patient=patient)
    implicit = render(Findings(), "AP", np.random.default_rng(3), 200, 180)
    assert np.array_equal(explicit, implicit)


@pytest.mark.parametrize("view", ["PA", "AP", "LATERAL", "LL"])
@pytest.mark.parametrize("size", [(600, 600), (780, 600), (600, 780), (64, 64), (97, 131)])
def test_output_is_uint8_of_the_requested_size(view, size):
    image = render(Findings(edema=1, devices=("endotracheal tube",)), view, np.random.default_rng(0), *size)
    assert image.dtype == np.uint8
    assert image.shape == size
    assert image.min() < 40 and image.max() > 180  # air outside the body and bright tissue both present


def test_unknown_view_is_refused():
    with pytest.raises(ValueError, match="view"):
        render(Findings(), "OBLIQUE", np.random.default_rng(0), 100, 100)


def test_left_lateral_is_drawn_like_lateral():
    assert np.array_equal(draw(view="LL"), draw(view="LATERAL"))


def test_lateral_view_has_no_mediastinum_between_two_lungs():
    frontal, lateral = draw(view="PA"), draw(view="LATERAL")
    assert np.abs(frontal - lateral).mean() > 15

    def middle_over_sides(image):
        """Brightness at the image's vertical midline minus that a fifth of the width to either side,
        through the upper chest."""
        h, w = image.shape
        profile = image[int(0.25 * h) : int(0.45 * h)].mean(axis=0)
        middle = profile[int(0.47 * w) : int(0.53 * w)].mean()
        return middle - 0.5 * (profile[int(0.3 * w)] + profile[int(0.7 * w)])

    assert middle_over_sides(frontal) > 60  # mediastinum and spine between the lungs
    assert middle_over_sides(lateral) < 30  # one lung field across the middle, spine at the back


def test_cardiothoracic_ratio_grows_with_cardiomegaly_grade():
    drawn = [heart_width_fraction(grade, patient_anatomy()) for grade in range(4)]
    assert 0.42 <= drawn[0] <= 0.48
    assert drawn == sorted(drawn) and drawn[3] >= 0.68
    measured = [
        measured_cardiothoracic_ratio(draw(Findings(cardiomegaly=grade), height=700, width=600)) for grade in range(4)
    ]
    assert measured == sorted(measured) and measured[3] - measured[0] > 0.15
    assert np.allclose(measured, drawn, atol=0.04), (measured, drawn)


def test_normal_hearts_vary_between_patients_within_the_normal_range():
    ratios = [heart_width_fraction(0, sample_anatomy(np.random.default_rng(seed))) for seed in range(50)]
    assert min(ratios) >= 0.42 and max(ratios) <= 0.48 and np.std(ratios) > 0.01


def costophrenic_corner(box, image_side):
    """The lower lateral part of a lung field, where fluid collects first."""
    return box, (0.75, 1.0), (0.0, 0.4) if image_side == "left" else (0.6, 1.0)


@pytest.mark.parametrize("size", ["small", "moderate", "large"])
def test_effusion_brightens_the_base_on_the_patients_side(size):
    normal = draw()
    image_left, image_right = lung_boxes(normal)
    left_corner = costophrenic_corner(image_left, "left")
    right_corner = costophrenic_corner(image_right, "right")
    right = draw(Findings(effusion_side="right", effusion_size=size))  # patient's right = image left
    left = draw(Findings(effusion_side="left", effusion_size=size))
    gain = {"small": 6, "moderate": 20, "large": 30}[size]
    assert box_mean(right, *left_corner) > box_mean(normal, *left_corner) + gain
    assert box_mean(right, *right_corner) == pytest.approx(box_mean(normal, *right_corner), abs=1)
    assert box_mean(left, *right_corner) > box_mean(normal, *right_corner) + gain
    assert box_mean(left, *left_corner) == pytest.approx(box_mean(normal, *left_corner), abs=1)


def test_larger_effusions_fill_more_of_the_hemithorax():
    box = lung_boxes(draw())[0]
    whole = (0.0, 1.0), (0.0, 1.0)
    sizes = [
        box_mean(draw(Findings(effusion_side="bilateral", effusion_size=size)), box, *whole)
        for size in ("small", "moderate", "large")
    ]
    assert sizes == sorted(sizes) and sizes[2] - sizes[0] > 30


def test_pneumothorax_darkens_the_apex_and_lateral_lung_of_its_side():
    normal = draw()
    image_left, image_right = lung_boxes(normal)
    right = draw(Findings(pneumothorax_side="right"))
    left = draw(Findings(pneumothorax_side="left"))
    upper, lateral_of_image_left, lateral_of_image_right = (0.0, 0.5), (0.0, 0.3), (0.7, 1.0)
    assert (
        box_mean(right, image_left, upper, lateral_of_image_left)
        < box_mean(normal, image_left, upper, lateral_of_image_left) - 8
    )
    assert box_mean(right, image_right, upper, lateral_of_image_right) == pytest.approx(
        box_mean(normal, image_right, upper, lateral_of_image_right), abs=1
    )
    assert (
        box_mean(left, image_right, upper, lateral_of_image_right)
        < box_mean(normal, image_right, upper, lateral_of_image_right) - 8
    )


@pytest.mark.parametrize("lobe", LOBES)
def test_lobar_opacity_brightens_its_own_zone_and_consolidation_more(lobe):
    normal = draw()
    image_left, image_right = lung_boxes(normal)
    own, other = (image_left, image_right) if lobe.startswith("right") else (image_right, image_left)
    zone = ((0.0, 0.5) if "upper" in lobe else (0.5, 1.0), (0.0, 1.0))
    hazy = draw(Findings(opacity_lobe=lobe))
    dense = draw(Findings(opacity_lobe=lobe, opacity_is_consolidation=True))
    assert box_mean(hazy, own, *zone) > box_mean(normal, own, *zone) + 3
    assert box_mean(dense, own, *zone) > box_mean(hazy, own, *zone) + 3
    assert box_mean(dense, other, *zone) == pytest.approx(box_mean(normal, other, *zone), abs=1)


def test_edema_clouds_both_perihilar_regions_more_with_grade():
    images = [draw(Findings(edema=grade)) for grade in range(4)]
    image_left, image_right = lung_boxes(images[0])
    for box, medial_half in ((image_left, (0.5, 1.0)), (image_right, (0.0, 0.5))):
        means = [box_mean(image, box, (0.25, 0.7), medial_half) for image in images]
        assert means == sorted(means) and means[3] - means[0] > 20


def test_pacemaker_is_near_white_metal_in_the_upper_image_right():
    normal = draw()
    paced = draw(Findings(devices=("pacemaker",)))
    assert not near_white(normal).any()
    metal = near_white(paced)
    h, w = metal.shape
    upper_right = metal[: h // 2, w // 2 :].sum()
    assert upper_right > 0.002 * h * w
    assert upper_right > 3 * metal[:, : w // 2].sum()


@pytest.mark.parametrize("device", ["endotracheal tube", "central venous catheter"])
def test_tubes_and_lines_are_near_white_in_the_upper_chest(device):
    metal = near_white(draw(Findings(devices=(device,))))
    h, w = metal.shape
    assert metal[: h // 2].sum() > 0.0003 * h * w
    assert metal[int(0.7 * h) :].sum() == 0


def test_devices_show_on_the_lateral_view_too():
    assert near_white(draw(Findings(devices=("pacemaker",)), view="LATERAL")).sum() > 0.001 * HEIGHT * WIDTH


def test_findings_brighten_the_lateral_view_somewhere():
    def blocks(image):
        return image.reshape(HEIGHT // 25, 25, WIDTH // 25, 25).mean(axis=(1, 3))

    normal = blocks(draw(view="LATERAL"))
    for findings in (
        Findings(cardiomegaly=3),
        Findings(effusion_side="bilateral", effusion_size="large"),
        Findings(opacity_lobe="left lower lobe", opacity_is_consolidation=True),
        Findings(edema=3),
    ):
        assert (blocks(draw(findings, view="LATERAL")) - normal).max() > 20, findings


def test_anatomy_differs_between_patients_and_is_shared_by_one_patients_studies():
    patients = [sample_anatomy(np.random.default_rng(seed)) for seed in range(5)]
    assert len(set(patients)) == 5
    assert all(dataclasses.is_dataclass(patient) for patient in patients)
    with pytest.raises(dataclasses.FrozenInstanceError):
        patients[0].size = 1.0
    first_study = draw(seed=1, patient_seed=10)
    second_study = draw(seed=2, patient_seed=10)
    other_patient = draw(seed=1, patient_seed=11)
    assert np.abs(first_study - other_patient).mean() > 1.5 * np.abs(first_study - second_study).mean()


def test_ap_view_draws_a_larger_heart_with_flatter_contrast():
    pa, ap = draw(view="PA", height=700, width=600), draw(view="AP", height=700, width=600)
    assert measured_cardiothoracic_ratio(ap) > measured_cardiothoracic_ratio(pa)
    assert np.percentile(ap, 95) - np.percentile(ap, 20) < np.percentile(pa, 95) - np.percentile(pa, 20)
