"""rawmap.export: exact text of every format, file handling, and the real peers reading our files."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from peers import rawtherapee_env, require_peer, run_peer

from rawmap import __version__
from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from rawmap.dng import write_dng
from rawmap.export import (
    CSV_HEADER,
    FORMATS,
    ExportError,
    ExportFormat,
    FormatInfo,
    csv_text,
    dcraw_text,
    dcraw_timestamp,
    default_filename,
    export_text,
    rawtherapee_filename,
    rawtherapee_name,
    rawtherapee_reads_serial,
    rawtherapee_text,
    siril_command,
    siril_text,
    write_export,
)
from rawmap.fileio import OutputExistsError
from rawmap.frame import CameraId
from rawmap.reader import read_info

K = DefectKind
NIKON = CameraId("NIKON CORPORATION", "NIKON D750", "3001234", "exif")
T0 = dt.datetime(2024, 5, 6, 7, 8, 9)
T0_UNIX = 1714979289  # calendar.timegm(T0)


def _small_map(source: str = "raw") -> DefectMap:
    """6x8 visible area at (2, 4) of a 10x16 frame: points of every kind, a whole column, a partial one."""
    defects = [
        Defect(1, 3, K.HOT, 41.2, "B", T0, 812.0),
        Defect(4, 0, K.DEAD, 12.0, "G", None, 0.0),
        Defect(2, 7, K.COLD, 7.25, "G", dt.datetime(2024, 5, 6, 7, 8, 9, 999999), 0.4),
        Defect(5, 1, K.STUCK, 99.0, "B", None, 4095.0),
        Defect(3, 4, K.NOISY, 6.5, "B"),  # value unknown (NaN)
        Defect(5, 7, K.WARM, 8.5, "B", T0, 36.0),
    ]
    defects += [Defect(r, 6, K.COLUMN, 20.0, "R" if r % 2 == 0 else "G", None, -30.0) for r in range(6)]
    defects += [Defect(r, 2, K.COLUMN, 11.0, "R" if r % 2 == 0 else "G", None, 15.0) for r in range(3)]
    cfa = "RGGB" if source == "raw" else ""
    return DefectMap(
        camera=NIKON,
        sensor=SensorGeometry(6, 8, 2, 4, 10, 16, cfa, source),
        frames=FrameStats(40),
        defects=defects,
    )


# --- format text -------------------------------------------------------------


def test_dcraw_text_exact():
    text = dcraw_text(_small_map(), since_first_seen=True)
    assert text == (
        "# dcraw/LibRaw -P bad-pixel list for NIKON D750 3001234\n"
        f"# written by rawmap {__version__}: col row unixtime (visible area; 0 = always; camera clock read as UTC)\n"
        "# dated: first_seen, each photosite repaired from the first photo that showed it on\n"
        "2 0 0\n6 0 0\n"
        "2 1 0\n"
        f"3 1 {T0_UNIX}\n"
        "6 1 0\n"
        "2 2 0\n6 2 0\n"
        f"7 2 {T0_UNIX}\n"
        "4 3 0\n6 3 0\n"
        "0 4 0\n6 4 0\n"
        "1 5 0\n6 5 0\n"
        f"7 5 {T0_UNIX}\n"
    )


def test_dcraw_text_dates_every_line_0_by_default():
    """Users repair older photos too: by default no line waits for its first_seen."""
    m = _small_map()
    lines = dcraw_text(m).splitlines()
    assert lines[2] == "# dated: 0 on every line, every photo repaired"
    assert lines[3:] == [f"{d.col} {d.row} 0" for d in m.defects]
    assert any(d.first_seen for d in m.defects)
    assert export_text(m, "dcraw") == dcraw_text(m)
    assert export_text(m, "dcraw", since_first_seen=True) == dcraw_text(m, since_first_seen=True) != dcraw_text(m)


def test_dcraw_timestamp_conversion():
    assert dcraw_timestamp(None) == 0
    assert dcraw_timestamp(T0) == T0_UNIX
    assert dcraw_timestamp(T0.replace(microsecond=999999)) == T0_UNIX  # truncated, never later
    # an aware time keeps its wall-clock reading: the photo's clock carries no offset either
    aware = T0.replace(tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert dcraw_timestamp(aware) == T0_UNIX
    assert dcraw_timestamp(dt.datetime(1969, 12, 31, 23, 0)) == 0


def test_rawtherapee_text_and_name_exact():
    m = _small_map()
    assert default_filename(m, ExportFormat.RAWTHERAPEE) == "Nikon D750 3001234.badpixels"
    assert rawtherapee_filename(m.camera, with_serial=False) == "Nikon D750.badpixels"
    body = "2 0\n6 0\n2 1\n3 1\n6 1\n2 2\n6 2\n7 2\n4 3\n6 3\n0 4\n6 4\n1 5\n6 5\n7 5\n"
    assert rawtherapee_text(m) == (
        "# RawTherapee bad pixels for NIKON D750 3001234\n"
        f"# written by rawmap {__version__}: x y (column row of the visible area)\n" + body
    )


def test_rawtherapee_crop_origin_shifts_and_drops():
    # RawTherapee's crop at (top 1, left 5) of the full frame; the visible area is at (2, 4):
    # x = col - 1, y = row + 1; column 0 falls outside RawTherapee's crop.
    text = rawtherapee_text(_small_map(), crop_origin=(1, 5))
    lines = text.splitlines()
    assert lines[1].endswith("x y (column row of the raw crop at top 1, left 5)")
    assert lines[2:5] == ["1 1", "5 1", "1 2"]
    assert "-1 5" not in lines and all(not ln.startswith("-") for ln in lines)
    assert len(lines) == 2 + 15 - 1
    assert (
        rawtherapee_text(_small_map(), crop_origin=(2, 4)).splitlines()[2:]
        == rawtherapee_text(_small_map()).splitlines()[2:]
    )
    with pytest.raises(ValueError, match="crop_origin"):
        rawtherapee_text(_small_map(), crop_origin=(-1, 0))
    with pytest.raises(ValueError, match="crop_origin"):
        rawtherapee_text(_small_map(), crop_origin="top")  # type: ignore[arg-type]


# Measured with rawtherapee-cli 5.9 (Verbose=true prints "<name>.badpixels not found").
@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("NIKON CORPORATION", "NIKON D750", "Nikon D750"),
        ("Nikon", "Nikon Z 6", "Nikon Z 6"),
        ("Canon", "Canon EOS R5", "Canon EOS R5"),
        ("Canon", "EOS 5D", "Canon EOS 5D"),
        ("Canon", "canon eos 6d", "Canon eos 6d"),
        ("FUJIFILM", "X-T3", "Fujifilm X-T3"),
        ("FUJIFILM", "FUJIFILM X100V", "Fujifilm X100V"),
        ("LEICA CAMERA AG", "LEICA M10", "Leica M10"),
        ("Leica", "Digital Camera M9", "Leica M9"),
        ("LEICA", "M (Typ 240)", "Leica M (Typ 240)"),
        ("PENTAX", "PENTAX K-1", "Pentax K-1"),
        ("RICOH IMAGING COMPANY, LTD.", "PENTAX K-3 Mark III", "Pentax K-3 Mark III"),
        ("RICOH", "GR III", "Ricoh GR III"),
        ("OLYMPUS CORPORATION", "E-M1MarkII", "Olympus E-M1MarkII"),
        ("OM Digital Solutions", "OM-1", "OM Digital Solutions OM-1"),
        ("Panasonic", "DC-G9", "Panasonic DC-G9"),
        ("SONY ", "ILCE-7M3  ", "Sony ILCE-7M3"),
        ("samsung", "SM-G998B", "Samsung SM-G998B"),
        ("SIGMA", "fp", "Sigma fp"),
        ("Minolta Co., Ltd.", "DiMAGE A2", "Minolta DiMAGE A2"),
        ("KONICA MINOLTA", "DYNAX 7D", "Minolta DYNAX 7D"),
        ("EASTMAN KODAK COMPANY", "KODAK DCS Pro 14N DIGITAL CAMERA", "Kodak DCS Pro 14N"),
        ("Phase One", "IQ3 100MP", "Phase One IQ3 100MP"),
        ("Hasselblad", "X1D", "Hasselblad X1D"),
        ("Apple", "iPhone 12 Pro", "Apple iPhone 12 Pro"),
        ("Google", "Pixel 6", "Google Pixel 6"),
        ("DJI", "FC3170", "DJI FC3170"),
        ("Xiaomi", "M2007J1SC", "Xiaomi M2007J1SC"),
    ],
)
def test_rawtherapee_name_matches_measured_lookup(make, model, expected):
    assert rawtherapee_name(CameraId(make, model)) == expected
    assert rawtherapee_name(CameraId(make, model, " 0042 ", "exif")) == expected + " 0042"
    assert rawtherapee_name(CameraId(make, model, "0042"), with_serial=False) == expected


def test_rawtherapee_name_refuses_unusable_cameras():
    with pytest.raises(ExportError, match="make and model"):
        rawtherapee_name(CameraId("", "X1"))
    with pytest.raises(ExportError, match="make and model"):
        default_filename(
            DefectMap(CameraId("Canon", ""), SensorGeometry(4, 4), FrameStats(1)), ExportFormat.RAWTHERAPEE
        )
    with pytest.raises(ExportError, match="file name"):
        rawtherapee_name(CameraId("Canon", "EOS 5D", "12/34", "exif"))


def test_siril_text_exact():
    assert siril_text(_small_map()) == (
        "# Siril cosmetic-correction list for NIKON D750 3001234\n"
        f"# written by rawmap {__version__}: P x y = column, row from the top; C x = whole column; "
        "L y = whole row; H hot, C cold\n"
        "C 6 0 C\n"  # the whole column 6, reading low
        "P 2 0 H\n"  # column 2 covers rows 0-2 only: single photosites
        "P 2 1 H\n"
        "P 3 1 H\n"
        "P 2 2 H\n"
        "P 7 2 C\n"
        "P 4 3 H\n"
        "P 0 4 C\n"
        "P 1 5 H\n"
        "P 7 5 H\n"  # the warm photosite
    )


def test_siril_partial_segment_goes_out_as_its_whole_line():
    """Issue 10: Siril has no partial column, and P lines along a bad column are averaged with their bad
    neighbours (15 % of the offset stayed); a segment of 16 photosites or more becomes a C (or L) line."""
    seg = [Defect(r, 5, K.COLUMN, 5.0, "", None, 40.0) for r in range(10, 30)]  # 20 of 60 rows
    few = [Defect(r, 9, K.COLUMN, 5.0, "", None, -40.0) for r in range(3)]  # too short: points
    m = DefectMap(CameraId("ZWO", "ASI294MM"), SensorGeometry(60, 80, cfa="", source="raw"), FrameStats(3), seg + few)
    assert siril_text(m).splitlines()[2:] == ["C 5 0 H", "P 9 0 C", "P 9 1 C", "P 9 2 C"]
    rows = [Defect(7, c, K.COLUMN, 5.0, "", None, -4.0) for c in range(30, 50)]
    m2 = DefectMap(m.camera, m.sensor, m.frames, rows)
    assert siril_text(m2).splitlines()[2:] == ["L 7 0 C"]


def test_siril_whole_row_and_unknown_geometry():
    row = [Defect(3, c, K.COLUMN, 5.0, "", None, 8.0) for c in range(8)]
    m = DefectMap(CameraId("ZWO", "ASI294MM"), SensorGeometry(6, 8, cfa="", source="raw"), FrameStats(3), row)
    assert siril_text(m).splitlines()[2:] == ["L 3 0 H"]
    # a whole row crossing a column that it completes: one C and one L line, no P
    col = [Defect(r, 5, K.COLUMN, 5.0, "", None, -2.0) for r in range(6) if r != 3]
    m2 = DefectMap(m.camera, m.sensor, m.frames, row + col)
    assert siril_text(m2).splitlines()[2:] == ["C 5 0 C", "L 3 0 H"]
    # height unknown: a column cannot be called whole
    m3 = DefectMap(m.camera, SensorGeometry(0, 0), m.frames, [Defect(0, 1, K.COLUMN, 1.0)])
    assert siril_text(m3).splitlines()[2:] == ["P 1 0 H"]


def test_csv_text_exact_and_parsable():
    text = csv_text(_small_map())
    lines = text.splitlines()
    assert lines[0] == CSV_HEADER == "row,col,kind,score,channel,first_seen,value"
    assert lines[1] == "0,2,column,11.0,R,,15.0"
    assert lines[4] == "1,3,hot,41.2,B,2024-05-06T07:08:09,812.0"
    assert "3,4,noisy,6.5,B,," in lines
    assert "2,7,cold,7.25,G,2024-05-06T07:08:09.999999,0.4" in lines
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 15
    assert {r["kind"] for r in rows} == {k.value for k in DefectKind}
    back = [(int(r["row"]), int(r["col"])) for r in rows]
    assert back == [(d.row, d.col) for d in _small_map().defects]


def test_image_maps_only_for_csv():
    """dcraw and RawTherapee repair RAW files only; Siril's cosme repairs the first channel of a colour image
    only (issue 10), so a JPEG-made map would leave two channels unrepaired: refused with the reason."""
    m = _small_map(source="image")
    with pytest.raises(ExportError, match="developed images"):
        dcraw_text(m)
    with pytest.raises(ExportError, match="developed images"):
        rawtherapee_text(m)
    with pytest.raises(ExportError, match="first channel"):
        siril_text(m)
    assert csv_text(m).count("\n") == 16


def test_siril_takes_a_map_of_grayscale_images_only():
    """Siril's cosme repairs a grayscale image whole: a map made from them (channels 1) is written for
    cosme; of colour images (3), of mixed ones (0) or of unrecorded channels (older maps) it is refused."""
    from dataclasses import replace

    m = _small_map(source="image")
    gray = replace(m, sensor=replace(m.sensor, channels=1))
    text = siril_text(gray)
    assert siril_command(gray) == "cosme"
    assert sum(line.startswith("P ") for line in text.splitlines()) > 0
    for channels in (3, 0, None):
        with pytest.raises(ExportError, match="first channel"):
            siril_text(replace(m, sensor=replace(m.sensor, channels=channels)))
    assert SensorGeometry.from_dict(gray.sensor.to_dict()) == gray.sensor
    assert "channels" not in m.sensor.to_dict()


def test_a_map_of_images_records_their_channels(tmp_path):
    """8-bit grayscale PNGs mapped as images (no --cfa) give channels 1, through a saved state too."""
    from rawmap.accumulate import Accumulator
    from rawmap.mapping import collect_inputs, map_files
    from rawmap.testing import write_scenario

    write_scenario(tmp_path / "s", "gray8", seed=3, shape=(60, 90), n_frames=6)
    body = map_files(collect_inputs([tmp_path / "s"])[0]).maps[0]
    assert body.defect_map.sensor.source == "image"
    assert body.defect_map.sensor.channels == 1
    body.accumulator.save(tmp_path / "s.rawstate")
    assert Accumulator.load(tmp_path / "s.rawstate").channels == 1


def test_siril_hint_names_cosme_for_mono_and_cosme_cfa_for_colour(tmp_path):
    from rawmap.report import export_lines

    colour = _small_map()
    mono = DefectMap(CameraId("ZWO", "ASI294MM"), SensorGeometry(6, 8, cfa="", source="raw"), FrameStats(3))
    assert export_lines(colour, ExportFormat.SIRIL, tmp_path / "c.lst")[-1].startswith(
        "use it in Siril with: cosme_cfa "
    )
    assert export_lines(mono, ExportFormat.SIRIL, tmp_path / "m.lst")[-1].startswith("use it in Siril with: cosme ")


def test_empty_map_gives_headers_only():
    m = DefectMap(NIKON, SensorGeometry(4, 4), FrameStats(1))
    for fmt in ExportFormat:
        text = export_text(m, fmt)
        assert text.endswith("\n")
        body = [ln for ln in text.splitlines() if not ln.startswith("#")]
        assert body == ([CSV_HEADER] if fmt is ExportFormat.CSV else [])


def test_default_filenames():
    m = _small_map()
    assert default_filename(m, "dcraw") == "nikon-corporation-nikon-d750-3001234.dcraw.txt"
    assert default_filename(m, "rawtherapee") == "Nikon D750 3001234.badpixels"
    assert default_filename(m, "siril") == "nikon-corporation-nikon-d750-3001234.lst"
    assert default_filename(m, "csv") == "nikon-corporation-nikon-d750-3001234-defects.csv"


def test_write_export_atomic_never_overwrites(tmp_path):
    m = _small_map()
    out = write_export(m, "csv", tmp_path / "a.csv")
    assert out == tmp_path / "a.csv"
    assert out.read_text(encoding="utf-8") == csv_text(m)
    with pytest.raises(OutputExistsError):
        write_export(m, ExportFormat.SIRIL, out)
    assert out.read_text(encoding="utf-8") == csv_text(m)  # untouched
    write_export(m, ExportFormat.SIRIL, out, overwrite=True)
    assert out.read_text(encoding="utf-8") == siril_text(m)
    # a folder: the default name inside it (RawTherapee's dark-frame folder)
    p = write_export(m, "rawtherapee", tmp_path)
    assert p == tmp_path / "Nikon D750 3001234.badpixels"
    assert p.read_text(encoding="utf-8") == rawtherapee_text(m)
    q = write_export(m, "rawtherapee", tmp_path / "shifted.badpixels", crop_origin=(0, 0))
    assert q.read_text(encoding="utf-8") == rawtherapee_text(m, crop_origin=(0, 0))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["Nikon D750 3001234.badpixels", "a.csv", "shifted.badpixels"]


def test_invalid_requests():
    m = _small_map()
    with pytest.raises(ExportError, match="format 'tiff'; choose one of: dcraw, rawtherapee, siril, csv"):
        export_text(m, "tiff")
    with pytest.raises(ExportError, match="unknown export format"):
        default_filename(m, "pixinsight")
    with pytest.raises(TypeError):
        export_text(m, "dcraw", crop_origin=(0, 0))  # an option dcraw does not have


def test_every_format_has_one_registry_entry():
    import inspect

    m = _small_map()
    assert list(FORMATS) == list(ExportFormat)
    for fmt, info in FORMATS.items():
        assert isinstance(info, FormatInfo) and info.format is fmt
        assert callable(info.write) and isinstance(info.hint, str) and info.suffix
        assert export_text(m, fmt) == info.write(m) and info.write(m).endswith("\n")
        assert default_filename(m, fmt) == info.filename(m) and info.filename(m).endswith(info.suffix)
        params = inspect.signature(info.write).parameters
        for option in info.options:  # every option the CLI may pass is a keyword of the writer
            assert params[option].kind is inspect.Parameter.KEYWORD_ONLY
        assert set(info.options) == {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert "{" not in info.hint.replace("{path}", "").replace("{siril_command}", "")  # what the report fills in
    assert FORMATS[ExportFormat.DCRAW].options == ("since_first_seen",)
    assert FORMATS[ExportFormat.RAWTHERAPEE].options == ("crop_origin",)


# --- the real peers ------------------------------------------------------------

RGGB = np.array([[0, 1], [1, 2]])
BLACK, WHITE = 512, 4095


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (600 + 12 * x + 7 * y).astype(np.uint16)


def _same_colour_neighbours(a: np.ndarray, r: int, c: int) -> np.ndarray:
    vals = [
        a[r + dy, c + dx]
        for dy in (-2, 0, 2)
        for dx in (-2, 0, 2)
        if (dy, dx) != (0, 0) and 0 <= r + dy < a.shape[0] and 0 <= c + dx < a.shape[1]
    ]
    return np.array(vals, dtype=np.float64)


def _dcraw_case(tmp_path: Path) -> tuple[Path, Path, np.ndarray, dict[str, list[tuple[int, int]]]]:
    """A 64x96 visible area at (8, 12) of a 72x112 frame, a gradient with planted outliers, and our -P list.

    ``listed`` must be repaired; ``later`` is listed with a first_seen one
    second after the photo was taken and must not be; ``unlisted`` must stay,
    among them the full-frame position of a listed one.
    """
    mosaic = _gradient(64, 96)
    listed = [(20, 30), (41, 51), (0, 0), (63, 95)]
    later = [(10, 60)]
    unlisted = [(28, 42), (50, 80)]  # (28, 42) = (20, 30) + margins (8, 12)
    for r, c in listed + later + unlisted:
        mosaic[r, c] = BLACK if (r, c) == (41, 51) else 4000
    full = np.full((72, 112), BLACK, dtype=np.uint16)
    dng = write_dng(
        tmp_path / "peer.dng", mosaic, cfa=RGGB, black=BLACK, white=WHITE,
        camera=CameraId("Rawmap", "Peer Body", "7"), time=T0, full_frame=full, margins=(8, 12),
    )  # fmt: skip
    first_seen = {(20, 30): T0, (41, 51): None, (0, 0): T0 - dt.timedelta(days=300), (63, 95): T0}
    first_seen[(10, 60)] = T0 + dt.timedelta(seconds=1)
    defects = [
        Defect(r, c, K.DEAD if (r, c) == (41, 51) else K.HOT, 30.0, "", first_seen[(r, c)], 0.0)
        for r, c in listed + later
    ]
    m = DefectMap(
        CameraId("Rawmap", "Peer Body", "7"),
        SensorGeometry(64, 96, 8, 12, 72, 112, "RGGB", "raw"),
        FrameStats(10),
        defects,
    )
    lst = write_export(m, ExportFormat.DCRAW, tmp_path / "list.txt", since_first_seen=True)
    return dng, lst, mosaic, {"listed": listed, "later": later, "unlisted": unlisted}


def _check_repairs(base: np.ndarray, fixed: np.ndarray, cases: dict[str, list[tuple[int, int]]]) -> None:
    changed = {tuple(int(v) for v in rc) for rc in np.argwhere(base != fixed)}
    assert changed == set(cases["listed"]), "exactly the listed photosites change"
    for r, c in cases["listed"]:
        nb = _same_colour_neighbours(base, r, c)
        before, after = float(base[r, c]), float(fixed[r, c])
        assert nb.min() - 1 <= after <= nb.max() + 1, (r, c, before, after, nb)
        assert abs(after - nb.mean()) < abs(before - nb.mean())
    for r, c in cases["later"] + cases["unlisted"]:
        assert fixed[r, c] == base[r, c] and base[r, c] in (BLACK, 4000)


@pytest.mark.peers
def test_dcraw_applies_exported_list(tmp_path):
    dcraw = require_peer("dcraw")
    dng, lst, mosaic, cases = _dcraw_case(tmp_path)
    assert lst.read_text().splitlines()[3:] == [
        f"0 0 {T0_UNIX - 300 * 86400}",  # 300 days before T0
        f"60 10 {T0_UNIX + 1}",
        f"30 20 {T0_UNIX}",
        "51 41 0",
        f"95 63 {T0_UNIX}",
    ]
    base = tifffile.imread(
        io.BytesIO(run_peer([dcraw, "-D", "-4", "-T", "-t", "0", "-c", dng], stdout_binary=True).stdout)
    )
    # dcraw reads the camera clock as UTC, whatever the zone it runs in (here UTC+14)
    fixed = tifffile.imread(
        io.BytesIO(
            run_peer(
                [dcraw, "-D", "-4", "-T", "-t", "0", "-c", "-P", lst, dng], env={"TZ": "RMP-14"}, stdout_binary=True
            ).stdout
        )
    )
    assert base.shape == fixed.shape == (64, 96), "dcraw -D writes the visible area only"
    np.testing.assert_array_equal(base, mosaic)
    _check_repairs(base, fixed, cases)


@pytest.mark.peers
def test_libraw_dcraw_emu_applies_exported_list(tmp_path):
    emu = require_peer("dcraw_emu")
    dng, lst, mosaic, cases = _dcraw_case(tmp_path)
    # dcraw_emu has no -D: no demosaicing, raw colour space, unit multipliers, no black subtraction
    args = [emu, "-disinterp", "-o", "0", "-4", "-T", "-r", "1", "1", "1", "1", "-k", "0", "-S", str(WHITE), "-t", "0"]
    run_peer([*args, "-Z", tmp_path / "base.tif", dng])
    run_peer([*args, "-P", lst, "-Z", tmp_path / "fixed.tif", dng], env={"TZ": "RMP+5"})

    def raw_values(p: Path) -> np.ndarray:
        rgb = tifffile.imread(p).astype(np.float64)
        assert rgb.shape == (64, 96, 3) and ((rgb > 0).sum(axis=-1) <= 1).all(), "one colour per photosite"
        return np.rint(rgb.sum(axis=-1) * WHITE / 65535).astype(np.int64)  # undo the scaling to 16 bits

    base, fixed = raw_values(tmp_path / "base.tif"), raw_values(tmp_path / "fixed.tif")
    np.testing.assert_array_equal(base, mosaic)
    _check_repairs(base, fixed, cases)


@pytest.mark.peers
def test_rawtherapee_applies_exported_badpixels(tmp_path):
    rt = require_peer("rawtherapee-cli")
    # RawTherapee 5.9 refuses raw files under ~100 kB: a 256x384 visible area at (8, 12) of 272x400
    h, w = 256, 384
    mosaic = _gradient(h, w) // 3 + 500
    listed = [(20, 30), (101, 203), (150, 77), (4, 4)]
    unlisted = [(60, 300), (200, 200), (28, 42)]  # (28, 42): full-frame position of listed (20, 30)
    for r, c in listed + unlisted:
        mosaic[r, c] = 4000
    full = np.full((h + 16, w + 16), BLACK, dtype=np.uint16)
    bodies = {
        "fixed": CameraId("NIKON CORPORATION", "NIKON D750", "3001", "exif"),
        "plain": CameraId("NIKON CORPORATION", "NIKON D750", "3002"),
    }
    for name, cam in bodies.items():
        write_dng(
            tmp_path / f"{name}.dng", mosaic, cfa=RGGB, black=BLACK, white=WHITE, camera=cam, time=T0,
            full_frame=full, margins=(8, 12),
        )  # fmt: skip
    m = DefectMap(
        bodies["fixed"], SensorGeometry(h, w, 8, 12, h + 16, w + 16, "RGGB", "raw"), FrameStats(10),
        [Defect(r, c, K.HOT, 30.0, "", None, 100.0) for r, c in listed],
    )  # fmt: skip
    darkframes = tmp_path / "darkframes"
    darkframes.mkdir()
    bp = write_export(m, ExportFormat.RAWTHERAPEE, darkframes)
    assert bp.name == "Nikon D750 3001.badpixels"
    out = tmp_path / "out"
    out.mkdir()
    env = rawtherapee_env(tmp_path / "home", dark_frames=darkframes)
    # one run for both bodies: "plain" has another serial and no serial-less file, so it stays unrepaired
    proc = run_peer([rt, "-o", out, "-t", "-b16", "-Y", "-c", tmp_path / "fixed.dng", tmp_path / "plain.dng"], env=env)
    log = proc.stdout + proc.stderr
    assert "Nikon D750 3001.badpixels found" in log
    assert f"Correcting {len(listed)} pixels from .badpixels" in log
    assert "Nikon D750 3002.badpixels not found" in log
    fixed = tifffile.imread(out / "fixed.tif").astype(np.float64)
    plain = tifffile.imread(out / "plain.tif").astype(np.float64)
    assert fixed.shape == plain.shape == (h - 8, w - 8, 3), "RawTherapee crops 4 px off each border"

    def at(img, r, c):  # visible-area photosite -> output pixel
        return img[r - 4, c - 4]

    diff = np.abs(fixed - plain).max(axis=-1)
    ys, xs = np.nonzero(diff)
    assert len(ys), "the listed pixels were corrected"
    lst = np.array(listed) - 4
    dist = np.min(np.maximum(np.abs(ys[:, None] - lst[:, 0]), np.abs(xs[:, None] - lst[:, 1])), axis=1)
    assert dist.max() <= 10, "differences only around listed photosites (demosaicing spreads a few pixels)"
    for r, c in listed:
        if min(r, c) < 8:
            continue  # next to the crop: no full neighbourhood in the output
        ring = np.stack([at(plain, r + dy, c + dx) for dy, dx in ((-3, 0), (3, 0), (0, -3), (0, 3))])
        lo, hi = ring.min(axis=0), ring.max(axis=0)
        assert (at(plain, r, c) > hi).any(), "the outlier shows without the file"
        assert ((at(fixed, r, c) >= lo * 0.9) & (at(fixed, r, c) <= hi * 1.1)).all(), (r, c, at(fixed, r, c), lo, hi)
    for r, c in unlisted:
        R, C = r - 4, c - 4
        np.testing.assert_array_equal(fixed[R - 5 : R + 6, C - 5 : C + 6], plain[R - 5 : R + 6, C - 5 : C + 6])
        assert (at(fixed, r, c) > at(fixed, r, c + 3)).any(), "unlisted outliers remain"


# --- a mapped series, exported and applied to the photos it was made from -------------------

STUCK_RC, HOT_RC = (20, 31), (70, 121)


@pytest.fixture(scope="module")
def mapped_series(tmp_path_factory: pytest.TempPathFactory):
    """12 generated DNG frames whose first (earliest) one is a 4 s exposure, so the planted stuck and
    hot photosites both show from it; returns (the frames in capture order, their map)."""
    import dataclasses

    from rawmap.mapping import map_files
    from rawmap.testing import PlantedDefect, SensorSpec, SeriesPlan, generate_series, plan_series

    folder = tmp_path_factory.mktemp("first-seen")
    planted = [
        PlantedDefect(*STUCK_RC, K.STUCK, {"value": 9000}),
        PlantedDefect(*HOT_RC, K.HOT, {"dark_dn_per_s": 50.0, "strength": "hot"}),
    ]
    plan = list(plan_series(12, np.random.default_rng(5), burst_length=0).frames)
    plan[0] = dataclasses.replace(plan[0], scene="night", exposure=4.0, iso=400.0)
    spec = SensorSpec(120, 160, top_margin=8, left_margin=12)
    truth = generate_series(folder, seed=11, spec=spec, defects=planted, plan=SeriesPlan(tuple(plan)))
    files = [folder / f.file for f in truth.frames]
    return files, map_files(files).maps[0].defect_map


def test_first_seen_of_defects_present_from_the_first_frame(mapped_series):
    files, m = mapped_series
    first_capture = read_info(files[0]).time
    assert first_capture == min(read_info(f).time for f in files) == m.frames.first_capture
    found = {(d.row, d.col): d for d in m.defects}
    assert found[STUCK_RC].kind is K.STUCK and found[HOT_RC].kind in (K.HOT, K.WARM)
    assert found[STUCK_RC].first_seen == found[HOT_RC].first_seen == first_capture
    stamp = dcraw_timestamp(first_capture)
    lines = dcraw_text(m, since_first_seen=True).splitlines()
    assert f"{STUCK_RC[1]} {STUCK_RC[0]} {stamp}" in lines and f"{HOT_RC[1]} {HOT_RC[0]} {stamp}" in lines


@pytest.mark.peers
def test_dcraw_repairs_the_first_frame_with_since_first_seen(mapped_series, tmp_path):
    """The very photo the map was made from is repaired at both photosites, dated lines or not."""
    dcraw = require_peer("dcraw")
    files, m = mapped_series

    def develop(*extra):
        out = run_peer([dcraw, "-D", "-4", "-T", "-t", "0", "-c", *extra, files[0]], stdout_binary=True).stdout
        return tifffile.imread(io.BytesIO(out)).astype(np.int64)

    base = develop()
    for since in (True, False):
        lst = write_export(m, ExportFormat.DCRAW, tmp_path / f"list-{since}.txt", since_first_seen=since)
        fixed = develop("-P", lst)
        changed = {tuple(int(v) for v in rc) for rc in np.argwhere(base != fixed)}
        assert {STUCK_RC, HOT_RC} <= changed <= {(d.row, d.col) for d in m.defects}
        for r, c in (STUCK_RC, HOT_RC):
            nb = _same_colour_neighbours(base, r, c)
            assert abs(fixed[r, c] - nb.mean()) < abs(base[r, c] - nb.mean()) / 4, (r, c)


def test_require_peer_skips_or_fails(monkeypatch):
    import peers

    monkeypatch.setattr(peers.shutil, "which", lambda name: None)
    monkeypatch.delenv(peers.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        peers.require_peer("dcraw")
    monkeypatch.setenv(peers.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="RAWMAP_REQUIRE_PEERS=1 requires it"):
        peers.require_peer("dcraw")
    monkeypatch.setattr(peers.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert peers.require_peer("dcraw") == "/usr/bin/dcraw"


def test_rawtherapee_serial_only_where_rawtherapee_reads_it():
    """RawTherapee 5.9 reads EXIF BodySerialNumber only: other serials would name a file it never opens."""
    for source in ("makernote", "dng", ""):
        cam = CameraId("Canon", "Canon EOS D30", "171048961", source)
        assert rawtherapee_name(cam) == "Canon EOS D30"
        assert not rawtherapee_reads_serial(cam)
    cam = CameraId("Canon", "Canon EOS D30", "171048961", "exif")
    assert rawtherapee_name(cam) == "Canon EOS D30 171048961" and rawtherapee_reads_serial(cam)
    # the source travels with the map file, and old maps without it count as unknown
    m = DefectMap(cam, SensorGeometry(4, 4), FrameStats(1))
    back = DefectMap.from_dict(m.to_dict())
    assert (
        back.camera.serial_source == "exif"
        and default_filename(back, "rawtherapee") == "Canon EOS D30 171048961.badpixels"
    )
    old = m.to_dict()
    del old["camera"]["serial_source"]
    assert default_filename(DefectMap.from_dict(old), "rawtherapee") == "Canon EOS D30.badpixels"


@pytest.mark.parametrize(
    ("name", "serial_source", "expected"),
    [
        ("canon-d30-a.CRW", "makernote", "Canon EOS D30.badpixels"),
        ("blackmagic-pocket4k.dng", "dng", "Blackmagic Pocket Cinema Camera 4K.badpixels"),
    ],
)
def test_rawtherapee_filename_of_real_files(samples_dir: Path, name: str, serial_source: str, expected: str):
    camera = read_info(samples_dir / name).camera
    assert camera.serial and camera.serial_source == serial_source
    assert rawtherapee_filename(camera) == expected


@pytest.mark.peers
def test_rawtherapee_finds_the_files_named_for_real_cameras(samples_dir: Path, tmp_path: Path):
    """The names rawmap gives the D30 CRW and the Blackmagic DNG are the ones RawTherapee opens."""
    rt = require_peer("rawtherapee-cli")
    darkframes = tmp_path / "darkframes"
    photos = [samples_dir / "canon-d30-a.CRW", samples_dir / "blackmagic-pocket4k.dng"]
    names = []
    for p in photos:
        info = read_info(p)
        m = DefectMap(
            info.camera, SensorGeometry(info.shape[0], info.shape[1], source="raw"), FrameStats(3),
            [Defect(10, 10, K.HOT, 30.0, "", None, 100.0)],
        )  # fmt: skip
        names.append(write_export(m, ExportFormat.RAWTHERAPEE, darkframes / default_filename(m, "rawtherapee")).name)
    out = tmp_path / "out"
    out.mkdir()
    env = rawtherapee_env(tmp_path / "home", dark_frames=darkframes)
    proc = run_peer([rt, "-o", out, "-t", "-Y", "-c", *photos], env=env, timeout=300)
    log = proc.stdout + proc.stderr
    for n in names:
        assert f"{n} found" in log, log[-2000:]
    assert log.count("Correcting 1 pixels from .badpixels") == 2


# --- Siril, measured with the real siril-cli ----------------------------------------------------------

SIRIL_H, SIRIL_W = 64, 96
#: (row, col, kind) of the point defects planted for Siril, row 0 at the top
SIRIL_POINTS = [(5, 7, DefectKind.HOT), (12, 40, DefectKind.HOT), (20, 81, DefectKind.STUCK), (33, 14, DefectKind.DEAD)]
#: a partial column segment (>= SIRIL_SEGMENT photosites), exported as its whole column
SIRIL_SEGMENT_ROWS, SIRIL_SEGMENT_COL = range(10, 30), 50


def _siril_frame(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(truth, defective) (H, W) uint16 frames, row 0 at the top: a flat 1000 DN field with noise, then the defects."""
    rng = np.random.default_rng(seed)
    truth = np.rint(1000 + rng.normal(0, 20, (SIRIL_H, SIRIL_W))).astype(np.uint16)
    bad = truth.astype(np.int64)
    for r, c, kind in SIRIL_POINTS:
        bad[r, c] = 200 if kind is DefectKind.DEAD else bad[r, c] + 5000
    bad[list(SIRIL_SEGMENT_ROWS), SIRIL_SEGMENT_COL] += 300
    return truth, bad.astype(np.uint16)


def _siril_map(camera: CameraId, cfa: str) -> DefectMap:
    chan = (lambda r, c: "RGGB"[2 * (r % 2) + c % 2]) if cfa else (lambda r, c: "")
    defects = [Defect(r, c, k, 9.0, chan(r, c), T0, 200.0 if k is DefectKind.DEAD else 0.0) for r, c, k in SIRIL_POINTS]
    defects += [
        Defect(r, SIRIL_SEGMENT_COL, DefectKind.COLUMN, 5.0, chan(r, SIRIL_SEGMENT_COL), None, 300.0)
        for r in SIRIL_SEGMENT_ROWS
    ]
    return DefectMap(
        camera=camera,
        sensor=SensorGeometry(SIRIL_H, SIRIL_W, 0, 0, SIRIL_H, SIRIL_W, cfa, "raw"),
        frames=FrameStats(10, 1, T0, T0, 60.0, 60.0, 100, 100),
        defects=defects,
    )


def _siril_apply(tmp_path: Path, image: Path, dmap: DefectMap) -> np.ndarray:
    """Export ``dmap`` with ``rawmap export --format siril``, apply it to ``image`` with siril-cli; the result as stored.

    The script loads the image, runs ``cosme_cfa`` (a Bayer map) or
    ``cosme`` (a monochrome one) with the list and saves a FITS file;
    ``siril-cli -d DIR -s SCRIPT`` runs headless.  ``HOME`` is a private
    folder, so no user's Siril settings take part.
    """
    from astropy.io import fits
    from test_cli import run

    siril = require_peer("siril-cli")
    map_file, lst = tmp_path / "map.json", tmp_path / "defects.lst"
    dmap.save(map_file)
    result = run("export", map_file, "--format", "siril", "-o", lst)
    assert result.exit_code == 0, result.output
    command = "cosme_cfa" if dmap.sensor.cfa else "cosme"
    assert f"{command} {lst}" in result.output  # the export's hint names the command used here
    script = tmp_path / "repair.ssf"
    script.write_text(f"requires 1.0.0\nsetext fits\nload {image.name}\n{command} {lst.name}\nsave repaired\n")
    proc = run_peer([siril, "-d", tmp_path, "-s", script], env={"HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert "Script execution finished successfully" in proc.stdout, proc.stdout[-2000:]
    with fits.open(tmp_path / "repaired.fits") as hdul:
        return np.array(hdul[0].data)


def _check_siril(before: np.ndarray, after: np.ndarray, truth: np.ndarray) -> None:
    """Every listed photosite changed (toward the truth), nothing else changed; the segment's column as a whole."""
    changed = before != after
    listed = np.zeros_like(changed)
    for r, c, _ in SIRIL_POINTS:
        listed[r, c] = True
    listed[:, SIRIL_SEGMENT_COL] = True  # exported as "C 50 0 H": Siril repairs the whole column
    assert not np.any(changed & ~listed), np.argwhere(changed & ~listed)[:10]
    for r, c, _ in SIRIL_POINTS:
        assert changed[r, c] and abs(int(after[r, c]) - int(truth[r, c])) < 120, (r, c, after[r, c], truth[r, c])
    assert changed[list(SIRIL_SEGMENT_ROWS), SIRIL_SEGMENT_COL].all()
    assert np.count_nonzero(changed[:, SIRIL_SEGMENT_COL]) >= 0.9 * SIRIL_H  # healthy ones interpolated too
    offset = after[:, SIRIL_SEGMENT_COL].astype(np.int64) - truth[:, SIRIL_SEGMENT_COL]
    assert abs(float(np.median(offset[list(SIRIL_SEGMENT_ROWS)]))) < 30  # the 300 DN offset is gone


def _fits_frame(path: Path, stored: np.ndarray, **keys: object) -> Path:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(stored)
    for key, value in keys.items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path


@pytest.mark.peers
@pytest.mark.parametrize("row_order", ["BOTTOM-UP", ""], ids=["bottom-up", "no-roworder"])
@pytest.mark.parametrize("bayer", [True, False], ids=["bayer-cosme_cfa", "mono-cosme"])
def test_siril_applies_exported_list_to_fits(tmp_path, bayer, row_order):
    truth, bad = _siril_frame()
    keys: dict[str, object] = {"INSTRUME": "ZWO ASI2600MC Pro" if bayer else "ZWO ASI2600MM Pro"}
    if bayer:
        keys["BAYERPAT"] = "RGGB" if row_order else "GBRG"  # without ROWORDER: of the first rows stored
    if row_order:
        keys["ROWORDER"] = row_order
    image = _fits_frame(tmp_path / "light.fits", bad[::-1], **keys)  # stored bottom-up, as FITS and Siril have it
    info = read_info(image)
    assert info.cfa_string == ("RGGB" if bayer else "")
    after = _siril_apply(tmp_path, image, _siril_map(info.camera, info.cfa_string))
    # Siril keeps the file's row order: stored row 0 is the bottom row, rawmap's row H-1
    _check_siril(bad, after[::-1], truth)


@pytest.mark.peers
@pytest.mark.parametrize("fmt", ["tiff16", "png8"])
def test_siril_applies_exported_list_to_a_grayscale_image(tmp_path, fmt):
    """A map made from grayscale images (no --cfa: a developed image of one channel), exported for
    cosme and applied by siril-cli to a 16-bit TIFF and an 8-bit PNG: the listed pixels change (the
    segment's column as a whole line) and no other."""
    from dataclasses import replace

    from PIL import Image

    truth, bad = _siril_frame()
    if fmt == "png8":
        bad = (np.minimum(bad, 2040) // 8).astype(np.uint8)
        image = tmp_path / "light.png"
        Image.fromarray(bad).save(image)
    else:
        image = tmp_path / "light.tif"
        tifffile.imwrite(image, bad)
    info = read_info(image)
    assert info.channels == 1
    dmap = _siril_map(info.camera, "")
    dmap = replace(dmap, sensor=replace(dmap.sensor, source="image", channels=1))
    after = _siril_apply(tmp_path, image, dmap)[::-1]  # Siril's FITS holds the rows bottom-up
    changed = after != bad
    listed = np.zeros_like(changed)
    for r, c, _ in SIRIL_POINTS:
        listed[r, c] = True
    listed[:, SIRIL_SEGMENT_COL] = True
    assert not np.any(changed & ~listed), np.argwhere(changed & ~listed)[:10]
    assert all(changed[r, c] for r, c, _ in SIRIL_POINTS)
    assert changed[list(SIRIL_SEGMENT_ROWS), SIRIL_SEGMENT_COL].all()


@pytest.mark.peers
def test_siril_applies_exported_list_to_dng(tmp_path):
    truth, bad = _siril_frame()
    image = write_dng(
        tmp_path / "light.dng", bad, cfa=RGGB, black=0, white=16383, camera=CameraId("Rawmap", "Siril Test")
    )
    after = _siril_apply(tmp_path, image, _siril_map(read_info(image).camera, "RGGB"))
    # Siril saves the raw frame bottom-up (ROWORDER BOTTOM-UP): the rows of the DNG in reverse
    _check_siril(bad, after[::-1], truth)


@pytest.mark.peers
def test_siril_1_0_counts_rows_of_a_top_down_fits_from_its_last_row(tmp_path):
    """Measured: Siril 1.0 does not turn a ``ROWORDER = 'TOP-DOWN'`` file at load, so a list's ``y`` counts
    from the last stored row, which is rawmap's bottom row: the list of a map made from such files repairs
    the mirrored rows (later Siril turns such files bottom-up at load, and the rows agree)."""
    siril = require_peer("siril-cli")
    version = run_peer([siril, "--version"]).stdout.split()[-1]
    if not version.startswith("1.0."):
        pytest.skip(f"measured with Siril 1.0; this is {version}")
    truth, bad = _siril_frame()
    image = _fits_frame(tmp_path / "light.fits", bad, INSTRUME="ZWO ASI2600MM Pro", ROWORDER="TOP-DOWN")
    info = read_info(image)
    after = _siril_apply(tmp_path, image, _siril_map(info.camera, ""))
    changed = {tuple(rc) for rc in np.argwhere(bad != after).tolist() if rc[1] != SIRIL_SEGMENT_COL}
    assert changed == {(SIRIL_H - 1 - r, c) for r, c, _ in SIRIL_POINTS}
