"""A handmade defect map shared by the report and plot tests: seven point defects and two segments."""

from __future__ import annotations

import datetime as dt

from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from rawmap.frame import CameraId

K = DefectKind
CAM = CameraId("NIKON CORPORATION", "NIKON D750", "3001234")
T0 = dt.datetime(2024, 5, 6, 7, 8, 9)
H, W = 64, 96


def channel(r: int, c: int, raw: bool = True) -> str:
    return "RGGB"[2 * (r % 2) + c % 2] if raw else ""


#: (row, col, kind, score) of the point defects of :func:`sample_map`; their channel on RGGB in the comments
POINTS = [
    (8, 10, K.HOT, 41.2),  # R
    (9, 61, K.HOT, 12.0),  # B
    (40, 31, K.HOT, 7.5),  # G
    (21, 80, K.STUCK, 99.0),  # G
    (50, 70, K.DEAD, 30.0),  # R
    (31, 51, K.COLD, 8.25),  # B
    (56, 13, K.NOISY, 6.5),  # G
]


def sample_map(source: str = "raw") -> DefectMap:
    """The points above, a 10-photosite column segment (col 44) and a 5-photosite row segment (row 60)."""
    raw = source == "raw"
    defects = [Defect(r, c, k, s, channel(r, c, raw), T0 + dt.timedelta(days=r)) for r, c, k, s in POINTS]
    defects += [Defect(r, 44, K.COLUMN, 3.0 + (r == 25), channel(r, 44, raw), None, -30.0) for r in range(20, 30)]
    defects += [Defect(60, c, K.COLUMN, 2.0, channel(60, c, raw), None, 15.0) for c in range(80, 85)]
    return DefectMap(
        camera=CAM,
        sensor=SensorGeometry(H, W, 2, 4, H + 4, W + 8, "RGGB" if raw else "", source),
        frames=FrameStats(40, 2, T0, T0 + dt.timedelta(days=30), 1 / 4000, 30.0, 100, 6400),
        defects=defects,
        created=dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC),
    )
