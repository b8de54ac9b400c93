"""The defect map: one camera body's defective photosites, and its JSON file format.

File format (``format: "rawmap-defect-map"``, ``version: 1``), UTF-8 JSON::

    {
      "format": "rawmap-defect-map",
      "version": 1,
      "created": "2026-11-25T16:00:00Z",
      "software": "rawmap 0.1.0",
      "camera": {"make": "Canon", "model": "Canon EOS D30", "serial": "171048961"},
      "sensor": {"height": 1448, "width": 2176,           # visible area (raw_image_visible)
                 "top_margin": 6, "left_margin": 48,       # visible area inside the full frame
                 "full_height": 1456, "full_width": 2224,
                 "cfa": "RGGB",                             # "" for maps made from JPEGs
                 "source": "raw"},                          # "raw" or "image"
      "frames": {"count": 40, "skipped": 1,
                 "first_capture": "...", "last_capture": "...",   # ISO 8601 or null
                 "exposure_min": 0.00025, "exposure_max": 30.0,
                 "iso_min": 100, "iso_max": 6400},
      "thresholds": {...},                                  # detection parameters used
      "defects": [
        {"row": 120, "col": 431, "kind": "hot", "score": 41.2,
         "channel": "G", "first_seen": "2026-03-02T21:14:00" | null,
         "value": 812.0},                                   # kind-specific figure, see Defect
        {"row": 7, "col": 9, "kind": "hot", "score": 0.0, "channel": "R",
         "first_seen": null, "manual": true},               # added by hand (`rawmap edit --add`)
        ...
      ],
      "dropped": [{"row": 300, "col": 12}, ...]             # dropped by hand; optional
    }

``row``/``col`` are visible-area coordinates, as rawpy's ``raw_image_visible``
(row 0 = top row of the visible area in sensor orientation); there is exactly
one entry per defective photosite.  Readers must refuse an unknown major
``version``; unknown keys are ignored.

What a reader accepts (:meth:`DefectMap.load`, :meth:`DefectMap.from_dict`;
every command reads maps through them, so a hand-edited or hostile file is
refused with one :class:`~rawmap.errors.MapFormatError` line naming the file
and the entry, before anything uses it):

* strict JSON: no ``NaN``/``Infinity`` (nor numbers that overflow to them),
  integers of at most 4,300 digits, nesting as deep as Python's parser takes;
* a file of at most :data:`MAX_MAP_BYTES` (256 MiB), at most
  :data:`MAX_DEFECTS` (1,000,000) defects and as many dropped photosites;
* a sensor of 1 to :data:`MAX_SENSOR_SIDE` (65,535) rows and columns and at
  most :data:`MAX_PHOTOSITES` (2**29, about 537 million) photosites, margins
  and full size >= 0, ``cfa`` ``""`` or four letters of R, G, B, ``source``
  ``raw`` or ``image``;
* in each defect and dropped entry, ``row``/``col`` JSON integers (not
  ``true``, ``3.0`` or ``"3"``) with ``0 <= row < height`` and
  ``0 <= col < width``, a known ``kind``, finite numbers for ``score`` and
  ``value``, ``channel`` ``""``, ``R``, ``G`` or ``B``, ``first_seen`` an
  ISO 8601 time or null, ``manual`` a boolean, and one entry per photosite.

Edits by hand (:meth:`DefectMap.edited`, ``rawmap edit``) add two keys that
readers of older maps ignore: ``"manual": true`` on a defect the user added
(or confirmed; score 0 and no ``first_seen`` when it was not detected), and
the top-level ``"dropped"`` list of photosites the user removed.  Both are
written only when present.  The library carries them over when the body is
mapped again (:func:`carry_edits`): manual defects stay, dropped photosites
stay out even when detection finds them again.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import MapEditError, MapFormatError, MapMismatchError
from .fileio import atomic_write_text
from .frame import CameraId, Frame, SourceKind
from .kinds import KINDS, DefectKind
from .safeio import parse_json

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_MAP_BYTES",
    "MAX_DEFECTS",
    "MAX_SENSOR_SIDE",
    "MAX_PHOTOSITES",
    "DefectKind",
    "Defect",
    "SensorGeometry",
    "FrameStats",
    "DefectMap",
    "Segment",
    "column_segments",
    "merge_defects",
    "carry_edits",
]

FORMAT_NAME = "rawmap-defect-map"
FORMAT_VERSION = 1

#: Largest map file :meth:`DefectMap.load` reads (bytes): a map of :data:`MAX_DEFECTS`
#: defects written by :meth:`DefectMap.save` takes about 140 MB.
MAX_MAP_BYTES = 256 * 1024 * 1024
#: Most defects (and, separately, dropped photosites) a map may hold.  About 4 % of a
#: 24 MP sensor; a map that large takes about 0.8 GB and 10 s to read.
MAX_DEFECTS = 1_000_000
#: Most commas :meth:`DefectMap.load` lets through to the parser: 16 per defect (a defect
#: written by :meth:`DefectMap.save` has 6 to 8), so a file of small values (a list of a
#: hundred million zeros) is refused before it is parsed.
_MAX_VALUES = 16 * MAX_DEFECTS + 100_000
#: Most rows or columns of a sensor (LibRaw's limit: its sizes are 16-bit).
MAX_SENSOR_SIDE = 65535
#: Most photosites of a sensor (2**29, 3.5 times the largest camera sensor made, 151 MP);
#: also bounds what a state file (:meth:`rawmap.accumulate.Accumulator.load`) may claim.
MAX_PHOTOSITES = 1 << 29


def _short(text: str, n: int = 40) -> str:
    """``text`` cut to ``n`` characters, one line (hostile files put anything in their values)."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def _show(value: Any) -> str:
    """A value read from a file, as it looked there, at most 40 characters."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return _short(text)


class _Damaged(Exception):
    """What is wrong with one entry of a map (the message of a :class:`MapFormatError`)."""


_MISSING: Any = object()


_CHANNELS = frozenset(("", "R", "G", "B"))
_NUMBER = (int, float)


def _plain_defect(x: Any, H: int, W: int) -> Defect | None:
    """The defect of a well-formed entry inside an ``H`` x ``W`` sensor, else ``None`` (check it field by field)."""
    if type(x) is not dict:
        return None
    row, col, kind = x.get("row"), x.get("col"), x.get("kind")
    score, channel, first = x.get("score", 0.0), x.get("channel", ""), x.get("first_seen")
    value, manual, views = x.get("value", _NAN), x.get("manual", False), x.get("views")
    # type(v) is int: a JSON integer, not true/false (bool) nor 3.0
    if not (type(row) is int and type(col) is int and 0 <= row < H and 0 <= col < W):
        return None
    if not (type(kind) is str and kind in _KINDS and type(channel) is str and channel in _CHANNELS):
        return None
    if not (type(score) in _NUMBER and type(value) in _NUMBER and type(manual) is bool):
        return None
    if not (math.isfinite(score) and (math.isfinite(value) or value is _NAN)):
        return None
    if views is not None and not (type(views) is int and views >= 0):
        return None
    if first is None or first == "":
        when = None
    elif type(first) is str:
        try:
            when = _dt.datetime.fromisoformat(first)
        except ValueError:
            return None
    else:
        return None
    return Defect(row, col, _KINDS[kind], float(score), channel, when, float(value), manual, views)


_NAN = float("nan")


class _Entry:
    """Names one entry of a list in messages (``defect #3 {"row": ...}``), written out only when needed."""

    __slots__ = ("label", "index", "entry")

    def __init__(self, label: str, index: int, entry: Any) -> None:
        self.label, self.index, self.entry = label, index, entry

    def __str__(self) -> str:
        return f"{self.label} #{self.index + 1} {_show(self.entry)}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _get(d: Any, key: str, where: Any, default: Any) -> Any:
    if not isinstance(d, dict):
        raise _Damaged(f"{where} is {_show(d)}, not an object")
    if key in d:
        return d[key]
    if default is _MISSING:
        raise _Damaged(f"{where} has no {key!r}")
    return default


def _int(d: Any, key: str, where: Any, *, lo: int = 0, hi: int | None = None, default: Any = _MISSING) -> int:
    """``d[key]``: a JSON integer (not a boolean, float or string) in ``[lo, hi]``."""
    v = _get(d, key, where, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Damaged(f"{where}: {key} {_show(v)} is not a whole number")
    if v < lo or (hi is not None and v > hi):
        top = "" if hi is None else f" to {hi:,}"
        raise _Damaged(f"{where}: {key} {_show(v)} is out of range (it must be {lo:,}{top})")
    return v


def _num(d: Any, key: str, where: Any, *, default: Any = _MISSING) -> float:
    """``d[key]``: a finite JSON number (not a boolean or string)."""
    if isinstance(d, dict) and key not in d and default is not _MISSING:
        return default
    v = _get(d, key, where, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Damaged(f"{where}: {key} {_show(v)} is not a number")
    if not math.isfinite(v):
        raise _Damaged(f"{where}: {key} {v} is not a finite number")
    return float(v)


def _str(d: Any, key: str, where: Any, *, default: Any = _MISSING, choices: Iterable[str] | None = None) -> str:
    v = _get(d, key, where, default)
    if not isinstance(v, str):
        raise _Damaged(f"{where}: {key} {_show(v)} is not a string")
    if choices is not None and v not in choices:
        raise _Damaged(f"{where}: {key} {_show(v)} is not one of {', '.join(repr(c) for c in choices)}")
    return v


def _time(d: Any, key: str, where: Any) -> _dt.datetime | None:
    v = _get(d, key, where, None)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise _Damaged(f"{where}: {key} {_show(v)} is not a time (ISO 8601, e.g. 2026-03-02T21:14:00)")
    try:
        return _dt.datetime.fromisoformat(v)
    except ValueError:
        raise _Damaged(f"{where}: {key} {_show(v)} is not a time (ISO 8601, e.g. 2026-03-02T21:14:00)") from None


def _list(d: dict[str, Any], key: str, what: str) -> list[Any]:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise _Damaged(f"{key!r} is {_show(v)}, not a list")
    if len(v) > MAX_DEFECTS:
        raise _Damaged(f"{len(v):,} {what}, more than the {MAX_DEFECTS:,} rawmap reads")
    return v


_KINDS = {k.value: k for k in DefectKind}


@dataclass(frozen=True)
class Defect:
    """One defective photosite.

    Attributes
    ----------
    row, col : int
        Visible-area coordinates (sensor orientation).
    kind : DefectKind
        What is wrong (:mod:`rawmap.kinds`).
    score : float
        Strength of the evidence on the scale of the rule that flagged it
        (larger is surer; scores of different rules do not compare):
        for hot, warm, noisy and column photosites the percentage of the
        evidence units in which it was an outlier (leaned across its line);
        for stuck and dead ones how many times more its neighbours' values
        ranged over the series than its own (or than the read noise); for
        cold ones how many robust standard deviations of its colour plane
        its gain ratio lies below the plane's median (100 for one found
        alone in one view), and so for dead ones the cold rule found (gain
        0.02 or less); for hot ones found by their growth in one view
        (a timelapse in aperture priority), robust sigmas of that growth;
        0 for photosites added by hand.
    channel : str
        "R", "G" or "B" for RAW maps, "" for image maps.
    first_seen : datetime or None
        Capture time of the earliest frame in which it showed.
    value : float
        Kind-specific figure: DN level (black included, as in the file) for stuck/dead, dark-current slope
        (DN per second at ISO 100; NaN when no frame stated its exposure) for hot, relative gain (0 or more)
        for cold, excess
        noise ratio for noisy, mean offset (DN) for column
        (``rawmap.kinds.KINDS[kind].value``).
    manual : bool
        Added (or confirmed) by hand with ``rawmap edit``: kept whatever
        later detection finds.
    views : int or None
        Evidence units (views, lens-cap darks) that showed it: the ones in
        which it was an outlier for hot, cold and noisy photosites, every
        one for stuck and dead (constant through all), the ones it leaned
        across the line in for column segments; None when not counted
        (added by hand, or maps written before it was kept).
    """

    row: int
    col: int
    kind: DefectKind
    score: float
    channel: str = ""
    first_seen: _dt.datetime | None = None
    value: float = float("nan")
    manual: bool = False
    views: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "row": int(self.row),
            "col": int(self.col),
            "kind": self.kind.value,
            "score": round(float(self.score), 3),
            "channel": self.channel,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
        }
        if np.isfinite(self.value):
            d["value"] = round(float(self.value), 4)
        if self.manual:
            d["manual"] = True
        if self.views is not None:
            d["views"] = int(self.views)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "defect") -> Defect:
        """A defect from its file entry, every field checked (see the module's docstring).

        Coordinates are checked to be integers >= 0 here; against the sensor
        by :meth:`DefectMap.from_dict`.

        Raises
        ------
        MapFormatError
            A field is missing or of the wrong type or value; the message
            starts with ``where``.
        """
        try:
            return cls._checked(d, where)
        except _Damaged as exc:
            raise MapFormatError(str(exc)) from None

    @classmethod
    def _checked(cls, d: Any, where: Any) -> Defect:
        kind = _str(d, "kind", where)
        try:
            kind_ = DefectKind(kind)
        except ValueError:
            raise _Damaged(
                f"{where}: unknown kind {_show(kind)} (one of {', '.join(k.value for k in DefectKind)})"
            ) from None
        manual = _get(d, "manual", where, False)
        if not isinstance(manual, bool):
            raise _Damaged(f"{where}: manual {_show(manual)} is not true or false")
        return cls(
            row=_int(d, "row", where),
            col=_int(d, "col", where),
            kind=kind_,
            score=_num(d, "score", where, default=0.0),
            channel=_str(d, "channel", where, default="", choices=("", "R", "G", "B")),
            first_seen=_time(d, "first_seen", where),
            value=_num(d, "value", where, default=float("nan")),
            manual=manual,
            views=_int(d, "views", where, default=None) if d.get("views") is not None else None,
        )


@dataclass(frozen=True)
class SensorGeometry:
    """Size and layout of the visible area the map's coordinates refer to."""

    height: int
    width: int
    top_margin: int = 0
    left_margin: int = 0
    full_height: int = 0
    full_width: int = 0
    cfa: str = ""  #: pattern letters in reading order ("RGGB"); "" for image maps
    source: str = "raw"
    #: image maps: channels of the images (1 grayscale, 3 colour; 0 mixed); None for RAW maps and
    #: image maps written before it was recorded
    channels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if d["channels"] is None:
            del d["channels"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SensorGeometry:
        """The geometry of a map file's ``sensor``, checked against the bounds of the module's docstring.

        Raises
        ------
        MapFormatError
            A size out of bounds, a field of the wrong type, an unknown
            pattern or source.
        """
        try:
            _check_sensor(d)
        except _Damaged as exc:
            raise MapFormatError(str(exc)) from None
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            top_margin=int(d.get("top_margin", 0)),
            left_margin=int(d.get("left_margin", 0)),
            full_height=int(d.get("full_height", 0)),
            full_width=int(d.get("full_width", 0)),
            cfa=str(d.get("cfa", "")),
            source=str(d.get("source", "raw")),
            channels=None if d.get("channels") is None else int(d["channels"]),
        )


def _check_sensor(d: Any) -> None:
    """Refuse a ``sensor`` entry :meth:`SensorGeometry.from_dict` must not take (see the module's docstring)."""
    w, side = "sensor", MAX_SENSOR_SIDE
    height, width = _int(d, "height", w, lo=1, hi=side), _int(d, "width", w, lo=1, hi=side)
    for key in ("top_margin", "left_margin", "full_height", "full_width"):
        _int(d, key, w, hi=side, default=0)
    cfa = _str(d, "cfa", w, default="")
    _str(d, "source", w, default="raw", choices=("raw", "image"))
    if isinstance(d, dict) and d.get("channels") is not None:
        _int(d, "channels", w, lo=0, hi=4)
    if height * width > MAX_PHOTOSITES:
        raise _Damaged(
            f"sensor: {height}x{width} is {height * width:,} photosites, more than the {MAX_PHOTOSITES:,} rawmap reads"
        )
    if cfa and (len(cfa) != 4 or set(cfa) - set("RGB")):
        raise _Damaged(f'sensor: cfa {_show(cfa)} is not four letters of R, G, B (e.g. "RGGB") nor ""')


def _iso(t: _dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def _from_iso(s: str | None) -> _dt.datetime | None:
    return _dt.datetime.fromisoformat(s) if s else None


#: the evidence counts of :class:`FrameStats` (optional in the file: absent in maps of older versions)
EVIDENCE_FIELDS = ("views", "darks", "flats", "repeated")
#: what :attr:`FrameStats.growth` may say
GROWTH_OUTCOMES = ("ran", "moved")
#: what :attr:`FrameStats.lines` may say
LINES_OUTCOMES = ("ran", "moved")
#: the one-view tests' outcomes of :class:`FrameStats` (optional in the file), and what each may say
_OUTCOMES = {"growth": GROWTH_OUTCOMES, "lines": LINES_OUTCOMES}
#: the figures of :class:`FrameStats` that may be absent (null: not known)
_OPTIONAL_FIGURES = ("temperature_min", "temperature_max", "dark_noise")


@dataclass(frozen=True)
class FrameStats:
    """What went into a map: how many frames, over which dates and exposures."""

    count: int
    skipped: int = 0
    first_capture: _dt.datetime | None = None
    last_capture: _dt.datetime | None = None
    exposure_min: float = 0.0
    exposure_max: float = 0.0
    iso_min: float = 0.0
    iso_max: float = 0.0
    #: evidence units: views (frames of one scene count once), lens-cap darks, flat fields among
    #: the views, views shot several times (brackets, bursts, timelapses); None in maps written
    #: before they were counted
    views: int | None = None
    darks: int | None = None
    flats: int | None = None
    repeated: int | None = None
    #: lowest and highest temperature the frames stated (degrees C; None: none stated, as in maps
    #: written before temperatures were read); hot values are then given at 20 degrees C
    temperature_min: float | None = None
    temperature_max: float | None = None
    #: temporal noise of the lens-cap darks and bias frames at black, DN per frame (the median
    #: frame's; read noise where they are bias frames); None without darks or in older maps
    dark_noise: float | None = None
    #: one view whose exposure varied while its brightness did not: ``"ran"`` when hot photosites were
    #: looked for by their growth with exposure, ``"moved"`` when the view moved too much for that
    #: (:mod:`rawmap.detect.growth`); None elsewhere and in older maps
    growth: str | None = None
    #: one view whose light changed: ``"ran"`` when column and row segments were looked for by what
    #: stays while the light changes, ``"moved"`` when the view moved too much for that
    #: (:func:`rawmap.detect.lines._one_view_lines`); None elsewhere and in older maps
    lines: str | None = None

    def to_dict(self) -> dict[str, Any]:
        evidence = {k: getattr(self, k) for k in EVIDENCE_FIELDS if getattr(self, k) is not None}
        temps = {k: getattr(self, k) for k in _OPTIONAL_FIGURES if getattr(self, k) is not None}
        outcomes = {k: getattr(self, k) for k in _OUTCOMES if getattr(self, k) is not None}
        return (
            evidence
            | temps
            | outcomes
            | {
                "count": self.count,
                "skipped": self.skipped,
                "first_capture": _iso(self.first_capture),
                "last_capture": _iso(self.last_capture),
                "exposure_min": self.exposure_min,
                "exposure_max": self.exposure_max,
                "iso_min": self.iso_min,
                "iso_max": self.iso_max,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameStats:
        """A map file's ``frames``, each field checked (counts are integers >= 0, figures finite numbers).

        Raises
        ------
        MapFormatError
            A field of the wrong type or value.
        """
        try:
            _check_frames(d)
        except _Damaged as exc:
            raise MapFormatError(str(exc)) from None
        return cls(
            count=int(d.get("count", 0)),
            skipped=int(d.get("skipped", 0)),
            first_capture=_from_iso(d.get("first_capture")),
            last_capture=_from_iso(d.get("last_capture")),
            exposure_min=float(d.get("exposure_min", 0.0)),
            exposure_max=float(d.get("exposure_max", 0.0)),
            iso_min=float(d.get("iso_min", 0.0)),
            iso_max=float(d.get("iso_max", 0.0)),
            **{k: int(d[k]) for k in EVIDENCE_FIELDS if d.get(k) is not None},
            temperature_min=None if d.get("temperature_min") is None else float(d["temperature_min"]),
            temperature_max=None if d.get("temperature_max") is None else float(d["temperature_max"]),
            dark_noise=None if d.get("dark_noise") is None else float(d["dark_noise"]),
            growth=d.get("growth"),
            lines=d.get("lines"),
        )


def _check_frames(d: Any) -> None:
    """Refuse a ``frames`` entry :meth:`FrameStats.from_dict` must not take.

    Counts (``count``, ``skipped``, and :data:`EVIDENCE_FIELDS` where
    present) are integers >= 0 or, for the evidence counts, null; times ISO 8601
    or null; exposures and ISO speeds finite numbers.
    """
    w = "frames"
    for key in ("count", "skipped"):
        _int(d, key, w, default=0)
    for key in EVIDENCE_FIELDS:
        if d.get(key) is not None:
            _int(d, key, w)
    for key in ("first_capture", "last_capture"):
        _time(d, key, w)
    for key in ("exposure_min", "exposure_max", "iso_min", "iso_max"):
        _num(d, key, w, default=0.0)
    for key in _OPTIONAL_FIGURES:
        if isinstance(d, dict) and d.get(key) is not None:
            _num(d, key, w)
    for key, allowed in _OUTCOMES.items():
        if isinstance(d, dict) and d.get(key) is not None and d.get(key) not in allowed:
            raise _Damaged(f"{w}: {key} {_show(d.get(key))} is not one of {', '.join(allowed)}")


# --- segments -----------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """A run of defects of a line kind (``column``) along one column or row.

    Attributes
    ----------
    axis : str
        ``"column"`` (a vertical run) or ``"row"``.
    index : int
        The column (or row) number.
    start, stop : int
        First and last row (or column) of the run, inclusive.
    count : int
        Defective photosites in the run.
    score : float
        Highest score among them.
    kind : DefectKind
        Their kind (a kind whose :attr:`~rawmap.kinds.KindInfo.line` is true).
    """

    axis: str
    index: int
    start: int
    stop: int
    count: int
    score: float
    kind: DefectKind = DefectKind.COLUMN

    def cells(self) -> list[tuple[int, int]]:
        """(row, col) of every photosite from ``start`` to ``stop``."""
        if self.axis == "column":
            return [(r, self.index) for r in range(self.start, self.stop + 1)]
        return [(self.index, c) for c in range(self.start, self.stop + 1)]


def _runs(positions: list[int], max_gap: int, min_len: int) -> list[list[int]]:
    runs: list[list[int]] = []
    for p in sorted(positions):
        if runs and p - runs[-1][-1] <= max_gap:
            runs[-1].append(p)
        else:
            runs.append([p])
    return [r for r in runs if len(r) >= min_len]


def column_segments(defects: list[Defect], *, min_length: int = 3, max_gap: int = 2) -> list[Segment]:
    """Group the defects of line kinds (``column``) into vertical and horizontal segments.

    Defects of one line kind (:attr:`rawmap.kinds.KindInfo.line`) that
    follow each other down a column (gaps of one photosite allowed, as a
    segment may hold one colour only) form a column segment; those left
    over are grouped along rows the same way.  Runs shorter than
    ``min_length`` photosites are not segments.  The report, the plot, the
    DNG opcode list and repair's corrections all take their segments from
    here.

    Parameters
    ----------
    defects : list of Defect
    min_length : int, optional
    max_gap : int, optional
        Largest step between two photosites of one run: 2 lets a one-colour
        segment through, 1 asks for an unbroken run.

    Returns
    -------
    list of Segment
        Per line kind, column segments first, each list sorted by position.
    """
    out: list[Segment] = []
    for kind in (k for k, info in KINDS.items() if info.line):
        col = {(d.row, d.col): d for d in defects if d.kind is kind}
        used: set[tuple[int, int]] = set()
        for axis in ("column", "row"):
            lines: dict[int, list[int]] = {}
            for r, c in col:
                if (r, c) in used:
                    continue
                key, pos = (c, r) if axis == "column" else (r, c)
                lines.setdefault(key, []).append(pos)
            for key in sorted(lines):
                for run in _runs(lines[key], max_gap, min_length):
                    cells = [(p, key) if axis == "column" else (key, p) for p in run]
                    used.update(cells)
                    out.append(Segment(axis, key, run[0], run[-1], len(run), max(col[x].score for x in cells), kind))
    return out


@dataclass
class DefectMap:
    """All known defective photosites of one camera body.

    Attributes
    ----------
    camera : CameraId
    sensor : SensorGeometry
    frames : FrameStats
    defects : list of Defect
        Sorted by (row, col); one entry per photosite.
    thresholds : dict
        Detection parameters used, for the record.
    created : datetime
        When the map was made (UTC).
    dropped : list of (int, int)
        (row, col) of photosites dropped by hand (:meth:`edited`), sorted;
        they stay out of the map when the body is mapped again
        (:func:`carry_edits`).
    """

    camera: CameraId
    sensor: SensorGeometry
    frames: FrameStats
    defects: list[Defect] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).replace(microsecond=0))
    dropped: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.defects = sorted(self.defects, key=lambda d: (d.row, d.col))
        self.dropped = sorted({(int(r), int(c)) for r, c in self.dropped})

    # --- queries ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.defects)

    def counts(self) -> dict[DefectKind, int]:
        """Number of defects of each kind (every kind present, zeros included)."""
        out = {k: 0 for k in DefectKind}
        for d in self.defects:
            out[d.kind] += 1
        return out

    def coordinates(self) -> np.ndarray:
        """(N, 2) ndarray of int64: (row, col) of every defect."""
        n = len(self.defects)
        if not n:
            return np.zeros((0, 2), dtype=np.int64)
        out = np.empty((n, 2), dtype=np.int64)
        out[:, 0] = np.fromiter((d.row for d in self.defects), dtype=np.int64, count=n)
        out[:, 1] = np.fromiter((d.col for d in self.defects), dtype=np.int64, count=n)
        return out

    def check(self) -> None:
        """Refuse a map whose defects do not lie on its own sensor (what :meth:`from_dict` checks in a file).

        A map read with :meth:`load` or :meth:`from_dict` always passes; a
        map built in code may not, and a defect outside the sensor would
        mark another photosite (negative indices wrap) or fail deep inside
        a writer.  :meth:`mask`, the exports and the plot call this first.

        Raises
        ------
        MapFormatError
            The first defect or dropped photosite outside the sensor, or an
            entry that is not a :class:`Defect` of a known kind.
        """
        self._checked_coordinates()

    def _checked_coordinates(self) -> np.ndarray:
        """:meth:`coordinates`, after the checks of :meth:`check` (one pass over the defects for both).

        Kept from the last call while the defects, the dropped photosites
        and the sensor are the same: repairing a folder asks for the mask of
        one map once per photo, and building it from 10^4 defects took 11 ms
        of a 24 MP repair's 130.  The lists are compared element by element
        (identical elements at C speed), so an entry replaced in place is
        seen.
        """
        seen = getattr(self, "_coords_seen", None)
        if seen is not None and seen[0] == self.sensor and seen[1] == self.defects and seen[2] == self.dropped:
            return seen[3]
        coords = self._check_coordinates()
        coords.flags.writeable = False  # shared between calls
        self._coords_seen = (self.sensor, list(self.defects), list(self.dropped), coords)
        return coords

    def _check_coordinates(self) -> np.ndarray:
        H, W = self.sensor.height, self.sensor.width
        for d in self.defects:
            if not isinstance(d, Defect) or not isinstance(d.kind, DefectKind):
                raise MapFormatError(
                    f"{self.camera.label or 'map'}: {_short(repr(d), 80)} is not a defect of a known kind"
                )
        coords = c = self.coordinates()
        if self.dropped:
            c = np.concatenate([c, np.array(self.dropped, dtype=np.int64).reshape(-1, 2)])
        if len(c):
            bad = (c[:, 0] < 0) | (c[:, 0] >= H) | (c[:, 1] < 0) | (c[:, 1] >= W)
            if bad.any():
                r, col = c[int(np.argmax(bad))].tolist()
                raise MapFormatError(
                    f"{self.camera.label or 'map'}: row {r}, col {col} lies outside the {H}x{W} sensor "
                    "of the map; correct it or make the map again with `rawmap map`"
                )
        return coords

    def check_photo(self, photo: Frame, *, force: bool | None = None) -> bool:
        """Refuse a photo this map cannot apply to (repair, the plot's crops): the one "does it fit" check.

        In this order: the kind of file (RAW or developed image), the
        visible area's size, the colour pattern (RAW maps that record one),
        then the body.

        Parameters
        ----------
        photo : Frame
            The photo, as :func:`rawmap.reader.read_frame` returns it.
        force : bool or None, optional
            What to do with a photo of another body: ``None`` refuse it (the
            caller has no way to force it), ``False`` refuse it and say that
            ``--force`` would take it, ``True`` accept it (the size and
            pattern must still fit).

        Returns
        -------
        bool
            True when ``force`` let a photo of another body through.

        Raises
        ------
        rawmap.errors.MapMismatchError
            What differs, naming the photo.
        """
        sensor = self.sensor
        want = "raw" if photo.source is SourceKind.RAW else "image"
        if sensor.source != want:
            made = "RAW files" if sensor.source == "raw" else "developed images (JPEG/TIFF)"
            what = f"a {photo.format} file" if photo.format else "a RAW file" if want == "raw" else "a developed image"
            raise MapMismatchError(
                photo.path,
                f"the defect map was made from {made}, this photo is {what}",
                "use a map made from the same kind of file: RAW maps for RAW files, image maps for JPEGs",
            )
        if (sensor.height, sensor.width) != photo.shape:
            raise MapMismatchError(
                photo.path,
                f"the photo's {'visible area' if want == 'raw' else 'image'} is {photo.shape[0]}x{photo.shape[1]}, "
                f"the defect map's {sensor.height}x{sensor.width}",
                "a map only fits photos of its own sensor size (cropped or resized photos do not fit)",
            )
        if want == "raw" and sensor.cfa and sensor.cfa != photo.cfa_string:
            raise MapMismatchError(
                photo.path,
                f"the photo's colour pattern is {photo.cfa_string}, the defect map's {sensor.cfa}",
                "the map's coordinates would land on other photosites; use the map of this camera",
            )
        if self.camera != photo.camera:
            if not force:
                raise MapMismatchError(
                    photo.path,
                    f"taken by {photo.camera.label or 'an unknown camera'}, the defect map is of "
                    f"{self.camera.label or 'an unknown camera'}",
                    "every body has its own defects; use that body's map"
                    + (", or add --force if you know they are the same body" if force is False else ""),
                )
            return True
        return False

    def mask(self) -> np.ndarray:
        """(H, W) ndarray of bool over the visible area, True at defects.

        Raises
        ------
        MapFormatError
            A defect lies outside the sensor (see :meth:`check`).
        """
        c = self._checked_coordinates()
        m = np.zeros((self.sensor.height, self.sensor.width), dtype=bool)
        if len(c):
            m[c[:, 0], c[:, 1]] = True
        return m

    # --- edits by hand ----------------------------------------------------
    def _check_inside(self, row: int, col: int, what: str) -> None:
        H, W = self.sensor.height, self.sensor.width
        if not (0 <= row < H and 0 <= col < W):
            raise MapEditError(
                f"cannot {what} row {row}, col {col}: outside the {H}x{W} sensor of this map "
                f"(rows 0-{H - 1}, cols 0-{W - 1}, visible-area coordinates)"
            )

    def channel_at(self, row: int, col: int) -> str:
        """Colour letter of a photosite from ``sensor.cfa`` ("" for image maps or an unknown pattern)."""
        cfa = self.sensor.cfa
        return cfa[(row & 1) * 2 + (col & 1)] if len(cfa) == 4 else ""

    def edited(
        self,
        *,
        add: Iterable[tuple[int, int, DefectKind | None]] = (),
        drop: Iterable[tuple[int, int]] = (),
    ) -> DefectMap:
        """A copy of the map with photosites added and dropped by hand.

        Parameters
        ----------
        add : iterable of (row, col, kind or None)
            Photosites to mark defective.  One already in the map keeps its
            record, becomes ``manual`` and takes ``kind`` when one is given;
            a new one gets ``kind`` (``hot`` when None), score 0, no
            ``first_seen`` (a dcraw list then repairs it in every photo) and
            the channel of its CFA position.  Either is taken off the
            dropped list.
        drop : iterable of (row, col)
            Photosites to take out of the map.  Each is added to
            :attr:`dropped` (also when the map did not list it), so that
            mapping the body again does not bring it back.

        Returns
        -------
        DefectMap
            The edited copy (this map is not changed).

        Raises
        ------
        MapEditError
            A photosite outside the sensor, or one both added and dropped.
        """
        add = [(int(r), int(c), None if k is None else DefectKind(k)) for r, c, k in add]
        drop = [(int(r), int(c)) for r, c in drop]
        for r, c, _ in add:
            self._check_inside(r, c, "add")
        for r, c in drop:
            self._check_inside(r, c, "drop")
        both = {(r, c) for r, c, _ in add} & set(drop)
        if both:
            r, c = min(both)
            raise MapEditError(f"row {r}, col {c} is both added and dropped; give it once")
        by_rc = {(d.row, d.col): d for d in self.defects}
        for rc in drop:
            by_rc.pop(rc, None)
        for r, c, kind in add:
            old = by_rc.get((r, c))
            if old is None:
                by_rc[(r, c)] = Defect(r, c, kind or DefectKind.HOT, 0.0, self.channel_at(r, c), manual=True)
            else:
                by_rc[(r, c)] = replace(old, kind=kind or old.kind, manual=True)
        added = {(r, c) for r, c, _ in add}
        dropped = [rc for rc in self.dropped if rc not in added] + drop
        return replace(self, defects=list(by_rc.values()), dropped=dropped, thresholds=dict(self.thresholds))

    # --- file format -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:

        out: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": self.created.isoformat(),
            "software": f"rawmap {__version__}",
            "camera": self.camera.to_dict(),
            "sensor": self.sensor.to_dict(),
            "frames": self.frames.to_dict(),
            "thresholds": self.thresholds,
            "defects": [d.to_dict() for d in self.defects],
        }
        if self.dropped:
            out["dropped"] = [{"row": r, "col": c} for r, c in self.dropped]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "map") -> DefectMap:
        """A map from its parsed file, every entry validated before use.

        What is accepted is listed in the module's docstring: among others,
        every defect and dropped photosite must lie on the map's own sensor
        (``0 <= row < height``, ``0 <= col < width``, integers), be of a
        known kind and appear once.

        Parameters
        ----------
        d : dict
            The parsed JSON (see :func:`rawmap.safeio.parse_json`).
        source : str, optional
            The file's name, first in every message.

        Returns
        -------
        DefectMap

        Raises
        ------
        MapFormatError
            Not a defect map, a version this rawmap does not read, or a
            damaged entry: one line that names ``source``, the entry (its
            position and, shortened, its text) and what is wrong with it.
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise MapFormatError(f"{source}: not a rawmap defect map (make one with `rawmap map`)")
        version = d.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise MapFormatError(
                f"{source}: defect-map version {version!r} is not supported by this rawmap "
                f"(it reads version {FORMAT_VERSION}; upgrade rawmap)"
            )
        try:
            return cls._checked(d)
        except _Damaged as exc:
            raise MapFormatError(
                f"{source}: damaged defect map ({exc}); correct it or make it again with `rawmap map`"
            ) from None

    @classmethod
    def _checked(cls, d: dict[str, Any]) -> DefectMap:
        camera_d = _get(d, "camera", "the map", _MISSING)
        for key in ("make", "model", "serial", "serial_source"):
            _str(camera_d, key, "camera", default="")
        camera = CameraId.from_dict(camera_d)
        sensor_d, frames_d = _get(d, "sensor", "the map", _MISSING), _get(d, "frames", "the map", {})
        _check_sensor(sensor_d)
        _check_frames(frames_d)
        sensor, frames = SensorGeometry.from_dict(sensor_d), FrameStats.from_dict(frames_d)
        thresholds = _get(d, "thresholds", "the map", {})
        if not isinstance(thresholds, dict):
            raise _Damaged(f"thresholds {_show(thresholds)} is not an object")
        created = _time(d, "created", "the map") or _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        H, W = sensor.height, sensor.width

        def place(x: Any, where: _Entry) -> tuple[int, int]:
            row, col = _int(x, "row", where, lo=-(1 << 62)), _int(x, "col", where, lo=-(1 << 62))
            if not (0 <= row < H and 0 <= col < W):
                raise _Damaged(
                    f"{where}: row {_show(row)}, col {_show(col)} lies outside the {H}x{W} sensor "
                    f"(rows 0-{H - 1}, cols 0-{W - 1})"
                )
            return row, col

        defects: list[Defect] = []
        seen: set[tuple[int, int]] = set()
        for i, x in enumerate(_list(d, "defects", "defects")):
            # the common case checked inline (a million defects read in seconds); anything
            # unusual goes through the field checkers, which say what is wrong
            defect = _plain_defect(x, H, W)
            if defect is None:
                where = _Entry("defect", i, x)
                place(x, where)
                defect = Defect._checked(x, where)
            rc = (defect.row, defect.col)
            if rc in seen:
                raise _Damaged(
                    f"{_Entry('defect', i, x)}: a second entry for row {rc[0]}, col {rc[1]}, give one per photosite"
                )
            seen.add(rc)
            defects.append(defect)
        dropped = [place(x, _Entry("dropped", i, x)) for i, x in enumerate(_list(d, "dropped", "dropped photosites"))]
        return cls(
            camera=camera,
            sensor=sensor,
            frames=frames,
            defects=defects,
            thresholds=dict(thresholds),
            created=created,
            dropped=dropped,
        )

    @classmethod
    def load(cls, path: str | Path) -> DefectMap:
        """Read a map file written by :meth:`save` (or by hand), within the bounds of the module's docstring.

        At most :data:`MAX_MAP_BYTES` are read, a file of more than 16 values
        per defect of :data:`MAX_DEFECTS` is refused unparsed, and at most
        about twice :data:`MAX_DEFECTS` JSON objects are parsed, so that a
        huge or hostile file is refused before it takes much memory (about
        1 GB at worst); then :meth:`from_dict` validates every entry.

        Raises
        ------
        MapFormatError
            Missing, unreadable, too large, not strict JSON, not a map, or a
            damaged entry (one line naming ``path`` and the entry).
        """
        path = Path(path)
        try:
            with open(path, "rb") as fh:  # the size first (a regular file), then at most the bound (any file)
                too_large = os.fstat(fh.fileno()).st_size > MAX_MAP_BYTES
                data = b"" if too_large else fh.read(MAX_MAP_BYTES + 1)
        except FileNotFoundError:
            raise MapFormatError(f"{path}: no such map file") from None
        except OSError as exc:
            raise MapFormatError(f"{path}: cannot read map ({exc.strerror})") from None
        if too_large or len(data) > MAX_MAP_BYTES:
            raise MapFormatError(
                f"{path}: larger than {MAX_MAP_BYTES // (1 << 20)} MiB, more than a defect map of "
                f"{MAX_DEFECTS:,} defects (the most rawmap reads); is this a rawmap map?"
            )
        # every JSON value but the last is followed by a comma: a cheap bound on what parsing would build
        if data.count(b",") > _MAX_VALUES:
            raise MapFormatError(
                f"{path}: more than {_MAX_VALUES:,} values, more than a defect map of {MAX_DEFECTS:,} defects "
                "(the most rawmap reads) holds; is this a rawmap map?"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MapFormatError(f"{path}: not a rawmap defect map (not JSON: a binary file)") from None
        del data  # parse the text alone: half the memory
        parsed = parse_json(text, source=str(path), max_objects=2 * MAX_DEFECTS + 1000)
        return cls.from_dict(parsed, source=str(path))

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the map as JSON, atomically; never replaces a file unless ``overwrite``."""
        return atomic_write_text(path, self.to_json(), overwrite=overwrite)


def merge_defects(*lists: Iterable[Defect]) -> list[Defect]:
    """One entry per photosite: where lists overlap keep the highest score."""
    best: dict[tuple[int, int], Defect] = {}
    for lst in lists:
        for d in lst:
            k = (d.row, d.col)
            if k not in best or d.score > best[k].score:
                best[k] = d
    return sorted(best.values(), key=lambda d: (d.row, d.col))


def carry_edits(new: DefectMap, previous: DefectMap) -> DefectMap:
    """``new`` (a map made again from photos) with the edits by hand of ``previous`` applied.

    The previous map's photosites dropped by hand are left out of ``new``
    and stay on its dropped list; its manual defects replace what ``new``
    has at their photosites (a manual defect detected again keeps the
    detection's score, ``first_seen`` and value, but the kind given by
    hand).  Maps of another sensor size carry nothing.

    Returns
    -------
    DefectMap
        ``new`` itself when ``previous`` has no edits.
    """
    if (new.sensor.height, new.sensor.width) != (previous.sensor.height, previous.sensor.width):
        return new
    manual = {(d.row, d.col): d for d in previous.defects if d.manual}
    dropped = set(previous.dropped) | set(new.dropped)
    if not manual and not dropped:
        return new
    by_rc = {(d.row, d.col): d for d in new.defects if (d.row, d.col) not in dropped}
    for rc, m in manual.items():
        now = by_rc.get(rc)
        by_rc[rc] = m if now is None else replace(now, kind=m.kind, manual=True)
    return replace(new, defects=list(by_rc.values()), dropped=sorted(dropped - set(manual)))
