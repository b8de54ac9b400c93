"""DNG opcode lists: the exact bytes of FixBadPixelsList, and a map turned into points and rectangles."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from sample_map import sample_map

from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from rawmap.frame import CameraId
from rawmap.opcodes import BadPixelList, bad_pixel_list, bayer_phase, fix_bad_pixels_list, read_opcode_list

RGGB = np.array([[0, 1], [3, 2]])


def test_fix_bad_pixels_list_bytes_are_big_endian_and_exact():
    blob = fix_bad_pixels_list(BadPixelList(2, ((10, 20), (300, 70000)), ((4, 6, 9, 7),)))
    want = struct.pack(">I", 1)  # one opcode
    want += struct.pack(">I", 5) + bytes((1, 3, 0, 0)) + struct.pack(">II", 0, 12 + 2 * 8 + 16)
    want += struct.pack(">III", 2, 2, 1)  # BayerPhase, BadPointCount, BadRectCount
    want += struct.pack(">4I", 10, 20, 300, 70000)  # points (row, col)
    want += struct.pack(">4I", 4, 6, 9, 7)  # rect (top, left, bottom, right)
    assert blob == want
    (op,) = read_opcode_list(blob)
    assert (op.id, op.version, op.flags) == (5, (1, 3, 0, 0), 0)
    assert op.bad_pixels() == BadPixelList(2, ((10, 20), (300, 70000)), ((4, 6, 9, 7),))


@pytest.mark.parametrize(
    ("pattern", "phase"),
    [([[0, 1], [3, 2]], 0), ([[1, 0], [2, 3]], 1), ([[1, 2], [0, 3]], 2), ([[2, 3], [1, 0]], 3), ([[2, 1], [1, 0]], 3)],
)
def test_bayer_phase_is_the_colour_of_the_top_left_photosite(pattern, phase):
    assert bayer_phase(np.array(pattern)) == phase


def test_bayer_phase_refuses_what_is_not_a_bayer_pattern():
    with pytest.raises(ValueError, match="Bayer pattern"):
        bayer_phase(np.array([[1, 1], [0, 2]]))  # greens side by side
    with pytest.raises(ValueError, match="Bayer pattern"):
        bayer_phase(np.array([[0, 1], [1, 1]]))


def test_the_sample_map_becomes_points_and_full_frame_rectangles():
    """7 points, a 10-photosite column segment (col 44, rows 20-29) and a 5-photosite row segment (row 60)."""
    bad = bad_pixel_list(sample_map(), cfa=RGGB, origin=(2, 4))
    assert bad.bayer_phase == 0
    assert bad.points == ((8 + 2, 10 + 4), (9 + 2, 61 + 4), (21 + 2, 80 + 4), (31 + 2, 51 + 4), (40 + 2, 31 + 4),
                          (50 + 2, 70 + 4), (56 + 2, 13 + 4))  # fmt: skip
    assert bad.rects == ((20 + 2, 44 + 4, 30 + 2, 45 + 4), (60 + 2, 80 + 4, 61 + 2, 85 + 4))  # bottom, right exclusive
    assert bad.photosites == len(sample_map().defects)


def _map(defects: list[Defect]) -> DefectMap:
    return DefectMap(CameraId("Rawmap", "Test"), SensorGeometry(40, 60, 0, 0, 40, 60, "RGGB"), FrameStats(1), defects)


def test_rectangles_hold_mapped_photosites_only():
    col = DefectKind.COLUMN
    one_colour = [Defect(r, 10, col, 3.0) for r in range(4, 20, 2)]  # every other row: no rectangle
    gap = [Defect(r, 30, col, 3.0) for r in (5, 6, 7, 9, 10)]  # a run of 3, a gap, a run of 2
    hot_line = [Defect(r, 50, DefectKind.HOT, 9.0) for r in (1, 2, 3)]  # not a line kind: points
    lone = [Defect(33, 33, col, 3.0)]
    bad = bad_pixel_list(_map(one_colour + gap + hot_line + lone), cfa=RGGB)
    assert bad.rects == ((5, 30, 8, 31), (9, 30, 11, 31))
    assert set(bad.points) == {(d.row, d.col) for d in one_colour + hot_line + lone}
    assert bad.photosites == len(one_colour + gap + hot_line + lone)


def test_a_cross_of_a_column_and_a_row_lists_each_photosite_once():
    col = DefectKind.COLUMN
    cross = [Defect(r, 20, col, 3.0) for r in range(10, 16)] + [
        Defect(12, c, col, 3.0) for c in range(15, 26) if c != 20
    ]
    bad = bad_pixel_list(_map(cross), cfa=RGGB)
    assert bad.rects == ((10, 20, 16, 21), (12, 15, 13, 20), (12, 21, 13, 26))
    assert bad.points == () and bad.photosites == len(cross)


def test_an_empty_map_is_an_empty_list():
    blob = fix_bad_pixels_list(bad_pixel_list(_map([]), cfa=RGGB))
    assert read_opcode_list(blob)[0].bad_pixels() == BadPixelList(0, (), ())
    assert len(blob) == 4 + 16 + 12


def test_invalid_lists_are_refused():
    with pytest.raises(ValueError, match="empty"):
        fix_bad_pixels_list(BadPixelList(0, (), ((5, 5, 5, 6),)))
    with pytest.raises(ValueError, match="bayer_phase"):
        fix_bad_pixels_list(BadPixelList(4, ((1, 1),), ()))
    with pytest.raises(ValueError, match="32-bit"):
        fix_bad_pixels_list(BadPixelList(0, ((-1, 1),), ()))
    with pytest.raises(ValueError, match="origin"):
        bad_pixel_list(_map([]), cfa=RGGB, origin=(-2, 0))
    good = fix_bad_pixels_list(BadPixelList(0, ((1, 1),), ()))
    with pytest.raises(ValueError, match="left"):
        read_opcode_list(good[:-4])
    with pytest.raises(ValueError, match="after the last opcode"):
        read_opcode_list(good + b"\0")
    two_points_one_given = good[:20] + struct.pack(">3I", 0, 2, 0) + struct.pack(">2I", 1, 1)
    (op,) = read_opcode_list(two_points_one_given)
    with pytest.raises(ValueError, match="should have 28 bytes, has 20"):
        op.bad_pixels()
