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
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import MapEditError, MapFormatError
from .fileio import atomic_write_text
from .frame import CameraId

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DefectKind",
    "Defect",
    "SensorGeometry",
    "FrameStats",
    "DefectMap",
    "merge_defects",
    "carry_edits",
]

FORMAT_NAME = "rawmap-defect-map"
FORMAT_VERSION = 1


class DefectKind(str, Enum):
    """Kinds of defective photosite."""

    STUCK = "stuck"  #: constant value whatever the light
    DEAD = "dead"  #: no response, sits at black
    HOT = "hot"  #: extra signal growing with exposure time x gain (dark current)
    COLD = "cold"  #: responds with a fraction of normal sensitivity (low gain)
    NOISY = "noisy"  #: abnormal temporal noise / blinking (RTS)
    COLUMN = "column"  #: part of a defective column or row segment


@dataclass(frozen=True)
class Defect:
    """One defective photosite.

    Attributes
    ----------
    row, col : int
        Visible-area coordinates (sensor orientation).
    kind : DefectKind
    score : float
        Strength of the evidence, in robust standard deviations of the
        statistic that flagged it (larger is surer).
    channel : str
        "R", "G" or "B" for RAW maps, "" for image maps.
    first_seen : datetime or None
        Capture time of the earliest frame in which it showed.
    value : float
        Kind-specific figure: DN level (black included, as in the file) for stuck/dead, dark-current slope
        (DN per second at ISO 100) for hot, relative gain for cold, excess
        noise ratio for noisy, mean offset (DN) for column.
    manual : bool
        Added (or confirmed) by hand with ``rawmap edit``: kept whatever
        later detection finds.
    """

    row: int
    col: int
    kind: DefectKind
    score: float
    channel: str = ""
    first_seen: _dt.datetime | None = None
    value: float = float("nan")
    manual: bool = False

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
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Defect":
        fs = d.get("first_seen")
        return cls(
            row=int(d["row"]),
            col=int(d["col"]),
            kind=DefectKind(d["kind"]),
            score=float(d.get("score", 0.0)),
            channel=str(d.get("channel", "")),
            first_seen=_dt.datetime.fromisoformat(fs) if fs else None,
            value=float(d.get("value", float("nan"))),
            manual=d.get("manual") is True,
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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SensorGeometry":
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            top_margin=int(d.get("top_margin", 0)),
            left_margin=int(d.get("left_margin", 0)),
            full_height=int(d.get("full_height", 0)),
            full_width=int(d.get("full_width", 0)),
            cfa=str(d.get("cfa", "")),
            source=str(d.get("source", "raw")),
        )


def _iso(t: _dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def _from_iso(s: str | None) -> _dt.datetime | None:
    return _dt.datetime.fromisoformat(s) if s else None


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
    #: the views; None in maps written before they were counted
    views: int | None = None
    darks: int | None = None
    flats: int | None = None

    def to_dict(self) -> dict[str, Any]:
        evidence = {k: getattr(self, k) for k in ("views", "darks", "flats") if getattr(self, k) is not None}
        return evidence | {
            "count": self.count,
            "skipped": self.skipped,
            "first_capture": _iso(self.first_capture),
            "last_capture": _iso(self.last_capture),
            "exposure_min": self.exposure_min,
            "exposure_max": self.exposure_max,
            "iso_min": self.iso_min,
            "iso_max": self.iso_max,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrameStats":
        return cls(
            count=int(d.get("count", 0)),
            skipped=int(d.get("skipped", 0)),
            first_capture=_from_iso(d.get("first_capture")),
            last_capture=_from_iso(d.get("last_capture")),
            exposure_min=float(d.get("exposure_min", 0.0)),
            exposure_max=float(d.get("exposure_max", 0.0)),
            iso_min=float(d.get("iso_min", 0.0)),
            iso_max=float(d.get("iso_max", 0.0)),
            **{k: int(d[k]) for k in ("views", "darks", "flats") if d.get(k) is not None},
        )


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
    created: _dt.datetime = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    )
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
        if not self.defects:
            return np.zeros((0, 2), dtype=np.int64)
        return np.array([(d.row, d.col) for d in self.defects], dtype=np.int64)

    def mask(self) -> np.ndarray:
        """(H, W) ndarray of bool over the visible area, True at defects."""
        m = np.zeros((self.sensor.height, self.sensor.width), dtype=bool)
        c = self.coordinates()
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
    ) -> "DefectMap":
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
        from . import __version__

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
    def from_dict(cls, d: dict[str, Any], *, source: str = "map") -> "DefectMap":
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise MapFormatError(f"{source}: not a rawmap defect map (make one with `rawmap map`)")
        version = d.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise MapFormatError(
                f"{source}: defect-map version {version!r} is not supported by this rawmap "
                f"(it reads version {FORMAT_VERSION}; upgrade rawmap)"
            )
        try:
            return cls(
                camera=CameraId.from_dict(d["camera"]),
                sensor=SensorGeometry.from_dict(d["sensor"]),
                frames=FrameStats.from_dict(d.get("frames", {})),
                defects=[Defect.from_dict(x) for x in d.get("defects", [])],
                thresholds=dict(d.get("thresholds", {})),
                created=_dt.datetime.fromisoformat(d["created"]) if d.get("created") else _dt.datetime.now(_dt.timezone.utc),
                dropped=[(int(x["row"]), int(x["col"])) for x in d.get("dropped", [])],
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise MapFormatError(f"{source}: damaged defect map ({exc}); make it again with `rawmap map`") from exc

    @classmethod
    def load(cls, path: str | Path) -> "DefectMap":
        """Read a map file written by :meth:`save`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MapFormatError(f"{path}: no such map file") from None
        except OSError as exc:
            raise MapFormatError(f"{path}: cannot read map ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise MapFormatError(f"{path}: not a rawmap defect map (not JSON: a binary file); give the .json map `rawmap map` wrote") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MapFormatError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); is this a rawmap map?") from None
        return cls.from_dict(data, source=str(path))

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
