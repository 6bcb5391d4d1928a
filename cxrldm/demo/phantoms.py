"""Synthetic chest radiographs that show what a `Findings` says.

The renderer composes an attenuation map (more tissue in the beam = brighter) from smooth analytic
shapes in *normalised body coordinates*: x runs from the image's left to its right (on a frontal film
the patient's right to left; on a lateral film front to back), y runs downwards, and one unit is about
the image's short side. It works at a small internal resolution, maps attenuation to brightness with a
per-study exposure, upsamples to the requested size and adds film grain; metal devices are drawn at
full size.

Everything random comes from the caller's generator, so one generator state gives one image. Findings
draw their randomness from a child generator taken at a fixed point, so one patient and generator
state rendered with and without a finding differ only where the finding is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from cxrldm.demo.findings import Findings

VIEWS = ("PA", "AP", "LATERAL", "LL")

# An AP film is taken with the heart far from the detector, so the heart projects larger than on PA.
AP_HEART_MAGNIFICATION = 1.12

_INTERNAL_LONG_SIDE = 160
_ENLARGED_HEART_RATIO = (0.55, 0.62, 0.70)  # cardiothoracic ratio for cardiomegaly grades 1..3
# Height of the fluid at the lateral chest wall, as a fraction of the hemithorax height.
_EFFUSION_HEIGHT = {"small": 0.2, "moderate": 0.42, "large": 0.68}
_LUNG_AIR = 0.8  # attenuation that a full-depth lung removes from the body's
# brightness = tanh(gain * attenuation): the film's shoulder compresses bone over soft tissue.
_DISPLAY_GAIN = 0.95


@dataclass(frozen=True)
class PatientAnatomy:
    """Per-patient body shape and imaging habits, in normalised body coordinates."""

    size: float  # body scale relative to the image's short side
    shift_x: float
    shift_y: float
    rotation_deg: float
    lung_half_width: float  # inner thoracic half-width (lateral lung border at its widest)
    left_lung_width_ratio: float  # the left lung's half-width relative to the right's
    apex_y: float
    apex_curvature: float  # how pointed the lung apices are
    lung_widest_at: float  # where down the lung (0 apex, 1 costophrenic angle) it is widest
    costophrenic_y: float  # lateral costophrenic angles: depth of inspiration
    dome_rise: float  # how far the diaphragm domes rise above the costophrenic angles
    left_dome_drop: float  # the left hemidiaphragm sits this much lower than the right
    mediastinum_half_width: float
    aortic_knob: float
    normal_heart_ratio: float  # cardiothoracic ratio without cardiomegaly
    heart_right_share: float  # part of the heart's width to the right of the midline
    heart_top_y: float
    chest_depth: float  # front-to-back half-depth of the chest (lateral view)
    rib_spacing: float
    rib_arch: float
    clavicle_y: float
    clavicle_tilt: float
    soft_tissue: float  # body habitus: soft-tissue thickness factor
    breast: float  # breast shadow strength, 0 for none
    gastric_bubble: float  # size of the stomach's air bubble, 0 for none
    exposure: float  # shifts overall brightness
    contrast: float  # display gamma
    texture_seed: int  # lung vessel pattern, the same in every study of the patient


def sample_anatomy(rng: np.random.Generator) -> PatientAnatomy:
    """Draw one patient's anatomy."""
    u = rng.uniform
    return PatientAnatomy(
        size=u(0.92, 1.03),
        shift_x=u(-0.03, 0.03),
        shift_y=u(-0.03, 0.03),
        rotation_deg=u(-3.0, 3.0),
        lung_half_width=u(0.36, 0.41),
        left_lung_width_ratio=u(0.95, 1.02),
        apex_y=u(-0.43, -0.38),
        apex_curvature=u(3.5, 7.0),
        lung_widest_at=u(0.55, 0.85),
        costophrenic_y=u(0.28, 0.36),
        dome_rise=u(0.1, 0.15),
        left_dome_drop=u(0.015, 0.045),
        mediastinum_half_width=u(0.065, 0.085),
        aortic_knob=u(0.012, 0.03),
        normal_heart_ratio=u(0.42, 0.48),
        heart_right_share=u(0.28, 0.36),
        heart_top_y=u(-0.1, -0.05),
        chest_depth=u(0.3, 0.35),
        rib_spacing=u(0.066, 0.076),
        rib_arch=u(0.75, 1.1),
        clavicle_y=u(-0.37, -0.31),
        clavicle_tilt=u(-0.1, 0.04),
        soft_tissue=u(0.7, 1.5),
        breast=u(0.5, 1.0) if rng.random() < 0.4 else 0.0,
        gastric_bubble=u(0.6, 1.2) if rng.random() < 0.7 else 0.0,
        exposure=u(-0.08, 0.08),
        contrast=u(0.85, 1.15),
        texture_seed=int(rng.integers(2**31)),
    )


def heart_width_fraction(cardiomegaly: int, patient: PatientAnatomy) -> float:
    """Cardiothoracic ratio drawn on a PA film: widest heart over widest inner thorax.
    (AP films draw the heart `AP_HEART_MAGNIFICATION` times wider.)"""
    if cardiomegaly == 0:
        return patient.normal_heart_ratio
    # Keep a little of the patient's own heart size; grades stay ordered within a patient.
    return _ENLARGED_HEART_RATIO[cardiomegaly - 1] + 0.5 * (patient.normal_heart_ratio - 0.45)


def render(
    findings: Findings,
    view: str,
    rng: np.random.Generator,
    height: int,
    width: int,
    patient: PatientAnatomy | None = None,
) -> np.ndarray:
    """One radiograph as uint8 (height, width), 0 = black. `view` is PA, AP (a bedside film: magnified
    heart, shallower breath, flatter contrast, more grain), LATERAL or LL (drawn alike, facing the image
    left). Lateral films do not show a pneumothorax, as they often do not in life."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}, expected one of {VIEWS}")
    if patient is None:
        patient = sample_anatomy(rng)
    frame = _Frame.for_image(height, width, patient, rng)
    study = _Study.sample(rng, view)
    finding_rng = np.random.default_rng(rng.integers(2**63))
    shape = (frame.internal_height, frame.internal_width)
    texture = _Texture(fine=_smooth_noise(rng, shape, 2), coarse=_smooth_noise(rng, shape, 6))
    x, y = frame.grid()
    if view in ("LATERAL", "LL"):
        attenuation, metal = _lateral(x, y, patient, study, findings, texture, finding_rng)
    else:
        attenuation, metal = _frontal(x, y, patient, study, findings, texture, finding_rng, view == "AP")
    attenuation *= 1.0 + study.heel * y
    brightness = _display(attenuation, patient, study)
    return _finish(brightness, metal, frame, study, rng, height, width)


# ---------------------------------------------------------------------------------------------
# geometry helpers


@dataclass(frozen=True)
class _Frame:
    """Maps normalised body coordinates to internal pixels (and to full-size pixels)."""

    internal_height: int
    internal_width: int
    centre_x: float
    centre_y: float
    pixels_per_unit: float
    cos: float
    sin: float
    full_scale_x: float
    full_scale_y: float

    @staticmethod
    def for_image(height: int, width: int, patient: PatientAnatomy, rng: np.random.Generator) -> _Frame:
        scale = _INTERNAL_LONG_SIDE / max(height, width)
        h, w = max(round(height * scale), 8), max(round(width * scale), 8)
        short = min(h, w)
        unit = short * patient.size
        # Tall films show more abdomen below the chest than neck above it.
        centre_y = 0.5 * short + 0.3 * (h - short)
        jitter = rng.normal(0.0, 0.01, size=2)
        angle = np.deg2rad(patient.rotation_deg + rng.normal(0.0, 0.7))
        return _Frame(
            h,
            w,
            0.5 * w + (patient.shift_x + jitter[0]) * unit,
            centre_y + (patient.shift_y + jitter[1]) * unit,
            unit,
            float(np.cos(angle)),
            float(np.sin(angle)),
            width / w,
            height / h,
        )

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        rows = (np.arange(self.internal_height, dtype=np.float32) - self.centre_y)[:, None]
        cols = (np.arange(self.internal_width, dtype=np.float32) - self.centre_x)[None, :]
        x = (self.cos * cols + self.sin * rows) / self.pixels_per_unit
        y = (-self.sin * cols + self.cos * rows) / self.pixels_per_unit
        return x.astype(np.float32), y.astype(np.float32)

    def to_full_pixels(self, points: np.ndarray) -> np.ndarray:
        x, y = points[:, 0], points[:, 1]
        px = self.centre_x + self.pixels_per_unit * (self.cos * x - self.sin * y)
        py = self.centre_y + self.pixels_per_unit * (self.sin * x + self.cos * y)
        return np.stack([px * self.full_scale_x, py * self.full_scale_y], axis=1)

    def full_pixels_per_unit(self) -> float:
        return self.pixels_per_unit * 0.5 * (self.full_scale_x + self.full_scale_y)


@dataclass(frozen=True)
class _Study:
    """What changes between two films of one patient."""

    inspiration: float  # moves the diaphragm down (deeper breath) or up
    exposure: float
    heel: float  # exposure falling off from one end of the film to the other
    contrast: float
    grain_bits: int  # film grain: the sum of two random numbers of this many bits
    blur: float  # internal pixels

    @staticmethod
    def sample(rng: np.random.Generator, view: str) -> _Study:
        portable = view == "AP"  # bedside films: shallower breath, flatter contrast, noisier
        return _Study(
            inspiration=rng.normal(0.0, 0.012) - (0.035 if portable else 0.0),
            exposure=rng.normal(0.0, 0.03),
            heel=rng.normal(0.0, 0.05),
            contrast=(0.75 if portable else 1.0) * rng.uniform(0.94, 1.06),
            grain_bits=4 if portable else 3,
            blur=rng.uniform(0.6, 0.9) + (0.25 if portable else 0.0),
        )


def _soft(margin, edge: float):
    """0 outside, 1 inside a shape given a signed margin (positive inside), ramped over `edge`."""
    ramp = margin * (1.0 / edge)
    ramp += 0.5
    return np.clip(ramp, 0.0, 1.0, out=ramp)


def _ellipse_margin(x, y, cx, cy, rx, ry, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u, v = (c * dx + s * dy) / rx, (-s * dx + c * dy) / ry
    return (1.0 - np.sqrt(u * u + v * v)) * min(rx, ry)


def _segment_distance(x, y, a, b):
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return _length(x - ax - t * dx, y - ay - t * dy)


def _window(x, y, top_left, bottom_right) -> tuple[slice, slice]:
    """The rows and columns of the grid that reach into a box in body coordinates."""
    inside = (x >= top_left[0]) & (x <= bottom_right[0]) & (y >= top_left[1]) & (y <= bottom_right[1])
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _length(dx, dy):
    return np.sqrt(dx * dx + dy * dy)


def _pseudo_angle(dx, dy):
    """A cheap stand-in for arctan2: increases monotonically with the angle, from -1 to 3 per turn."""
    p = dy / (np.abs(dx) + np.abs(dy) + 1e-9)
    return np.where(dx >= 0, p, 2.0 - p)


def _bezier(p0, p1, p2, n=16) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def _smooth_noise(rng: np.random.Generator, shape, feature: int) -> np.ndarray:
    """Zero-mean noise of about unit spread with blobs about `feature` pixels wide."""
    height, width = shape
    coarse = rng.standard_normal((height // feature + 2, width // feature + 2), dtype=np.float32)
    noise = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    return noise / (noise.std() + 1e-6)


@dataclass(frozen=True)
class _Texture:
    """The study's smooth noise fields."""

    fine: np.ndarray  # lung parenchyma
    coarse: np.ndarray  # airspace disease

    def crop(self, window: tuple[slice, slice]) -> _Texture:
        return _Texture(self.fine[window], self.coarse[window])


def _patches(x, y, centre, extent, rng, count=10):
    """A cluster of random soft blobs around `centre` within `extent` (half-sizes): 0..~1."""
    density = np.zeros_like(x)
    for _ in range(count):
        bx = centre[0] + rng.uniform(-0.6, 0.6) * extent[0]
        by = centre[1] + rng.uniform(-0.6, 0.6) * extent[1]
        size = rng.uniform(0.35, 0.65)
        r2 = ((x - bx) / (size * extent[0])) ** 2 + ((y - by) / (size * extent[1])) ** 2
        np.maximum(density, np.exp(-r2), out=density)
    return density


def _patchy(density, texture, consolidation: bool):
    """Hazy opacity is patchy and faint; consolidation is dense and confluent."""
    if consolidation:
        return np.clip(1.6 * density - 0.25 + 0.12 * texture, 0.0, 0.82)
    return np.clip(density * (0.7 + 0.3 * texture), 0.0, 0.6)


# ---------------------------------------------------------------------------------------------
# frontal view


@dataclass(frozen=True)
class _Lung:
    """One lung on a frontal film, described in lateral distance u = |x| from the midline."""

    side: int  # -1 right lung (image left), +1 left lung (image right)
    apex_y: float
    apex_u: float
    apex_curvature: float
    widest_at: float
    lateral_u: float
    medial_u: float
    costophrenic_y: float
    dome_y: float
    dome_peak_u: float

    def margin(self, u, y):
        """Approximate signed distance to the lung outline, positive inside."""
        t = np.clip((y - self.apex_y) / (self.costophrenic_y - self.apex_y), 0.0, 1.0)
        widening = np.sqrt(np.sin(np.minimum(t / self.widest_at, 1.0) * (np.pi / 2)))
        lateral = self.apex_u + (self.lateral_u - self.apex_u) * widening
        top = self.apex_y + self.apex_curvature * (u - self.apex_u) ** 2
        lateral_drop = (self.costophrenic_y - self.dome_y) / (self.lateral_u - self.dome_peak_u) ** 2
        dome = self.dome_y + np.where(u > self.dome_peak_u, lateral_drop, 4.0) * (u - self.dome_peak_u) ** 2
        return np.minimum(np.minimum(y - top, lateral - u), np.minimum(u - self.medial_u, dome - y))

    @property
    def hilum(self) -> tuple[float, float]:
        return self.medial_u + 0.08, self.apex_y + 0.45 * (self.dome_y - self.apex_y)


def _lungs(patient: PatientAnatomy, study: _Study) -> tuple[_Lung, _Lung]:
    costophrenic_y = patient.costophrenic_y + study.inspiration
    lungs = []
    for side, width, drop in ((-1, 1.0, 0.0), (1, patient.left_lung_width_ratio, patient.left_dome_drop)):
        lateral = patient.lung_half_width * width
        lungs.append(
            _Lung(
                side=side,
                apex_y=patient.apex_y + 0.3 * drop,
                apex_u=0.15 + 0.12 * lateral,
                apex_curvature=patient.apex_curvature,
                widest_at=patient.lung_widest_at,
                lateral_u=lateral,
                medial_u=0.03,
                costophrenic_y=costophrenic_y + drop,
                dome_y=costophrenic_y + drop - patient.dome_rise,
                dome_peak_u=0.5 * lateral,
            )
        )
    return lungs[0], lungs[1]


@dataclass(frozen=True)
class _Heart:
    right: float  # extent to the image left of the midline
    left: float  # extent to the image right
    top_y: float
    bottom_y: float


def _heart(patient: PatientAnatomy, lungs: tuple[_Lung, _Lung], cardiomegaly: int, magnification: float) -> _Heart:
    thorax_width = lungs[0].lateral_u + lungs[1].lateral_u
    width = heart_width_fraction(cardiomegaly, patient) * thorax_width * magnification
    right_share = patient.heart_right_share + 0.02 * cardiomegaly  # a big heart spreads both ways
    return _Heart(
        right=right_share * width,
        left=(1 - right_share) * width,
        top_y=patient.heart_top_y - 0.03 * cardiomegaly,
        bottom_y=lungs[0].dome_y + 0.06,
    )


def _bulge(t, start: float, widest: float, bottom: float):
    """A convex heart border along its height t (0 top, 1 diaphragm): 0 above `start`, 1 at `widest`,
    curving back in to `bottom` at the diaphragm."""
    rising = np.sqrt(np.sin(np.clip((t - start) / (widest - start), 0.0, 1.0) * (np.pi / 2)))
    falling = 1.0 - (1.0 - bottom) * np.clip((t - widest) / (1.0 - widest), 0.0, 1.0) ** 2
    return rising * falling


def _mediastinum_margin(x, y, patient: PatientAnatomy, heart: _Heart):
    """Signed distance to the central shadow: upper mediastinum, aortic knob and heart."""
    t = np.clip((y - heart.top_y) / (heart.bottom_y - heart.top_y), 0.0, 1.0)
    half = patient.mediastinum_half_width
    # The right border: straight superior vena cava, then the convex right atrium.
    right = half + (heart.right - half) * _bulge(t, 0.12, 0.62, 0.85)
    # The left border: aortic knob, a flat pulmonary segment, then the convex left ventricle.
    knob = patient.aortic_knob * np.exp(-(((y - (heart.top_y - 0.1)) / 0.035) ** 2))
    left = half + 0.012 + knob + (heart.left - half - 0.012) * _bulge(t, 0.0, 0.66, 0.85)
    return np.minimum(x + right, left - x)


def _body_half_width(y, patient: PatientAnatomy, lungs: tuple[_Lung, _Lung]):
    wall = 0.5 * (lungs[0].lateral_u + lungs[1].lateral_u) + 0.02 + 0.05 * patient.soft_tissue
    neck = 0.07 + 0.02 * patient.soft_tissue
    shoulder_y = patient.clavicle_y - 0.03
    knots_y = [
        -2.0,
        shoulder_y - 0.2,
        shoulder_y - 0.14,
        shoulder_y - 0.07,
        shoulder_y,
        shoulder_y + 0.25,
        0.1,
        0.45,
        2.0,
    ]
    knots_w = [neck, neck, neck + 0.1, wall - 0.04, wall + 0.07, wall + 0.05, wall, wall - 0.01, wall + 0.02]
    return np.interp(y, knots_y, knots_w).astype(np.float32)


def _ribs(x, y, patient: PatientAnatomy, lungs: tuple[_Lung, _Lung], body_half_width):
    """Posterior ribs (arched, with bright cortices) and fainter anterior ribs sloping down medially."""
    u = np.abs(x)
    arch = patient.rib_arch * (-0.5 * u + 1.3 * u**2 + 5.0 * np.maximum(u - 0.3, 0.0) ** 2)
    first = lungs[0].apex_y - 0.03
    rib_count = np.maximum(y - arch - first, 0.0) / patient.rib_spacing
    phase = rib_count - 0.015 * rib_count * rib_count  # lower ribs lie further apart
    index = np.floor(phase)
    frac = phase - index
    thickness = 0.4 + 0.3 * np.minimum(u, 0.4)
    profile = np.clip(np.minimum(frac, thickness - frac) * 10.0, 0.0, 1.0)
    profile *= 0.7 + 0.6 * np.abs(frac - 0.5 * thickness) / thickness
    chest = _soft(body_half_width - 0.03 - u, 0.03) * _soft(u - 0.045, 0.02)
    posterior = profile * chest * (index < 11) * _soft(lungs[1].costophrenic_y - 0.03 - y, 0.08)
    lateral = 0.5 * (lungs[0].lateral_u + lungs[1].lateral_u)
    anterior_phase = (y + 0.5 * (u - lateral) - first - 0.1) / (1.3 * patient.rib_spacing)
    anterior_frac = anterior_phase - np.floor(anterior_phase)
    anterior = _soft(np.minimum(anterior_frac, 0.3 - anterior_frac), 0.08)
    anterior *= _soft(u - 0.16, 0.06) * (anterior_phase > 0) * (anterior_phase < 6) * chest
    return posterior, anterior


def _clavicles(x, y, patient: PatientAnatomy):
    u = np.abs(x)
    s = np.clip((u - 0.05) / 0.37, 0.0, 1.0)
    centre = patient.clavicle_y + patient.clavicle_tilt * s - 0.03 * np.sin(np.pi * s) * (1.5 * s - 0.3)
    margin = np.minimum(0.02 - np.abs(y - centre), np.minimum(u - 0.045, 0.43 - u))
    return _soft(margin, 0.01)


def _spine(x, y):
    """Vertebral bodies with disc spaces, pedicles and spinous processes."""
    column = _soft(0.045 - np.abs(x), 0.01)
    level = (y + 1.0) / 0.062
    frac = level - np.floor(level)
    bodies = column * (0.55 + 0.45 * _soft(np.minimum(frac - 0.1, 0.95 - frac), 0.05))
    pedicles = _soft(0.011 - _length(np.abs(x) - 0.03, (frac - 0.4) * 0.05), 0.006)
    spinous = _soft(0.008 - _length(x, (frac - 0.75) * 0.037), 0.006)
    return bodies + 0.7 * pedicles + 0.5 * spinous


def _airway(x, y, carina_y: float):
    trachea = np.where(y < carina_y, np.abs(x + 0.1 * (y - carina_y) ** 2), 1.0)
    right_bronchus = _segment_distance(x, y, (0.0, carina_y), (-0.08, carina_y + 0.07))
    left_bronchus = _segment_distance(x, y, (0.0, carina_y), (0.1, carina_y + 0.09))
    distance = np.minimum(trachea, np.minimum(right_bronchus, left_bronchus))
    return _soft(0.018 - distance, 0.01)


def _vessels(x, y, hila, patient: PatientAnatomy) -> np.ndarray:
    """Branching vascular markings radiating from each hilum and fading to the periphery: each layer
    is a random set of thin angular spikes around the hilum, bent by a gentle wave."""
    texture_rng = np.random.default_rng(patient.texture_seed)
    markings = np.zeros_like(x)
    bins = 720
    for hilum_x, hilum_y in hila:
        dx, dy = x - hilum_x, y - hilum_y
        radius = _length(dx, dy)
        angle = _pseudo_angle(dx, dy)
        for spikes, wobble, reach, weight in ((30, 0.3, 0.16, 1.0), (90, 0.6, 0.26, 0.7)):
            table = np.zeros(bins, np.float32)
            table[texture_rng.integers(0, bins, spikes)] = texture_rng.uniform(0.4, 1.0, spikes)
            table = gaussian_filter(table, 1.0, mode="wrap")
            table *= weight / table.max()
            bent = angle + wobble * radius * np.sin(12.0 * radius + texture_rng.uniform(0, 2 * np.pi))
            index = ((bent + 1.0) * (bins / 4)).astype(np.int32) % bins
            markings += table[index] * np.exp(-radius / reach)
    return markings


def _frontal(
    x,
    y,
    patient: PatientAnatomy,
    study: _Study,
    findings: Findings,
    texture: _Texture,
    rng: np.random.Generator,
    portable: bool,
):
    lungs = _lungs(patient, study)
    heart = _heart(patient, lungs, findings.cardiomegaly, AP_HEART_MAGNIFICATION if portable else 1.0)
    body_half_width = _body_half_width(y, patient, lungs)
    body = _soft(body_half_width - np.abs(x), 0.015)
    thickness = np.sqrt(np.clip(1.0 - (x / (body_half_width + 0.03)) ** 2, 0.0, 1.0))
    central = _soft(_mediastinum_margin(x, y, patient, heart), 0.01)

    attenuation = body * (0.5 + 0.5 * thickness) * (0.9 + 0.1 * patient.soft_tissue)
    carina_y = heart.top_y - 0.05
    airway = _window(x, y, (-0.12, -2.0), (0.14, carina_y + 0.12))
    attenuation[airway] -= 0.2 * _airway(x[airway], y[airway], carina_y) * central[airway]
    posterior, anterior = _ribs(x, y, patient, lungs, body_half_width)
    attenuation += (0.13 * posterior + 0.045 * anterior) * (1.0 - 0.7 * central)
    attenuation += 0.22 * _clavicles(x, y, patient)
    attenuation += 0.1 * _spine(x, y) * body
    attenuation += _shoulder_bones(x, y, patient, portable) * body
    attenuation += _breasts(x, y, patient)
    if patient.gastric_bubble:
        attenuation -= 0.3 * patient.gastric_bubble * _gastric_bubble(x, y, lungs[1])

    # The lungs and everything in them are drawn only inside their bounding box.
    window = _window(
        x,
        y,
        (-lungs[0].lateral_u - 0.02, min(lung.apex_y for lung in lungs) - 0.02),
        (lungs[1].lateral_u + 0.02, lungs[1].costophrenic_y + 0.02),
    )
    x, y, central, texture = x[window], y[window], central[window], texture.crop(window)
    hila = [(lung.side * lung.hilum[0], lung.hilum[1]) for lung in lungs]
    markings = 0.02 * texture.fine + 0.13 * _vessels(x, y, hila, patient)
    for hilum_x, hilum_y in hila:
        markings += 0.12 * np.exp(-(((x - hilum_x) / 0.045) ** 2 + ((y - hilum_y) / 0.075) ** 2))
    air = []
    for lung in lungs:
        margin = lung.margin(lung.side * x, y)
        depth = 0.6 + 0.4 * np.clip(margin / 0.1, 0.0, 1.0)
        # Some lung lies behind the heart, so the heart is a little less dense than the abdomen.
        air.append(_soft(margin, 0.012) * (1.0 - 0.8 * central) * depth)
    air, markings = _frontal_findings(x, y, findings, lungs, air, markings, texture, rng)
    for lung_air in air:
        attenuation[window] -= lung_air * (_LUNG_AIR - markings)
    metal = [shape for device in findings.devices for shape in _frontal_device(device, lungs, heart, rng)]
    return attenuation, metal


def _shoulder_bones(x, y, patient: PatientAnatomy, portable: bool):
    """Humeral heads at the shoulders; on AP films the scapulae also project over the lungs."""
    u = np.abs(x)
    shoulder_y = patient.clavicle_y - 0.03
    humerus = _soft(_ellipse_margin(u, y, 0.49, shoulder_y + 0.05, 0.065, 0.07), 0.015)
    edge = (0.3 if portable else 0.41) - 0.1 * (y - shoulder_y)
    span = np.minimum(y - shoulder_y, shoulder_y + 0.3 - y)
    scapula = _soft(np.minimum(u - edge, span), 0.02)
    border = _soft(0.007 - np.abs(u - edge), 0.006) * _soft(span, 0.02)
    return 0.14 * humerus + 0.06 * scapula + 0.08 * border


def _breasts(x, y, patient: PatientAnatomy):
    if patient.breast == 0.0:
        return np.zeros_like(x)
    inside = _soft(_ellipse_margin(np.abs(x), y, 0.24, 0.12, 0.2, 0.17), 0.025)
    return 0.12 * patient.breast * inside * np.clip((y + 0.02) / 0.2, 0.0, 1.0)


def _gastric_bubble(x, y, left_lung: _Lung):
    top = left_lung.dome_y + 0.03
    bubble = _soft(_ellipse_margin(x, y, left_lung.dome_peak_u + 0.02, top + 0.035, 0.055, 0.035), 0.012)
    return bubble * _soft(top + 0.045 - y, 0.006)  # flat air-fluid level


# ---------------------------------------------------------------------------------------------
# frontal findings


def _frontal_findings(x, y, findings: Findings, lungs, air, markings, texture: _Texture, rng):
    """Air left in each lung, and lung markings, once the findings have replaced or added some."""
    if findings.effusion_side:
        for index in _side_indices(findings.effusion_side):
            fluid = _effusion(x, y, lungs[index], _EFFUSION_HEIGHT[findings.effusion_size], rng)
            air[index] = air[index] * (1.0 - fluid)
    if findings.pneumothorax_side:
        index = _side_indices(findings.pneumothorax_side)[0]
        air[index], markings = _pneumothorax(x, y, lungs[index], air[index], markings, rng)
    if findings.opacity_lobe:
        index = _side_indices(findings.opacity_lobe.split()[0])[0]
        density = _lobe_opacity(
            x, y, lungs[index], findings.opacity_lobe, findings.opacity_is_consolidation, texture, rng
        )
        air[index] = air[index] * (1.0 - density)
    if findings.edema:
        haze = _edema(x, y, lungs, findings.edema, texture, rng)
        air = [lung_air * (1.0 - haze) for lung_air in air]
    return air, markings


def _side_indices(side: str) -> tuple[int, ...]:
    """Lung indices (0 = patient's right = image left) for a side in the patient's frame."""
    return {"right": (0,), "left": (1,), "bilateral": (0, 1)}[side]


def _effusion(x, y, lung: _Lung, height_fraction: float, rng):
    """Fluid at the base: a meniscus climbing the lateral wall, blunting the costophrenic angle."""
    u = lung.side * x
    hemithorax = lung.costophrenic_y - lung.apex_y
    top = lung.costophrenic_y - (height_fraction + rng.normal(0, 0.02)) * hemithorax
    drop = min(0.1, 0.6 * (lung.costophrenic_y - top)) + 0.02
    across = np.clip((u - lung.medial_u) / (lung.lateral_u - lung.medial_u), 0.0, 1.0)
    meniscus = top + drop * np.sqrt(1.0 - across)
    return _soft(y - meniscus, 0.03)


def _pneumothorax(x, y, lung: _Lung, lung_air, markings, rng):
    """The lung collapses away from the apex and the lateral chest wall towards the mediastinum and
    its base: a thin pleural line, and beyond it air without lung markings; the collapsed lung is denser."""
    collapse = rng.uniform(0.25, 0.4)
    centre_u, centre_y = lung.medial_u, lung.costophrenic_y
    u = lung.side * x
    keep = 1.0 - collapse
    shrunk = lung.margin(centre_u + (u - centre_u) / keep, centre_y + (y - centre_y) / keep) * keep
    collapsed_lung = _soft(shrunk, 0.006)
    pleural_line = np.exp(-((shrunk / 0.006) ** 2))
    pleural_space = (lung_air > 0.05) * (1.0 - collapsed_lung)
    markings = markings * (1.0 - pleural_space) + 0.35 * pleural_line * (lung_air > 0.3)
    collapsed_air = lung_air * (0.8 + 0.2 * (1.0 - collapsed_lung))
    lung_air = np.maximum(collapsed_air, 1.1 * pleural_space * (lung_air > 0.05))
    return lung_air, markings


_LOBE_ZONES = {  # centre and half-extent as fractions of the lung's width (medial to lateral) and height
    "right upper lobe": (0.5, 0.25, 0.45, 0.25),
    "right middle lobe": (0.32, 0.7, 0.4, 0.2),
    "right lower lobe": (0.55, 0.85, 0.45, 0.2),
    "left upper lobe": (0.45, 0.42, 0.42, 0.3),
    "left lower lobe": (0.55, 0.85, 0.45, 0.2),
}


def _lobe_opacity(x, y, lung: _Lung, lobe: str, consolidation: bool, texture: _Texture, rng):
    """Patchy airspace density in the lobe's zone; consolidation is denser with air bronchograms."""
    cu, cy, eu, ey = _LOBE_ZONES[lobe]
    width = lung.lateral_u - lung.medial_u
    height = lung.dome_y - lung.apex_y
    centre = (lung.medial_u + cu * width, lung.apex_y + cy * height)
    extent = (eu * width, ey * height)
    # The blobs fade out within about twice the zone's half-extent: draw only there.
    ends = sorted(lung.side * (centre[0] + reach * extent[0]) for reach in (-2.0, 2.0))
    window = _window(x, y, (ends[0], centre[1] - 2.0 * extent[1]), (ends[1], centre[1] + 2.0 * extent[1]))
    u, y = lung.side * x[window], y[window]
    zone = _patchy(_patches(u, y, centre, extent, rng), texture.coarse[window], consolidation)
    if consolidation:
        zone *= 1.0 - 0.3 * _air_bronchograms(u, y, lung, centre, rng)
    if lobe == "right upper lobe":  # the horizontal fissure bounds it below
        zone *= _soft(lung.hilum[1] + 0.01 - y, 0.006)
    density = np.zeros_like(x)
    density[window] = zone
    return density


def _air_bronchograms(u, y, lung: _Lung, centre, rng):
    hilum_u, hilum_y = lung.hilum
    tubes = np.zeros_like(u)
    for _ in range(3):
        end = (centre[0] + rng.normal(0, 0.05), centre[1] + rng.normal(0, 0.05))
        start = (hilum_u + 0.5 * (end[0] - hilum_u), hilum_y + 0.5 * (end[1] - hilum_y))
        np.maximum(tubes, _soft(0.004 - _segment_distance(u, y, start, end), 0.004), out=tubes)
    return tubes


def _edema(x, y, lungs, grade: int, texture: _Texture, rng):
    """Perihilar (bat-wing) haziness growing with grade, and Kerley B lines at the lung bases."""
    spread = (0.0, 0.13, 0.17, 0.22)[grade]
    strength = (0.0, 0.3, 0.5, 0.7)[grade]
    haze = np.zeros_like(x)
    for lung in lungs:
        hilum_u, hilum_y = lung.hilum
        u = lung.side * x
        r2 = ((u - hilum_u) / spread) ** 2 + ((y - hilum_y) / (1.3 * spread)) ** 2
        np.maximum(haze, strength * np.exp(-r2) * (0.8 + 0.25 * texture.coarse), out=haze)
        haze = np.maximum(haze, 0.4 * _kerley_lines(x, y, lung, 2 + grade, rng))
    return np.clip(haze, 0.0, 0.85)


def _kerley_lines(x, y, lung: _Lung, count: int, rng):
    """Short horizontal lines reaching in from the lateral chest wall just above the costophrenic angle."""
    start = lung.lateral_u - 0.005
    ends = sorted(lung.side * value for value in (start - 0.05, start + 0.01))
    window = _window(x, y, (ends[0], lung.costophrenic_y - 0.15), (ends[1], lung.costophrenic_y - 0.03))
    u, y = lung.side * x[window], y[window]
    lines = np.zeros_like(u)
    for _ in range(count):
        line_y = lung.costophrenic_y - rng.uniform(0.04, 0.14)
        distance = _segment_distance(u, y, (start, line_y), (start - 0.04, line_y))
        np.maximum(lines, _soft(0.003 - distance, 0.003), out=lines)
    drawn = np.zeros_like(x)
    drawn[window] = lines
    return drawn


def _frontal_device(device: str, lungs, heart: _Heart, rng) -> list[_MetalShape]:
    jitter = rng.normal(0, 0.012, size=3)
    if device == "pacemaker":
        gx, gy = 0.28 + jitter[0], lungs[1].apex_y + 0.1 + jitter[1]
        svc = (-0.03, heart.top_y - 0.03)
        atrium = (-0.4 * heart.right, heart.top_y + 0.07)
        ventricle = (0.45 * heart.left, heart.bottom_y - 0.07 + jitter[2])
        leads = [
            _bezier((gx - 0.04, gy), (0.05, gy - 0.04), svc),
            _bezier(svc, (-0.05, heart.top_y + 0.03), atrium),
            _bezier(svc, (-0.06, heart.bottom_y - 0.04), ventricle),
        ]
        return [_MetalShape("polygon", _rounded_box(gx, gy, 0.055, 0.04))] + [
            _MetalShape("line", lead, 0.006) for lead in leads
        ]
    if device == "endotracheal tube":
        tip_y = heart.top_y - 0.1 + jitter[0]
        return [_MetalShape("line", np.array([[0.004, -2.0], [0.0, tip_y]]), 0.016)]
    # central venous catheter into the superior vena cava, through the right internal jugular vein
    # or the left subclavian vein
    tip = (-0.035, heart.top_y + 0.02 + jitter[0])
    if rng.random() < 0.5:
        start, bend = (-0.05 + jitter[1], lungs[0].apex_y - 0.3), (-0.07, lungs[0].apex_y + 0.05)
    else:
        start, bend = (0.36 + jitter[1], lungs[1].apex_y + 0.1), (0.02, lungs[1].apex_y + 0.08)
    return [_MetalShape("line", _bezier(start, bend, tip), 0.006)]


# ---------------------------------------------------------------------------------------------
# lateral view: the patient faces the image left, the spine is at the image right


@dataclass(frozen=True)
class _Chest:
    """Outline of the chest on a lateral film (x from front to back)."""

    front: float  # anterior chest wall (skin)
    back: float  # posterior skin
    sternum: float
    lung_front: float
    lung_back: float
    apex_y: float
    dome_peak_x: float
    right_dome_y: float
    left_dome_y: float
    front_sulcus_y: float
    back_sulcus_y: float

    def lung_margin(self, x, y, dome_y):
        top = self.apex_y + 1.8 * (x - 0.02) ** 2
        front = self.lung_front + 0.5 * np.maximum(self.apex_y + 0.25 - y, 0.0)
        rise_front = (self.front_sulcus_y - dome_y) / (self.dome_peak_x - self.lung_front) ** 2
        rise_back = (self.back_sulcus_y - dome_y) / (self.lung_back - self.dome_peak_x) ** 2
        dome = dome_y + np.where(x < self.dome_peak_x, rise_front, rise_back) * (x - self.dome_peak_x) ** 2
        return np.minimum(np.minimum(y - top, x - front), np.minimum(self.lung_back - x, dome - y))


def _chest(patient: PatientAnatomy, study: _Study) -> _Chest:
    depth = patient.chest_depth
    sulcus = patient.costophrenic_y + study.inspiration + 0.04
    right_dome = sulcus - patient.dome_rise - 0.06
    return _Chest(
        front=-depth - 0.02 * patient.soft_tissue,
        back=depth + 0.05 * patient.soft_tissue,
        sternum=-depth + 0.035,
        lung_front=-depth + 0.06,
        lung_back=depth - 0.04,
        apex_y=patient.apex_y,
        dome_peak_x=-0.05,
        right_dome_y=right_dome,
        left_dome_y=right_dome + patient.left_dome_drop,
        front_sulcus_y=right_dome + 0.06,
        back_sulcus_y=sulcus,
    )


def _lateral(x, y, patient: PatientAnatomy, study: _Study, findings: Findings, texture: _Texture, rng):
    chest = _chest(patient, study)
    front = np.interp(
        y,
        [-2.0, chest.apex_y, chest.apex_y + 0.2, 0.35, 2.0],
        [chest.front + 0.12, chest.front + 0.1, chest.front, chest.front, chest.front - 0.03],
    )
    front = front.astype(np.float32) - patient.breast * 0.06 * np.exp(-(((y - 0.08) / 0.12) ** 2))
    back = np.interp(
        y,
        [-2.0, chest.apex_y - 0.1, chest.apex_y + 0.1, 2.0],
        [chest.back - 0.06, chest.back - 0.06, chest.back, chest.back],
    ).astype(np.float32)
    body = _soft(np.minimum(x - front, back - x), 0.015)
    middle, half_depth = 0.5 * (front + back), 0.5 * (back - front) + 0.03
    thickness = np.sqrt(np.clip(1.0 - ((x - middle) / half_depth) ** 2, 0.0, 1.0))
    attenuation = body * (0.8 + 0.2 * thickness) * (0.95 + 0.1 * patient.soft_tissue)
    # Raised arms cross the top of a lateral film, the humeri as bright bars.
    arms = _soft(_ellipse_margin(x, y, -0.02, chest.apex_y - 0.06, 0.45, 0.12, -0.5), 0.08)
    humeri = _soft(_ellipse_margin(x, y, -0.04, chest.apex_y - 0.08, 0.4, 0.025, -0.55), 0.02)
    attenuation += (0.25 * arms + 0.12 * humeri) * body
    heart = _lateral_heart(patient, chest, findings.cardiomegaly)
    hilum = (0.03, heart.cy - heart.ry - 0.04)
    trachea = _soft(0.017 - np.abs(x - _lateral_trachea_x(y, hilum)), 0.01) * _soft(hilum[1] - y, 0.03)
    attenuation -= 0.22 * trachea * body
    attenuation += _lateral_bones(x, y, patient, chest) * body
    if patient.gastric_bubble:
        bubble = _soft(_ellipse_margin(x, y, -0.1, chest.left_dome_y + 0.065, 0.05, 0.03), 0.01)
        attenuation -= 0.25 * patient.gastric_bubble * bubble * _soft(chest.left_dome_y + 0.075 - y, 0.006)

    # The lungs and everything in them are drawn only inside their bounding box.
    window = _window(
        x, y, (chest.lung_front - 0.02, chest.apex_y - 0.02), (chest.lung_back + 0.02, chest.back_sulcus_y + 0.02)
    )
    x, y, texture = x[window], y[window], texture.crop(window)
    heart_mask = _soft(_ellipse_margin(x, y, *heart), 0.03)
    markings = 0.015 * texture.fine + 0.08 * _vessels(x, y, [hilum], patient)
    markings += 0.12 * np.exp(-(((x - hilum[0]) / 0.06) ** 2 + ((y - hilum[1]) / 0.08) ** 2))
    # Each lung is half of the air in the beam; they overlap except between the two domes.
    air = []
    for dome_y in (chest.right_dome_y, chest.left_dome_y):
        margin = chest.lung_margin(x, y, dome_y)
        depth = 0.7 + 0.3 * np.clip(margin / 0.1, 0.0, 1.0)
        air.append(0.5 * _soft(margin, 0.012) * (1.0 - 0.8 * heart_mask) * depth)
    air = _lateral_findings(x, y, findings, chest, hilum, air, texture, rng)
    for lung_air in air:
        attenuation[window] -= lung_air * (0.8 * _LUNG_AIR - 2.0 * markings)
    metal = [shape for device in findings.devices for shape in _lateral_device(device, chest, heart, hilum, rng)]
    return attenuation, metal


def _lateral_findings(x, y, findings: Findings, chest: _Chest, hilum, air, texture: _Texture, rng):
    if findings.effusion_side:
        for index in _side_indices(findings.effusion_side):
            fluid = _lateral_effusion(x, y, chest, _EFFUSION_HEIGHT[findings.effusion_size], rng)
            air[index] = air[index] * (1.0 - fluid)
    if findings.opacity_lobe:
        index = _side_indices(findings.opacity_lobe.split()[0])[0]
        centre, extent = _LATERAL_LOBE_ZONES[findings.opacity_lobe]
        density = _patchy(_patches(x, y, centre, extent, rng), texture.coarse, findings.opacity_is_consolidation)
        air[index] = air[index] * (1.0 - density)
    if findings.edema:
        r2 = ((x - hilum[0]) / 0.2) ** 2 + ((y - hilum[1]) / 0.22) ** 2
        haze = (0.0, 0.3, 0.5, 0.7)[findings.edema] * np.exp(-r2) * (0.8 + 0.25 * texture.coarse)
        air = [lung_air * (1.0 - haze) for lung_air in air]
    return air


class _Ellipse(NamedTuple):
    cx: float
    cy: float
    rx: float
    ry: float
    angle: float


def _lateral_heart(patient: PatientAnatomy, chest: _Chest, cardiomegaly: int) -> _Ellipse:
    """The heart rests on the anterior diaphragm behind the sternum, its long axis tilted forwards."""
    grow = heart_width_fraction(cardiomegaly, patient) / 0.45
    rx, ry = 0.19 * grow, 0.13 * grow**0.8
    return _Ellipse(chest.lung_front + 0.03 + rx * 0.75, chest.right_dome_y + 0.06 - ry * 0.9, rx, ry, -0.6)


_LATERAL_LOBE_ZONES = {  # centre and half-extent on the lateral film
    "right upper lobe": ((0.0, -0.22), (0.17, 0.12)),
    "right middle lobe": ((-0.14, 0.0), (0.1, 0.08)),
    "right lower lobe": ((0.14, 0.08), (0.14, 0.12)),
    "left upper lobe": ((-0.05, -0.2), (0.17, 0.14)),
    "left lower lobe": ((0.15, 0.1), (0.14, 0.12)),
}


def _lateral_effusion(x, y, chest: _Chest, height_fraction: float, rng):
    """Fluid in the posterior sulcus, its meniscus climbing the back wall."""
    top = chest.back_sulcus_y - (height_fraction + rng.normal(0, 0.02)) * (chest.back_sulcus_y - chest.apex_y)
    across = np.clip((chest.lung_back - x) / (chest.lung_back - chest.lung_front), 0.0, 1.0)
    return _soft(y - (top + 0.25 * (chest.back_sulcus_y - top + 0.05) * np.sqrt(across)), 0.03)


def _lateral_bones(x, y, patient: PatientAnatomy, chest: _Chest):
    """Thoracic spine (vertebral bodies and discs) at the back, sternum at the front, faint ribs."""
    spine_x = chest.back - 0.14 - 0.03 * np.cos(2.0 * y)
    level = (y + 1.0) / 0.062
    frac = level - np.floor(level)
    bodies = _soft(np.minimum(0.04 - np.abs(x - spine_x), np.minimum(frac - 0.12, 0.95 - frac) * 0.06), 0.006)
    posterior_elements = _soft(0.025 - np.abs(x - spine_x - 0.075), 0.015)
    sternum = _soft(0.013 - np.abs(x - chest.sternum), 0.008)
    sternum *= (y > patient.clavicle_y) & (y < chest.right_dome_y + 0.02)
    rib_frac = ((y - 0.6 * (x - spine_x) + 1.0) / patient.rib_spacing) % 1.0
    ribs = _soft(np.minimum(rib_frac, 0.35 - rib_frac), 0.08) * _soft(x - chest.lung_front - 0.15, 0.1)
    ribs *= y < chest.back_sulcus_y
    return 0.22 * bodies + 0.08 * posterior_elements + 0.12 * sternum + 0.04 * ribs


def _lateral_trachea_x(y, hilum):
    """The trachea runs down and slightly backwards to the carina, just above the hilum."""
    return hilum[0] - 0.05 - 0.15 * (y - hilum[1])


def _lateral_device(device: str, chest: _Chest, heart: _Ellipse, hilum, rng) -> list[_MetalShape]:
    jitter = rng.normal(0, 0.012, size=2)
    if device == "pacemaker":
        generator = (chest.front + 0.1, chest.apex_y + 0.2 + jitter[0])
        svc = (heart.cx + 0.08, heart.cy - heart.ry - 0.03)
        tip = (heart.cx - 0.6 * heart.rx, heart.cy + 0.45 * heart.ry)
        lead = _bezier(generator, (generator[0] + 0.15, generator[1] - 0.05), svc)
        lead = np.concatenate([lead, _bezier(svc, (heart.cx, heart.cy), tip)])
        return [_MetalShape("polygon", _rounded_box(*generator, 0.02, 0.045)), _MetalShape("line", lead, 0.006)]
    if device == "endotracheal tube":
        ends = np.array([-1.0, hilum[1] - 0.08 + jitter[0]])
        return [_MetalShape("line", np.stack([_lateral_trachea_x(ends, hilum), ends], axis=1), 0.016)]
    tip = (heart.cx + 0.05, heart.cy - heart.ry - 0.02 + jitter[0])
    neck, bend = (-0.05, chest.apex_y - 0.25), (-0.06, chest.apex_y + 0.1)
    return [_MetalShape("line", _bezier(neck, bend, tip), 0.006)]


# ---------------------------------------------------------------------------------------------
# metal, and from attenuation to pixels


@dataclass(frozen=True)
class _MetalShape:
    kind: str  # "line" or "polygon"
    points: np.ndarray  # (n, 2) normalised body coordinates
    width: float = 0.0  # line width in normalised units


def _rounded_box(cx, cy, half_w, half_h) -> np.ndarray:
    """Outline of a superellipse: a box with rounded corners."""
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    return np.stack([cx + half_w * np.sign(c) * np.abs(c) ** 0.4, cy + half_h * np.sign(s) * np.abs(s) ** 0.4], axis=1)


def _draw_metal(image: np.ndarray, grain: np.ndarray, shapes: list[_MetalShape], frame: _Frame, white: int) -> None:
    """Draws metal, with the film's grain, into `image` in place; only on a crop around the shapes, as
    drawing at full size is slow."""
    height, width = image.shape
    unit = frame.full_pixels_per_unit()
    outlines = [(shape, frame.to_full_pixels(shape.points)) for shape in shapes]
    corners = np.concatenate([points for _, points in outlines])
    pad = 4 + max(shape.width for shape in shapes) * unit
    left, top = np.maximum(np.floor(corners.min(0) - pad), 0).astype(int)
    right, bottom = np.minimum(np.ceil(corners.max(0) + pad), (width, height)).astype(int)
    if right <= left or bottom <= top:
        return
    layer = Image.new("L", (right - left, bottom - top))
    draw = ImageDraw.Draw(layer)
    for shape, points in outlines:
        points = [(px - left, py - top) for px, py in points.tolist()]
        if shape.kind == "polygon":
            draw.polygon(points, fill=white)
        else:
            draw.line(points, fill=white, width=max(1, round(shape.width * unit)), joint="curve")
    crop = image[top:bottom, left:right]
    np.maximum(crop, np.asarray(layer) + grain[top:bottom, left:right], out=crop)


def _display(attenuation: np.ndarray, patient: PatientAnatomy, study: _Study) -> np.ndarray:
    """Brightness 0..1 from attenuation, with the patient's and the study's exposure and contrast."""
    gain = _DISPLAY_GAIN * (1.0 + patient.exposure + study.exposure)
    brightness = np.tanh(gain * np.maximum(attenuation, 0.0)) ** patient.contrast
    # Flatter contrast lifts the darks more than the brights, as on an under-penetrated bedside film.
    return brightness * study.contrast + (1.0 - study.contrast) * np.sqrt(brightness)


def _finish(brightness, metal_shapes, frame: _Frame, study: _Study, rng, height: int, width: int) -> np.ndarray:
    """Film blur, upsampling to the requested size, metal, and film grain."""
    brightness = gaussian_filter(brightness, study.blur)
    grain_max = 2 * (2**study.grain_bits - 1)
    headroom = 255 - grain_max
    small = Image.fromarray(np.clip(brightness * headroom, 0, headroom).astype(np.uint8))
    image = np.asarray(small.resize((width, height), Image.BILINEAR))
    random_bytes = np.frombuffer(rng.bytes(height * width), np.uint8).reshape(height, width)
    grain = (random_bytes >> (8 - study.grain_bits)) + (random_bytes & (2**study.grain_bits - 1))
    image = image + grain
    if metal_shapes:
        _draw_metal(image, grain, metal_shapes, frame, headroom)
    return image
