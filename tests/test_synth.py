"""The simulated sensor: models, planted defects, visibility, and the written series."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rawpy
from PIL import Image

from rawmap.defectmap import DefectKind
from rawmap.errors import MapFormatError
from rawmap.fileio import OutputExistsError
from rawmap.frame import CameraId
from rawmap.synth import (
    BORDER,
    SCENE_KINDS,
    DefectCounts,
    PlantedDefect,
    SensorSpec,
    generate_series,
    load_truth,
    plan_series,
    plant_defects,
    render_scene,
    simulate,
    simulate_frame,
)

SMALL = SensorSpec(64, 96)


def _const_scene(spec: SensorSpec, rate: float) -> np.ndarray:
    return np.full((spec.height, spec.width, 3), rate, dtype=np.float32)


# --- sensor ------------------------------------------------------------------


def test_gain_and_read_noise_follow_iso():
    s = SensorSpec(100, 100)
    assert s.gain(100) * s.full_well_e == pytest.approx(s.white - 512)
    assert s.gain(800) == pytest.approx(8 * s.gain(100))
    rn = [s.read_noise_dn(i) for i in (100, 400, 1600, 6400)]
    assert rn == sorted(rn) and rn[-1] > 20 * rn[0]
    assert s.read_noise_dn(100) >= s.adc_noise_dn


def test_sensor_spec_invalid():
    with pytest.raises(ValueError, match="even"):
        SensorSpec(64, 64, top_margin=3)
    with pytest.raises(ValueError, match="22x22"):
        SensorSpec(10, 64)
    with pytest.raises(ValueError, match="cfa"):
        SensorSpec(64, 64, cfa=np.array([[0, 0], [1, 1]]))
    with pytest.raises(ValueError, match="white"):
        SensorSpec(64, 64, black=600, white=600)


def test_spec_dict_round_trip():
    s = SensorSpec(40, 60, cfa=np.array([[1, 0], [2, 3]]), black=(500, 510, 520, 530), top_margin=4, left_margin=8)
    again = SensorSpec.from_dict(s.to_dict(), camera=s.camera)
    assert again == s
    assert s.cfa_string == "GRBG"
    assert s.full_shape == (44, 68)
    np.testing.assert_array_equal(s.black_map(), [[510, 500], [520, 530]])


# --- defects -----------------------------------------------------------------


def test_plant_defects_deterministic_and_well_formed():
    spec = SensorSpec(200, 300)
    counts = dict(n_stuck=3, n_dead=3, n_hot=5, n_warm=4, n_cold=2, n_noisy=3, n_clusters=2, n_columns=2, n_rows=1)
    a = plant_defects(spec, np.random.default_rng(5), **counts)
    b = plant_defects(spec, np.random.default_rng(5), **counts)
    assert a == b
    assert a != plant_defects(spec, np.random.default_rng(6), **counts)
    coords = [(d.row, d.col) for d in a]
    assert len(set(coords)) == len(coords)  # one record per photosite, no overlap
    assert coords == sorted(coords)
    rows, cols = np.array(coords).T
    assert rows.min() >= BORDER and cols.min() >= BORDER
    assert rows.max() <= spec.height - 1 - BORDER and cols.max() <= spec.width - 1 - BORDER
    single = [d for d in a if "cluster" not in d.params and d.kind is not DefectKind.COLUMN]
    kinds = [d.kind for d in single]
    assert kinds.count(DefectKind.STUCK) == 3 and kinds.count(DefectKind.DEAD) == 3
    assert kinds.count(DefectKind.HOT) == 9 and kinds.count(DefectKind.COLD) == 2
    assert kinds.count(DefectKind.NOISY) == 3
    assert sum(d.params.get("strength") == "warm" for d in single) == 4
    # clusters: 2-4 8-connected photosites, each hot or dead
    for cl in range(2):
        members = [d for d in a if d.params.get("cluster") == cl]
        assert 2 <= len(members) <= 4 and len(members) == members[0].params["size"]
        assert all(d.kind in (DefectKind.HOT, DefectKind.DEAD) for d in members)
        pts = np.array([(d.row, d.col) for d in members])
        for p in pts:  # each touches another member
            others = pts[(pts != p).any(axis=1)]
            assert np.abs(others - p).max(axis=1).min() == 1
    # segments: one column or row, contiguous, 20-200 long
    segs = {}
    for d in a:
        if d.kind is DefectKind.COLUMN:
            segs.setdefault(d.params["segment"], []).append(d)
    assert len(segs) == 3
    for members in segs.values():
        axis = members[0].params["axis"]
        fixed = {d.col if axis == "column" else d.row for d in members}
        along = sorted(d.row if axis == "column" else d.col for d in members)
        assert len(fixed) == 1
        assert along == list(range(along[0], along[0] + len(along)))
        assert 20 <= len(along) <= 200
    # isolated defects keep their distance (guard band of 2)
    for i, d in enumerate(single):
        for e in single[i + 1 :]:
            assert max(abs(d.row - e.row), abs(d.col - e.col)) > 2
    # stuck levels: 20 % of range .. white
    for d in a:
        if d.kind is DefectKind.STUCK:
            assert 512 + 0.2 * (spec.white - 512) - 1 <= d.params["value"] <= spec.white


def test_plant_defects_too_many():
    with pytest.raises(ValueError, match="plant fewer"):
        plant_defects(SensorSpec(24, 24), np.random.default_rng(0), n_stuck=200)
    with pytest.raises(ValueError, match="n_dead"):
        plant_defects(SMALL, np.random.default_rng(0), n_dead=-1)


def test_counts_scale_with_sensor():
    small = DefectCounts.for_sensor(120, 160)
    assert all(v == 1 for v in small.as_kwargs().values())
    assert DefectCounts.for_sensor(600, 900) == DefectCounts()
    big = DefectCounts.for_sensor(4000, 6000)
    assert big.n_hot > 40 * DefectCounts().n_hot and big.n_columns < 10  # 44x the area


# --- scenes ------------------------------------------------------------------


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_render_scene(kind):
    s = render_scene(SMALL, np.random.default_rng(1), kind, rate=1000.0)
    assert s.shape == (64, 96, 3) and s.dtype == np.float32
    assert np.isfinite(s).all() and s.min() >= 0
    again = render_scene(SMALL, np.random.default_rng(1), kind, rate=1000.0)
    np.testing.assert_array_equal(s, again)
    if kind == "dark":
        assert not s.any()  # a lens-cap dark: no light at all
    else:
        assert 100 < np.median(s[..., 1]) < 20000


def test_render_scene_content():
    spec = SensorSpec(200, 300)
    night = render_scene(spec, np.random.default_rng(2), "night", rate=100.0)
    assert night.max() > 50 * np.median(night)  # stars over a dark sky
    flat = render_scene(spec, np.random.default_rng(2), "flat", rate=100.0)
    assert flat.max() / flat.min() < 2  # no detail, only vignetting
    glints = render_scene(spec, np.random.default_rng(2), "glints", rate=100.0)
    assert glints.max() > 10 * np.percentile(glints, 99)  # tiny specular points


def test_render_scene_invalid():
    with pytest.raises(ValueError, match="kind"):
        render_scene(SMALL, np.random.default_rng(0), "moon")
    with pytest.raises(ValueError, match="rate"):
        render_scene(SMALL, np.random.default_rng(0), "flat", rate=0)


# --- one exposure ------------------------------------------------------------


def _defect(kind, r, c, **params):
    return PlantedDefect(r, c, kind, params)


def test_simulate_models_and_clean_truth():
    spec = SensorSpec(40, 60)
    defects = [
        _defect(DefectKind.STUCK, 10, 10, value=9000),
        _defect(DefectKind.DEAD, 10, 20),
        _defect(DefectKind.HOT, 10, 30, dark_dn_per_s=500.0, strength="hot"),
        _defect(DefectKind.COLD, 20, 10, gain=0.5),
        _defect(DefectKind.COLUMN, 20, 20, segment=0, axis="column", mode="offset", offset_rn=30.0),
    ]
    iso, t = 100.0, 2.0
    level = 4000.0  # DN above black
    rate = level / spec.gain(iso) / t
    sim = simulate(spec, defects, _const_scene(spec, rate / 1.0), t, iso, np.random.default_rng(0))
    m, clean = sim.mosaic.astype(float), sim.clean.astype(float)
    diff = np.argwhere(sim.mosaic != sim.clean)
    assert {tuple(p) for p in diff} <= {(d.row, d.col) for d in defects}
    green = clean[0::2, 1::2]  # G photosites of RGGB (qe 1)
    rn, g = spec.read_noise_dn(iso), spec.gain(iso)
    assert green.mean() - 512 == pytest.approx(level + spec.dark_current_e * t * g, rel=0.01)
    assert green.std() == pytest.approx(np.sqrt(g * level + rn * rn), rel=0.1)
    assert m[10, 10] == 9000
    assert abs(m[10, 20] - 512) < 6 * rn
    assert m[10, 30] - clean[10, 30] == pytest.approx(500 * t, abs=6 * np.sqrt(g * (level + 1000)))
    red_level = level * spec.channel_qe[0]
    assert m[20, 10] - 512 == pytest.approx(0.5 * red_level, abs=6 * np.sqrt(g * red_level))
    assert m[20, 20] - clean[20, 20] == pytest.approx(30 * rn, abs=1)
    # a 30 x read-noise offset is lost in the shot noise of a bright frame
    assert list(sim.visible) == [True, True, True, True, False]
    m2, c2 = simulate_frame(spec, defects, _const_scene(spec, rate), t, iso, np.random.default_rng(0))
    np.testing.assert_array_equal(m2, sim.mosaic)
    np.testing.assert_array_equal(c2, sim.clean)


def test_visibility_rule():
    spec = SensorSpec(40, 60)
    hot = _defect(DefectKind.HOT, 10, 10, dark_dn_per_s=200.0, strength="hot")
    stuck_white = _defect(DefectKind.STUCK, 10, 20, value=spec.white)
    cold = _defect(DefectKind.COLD, 11, 30, gain=0.6)  # a G photosite (odd row, even col)
    defects = [hot, stuck_white, cold]
    dark = _const_scene(spec, 1.0)
    # short exposure: hot invisible; stuck at white against black visible; cold invisible in the dark
    s = simulate(spec, defects, dark, 1 / 1000, 100, np.random.default_rng(0))
    assert list(s.visible) == [False, True, False]
    # long exposure: hot shows (200 DN/s x 30 s = 6000 DN)
    s = simulate(spec, defects, dark, 30.0, 100, np.random.default_rng(0))
    assert s.visible[0] and s.deviation[0] == pytest.approx(6000, rel=0.01)
    # saturated scene: hot and stuck-at-white both invisible; cold still clips ... once it is far below
    sat = _const_scene(spec, 1e7)
    s = simulate(spec, defects, sat, 1 / 100, 100, np.random.default_rng(0))
    assert not s.visible[0] and not s.visible[1]
    # bright, unsaturated: cold shows, with deviation (0.6 - 1) x signal
    lvl = 8000 / spec.gain(100) / 0.01
    s = simulate(spec, defects, _const_scene(spec, lvl), 0.01, 100, np.random.default_rng(0))
    assert s.visible[2] and s.deviation[2] == pytest.approx(-0.4 * 8000, rel=0.02)


def test_noisy_visible_fraction_follows_p():
    spec = SensorSpec(24, 24)
    d = [_defect(DefectKind.NOISY, 10, 10, amplitude_rn=20.0, p=0.4, levels="+")]
    rng = np.random.default_rng(3)
    vis = [simulate(spec, d, _const_scene(spec, 10.0), 0.01, 400, rng).visible[0] for _ in range(400)]
    assert np.mean(vis) == pytest.approx(0.4, abs=0.07)
    weak = [_defect(DefectKind.NOISY, 10, 10, amplitude_rn=2.0, p=0.4, levels="+-")]
    assert not any(simulate(spec, weak, _const_scene(spec, 10.0), 0.01, 400, rng).visible[0] for _ in range(50))


# --- plans and series ----------------------------------------------------------


def test_plan_series_mix():
    plan = plan_series(40, np.random.default_rng(11))
    assert len(plan) == 40
    times = [f.time for f in plan.frames]
    assert times == sorted(times) and len(set(times)) == 40
    assert (times[-1] - times[0]).days >= 2
    long = [f for f in plan.frames if f.exposure >= 1]
    assert 0.15 <= len(long) / 40 <= 0.35
    assert all(1 <= f.exposure <= 30 for f in long)
    day = [f for f in plan.frames if f.scene in ("landscape", "glints", "flat") and f.exposure < 1 and f.burst is None]
    assert day and all(100 <= f.iso <= 800 and 1 / 4000 <= f.exposure <= 1 / 30 for f in day)
    indoor = [f for f in plan.frames if f.scene == "indoor"]
    assert indoor and all(1600 <= f.iso <= 6400 for f in indoor)
    burst = [i for i, f in enumerate(plan.frames) if f.burst == 0]
    assert 6 <= len(burst) <= 10 and burst == list(range(burst[0], burst[0] + len(burst)))  # consecutive
    fb = [plan.frames[i] for i in burst]
    assert len({(f.exposure, f.iso, f.scene) for f in fb}) == 1
    assert all((b.time - a.time).total_seconds() == 1 for a, b in zip(fb, fb[1:]))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    out = tmp_path_factory.mktemp("series")
    spec = SensorSpec(48, 64, top_margin=4, left_margin=8, camera=CameraId("Rawmap", "Sim Test", "S123"))
    truth = generate_series(out / "frames", n_frames=12, seed=42, spec=spec, jpeg=True, clean_dir=out / "clean")
    return out, spec, truth


def test_series_files_and_truth(series):
    out, spec, truth = series
    frames = out / "frames"
    names = sorted(p.name for p in frames.iterdir())
    assert names == sorted([f"frame_{i:03d}.dng" for i in range(12)] + [f"frame_{i:03d}.jpg" for i in range(12)]
                           + ["truth.json"])
    data = json.loads((frames / "truth.json").read_text())
    assert data["format"] == "rawmap-truth" and data["version"] == 1
    assert data["camera"] == {"make": "Rawmap", "model": "Sim Test", "serial": "S123"}
    assert data["sensor"]["top_margin"] == 4 and data["sensor"]["cfa"] == "RGGB"
    assert [f["file"] for f in data["frames"]] == [f"frame_{i:03d}.dng" for i in range(12)]
    assert {"row", "col", "kind", "params", "visible_fraction"} <= set(data["defects"][0])
    loaded = load_truth(frames)
    assert loaded.defects == truth.defects
    np.testing.assert_allclose(loaded.visible_fraction, truth.visible_fraction, atol=1e-6)
    assert loaded.spec == spec and loaded.frames == truth.frames
    assert any(f.burst is not None for f in loaded.frames)
    kinds = {d.kind for d in truth.defects}
    assert kinds == set(DefectKind)
    assert truth.mask().sum() == len(truth.defects)
    assert truth.mask(min_visible=1.01).sum() == 0


def test_series_read_back_by_libraw(series):
    out, spec, truth = series
    mask = truth.mask()
    stuck = {(d.row, d.col): d.params["value"] for d in truth.defects if d.kind is DefectKind.STUCK}
    for f in truth.frames:
        with rawpy.imread(str(out / "frames" / f.file)) as r:
            vis = r.raw_image_visible.copy()
            assert (r.sizes.top_margin, r.sizes.left_margin) == (4, 8)
            assert r.raw_image.shape == (52, 72)
            assert list(r.black_level_per_channel) == [512] * 4 and r.white_level == spec.white
            assert r.other.iso_speed == f.iso
            assert r.other.shutter_speed == pytest.approx(f.exposure, rel=1e-5)
            assert r.other.timestamp == f.time
            border = r.raw_image[:4].astype(float)
            assert abs(border.mean() - 512) < 3 * spec.read_noise_dn(f.iso)
        clean = np.load(f.clean)
        np.testing.assert_array_equal(vis[~mask], clean[~mask])  # bit-exact outside the defects
        for (row, col), v in stuck.items():
            assert vis[row, col] == v


def test_series_jpeg_exif(series):
    out, spec, truth = series
    f = truth.frames[0]
    with Image.open(out / "frames" / f.jpeg) as im:
        assert im.format == "JPEG" and im.size == (64, 48) and im.mode == "RGB"
        exif = im.getexif()
        sub = exif.get_ifd(0x8769)
    assert exif[0x010F] == "Rawmap" and exif[0x0110] == "Sim Test"
    assert sub[0xA431] == "S123"
    assert sub[0x8827] == int(f.iso)
    assert float(sub[0x829A]) == pytest.approx(f.exposure, rel=1e-4)
    assert dt.datetime.strptime(sub[0x9003], "%Y:%m:%d %H:%M:%S") == f.time


def test_series_burst_is_near_identical(series):
    out, spec, truth = series
    burst = [f for f in truth.frames if f.burst == 0]
    assert len(burst) >= 2
    a, b = (np.load(f.clean).astype(float) for f in burst[:2])
    other = np.load(next(f for f in truth.frames if f.burst is None).clean).astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    assert not np.array_equal(a, b)  # noise and jitter differ
    assert np.corrcoef(a.ravel(), other.ravel())[0, 1] < np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_series_deterministic_and_no_overwrite(tmp_path):
    spec = SensorSpec(32, 48)
    t1 = generate_series(tmp_path / "a", n_frames=4, seed=9, spec=spec)
    t2 = generate_series(tmp_path / "b", n_frames=4, seed=9, spec=spec)
    for f in t1.frames:
        assert (tmp_path / "a" / f.file).read_bytes() == (tmp_path / "b" / f.file).read_bytes()
    assert (tmp_path / "a" / "truth.json").read_text() == (tmp_path / "b" / "truth.json").read_text()
    assert t1.defects == t2.defects
    before = (tmp_path / "a" / "frame_000.dng").read_bytes()
    with pytest.raises(OutputExistsError):
        generate_series(tmp_path / "a", n_frames=4, seed=10, spec=spec)
    assert (tmp_path / "a" / "frame_000.dng").read_bytes() == before
    generate_series(tmp_path / "a", n_frames=4, seed=10, spec=spec, overwrite=True)
    assert (tmp_path / "a" / "frame_000.dng").read_bytes() != before


def test_visible_fraction_matches_frames(tmp_path):
    """Stuck photosites far from the scene level show in every frame; a hot one only in long exposures."""
    spec = SensorSpec(40, 60)
    defects = [_defect(DefectKind.HOT, 10, 10, dark_dn_per_s=300.0, strength="hot")]
    truth = generate_series(tmp_path, n_frames=10, seed=3, spec=spec, defects=defects)
    long = sum(f.exposure >= 1 for f in truth.frames)
    assert 0 < long < 10
    assert truth.visible_fraction[0] <= long / 10 + 1e-9


def test_load_truth_errors(tmp_path):
    with pytest.raises(MapFormatError, match="no such"):
        load_truth(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(MapFormatError, match="not a rawmap truth"):
        load_truth(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"format": "rawmap-truth", "version": 2}')
    with pytest.raises(MapFormatError, match="version"):
        load_truth(tmp_path / "y.json")


def test_committed_example_matches_its_command(tmp_path):
    """fixtures/example is what fixtures/README.md says: regenerate it and compare."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "fixtures" / "example"
    if not (example / "truth.json").exists():
        pytest.skip("fixtures/example not present")
    committed = load_truth(example)
    spec = SensorSpec(120, 160, top_margin=8, left_margin=12)
    again = generate_series(tmp_path, n_frames=12, seed=9, spec=spec)
    assert again.defects == committed.defects
    assert again.frames == committed.frames
    np.testing.assert_allclose(again.visible_fraction, committed.visible_fraction, atol=0.1)
    for f in committed.frames[:3]:
        with rawpy.imread(str(example / f.file)) as a, rawpy.imread(str(tmp_path / f.file)) as b:
            diff = np.abs(a.raw_image.astype(int) - b.raw_image.astype(int))
        assert diff.mean() < 0.5  # equal, bar last-bit float differences between CPUs
    kinds = {d.kind for d in committed.defects}
    assert kinds == set(DefectKind)


def test_burst_jitter_shift_is_bilinear():
    from rawmap.synth import _shift

    rng = np.random.default_rng(0)
    img = np.moveaxis(rng.random((3, 12, 17)).astype(np.float32), 0, -1)
    h, w = img.shape[:2]

    def ref(dy, dx):
        out = np.empty_like(img)
        for y in range(h):
            for x in range(w):
                sy, sx = y - dy, x - dx
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                fy, fx = sy - y0, sx - x0

                def p(yy, xx):
                    return img[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)]

                out[y, x] = ((1 - fy) * (1 - fx) * p(y0, x0) + (1 - fy) * fx * p(y0, x0 + 1)
                             + fy * (1 - fx) * p(y0 + 1, x0) + fy * fx * p(y0 + 1, x0 + 1))
        return out

    for dy, dx in [(0.3, -0.2), (-0.25, 0.1), (1.5, -2.7), (0.0, 0.0)]:
        np.testing.assert_allclose(_shift(img, dy, dx), ref(dy, dx), atol=1e-6)
