"""rawmap.testing, the simulated sensor: models, planted defects, visibility, the written series; and that the runtime never imports it."""

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
from rawmap.testing import (
    BORDER,
    SCENE_KINDS,
    DefectCounts,
    PlantedDefect,
    SensorSpec,
    generate_series,
    load_truth,
    plan_series,
    plant_defects,
    render_lamps,
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
    with pytest.raises(ValueError, match="glow"):
        SensorSpec(64, 64, glow_e=-1.0)
    with pytest.raises(ValueError, match="glow"):
        SensorSpec(64, 64, glow_e=10.0, glow_scale=0.0)
    with pytest.raises(ValueError, match="row_noise"):
        SensorSpec(64, 64, row_noise=-0.1)


def test_spec_dict_round_trip():
    s = SensorSpec(
        40,
        60,
        cfa=np.array([[1, 0], [2, 3]]),
        black=(500, 510, 520, 530),
        top_margin=4,
        left_margin=8,
        glow_e=3.5,
        row_noise=0.3,
        column_noise=0.1,
    )
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
    assert names == sorted(
        [f"frame_{i:03d}.dng" for i in range(12)] + [f"frame_{i:03d}.jpg" for i in range(12)] + ["truth.json"]
    )
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
    assert kinds == set(DefectKind) - {DefectKind.WARM}  # warm ones are planted as weak hot ones
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
    assert kinds == set(DefectKind) - {DefectKind.WARM}  # warm ones are planted as weak hot ones


def test_burst_jitter_shift_is_bilinear():
    from rawmap.testing.scene import _shift

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

                out[y, x] = (
                    (1 - fy) * (1 - fx) * p(y0, x0)
                    + (1 - fy) * fx * p(y0, x0 + 1)
                    + fy * (1 - fx) * p(y0 + 1, x0)
                    + fy * fx * p(y0 + 1, x0 + 1)
                )
        return out

    for dy, dx in [(0.3, -0.2), (-0.25, 0.1), (1.5, -2.7), (0.0, 0.0)]:
        np.testing.assert_allclose(_shift(img, dy, dx), ref(dy, dx), atol=1e-6)


# --- wider simulator: sensors, defect options, scenes, temperature ----------------------------------

from rawmap import reader  # noqa: E402
from rawmap.defectmap import Defect  # noqa: E402
from rawmap.frame import SourceKind  # noqa: E402
from rawmap.testing import (  # noqa: E402
    DEFECT_CLASSES,
    SCENARIOS,
    FramePlan,
    SeriesPlan,
    dark_factor,
    defect_class,
    sample_scale,
    score_map,
    to_file_values,
    write_scenario,
)

SCEN = (96, 128)


def test_mono_spec():
    s = SensorSpec(40, 60, cfa=None)
    assert s.mono and s.cfa_string == "" and s.cfa_array.tolist() == [[1, 1], [1, 1]]
    assert SensorSpec.from_dict(s.to_dict(), camera=s.camera) == s
    assert not SensorSpec(40, 60).mono
    with pytest.raises(ValueError, match="monochrome"):
        generate_series("/nonexistent-never-written", n_frames=2, spec=s)
    # a mono sensor samples the scene's green channel everywhere
    scene = np.zeros((40, 60, 3), np.float32)
    scene[..., 1] = 20000.0
    m = simulate(s, [], scene, 0.1, 100, np.random.default_rng(0)).clean.astype(float)
    assert abs(m[0::2, 0::2].mean() - m[1::2, 0::2].mean()) < 5 and m.mean() > 512 + 900


def test_plant_defects_options():
    spec = SensorSpec(200, 300)
    counts = dict(n_stuck=0, n_dead=0, n_hot=4, n_warm=8, n_cold=10, n_noisy=0, n_clusters=4, n_columns=0, n_rows=0)
    a = plant_defects(
        spec, np.random.default_rng(3), **counts, warm_rate=(10, 100), cold_gain=(0.05, 0.5), cluster_kind="hot"
    )
    cold = [d.params["gain"] for d in a if d.kind is DefectKind.COLD]
    warm = [d.params["dark_dn_per_s"] for d in a if d.params.get("strength") == "warm"]
    assert len(cold) == 10 and all(0.05 <= g <= 0.5 for g in cold)
    assert len(warm) == 8 and all(10 <= r <= 100 for r in warm)
    members = [d for d in a if "cluster" in d.params]
    assert len(members) >= 8 and all(d.kind is DefectKind.HOT for d in members)
    # the defaults are the documented ranges, drawn exactly as before
    assert plant_defects(spec, np.random.default_rng(3), **counts) == plant_defects(
        spec,
        np.random.default_rng(3),
        **counts,
        hot_rate=(50.0, 3000.0),
        warm_rate=(1.5, 40.0),
        cold_gain=(0.2, 0.8),
        cluster_kind="mixed",
    )
    for bad in (dict(cold_gain=(0.5, 1.2)), dict(warm_rate=(0, 5)), dict(cluster_kind="cold")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            plant_defects(spec, np.random.default_rng(0), **bad)


def test_defect_classes_map_to_kinds():
    spec = SensorSpec(300, 400)
    ds = plant_defects(spec, np.random.default_rng(1), n_stuck=6, n_clusters=3)
    ds.append(PlantedDefect(5, 5, DefectKind.STUCK, {"value": spec.white}))
    seen = set()
    for d in ds:
        c = defect_class(d, spec.white)
        seen.add(c)
        assert c in DEFECT_CLASSES
        if c != "cluster":
            assert DEFECT_CLASSES[c] is d.kind
    assert {"hot", "warm", "cluster", "stuck_high", "stuck_mid", "dead", "low_gain", "blinking", "column"} <= seen


def test_temperature_doubles_dark_current():
    assert dark_factor(26.0) == 2.0 and dark_factor(8.0) == 0.25
    hot = PlantedDefect(10, 10, DefectKind.HOT, {"dark_dn_per_s": 100.0, "strength": "hot"})
    dark = np.zeros((SMALL.height, SMALL.width, 3), np.float32)
    dev = {
        t: simulate(SMALL, [hot], dark, 2.0, 200, np.random.default_rng(0), temperature=t).deviation[0]
        for t in (20.0, 26.0, 32.0)
    }
    assert dev[20.0] == pytest.approx(100 * 2 * 2, rel=1e-6)  # rate x t x ISO/100 at 20 degrees C
    assert dev[26.0] == pytest.approx(2 * dev[20.0]) and dev[32.0] == pytest.approx(4 * dev[20.0])
    # healthy dark current too: spec.dark_current_e x 2 ** ((T - 20) / 6)
    spec = SensorSpec(64, 96, dark_current_e=50.0)
    m20 = simulate(spec, [], dark, 10.0, 100, np.random.default_rng(1), temperature=20.0).clean.mean() - 512
    m32 = simulate(spec, [], dark, 10.0, 100, np.random.default_rng(1), temperature=32.0).clean.mean() - 512
    assert m32 / m20 == pytest.approx(4.0, rel=0.02)


def test_amplifier_glow_fades_from_the_top_right_corner_and_grows_with_exposure_and_heat():
    """``glow_e`` electrons per second at the corner, falling by e every ``glow_scale`` photosites, a dark
    signal: exposure x temperature factor; nothing without it."""
    dark = np.zeros((64, 96, 3), np.float32)
    spec = SensorSpec(64, 96, glow_e=40.0, glow_scale=10.0)
    plain = SensorSpec(64, 96)
    gain = spec.gain(100)
    mean = {}
    for t, temp in ((10.0, 20.0), (20.0, 20.0), (10.0, 26.0)):
        frames = [simulate(spec, [], dark, t, 100, np.random.default_rng(k), temperature=temp).clean for k in range(8)]
        mean[t, temp] = np.mean(frames, axis=0) - 512
    corner = mean[10.0, 20.0][:2, -2:].mean()
    assert corner == pytest.approx(40.0 * 10.0 * gain, rel=0.1)
    assert mean[10.0, 20.0][:2, :2].mean() == pytest.approx(40.0 * 10.0 * gain * np.exp(-95 / 10.0), abs=1.0)
    assert mean[10.0, 20.0][40:42, -2:].mean() == pytest.approx(corner * np.exp(-4.0), rel=0.25)
    assert mean[20.0, 20.0][:2, -2:].mean() == pytest.approx(2 * corner, rel=0.1)
    assert mean[10.0, 26.0][:2, -2:].mean() == pytest.approx(2 * corner, rel=0.1)
    none = simulate(plain, [], dark, 10.0, 100, np.random.default_rng(5)).clean.astype(float) - 512
    assert abs(none[:2, -2:].mean()) < 5 * plain.read_noise_dn(100)


def test_banding_offsets_rows_afresh_in_each_frame_and_columns_the_same_in_every_frame():
    """``row_noise`` and ``column_noise`` in read-noise sigmas: a row's mean over the columns moves from
    frame to frame by that share of the read noise, a column's mean over the rows stays; the column
    pattern comes from the sensor's size, not the series' generator, so with row banding off a frame
    keeps every draw and differs from the plain sensor's by the pattern alone."""
    dark = np.zeros((200, 300, 3), np.float32)
    rows = SensorSpec(200, 300, row_noise=0.5)
    cols = SensorSpec(200, 300, column_noise=0.5)
    rn = rows.read_noise_dn(800)
    a, b = (simulate(rows, [], dark, 0.01, 800, np.random.default_rng(k)).clean.astype(float) for k in (1, 2))
    row_means = a.mean(axis=1) - b.mean(axis=1)  # each row's offset in two frames, differenced
    assert np.std(row_means) == pytest.approx(np.sqrt(2) * 0.5 * rn, rel=0.2)
    c, d = (simulate(cols, [], dark, 0.01, 800, np.random.default_rng(k)).clean.astype(float) for k in (1, 2))
    col_a, col_b = c.mean(axis=0) - c.mean(), d.mean(axis=0) - d.mean()
    assert np.corrcoef(col_a, col_b)[0, 1] > 0.9  # the same pattern in both frames
    assert np.std(col_a) == pytest.approx(0.5 * rn, rel=0.2)
    plain = simulate(SensorSpec(200, 300), [], dark, 0.01, 800, np.random.default_rng(1)).clean.astype(float)
    added = c - plain  # c: the column-pattern sensor, the same generator seed
    assert np.abs(added - cols.column_pattern()[None, :] * rn).max() <= 1.0  # rounding to whole DN


def test_edges_scene_has_long_straight_edges_on_photosite_boundaries():
    spec = SensorSpec(120, 160)
    s = render_scene(spec, np.random.default_rng(4), "edges", rate=1000.0)[..., 1]
    rel_y = np.abs(np.diff(s, axis=0)) / (s[1:] + s[:-1])  # step between rows r and r + 1
    rel_x = np.abs(np.diff(s, axis=1)) / (s[:, 1:] + s[:, :-1])
    # an edge crossing the frame between two rows, and one running down most of it between two columns
    assert (rel_y > 0.1).sum(axis=1).max() > 0.8 * spec.width
    assert (rel_x > 0.1).sum(axis=0).max() > 0.5 * spec.height
    # sharp: no intermediate (blurred) values beside the horizon row
    row = int(np.argmax((rel_y > 0.1).sum(axis=1)))
    assert np.median(rel_y[row]) > 10 * np.median(rel_y[max(0, row - 3) : row - 1])


def test_texture_scene_is_fine_and_one_over_f():
    from rawmap.testing.scene import _pink_noise

    n = _pink_noise(np.random.default_rng(0), 256, 256, 1.0)
    assert abs(float(n.mean())) < 1e-3 and float(n.std()) == pytest.approx(1.0, rel=1e-3)
    amp = np.abs(np.fft.rfft2(n))
    fy, fx = np.meshgrid(np.fft.fftfreq(256), np.fft.rfftfreq(256), indexing="ij")
    f = np.hypot(fy, fx).ravel()
    ok = (f > 0.02) & (f < 0.45)
    slope = np.polyfit(np.log(f[ok]), np.log(amp.ravel()[ok]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
    spec = SensorSpec(120, 160)
    tex = render_scene(spec, np.random.default_rng(2), "texture", rate=1000.0)[..., 1]
    flat = render_scene(spec, np.random.default_rng(2), "flat", rate=1000.0)[..., 1]

    def fine(a):  # photosite-scale detail relative to the level
        return float(
            np.median(
                np.abs(a[1:-1, 1:-1] - (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]) / 4) / a[1:-1, 1:-1]
            )
        )

    assert fine(tex) > 0.03 and fine(tex) > 20 * fine(flat)


# --- scenarios ------------------------------------------------------------------------


def _read(folder, truth):
    return [reader.read_frame(folder / f.file) for f in truth.frames]


def _defect_free_match(frame_dn, clean, truth):
    """The frame equals its defect-free render everywhere but at the planted defects."""
    mask = truth.mask()
    np.testing.assert_array_equal(frame_dn[~mask], clean[~mask])


def test_scenario_brackets_same_scene_scaled(tmp_path):
    truth = write_scenario(tmp_path / "s", "brackets", seed=3, shape=SCEN, n_frames=8, clean_dir=tmp_path / "c")
    frames = _read(tmp_path / "s", truth)
    assert [f.burst for f in truth.frames] == [0, 0, 0, 0, 1, 1, 1, 1]
    for f, ft in zip(frames, truth.frames):
        assert f.source is SourceKind.RAW and f.format == "DNG"
        assert f.exposure == pytest.approx(ft.exposure, rel=1e-6) and f.iso == ft.iso and f.time == ft.time
        assert f.camera.serial == "SC-brackets"
        _defect_free_match(f.mosaic, np.load(ft.clean), truth)
        for d in truth.defects:  # the planted values where the model fixes them exactly
            if d.kind is DefectKind.STUCK:
                assert f.mosaic[d.row, d.col] == d.params["value"]
    times = [f.time for f in truth.frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    v0 = truth.frames[:4]  # view 0: on a tripod, 2 stops apart
    assert [b.exposure / v0[0].exposure for b in v0] == pytest.approx([1, 4, 16, 64])
    assert len({b.iso for b in v0}) == 1
    lin = [np.load(ft.clean).astype(float) - 512 for ft in v0]
    g = [x[0::2, 1::2] for x in lin]  # green photosites, away from clipping in frames 0-2
    ok = lin[2][0::2, 1::2] < 0.8 * (16383 - 512)
    for a, b in ((0, 1), (1, 2)):
        ratio = np.median(g[b][ok]) / np.median(g[a][ok])
        assert ratio == pytest.approx(4.0, rel=0.1)
        assert np.corrcoef(g[a][ok] / v0[a].exposure, g[b][ok] / v0[b].exposure)[0, 1] > 0.95
    # new noise each frame: the exposure-normalised frames are not identical
    assert not np.array_equal(g[0] * 4, g[1])


def test_scenario_timelapse_light_falls(tmp_path):
    truth = write_scenario(tmp_path, "timelapse", seed=1, shape=SCEN, n_frames=6, clean_dir=tmp_path / "c")
    assert len({f.exposure for f in truth.frames}) == 1 and {f.burst for f in truth.frames} == {0}
    levels = [np.median(np.load(f.clean).astype(float) - 512) for f in truth.frames]
    assert all(a > b for a, b in zip(levels, levels[1:]))
    assert levels[0] / levels[-1] == pytest.approx(16.0, rel=0.25)  # 4 stops
    assert (truth.visible_views <= 1).all()  # one view


def test_scenario_timelapse_city_lamps_keep_their_light(tmp_path):
    """The picture keeps its brightness (aperture priority) while the lamps' signal grows with the
    exposure, 64 times over the series; no shake."""
    truth = write_scenario(tmp_path, "timelapse-city", seed=4, shape=SCEN, n_frames=6, clean_dir=tmp_path / "c")
    first, last = truth.frames[0], truth.frames[-1]
    assert last.exposure / first.exposure == pytest.approx(64.0, rel=1e-6)
    a, b = (np.load(f.clean).astype(float) - 512 for f in (first, last))
    assert np.median(b) / np.median(a) == pytest.approx(1.0, rel=0.15)  # the daylit scene: as bright
    # the lamps: the photosites that grew most, many times over (the scene around them did not)
    grew = np.argsort((b - a).ravel())[-4:]
    assert (b.ravel()[grew] / np.maximum(a.ravel()[grew], 1.0) > 4.0).all()
    assert (np.abs(b - a) < 0.5 * (np.abs(a) + 50)).mean() > 0.9


def test_render_lamps_are_small_warm_spots():
    rng = np.random.default_rng(3)
    spec = SensorSpec(300, 450)
    lamps = render_lamps(spec, rng, 30.0, 100.0)
    assert lamps.shape == (300, 450, 3) and lamps.dtype == np.float32
    assert 0 < (lamps[..., 1] > 1.0).mean() < 0.02  # a few small spots, nothing elsewhere
    assert lamps[..., 0].max() <= 30.0 * 100.0 * 1.01
    lit = lamps[..., 1] > 10.0
    assert (lamps[..., 0][lit] > lamps[..., 2][lit]).all()  # warm
    with pytest.raises(ValueError):
        render_lamps(spec, rng, -1.0, 100.0)


def test_scenario_bursts_are_near_identical(tmp_path):
    truth = write_scenario(tmp_path, "burst", seed=2, shape=SCEN, n_frames=6, clean_dir=tmp_path / "c")
    assert [f.burst for f in truth.frames] == [0, 0, 0, 1, 1, 1]
    a, b = (np.load(truth.frames[i].clean).astype(float) for i in (0, 1))
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    assert (truth.visible_views <= 2).all()


def test_scenario_darks_glow_clips_a_corner(tmp_path):
    """darks-same on a glowing sensor: the top right corner clips in every dark, the far corner does not glow."""
    truth = write_scenario(tmp_path, "darks-glow", seed=4, shape=(200, 300), n_frames=4, clean_dir=tmp_path / "c")
    assert truth.spec.glow_e > 0 and all(f.dark and f.exposure == 30.0 for f in truth.frames)
    for ft in truth.frames:
        clean = np.load(ft.clean).astype(float)
        assert (clean[:4, -4:] >= truth.spec.white).all()
        # the far corner holds only the healthy photosites' dark current
        dark_dn = truth.spec.dark_current_e * dark_factor(ft.temperature) * ft.exposure * truth.spec.gain(800)
        assert clean[-16:, :16].mean() - 512 == pytest.approx(dark_dn, abs=2.0)


@pytest.mark.parametrize("name", ["darks-same", "darks-mixed"])
def test_scenario_darks_have_no_scene(tmp_path, name):
    truth = write_scenario(tmp_path, name, seed=4, shape=SCEN, n_frames=6, iso=1600, clean_dir=tmp_path / "c")
    spec = truth.spec
    exps = [f.exposure for f in truth.frames]
    assert all(f.dark and f.iso == 1600 for f in truth.frames)
    if name == "darks-same":
        assert set(exps) == {30.0}
        temps = [f.temperature for f in truth.frames]
        assert temps == sorted(temps) and temps[0] == 20.0 and temps[-1] == 32.0
    else:
        assert min(exps) <= 1 / 50 and max(exps) >= 50
    rn = spec.read_noise_dn(1600)
    frames = _read(tmp_path, truth)
    mask = truth.mask()
    for f, ft in zip(frames, truth.frames):
        clean = np.load(ft.clean).astype(float)
        _defect_free_match(f.mosaic, np.load(ft.clean), truth)
        dark_dn = spec.dark_current_e * dark_factor(ft.temperature) * ft.exposure * spec.gain(1600)
        assert clean.mean() - 512 == pytest.approx(dark_dn, abs=1.0)
        assert clean[~mask].std() == pytest.approx(np.sqrt(rn**2 + dark_dn * spec.gain(1600)), rel=0.1)
        import tifffile

        with tifffile.TiffFile(tmp_path / ft.file) as tf:
            num, den = tf.pages[0].tags["ExifTag"].value["Temperature"]
        assert num / den == pytest.approx(ft.temperature, abs=1e-3)
    # hot photosites show, scaled by exposure x ISO x the temperature's factor
    hot = [i for i, d in enumerate(truth.defects) if d.kind is DefectKind.HOT and "cluster" not in d.params]
    assert truth.must_find[hot].any() and (truth.visible_views <= 1).all()


@pytest.mark.parametrize(
    "name, fmt, dtype", [("gray16", "TIFF", "uint16"), ("gray8", "PNG", "uint8"), ("mono", "TIFF", "uint16")]
)
def test_scenario_grayscale_images(tmp_path, name, fmt, dtype):
    truth = write_scenario(tmp_path, name, seed=5, shape=SCEN, n_frames=5, clean_dir=tmp_path / "c")
    spec = truth.spec
    assert spec.mono == (name == "mono")
    scale = sample_scale(spec, truth.file_format)
    assert truth.sample_scale == scale and (scale == 4.0 if dtype == "uint16" else scale == 255 / 16383)
    mask = truth.mask()
    for ft in truth.frames:
        f = reader.read_frame(tmp_path / ft.file)
        assert f.source is SourceKind.IMAGE and f.format == fmt and f.cfa is None
        assert f.mosaic.shape == (*SCEN, 1) and f.mosaic.dtype == dtype
        assert f.exposure == pytest.approx(ft.exposure, rel=1e-6) and f.iso == ft.iso and f.time == ft.time
        assert f.camera.serial == f"SC-{name}"
        got = f.mosaic[..., 0]
        want = to_file_values(np.load(ft.clean), spec, truth.file_format)
        np.testing.assert_array_equal(got[~mask], want[~mask])
        for d in truth.defects:
            if d.kind is DefectKind.STUCK:
                assert (
                    got[d.row, d.col]
                    == to_file_values(np.array([[d.params["value"]]], np.uint16), spec, truth.file_format)[0, 0]
                )


def test_scenario_black0_dead_sit_at_zero(tmp_path):
    truth = write_scenario(tmp_path, "black0", seed=6, shape=SCEN, n_frames=10, clean_dir=tmp_path / "c")
    assert truth.spec.black == 0 and truth.spec.white == 4095
    dead = [(d.row, d.col) for d in truth.defects if d.kind is DefectKind.DEAD]
    assert dead
    zeros = 0
    for ft in truth.frames:
        with rawpy.imread(str(tmp_path / ft.file)) as raw:
            assert list(raw.black_level_per_channel) == [0, 0, 0, 0] and raw.white_level == 4095
            m = raw.raw_image_visible.copy()
        zeros += sum(int(m[r, c] == 0) for r, c in dead)
        rn = truth.spec.read_noise_dn(ft.iso)
        assert all(m[r, c] < 5 * rn for r, c in dead)  # no signal, only read noise above 0
        if ft.dark:  # the noise of healthy photosites is clipped at 0
            clean = np.load(ft.clean)
            assert (clean == 0).mean() > 0.2
    assert zeros > 0.25 * len(dead) * len(truth.frames)  # black 0 + read noise, clipped: about half are 0


def test_scenario_mixed(tmp_path):
    truth = write_scenario(tmp_path, "mixed", seed=7, shape=SCEN, n_frames=20)
    scenes = [f.scene for f in truth.frames]
    assert [i for i, s in enumerate(scenes) if s == "dark"] == [4, 9, 14, 19]
    assert {"edges", "texture"} & set(scenes)
    for f in truth.frames:
        if f.dark:
            assert 1 / 60 * 0.79 <= f.exposure <= 60 and f.iso == 800 and f.temperature is not None
    bursts = [f.burst for f in truth.frames if f.burst is not None]
    assert sorted(set(bursts)) == [0, 1] and len(bursts) == 8
    # duplicates: byte-identical copies, not frames of their own
    assert len(truth.duplicates) == 2
    names = {f.file for f in truth.frames}
    for copy, orig in truth.duplicates:
        assert orig in names and copy not in names
        assert (tmp_path / copy).read_bytes() == (tmp_path / orig).read_bytes()
    assert any(c.startswith("backup/") for c, _ in truth.duplicates)
    times = [f.time for f in truth.frames]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_scenario_truth_counts(tmp_path):
    truth = write_scenario(tmp_path, "mixed", seed=8, shape=SCEN, n_frames=10)
    n = len(truth.frames)
    vf, vv = truth.visible_frames, truth.visible_views
    assert vf.shape == vv.shape == (len(truth.defects),)
    assert (vv <= vf).all() and (vf <= n).all() and ((vv > 0) == (vf > 0)).all()
    np.testing.assert_array_equal(truth.must_find, vf >= 0.2 * n)
    stuck = [i for i, d in enumerate(truth.defects) if d.kind is DefectKind.STUCK]
    assert (vf[stuck] >= n - 2).all()  # a stuck photosite shows in nearly every frame
    again = load_truth(tmp_path)
    np.testing.assert_array_equal(again.visible_frames, vf)
    np.testing.assert_array_equal(again.visible_views, vv)
    assert again.duplicates == truth.duplicates and again.file_format == "dng"
    data = json.loads((tmp_path / "truth.json").read_text())
    rec = data["defects"][0]
    assert {"class", "visible_frames", "visible_views", "must_find"} <= set(rec)
    # an older truth file, without the counts
    for r in data["defects"]:
        del r["visible_frames"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_truth(tmp_path / "old.json")
    assert old.visible_frames is None
    with pytest.raises(ValueError, match="visible_frames"):
        _ = old.must_find


def test_scenario_generation_is_fast_and_deterministic(tmp_path):
    import time

    t0 = time.perf_counter()
    a = write_scenario(tmp_path / "a", "mixed", seed=9, shape=(200, 300), n_frames=12)
    assert time.perf_counter() - t0 < 2.0
    b = write_scenario(tmp_path / "b", "mixed", seed=9, shape=(200, 300), n_frames=12)
    assert a.defects == b.defects and a.frames == b.frames
    assert (tmp_path / "a" / "frame_003.dng").read_bytes() == (tmp_path / "b" / "frame_003.dng").read_bytes()


def test_scenario_invalid(tmp_path):
    with pytest.raises(ValueError, match="name must be one of"):
        write_scenario(tmp_path, "sunny")
    with pytest.raises(ValueError, match="n_frames"):
        write_scenario(tmp_path, "brackets", n_frames=3)
    with pytest.raises(ValueError, match="file_format"):
        write_scenario(tmp_path, "mixed", file_format="jpeg2000")
    with pytest.raises(ValueError, match="monochrome"):
        write_scenario(tmp_path, "mono", file_format="dng")
    assert set(SCENARIOS) >= {"brackets", "timelapse", "burst", "darks-same", "darks-mixed", "mixed"}


def test_frame_plan_dark_and_light_in_generate_series(tmp_path):
    t0 = dt.datetime(2024, 1, 1, 12)
    plan = SeriesPlan(
        (
            FramePlan("flat", 0.01, 100, t0, 0.2, 0),
            FramePlan("flat", 0.01, 100, t0 + dt.timedelta(seconds=1), 0.2, 0, (0.0, 0.0), 0.5),
            FramePlan("dark", 1.0, 400, t0 + dt.timedelta(seconds=2), 0.0, None, (0.0, 0.0), 1.0, 30.0),
        )
    )
    truth = generate_series(tmp_path, plan=plan, spec=SMALL, defects=[], clean_dir=tmp_path / "c")
    lv = [np.load(f.clean).astype(float).mean() - 512 for f in truth.frames]
    assert lv[1] / lv[0] == pytest.approx(0.5, rel=0.02)
    assert abs(lv[2]) < 2 and truth.frames[2].temperature == 30.0 and truth.frames[2].dark


# --- scoring -----------------------------------------------------------------------


def test_score_map(tmp_path):
    truth = write_scenario(tmp_path, "darks-same", seed=10, shape=SCEN, n_frames=5)
    must = truth.must_find
    classes = truth.classes()
    wanted = [d for d, m in zip(truth.defects, must) if m]
    assert any(c == "column" for c, m in zip(classes, must) if m) and len(wanted) > 10

    def flag(ds):
        return type("M", (), {"defects": [Defect(d.row, d.col, d.kind, 10.0) for d in ds]})()

    perfect = score_map(flag(wanted), truth)
    assert perfect.recall == 1.0 and perfect.precision == 1.0 and perfect.n_false == 0
    units = perfect.n_must_find
    # one point defect missed
    point = next(d for d, c in zip(wanted, classes) if c != "column")
    s = score_map(flag([d for d in wanted if d is not point]), truth)
    assert s.n_found == units - 1 and s.recall == pytest.approx((units - 1) / units)
    # a segment with only 70 % of its photosites flagged is missed; 85 % is found
    seg = [d for d in wanted if d.kind is DefectKind.COLUMN]
    sid = seg[0].params["segment"]
    members = [d for d in truth.defects if d.params.get("segment") == sid and d.kind is DefectKind.COLUMN]
    others = [d for d in wanted if d.params.get("segment") != sid or d.kind is not DefectKind.COLUMN]
    for share, found in ((0.7, units - 1), (0.85, units)):
        k = int(np.ceil(share * len(members)))
        assert score_map(flag(others + members[:k]), truth).n_found == found
    # false flags lower the precision and are counted by kind
    fake = [
        Defect(0, 0, DefectKind.HOT, 1.0),
        Defect(0, 1, DefectKind.COLUMN, 1.0),
        Defect(1, 0, DefectKind.COLUMN, 1.0),
    ]
    m = type("M", (), {"defects": [*flag(wanted).defects, *fake]})()
    s = score_map(m, truth)
    assert s.n_false == 3 and s.false_by_kind == {"hot": 1, "column": 2}
    assert s.precision == pytest.approx(len(wanted) / (len(wanted) + 3)) and s.recall == 1.0
    assert "recall 1.00" in s.summary()
    empty = score_map(flag([]), truth)
    assert empty.recall == 0.0 and empty.precision == 1.0 and empty.n_flags == 0


def test_within_matches_by_chebyshev_distance_in_chunks():
    """A diagonal neighbour 2 away is within 2 (Chebyshev), 3 away is not; radius 0 is the photosite
    itself; no targets match nothing; more points than one chunk (2,048) give the same answer as one
    by one."""
    from rawmap.testing import within

    targets = np.array([[10, 10], [50, 60]])
    assert within(np.array([[12, 12], [13, 10], [10, 10], [50, 62]]), targets, 2).tolist() == [True, False, True, True]
    assert within(np.array([[10, 11], [50, 60]]), targets, 0).tolist() == [False, True]
    assert within(np.array([[10, 10]]), np.zeros((0, 2), np.int64), 5).tolist() == [False]
    assert within(np.zeros((0, 2), np.int64), targets, 5).shape == (0,)
    rng = np.random.default_rng(4)
    pts = rng.integers(0, 100, (5000, 2))
    want = [bool(np.any(np.abs(targets - p).max(axis=1) <= 3)) for p in pts]
    assert within(pts, targets, 3).tolist() == want and 0 < sum(want) < len(want)


def test_score_map_within_a_radius(tmp_path):
    truth = write_scenario(tmp_path, "darks-same", seed=10, shape=SCEN, n_frames=5)
    points = [d for d, m, c in zip(truth.defects, truth.must_find, truth.classes()) if m and c != "column"]
    planted = {(d.row, d.col) for d in truth.defects}
    # every must-find point flagged one photosite off (where that is no planted defect itself)
    moved = []
    for d in points:
        near = [(d.row + dr, d.col + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
        rc = next(x for x in near if x not in planted and x[0] >= 0 and x[1] >= 0)
        moved.append(Defect(rc[0], rc[1], d.kind, 10.0))
    far = Defect(SCEN[0] - 1, SCEN[1] - 1, DefectKind.HOT, 1.0)
    assert min(max(abs(far.row - r), abs(far.col - c)) for r, c in planted) > 2, "pick another far corner"
    m = type("M", (), {"defects": [*moved, far]})()
    exact = score_map(m, truth)
    assert exact.n_found == 0 and exact.n_false == len(moved) + 1
    near = score_map(m, truth, radius=2)
    assert near.n_found == len(points) and near.n_false == 1  # the segments stay unfound: nothing flagged there
    assert near.precision == pytest.approx(len(moved) / (len(moved) + 1))
    with pytest.raises(ValueError, match="radius"):
        score_map(m, truth, radius=-1)


# --- the subpackage: public names, the deprecated alias, the runtime never imports it ---------------

import ast  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import rawmap  # noqa: E402
import rawmap.testing  # noqa: E402

_REPO = Path(__file__).resolve().parents[1]
_TEST_SUPPORT = ("testing", "synth")


def _runtime_modules() -> list[str]:
    """Every module directly in ``rawmap`` except the test support (``rawmap.testing``, its alias ``rawmap.synth``)."""
    return sorted(m.name for m in pkgutil.iter_modules(rawmap.__path__) if m.name not in _TEST_SUPPORT)


def test_every_public_name_of_the_submodules_is_importable_from_rawmap_testing():
    subs = [m.name for m in pkgutil.iter_modules(rawmap.testing.__path__)]
    assert {"sensor", "defects", "scene", "exposure", "series", "scenarios", "scoring"} <= set(subs)
    exported = set(rawmap.testing.__all__)
    assert len(exported) == len(rawmap.testing.__all__)  # no name listed twice
    for name in subs:
        mod = importlib.import_module(f"rawmap.testing.{name}")
        missing = set(mod.__all__) - exported
        assert not missing, f"rawmap.testing.{name} exports {sorted(missing)}, rawmap.testing does not"
        for attr in mod.__all__:
            assert getattr(rawmap.testing, attr) is getattr(mod, attr)
    for attr in rawmap.testing.__all__:
        assert getattr(rawmap.testing, attr) is not None


def test_runtime_modules_never_import_the_test_support():
    """No import of ``rawmap.testing`` / ``rawmap.synth`` anywhere in a runtime module (functions included)."""
    offenders = []
    for name in _runtime_modules():
        path = Path(rawmap.__path__[0]) / f"{name}.py"
        if not path.is_file():  # a runtime subpackage: check its modules too
            files = sorted((Path(rawmap.__path__[0]) / name).rglob("*.py"))
        else:
            files = [path]
        for f in files:
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    targets = [base] + [f"{base}.{a.name}".lstrip(".") for a in node.names]
                    if node.level:
                        targets = [f"rawmap.{t}".rstrip(".") for t in targets]
                for t in targets:
                    if t.split(".")[:2] in (["rawmap", "testing"], ["rawmap", "synth"]):
                        offenders.append(f"{f.name}:{node.lineno} imports {t}")
    assert len(_runtime_modules()) >= 10
    assert not offenders, offenders


_MAP_WITHOUT_TEST_SUPPORT = r"""
import importlib, json, pkgutil, sys
import rawmap
report, modules, *args = sys.argv[1:]
for name in modules.split(","):
    importlib.import_module("rawmap." + name)
sys.argv = ["rawmap", *args]
from rawmap.__main__ import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(report, "w") as f:
    json.dump({"code": code, "file": rawmap.__file__,
               "modules": sorted(m for m in sys.modules if m.split(".")[0] == "rawmap")}, f)
"""


def test_importing_every_runtime_module_and_mapping_a_series_never_loads_the_test_support(small_series, tmp_path: Path):
    """A fresh interpreter imports every runtime module and runs ``rawmap map`` on a simulated series:
    the map finds the planted defects, and no ``rawmap.testing`` (or ``rawmap.synth``) module was loaded."""
    from conftest import PLANTED

    from rawmap.defectmap import DefectMap

    report, out = tmp_path / "report.json", tmp_path / "m.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MAP_WITHOUT_TEST_SUPPORT,
            str(report),
            ",".join(_runtime_modules()),
            "map",
            str(small_series.folder),
            "-o",
            str(out),
            "-q",
        ],
        cwd=_REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(report.read_text())
    assert rep["code"] in (0, None), proc.stderr
    assert Path(rep["file"]).resolve() == Path(rawmap.__file__).resolve()  # this checkout's package
    loaded = set(rep["modules"])
    assert {"rawmap.cli", "rawmap.mapping", "rawmap.detect", "rawmap.reader", "rawmap.accumulate"} <= loaded
    assert {f"rawmap.{m}" for m in _runtime_modules()} <= loaded
    assert not [m for m in loaded if m.split(".")[1:2] in (["testing"], ["synth"])]
    found = {(d.row, d.col) for d in DefectMap.load(out).defects}
    assert set(PLANTED) <= found


def test_write_oneview_series_from_a_real_raw(tmp_path, samples_dir):
    """The scene is the file's own mosaic: the light falls 4 stops (or the exposure rises 6 with
    ``priority``, dark currents planted); a file that is not a RAW gives None."""
    from rawmap.testing import write_oneview_series

    src = samples_dir / "kodak-dc50.KDC"
    for name in "abc":
        (tmp_path / name).mkdir()
    mosaic, planted = write_oneview_series(src, tmp_path / "a", 4, rows=slice(100, 300))
    assert mosaic.shape[0] == 200 and planted == {}
    frames = [reader.read_frame(p) for p in sorted((tmp_path / "a").glob("tl_*.dng"))]
    assert len(frames) == 4 and frames[0].mosaic.shape == mosaic.shape
    black = float(np.mean(frames[0].black))
    means = [float(f.mosaic.mean()) - black for f in frames]
    assert means[0] / means[-1] == pytest.approx(16.0, rel=0.2)  # 4 stops
    _, hot = write_oneview_series(src, tmp_path / "b", 6, priority=True, hot=5)
    assert 1 <= len(hot) <= 5
    exposures = [reader.read_frame(p).exposure for p in sorted((tmp_path / "b").glob("tl_*.dng"))]
    assert exposures[-1] / exposures[0] == pytest.approx(64.0, rel=1e-3)
    (tmp_path / "d").mkdir()
    _, stuck = write_oneview_series(src, tmp_path / "d", 3, rows=slice(100, 300), stuck=4)
    assert len(stuck) == 4 and all(np.isnan(rate) and seen for rate, seen in stuck.values())
    values = [reader.read_frame(p).mosaic for p in sorted((tmp_path / "d").glob("tl_*.dng"))]
    for r, c in stuck:  # the same value in every frame, while the light fell
        assert len({int(v[r, c]) for v in values}) == 1
    (tmp_path / "x.txt").write_text("not a photo")
    assert write_oneview_series(tmp_path / "x.txt", tmp_path / "c", 4) is None
    with pytest.raises(ValueError):
        write_oneview_series(src, tmp_path / "c", 1)


def test_write_real_brackets_of_the_samples_scenes(tmp_path, samples_dir):
    """Each crop of a sample's mosaic is one view shot at every exposure, 2 stops apart (the longest
    clipping over much of the picture); planted defects are where they were asked for, and visible
    in the frames where they stand out of the scene around them."""
    from rawmap.defectmap import DefectKind
    from rawmap.testing import write_real_brackets

    srcs = [samples_dir / "canon-d30-a.CRW", samples_dir / "nikon-d1.NEF"]
    (tmp_path / "a").mkdir()
    (tmp_path / "clean").mkdir()
    rb = write_real_brackets(
        srcs, tmp_path / "a", shape=(120, 160), per_source=2, defects=8, clean_dir=tmp_path / "clean"
    )
    assert rb.views == ["canon-d30-a.CRW"] * 2 + ["nikon-d1.NEF"] * 2
    assert len(rb.files) == 16 and [p.name for p in rb.files[:2]] == ["br_000.dng", "br_001.dng"]
    frames = [reader.read_frame(p) for p in rb.files[:4]]
    assert [f.exposure for f in frames] == pytest.approx([0.01, 0.04, 0.16, 0.64])
    assert frames[0].mosaic.shape == (120, 160) and frames[0].camera.model == "RealBrackets"
    med = [float(np.median(f.mosaic)) - 512 for f in frames[:3]]
    assert med[1] / med[0] == pytest.approx(4.0, rel=0.15) and med[2] / med[1] == pytest.approx(4.0, rel=0.15)
    assert (frames[3].mosaic >= 16383).mean() > 0.2  # the longest exposure clips
    # the defect-free mosaics: the same frame (same noise) but at the planted photosites
    assert [p.name for p in rb.clean[:2]] == ["br_000.npy", "br_001.npy"] and len(rb.clean) == 16
    clean0 = np.load(rb.clean[0])
    differs = np.argwhere(clean0 != frames[0].mosaic)
    assert {(int(r), int(c)) for r, c in differs} <= {(d.row, d.col) for d in rb.defects} and len(differs) >= 4
    kinds = [d.kind for d in rb.defects]
    assert sorted(kinds, key=lambda k: k.value) == sorted(
        [DefectKind.HOT, DefectKind.STUCK, DefectKind.DEAD, DefectKind.COLD] * 2, key=lambda k: k.value
    )
    for d in rb.defects:
        if d.kind is DefectKind.STUCK:
            assert frames[0].mosaic[d.row, d.col] == round(d.params["value"])
        if d.kind is DefectKind.HOT:
            assert 3000 <= d.params["dark_dn_per_s"] <= 100000
    assert rb.visible_frames.shape == (8,) and rb.visible_frames.max() <= 16
    # a stuck photosite far from the scene's level stands out in most frames
    assert rb.visible_frames[[k is DefectKind.STUCK for k in kinds]].max() >= 8
    assert rb.must_find().dtype == bool
    (tmp_path / "x.txt").write_text("not a photo")
    with pytest.raises(ValueError, match="none of the 1 sources"):
        write_real_brackets([tmp_path / "x.txt"], tmp_path / "a")
    with pytest.raises(ValueError, match="do not fit in 20x20"):
        write_real_brackets(srcs, tmp_path / "a", shape=(20, 20), defects=10)


def test_develop_jpegs_carry_the_dngs_exif_as_a_camera_writes_it(tmp_path, samples_dir):
    """The developed JPEGs of simulated frames say what a camera's JPEG says (make, model, serial,
    capture time, exposure, ISO: the same as the DNG's, read back by rawmap's reader); with
    ``exif=False`` none of it, as a stripped copy."""
    from rawmap.metadata import read_metadata
    from rawmap.testing import develop_jpegs, write_real_brackets

    rb = write_real_brackets([samples_dir / "nikon-d1.NEF"], tmp_path, shape=(120, 160), per_source=1)
    dngs = rb.files[:3]
    for jpg, dng in zip(develop_jpegs(dngs), dngs):
        got, want = reader.read_frame(jpg), reader.read_frame(dng)
        assert got.source is SourceKind.IMAGE and got.mosaic.shape[:2] == want.mosaic.shape
        assert (got.camera.make, got.camera.model, got.camera.serial) == ("Bench", "RealBrackets", "1")
        assert (got.exposure, got.iso, got.time) == (want.exposure, want.iso, want.time)
    assert [reader.read_frame(p).exposure for p in dngs] == pytest.approx([0.01, 0.04, 0.16])
    for jpg in develop_jpegs(dngs, exif=False):
        meta = read_metadata(jpg)
        assert (meta.make, meta.model, meta.exposure, meta.iso, meta.time) == ("", "", None, None, None)


def test_write_real_brackets_handheld(tmp_path, samples_dir):
    """``shake``: each frame of a view is the view's scene moved by an even offset (the colour pattern
    kept) of at most ``shake`` photosites each way, and the planted defects stay on the sensor."""
    from rawmap.defectmap import DefectKind
    from rawmap.testing import write_real_brackets

    srcs = [samples_dir / "nikon-d1.NEF"]
    (tmp_path / "c").mkdir()
    rb = write_real_brackets(
        srcs, tmp_path, shape=(120, 160), per_source=1, defects=4, clean_dir=tmp_path / "c", shake=6
    )
    clean = [np.load(p).astype(np.float64) - 512 for p in rb.clean]
    first = clean[0] / 0.01  # the scene per unit of exposure (noise aside)
    inner = (slice(12, -12), slice(12, -12))

    def mismatch(frame, exposure, dy, dx):  # the frame's scene against the first's moved by (dy, dx)
        lit = frame[inner] < 16383 - 600  # not clipped
        return float(np.median(np.abs(np.roll(first, (dy, dx), axis=(0, 1))[inner] - frame[inner] / exposure)[lit]))

    moved = []
    for frame, exposure in zip(clean[1:], (0.04, 0.16, 0.64)):
        offsets = [(dy, dx) for dy in range(-12, 13) for dx in range(-12, 13)]
        best = min(offsets, key=lambda o: mismatch(frame, exposure, *o))
        assert best[0] % 2 == 0 and best[1] % 2 == 0  # within 2 x 6 of the first frame, the pattern kept
        if best != (0, 0):
            assert mismatch(frame, exposure, *best) < 0.3 * mismatch(frame, exposure, 0, 0)
            moved.append(best)
    assert moved  # a handheld bracket: not every frame where the first was
    for d in rb.defects:  # the defects stay where they were planted, frame after frame
        if d.kind is DefectKind.STUCK:
            assert {int(reader.read_frame(p).mosaic[d.row, d.col]) for p in rb.files} == {round(d.params["value"])}
    with pytest.raises(ValueError, match="even number"):
        write_real_brackets(srcs, tmp_path, shape=(120, 160), shake=3)


def test_develop_through_a_colour_matrix_takes_a_one_colour_defect_out_of_the_other_channels():
    """``develop(matrix=CAMERA_MATRIX)``: a grey field stays grey (each row sums to 1), while a blue
    photosite stuck at white develops blue with red and green at 0, as a real developer's matrix
    makes it (indep-8080's JPEGs); without a matrix its red and green are the neighbours'."""
    from rawmap.testing import CAMERA_MATRIX, SensorSpec, develop

    spec = SensorSpec(24, 24)
    qe = np.asarray(spec.channel_qe)
    plane = np.tile(spec.colour_plane(), (12, 12))
    mosaic = (512 + 1500 * qe[plane]).astype(np.uint16)  # a grey field, the channels' responses
    np.testing.assert_allclose(
        develop(mosaic, spec, matrix=CAMERA_MATRIX).astype(int), develop(mosaic, spec).astype(int), atol=1
    )
    r, c = np.argwhere(plane == 2)[5]
    mosaic[r, c] = spec.white
    plain, matrixed = develop(mosaic, spec)[r, c], develop(mosaic, spec, matrix=CAMERA_MATRIX)[r, c]
    assert plain[2] == matrixed[2] == 255
    assert plain[0] > 50 and plain[1] > 50  # the grey of the neighbours
    assert matrixed[0] == 0 and matrixed[1] == 0
