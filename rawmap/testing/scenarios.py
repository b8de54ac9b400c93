"""Named scenario series (:data:`SCENARIOS`, :func:`write_scenario`, :func:`scenario_plan`).

brackets, timelapse, timelapse-ae, timelapse-city, timelapse-drift, burst, darks-same, darks-mixed, darks-glow,
mixed, mono, gray16, gray8, black0 and banded: one line for each kind of series the detector must
handle, with a harder set of defects than :func:`~rawmap.testing.series.generate_series`'s
default (see :func:`write_scenario`).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..frame import CameraId
from .defects import DefectCounts, plant_defects
from .plans import FramePlan, SeriesPlan, _iso, _shutter, _strictly_increasing
from .sensor import SensorSpec
from .series import generate_series
from .truth import SeriesTruth

__all__ = [
    "SCENARIOS",
    "DARK_EXPOSURES",
    "scenario_plan",
    "scenario_counts",
    "scenario_spec",
    "write_scenario",
]


#: How far the view of the ``timelapse-drift`` scenario moves over the series (down, across), photosites
TRIPOD_DRIFT = (1.5, 0.75)

#: Scenarios :func:`scenario_plan` and :func:`write_scenario` know.
SCENARIOS = (
    "brackets",
    "timelapse",
    "timelapse-ae",
    "timelapse-city",
    "timelapse-drift",
    "burst",
    "darks-same",
    "darks-mixed",
    "darks-glow",
    "mixed",
    "mono",
    "gray16",
    "gray8",
    "black0",
    "banded",
)
#: Banding of the ``banded`` scenario: row noise (fresh in each frame) and column pattern noise (the
#: same in every frame), in read-noise sigmas (:attr:`SensorSpec.row_noise`, :attr:`SensorSpec.column_noise`)
BANDING = (1.0, 0.3)
#: Exposure-time range of lens-cap darks in ``darks-mixed`` and ``mixed``, seconds.
DARK_EXPOSURES = (1 / 60, 60.0)
_VARIED = ("landscape", "glints", "flat", "night", "indoor", "edges", "texture", "texture", "edges")


def _bracket(
    rng: np.random.Generator, view: int, t0: _dt.datetime, k: int, stops: float, scene: str, shake: float
) -> list[FramePlan]:
    """``k`` frames of one static view, ``stops`` apart, the first at mid grey = 2 % of the range."""
    iso = _iso(rng, 100, 800)
    base = _shutter(rng, 1 / 4000, 1 / 250)
    out = []
    for j in range(k):
        jit = (0.0, 0.0) if j == 0 or shake == 0 else tuple(float(v) for v in rng.uniform(-shake, shake, 2))
        out.append(FramePlan(scene, base * 2.0 ** (stops * j), iso, t0 + _dt.timedelta(seconds=2 * j), 0.02, view, jit))  # type: ignore[arg-type]
    return out


def _varied(rng: np.random.Generator, t: _dt.datetime) -> FramePlan:
    kind = str(rng.choice(_VARIED))
    if kind == "night":
        return FramePlan(kind, _shutter(rng, 1, 30), _iso(rng, 400, 3200), t, float(rng.uniform(0.01, 0.05)))
    if kind == "indoor":
        return FramePlan(kind, _shutter(rng, 1 / 250, 1 / 15), _iso(rng, 800, 6400), t, float(rng.uniform(0.08, 0.2)))
    return FramePlan(kind, _shutter(rng, 1 / 8000, 1 / 4), _iso(rng, 100, 3200), t, float(rng.uniform(0.08, 0.3)))


def _dark(rng: np.random.Generator, t: _dt.datetime, exposure: float, iso: float, temp: float) -> FramePlan:
    return FramePlan("dark", float(exposure), float(iso), t, 0.0, None, (0.0, 0.0), 1.0, round(float(temp), 1))


def scenario_plan(
    name: str,
    n_frames: int,
    rng: np.random.Generator,
    *,
    iso: float = 800,
    start: _dt.datetime = _dt.datetime(2024, 6, 1, 8, 0, 0),
) -> SeriesPlan:
    """The frames of a named scenario (see :func:`write_scenario`), in capture order.

    Parameters
    ----------
    name : str
        One of :data:`SCENARIOS`; ``mono``, ``gray16``, ``gray8``,
        ``black0`` and ``banded`` use the plan of ``mixed``.
    n_frames : int
        At least 4.
    rng : numpy.random.Generator
    iso : float, optional
        ISO of the lens-cap darks.
    start : datetime, optional
        Capture time of the first frame; times increase strictly.

    Returns
    -------
    SeriesPlan
    """
    if name not in SCENARIOS:
        raise ValueError(f"name must be one of {', '.join(SCENARIOS)}; got {name!r}")
    if n_frames < 4:
        raise ValueError(f"n_frames must be >= 4, got {n_frames}")
    if not iso > 0:
        raise ValueError(f"iso must be > 0, got {iso!r}")
    items: list[FramePlan] = []
    minute = _dt.timedelta(minutes=1)
    if name == "brackets":
        for v in range(int(math.ceil(n_frames / 4))):
            k = min(4, n_frames - 4 * v)
            scene = str(rng.choice(["landscape", "edges", "texture", "indoor", "glints"]))
            items += _bracket(rng, v, start + 10 * v * minute, k, 2.0, scene, 0.3 if v % 2 else 0.0)
    elif name in ("timelapse", "timelapse-ae", "timelapse-city", "timelapse-drift"):
        scene = "edges" if name == "timelapse-city" else str(rng.choice(["landscape", "edges"]))
        exp, fiso = _shutter(rng, 1 / 500, 1 / 60), _iso(rng, 100, 400)
        # sunset: the light falls 4 stops, log-linearly; in aperture priority 6, and the exposure follows it
        follows = name in ("timelapse-ae", "timelapse-city")
        lamps = 30.0 if name == "timelapse-city" else 0.0  # street lamps and lit windows: they stay lit
        for i in range(n_frames):
            stops = (6.0 if follows else 4.0) * i / max(1, n_frames - 1)
            jit = tuple(float(v) for v in rng.uniform(-0.1, 0.1, 2)) if i else (0.0, 0.0)
            if lamps:  # on a still tripod (the others shake 0.1 px)
                jit = (0.0, 0.0)
            if name == "timelapse-drift":  # the tripod settles
                drift = i / max(1, n_frames - 1)
                jit = (jit[0] + TRIPOD_DRIFT[0] * drift, jit[1] + TRIPOD_DRIFT[1] * drift)
            e = exp * 2.0**stops if follows else exp
            items.append(
                FramePlan(scene, e, fiso, start + i * minute, 0.25, 0, jit, 2.0**-stops, lamps=lamps)  # type: ignore[arg-type]
            )
    elif name == "burst":
        half = n_frames // 2
        for b, (k, scene) in enumerate(((half, "glints"), (n_frames - half, "texture"))):
            exp, fiso, lvl = _shutter(rng, 1 / 2000, 1 / 250), _iso(rng, 100, 800), float(rng.uniform(0.12, 0.2))
            t0 = start + 30 * b * minute
            for i in range(k):
                jit = (0.0, 0.0) if i == 0 else tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2))
                items.append(FramePlan(scene, exp, fiso, t0 + _dt.timedelta(seconds=i), lvl, b, jit))  # type: ignore[arg-type]
    elif name in ("darks-same", "darks-glow"):
        for i in range(n_frames):  # the sensor warms up from 20 to 32 degrees C
            items.append(_dark(rng, start + i * _dt.timedelta(seconds=35), 30.0, iso, 20 + 12 * i / (n_frames - 1)))
    elif name == "darks-mixed":
        exps = np.exp(np.linspace(np.log(DARK_EXPOSURES[0]), np.log(DARK_EXPOSURES[1]), n_frames))
        rng.shuffle(exps)
        t = start
        for e in exps:
            items.append(
                _dark(
                    rng,
                    t,
                    float(_shutter(rng, e * 0.8, min(e * 1.25, 60.0)) if e < 30 else round(e)),
                    iso,
                    rng.uniform(18, 30),
                )
            )
            t += _dt.timedelta(seconds=int(e) + 5)
    else:  # mixed: varied scenes, one bracket, one burst, every fifth frame a dark
        n_dark = n_frames // 5
        rest = n_frames - n_dark
        n_br = 4 if rest >= 10 else 0
        n_bu = 4 if rest >= 14 else 0
        singles = [_varied(rng, start + i * 7 * minute) for i in range(rest - n_br - n_bu)]
        groups: list[list[FramePlan]] = [[f] for f in singles]
        if n_br:
            groups.append(_bracket(rng, 0, start, 4, 2.0, str(rng.choice(["edges", "texture"])), 0.0))
        if n_bu:
            exp, fiso = _shutter(rng, 1 / 2000, 1 / 250), _iso(rng, 100, 800)
            groups.append(
                [
                    FramePlan(
                        "glints",
                        exp,
                        fiso,
                        start,
                        0.15,
                        1,
                        (0.0, 0.0) if i == 0 else tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2)),  # type: ignore[arg-type]
                    )
                    for i in range(4)
                ]
            )
        order = rng.permutation(len(groups))
        flat: list[FramePlan] = [f for g in order for f in groups[g]]
        dark_exps = np.exp(rng.uniform(np.log(DARK_EXPOSURES[0]), np.log(DARK_EXPOSURES[1]), n_dark))
        for j, e in enumerate(dark_exps):
            flat.insert(
                5 * j + 4,
                _dark(
                    rng,
                    start,
                    float(_shutter(rng, e * 0.8, min(e * 1.25, 30.0)) if e < 30 else 60.0),
                    iso,
                    rng.uniform(15, 35),
                ),
            )
        t = start
        for f in flat:  # capture times in series order; a bracket's or burst's frames 1-2 s apart
            items.append(replace(f, time=t))
            t += _dt.timedelta(seconds=2) if f.burst is not None else 7 * minute
    return _strictly_increasing(items)


def scenario_counts(height: int, width: int) -> DefectCounts:
    """Defects planted by :func:`write_scenario`: 3x the density of :meth:`DefectCounts.for_sensor`."""
    b = DefectCounts.for_sensor(height, width)
    return DefectCounts(
        n_stuck=3 * b.n_stuck,
        n_dead=3 * b.n_dead,
        n_hot=3 * b.n_hot,
        n_warm=3 * b.n_warm,
        n_cold=3 * b.n_cold,
        n_noisy=3 * b.n_noisy,
        n_clusters=3 * b.n_clusters,
        n_columns=b.n_columns,
        n_rows=b.n_rows,
    )


def scenario_spec(name: str, height: int, width: int) -> SensorSpec:
    """The sensor of a scenario: :class:`SensorSpec` defaults, except ``mono`` (no CFA),
    ``black0`` (12-bit, black level 0, white 4095, full well 15000 e-), ``darks-glow``
    (amplifier glow at a corner) and ``banded`` (:data:`BANDING`)."""
    camera = CameraId("Rawmap", "Scenario Sensor", f"SC-{name}")
    if name == "mono":
        return SensorSpec(height, width, cfa=None, camera=camera)
    if name == "black0":
        return SensorSpec(height, width, black=0, white=4095, full_well_e=15000.0, camera=camera)
    if name == "banded":
        return SensorSpec(height, width, camera=camera, row_noise=BANDING[0], column_noise=BANDING[1])
    if name == "darks-glow":
        return SensorSpec(height, width, camera=camera, glow_e=250.0, glow_scale=30.0)
    return SensorSpec(height, width, camera=camera)


def write_scenario(
    folder: str | Path,
    name: str,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (200, 300),
    n_frames: int = 24,
    iso: float = 800,
    file_format: str | None = None,
    duplicates: int | None = None,
    jpeg: bool = False,
    clean_dir: str | Path | None = None,
    overwrite: bool = False,
    jpeg_matrix: Sequence[Sequence[float]] | None = None,
) -> SeriesTruth:
    """Write a named scenario series into ``folder``; return its truth.

    All scenarios plant the same kinds of defects, harder than the
    defaults of :func:`plant_defects` (:func:`scenario_counts`, 3x the
    density): hot 50-3000 DN/s, warm 10-100 DN/s (at ISO 100 and 20
    degrees C), clusters of 2-4 adjacent hot photosites, cold gains
    0.05-0.5, stuck, dead, blinking, column and row segments.

    ====================  ===========================================================
    name                  frames
    ====================  ===========================================================
    ``brackets``          static views shot 4 times 2 stops apart (first frame's mid
                          grey at 2 % of the range, the last clips); same ISO, new
                          noise each frame; every other view on a tripod (no shake),
                          the others with 0.3 px of shake
    ``timelapse``         one static view, the light falling 4 stops over the
                          series, fixed exposure and ISO, 0.1 px shake, 1 min apart
    ``timelapse-ae``      the same in aperture priority: the light falls 6 stops
                          and the exposure rises 6 stops with it (1/500-1/60 s at
                          the start), so the picture keeps its brightness while
                          the dark current grows 64 times
    ``timelapse-city``    ``timelapse-ae`` of buildings (``edges``) on a still
                          tripod (no shake), with street lamps and lit windows
                          (:func:`render_lamps`, peaks up to 30x mid grey) that
                          stay lit as the daylight falls: their signal grows 64
                          times, as dark current does
    ``timelapse-drift``   ``timelapse`` on a tripod that settles: the view moves
                          1.5 photosites down and 0.75 across over the series
                          (as :mod:`rawmap.testing.oneview`'s ``drift``)
    ``burst``             two bursts (glints, texture) of near-identical frames,
                          0.3 px jitter, 1 s apart
    ``darks-same``        lens-cap darks, 30 s at ``iso``, the sensor warming from
                          20 to 32 degrees C (dark current x 4)
    ``darks-mixed``       lens-cap darks from 1/60 s to 60 s at ``iso``, 18-30
                          degrees C
    ``darks-glow``        ``darks-same`` on a sensor with amplifier glow at the top
                          right corner (250 e-/s there, falling by e every 30
                          photosites): the corner clips in every dark
    ``mixed``             varied scenes (landscape, glints, flat, night, indoor,
                          edges, texture; 1/8000-30 s, ISO 100-6400), one bracket,
                          one burst, every fifth frame a dark (1/60-60 s at
                          ``iso``), and 2 duplicate files
    ``mono``              ``mixed`` on a monochrome sensor, 16-bit grayscale TIFF
    ``gray16``            ``mixed``, the Bayer mosaic as 16-bit grayscale TIFF
    ``gray8``             ``mixed``, the Bayer mosaic as 8-bit grayscale PNG
    ``black0``            ``mixed`` on a 12-bit sensor with black level 0 (dead
                          photosites read 0, noise clips at 0)
    ``banded``            ``mixed`` on a sensor with horizontal banding (each row of
                          each frame offset by a fresh draw of 1 read-noise sigma)
                          and column pattern noise (0.3 sigma, the same in every
                          frame), as many CMOS sensors show at high ISO
    ====================  ===========================================================

    Parameters
    ----------
    folder : str or Path
        Output folder (created).
    name : str
        One of :data:`SCENARIOS`.
    seed : int, optional
        Defects, plan, scenes and noise derive from it.
    shape : (int, int), optional
        (height, width) of the visible area.
    n_frames : int, optional
        Frames (duplicates not counted), at least 4.
    iso : float, optional
        ISO of the lens-cap darks.
    file_format : str, optional
        Override the scenario's format (:data:`FILE_FORMATS`).
    duplicates : int, optional
        Override the number of duplicate files (2 for the ``mixed`` family,
        else 0).
    jpeg, clean_dir, overwrite, jpeg_matrix
        As for :func:`generate_series`.

    Returns
    -------
    SeriesTruth

    Examples
    --------
    >>> import tempfile
    >>> t = write_scenario(tempfile.mkdtemp(), "darks-same", n_frames=4, shape=(40, 60))
    >>> [f.scene for f in t.frames], t.frames[0].exposure
    (['dark', 'dark', 'dark', 'dark'], 30.0)
    """
    if name not in SCENARIOS:
        raise ValueError(f"name must be one of {', '.join(SCENARIOS)}; got {name!r}")
    h, w = (int(v) for v in shape)
    spec = scenario_spec(name, h, w)
    fmt = file_format or {"mono": "tiff16", "gray16": "tiff16", "gray8": "png8"}.get(name, "dng")
    mixed_family = name in ("mixed", "mono", "gray16", "gray8", "black0", "banded")
    s_def, s_plan = np.random.SeedSequence([seed, 9009]).spawn(2)
    defects = plant_defects(
        spec,
        np.random.default_rng(s_def),
        **scenario_counts(h, w).as_kwargs(),  # type: ignore[arg-type]
        warm_rate=(10.0, 100.0),
        cold_gain=(0.05, 0.5),
        cluster_kind="hot",
    )
    plan = scenario_plan("mixed" if mixed_family else name, n_frames, np.random.default_rng(s_plan), iso=iso)
    return generate_series(
        folder,
        seed=seed,
        spec=spec,
        defects=defects,
        plan=plan,
        jpeg=jpeg,
        clean_dir=clean_dir,
        file_format=fmt,
        duplicates=(2 if mixed_family else 0) if duplicates is None else duplicates,
        overwrite=overwrite,
        jpeg_matrix=jpeg_matrix,
    )
