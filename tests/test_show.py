"""rawmap.show: the PNG picture of a map (its summary text and segments: tests/test_report.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sample_map import CAM, POINTS, T0, H, K, W
from sample_map import sample_map as _map

from rawmap.defectmap import Defect, DefectMap, FrameStats, SensorGeometry
from rawmap.errors import FrameMismatchError, MapMismatchError
from rawmap.fileio import OutputExistsError
from rawmap.frame import CameraId, Frame, SourceKind
from rawmap.show import KIND_COLOURS, plot_layout, plot_map


# --------------------------------------------------------------------------- plot
def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im)


def test_plot_marks_every_defect_in_its_kind_colour(tmp_path):
    m = _map()
    out = plot_map(m, tmp_path / "map.png")
    assert out == tmp_path / "map.png"
    px = _png(out)
    lay = plot_layout(m)
    assert px.shape == (lay.height, lay.width, 3)
    assert lay.width == 1280 and lay.crop_count == 8 and lay.crops_per_row == 8
    x0, y0, x1, y1 = lay.sensor_box
    assert (x1 - x0, y1 - y0) == (1200, 800)  # 96 x 64 photosites, 12.5 pixels each
    for r, c, kind, _ in POINTS:
        x, y = lay.to_pixel(r, c)
        assert tuple(px[y, x]) == KIND_COLOURS[kind], (r, c, kind)
    for r, c in [(25, 44), (20, 44), (29, 44), (60, 82)]:  # segments are drawn as lines
        x, y = lay.to_pixel(r, c)
        assert tuple(px[y, x]) == KIND_COLOURS[K.COLUMN], (r, c)
    x, y = lay.to_pixel(2, 90)  # an empty place of the sensor
    assert tuple(px[y, x]) == (30, 34, 41)


def test_plot_of_a_real_sized_sensor_is_downscaled(tmp_path):
    m = DefectMap(
        CAM,
        SensorGeometry(4016, 6016, cfa="RGGB"),
        FrameStats(3),
        [Defect(4015, 6015, K.HOT, 9.0, "B"), Defect(0, 0, K.DEAD, 5.0, "R")],
    )
    lay = plot_layout(m, crops=0)
    assert lay.scale == pytest.approx(1200 / 6016) and lay.crop_count == 0
    px = _png(plot_map(m, tmp_path / "big.png", crops=0))
    assert px.shape == (lay.height, lay.width, 3)
    for d in m.defects:
        x, y = lay.to_pixel(d.row, d.col)
        assert tuple(px[y, x]) == KIND_COLOURS[d.kind]
        # the mark is bigger than one pixel: still visible after downscaling
        assert tuple(px[y, x + 2]) == KIND_COLOURS[d.kind] or tuple(px[y + 2, x + 2]) == KIND_COLOURS[d.kind]


def test_plot_crops_of_the_map(tmp_path):
    m = _map()
    px = _png(plot_map(m, tmp_path / "map.png", crops=3))
    lay = plot_layout(m, crops=3)
    assert lay.crop_count == 3 and px.shape[0] == lay.height
    z = 16
    for i, kind in enumerate([K.STUCK, K.HOT, K.DEAD]):  # (21, 80), (8, 10), (50, 70): strongest first
        cx, cy = lay.crop_origin(i)
        assert tuple(px[cy + 4 * z + z // 2, cx + 4 * z + z // 2]) == KIND_COLOURS[kind]
    # around them, the faint CFA pattern: (17, 76) is green, (17, 77) blue
    cx, cy = lay.crop_origin(0)
    assert tuple(px[cy + z // 2, cx + z // 2]) == (34, 54, 36)
    assert tuple(px[cy + z // 2, cx + z + z // 2]) == (34, 40, 66)


def test_plot_crops_of_a_photo(tmp_path):
    m = _map()
    mosaic = np.full((H, W), 512 + 1000, np.uint16)
    mosaic[21, 80] = 512 + 4000  # the stuck (green) photosite, brighter than its neighbours
    photo = Frame(
        Path("/photos/DSC_0001.NEF"),
        mosaic,
        np.array([[0, 1], [3, 2]], np.uint8),
        np.full(4, 512.0),
        16383,
        1.0,
        100.0,
        T0,
        CAM,
    )
    px = _png(plot_map(m, tmp_path / "photo.png", photo=photo, crops=1))
    lay = plot_layout(m, crops=1)
    cx, cy = lay.crop_origin(0)
    z = 16

    def cell(dr: int, dc: int) -> tuple[int, ...]:
        return tuple(int(v) for v in px[cy + (4 + dr) * z + z // 2, cx + (4 + dc) * z + z // 2])

    green = (120, 255, 120)
    assert cell(0, 0) == green  # the brightest green photosite of the crop: the full tint
    t = 0.08 + 0.92 * 0.25 ** (1 / 2.2)  # a green neighbour at a quarter of that level
    assert cell(0, 2) == tuple(int(round(t * v)) for v in green)
    # the other colours, flat, at the full brightness of their own tint
    assert cell(0, 1) == (96, 150, 255)  # (21, 81) is blue
    assert cell(1, 0) == (255, 96, 80)  # (22, 80) is red
    assert cell(1, 1) == cell(0, 2)  # (22, 81) is the other green: both greens are scaled together


def test_plot_refuses_a_photo_of_another_body_or_size(tmp_path):
    m = _map()
    cfa = np.array([[0, 1], [3, 2]], np.uint8)
    other = Frame(
        Path("a.NEF"),
        np.zeros((H, W), np.uint16),
        cfa,
        np.zeros(4),
        16383,
        1,
        100,
        None,
        CameraId("Canon", "EOS R5", "1"),
    )
    small = Frame(Path("b.NEF"), np.zeros((H, W - 2), np.uint16), cfa, np.zeros(4), 16383, 1, 100, None, CAM)
    jpeg = Frame(
        Path("c.JPG"), np.zeros((H, W, 3), np.uint8), None, np.zeros(4), 255, 1, 100, None, CAM, SourceKind.IMAGE
    )
    # the check repair makes too (DefectMap.check_photo), without the --force of repair
    for photo, message in [
        (other, r"taken by Canon EOS R5 1, the defect map is of .*use that body's map\)$"),
        (small, "the photo's visible area is 64x94, the defect map's 64x96"),
        (jpeg, "the defect map was made from RAW files, this photo is a developed image"),
    ]:
        with pytest.raises(MapMismatchError, match=message) as exc:
            plot_map(m, tmp_path / "x.png", photo=photo)
        assert isinstance(exc.value, FrameMismatchError) and exc.value.path == photo.path
    assert not (tmp_path / "x.png").exists()


def test_plot_never_overwrites_unless_asked(tmp_path):
    target = tmp_path / "map.png"
    target.write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="already exists"):
        plot_map(_map(), target)
    assert target.read_bytes() == b"mine"
    plot_map(_map(), target, overwrite=True)
    assert _png(target).shape[1] == 1280
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]  # no temporary file left


def test_plot_rejects_negative_crops(tmp_path):
    with pytest.raises(ValueError, match="crops must be >= 0"):
        plot_map(_map(), tmp_path / "x.png", crops=-1)


def test_plot_labels_row_0_at_the_top_corner(tmp_path):
    """The "row 0, col 0" caption sits above the sensor's top-left corner, the last row's below the bottom."""
    m = _map()
    px = _png(plot_map(m, tmp_path / "map.png", crops=0)).astype(int)
    lay = plot_layout(m, crops=0)
    x0, y0, x1, y1 = lay.sensor_box
    background = np.array([17, 20, 24])

    def inked(top: int, bottom: int, left: int, right: int) -> int:
        return int(np.any(px[top:bottom, left:right] != background, axis=-1).sum())

    assert inked(y0 - 17, y0 - 3, x0, x0 + 90) > 50  # "row 0, col 0" above the top-left corner
    assert inked(y1 + 8, y1 + 22, x0, x0 + 90) > 50  # "row 63, col 0" below the bottom-left corner
    assert inked(y0 - 17, y0 - 3, x1 - 90, x1) == 0  # nothing claims the top-right is the last row
