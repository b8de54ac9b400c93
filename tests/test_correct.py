"""Corrections of mapped photosites that still carry signal (rawmap.correct)."""

from __future__ import annotations

import numpy as np

from rawmap.correct import CorrectionCounts, correct_mosaic
from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from rawmap.frame import CameraId
from rawmap.repair import repair_mosaic

H, W, BLACK, WHITE = 96, 128, 256, 16383
CFA = np.array([[0, 1], [3, 2]])


def _scene(seed: int = 5) -> np.ndarray:
    """A textured defect-free mosaic: gradients, fine waves and noise (real detail at every photosite)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    s = 3000 + 1500 * np.sin(xx / 3.1) * np.cos(yy / 4.3) + 8 * xx + rng.normal(0, 120, (H, W))
    return np.clip(np.rint(s + BLACK), 0, WHITE).astype(np.uint16)


def _map(defects: list[Defect]) -> DefectMap:
    sensor = SensorGeometry(H, W, cfa="RGGB", source="raw")
    return DefectMap(CameraId("Test", "Corrector", "1"), sensor, FrameStats(30), defects)


def _rmse(a: np.ndarray, b: np.ndarray, rc: np.ndarray) -> float:
    d = a[rc[:, 0], rc[:, 1]].astype(np.float64) - b[rc[:, 0], rc[:, 1]]
    return float(np.sqrt(np.mean(d * d)))


def test_a_segment_offset_is_measured_in_the_frame_and_subtracted():
    """A column segment with an offset the map never saw (it scales with ISO): the frame's own offset,
    subtracted, keeps the scene's detail on the column, far closer to the truth than interpolation."""
    truth = _scene()
    given = truth.copy()
    rows = np.arange(20, 80)
    given[rows, 50] += 900  # this frame's offset (the map's mean was 400)
    dmap = _map([Defect(int(r), 50, DefectKind.COLUMN, 99.0, value=400.0) for r in rows])
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    rc = np.stack([rows, np.full(rows.size, 50)], axis=1)
    assert counts.offset >= 0.9 * rows.size and counts.offset + counts.interpolated == rows.size
    assert _rmse(out, truth, rc) < 0.25 * _rmse(interp, truth, rc), (_rmse(out, truth, rc), _rmse(interp, truth, rc))
    assert np.array_equal(out[~dmap.mask()], given[~dmap.mask()])  # nothing outside the map


def test_a_segment_along_a_scene_edge_and_a_thin_line_keeps_its_offset():
    """A column running along a scene's hard edge for most of its length, and along a thin bright line
    that neither side sees: the difference to the mean of its sides is thousands of DN there, and a
    median over the segment was pulled that far (the correction refused, the line interpolated away,
    the error 10x the offset's).  Measured over the photosites whose sides agree, the offset is
    found, and the photosites on the line keep it, which no estimate from the sides can give."""
    rng = np.random.default_rng(11)
    light = np.full((H, W), 900.0)
    light[:, :51] = 5000.0  # a bright wall ending on the column's left side, column included
    light[10:40, :51] = 900.0  # except over the segment's first 30 rows
    light[60:80, 49:52] = 7000.0  # a thin line over the column and its left neighbour only
    truth = np.clip(np.rint(BLACK + light + rng.normal(0, 25, (H, W))), 0, WHITE).astype(np.uint16)
    given = truth.copy()
    rows = np.arange(10, 90)
    given[rows, 50] += 80  # this frame's offset
    dmap = _map([Defect(int(r), 50, DefectKind.COLUMN, 99.0, value=80.0) for r in rows])
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    rc = np.stack([rows, np.full(rows.size, 50)], axis=1)
    assert counts.offset == rows.size, counts
    assert _rmse(out, truth, rc) < 12.0, (_rmse(out, truth, rc), _rmse(interp, truth, rc))
    on_line = rc[(rows >= 60) & (rows < 80)]
    assert _rmse(out, truth, on_line) < 0.02 * _rmse(interp, truth, on_line)


def test_a_segment_in_a_dim_photo_is_corrected_and_one_clipped_at_zero_interpolated():
    """A dim photo (its sides 150 DN above black) whose row segment's negative offset takes it below
    black: still a live segment, corrected (a rule that wanted 2 % of the range above black left every
    dim photo's segments to interpolation); the photosites the offset pushed down to 0 carry no
    signal and keep the interpolated value."""
    rng = np.random.default_rng(12)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    light = 150 + 60 * np.sin(xx / 2.3) * np.cos(yy / 3.1)
    truth = np.clip(np.rint(BLACK + light + rng.normal(0, 12, (H, W))), 0, WHITE).astype(np.uint16)
    given = truth.copy()
    cols = np.arange(10, 110)
    given[40, cols] = np.clip(truth[40, cols].astype(np.int64) - 360, 0, WHITE).astype(np.uint16)
    zero = cols[given[40, cols] == 0]
    assert 3 <= zero.size < cols.size // 2  # (the deepest parts of the scene)
    dmap = _map([Defect(40, int(c), DefectKind.COLUMN, 99.0, value=-360.0) for c in cols])
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    live = np.stack([np.full(cols.size, 40), cols], axis=1)[given[40, cols] > 0]
    assert counts.offset == len(live), counts
    assert _rmse(out, truth, live) < 0.5 * _rmse(interp, truth, live), (
        _rmse(out, truth, live),
        _rmse(interp, truth, live),
    )
    assert np.array_equal(out[40, zero], interp[40, zero])


def test_a_dead_segment_and_a_clipped_one_keep_the_interpolated_values():
    """No common offset (a dead segment follows no scene) or no signal (clipped): interpolation."""
    truth = _scene()
    given = truth.copy()
    given[10:40, 30] = BLACK  # dead
    given[50:80, 90] = WHITE  # clipped by its offset
    defects = [Defect(r, 30, DefectKind.COLUMN, 99.0) for r in range(10, 40)]
    defects += [Defect(r, 90, DefectKind.COLUMN, 99.0) for r in range(50, 80)]
    dmap = _map(defects)
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    assert counts == CorrectionCounts(interpolated=60)
    assert np.array_equal(out, interp)


def test_a_low_gain_photosite_in_texture_is_divided_by_its_gain():
    """Where the neighbours spread far more than a mapped gain's error and the read noise it amplifies,
    the photosite's own signal, divided by the gain, beats every estimate from the neighbours.  The
    photosite collects a share of the light; its read noise comes after, undivided."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    # smooth ramps over three quarters (sky, walls: where the photo's noise shows), fine detail at every
    # photosite in the last (foliage, fabric) that no interpolation can follow
    light = 1500 + 110 * (xx % (W // 4)) + 4 * yy
    light[:, 3 * W // 4 :] += rng.normal(0, 400, (H, W // 4))
    read = rng.normal(0, 30, (H, W))
    truth = np.clip(np.rint(BLACK + light + read), 0, WHITE).astype(np.uint16)
    given = truth.copy()
    sites = [(int(r), int(c)) for r, c in zip(rng.integers(4, H - 4, 40), rng.integers(3 * W // 4 + 2, W - 4, 40))]
    sites = sorted(set(sites))
    gains = rng.uniform(0.2, 0.5, len(sites))
    for (r, c), g in zip(sites, gains):
        given[r, c] = np.uint16(round(BLACK + light[r, c] * g + read[r, c]))
    mapped = gains * rng.uniform(0.98, 1.02, len(sites))  # the map's gains, 2 % off
    dmap = _map([Defect(r, c, DefectKind.COLD, 99.0, value=float(m)) for (r, c), m in zip(sites, mapped)])
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    rc = np.array(sites)
    assert counts.gain >= len(sites) // 3, counts  # (mostly their own signal; the rest blended)
    assert _rmse(out, truth, rc) < 0.6 * _rmse(interp, truth, rc), (_rmse(out, truth, rc), _rmse(interp, truth, rc))
    # under heavy read noise (a high ISO), the amplified noise outweighs the texture: the neighbours weigh more
    noisy = np.clip(np.rint(BLACK + light + 8 * read), 0, WHITE).astype(np.uint16)
    given = noisy.copy()
    for (r, c), g in zip(sites, gains):
        given[r, c] = np.uint16(np.clip(round(BLACK + light[r, c] * g + 8 * read[r, c]), 0, WHITE))
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    out, loud = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    assert loud.gain < counts.gain, (loud, counts)
    assert _rmse(out, noisy, rc) < _rmse(interp, noisy, rc)


def test_a_segment_with_no_usable_side_stays_interpolated_without_a_warning():
    """A column at the sensor's edge whose only side is flagged too: no offset can be measured (and
    nothing may be printed: the command line shows warnings as stray lines)."""
    import warnings

    truth = _scene(3)
    given = truth.copy()
    given[10:60, 0] += 700
    given[10:60, 2] += 700
    dmap = _map(
        [Defect(r, 0, DefectKind.COLUMN, 99.0) for r in range(10, 60)]
        + [Defect(r, 2, DefectKind.COLUMN, 99.0) for r in range(10, 60)]
    )
    interp = repair_mosaic(given, dmap.mask(), CFA, white=WHITE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE)
    assert counts.offset <= 50 and np.array_equal(out[:, 0], interp[:, 0])


def test_a_hot_photosite_loses_its_dark_signal_where_it_is_not_clipped():
    """Warm and hot photosites in texture: value x exposure x ISO/100 subtracted keeps the scene's
    detail (interpolation cannot follow the waves); a clipped one keeps the interpolated value; a map
    made from frames that stated temperatures scales its 20-degree values to the photo's own."""
    truth = _scene(9)
    rng = np.random.default_rng(4)
    sites = [(int(r), int(c)) for r, c in zip(rng.integers(4, H - 4, 40) // 2 * 2, rng.integers(4, W - 4, 40) // 2 * 2)]
    sites = sorted(set(sites))
    rates = rng.uniform(20, 200, len(sites))  # DN/s at ISO 100 and 20 degrees C
    exposure, iso, temp = 2.0, 400.0, 26.5  # dark current x 2 at 26.5 degrees
    given = truth.copy()
    for (r, c), rate in zip(sites, rates):
        given[r, c] = min(WHITE, int(given[r, c]) + int(round(rate * exposure * iso / 100 * 2.0)))
    clipped = sites[0]
    given[clipped] = WHITE
    defects = [Defect(r, c, DefectKind.HOT, 50.0, value=float(v)) for (r, c), v in zip(sites, rates)]
    dmap = _map(defects)
    dmap = DefectMap(dmap.camera, dmap.sensor, FrameStats(30, temperature_min=18.0, temperature_max=30.0), defects)
    mask = dmap.mask()
    interp = repair_mosaic(given, mask, CFA, white=WHITE)
    out, counts = correct_mosaic(
        given, interp, dmap, np.full((2, 2), BLACK), WHITE, mask=mask, exposure=exposure, iso=iso, temperature=temp
    )
    rc = np.array([s for s in sites if s != clipped])
    assert counts.dark >= 0.8 * len(rc), counts
    assert out[clipped] == interp[clipped]
    assert _rmse(out, truth, rc) < 0.3 * _rmse(interp, truth, rc), (_rmse(out, truth, rc), _rmse(interp, truth, rc))
    # without the photo's exposure nothing is subtracted
    _, none = correct_mosaic(given, interp, dmap, np.full((2, 2), BLACK), WHITE, mask=mask)
    assert none.dark == 0


def test_a_strong_dark_current_s_shot_noise_lets_the_neighbours_weigh_more():
    """A dark signal of thousands of DN carries its own shot noise and the map's rate error: in a smooth
    area at a high ISO the neighbours predict the photosite better than its corrected value, and the
    estimate leans to them; the same photosites in fine detail lean to their own corrected value."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    light = 800 + 30 * (xx % (W // 4)) + 5 * yy  # smooth ramps: the photo's noise shows
    light[:, 3 * W // 4 :] += np.abs(rng.normal(0, 1500, (H, W // 4)))  # fine detail in the last quarter
    k = 4.0  # DN per electron (a high ISO)
    truth = np.clip(np.rint(BLACK + rng.poisson(light / k) * k + rng.normal(0, 8, (H, W))), 0, WHITE)
    sites = sorted({(int(r), int(c)) for r, c in zip(rng.integers(4, H - 4, 60), rng.integers(4, W - 4, 60))})
    rates = rng.uniform(800, 1500, len(sites))  # DN/s at ISO 100
    exposure, iso = 1.0, 400.0
    given = truth.copy()
    for (r, c), rate in zip(sites, rates):
        dark = rate * exposure * iso / 100
        given[r, c] = min(WHITE, given[r, c] + rng.poisson(dark / k) * k)  # its shot noise
    given = given.astype(np.uint16)
    truth = truth.astype(np.uint16)
    mapped = rates * rng.uniform(0.98, 1.02, len(sites))
    dmap = _map([Defect(r, c, DefectKind.HOT, 50.0, value=float(v)) for (r, c), v in zip(sites, mapped)])
    mask = dmap.mask()
    interp = repair_mosaic(given, mask, CFA, white=WHITE)
    out, counts = correct_mosaic(
        given, interp, dmap, np.full((2, 2), BLACK), WHITE, mask=mask, exposure=exposure, iso=iso
    )
    own = given.astype(np.float64)
    for (r, c), v in zip(sites, mapped):
        own[r, c] -= v * exposure * iso / 100
    smooth = np.array([s for s in sites if s[1] < 3 * W // 4 - 2])
    detail = np.array([s for s in sites if s[1] >= 3 * W // 4 + 2])
    for rc in (smooth, detail):  # weighed by their expected errors, the two together beat either alone
        errors = [_rmse(x, truth, rc) for x in (out, interp, own)]
        assert errors[0] < min(errors[1:]), (counts, errors)
    assert _rmse(out, truth, smooth) < 0.8 * _rmse(interp, truth, smooth)
    assert counts.dark + counts.interpolated == len(sites)


def test_a_blinking_photosite_keeps_its_value_in_its_normal_state():
    """A blinking photosite reads as a normal one in its normal state and jumps far beyond the noise in
    the other: kept as read where it agrees with the interpolation, interpolated where it jumped."""
    truth = _scene(13)
    rng = np.random.default_rng(2)
    sites = sorted({(int(r), int(c)) for r, c in zip(rng.integers(4, H - 4, 60), rng.integers(4, W - 4, 60))})
    high = rng.random(len(sites)) < 0.4  # in the high state in this frame
    given = truth.copy()
    for (r, c), up in zip(sites, high):
        if up:
            given[r, c] = min(WHITE, int(given[r, c]) + 3000)
    dmap = _map([Defect(r, c, DefectKind.NOISY, 50.0, value=12.0) for r, c in sites])
    mask = dmap.mask()
    interp = repair_mosaic(given, mask, CFA, white=WHITE)
    out, counts = correct_mosaic(given, interp, dmap, np.full((2, 2), float(BLACK)), WHITE, mask=mask)
    rc = np.array(sites)
    normal, jumped = rc[~high], rc[high]
    assert np.array_equal(out[jumped[:, 0], jumped[:, 1]], interp[jumped[:, 0], jumped[:, 1]])
    kept = out[normal[:, 0], normal[:, 1]] == given[normal[:, 0], normal[:, 1]]
    assert kept.mean() >= 0.6 and counts.kept == int(kept.sum()), (kept.mean(), counts)
    assert _rmse(out, truth, rc) < 0.8 * _rmse(interp, truth, rc), (_rmse(out, truth, rc), _rmse(interp, truth, rc))
    assert np.array_equal(out[~mask], given[~mask])
