"""One-view series made from a real RAW file's own mosaic: real optics and scenes, known defects.

:func:`write_oneview_series` takes the visible mosaic of a RAW file that
LibRaw decodes (black removed) as the scene of a timelapse and writes it
as DNG frames with fresh noise, the light falling, or the exposure rising
with it (aperture priority), optionally with planted dark currents. The
series holds no defect but the file's own (frozen into the scene, so they
follow the light) and the planted ones: what a detector flags beyond them
is false.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

from ..dng import write_dng
from ..frame import CameraId
from ..metadata import read_metadata
from .files import _jpeg_bytes

__all__ = ["develop_jpegs", "write_oneview_series"]


def _read_scene(src: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int] | None:
    """A Bayer RAW's visible mosaic as LibRaw decodes it, for a scene.

    Returns
    -------
    (mosaic, bmap, cfa, black, white) or None
        The (H, W) mosaic (float64, black included), the black level at
        each photosite (H, W), the colour index of each position of the
        2 x 2 pattern, the black level per colour index, and the white
        level; None when ``src`` is not a Bayer RAW LibRaw decodes.
    """
    try:
        with rawpy.imread(str(src)) as raw:
            if raw.num_colors < 3 or raw.raw_image_visible.ndim != 2:
                return None
            mosaic = raw.raw_image_visible.astype(np.float64)
            cfa = raw.raw_colors_visible[:2, :2].copy()
            black = np.array(raw.black_level_per_channel, float)
            white = int(raw.white_level)
    except (rawpy.LibRawError, ValueError):
        return None
    bmap = np.empty_like(mosaic)
    for y in range(2):
        for x in range(2):
            bmap[y::2, x::2] = black[cfa[y, x]]
    return mosaic, bmap, cfa, black, white


def _shifted(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``a`` moved by (dy, dx) photosites within each colour plane (bilinear, edges repeated)."""
    out = np.empty_like(a)
    for y in range(2):
        for x in range(2):
            p = a[y::2, x::2]
            h, w = p.shape
            ry, rx = dy / 2.0, dx / 2.0
            iy, ix = int(np.floor(ry)), int(np.floor(rx))
            fy, fx = ry - iy, rx - ix
            r0 = np.clip(np.arange(h) - iy, 0, h - 1)
            r1 = np.clip(np.arange(h) - iy - 1, 0, h - 1)
            c0 = np.clip(np.arange(w) - ix, 0, w - 1)
            c1 = np.clip(np.arange(w) - ix - 1, 0, w - 1)
            out[y::2, x::2] = (
                p[np.ix_(r0, c0)] * (1 - fy) * (1 - fx)
                + p[np.ix_(r1, c0)] * fy * (1 - fx)
                + p[np.ix_(r0, c1)] * (1 - fy) * fx
                + p[np.ix_(r1, c1)] * fy * fx
            )
    return out


def write_oneview_series(
    src: str | Path,
    folder: str | Path,
    n: int,
    *,
    rows: slice | None = None,
    priority: bool = False,
    hot: int = 0,
    drift: float = 0.0,
    stuck: int = 0,
) -> tuple[np.ndarray, dict] | None:
    """Write ``n`` DNG frames ``tl_00.dng`` ... of one view whose scene is ``src``'s own mosaic.

    Each frame gets fresh shot and read noise (0.5 DN per electron, 2 DN
    read noise) at ISO 100. By default the light falls 4 stops over the
    series at a fixed exposure of 1/100 s; with ``priority`` it falls 6
    stops and the exposure rises 6 stops with it (1/100 s to 0.64 s), so
    the picture keeps its brightness.

    Parameters
    ----------
    src : str or Path
        A RAW file LibRaw decodes.
    folder : str or Path
        An existing folder.
    n : int
        Frames, at least 2.
    rows : slice, optional
        Rows of the visible mosaic to keep (start on an even row to keep
        the pattern's phase); all by default.
    priority : bool, optional
        Aperture priority (above).
    hot : int, optional
        Photosites (seeded, 8 or more from the edges, 5 apart) given a dark
        current of 50-3000 DN/s at ISO 100, growing with the exposure.
    drift : float, optional
        Photosites the scene moves down (and half that across) over the
        series, as a tripod settling does.
    stuck : int, optional
        Photosites (seeded, 8 or more from the edges, 5 apart from each
        other and from the hot ones; fewer where they do not fit) stuck at
        a level of 30-100 % of the range above black in every frame,
        without noise.

    Returns
    -------
    (mosaic, planted) or None
        The (H, W) mosaic as read (float64, black included) and the planted
        dark currents ``{(row, col): (DN/s at ISO 100, visible)}``, visible
        when the excess in the longest frame is at least 6 sigmas of the
        noise there (stuck photosites: ``(nan, True)``); None when ``src``
        is not a Bayer RAW LibRaw decodes.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    folder = Path(folder)
    scene = _read_scene(src)
    if scene is None:
        return None
    mosaic, bmap, cfa, black, white = scene
    if rows is not None:
        mosaic, bmap = mosaic[rows], bmap[rows]
    signal = np.clip(mosaic - bmap, 0, None)
    rng = np.random.default_rng(5)
    H, W = mosaic.shape
    planted: dict = {}
    for _ in range(hot):
        r, c = int(rng.integers(8, H - 8)), int(rng.integers(8, W - 8))
        if all(abs(r - a) > 4 or abs(c - b) > 4 for a, b in planted):
            rate = float(np.exp(rng.uniform(np.log(50.0), np.log(3000.0))))
            # visible: its excess in the longest frame at least 6 sigmas of the noise there
            planted[(r, c)] = (rate, rate * 0.64 >= 6.0 * np.sqrt(0.5 * signal[r, c] + 4.0))
    levels: dict = {}
    for _ in range(100 * stuck):  # as many as fit, 5 apart
        if len(levels) == stuck:
            break
        r, c = int(rng.integers(8, H - 8)), int(rng.integers(8, W - 8))
        if all(abs(r - a) > 4 or abs(c - b) > 4 for a, b in list(planted) + list(levels)):
            levels[(r, c)] = float(bmap[r, c] + rng.uniform(0.3, 1.0) * (white - bmap[r, c]))
    for i in range(n):
        stops = (6.0 if priority else 4.0) * i / (n - 1)
        exposure = 0.01 * 2.0**stops if priority else 0.01
        s = signal if priority else signal * 2.0**-stops
        if drift:
            s = _shifted(s, drift * i / (n - 1), 0.5 * drift * i / (n - 1))
        s = s.copy()
        for (r, c), (rate, _) in planted.items():
            s[r, c] += rate * exposure
        frame = bmap + s + rng.standard_normal(mosaic.shape) * np.sqrt(0.5 * s + 4.0)
        for (r, c), level in levels.items():
            frame[r, c] = level
        write_dng(
            folder / f"tl_{i:02d}.dng",
            np.clip(np.rint(frame), 0, white).astype(np.uint16),
            cfa=cfa,
            black=black,
            white=white,
            camera=CameraId("Bench", Path(src).stem, "1"),
            exposure=exposure,
            iso=100,
            time=dt.datetime(2026, 1, 1, 18, i),
        )
    planted.update({k: (float("nan"), True) for k in levels})
    return mosaic, planted


def develop_jpegs(
    dngs: Sequence[str | Path], *, bright: float = 1.0, quality: int = 90, exif: bool = True
) -> list[Path]:
    """Develop each DNG with LibRaw and save it as a JPEG beside it, as a camera shooting JPEG would.

    ``rawpy`` ``postprocess`` (AHD demosaicing, no camera white balance, no
    automatic brightening, ``bright`` times the default brightness, 8 bits),
    saved by Pillow at ``quality``: ``x.dng`` gives ``x.jpg``.  With
    ``exif`` (the default) the JPEG carries the DNG's make, model, body
    serial, capture time, exposure time and ISO, as a camera's own JPEG
    does; without, no EXIF at all (a copy whose metadata was stripped: one
    body by sensor size, no exposure to measure dark current against).

    Returns
    -------
    list of Path
        The JPEGs, in the order of ``dngs``.
    """
    out = []
    for dng in map(Path, dngs):
        with rawpy.imread(str(dng)) as raw:
            rgb = raw.postprocess(use_camera_wb=False, no_auto_bright=True, bright=bright, output_bps=8)
        out.append(dng.with_suffix(".jpg"))
        if not exif:
            Image.fromarray(rgb).save(out[-1], quality=quality)
            continue
        meta = read_metadata(dng)
        camera = CameraId(meta.make, meta.model, meta.serial)
        data = _jpeg_bytes(rgb, camera, meta.exposure or 0.0, meta.iso or 0.0, meta.time, quality)
        out[-1].write_bytes(data)
    return out
