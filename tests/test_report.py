"""rawmap.report: every text the commands print, from handmade records (exact lines)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sample_map import CAM, T0, H, K, W
from sample_map import sample_map as _map

from rawmap.correct import CorrectionCounts
from rawmap.defectmap import Defect, DefectMap, FrameStats, SensorGeometry
from rawmap.export import ExportFormat
from rawmap.frame import CameraId
from rawmap.mapping import SkipKind, Skipped
from rawmap.reader import read_info
from rawmap.repair import RepairResult
from rawmap.report import (
    Segment,
    body_header,
    column_segments,
    edit_lines,
    evidence_lines,
    export_lines,
    format_summary,
    info_lines,
    map_lines,
    map_written_line,
    nothing_new,
    rawtherapee_serial_warning,
    renamed_line,
    repair_line,
    repair_summary,
    show_path,
    skipped_lines,
    state_line,
    summarize,
)
from rawmap.series_state import StateUpdate

EXAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "example"


# --------------------------------------------------------------------------- summary
def test_summary_counts_exact():
    s = summarize(_map(), top=3)
    assert (s.camera, s.source, s.height, s.width, s.cfa) == (CAM, "raw", H, W, "RGGB")
    assert s.total == 22
    assert s.by_kind == {K.STUCK: 1, K.DEAD: 1, K.HOT: 3, K.WARM: 0, K.COLD: 1, K.NOISY: 1, K.COLUMN: 15}
    assert s.channels == ("R", "G", "B")
    assert s.by_kind_channel == {
        K.STUCK: {"R": 0, "G": 1, "B": 0},
        K.DEAD: {"R": 1, "G": 0, "B": 0},
        K.HOT: {"R": 1, "G": 1, "B": 1},
        K.WARM: {"R": 0, "G": 0, "B": 0},
        K.COLD: {"R": 0, "G": 0, "B": 1},
        K.NOISY: {"R": 0, "G": 1, "B": 0},
        K.COLUMN: {"R": 8, "G": 7, "B": 0},
    }
    assert s.channel_totals() == {"R": 10, "G": 10, "B": 2}
    assert s.segments == 2
    assert (s.frames, s.skipped) == (40, 2)
    assert (s.first_capture, s.last_capture) == (T0, T0 + dt.timedelta(days=30))
    assert (s.exposure_min, s.exposure_max, s.iso_min, s.iso_max) == (1 / 4000, 30.0, 100, 6400)
    assert [(d.row, d.col, d.score) for d in s.strongest] == [(21, 80, 99.0), (8, 10, 41.2), (50, 70, 30.0)]
    assert s.per_million == pytest.approx(22 / (H * W) * 1e6)
    assert len(summarize(_map()).strongest) == 10
    assert summarize(_map(), top=0).strongest == ()


def test_format_summary_text():
    text = format_summary(summarize(_map(), top=2))
    assert text == "\n".join(
        [
            "NIKON D750 3001234 — RAW map (RGGB), 64 x 96 photosites (rows x columns)",
            "  made      2024-07-01 12:00 UTC",
            "  frames    40 used, 2 skipped",
            "  captured  2024-05-06 07:08 … 2024-06-05 07:08",
            "  exposure  1/4000 s … 30 s",
            "  ISO       100 … 6400",
            "  defects   22 (3580.7 per million photosites), 2 column/row segments",
            "",
            "  kind          R      G      B   total",
            "  stuck         0      1      0       1",
            "  dead          1      0      0       1",
            "  hot           1      1      1       3",
            "  warm          0      0      0       0",
            "  cold          0      0      1       1",
            "  noisy         0      1      0       1",
            "  column        8      7      0      15",
            "  total        10     10      2      22",
            "",
            "  strongest 2:",
            "     row    col  kind   ch    score  first seen",
            "      21     80  stuck  G      99.0  2024-05-27 07:08",
            "       8     10  hot    R      41.2  2024-05-14 07:08",
        ]
    )


def test_format_summary_of_an_image_map_has_no_channel_columns():
    s = summarize(_map("image"))
    assert s.channels == ("",)
    assert s.by_kind_channel[K.HOT] == {"": 3}
    lines = format_summary(s).splitlines()
    assert lines[0] == "NIKON D750 3001234 — image map (from developed photos), 64 x 96 pixels (rows x columns)"
    assert "  kind       total" in lines and "  column        15" in lines


def test_summary_of_an_empty_map():
    s = summarize(DefectMap(CAM, SensorGeometry(H, W), FrameStats(0)))
    assert s.total == 0 and s.segments == 0 and s.strongest == () and s.per_million == 0
    text = format_summary(s)
    assert "  defects   0" in text and "strongest" not in text and "captured" not in text


def test_summary_rejects_negative_top():
    with pytest.raises(ValueError, match="top must be >= 0"):
        summarize(_map(), top=-1)


# --------------------------------------------------------------------------- segments
def test_column_segments():
    segs = column_segments(_map().defects)
    assert segs == [Segment("column", 44, 20, 29, 10, 4.0), Segment("row", 60, 80, 84, 5, 2.0)]
    assert segs[1].cells() == [(60, c) for c in range(80, 85)]
    # one colour only (every other row) is still a segment; two photosites are not
    one_colour = [Defect(r, 7, K.COLUMN, 1.0) for r in range(0, 12, 2)]
    pair = [Defect(30, 3, K.COLUMN, 1.0), Defect(31, 3, K.COLUMN, 1.0)]
    assert column_segments(one_colour + pair) == [Segment("column", 7, 0, 10, 6, 1.0)]
    assert column_segments([Defect(1, 1, K.HOT, 9.0)]) == []


def test_summary_names_the_camera_once():
    m = DefectMap(CameraId("Canon", "Canon EOS D30", "171048961"), SensorGeometry(H, W), FrameStats(3))
    assert format_summary(summarize(m)).splitlines()[0].startswith("Canon EOS D30 171048961 — ")


# --------------------------------------------------------------------------- rawmap map
def test_map_lines_list_points_then_segments_and_say_what_is_left_out():
    lines = map_lines(_map(), table_rows=3, segment_rows=1)
    assert lines == [
        "  defects: 22 photosites: stuck 1, dead 1, hot 3, cold 1, noisy 1, column 15 (in 2 segments)",
        "       row    col  kind   ch   score  value          views  first seen",
        "         8     10  hot    R     41.2                     -  2024-05-14 07:08:09",
        "         9     61  hot    B     12.0                     -  2024-05-15 07:08:09",
        "        21     80  stuck  G     99.0                     -  2024-05-27 07:08:09",
        "    ... and 4 more (all are in the map file; see `rawmap export --format csv`)",
        "    column segment: col 44, rows 20-29 (10 photosites, mean offset -30 DN)",
        "    ... and 1 more segments",
    ]
    full = map_lines(_map())
    assert len(full) == 1 + 1 + 7 + 2  # counts, heading, every point, both segments
    assert full[-1] == "    row segment: row 60, cols 80-84 (5 photosites, mean offset +15 DN)"
    assert map_lines(DefectMap(CAM, SensorGeometry(H, W), FrameStats(3))) == ["  defects: 0 photosites"]


def test_a_segments_large_offset_is_written_in_full_not_in_e_notation():
    for value, text in ((-2650.4, "-2,650"), (123456.0, "+123,456"), (-30.0, "-30"), (2.654, "+2.65")):
        row = [Defect(19, c, K.COLUMN, 9.0, value=value) for c in range(50, 55)]
        m = DefectMap(CAM, SensorGeometry(H, W), FrameStats(3), row)
        assert map_lines(m)[-1] == f"    row segment: row 19, cols 50-54 (5 photosites, mean offset {text} DN)"


def test_map_lines_show_each_kinds_value_views_and_a_single_photosite():
    m = DefectMap(
        CAM, SensorGeometry(H, W, cfa="RGGB"), FrameStats(5), [Defect(3, 4, K.HOT, 12.5, "G", None, 93.1, views=4)]
    )
    assert map_lines(m) == [
        "  defects: 1 photosite: hot 1",
        "       row    col  kind   ch   score  value          views  first seen",
        "         3      4  hot    G     12.5  93.1 DN/s          4  -",
    ]


def test_body_header_counts_new_and_stored_frames():
    fr = FrameStats(12, 0, T0, T0 + dt.timedelta(days=2), 1 / 250, 1 / 250, 100, 400, views=4, darks=1)
    m = DefectMap(CAM, SensorGeometry(H, W, cfa="RGGB"), fr, thresholds={"sensitivity": "high"})
    assert body_header(m, 5) == [
        "NIKON D750 3001234 (RAW, 64x96, RGGB)",
        "  frames: 12 frames (5 new, 7 from the stored statistics); exposures 1/250 s; ISO 100 to 400; "
        "taken 2024-05-06 to 2024-05-08",
        "  evidence: 4 views (frames of one scene count once), 1 lens-cap dark",
        "  warning: 4 views and 1 dark: a defect must show in 2 of them to be mapped; "
        "1 more different scenes (or lens-cap darks) give the full map",
        "  sensitivity: high",
    ]
    mono = DefectMap(CameraId("", ""), SensorGeometry(H, W, cfa=""), FrameStats(3, exposure_min=0.5, exposure_max=30.0))
    assert body_header(mono, 3) == [
        "unknown camera (RAW, 64x96, monochrome)",
        "  frames: 3 frames; exposures 0.5 s to 30 s",
    ]


def test_evidence_lines():
    assert evidence_lines(FrameStats(3)) == []  # a map of an older version records no views
    assert evidence_lines(FrameStats(3, views=1))[1].startswith("  warning: one view only: ")
    assert evidence_lines(FrameStats(30, views=9, darks=2, flats=1)) == [
        "  evidence: 9 views (frames of one scene count once), 2 lens-cap darks, 1 of the views flat fields"
    ]
    # one view whose exposure rose while the picture kept its brightness: hot photosites by their growth,
    # or, where the view moved, the reason they are not
    plain = evidence_lines(FrameStats(24, views=1))[1]
    grown = evidence_lines(FrameStats(24, views=1, growth="ran"))[1]
    moved = evidence_lines(FrameStats(24, views=1, growth="moved"))[1]
    assert "hot photosites are found by their growth with exposure alone" in grown
    assert "hot and noisy photosites cannot be told" not in grown
    assert "but the view moved" in moved and "hot and noisy photosites cannot be told" in moved
    assert "growth" not in plain
    # one view that moved while its light changed: no column segments either, and why
    moved_lines = evidence_lines(FrameStats(24, views=1, lines="moved"))[1]
    assert "nor column segments: the view moved between its brightest and dimmest frames" in moved_lines
    assert "column segments where the light changed" in plain and "where the light changed" not in moved_lines
    # one view of developed images: almost nothing can be told from the scene (not the RAW promise of
    # stuck and dead ones); with more views the same lines as for RAW
    jpeg = evidence_lines(FrameStats(24, views=1), source="image")[1]
    assert jpeg.startswith("  warning: one view of developed images (JPEG): ") and "map the RAW files" in jpeg
    assert "stuck and dead ones are mapped" in plain and "stuck and dead" not in jpeg
    assert evidence_lines(FrameStats(24, views=9), source="image") == evidence_lines(FrameStats(24, views=9))
    # two to five units: named as they are (no darks, no "and darks"); below 3 no column segment
    # from leans (two bursts of two scenes)
    two = evidence_lines(FrameStats(24, views=2))[-1]
    assert two.startswith("  warning: 2 views: a defect must show in 2 of them to be mapped, and a column")
    assert "4 more different scenes (or lens-cap darks)" in two
    assert evidence_lines(FrameStats(24, views=1, darks=1))[-1].startswith("  warning: 1 view and 1 dark: ")
    three = evidence_lines(FrameStats(24, exposure_min=30.0, exposure_max=30.0, views=0, darks=3))[-1]
    assert three.startswith("  warning: 3 darks: a defect must show in 2") and "column" not in three


def test_evidence_lines_darks_of_one_exposure_note_white_stuck():
    """Darks of one exposure cannot tell a hot photosite that fills the range from one stuck at white."""
    same = FrameStats(24, exposure_min=30.0, exposure_max=30.0, iso_min=800, iso_max=800, views=0, darks=24)
    note = "  note: darks of one exposure: a hot photosite that fills the range in every dark reads white, "
    assert evidence_lines(same, stuck=3)[-1].startswith(note)
    assert "a few darks of a shorter exposure tell them apart" in evidence_lines(same, stuck=3)[-1]
    assert not any(x.startswith(note) for x in evidence_lines(same, stuck=0))  # no stuck one: nothing to say
    mixed = FrameStats(24, exposure_min=0.02, exposure_max=60.0, iso_min=800, iso_max=800, views=0, darks=24)
    two_iso = FrameStats(24, exposure_min=30.0, exposure_max=30.0, iso_min=400, iso_max=800, views=0, darks=24)
    with_photos = FrameStats(30, exposure_min=30.0, exposure_max=30.0, iso_min=800, iso_max=800, views=6, darks=24)
    for fr in (mixed, two_iso, with_photos):
        assert not any(x.startswith(note) for x in evidence_lines(fr, stuck=3))


def test_skipped_lines_one_line_per_unusable_file_one_per_other_kind(tmp_path):
    a, b = tmp_path / "a.NEF", tmp_path / "b.txt"
    skipped = [
        Skipped(a, "only 1 frame(s) of this camera"),
        Skipped(b, "not an image\nat all"),
        Skipped(tmp_path / "c.NEF", "copy", SkipKind.DUPLICATE),
        Skipped(tmp_path / "d.NEF", "copy", SkipKind.DUPLICATE),
        Skipped(tmp_path / "e.JPG", "twin", SkipKind.TWIN),
        Skipped(tmp_path / "f.NEF", "counted", SkipKind.COUNTED),
    ]
    assert skipped_lines(skipped, {a: "card/a.NEF"}) == [
        "Skipped 2 files:",
        "  card/a.NEF: only 1 frame(s) of this camera",  # as the user typed it
        f"  {b}: not an image at all",  # one line
        "2 files skipped: same content as a file already counted in this run",
        "1 JPEG skipped: twin of a RAW file in the same run",
        "1 file skipped: already counted in the stored statistics",
    ]
    assert skipped_lines([]) == []


def test_nothing_new_and_written_lines(tmp_path):
    assert nothing_new(1, "d750.rawstate") == "Nothing new to map: 1 file is already counted in d750.rawstate."
    assert nothing_new(3, "the library") == "Nothing new to map: 3 files are already counted in the library."
    assert map_written_line(tmp_path / "m.json") == f"  map written to {tmp_path / 'm.json'}"
    assert map_written_line(tmp_path / "m.json", replacing_own=True).endswith(
        "m.json (replacing the map this state wrote before)"
    )


def test_state_line(tmp_path):
    p = tmp_path / "s.rawstate"
    assert (
        state_line(StateUpdate(p, True, CAM, (H, W), 12))
        == f"statistics of NIKON D750 3001234 (12 frames) written to {p}"
    )
    assert (
        state_line(StateUpdate(p, False, CameraId("", ""), (H, W), 12))
        == f"{p}: unchanged (no new frames of its body, 64x96)"
    )


def test_show_path_is_relative_inside_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert show_path(tmp_path / "maps" / "d750.json") == str(Path("maps") / "d750.json")
    assert show_path(tmp_path.parent / "x.json") == str(tmp_path.parent / "x.json")


# --------------------------------------------------------------------------- other commands
def test_info_lines_of_a_real_dng():
    lines = info_lines(read_info(EXAMPLE / "frame_000.dng"))
    assert lines == [
        str(EXAMPLE / "frame_000.dng"),
        "  make      Rawmap",
        "  model     Simulated Sensor",
        "  serial    SIM0001",
        "  format    DNG (RAW Bayer mosaic)",
        "  size      120 x 160 photosites (rows x columns); full frame 128 x 172, visible area at row 8, column 12",
        "  CFA       RGGB",
        "  black     512",
        "  white     16383",
        "  exposure  1/1250 s",
        "  ISO       100",
        "  captured  2024-06-01 12:32:10",
    ]


def test_export_lines_and_the_rawtherapee_warning(tmp_path):
    m = _map()
    out = tmp_path / "d750.txt"
    assert export_lines(m, ExportFormat.DCRAW, out, since_first_seen=True)[:2] == [
        f"22 defects of NIKON D750 3001234 written as dcraw to {out}",
        "lines dated with first_seen: photos taken before a defect showed are left alone",
    ]
    assert export_lines(m, ExportFormat.DCRAW, out)[1].startswith("every line dated 0: ")
    csv = export_lines(m, ExportFormat.CSV, tmp_path / "d.csv")
    assert csv[0] == f"22 defects of NIKON D750 3001234 written as csv to {tmp_path / 'd.csv'}"
    assert not any("dated" in ln for ln in csv)
    crw = CameraId("Canon", "Canon EOS D30", "171048961", serial_source="makernote")
    assert rawtherapee_serial_warning(crw, serial=True) == (
        "the file is named without a serial (RawTherapee does not read the serial number '171048961' of this "
        "file type (only EXIF BodySerialNumber; this one came from the maker note (a CRW's CIFF record))): "
        "RawTherapee applies it to every Canon EOS D30 it opens"
    )
    assert "(--no-serial)" in rawtherapee_serial_warning(crw, serial=False)
    assert "(the map records no serial number)" in rawtherapee_serial_warning(CameraId("Canon", "EOS D30"), serial=True)


def test_repair_lines(tmp_path):
    src, out = tmp_path / "a.NEF", tmp_path / "out" / "a.dng"
    assert (
        repair_line(src, RepairResult(src, out, "DNG", 81, 79))
        == f"{src} -> {out} (DNG): 81 mapped photosites, 79 photosites changed"
    )
    corrected = RepairResult(src, out, "DNG", 81, 79, corrected=CorrectionCounts(offset=60, gain=2, interpolated=19))
    assert repair_line(src, corrected) == (
        f"{src} -> {out} (DNG): 81 mapped photosites, 79 photosites changed "
        "(60 by a segment's offset and 2 by gain corrected, 19 interpolated)"
    )
    kept = RepairResult(src, out, "DNG", 9, 4, corrected=CorrectionCounts(dark=2, kept=5, interpolated=2))
    assert repair_line(src, kept).endswith(
        "(2 by dark current corrected, 5 noisy in their normal state kept, 2 interpolated)"
    )
    only = RepairResult(src, out, "DNG", 9, 4, corrected=CorrectionCounts(kept=5, interpolated=4))
    assert repair_line(src, only).endswith("(5 noisy in their normal state kept, 4 interpolated)")
    jpg = RepairResult(src, out.with_suffix(".jpg"), "JPEG", 5, 120, psnr=float("inf"), forced=True)
    assert repair_line(src, jpg).endswith(
        ": 5 mapped spots, 120 pixels changed; PSNR elsewhere identical (map of another body, --force)"
    )
    assert repair_line(src, RepairResult(src, out, "JPEG", 5, 120, psnr=48.04)).endswith("; PSNR elsewhere 48.0 dB")
    assert repair_summary(1, 1, tmp_path) == f"Repaired 1 of 1 photo into {tmp_path}"
    assert repair_summary(2, 3, tmp_path, failed=1) == f"Repaired 2 of 3 photos into {tmp_path}; 1 failed:"
    assert renamed_line(1).startswith("1 photo written as <name>-2, -3 ...: ")
    assert repair_summary(0, 2, tmp_path, skipped=1, failed=1) == (
        f"Repaired 0 of 2 photos into {tmp_path}; 1 skipped, its output already there (--skip-existing); 1 failed:"
    )


def test_repair_line_of_an_opcode_dng(tmp_path):
    from rawmap.opcodes import BadPixelList

    src, out = tmp_path / "a.NEF", tmp_path / "out" / "a.dng"
    listed = BadPixelList(0, ((10, 20),), ((4, 6, 34, 7), (50, 8, 51, 20)))
    assert repair_line(src, RepairResult(src, out, "DNG", 43, 0, opcodes=listed)) == (
        f"{src} -> {out} (DNG): 43 mapped photosites listed in OpcodeList1 "
        "(FixBadPixelsList: 1 point, 2 rects), mosaic unchanged"
    )
    one = BadPixelList(0, ((1, 1), (2, 2)), ((4, 6, 5, 9),))
    assert repair_line(src, RepairResult(src, out, "DNG", 5, 0, forced=True, opcodes=one)).endswith(
        "(FixBadPixelsList: 2 points, 1 rect), mosaic unchanged (map of another body, --force)"
    )


def test_edit_lines():
    m = _map()
    adds = [(3, 4, None), (8, 10, None), (21, 80, K.HOT)]
    drops = [(50, 70), (1, 1)]
    edited = m.edited(add=adds, drop=drops)
    assert edit_lines(m, edited, adds, drops) == [
        "added row 3, col 4: hot (G), manual",
        "kept row 8, col 10: hot, now manual",
        "changed row 21, col 80: stuck -> hot, manual",
        "dropped row 50, col 70 (was dead)",
        "row 1, col 1 was not in the map: recorded as dropped, so mapping again leaves it out",
        "22 defects (3 manual), 2 photosites dropped by hand",
    ]
