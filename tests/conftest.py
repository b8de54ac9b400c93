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
from rawmap.testing import PlantedDefect, SensorSpec, SeriesTruth, generate_series

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


# --------------------------------------------------------------------------- raw mosaics in image files


@dataclass(frozen=True)
class MosaicSeries:
    """Grayscale image files holding raw mosaics (``rawmap map --cfa``), and the hot photosites planted."""

    folder: Path
    files: list[Path]
    hot: frozenset[tuple[int, int]]
    white: int


def write_mosaic_series(
    folder: Path,
    *,
    fmt: str,
    cfa: str,
    seed: int,
    n_frames: int = 10,
    shape: tuple[int, int] = (96, 128),
    n_hot: int = 12,
    n_pairs: int = 0,
    exposure: float = 2.0,
) -> MosaicSeries:
    """Write ``n_frames`` simulated mosaics (rawmap.testing) as grayscale image files.

    Parameters
    ----------
    fmt : {"tif8", "png16", "pgm16"}
        8-bit TIFF (an 8-bit sensor: black 4, white 255), 16-bit PNG with an
        ``sBIT`` chunk of 12 bits (12-bit data shifted up, as the PNG
        specification has it), or 16-bit binary PGM with maxval 4095.
    cfa : {"RGGB", "BGGR", "GRBG", "GBRG", "mono"}
        The pattern simulated; ``"mono"``: grey scenes and equal sensitivity,
        i.e. a sensor without colour filters.
    seed : int
        Everything (positions, scenes, noise) derives from it.
    n_hot : int
        Hot photosites (dark signal 10-50 % of the white level per second
        at the exposure used), planted at seeded positions 4 apart or more.
    n_pairs : int
        Of those, how many get a hot diagonal neighbour (one more hot
        photosite each, at row + 1, col + 1), as real sensors have: a
        developed image's blob, two defects of a mosaic.
    exposure : float
        The exposure every frame is simulated at; not written to the files.

    Returns
    -------
    MosaicSeries
    """
    import numpy as np
    import tifffile
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from rawmap.reader import CFA_PATTERNS
    from rawmap.testing import render_scene, simulate

    rng = np.random.default_rng(seed)
    h, w = shape
    pattern = CFA_PATTERNS[cfa]
    bits8 = fmt == "tif8"
    white = 255 if bits8 else 4095
    spec = SensorSpec(
        h,
        w,
        cfa=CFA_PATTERNS["RGGB"] if pattern is None else pattern,
        black=4 if bits8 else 64,
        white=white,
        read_noise_e=3.0,
        adc_noise_dn=0.6 if bits8 else 1.5,
        full_well_e=6000.0 if bits8 else 20000.0,
        channel_qe=(1.0, 1.0, 1.0) if pattern is None else (0.55, 1.0, 0.75),
    )
    hot: set[tuple[int, int]] = set()
    while len(hot) < n_hot:
        r, c = int(rng.integers(4, h - 4)), int(rng.integers(4, w - 4))
        if all(abs(r - a) >= 4 or abs(c - b) >= 4 for a, b in hot):
            hot.add((r, c))
    for r, c in sorted(hot)[:n_pairs]:
        hot.add((r + 1, c + 1))
    defects = [
        PlantedDefect(
            r, c, DefectKind.HOT, {"dark_dn_per_s": float(rng.uniform(0.1, 0.5)) * white / exposure, "strength": "hot"}
        )
        for r, c in sorted(hot)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    kinds = ["landscape", "flat", "night", "indoor", "landscape"]
    for i in range(n_frames):
        kind = kinds[i % len(kinds)]
        scene = render_scene(spec, rng, kind, rate=float(rng.uniform(50, 400)) * (3.0 if kind == "night" else 1.0))
        if pattern is None:
            scene[:] = scene.mean(axis=2, keepdims=True)
        mosaic = simulate(spec, defects, scene, exposure, 100.0, rng).mosaic
        if fmt == "tif8":
            path = folder / f"frame_{i:03d}.tif"
            tifffile.imwrite(path, mosaic.astype(np.uint8), photometric="minisblack")
        elif fmt == "png16":
            path = folder / f"frame_{i:03d}.png"
            info = PngInfo()
            info.add(b"sBIT", bytes([12]))
            Image.fromarray((mosaic << 4).astype(np.uint16)).save(path, pnginfo=info)
        elif fmt == "pgm16":
            path = folder / f"frame_{i:03d}.pgm"
            path.write_bytes(f"P5\n{w} {h}\n{white}\n".encode() + mosaic.astype(">u2").tobytes())
        else:
            raise ValueError(f"unknown fmt {fmt!r}")
        files.append(path)
    return MosaicSeries(folder, files, frozenset(hot), white)
