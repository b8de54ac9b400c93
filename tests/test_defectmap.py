"""rawmap.defectmap: the map dataclass, its queries, and the versioned JSON file format."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rawmap.defectmap import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Defect,
    DefectKind,
    DefectMap,
    FrameStats,
    SensorGeometry,
    merge_defects,
)
from rawmap.errors import MapFormatError
from rawmap.fileio import OutputExistsError
from rawmap.frame import CameraId

CAM = CameraId("Canon", "Canon EOS D30", "171048961")
SENSOR = SensorGeometry(12, 16, top_margin=6, left_margin=48, full_height=18, full_width=64, cfa="RGGB")
FRAMES = FrameStats(
    40,
    skipped=1,
    first_capture=dt.datetime(2026, 3, 1, 12, 0),
    last_capture=dt.datetime(2026, 3, 9, 23, 59, 30),
    exposure_min=0.00025,
    exposure_max=30.0,
    iso_min=100.0,
    iso_max=6400.0,
    views=17,
    darks=4,
    flats=1,
)
CREATED = dt.datetime(2026, 11, 25, 16, 0, tzinfo=dt.UTC)

# deliberately out of order; scores/values already at the file's precision (3 / 4 decimals)
HOT = Defect(7, 3, DefectKind.HOT, 41.2, "G", first_seen=dt.datetime(2026, 3, 2, 21, 14), value=812.0, views=9)
STUCK = Defect(2, 9, DefectKind.STUCK, 12.5, "R", value=9000.0)
COLUMN = Defect(11, 15, DefectKind.COLUMN, 5.25, "G", first_seen=dt.datetime(2026, 3, 1, 12, 0), value=-3.5)
DEAD = Defect(2, 1, DefectKind.DEAD, 30.0, "B")  # no value: NaN, left out of the file


def _map(defects: list[Defect] | None = None) -> DefectMap:
    return DefectMap(
        CAM,
        SENSOR,
        FRAMES,
        defects=[HOT, STUCK, COLUMN] if defects is None else defects,
        thresholds={"k": 6.0, "min_scenes": 3},
        created=CREATED,
    )


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"the map file holds {name}, which is not JSON")


def assert_one_line(err: Exception, source: str | Path, fragment: str) -> None:
    msg = str(err)
    assert msg.startswith(f"{source}: "), msg
    assert fragment in msg, msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- round trip


def test_json_round_trip_is_equal():
    dmap = _map()
    text = dmap.to_json()
    assert text.endswith("\n")
    back = DefectMap.from_dict(json.loads(text))
    assert back == dmap
    assert back.to_json() == text


def test_evidence_counts_round_trip_and_are_checked(tmp_path):
    d = json.loads(_map().to_json())
    assert (d["frames"]["views"], d["frames"]["darks"], d["frames"]["flats"]) == (17, 4, 1)
    hot = next(x for x in d["defects"] if x["kind"] == "hot")
    assert hot["views"] == 9 and all("views" not in x for x in d["defects"] if x["kind"] != "hot")
    hot["views"] = -2
    with pytest.raises(MapFormatError, match="views"):
        DefectMap.from_dict(d, source="m.json")


def test_file_layout():
    d = json.loads(_map().to_json(), parse_constant=_refuse_constant)
    assert d["format"] == FORMAT_NAME == "rawmap-defect-map"
    assert d["version"] == FORMAT_VERSION == 1
    assert d["created"] == "2026-11-25T16:00:00+00:00"
    assert d["software"].startswith("rawmap ")
    assert d["camera"] == {"make": "Canon", "model": "Canon EOS D30", "serial": "171048961"}
    assert d["sensor"] == {
        "height": 12,
        "width": 16,
        "top_margin": 6,
        "left_margin": 48,
        "full_height": 18,
        "full_width": 64,
        "cfa": "RGGB",
        "source": "raw",
    }
    assert d["frames"] == {
        "count": 40,
        "skipped": 1,
        "first_capture": "2026-03-01T12:00:00",
        "last_capture": "2026-03-09T23:59:30",
        "exposure_min": 0.00025,
        "exposure_max": 30.0,
        "iso_min": 100.0,
        "iso_max": 6400.0,
        "views": 17,
        "darks": 4,
        "flats": 1,
    }
    assert d["thresholds"] == {"k": 6.0, "min_scenes": 3}
    assert d["defects"] == [
        {"row": 2, "col": 9, "kind": "stuck", "score": 12.5, "channel": "R", "first_seen": None, "value": 9000.0},
        {
            "row": 7,
            "col": 3,
            "kind": "hot",
            "score": 41.2,
            "channel": "G",
            "first_seen": "2026-03-02T21:14:00",
            "value": 812.0,
            "views": 9,
        },
        {
            "row": 11,
            "col": 15,
            "kind": "column",
            "score": 5.25,
            "channel": "G",
            "first_seen": "2026-03-01T12:00:00",
            "value": -3.5,
        },
    ]


def test_first_seen_round_trip():
    for first in (None, dt.datetime(2026, 3, 2, 21, 14, 5), dt.datetime(2026, 3, 2, 21, 14, tzinfo=dt.UTC)):
        d = dataclasses.replace(HOT, first_seen=first)
        back = Defect.from_dict(json.loads(json.dumps(d.to_dict())))
        assert back.first_seen == first
        assert back == d


def test_nan_value_is_left_out_and_read_back_as_nan():
    d = DEAD.to_dict()
    assert "value" not in d
    assert d == {"row": 2, "col": 1, "kind": "dead", "score": 30.0, "channel": "B", "first_seen": None}
    text = _map([DEAD, STUCK]).to_json()
    json.loads(text, parse_constant=_refuse_constant)  # strict JSON: no NaN literal
    back = DefectMap.from_dict(json.loads(text))
    dead = back.defects[0]
    assert math.isnan(dead.value)
    assert dataclasses.replace(dead, value=0.0) == dataclasses.replace(DEAD, value=0.0)
    assert back.defects[1] == STUCK
    assert back.to_json() == text


def test_score_and_value_are_rounded_in_the_file():
    d = Defect(0, 0, DefectKind.HOT, 41.23456, "G", value=812.123456).to_dict()
    assert (d["score"], d["value"]) == (41.235, 812.1235)


def test_load_reads_what_save_wrote(tmp_path):
    dmap = _map([DEAD, HOT, STUCK, COLUMN])
    path = dmap.save(tmp_path / "body.json")
    assert path == tmp_path / "body.json"
    assert path.read_text(encoding="utf-8") == dmap.to_json()
    back = DefectMap.load(path)
    assert back.to_dict() == dmap.to_dict()
    assert [d for d in back.defects if d.kind is not DefectKind.DEAD] == [STUCK, HOT, COLUMN]


def test_unknown_keys_are_ignored():
    d = _map().to_dict()
    d["future"] = {"anything": 1}
    d["defects"][0]["confidence"] = 0.9
    assert DefectMap.from_dict(d) == _map()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("fmt", [None, "rawmap-accumulator", "RAWMAP-DEFECT-MAP"])
def test_refuses_wrong_format(fmt):
    d = _map().to_dict()
    if fmt is None:
        del d["format"]
    else:
        d["format"] = fmt
    with pytest.raises(MapFormatError) as exc:
        DefectMap.from_dict(d, source="maps/body.json")
    assert_one_line(exc.value, "maps/body.json", "not a rawmap defect map")


@pytest.mark.parametrize("data", [[], "rawmap-defect-map", 1, None])
def test_refuses_json_that_is_not_an_object(data):
    with pytest.raises(MapFormatError) as exc:
        DefectMap.from_dict(data, source="x.json")
    assert_one_line(exc.value, "x.json", "not a rawmap defect map")


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_refuses_newer_version(tmp_path, version):
    d = _map().to_dict()
    d["version"] = version
    path = tmp_path / "new.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, f"version {version} is not supported")
    assert "upgrade rawmap" in str(exc.value)


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, None])
def test_refuses_invalid_version(version):
    d = _map().to_dict()
    d["version"] = version
    with pytest.raises(MapFormatError) as exc:
        DefectMap.from_dict(d, source="m.json")
    assert_one_line(exc.value, "m.json", f"defect-map version {version!r} is not supported")


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("camera"),
        lambda d: d.pop("sensor"),
        lambda d: d["sensor"].pop("height"),
        lambda d: d["defects"][0].update(kind="lukewarm"),
        lambda d: d["defects"][0].update(row="twelve"),
        lambda d: d["defects"][0].pop("col"),
        lambda d: d["defects"][0].update(first_seen="yesterday"),
        lambda d: d.update(defects=None),
        lambda d: d.update(created="today"),
        lambda d: d.update(camera=None),
        lambda d: d.update(camera=["Canon"]),
        lambda d: d.update(frames=None),
        lambda d: d.update(sensor="12x16"),
        lambda d: d.update(defects=[[2, 9, "stuck"]]),
    ],
    ids=[
        "no-camera",
        "no-sensor",
        "no-height",
        "unknown-kind",
        "bad-row",
        "no-col",
        "bad-first-seen",
        "null-defects",
        "bad-created",
        "null-camera",
        "list-camera",
        "null-frames",
        "text-sensor",
        "list-defect",
    ],
)
def test_refuses_damaged_map(damage):
    d = _map().to_dict()
    damage(d)
    with pytest.raises(MapFormatError) as exc:
        DefectMap.from_dict(d, source="m.json")
    assert_one_line(exc.value, "m.json", "damaged defect map")
    assert "rawmap map" in str(exc.value)


def _hand_edited(tmp_path: Path, edit, name: str = "edited.json") -> Path:
    """The map of :func:`_map` (12x16 sensor) written as a user's editor would, after ``edit(dict)``."""
    d = _map().to_dict()
    edit(d)
    path = tmp_path / name
    path.write_text(json.dumps(d, indent=1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "edit, fragment",
    [
        # the two: a traceback in repair, and a wrapped index that repairs a healthy photosite
        (
            lambda d: d["defects"][1].update(row=99999),
            'defect #2 {"row": 99999 ~ row 99999, col 3 lies outside the 12x16 sensor (rows 0-11, cols 0-15)',
        ),
        (
            lambda d: d["defects"][0].update(row=-3),
            'defect #1 {"row": -3 ~ row -3, col 9 lies outside the 12x16 sensor',
        ),
        (lambda d: d["defects"][2].update(col=16), 'defect #3 {"row": 11 ~ row 11, col 16 lies outside'),
        (lambda d: d["defects"][0].update(col=True), 'defect #1 {"row": 2 ~ col true is not a whole number'),
        (lambda d: d["defects"][0].update(col=9.0), "col 9.0 is not a whole number"),
        (lambda d: d["defects"][0].update(row="2"), 'defect #1 {"row": "2" ~ row "2" is not a whole number'),
        (lambda d: d["defects"][0].update(row=None), "row null is not a whole number"),
        (
            lambda d: d["defects"][1].update(kind="lukewarm"),
            'defect #2 {"row": 7 ~ unknown kind "lukewarm" (one of stuck, dead, hot, warm, cold, noisy, column)',
        ),
        (lambda d: d["defects"][1].update(kind=["hot"]), 'kind ["hot"] is not a string'),
        (lambda d: d["defects"][1].update(score="high"), 'score "high" is not a number'),
        (lambda d: d["defects"][1].update(score=False), "score false is not a number"),
        (lambda d: d["defects"][1].update(channel="X"), "channel \"X\" is not one of '', 'R', 'G', 'B'"),
        (lambda d: d["defects"][1].update(manual="yes"), 'manual "yes" is not true or false'),
        (
            lambda d: d["defects"].append(dict(d["defects"][0], kind="hot")),
            'defect #4 {"row": 2 ~ a second entry for row 2, col 9',
        ),
        (lambda d: d["defects"].append([3, 4, "hot"]), 'defect #4 [3, 4, "hot"] is [3, 4, "hot"], not an object'),
        (
            lambda d: d.update(dropped=[{"row": 12, "col": 0}]),
            'dropped #1 {"row": 12 ~ row 12, col 0 lies outside the 12x16 sensor',
        ),
        (lambda d: d.update(dropped=[{"row": 1, "col": -1}]), 'dropped #1 {"row": 1 ~ row 1, col -1 lies outside'),
        (lambda d: d["sensor"].update(height=0), "sensor: height 0 is out of range (it must be 1 to 65,535)"),
        (lambda d: d["sensor"].update(width=70000), "sensor: width 70000 is out of range"),
        (
            lambda d: d["sensor"].update(height=65535, width=65535),
            "is 4,294,836,225 photosites, more than the 536,870,912 rawmap reads",
        ),
        (lambda d: d["sensor"].update(top_margin=-6), "sensor: top_margin -6 is out of range"),
        (lambda d: d["sensor"].update(cfa="RGGX"), 'sensor: cfa "RGGX" is not four letters of R, G, B'),
        (lambda d: d["sensor"].update(source="film"), "sensor: source \"film\" is not one of 'raw', 'image'"),
        (lambda d: d["frames"].update(count=-1), "frames: count -1 is out of range"),
        (lambda d: d["camera"].update(make=42), "camera: make 42 is not a string"),
        (lambda d: d.update(thresholds=[]), "thresholds [] is not an object"),
    ],
)
def test_load_refuses_hand_edited_entries_naming_the_file_and_the_entry(tmp_path, edit, fragment):
    # issue 13: every reader of a map (repair, export, show, library, edit) reads it through load
    path = _hand_edited(tmp_path, edit)
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, "damaged defect map (")
    for part in fragment.split(" ~ "):  # the entry (its text, shortened) ~ what is wrong with it
        assert part in str(exc.value), str(exc.value)
    assert "correct it or make it again with `rawmap map`" in str(exc.value)
    # the same through from_dict (maps handed over in code)
    with pytest.raises(MapFormatError, match="damaged defect map"):
        DefectMap.from_dict(json.loads(path.read_text()), source="m.json")


def test_load_accepts_the_edge_photosites_and_reads_them_exactly(tmp_path):
    def corners(d):
        d["defects"] = [{"row": 0, "col": 0, "kind": "hot"}, {"row": 11, "col": 15, "kind": "dead", "score": 3}]
        d["dropped"] = [{"row": 11, "col": 0}]

    back = DefectMap.load(_hand_edited(tmp_path, corners))
    assert [(d.row, d.col, d.kind, d.score) for d in back.defects] == [
        (0, 0, DefectKind.HOT, 0.0),
        (11, 15, DefectKind.DEAD, 3.0),
    ]
    assert back.dropped == [(11, 0)]
    m = back.mask()
    assert m.sum() == 2 and m[0, 0] and m[11, 15]


def test_mask_refuses_a_map_built_with_a_defect_outside_its_sensor():
    # a map made in code bypasses the file checks: the wrapped index must not mark another photosite
    for r, c in ((-3, 4), (12, 4), (4, 16)):
        with pytest.raises(MapFormatError, match=f"row {r}, col {c} lies outside the 12x16 sensor"):
            _map([Defect(r, c, DefectKind.HOT, 1.0)]).mask()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[" * 1000 + "]" * 1000, "JSON nested too deeply to read"),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "JSON nested too deeply to read"),
        ("MAP.replace('41.2', 'Infinity')", "Infinity is not a JSON number"),
        ("MAP.replace('41.2', '-Infinity')", "-Infinity is not a JSON number"),
        ("MAP.replace('41.2', 'NaN')", "NaN is not a JSON number"),
        ("MAP.replace('41.2', '1e999')", "the number 1e999 overflows to infinity"),
        ("MAP.replace('\"row\": 7', '\"row\": ' + '7' * 100_000)", "an integer of more than 4,300 digits"),
        (
            "MAP.replace('\"height\": 12', '\"height\": ' + '1' * 4000)",
            "sensor: height 1111111111111111111111111111111111111...",
        ),
    ],
    ids=["depth-1000", "depth-100000", "infinity", "minus-infinity", "nan", "overflow", "100000-digits", "4000-digits"],
)
def test_load_refuses_hostile_json_in_one_line(tmp_path, text, fragment):
    if text.startswith("MAP"):
        text = eval(text, {"MAP": _map().to_json()})  # noqa: S307 - test data only
    path = tmp_path / "hostile.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, fragment)
    assert len(str(exc.value)) < 400


def test_load_bounds_the_size_and_the_number_of_defects(tmp_path, monkeypatch):
    import rawmap.defectmap as dm

    assert (dm.MAX_MAP_BYTES, dm.MAX_DEFECTS) == (256 * 1024 * 1024, 1_000_000)  # the README's figures
    path = _map().save(tmp_path / "body.json")
    # a file over the size bound is refused before it is parsed (the bound lowered: no 256 MB in a test)
    monkeypatch.setattr(dm, "MAX_MAP_BYTES", path.stat().st_size - 1)
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, "larger than ")
    monkeypatch.setattr(dm, "MAX_MAP_BYTES", 256 * 1024 * 1024)
    # a file of many small values (no objects to count) is refused unparsed
    zeros = tmp_path / "zeros.json"
    zeros.write_text('{"format": "rawmap-defect-map", "version": 1, "thresholds": {"x": [' + "0," * 5000 + "0]}}")
    monkeypatch.setattr(dm, "_MAX_VALUES", 4999)
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(zeros)
    assert_one_line(exc.value, zeros, "more than 4,999 values")
    monkeypatch.undo()
    assert dm._MAX_VALUES == 16 * dm.MAX_DEFECTS + 100_000  # 16 values per defect (the README's bound)
    # more defects than the bound: refused while parsing (objects counted), and by from_dict
    monkeypatch.setattr(dm, "MAX_DEFECTS", 2)
    with pytest.raises(MapFormatError) as exc:
        DefectMap.from_dict(_map().to_dict(), source="m.json")
    assert_one_line(exc.value, "m.json", "3 defects, more than the 2 rawmap reads")
    entries = [{"row": i // 16 % 12, "col": i % 16, "kind": "hot"} for i in range(1100)]
    many = _hand_edited(tmp_path, lambda d: d.update(defects=entries))
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(many)
    assert_one_line(exc.value, many, "more than 1,004 entries")  # 2 x MAX_DEFECTS + 1000 objects parsed at most
    monkeypatch.setattr(dm, "MAX_DEFECTS", 1_000_000)
    with pytest.raises(MapFormatError) as exc:  # read to the end now, and refused for what it holds
        DefectMap.load(many)
    assert_one_line(exc.value, many, "defect #193 {")
    assert "a second entry for row 0, col 0" in str(exc.value)


def test_load_refuses_a_file_that_never_ends(tmp_path):
    # /dev/zero has no size to check: the read itself stops at the bound
    import rawmap.defectmap as dm

    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    old = dm.MAX_MAP_BYTES
    try:
        dm.MAX_MAP_BYTES = 1 << 20
        with pytest.raises(MapFormatError) as exc:
            DefectMap.load("/dev/zero")
    finally:
        dm.MAX_MAP_BYTES = old
    assert_one_line(exc.value, "/dev/zero", "larger than 1 MiB")


def test_load_refuses_text_that_is_not_json(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("hot pixel at 120, 431\n", encoding="utf-8")
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, "not JSON (Expecting value at line 1)")


def test_load_refuses_other_json(tmp_path):
    path = tmp_path / "package.json"
    path.write_text('{"name": "rawmap", "version": 1}', encoding="utf-8")
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, "not a rawmap defect map")


def test_load_refuses_binary_file(tmp_path):
    path = tmp_path / "IMG_0001.json"
    path.write_bytes(b"II*\x00\x08\x00\x00\x00\xfe\x00\x04\x00\x01\x00\x00\x00\xff\xd8\xff\xe0" * 8)
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, "binary file")


def test_load_refuses_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(path)
    assert_one_line(exc.value, path, "no such map file")


def test_load_refuses_folder(tmp_path):
    with pytest.raises(MapFormatError) as exc:
        DefectMap.load(tmp_path)
    assert_one_line(exc.value, tmp_path, "cannot read map")


# --------------------------------------------------------------------------- queries


def test_defects_sorted_by_row_then_col():
    defects = [
        Defect(5, 2, DefectKind.HOT, 1.0),
        Defect(0, 7, DefectKind.HOT, 1.0),
        Defect(5, 0, DefectKind.DEAD, 1.0),
        Defect(0, 3, DefectKind.STUCK, 1.0),
        Defect(11, 1, DefectKind.COLD, 1.0),
    ]
    dmap = _map(defects)
    assert [(d.row, d.col) for d in dmap.defects] == [(0, 3), (0, 7), (5, 0), (5, 2), (11, 1)]
    assert defects[0].row == 5  # the caller's list is left as it was
    # a file written in another order is read back sorted
    d = _map().to_dict()
    d["defects"].reverse()
    assert [(x.row, x.col) for x in DefectMap.from_dict(d).defects] == [(2, 9), (7, 3), (11, 15)]


def test_coordinates():
    c = _map([HOT, STUCK, COLUMN, DEAD]).coordinates()
    assert c.dtype == np.int64
    np.testing.assert_array_equal(c, np.array([[2, 1], [2, 9], [7, 3], [11, 15]]))


def test_mask():
    m = _map([HOT, STUCK, COLUMN, DEAD]).mask()
    assert m.shape == (12, 16) and m.dtype == bool
    expected = np.zeros((12, 16), bool)
    expected[[2, 2, 7, 11], [1, 9, 3, 15]] = True
    np.testing.assert_array_equal(m, expected)


def test_mask_follows_the_defects_when_they_change_in_place():
    # the checked coordinates are kept between calls (one map, many photos): a change must be seen
    dmap = _map([HOT, STUCK])
    first = dmap.mask()
    assert first.sum() == 2 and dmap.mask().sum() == 2
    dmap.defects[0] = Defect(5, 5, DefectKind.DEAD, 1.0)  # replaced in place: same list, same length
    m = dmap.mask()
    assert m[5, 5] and not m[2, 1] and m.sum() == 2
    dmap.defects.append(Defect(6, 6, DefectKind.HOT, 1.0))
    assert dmap.mask()[6, 6]
    dmap.defects.append(Defect(40, 6, DefectKind.HOT, 1.0))  # outside: refused, not served from before
    with pytest.raises(MapFormatError, match="row 40, col 6 lies outside"):
        dmap.mask()
    dmap.defects.pop()
    m = dmap.mask()
    m[:] = False  # the caller's own array: the next mask is whole
    assert dmap.mask().sum() == 3


def test_counts():
    dmap = _map([HOT, STUCK, COLUMN, DEAD, Defect(0, 0, DefectKind.HOT, 8.0), Defect(0, 2, DefectKind.WARM, 7.0)])
    counts = dmap.counts()
    assert list(counts) == list(DefectKind)
    assert counts == {
        DefectKind.STUCK: 1,
        DefectKind.DEAD: 1,
        DefectKind.HOT: 2,
        DefectKind.WARM: 1,
        DefectKind.COLD: 0,
        DefectKind.NOISY: 0,
        DefectKind.COLUMN: 1,
    }
    assert len(dmap) == 6


def test_empty_map_queries():
    dmap = _map([])
    assert len(dmap) == 0
    c = dmap.coordinates()
    assert c.shape == (0, 2) and c.dtype == np.int64
    m = dmap.mask()
    assert m.shape == (12, 16) and not m.any()
    assert dmap.counts() == {k: 0 for k in DefectKind}
    assert DefectMap.from_dict(json.loads(dmap.to_json())) == dmap


# --------------------------------------------------------------------------- save


def test_save_refuses_to_overwrite_then_overwrites(tmp_path):
    path = tmp_path / "body.json"
    first = _map([STUCK])
    first.save(path)
    before = path.read_bytes()
    second = _map([STUCK, HOT])
    with pytest.raises(OutputExistsError) as exc:
        second.save(path)
    assert_one_line(exc.value, path, "already exists")
    assert path.read_bytes() == before
    assert second.save(path, overwrite=True) == path
    assert DefectMap.load(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["body.json"]  # no temporary files left


# --------------------------------------------------------------------------- merge_defects


def test_merge_defects_keeps_highest_score_per_photosite():
    a = [Defect(5, 5, DefectKind.HOT, 3.0, value=1.0), Defect(1, 1, DefectKind.STUCK, 10.0, value=9000.0)]
    b = [
        Defect(5, 5, DefectKind.NOISY, 7.5, value=2.0),
        Defect(1, 1, DefectKind.DEAD, 2.0, value=0.0),
        Defect(0, 9, DefectKind.COLD, 4.0, value=0.3),
    ]
    c = (d for d in [Defect(5, 5, DefectKind.COLUMN, 7.0, value=3.0)])  # any iterable
    merged = merge_defects(a, b, c)
    assert merged == [
        Defect(0, 9, DefectKind.COLD, 4.0, value=0.3),
        Defect(1, 1, DefectKind.STUCK, 10.0, value=9000.0),
        Defect(5, 5, DefectKind.NOISY, 7.5, value=2.0),
    ]


def test_merge_defects_edge_cases():
    assert merge_defects() == []
    assert merge_defects([], []) == []
    one = [Defect(3, 1, DefectKind.HOT, 1.0, value=5.0), Defect(0, 2, DefectKind.HOT, 2.0, value=5.0)]
    assert merge_defects(one) == [one[1], one[0]]


# --------------------------------------------------------------------------- edits by hand


def test_edited_adds_drops_and_round_trips(tmp_path):
    from rawmap.export import dcraw_text

    dmap = _map()  # HOT (7, 3), STUCK (2, 9), COLUMN (11, 15); RGGB
    ed = dmap.edited(add=[(4, 5, None), (2, 9, DefectKind.DEAD), (7, 3, None)], drop=[(11, 15), (0, 0)])
    got = {(d.row, d.col): d for d in ed.defects}
    assert sorted(got) == [(2, 9), (4, 5), (7, 3)]
    new = got[(4, 5)]  # hot by default, the channel of its CFA position, no evidence, no date
    assert (new.kind, new.channel, new.score, new.first_seen, new.manual) == (DefectKind.HOT, "G", 0.0, None, True)
    assert math.isnan(new.value)
    assert got[(2, 9)] == dataclasses.replace(STUCK, kind=DefectKind.DEAD, manual=True)  # kind changed by hand
    assert got[(7, 3)] == dataclasses.replace(HOT, manual=True)  # confirmed: the detection's record kept
    assert ed.dropped == [(0, 0), (11, 15)]
    assert dmap.defects == [STUCK, HOT, COLUMN] and dmap.dropped == []  # the original is untouched

    path = ed.save(tmp_path / "edited.json")
    raw = json.loads(path.read_text(), parse_constant=_refuse_constant)
    assert raw["dropped"] == [{"row": 0, "col": 0}, {"row": 11, "col": 15}]
    assert [d.get("manual") for d in raw["defects"]] == [True, True, True]
    assert "manual" not in dmap.to_dict()["defects"][0] and "dropped" not in dmap.to_dict()  # only when present
    back = DefectMap.load(path)
    assert back.to_json() == ed.to_json() and back.dropped == ed.dropped
    assert [d.manual for d in back.defects] == [True, True, True]
    lines = dcraw_text(back).splitlines()[3:]
    assert lines == ["9 2 0", "5 4 0", "3 7 0"]  # the added one in, the dropped column photosite out

    # adding a dropped photosite back takes it off the list
    again = back.edited(add=[(11, 15, DefectKind.COLUMN)])
    assert again.dropped == [(0, 0)] and (11, 15) in {(d.row, d.col) for d in again.defects}


@pytest.mark.parametrize(
    "add, drop, fragment",
    [
        ([(12, 0, None)], [], "cannot add row 12, col 0: outside the 12x16 sensor"),
        ([(0, -1, None)], [], "cannot add row 0, col -1: outside"),
        ([], [(3, 16)], "cannot drop row 3, col 16: outside the 12x16 sensor"),
        ([(1, 1, None)], [(1, 1)], "row 1, col 1 is both added and dropped"),
    ],
)
def test_edited_refuses_bad_coordinates(add, drop, fragment):
    from rawmap.errors import MapEditError

    with pytest.raises(MapEditError) as err:
        _map().edited(add=add, drop=drop)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_carry_edits_keeps_manual_and_dropped_through_a_new_map():
    from rawmap.defectmap import carry_edits

    previous = _map().edited(add=[(4, 5, DefectKind.COLD), (2, 9, DefectKind.DEAD)], drop=[(7, 3)])
    # detection again finds the hot (7, 3) and the stuck (2, 9), and a new dead one
    fresh = _map([HOT, STUCK, DEAD])
    out = carry_edits(fresh, previous)
    got = {(d.row, d.col): d for d in out.defects}
    assert sorted(got) == [(2, 1), (2, 9), (4, 5)]  # (7, 3) stays dropped
    assert got[(2, 9)] == dataclasses.replace(STUCK, kind=DefectKind.DEAD, manual=True)
    assert got[(4, 5)].manual and got[(4, 5)].kind is DefectKind.COLD
    assert got[(2, 1)] == DEAD
    assert out.dropped == [(7, 3)]
    assert carry_edits(fresh, _map()) is fresh  # nothing to carry
    other = DefectMap(CAM, SensorGeometry(6, 6), FRAMES, [DEAD])
    assert carry_edits(other, previous) is other  # another sensor size: nothing carried


def test_exports_and_the_plot_refuse_a_map_built_with_a_defect_outside_its_sensor(tmp_path):
    from rawmap.export import export_text
    from rawmap.show import plot_map

    for outside in ([Defect(-3, 4, DefectKind.HOT, 1.0)], [Defect(2, 99999, DefectKind.HOT, 1.0)]):
        dmap = _map(outside)
        for fmt in ("dcraw", "siril", "csv", "rawtherapee"):
            with pytest.raises(MapFormatError, match="lies outside the 12x16 sensor"):
                export_text(dmap, fmt)
        with pytest.raises(MapFormatError, match="lies outside the 12x16 sensor"):
            plot_map(dmap, tmp_path / "p.png")
        assert not (tmp_path / "p.png").exists()
    dropped = dataclasses.replace(_map(), dropped=[(12, 0)])
    with pytest.raises(MapFormatError, match="row 12, col 0 lies outside"):
        dropped.check()
    _map().check()  # a map inside its sensor passes


def test_dark_noise_round_trips_stays_optional_and_merges_by_darks():
    """``frames.dark_noise`` (DN per frame of a set of darks): written when known, read back, absent
    in older maps; two maps together weigh their figures by their darks."""
    from rawmap.bodies import _merge_frame_stats as _merge_frames
    from rawmap.defectmap import FrameStats

    fs = FrameStats(16, darks=16, dark_noise=4.1)
    assert FrameStats.from_dict(fs.to_dict()) == fs
    assert "dark_noise" not in FrameStats(5).to_dict()
    assert FrameStats.from_dict({"count": 5}).dark_noise is None
    with pytest.raises(MapFormatError):
        FrameStats.from_dict({"count": 5, "dark_noise": "low"})
    merged = _merge_frames(fs, FrameStats(8, darks=8, dark_noise=2.0))
    assert merged.dark_noise == pytest.approx((16 * 4.1 + 8 * 2.0) / 24)
    assert _merge_frames(fs, FrameStats(8, views=8)).dark_noise == 4.1
    assert _merge_frames(FrameStats(3), FrameStats(4)).dark_noise is None


@pytest.mark.parametrize("field", ["growth", "lines"])
def test_one_view_outcomes_round_trip_stay_optional_and_are_checked(field):
    """``frames.growth`` and ``frames.lines`` (what the one-view growth and line tests did): written
    when the test ran or was stopped, absent elsewhere and in older maps; any other value is refused;
    two maps together keep it only where they agree."""
    from rawmap.bodies import _merge_frame_stats as _merge_frames
    from rawmap.defectmap import FrameStats

    for outcome in ("ran", "moved"):
        fs = FrameStats(24, views=1, **{field: outcome})
        assert fs.to_dict()[field] == outcome
        assert FrameStats.from_dict(fs.to_dict()) == fs
    assert field not in FrameStats(5).to_dict()
    assert getattr(FrameStats.from_dict({"count": 5}), field) is None
    for bad in ("yes", 1, ["ran"]):
        with pytest.raises(MapFormatError, match=field):
            FrameStats.from_dict({"count": 5, field: bad})
    ran, moved = FrameStats(24, views=1, **{field: "ran"}), FrameStats(24, views=1, **{field: "moved"})
    assert getattr(_merge_frames(ran, ran), field) == "ran"
    assert getattr(_merge_frames(ran, moved), field) is None
    assert getattr(_merge_frames(ran, FrameStats(8, views=8)), field) is None


def test_frame_temperatures_round_trip_and_stay_optional():
    """``frames.temperature_min/max``: written when known, read back, absent in older maps."""
    from rawmap.defectmap import FrameStats

    fs = FrameStats(5, temperature_min=-10.5, temperature_max=-9.8)
    d = fs.to_dict()
    assert (d["temperature_min"], d["temperature_max"]) == (-10.5, -9.8)
    assert FrameStats.from_dict(d) == fs
    assert "temperature_min" not in FrameStats(5).to_dict()
    assert FrameStats.from_dict({"count": 5}).temperature_min is None
    with pytest.raises(MapFormatError):
        FrameStats.from_dict({"count": 5, "temperature_min": "cold"})
