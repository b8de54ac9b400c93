"""Shared fixtures: the real sample files, and small simulated series with planted defects.

The series are generated once per test session (a few seconds) and must be
treated as read-only by the tests: copy files out of them before changing
anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from rawmap.defectmap import DefectKind
from rawmap.frame import CameraId
from rawmap.synth import PlantedDefect, SensorSpec, SeriesTruth, generate_series

#: ``../shared/samples`` beside the repository (test data that is not committed)
SHARED_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"

#: the defects planted in :func:`small_series`, visible-area (row, col) -> kind
PLANTED = {
    (20, 31): DefectKind.STUCK,
    (40, 90): DefectKind.DEAD,
    (70, 121): DefectKind.HOT,
}


@dataclass(frozen=True)
class Series:
    """A generated series: its folder, its DNG files and what was planted."""

    folder: Path
    truth: SeriesTruth

    @property
    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.dng"))

    @property
    def camera(self) -> CameraId:
        return self.truth.camera


def _planted() -> list[PlantedDefect]:
    params = {
        DefectKind.STUCK: {"value": 9000},
        DefectKind.DEAD: {},
        DefectKind.HOT: {"dark_dn_per_s": 2500.0, "strength": "hot"},
    }
    return [PlantedDefect(r, c, kind, dict(params[kind])) for (r, c), kind in PLANTED.items()]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``../shared/samples/raw``: real RAW files of six cameras; the test is skipped when absent."""
    raw = SHARED_SAMPLES / "raw"
    if not raw.is_dir():
        pytest.skip(f"real sample files not found at {raw} (they live beside the repository, in ../shared)")
    return raw


@pytest.fixture(scope="session")
def small_series(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """12 DNG frames, 120x160 RGGB, of body "Rawmap Simulated Sensor SIM0001" with :data:`PLANTED` defects."""
    folder = tmp_path_factory.mktemp("series-a")
    spec = SensorSpec(120, 160, top_margin=8, left_margin=12)
    truth = generate_series(folder, n_frames=12, seed=11, spec=spec, defects=_planted())
    return Series(folder, truth)


@pytest.fixture(scope="session")
def other_series(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """A second body (another serial, another size): 5 DNG frames, 96x128."""
    folder = tmp_path_factory.mktemp("series-b")
    spec = SensorSpec(96, 128, camera=CameraId("Rawmap", "Simulated Sensor", "SIM0002"))
    truth = generate_series(folder, n_frames=5, seed=12, spec=spec, defects=_planted())
    return Series(folder, truth)
