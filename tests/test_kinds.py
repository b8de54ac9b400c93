"""rawmap.kinds: one complete entry per defect kind, and the exports, plot and reports read it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rawmap import defectmap, export, report, show
from rawmap.defectmap import Defect, DefectMap, FrameStats, SensorGeometry
from rawmap.frame import CameraId
from rawmap.kinds import (
    KINDS,
    NOISE_RATIO_CAP,
    DefectKind,
    KindInfo,
    Marker,
    plain_number,
)

CAM = CameraId("Testco", "TC-1", "0001")


def test_every_kind_has_one_complete_entry():
    assert list(KINDS) == list(DefectKind)  # every kind, in the enum's order (legends, counts)
    assert defectmap.DefectKind is DefectKind  # the map's kinds are these
    for kind, info in KINDS.items():
        assert isinstance(info, KindInfo) and info.kind is kind
        assert info.description.strip() and info.value.strip()
        assert isinstance(info.value_text(1.5), str) and info.value_text(1.5)
        assert info.value_text(float("nan")) == "" and info.value_text(float("inf")) == ""
        assert info.siril_type in ("H", "C") and isinstance(info.siril_by_sign, bool)
        assert len(info.colour) == 3 and all(type(c) is int and 0 <= c <= 255 for c in info.colour)
        assert isinstance(info.marker, Marker) and isinstance(info.line, bool)
        for f in dataclasses.fields(KindInfo):  # nothing left empty
            assert getattr(info, f.name) is not None, (kind, f.name)
    colours = [i.colour for i in KINDS.values()]
    assert len(set(colours)) == len(colours)  # kinds are told apart in the plot
    point_markers = [i.marker for i in KINDS.values() if not i.line]
    assert len(set(point_markers)) == len(point_markers)


def test_values_print_without_exponents():
    text = {k: KINDS[k].value_text for k in DefectKind}
    assert text[DefectKind.NOISY](1.56e13) == f"noise >x{NOISE_RATIO_CAP:.0f}" == "noise >x1000"
    assert text[DefectKind.NOISY](1.5634) == "noise x1.56"
    assert text[DefectKind.HOT](123456.7) == "123,457 DN/s"
    assert text[DefectKind.HOT](0.01234) == "0.0123 DN/s"
    assert text[DefectKind.COLUMN](-30.0) == "-30.0 DN"
    assert text[DefectKind.COLUMN](30.0) == "+30.0 DN"
    assert text[DefectKind.STUCK](4095.4) == "4095 DN" == text[DefectKind.DEAD](4095.0)
    assert text[DefectKind.COLD](0.4) == "gain 0.40"
    for v in (1e-9, 3e7, 1e300):
        assert "e" not in text[DefectKind.HOT](v).replace("DN/s", "")
        assert "e" not in plain_number(v)


def test_siril_letters():
    assert [KINDS[k].siril_letter(5.0) for k in DefectKind] == ["H", "C", "H", "H", "C", "H", "H"]
    col = KINDS[DefectKind.COLUMN]
    assert (col.siril_letter(-0.5), col.siril_letter(0.0), col.siril_letter(float("nan"))) == ("C", "H", "H")
    assert KINDS[DefectKind.DEAD].siril_letter(-5.0) == "C" and KINDS[DefectKind.HOT].siril_letter(-5.0) == "H"


def _map() -> DefectMap:
    defects = [Defect(1, 1, DefectKind.HOT, 9.0, "R", None, 10.0), Defect(2, 5, DefectKind.DEAD, 8.0, "G", None, 0.0)]
    defects += [Defect(r, 3, DefectKind.COLUMN, 5.0, "G", None, 12.0) for r in range(8)]
    return DefectMap(CAM, SensorGeometry(8, 8, cfa="RGGB"), FrameStats(10), defects)


def _swap(monkeypatch: pytest.MonkeyPatch, kind: DefectKind, **changes: object) -> None:
    """Change one kind's entry in the table, as a new kind's entry would be read."""
    monkeypatch.setitem(KINDS, kind, dataclasses.replace(KINDS[kind], **changes))


def test_exports_read_the_table(monkeypatch):
    m = _map()
    assert "P 1 1 H\n" in export.siril_text(m) and "P 5 2 C\n" in export.siril_text(m)
    assert "C 3 0 H\n" in export.siril_text(m)  # a line kind covering the whole column: one Siril line
    _swap(monkeypatch, DefectKind.HOT, siril_type="C")
    _swap(monkeypatch, DefectKind.COLUMN, line=False)
    text = export.siril_text(m)
    assert "P 1 1 C\n" in text
    assert "C 3 0" not in text and "P 3 0 H\n" in text  # no longer a line kind: one line per photosite


def test_reports_read_the_table(monkeypatch):
    m = _map()
    lines = report.map_lines(m)
    assert lines[0] == "  defects: 10 photosites: dead 1, hot 1, column 8 (in 1 segment)"
    assert any(" hot " in ln and "10.0 DN/s" in ln for ln in lines)
    _swap(monkeypatch, DefectKind.HOT, report=lambda v: f"{v:.0f} units")
    _swap(monkeypatch, DefectKind.COLUMN, line=False)
    lines = report.map_lines(m)
    assert lines[0] == "  defects: 10 photosites: dead 1, hot 1, column 8"  # point kinds all listed
    assert any(" hot " in ln and "10 units" in ln for ln in lines)
    assert sum(" column " in ln for ln in lines[1:]) == 8 and not any("segment" in ln for ln in lines)


def test_plot_reads_the_table(monkeypatch, tmp_path):
    m = DefectMap(CAM, SensorGeometry(8, 8, cfa="RGGB"), FrameStats(10), [Defect(4, 4, DefectKind.HOT, 9.0, "R")])
    assert show.KIND_COLOURS == {k: i.colour for k, i in KINDS.items()}
    lay = show.plot_layout(m, crops=0)

    def centre_colour(path):
        from PIL import Image

        px = np.asarray(Image.open(path).convert("RGB"))
        x, y = lay.to_pixel(4, 4)
        return tuple(int(v) for v in px[y, x])

    assert centre_colour(show.plot_map(m, tmp_path / "a.png", crops=0)) == KINDS[DefectKind.HOT].colour
    _swap(monkeypatch, DefectKind.HOT, colour=(1, 2, 3), marker=Marker.SQUARE)
    assert centre_colour(show.plot_map(m, tmp_path / "b.png", crops=0)) == (1, 2, 3)


def test_line_kinds_make_segments(monkeypatch):
    m = _map()
    segs = report.column_segments(m.defects)
    assert [(s.axis, s.index, s.start, s.stop, s.count, s.kind) for s in segs] == [
        ("column", 3, 0, 7, 8, DefectKind.COLUMN)
    ]
    _swap(monkeypatch, DefectKind.COLUMN, line=False)
    assert report.column_segments(m.defects) == []
    assert math.isclose(segs[0].score, 5.0)
