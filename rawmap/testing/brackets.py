"""Exposure brackets of real scenes: crops of real RAW files' own mosaics, each shot at several exposures.

:func:`write_real_brackets` takes crops of the visible mosaics of RAW
files that LibRaw decodes (black removed, aligned so that each crop starts
on a red photosite) as the views of a bracket series, on a tripod or
handheld (``shake``): each crop is one view, shot at exposures 2 stops
apart, the longest clipping over much of the picture. The scenes are real optics and real texture (pixel-wide
specks, sharp edges), which our simulator's scenes are not; the files' own
defects are frozen into the scenes, so they follow the exposure as scene
detail does. Planted defects (:class:`~rawmap.testing.PlantedDefect`) are
the only ones: what a detector flags beyond them is false.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..accumulate.noise import robust_sigma
from ..defectmap import DefectKind
from ..dng import write_dng
from ..frame import CameraId
from .defects import PlantedDefect
from .oneview import _read_scene

__all__ = ["RealBrackets", "write_real_brackets"]

#: the written sensor: 14 bits, black 512, 0.25 DN per electron, 3 DN of read noise, ISO 100, RGGB
_BLACK, _WHITE, _DN_PER_E, _READ_DN = 512, 16383, 0.25, 3.0
_RGGB = np.array([[0, 1], [3, 2]], np.uint8)
#: a planted defect is visible in a frame where its change of the residual ``4 v - sum4`` is this many
#: robust sigmas of the residuals around it (scene texture and noise) and no same-colour neighbour clipped
_VISIBLE_SIGMA = 6.0


@dataclass(frozen=True)
class RealBrackets:
    """What :func:`write_real_brackets` wrote.

    Attributes
    ----------
    files : list of Path
        The DNG frames, in capture order (view by view, shortest exposure first).
    views : list of str
        Per view, the name of the RAW file it was cropped from.
    defects : list of PlantedDefect
        The planted defects (hot: ``dark_dn_per_s`` at ISO 100; cold:
        ``gain``; stuck: ``value`` in DN; dead: none).
    visible_frames : (N,) ndarray of int64
        Per defect, the frames in which it was visible against the scene
        around it (``_VISIBLE_SIGMA`` robust sigmas of the local residuals).
    clean : list of Path
        Per frame, its mosaic without the planted defects (same noise,
        uint16 ``.npy``), when asked for; else empty.
    """

    files: list[Path]
    views: list[str]
    defects: list[PlantedDefect]
    visible_frames: np.ndarray
    clean: list[Path] = field(default_factory=list)

    def must_find(self, share: float = 0.2) -> np.ndarray:
        """(N,) bool: the defects visible in at least ``share`` of the frames."""
        return self.visible_frames >= share * len(self.files)


def _crops(src: Path, shape: tuple[int, int], per_source: int) -> list[np.ndarray]:
    """Up to ``per_source`` crops of ``shape`` of ``src``'s visible mosaic, black removed, as a share of
    its range, each starting on a red photosite; none when LibRaw cannot decode it as a Bayer RAW."""
    scene = _read_scene(src)
    if scene is None:
        return []
    mosaic, bmap, cfa, black, white = scene
    starts = [(y, x) for y in range(2) for x in range(2) if cfa[y, x] == 0 and cfa[1 - y, 1 - x] == 2]
    if not starts:
        return []
    oy, ox = starts[0]
    signal = np.clip(mosaic - bmap, 0, None) / max(white - float(black.mean()), 1.0)
    H, W = shape
    out: list[np.ndarray] = []
    for i in range(max(1, (signal.shape[0] - oy) // H)):
        for j in range(max(1, (signal.shape[1] - ox) // W)):
            crop = signal[oy + i * H : oy + (i + 1) * H, ox + j * W : ox + (j + 1) * W]
            if crop.shape == (H, W) and len(out) < per_source:
                out.append(crop)
    return out


def _plant(
    rng: np.random.Generator, shape: tuple[int, int], n: int, hot_rates: tuple[float, float]
) -> list[PlantedDefect]:
    """``n`` photosites, 8 or more from the edges and 5 apart, hot, stuck, dead and cold in turn."""
    H, W = shape
    kinds = (DefectKind.HOT, DefectKind.STUCK, DefectKind.DEAD, DefectKind.COLD)
    out: list[PlantedDefect] = []
    for _ in range(1000 * n):
        if len(out) == n:
            break
        r, c = int(rng.integers(8, H - 8)), int(rng.integers(8, W - 8))
        if any(abs(r - d.row) <= 4 and abs(c - d.col) <= 4 for d in out):
            continue
        kind = kinds[len(out) % 4]
        params: dict[str, float] = {}
        if kind is DefectKind.HOT:
            params["dark_dn_per_s"] = float(np.exp(rng.uniform(np.log(hot_rates[0]), np.log(hot_rates[1]))))
        elif kind is DefectKind.STUCK:
            params["value"] = float(rng.uniform(2000, 12000))
        elif kind is DefectKind.COLD:
            params["gain"] = float(rng.uniform(0.05, 0.5))
        out.append(PlantedDefect(r, c, kind, params))
    if len(out) < n:
        raise ValueError(f"{n} defects 5 photosites apart do not fit in {H}x{W} away from its edges")
    return sorted(out, key=lambda d: (d.row, d.col))


def _exposed(signal: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The written frame of ``signal`` (DN above black), with the frame's standard normal ``noise``
    scaled to its shot and read noise, in whole DN within the range."""
    return np.clip(np.rint(_BLACK + signal + noise * np.sqrt(signal * _DN_PER_E + _READ_DN**2)), 0, _WHITE)


def _residual(frame: np.ndarray, r: int, c: int) -> float:
    """``4 v - sum4`` of the same-colour neighbours at (r, c)."""
    return float(4 * frame[r, c] - frame[r - 2, c] - frame[r + 2, c] - frame[r, c - 2] - frame[r, c + 2])


def _local_sigma(frame: np.ndarray, r: int, c: int) -> float:
    """Robust sigma of the residuals of the same-colour photosites within 10 of (r, c)."""
    H, W = frame.shape
    ys = np.array([y for y in range(r - 10, r + 11, 2) if 2 <= y < H - 2])
    xs = np.array([x for x in range(c - 10, c + 11, 2) if 2 <= x < W - 2])
    v = frame[np.ix_(ys, xs)]
    res = (
        4 * v
        - frame[np.ix_(ys - 2, xs)]
        - frame[np.ix_(ys + 2, xs)]
        - frame[np.ix_(ys, xs - 2)]
        - frame[np.ix_(ys, xs + 2)]
    )
    return robust_sigma(res)


def write_real_brackets(
    sources: Sequence[str | Path],
    folder: str | Path,
    *,
    shape: tuple[int, int] = (480, 720),
    per_source: int = 6,
    exposures: Sequence[float] = (0.01, 0.04, 0.16, 0.64),
    first_level: float = 0.02,
    defects: int = 0,
    hot_rates: tuple[float, float] = (3000.0, 100000.0),
    seed: int = 7,
    clean_dir: str | Path | None = None,
    shake: int = 0,
) -> RealBrackets:
    """Write a bracket series of real scenes into ``folder`` (``br_000.dng`` ...).

    Each crop of each source is one view, shot at every exposure of
    ``exposures`` (seconds, ISO 100), its median at ``first_level`` of the
    range in the first and in proportion to the exposure after it (the
    default: 2 %, 8 %, 32 % and 128 %, the last clipping over much of the
    picture), with fresh shot and read noise, 10 minutes between views.

    Parameters
    ----------
    sources : sequence of str or Path
        RAW files; those LibRaw does not decode as a Bayer RAW are left out.
    folder : str or Path
        An existing folder.
    shape : (int, int), optional
        Rows and columns of each crop (even).
    per_source : int, optional
        Most crops taken from one source.
    exposures : sequence of float, optional
    first_level : float, optional
    defects : int, optional
        Photosites to plant: hot, stuck, dead and cold in turn (hot: a dark
        current of ``hot_rates`` DN/s at ISO 100, log-uniform; stuck at
        2000-12000 DN; dead at black; cold at a gain of 0.05-0.5).
    hot_rates : (float, float), optional
    seed : int, optional
        Seeds the planting and the noise.
    clean_dir : str or Path, optional
        An existing folder: each frame's mosaic without the planted defects
        is saved there as ``br_000.npy`` ... (the truth a repair is
        measured against).
    shake : int, optional
        Handheld brackets: each frame of a view is cropped up to this many
        photosites (an even number) off the view's centre, each way, at
        random; the defects stay on the sensor. 0: a tripod. A view then
        needs a crop of ``shape`` grown by ``shake`` on every side.

    Returns
    -------
    RealBrackets

    Raises
    ------
    ValueError
        No source gave a crop of ``shape``, or ``defects`` photosites 5
        apart do not fit in it 8 or more from its edges.
    """
    folder = Path(folder)
    if shake < 0 or shake % 2:
        raise ValueError(f"shake must be an even number of photosites, not {shake}")
    grown = (shape[0] + 2 * shake, shape[1] + 2 * shake)
    views = [(Path(s).name, crop) for s in sources for crop in _crops(Path(s), grown, per_source)]
    if not views:
        raise ValueError(f"none of the {len(sources)} sources gave a Bayer crop of {grown[0]}x{grown[1]}")
    rng = np.random.default_rng(seed)
    planted = _plant(rng, shape, defects, hot_rates)
    visible = np.zeros(len(planted), np.int64)
    files: list[Path] = []
    clean_paths: list[Path] = []
    start = dt.datetime(2026, 1, 1, 12, 0)
    for v, (_, view) in enumerate(views):
        centre = view[shake : shake + shape[0], shake : shake + shape[1]]
        scale = first_level / (float(np.median(centre)) + 1e-4) * (_WHITE - _BLACK) / exposures[0]
        for j, exposure in enumerate(exposures):
            crop = centre
            if shake:  # an even offset keeps the colour pattern
                dy, dx = (2 * rng.integers(-(shake // 2), shake // 2 + 1, 2)).tolist()
                crop = view[shake + dy : shake + dy + shape[0], shake + dx : shake + dx + shape[1]]
            clean = crop * scale * exposure
            s = clean.copy()
            for d in planted:
                if d.kind is DefectKind.HOT:
                    s[d.row, d.col] += d.params["dark_dn_per_s"] * exposure
                elif d.kind is DefectKind.COLD:
                    s[d.row, d.col] *= d.params["gain"]
            noise = rng.standard_normal(s.shape)
            written = _exposed(s, noise)
            for d in planted:
                if d.kind is DefectKind.STUCK:
                    written[d.row, d.col] = np.clip(np.rint(d.params["value"]), 0, _WHITE)
                elif d.kind is DefectKind.DEAD:
                    written[d.row, d.col] = np.clip(np.rint(_BLACK + noise[d.row, d.col] * _READ_DN), 0, _WHITE)
            without = _exposed(clean, noise)
            for i, d in enumerate(planted):
                r, c = d.row, d.col
                if (written[[r - 2, r + 2, r, r], [c, c, c - 2, c + 2]] >= _WHITE).any():
                    continue
                change = abs(_residual(written, r, c) - _residual(without, r, c))
                visible[i] += change > _VISIBLE_SIGMA * _local_sigma(without, r, c)
            path = folder / f"br_{len(files):03d}.dng"
            write_dng(
                path,
                written.astype(np.uint16),
                cfa=_RGGB,
                black=[_BLACK] * 4,
                white=_WHITE,
                camera=CameraId("Bench", "RealBrackets", "1"),
                exposure=float(exposure),
                iso=100,
                time=start + dt.timedelta(minutes=10 * v, seconds=2 * j),
            )
            files.append(path)
            if clean_dir is not None:
                clean_paths.append(Path(clean_dir) / f"{path.stem}.npy")
                np.save(clean_paths[-1], without.astype(np.uint16))
    return RealBrackets(files, [name for name, _ in views], planted, visible, clean_paths)
