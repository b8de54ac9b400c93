"""DNG opcode lists: a defect map as a FixBadPixelsList opcode (``rawmap repair --opcodes``).

A DNG opcode list (tags OpcodeList1/2/3, DNG 1.3 and later) is always
big-endian, whatever the byte order of the file: a LONG count of opcodes,
then per opcode its ID, the DNG version it needs (four bytes, e.g.
1.3.0.0), its flags (bit 0: optional, a reader that does not know it may
skip it; bit 1: may be skipped for previews) and the byte count of its
parameters, followed by the parameters.

FixBadPixelsList is opcode 5; its parameters are ``BayerPhase``,
``BadPointCount``, ``BadRectCount`` (LONGs), then each point as (row, col)
and each rectangle as (top, left, bottom, right), LONGs, bottom and right
exclusive (the DNG SDK's ``dng_rect``; its reader checks that the byte
count is ``12 + 8 * points + 16 * rects``).  ``BayerPhase`` is the colour
of the top-left photosite of the image: 0 red, 1 green on a red row, 2
green on a blue row, 3 blue (as the DNG writers of Android's DngCreator
and Magic Lantern's raw2dng use it).

Coordinates are those of the stored raw image, i.e. **full-frame**: the
visible-area position plus the ``ActiveArea`` origin.  Measured with
darktable 4.2 (rawspeed), which honours the opcode: full-frame coordinates
repair the mapped photosites, visible-area ones the wrong photosites;
rectangles are read bottom and right exclusive, as written; photosites in
the rightmost columns of the stored image are left alone (a 172-column
frame: columns 160 and beyond, points and rectangles alike).  RawTherapee
5.9, dcraw and LibRaw ignore OpcodeList1 bad-pixel lists.

:func:`bad_pixel_list` turns a map into points and rectangles;
:func:`fix_bad_pixels_list` encodes them as a one-opcode list for
:func:`rawmap.dng.write_dng` (``opcodes=``); :func:`read_opcode_list`
decodes a list back (tests, and checking a file).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .defectmap import DefectMap, column_segments

__all__ = [
    "FIX_BAD_PIXELS_LIST",
    "BadPixelList",
    "Opcode",
    "bayer_phase",
    "bad_pixel_list",
    "fix_bad_pixels_list",
    "read_opcode_list",
]

#: Opcode ID of FixBadPixelsList (DNG 1.3).
FIX_BAD_PIXELS_LIST = 5
#: DNG version the opcode needs: 1.3.0.0.
_DNG_1_3 = bytes((1, 3, 0, 0))
#: Flags: 0, not optional (a reader that cannot fix bad pixels should say so rather than skip it).
_FLAGS = 0
#: Fewest photosites of one line-kind run written as a rectangle (shorter runs are points).
MIN_RECT = 2


@dataclass(frozen=True)
class BadPixelList:
    """The parameters of one FixBadPixelsList opcode, in the stored image's (full-frame) coordinates.

    Attributes
    ----------
    bayer_phase : int
        Colour of the image's top-left photosite: 0 R, 1 G on a red row,
        2 G on a blue row, 3 B.
    points : tuple of (int, int)
        (row, col) of single bad photosites.
    rects : tuple of (int, int, int, int)
        (top, left, bottom, right) of bad rectangles, bottom and right
        exclusive: one column (or row) wide, one per run of a column segment.
    """

    bayer_phase: int
    points: tuple[tuple[int, int], ...]
    rects: tuple[tuple[int, int, int, int], ...]

    @property
    def photosites(self) -> int:
        """Photosites listed: points plus the area of every rectangle."""
        return len(self.points) + sum((b - t) * (r - left) for t, left, b, r in self.rects)


@dataclass(frozen=True)
class Opcode:
    """One opcode of a decoded list (:func:`read_opcode_list`).

    Attributes
    ----------
    id : int
    version : tuple of 4 int
        DNG version it needs.
    flags : int
    data : bytes
        Its parameters as stored (big-endian).
    """

    id: int
    version: tuple[int, int, int, int]
    flags: int
    data: bytes

    def bad_pixels(self) -> BadPixelList:
        """The parameters of a FixBadPixelsList opcode.

        Raises
        ------
        ValueError
            Not opcode 5, or its byte count does not match its counts.
        """
        if self.id != FIX_BAD_PIXELS_LIST:
            raise ValueError(f"opcode {self.id} is not FixBadPixelsList ({FIX_BAD_PIXELS_LIST})")
        if len(self.data) < 12:
            raise ValueError(f"FixBadPixelsList needs at least 12 bytes, has {len(self.data)}")
        phase, n_points, n_rects = struct.unpack_from(">3I", self.data)
        if len(self.data) != 12 + 8 * n_points + 16 * n_rects:
            raise ValueError(
                f"FixBadPixelsList of {n_points} points and {n_rects} rects should have "
                f"{12 + 8 * n_points + 16 * n_rects} bytes, has {len(self.data)}"
            )
        p = struct.unpack_from(f">{2 * n_points}I", self.data, 12)
        r = struct.unpack_from(f">{4 * n_rects}I", self.data, 12 + 8 * n_points)
        return BadPixelList(
            phase,
            tuple((p[i], p[i + 1]) for i in range(0, len(p), 2)),
            tuple((r[i], r[i + 1], r[i + 2], r[i + 3]) for i in range(0, len(r), 4)),
        )


def bayer_phase(cfa: np.ndarray) -> int:
    """FixBadPixelsList's ``BayerPhase`` of a 2x2 pattern (colour indices 0 R, 1/3 G, 2 B).

    The pattern is that of the image's top-left photosite.

    Examples
    --------
    >>> [bayer_phase(np.array(p)) for p in ([[0, 1], [3, 2]], [[1, 0], [2, 3]], [[1, 2], [0, 3]], [[2, 1], [3, 0]])]
    [0, 1, 2, 3]
    """
    cfa = np.where(np.asarray(cfa) == 3, 1, np.asarray(cfa))
    if cfa.shape != (2, 2) or sorted(cfa.ravel().tolist()) != [0, 1, 1, 2] or cfa[0, 0] == cfa[0, 1]:
        raise ValueError(f"cfa must be a 2x2 Bayer pattern of R (0), G (1 or 3) and B (2), got {cfa.tolist()}")
    top_left, beside = int(cfa[0, 0]), int(cfa[0, 1])
    if top_left == 0:
        return 0
    if top_left == 2:
        return 3
    return 1 if beside == 0 else 2


def bad_pixel_list(defect_map: DefectMap, *, cfa: np.ndarray, origin: tuple[int, int] = (0, 0)) -> BadPixelList:
    """The map's photosites as FixBadPixelsList points and rectangles, in full-frame coordinates.

    Photosites of line kinds (``column``) that follow each other without a
    gap down a column become one rectangle per run (one column wide), those
    left over that follow each other along a row one rectangle per run (one
    row high); runs shorter than :data:`MIN_RECT` and every other defect
    are points.  A rectangle holds mapped photosites only: a segment that
    skips photosites (one colour of a column) is written as points.

    Parameters
    ----------
    defect_map : DefectMap
        A map made from RAW files; coordinates are of its visible area.
    cfa : (2, 2) ndarray of int
        Colour index of each pattern position relative to the **stored
        image's** top-left photosite (0 R, 1/3 G, 2 B).
    origin : (int, int), optional
        (top, left) of the visible area in the stored image (the DNG's
        ``ActiveArea`` origin), added to every coordinate.

    Returns
    -------
    BadPixelList
        Points and rectangles sorted top to bottom, left to right.
    """
    top, left = int(origin[0]), int(origin[1])
    if top < 0 or left < 0:
        raise ValueError(f"origin must be >= 0, got {origin}")
    sites = sorted({(d.row, d.col) for d in defect_map.defects})
    rects: list[tuple[int, int, int, int]] = []
    used: set[tuple[int, int]] = set()
    for seg in column_segments(defect_map.defects, min_length=MIN_RECT, max_gap=1):  # unbroken runs only
        if seg.axis == "column":
            rects.append((seg.start + top, seg.index + left, seg.stop + 1 + top, seg.index + 1 + left))
        else:
            rects.append((seg.index + top, seg.start + left, seg.index + 1 + top, seg.stop + 1 + left))
        used.update(seg.cells())
    points = tuple((r + top, c + left) for r, c in sites if (r, c) not in used)
    return BadPixelList(bayer_phase(cfa), points, tuple(sorted(rects)))


def fix_bad_pixels_list(bad: BadPixelList) -> bytes:
    """A one-opcode DNG opcode list (big-endian) holding ``bad`` as FixBadPixelsList.

    Returns
    -------
    bytes
        For ``rawmap.dng.write_dng(..., opcodes=...)`` (OpcodeList1).

    Examples
    --------
    >>> blob = fix_bad_pixels_list(BadPixelList(0, ((10, 20),), ((4, 6, 9, 7),)))
    >>> len(blob), read_opcode_list(blob)[0].bad_pixels().rects
    (56, ((4, 6, 9, 7),))
    """
    if bad.bayer_phase not in (0, 1, 2, 3):
        raise ValueError(f"bayer_phase must be 0..3, got {bad.bayer_phase}")
    values = [v for p in bad.points for v in p] + [v for r in bad.rects for v in r]
    if any(v < 0 or v > 0xFFFFFFFF for v in values):
        raise ValueError("coordinates must fit in 32-bit unsigned LONGs")
    for t, left, b, r in bad.rects:
        if b <= t or r <= left:
            raise ValueError(f"rectangle {(t, left, b, r)} is empty (bottom and right are exclusive)")
    params = struct.pack(">3I", bad.bayer_phase, len(bad.points), len(bad.rects))
    params += struct.pack(f">{len(values)}I", *values)
    head = struct.pack(">I", FIX_BAD_PIXELS_LIST) + _DNG_1_3 + struct.pack(">2I", _FLAGS, len(params))
    return struct.pack(">I", 1) + head + params


def read_opcode_list(blob: bytes | Sequence[int]) -> list[Opcode]:
    """Decode a DNG opcode list (big-endian), as stored in OpcodeList1/2/3.

    Raises
    ------
    ValueError
        The list is truncated or has bytes left over.
    """
    data = bytes(blob)
    if len(data) < 4:
        raise ValueError("an opcode list starts with a 4-byte count")
    (count,) = struct.unpack_from(">I", data)
    at = 4
    out = []
    for i in range(count):
        if at + 16 > len(data):
            raise ValueError(f"opcode {i + 1} of {count}: header truncated")
        op_id = struct.unpack_from(">I", data, at)[0]
        version = (data[at + 4], data[at + 5], data[at + 6], data[at + 7])
        flags, size = struct.unpack_from(">2I", data, at + 8)
        at += 16
        if at + size > len(data):
            raise ValueError(f"opcode {i + 1} of {count}: {size} bytes of parameters, {len(data) - at} left")
        out.append(Opcode(op_id, version, flags, data[at : at + size]))
        at += size
    if at != len(data):
        raise ValueError(f"{len(data) - at} bytes after the last opcode")
    return out
