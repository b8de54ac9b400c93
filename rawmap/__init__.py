"""rawmap: map a camera body's defective photosites from ordinary photos and repair them.

The library never prints and never exits; see :mod:`rawmap.errors` for what it raises.
"""

__version__ = "0.1.0"

from .defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry  # noqa: E402
from .errors import RawmapError  # noqa: E402
from .frame import CameraId, Frame, SourceKind  # noqa: E402

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
