"""The command line, run as a user would: typer's CliRunner, and the installed script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer.main
from conftest import PLANTED, Series
from typer.testing import CliRunner

from rawmap import __version__
from rawmap.accumulate import Accumulator
from rawmap.cli import app
from rawmap.defectmap import DefectMap
from rawmap.reader import read_info

runner = CliRunner()


def run(*args: object):
    """Invoke ``rawmap ARGS`` in-process; never lets an unexpected exception pass as a result."""
    result = runner.invoke(app, [str(a) for a in args], prog_name="rawmap")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_one_error(result, *needles: str) -> str:
    """Exit 1 with exactly one ``Error:`` line on stderr and no traceback; returns that line."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def assert_usage_error(result) -> None:
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr
    assert "Traceback" not in result.output


def found_kinds(map_file: Path) -> dict[tuple[int, int], str]:
    data = json.loads(map_file.read_text())
    return {(d["row"], d["col"]): d["kind"] for d in data["defects"]}


def corrupt_files(folder: Path, good: Path) -> list[Path]:
    """A truncated DNG, a zero-byte NEF and a text file named .NEF, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    cut = folder / "cut.dng"
    cut.write_bytes(data[: len(data) // 3])
    empty = folder / "empty.NEF"
    empty.write_bytes(b"")
    text = folder / "notes.NEF"
    text.write_text("shopping list: milk, eggs, a new camera\n")
    return [cut, empty, text]


@pytest.fixture(scope="module")
def series_map(small_series: Series, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The map of :func:`small_series`, made by ``rawmap map``."""
    out = tmp_path_factory.mktemp("map") / "sim.json"
    result = run("map", small_series.folder, "-o", out)
    assert result.exit_code == 0, result.output
    return out


# --------------------------------------------------------------------------- map


def test_map_writes_a_map_with_the_planted_defects(small_series: Series, series_map: Path):
    dmap = DefectMap.load(series_map)
    assert dmap.camera == small_series.camera
    assert (dmap.sensor.height, dmap.sensor.width) == (120, 160)
    assert (dmap.sensor.top_margin, dmap.sensor.left_margin) == (8, 12)
    assert dmap.frames.count == 12
    found = found_kinds(series_map)
    for (row, col), kind in PLANTED.items():
        assert found.get((row, col)) == kind.value, f"planted {kind.value} at ({row}, {col}) not mapped as such"


@pytest.mark.parametrize("threads", ["1", "3"])
def test_map_threads_give_the_same_map(small_series: Series, series_map: Path, tmp_path: Path, threads: str):
    out = tmp_path / "sim.json"
    result = run("map", small_series.folder, "-o", out, "--threads", threads, "--quiet")
    assert result.exit_code == 0, result.output
    assert DefectMap.load(out).defects == DefectMap.load(series_map).defects


def test_map_sensitivity(small_series: Series, series_map: Path, tmp_path: Path):
    normal = DefectMap.load(series_map)
    assert normal.thresholds["sensitivity"] == "normal"
    found = {"normal": {(d.row, d.col) for d in normal.defects}}
    for level in ("high", "LOW"):
        out = tmp_path / f"{level}.json"
        result = run("map", small_series.folder, "-o", out, "--sensitivity", level, "--quiet")
        assert result.exit_code == 0, result.output
        assert f"sensitivity: {level.lower()}" in result.stdout
        dmap = DefectMap.load(out)
        assert dmap.thresholds["sensitivity"] == dmap.thresholds["classify"]["sensitivity"] == level.lower()
        found[level.lower()] = {(d.row, d.col) for d in dmap.defects}
    assert set(PLANTED) <= found["high"] and found["low"] <= found["normal"] <= found["high"]
    # 12 photos, the hot photosite an outlier in a few long exposures: too few scenes for low
    assert found["low"] == {rc for rc, k in PLANTED.items() if k.value in ("stuck", "dead")}
    assert_usage_error(run("map", small_series.folder, "-o", tmp_path / "x.json", "--sensitivity", "max"))
    assert not (tmp_path / "x.json").exists()


def test_map_refuses_zero_threads(small_series: Series, tmp_path: Path):
    result = run("map", small_series.folder, "-o", tmp_path / "x.json", "--threads", "0")
    assert result.exit_code == 2
    assert not (tmp_path / "x.json").exists()


def test_map_prints_summary_and_defect_table(small_series: Series, tmp_path: Path):
    out = tmp_path / "m.json"
    result = run("map", small_series.folder, "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Rawmap Simulated Sensor SIM0001" in text
    assert "frames: 12 frames" in text
    assert "stuck 1" in text and "dead 1" in text
    # the table lists the planted stuck photosite with its level
    stuck_line = next(line for line in text.splitlines() if "stuck" in line and "DN" in line)
    assert stuck_line.split()[:3] == ["20", "31", "stuck"]
    assert f"map written to {out}" in text
    assert "Skipped" not in text
    assert result.stderr == ""


def test_map_never_overwrites(small_series: Series, tmp_path: Path):
    out = tmp_path / "m.json"
    out.write_text("precious\n")
    result = run("map", small_series.folder, "-o", out)
    assert_one_error(result, str(out), "--overwrite")
    assert out.read_text() == "precious\n"

    result = run("map", small_series.folder, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert DefectMap.load(out).frames.count == 12


def test_map_several_bodies_into_a_folder(small_series: Series, other_series: Series, tmp_path: Path):
    out = tmp_path / "maps.json"
    result = run("map", small_series.folder, other_series.folder, "-o", out)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "maps"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["rawmap-simulated-sensor-sim0001.json", "rawmap-simulated-sensor-sim0002.json"]
    assert not out.exists()
    assert "2 maps made (camera bodies, or sensor sizes of one body)" in result.stdout and str(folder) in result.stdout
    a = DefectMap.load(folder / names[0])
    b = DefectMap.load(folder / names[1])
    assert (a.camera.serial, a.frames.count) == ("SIM0001", 12)
    assert (b.camera.serial, b.frames.count, b.sensor.height) == ("SIM0002", 5, 96)

    # a folder given as such; a second run refuses to replace the maps
    dest = tmp_path / "dest"
    dest.mkdir()
    result = run("map", small_series.folder, other_series.folder, "-o", dest)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in dest.iterdir()) == names
    result = run("map", small_series.folder, other_series.folder, "-o", dest)
    assert_one_error(result, "already exists")


def test_map_skips_and_reports_corrupt_files(small_series: Series, tmp_path: Path):
    mixed = tmp_path / "card"
    mixed.mkdir()
    for p in small_series.files:
        shutil.copy(p, mixed / p.name)
    bad = corrupt_files(mixed, small_series.files[0])
    out = tmp_path / "m.json"
    result = run("map", mixed, "-o", out)
    assert result.exit_code == 0, result.output
    assert "Skipped 3 files:" in result.stdout
    skipped = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ") and ": " in line]
    for p in bad:
        assert any(line.startswith(f"{p}: ") for line in skipped), f"{p.name} not reported: {result.stdout}"
    assert "truncated" in result.stdout and "empty (0 bytes)" in result.stdout
    dmap = DefectMap.load(out)
    assert dmap.frames.count == 12
    found = found_kinds(out)
    assert all(found.get(rc) == k.value for rc, k in PLANTED.items())


def test_map_nothing_usable(small_series: Series, tmp_path: Path):
    bad = corrupt_files(tmp_path / "junk", small_series.files[0])
    out = tmp_path / "m.json"
    assert_one_error(run("map", *bad, "-o", out), "no usable frames")
    assert not out.exists()
    assert_one_error(run("map", tmp_path / "no-such-folder", "-o", out), "no such file or folder")
    # too few frames of the body
    assert_one_error(run("map", *small_series.files[:2], "-o", out), "at least 3")
    assert not out.exists()


def test_map_needs_an_output(small_series: Series):
    result = run("map", small_series.folder)
    assert_usage_error(result)
    assert "-o" in result.stderr


def test_map_state_file_continues(small_series: Series, tmp_path: Path):
    state = tmp_path / "body.rawstate"
    files = small_series.files
    result = run("map", *files[:6], "-o", tmp_path / "first.json", "--state", state)
    assert result.exit_code == 0, result.output
    assert Accumulator.load(state).n_frames == 6

    result = run("map", small_series.folder, "-o", tmp_path / "second.json", "--state", state)
    assert result.exit_code == 0, result.output
    assert "12 frames (6 new, 6 from the stored statistics)" in result.stdout
    assert "\n6 files skipped: already counted in the stored statistics" in result.stdout
    assert result.stdout.count("already counted") == 1  # one line, not one per file
    assert Accumulator.load(state).n_frames == 12
    assert DefectMap.load(tmp_path / "second.json").frames.count == 12

    # nothing new: exit 0 (a scheduled job goes on working); the sums are left alone, and a map asked for
    # where there is none is the map of the stored statistics (a run killed before its map needs it)
    result = run("map", small_series.folder, "-o", tmp_path / "third.json", "--state", state)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Nothing new to map: 12 files are already counted in {state}.",
        f"  map written to {tmp_path / 'third.json'}",
    ]
    assert result.stderr == "" and Accumulator.load(state).n_frames == 12
    assert DefectMap.load(tmp_path / "third.json").defects == DefectMap.load(tmp_path / "second.json").defects
    result = run("map", small_series.folder, "-o", tmp_path / "second.json", "--state", state)
    assert result.stdout.strip() == f"Nothing new to map: 12 files are already counted in {state}."

    not_state = tmp_path / "not.rawstate"
    not_state.write_text("hello")
    assert_one_error(run("map", small_series.folder, "-o", tmp_path / "x.json", "--state", not_state), str(not_state))


def _state_with(src: Path, dst: Path, members: dict[str, bytes], deflate: tuple[str, ...] = ()) -> Path:
    """A copy of the state file ``src`` with some members replaced (some of them deflated)."""
    import zipfile

    with zipfile.ZipFile(src) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    content.update(members)
    with zipfile.ZipFile(dst, "w", allowZip64=True) as zf:
        for name, data in content.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return dst


def test_hostile_state_files_are_refused_in_one_line(small_series: Series, tmp_path: Path):
    import io
    import struct
    import zipfile

    from rawmap.accumulate.state import state_bytes
    from rawmap.mapping import STATE_KEYS_MEMBER
    from rawmap.safeio import pack_planes

    # issue 13: state meta.json parsed outside the try, a complex128 sum accepted (130 s of
    # compilation, then a traceback), a deflate bomb, out-of-range sparse indices
    good = tmp_path / "good.rawstate"
    first = tmp_path / "first.json"
    assert run("map", *small_series.files[:6], "-o", first, "--state", good).exit_code == 0
    H, W = Accumulator.load(good).shape

    def npy(arr: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr)
        return buf.getvalue()

    def pk(arr: np.ndarray) -> bytes:
        """A packed array (state versions 2 and 3) of 2-D ``arr``, untransformed."""
        planes = np.ascontiguousarray(arr.reshape(-1).view(np.uint8).reshape(-1, arr.dtype.itemsize).T)
        return b"".join(bytes(p) for p in pack_planes([(planes, arr.dtype, arr.shape, 0)], threads=1)[0])

    with zipfile.ZipFile(good) as zf:
        assert json.loads(zf.read("meta.json"))["version"] == 3
        s_xr = zf.read("s_xr.pk")
    good_v1 = tmp_path / "good-v1.rawstate"
    good_v1.write_bytes(state_bytes(Accumulator.load(good), version=1))
    bomb = 64 << 20  # 64 MB of zeros deflate to 64 kB
    hostile = {
        "meta.rawstate": (
            {"meta.json": b'{"format": "rawmap-accumulator", "version": 1, "shape": "big"}'},
            (),
            "shape 'big' is not a list of 2",
        ),
        "npy-complex.rawstate": (  # in a version 1 state (.npy sums)
            {"s_xr.npy": npy(np.zeros((H, W), np.complex128))},
            (),
            "s_xr.npy holds complex128, not float32",
        ),
        "dtype.rawstate": ({"s_xr.pk": s_xr[:5] + bytes([2]) + s_xr[6:]}, (), "s_xr.pk holds uint32, not float32"),
        "bomb.rawstate": ({"s_xr.pk": s_xr + bytes(bomb)}, ("s_xr.pk",), "s_xr.pk declares"),
        "inflate-bomb.rawstate": (
            {"s_xr.pk": s_xr[:16] + struct.pack("<BQ", 1, 50_000) + s_xr[25:]},
            (),
            f"s_xr.pk: plane 0 (codec 1) of 50,000 bytes for {H * W:,} elements",
        ),
        "indices.rawstate": (
            {"fs_index.pk": pk(np.array([[H * W + 7]], np.int64)), "fs_time.pk": pk(np.zeros((1, 1)))},
            (),
            f"fs_index.pk holds indices out of order or outside [0, {H * W})",
        ),
        "keys.rawstate": ({STATE_KEYS_MEMBER: b"[" * 5000 + b"]" * 5000}, (), "JSON nested too deeply to read"),
    }
    for name, (members, deflate, needle) in hostile.items():
        bad = _state_with(good_v1 if name.startswith("npy-") else good, tmp_path / name, members, deflate)
        before = bad.read_bytes()
        for args in [
            ("map", small_series.folder, "-o", tmp_path / "m.json", "--state", bad, "--overwrite"),
            ("library", "import", first, "--state", bad, "--library", tmp_path / "lib"),
        ]:
            if name == "keys.rawstate" and args[0] == "library":
                continue  # the content keys are read by `map --state` only
            line = assert_one_error(run(*args), str(bad), needle)
            assert len(line) < 400, line
        assert bad.read_bytes() == before  # never changed
    assert not (tmp_path / "m.json").exists()
    assert not (tmp_path / "lib").exists() or not any((tmp_path / "lib").iterdir())


def _copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_map_counts_copies_once_in_one_summary_line(small_series: Series, tmp_path: Path):
    backup = _copy_folder(small_series.folder, tmp_path / "backup")
    (backup / "frame_003.dng").rename(backup / "IMG_0003.dng")  # renamed too
    out = tmp_path / "m.json"
    result = run("map", small_series.folder, backup, "-o", out)
    assert result.exit_code == 0, result.output
    assert "12 frames;" in result.stdout
    assert "\n12 files skipped: same content as a file already counted in this run" in result.stdout
    assert "Skipped" not in result.stdout and "duplicate of" not in result.stdout  # no line per file
    assert DefectMap.load(out).frames.count == 12


def test_map_save_recognises_a_moved_folder(small_series: Series, tmp_path: Path):
    lib = tmp_path / "lib"
    result = run("map", *small_series.files[:6], "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    moved = _copy_folder(small_series.folder, tmp_path / "moved")  # the card copied elsewhere
    result = run("map", moved, "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    assert "12 frames (6 new, 6 from the stored statistics)" in result.stdout
    assert "\n6 files skipped: already counted in the stored statistics" in result.stdout
    # and again: everything is known by content now; nothing new is not an error, and one line
    result = run("map", small_series.folder, "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Nothing new to map: 12 files are already counted in the library."


def test_map_state_file_recognises_a_moved_folder(small_series: Series, tmp_path: Path):
    state = tmp_path / "body.rawstate"
    result = run("map", *small_series.files[:6], "-o", tmp_path / "a.json", "--state", state)
    assert result.exit_code == 0, result.output
    moved = _copy_folder(small_series.folder, tmp_path / "moved")
    result = run("map", moved, "-o", tmp_path / "b.json", "--state", state)
    assert result.exit_code == 0, result.output
    assert "12 frames (6 new, 6 from the stored statistics)" in result.stdout
    assert "\n6 files skipped: already counted in the stored statistics" in result.stdout
    assert Accumulator.load(state).n_frames == 12


def test_map_skips_jpeg_twins_in_one_line(tmp_path: Path):
    from rawmap.testing import SensorSpec, generate_series

    card = tmp_path / "card"
    generate_series(card, n_frames=4, seed=5, spec=SensorSpec(64, 96), jpeg=True)
    out = tmp_path / "m.json"
    result = run("map", card, "-o", out)
    assert result.exit_code == 0, result.output
    assert "\n4 JPEGs skipped: twin of a RAW file in the same run" in result.stdout
    assert "(RAW, 64x96, RGGB)" in result.stdout and "(images" not in result.stdout
    assert DefectMap.load(out).sensor.source == "raw"


def test_map_crop_modes_and_photos_without_camera(small_series: Series, tmp_path: Path):
    import numpy as np
    from PIL import Image

    from rawmap.testing import SensorSpec, generate_series

    crop = tmp_path / "crop"
    generate_series(crop, n_frames=3, seed=6, spec=SensorSpec(96, 128))  # same body as small_series
    plain = tmp_path / "plain"
    plain.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(20, 200, (40, 60, 3), dtype="uint8"), "RGB").save(plain / f"p{i}.png")
    out = tmp_path / "maps"
    result = run("map", crop, small_series.folder, plain, "-o", f"{out}/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "rawmap-simulated-sensor-sim0001-120x160.json",
        "rawmap-simulated-sensor-sim0001-96x128.json",
        "unknown-camera-image.json",
    ]
    assert (
        "Rawmap Simulated Sensor SIM0001 (RAW) has frames of 2 sensor sizes (120x160, 96x128): "
        "each size is mapped on its own"
    ) in result.stdout
    assert (
        "warning: 3 image frame(s) of 40x60 record no camera make or model: they are assumed to come from one body"
    ) in result.stdout
    assert DefectMap.load(out / "rawmap-simulated-sensor-sim0001-96x128.json").frames.count == 3


def test_a_body_without_make_or_model_round_trips_through_library_export_and_import(tmp_path: Path):
    # issue 13: such a body saved, but its exported map could not be imported back ("names no
    # camera"); it is now filed under the unknown camera's entry, as `map --save` files it
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):  # JPEGs without EXIF: no make, no model
        Image.fromarray(rng.integers(20, 200, (40, 60, 3), dtype="uint8"), "RGB").save(photos / f"p{i}.jpg", quality=95)
    lib, lib2 = tmp_path / "lib", tmp_path / "lib2"
    assert run("map", photos, "--save", "--library", lib).exit_code == 0
    result = run("library", "export", "unknown-camera", "-o", tmp_path / "backup", "--library", lib)
    assert result.exit_code == 0, result.output
    exported = tmp_path / "backup" / "unknown-camera-image.map.json"
    state = tmp_path / "backup" / "unknown-camera-image.rawstate"
    assert exported.is_file() and state.is_file()

    result = run("library", "import", exported, "--state", state, "--library", lib2)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Imported the map of an unknown camera (")
    stored = lib2 / "unknown-camera-image"
    assert (
        DefectMap.load(stored / "map.json").to_dict()
        == DefectMap.load(lib / "unknown-camera-image" / "map.json").to_dict()
    )
    assert Accumulator.load(stored / "state.rawstate").n_frames == 4
    listing = run("library", "list", "--library", lib2)
    assert "unknown-camera-image  unknown camera (images)" in listing.stdout and "4 frames" in listing.stdout
    # the imported entry serves the same photos: repair finds it
    result = run("repair", photos / "p0.jpg", "--library", lib2, "-o", tmp_path / "repaired")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "repaired" / "p0.jpg").is_file()
    # importing it again asks for --replace, naming the body in words
    assert_one_error(
        run("library", "import", exported, "--library", lib2),
        "an unknown camera (maps from developed images) already has a map",
    )


# --------------------------------------------------------------------------- info


def test_info_shows_camera_identity_of_real_files(samples_dir: Path):
    files = sorted(p for p in samples_dir.iterdir() if p.is_file())
    result = run("info", *files)
    assert result.exit_code == 0, result.output
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == len(files)
    for path, block in zip(files, blocks):
        info = read_info(path)
        fields = dict(line.strip().split(None, 1) for line in block.splitlines()[1:])
        assert block.splitlines()[0] == str(path)
        assert fields["make"] == info.camera.make
        assert fields["model"] == info.camera.model
        assert fields["serial"] == (info.camera.serial or "not recorded")
        assert fields["CFA"] == info.cfa_string
        assert fields["size"].startswith(f"{info.shape[0]} x {info.shape[1]} ")
    d30 = blocks[files.index(samples_dir / "canon-d30-a.CRW")]
    assert "serial    171048961" in d30 and "model     Canon EOS D30" in d30
    assert "exposure  1/202 s" in d30 and "ISO       100" in d30 and "2002-11-24 15:11:22" in d30


def test_info_goes_on_after_a_bad_file(small_series: Series, tmp_path: Path):
    bad = corrupt_files(tmp_path, small_series.files[0])
    good = small_series.files[0]
    result = run("info", bad[1], good, bad[2])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("Error: ") for e in errors)
    assert str(bad[1]) in errors[0] and str(bad[2]) in errors[1]
    assert "Traceback" not in result.output
    assert "model     Simulated Sensor" in result.stdout
    assert "serial    SIM0001" in result.stdout
    assert "CFA       RGGB" in result.stdout


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize(
    "fmt, name, first_data_line",
    [
        ("dcraw", "rawmap-simulated-sensor-sim0001.dcraw.txt", "31 20 "),
        ("rawtherapee", "Rawmap Simulated Sensor SIM0001.badpixels", "31 20"),
        ("siril", "rawmap-simulated-sensor-sim0001.lst", None),
        ("csv", "rawmap-simulated-sensor-sim0001-defects.csv", "row,col,kind"),
    ],
)
def test_export_formats(series_map: Path, tmp_path: Path, fmt: str, name: str, first_data_line: str | None):
    result = run("export", series_map, "--format", fmt, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    target = tmp_path / name
    assert target.is_file()
    assert str(target) in result.stdout
    text = target.read_text()
    if fmt == "csv":
        assert text.startswith(first_data_line)
        assert "20,31,stuck" in text
    elif fmt == "siril":
        assert "P 31 20 H" in text
    else:
        data = [line for line in text.splitlines() if not line.startswith("#")]
        assert any(line.startswith(first_data_line) for line in data)
    # never replaced without --overwrite
    before = target.read_bytes()
    assert_one_error(run("export", series_map, "--format", fmt, "-o", target), "--overwrite")
    assert target.read_bytes() == before
    assert run("export", series_map, "--format", fmt, "-o", target, "--overwrite").exit_code == 0


def test_export_default_name_in_working_folder(series_map: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    result = run("export", series_map, "-f", "rawtherapee", "--no-serial")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "Rawmap Simulated Sensor.badpixels").is_file()
    result = run("export", series_map, "-f", "csv", "--no-serial")
    assert (tmp_path / "rawmap-simulated-sensor-defects.csv").is_file()


def test_export_crop_origin(series_map: Path, tmp_path: Path):
    out = tmp_path / "rt.badpixels"
    # the map's visible area starts at (8, 12); RawTherapee's crop at (6, 10) shifts every point by (2, 2)
    result = run("export", series_map, "-f", "rawtherapee", "--crop-origin", "6,10", "-o", out)
    assert result.exit_code == 0, result.output
    assert "33 22" in out.read_text().splitlines()
    assert_usage_error(run("export", series_map, "-f", "rawtherapee", "--crop-origin", "6", "-o", tmp_path / "a"))
    assert_usage_error(run("export", series_map, "-f", "rawtherapee", "--crop-origin", "a,b", "-o", tmp_path / "a"))
    assert_usage_error(run("export", series_map, "-f", "dcraw", "--crop-origin", "6,10", "-o", tmp_path / "a"))


def test_export_dcraw_always_or_since_first_seen(series_map: Path, tmp_path: Path):
    from rawmap.export import dcraw_timestamp

    dmap = DefectMap.load(series_map)
    result = run("export", series_map, "-f", "dcraw", "-o", tmp_path / "always.txt")
    assert result.exit_code == 0, result.output
    assert "every line dated 0" in result.stdout
    data = [line.split() for line in (tmp_path / "always.txt").read_text().splitlines() if not line.startswith("#")]
    assert data == [[str(d.col), str(d.row), "0"] for d in dmap.defects]
    assert run("export", series_map, "-f", "dcraw", "--always", "-o", tmp_path / "a2.txt").exit_code == 0
    assert (tmp_path / "a2.txt").read_text() == (tmp_path / "always.txt").read_text()

    result = run("export", series_map, "-f", "dcraw", "--since-first-seen", "-o", tmp_path / "since.txt")
    assert result.exit_code == 0, result.output
    assert "dated with first_seen" in result.stdout
    data = [line.split() for line in (tmp_path / "since.txt").read_text().splitlines() if not line.startswith("#")]
    assert data == [[str(d.col), str(d.row), str(dcraw_timestamp(d.first_seen))] for d in dmap.defects]
    assert {d.first_seen for d in dmap.defects if d.kind.value in ("stuck", "dead")} == {dmap.frames.first_capture}
    assert_usage_error(run("export", series_map, "-f", "csv", "--since-first-seen", "-o", tmp_path / "x.csv"))
    assert not (tmp_path / "x.csv").exists()


def test_export_refuses_what_is_not_a_map(tmp_path: Path):
    not_json = tmp_path / "photo.json"
    not_json.write_bytes(b"\xff\xd8\xff\xe0 not json")
    assert_one_error(run("export", not_json, "-f", "dcraw", "-o", tmp_path), str(not_json))
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    assert_one_error(run("export", other, "-f", "dcraw", "-o", tmp_path), "not a rawmap defect map")
    assert_one_error(run("export", tmp_path / "missing.json", "-f", "csv"), "no such map file")


def _edited_map(series_map: Path, folder: Path, name: str, edit) -> Path:
    """A copy of ``series_map`` changed by hand (``edit(dict)``), as a user's text editor would leave it."""
    d = json.loads(series_map.read_text())
    edit(d)
    path = folder / name
    path.write_text(json.dumps(d, indent=1))
    return path


@pytest.mark.parametrize(
    "name, edit, needles",
    [
        # issue 13: 99999 gave a traceback in repair; -3 repaired a healthy photosite 3 rows from the bottom
        ("far.json", lambda d: d["defects"][0].update(row=99999), ("row 99999", "outside the 120x160 sensor")),
        ("negative.json", lambda d: d["defects"][0].update(row=-3), ("row -3", "outside the 120x160 sensor")),
        ("kind.json", lambda d: d["defects"][0].update(kind="lukewarm"), ('unknown kind "lukewarm"',)),
        ("bool.json", lambda d: d["defects"][0].update(col=True), ("col true is not a whole number",)),
    ],
)
def test_every_reader_refuses_a_hand_edited_map_in_one_line(
    small_series: Series, series_map: Path, tmp_path: Path, name: str, edit, needles: tuple[str, ...]
):
    bad = _edited_map(series_map, tmp_path, name, edit)
    photo = small_series.files[0]
    commands = [
        ("repair", photo, "--map", bad, "-o", tmp_path / "repaired"),
        ("export", bad, "-f", "dcraw", "-o", tmp_path / "out.txt"),
        ("export", bad, "-f", "siril", "-o", tmp_path / "out.lst"),
        ("show", bad),
        ("show", bad, "--plot", tmp_path / "plot.png"),
        ("edit", bad, "--add", "5,6", "-o", tmp_path / "edited.json"),
        ("library", "import", bad, "--library", tmp_path / "lib"),
    ]
    for args in commands:
        line = assert_one_error(run(*args), str(bad), "damaged defect map (defect #1 ", *needles)
        assert len(line) < 400, line
    assert not (tmp_path / "repaired").exists() or not any((tmp_path / "repaired").iterdir())
    assert not any(p.name in ("out.txt", "out.lst", "plot.png", "edited.json") for p in tmp_path.iterdir())
    assert not (tmp_path / "lib").exists() or not any((tmp_path / "lib").iterdir())


@pytest.mark.parametrize(
    "name, make, needle",
    [
        ("deep.json", lambda text: "[" * 1000 + "]" * 1000, "JSON nested too deeply to read"),
        (
            "inf.json",
            lambda text: text.replace('"score": ', '"score": Infinity, "x": ', 1),
            "Infinity is not a JSON number",
        ),
        ("nan.json", lambda text: text.replace('"score": ', '"score": NaN, "x": ', 1), "NaN is not a JSON number"),
        (
            "digits.json",
            lambda text: text.replace('"row": ', '"row": ' + "9" * 100_000 + ', "x": ', 1),
            "an integer of more than 4,300 digits",
        ),
    ],
)
def test_every_reader_refuses_a_hostile_map_in_one_line(
    small_series: Series, series_map: Path, tmp_path: Path, name: str, make, needle: str
):
    bad = tmp_path / name
    bad.write_text(make(series_map.read_text()))
    for args in [
        ("repair", small_series.files[0], "--map", bad, "-o", tmp_path / "repaired"),
        ("export", bad, "-f", "csv", "-o", tmp_path / "out.csv"),
        ("show", bad),
        ("edit", bad, "--drop", "5,6", "-o", tmp_path / "edited.json"),
        ("library", "import", bad, "--library", tmp_path / "lib"),
    ]:
        line = assert_one_error(run(*args), str(bad), needle)
        assert len(line) < 400, line


# --------------------------------------------------------------------------- edit


def test_edit_a_map_file(series_map: Path, tmp_path: Path):
    src = tmp_path / "d.json"
    shutil.copyfile(series_map, src)
    original = src.read_bytes()
    stuck = (20, 31)

    # nothing is written without a place to write it
    assert_usage_error(run("edit", src, "--add", "5,6"))
    assert_usage_error(run("edit", src, "-o", tmp_path / "x.json"))  # nothing to edit
    assert_usage_error(run("edit", src, "--add", "5", "-o", tmp_path / "x.json"))
    assert_usage_error(run("edit", src, "--add", "5,6,bright", "-o", tmp_path / "x.json"))
    assert_usage_error(run("edit", src, "--drop", "5,6,hot", "-o", tmp_path / "x.json"))
    # a photosite outside the 120x160 sensor: one line, nothing written
    line = assert_one_error(run("edit", src, "--add", "120,5", "-o", tmp_path / "x.json"), "outside the 120x160 sensor")
    assert "row 120, col 5" in line
    assert_one_error(run("edit", src, "--drop", "3,-1", "--overwrite"), "outside")
    assert not (tmp_path / "x.json").exists() and src.read_bytes() == original
    assert not (tmp_path / "d.previous.json").exists()

    out = tmp_path / "edited.json"
    result = run("edit", src, "--add", "5,6", "--add", "7,9,stuck", "--drop", f"{stuck[0]},{stuck[1]}", "-o", out)
    assert result.exit_code == 0, result.output
    assert "added row 5, col 6: hot (G), manual" in result.stdout
    assert "added row 7, col 9: stuck (B), manual" in result.stdout
    assert "dropped row 20, col 31 (was stuck)" in result.stdout
    assert src.read_bytes() == original  # MAP left as it is
    edited = DefectMap.load(out)
    got = {(d.row, d.col): d for d in edited.defects}
    assert stuck not in got and edited.dropped == [stuck]
    assert got[(5, 6)].manual and got[(7, 9)].manual and got[(7, 9)].kind.value == "stuck"
    assert sum(d.manual for d in edited.defects) == 2
    assert_one_error(run("edit", src, "--add", "5,6", "-o", out), "already exists")

    result = run("export", out, "-f", "dcraw", "-o", tmp_path / "list.txt")
    assert result.exit_code == 0, result.output
    data = [line for line in (tmp_path / "list.txt").read_text().splitlines() if not line.startswith("#")]
    assert "6 5 0" in data and "9 7 0" in data and "31 20 0" not in data

    # in place: the previous version is kept beside it
    result = run("edit", src, "--drop", "40,90", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.previous.json").read_bytes() == original
    assert "previous version is" in result.stdout
    assert (40, 90) not in {(d.row, d.col) for d in DefectMap.load(src).defects}
    assert DefectMap.load(src).dropped == [(40, 90)]


def test_edit_a_library_body_and_map_again(small_series: Series, tmp_path: Path):
    lib = tmp_path / "lib"
    files = small_series.files
    assert run("map", *files[:8], "--save", "--library", lib, "-q").exit_code == 0
    entry = lib / "rawmap-simulated-sensor-sim0001"
    before = DefectMap.load(entry / "map.json")
    assert (20, 31) in {(d.row, d.col) for d in before.defects}

    result = run("edit", "sim0001", "--drop", "20,31", "--add", "60,80,cold", "--library", lib)
    assert result.exit_code == 0, result.output
    assert "saved in the library as rawmap-simulated-sensor-sim0001" in result.stdout
    assert DefectMap.load(entry / "map.previous.json").to_json() == before.to_json()
    assert_one_error(run("edit", "nobody", "--drop", "1,1", "--library", lib), "no body matching 'nobody'")

    # more photos of the body: the stuck photosite is detected again but stays dropped, the added one stays
    result = run("map", *files[8:], "--save", "--library", lib, "-q")
    assert result.exit_code == 0, result.output
    now = DefectMap.load(entry / "map.json")
    got = {(d.row, d.col): d for d in now.defects}
    assert now.frames.count == 12 and (20, 31) not in got and now.dropped == [(20, 31)]
    assert got[(60, 80)].manual and got[(60, 80)].kind.value == "cold"
    assert (40, 90) in got  # detection goes on as before


# --------------------------------------------------------------------------- library and --save


def test_map_save_continues_the_library(small_series: Series, tmp_path: Path):
    lib = tmp_path / "lib"
    files = small_series.files
    result = run("map", *files[:6], "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    assert "saved in the library as rawmap-simulated-sensor-sim0001" in result.stdout
    assert not list(tmp_path.glob("*.json"))  # -o is optional with --save; nothing else written

    out = tmp_path / "m.json"
    result = run("map", small_series.folder, "--save", "--library", lib, "-o", out)
    assert result.exit_code == 0, result.output
    assert "12 frames (6 new, 6 from the stored statistics)" in result.stdout
    assert "\n6 files skipped: already counted in the stored statistics" in result.stdout
    assert result.stdout.count("already counted") == 1  # one line, not one per file
    stored = DefectMap.load(lib / "rawmap-simulated-sensor-sim0001" / "map.json")
    assert stored.frames.count == 12
    assert DefectMap.load(out).to_dict()["defects"] == stored.to_dict()["defects"]
    assert all(found_kinds(out).get(rc) == k.value for rc, k in PLANTED.items())

    result = run("map", small_series.folder, "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Nothing new to map: 12 files are already counted in the library."
    assert_usage_error(run("map", small_series.folder, "--save", "--state", tmp_path / "s.rawstate"))


def test_map_nothing_new_is_one_line_and_exit_0_even_beside_unusable_files(small_series: Series, tmp_path: Path):
    lib = tmp_path / "lib"
    assert run("map", small_series.folder, "--save", "--library", lib, "-q").exit_code == 0
    junk = corrupt_files(tmp_path / "junk", small_series.files[0])
    result = run("map", small_series.folder, *junk, "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "Nothing new to map: 12 files are already counted in the library."
    assert result.stdout.count("already counted") == 1  # one summary line, not one per file
    assert lines[1] == "Skipped 3 files:" and len(lines) == 5  # the unusable ones are still named
    # with no stored statistics at all, no usable frame is still an error
    assert_one_error(run("map", *junk, "--save", "--library", tmp_path / "empty"), "no usable frames")


def test_map_state_continuation_replaces_its_own_map_only(small_series: Series, tmp_path: Path):
    state, out = tmp_path / "body.rawstate", tmp_path / "body.json"
    files = small_series.files
    assert run("map", *files[:4], "-o", out, "--state", state, "-q").exit_code == 0
    # continuing the state: its own previous map is replaced, without --overwrite
    result = run("map", *files[:8], "-o", out, "--state", state, "-q")
    assert result.exit_code == 0, result.output
    assert f"map written to {out} (replacing the map this state wrote before)" in result.stdout
    assert DefectMap.load(out).frames.count == 8 and Accumulator.load(state).n_frames == 8
    # a map changed since (by hand, or by another run) is not the state's own any more
    edited = run("edit", out, "--drop", "20,31", "--overwrite")
    assert edited.exit_code == 0, edited.output
    before = out.read_bytes()
    assert_one_error(run("map", *files[:10], "-o", out, "--state", state), f"{out}: already exists", "--overwrite")
    assert out.read_bytes() == before and Accumulator.load(state).n_frames == 8  # nothing written
    # nor is any other existing file
    other = tmp_path / "other.json"
    other.write_text("{}")
    assert_one_error(run("map", *files[:10], "-o", other, "--state", state), f"{other}: already exists")
    assert other.read_text() == "{}"
    # --overwrite takes it, and from then on it is the state's own again
    assert run("map", *files[:10], "-o", out, "--state", state, "--overwrite", "-q").exit_code == 0
    result = run("map", small_series.folder, "-o", out, "--state", state, "-q")
    assert result.exit_code == 0, result.output
    assert DefectMap.load(out).frames.count == 12 and Accumulator.load(state).n_frames == 12
    # the map and the state can never be the same file
    assert_usage_error(run("map", small_series.folder, "-o", state, "--state", state))
    assert Accumulator.load(state).n_frames == 12


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


#: runs ``rawmap ARGS`` (this worktree's rawmap), SIGKILLing itself at the KILL-th file-system call of the library
#: update (0: never); the test's fault injection, in a real process that dies for real
_KILLING_RAWMAP = """
import os, shutil, signal, sys
kill_at = int(sys.argv[1])
sys.argv = ["rawmap"] + sys.argv[2:]
from rawmap import library
calls = 0
armed = False
def counted(func):
    def wrapper(*args, **kwargs):
        global calls
        if armed:
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return func(*args, **kwargs)
    return wrapper
for name in ("mkdir", "fsync", "link", "symlink", "rename", "replace", "unlink", "rmdir"):
    setattr(os, name, counted(getattr(os, name)))
shutil.copyfile = counted(shutil.copyfile)
store = library.Library.store
def arming_store(self, body_map):
    global armed
    armed = kill_at > 0
    return store(self, body_map)
library.Library.store = arming_store
from rawmap.__main__ import main
main()
"""


def _rawmap(*args: object, kill_at: int = 0, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _KILLING_RAWMAP, str(kill_at), *map(str, args)],
        cwd=_repo_root(),
        stdin=subprocess.DEVNULL,
        **popen,
    )


def _entry_summary(lib: Path) -> tuple[int, int, int, list]:
    """(frames in the state, in body.json, in the map, the map's defects) of the library's one entry."""
    (entry,) = [p for p in lib.iterdir() if not p.name.startswith(".")]
    body = json.loads((entry / "body.json").read_text())
    dmap = DefectMap.load(entry / "map.json")
    return (
        Accumulator.load(entry / "state.rawstate").n_frames,
        body["frames"],
        dmap.frames.count,
        dmap.to_dict()["defects"],
    )


def test_map_save_killed_then_rerun_gives_the_uninterrupted_map(small_series: Series, tmp_path: Path):
    """`rawmap map DIR --save` SIGKILLed during its library update (seeded steps) and at seeded random times,
    then run again: the same map and frame count as a run that was never interrupted."""
    import random
    import time

    start = tmp_path / "start"
    proc = _rawmap(
        "map",
        *small_series.files[:6],
        "--save",
        "--library",
        start,
        "-q",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.communicate(timeout=600)[1] == "" and proc.returncode == 0
    whole = tmp_path / "whole"
    shutil.copytree(start, whole, symlinks=True)
    t0 = time.monotonic()
    proc = _rawmap(
        "map",
        small_series.folder,
        "--save",
        "--library",
        whole,
        "-q",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.communicate(timeout=600)[1] == "" and proc.returncode == 0
    seconds = time.monotonic() - t0
    expected = _entry_summary(whole)
    assert expected[:3] == (12, 12, 12)

    rng = random.Random(13)
    kills = [("step", n) for n in sorted(rng.sample(range(1, 15), 3))] + [
        ("time", rng.uniform(0.2, seconds)) for _ in range(2)
    ]
    for how, when in kills:
        lib = tmp_path / f"{how}-{when:.2f}"
        shutil.copytree(start, lib, symlinks=True)
        args = ("map", small_series.folder, "--save", "--library", lib, "-q")
        if how == "step":
            proc = _rawmap(*args, kill_at=when, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert proc.wait(timeout=600) == -9, (how, when)  # killed inside the update
        else:
            proc = _rawmap(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=when)
            except subprocess.TimeoutExpired:
                proc.kill()
            proc.wait(timeout=600)
        state, body, mapped, _ = _entry_summary(lib)  # whole, old or new
        assert state == body == mapped and state in (6, 12), (how, when)
        again = _rawmap(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = again.communicate(timeout=600)
        assert again.returncode == 0, (how, when, err)
        assert "Traceback" not in err
        assert _entry_summary(lib) == expected, (how, when)


def test_concurrent_saves_both_count(small_series: Series, tmp_path: Path):
    """Two `rawmap map --save` of other photos of one body at the same time: the second waits, neither loses frames."""
    import time

    from rawmap.library import Library

    lib = tmp_path / "lib"
    assert run("map", *small_series.files[:4], "--save", "--library", lib, "-q").exit_code == 0
    logs = [tmp_path / "a.err", tmp_path / "b.err"]
    parts = [small_series.files[4:8], small_series.files[8:]]
    with Library(lib).updating():  # hold the lock so that both runs are sure to overlap
        procs = []
        for part, log in zip(parts, logs):
            with open(log, "w") as fh:
                procs.append(
                    _rawmap(
                        "map", *part, "--save", "--library", lib, "-q", stdout=subprocess.PIPE, stderr=fh, text=True
                    )
                )
        deadline = time.monotonic() + 120
        while not all("Waiting for another rawmap run" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            time.sleep(0.1)
    for proc, log in zip(procs, logs):
        proc.communicate(timeout=600)
        assert proc.returncode == 0, log.read_text()
    state, body, mapped, _ = _entry_summary(lib)
    assert state == body == mapped == 12


def test_library_commands(small_series: Series, other_series: Series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lib = tmp_path / "lib"
    monkeypatch.setenv("RAWMAP_LIBRARY", str(lib))  # the default library, as a user would set it
    result = run("library", "list")
    assert result.exit_code == 0 and "No maps in" in result.stdout

    assert run("map", small_series.folder, other_series.folder, "--save").exit_code == 0
    result = run("library", "list")
    assert result.exit_code == 0, result.output
    assert "2 bodies" in result.stdout
    assert "rawmap-simulated-sensor-sim0001" in result.stdout and "rawmap-simulated-sensor-sim0002" in result.stdout

    result = run("library", "show", "SIM0002")
    assert result.exit_code == 0, result.output
    assert "Rawmap Simulated Sensor SIM0002" in result.stdout and "5 frames" in result.stdout
    assert_one_error(run("library", "show", "simulated"), "matches 2 bodies")
    assert_one_error(run("library", "show", "nikon"), "no body matching 'nikon'")

    backup = tmp_path / "backup"
    result = run("library", "export", "rawmap-simulated-sensor-sim0001", "-o", backup)
    assert result.exit_code == 0, result.output
    exported = sorted(p.name for p in backup.iterdir())
    assert exported == ["rawmap-simulated-sensor-sim0001.map.json", "rawmap-simulated-sensor-sim0001.rawstate"]
    assert_one_error(run("library", "export", "sim0001", "-o", backup), "already exists")

    result = run("library", "remove", "sim0001")
    assert result.exit_code == 0, result.output
    assert ".trash" in result.stdout
    assert "sim0001" not in run("library", "list").stdout

    result = run("library", "import", backup / exported[0], "--state", backup / exported[1])
    assert result.exit_code == 0, result.output
    assert "rawmap-simulated-sensor-sim0001" in run("library", "list").stdout
    assert_one_error(run("library", "import", backup / exported[0]), "already has a map")
    assert run("library", "import", backup / exported[0], "--replace").exit_code == 0
    assert_one_error(run("library", "import", small_series.files[0]), "not a rawmap defect map")


# --------------------------------------------------------------------------- repair


def test_repair_from_the_library(small_series: Series, other_series: Series, tmp_path: Path):
    from rawmap.reader import read_frame

    lib = tmp_path / "lib"
    assert run("map", small_series.folder, "--save", "--library", lib).exit_code == 0
    photos = tmp_path / "new"
    photos.mkdir()
    for p in small_series.files[:2] + other_series.files[:1]:
        shutil.copy(p, photos / f"{p.parent.name}-{p.name}")
    bad = corrupt_files(tmp_path / "junk", small_series.files[0])[1]
    out = tmp_path / "repaired"

    result = run("repair", photos, bad, "-o", out, "--library", lib)
    assert result.exit_code == 1, result.output
    done = sorted(p.name for p in out.iterdir())
    assert done == sorted(p.stem + ".dng" for p in photos.iterdir() if "series-a" in p.name)
    assert result.stdout.count("mapped photosites") == 2
    assert "Repaired 2 of 4 photos" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("Error: ") for e in errors)
    assert any(
        "no map for Rawmap Simulated Sensor SIM0002 in" in e and "make one with `rawmap map PHOTOS --save`" in e
        for e in errors
    )
    assert any(str(bad) in e for e in errors)
    assert "Traceback" not in result.output

    # the planted stuck photosite no longer reads its stuck level
    repaired = read_frame(next(out.iterdir()))
    assert repaired.mosaic[20, 31] != 9000

    # outputs are never replaced without --overwrite
    result = run("repair", photos, "-o", out, "--library", lib)
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "--overwrite" in result.stderr


def test_save_and_repair_crop_modes_of_one_body(small_series: Series, tmp_path: Path):
    from rawmap.testing import SensorSpec, generate_series

    crop = tmp_path / "crop"
    generate_series(crop, n_frames=3, seed=6, spec=SensorSpec(96, 128))  # same body as small_series
    lib = tmp_path / "lib"
    result = run("map", small_series.folder, crop, "--save", "--library", lib)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in lib.iterdir() if not p.name.startswith(".")) == [
        "rawmap-simulated-sensor-sim0001",
        "rawmap-simulated-sensor-sim0001-96x128",
    ]
    result = run("library", "show", "rawmap-simulated-sensor-sim0001-96x128", "--library", lib)
    assert "camera    Rawmap Simulated Sensor SIM0001 (RAW, 96x128)" in result.stdout
    out = tmp_path / "repaired"
    result = run("repair", crop / "frame_001.dng", small_series.files[0], "-o", out, "--library", lib)
    assert result.exit_code == 0, result.output  # each photo repaired with the map of its own size
    assert "Repaired 2 of 2 photos" in result.stdout


def test_repair_with_a_map_file_as_tiff(small_series: Series, series_map: Path, tmp_path: Path):
    out = tmp_path / "tiff"
    result = run("repair", small_series.files[0], "--map", series_map, "-o", out, "--format", "tiff")
    assert result.exit_code == 0, result.output
    assert (out / "frame_000.tif").is_file()
    assert "(TIFF)" in result.stdout and "Repaired 1 of 1 photo" in result.stdout
    assert_usage_error(run("repair", small_series.files[0], "-o", out, "--format", "png"))
    assert_usage_error(run("repair", small_series.files[0]))


def test_repair_refuses_another_body_unless_forced(series_map: Path, tmp_path: Path):
    from rawmap.frame import CameraId
    from rawmap.testing import SensorSpec, generate_series

    twin = tmp_path / "twin"  # same model and sensor size, another body
    spec = SensorSpec(120, 160, top_margin=8, left_margin=12, camera=CameraId("Rawmap", "Simulated Sensor", "SIM0003"))
    generate_series(twin, n_frames=1, seed=3, spec=spec, defects=[])
    photo = twin / "frame_000.dng"
    result = run("repair", photo, "--map", series_map, "-o", tmp_path / "out")
    assert_one_error(result, "SIM0003", "SIM0001")
    assert "Repaired 0 of 1 photo" in result.stdout
    result = run("repair", photo, "--map", series_map, "-o", tmp_path / "out", "--force")
    assert result.exit_code == 0, result.output
    assert "(map of another body, --force)" in result.stdout


def test_repair_jpeg_reports_psnr(tmp_path: Path):
    from conftest import _planted

    from rawmap.testing import SensorSpec, generate_series

    folder = tmp_path / "jpegs"
    generate_series(folder, n_frames=8, seed=5, spec=SensorSpec(120, 160), defects=_planted(), jpeg=True)
    jpegs = sorted(folder.glob("*.jpg"))
    map_file = tmp_path / "jpeg-map.json"
    result = run("map", *jpegs, "-o", map_file)
    assert result.exit_code == 0, result.output
    assert DefectMap.load(map_file).sensor.source == "image"
    result = run("repair", jpegs[0], "--map", map_file, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / jpegs[0].name).is_file()
    assert "(JPEG)" in result.stdout and "PSNR elsewhere" in result.stdout


@pytest.mark.peers
def test_repair_opcodes_are_applied_by_darktable_at_the_mapped_photosites(
    small_series: Series, series_map: Path, tmp_path: Path
):
    """`rawmap repair --opcodes`: darktable (rawspeed) repairs exactly the listed photosites, and only them.

    The same photo is written twice by the same path, with the map (its three planted defects plus a column
    segment added by hand) and with an empty map (an empty FixBadPixelsList): the developed images differ
    around each listed photosite (demosaicing spreads a change over a few pixels) and nowhere else."""
    from peers import darktable_develop, require_peer

    from rawmap.opcodes import read_opcode_list

    darktable = require_peer("darktable-cli")
    edited = tmp_path / "edited.json"
    column = [(r, 100) for r in range(50, 81)]  # visible rows 50-80 of column 100
    adds = [a for r, c in column for a in ("--add", f"{r},{c},column")]
    assert run("edit", series_map, *adds, "-o", edited).exit_code == 0
    dmap = DefectMap.load(edited)
    empty = tmp_path / "empty.json"
    DefectMap(dmap.camera, dmap.sensor, dmap.frames, []).save(empty)
    photo = small_series.files[4]
    for name, m in (("listed", edited), ("plain", empty)):
        result = run("repair", photo, "--map", m, "-o", tmp_path / name, "--opcodes")
        assert result.exit_code == 0, result.output
    assert "mosaic unchanged" in result.stdout
    listed_dng, plain_dng = tmp_path / "listed" / photo.name, tmp_path / "plain" / photo.name
    import tifffile

    with tifffile.TiffFile(listed_dng) as tif:
        listed = read_opcode_list(bytes(tif.pages[0].tags[51008].value))[0].bad_pixels()
    assert listed.rects == ((50 + 8, 100 + 12, 81 + 8, 101 + 12),)  # full frame: ActiveArea origin (8, 12)
    assert set(listed.points) == {(r + 8, c + 12) for r, c in PLANTED}

    a = darktable_develop(darktable, plain_dng, tmp_path).astype(np.int64)
    b = darktable_develop(darktable, listed_dng, tmp_path).astype(np.int64)
    assert a.shape == b.shape and a.shape[:2] == (120, 160)
    changed = np.abs(a - b).max(axis=-1) > 0
    sites = list(PLANTED) + column
    near = np.zeros(changed.shape, bool)
    for r, c in sites:  # darktable's demosaicing and default modules spread a change over up to 9 pixels
        near[max(0, r - 10) : r + 11, max(0, c - 10) : c + 11] = True
    assert changed.any() and not changed[~near].any()
    assert near.mean() < 0.15 and changed.sum() > 0.3 * near.sum()  # small regions around the sites, well filled
    for r, c in PLANTED:  # each planted defect was repaired: its pixel moved
        assert changed[r, c], (r, c)
    assert changed[50:81, 100].mean() > 0.9  # and the column
    assert np.abs(a - b)[40 - 2 : 40 + 3, 90 - 2 : 90 + 3].max() > 1000  # the dead photosite, brightened


def test_repair_skip_existing_finishes_an_interrupted_run(small_series: Series, series_map: Path, tmp_path: Path):
    """`rawmap repair --skip-existing` after a run SIGKILLed after its 5th photo: the 5 finished outputs are
    kept (not rewritten), the 7 others written, one summary line, exit 0; the outputs are those of one whole run."""
    whole, out = tmp_path / "whole", tmp_path / "out"
    args = ["repair", *small_series.files, "--map", series_map, "-q"]
    assert _rawmap_killed_after(0, "rawmap.repair", "repair_file", *args, "-o", whole).returncode == 0
    killed = _rawmap_killed_after(5, "rawmap.repair", "repair_file", *args, "-o", out, "-j", "1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(done) == 5

    again = run(*args, "-o", out, "--skip-existing")
    assert again.exit_code == 0, again.output
    assert again.stderr == ""
    assert again.stdout.splitlines()[-1] == (
        f"Repaired 7 of 12 photos into {out}; 5 skipped, their output already there (--skip-existing)"
    )
    assert all(f"{p} ->" not in again.stdout for p in small_series.files if p.name in done)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in done} == done  # not rewritten
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in whole.iterdir())
    assert all((out / p.name).read_bytes() == p.read_bytes() for p in whole.iterdir())

    again = run(*args, "-o", out, "--skip-existing")  # nothing left to do
    assert again.exit_code == 0 and again.stdout.splitlines()[-1].startswith("Repaired 0 of 12 photos")
    plain = run(*args, "-o", out)  # without --skip-existing: every finished photo is an error, as before
    assert plain.exit_code == 1 and plain.stderr.count("already exists") == 12
    assert_usage_error(run(*args, "-o", out, "--skip-existing", "--overwrite"))


def test_repair_threads_give_the_same_files_and_report(small_series: Series, series_map: Path, tmp_path: Path):
    """`rawmap repair -j 2` writes the same bytes as `-j 1`, reports in input order, keeps skip-and-report,
    the x-2.dng naming of clashing names and --skip-existing."""
    twins = _copy_folder(small_series.folder, tmp_path / "twins")  # the same names: outputs frame_000-2.dng ...
    bad = corrupt_files(tmp_path / "junk", small_series.files[0])[1]
    photos = [*small_series.files[:4], bad, twins / small_series.files[0].name, twins / small_series.files[5].name]
    runs = {}
    for n in ("1", "2"):
        out = tmp_path / f"out-{n}"
        result = run("repair", *photos, "--map", series_map, "-o", out, "-q", "--threads", n)
        assert result.exit_code == 1, result.output  # the corrupt file
        runs[n] = (out, result.stdout.replace(str(out), "OUT"), result.stderr.replace(str(out), "OUT"))
    (one, out1, err1), (two, out2, err2) = runs["1"], runs["2"]
    assert out1 == out2 and err1 == err2
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir())
    assert names == ["frame_000-2.dng", "frame_000.dng", "frame_001.dng", "frame_002.dng", "frame_003.dng",
                     "frame_005.dng"]  # fmt: skip
    assert all((one / name).read_bytes() == (two / name).read_bytes() for name in names)
    reported = [line.split(" -> ")[0] for line in out2.splitlines() if " -> " in line]
    assert reported == [str(p) for p in photos if p != bad]  # input order, whatever finished first
    assert err2.count("Error: ") == 1 and str(bad) in err2
    assert "Repaired 6 of 7 photos" in out2

    # --skip-existing with threads: only the missing outputs are written
    (two / "frame_002.dng").unlink()
    again = run("repair", *photos, "--map", series_map, "-o", two, "-q", "-j", "2", "--skip-existing")
    assert again.exit_code == 1 and again.stderr.count("Error: ") == 1
    assert [line.split(" -> ")[0] for line in again.stdout.splitlines() if " -> " in line] == [
        str(small_series.files[2])
    ]
    assert (two / "frame_002.dng").read_bytes() == (one / "frame_002.dng").read_bytes()
    assert_usage_error(run("repair", *photos, "--map", series_map, "-o", tmp_path / "z", "--threads", "0"))


def test_repair_skip_existing_never_overwrites_a_file_in_the_way(
    small_series: Series, series_map: Path, tmp_path: Path
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_000.dng").write_bytes(b"not a photo, but the user's")
    result = run("repair", small_series.files[0], small_series.files[1], "--map", series_map, "-o", out,
                 "--skip-existing")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "frame_000.dng").read_bytes() == b"not a photo, but the user's"
    assert "1 skipped, its output already there" in result.stdout and (out / "frame_001.dng").is_file()


def test_repair_opcodes_refuses_tiff_and_jpegs(small_series: Series, series_map: Path, tmp_path: Path):
    assert_usage_error(run("repair", small_series.files[0], "--map", series_map, "-o", tmp_path, "--opcodes",
                           "--format", "tiff"))  # fmt: skip
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- show


def test_show_summary_and_plot(small_series: Series, series_map: Path, tmp_path: Path):
    result = run("show", series_map, "--top", "3")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("Rawmap Simulated Sensor SIM0001")
    assert "frames    12 used" in text and "strongest 3:" in text
    rows = {
        line.split()[0]: line.split()[1:]
        for line in text.splitlines()
        if line.strip().split()[:1] in (["stuck"], ["dead"], ["hot"], ["warm"])
    }
    assert all(int(rows[k][-1]) >= 1 for k in ("stuck", "dead")) and int(rows["hot"][-1]) + int(rows["warm"][-1]) >= 1

    png = tmp_path / "map.png"
    result = run("show", series_map, "--plot", png, "--photo", small_series.files[0])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"picture written to {png}" in result.stdout
    assert_one_error(run("show", series_map, "--plot", png), "already exists")
    assert_usage_error(run("show", series_map, "--photo", small_series.files[0]))
    assert_one_error(run("show", tmp_path / "missing.json"), "no such map file")


def test_show_plots_a_mosaic_photo_with_cfa(tmp_path: Path):
    """A map made with --cfa mono: its plot shows a grayscale PNG's values when --photo comes with the same
    --cfa; without it the PNG is a developed image and is refused in one line (issue 10: mono everywhere)."""
    from conftest import write_mosaic_series

    series = write_mosaic_series(tmp_path / "s", fmt="png16", cfa="mono", seed=4, n_frames=8)
    result = run("map", tmp_path / "s", "--cfa", "mono", "-o", tmp_path / "m.json", "-q")
    assert result.exit_code == 0, result.output
    photo = series.files[0]
    result = run("show", tmp_path / "m.json", "--plot", tmp_path / "p.png", "--photo", photo, "--cfa", "mono")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert_one_error(run("show", tmp_path / "m.json", "--plot", tmp_path / "q.png", "--photo", photo), str(photo))
    assert not (tmp_path / "q.png").exists()
    usage = run("show", tmp_path / "m.json", "--cfa", "mono")
    assert usage.exit_code == 2 and "give --photo too" in usage.output


def test_show_a_library_body(small_series: Series, tmp_path: Path):
    lib = tmp_path / "lib"
    assert run("map", small_series.folder, "--save", "--library", lib).exit_code == 0
    result = run("show", "sim0001", "--library", lib)
    assert result.exit_code == 0, result.output
    assert "Rawmap Simulated Sensor SIM0001" in result.stdout
    assert_one_error(run("show", "nikon", "--library", lib), "no body matching")


# --------------------------------------------------------------------------- the command line as a whole


def _command_paths(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append(prefix + (name,))
        if hasattr(cmd, "commands"):  # a group of subcommands
            out += _command_paths(cmd, prefix + (name,))
    return out


COMMANDS = _command_paths(typer.main.get_command(app))


def test_top_level_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    for path in COMMANDS:
        if len(path) == 1:
            assert path[0] in result.stdout
    assert "Example" in result.stdout
    assert {"map", "info", "export"} <= {p[0] for p in COMMANDS}


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]):
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout, f"`rawmap {' '.join(path)} --help` shows no example"
    assert f"rawmap {path[0]}" in result.stdout.split("Example", 1)[1]


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"rawmap {__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["map"],
        ["map", "x", "--no-such-option"],
        ["info"],
        ["export", "m.json"],
        ["export", "m.json", "--format", "jpeg"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(args: list[str]):
    assert_usage_error(run(*args))


def _script() -> str:
    """The installed ``rawmap`` console script (beside this Python, or on PATH)."""
    exe = "rawmap.exe" if os.name == "nt" else "rawmap"
    beside = Path(sys.executable).parent / exe
    found = str(beside) if beside.exists() else shutil.which("rawmap")
    assert found, "the rawmap console script is not installed: run `python -m pip install -e .`"
    return found


def test_installed_script_maps_and_reports(small_series: Series, tmp_path: Path):
    out = tmp_path / "map.json"
    junk = corrupt_files(tmp_path / "junk", small_series.files[0])
    proc = subprocess.run(
        [_script(), "map", str(small_series.folder), str(junk[1]), "-o", str(out)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "map written to" in proc.stdout and "Skipped 1 file:" in proc.stdout
    found = found_kinds(out)
    assert all(found.get(rc) == k.value for rc, k in PLANTED.items())

    proc = subprocess.run(
        [_script(), "map", str(junk[2]), "-o", str(tmp_path / "other.json")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""

    proc = subprocess.run([_script(), "map"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_python_dash_m():
    proc = subprocess.run(
        [sys.executable, "-m", "rawmap", "--version"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"rawmap {__version__}"


# --------------------------------------------------------------------------- raw mosaics in image files (--cfa)


@pytest.fixture(scope="module")
def mosaic_tiffs(tmp_path_factory: pytest.TempPathFactory):
    """8-bit grayscale TIFF mosaics (RGGB) with 16 hot photosites: 12 planted, 4 of them with a hot diagonal partner."""
    from conftest import write_mosaic_series

    return write_mosaic_series(tmp_path_factory.mktemp("mosaic") / "darks", fmt="tif8", cfa="RGGB", seed=8, n_pairs=4)


def test_map_cfa_reads_grayscale_mosaics(mosaic_tiffs, tmp_path: Path):
    out = tmp_path / "cam.json"
    result = run("map", mosaic_tiffs.folder, "--cfa", "rggb", "--exposure", "2.5", "--iso", "400", "-o", out)
    assert result.exit_code == 0, result.output
    assert "RGGB sensor 128x96 (RAW, 96x128, RGGB)" in result.stdout
    assert "exposures 2.5 s; ISO 400" in result.stdout
    data = json.loads(out.read_text())
    assert data["sensor"]["cfa"] == "RGGB" and data["sensor"]["source"] == "raw"
    frames = data["frames"]
    assert (frames["count"], frames["exposure_min"], frames["exposure_max"]) == (10, 2.5, 2.5)
    assert (frames["iso_min"], frames["iso_max"]) == (400, 400)
    found = found_kinds(out)
    hot = {k for k, v in found.items() if v in ("hot", "warm")}  # dark current, strong or weak
    assert hot == set(mosaic_tiffs.hot)  # recall 1
    assert len(hot) / len(found) >= 0.9  # precision

    # the same files without --cfa: developed images, as before (each hot pair is one blob)
    as_image = tmp_path / "img.json"
    assert run("map", mosaic_tiffs.folder, "-o", as_image).exit_code == 0
    assert json.loads(as_image.read_text())["sensor"]["source"] == "image"
    assert len(found_kinds(as_image)) < len(mosaic_tiffs.hot)


def test_map_cfa_mono_with_camera_name(tmp_path: Path):
    from conftest import write_mosaic_series

    series = write_mosaic_series(tmp_path / "pgm", fmt="pgm16", cfa="mono", seed=5, n_frames=6)
    out = tmp_path / "mono.json"
    result = run(
        "map", series.folder, "--cfa", "mono", "--camera", "ZWO ASI183MM Pro, 1A2B", "--black", "16", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert "ZWO ASI183MM Pro 1A2B (RAW, 96x128, monochrome)" in result.stdout
    data = json.loads(out.read_text())
    assert data["camera"] == {"make": "ZWO", "model": "ASI183MM Pro", "serial": "1A2B"}
    assert data["sensor"]["cfa"] == "" and data["sensor"]["source"] == "raw"
    assert {k for k, v in found_kinds(out).items() if v in ("hot", "warm")} == set(series.hot)


def test_cfa_refuses_a_colour_file(tmp_path: Path):
    from PIL import Image

    colour = tmp_path / "colour.png"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(colour)
    assert_one_error(run("info", colour, "--cfa", "RGGB"), str(colour), "colour (RGB) PNG", "without --cfa")
    assert_one_error(run("map", colour, colour, colour, "--cfa", "RGGB", "-o", tmp_path / "m.json"), "colour (RGB) PNG")


def test_cfa_options_need_cfa(mosaic_tiffs, tmp_path: Path):
    for extra in (["--exposure", "2"], ["--iso", "100"], ["--black", "3"], ["--camera", "A B"]):
        assert_usage_error(run("map", mosaic_tiffs.folder, "-o", tmp_path / "m.json", *extra))
    assert_usage_error(run("map", mosaic_tiffs.folder, "-o", tmp_path / "m.json", "--cfa", "RGBW"))
    assert_usage_error(run("info", mosaic_tiffs.files[0], "--cfa", "mono", "--camera", " , 12"))


def test_info_cfa_shows_the_mosaic(mosaic_tiffs):
    result = run("info", mosaic_tiffs.files[0], "--cfa", "GBRG", "--exposure", "30")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "TIFF (RAW Bayer mosaic in a 8-bit image (--cfa))" in out
    assert "CFA       GBRG" in out and "white     255" in out and "exposure  30 s" in out
    assert "model     GBRG sensor 128x96" in out
    result = run("info", mosaic_tiffs.files[0], "--cfa", "mono")
    assert "CFA       none (monochrome sensor)" in result.stdout
    assert "developed image" in run("info", mosaic_tiffs.files[0]).stdout


def test_repair_cfa_writes_the_same_format(mosaic_tiffs, tmp_path: Path):
    from rawmap.reader import MosaicSpec, read_frame

    out_map = tmp_path / "cam.json"
    assert run("map", mosaic_tiffs.folder, "--cfa", "RGGB", "-o", out_map).exit_code == 0
    photo = mosaic_tiffs.files[3]
    result = run("repair", photo, "--cfa", "RGGB", "--map", out_map, "-o", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert "(TIFF): 16 mapped photosites, 16 photosites changed" in result.stdout  # 12 planted + 4 pair partners
    spec = MosaicSpec("RGGB")
    before, after = read_frame(photo, mosaic=spec), read_frame(tmp_path / "rep" / photo.name, mosaic=spec)
    assert after.extra["dtype"] == "uint8" and after.white == 255
    mask = DefectMap.load(out_map).mask()
    assert np.array_equal(before.mosaic[~mask], after.mosaic[~mask])  # unmapped photosites bit-identical
    hot = np.array(sorted(mosaic_tiffs.hot))
    assert np.all(after.mosaic[hot[:, 0], hot[:, 1]] < before.mosaic[hot[:, 0], hot[:, 1]])
    # another pattern than the map's is refused
    result = run("repair", photo, "--cfa", "mono", "--map", out_map, "-o", tmp_path / "rep2")
    assert result.exit_code == 1 and "the defect map's is RGGB" in result.stderr


# --------------------------------------------------------------------------- outputs: folders, checks first, inputs never replaced


def test_output_with_a_trailing_slash_is_a_folder(
    small_series: Series, series_map: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    result = run("map", small_series.folder, "-o", "maps/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "maps").is_dir()
    assert [p.name for p in (tmp_path / "maps").iterdir()] == ["rawmap-simulated-sensor-sim0001.json"]

    result = run("export", series_map, "--format", "rawtherapee", "-o", "newdir/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir").is_dir()
    assert [p.suffix for p in (tmp_path / "newdir").iterdir()] == [".badpixels"]

    result = run("edit", series_map, "--add", "3,4", "-o", "edited/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "edited" / series_map.name).is_file()

    result = run("show", series_map, "--plot", "pics/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pics" / "rawmap-simulated-sensor-sim0001.png").is_file()

    # an existing folder without the slash is a folder too; a plain name stays a file
    result = run("export", series_map, "--format", "csv", "-o", "newdir")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir" / "rawmap-simulated-sensor-sim0001-defects.csv").is_file()
    assert run("export", series_map, "--format", "csv", "-o", "plain").exit_code == 0
    assert (tmp_path / "plain").is_file()


def test_unwritable_output_is_found_before_reading_photos(small_series: Series, tmp_path: Path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    result = run("map", small_series.folder, "-o", blocker / "m.json")
    line = assert_one_error(result, str(blocker))
    assert ".part" not in line
    assert result.stdout == ""  # refused before any photo was read: no summary
    result = run("repair", small_series.files[0], "--map", small_series.folder / "x.json", "-o", blocker / "out")
    assert_one_error(result, str(blocker))
    result = run("map", small_series.folder, "-o", tmp_path / "m.json", "--state", blocker / "s.rawstate")
    assert_one_error(result, str(blocker))
    assert result.stdout == "" and not (tmp_path / "m.json").exists()


def test_full_disk_names_the_users_file(series_map: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "m.csv"
    line = assert_one_error(run("export", series_map, "--format", "csv", "-o", target), "No space left on device")
    assert str(target) in line and ".part" not in line
    assert os.listdir(tmp_path) == []


def test_repair_never_writes_over_an_input(small_series: Series, series_map: Path, tmp_path: Path):
    from rawmap.reader import read_frame

    own = tmp_path / "own"
    own.mkdir()
    upper, lower = own / "IMG.DNG", own / "IMG.dng"
    shutil.copy(small_series.files[0], upper)
    shutil.copy(small_series.files[1], lower)
    before = {p: p.read_bytes() for p in (upper, lower)}
    result = run("repair", own, "--map", series_map, "-o", own, "--overwrite")
    assert result.exit_code == 0, result.output
    assert all(p.read_bytes() == b for p, b in before.items())  # both inputs intact
    outputs = sorted(p.name for p in own.iterdir() if p not in before)
    assert len(outputs) == 2 and "IMG.dng" not in outputs and "IMG.DNG" not in outputs
    assert "written as <name>-2" in result.stdout

    # two folders holding x.dng: two outputs, neither lost
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(small_series.files[2], a / "x.dng")
    shutil.copy(small_series.files[3], b / "x.dng")
    out = tmp_path / "out"
    result = run("repair", a, b, "--map", series_map, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["x-2.dng", "x.dng"]
    first, second = read_frame(out / "x.dng"), read_frame(out / "x-2.dng")
    assert not np.array_equal(first.mosaic, second.mosaic)
    assert first.mosaic[0, 0] == read_frame(a / "x.dng").mosaic[0, 0]


def test_inputs_are_refused_as_outputs_even_with_overwrite(small_series: Series, series_map: Path, tmp_path: Path):
    photos = tmp_path / "photos"
    shutil.copytree(small_series.folder, photos)
    photo = photos / "frame_000.dng"
    before = photo.read_bytes()
    assert_one_error(run("map", photos, "-o", photo, "--overwrite"), str(photo), "input")
    assert photo.read_bytes() == before

    mine = tmp_path / "m.json"
    shutil.copy(series_map, mine)
    text = mine.read_text()
    assert_one_error(run("export", mine, "--format", "csv", "-o", mine, "--overwrite"), "map being exported")
    assert mine.read_text() == text

    assert_one_error(run("show", mine, "--plot", photo, "--photo", photo, "--overwrite"), "--photo")
    assert_one_error(run("show", mine, "--plot", mine, "--overwrite"), "map shown")
    assert photo.read_bytes() == before and mine.read_text() == text

    state = tmp_path / "s.json"
    result = run("map", photos, "-o", state, "--state", state, "--overwrite")
    assert_usage_error(result)
    assert "--state" in result.stderr
    assert not state.exists()


def test_export_rawtherapee_warns_when_the_name_has_no_serial(series_map: Path, tmp_path: Path):
    data = json.loads(series_map.read_text())
    assert data["camera"]["serial_source"] == "exif"  # the simulator's DNGs carry EXIF BodySerialNumber
    result = run("export", series_map, "--format", "rawtherapee", "-o", f"{tmp_path / 'rt'}/")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "rt").iterdir()] == ["Rawmap Simulated Sensor SIM0001.badpixels"]
    assert "Warning" not in result.stderr

    data["camera"] = {"make": "Canon", "model": "Canon EOS D30", "serial": "171048961", "serial_source": "makernote"}
    d30 = tmp_path / "d30.json"
    d30.write_text(json.dumps(data))
    result = run("export", d30, "--format", "rawtherapee", "-o", f"{tmp_path / 'rt2'}/")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "rt2").iterdir()] == ["Canon EOS D30.badpixels"]
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("Warning: ")
    assert "every Canon EOS D30" in warning[0] and "maker note" in warning[0]
    assert "Canon Canon" not in result.stdout


# --------------------------------------------------------------------------- small things a new user hit


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_shows_metavars_not_python_types(path: tuple[str, ...]):
    text = run(*path, "--help").stdout
    for bad in ("<bool>", "<list", "<int", "<str>", "<path>", "<float", "range>", "{"):
        assert bad not in text, f"`rawmap {' '.join(path)} --help` shows {bad!r}"


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["export", "m.json", "--format", "jpeg"], "choose one of dcraw, rawtherapee, siril, csv"),
        (["repair", "x.dng", "-o", "out", "--format", "png"], "choose one of dng, tiff"),
        (["info", "x.tif", "--cfa", "RGBX"], "choose one of RGGB, BGGR, GRBG, GBRG, mono"),
    ],
)
def test_a_bad_choice_is_one_clean_line(args: list[str], choices: str):
    result = run(*args)
    assert_usage_error(result)
    error = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(error) == 1 and choices in error[0]
    assert "Value error" not in result.stderr


def test_ctrl_c_while_starting_is_one_line(tmp_path: Path):
    """A Ctrl-C while Python still loads typer and rawmap: 'Interrupted.', exit 130, no traceback."""
    code = (
        "import builtins, runpy, sys\n"
        "real = builtins.__import__\n"
        "def imp(name, *a, **k):\n"
        "    if name == 'typer':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = imp\n"
        "sys.argv = ['rawmap', '--help']\n"
        "runpy.run_module('rawmap', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1]
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "Interrupted.\n"


def test_closed_stdout_ends_quietly(series_map: Path, tmp_path: Path):
    """`rawmap export ... | head -1`: no 'Error: Broken pipe', no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rawmap", "export", str(series_map), "--format", "dcraw", "-o", str(tmp_path / "m.txt")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).parents[1],
    )
    with proc:
        proc.stdout.close()  # the reader is gone before rawmap prints anything
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    assert (tmp_path / "m.txt").is_file()
    assert err == "", err
    assert proc.returncode != 0


def test_show_top_n_draws_n_crops(series_map: Path, tmp_path: Path):
    from rawmap.show import plot_layout, plot_map

    data = json.loads(series_map.read_text())
    data["defects"] = [
        {"row": 10 + 8 * i, "col": 20 + 9 * i, "kind": "hot", "score": 50.0 - i, "channel": "G", "first_seen": None}
        for i in range(12)
    ]
    many = tmp_path / "many.json"
    many.write_text(json.dumps(data))
    png = tmp_path / "top5.png"
    assert run("show", many, "--top", "5", "--plot", png).exit_code == 0
    dmap = DefectMap.load(many)
    five, eight = plot_map(dmap, tmp_path / "5.png", crops=5), plot_map(dmap, tmp_path / "8.png", crops=8)
    assert png.read_bytes() == five.read_bytes() != eight.read_bytes()
    assert plot_layout(dmap, crops=5).crop_count == 5


def test_hostile_camera_names_are_printed_safely(series_map: Path, small_series: Series, tmp_path: Path):
    """ESC, CR and LF from a file's metadata never reach the terminal; a 10,000-character name is cut."""
    data = json.loads(series_map.read_text())
    data["camera"] = {"make": "Evil\x1b[2J", "model": "Cam\r\nError: forged" + "X" * 10_000, "serial": "1\x07"}
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(data))
    result = run("show", hostile)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\x07" not in result.stdout
    assert not any(line.startswith("Error: forged") for line in result.stdout.splitlines())
    assert len(first) < 200 and "…" in first
    line = assert_one_error(run("repair", small_series.files[0], "--map", hostile, "-o", tmp_path / "out"), "--force")
    assert len(line) < 400 and "\x1b" not in line


def test_map_reports_its_evidence_and_warns_when_it_is_one_view(tmp_path):
    """The summary says how many views and darks the map stands on; one view (a timelapse) gets a
    warning that only stuck and dead photosites can be mapped from it."""
    from rawmap.testing import write_scenario

    write_scenario(tmp_path / "tl", "timelapse", seed=1, shape=(120, 180), n_frames=6, jpeg=True)
    res = runner.invoke(
        app, ["map", *map(str, sorted((tmp_path / "tl").glob("*.dng"))), "-o", str(tmp_path / "tl.json")]
    )
    assert res.exit_code == 0, res.output
    assert "evidence: 1 view (frames of one scene count once)" in res.output
    assert "warning: one view only" in res.output
    # its JPEGs alone: one view of developed images, which shows almost nothing (and says so)
    jpgs = sorted((tmp_path / "tl").glob("*.jpg"))
    res = runner.invoke(app, ["map", *map(str, jpgs), "-o", str(tmp_path / "tl-jpeg.json")])
    assert res.exit_code == 0, res.output
    assert "warning: one view of developed images (JPEG)" in res.output and "one view only" not in res.output
    write_scenario(tmp_path / "dk", "darks-same", seed=1, shape=(120, 180), n_frames=8)
    res = runner.invoke(app, ["map", str(tmp_path / "dk"), "-o", str(tmp_path / "dk.json")])
    assert res.exit_code == 0, res.output
    assert "evidence: 0 views (frames of one scene count once), 8 lens-cap darks" in res.output
    assert "warning" not in res.output
    saved = json.loads((tmp_path / "dk.json").read_text())["frames"]
    assert (saved["views"], saved["darks"]) == (0, 8)


def test_memory_running_out_is_one_line(small_series: Series, tmp_path: Path):
    """A MemoryError that slips past the checks before the big allocations: one line, exit 1, no traceback."""
    code = (
        "import sys, runpy\n"
        "import rawmap.mapping as m\n"
        "def boom(*a, **k):\n"
        "    raise MemoryError\n"
        "m.map_files = boom\n"
        f"sys.argv = ['rawmap', 'map', {str(small_series.folder)!r}, '-o', {str(tmp_path / 'm.json')!r}]\n"
        "runpy.run_module('rawmap', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1]
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: out of memory")
    assert "Traceback" not in proc.stderr


def test_repair_of_an_image_pillow_cannot_decode_again_is_skipped(tmp_path: Path):
    """A TIFF that tifffile reads but Pillow cannot (RowsPerStrip 0) used to end repair in a traceback."""
    from PIL import Image

    from rawmap.defectmap import DefectMap, FrameStats, SensorGeometry
    from rawmap.errors import UnreadableFileError
    from rawmap.frame import CameraId
    from rawmap.reader import read_frame
    from rawmap.repair import _repair_jpeg

    img = tmp_path / "p.jpg"
    Image.fromarray(np.full((16, 24, 3), 100, np.uint8)).save(img)
    frame = read_frame(img)
    img.write_bytes(b"not an image any more")
    dmap = DefectMap(CameraId("", ""), SensorGeometry(16, 24, source="image"), FrameStats(3))
    with pytest.raises(UnreadableFileError, match="cannot be decoded again"):
        _repair_jpeg(frame, dmap, tmp_path / "out.jpg", overwrite=False, forced=False)


def test_merge_of_two_runs_equals_one_run(small_series: Series, tmp_path: Path):
    """Two machines each map half of the photos with --state; `rawmap merge` gives the statistics and
    the map of one run over all of them; a photo counted by both is refused."""
    files = small_series.files
    whole, a, b = tmp_path / "whole.rawstate", tmp_path / "a.rawstate", tmp_path / "b.rawstate"
    assert run("map", *files, "-o", tmp_path / "whole.json", "--state", whole, "-q").exit_code == 0
    assert run("map", *files[:6], "-o", tmp_path / "a.json", "--state", a, "-q").exit_code == 0
    assert run("map", *files[6:], "-o", tmp_path / "b.json", "--state", b, "-q").exit_code == 0
    merged, mapped = tmp_path / "m.rawstate", tmp_path / "m.json"
    result = run("merge", a, b, "-o", merged, "--map", mapped)
    assert result.exit_code == 0, result.output
    assert "merged 2 states: 12 frames" in result.output
    one, both = Accumulator.load(whole).closed(), Accumulator.load(merged)
    for name in ("n_invalid", "s_v", "s_r", "vmin", "vmax"):
        np.testing.assert_array_equal(getattr(one, name), getattr(both, name), err_msg=name)
    assert both.n_frames == 12
    assert found_kinds(mapped) == found_kinds(tmp_path / "whole.json")
    # the same photos twice: refused, nothing written
    again = tmp_path / "again.rawstate"
    assert_one_error(run("merge", a, a, "-o", again), "counts", "merge states of different photos")
    assert not again.exists()
    assert_usage_error(run("merge", a, "-o", again))


#: runs ``rawmap ARGS`` killing itself with SIGKILL right after the KILL_AFTER-th call of MODULE's NAME
#: (``Class.method`` or a function) returns: ``python -c _KILL_AFTER_CALLS KILL_AFTER MODULE NAME ARGS...``
_KILL_AFTER_CALLS = """
import importlib, os, signal, sys
kill_after, module, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.argv = ["rawmap"] + sys.argv[4:]
owner = importlib.import_module(module)
*path, attr = name.split(".")
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, attr)
done = 0
def killing(*args, **kwargs):
    global done
    out = real(*args, **kwargs)
    done += 1
    if done == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(owner, attr, killing)
from rawmap.__main__ import main
main()
"""


def _rawmap_killed_after(kill_after: int, module: str, name: str, *args: object) -> subprocess.CompletedProcess:
    """``rawmap ARGS`` in a subprocess SIGKILLed after the ``kill_after``-th call of ``module.name`` (0: never)."""
    return subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_CALLS, str(kill_after), module, name, *map(str, args)],
        cwd=_repo_root(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_map_state_killed_after_a_checkpoint_resumes_where_it_stopped(small_series: Series, tmp_path: Path):
    """`rawmap map --state` saves its statistics every --checkpoint-every photos: SIGKILLed after the 1st, 2nd
    and 3rd checkpoint (and at seeded random moments), the same command run again reads only the photos not
    yet saved and ends with the map and state of a run never interrupted (issue 12: resumable runs)."""
    import random
    import time

    def rawmap_cmd(state: Path, out: Path, kill_after: int = 0) -> subprocess.CompletedProcess:
        args = ["map", small_series.folder, "-o", out, "--state", state, "--checkpoint-every", "3", "-q", "-j", "1"]
        return _rawmap_killed_after(kill_after, "rawmap.series_state", "SeriesState.checkpoint", *args)

    whole_state, whole_map = tmp_path / "whole.rawstate", tmp_path / "whole.json"
    assert rawmap_cmd(whole_state, whole_map).returncode == 0
    want = found_kinds(whole_map)
    whole = Accumulator.load(whole_state)
    for kill_after in (1, 2, 3):
        state, out = tmp_path / f"k{kill_after}.rawstate", tmp_path / f"k{kill_after}.json"
        killed = rawmap_cmd(state, out, kill_after)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert Accumulator.load(state).n_frames == 3 * kill_after and not out.exists()
        again = rawmap_cmd(state, out)
        assert again.returncode == 0, again.stderr
        assert found_kinds(out) == want
        resumed = Accumulator.load(state)
        assert resumed.n_frames == 12
        for name in ("n_invalid", "s_v", "s_r", "vmin", "vmax", "s_xr", "s_xi", "s_xxi", "s_zz"):
            np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name), err_msg=name)
    # killed once the state counts every photo but before the map is written: the run again has nothing new
    # to read, and must still write the map (it wrote none: found by the random kills below)
    state, out = tmp_path / "last.rawstate", tmp_path / "last.json"
    args = ["map", small_series.folder, "-o", out, "--state", state, "--checkpoint-every", "3", "-q", "-j", "1"]
    killed = _rawmap_killed_after(1, "rawmap.series_state", "SeriesState.save", *args)
    assert killed.returncode == -signal.SIGKILL and Accumulator.load(state).n_frames == 12 and not out.exists()
    again = rawmap_cmd(state, out)
    assert again.returncode == 0 and "Nothing new" in again.stdout, again.stdout + again.stderr
    assert found_kinds(out) == want
    assert rawmap_cmd(state, out).returncode == 0  # and then nothing new: the map stays
    rng = random.Random(12)
    for i in range(2):  # at random moments: the state is a checkpoint or absent, never half written
        state, out = tmp_path / f"r{i}.rawstate", tmp_path / f"r{i}.json"
        args = ["map", small_series.folder, "-o", out, "--state", state, "--checkpoint-every", "3", "-q", "-j", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "rawmap", *map(str, args)],
            cwd=_repo_root(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if state.exists():
            assert Accumulator.load(state).n_frames in (3, 6, 9, 12)
        again = subprocess.run(
            [sys.executable, "-m", "rawmap", *map(str, args + ["--overwrite"])],
            cwd=_repo_root(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr
        assert found_kinds(out) == want and Accumulator.load(state).n_frames == 12


def test_map_save_killed_after_a_checkpoint_resumes_where_it_stopped(small_series: Series, tmp_path: Path):
    """`rawmap map --save` stores the body every --checkpoint-every photos: killed after the 2nd store, the
    same command run again reads only the rest and ends with the entry of a run never interrupted."""

    def rawmap_cmd(lib: Path, kill_after: int = 0) -> subprocess.CompletedProcess:
        args = ["map", small_series.folder, "--save", "--library", lib, "--checkpoint-every", "4", "-q", "-j", "1"]
        return _rawmap_killed_after(kill_after, "rawmap.bodies", "store_body", *args)

    whole, lib = tmp_path / "whole", tmp_path / "lib"
    assert rawmap_cmd(whole).returncode == 0
    killed = rawmap_cmd(lib, kill_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _entry_summary(lib)[:3] == (8, 8, 8)  # the second checkpoint, whole
    again = rawmap_cmd(lib)
    assert again.returncode == 0, again.stderr
    assert "12 frames (4 new, 8 from the stored statistics)" in again.stdout  # only the rest was read
    assert _entry_summary(lib) == _entry_summary(whole)


def test_repair_killed_at_random_moments_leaves_only_whole_outputs(
    small_series: Series, series_map: Path, tmp_path: Path
):
    """`rawmap repair` SIGKILLed part-way (seeded moments): every output it left is a whole, readable DNG of the
    photo's size, and no input changed (atomic writes: a kill leaves at most a hidden temporary file)."""
    import hashlib
    import random
    import time

    from rawmap.reader import read_frame

    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in small_series.files}
    rng = random.Random(5)
    for i in range(3):
        out = tmp_path / f"out{i}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rawmap",
                "repair",
                *map(str, small_series.files),
                "--map",
                str(series_map),
                "-o",
                f"{out}/",
            ],
            cwd=_repo_root(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 1.2))  # start-up takes about 0.6 s, the 12 repairs about 0.8 s
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        for f in out.glob("*") if out.exists() else []:
            if f.name.startswith("."):
                continue  # a temporary file the kill interrupted: never under the output's name
            assert read_frame(f).shape == (120, 160), f
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in small_series.files} == before
