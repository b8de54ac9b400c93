"""rawmap.library: storage only: per-body entries written as given, read back, versions, trash, import, export.

The maps stored here are made by hand (:func:`_map_of`): what an update
holds (merged statistics, imported defects, edits) is rawmap.bodies'
business, tested in tests/test_bodies.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from rawmap.accumulate import Accumulator
from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from rawmap.detect import build_map
from rawmap.errors import MapFormatError
from rawmap.fileio import OutputExistsError
from rawmap.frame import CameraId, Frame, SourceKind
from rawmap.library import (
    EntryUpdate,
    Library,
    LibraryError,
    StoredEntry,
    StoredStates,
    default_library_dir,
    recorded_path,
)
from rawmap.mapping import BodyMap

CAM = CameraId("Testco", "TC-1", "0001")
OTHER = CameraId("Testco", "TC 1", "0001")  # same slug as CAM
CFA = np.array([[0, 1], [3, 2]], np.uint8)
H, W = 64, 96
T0 = dt.datetime(2024, 1, 1)
EARLY = (10, 20)  # hot from the first frame on
LATE = (30, 41)  # hot from frame 8 on
RAW = SourceKind.RAW

# the integer sums, which must be exact whatever way the frames were split
INT_ARRAYS = ("n_invalid", "s_v", "s_r", "vmin", "vmax", "s_hi", "s_lo")


def _scene(rng: np.random.Generator) -> np.ndarray:
    """A smooth, varied scene: a gradient and a few soft blobs, Bayer colour gains."""
    y, x = np.mgrid[0:H, 0:W].astype(float)
    s = rng.uniform(0.3, 1.0) + rng.uniform(-0.3, 0.3) * x / W + rng.uniform(-0.3, 0.3) * y / H
    for _ in range(6):
        cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(4, 20)
        s = s + rng.uniform(-0.4, 0.8) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    return np.clip(s, 0.05, None) * np.tile([[0.6, 1.0], [1.0, 0.8]], (H // 2, W // 2))


def _frame(rng: np.random.Generator, i: int) -> Frame:
    exposure = float(rng.choice([0.01, 0.1, 0.5, 1.0, 2.0]))
    iso = float(rng.choice([100, 400, 1600]))
    s = _scene(rng) * 5000
    v = 512 + s + rng.normal(0, 1, (H, W)) * np.sqrt(9 + s * iso / 400)
    hot = [EARLY] + ([LATE] if i >= 8 else [])
    for r, c in hot:
        v[r, c] += 500 * exposure * iso / 100  # 500 DN/s at ISO 100
    mosaic = np.clip(np.rint(v), 0, 16383).astype(np.uint16)
    return Frame(
        path=Path(f"/photos/f{i:03d}.dng"),
        mosaic=mosaic,
        cfa=CFA,
        black=np.full(4, 512.0),
        white=16383,
        exposure=exposure,
        iso=iso,
        time=T0 + dt.timedelta(hours=i),
        camera=CAM,
    )


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    rng = np.random.default_rng(1)
    return [_frame(rng, i) for i in range(16)]


def _accumulate(frames: list[Frame], acc: Accumulator | None = None) -> Accumulator:
    acc = acc if acc is not None else Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    return acc


def _body(acc: Accumulator) -> BodyMap:
    return BodyMap(acc.camera, acc.source, build_map(acc), acc, [Path(f.path) for f in acc.frames])


def _dicts(dmap: DefectMap) -> list[dict]:
    return [d.to_dict() for d in dmap.defects]


def _assert_same_state(a: Accumulator, b: Accumulator) -> None:
    assert a.n_frames == b.n_frames and a.n_scenes == b.n_scenes
    for name in INT_ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("s_xr", "s_xi", "s_xxi", "s_zz"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-3, err_msg=name)
    np.testing.assert_array_equal(a.fs_index, b.fs_index)
    np.testing.assert_array_equal(a.fs_time, b.fs_time)


def _hand_map(camera: CameraId = CAM, source: str = "raw", defects: list[Defect] | None = None) -> DefectMap:
    if defects is None:
        defects = [Defect(5, 5, DefectKind.COLD, 9.0, "R", dt.datetime(2023, 6, 1), 0.4)]
    return DefectMap(
        camera=camera,
        sensor=SensorGeometry(H, W, cfa="RGGB" if source == "raw" else "", source=source),
        frames=FrameStats(
            20,
            first_capture=dt.datetime(2023, 6, 1),
            last_capture=dt.datetime(2023, 7, 1),
            exposure_min=0.5,
            exposure_max=4.0,
            iso_min=200,
            iso_max=800,
        ),
        defects=defects,
    )


def _map_of(acc: Accumulator, defects: list[Defect] | None = None, **fields) -> DefectMap:
    """A map made by hand for the statistics ``acc`` (its body, size and frame count), not by classification."""
    if defects is None:
        defects = [
            Defect(5, 5, DefectKind.COLD, 9.0, "R", T0, 0.4),
            Defect(*EARLY, DefectKind.HOT, float(acc.n_frames)),
        ]
    return DefectMap(
        camera=acc.camera,
        sensor=SensorGeometry(*acc.shape, cfa="RGGB" if acc.source is RAW else "", source=acc.source.value),
        frames=FrameStats(acc.n_frames),
        defects=defects,
        **fields,
    )


def _update(lib: Library, acc: Accumulator, dmap: DefectMap | None = None, keys: dict | None = None) -> EntryUpdate:
    """An update of ``acc``'s entry: ``acc`` continues the stored statistics (or starts them), the map is made by hand."""
    stored = lib.stored(acc.camera, acc.source, shape=acc.shape)
    return EntryUpdate(
        acc.camera,
        acc.source,
        dmap if dmap is not None else _map_of(acc),
        acc,
        files=tuple(recorded_path(f.path) for f in acc.frames),
        content_keys=keys or {},
        base=stored,
    )


def _store(lib: Library, acc: Accumulator, dmap: DefectMap | None = None, keys: dict | None = None):
    return lib.store(_update(lib, acc, dmap, keys))


# --------------------------------------------------------------------------- location
def test_default_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("RAWMAP_LIBRARY", str(tmp_path / "lib"))
    assert default_library_dir() == tmp_path / "lib"
    assert Library().root == tmp_path / "lib"
    assert Library(tmp_path / "x").root == tmp_path / "x"
    monkeypatch.delenv("RAWMAP_LIBRARY")
    assert default_library_dir() == Path(platformdirs.user_data_dir("rawmap")) / "library"


def test_empty_library_reads_nothing_and_writes_nothing(tmp_path):
    lib = Library(tmp_path / "missing")
    assert lib.entries() == []
    assert lib.get(CAM) is None
    assert lib.state_for(CAM) is None
    assert len(lib.states()) == 0 and not lib.states()
    assert lib.known_files() == set()
    with pytest.raises(LibraryError, match=r"no map for Testco TC-1 0001 in .*missing; make one with `rawmap map"):
        lib.load_map(CAM)
    assert not (tmp_path / "missing").exists()


# --------------------------------------------------------------------------- store / read
def test_store_layout_and_queries(tmp_path, frames):
    lib = Library(tmp_path)
    acc = _accumulate(frames[:8])
    dmap = _map_of(acc)
    entry = _store(lib, acc, dmap, keys={"k0": "/photos/f000.dng"})

    assert entry.path == tmp_path / "testco-tc-1-0001"
    assert sorted(p.name for p in entry.path.iterdir()) == ["body.json", "map.json", "state.rawstate"]
    assert (entry.camera, entry.source, entry.frames, entry.state_frames) == (CAM, RAW, 8, 8)
    assert entry.defects == len(dmap) == 2 and entry.has_state and not entry.imported
    assert entry.created == entry.updated and entry.created.tzinfo is not None

    info = json.loads((entry.path / "body.json").read_text())
    assert info["format"] == "rawmap-library-entry" and info["version"] == 1
    assert info["camera"] == CAM.to_dict() and info["source"] == "raw"
    assert info["files"] == [f"/photos/f{i:03d}.dng" for i in range(8)]
    assert info["content_keys"] == {"k0": "/photos/f000.dng"} and info["shape"] == [H, W]

    assert lib.entries() == [entry]
    assert lib.get(CAM) == entry
    assert lib.get(CAM, SourceKind.IMAGE) is None
    assert lib.get(OTHER) is None
    assert lib.load_map(CAM).to_json() == dmap.to_json()  # written as given
    assert lib.load_map(entry).to_json() == dmap.to_json()
    _assert_same_state(lib.load_state(CAM), acc)
    assert lib.known_files() == {Path(f"/photos/f{i:03d}.dng") for i in range(8)}
    assert lib.known_keys() == {"k0": "/photos/f000.dng"}


def test_store_writes_the_map_as_given_and_keeps_the_rest(tmp_path, frames):
    """An update writes its map, statistics and files as they are; the library decides nothing, keeps the
    previous map, the imported map and the creation time."""
    lib = Library(tmp_path)
    entry = lib.import_map(_hand_map().save(tmp_path / "m.json"))
    imported_before = (entry.path / "imported.json").read_bytes()
    acc = _accumulate(frames[:4])
    # a map that no classification would make: a manual defect, a dropped photosite that the import lists
    dmap = _map_of(acc, [Defect(50, 60, DefectKind.STUCK, 0.0, manual=True)], dropped=[(5, 5)])
    stored = lib.stored(CAM)
    assert (
        stored is not None
        and not stored.has_state
        and stored.load_imported().to_json() == DefectMap.load(tmp_path / "m.json").to_json()
    )
    update = EntryUpdate(CAM, RAW, dmap, acc, files=("/a.dng", "/b.dng", "/c.dng", "/d.dng"), base=stored)
    after = lib.store(update)
    assert lib.load_map(CAM).to_json() == dmap.to_json()  # no imported defect merged in, nothing carried over
    assert (after.path / "imported.json").read_bytes() == imported_before
    assert DefectMap.load(after.path / "map.previous.json").to_json() == DefectMap.load(tmp_path / "m.json").to_json()
    assert after.imported and after.created == entry.created and after.frames == 4 == after.state_frames
    assert lib.known_files() == {Path(p) for p in update.files}


def test_stored_reads_one_version_of_an_entry(tmp_path, frames):
    lib = Library(tmp_path / "lib")
    assert lib.stored(CAM) is None and not (tmp_path / "lib").exists()
    acc = _accumulate(frames[:6])
    dmap = _map_of(acc)  # one map: its creation time is to the second
    _store(lib, acc, dmap, keys={"k": "/photos/f000.dng"})
    stored = lib.stored(CAM, RAW, shape=(H, W))
    assert isinstance(stored, StoredEntry) and stored.entry == lib.get(CAM)
    assert stored.folder == stored.entry.path.resolve() and stored.folder.parent.name == ".entries"
    assert stored.files == tuple(f"/photos/f{i:03d}.dng" for i in range(6))
    assert stored.content_keys == {"k": "/photos/f000.dng"} and stored.has_state
    _assert_same_state(stored.load_state(), acc)
    assert stored.load_map().to_json() == dmap.to_json() and stored.load_imported() is None
    assert stored.continued_by(_accumulate(frames[6:8], lib.state_for(CAM)))
    assert not stored.continued_by(_accumulate(frames[6:8]))  # other photos, not a continuation
    assert not stored.continued_by(_accumulate(frames[:5]))  # fewer frames than stored
    assert lib.stored(CAM, shape=(32, 48)) is None and lib.stored(OTHER) is None


def test_a_stale_update_is_refused(tmp_path, frames):
    """An update prepared from a version of the entry that is no longer current would lose the newer one."""
    lib = Library(tmp_path)
    new_a, new_b = _update(lib, _accumulate(frames[:4])), _update(lib, _accumulate(frames[:6]))
    lib.store(new_a)
    with pytest.raises(LibraryError, match="changed after this update was prepared"):
        lib.store(new_b)  # prepared as a new entry, but one appeared meanwhile
    a = _update(lib, _accumulate(frames[4:8], lib.state_for(CAM)))
    b = _update(lib, _accumulate(frames[4:6], lib.state_for(CAM)))
    lib.store(a)
    before = (tmp_path / "testco-tc-1-0001" / "body.json").read_bytes()
    with pytest.raises(LibraryError, match="another run updated it meanwhile"):
        lib.store(b)
    assert (tmp_path / "testco-tc-1-0001" / "body.json").read_bytes() == before
    assert lib.get(CAM).state_frames == 8
    c = _update(lib, _accumulate(frames[8:10], lib.state_for(CAM)))
    lib.save_edited(lib.get(CAM), lib.load_map(CAM).edited(drop=[EARLY]))  # an edit is a new version too
    with pytest.raises(LibraryError, match="changed after this update was prepared"):
        lib.store(c)  # would lose the edit
    assert lib.load_map(CAM).dropped == [EARLY] and lib.get(CAM).state_frames == 8


def test_inconsistent_update_is_refused(tmp_path, frames):
    lib = Library(tmp_path)
    acc = _accumulate(frames[:4])
    with pytest.raises(LibraryError, match="bug in the caller"):
        lib.store(EntryUpdate(OTHER, RAW, _map_of(acc), acc))
    small = _accumulate([Frame(**{**f.__dict__, "mosaic": f.mosaic[:32].copy()}) for f in frames[:4]])
    with pytest.raises(LibraryError, match=r"map is 64x96, its statistics 32x96; this is a bug in the caller"):
        lib.store(EntryUpdate(CAM, RAW, _map_of(acc), small))
    assert lib.entries() == []


def test_bodies_and_sources_are_kept_apart(tmp_path, frames):
    lib = Library(tmp_path)
    _store(lib, _accumulate(frames[:4]))
    other = [Frame(**{**f.__dict__, "camera": OTHER}) for f in frames[:4]]
    _store(lib, _accumulate(other))
    images = [
        Frame(
            **{
                **f.__dict__,
                "mosaic": np.repeat((f.mosaic >> 6).astype(np.uint8)[:, :, None], 3, axis=2),
                "cfa": None,
                "black": np.zeros(4),
                "white": 255,
                "source": SourceKind.IMAGE,
            }
        )
        for f in frames[:4]
    ]
    _store(lib, _accumulate(images))

    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["testco-tc-1-0001", "testco-tc-1-0001-2", "testco-tc-1-0001-image"]
    assert [(e.camera, e.source) for e in lib.entries()] == [(OTHER, RAW), (CAM, RAW), (CAM, SourceKind.IMAGE)]
    assert lib.get(OTHER).path.name == "testco-tc-1-0001-2"
    assert lib.get(CAM, SourceKind.IMAGE).path.name == "testco-tc-1-0001-image"
    assert lib.load_map(CAM, SourceKind.IMAGE).sensor.source == "image"
    assert set(lib.states()) == {(CAM, RAW), (OTHER, RAW), (CAM, SourceKind.IMAGE)}


def test_states_mapping_loads_on_demand(tmp_path, frames, monkeypatch):
    lib = Library(tmp_path)
    _store(lib, _accumulate(frames[:4]))
    loads = []
    real = Accumulator.load.__func__
    monkeypatch.setattr(Accumulator, "load", classmethod(lambda cls, p: loads.append(p) or real(cls, p)))
    states = lib.states()
    assert isinstance(states, StoredStates)
    assert len(states) == 1 and bool(states) and list(states) == [(CAM, RAW)]
    assert (CAM, RAW) in states and (CAM, SourceKind.IMAGE) not in states
    assert "x" not in states and (CAM, "jpeg") not in states
    assert loads == []
    assert states.get((OTHER, RAW)) is None
    assert states[(CAM, RAW)].n_frames == 4
    assert len(loads) == 1
    with pytest.raises(KeyError):
        states[(OTHER, RAW)]


# --------------------------------------------------------------------------- remove
def test_remove_moves_the_entry_to_the_trash(tmp_path, frames):
    lib = Library(tmp_path)
    entry = _store(lib, _accumulate(frames[:4]))
    moved = lib.remove(CAM)
    assert moved.parent == tmp_path / ".trash"
    assert moved.name.startswith("testco-tc-1-0001-")
    assert sorted(p.name for p in moved.iterdir()) == ["body.json", "map.json", "state.rawstate"]
    assert not entry.path.exists()
    assert lib.entries() == [] and lib.get(CAM) is None
    with pytest.raises(LibraryError, match="no map for Testco TC-1 0001"):
        lib.remove(CAM)
    # a new entry for the same body starts afresh, and a second removal does not collide
    _store(lib, _accumulate(frames[:4]))
    again = lib.remove(CAM)
    assert again != moved and again.is_dir() and moved.is_dir()


# --------------------------------------------------------------------------- import / export
def test_export_then_import_elsewhere(tmp_path, frames):
    lib = Library(tmp_path / "a")
    _store(lib, _accumulate(frames[:8]))
    out = lib.export_entry(CAM, RAW, tmp_path / "out")
    assert [p.name for p in out] == ["testco-tc-1-0001.map.json", "testco-tc-1-0001.rawstate"]
    with pytest.raises(OutputExistsError):
        lib.export_entry(CAM, RAW, tmp_path / "out")

    other = Library(tmp_path / "b")
    entry = other.import_map(out[0], state=out[1])
    assert entry.has_state and not entry.imported and entry.frames == 8
    _assert_same_state(other.load_state(CAM), lib.load_state(CAM))
    assert _dicts(other.load_map(CAM)) == _dicts(lib.load_map(CAM))
    # it continues like the original
    _store(other, _accumulate(frames[8:], other.state_for(CAM)))
    _assert_same_state(other.load_state(CAM), _accumulate(frames))


def test_import_refuses_existing_unless_replace(tmp_path, frames):
    lib = Library(tmp_path / "lib")
    _store(lib, _accumulate(frames[:4]))
    path = _hand_map().save(tmp_path / "elsewhere.json")
    with pytest.raises(LibraryError, match="Testco TC-1 0001 already has a map in"):
        lib.import_map(path)
    entry = lib.import_map(path, replace=True)
    assert entry.imported and not entry.has_state and entry.frames == 20
    assert len(list((tmp_path / "lib" / ".trash").iterdir())) == 1


def _bad_map(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.json"
    if kind == "not-json":
        p.write_bytes(b"\x89PNG\r\n")
    elif kind == "other-json":
        p.write_text('{"hello": 1}')
    elif kind == "future-version":
        d = _hand_map().to_dict()
        d["version"] = 99
        p.write_text(json.dumps(d))
    elif kind == "outside":
        _hand_map(defects=[Defect(H, 3, DefectKind.HOT, 9.0)]).save(p)
    return p


@pytest.mark.parametrize(
    "kind, error, message",
    [
        ("not-json", MapFormatError, "not JSON"),
        ("other-json", MapFormatError, "not a rawmap defect map"),
        ("future-version", MapFormatError, "version 99 is not supported"),
        ("outside", MapFormatError, "lies outside the 64x96 sensor"),  # refused by DefectMap.load itself
    ],
)
def test_import_refuses_garbage(tmp_path, kind, error, message):
    lib = Library(tmp_path / "lib")
    with pytest.raises(error, match=message):
        lib.import_map(_bad_map(tmp_path, kind))
    with pytest.raises(MapFormatError, match="no such map file"):
        lib.import_map(tmp_path / "missing.json")
    assert lib.entries() == []


def test_import_refuses_a_state_of_another_body(tmp_path, frames):
    lib = Library(tmp_path / "lib")
    state = _accumulate(frames[:4]).save(tmp_path / "s.rawstate")
    with pytest.raises(LibraryError, match="do not belong to the map"):
        lib.import_map(_hand_map(camera=OTHER).save(tmp_path / "m.json"), state=state)
    with pytest.raises(MapFormatError, match="not a rawmap state file"):
        lib.import_map(_hand_map().save(tmp_path / "m2.json"), state=tmp_path / "m.json")
    assert lib.entries() == []


def test_damaged_entry_is_named(tmp_path, frames):
    lib = Library(tmp_path)
    entry = _store(lib, _accumulate(frames[:4]))
    (entry.path / "body.json").write_text("{")
    with pytest.raises(LibraryError, match=r"testco-tc-1-0001/body.json: damaged library entry"):
        lib.entries()
    (tmp_path / "stray").mkdir()
    (entry.path / "body.json").unlink()
    with pytest.raises(LibraryError, match="not a library entry"):
        lib.entries()


def test_save_edited_keeps_the_map_before(tmp_path, frames):
    lib = Library(tmp_path)
    acc = _accumulate(frames[:8])
    entry = _store(lib, acc)
    before = lib.load_map(entry)
    edited = before.edited(add=[(50, 60, DefectKind.STUCK)], drop=[EARLY])
    entry = lib.save_edited(entry, edited)
    assert entry.defects == len(edited) == len(before)
    assert lib.load_map(entry).to_json() == edited.to_json()
    assert DefectMap.load(entry.path / "map.previous.json").to_json() == before.to_json()  # the map before the edit
    _assert_same_state(lib.load_state(entry), acc)  # the statistics untouched
    with pytest.raises(LibraryError, match="is not a map of"):
        lib.save_edited(entry, _hand_map(camera=CameraId("Other", "Body", "9")))


# --------------------------------------------------------------------------- sensor sizes
def test_each_sensor_size_of_a_body_has_its_own_entry(tmp_path, frames):
    lib = Library(tmp_path)
    full = _accumulate(frames[:4])
    cropped = [
        Frame(**{**f.__dict__, "mosaic": f.mosaic[8:40, 16:64].copy(), "path": Path(f"/crop/c{i}.dng")})
        for i, f in enumerate(frames[4:8])
    ]
    crop = _accumulate(cropped)
    assert crop.shape == (32, 48)
    a = _store(lib, full)
    b = _store(lib, crop)
    assert (a.path.name, b.path.name) == ("testco-tc-1-0001", "testco-tc-1-0001-32x48")
    assert (a.shape, b.shape) == ((H, W), (32, 48))
    assert lib.get(CAM, shape=(32, 48)) == b and lib.get(CAM, shape=(H, W)) == a and lib.get(CAM) == a
    states = lib.states()
    assert states[(CAM, RAW, (32, 48))].shape == (32, 48) and states[(CAM, RAW, (H, W))].shape == (H, W)
    assert list(states) == [(CAM, RAW)] and len(states) == 1
    # more frames of the crop mode continue its own entry
    more = _accumulate(cropped[:2], states[(CAM, RAW, (32, 48))])
    more.frames[-2:] = [replace(f, path=f"/crop/d{i}.dng") for i, f in enumerate(more.frames[-2:])]
    c = _store(lib, more)
    assert c.path == b.path and c.state_frames == 6
    assert lib.get(CAM).state_frames == 4


# --------------------------------------------------------------------------- an entry changes all at once
class _Killed(BaseException):
    """Stands for SIGKILL in :class:`_FaultyDisk`: nothing after it runs, not even cleanup handlers' writes."""


class _FaultyDisk:
    """Fault injection at the OS boundary: the file-system changes rawmap makes are counted, the ``fail_at``-th fails.

    ``mode="enospc"``: that one call raises ``OSError(ENOSPC)``, the following
    ones succeed (a full disk the cleanup still gets through).  ``mode="kill"``:
    it and every later call raise :class:`_Killed` (the process died there).
    With ``fail_at=None`` only counts.  Files are really written: only the
    call that fails does not happen.
    """

    OS_CALLS = ("mkdir", "fsync", "link", "symlink", "rename", "replace", "unlink", "rmdir")

    def __init__(self, fail_at: int | None = None, mode: str = "enospc") -> None:
        self.fail_at, self.mode, self.calls, self.failed = fail_at, mode, 0, False
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, func):
        def wrapper(*args, **kwargs):
            self.calls += 1
            if self.fail_at is not None and (self.calls == self.fail_at or (self.mode == "kill" and self.failed)):
                self.failed = True
                if self.mode == "kill":
                    raise _Killed()
                raise OSError(28, "No space left on device")
            return func(*args, **kwargs)

        return wrapper

    def __enter__(self) -> _FaultyDisk:
        import os
        import shutil

        for owner, names in ((os, self.OS_CALLS), (shutil, ("copyfile",))):
            for name in names:
                original = getattr(owner, name)
                self._saved.append((owner, name, original))
                setattr(owner, name, self._wrap(original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


def _assert_consistent(root: Path, frames_expected: set[int]) -> int:
    """The entry reads whole: body, statistics and map agree on the frame count; no leftovers. Returns the count."""
    lib = Library(root)
    (entry,) = lib.entries()
    info = json.loads((entry.path / "body.json").read_text())
    state = lib.load_state(entry)
    dmap = lib.load_map(entry)
    n = state.n_frames
    assert n in frames_expected
    assert info["state"]["frames"] == info["frames"] == dmap.frames.count == entry.state_frames == n
    assert len(info["files"]) == n and len(lib.known_files()) == n
    if (entry.path / "map.previous.json").exists():
        assert DefectMap.load(entry.path / "map.previous.json").frames.count <= n
    # nothing half-written is left behind once the library was read (recovery ran)
    assert not [p.name for p in root.iterdir() if p.name.startswith((".new-", ".link-"))]
    versions = [p.name for p in (root / ".entries").iterdir()] if (root / ".entries").exists() else []
    if entry.path.is_symlink():
        assert versions == [entry.path.resolve().name]
    else:  # an entry of the old layout, not moved into a version yet
        assert versions == []
    return n


def _save(lib: Library, frames: list[Frame]) -> None:
    """What ``rawmap map PHOTOS --save`` does: leave counted photos out, continue the stored statistics, store."""
    known = {str(p) for p in lib.known_files()}
    new = [f for f in frames if str(f.path) not in known]
    if new:
        _store(lib, _accumulate(new, lib.state_for(CAM)))


def _count_calls(action) -> int:
    with _FaultyDisk() as disk:
        action()
    return disk.calls


@pytest.mark.parametrize("mode", ["enospc", "kill"])
def test_store_interrupted_at_every_write_leaves_a_whole_entry(tmp_path, frames, mode):
    """ENOSPC or a kill at each file-system call of an update: the entry is the old one or the new one, and the
    same command run again ends with all 8 frames (never "already counted" for ever)."""
    template = tmp_path / "six"
    _store(Library(template), _accumulate(frames[:6]))
    shutil.copytree(template, tmp_path / "count", symlinks=True)
    total = _count_calls(lambda: _save(Library(tmp_path / "count"), frames[:8]))
    assert total >= 8  # version folder, files, rename, link switch, old version removed
    whole = _accumulate(frames[:8])
    whole_map = _dicts(_map_of(whole))
    outcomes = set()
    for n in range(1, total + 1):
        root = tmp_path / f"{mode}{n}"
        shutil.copytree(template, root, symlinks=True)
        with _FaultyDisk(n, mode) as disk:
            try:
                _save(Library(root), frames[:8])
            except (LibraryError, _Killed):
                pass
        assert disk.failed, n
        outcomes.add(_assert_consistent(root, {6, 8}))
        _save(Library(root), frames[:8])  # the same command again
        assert _assert_consistent(root, {8}) == 8
        _assert_same_state(Library(root).load_state(CAM), whole)
        assert _dicts(Library(root).load_map(CAM)) == whole_map
    assert outcomes == {6, 8}  # both sides of the switch were hit


def test_old_layout_entry_is_moved_into_versions_safely(tmp_path, frames):
    """An entry written by an older rawmap (a plain folder): its first update survives a kill at every step."""

    template = tmp_path / "six"
    entry = _store(Library(template), _accumulate(frames[:6]))
    version = entry.path.resolve()
    entry.path.unlink()
    version.rename(entry.path)
    (template / ".entries").rmdir()

    def old_layout(root: Path) -> None:
        shutil.copytree(template, root, symlinks=True)

    old_layout(tmp_path / "count")
    assert (tmp_path / "count" / "testco-tc-1-0001").is_dir() and not (
        tmp_path / "count" / "testco-tc-1-0001"
    ).is_symlink()
    assert Library(tmp_path / "count").get(CAM).state_frames == 6  # still read as it is
    total = _count_calls(lambda: _save(Library(tmp_path / "count"), frames[:8]))
    for n in range(1, total + 1):
        root = tmp_path / f"k{n}"
        old_layout(root)
        with _FaultyDisk(n, "kill"):
            try:
                _save(Library(root), frames[:8])
            except (LibraryError, _Killed):
                pass
        _assert_consistent(root, {6, 8})
        _save(Library(root), frames[:8])
        assert _assert_consistent(root, {8}) == 8


@pytest.mark.parametrize("mode", ["enospc", "kill"])
def test_import_replace_interrupted_never_loses_the_entry(tmp_path, frames, mode):
    """``library import --replace`` killed at each step: the old entry or the new one, the old one never lost."""
    path = _hand_map().save(tmp_path / "elsewhere.json")

    template = tmp_path / "six"
    _store(Library(template), _accumulate(frames[:6]))

    def setup(root: Path) -> None:
        shutil.copytree(template, root, symlinks=True)

    setup(tmp_path / "count")
    total = _count_calls(lambda: Library(tmp_path / "count").import_map(path, replace=True))
    seen = set()
    for n in range(1, total + 1):
        root = tmp_path / f"{mode}{n}"
        setup(root)
        with _FaultyDisk(n, mode) as disk:
            try:
                Library(root).import_map(path, replace=True)
            except (LibraryError, _Killed):
                pass
        assert disk.failed
        lib = Library(root)
        (entry,) = lib.entries()
        trash = sorted((root / ".trash").iterdir()) if (root / ".trash").exists() else []
        if entry.imported:  # switched: the old entry is in the trash, whole
            seen.add("new")
            assert entry.frames == 20 and not entry.has_state
            assert len(trash) == 1 and Accumulator.load(trash[0] / "state.rawstate").n_frames == 6
            assert json.loads((trash[0] / "body.json").read_text())["state"]["frames"] == 6
        else:  # not switched: the old entry as it was
            seen.add("old")
            assert entry.state_frames == 6 and lib.load_state(entry).n_frames == 6 and trash == []
        assert [p.name for p in (root / ".entries").iterdir()] == [entry.path.resolve().name]
        entry = lib.import_map(path, replace=True)  # the same command again
        assert entry.imported and entry.frames == 20 and lib.get(CAM) == entry
        assert len(list((root / ".trash").iterdir())) >= 1
    assert seen == {"old", "new"}


def test_remove_and_edit_interrupted_leave_a_whole_entry_or_none(tmp_path, frames):
    template = tmp_path / "six"
    entry = _store(Library(template), _accumulate(frames[:6]))
    edited = Library(template).load_map(entry).edited(drop=[EARLY])
    shutil.copytree(template, tmp_path / "count", symlinks=True)
    total = _count_calls(lambda: Library(tmp_path / "count").remove(CAM))
    for n in range(1, total + 1):
        root = tmp_path / f"rm{n}"
        shutil.copytree(template, root, symlinks=True)
        with _FaultyDisk(n, "kill"):
            try:
                Library(root).remove(CAM)
            except (LibraryError, _Killed):
                pass
        lib = Library(root)
        entries = lib.entries()
        trash = list((root / ".trash").iterdir()) if (root / ".trash").exists() else []
        assert len(entries) + len(trash) == 1  # in the library or in the trash, never both nor neither
        if entries:
            assert lib.load_state(entries[0]).n_frames == 6
        else:
            assert Accumulator.load(trash[0] / "state.rawstate").n_frames == 6 and not list(root.glob("testco*"))

    shutil.copytree(template, tmp_path / "edit-count", symlinks=True)
    total = _count_calls(lambda: Library(tmp_path / "edit-count").save_edited(entry, edited))
    for n in range(1, total + 1):
        root = tmp_path / f"ed{n}"
        shutil.copytree(template, root, symlinks=True)
        with _FaultyDisk(n, "kill"):
            try:
                Library(root).save_edited(Library(root).get(CAM), edited)
            except (LibraryError, _Killed):
                pass
        assert _assert_consistent(root, {6}) == 6
        dmap = Library(root).load_map(CAM)
        assert dmap.dropped in ([], [EARLY])
        if dmap.dropped:
            assert DefectMap.load(Library(root).get(CAM).path / "map.previous.json").dropped == []


def test_an_update_switches_the_entry_link(tmp_path, frames):
    """The layout: ROOT/<name> is a link into ROOT/.entries; an update makes a new version, the old one goes."""
    lib = Library(tmp_path)
    entry = _store(lib, _accumulate(frames[:6]))
    assert entry.path.is_symlink() and entry.path.resolve() == tmp_path / ".entries" / "testco-tc-1-0001@1"
    assert os.readlink(entry.path) == os.path.join(".entries", "testco-tc-1-0001@1")  # relative: the library can move
    state_inode = (entry.path / "state.rawstate").stat().st_ino
    lib.save_edited(entry, lib.load_map(entry).edited(drop=[EARLY]))
    assert entry.path.resolve().name == "testco-tc-1-0001@2"
    assert (entry.path / "state.rawstate").stat().st_ino == state_inode  # unchanged statistics are linked, not copied
    assert [p.name for p in (tmp_path / ".entries").iterdir()] == ["testco-tc-1-0001@2"]


def test_concurrent_saves_in_threads_serialise_with_the_lock(tmp_path, frames):
    """Two updates that each hold :meth:`Library.updating` from reading the state to storing: both counted."""
    import threading

    root = tmp_path / "lib"
    _store(Library(root), _accumulate(frames[:4]))
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def save(part: list[Frame]) -> None:
        lib = Library(root)
        try:
            barrier.wait()
            with lib.updating():
                _save(lib, part)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(p,)) for p in (frames[4:10], frames[10:16])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _assert_consistent(root, {16}) == 16
    stored, whole = Library(root).load_state(CAM), _accumulate(frames)
    assert sorted(f.path for f in stored.frames) == sorted(f.path for f in whole.frames)
    for name in ("n_invalid", "s_v", "s_r", "vmin", "vmax"):  # the sums that do not depend on the order of frames
        np.testing.assert_array_equal(getattr(stored, name), getattr(whole, name), err_msg=name)


def test_updating_without_waiting_reports_a_busy_library(tmp_path, frames):
    from rawmap.library import LibraryBusyError

    a, b = Library(tmp_path), Library(tmp_path)
    with a.updating():
        with pytest.raises(LibraryBusyError, match="another rawmap run is updating the library"):
            with b.updating(wait=False):
                pass
        with a.updating(wait=False):  # re-entrant in the same object
            _store(a, _accumulate(frames[:4]))
        assert b.get(CAM).state_frames == 4  # readers never wait


def test_a_file_system_without_links_is_named(tmp_path, frames, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_links)
    lib = Library(tmp_path)
    with pytest.raises(LibraryError, match=r"has no symbolic links \(FAT or exFAT\?\).*--library DIR"):
        _store(lib, _accumulate(frames[:4]))
    monkeypatch.undo()
    assert lib.entries() == [] and list((tmp_path / ".entries").iterdir()) == []


def test_an_edit_of_an_older_map_is_refused(tmp_path, frames):
    """`rawmap edit` read the map, then a `map --save` updated the entry: saving the edit would lose that update."""
    lib = Library(tmp_path)
    entry = _store(lib, _accumulate(frames[:6]))
    stale = lib.load_map(entry).edited(drop=[EARLY])
    _store(lib, _accumulate(frames[6:8], lib.state_for(CAM)))
    with pytest.raises(LibraryError, match="changed after the copy being edited was read"):
        lib.save_edited(lib.get(CAM), stale)
    assert _assert_consistent(tmp_path, {8}) == 8
    fresh = lib.load_map(CAM).edited(drop=[EARLY])
    assert lib.save_edited(lib.get(CAM), fresh).frames == 8 and lib.load_map(CAM).dropped == [EARLY]
