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
        ...
      ]
    }

``row``/``col`` are visible-area coordinates, as rawpy's ``raw_image_visible``
(row 0 = top row of the visible area in sensor orientation); there is exactly
one entry per defective photosite.  Readers must refuse an unknown major
``version``; unknown keys are ignored.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import MapFormatError
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
    """

    row: int
    col: int
    kind: DefectKind
    score: float
    channel: str = ""
    first_seen: _dt.datetime | None = None
    value: float = float("nan")

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

    def to_dict(self) -> dict[str, Any]:
        return {
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
    """

    camera: CameraId
    sensor: SensorGeometry
    frames: FrameStats
    defects: list[Defect] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    created: _dt.datetime = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    )

    def __post_init__(self) -> None:
        self.defects = sorted(self.defects, key=lambda d: (d.row, d.col))

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

    # --- file format -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {
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
