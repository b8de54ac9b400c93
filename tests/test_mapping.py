"""rawmap.mapping: expanding inputs, and one defect map per body from a pile of photos."""

from __future__ import annotations

import glob
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import xxhash
from conftest import Series, _planted

from rawmap import reader
from rawmap.accumulate import Accumulator
from rawmap.defectmap import DefectKind, SensorGeometry
from rawmap.errors import InputError, NothingToMapError
from rawmap.frame import CameraId, Frame, SourceKind
from rawmap.mapping import (
    MIN_FRAMES,
    BodyMap,
    Counted,
    MapRun,
    SkipKind,
    Skipped,
    collect_inputs,
    content_key,
    load_state_keys,
    map_files,
    save_state,
)
from rawmap.reader import read_frame
from rawmap.testing import SensorSpec, generate_series

#: the integer sums, which must be exact however the frames were split
INT_ARRAYS = ("s_v", "s_r", "vmin", "vmax", "n_invalid")
SIM1 = CameraId("Rawmap", "Simulated Sensor", "SIM0001")
SIM2 = CameraId("Rawmap", "Simulated Sensor", "SIM0002")


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _must_find(series: Series) -> dict[tuple[int, int], DefectKind]:
    """Planted stuck and dead photosites visible in at least half the frames."""
    return {
        (d.row, d.col): d.kind
        for d, vf in zip(series.truth.defects, series.truth.visible_fraction)
        if vf >= 0.5 and d.kind in (DefectKind.STUCK, DefectKind.DEAD)
    }


def _found(body: BodyMap) -> dict[tuple[int, int], DefectKind]:
    return {(d.row, d.col): d.kind for d in body.defect_map.defects}


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, Path]] = []

    def __call__(self, done: int, total: int, path: Path) -> None:
        self.calls.append((done, total, path))

    def check(self, files: list[Path]) -> None:
        """Called once per file, counting up to the number of files."""
        n = len(files)
        assert [c[0] for c in self.calls] == list(range(1, n + 1))
        assert {c[1] for c in self.calls} == {n}
        assert sorted(c[2] for c in self.calls) == sorted(files)


# --------------------------------------------------------------------------- collect_inputs


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A memory card copy: photos at several depths, and files that are no photos."""
    root = tmp_path / "card"
    for name in (
        "DCIM/100CANON/IMG_0001.CR2",
        "DCIM/100CANON/IMG_0002.jpg",
        "DCIM/101CANON/IMG_0100.CR2",
        "top.dng",
        "DCIM/notes.txt",
        "DCIM/100CANON/._IMG_0001.CR2",
        "DCIM/.hidden.NEF",
        "DCIM/100CANON/IMG_0001.xmp",
    ):
        _touch(root / name)
    (root / "MISC").mkdir()
    return root


def test_collect_explicit_files_are_always_tried(card):
    notes = card / "DCIM" / "notes.txt"
    files, skipped = collect_inputs([card / "top.dng", notes])
    assert files == [card / "top.dng", notes]
    assert skipped == []


def test_collect_folder_recursively_ignores_non_images(card):
    files, skipped = collect_inputs([card])
    assert files == [
        card / "DCIM/100CANON/IMG_0001.CR2",
        card / "DCIM/100CANON/IMG_0002.jpg",
        card / "DCIM/101CANON/IMG_0100.CR2",
        card / "top.dng",
    ]
    assert skipped == []


def test_collect_globs(card):
    files, skipped = collect_inputs([str(card / "**" / "*.CR2")])
    assert files == [card / "DCIM/100CANON/IMG_0001.CR2", card / "DCIM/101CANON/IMG_0100.CR2"]
    assert skipped == []
    files, skipped = collect_inputs([str(card / "DCIM" / "100CANON" / "IMG_*")])
    assert files == [card / "DCIM/100CANON/IMG_0001.CR2", card / "DCIM/100CANON/IMG_0002.jpg"]  # not the .xmp
    assert skipped == []


def test_collect_reports_what_names_nothing(card):
    missing = card / "DCIM" / "IMG_9999.CR2"
    pattern = str(card / "**" / "*.txt")
    files, skipped = collect_inputs([missing, card / "MISC", pattern, card / "top.dng"])
    assert files == [card / "top.dng"]
    assert skipped == [
        Skipped(missing, "no such file or folder"),
        Skipped(card / "MISC", "folder holds no RAW, image or FITS files"),
        Skipped(Path(pattern), "pattern matches no RAW or image files"),
    ]
    assert glob.has_magic(pattern)


def test_collect_lists_duplicates_once(card, monkeypatch):
    monkeypatch.chdir(card)
    top = card / "top.dng"
    files, skipped = collect_inputs([top, card, "top.dng", str(card / "*.dng"), card / "DCIM" / ".." / "top.dng"])
    assert files == [
        top,
        card / "DCIM/100CANON/IMG_0001.CR2",
        card / "DCIM/100CANON/IMG_0002.jpg",
        card / "DCIM/101CANON/IMG_0100.CR2",
    ]
    assert skipped == []


def test_collect_nothing():
    assert collect_inputs([]) == ([], [])


# --------------------------------------------------------------------------- map_files: one body


@pytest.fixture(scope="module")
def full_run(small_series: Series) -> tuple[MapRun, Progress]:
    progress = Progress()
    return map_files(small_series.files, progress=progress), progress


def test_one_body_one_map(small_series, full_run):
    run, _ = full_run
    assert len(small_series.files) == 12
    assert run.skipped == []
    assert len(run.maps) == 1
    body = run.maps[0]
    assert body.camera == small_series.camera == SIM1
    assert body.source is SourceKind.RAW
    assert body.key == (SIM1, SourceKind.RAW)
    assert body.files == small_series.files
    assert run.frames_used == 12
    assert body.accumulator.n_frames == 12
    assert body.accumulator.shape == (120, 160)

    dmap = body.defect_map
    assert dmap.camera == SIM1
    assert dmap.sensor == SensorGeometry(
        120, 160, top_margin=8, left_margin=12, full_height=128, full_width=172, cfa="RGGB", source="raw"
    )
    frames = small_series.truth.frames
    assert dmap.frames.count == 12 and dmap.frames.skipped == 0
    assert dmap.frames.first_capture == min(f.time for f in frames)
    assert dmap.frames.last_capture == max(f.time for f in frames)
    assert dmap.frames.exposure_min == min(f.exposure for f in frames)
    assert dmap.frames.exposure_max == max(f.exposure for f in frames)
    assert dmap.frames.iso_min == min(f.iso for f in frames)
    assert dmap.frames.iso_max == max(f.iso for f in frames)


def test_planted_defects_are_found(small_series, full_run):
    run, _ = full_run
    want = _must_find(small_series)
    assert want == {(20, 31): DefectKind.STUCK, (40, 90): DefectKind.DEAD}
    found = _found(run.maps[0])
    assert {k: found.get(k) for k in want} == want
    # a clean simulated sensor: nothing but planted photosites in the map
    assert set(found) <= {(d.row, d.col) for d in small_series.truth.defects}
    by_pos = {(d.row, d.col): d for d in run.maps[0].defect_map.defects}
    assert by_pos[(20, 31)].channel == "G"  # RGGB: even row, odd column
    assert by_pos[(40, 90)].channel == "R"  # even row, even column
    assert by_pos[(20, 31)].value == 9000.0  # the planted stuck level, DN


def test_progress_once_per_file(small_series, full_run):
    _, progress = full_run
    progress.check(small_series.files)


# --------------------------------------------------------------------------- map_files: files that are skipped


@pytest.fixture(scope="module")
def odd_size(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """Two frames of the same body as ``small_series`` (SIM0001), but 96x128 (another crop mode)."""
    folder = tmp_path_factory.mktemp("series-odd-size")
    truth = generate_series(folder, n_frames=2, seed=21, spec=SensorSpec(96, 128))
    return Series(folder, truth)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory, small_series: Series) -> tuple[Path, Path]:
    """A DNG cut in half, and a zero-byte DNG."""
    folder = tmp_path_factory.mktemp("damaged")
    data = small_series.files[0].read_bytes()
    cut = _touch(folder / "cut.dng", data[: len(data) // 2])
    empty = _touch(folder / "empty.dng", b"")
    return cut, empty


@pytest.fixture(scope="module")
def mixed_run(small_series, other_series, odd_size, damaged) -> tuple[list[Path], MapRun, Progress]:
    """small_series, with odd-size frames of the same body, damaged files and 2 frames of another body."""
    files = small_series.files[:6] + odd_size.files + list(damaged) + other_series.files[:2] + small_series.files[6:]
    progress = Progress()
    return files, map_files(files, progress=progress), progress


def test_mixed_pile_gives_one_map(small_series, mixed_run):
    _, run, _ = mixed_run
    assert [b.key for b in run.maps] == [(SIM1, SourceKind.RAW)]
    body = run.maps[0]
    assert body.files == small_series.files
    assert run.frames_used == 12
    assert body.defect_map.frames.count == 12
    assert body.defect_map.frames.skipped == 0  # the odd-size frames are a series of their own
    assert body.split is False and body.slug == "rawmap-simulated-sensor-sim0001"  # the other size made no map
    assert run.notes == []


def test_other_size_of_same_body_is_its_own_series(odd_size, mixed_run):
    _, run, _ = mixed_run
    assert odd_size.camera == SIM1
    reasons = {s.path: s.reason for s in run.skipped}
    for p in odd_size.files:
        assert reasons[p] == "only 2 frame(s) of Rawmap Simulated Sensor SIM0001 (96x128); at least 3 are needed"


def test_damaged_files_are_skipped_with_reasons(damaged, mixed_run):
    _, run, _ = mixed_run
    cut, empty = damaged
    reasons = {s.path: s.reason for s in run.skipped}
    assert "truncated" in reasons[cut]
    assert f"the file has only {cut.stat().st_size:,} bytes" in reasons[cut]
    assert reasons[empty] == "is empty (0 bytes)"
    assert all("\n" not in r for r in reasons.values())


def test_body_with_too_few_frames_is_skipped(other_series, mixed_run):
    _, run, _ = mixed_run
    reasons = {s.path: s.reason for s in run.skipped}
    for p in other_series.files[:2]:
        assert reasons[p] == "only 2 frame(s) of Rawmap Simulated Sensor SIM0002; at least 3 are needed"


def test_every_input_is_used_or_skipped_once(small_series, odd_size, damaged, other_series, mixed_run):
    files, run, progress = mixed_run
    assert len(files) == 18
    assert sorted(s.path for s in run.skipped) == sorted([*odd_size.files, *damaged, *other_series.files[:2]])
    progress.check(files)


def test_same_result_with_files_skipped(full_run, mixed_run):
    """Skipped files do not change what the good frames add up to."""
    full, mixed = full_run[0].maps[0], mixed_run[1].maps[0]
    for name in INT_ARRAYS:
        np.testing.assert_array_equal(getattr(mixed.accumulator, name), getattr(full.accumulator, name), err_msg=name)
    assert [d.to_dict() for d in mixed.defect_map.defects] == [d.to_dict() for d in full.defect_map.defects]


# --------------------------------------------------------------------------- map_files: two bodies


def test_two_bodies_give_two_maps(small_series, other_series, full_run):
    assert other_series.camera == SIM2
    progress = Progress()
    files = other_series.files + small_series.files
    run = map_files(files, progress=progress, workers=3)
    progress.check(files)
    assert run.skipped == []
    bodies = {b.camera: b for b in run.maps}
    assert len(run.maps) == 2 and set(bodies) == {SIM1, SIM2}
    assert bodies[SIM1].files == small_series.files
    assert bodies[SIM2].files == other_series.files
    assert (bodies[SIM2].defect_map.sensor.height, bodies[SIM2].defect_map.sensor.width) == (96, 128)
    assert bodies[SIM2].defect_map.frames.count == 5
    for series in (small_series, other_series):
        want = _must_find(series)
        assert want
        found = _found(bodies[series.camera])
        assert {k: found.get(k) for k in want} == want
    # more decoding threads, same sums
    for name in INT_ARRAYS:
        np.testing.assert_array_equal(
            getattr(bodies[SIM1].accumulator, name), getattr(full_run[0].maps[0].accumulator, name), err_msg=name
        )


# --------------------------------------------------------------------------- map_files: threads


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_threads_give_the_serial_state_bit_for_bit(small_series, odd_size, damaged, workers):
    """Frames folded band by band on several threads add up to exactly what one thread computes.

    The damaged file comes first, so the series starts from whichever frame
    decodes first in file order; frames of another size are refused on the
    way.  Float sums too are identical: every band takes the frames in order.
    """
    files = [damaged[0], *small_series.files[:5], *odd_size.files, *small_series.files[5:]]
    _assert_same_as_serial(map_files(files, workers=workers), small_series, [damaged[0], *odd_size.files])


@pytest.mark.parametrize("workers", [1, 2])
def test_frames_folded_from_libraw_buffers_give_the_serial_state(other_series, workers):
    """Without left or right margins the bands fold straight from LibRaw's buffer, not a copy: same sums."""
    assert read_frame(other_series.files[0], share=True).mosaic.base is not None  # that path is taken
    _assert_same_as_serial(map_files(other_series.files, workers=workers), other_series, [])


def test_statistics_sized_ahead_from_a_file_that_fails_are_not_used(small_series, odd_size):
    """Sums are sized from the first file's header; when that file then fails, the first good frame decides."""
    from rawmap.mapping import _SeriesStart

    start = _SeriesStart(None, None, 3, first=odd_size.files[0])  # sized 96x128 in the background
    assert start.get(0, None) is None  # ... but that file "failed to decode"
    acc = start.get(1, read_frame(small_series.files[0]))
    assert acc.shape == (120, 160) and acc.s_v.shape == (120, 160)
    assert not acc.s_v.any() and (acc.vmin == np.iinfo(np.uint16).max).all()
    same = _SeriesStart(None, None, 3, first=small_series.files[0]).get(0, read_frame(small_series.files[0]))
    assert same.shape == (120, 160) and (same.vmin == np.iinfo(np.uint16).max).all()


def _assert_same_as_serial(run, series, skipped):
    [body] = run.maps
    serial = None
    for p in series.files:
        frame = read_frame(p)
        serial = serial or Accumulator.from_frame(frame)
        serial.update(frame)
    serial.close_scene()
    acc = body.accumulator.closed()  # the run leaves its views open, to be continued
    assert acc.shape == serial.shape == (series.truth.spec.height, series.truth.spec.width)
    for name in Accumulator._ARRAYS:
        np.testing.assert_array_equal(getattr(acc, name), getattr(serial, name), err_msg=name)
    assert [f.to_dict() for f in acc.frames] == [f.to_dict() for f in serial.frames]
    assert sorted(s.path for s in run.skipped) == sorted(skipped)


# --------------------------------------------------------------------------- map_files: nothing to map


def test_fewer_than_three_frames(small_series):
    assert MIN_FRAMES == 3
    progress = Progress()
    files = small_series.files[:2]
    with pytest.raises(NothingToMapError) as exc:
        map_files(files, progress=progress)
    msg = str(exc.value)
    assert msg == (
        "no usable frames to map from 2 file(s): only 2 frame(s) of Rawmap Simulated Sensor SIM0001; "
        "at least 3 are needed (2 files) — rawmap needs at least 3 RAW or image frames of the same body"
    )
    progress.check(files)


def test_one_photo_of_each_of_several_cameras_is_one_reason_naming_them(samples_dir):
    # a folder of one photo from each of six real cameras: one reason, naming the bodies
    files = sorted(samples_dir.iterdir())
    with pytest.raises(NothingToMapError) as exc:
        map_files(files)
    msg = str(exc.value)
    assert msg.startswith("no usable frames to map from 6 file(s): fewer than 3 frames of each of 6 bodies: ")
    assert "Canon EOS D30 171048961 (1), Canon EOS D30 305465770 (1) and 3 more — " in msg
    assert "\n" not in msg
    # each file still says which body it belongs to and why it was left out
    assert {s.path for s in exc.value.skipped} == set(files)
    assert all(s.kind is SkipKind.TOO_FEW for s in exc.value.skipped)
    d1 = next(s for s in exc.value.skipped if s.path.name == "nikon-d1.NEF")
    assert (d1.body, d1.reason) == ("NIKON D1", "only 1 frame(s) of NIKON D1; at least 3 are needed")


def test_too_few_frames_of_two_bodies_beside_other_reasons(small_series, other_series, damaged):
    files = small_series.files[:2] + other_series.files[:2] + list(damaged)
    with pytest.raises(NothingToMapError) as exc:
        map_files(files)
    msg = str(exc.value)
    assert msg.startswith(
        "no usable frames to map from 6 file(s): fewer than 3 frames of each of 2 bodies: "
        "Rawmap Simulated Sensor SIM0001 (2), Rawmap Simulated Sensor SIM0002 (2); "
    )
    assert "is empty (0 bytes) (1 file)" in msg


def test_too_few_frames_left_after_damaged_ones(small_series, damaged):
    files = small_series.files[:2] + list(damaged)
    with pytest.raises(NothingToMapError) as exc:
        map_files(files)
    msg = str(exc.value)
    assert msg.startswith("no usable frames to map from 4 file(s): ")
    assert "only 2 frame(s) of Rawmap Simulated Sensor SIM0001; at least 3 are needed (2 files)" in msg
    assert "is empty (0 bytes) (1 file)" in msg
    assert "truncated" in msg
    assert "\n" not in msg


def test_no_files():
    with pytest.raises(NothingToMapError) as exc:
        map_files([])
    assert str(exc.value) == (
        "no usable frames to map from 0 file(s) — rawmap needs at least 3 RAW or image frames of the same body"
    )


# --------------------------------------------------------------------------- map_files: continuing stored statistics


def test_continuing_from_stored_state_gives_the_same_sums(small_series, full_run, tmp_path):
    files = small_series.files
    first = map_files(files[:6]).maps[0]
    assert first.accumulator.n_frames == 6
    state = first.accumulator.save(tmp_path / "sim0001.rawstate")
    stored = Accumulator.load(state)

    progress = Progress()
    run = map_files(files[6:], states={first.key: stored}, progress=progress)
    progress.check(files[6:])
    assert run.skipped == []
    assert len(run.maps) == 1
    body = run.maps[0]
    assert body.files == files[6:]  # nothing old was read again
    assert body.accumulator.n_frames == 12
    assert body.defect_map.frames.count == 12

    full = full_run[0].maps[0]
    for name in INT_ARRAYS:
        got, want = getattr(body.accumulator, name), getattr(full.accumulator, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert [d.to_dict() for d in body.defect_map.defects] == [d.to_dict() for d in full.defect_map.defects]


def test_stored_state_counts_towards_the_minimum(small_series, full_run):
    """A body with stored statistics can be continued with fewer than 3 new frames."""
    files = small_series.files
    first = map_files(files[:10]).maps[0]
    run = map_files(files[10:], states={first.key: first.accumulator})
    body = run.maps[0]
    assert body.files == files[10:]
    assert body.accumulator.n_frames == 12
    for name in INT_ARRAYS:
        np.testing.assert_array_equal(getattr(body.accumulator, name), getattr(full_run[0].maps[0].accumulator, name))


# --------------------------------------------------------------------------- raw mosaics in image files (--cfa)


def _precision_recall(found: set, planted: frozenset) -> tuple[float, float]:
    hits = len(found & planted)
    return hits / max(len(found), 1), hits / len(planted)


@pytest.mark.parametrize(
    "fmt, cfa, seed",
    [("tif8", "RGGB", 8), ("png16", "BGGR", 9), ("pgm16", "GRBG", 5), ("tif8", "mono", 7), ("png16", "mono", 6)],
)
def test_mosaic_series_hot_pixels_found(tmp_path, fmt, cfa, seed):
    """Grayscale files holding mosaics, four hot pixels with a hot diagonal neighbour: every one found."""
    from conftest import write_mosaic_series

    series = write_mosaic_series(tmp_path / "s", fmt=fmt, cfa=cfa, seed=seed, n_pairs=4)
    run = map_files(series.files, mosaic=reader.MosaicSpec(cfa, exposure=2.0))
    assert not run.skipped and len(run.maps) == 1
    body = run.maps[0]
    assert body.source is SourceKind.RAW and body.accumulator.n_frames == len(series.files)
    sensor = body.defect_map.sensor
    assert (sensor.source, sensor.cfa) == ("raw", "" if cfa == "mono" else cfa)
    found = {(d.row, d.col) for d in body.defect_map.defects}
    hot = {(d.row, d.col) for d in body.defect_map.defects if d.kind is DefectKind.HOT}
    precision, recall = _precision_recall(found, series.hot)
    assert recall == 1.0 and hot == series.hot, sorted(series.hot - hot)
    assert precision >= 0.9, sorted(found - series.hot)
    if cfa == "mono":
        assert {d.channel for d in body.defect_map.defects} == {""}


def test_mosaic_as_developed_image_merges_neighbouring_defects(tmp_path):
    """Why --cfa matters: read as developed images, each hot pair is one blob and its partner is lost."""
    from conftest import write_mosaic_series

    series = write_mosaic_series(tmp_path / "s", fmt="tif8", cfa="mono", seed=7, n_pairs=4)
    as_image = map_files(series.files).maps[0]
    assert as_image.source is SourceKind.IMAGE
    found = {(d.row, d.col) for d in as_image.defect_map.defects}
    assert len(series.hot - found) == 4 and found <= series.hot  # one photosite of each pair missing
    as_mosaic = map_files(series.files, mosaic=reader.MosaicSpec("mono")).maps[0]
    assert {(d.row, d.col) for d in as_mosaic.defect_map.defects} == series.hot


def test_mosaic_colour_file_skipped_with_reason(tmp_path):
    from conftest import write_mosaic_series
    from PIL import Image

    series = write_mosaic_series(tmp_path / "s", fmt="png16", cfa="RGGB", seed=9, n_frames=4, n_hot=3)
    colour = tmp_path / "s" / "colour.png"
    Image.fromarray(np.zeros((96, 128, 3), np.uint8)).save(colour)
    files, missing = collect_inputs([tmp_path / "s"], mosaic=True)
    assert colour in files and not missing
    run = map_files(files, mosaic=reader.MosaicSpec("RGGB"))
    assert [s.path for s in run.skipped] == [colour] and "colour (RGB)" in run.skipped[0].reason
    assert run.maps[0].files == series.files


def test_mosaic_pgm_found_in_folders_only_with_cfa(tmp_path):
    from conftest import write_mosaic_series

    write_mosaic_series(tmp_path / "s", fmt="pgm16", cfa="mono", seed=1, n_frames=3, n_hot=1)
    assert collect_inputs([tmp_path / "s"])[0] == []
    assert len(collect_inputs([tmp_path / "s"], mosaic=True)[0]) == 3


def test_mosaic_bodies_by_size_or_by_name(tmp_path):
    """Unnamed files group by pattern and size; --camera makes them one named body."""
    from conftest import write_mosaic_series

    a = write_mosaic_series(tmp_path / "a", fmt="tif8", cfa="RGGB", seed=2, n_frames=3, n_hot=2)
    b = write_mosaic_series(tmp_path / "b", fmt="tif8", cfa="RGGB", seed=3, n_frames=3, n_hot=2, shape=(64, 96))
    run = map_files(a.files + b.files, mosaic=reader.MosaicSpec("RGGB"))
    assert sorted(m.camera.model for m in run.maps) == ["RGGB sensor 128x96", "RGGB sensor 96x64"]
    cam = CameraId("Basler", "acA1920-40gc", "2233")
    run = map_files(a.files + b.files, mosaic=reader.MosaicSpec("RGGB", camera=cam))
    # one body, two sensor sizes: a map per size, the larger first, nothing skipped
    assert [m.camera for m in run.maps] == [cam, cam]
    assert [m.accumulator.shape for m in run.maps] == [(96, 128), (64, 96)]
    assert not run.skipped


# --------------------------------------------------------------------------- map_files: the same photo twice


def _copy(src: Path, dst: Path) -> Path:
    return _touch(dst, src.read_bytes())


def test_content_key_follows_the_bytes_not_the_name(small_series, tmp_path):
    a, b = small_series.files[:2]
    copy = _copy(a, tmp_path / "elsewhere" / "renamed.DNG")
    key = content_key(a)
    assert key.startswith(f"x3:{a.stat().st_size}:") and len(key.rsplit(":", 1)[1]) == 32
    assert key == f"x3:{a.stat().st_size}:{xxhash.xxh3_128(a.read_bytes()).hexdigest()}"
    assert content_key(copy) == key
    assert content_key(b) != key
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 1  # one bit changed
    copy.write_bytes(bytes(data))
    assert content_key(copy) != key


def test_copies_renamed_files_and_moved_folders_are_counted_once(small_series, full_run, tmp_path):
    files = small_series.files
    moved = tmp_path / "backup" / "2024"  # the whole folder again, elsewhere
    for p in files:
        _copy(p, moved / p.name)
    renamed = [_copy(p, tmp_path / f"IMG_{i:04d}.dng") for i, p in enumerate(files[:3])]
    pile = files[:6] + renamed + sorted(moved.glob("*.dng")) + files[6:]
    progress = Progress()
    run = map_files(pile, progress=progress)
    progress.check(pile)

    [body] = run.maps
    used = files[:6] + [moved / p.name for p in files[6:]]  # each photo once, from the first path given
    assert body.files == used
    assert body.accumulator.n_frames == 12
    assert body.content == {p: content_key(p) for p in used}
    dups = {s.path: s for s in run.skipped}
    assert set(dups) == {*renamed, *(moved / p.name for p in files[:6]), *files[6:]}
    assert all(s.kind is SkipKind.DUPLICATE for s in run.skipped)
    assert dups[renamed[1]].reason == f"duplicate of {files[1]}"
    assert dups[moved / files[2].name].reason == f"duplicate of {files[2]}"
    assert dups[files[7]].reason == f"duplicate of {moved / files[7].name}"
    assert body.defect_map.frames.skipped == 0  # copies are not frames that failed
    full = full_run[0].maps[0]
    for name in INT_ARRAYS:
        np.testing.assert_array_equal(getattr(body.accumulator, name), getattr(full.accumulator, name), err_msg=name)


def test_photos_already_counted_are_skipped_by_content_or_path(small_series, tmp_path):
    files = small_series.files
    first = map_files(files[:6]).maps[0]
    moved = [_copy(p, tmp_path / "moved" / p.name) for p in files[:4]]
    counted = Counted(
        keys={first.content[p]: str(p) for p in files[:4]}, paths={files[4].resolve(), files[5].resolve()}
    )
    run = map_files([*moved, *files[4:]], states={first.key: first.accumulator}, counted=counted)
    [body] = run.maps
    assert body.files == files[6:]
    assert body.accumulator.n_frames == 12
    reasons = {s.path: (s.kind, s.reason) for s in run.skipped}
    assert reasons == {
        **{
            m: (SkipKind.COUNTED, f"same content as {p}, already counted in the stored statistics")
            for m, p in zip(moved, files)
        },
        files[4]: (SkipKind.COUNTED, "already counted in the stored statistics"),
        files[5]: (SkipKind.COUNTED, "already counted in the stored statistics"),
    }


def test_keys_stored_before_xxh3_still_recognise_their_photos(small_series, tmp_path):
    """Statistics stored with the SHA-256 keys of before 2026-12-01: a moved copy of a counted photo is still skipped."""
    files = small_series.files
    first = map_files(files[:6]).maps[0]
    moved = [_copy(p, tmp_path / "moved" / p.name) for p in files[:4]]

    def old_key(p: Path) -> str:
        data = p.read_bytes()
        return f"s256:{len(data)}:{hashlib.sha256(data).hexdigest()[:32]}"

    stored = {old_key(p): str(p) for p in files[:4]}
    stored |= {first.content[p]: str(p) for p in files[4:6]}  # a library continued after the change holds both
    run = map_files([*moved, *files[4:]], states={first.key: first.accumulator}, counted=Counted(keys=stored))
    [body] = run.maps
    assert body.files == files[6:]
    assert body.accumulator.n_frames == 12
    reasons = {s.path: s.reason for s in run.skipped}
    assert reasons == {
        **{m: f"same content as {p}, already counted in the stored statistics" for m, p in zip(moved, files)},
        **{p: f"same content as {p}, already counted in the stored statistics" for p in files[4:6]},
    }
    assert all(k.startswith("x3:") for k in body.content.values())  # new frames are recorded by their new key


def test_state_file_keeps_content_keys(small_series, tmp_path):
    body = map_files(small_series.files[:4]).maps[0]
    keys = {k: str(p) for p, k in body.content.items()}
    path = save_state(tmp_path / "body.rawstate", body.accumulator, keys)
    assert load_state_keys(path) == keys and len(keys) == 4
    acc = Accumulator.load(path)  # still a plain state file
    assert acc.n_frames == 4
    np.testing.assert_array_equal(acc.s_v, body.accumulator.s_v)
    old = body.accumulator.save(tmp_path / "old.rawstate")  # written before content keys: none, no error
    assert load_state_keys(old) == {}


# --------------------------------------------------------------------------- map_files: RAW+JPEG twins


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """4 shots of SIM0001, each as frame_00N.dng and its JPEG frame_00N.jpg (same stem, same capture time)."""
    folder = tmp_path_factory.mktemp("twins")
    truth = generate_series(folder, n_frames=4, seed=31, spec=SensorSpec(64, 96), jpeg=True)
    return Series(folder, truth)


def test_jpeg_twins_of_raw_files_are_skipped(twins):
    jpegs = sorted(twins.folder.glob("*.jpg"))
    assert len(jpegs) == 4 and len(twins.files) == 4
    pile = sorted(twins.folder.glob("frame_*.*"))  # dng, jpg, dng, jpg ...
    progress = Progress()
    run = map_files(pile, progress=progress)
    progress.check(pile)
    [body] = run.maps  # one body: no image map beside the RAW one
    assert body.source is SourceKind.RAW and body.files == twins.files
    assert {s.path: (s.kind, s.reason) for s in run.skipped} == {
        j: (SkipKind.TWIN, f"twin of {j.with_suffix('.dng')}") for j in jpegs
    }


def test_jpegs_that_are_no_twins_are_used(twins, tmp_path):
    jpegs = sorted(twins.folder.glob("*.jpg"))
    # alone, the JPEGs make an image map of the body
    run = map_files(jpegs)
    assert [(b.key, len(b.files)) for b in run.maps] == [((twins.camera, SourceKind.IMAGE), 4)]
    # same stem and folder, but other shots (other capture times): no twins, both maps are made
    other = tmp_path / "other"
    raws = [_copy(p, other / p.name) for p in twins.files[:3]]
    shifted = [_copy(j, other / f"frame_{i:03d}.jpg") for i, j in enumerate(jpegs[1:])]
    assert [r.stem for r in raws] == [j.stem for j in shifted]
    run = map_files(sorted(other.iterdir()))
    assert run.skipped == []
    assert [(b.source, b.files) for b in run.maps] == [(SourceKind.RAW, raws), (SourceKind.IMAGE, shifted)]
    # the RAW files of a twin counted earlier still make its JPEG a twin
    with pytest.raises(NothingToMapError) as exc:
        map_files(twins.files[:3] + jpegs, counted=Counted(paths={p.resolve() for p in twins.files[:3]}))
    assert str(exc.value) == (
        "no usable frames to map from 7 file(s): already counted in the stored statistics (3 files); twin of a RAW "
        "file in the same run (3 files); only 1 frame(s) of Rawmap Simulated Sensor SIM0001; at least 3 are needed "
        "(1 file) — "
        "rawmap needs at least 3 RAW or image frames of the same body"
    )


# --------------------------------------------------------------------------- map_files: photos without camera identity


def _plain_images(folder: Path, n: int, shape: tuple[int, int], ext: str, seed: int) -> list[Path]:
    """Frames written by Pillow with no EXIF at all: smooth scenes (each another view) with one stuck photosite."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    for i in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.2 * shape[1]) ** 2))
        base = 40 + 150 * blob + 30 * rng.uniform() * (y / shape[0])
        rgb = np.clip(base[..., None] + rng.normal(0, 2, (*shape, 3)), 0, 255).astype(np.uint8)
        rgb[5, 7] = 255
        p = folder / f"shot{i}.{ext}"
        Image.fromarray(rgb, "RGB").save(p, **({"quality": 95} if ext == "jpg" else {}))
        out.append(p)
    return out


def test_photos_without_camera_identity_are_grouped_by_size_with_a_warning(tmp_path):
    pngs = _plain_images(tmp_path / "png", 4, (64, 96), "png", 1)
    jpgs = _plain_images(tmp_path / "jpg", 3, (48, 80), "jpg", 2)
    assert reader.identify(pngs[0]) == (CameraId("", "", ""), SourceKind.IMAGE)
    run = map_files(jpgs + pngs)
    assert run.skipped == []
    by_shape = {b.shape: b for b in run.maps}
    assert set(by_shape) == {(64, 96), (48, 80)}
    assert by_shape[(64, 96)].files == pngs and by_shape[(48, 80)].files == jpgs
    assert all(b.camera == CameraId("", "", "") and b.source is SourceKind.IMAGE and b.split for b in run.maps)
    assert [b.slug for b in run.maps] == ["unknown-camera-image-64x96", "unknown-camera-image-48x80"]
    warnings = [n for n in run.notes if n.startswith("warning:")]
    assert warnings == [
        "warning: 4 image frame(s) of 64x96 record no camera make or model: they are assumed to come from one body "
        "(map photos of other cameras separately)",
        "warning: 3 image frame(s) of 48x80 record no camera make or model: they are assumed to come from one body "
        "(map photos of other cameras separately)",
    ]
    assert (5, 7) in {(d.row, d.col) for d in by_shape[(64, 96)].defect_map.defects}


# --------------------------------------------------------------------------- map_files: crop modes of one body


@pytest.fixture(scope="module")
def crop_mode(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """Four frames of the same body as ``small_series`` (SIM0001), 96x128 (a crop mode)."""
    folder = tmp_path_factory.mktemp("series-crop")
    truth = generate_series(folder, n_frames=4, seed=41, spec=SensorSpec(96, 128), defects=_planted())
    return Series(folder, truth)


def test_sensor_sizes_of_one_body_are_mapped_apart_whatever_the_order(small_series, crop_mode, full_run):
    assert crop_mode.camera == small_series.camera == SIM1
    one = map_files(small_series.files + crop_mode.files)
    two = map_files(crop_mode.files[:2] + small_series.files[::-1][:6] + crop_mode.files[2:] + small_series.files[:6])
    for run in (one, two):
        assert run.skipped == []
        assert [(b.key, b.shape, b.split) for b in run.maps] == [
            ((SIM1, SourceKind.RAW), (120, 160), True),
            ((SIM1, SourceKind.RAW), (96, 128), True),
        ]
        assert [b.slug for b in run.maps] == [
            "rawmap-simulated-sensor-sim0001-120x160",
            "rawmap-simulated-sensor-sim0001-96x128",
        ]
        assert run.notes == [
            "Rawmap Simulated Sensor SIM0001 (RAW) has frames of 2 sensor sizes "
            "(120x160, 96x128): each size is mapped on its own"
        ]
    for a, b in zip(one.maps, two.maps):
        assert sorted(a.files) == sorted(b.files)
        for name in INT_ARRAYS:
            np.testing.assert_array_equal(getattr(a.accumulator, name), getattr(b.accumulator, name), err_msg=name)
    full = one.maps[0]
    for name in INT_ARRAYS:  # the full-size map is the one made from its frames alone
        np.testing.assert_array_equal(getattr(full.accumulator, name), getattr(full_run[0].maps[0].accumulator, name))
    assert _must_find(crop_mode)
    found = _found(one.maps[1])
    assert {k: found.get(k) for k in _must_find(crop_mode)} == _must_find(crop_mode)


def test_stored_state_of_another_size_is_not_continued(small_series, crop_mode):
    full = map_files(small_series.files[:6]).maps[0]
    run = map_files(crop_mode.files, states={(SIM1, SourceKind.RAW): full.accumulator})
    [body] = run.maps
    assert body.shape == (96, 128) and body.accumulator.n_frames == 4  # a new series, not the 120x160 one
    assert full.accumulator.n_frames == 6


# --------------------------------------------------------------------------- damaged files among good frames


def _edited_copy(src: Path, dst: Path, edits: dict[int, list[int]]) -> Path:
    from fuzzing import set_tiff_tag

    data = bytearray(src.read_bytes())
    for tag, values in edits.items():
        set_tiff_tag(data, tag, values)
    dst.write_bytes(data)
    return dst


@pytest.mark.parametrize(
    "edits, reason",
    [
        ({256: [28769], 257: [24260], 50829: [0, 0, 24260, 28769]}, "a 24260x28769 sensor (698 million photosites)"),
        ({256: [28769], 257: [24260]}, "a 120x160 sensor in a 24260x28769 frame"),
        ({50717: [8]}, "has impossible levels (black 512, white 8)"),
        ({50714: [65000]}, "has impossible levels (black 65000, white 16383)"),
    ],
)
@pytest.mark.parametrize("place", ["first", "last"])
def test_damaged_header_among_good_frames_is_skipped_with_its_reason(
    small_series, full_run, tmp_path, edits, reason, place
):
    bad = _edited_copy(small_series.files[0], tmp_path / "bad.dng", edits)
    files = [bad, *small_series.files] if place == "first" else [*small_series.files, bad]
    run = map_files(files)
    [body] = run.maps
    assert body.files == small_series.files
    [skip] = run.skipped
    assert skip.path == bad and reason in skip.reason and "header is damaged" in skip.reason
    [ref] = full_run[0].maps
    assert body.defect_map.to_dict()["defects"] == ref.defect_map.to_dict()["defects"]


def test_rejected_files_keep_their_own_reason_in_a_map(small_series, tmp_path):
    from conftest import SHARED_SAMPLES

    rejects = sorted((SHARED_SAMPLES / "reject").glob("*"))
    if not rejects:
        pytest.skip(f"reject samples not found at {SHARED_SAMPLES / 'reject'}")
    text = tmp_path / "notes.NEF"
    text.write_text("hello world this is text\n")
    run = map_files([*rejects, text, *small_series.files])
    assert run.frames_used == len(small_series.files)
    reasons = {s.path: s.reason for s in run.skipped}
    assert set(reasons) == {*rejects, text}
    for p in [*rejects, text]:
        with pytest.raises(InputError) as exc:
            reader.read_info(p)
        assert reasons[p] == exc.value.reason  # what `rawmap info` says, not "only 1 frame(s) of ..."
        assert "frame(s)" not in reasons[p]
    assert "linear (already demosaiced) DNG" in reasons[SHARED_SAMPLES / "reject" / "canon-6d-linear.dng"]
    assert "VC-5" in reasons[SHARED_SAMPLES / "reject" / "gopro-fusion.GPR"]
    assert "film scanner" in reasons[SHARED_SAMPLES / "reject" / "nikon-coolscan-scanner.nef"]
    assert reasons[text].startswith("is not a camera RAW file: no RAW signature")


def test_nothing_to_map_counts_every_file_in_its_one_line():
    """Four files refused for four reasons: the error names the three most common and counts the rest."""
    from conftest import SHARED_SAMPLES

    rejects = sorted((SHARED_SAMPLES / "reject").glob("*"))
    if len(rejects) < 4:
        pytest.skip(f"reject samples not found at {SHARED_SAMPLES / 'reject'}")
    with pytest.raises(NothingToMapError) as exc:
        map_files(rejects)
    msg = str(exc.value)
    assert msg.startswith(f"no usable frames to map from {len(rejects)} file(s): ")
    named = sum(int(n) for n in re.findall(r"\((\d+) files?\)(?:;| —)", msg))
    more = re.search(r"; (\d+) files? more for (\d+) other reasons?", msg)
    assert more is not None and named + int(more.group(1)) == len(rejects)
    assert "\n" not in msg


def test_too_few_frames_still_said_of_readable_files(small_series, tmp_path):
    bad = _edited_copy(small_series.files[0], tmp_path / "bad.dng", {50717: [8]})
    with pytest.raises(NothingToMapError) as exc:
        map_files([bad, *small_series.files[1:3]])
    msg = str(exc.value)
    assert "only 2 usable frame(s) of Rawmap Simulated Sensor SIM0001; at least 3 are needed (2 files)" in msg
    assert "has impossible levels (black 512, white 8)" in msg


# --------------------------------------------------------------------------- the worker protocol never hangs


def _in_thread(fn, timeout: float = 20.0):
    """Run ``fn`` on a daemon thread; (finished, result or exception)."""
    import threading

    box: list = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    return (not t.is_alive()), (box[0] if box else None)


def test_series_start_that_fails_releases_the_next_file(small_series):
    """A first frame that cannot start the statistics is decided anyway: the next file does not wait."""
    from rawmap.mapping import _SeriesStart

    good = read_frame(small_series.files[1])
    tiny = Frame(  # a real frame too small for statistics: Accumulator refuses it
        path=small_series.files[0],
        mosaic=np.zeros((2, 2), np.uint16),
        cfa=good.cfa,
        black=good.black,
        white=good.white,
        exposure=1.0,
        iso=100.0,
        time=None,
        camera=good.camera,
    )
    start = _SeriesStart(None, None, 2, first=small_series.files[0])
    done, got = _in_thread(lambda: start.get(0, tiny))
    assert done and isinstance(got, ValueError)
    done, got = _in_thread(lambda: start.get(1, good))
    assert done, "the second file waited for ever after the first one failed"
    assert isinstance(got, Accumulator) and got.shape == (120, 160)


_LIMITED = r"""
import resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import rawmap.__main__, rawmap.mapping
rawmap.mapping.map_files(sorted(Path(sys.argv[2]).glob("*.dng"))[:3])  # compiled kernels loaded first
vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[3]), resource.RLIM_INFINITY))
sys.argv = ["rawmap"] + sys.argv[4:]
rawmap.__main__.main()
"""


def test_statistics_that_do_not_fit_in_memory_skip_the_frames_and_never_hang(small_series, tmp_path):
    """Under an address-space limit the sums of a 3 MP series cannot be allocated: skipped, reported, no hang.

    Before, the allocation failed inside the series start and the next
    frame waited for ever.
    """
    import subprocess
    import sys

    resource = pytest.importorskip("resource")
    if not Path("/proc/self/status").exists() or not hasattr(resource, "RLIMIT_AS"):
        pytest.skip("needs Linux's /proc and RLIMIT_AS")
    from rawmap.dng import write_dng

    big = tmp_path / "big"
    big.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):  # 6 MB each to decode; their sums take 93 MB
        mosaic = (1500 + rng.normal(0, 8, size=(1500, 2000))).astype(np.uint16)
        write_dng(
            big / f"big_{i}.dng",
            mosaic,
            cfa=np.array([[0, 1], [3, 2]]),
            black=512,
            white=16383,
            camera=CameraId("Rawmap", "Big Sensor", "B1"),
            exposure=1.0,
            iso=100,
        )
    out = tmp_path / "maps"
    root = Path(__file__).resolve().parents[1]
    args = [
        sys.executable,
        "-c",
        _LIMITED,
        str(root),
        str(small_series.folder),
        str(45 << 20),
        "map",
        str(big),
        str(small_series.folder),
        "-o",
        str(out),
        "-q",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    too_large = [line for line in proc.stdout.splitlines() if "is too large to map here" in line]
    assert len(too_large) == 3
    assert "the statistics of a 1500x2000 sensor need 0.093 GB, more than the" in too_large[0]
    assert (out.with_suffix(".json") if out.suffix else out).exists()
