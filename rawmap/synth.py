"""A simulated camera sensor with planted defects, for tests and benchmarks.

Pure numpy, fully determined by a seed.  The pieces:

* :class:`SensorSpec` - geometry, levels and noise of a Bayer sensor (or a
  monochrome one, ``cfa=None``; 12-bit with black 0 is ``black=0,
  white=4095``); :meth:`SensorSpec.gain` and :meth:`SensorSpec.read_noise_dn`
  give the ISO-dependent conversion gain and read noise.
* :func:`plant_defects` - a random, non-overlapping set of defective
  photosites (:class:`PlantedDefect`, one record per photosite) of every
  kind rawmap maps: stuck, dead, hot and warm, cold, noisy (RTS), clusters
  and column/row segments.
* :func:`render_scene` - linear RGB irradiance of a synthetic scene
  ("landscape", "flat", "night", "glints", "indoor", "edges": buildings
  with straight edges on photosite boundaries, "texture": 1/f natural
  texture with sharp grass blades, "dark": a lens-cap dark).
* :func:`simulate` / :func:`simulate_frame` - one exposure: shot noise, dark
  current, read noise, quantisation, the defects; also the same frame
  without defects (same noise realisation) and which defects showed.
* :func:`generate_series` - a realistic series of DNG files (or 8/16-bit
  grayscale TIFF/PNG mosaics; and JPEGs, and duplicate files) with a
  ``truth.json`` (:class:`SeriesTruth`, read back with :func:`load_truth`).
  Frames that share a :attr:`FramePlan.burst` id show one static view:
  bursts, exposure brackets, timelapses (:attr:`FramePlan.light`).
* :func:`write_scenario` - one line for a named series (:data:`SCENARIOS`:
  brackets, timelapse, burst, darks-same, darks-mixed, mixed, mono, gray16,
  gray8, black0), :func:`scenario_plan` its frames.
* :func:`score_map` - recall and precision of a defect map against the truth.

Signal model, per photosite of colour ``c`` (all in float32)::

    e     = scene[c] * qe[c] * t + dark_current_e * t          expected electrons
    e'    = clip(e + sqrt(e) * z1, 0, full_well_e)             shot noise (Gaussian)
    DN    = clip(round(black + g(ISO) * e' + rn(ISO) * z2), 0, white)

with ``g(ISO) = (white - black) / full_well_e * ISO / 100`` (ISO 100 fills the
raw range at full well) and ``rn(ISO) = hypot(read_noise_e * g, adc_noise_dn)``
(pre-amplifier noise grows with gain, the ADC part does not).

Defect models (``params`` keys in brackets), applied to that photosite:

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

Dark current (healthy, hot and warm) is given at 20 degrees C and doubles
every 6 degrees C of the frame's sensor temperature (:func:`dark_factor`).

A defect is *visible* in a frame when the difference between the expected
value of the defective photosite and that of a healthy one at the same place
(both clipped to [0, white]) exceeds :data:`VISIBILITY_SIGMA` (5) times the
healthy photosite's noise sigma ``sqrt(g**2 * e + rn**2 + 1/12)`` in that
frame (``visible_fraction`` in the truth).  For a noisy photosite the RTS
state drawn for that frame counts.  The truth also records, per defect, the
frames where the difference exceeds :data:`FIND_SIGMA` (6) sigma (the
sigma widened by the written format's quantisation), ``visible_frames``,
the distinct views among them, ``visible_views``, and ``must_find``
(``visible_frames`` >= 20 % of the frames): the rule of the independent
series ``indep-8080``.  Its ``class`` is the finer class of
:data:`DEFECT_CLASSES` (warm, cluster, stuck_high, low_gain, blinking ...).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .defectmap import DefectKind
from .errors import MapFormatError
from .fileio import OutputExistsError, atomic_write_bytes, atomic_write_text
from .frame import CameraId

__all__ = [
    "SCENE_KINDS",
    "VISIBILITY_SIGMA",
    "TRUTH_FORMAT",
    "TRUTH_VERSION",
    "SensorSpec",
    "PlantedDefect",
    "DefectCounts",
    "plant_defects",
    "render_scene",
    "SimulatedFrame",
    "simulate",
    "simulate_frame",
    "develop",
    "FramePlan",
    "SeriesPlan",
    "plan_series",
    "FrameTruth",
    "SeriesTruth",
    "generate_series",
    "load_truth",
    "FIND_SIGMA",
    "MUST_FIND_SHARE",
    "DARK_DOUBLING_C",
    "REFERENCE_TEMPERATURE_C",
    "HOT_RATE",
    "WARM_RATE",
    "COLD_GAIN",
    "DEFECT_CLASSES",
    "defect_class",
    "dark_factor",
    "FILE_FORMATS",
    "sample_scale",
    "to_file_values",
    "SCENARIOS",
    "scenario_plan",
    "scenario_counts",
    "scenario_spec",
    "write_scenario",
    "MapScore",
    "score_map",
]

#: Scene kinds :func:`render_scene` knows.
SCENE_KINDS = ("landscape", "flat", "night", "glints", "indoor", "edges", "texture", "dark")
#: A defect is visible in a frame when its deviation exceeds this many sigma.
VISIBILITY_SIGMA = 5.0
#: The stricter rule of the truth's ``visible_frames`` and ``must_find``
#: (that of the independent series ``indep-8080``).
FIND_SIGMA = 6.0
#: A defect must be found when visible (at :data:`FIND_SIGMA`) in at least this share of the frames.
MUST_FIND_SHARE = 0.2
#: Dark current (of healthy, hot and warm photosites) doubles every this many degrees Celsius ...
DARK_DOUBLING_C = 6.0
#: ... from its nominal value at this sensor temperature.
REFERENCE_TEMPERATURE_C = 20.0
TRUTH_FORMAT = "rawmap-truth"
TRUTH_VERSION = 1
#: Photosites between a defect and the edge of the visible area, at least.
BORDER = 3

_F32 = np.float32


# ---------------------------------------------------------------------------
# sensor
# ---------------------------------------------------------------------------


def _default_cfa() -> tuple[tuple[int, int], tuple[int, int]]:
    return ((0, 1), (1, 2))


@dataclass(frozen=True)
class SensorSpec:
    """Geometry, levels and noise of a simulated Bayer sensor.

    Attributes
    ----------
    height, width : int
        Visible area in photosites (at least 22 x 22, the smallest raw image
        LibRaw accepts).
    cfa : (2, 2) tuple of int, or None
        Colour index per pattern position, 0=R, 1=G, 2=B, 3=second G.
        RGGB by default.  Arrays are accepted and stored as tuples.
        ``None`` makes a monochrome sensor (no colour filter): every
        photosite samples the green channel of the scene with QE
        ``channel_qe[1]``, and :attr:`cfa_array` is all 1 (the black level
        and noise are those of colour index 1).  Monochrome series are
        written as grayscale TIFF or PNG (the DNG writer writes CFA data
        only).
    black : int or (4,) tuple of int
        Black level in DN, one value or one per colour index.
    white : int
        Saturation level in DN.
    read_noise_e : float
        Pre-amplifier read noise in electrons (scales with gain).
    adc_noise_dn : float
        Post-amplifier read noise in DN (independent of ISO).
    full_well_e : float
        Full-well capacity in electrons; at ISO 100 it maps to ``white``.
    channel_qe : (3,) tuple of float
        Relative sensitivity of the R, G, B photosites (G = 1).
    dark_current_e : float
        Dark current of a healthy photosite, electrons per second.
    top_margin, left_margin : int
        Optical-black border above and left of the visible area (even; the
        DNG gets an ActiveArea when non-zero).
    camera : CameraId
        Make, model and serial written to the files.
    """

    height: int
    width: int
    cfa: Any = field(default_factory=_default_cfa)
    black: Any = 512
    white: int = 16383
    read_noise_e: float = 3.0
    adc_noise_dn: float = 1.5
    full_well_e: float = 30000.0
    channel_qe: Any = (0.55, 1.0, 0.75)
    dark_current_e: float = 0.1
    top_margin: int = 0
    left_margin: int = 0
    camera: CameraId = field(default_factory=lambda: CameraId("Rawmap", "Simulated Sensor", "SIM0001"))

    def __post_init__(self) -> None:
        cfa = np.asarray(self.cfa if self.cfa is not None else ((1, 1), (1, 1)))
        if cfa.shape != (2, 2) or not np.issubdtype(cfa.dtype, np.integer) or cfa.min() < 0 or cfa.max() > 3:
            raise ValueError(f"cfa must be (2, 2) colour indices 0..3, got {cfa.tolist()}")
        if self.cfa is not None:
            if set(np.where(cfa == 3, 1, cfa).ravel().tolist()) != {0, 1, 2}:
                raise ValueError(f"cfa must hold red, green and blue (or be None for a monochrome sensor), got {cfa.tolist()}")
            object.__setattr__(self, "cfa", tuple(tuple(int(v) for v in row) for row in cfa))
        b = np.asarray(self.black)
        if b.ndim == 0:
            object.__setattr__(self, "black", int(b))
        elif b.shape == (4,):
            object.__setattr__(self, "black", tuple(int(v) for v in b))
        else:
            raise ValueError(f"black must be an int or 4 ints (one per colour index), got {self.black!r}")
        qe = tuple(float(v) for v in np.asarray(self.channel_qe, dtype=float).ravel())
        if len(qe) != 3 or min(qe) <= 0:
            raise ValueError(f"channel_qe must be 3 positive numbers, got {self.channel_qe!r}")
        object.__setattr__(self, "channel_qe", qe)
        if self.height < 22 or self.width < 22:
            raise ValueError(f"the visible area must be at least 22x22 photosites, got {self.height}x{self.width}")
        if self.top_margin < 0 or self.left_margin < 0 or self.top_margin % 2 or self.left_margin % 2:
            raise ValueError(
                f"margins must be even and >= 0 (LibRaw rounds odd ActiveArea origins), got "
                f"top={self.top_margin}, left={self.left_margin}"
            )
        if not 0 < self.white <= 65535 or self.white <= int(np.max(self.black_levels())) + 16:
            raise ValueError(f"white ({self.white}) must be at most 65535 and well above black ({self.black})")
        if self.read_noise_e < 0 or self.adc_noise_dn < 0 or self.full_well_e <= 0 or self.dark_current_e < 0:
            raise ValueError("read_noise_e, adc_noise_dn, dark_current_e must be >= 0 and full_well_e > 0")

    # --- derived quantities ------------------------------------------------
    @property
    def mono(self) -> bool:
        """True for a monochrome sensor (``cfa`` None)."""
        return self.cfa is None

    @property
    def cfa_array(self) -> np.ndarray:
        """(2, 2) ndarray of uint8: the colour index of each pattern position (all 1 when mono)."""
        return np.array(self.cfa if self.cfa is not None else ((1, 1), (1, 1)), dtype=np.uint8)

    @property
    def cfa_string(self) -> str:
        """Pattern letters in reading order, e.g. ``"RGGB"``; ``""`` when mono."""
        if self.cfa is None:
            return ""
        return "".join("RGBG"[c] for c in self.cfa_array.ravel())

    def colour_plane(self) -> np.ndarray:
        """(2, 2) ndarray of int: RGB channel (0, 1, 2) sampled at each pattern position."""
        c = self.cfa_array.astype(np.int64)
        return np.where(c == 3, 1, c)

    def black_levels(self) -> np.ndarray:
        """(4,) ndarray of float64: black level per colour index."""
        b = np.asarray(self.black, dtype=np.float64)
        return np.full(4, float(b)) if b.ndim == 0 else b.copy()

    def black_map(self) -> np.ndarray:
        """(2, 2) ndarray of float64: black level at each pattern position."""
        return self.black_levels()[self.cfa_array]

    @property
    def full_shape(self) -> tuple[int, int]:
        """(height, width) of the full frame, optical-black border included."""
        return (self.height + self.top_margin, self.width + self.left_margin)

    def gain(self, iso: float) -> float:
        """Conversion gain in DN per electron at ``iso`` (ISO 100 maps full well to white)."""
        return (self.white - float(self.black_map().mean())) / self.full_well_e * float(iso) / 100.0

    def read_noise_dn(self, iso: float) -> float:
        """Read noise sigma in DN at ``iso``."""
        return float(math.hypot(self.read_noise_e * self.gain(iso), self.adc_noise_dn))

    def wb_neutral(self) -> tuple[float, float, float]:
        """Camera RGB of a neutral grey (for DNG AsShotNeutral), G = 1."""
        qe = np.asarray(self.channel_qe)
        return tuple(float(v) for v in qe / qe[1])  # type: ignore[return-value]

    # --- file edge --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        fh, fw = self.full_shape
        return {
            "height": self.height,
            "width": self.width,
            "top_margin": self.top_margin,
            "left_margin": self.left_margin,
            "full_height": fh,
            "full_width": fw,
            "cfa": self.cfa_string,
            "cfa_indices": None if self.cfa is None else [list(r) for r in self.cfa],
            "black": [int(v) for v in self.black_levels()],
            "white": self.white,
            "read_noise_e": self.read_noise_e,
            "adc_noise_dn": self.adc_noise_dn,
            "full_well_e": self.full_well_e,
            "channel_qe": list(self.channel_qe),
            "dark_current_e": self.dark_current_e,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], camera: CameraId | None = None) -> "SensorSpec":
        black = d.get("black", 512)
        cfa = d.get("cfa_indices", [[0, 1], [1, 2]])
        if isinstance(black, list) and len(set(black)) == 1:
            black = black[0]
        kw: dict[str, Any] = {}
        if camera is not None:
            kw["camera"] = camera
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            cfa=None if cfa is None else np.array(cfa),
            black=black,
            white=int(d.get("white", 16383)),
            read_noise_e=float(d.get("read_noise_e", 3.0)),
            adc_noise_dn=float(d.get("adc_noise_dn", 1.5)),
            full_well_e=float(d.get("full_well_e", 30000.0)),
            channel_qe=tuple(d.get("channel_qe", (0.55, 1.0, 0.75))),
            dark_current_e=float(d.get("dark_current_e", 0.1)),
            top_margin=int(d.get("top_margin", 0)),
            left_margin=int(d.get("left_margin", 0)),
            **kw,
        )


# ---------------------------------------------------------------------------
# defects
# ---------------------------------------------------------------------------


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
    def from_dict(cls, d: dict[str, Any]) -> "PlantedDefect":
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
    def for_sensor(cls, height: int, width: int) -> "DefectCounts":
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
#: map kind each one is mapped as: the names of the independent series'
#: truth (``series/indep-8080``).
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


def defect_class(d: "PlantedDefect", white: int | None = None) -> str:
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
    return {DefectKind.DEAD: "dead", DefectKind.COLD: "low_gain", DefectKind.NOISY: "blinking",
            DefectKind.COLUMN: "column"}[k]


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
        return np.array(
            [[self.rng.integers(BORDER, self.h - BORDER), self.rng.integers(BORDER, self.w - BORDER)]]
        )

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
    counts = dict(n_stuck=n_stuck, n_dead=n_dead, n_hot=n_hot, n_warm=n_warm, n_cold=n_cold,
                  n_noisy=n_noisy, n_clusters=n_clusters, n_columns=n_columns, n_rows=n_rows)
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
            params = {"segment": segment, "axis": axis, "mode": "dead" if dead else "offset",
                      "offset_rn": 0.0 if dead else round(offset, 3), "start": start, "length": len(cells)}
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
                out.append(PlantedDefect(int(r), int(c), DefectKind.HOT, {
                    "cluster": cl, "size": size, "dark_dn_per_s": round(_hot_rate(rng, hot_rate), 4), "strength": "hot"}))
            else:
                out.append(PlantedDefect(int(r), int(c), DefectKind.DEAD, {"cluster": cl, "size": size}))

    # --- isolated photosites ---------------------------------------------------
    def single(kind: DefectKind, n: int, params_fn) -> None:
        for _ in range(int(n)):
            (r, c), = need(placer.place(placer.random_cell), f"a {kind.value} photosite")
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
    single(DefectKind.NOISY, n_noisy, lambda: {
        "amplitude_rn": round(float(rng.uniform(8, 40)), 3),
        "p": round(float(rng.uniform(0.3, 0.5)), 4),
        "levels": str(rng.choice(["+", "-", "+-"])),
    })
    return sorted(out, key=lambda d: (d.row, d.col))


# defect model codes used by the vectorised simulation
_STUCK, _DEAD, _HOT, _COLD, _NOISY, _OFFSET = range(6)


@dataclass
class _Layout:
    rows: np.ndarray
    cols: np.ndarray
    code: np.ndarray
    value: np.ndarray  # stuck DN
    dark: np.ndarray  # hot DN/s at ISO 100
    gain: np.ndarray  # cold factor
    amp: np.ndarray  # noisy amplitude / column offset, read-noise units (signed for offsets)
    p: np.ndarray  # noisy on-probability
    sign: np.ndarray  # noisy: +1, -1, or 0 for random sign per frame


def _layout(defects: Sequence[PlantedDefect]) -> _Layout:
    n = len(defects)
    lay = _Layout(
        rows=np.zeros(n, np.int64), cols=np.zeros(n, np.int64), code=np.zeros(n, np.int8),
        value=np.zeros(n), dark=np.zeros(n), gain=np.ones(n), amp=np.zeros(n), p=np.zeros(n),
        sign=np.zeros(n),
    )
    for i, d in enumerate(defects):
        lay.rows[i], lay.cols[i] = d.row, d.col
        k, pr = d.kind, d.params
        if k is DefectKind.STUCK:
            lay.code[i], lay.value[i] = _STUCK, float(pr["value"])
        elif k is DefectKind.DEAD:
            lay.code[i] = _DEAD
        elif k is DefectKind.HOT:
            lay.code[i], lay.dark[i] = _HOT, float(pr["dark_dn_per_s"])
        elif k is DefectKind.COLD:
            lay.code[i], lay.gain[i] = _COLD, float(pr["gain"])
        elif k is DefectKind.NOISY:
            lay.code[i], lay.amp[i], lay.p[i] = _NOISY, float(pr["amplitude_rn"]), float(pr["p"])
            lay.sign[i] = {"+": 1.0, "-": -1.0, "+-": 0.0}[pr.get("levels", "+")]
        elif k is DefectKind.COLUMN:
            if pr.get("mode") == "dead":
                lay.code[i] = _DEAD
            else:
                lay.code[i], lay.amp[i] = _OFFSET, float(pr["offset_rn"])
        else:  # pragma: no cover - every DefectKind is handled above
            raise ValueError(f"unknown defect kind {k!r}")
    return lay


# ---------------------------------------------------------------------------
# image helpers (float32, pure numpy, row strips to keep temporaries small)
# ---------------------------------------------------------------------------

#: Rows rendered at a time: keeps every temporary a few MB even at 24 MP.
#: Even, so that every strip starts on the same CFA phase.
_STRIP = 256


def _blur_passes(sigma: float) -> tuple[int, float]:
    """(passes, alpha): repeated [alpha, 1 - 2 alpha, alpha] kernels of total variance sigma**2."""
    if sigma <= 0:
        return 0, 0.0
    n = max(1, int(math.ceil(sigma * sigma / 0.5)))
    return n, sigma * sigma / (2.0 * n)


def _tap3(a: np.ndarray, alpha: float, axis: int) -> np.ndarray:
    """3-tap smoothing ``[alpha, 1 - 2 alpha, alpha]`` along ``axis``, edges replicated."""
    al = _F32(alpha)
    out = a * _F32(1 - 2 * alpha)

    def sl(s: slice) -> tuple:
        idx = [slice(None)] * a.ndim
        idx[axis] = s
        return tuple(idx)

    out[sl(slice(1, None))] += al * a[sl(slice(None, -1))]
    out[sl(slice(0, 1))] += al * a[sl(slice(0, 1))]
    out[sl(slice(None, -1))] += al * a[sl(slice(1, None))]
    out[sl(slice(-1, None))] += al * a[sl(slice(-1, None))]
    return out


def _blur_block(block: np.ndarray, sigma: float, row_axis: int) -> np.ndarray:
    """Near-Gaussian blur (iterated binomial kernels) over the two last axes."""
    n, alpha = _blur_passes(sigma)
    for axis in (row_axis, row_axis + 1):
        for _ in range(n):
            block = _tap3(block, alpha, axis)
    return block


class _Grid:
    """A smooth random field: bilinear interpolation of a coarse N(0, 1) grid.

    Evaluated a few rows at a time (:meth:`rows`); features have the size
    ``scale`` photosites.  The grid is placed at a random sub-cell phase, so
    that its nodes (where the interpolated field varies most) do not fall
    on the same rows and columns in every frame.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
        gh, gw = int(math.ceil(h / scale)) + 2, int(math.ceil(w / scale)) + 2
        self.g = rng.standard_normal((gh, gw), dtype=_F32)
        py, px = rng.uniform(0.0, 1.0, 2)
        self.y0, self.y1, self.fy = self._axis(h, scale, py)
        self.x0, self.x1, self.fx = self._axis(w, scale, px)

    @staticmethod
    def _axis(n_out: int, scale: float, phase: float):
        pos = np.arange(n_out) / scale + phase
        i0 = np.floor(pos).astype(np.int64)
        return i0, i0 + 1, (pos - i0).astype(_F32)

    def rows(self, a: int, b: int) -> np.ndarray:
        """(b - a, W) ndarray of float32: rows a..b-1 of the field."""
        y0, y1, fy = self.y0[a:b], self.y1[a:b], self.fy[a:b, None]
        r0, r1 = int(y0[0]), int(y1[-1]) + 1
        sub = self.g[r0:r1]
        cols = sub[:, self.x0] * (1 - self.fx) + sub[:, self.x1] * self.fx
        return cols[y0 - r0] * (1 - fy) + cols[y1 - r0] * fy


class _Texture:
    """Multi-scale fine texture (features of 2-32 photosites), about N(0, 1)."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.parts = [(_F32(0.5), _Grid(rng, h, w, 32.0)), (_F32(0.45), _Grid(rng, h, w, 8.0)),
                      (_F32(0.55), _Grid(rng, h, w, 2.0))]

    def rows(self, a: int, b: int) -> np.ndarray:
        out = None
        for k, g in self.parts:
            r = g.rows(a, b)
            r *= k
            out = r if out is None else out + r
        return out  # type: ignore[return-value]


@dataclass
class _Shape:
    """A hard-edged shape painted over the scene (absolute photosite coordinates)."""

    kind: str  # "ellipse", "rect" or "line"
    geom: tuple  # ellipse: cy, cx, ry, rx, angle; rect: y0, y1, x0, x1; line: ya, xa, yb, xb, width
    colour: np.ndarray  # (3,) float32
    tex_amp: float = 0.0

    def bbox(self) -> tuple[float, float, float, float]:
        g = self.geom
        if self.kind == "ellipse":
            r = max(g[2], g[3])
            return g[0] - r - 1, g[0] + r + 2, g[1] - r - 1, g[1] + r + 2
        if self.kind == "rect":
            return g
        return min(g[0], g[2]) - 3, max(g[0], g[2]) + 4, min(g[1], g[3]) - 3, max(g[1], g[3]) + 4

    def paint(self, planes: np.ndarray, a: int, tex: np.ndarray | None) -> None:
        """Paint into ``planes`` (3, n, W) holding rows a..a+n-1."""
        n, w = planes.shape[1:]
        by0, by1, bx0, bx1 = self.bbox()
        y0, y1 = max(a, int(math.floor(by0))), min(a + n, int(math.ceil(by1)))
        x0, x1 = max(0, int(math.floor(bx0))), min(w, int(math.ceil(bx1)))
        if y0 >= y1 or x0 >= x1:
            return
        yy = np.arange(y0, y1, dtype=_F32)[:, None]
        xx = np.arange(x0, x1, dtype=_F32)[None, :]
        g = self.geom
        if self.kind == "ellipse":
            cy, cx, ry, rx, ang = g
            ca, sa = _F32(math.cos(ang)), _F32(math.sin(ang))
            dy, dx = yy - _F32(cy), xx - _F32(cx)
            u, v = (dx * ca + dy * sa) / _F32(rx), (-dx * sa + dy * ca) / _F32(ry)
            cover = ((u * u + v * v) <= 1).astype(_F32)
        elif self.kind == "rect":
            cover = np.ones((y1 - y0, x1 - x0), dtype=_F32)
        else:
            ya, xa, yb, xb, width = g
            ddy, ddx = yb - ya, xb - xa
            ln = math.hypot(ddy, ddx) or 1.0
            dist = np.abs((yy - _F32(ya)) * _F32(ddx) - (xx - _F32(xa)) * _F32(ddy)) / _F32(ln)
            t = ((yy - _F32(ya)) * _F32(ddy) + (xx - _F32(xa)) * _F32(ddx)) / _F32(ln * ln)
            cover = np.clip(_F32(width / 2 + 0.5) - dist, 0, 1) * ((t >= 0) & (t <= 1))
        shade = None
        if tex is not None and self.tex_amp:
            shade = np.maximum(_F32(0.05), 1 + _F32(self.tex_amp) * tex[y0 - a : y1 - a, x0:x1])
        for ch in range(3):
            view = planes[ch, y0 - a : y1 - a, x0:x1]
            val = self.colour[ch] if shade is None else self.colour[ch] * shade
            view += cover * (val - view)


@dataclass
class _Points:
    """Gaussian spots drawn after the optical blur (stars, specular glints)."""

    ys: np.ndarray
    xs: np.ndarray
    sigma: np.ndarray
    peak: np.ndarray  # (N, 3)

    def add_to(self, planes: np.ndarray) -> None:
        """Add to C-contiguous ``planes`` (3, H, W) in place."""
        if len(self.ys) == 0:
            return
        _, h, w = planes.shape
        r = int(math.ceil(3.5 * float(self.sigma.max())))
        off = np.arange(-r, r + 1)
        ys, xs, s = self.ys[:, None, None], self.xs[:, None, None], self.sigma[:, None, None]
        cy = np.round(ys).astype(np.int64) + off[None, :, None]
        cx = np.round(xs).astype(np.int64) + off[None, None, :]
        g = np.exp(-((cy - ys) ** 2 + (cx - xs) ** 2) / (2 * s * s))
        cy, cx = np.broadcast_arrays(cy, cx)
        ok = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
        flat = (cy * w + cx)[ok]
        for ch in range(3):
            np.add.at(planes[ch].reshape(-1), flat, (g * self.peak[:, ch, None, None])[ok].astype(_F32))


_PALETTE = np.array([
    [0.35, 0.50, 0.20],  # foliage
    [0.20, 0.32, 0.12],  # dark foliage
    [0.60, 0.45, 0.30],  # earth
    [0.55, 0.55, 0.52],  # stone
    [0.85, 0.82, 0.78],  # white wall
    [0.90, 0.12, 0.06],  # vivid red
    [0.06, 0.20, 0.95],  # vivid blue
    [0.95, 0.70, 0.05],  # yellow
    [0.15, 0.60, 0.55],  # teal
    [0.08, 0.08, 0.09],  # black
], dtype=_F32)


def _colour(rng: np.random.Generator, lo: float = 0.3, hi: float = 2.5) -> np.ndarray:
    c = _PALETTE[rng.integers(len(_PALETTE))] * _F32(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return (c * rng.uniform(0.85, 1.15, 3).astype(_F32)).astype(_F32)


def _horizon(rng: np.random.Generator, h: int, w: int, level: float, rough: float) -> tuple[np.ndarray, np.ndarray]:
    """(smooth, rough): (W,) float32 rows of the horizon in each column.

    ``rough`` adds photosite-scale detail (tree line, rocks) to ``smooth``;
    sky gradients follow ``smooth`` so that they do not stripe the sky
    column by column.
    """
    x = np.linspace(0, 1, w, dtype=_F32)
    y = level * h + _F32(0.06 * h) * np.sin(_F32(2 * np.pi * rng.uniform(0.3, 1.5)) * x + _F32(rng.uniform(0, 6.3)))
    smooth = (y + _F32(0.04 * h) * _Grid(rng, 1, w, w / 12).rows(0, 1)[0]).astype(_F32)
    return smooth, (smooth + _F32(rough) * _Grid(rng, 1, w, 3.0).rows(0, 1)[0]).astype(_F32)


# ---------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------


class _Recipe:
    """A procedural scene: :meth:`strip` renders rows a..b-1 before the optical blur."""

    sigma: float = 0.0
    points: _Points | None = None

    def strip(self, a: int, b: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class _Flat(_Recipe):
    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.vig = _F32(rng.uniform(0.1, 0.4))
        self.gy, self.gx = _F32(rng.uniform(-0.1, 0.1)), _F32(rng.uniform(-0.1, 0.1))
        self.low = _Grid(rng, h, w, max(h, w) / 3)
        tint = np.array([1.0, 1.0, 1.0], _F32) if rng.random() < 0.5 else np.array([0.85, 1.0, 1.2], _F32)
        self.tint = tint * _F32(rng.uniform(0.8, 2.0))
        m = max(h, w)
        self.xx = (np.linspace(-1, 1, w, dtype=_F32) * _F32(w / m))[None, :]

    def strip(self, a: int, b: int) -> np.ndarray:
        yy = (np.linspace(-1, 1, self.h, dtype=_F32)[a:b] * _F32(self.h / max(self.h, self.w)))[:, None]
        f = (1 - self.vig * (yy * yy + self.xx * self.xx) / 2) * (1 + self.gy * yy + self.gx * self.xx)
        f *= 1 + _F32(0.02) * self.low.rows(a, b)
        return f[None, :, :] * self.tint[:, None, None]


class _Landscape(_Recipe):
    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float, *, indoor: bool = False) -> None:
        self.h, self.w, self.sigma, self.indoor = h, w, sigma, indoor
        self.tex = _Texture(rng, h, w)
        self.low = _Grid(rng, h, w, max(h, w) / 4)
        self.shapes: list[_Shape] = []
        if indoor:
            self.wall = _colour(rng, 0.5, 1.5)
            fy = float(h * rng.uniform(0.6, 0.8))
            self.shapes.append(_Shape("rect", (fy, float(h), 0.0, float(w)), _colour(rng, 0.3, 1.0), 0.3))
            for _ in range(int(rng.integers(5, 12))):
                rh, rw = rng.uniform(0.05, 0.4) * h, rng.uniform(0.05, 0.4) * w
                y0, x0 = float(rng.uniform(0, h)), float(rng.uniform(0, w))
                self.shapes.append(_Shape("rect", (y0, y0 + rh, x0, x0 + rw), _colour(rng, 0.2, 2.0), 0.2))
            r = 0.03 * h + 2
            self.shapes.append(_Shape("ellipse", (rng.uniform(0.1, 0.4) * h, rng.uniform(0.1, 0.9) * w, r, r, 0.0),
                                      np.full(3, rng.uniform(20, 60), _F32)))  # a lamp: clipped
            self.tint = np.array([1.5, 1.0, 0.6], _F32)
        else:
            self.hs, self.hy = _horizon(rng, h, w, rng.uniform(0.3, 0.6), 1.5)
            self.sky = np.array([0.55, 0.75, 1.0], _F32) * _F32(rng.uniform(1.5, 4.0))
            self.ground = _colour(rng, 0.4, 1.2)
            for _ in range(int(rng.integers(6, 16))):
                cy, cx = rng.uniform(0.2, 1.0) * h, rng.uniform(0, 1) * w
                r = rng.uniform(0.02, 0.2) * min(h, w)
                if rng.random() < 0.6:
                    self.shapes.append(_Shape("ellipse", (cy, cx, r * rng.uniform(0.5, 1.5), r, rng.uniform(0, np.pi)),
                                              _colour(rng), 0.35))
                else:  # buildings: hard vertical and horizontal edges
                    self.shapes.append(_Shape("rect", (cy - r, cy + r * rng.uniform(0.5, 2), cx - r / 2, cx + r / 2),
                                              _colour(rng, 0.5, 3.0), 0.1))
            for _ in range(int(rng.integers(1, 5))):  # wires and branches
                self.shapes.append(_Shape("line", (rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h),
                                                   rng.uniform(0, w), rng.uniform(0.6, 2.0)), _colour(rng, 0.05, 3.0)))

    def strip(self, a: int, b: int) -> np.ndarray:
        w = self.w
        tex = self.tex.rows(a, b)
        low = self.low.rows(a, b)
        yy = np.arange(a, b, dtype=_F32)[:, None]
        planes = np.empty((3, b - a, w), dtype=_F32)
        if self.indoor:
            f = (1 + _F32(0.25) * low) * (1 - _F32(0.3) * yy / _F32(self.h))
            for ch in range(3):
                np.multiply(f, self.wall[ch], out=planes[ch])
        else:
            below = yy >= self.hy[None, :]
            sky_grad = (_F32(0.55) + _F32(0.45) * np.clip(yy / np.maximum(self.hs[None, :], 1), 0, 1)) * (1 + _F32(0.08) * low)
            shade = (1 + _F32(0.35) * low) * np.maximum(_F32(0.1), 1 + _F32(0.3) * tex)
            for ch in range(3):
                np.copyto(planes[ch], np.where(below, self.ground[ch] * shade, self.sky[ch] * sky_grad))
        for s in self.shapes:
            s.paint(planes, a, tex)
        if self.indoor:
            planes *= self.tint[:, None, None]
        return planes


class _Glints(_Landscape):
    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        super().__init__(rng, h, w, sigma)
        for _ in range(int(rng.integers(1, 4))):  # clipped highlight patches
            r = rng.uniform(0.01, 0.05) * min(h, w) + 1
            self.shapes.append(_Shape("ellipse", (rng.uniform(0, h), rng.uniform(0, w), r, r * rng.uniform(0.5, 2),
                                                  rng.uniform(0, 3)), np.full(3, rng.uniform(15, 40), _F32)))
        n = int(rng.integers(6, 16) * max(1.0, h * w / 540_000.0))
        peak = rng.uniform(20, 400, n)
        self.points = _Points(rng.uniform(BORDER, h - BORDER, n), rng.uniform(BORDER, w - BORDER, n),
                              rng.uniform(0.5, 0.8, n), peak[:, None] * rng.uniform(0.8, 1.0, (n, 3)))


class _Night(_Recipe):
    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.sigma = h, w, sigma
        self.hs, self.hy = _horizon(rng, h, w, rng.uniform(0.65, 0.85), 3.0)
        self.glow_amp = _F32(rng.uniform(0.5, 2.5))
        self.sky_col = np.array([0.8, 0.9, 1.1], _F32) if rng.random() < 0.5 else np.array([1.2, 1.0, 0.7], _F32)
        self.low = _Grid(rng, h, w, max(h, w) / 3)
        self.fg = _colour(rng, 0.05, 0.3)
        self.tex = _Texture(rng, h, w)
        n = int(h * w / rng.uniform(300, 1200))
        ys, xs = rng.uniform(0, h - 1, n), rng.uniform(0, w - 1, n)
        seeing = rng.uniform(0.6, 1.3)
        sig = np.clip(seeing * rng.uniform(0.9, 1.1, n), 0.6, 1.3)
        peak = np.exp(rng.uniform(0, 1, n) ** 2 * np.log(500.0)) * rng.uniform(0.3, 1.0, n)
        t = rng.uniform(-1, 1, n)
        tint = np.stack([1 + 0.3 * t, np.ones(n), 1 - 0.3 * t], axis=1)
        keep = ys < self.hy[np.clip(np.round(xs).astype(int), 0, w - 1)] - 2  # stars only in the sky
        self.points = _Points(ys[keep], xs[keep], sig[keep], peak[keep, None] * tint[keep])

    def strip(self, a: int, b: int) -> np.ndarray:
        yy = np.arange(a, b, dtype=_F32)[:, None]
        dist = np.maximum(self.hs[None, :] - yy, 0)
        sky = (1 + self.glow_amp * np.exp(-dist / _F32(0.2 * self.h))) * (1 + _F32(0.05) * self.low.rows(a, b))
        fg = np.maximum(_F32(0.1), 1 + _F32(0.3) * self.tex.rows(a, b))
        below = yy >= self.hy[None, :]
        planes = np.empty((3, b - a, self.w), dtype=_F32)
        for ch in range(3):
            np.copyto(planes[ch], np.where(below, self.fg[ch] * fg, self.sky_col[ch] * sky))
        return planes


class _Edges(_Recipe):
    """Buildings against the sky: long straight edges on exact photosite boundaries.

    A horizon on one row, facades with integer bounds, grids of windows with
    1-2 photosite frames and mullions, poles and a roof line running across
    the frame.  Every edge lies between two rows or two columns.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.sigma = h, w, sigma
        self.horizon = int(rng.integers(int(0.3 * h), int(0.6 * h) + 1))
        self.sky = np.array([0.55, 0.75, 1.0], _F32) * _F32(rng.uniform(1.5, 4.0))
        self.ground = _colour(rng, 0.3, 1.0)
        self.low = _Grid(rng, h, w, max(h, w) / 4)
        self.shapes: list[_Shape] = []
        x = int(rng.integers(-w // 10, w // 10))
        while x < w:  # facades side by side, each with a grid of windows
            bw = int(rng.integers(max(8, w // 12), max(9, w // 3)))
            top = int(rng.integers(int(0.05 * h), self.horizon))
            wall = _colour(rng, 0.3, 2.5)
            self.shapes.append(_Shape("rect", (float(top), float(h), float(x), float(x + bw)), wall, 0.05))
            frame = _colour(rng, 0.5, 3.0)
            ww, wh = int(rng.integers(3, 9)), int(rng.integers(4, 12))
            gx, gy = ww + int(rng.integers(2, 7)), wh + int(rng.integers(3, 9))
            for wy in range(top + 3, h - wh - 2, gy):
                for wx in range(x + 2, x + bw - ww - 1, gx):
                    ft = int(rng.integers(1, 3))  # frame thickness, photosites
                    self.shapes.append(_Shape("rect", (float(wy), float(wy + wh), float(wx), float(wx + ww)), frame))
                    glass = _colour(rng, 0.05, 0.4) if rng.random() < 0.7 else _colour(rng, 2.0, 8.0)
                    self.shapes.append(_Shape("rect", (float(wy + ft), float(wy + wh - ft), float(wx + ft),
                                                       float(wx + ww - ft)), glass))
                    if ww - 2 * ft >= 3:  # a mullion
                        mx = wx + ww // 2
                        self.shapes.append(_Shape("rect", (float(wy), float(wy + wh), float(mx), float(mx + 1)), frame))
            x += bw + int(rng.integers(0, max(1, w // 15)))
        for _ in range(int(rng.integers(1, 4))):  # poles: 1-3 photosites wide, full height below the sky
            px, pw = int(rng.integers(0, w)), int(rng.integers(1, 4))
            self.shapes.append(_Shape("rect", (float(rng.integers(0, self.horizon)), float(h), float(px), float(px + pw)),
                                      _colour(rng, 0.05, 3.0)))
        for _ in range(int(rng.integers(1, 3))):  # roof lines / cables: one row, across the frame
            py = int(rng.integers(0, h))
            self.shapes.append(_Shape("rect", (float(py), float(py + 1), 0.0, float(w)), _colour(rng, 0.05, 3.0)))

    def strip(self, a: int, b: int) -> np.ndarray:
        yy = np.arange(a, b, dtype=_F32)[:, None]
        low = self.low.rows(a, b)
        planes = np.empty((3, b - a, self.w), dtype=_F32)
        below = np.broadcast_to(yy >= self.horizon, (b - a, self.w))
        sky = (_F32(0.6) + _F32(0.4) * np.clip(yy / _F32(max(self.horizon, 1)), 0, 1)) * (1 + _F32(0.05) * low)
        ground = 1 + _F32(0.2) * low
        for ch in range(3):
            np.copyto(planes[ch], np.where(below, self.ground[ch] * ground, self.sky[ch] * sky))
        for sh in self.shapes:
            sh.paint(planes, a, None)
        return planes


def _pink_noise(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """(H, W) float32 field with amplitude spectrum 1 / f**beta, zero mean, unit sigma."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    spec = np.fft.rfft2(rng.standard_normal((h, w)))
    spec *= f ** -beta
    spec[0, 0] = 0.0
    out = np.fft.irfft2(spec, s=(h, w))
    sd = float(out.std()) or 1.0
    return (out / sd).astype(_F32)


class _Texture2(_Recipe):
    """Fine natural texture (grass, foliage, fabric): 1/f noise with sharp structures.

    Reflectance is ``exp(0.6 * n)`` of a 1/f field ``n`` (the amplitude
    spectrum of natural images), over patches of foliage colours cut with
    hard edges from a second 1/f field, with hundreds of thin grass blades
    (sharp 1-2 photosite lines, bright or dark) drawn on top.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.sigma = h, w, sigma
        self.field = _pink_noise(rng, h, w, float(rng.uniform(0.8, 1.1)))
        self.cut = _pink_noise(rng, h, w, 1.6)
        self.cols = [_colour(rng, 0.3, 1.5) for _ in range(3)]
        self.shapes: list[_Shape] = []
        n = int(h * w / rng.uniform(150, 400))
        ya, xa = rng.uniform(0, h, n), rng.uniform(0, w, n)
        ln = rng.uniform(3, 25, n)
        ang = rng.normal(-np.pi / 2, 0.35, n)
        for i in range(n):
            self.shapes.append(_Shape("line", (float(ya[i]), float(xa[i]), float(ya[i] + ln[i] * np.sin(ang[i])),
                                               float(xa[i] + ln[i] * np.cos(ang[i])), float(rng.uniform(0.5, 1.5))),
                                      _colour(rng, 0.1, 2.5)))

    def strip(self, a: int, b: int) -> np.ndarray:
        refl = np.exp(_F32(0.6) * self.field[a:b])
        cut = self.cut[a:b]
        planes = np.empty((3, b - a, self.w), dtype=_F32)
        for ch in range(3):
            col = np.where(cut < -0.4, self.cols[0][ch], np.where(cut < 0.5, self.cols[1][ch], self.cols[2][ch]))
            np.multiply(refl, col, out=planes[ch])
        for sh in self.shapes:
            sh.paint(planes, a, None)
        return planes


def _rasterise(recipe: _Recipe, h: int, w: int) -> np.ndarray:
    """(3, H, W) float32: the recipe rendered strip by strip, blurred, points added."""
    out = np.empty((3, h, w), dtype=_F32)
    halo = _blur_passes(recipe.sigma)[0]
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        ra, rb = max(0, a - halo), min(h, b + halo)
        block = recipe.strip(ra, rb)
        if recipe.sigma > 0:
            block = _blur_block(block, recipe.sigma, 1)
        out[:, a:b] = block[:, a - ra : a - ra + (b - a)]
    if recipe.points is not None:
        recipe.points.add_to(out)
    return out


def render_scene(
    spec: SensorSpec,
    rng: np.random.Generator,
    kind: str,
    *,
    rate: float = 1.0,
    blur: float | None = None,
) -> np.ndarray:
    """Render a synthetic scene at the photosite grid.

    Parameters
    ----------
    spec : SensorSpec
        Gives the (height, width) of the visible area.
    rng : numpy.random.Generator
    kind : {"landscape", "flat", "night", "glints", "indoor", "edges", "texture", "dark"}
        * ``landscape``: sky gradient over a textured ground, a rough
          horizon, objects with hard edges (ellipses, buildings, some vivid),
          thin wires, fine multi-scale texture; sky about 1.5-4x mid grey,
          some objects brighter (they clip when over-exposed).
        * ``flat``: a grey card / overcast sky, vignetting, faint gradients.
        * ``night``: dark sky (= ``rate``) with a glow above a dim foreground
          silhouette, and stars: Gaussian PSF sigma 0.6-1.3 px, peaks up to
          ~500x the sky, random positions (another pointing at each call).
        * ``glints``: a landscape plus tiny specular points (sigma 0.5-0.8 px,
          20-400x mid grey: clipped) and clipped highlight patches.
        * ``indoor``: walls, furniture, a lamp (clipped), tungsten tint.
        * ``edges``: buildings against the sky: a horizon on one row,
          facades, grids of windows with thin frames and mullions, poles and
          lines one photosite wide; every edge on a photosite boundary, and
          no optical blur unless ``blur`` is given.
        * ``texture``: fine natural texture (grass, foliage, fabric): a 1/f
          noise reflectance (``exp(0.6 n)``, amplitude spectrum 1/f**0.8-1.1)
          over colour patches with hard edges, and many thin sharp grass
          blades; blur 0.3-0.6 px unless ``blur`` is given.  Pure numpy.
        * ``dark``: no light at all (a lens-cap dark frame); zeros.
    rate : float, optional
        Irradiance of a mid grey (18 %) surface in the green channel, in
        photo-electrons per second at QE 1 (for "night": of the sky).
    blur : float, optional
        Optical blur sigma in photosites applied before sampling (a
        near-Gaussian iterated binomial kernel); random in 0.5-1.0 when
        omitted.  Stars and glints are drawn after it with their own PSF.

    Returns
    -------
    (H, W, 3) ndarray of float32
        Linear R, G, B irradiance in electrons per second at QE 1; each
        photosite samples its own channel (:func:`simulate`).  A view of
        three contiguous channel planes (``np.moveaxis`` of (3, H, W)).

    Examples
    --------
    >>> import numpy as np
    >>> s = render_scene(SensorSpec(40, 60), np.random.default_rng(0), "flat", rate=500.0)
    >>> s.shape, s.dtype
    ((40, 60, 3), dtype('float32'))
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SCENE_KINDS)}; got {kind!r}")
    if not rate > 0:
        raise ValueError(f"rate must be > 0 electrons per second, got {rate!r}")
    if blur is not None and blur < 0:
        raise ValueError(f"blur must be >= 0 photosites, got {blur!r}")
    h, w = spec.height, spec.width
    sigma = float(rng.uniform(0.5, 1.0)) if blur is None else float(blur)
    recipe: _Recipe
    if kind == "dark":
        return np.moveaxis(np.zeros((3, h, w), dtype=_F32), 0, -1)
    if kind == "edges":
        recipe = _Edges(rng, h, w, 0.0 if blur is None else sigma)
    elif kind == "texture":
        recipe = _Texture2(rng, h, w, sigma * 0.6 if blur is None else sigma)
    elif kind == "flat":
        recipe = _Flat(rng, h, w)
    elif kind == "night":
        recipe = _Night(rng, h, w, sigma)
    elif kind == "glints":
        recipe = _Glints(rng, h, w, sigma)
    else:
        recipe = _Landscape(rng, h, w, sigma, indoor=(kind == "indoor"))
    planes = _rasterise(recipe, h, w)
    planes *= _F32(rate)
    return np.moveaxis(planes, 0, -1)


def _shift_cols(r: np.ndarray, k: int) -> np.ndarray:
    """Columns of (n, W) ``r`` moved right by integer ``k`` (left if negative), edges replicated."""
    w = r.shape[1]
    k = max(-w, min(w, k))
    out = np.empty_like(r)
    if k >= 0:
        out[:, k:] = r[:, : w - k]
        out[:, :k] = r[:, :1]
    else:
        out[:, : w + k] = r[:, -k:]
        out[:, w + k :] = r[:, -1:]
    return out


def _shift(scene: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Sub-pixel translation of an (H, W, 3) scene by (dy, dx), bilinear, edges replicated."""
    planes = np.moveaxis(scene, -1, 0)
    out = np.empty(planes.shape, dtype=_F32)
    h = planes.shape[1]
    iy, ix = int(math.floor(dy)), int(math.floor(dx))
    fy, fx = _F32(dy - iy), _F32(dx - ix)
    rows0 = np.clip(np.arange(h) - iy, 0, h - 1)
    rows1 = np.clip(np.arange(h) - iy - 1, 0, h - 1)
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        for ch in range(3):
            p = planes[ch]
            r = p[rows0[a:b]] * (1 - fy)
            r += p[rows1[a:b]] * fy
            o = _shift_cols(r, ix)
            o *= 1 - fx
            o += _shift_cols(r, ix + 1) * fx
            out[ch, a:b] = o
    return np.moveaxis(out, 0, -1)


# ---------------------------------------------------------------------------
# one exposure
# ---------------------------------------------------------------------------


@dataclass
class SimulatedFrame:
    """One simulated exposure.

    Attributes
    ----------
    mosaic : (H, W) ndarray of uint16
        Visible area with the defects.
    clean : (H, W) ndarray of uint16
        The same exposure and noise realisation without any defect.
    deviation : (N,) ndarray of float64
        Per defect (order of the ``defects`` given): expected defective value
        minus expected healthy value, DN, both clipped to [0, white].
    sigma : (N,) ndarray of float64
        Noise sigma of a healthy photosite at each defect, DN.
    visible : (N,) ndarray of bool
        ``abs(deviation) > VISIBILITY_SIGMA * sigma``.
    """

    mosaic: np.ndarray
    clean: np.ndarray
    deviation: np.ndarray
    sigma: np.ndarray
    visible: np.ndarray


def _tile2(v2: np.ndarray, h: int, w: int) -> np.ndarray:
    """(2, 2) -> (H, W) float32 periodic map."""
    return np.tile(np.asarray(v2, dtype=_F32), ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def simulate(
    spec: SensorSpec,
    defects: Sequence[PlantedDefect],
    scene: np.ndarray,
    exposure: float,
    iso: float,
    rng: np.random.Generator,
    *,
    temperature: float | None = None,
) -> SimulatedFrame:
    """Expose the sensor to ``scene``: noise, quantisation and defects.

    Parameters
    ----------
    spec : SensorSpec
    defects : sequence of PlantedDefect
    scene : (H, W, 3) ndarray of float32
        Irradiance in electrons per second at QE 1 (:func:`render_scene`).
    exposure : float
        Exposure time, seconds (> 0).
    iso : float
        ISO speed (> 0).
    rng : numpy.random.Generator
        Draws the shot and read noise, then the RTS states.
    temperature : float, optional
        Sensor temperature, degrees Celsius: the dark current of every
        photosite (``spec.dark_current_e`` and the hot / warm rates) is
        multiplied by ``2 ** ((temperature - 20) / 6)``
        (:data:`REFERENCE_TEMPERATURE_C`, :data:`DARK_DOUBLING_C`).  The
        nominal dark current when omitted.

    Returns
    -------
    SimulatedFrame
    """
    h, w = spec.height, spec.width
    scene = np.asarray(scene)
    if scene.shape != (h, w, 3):
        raise ValueError(f"scene must be (H, W, 3) = ({h}, {w}, 3) for this sensor, got {scene.shape}")
    if not exposure > 0 or not iso > 0:
        raise ValueError(f"exposure and iso must be > 0, got exposure={exposure!r}, iso={iso!r}")
    g = spec.gain(iso)
    rn = spec.read_noise_dn(iso)
    fw = _F32(spec.full_well_e)
    warm = 1.0 if temperature is None else dark_factor(temperature)
    t = _F32(exposure)
    qe = np.asarray(spec.channel_qe, dtype=_F32)
    plane = spec.colour_plane()

    lay = _layout(defects)
    n = len(lay.rows)
    if n and (lay.rows.min() < 0 or lay.cols.min() < 0 or lay.rows.max() >= h or lay.cols.max() >= w):
        raise ValueError(f"a defect lies outside the {h}x{w} visible area; plant defects for this spec")
    order = np.argsort(lay.rows, kind="stable")
    e_h, za, zb = np.zeros(n), np.zeros(n), np.zeros(n)

    # healthy photosites, strip by strip: small temporaries even at 24 MP
    clean = np.empty((h, w), dtype=np.uint16)
    black_rows = _tile2(spec.black_map(), _STRIP, w)
    dark = _F32(spec.dark_current_e * exposure * warm)
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        e = np.empty((b - a, w), dtype=_F32)
        for dy in range(2):
            for dx in range(2):
                c = int(plane[dy, dx])
                np.multiply(scene[a + dy : b : 2, dx::2, c], qe[c] * t, out=e[dy::2, dx::2])
        e += dark
        np.maximum(e, 0, out=e)
        z1 = rng.standard_normal((b - a, w), dtype=_F32)
        z2 = rng.standard_normal((b - a, w), dtype=_F32)
        lo, hi = np.searchsorted(lay.rows[order], [a, b])
        if hi > lo:
            idx = order[lo:hi]
            rr, cc = lay.rows[idx] - a, lay.cols[idx]
            e_h[idx], za[idx], zb[idx] = e[rr, cc], z1[rr, cc], z2[rr, cc]
        dn = np.sqrt(e)
        dn *= z1
        dn += e
        np.clip(dn, 0, fw, out=dn)
        dn *= _F32(g)
        z2 *= _F32(rn)
        dn += z2
        dn += black_rows[: b - a]
        np.rint(dn, out=dn)
        np.clip(dn, 0, spec.white, out=dn)
        clean[a:b] = dn

    mosaic = clean.copy()
    if n == 0:
        empty = np.zeros(0)
        return SimulatedFrame(mosaic, clean, empty, empty, np.zeros(0, bool))
    r, c = lay.rows, lay.cols
    blk = spec.black_map()[r % 2, c % 2]

    # RTS states, drawn after the frame noise
    on = rng.random(n) < lay.p
    sgn = np.where(lay.sign == 0, np.where(rng.random(n) < 0.5, -1.0, 1.0), lay.sign)
    state = np.where((lay.code == _NOISY) & on, sgn, 0.0)

    e_d = e_h.copy()
    e_d = np.where(lay.code == _HOT, e_h + lay.dark * warm * exposure / spec.gain(100), e_d)
    e_d = np.where(lay.code == _COLD, e_h * lay.gain, e_d)
    e_d = np.where(lay.code == _DEAD, 0.0, e_d)
    offset = np.where(lay.code == _NOISY, state * lay.amp * rn, 0.0)
    offset = np.where(lay.code == _OFFSET, lay.amp * rn, offset)

    en = np.clip(e_d + np.sqrt(e_d) * za, 0, spec.full_well_e)
    dn = np.clip(np.rint(blk + en * g + rn * zb + offset), 0, spec.white)
    dn = np.where(lay.code == _STUCK, lay.value, dn)
    mosaic[r, c] = dn.astype(np.uint16)

    mean_h = np.clip(blk + np.minimum(e_h, spec.full_well_e) * g, 0, spec.white)
    mean_d = np.clip(blk + np.minimum(e_d, spec.full_well_e) * g + offset, 0, spec.white)
    mean_d = np.where(lay.code == _STUCK, lay.value, mean_d)
    deviation = mean_d - mean_h
    sigma = np.sqrt(g * g * e_h + rn * rn + 1.0 / 12.0)
    return SimulatedFrame(mosaic, clean, deviation, sigma, np.abs(deviation) > VISIBILITY_SIGMA * sigma)


def dark_factor(temperature: float) -> float:
    """Dark current at ``temperature`` (degrees C) relative to its nominal value (at 20 degrees C).

    Examples
    --------
    >>> dark_factor(26.0), dark_factor(14.0)
    (2.0, 0.5)
    """
    return float(2.0 ** ((float(temperature) - REFERENCE_TEMPERATURE_C) / DARK_DOUBLING_C))


def simulate_frame(
    spec: SensorSpec,
    defects: Sequence[PlantedDefect],
    scene: np.ndarray,
    exposure: float,
    iso: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(mosaic, clean): :func:`simulate` without the per-defect visibility.

    Returns
    -------
    mosaic : (H, W) ndarray of uint16
        The frame with defects.
    clean : (H, W) ndarray of uint16
        The same frame (same noise) without defects.
    """
    s = simulate(spec, defects, scene, exposure, iso, rng)
    return s.mosaic, s.clean


def _border_frame(spec: SensorSpec, mosaic: np.ndarray, iso: float, rng: np.random.Generator) -> np.ndarray:
    """Full sensor frame: optical-black border (black + read noise) around ``mosaic``."""
    fh, fw = spec.full_shape
    t, l = spec.top_margin, spec.left_margin
    full = np.empty((fh, fw), dtype=np.uint16)
    full[t:, l:] = mosaic
    rn = _F32(spec.read_noise_dn(iso))
    # margins are even, so the pattern phase at (0, 0) is that of the visible area
    for rows, cols in ((slice(0, t), slice(0, fw)), (slice(t, fh), slice(0, l))):
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        if shape[0] == 0 or shape[1] == 0:
            continue
        blk = _tile2(spec.black_map(), *shape)
        blk += rn * rng.standard_normal(shape, dtype=_F32)
        full[rows, cols] = np.clip(np.rint(blk), 0, spec.white)
    return full


# ---------------------------------------------------------------------------
# developing (for JPEG output)
# ---------------------------------------------------------------------------


def develop(mosaic: np.ndarray, spec: SensorSpec, *, brightness: float = 1.5) -> np.ndarray:
    """A simple rendering of a simulated mosaic: what a camera JPEG would show.

    Bilinear demosaic (normalised [1 2 1] x [1 2 1] convolution of each
    colour's photosites), white balance (``1 / channel_qe``), a linear
    brightness gain, the sRGB tone curve, 8 bits.

    Parameters
    ----------
    mosaic : (H, W) ndarray of uint16
        Visible area.
    spec : SensorSpec
    brightness : float, optional
        Linear gain applied after white balance (before clipping).

    Returns
    -------
    (H, W, 3) ndarray of uint8
    """
    h, w = mosaic.shape
    if (h, w) != (spec.height, spec.width):
        raise ValueError(f"mosaic is {h}x{w}, the sensor {spec.height}x{spec.width}")
    qe = np.asarray(spec.channel_qe, dtype=_F32)
    scale = _F32(brightness) * qe[1] / qe / _F32(spec.white - spec.black_map().mean())
    out = np.empty((h, w, 3), dtype=np.uint8)
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        ra, rb = max(0, a - 1), min(h, b + 1)
        blk = mosaic[ra:rb].astype(_F32)
        blk -= _tile2(spec.black_map(), rb - ra + 1, w)[ra % 2 : ra % 2 + rb - ra]
        np.maximum(blk, 0, out=blk)
        plane = _tile2(spec.colour_plane(), rb - ra + 1, w)[ra % 2 : ra % 2 + rb - ra]
        rgb = np.empty((b - a, w, 3), dtype=_F32)
        for ch in range(3):
            site = plane == ch
            num = _tap3(_tap3(np.where(site, blk, _F32(0)), 0.25, 0), 0.25, 1)
            den = _tap3(_tap3(site.astype(_F32), 0.25, 0), 0.25, 1)
            v = np.where(site, blk, num / den)[a - ra : a - ra + b - a]
            rgb[..., ch] = v * scale[ch]
        np.clip(rgb, 0, 1, out=rgb)
        srgb = np.where(rgb <= 0.0031308, rgb * _F32(12.92), _F32(1.055) * np.power(rgb, _F32(1 / 2.4)) - _F32(0.055))
        out[a:b] = np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8)
    return out


def _jpeg_bytes(rgb: np.ndarray, camera: CameraId, exposure: float, iso: float, time: _dt.datetime | None) -> bytes:
    from fractions import Fraction

    from PIL import Image, TiffImagePlugin

    img = Image.fromarray(rgb, "RGB")
    exif = Image.Exif()
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    sub = exif.get_ifd(0x8769)
    if time is not None:
        stamp = time.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        sub[0x9003] = stamp
    f = Fraction(exposure).limit_denominator(1_000_000)
    sub[0x829A] = TiffImagePlugin.IFDRational(f.numerator, f.denominator)
    sub[0x8827] = int(round(iso))
    if camera.serial:
        sub[0xA431] = camera.serial
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# series
# ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class SeriesPlan:
    """The frames of a series, in capture order."""

    frames: tuple[FramePlan, ...]

    def __len__(self) -> int:
        return len(self.frames)


_ISO_STOPS = np.array([100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600,
                       2000, 2500, 3200, 4000, 5000, 6400])


def _iso(rng: np.random.Generator, lo: float, hi: float) -> float:
    stops = _ISO_STOPS[(_ISO_STOPS >= lo) & (_ISO_STOPS <= hi)]
    return float(rng.choice(stops))


#: Camera shutter speeds in 1/3-stop steps, seconds.
_SHUTTERS = np.array(
    [1 / d for d in (8000, 6400, 5000, 4000, 3200, 2500, 2000, 1600, 1250, 1000, 800, 640, 500, 400, 320, 250,
                     200, 160, 125, 100, 80, 60, 50, 40, 30, 25, 20, 15, 13, 10, 8, 6, 5, 4)]
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
            items.append(FramePlan("night", _shutter(rng, 1, 30), _iso(rng, 400, 3200),
                                   at(day, 21.5, 27.5), float(rng.uniform(0.01, 0.05))))
        else:
            items.append(FramePlan("landscape", _shutter(rng, 1, 30), _iso(rng, 100, 200),
                                   at(day, 19.5, 21.0), float(rng.uniform(0.15, 0.35))))
    for _ in range(n_indoor):
        items.append(FramePlan("indoor", _shutter(rng, 1 / 250, 1 / 30), _iso(rng, 1600, 6400),
                               at(int(rng.integers(0, days)), 18.0, 21.0), float(rng.uniform(0.08, 0.2))))
    for _ in range(n_day):
        kind = str(rng.choice(["landscape", "landscape", "landscape", "glints", "glints", "flat"]))
        items.append(FramePlan(kind, _shutter(rng, 1 / 4000, 1 / 30), _iso(rng, 100, 800),
                               at(int(rng.integers(0, days)), 8.0, 18.0), float(rng.uniform(0.1, 0.25))))
    if burst_length:
        t0 = at(int(rng.integers(0, days)), 9.0, 17.0).replace(second=10)
        exp, iso, lvl = _shutter(rng, 1 / 2000, 1 / 250), _iso(rng, 100, 400), float(rng.uniform(0.12, 0.2))
        for i in range(burst_length):
            jit = (0.0, 0.0) if i == 0 else tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2))
            items.append(FramePlan("glints", exp, iso, t0 + _dt.timedelta(seconds=i), lvl, 0, jit))  # type: ignore[arg-type]
    items.sort(key=lambda f: f.time)
    return _strictly_increasing(items)


@dataclass(frozen=True)
class FrameTruth:
    """What was written for one frame of a series.

    Attributes
    ----------
    file : str
        DNG file name, in the series folder.
    exposure : float
        Seconds.
    iso : float
    scene : str
        One of :data:`SCENE_KINDS`.
    time : datetime
        Capture time written to the file (naive, camera clock).
    burst : int or None
        Burst id; frames sharing it show the same scene (jittered).
    jpeg : str or None
        JPEG file name in the series folder, when written.
    clean : str or None
        Path of the defect-free mosaic (``.npy``, uint16), when written
        (``clean_dir`` joined with the name, as given).
    temperature : float or None
        Sensor temperature, degrees C (also in the file's EXIF
        Temperature tag for DNG, TIFF and PNG output).
    """

    file: str
    exposure: float
    iso: float
    scene: str
    time: _dt.datetime
    burst: int | None = None
    jpeg: str | None = None
    clean: str | None = None
    temperature: float | None = None

    @property
    def dark(self) -> bool:
        """A lens-cap dark frame (scene ``"dark"``)."""
        return self.scene == "dark"

    def to_dict(self) -> dict[str, Any]:
        d = {"file": self.file, "exposure": self.exposure, "iso": self.iso, "scene": self.scene,
             "time": self.time.isoformat(), "burst": self.burst, "jpeg": self.jpeg, "clean": self.clean}
        if self.temperature is not None:
            d["temperature"] = self.temperature
        if self.dark:
            d["dark"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrameTruth":
        t = d.get("temperature")
        return cls(str(d["file"]), float(d["exposure"]), float(d["iso"]), str(d.get("scene", "")),
                   _dt.datetime.fromisoformat(d["time"]), d.get("burst"), d.get("jpeg"), d.get("clean"),
                   None if t is None else float(t))


def _view_keys(frames: Sequence[FrameTruth | FramePlan]) -> list[tuple]:
    """One key per frame: frames with equal keys show the same view (a burst id, all darks, else each its own)."""
    return [("view", f.burst) if f.burst is not None else ("dark",) if f.scene == "dark" else ("frame", i)
            for i, f in enumerate(frames)]


@dataclass
class SeriesTruth:
    """The ground truth of a generated series.

    Attributes
    ----------
    camera : CameraId
    spec : SensorSpec
    frames : list of FrameTruth
        In capture order.
    defects : list of PlantedDefect
        One per photosite, sorted by (row, col).
    visible_fraction : (N,) ndarray of float64
        Per defect, the fraction of frames in which it was visible (see the
        module docstring for the rule).
    seed : int or None
        Seed the series was generated from.
    visible_frames : (N,) ndarray of int64 or None
        Per defect, the number of frames in which it differs from the
        defect-free value by more than :data:`FIND_SIGMA` (6) noise sigmas
        (the sigma including the quantisation of the written format);
        ``None`` when read from an older truth file.
    visible_views : (N,) ndarray of int64 or None
        Per defect, how many distinct views show it: the frames of one
        ``burst`` id count as one view, all dark frames as one, every other
        frame as its own.
    file_format : str
        What the frames were written as (see :data:`FILE_FORMATS`).
    sample_scale : float
        File value = ``round(DN * sample_scale)`` (1 for DNG).
    duplicates : list of (str, str)
        (copy, original): extra copies of frames, paths relative to the
        series folder; not frames of their own.
    """

    camera: CameraId
    spec: SensorSpec
    frames: list[FrameTruth]
    defects: list[PlantedDefect]
    visible_fraction: np.ndarray
    seed: int | None = None
    visible_frames: np.ndarray | None = None
    visible_views: np.ndarray | None = None
    file_format: str = "dng"
    sample_scale: float = 1.0
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    @property
    def must_find(self) -> np.ndarray:
        """(N,) ndarray of bool: visible (:data:`FIND_SIGMA`) in at least 20 % of the frames.

        Raises
        ------
        ValueError
            When the truth has no ``visible_frames`` (an older file).
        """
        if self.visible_frames is None:
            raise ValueError("this truth has no visible_frames (written by an older rawmap); regenerate the series")
        return self.visible_frames >= MUST_FIND_SHARE * len(self.frames) - 1e-9

    def classes(self) -> list[str]:
        """Per defect, its finer class (:func:`defect_class`)."""
        return [defect_class(d, self.spec.white) for d in self.defects]

    def mask(self, *, min_visible: float = 0.0, kinds: Iterable[DefectKind] | None = None) -> np.ndarray:
        """(H, W) ndarray of bool: defects visible in at least ``min_visible`` of the frames."""
        m = np.zeros((self.spec.height, self.spec.width), dtype=bool)
        ks = None if kinds is None else set(kinds)
        for d, v in zip(self.defects, self.visible_fraction):
            if v >= min_visible and (ks is None or d.kind in ks):
                m[d.row, d.col] = True
        return m

    def coordinates(self) -> np.ndarray:
        """(N, 2) ndarray of int64: (row, col) of every defect, in ``defects`` order."""
        return np.array([(d.row, d.col) for d in self.defects], dtype=np.int64).reshape(-1, 2)

    def to_dict(self) -> dict[str, Any]:
        defects = [{**d.to_dict(), "class": c, "visible_fraction": round(float(v), 6)}
                   for d, c, v in zip(self.defects, self.classes(), self.visible_fraction)]
        if self.visible_frames is not None:
            views = self.visible_views if self.visible_views is not None else np.zeros(len(self.defects), np.int64)
            for rec, nf, nv, mf in zip(defects, self.visible_frames, views, self.must_find):
                rec.update(visible_frames=int(nf), visible_views=int(nv), must_find=bool(mf))
        out = {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "seed": self.seed,
            "camera": self.camera.to_dict(),
            "sensor": self.spec.to_dict(),
            "visibility_sigma": VISIBILITY_SIGMA,
            "find_sigma": FIND_SIGMA,
            "must_find_share": MUST_FIND_SHARE,
            "file_format": self.file_format,
            "sample_scale": self.sample_scale,
            "frames": [f.to_dict() for f in self.frames],
            "defects": defects,
        }
        if self.duplicates:
            out["duplicates"] = [{"file": a, "of": b} for a, b in self.duplicates]
        return out

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``truth.json`` (atomic, never replacing unless ``overwrite``)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n", overwrite=overwrite)


def load_truth(path: str | Path) -> SeriesTruth:
    """Read a ``truth.json`` written by :func:`generate_series` (or its folder).

    Raises
    ------
    rawmap.errors.MapFormatError
        Missing, not JSON, not a rawmap truth file, or an unknown version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "truth.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MapFormatError(f"{path}: no such truth file (generate one with fixtures/generate.py)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise MapFormatError(f"{path}: cannot read truth file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != TRUTH_FORMAT:
        raise MapFormatError(f"{path}: not a rawmap truth file")
    if data.get("version") != TRUTH_VERSION:
        raise MapFormatError(f"{path}: truth version {data.get('version')!r} is not supported (reads {TRUTH_VERSION})")
    try:
        camera = CameraId.from_dict(data["camera"])
        recs = data["defects"]
        defects = [PlantedDefect.from_dict(d) for d in recs]
        have = all("visible_frames" in d for d in recs)
        return SeriesTruth(
            camera=camera,
            spec=SensorSpec.from_dict(data["sensor"], camera=camera),
            frames=[FrameTruth.from_dict(f) for f in data["frames"]],
            defects=defects,
            visible_fraction=np.array([float(d.get("visible_fraction", 0.0)) for d in recs]),
            seed=data.get("seed"),
            visible_frames=np.array([int(d["visible_frames"]) for d in recs], np.int64) if have else None,
            visible_views=np.array([int(d.get("visible_views", 0)) for d in recs], np.int64) if have else None,
            file_format=str(data.get("file_format", "dng")),
            sample_scale=float(data.get("sample_scale", 1.0)),
            duplicates=[(str(d["file"]), str(d["of"])) for d in data.get("duplicates", [])],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise MapFormatError(f"{path}: damaged truth file ({exc})") from None


def _scene_rate(spec: SensorSpec, fp: FramePlan) -> float:
    """Irradiance (e-/s at QE 1) that puts mid grey (or night sky) at ``fp.level`` of the raw range."""
    range_e = (spec.white - float(spec.black_map().mean())) / spec.gain(fp.iso)
    return fp.level * range_e / fp.exposure


#: What :func:`generate_series` can write: uncompressed DNG (LibRaw decodes it),
#: or the raw mosaic (no demosaic) as a one-channel grayscale TIFF or PNG of
#: 8 or 16 bits.  16 bits: DN times the largest integer that keeps white
#: within 65535 (x4 for a 14-bit white, x16 for 12-bit); 8 bits: DN x 255 /
#: white, rounded.  Images hold the visible area only, with EXIF.
FILE_FORMATS = ("dng", "tiff16", "tiff8", "png16", "png8")


def sample_scale(spec: SensorSpec, file_format: str) -> float:
    """File value per DN for ``file_format`` (see :data:`FILE_FORMATS`)."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {', '.join(FILE_FORMATS)}; got {file_format!r}")
    if file_format == "dng":
        return 1.0
    if file_format.endswith("16"):
        return float(65535 // spec.white)
    return 255.0 / spec.white


def to_file_values(mosaic: np.ndarray, spec: SensorSpec, file_format: str) -> np.ndarray:
    """(H, W) uint16 DN -> the sample values written for ``file_format`` (uint8 or uint16)."""
    scale = sample_scale(spec, file_format)
    if file_format == "dng":
        return mosaic
    if file_format.endswith("16"):
        return mosaic * np.uint16(scale)
    return np.clip(np.rint(mosaic.astype(_F32) * _F32(scale)), 0, 255).astype(np.uint8)


def _exif_entries(camera: CameraId, fp: FramePlan) -> list[tuple[int, int, int, object]]:
    from .dng import _ASCII, _RATIONAL, _SHORT, _SRATIONAL, _UNDEFINED, _ascii, _rational

    ent: list[tuple[int, int, int, object]] = [(36864, _UNDEFINED, 4, b"0230"),
                                               (33434, _RATIONAL, 1, _rational(fp.exposure)),
                                               (34855, _SHORT, 1, int(round(fp.iso))),
                                               (36867, _ASCII, 0, fp.time.strftime("%Y:%m:%d %H:%M:%S").encode())]
    if camera.serial:
        ent.append((42033, _ASCII, 0, _ascii(camera.serial)))
    if fp.temperature is not None:
        ent.append((37888, _SRATIONAL, 1, _rational(fp.temperature, signed=True, max_den=1000)))
    return ent


def _image_bytes(values: np.ndarray, camera: CameraId, fp: FramePlan, file_format: str) -> bytes:
    """A grayscale TIFF or PNG of ``values`` with Make, Model and an EXIF block."""
    if file_format.startswith("tiff"):
        import tifffile

        from .dng import _ASCII, _EXIF_PLACEHOLDER, _LONG, _append_exif_ifd, _ascii

        tags = [(271, _ASCII, 0, _ascii(camera.make), True), (272, _ASCII, 0, _ascii(camera.model), True),
                (306, _ASCII, 0, fp.time.strftime("%Y:%m:%d %H:%M:%S").encode(), True),
                (_EXIF_PLACEHOLDER, _LONG, 1, 0, True)]
        buf = io.BytesIO()
        with tifffile.TiffWriter(buf, byteorder="<") as tif:
            tif.write(values, photometric="minisblack", rowsperstrip=values.shape[0], metadata=None,
                      datetime=False, extratags=tags)
        return _append_exif_ifd(buf.getvalue(), _exif_entries(camera, fp))
    from fractions import Fraction

    from PIL import Image, TiffImagePlugin

    img = Image.fromarray(values)
    exif = Image.Exif()
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    stamp = fp.time.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0132] = stamp
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = stamp
    f = Fraction(fp.exposure).limit_denominator(1_000_000)
    sub[0x829A] = TiffImagePlugin.IFDRational(f.numerator, f.denominator)
    sub[0x8827] = int(round(fp.iso))
    if camera.serial:
        sub[0xA431] = camera.serial
    if fp.temperature is not None:
        tf = Fraction(fp.temperature).limit_denominator(1000)
        sub[0x9400] = TiffImagePlugin.IFDRational(tf.numerator, tf.denominator)
    out = io.BytesIO()
    img.save(out, "PNG", exif=exif)
    return out.getvalue()


def generate_series(
    out_dir: str | Path,
    *,
    n_frames: int = 40,
    seed: int = 0,
    spec: SensorSpec | None = None,
    counts: DefectCounts | None = None,
    defects: Sequence[PlantedDefect] | None = None,
    plan: SeriesPlan | None = None,
    jpeg: bool = False,
    clean_dir: str | Path | None = None,
    file_format: str = "dng",
    duplicates: int = 0,
    overwrite: bool = False,
) -> SeriesTruth:
    """Simulate a series of photos from one defective sensor and write it.

    Writes ``frame_000.dng`` ... (uncompressed DNG, with an ActiveArea
    border when the spec has margins; or ``.tif`` / ``.png``, see
    ``file_format``), with ``jpeg`` also ``frame_000.jpg`` ... (a simple
    rendering with EXIF), the ``duplicates``, and last ``truth.json``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    n_frames : int, optional
        Ignored when ``plan`` is given.
    seed : int, optional
        Everything (defects, plan, scenes, noise) derives from it; the same
        seed gives byte-identical files.
    spec : SensorSpec, optional
        600 x 900 RGGB sensor with no border when omitted.
    counts : DefectCounts, optional
        Defects to plant; :meth:`DefectCounts.for_sensor` when omitted.
    defects : sequence of PlantedDefect, optional
        Use these instead of planting new ones.
    plan : SeriesPlan, optional
        Use this instead of :func:`plan_series` (brackets, timelapses,
        darks: see :class:`FramePlan` and :func:`scenario_plan`).
    jpeg : bool, optional
        Also write JPEG renderings (colour sensors only).
    clean_dir : str or Path, optional
        Also write each frame's defect-free mosaic as ``frame_000.npy``
        (uint16 DN, visible area) there.
    file_format : {"dng", "tiff16", "tiff8", "png16", "png8"}, optional
        How frames are written (:data:`FILE_FORMATS`): a DNG, or the raw
        mosaic as a grayscale image scaled to 8 or 16 bits (visible area
        only).  A monochrome spec (``cfa=None``) needs an image format.
    duplicates : int, optional
        Also write this many byte-identical copies of randomly chosen
        frames: alternately under another name in ``out_dir``
        (``frame_007-copy.dng``) and under the same name in
        ``out_dir/backup/``.  Listed in :attr:`SeriesTruth.duplicates`.
    overwrite : bool, optional
        Replace existing files; otherwise any existing output is refused
        before anything is written.

    Returns
    -------
    SeriesTruth

    Raises
    ------
    ValueError
        An unknown ``file_format``, a DNG or JPEG asked of a monochrome
        sensor, a negative ``duplicates``.
    rawmap.fileio.OutputExistsError
        Output files exist and ``overwrite`` is false.
    """
    from .dng import write_dng

    out_dir = Path(out_dir)
    spec = spec or SensorSpec(600, 900)
    scale = sample_scale(spec, file_format)
    if spec.mono and (file_format == "dng" or jpeg):
        raise ValueError("a monochrome sensor (cfa=None) is written as a grayscale image: pass file_format="
                         "'tiff16', 'tiff8', 'png16' or 'png8', and no jpeg (the DNG writer writes CFA data only)")
    if duplicates < 0:
        raise ValueError(f"duplicates must be >= 0, got {duplicates}")
    ss = np.random.SeedSequence(seed)
    s_defects, s_plan, s_frames, s_bursts, s_extra = ss.spawn(5)
    if defects is None:
        counts = counts or DefectCounts.for_sensor(spec.height, spec.width)
        defects = plant_defects(spec, np.random.default_rng(s_defects), **counts.as_kwargs())
    defects = sorted(defects, key=lambda d: (d.row, d.col))
    if plan is None:
        plan = plan_series(n_frames, np.random.default_rng(s_plan))
    for fp in plan.frames:
        if fp.scene not in SCENE_KINDS:
            raise ValueError(f"frame scene must be one of {', '.join(SCENE_KINDS)}; got {fp.scene!r}")
    n = len(plan)
    ext = {"dng": "dng", "tiff16": "tif", "tiff8": "tif", "png16": "png", "png8": "png"}[file_format]
    names = [f"frame_{i:03d}" for i in range(n)]
    extra_rng = np.random.default_rng(s_extra)
    dup_of = [int(i) for i in extra_rng.choice(n, size=min(duplicates, n), replace=False)] if duplicates else []
    while len(dup_of) < duplicates:  # more copies than frames: copy some twice
        dup_of.append(int(extra_rng.integers(n)))
    dups = [((f"{names[i]}-copy.{ext}" if k % 2 == 0 else f"backup/{names[i]}.{ext}") if k < 2 * n
             else f"backup/{names[i]}-{k}.{ext}", f"{names[i]}.{ext}") for k, i in enumerate(dup_of)]
    clean_path = None if clean_dir is None else Path(clean_dir)
    wanted = [out_dir / f"{s}.{ext}" for s in names] + [out_dir / "truth.json"] + [out_dir / a for a, _ in dups]
    if jpeg:
        wanted += [out_dir / f"{s}.jpg" for s in names]
    if clean_path is not None:
        wanted += [clean_path / f"{s}.npy" for s in names]
    if not overwrite:
        for p in wanted:
            if p.exists():
                raise OutputExistsError(f"{p}: already exists (choose another output folder, or allow overwriting)")
    out_dir.mkdir(parents=True, exist_ok=True)

    frame_seeds = s_frames.spawn(n)
    burst_seeds: dict[int, np.random.SeedSequence] = {}
    burst_scene: dict[int, np.ndarray] = {}
    visible = np.zeros(len(defects), dtype=np.int64)
    found = np.zeros((n, len(defects)), dtype=bool)
    q_var = max(0.0, (1.0 / scale) ** 2 - 1.0) / 12.0  # quantisation of the file beyond 1 DN
    frames: list[FrameTruth] = []
    for i, fp in enumerate(plan.frames):
        rng = np.random.default_rng(frame_seeds[i])
        if fp.scene == "dark":
            scene = render_scene(spec, rng, "dark")
        elif fp.burst is not None:
            if fp.burst not in burst_scene:
                burst_seeds.setdefault(fp.burst, s_bursts.spawn(1)[0])
                burst_scene[fp.burst] = render_scene(spec, np.random.default_rng(burst_seeds[fp.burst]), fp.scene,
                                                     rate=_scene_rate(spec, fp))
            scene = _shift(burst_scene[fp.burst], *fp.jitter)
            if fp.light != 1.0:
                scene *= _F32(fp.light)
        else:
            scene = render_scene(spec, rng, fp.scene, rate=_scene_rate(spec, fp))
        sim = simulate(spec, defects, scene, fp.exposure, fp.iso, rng, temperature=fp.temperature)
        del scene
        visible += sim.visible
        found[i] = np.abs(sim.deviation) > FIND_SIGMA * np.sqrt(sim.sigma ** 2 + q_var)
        if file_format == "dng":
            full = None
            if spec.top_margin or spec.left_margin:
                full = _border_frame(spec, sim.mosaic, fp.iso, rng)
            kw = {} if fp.temperature is None else {"temperature": fp.temperature}
            written = write_dng(
                out_dir / f"{names[i]}.dng", sim.mosaic, cfa=spec.cfa_array, black=spec.black_levels(),
                white=spec.white, camera=spec.camera, exposure=fp.exposure, iso=fp.iso, time=fp.time,
                full_frame=full, margins=(spec.top_margin, spec.left_margin),
                as_shot_neutral=spec.wb_neutral(), overwrite=overwrite, **kw,
            )
        else:
            written = atomic_write_bytes(
                out_dir / f"{names[i]}.{ext}",
                _image_bytes(to_file_values(sim.mosaic, spec, file_format), spec.camera, fp, file_format),
                overwrite=overwrite,
            )
        jpg_name = None
        if jpeg:
            jpg = atomic_write_bytes(
                out_dir / f"{names[i]}.jpg",
                _jpeg_bytes(develop(sim.mosaic, spec), spec.camera, fp.exposure, fp.iso, fp.time),
                overwrite=overwrite,
            )
            jpg_name = jpg.name
        clean_name = None
        if clean_path is not None:
            buf = io.BytesIO()
            np.save(buf, sim.clean, allow_pickle=False)
            clean_name = str(atomic_write_bytes(clean_path / f"{names[i]}.npy", buf.getvalue(), overwrite=overwrite))
        frames.append(FrameTruth(written.name, fp.exposure, fp.iso, fp.scene, fp.time, fp.burst, jpg_name, clean_name,
                                 fp.temperature))
    for copy, orig in dups:
        atomic_write_bytes(out_dir / copy, (out_dir / orig).read_bytes(), overwrite=overwrite)
    keys = _view_keys(plan.frames)
    views = np.array([len({keys[i] for i in np.flatnonzero(found[:, j])}) for j in range(len(defects))], np.int64)
    truth = SeriesTruth(
        camera=spec.camera, spec=spec, frames=frames, defects=list(defects),
        visible_fraction=visible / max(1, n), seed=seed,
        visible_frames=found.sum(axis=0).astype(np.int64), visible_views=views,
        file_format=file_format, sample_scale=scale, duplicates=dups,
    )
    truth.save(out_dir / "truth.json", overwrite=overwrite)
    return truth


# ---------------------------------------------------------------------------
# named scenarios
# ---------------------------------------------------------------------------

#: Scenarios :func:`scenario_plan` and :func:`write_scenario` know.
SCENARIOS = ("brackets", "timelapse", "burst", "darks-same", "darks-mixed", "mixed", "mono", "gray16", "gray8",
             "black0")
#: Exposure-time range of lens-cap darks in ``darks-mixed`` and ``mixed``, seconds.
DARK_EXPOSURES = (1 / 60, 60.0)
_VARIED = ("landscape", "glints", "flat", "night", "indoor", "edges", "texture", "texture", "edges")


def _bracket(rng: np.random.Generator, view: int, t0: _dt.datetime, k: int, stops: float,
             scene: str, shake: float) -> list[FramePlan]:
    """``k`` frames of one static view, ``stops`` apart, the first at mid grey = 2 % of the range."""
    iso = _iso(rng, 100, 800)
    base = _shutter(rng, 1 / 4000, 1 / 250)
    out = []
    for j in range(k):
        jit = (0.0, 0.0) if j == 0 or shake == 0 else tuple(float(v) for v in rng.uniform(-shake, shake, 2))
        out.append(FramePlan(scene, base * 2.0 ** (stops * j), iso, t0 + _dt.timedelta(seconds=2 * j), 0.02,
                             view, jit))  # type: ignore[arg-type]
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
        One of :data:`SCENARIOS`; ``mono``, ``gray16``, ``gray8`` and
        ``black0`` use the plan of ``mixed``.
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
    elif name == "timelapse":
        scene = str(rng.choice(["landscape", "edges"]))
        exp, fiso = _shutter(rng, 1 / 500, 1 / 60), _iso(rng, 100, 400)
        for i in range(n_frames):  # sunset: the light falls 4 stops, log-linearly
            light = 2.0 ** (-4.0 * i / max(1, n_frames - 1))
            jit = tuple(float(v) for v in rng.uniform(-0.1, 0.1, 2)) if i else (0.0, 0.0)
            items.append(FramePlan(scene, exp, fiso, start + i * minute, 0.25, 0, jit, light))  # type: ignore[arg-type]
    elif name == "burst":
        half = n_frames // 2
        for b, (k, scene) in enumerate(((half, "glints"), (n_frames - half, "texture"))):
            exp, fiso, lvl = _shutter(rng, 1 / 2000, 1 / 250), _iso(rng, 100, 800), float(rng.uniform(0.12, 0.2))
            t0 = start + 30 * b * minute
            for i in range(k):
                jit = (0.0, 0.0) if i == 0 else tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2))
                items.append(FramePlan(scene, exp, fiso, t0 + _dt.timedelta(seconds=i), lvl, b, jit))  # type: ignore[arg-type]
    elif name == "darks-same":
        for i in range(n_frames):  # the sensor warms up from 20 to 32 degrees C
            items.append(_dark(rng, start + i * _dt.timedelta(seconds=35), 30.0, iso, 20 + 12 * i / (n_frames - 1)))
    elif name == "darks-mixed":
        exps = np.exp(np.linspace(np.log(DARK_EXPOSURES[0]), np.log(DARK_EXPOSURES[1]), n_frames))
        rng.shuffle(exps)
        t = start
        for i, e in enumerate(exps):
            items.append(_dark(rng, t, float(_shutter(rng, e * 0.8, min(e * 1.25, 60.0)) if e < 30 else round(e)),
                               iso, rng.uniform(18, 30)))
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
            groups.append([FramePlan("glints", exp, fiso, start, 0.15, 1,
                                     (0.0, 0.0) if i == 0 else tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2)))  # type: ignore[arg-type]
                           for i in range(4)])
        order = rng.permutation(len(groups))
        flat: list[FramePlan] = [f for g in order for f in groups[g]]
        dark_exps = np.exp(rng.uniform(np.log(DARK_EXPOSURES[0]), np.log(DARK_EXPOSURES[1]), n_dark))
        for j, e in enumerate(dark_exps):
            flat.insert(5 * j + 4, _dark(rng, start, float(_shutter(rng, e * 0.8, min(e * 1.25, 30.0)) if e < 30 else 60.0),
                                         iso, rng.uniform(15, 35)))
        t = start
        for f in flat:  # capture times in series order; a bracket's or burst's frames 1-2 s apart
            items.append(replace(f, time=t))
            t += _dt.timedelta(seconds=2) if f.burst is not None else 7 * minute
    return _strictly_increasing(items)


def scenario_counts(height: int, width: int) -> DefectCounts:
    """Defects planted by :func:`write_scenario`: 3x the density of :meth:`DefectCounts.for_sensor`."""
    b = DefectCounts.for_sensor(height, width)
    return DefectCounts(n_stuck=3 * b.n_stuck, n_dead=3 * b.n_dead, n_hot=3 * b.n_hot, n_warm=3 * b.n_warm,
                        n_cold=3 * b.n_cold, n_noisy=3 * b.n_noisy, n_clusters=3 * b.n_clusters,
                        n_columns=b.n_columns, n_rows=b.n_rows)


def scenario_spec(name: str, height: int, width: int) -> SensorSpec:
    """The sensor of a scenario: :class:`SensorSpec` defaults, except ``mono`` (no CFA) and
    ``black0`` (12-bit, black level 0, white 4095, full well 15000 e-)."""
    camera = CameraId("Rawmap", "Scenario Sensor", f"SC-{name}")
    if name == "mono":
        return SensorSpec(height, width, cfa=None, camera=camera)
    if name == "black0":
        return SensorSpec(height, width, black=0, white=4095, full_well_e=15000.0, camera=camera)
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
) -> SeriesTruth:
    """Write a named scenario series into ``folder``; return its truth.

    All scenarios plant the same kinds of defects, harder than the
    defaults of :func:`plant_defects` (:func:`scenario_counts`, 3x the
    density): hot 50-3000 DN/s, warm 10-100 DN/s (at ISO 100 and 20
    degrees C), clusters of 2-4 adjacent hot photosites, cold gains
    0.05-0.5, stuck, dead, blinking, column and row segments.

    ==============  ===========================================================
    name            frames
    ==============  ===========================================================
    ``brackets``    static views shot 4 times 2 stops apart (first frame's mid
                    grey at 2 % of the range, the last clips); same ISO, new
                    noise each frame; every other view on a tripod (no shake),
                    the others with 0.3 px of shake
    ``timelapse``   one static view, the light falling 4 stops over the
                    series, fixed exposure and ISO, 0.1 px shake, 1 min apart
    ``burst``       two bursts (glints, texture) of near-identical frames,
                    0.3 px jitter, 1 s apart
    ``darks-same``  lens-cap darks, 30 s at ``iso``, the sensor warming from
                    20 to 32 degrees C (dark current x 4)
    ``darks-mixed`` lens-cap darks from 1/60 s to 60 s at ``iso``, 18-30
                    degrees C
    ``mixed``       varied scenes (landscape, glints, flat, night, indoor,
                    edges, texture; 1/8000-30 s, ISO 100-6400), one bracket,
                    one burst, every fifth frame a dark (1/60-60 s at
                    ``iso``), and 2 duplicate files
    ``mono``        ``mixed`` on a monochrome sensor, 16-bit grayscale TIFF
    ``gray16``      ``mixed``, the Bayer mosaic as 16-bit grayscale TIFF
    ``gray8``       ``mixed``, the Bayer mosaic as 8-bit grayscale PNG
    ``black0``      ``mixed`` on a 12-bit sensor with black level 0 (dead
                    photosites read 0, noise clips at 0)
    ==============  ===========================================================

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
    jpeg, clean_dir, overwrite
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
    mixed_family = name in ("mixed", "mono", "gray16", "gray8", "black0")
    s_def, s_plan = np.random.SeedSequence([seed, 9009]).spawn(2)
    defects = plant_defects(spec, np.random.default_rng(s_def), **scenario_counts(h, w).as_kwargs(),
                            warm_rate=(10.0, 100.0), cold_gain=(0.05, 0.5), cluster_kind="hot")
    plan = scenario_plan("mixed" if mixed_family else name, n_frames, np.random.default_rng(s_plan), iso=iso)
    return generate_series(folder, seed=seed, spec=spec, defects=defects, plan=plan, jpeg=jpeg, clean_dir=clean_dir,
                           file_format=fmt, duplicates=(2 if mixed_family else 0) if duplicates is None else duplicates,
                           overwrite=overwrite)


# ---------------------------------------------------------------------------
# scoring a map against the truth
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MapScore:
    """How a defect map compares with a series' truth (:func:`score_map`).

    Attributes
    ----------
    recall : float
        Share of the must-find units found: a point defect (any class but
        ``column``) is found when its photosite is flagged (any kind); a
        column or row segment is one unit, must-find when at least half of
        its photosites are, found when at least 80 % of them are flagged.
        1.0 when there is nothing to find.
    precision : float
        Share of the map's flags that lie on a planted defect photosite
        (must-find or not); 1.0 for an empty map.
    n_must_find, n_found : int
        Must-find units, and how many of them were found.
    n_flags, n_false : int
        Flags in the map, and those on no planted defect.
    false_by_kind : dict of str to int
        False flags per map kind (``DefectKind`` value).
    recall_by_class : dict of str to (int, int)
        Per finer class (:data:`DEFECT_CLASSES`), (found, must-find units).
    """

    recall: float
    precision: float
    n_must_find: int
    n_found: int
    n_flags: int
    n_false: int
    false_by_kind: dict[str, int]
    recall_by_class: dict[str, tuple[int, int]]

    def summary(self) -> str:
        """One line: recall, precision and the false flags by kind."""
        fk = ", ".join(f"{k} {v}" for k, v in sorted(self.false_by_kind.items())) or "none"
        return (f"recall {self.recall:.2f} ({self.n_found}/{self.n_must_find}), precision {self.precision:.2f} "
                f"({self.n_flags - self.n_false}/{self.n_flags}); false flags: {fk}")


def score_map(defect_map: Any, truth: SeriesTruth) -> MapScore:
    """Score a defect map against the truth of a generated series.

    Parameters
    ----------
    defect_map : rawmap.defectmap.DefectMap
        Or anything with ``defects``, each with ``row``, ``col`` and ``kind``
        (visible-area coordinates).
    truth : SeriesTruth
        With ``visible_frames`` (see :attr:`SeriesTruth.must_find`).

    Returns
    -------
    MapScore
    """
    must = truth.must_find
    classes = truth.classes()
    flags = {(int(d.row), int(d.col)): DefectKind(d.kind).value for d in defect_map.defects}
    planted = {(d.row, d.col) for d in truth.defects}
    by_class: dict[str, list[int]] = {}
    segments: dict[int, list[tuple[bool, bool]]] = {}
    for d, c, m in zip(truth.defects, classes, must):
        hit = (d.row, d.col) in flags
        if c == "column":
            segments.setdefault(int(d.params.get("segment", -1)), []).append((bool(m), hit))
        elif m:
            fc = by_class.setdefault(c, [0, 0])
            fc[0] += hit
            fc[1] += 1
    for members in segments.values():
        if sum(m for m, _ in members) * 2 >= len(members):
            fc = by_class.setdefault("column", [0, 0])
            fc[0] += sum(h for _, h in members) >= 0.8 * len(members)
            fc[1] += 1
    n_must = sum(v[1] for v in by_class.values())
    n_found = sum(v[0] for v in by_class.values())
    false: dict[str, int] = {}
    for rc, kind in flags.items():
        if rc not in planted:
            false[kind] = false.get(kind, 0) + 1
    n_false = sum(false.values())
    return MapScore(
        recall=n_found / n_must if n_must else 1.0,
        precision=(len(flags) - n_false) / len(flags) if flags else 1.0,
        n_must_find=n_must, n_found=n_found, n_flags=len(flags), n_false=n_false,
        false_by_kind=false, recall_by_class={k: (v[0], v[1]) for k, v in by_class.items()},
    )


def score_flags(
    flags: set[tuple[int, int]], truth: dict[str, Any], radius: int = 0, *, jpeg: bool = False
) -> tuple[float, float, Counter, Counter]:
    """Score flagged photosites against a ``truth.json`` of an outside series (e.g. ``indep-8080``).

    That format lists ``defects`` with ``row``, ``col``, ``kind`` and
    ``must_find`` (``must_find_jpeg`` for the series' JPEG renderings).

    Parameters
    ----------
    flags : set of (row, col)
    truth : dict
        The parsed ``truth.json``.
    radius : int, optional
        A flag hits a defect within this many photosites (Chebyshev); 2 for
        JPEGs, whose demosaicing and compression move a defect's trace.
    jpeg : bool, optional
        Score against ``must_find_jpeg``.

    Returns
    -------
    recall : float
        Share of must-find units flagged; a column segment counts when 80 %
        of its must-find photosites are flagged.
    precision : float
        Share of flags within ``radius`` of any planted defect.
    found, total : Counter
        Must-find units found and planted, by truth kind.
    """
    defects = truth["defects"]
    planted = np.array([(d["row"], d["col"]) for d in defects], np.int64).reshape(-1, 2)

    def hit(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
        if len(points) == 0 or len(targets) == 0:
            return np.zeros(len(points), bool)
        return (np.abs(points[:, None, :] - targets[None, :, :]).max(axis=2) <= radius).any(axis=1)

    f = np.array(sorted(flags), np.int64).reshape(-1, 2)
    precision = float(hit(f, planted).mean()) if len(f) else 1.0
    found: Counter = Counter()
    total: Counter = Counter()
    columns: dict[int, list[tuple[int, int]]] = {}
    key = "must_find_jpeg" if jpeg else "must_find"
    for d in defects:
        if not d.get(key, d.get("must_find")):
            continue
        if d["kind"] == "column":
            columns.setdefault(d["col"], []).append((d["row"], d["col"]))
            continue
        total[d["kind"]] += 1
        found[d["kind"]] += int(hit(np.array([[d["row"], d["col"]]]), f)[0])
    for pts in columns.values():
        total["column"] += 1
        found["column"] += int(hit(np.array(pts), f).mean() >= 0.8)
    recall = sum(found.values()) / max(sum(total.values()), 1)
    return recall, precision, found, total
