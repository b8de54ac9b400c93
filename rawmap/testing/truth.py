"""The ground truth of a generated series (:class:`SeriesTruth`, ``truth.json``, :func:`load_truth`).

A defect is *visible* in a frame when the difference between the expected
value of the defective photosite and that of a healthy one at the same place
(both clipped to [0, white]) exceeds
:data:`~rawmap.testing.exposure.VISIBILITY_SIGMA` (5) times the healthy
photosite's noise sigma ``sqrt(g**2 * e + rn**2 + 1/12)`` in that frame
(``visible_fraction`` in the truth).  For a noisy photosite the RTS state
drawn for that frame counts.  The truth also records, per defect, the frames
where the difference exceeds :data:`FIND_SIGMA` (6) sigma (the sigma widened
by the written format's quantisation), ``visible_frames``, the distinct
views among them, ``visible_views``, and ``must_find`` (``visible_frames`` >=
20 % of the frames): the rule of the independent series ``indep-8080``.  Its
``class`` is the finer class of
:data:`~rawmap.testing.defects.DEFECT_CLASSES` (warm, cluster, stuck_high,
low_gain, blinking ...).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..defectmap import DefectKind
from ..errors import MapFormatError
from ..fileio import atomic_write_text
from ..frame import CameraId
from .defects import PlantedDefect, defect_class
from .exposure import VISIBILITY_SIGMA
from .plans import FramePlan
from .sensor import SensorSpec

__all__ = [
    "TRUTH_FORMAT",
    "TRUTH_VERSION",
    "FIND_SIGMA",
    "MUST_FIND_SHARE",
    "FrameTruth",
    "SeriesTruth",
    "load_truth",
]

#: The stricter rule of the truth's ``visible_frames`` and ``must_find``
#: (that of the independent series ``indep-8080``).
FIND_SIGMA = 6.0
#: A defect must be found when visible (at :data:`FIND_SIGMA`) in at least this share of the frames.
MUST_FIND_SHARE = 0.2
TRUTH_FORMAT = "rawmap-truth"
TRUTH_VERSION = 1


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
        d = {
            "file": self.file,
            "exposure": self.exposure,
            "iso": self.iso,
            "scene": self.scene,
            "time": self.time.isoformat(),
            "burst": self.burst,
            "jpeg": self.jpeg,
            "clean": self.clean,
        }
        if self.temperature is not None:
            d["temperature"] = self.temperature
        if self.dark:
            d["dark"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameTruth:
        t = d.get("temperature")
        return cls(
            str(d["file"]),
            float(d["exposure"]),
            float(d["iso"]),
            str(d.get("scene", "")),
            _dt.datetime.fromisoformat(d["time"]),
            d.get("burst"),
            d.get("jpeg"),
            d.get("clean"),
            None if t is None else float(t),
        )


def _view_keys(frames: Sequence[FrameTruth | FramePlan]) -> list[tuple]:
    """One key per frame: frames with equal keys show the same view (a burst id, all darks, else each its own)."""
    return [
        ("view", f.burst) if f.burst is not None else ("dark",) if f.scene == "dark" else ("frame", i)
        for i, f in enumerate(frames)
    ]


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
        defects = [
            {**d.to_dict(), "class": c, "visible_fraction": round(float(v), 6)}
            for d, c, v in zip(self.defects, self.classes(), self.visible_fraction)
        ]
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
