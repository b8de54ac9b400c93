"""Defective photosites planted on a simulated sensor (:func:`plant_defects`).

A random, non-overlapping set of defective photosites
(:class:`PlantedDefect`, one record per photosite) of every kind rawmap
maps: stuck, dead, hot and warm, cold, noisy (RTS), clusters and
column/row segments; :class:`DefectCounts` says how many of each.

Defect models (``params`` keys in brackets), applied to that photosite by
:func:`rawmap.testing.exposure.simulate`:

* stuck: the value is ``value`` DN whatever the light, no noise [value];
* dead: no signal and no dark current, only black + read noise;
* hot / warm: extra dark signal ``dark_dn_per_s * t * ISO / 100`` DN (with
  its shot noise) [dark_dn_per_s, strength="hot"|"warm"];
* cold: expected signal multiplied by ``gain`` (0.2-0.8, or ``cold_gain``) [gain];
* noisy: random telegraph signal, each frame independently in the "on"
  state with probability ``p``; "on" adds ``sign * amplitude_rn * rn(ISO)``
  DN, sign +1, -1 or random per frame [amplitude_rn, p, levels="+"|"-"|"+-"];
* column (kind ``COLUMN``, one record per photosite of a segment of a
  column or row): an offset of ``offset_rn * rn(ISO)`` DN, or dead
  [segment, axis="column"|"row", mode="offset"|"dead", offset_rn, start, length];
* clusters: 2-4 8-connected photosites, each hot or dead, with the hot or
  dead record's parameters plus [cluster, size].

The truth of a series records each defect's finer class
(:data:`DEFECT_CLASSES`: warm, cluster, stuck_high, low_gain, blinking ...),
the names of the independent series ``indep-8080``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..defectmap import DefectKind
from .sensor import SensorSpec

__all__ = [
    "BORDER",
    "PlantedDefect",
    "DefectCounts",
    "HOT_RATE",
    "WARM_RATE",
    "COLD_GAIN",
    "DEFECT_CLASSES",
    "defect_class",
    "plant_defects",
]

#: Photosites between a defect and the edge of the visible area, at least.
BORDER = 3


@dataclass(frozen=True)
class PlantedDefect:
    """One defective photosite of the simulated sensor.

    Attributes
    ----------
    row, col : int
        Visible-area coordinates.
    kind : DefectKind
        STUCK, DEAD, HOT (hot and warm), COLD, NOISY or COLUMN (segment of a
        column or a row); cluster members are HOT or DEAD with a ``cluster`` key.
    params : dict
        Model parameters, see the module docstring; JSON-serialisable.
    """

    row: int
    col: int
    kind: DefectKind
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"row": int(self.row), "col": int(self.col), "kind": self.kind.value, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlantedDefect:
        return cls(int(d["row"]), int(d["col"]), DefectKind(d["kind"]), dict(d.get("params", {})))


@dataclass(frozen=True)
class DefectCounts:
    """How many defects of each kind :func:`plant_defects` plants.

    ``n_clusters``, ``n_columns`` and ``n_rows`` count groups (2-4
    photosites, 20-200 photosite segments); the others count photosites.
    """

    n_stuck: int = 2
    n_dead: int = 2
    n_hot: int = 6
    n_warm: int = 6
    n_cold: int = 2
    n_noisy: int = 3
    n_clusters: int = 1
    n_columns: int = 1
    n_rows: int = 1

    @classmethod
    def for_sensor(cls, height: int, width: int) -> DefectCounts:
        """Counts for a sensor of this size: the defaults at 0.54 MP (600x900).

        Point defects scale with the area, segments with its square root;
        every kind keeps at least one.
        """
        f = height * width / 540_000.0
        base = cls()

        def lin(n: int) -> int:
            return max(1, int(round(n * f)))

        def sq(n: int) -> int:
            return max(1, int(round(n * math.sqrt(f))))

        return cls(
            n_stuck=lin(base.n_stuck),
            n_dead=lin(base.n_dead),
            n_hot=lin(base.n_hot),
            n_warm=lin(base.n_warm),
            n_cold=lin(base.n_cold),
            n_noisy=lin(base.n_noisy),
            n_clusters=lin(base.n_clusters),
            n_columns=sq(base.n_columns),
            n_rows=sq(base.n_rows),
        )

    def as_kwargs(self) -> dict[str, int]:
        return dict(self.__dict__)


#: Default dark signal of a hot photosite, DN/s at ISO 100 (log-uniform).
#: At 1/1000 s and ISO 100 that is at most 3 DN (invisible); at 30 s it
#: saturates most of them.
HOT_RATE = (50.0, 3000.0)
#: Default dark signal of a warm photosite, DN/s at ISO 100 (log-uniform): long exposures only.
WARM_RATE = (1.5, 40.0)
#: Default gain range of a cold (low-gain) photosite (uniform).
COLD_GAIN = (0.2, 0.8)


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))


def _hot_rate(rng: np.random.Generator, lo_hi: tuple[float, float] = HOT_RATE) -> float:
    """Dark signal of a hot photosite, DN/s at ISO 100: log-uniform in ``lo_hi``."""
    return _log_uniform(rng, lo_hi)


def _warm_rate(rng: np.random.Generator, lo_hi: tuple[float, float] = WARM_RATE) -> float:
    """Dark signal of a warm photosite, DN/s at ISO 100: log-uniform in ``lo_hi``."""
    return _log_uniform(rng, lo_hi)


#: Finer defect classes recorded in the truth (:func:`defect_class`) and the
#: kind each one is planted as: the names of the independent series' truth
#: (``series/indep-8080``).  Hot and warm are both planted as dark current
#: (HOT) from two rate ranges; a map calls a dark current ``warm`` by its
#: own line (:attr:`rawmap.detect.ClassifyParams.hot_fill_seconds`), not by
#: these ranges.
DEFECT_CLASSES = {
    "hot": DefectKind.HOT,
    "warm": DefectKind.HOT,  # weak dark current
    "cluster": DefectKind.HOT,  # member of 2-4 adjacent defects: HOT, or DEAD for a dead member
    "stuck_high": DefectKind.STUCK,  # stuck at white
    "stuck_mid": DefectKind.STUCK,  # stuck below white
    "dead": DefectKind.DEAD,
    "low_gain": DefectKind.COLD,
    "blinking": DefectKind.NOISY,
    "column": DefectKind.COLUMN,  # one photosite of a column or row segment
}


def defect_class(d: PlantedDefect, white: int | None = None) -> str:
    """The finer class of a planted defect, one of :data:`DEFECT_CLASSES`.

    ``warm`` is a HOT record with ``strength="warm"``; ``cluster`` any member
    of a cluster (its ``kind`` says hot or dead); ``stuck_high`` a STUCK
    record at ``white`` or above (``stuck_mid`` otherwise, or always when
    ``white`` is not given); ``low_gain`` is COLD, ``blinking`` NOISY.
    """
    if "cluster" in d.params:
        return "cluster"
    k = d.kind
    if k is DefectKind.HOT:
        return "warm" if d.params.get("strength") == "warm" else "hot"
    if k is DefectKind.STUCK:
        return "stuck_high" if white is not None and float(d.params["value"]) >= white else "stuck_mid"
    return {
        DefectKind.DEAD: "dead",
        DefectKind.COLD: "low_gain",
        DefectKind.NOISY: "blinking",
        DefectKind.COLUMN: "column",
    }[k]


class _Placer:
    """Places groups of photosites without overlap, with a guard band between groups."""

    def __init__(self, spec: SensorSpec, rng: np.random.Generator, guard: int = 2) -> None:
        self.h, self.w = spec.height, spec.width
        self.taken = np.zeros((self.h, self.w), dtype=bool)
        self.rng = rng
        self.guard = guard

    def fits(self, cells: np.ndarray) -> bool:
        r, c = cells[:, 0], cells[:, 1]
        if r.min() < BORDER or c.min() < BORDER or r.max() > self.h - 1 - BORDER or c.max() > self.w - 1 - BORDER:
            return False
        return not self.taken[r, c].any()

    def take(self, cells: np.ndarray) -> None:
        g = self.guard
        for r, c in cells:
            self.taken[max(0, r - g) : r + g + 1, max(0, c - g) : c + g + 1] = True

    def random_cell(self) -> np.ndarray:
        return np.array([[self.rng.integers(BORDER, self.h - BORDER), self.rng.integers(BORDER, self.w - BORDER)]])

    def place(self, make, tries: int = 2000) -> np.ndarray | None:
        """Call ``make()`` for candidate (N, 2) cells until one fits; ``None`` if none did."""
        for _ in range(tries):
            cells = make()
            if cells is not None and self.fits(cells):
                self.take(cells)
                return cells
        return None


def plant_defects(
    spec: SensorSpec,
    rng: np.random.Generator,
    *,
    n_stuck: int = 2,
    n_dead: int = 2,
    n_hot: int = 6,
    n_warm: int = 6,
    n_cold: int = 2,
    n_noisy: int = 3,
    n_clusters: int = 1,
    n_columns: int = 1,
    n_rows: int = 1,
    hot_rate: tuple[float, float] = HOT_RATE,
    warm_rate: tuple[float, float] = WARM_RATE,
    cold_gain: tuple[float, float] = COLD_GAIN,
    cluster_kind: str = "mixed",
) -> list[PlantedDefect]:
    """Draw a random set of defective photosites.

    Groups never overlap and keep a 2-photosite guard band between them;
    every defect is at least :data:`BORDER` (3) photosites from the edge of
    the visible area.  Column and row segments are placed first.

    Parameters
    ----------
    spec : SensorSpec
    rng : numpy.random.Generator
    n_stuck, n_dead, n_hot, n_warm, n_cold, n_noisy : int
        Number of isolated defective photosites of each kind (warm ones are
        weak hot ones, kind HOT with ``strength="warm"``).
    n_clusters : int
        Clusters of 2-4 adjacent photosites, each hot or dead.
    n_columns, n_rows : int
        Segments of 20-200 photosites of one column (row), offset or dead.
    hot_rate, warm_rate : (float, float), optional
        Range of the dark signal of hot and warm photosites (and hot cluster
        members), DN/s at ISO 100, drawn log-uniform; :data:`HOT_RATE`
        (50-3000) and :data:`WARM_RATE` (1.5-40) by default.
    cold_gain : (float, float), optional
        Range of the gain of cold photosites (uniform), within (0, 1);
        :data:`COLD_GAIN` (0.2-0.8) by default.
    cluster_kind : {"mixed", "hot"}, optional
        ``"mixed"``: each cluster member is hot or dead (even odds);
        ``"hot"``: every member is hot.

    Returns
    -------
    list of PlantedDefect
        One per photosite, sorted by (row, col).

    Raises
    ------
    ValueError
        A negative count, or the sensor is too small to place them all.
    """
    counts = dict(
        n_stuck=n_stuck,
        n_dead=n_dead,
        n_hot=n_hot,
        n_warm=n_warm,
        n_cold=n_cold,
        n_noisy=n_noisy,
        n_clusters=n_clusters,
        n_columns=n_columns,
        n_rows=n_rows,
    )
    for k, v in counts.items():
        if int(v) < 0:
            raise ValueError(f"{k} must be >= 0, got {v}")
    for name, (lo, hi) in (("hot_rate", hot_rate), ("warm_rate", warm_rate)):
        if not 0 < lo <= hi:
            raise ValueError(f"{name} must be (low, high) DN/s with 0 < low <= high, got {(lo, hi)}")
    if not 0 < cold_gain[0] <= cold_gain[1] < 1:
        raise ValueError(f"cold_gain must be (low, high) with 0 < low <= high < 1, got {tuple(cold_gain)}")
    if cluster_kind not in ("mixed", "hot"):
        raise ValueError(f'cluster_kind must be "mixed" or "hot", got {cluster_kind!r}')
    placer = _Placer(spec, rng)
    out: list[PlantedDefect] = []

    def need(cells: np.ndarray | None, what: str) -> np.ndarray:
        if cells is None:
            raise ValueError(
                f"could not place {what} on a {spec.height}x{spec.width} sensor: too many defects "
                "for its size; plant fewer"
            )
        return cells

    # --- column and row segments -----------------------------------------
    segment = 0
    for axis, n in (("column", n_columns), ("row", n_rows)):
        along = spec.height if axis == "column" else spec.width
        across = spec.width if axis == "column" else spec.height
        max_len = along - 2 * BORDER
        for _ in range(int(n)):

            def make(along: int = along, across: int = across, axis: str = axis, max_len: int = max_len):
                # a new length at each try: a long segment may not fit across another one
                length = int(rng.integers(min(20, max_len), min(200, max_len) + 1))
                start = int(rng.integers(BORDER, along - BORDER - length + 1))
                line = int(rng.integers(BORDER, across - BORDER))
                idx = np.arange(start, start + length)
                if axis == "column":
                    return np.stack([idx, np.full(length, line)], axis=1)
                return np.stack([np.full(length, line), idx], axis=1)

            cells = need(placer.place(make), f"a {axis} segment")
            dead = rng.random() < 0.25
            offset = float(rng.uniform(8, 40) * rng.choice([-1.0, 1.0]))
            start = int(cells[0, 0] if axis == "column" else cells[0, 1])
            params = {
                "segment": segment,
                "axis": axis,
                "mode": "dead" if dead else "offset",
                "offset_rn": 0.0 if dead else round(offset, 3),
                "start": start,
                "length": len(cells),
            }
            out += [PlantedDefect(int(r), int(c), DefectKind.COLUMN, dict(params)) for r, c in cells]
            segment += 1

    # --- clusters --------------------------------------------------------------
    for cl in range(int(n_clusters)):
        size = int(rng.integers(2, 5))

        def grow(size: int = size):
            cells = [tuple(placer.random_cell()[0])]
            while len(cells) < size:
                r, c = cells[rng.integers(len(cells))]
                dr, dc = rng.integers(-1, 2, size=2)
                nxt = (int(r + dr), int(c + dc))
                if nxt not in cells:
                    cells.append(nxt)
            return np.array(cells)

        cells = need(placer.place(grow), "a cluster")
        for r, c in cells:
            if cluster_kind == "hot" or rng.random() < 0.5:
                out.append(
                    PlantedDefect(
                        int(r),
                        int(c),
                        DefectKind.HOT,
                        {
                            "cluster": cl,
                            "size": size,
                            "dark_dn_per_s": round(_hot_rate(rng, hot_rate), 4),
                            "strength": "hot",
                        },
                    )
                )
            else:
                out.append(PlantedDefect(int(r), int(c), DefectKind.DEAD, {"cluster": cl, "size": size}))

    # --- isolated photosites ---------------------------------------------------
    def single(kind: DefectKind, n: int, params_fn) -> None:
        for _ in range(int(n)):
            ((r, c),) = need(placer.place(placer.random_cell), f"a {kind.value} photosite")
            out.append(PlantedDefect(int(r), int(c), kind, params_fn()))

    black_max = float(spec.black_map().max())

    def stuck_params() -> dict:
        if rng.random() < 0.35:
            v = spec.white
        else:
            v = int(round(black_max + rng.uniform(0.2, 1.0) * (spec.white - black_max)))
        return {"value": int(min(v, spec.white))}

    single(DefectKind.STUCK, n_stuck, stuck_params)
    single(DefectKind.DEAD, n_dead, dict)
    single(DefectKind.HOT, n_hot, lambda: {"dark_dn_per_s": round(_hot_rate(rng, hot_rate), 4), "strength": "hot"})
    single(DefectKind.HOT, n_warm, lambda: {"dark_dn_per_s": round(_warm_rate(rng, warm_rate), 4), "strength": "warm"})
    single(DefectKind.COLD, n_cold, lambda: {"gain": round(float(rng.uniform(*cold_gain)), 4)})
    single(
        DefectKind.NOISY,
        n_noisy,
        lambda: {
            "amplitude_rn": round(float(rng.uniform(8, 40)), 3),
            "p": round(float(rng.uniform(0.3, 0.5)), 4),
            "levels": str(rng.choice(["+", "-", "+-"])),
        },
    )
    return sorted(out, key=lambda d: (d.row, d.col))
