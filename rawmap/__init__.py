"""rawmap: map a camera body's defective photosites from ordinary photos and repair them.

The library never prints and never exits; see :mod:`rawmap.errors` for what it raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .defectmap import Defect, DefectMap, FrameStats, SensorGeometry
    from .errors import RawmapError
    from .frame import CameraId, Frame, SourceKind
    from .kinds import DefectKind

#: Names imported on first use, so that ``import rawmap`` (and the ``rawmap`` command
#: starting up, where a Ctrl-C must not end in a traceback) costs nothing.
_LAZY = {
    "Defect": "defectmap", "DefectKind": "kinds", "DefectMap": "defectmap", "FrameStats": "defectmap",
    "SensorGeometry": "defectmap", "RawmapError": "errors", "CameraId": "frame", "Frame": "frame",
    "SourceKind": "frame",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "CameraId",
    "Defect",
    "DefectKind",
    "DefectMap",
    "Frame",
    "FrameStats",
    "RawmapError",
    "SensorGeometry",
    "SourceKind",
]
