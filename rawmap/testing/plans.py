"""How the frames of a series are taken: :class:`FramePlan`, :class:`SeriesPlan`, :func:`plan_series`.

A plan says, per frame, the scene, exposure, ISO, capture time, level,
temperature and which static view it shares with other frames (bursts,
exposure brackets, timelapses: :attr:`FramePlan.burst`).  :func:`plan_series`
draws a realistic mix; :func:`rawmap.testing.scenarios.scenario_plan` the
named scenarios.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["FramePlan", "SeriesPlan", "plan_series"]


@dataclass(frozen=True)
class FramePlan:
    """How one frame of a series is taken.

    Attributes
    ----------
    scene : str
        One of :data:`SCENE_KINDS`.
    exposure : float
        Seconds.
    iso : float
    time : datetime
        Capture time (camera clock, naive).
    level : float
        Target expected level of a mid-grey (or, for night, of the sky) as a
        fraction of the raw range.
    burst : int or None
        View id: frames with the same id show the same static scene (a
        burst, an exposure bracket, a timelapse), rendered once, for the
        first of them, at the irradiance its ``level`` and ``exposure``
        give; the others see that irradiance (so their signal scales with
        their exposure), times their ``light``.
    jitter : (float, float)
        Sub-pixel shift of the scene (burst frames), photosites.
    light : float
        Irradiance of a view's frame relative to the view's first frame
        (a timelapse's changing light); only used with ``burst``.
    temperature : float or None
        Sensor temperature, degrees C (dark current doubles every 6
        degrees, see :func:`simulate`); nominal dark current when None.
        A ``scene`` of ``"dark"`` is a lens-cap dark frame.
    lamps : float
        Self-luminous point lights of the view (street lamps, distant lit
        windows), drawn with the view's scene (only with ``burst``): their
        peaks up to this many times the first frame's mid grey, and they
        keep it whatever the frame's ``light`` (see
        :func:`rawmap.testing.scene.render_lamps`). 0: none.
    """

    scene: str
    exposure: float
    iso: float
    time: _dt.datetime
    level: float
    burst: int | None = None
    jitter: tuple[float, float] = (0.0, 0.0)
    light: float = 1.0
    temperature: float | None = None
    lamps: float = 0.0


@dataclass(frozen=True)
class SeriesPlan:
    """The frames of a series, in capture order."""

    frames: tuple[FramePlan, ...]

    def __len__(self) -> int:
        return len(self.frames)


_ISO_STOPS = np.array(
    [100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 2000, 2500, 3200, 4000, 5000, 6400]
)


def _iso(rng: np.random.Generator, lo: float, hi: float) -> float:
    stops = _ISO_STOPS[(_ISO_STOPS >= lo) & (_ISO_STOPS <= hi)]
    return float(rng.choice(stops))


#: Camera shutter speeds in 1/3-stop steps, seconds.
_SHUTTERS = np.array(
    [
        1 / d
        for d in (
            8000,
            6400,
            5000,
            4000,
            3200,
            2500,
            2000,
            1600,
            1250,
            1000,
            800,
            640,
            500,
            400,
            320,
            250,
            200,
            160,
            125,
            100,
            80,
            60,
            50,
            40,
            30,
            25,
            20,
            15,
            13,
            10,
            8,
            6,
            5,
            4,
        )
    ]
    + [0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 15.0, 20.0, 25.0, 30.0]
)


def _shutter(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A camera shutter speed, log-uniform between lo and hi seconds."""
    t = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    ok = _SHUTTERS[(_SHUTTERS >= lo * 0.99) & (_SHUTTERS <= hi * 1.01)]
    return float(ok[np.argmin(np.abs(np.log(ok / t)))])


def _strictly_increasing(items: list[FramePlan]) -> SeriesPlan:
    """The plan with each capture time at least a second after the one before (EXIF has whole seconds)."""
    fixed: list[FramePlan] = []
    for f in items:
        if fixed and f.time <= fixed[-1].time:
            f = replace(f, time=fixed[-1].time + _dt.timedelta(seconds=1))
        fixed.append(f)
    return SeriesPlan(tuple(fixed))


def plan_series(
    n_frames: int,
    rng: np.random.Generator,
    *,
    start: _dt.datetime = _dt.datetime(2024, 6, 1, 8, 0, 0),
    long_fraction: float | None = None,
    burst_length: int | None = None,
) -> SeriesPlan:
    """A realistic mix of frames.

    About 20-30 % long exposures (1-30 s, ISO 400-3200, mostly star fields,
    some dusk landscapes at ISO 100-200), about 12 % indoor frames (ISO
    1600-6400, 1/250-1/30 s), one burst of 6-10 frames (at most a third of
    the series; none under 6 frames) of a glints scene (fine static bright detail) at the same
    exposure, 1 s apart, and daylight frames (landscape, glints, flat; ISO
    100-800, 1/4000-1/30 s).  Capture times increase over several days.

    Parameters
    ----------
    n_frames : int
        At least 1.
    rng : numpy.random.Generator
    start : datetime, optional
        Morning of the first day.
    long_fraction : float, optional
        Fraction of long exposures; random in 0.2-0.3 when omitted.
    burst_length : int, optional
        Frames in the burst (0 for none); 6-10 (at most a third of the
        series) when omitted.

    Returns
    -------
    SeriesPlan
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if burst_length is None:
        burst_length = min(int(rng.integers(6, 11)), n_frames // 3)
        if burst_length < 2:
            burst_length = 0
    if burst_length < 0 or burst_length > n_frames:
        raise ValueError(f"burst_length must lie in [0, n_frames], got {burst_length}")
    rest = n_frames - burst_length
    lf = float(rng.uniform(0.2, 0.3)) if long_fraction is None else float(long_fraction)
    n_long = min(rest, int(round(lf * n_frames)))
    if n_frames >= 4 and rest > 0:
        n_long = max(1, n_long)
    n_indoor = min(rest - n_long, int(round(0.12 * n_frames)))
    n_day = rest - n_long - n_indoor
    days = max(2, n_frames // 6)

    def at(day: int, hour_lo: float, hour_hi: float) -> _dt.datetime:
        minutes = int(rng.uniform(hour_lo, hour_hi) * 60)
        return start.replace(hour=0, minute=0, second=0) + _dt.timedelta(days=day, minutes=minutes)

    items: list[FramePlan] = []
    for _ in range(n_long):
        day = int(rng.integers(0, days))
        if rng.random() < 0.8:
            items.append(
                FramePlan(
                    "night",
                    _shutter(rng, 1, 30),
                    _iso(rng, 400, 3200),
                    at(day, 21.5, 27.5),
                    float(rng.uniform(0.01, 0.05)),
                )
            )
        else:
            items.append(
                FramePlan(
                    "landscape",
                    _shutter(rng, 1, 30),
                    _iso(rng, 100, 200),
                    at(day, 19.5, 21.0),
                    float(rng.uniform(0.15, 0.35)),
                )
            )
    for _ in range(n_indoor):
        items.append(
            FramePlan(
                "indoor",
                _shutter(rng, 1 / 250, 1 / 30),
                _iso(rng, 1600, 6400),
                at(int(rng.integers(0, days)), 18.0, 21.0),
                float(rng.uniform(0.08, 0.2)),
            )
        )
    for _ in range(n_day):
        kind = str(rng.choice(["landscape", "landscape", "landscape", "glints", "glints", "flat"]))
        items.append(
            FramePlan(
                kind,
                _shutter(rng, 1 / 4000, 1 / 30),
                _iso(rng, 100, 800),
                at(int(rng.integers(0, days)), 8.0, 18.0),
                float(rng.uniform(0.1, 0.25)),
            )
        )
    if burst_length:
        t0 = at(int(rng.integers(0, days)), 9.0, 17.0).replace(second=10)
        exp, iso, lvl = _shutter(rng, 1 / 2000, 1 / 250), _iso(rng, 100, 400), float(rng.uniform(0.12, 0.2))
        for i in range(burst_length):
            jit = (0.0, 0.0) if i == 0 else tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2))
            items.append(FramePlan("glints", exp, iso, t0 + _dt.timedelta(seconds=i), lvl, 0, jit))  # type: ignore[arg-type]
    items.sort(key=lambda f: f.time)
    return _strictly_increasing(items)
