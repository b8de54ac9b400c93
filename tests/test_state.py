"""The state file (rawmap/accumulate/state.py): versions 2 and 3 pack the sums losslessly; version 1 and 2 files still load."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_accumulate import CAM, CFA, series

from rawmap.accumulate import STATE_VERSION, Accumulator
from rawmap.accumulate.state import state_bytes
from rawmap.detect import build_map
from rawmap.errors import MapFormatError
from rawmap.library import EntryUpdate, Library, recorded_path
from rawmap.mapping import map_files
from rawmap.testing import write_scenario

#: a state written by rawmap before version 2 (the 8 frames of :func:`_eight_frames`, saved with open views)
V1_FILE = Path(__file__).parent / "data" / "state-v1.rawstate"
SPARSE = ("fs_index", "fs_time", "ln_code", "ln_count")


def _eight_frames() -> Accumulator:
    """24x30, 8 frames (some clipped): first-seen and line records, then views open again with pending outliers."""
    frames = series(seed=5, n=6)
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    acc.close_scene()
    for f in series(seed=7, n=2):
        acc.update(f)
    return acc


def assert_same_state(back: Accumulator, acc: Accumulator, *, but: tuple[str, ...] = ()) -> None:
    """Every array bit for bit (float sums included) but those named, every sparse record, the open views, the frames."""
    for name in Accumulator._ARRAYS + SPARSE:
        if name in but:
            continue
        a, b = getattr(acc, name), getattr(back, name)
        assert b.dtype == a.dtype and b.shape == a.shape, name
        assert np.array_equal(b.view(np.uint8), a.view(np.uint8)), name  # bit for bit, NaN and -0.0 too
    assert sorted(back.view_sigs) == sorted(acc.view_sigs)
    for k in acc.view_sigs:  # (the thumbnails hold NaN where a view showed nothing: compared bit for bit)
        assert back.view_sigs[k].tobytes() == np.asarray(acc.view_sigs[k], np.float64).tobytes()
    assert sorted(back._open) == sorted(acc._open)
    for k, v in acc._open.items():
        w = back._open[k]
        assert (w.frames, w.last_used) == (v.frames, v.last_used)
        for name in ("pending", "pending_lines"):
            mine, theirs = getattr(v, name), getattr(w, name)
            assert len(mine) == len(theirs)
            for (c1, n1), (c2, n2) in zip(mine, theirs):
                assert np.array_equal(c1, c2) and np.array_equal(n1, n2)
    assert [f.to_dict() for f in back.frames] == [f.to_dict() for f in acc.frames]
    assert (back.n_frames, back.n_scenes, back.sum_x, back.sum_xx) == (
        acc.n_frames,
        acc.n_scenes,
        acc.sum_x,
        acc.sum_xx,
    )


@pytest.fixture(scope="module")
def eight() -> Accumulator:
    return _eight_frames()


@pytest.fixture(scope="module")
def packed_file(eight, tmp_path_factory) -> Path:
    return eight.save(tmp_path_factory.mktemp("v2") / "good.rawstate")


def test_version_3_reloads_bit_for_bit_and_continues_exactly(eight, packed_file):
    assert STATE_VERSION == 3
    with zipfile.ZipFile(packed_file) as zf:
        meta_version = json.loads(zf.read("meta.json"))["version"]
        names = set(zf.namelist())
    assert meta_version == 3 and {"s_v.pk", "s_xi.pk", "s_xxi.pk"} <= names and "s_v.npy" not in names
    back = Accumulator.load(packed_file)
    assert eight.fs_index.size and eight.ln_code.size and any(v.pending for v in eight._open.values())
    assert_same_state(back, eight)
    more = series(seed=8, n=2)
    a, b = _eight_frames(), Accumulator.load(packed_file)
    for f in more:
        a.update(f)
        b.update(f)
    assert_same_state(b, a)


def test_version_2_is_exact_for_any_values(tmp_path):
    """Extreme and random values of every dtype the sums widen to (the transforms wrap, so nothing is lost)."""
    rng = np.random.default_rng(3)
    acc = _eight_frames()
    H, W = acc.shape
    widths = {"n_invalid": np.uint32, "s_v": np.uint64, "s_r": np.int64, "s_hi": np.uint16, "s_lo": np.uint32}
    for name, dt in widths.items():
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, (H, W), dtype=dt, endpoint=True)
        a[0, 0], a[-1, -1] = info.min, info.max
        setattr(acc, name, a)
    for name in ("vmin", "vmax"):
        setattr(acc, name, rng.integers(0, 65535, (H, W), dtype=np.uint16, endpoint=True))
    for name in ("s_xr", "s_xi", "s_xxi", "s_zz"):
        f = rng.integers(0, 1 << 32, (H, W), dtype=np.uint64).astype(np.uint32).view(np.float32)  # NaNs, infinities
        setattr(acc, name, f)
    acc.n_frames = 1 << 40
    path = acc.save(tmp_path / "wide.rawstate")
    assert_same_state(Accumulator.load(path), acc)


@pytest.mark.parametrize("shape", [(4, 4), (5, 7), (9, 9), (11, 13)])
def test_version_2_is_exact_on_the_smallest_sensors(tmp_path, shape):
    """Fewer rows than the transforms' sample (and the neighbours 2 away reflected at every edge)."""
    rng = np.random.default_rng(shape[0])
    acc = Accumulator(shape, cfa=CFA, black=np.zeros(4), white=65535, camera=CAM)
    acc.n_frames = 300
    for name in Accumulator._ARRAYS:
        a = getattr(acc, name)
        setattr(acc, name, rng.integers(0, 250, a.shape).astype(a.dtype))
    assert_same_state(Accumulator.load(acc.save(tmp_path / "small.rawstate")), acc)


def test_version_1_file_still_loads(eight, tmp_path):
    """A file written by rawmap before version 2 (kept in tests/data) loads; saved again it is version 2, the same."""
    old = Accumulator.load(V1_FILE)
    assert old.shape == (24, 30) and old.n_frames == 8
    for name in ("s_v", "vmin", "vmax", "n_invalid"):  # plain sums of the same frames, recounted today
        assert np.array_equal(getattr(old, name), getattr(eight, name)), name
    assert old.fs_index.size and old._open
    assert_same_state(Accumulator.load(old.save(tmp_path / "again.rawstate")), old)
    # and version 1 as this rawmap writes it for comparison loads the same as version 3, but for the x sums
    # of the skipped frames, which it did not keep (as in version 2: see the test below)
    (tmp_path / "v1.rawstate").write_bytes(state_bytes(eight, version=1))
    assert_same_state(Accumulator.load(tmp_path / "v1.rawstate"), eight, but=("s_xi", "s_xxi"))


def test_a_version_2_state_loads_its_skipped_frames_as_average_frames(eight, tmp_path):
    """Version 2 kept no x sums of the frames each photosite skipped: they load as the series' mean x and
    x squared per skipped frame (what the regression assumed then), every other array bit for bit."""
    path = tmp_path / "v2.rawstate"
    path.write_bytes(state_bytes(eight, version=2))
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("meta.json"))["version"] == 2 and "s_xi.pk" not in zf.namelist()
    back = Accumulator.load(path)
    assert_same_state(back, eight, but=("s_xi", "s_xxi"))
    skipped = eight.n_invalid.astype(np.float64)
    assert skipped.max() > 0
    np.testing.assert_allclose(back.s_xi, skipped * eight.sum_x / eight.n_frames, rtol=1e-6)
    np.testing.assert_allclose(back.s_xxi, skipped * eight.sum_xx / eight.n_frames, rtol=1e-6)
    assert back.s_xi.dtype == back.s_xxi.dtype == np.float32
    # saved again, it is version 3 and keeps them
    assert_same_state(Accumulator.load(back.save(tmp_path / "v3.rawstate")), back)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A simulated series (rawmap.testing) mapped by rawmap: the state of a body."""
    folder = tmp_path_factory.mktemp("series")
    write_scenario(folder, "mixed", seed=4, shape=(200, 300), n_frames=12)
    run = map_files(sorted(folder.glob("*.dng")))
    return run.maps[0].accumulator


def test_a_mapped_series_packs_in_at_most_12_bytes_per_photosite_and_maps_the_same(mapped, tmp_path):
    path = mapped.save(tmp_path / "body.rawstate")
    n = mapped.shape[0] * mapped.shape[1]
    assert path.stat().st_size <= 12 * n, path.stat().st_size / n
    v1 = state_bytes(mapped, version=1)
    assert len(v1) > 2 * path.stat().st_size  # ~25 bytes per photosite before
    back = Accumulator.load(path)
    assert_same_state(back, mapped)
    a, b = (json.loads(build_map(acc).to_json()) for acc in (mapped, back))
    for m in (a, b):
        m.pop("created")  # the time of writing
    assert a == b and len(a["defects"]) > 0


def test_the_library_stores_a_body_in_version_2(mapped, tmp_path):
    """The library's per-body ``state.rawstate`` is the same file: at most 12 bytes per photosite, read back bit for bit."""
    lib = Library(tmp_path / "lib")
    entry = lib.store(
        EntryUpdate(
            mapped.camera,
            mapped.source,
            build_map(mapped),
            mapped,
            files=tuple(recorded_path(f.path) for f in mapped.frames),
            content_keys={},
            base=None,
        )
    )
    assert entry.state_path.stat().st_size <= 12 * mapped.shape[0] * mapped.shape[1]
    assert_same_state(lib.load_state(entry), mapped)


# ------------------------------------------------------------- damaged and hostile version 2 files


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(dst: Path, content: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(dst, "w", allowZip64=True) as zf:
        for name, data in content.items():
            zf.writestr(name, data)
    return dst


def _refused(path: Path, *fragments: str, peak_limit: int = 8 << 20) -> str:
    """Loading ``path`` raises one MapFormatError line naming it, without allocating more than ``peak_limit``."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(MapFormatError) as exc:
            Accumulator.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and len(msg) < 400, msg
    for fragment in fragments:
        assert fragment in msg, msg
    assert peak < peak_limit, peak
    return msg


def _head(data: bytes) -> list:
    return list(struct.unpack_from("<4sBBBBII", data))


def _with_head(data: bytes, **changes) -> bytes:
    fields = _head(data)
    keys = ("magic", "version", "dtype", "transform", "planes", "h", "w")
    for k, v in changes.items():
        fields[keys.index(k)] = v
    return struct.pack("<4sBBBBII", *fields) + data[struct.calcsize("<4sBBBBII") :]


def _deflated_plane(n_out: int) -> bytes:
    """A member of s_zz (float32, 4 planes) whose first plane is deflated and inflates to ``n_out`` bytes."""
    n = 24 * 30
    bomb = zlib.compress(bytes(n_out), 9)
    head = struct.pack("<4sBBBBII", b"RMPK", 1, 6, 0, 4, 24, 30)
    table = struct.pack("<BQ", 1, len(bomb)) + b"".join(struct.pack("<BQ", 0, n) for _ in range(3))
    return head + table + bomb + bytes(3 * n)


HOSTILE = {
    "magic": (lambda m: {"s_v.pk": b"XXXX" + m["s_v.pk"][4:]}, "s_v.pk is not a packed array of version 1"),
    "layout-version": (lambda m: {"s_v.pk": _with_head(m["s_v.pk"], version=9)}, "not a packed array of version 1"),
    "dtype-code": (lambda m: {"s_v.pk": _with_head(m["s_v.pk"], dtype=200)}, "s_v.pk holds dtype code 200"),
    "dtype-other": (lambda m: {"s_xr.pk": _with_head(m["s_xr.pk"], dtype=2)}, "s_xr.pk holds uint32, not float32"),
    "transform": (lambda m: {"s_zz.pk": _with_head(m["s_zz.pk"], transform=7)}, "transform 7"),
    "shape": (
        lambda m: {"s_v.pk": _with_head(m["s_v.pk"], h=100_000, w=100_000)},
        "s_v.pk has shape (100000, 100000), not (24, 30)",
    ),
    "planes": (lambda m: {"s_v.pk": _with_head(m["s_v.pk"], planes=3)}, "3 byte planes"),
    "header-cut": (lambda m: {"s_v.pk": m["s_v.pk"][:10]}, "s_v.pk ends inside its header"),
    "table-cut": (lambda m: {"s_v.pk": m["s_v.pk"][:20]}, "s_v.pk ends inside its plane table"),
    "truncated": (lambda m: {"s_zz.pk": m["s_zz.pk"][:-100]}, "s_zz.pk declares"),
    "padded": (lambda m: {"s_zz.pk": m["s_zz.pk"] + bytes(100)}, "s_zz.pk declares"),
    "huge-plane-size": (
        lambda m: {"s_zz.pk": m["s_zz.pk"][:16] + struct.pack("<BQ", 0, 10**15) + m["s_zz.pk"][25:]},
        "plane 0 (codec 0) of 1,000,000,000,000,000 bytes for 720 elements",
    ),
    "deflate-bomb": (lambda m: {"s_zz.pk": _deflated_plane(200_000)}, "plane 0 does not inflate to exactly 720 bytes"),
    "deflate-bomb-big": (
        lambda m: {"s_zz.pk": _deflated_plane(20 << 20)},
        "s_zz.pk: plane 0 (codec 1) of 20,393 bytes for 720 elements",
    ),
    "deflate-short": (lambda m: {"s_zz.pk": _deflated_plane(100)}, "plane 0 does not inflate to exactly 720 bytes"),
    "deflate-garbage": (
        lambda m: {"s_zz.pk": _deflated_plane(720)[:54] + b"\xff" * 7 + _deflated_plane(720)[61:]},
        "s_zz.pk: plane 0",
    ),
    "missing": (lambda m: {"vmax.pk": None}, "no vmax.pk"),
    "sparse-huge": (
        lambda m: {"fs_index.pk": _with_head(m["fs_index.pk"], w=10**9)},
        "fs_index.pk has shape (1, 1000000000), not (1, k), k <= 720",
    ),
    "sparse-unsorted": (
        lambda m: {"ln_code.pk": _with_head(m["ln_code.pk"], transform=0)},
        "ln_code",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_packed_member_is_refused_in_one_line_before_it_is_used(packed_file, tmp_path, case):
    change, fragment = HOSTILE[case]
    content = _members(packed_file)
    for name, data in change(content).items():
        if data is None:
            del content[name]
        else:
            content[name] = data
    _refused(_write(tmp_path / f"{case}.rawstate", content), fragment)


def test_a_truncated_file_is_refused(packed_file, tmp_path):
    data = packed_file.read_bytes()
    for cut in sorted({0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 23, len(data) - 1}):
        path = tmp_path / f"cut{cut}.rawstate"
        path.write_bytes(data[:cut])
        _refused(path)


def test_bit_flips_anywhere_are_refused_or_harmless(eight, packed_file, tmp_path):
    """A flipped bit is caught (the zip's CRC of each member, the checks of each header), or falls in a byte that changes nothing."""
    data = packed_file.read_bytes()
    rng = np.random.default_rng(12)
    refused = 0
    for pos in rng.choice(len(data), 150, replace=False).tolist():
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        path = tmp_path / "flip.rawstate"
        path.write_bytes(bytes(flipped))
        try:
            back = Accumulator.load(path)
        except MapFormatError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            refused += 1
        else:
            assert_same_state(back, eight)  # a zip timestamp or an unused field
    assert refused > 100


def test_flips_inside_a_packed_member_with_its_crc_made_good_never_crash(packed_file, tmp_path):
    """Past the zip's CRC (the member rewritten), a flip is refused in one line or gives arrays of the right shape."""
    content = _members(packed_file)
    rng = np.random.default_rng(5)
    for name in ("s_v.pk", "s_r.pk", "s_zz.pk", "n_invalid.pk", "fs_index.pk"):
        member = content[name]
        for pos in rng.choice(len(member), 12, replace=False).tolist():
            bad = bytearray(member)
            bad[pos] ^= 1 << int(rng.integers(8))
            path = _write(tmp_path / "flip.rawstate", {**content, name: bytes(bad)})
            try:
                back = Accumulator.load(path)
            except MapFormatError as exc:
                assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            else:
                assert back.s_v.shape == (24, 30)


def test_an_unknown_version_is_refused(packed_file, tmp_path):
    content = _members(packed_file)
    meta = json.loads(content["meta.json"])
    meta["version"] = 4
    content["meta.json"] = json.dumps(meta).encode()
    _refused(
        _write(tmp_path / "v4.rawstate", content), "state version 4 is not supported (this rawmap reads 1, 2 and 3)"
    )
    with pytest.raises(ValueError, match="state version 4"):
        state_bytes(Accumulator.load(packed_file), version=4)


def test_a_version_2_state_without_its_views_member_is_refused(packed_file, tmp_path):
    """Every version-2 state holds ``view_scene.pk``; its name is outside the zip's CRC, so a flipped
    bit there had loaded a state without its views' signatures (found by the bit-flip test when the
    frame records grew), as if written before views were tracked."""
    content = _members(packed_file)
    content["view_scenf.pk"] = content.pop("view_scene.pk")
    _refused(_write(tmp_path / "renamed.rawstate", content), "view_scene.pk is missing")
