"""What a synthetic chest radiograph shows: the one description that the phantom renderer draws,
the report writer describes and the CheXpert-style labels encode, so the three always agree."""

from __future__ import annotations

from dataclasses import dataclass, field

from cxrldm.data.labels import CHEXPERT_LABELS

SIDES = ("left", "right", "bilateral")


SIZES = ("small", "moderate", "large")


LOBES = ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe")


DEVICES = ("pacemaker", "endotracheal tube", "central venous catheter")


@dataclass(frozen=True)
class Findings:
    """Findings of one study. Severities are 0 (absent) to 3 (severe); sides and sizes use the
    vocabularies above. `None` means absent."""

    cardiomegaly: int = 0  # 0 normal heart, 1 mild, 2 moderate, 3 severe
    effusion_side: str | None = None  # left / right / bilateral
    effusion_size: str | None = None  # small / moderate / large
    pneumothorax_side: str | None = None  # left / right
    opacity_lobe: str | None = None  # one of LOBES
    opacity_is_consolidation: bool = False  # dense consolidation vs hazy opacity
    edema: int = 0  # 0 none, 1 mild, 2 moderate, 3 severe
    devices: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if not 0 <= self.cardiomegaly <= 3 or not 0 <= self.edema <= 3:
            raise ValueError(f"severity out of range 0..3: {self}")
        if (self.effusion_side is None) != (self.effusion_size is None):
            raise ValueError("effusion needs both a side and a size")
        if self.effusion_side not in (None, *SIDES) or self.effusion_size not in (None, *SIZES):
            raise ValueError(f"unknown effusion side/size: {self.effusion_side}/{self.effusion_size}")
        if self.pneumothorax_side not in (None, "left", "right"):
            raise ValueError(f"unknown pneumothorax side: {self.pneumothorax_side}")
        if self.opacity_lobe not in (None, *LOBES):
            raise ValueError(f"unknown lobe: {self.opacity_lobe}")
        unknown = set(self.devices) - set(DEVICES)
        if unknown:
            raise ValueError(f"unknown devices: {sorted(unknown)}")

    @property
    def has_pathology(self) -> bool:
        """Anything but support devices (CheXpert's "No Finding" allows devices)."""
        return self != Findings(devices=self.devices)

    def chexpert(self) -> dict[str, float | None]:
        """CheXpert-style labels: 1.0 present, 0.0 explicitly absent, None (blank) not mentioned."""
        labels: dict[str, float | None] = dict.fromkeys(CHEXPERT_LABELS)
        if self.devices:
            labels["Support Devices"] = 1.0
        if not self.has_pathology:
            labels["No Finding"] = 1.0
            labels["Cardiomegaly"] = 0.0
            labels["Pleural Effusion"] = 0.0
            labels["Pneumothorax"] = 0.0
            return labels
        labels["Cardiomegaly"] = 1.0 if self.cardiomegaly else 0.0
        labels["Pleural Effusion"] = 1.0 if self.effusion_side else 0.0
        labels["Pneumothorax"] = 1.0 if self.pneumothorax_side else 0.0
        if self.opacity_lobe:
            labels["Lung Opacity"] = 1.0
            if self.opacity_is_consolidation:
                labels["Consolidation"] = 1.0
        if self.edema:
            labels["Edema"] = 1.0
        return labels
