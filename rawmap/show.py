"""Look at a defect map: a PNG picture of the sensor.

:func:`plot_map` draws the whole sensor with every defect marked by kind,
and below it enlarged crops of the strongest defects, either of the map
itself or of a real photo from the same body; :func:`plot_layout` says where
it puts things.  Drawing uses Pillow only.  The text summary of a map
(:func:`rawmap.report.summarize`, :func:`rawmap.report.format_summary`)
lives in :mod:`rawmap.report`, the grouping of line defects into segments
(:func:`rawmap.defectmap.column_segments`) in :mod:`rawmap.defectmap`; the
picture's header uses the report's short forms.

Examples
--------
>>> dmap = DefectMap.load("d750.json")                      # doctest: +SKIP
>>> plot_map(dmap, "d750.png", photo=read_frame("DSC_0001.NEF"))   # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .defectmap import Defect, DefectKind, DefectMap, column_segments
from .errors import OutputExistsError
from .fileio import atomic_write_bytes
from .frame import Frame, cfa_pattern
from .kinds import KINDS, Marker
from .report import fmt_exposure, fmt_iso, fmt_range, fmt_time, strongest

__all__ = [
    "KIND_COLOURS",
    "PlotLayout",
    "plot_layout",
    "plot_map",
]

#: mark colour of each defect kind in :func:`plot_map` (RGB; :attr:`rawmap.kinds.KindInfo.colour`)
KIND_COLOURS: dict[DefectKind, tuple[int, int, int]] = {k: info.colour for k, info in KINDS.items()}

# =========================================================================== plot
_BG = (17, 20, 24)
_SENSOR = (30, 34, 41)
_OUTLINE = (130, 138, 150)
_TEXT = (228, 231, 236)
_MUTED = (150, 157, 168)
_GRID = (8, 9, 11)
_EMPTY = (23, 26, 31)

_MARGIN = 40
_PANEL_W = 1200
_PANEL_H = 860
_HEADER_H = 126
_CROP_CELLS = 9
_CROP_ZOOM = 16
_CROP_LABEL_H = 42
_CROP_MIN_GAP = 6

#: colour of each CFA index (R, G, B, G2) used to tint crops
_TINT = np.array([(255, 96, 80), (120, 255, 120), (96, 150, 255), (120, 255, 120)], dtype=np.float64)
#: faint CFA colours of an empty map neighbourhood
_DIM = [(58, 34, 34), (34, 54, 36), (34, 40, 66), (34, 54, 36)]


@cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    names = (
        ("DejaVuSans-Bold.ttf", "Arial Bold.ttf", "arialbd.ttf")
        if bold
        else ("DejaVuSans.ttf", "Arial.ttf", "arial.ttf")
    )
    for name in names:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


@dataclass(frozen=True)
class PlotLayout:
    """Where :func:`plot_map` puts things, in image pixels.

    Attributes
    ----------
    width, height : int
        Size of the PNG.
    sensor_box : tuple of int
        (left, top, right, bottom) of the drawn sensor, right/bottom exclusive.
    scale : float
        Image pixels per photosite in the sensor view.
    crops_top : int
        Top of the strip of crops (``height`` when there are none).
    crop_count, crops_per_row : int
        Number of crops and how many fit in a row.
    crop_size : int
        Side of one crop in pixels (``9 x 16``).
    """

    width: int
    height: int
    sensor_box: tuple[int, int, int, int]
    scale: float
    crops_top: int
    crop_count: int
    crops_per_row: int
    crop_size: int = _CROP_CELLS * _CROP_ZOOM

    def to_pixel(self, row: float, col: float) -> tuple[int, int]:
        """Image (x, y) of the centre of photosite (row, col) in the sensor view."""
        x0, y0 = self.sensor_box[:2]
        return int(x0 + (col + 0.5) * self.scale), int(y0 + (row + 0.5) * self.scale)

    def crop_origin(self, i: int) -> tuple[int, int]:
        """Top-left (x, y) of crop ``i``."""
        per = max(self.crops_per_row, 1)
        r, c = divmod(i, per)
        avail = self.width - 2 * _MARGIN
        n_here = min(per, self.crop_count - r * per)
        gap = _crop_gap(avail, n_here if r == 0 else per, self.crop_size)
        return _MARGIN + c * (self.crop_size + gap), self.crops_top + 34 + r * (self.crop_size + _CROP_LABEL_H + 14)


def _crop_gap(avail: int, n: int, size: int) -> int:
    if n <= 1:
        return 0
    return int(min(24, max(_CROP_MIN_GAP, (avail - n * size) // (n - 1))))


def plot_layout(defect_map: DefectMap, *, crops: int = 8) -> PlotLayout:
    """The geometry of :func:`plot_map`'s picture for ``defect_map``.

    The sensor is scaled to fit a 1200 x 860 pixel panel (up for small
    sensors, down for real ones), keeping its aspect ratio.

    Parameters
    ----------
    defect_map : DefectMap
    crops : int, optional
        Crops requested (fewer are drawn when the map has fewer defects).

    Returns
    -------
    PlotLayout
    """
    if crops < 0:
        raise ValueError(f"crops must be >= 0, got {crops}")
    H, W = defect_map.sensor.height, defect_map.sensor.width
    if H <= 0 or W <= 0:
        raise ValueError(f"the map's sensor size {H}x{W} is not valid")
    scale = min(_PANEL_W / W, _PANEL_H / H)
    sw, sh = max(1, round(W * scale)), max(1, round(H * scale))
    width = _PANEL_W + 2 * _MARGIN
    x0 = _MARGIN + (_PANEL_W - sw) // 2
    y0 = _HEADER_H
    box = (x0, y0, x0 + sw, y0 + sh)
    below = y0 + sh + 34  # room for the sensor caption
    n = len(_pick_crops(defect_map.defects, crops))
    size = _CROP_CELLS * _CROP_ZOOM
    per_row = max(1, min(n, (_PANEL_W + _CROP_MIN_GAP) // (size + _CROP_MIN_GAP))) if n else 0
    if n:
        rows = math.ceil(n / per_row)
        height = below + 34 + rows * (size + _CROP_LABEL_H + 14) + _MARGIN // 2
    else:
        height = below + _MARGIN // 2
    return PlotLayout(width, int(height), box, scale, below, n, per_row, size)


def _pick_crops(defects: list[Defect], n: int) -> list[Defect]:
    """The ``n`` strongest defects, at most one per column segment and none inside another's crop."""
    if n <= 0 or not defects:
        return []
    seg_of: dict[tuple[int, int], int] = {}
    for i, seg in enumerate(column_segments(defects)):
        for cell in seg.cells():
            seg_of[cell] = i
    chosen: list[Defect] = []
    segs: set[int] = set()
    half = _CROP_CELLS // 2
    for d in strongest(defects, len(defects)):
        s = seg_of.get((d.row, d.col))
        if s is not None and s in segs:
            continue
        if any(abs(d.row - c.row) <= half and abs(d.col - c.col) <= half for c in chosen):
            continue
        chosen.append(d)
        if s is not None:
            segs.add(s)
        if len(chosen) == n:
            break
    return chosen


def _draw_mark(draw: ImageDraw.ImageDraw, kind: DefectKind, x: int, y: int, r: int) -> None:
    """The kind's mark (:attr:`rawmap.kinds.KindInfo.marker`): its centre pixel has the kind's colour,
    with a dark rim so it shows on any background."""
    info = KINDS[kind]
    col, marker = info.colour, info.marker
    if marker is Marker.DISC:
        draw.ellipse((x - r - 1, y - r - 1, x + r + 1, y + r + 1), fill=_GRID)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=col)
    elif marker is Marker.RING:
        w = max(2, r // 2)
        draw.ellipse((x - r - 1, y - r - 1, x + r + 1, y + r + 1), outline=_GRID, width=w + 2)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=col, width=w)
        d = max(1, r // 4)
        draw.ellipse((x - d, y - d, x + d, y + d), fill=col)
    elif marker is Marker.SQUARE:
        draw.rectangle((x - r, y - r, x + r, y + r), fill=col, outline=_GRID)
    elif marker is Marker.DIAMOND:
        pts = [(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)]
        draw.polygon(pts, fill=col, outline=_GRID)
    elif marker is Marker.CROSS:
        w = max(2, r // 2)
        draw.line((x - r, y - r, x + r, y + r), fill=_GRID, width=w + 2)
        draw.line((x - r, y + r, x + r, y - r), fill=_GRID, width=w + 2)
        draw.line((x - r, y - r, x + r, y + r), fill=col, width=w)
        draw.line((x - r, y + r, x + r, y - r), fill=col, width=w)
    elif marker is Marker.PLUS:
        w = max(2, r // 2)
        draw.rectangle((x - r - 1, y - w // 2 - 1, x + r + 1, y + w - w // 2), fill=_GRID)
        draw.rectangle((x - w // 2 - 1, y - r - 1, x + w - w // 2, y + r + 1), fill=_GRID)
        draw.rectangle((x - r, y - w // 2, x + r, y + w - w // 2 - 1), fill=col)
        draw.rectangle((x - w // 2, y - r, x + w - w // 2 - 1, y + r), fill=col)
    else:  # Marker.CELL: a lone photosite of a line kind
        draw.rectangle((x - r + 1, y - r + 1, x + r - 1, y + r - 1), fill=col, outline=_GRID)


def _crop_pixels(dm: DefectMap, photo: Frame | None, r0: int, c0: int) -> np.ndarray:
    """(9, 9, 3) uint8 colours of the photosites around (r0, c0); out-of-sensor cells get the empty colour."""
    H, W = dm.sensor.height, dm.sensor.width
    half = _CROP_CELLS // 2
    rows = np.arange(r0 - half, r0 + half + 1)
    cols = np.arange(c0 - half, c0 + half + 1)
    inside = ((rows >= 0) & (rows < H))[:, None] & ((cols >= 0) & (cols < W))[None, :]
    rr = np.clip(rows, 0, H - 1)[:, None]
    cc = np.clip(cols, 0, W - 1)[None, :]
    out = np.empty((_CROP_CELLS, _CROP_CELLS, 3), dtype=np.float64)
    cfa = _cfa_indices(dm, photo)
    if photo is None:
        if cfa is None:
            out[:] = (44, 46, 52)
        else:
            idx = cfa[rr & 1, cc & 1]
            out[:] = np.array(_DIM, dtype=np.float64)[idx]
    elif photo.mosaic.ndim == 3:
        m = photo.mosaic[rr, cc].astype(np.float64)
        if m.shape[-1] == 1:
            m = np.repeat(m, 3, axis=-1)
        out[:] = m[..., :3] * (255.0 / max(float(photo.white), 1.0))
    else:
        v = photo.mosaic[rr, cc].astype(np.float64)
        if cfa is not None:
            v = v - np.asarray(photo.black, dtype=np.float64)[cfa[rr & 1, cc & 1]]
        idx = cfa[rr & 1, cc & 1] if cfa is not None else np.zeros(v.shape, np.int64)
        v = np.maximum(v, 0.0)
        t = np.zeros(v.shape)
        colour = np.where(idx == 3, 1, idx)  # both greens together
        for k in np.unique(colour):
            # each colour from black to its brightest photosite in the crop (a white balance of sorts)
            own = colour == k
            hi = float(v[own & inside].max()) if (own & inside).any() else 0.0
            t[own] = v[own] / max(hi, 1.0)
        tint = _TINT[idx] if cfa is not None else np.full(v.shape + (3,), 255.0)
        out[:] = (0.08 + 0.92 * t[..., None] ** (1 / 2.2)) * tint
    out[~inside] = _EMPTY
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _cfa_indices(dm: DefectMap, photo: Frame | None) -> np.ndarray | None:
    if photo is not None and photo.cfa is not None:
        return np.asarray(photo.cfa, dtype=np.int64).reshape(2, 2)
    if len(dm.sensor.cfa) == 4:
        return cfa_pattern(dm.sensor.cfa).astype(np.int64)  # type: ignore[union-attr]
    return None


def _draw_crop(
    img: Image.Image,
    draw: ImageDraw.ImageDraw,
    dm: DefectMap,
    photo: Frame | None,
    d: Defect,
    x0: int,
    y0: int,
    kinds_at: dict[tuple[int, int], DefectKind],
    number: int,
) -> None:
    z = _CROP_ZOOM
    cells = _crop_pixels(dm, photo, d.row, d.col)
    tile = Image.fromarray(cells, "RGB").resize((_CROP_CELLS * z, _CROP_CELLS * z), Image.Resampling.NEAREST)
    img.paste(tile, (x0, y0))
    size = _CROP_CELLS * z
    for i in range(_CROP_CELLS + 1):
        draw.line((x0 + i * z, y0, x0 + i * z, y0 + size), fill=_GRID, width=1)
        draw.line((x0, y0 + i * z, x0 + size, y0 + i * z), fill=_GRID, width=1)
    half = _CROP_CELLS // 2
    for (r, c), kind in kinds_at.items():
        dr, dc = r - d.row + half, c - d.col + half
        if not (0 <= dr < _CROP_CELLS and 0 <= dc < _CROP_CELLS):
            continue
        cx, cy = x0 + dc * z, y0 + dr * z
        if photo is None:
            draw.rectangle((cx + 1, cy + 1, cx + z - 1, cy + z - 1), fill=KIND_COLOURS[kind])
        elif (dr, dc) != (half, half):  # the centre's value stays unobstructed
            draw.rectangle((cx + 1, cy + 1, cx + z - 1, cy + z - 1), outline=_GRID, width=4)
            draw.rectangle((cx + 2, cy + 2, cx + z - 2, cy + z - 2), outline=KIND_COLOURS[kind], width=2)
    cx, cy = x0 + half * z, y0 + half * z
    draw.rectangle((cx - 2, cy - 2, cx + z + 2, cy + z + 2), outline=(255, 255, 255), width=2)
    draw.rectangle((x0 - 1, y0 - 1, x0 + size, y0 + size), outline=_OUTLINE, width=1)
    f1, f2 = _font(12, True), _font(12)
    ch = f" {d.channel}" if d.channel else ""
    draw.text((x0, y0 + size + 5), f"{number}  r{d.row} c{d.col}{ch}", font=f1, fill=_TEXT)
    draw.text((x0, y0 + size + 22), f"{d.kind.value} · score {d.score:.1f}", font=f2, fill=KIND_COLOURS[d.kind])


def plot_map(
    defect_map: DefectMap,
    path: str | os.PathLike[str],
    *,
    photo: Frame | None = None,
    crops: int = 8,
    overwrite: bool = False,
) -> Path:
    """Draw a map as a PNG: the whole sensor with every defect marked, and zoomed crops.

    The top panel shows the visible area (about 1200 pixels wide, sensor
    orientation, row 0 at the top) with one mark per defect, coloured and
    shaped by kind (:data:`rawmap.kinds.KINDS`; hot: disc, stuck: square,
    dead: cross, cold: diamond, noisy: plus) and column/row segments drawn
    as lines; a legend gives the counts.  Below, up to ``crops`` enlarged
    9 x 9 photosite neighbourhoods of the strongest defects (one per
    segment), each labelled with row, column, channel, kind and score.

    Parameters
    ----------
    defect_map : DefectMap
    path : path-like
        PNG file to write (atomically).
    photo : Frame, optional
        A photo of the same body (:func:`rawmap.reader.read_frame`): the
        crops then show its photosite values, normalised per crop to the
        range of the healthy photosites and tinted with their CFA colour,
        defects outlined in their kind's colour.  Without it the crops show
        the map: defects filled with their kind's colour on the faint CFA
        pattern.
    crops : int, optional
        How many crops (0 for none).
    overwrite : bool, optional
        Replace an existing file; otherwise it is refused before drawing.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    rawmap.errors.OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    rawmap.errors.MapMismatchError
        ``photo`` is from another body, of another size, pattern or kind
        (:meth:`rawmap.defectmap.DefectMap.check_photo`).
    rawmap.errors.MapFormatError
        A defect outside the map's sensor (a map built in code; see
        :meth:`rawmap.defectmap.DefectMap.check`).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (choose another output, or add --overwrite to replace it)")
    dm = defect_map
    dm.check()
    if photo is not None:
        dm.check_photo(photo)
    lay = plot_layout(dm, crops=crops)
    img = Image.new("RGB", (lay.width, lay.height), _BG)
    draw = ImageDraw.Draw(img)

    # ---- header: title, what went in, legend
    title = f"{dm.camera.label or 'Unknown camera'}"
    draw.text((_MARGIN, 18), title, font=_font(22, True), fill=_TEXT)
    fr = dm.frames
    facts = [
        f"{'RAW' if dm.sensor.source != 'image' else 'image'} map",
        f"{dm.sensor.height} x {dm.sensor.width} (rows x columns)",
    ]
    facts.append(f"{fr.count} frame{'s' if fr.count != 1 else ''}")
    if fr.first_capture or fr.last_capture:
        facts.append(fmt_range(fmt_time(fr.first_capture)[:10], fmt_time(fr.last_capture)[:10]))
    if fr.exposure_max > 0:
        facts.append(fmt_range(fmt_exposure(fr.exposure_min), fmt_exposure(fr.exposure_max)))
    if fr.iso_max > 0:
        facts.append("ISO " + fmt_range(fmt_iso(fr.iso_min), fmt_iso(fr.iso_max)))
    facts.append(f"{len(dm)} defect{'s' if len(dm) != 1 else ''}")
    draw.text((_MARGIN, 50), "   ·   ".join(facts), font=_font(14), fill=_MUTED)
    counts = dm.counts()
    x = _MARGIN
    lf = _font(14, True)
    for kind in DefectKind:
        n = counts[kind]
        colour = _TEXT if n else _MUTED
        if KINDS[kind].line:
            draw.line((x, 87, x + 14, 87), fill=KIND_COLOURS[kind], width=3)
        else:
            _draw_mark(draw, kind, x + 7, 87, 5)
        label = f"{kind.value} {n}"
        draw.text((x + 22, 79), label, font=lf, fill=colour)
        x += 22 + int(draw.textlength(label, font=lf)) + 26

    # ---- sensor panel
    x0, y0, x1, y1 = lay.sensor_box
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=_SENSOR)
    draw.rectangle((x0 - 2, y0 - 2, x1 + 1, y1 + 1), outline=_OUTLINE, width=1)
    r = int(min(8, max(4, round(lay.scale * 0.6))))
    lw = int(max(3, min(6, round(lay.scale * 0.6))))
    segments = column_segments(dm.defects)
    in_segment: set[tuple[int, int]] = set()
    for seg in segments:
        in_segment.update(seg.cells())
        if seg.axis == "column":
            a, b = lay.to_pixel(seg.start, seg.index), lay.to_pixel(seg.stop, seg.index)
            a, b = (a[0], min(a[1], b[1] - 3)), (b[0], max(b[1], a[1] + 3))
        else:
            a, b = lay.to_pixel(seg.index, seg.start), lay.to_pixel(seg.index, seg.stop)
            a, b = (min(a[0], b[0] - 3), a[1]), (max(b[0], a[0] + 3), b[1])
        draw.line((a, b), fill=_GRID, width=lw + 2)
        draw.line((a, b), fill=KIND_COLOURS[seg.kind], width=lw)
    for d in sorted(dm.defects, key=lambda d: d.score):
        if (d.row, d.col) in in_segment:
            continue
        px, py = lay.to_pixel(d.row, d.col)
        _draw_mark(draw, d.kind, px, py, r)
    chosen = _pick_crops(dm.defects, crops)
    nf = _font(12, True)
    for i, d in enumerate(chosen):
        px, py = lay.to_pixel(d.row, d.col)
        draw.ellipse((px - r - 4, py - r - 4, px + r + 4, py + r + 4), outline=(255, 255, 255), width=1)
        label = str(i + 1)
        tx = (
            px + r + 5
            if px + r + 5 + draw.textlength(label, font=nf) < x1
            else px - r - 5 - draw.textlength(label, font=nf)
        )
        ty = py - r - 12 if py - r - 12 > y0 else py + r
        draw.text((tx, ty), label, font=nf, fill=(255, 255, 255), stroke_width=2, stroke_fill=_BG)
    cap = _font(12)
    # corner labels where the corners are: row 0 at the top, the last row at the bottom
    draw.text((x0, y0 - 18), "row 0, col 0", font=cap, fill=_MUTED)
    draw.text((x0, y1 + 8), f"row {dm.sensor.height - 1}, col 0", font=cap, fill=_MUTED)
    end = f"row {dm.sensor.height - 1}, col {dm.sensor.width - 1}"
    draw.text((x1 - int(draw.textlength(end, font=cap)), y1 + 8), end, font=cap, fill=_MUTED)
    mid = "visible area, sensor orientation"
    draw.text(((x0 + x1 - int(draw.textlength(mid, font=cap))) // 2, y1 + 8), mid, font=cap, fill=_MUTED)

    # ---- crops
    if chosen:
        what = "values of " + Path(photo.path).name if photo is not None else "the map around each"
        draw.text(
            (_MARGIN, lay.crops_top + 6),
            f"Strongest {len(chosen)} — 9 x 9 photosites, {what}",
            font=_font(15, True),
            fill=_TEXT,
        )
        kinds_at = {(d.row, d.col): d.kind for d in dm.defects}
        for i, d in enumerate(chosen):
            cx, cy = lay.crop_origin(i)
            _draw_crop(img, draw, dm, photo, d, cx, cy, kinds_at, i + 1)

    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)
