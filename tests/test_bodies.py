"""rawmap.bodies: a run folded into a body's stored entry (statistics continued or merged, imported defects, edits)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_library import (  # the simulated frames of the library's tests: two hot photosites, one from frame 8 on
    CAM,
    CFA,
    EARLY,
    LATE,
    RAW,
    T0,
    H,
    W,
    _accumulate,
    _assert_same_state,
    _body,
    _dicts,
    _frame,
    _hand_map,
)

from rawmap.bodies import merge_imported, store_body, update_entry
from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats
from rawmap.detect import ClassifyParams, build_map
from rawmap.dng import write_dng
from rawmap.frame import Frame
from rawmap.library import EntryUpdate, Library, LibraryError
from rawmap.mapping import BodyMap, Counted, SkipKind, content_key, map_files


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    """16 frames of 64 x 96: EARLY hot from the first frame on, LATE from frame 8 on."""
    rng = np.random.default_rng(1)
    return [_frame(rng, i) for i in range(16)]


def _write_photos(folder: Path, frames: list[Frame]) -> list[Path]:
    return [
        write_dng(
            folder / f"f{i:03d}.dng",
            f.mosaic,
            cfa=CFA,
            black=512,
            white=16383,
            camera=CAM,
            exposure=f.exposure,
            iso=f.iso,
            time=f.time,
        )
        for i, f in enumerate(frames)
    ]


def _found(dmap: DefectMap) -> dict[tuple[int, int], Defect]:
    return {(d.row, d.col): d for d in dmap.defects}


# --------------------------------------------------------------------------- what an update holds
def test_a_new_entry_is_the_run_as_it_is(tmp_path, frames):
    body = _body(_accumulate(frames[:8]))
    update = update_entry(body, None)
    assert isinstance(update, EntryUpdate) and update.base is None
    assert update.defect_map is body.defect_map and update.accumulator is body.accumulator
    assert update.files == tuple(f"/photos/f{i:03d}.dng" for i in range(8))
    entry, dmap = store_body(Library(tmp_path), body)
    assert dmap is body.defect_map  # what was written, not read back
    assert Library(tmp_path).load_map(entry).to_json() == dmap.to_json()


def test_continuing_stored_state_equals_mapping_all_at_once(tmp_path, frames):
    lib = Library(tmp_path)
    first = _body(_accumulate(frames[:8]))
    store_body(lib, first)
    base = lib.states().get((CAM, RAW))
    assert base is not None and base.n_frames == 8
    entry, dmap = store_body(lib, _body(_accumulate(frames[8:], base)))

    whole = _accumulate(frames)
    _assert_same_state(lib.load_state(CAM), whole)
    assert _dicts(dmap) == _dicts(lib.load_map(CAM)) == _dicts(build_map(whole))
    assert (entry.frames, entry.state_frames) == (16, 16)
    assert _dicts(DefectMap.load(entry.path / "map.previous.json")) == _dicts(first.defect_map)
    assert len(lib.known_files()) == 16


def test_first_seen_keeps_the_earliest_time(tmp_path, frames):
    lib = Library(tmp_path)
    _, before = store_body(lib, _body(_accumulate(frames[:8])))
    early_before = _found(before)[EARLY]
    assert early_before.kind in (DefectKind.HOT, DefectKind.WARM)
    _, after = store_body(lib, _body(_accumulate(frames[8:], lib.state_for(CAM))))
    early, late = _found(after)[EARLY], _found(after)[LATE]
    assert {early.kind, late.kind} <= {DefectKind.HOT, DefectKind.WARM}
    # the early defect keeps its date from the first run; the late one dates from when it appeared
    assert early.first_seen == early_before.first_seen
    assert early.first_seen < T0 + dt.timedelta(hours=8) <= late.first_seen


def test_fresh_statistics_of_other_photos_are_merged_and_classified_again(tmp_path, frames):
    lib = Library(tmp_path)
    params = ClassifyParams.for_sensitivity("high")
    acc = _accumulate(frames[:8])
    store_body(lib, BodyMap(CAM, RAW, build_map(acc, params), acc, []))
    # a run that did not continue the stored state, on other photos: an exact union
    fresh = _accumulate(frames[8:])
    update = update_entry(BodyMap(CAM, RAW, build_map(fresh, params), fresh, []), lib.stored(CAM))
    whole = _accumulate(frames)
    for name in ("n_invalid", "s_v", "s_r", "vmin", "vmax"):
        np.testing.assert_array_equal(getattr(update.accumulator, name), getattr(whole, name), err_msg=name)
    assert update.accumulator.n_frames == 16 and len(update.files) == 16
    # classified again from the merged statistics, with the thresholds the run's map recorded
    assert _dicts(update.defect_map) == _dicts(build_map(update.accumulator, params))
    assert update.defect_map.thresholds["classify"]["sensitivity"] == "high"  # not the default thresholds
    entry = lib.store(update)
    assert entry.frames == 16 and lib.load_map(CAM).to_json() == update.defect_map.to_json()
    found = _found(update.defect_map)
    assert found[EARLY].first_seen < found[LATE].first_seen


def test_repeated_photos_are_refused(tmp_path, frames):
    lib = Library(tmp_path)
    store_body(lib, _body(_accumulate(frames[:8])))
    before = (tmp_path / "testco-tc-1-0001" / "body.json").read_bytes()
    # some of the same photos mapped again from scratch
    with pytest.raises(LibraryError, match="repeat photos already in the library"):
        store_body(lib, _body(_accumulate(frames[4:10])))
    # continuing the stored statistics with a photo already in them
    with pytest.raises(LibraryError, match=r"f003\.dng: already counted in the statistics of Testco TC-1 0001"):
        store_body(lib, _body(_accumulate([frames[3], frames[9], frames[10]], lib.state_for(CAM))))
    assert (tmp_path / "testco-tc-1-0001" / "body.json").read_bytes() == before
    assert lib.load_state(CAM).n_frames == 8
    # the very same run again gives the very same statistics: storing it changes nothing
    entry, _ = store_body(lib, _body(_accumulate(frames[:8])))
    assert entry.state_frames == 8 and len(lib.known_files()) == 8


def test_statistics_repeating_stored_content_are_refused(tmp_path, frames):
    lib = Library(tmp_path)
    first = _body(_accumulate(frames[:4]))
    first.content = {p: f"key{i}" for i, p in enumerate(first.files)}
    store_body(lib, first)
    again = _body(_accumulate(frames[4:8]))  # other paths, but the content of one stored photo
    again.content = {p: f"key{i + 3}" for i, p in enumerate(again.files)}
    with pytest.raises(LibraryError, match=r"f004.dng \(same content as /photos/f003.dng\): already counted"):
        store_body(lib, again)
    assert lib.entries()[0].state_frames == 4


def test_statistics_continuing_an_older_version_are_refused(tmp_path, frames):
    lib = Library(tmp_path)
    store_body(lib, _body(_accumulate(frames[:8])))
    a = _accumulate(frames[8:12], lib.state_for(CAM))
    b = _accumulate(frames[12:], lib.state_for(CAM))
    store_body(lib, _body(a))
    with pytest.raises(LibraryError, match="another run updated the entry meanwhile"):
        store_body(lib, _body(b))
    assert lib.get(CAM).frames == 12


def test_statistics_of_another_body_cannot_be_merged(tmp_path, frames):
    lib = Library(tmp_path)
    store_body(lib, _body(_accumulate(frames[:4])))
    small = [Frame(**{**f.__dict__, "mosaic": f.mosaic[:32].copy()}) for f in frames[4:8]]
    acc = _accumulate(small)
    with pytest.raises(LibraryError, match="cannot add these statistics to the stored ones"):
        update_entry(BodyMap(CAM, RAW, build_map(acc), acc, []), lib.stored(CAM))  # stored of another size


# --------------------------------------------------------------------------- imported defects, edits by hand
def test_merge_imported_keeps_every_defect_and_the_earliest_date():
    old, new = dt.datetime(2023, 6, 1), dt.datetime(2024, 3, 1)
    imported = _hand_map(
        defects=[Defect(5, 5, DefectKind.COLD, 9.0, "R", old, 0.4), Defect(7, 8, DefectKind.HOT, 50.0, "G", new, 90.0)]
    )
    made = replace(
        _hand_map(
            defects=[
                Defect(7, 8, DefectKind.HOT, 20.0, "G", old, 80.0),
                Defect(9, 9, DefectKind.HOT, 30.0, "B", new, 70.0),
            ]
        ),
        frames=FrameStats(
            10,
            2,
            first_capture=new,
            last_capture=new + dt.timedelta(days=1),
            exposure_min=0.1,
            exposure_max=1.0,
            iso_min=100,
            iso_max=3200,
        ),
        dropped=[(1, 1)],
    )
    merged = merge_imported(made, imported)
    found = _found(merged)
    assert sorted(found) == [(5, 5), (7, 8), (9, 9)]
    assert found[(7, 8)].score == 50.0 and found[(7, 8)].first_seen == old  # higher score, earliest date
    assert merged.frames.count == 30 and merged.frames.skipped == 2
    assert (merged.frames.first_capture, merged.frames.last_capture) == (old, new + dt.timedelta(days=1))
    assert (merged.frames.exposure_min, merged.frames.exposure_max) == (0.1, 4.0)
    assert (merged.frames.iso_min, merged.frames.iso_max) == (100, 3200)
    assert merged.thresholds["imported"] == {"defects": 2, "frames": 20, "created": imported.created.isoformat()}
    assert merged.dropped == [(1, 1)]
    with pytest.raises(LibraryError, match=r"x/imported.json: the imported map is 64x96, the new photos 32x96"):
        merge_imported(replace(made, sensor=replace(made.sensor, height=32)), imported, where=Path("x"))


def test_imported_map_merges_with_new_photos(tmp_path, frames):
    lib = Library(tmp_path / "lib")
    old = dt.datetime(2023, 6, 1)
    imported = _hand_map(
        defects=[
            Defect(5, 5, DefectKind.COLD, 9.0, "R", old, 0.4),
            Defect(*EARLY, DefectKind.HOT, 5.0, "R", old, 300.0),  # the same hot pixel, seen earlier elsewhere
        ]
    )
    entry = lib.import_map(imported.save(tmp_path / "m.json"))
    assert lib.states().get((CAM, RAW)) is None
    for part in (frames[:8], frames[8:]):
        entry, dmap = store_body(lib, _body(_accumulate(part, lib.state_for(CAM))))
        assert dmap.to_json() == lib.load_map(CAM).to_json()
        found = _found(dmap)
        assert found[(5, 5)].kind is DefectKind.COLD  # never dropped
        assert found[EARLY].first_seen == old  # the earliest date wins
        assert found[EARLY].score > 5.0  # the stronger evidence wins
    assert LATE in found and found[LATE].first_seen >= T0 + dt.timedelta(hours=8)
    assert dmap.frames.count == 16 + 20 and entry.frames == 36 and entry.state_frames == 16
    assert dmap.frames.first_capture == old and dmap.thresholds["imported"]["defects"] == 2


def test_edits_by_hand_survive_mapping_again(tmp_path, frames):
    lib = Library(tmp_path)
    entry, before = store_body(lib, _body(_accumulate(frames[:8])))
    assert EARLY in _found(before)
    lib.save_edited(entry, before.edited(add=[(50, 60, DefectKind.STUCK)], drop=[EARLY]))
    # new photos: detection finds EARLY again (and LATE), the edits hold
    _, dmap = store_body(lib, _body(_accumulate(frames[8:], lib.state_for(CAM))))
    found = _found(dmap)
    assert EARLY not in found and LATE in found
    assert found[(50, 60)].manual and found[(50, 60)].kind is DefectKind.STUCK
    assert dmap.dropped == [EARLY] and lib.load_map(CAM).to_json() == dmap.to_json()


def test_a_dropped_photosite_stays_out_of_an_imported_map_too(tmp_path, frames):
    lib = Library(tmp_path)
    entry = lib.import_map(_hand_map().save(tmp_path / "m.json"))  # lists (5, 5)
    lib.save_edited(entry, lib.load_map(entry).edited(drop=[(5, 5)]))
    _, dmap = store_body(lib, _body(_accumulate(frames[:4])))
    assert (5, 5) not in _found(dmap) and dmap.dropped == [(5, 5)]


# --------------------------------------------------------------------------- with map_files
def test_map_files_continues_library_states(tmp_path, frames):
    paths = _write_photos(tmp_path / "photos", frames[:9])
    lib = Library(tmp_path / "lib")
    for body in map_files(paths[:5], states=lib.states()).maps:
        store_body(lib, body)
    assert lib.known_files() == {p.resolve() for p in paths[:5]}
    run = map_files(paths[5:], states=lib.states())
    assert run.maps[0].accumulator.n_frames == 9
    for body in run.maps:
        store_body(lib, body)
    whole = map_files(paths).maps[0]
    (entry,) = lib.entries()
    assert entry.camera.make == "Testco" and entry.frames == 9
    _assert_same_state(lib.load_state(entry), whole.accumulator)
    assert _dicts(lib.load_map(entry)) == _dicts(whole.defect_map)


def _counted(lib: Library) -> Counted:
    return Counted(lib.known_keys(), lib.known_files())


def test_moved_photos_are_recognised_across_two_saves(tmp_path, frames):
    paths = _write_photos(tmp_path / "card", frames[:9])
    lib = Library(tmp_path / "lib")
    for body in map_files(paths[:5], states=lib.states(), counted=_counted(lib)).maps:
        store_body(lib, body)
    keys = lib.known_keys()
    assert keys == {content_key(p): str(p.resolve()) for p in paths[:5]}
    info = json.loads((lib.entries()[0].path / "body.json").read_text())
    assert info["content_keys"] == keys and info["shape"] == [H, W]

    moved = tmp_path / "archive" / "card"  # the card copied elsewhere, then the whole folder mapped again
    copies = [moved / p.name for p in paths]
    for p, q in zip(paths, copies):
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(p.read_bytes())
    run = map_files(copies, states=lib.states(), counted=_counted(lib))
    assert [s.path for s in run.skipped] == copies[:5]
    assert all(s.kind is SkipKind.COUNTED for s in run.skipped)
    assert run.skipped[0].reason == f"same content as {paths[0].resolve()}, already counted in the stored statistics"
    for body in run.maps:
        store_body(lib, body)
    (entry,) = lib.entries()
    assert entry.frames == 9 and entry.state_frames == 9
    assert len(lib.known_keys()) == 9
    _assert_same_state(lib.load_state(entry), map_files(paths).maps[0].accumulator)


def test_entries_without_content_keys_or_shape_still_work(tmp_path, frames):
    """An entry written before content keys and sizes were recorded: read, continued, matched by path."""
    paths = _write_photos(tmp_path / "card", frames[:8])
    lib = Library(tmp_path / "lib")
    store_body(lib, map_files(paths[:4]).maps[0])
    (entry,) = lib.entries()
    info = json.loads((entry.path / "body.json").read_text())
    del info["content_keys"], info["shape"]
    (entry.path / "body.json").write_text(json.dumps(info))

    (old,) = lib.entries()
    assert old.shape is None and lib.entry_shape(old) == (H, W)
    assert lib.known_keys() == {} and lib.known_files() == {p.resolve() for p in paths[:4]}
    run = map_files(paths, states=lib.states(), counted=_counted(lib))
    assert [s.reason for s in run.skipped] == ["already counted in the stored statistics"] * 4
    store_body(lib, run.maps[0])
    (entry,) = lib.entries()
    assert entry.state_frames == 8 and entry.shape == (H, W)
    assert set(lib.known_keys()) == {content_key(p) for p in paths[4:]}  # the old ones are known by path


def test_each_sensor_size_continues_its_own_entry(tmp_path, frames):
    lib = Library(tmp_path)
    cropped = [
        Frame(**{**f.__dict__, "mosaic": f.mosaic[8:40, 16:64].copy(), "path": Path(f"/crop/c{i}.dng")})
        for i, f in enumerate(frames[4:10])
    ]
    a, _ = store_body(lib, _body(_accumulate(frames[:4])))
    b, _ = store_body(lib, _body(_accumulate(cropped[:4])))
    more = _accumulate(cropped[4:], lib.states()[(CAM, RAW, (32, 48))])
    c, dmap = store_body(lib, _body(more))
    assert c.path == b.path != a.path and c.state_frames == 6 and dmap.sensor.height == 32
    assert lib.get(CAM).state_frames == 4
