"""Accumulator: exact sums against numpy on the stacked frames, merge, state files, scenes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from rawmap.accumulate import Accumulator, DetectionParams
from rawmap.errors import FrameMismatchError, MapFormatError
from rawmap.frame import CameraId, Frame

CFA = np.array([[0, 1], [3, 2]], dtype=np.uint8)
CAM = CameraId("Testco", "TC-1", "0001")
BLACK, WHITE = 512, 16383


def scene(rng, H, W, level):
    yy, xx = np.mgrid[0:H, 0:W]
    s = level * (1 + 0.4 * np.sin(xx / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(3, 9)))
    return s


def make_frame(m, i=0, exposure=0.01, iso=100, camera=CAM, black=BLACK, white=WHITE):
    return Frame(
        path=f"f{i}.dng",
        mosaic=m,
        cfa=CFA,
        black=np.full(4, float(black)),
        white=white,
        exposure=exposure,
        iso=iso,
        time=dt.datetime(2025, 1, 1) + dt.timedelta(hours=i),
        camera=camera,
    )


def series(seed=0, n=8, H=24, W=30, clip_some=True):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        img = scene(rng, H, W, rng.uniform(500, 4000)) + BLACK + rng.normal(0, 5, (H, W))
        if clip_some and i % 3 == 0:
            img[5:8, 10:14] = WHITE + 100  # a clipped highlight
        m = np.clip(np.round(img), 0, WHITE).astype(np.uint16)
        frames.append(
            make_frame(m, i, exposure=float(rng.choice([0.001, 0.01, 1.0, 10.0])), iso=float(rng.choice([100, 800])))
        )
    return frames


def neighbour_sum(m, clip=None):
    """Sum of the four same-colour neighbours, missing ones replaced by the opposite one (and, with
    ``clip``, one of two opposite ones at or above it replaced by the other)."""
    m = m.astype(np.int64)
    H, W = m.shape
    i = np.arange(H)
    j = np.arange(W)
    up = np.where(i >= 2, i - 2, i + 2)
    dn = np.where(i + 2 < H, i + 2, i - 2)
    lf = np.where(j >= 2, j - 2, j + 2)
    rt = np.where(j + 2 < W, j + 2, j - 2)
    parts = [m[up], m[dn], m[:, lf], m[:, rt]]
    if clip is not None:
        for k in (0, 2):
            a, b = parts[k], parts[k + 1]
            ca, cb = a >= clip, b >= clip
            parts[k], parts[k + 1] = np.where(ca & ~cb, b, a), np.where(cb & ~ca, a, b)
    return parts[0] + parts[1] + parts[2] + parts[3], tuple(parts)


def expected(frames, acc):
    clip = acc.clip
    s_v = np.zeros(acc.shape, np.int64)
    s_r = np.zeros(acc.shape, np.int64)
    s_xr = np.zeros(acc.shape, np.float64)
    s_zz = np.zeros(acc.shape, np.float64)
    n_inv = np.zeros(acc.shape, np.int64)
    s_xi = np.zeros(acc.shape, np.float64)
    s_xxi = np.zeros(acc.shape, np.float64)
    stack = np.stack([f.mosaic for f in frames]).astype(np.int64)
    for f, rec in zip(frames, acc.frames):
        v = f.mosaic.astype(np.int64)
        s4, parts = neighbour_sum(v, clip if rec.kind == "dark" else None)  # darks: a clipped one stood in for
        invalid = np.zeros(acc.shape, bool)
        for p in parts:
            invalid |= p >= clip
        r = 4 * v - s4
        ok = ~invalid
        n_inv += invalid
        s_xi += np.where(invalid, rec.x, 0.0)
        s_xxi += np.where(invalid, rec.x * rec.x, 0.0)
        s_v += np.where(ok, v, 0)
        s_r += np.where(ok, r, 0)
        s_xr += np.where(ok, r * rec.x, 0.0)
        level = np.maximum(s4 / 4.0 - BLACK, 0)
        s_zz += np.where(ok, r.astype(float) ** 2 / (rec.noise_a + rec.noise_b * level), 0.0)
    return dict(
        s_v=s_v,
        s_r=s_r,
        s_xr=s_xr,
        s_zz=s_zz,
        n_invalid=n_inv,
        s_xi=s_xi,
        s_xxi=s_xxi,
        vmin=stack.min(0),
        vmax=stack.max(0),
    )


def test_sums_are_exact_against_numpy():
    frames = series()
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    exp = expected(frames, acc)
    for name in ("s_v", "s_r", "n_invalid", "vmin", "vmax"):
        np.testing.assert_array_equal(getattr(acc, name).astype(np.int64), exp[name], err_msg=name)
    np.testing.assert_allclose(acc.s_xr, exp["s_xr"], rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(acc.s_zz, exp["s_zz"], rtol=1e-4, atol=1e-4)
    # the x of the frames each photosite skipped (its dark-current regression's own x sums)
    np.testing.assert_allclose(acc.s_xi, exp["s_xi"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(acc.s_xxi, exp["s_xxi"], rtol=1e-6, atol=1e-6)
    assert acc.n_frames == len(frames)
    assert acc.n_invalid.max() > 0  # the clipped highlight invalidated its neighbours' frames
    assert acc.s_xi[acc.n_invalid > 0].min() > 0 and not acc.s_xi[acc.n_invalid == 0].any()
    assert acc.sum_x == pytest.approx(sum(r.x for r in acc.frames))


def _merged_and_whole(frames, k):
    """(frames[:k] merged with frames[k:], all frames in one accumulator)."""
    a, b, c = (Accumulator.from_frame(frames[0]) for _ in range(3))
    for f in frames[:k]:
        a.update(f)
    for f in frames[k:]:
        b.update(f)
    for f in frames:
        c.update(f)
    a += b
    return a, c


def test_merge_equals_union():
    frames = series(seed=3, n=10)
    a, c = _merged_and_whole(frames, 4)
    c.close_scene()  # merging closed the open bursts of a and b; close c's too
    for name in ("s_v", "s_r", "n_invalid", "vmin", "vmax", "s_hi", "s_lo"):
        np.testing.assert_array_equal(getattr(a, name), getattr(c, name), err_msg=name)
    np.testing.assert_allclose(a.s_xr, c.s_xr, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(a.s_zz, c.s_zz, rtol=1e-5, atol=1e-4)
    for name in ("s_xi", "s_xxi"):
        np.testing.assert_allclose(getattr(a, name), getattr(c, name), rtol=1e-6, err_msg=name)
    assert (a.n_frames, a.n_scenes, len(a.frames)) == (c.n_frames, c.n_scenes, len(c.frames))
    assert [f.scene for f in a.frames] == [f.scene for f in c.frames]  # b's scenes numbered after a's
    assert a.sum_x == pytest.approx(c.sum_x) and a.sum_xx == pytest.approx(c.sum_xx)


def test_merge_refuses_other_body():
    frames = series(n=3)
    a = Accumulator.from_frame(frames[0])
    other = make_frame(frames[0].mosaic, camera=CameraId("Testco", "TC-1", "9999"))
    b = Accumulator.from_frame(other)
    with pytest.raises(FrameMismatchError, match="cannot merge"):
        a.merge(b)


def test_update_refuses_mismatched_frames():
    frames = series(n=2)
    acc = Accumulator.from_frame(frames[0])
    with pytest.raises(FrameMismatchError, match="taken by"):
        acc.update(make_frame(frames[0].mosaic, camera=CameraId("Other", "X", "1")))
    with pytest.raises(FrameMismatchError, match="this body's series is 24x30"):
        acc.update(make_frame(frames[0].mosaic[:20]))
    assert acc.n_frames == 0


def test_state_round_trip(tmp_path):
    frames = series(seed=5, n=6)
    acc = Accumulator.from_frame(frames[0], params=DetectionParams(k=5.5))
    for f in frames:
        acc.update(f)
    path = acc.save(tmp_path / "body.rawstate")
    back = Accumulator.load(path)
    for name in Accumulator._ARRAYS + ("fs_index", "fs_time"):
        np.testing.assert_array_equal(getattr(back, name), getattr(acc, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(acc, name).dtype
    assert back.params.k == 5.5 and back.camera == CAM and back.n_frames == 6
    assert [f.to_dict() for f in back.frames] == [f.to_dict() for f in acc.frames]
    with pytest.raises(Exception, match="already exists"):
        acc.save(path)
    # continuing the loaded state equals continuing the original
    more = series(seed=6, n=2)
    for f in more:
        back.update(f)
        acc.update(f)
    np.testing.assert_array_equal(back.s_r, acc.s_r)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_load_refuses_garbage(tmp_path, content):
    p = tmp_path / "x.rawstate"
    p.write_bytes(content)
    with pytest.raises(MapFormatError, match="x.rawstate"):
        Accumulator.load(p)


def test_integer_sums_widen_before_overflow():
    acc = Accumulator((8, 8), cfa=CFA, black=np.full(4, 0.0), white=65535, camera=CAM)
    assert acc.n_invalid.dtype == acc.s_hi.dtype == acc.s_lo.dtype == np.uint8
    acc.n_invalid[0, 0] = acc.s_hi[1, 1] = 200
    acc.reserve(300)  # frame and scene counts pass 255
    assert acc.n_invalid.dtype == acc.s_hi.dtype == acc.s_lo.dtype == np.uint16
    assert acc.n_invalid[0, 0] == acc.s_hi[1, 1] == 200
    assert acc.s_r.dtype == np.int32
    acc._ensure_capacity(10_000)  # 10k frames of 4 x 65535 residual would overflow int32
    assert acc.s_r.dtype == np.int64
    acc._ensure_capacity(70_000)
    assert acc.s_v.dtype == np.uint64 and acc.n_invalid.dtype == np.uint32 and acc.s_lo.dtype == np.uint32


def flat_frame(rng, i, level=2000.0, hot=None, star=None, exposure=1.0):
    H, W = 40, 48
    img = np.full((H, W), level) + BLACK + rng.normal(0, 8, (H, W))
    if hot is not None:
        img[hot] += 800
    if star is not None:
        yy, xx = np.mgrid[0:H, 0:W]
        img += 3000 * np.exp(-((yy - star[0]) ** 2 + (xx - star[1]) ** 2) / (2 * 1.0**2))
    return make_frame(np.clip(np.round(img), 0, WHITE).astype(np.uint16), i, exposure=exposure)


def test_hot_pixel_counts_not_its_shadows():
    rng = np.random.default_rng(1)
    acc = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    for i in range(4):
        acc.update(flat_frame(rng, i, level=1000 + 500 * i, hot=(20, 21)))
    acc.close_scene()
    assert acc.s_hi[20, 21] == 4
    # the same-colour neighbours look dark next to it; they are shadows, not outliers
    for r, c in ((18, 21), (22, 21), (20, 19), (20, 23)):
        assert acc.s_lo[r, c] == 0
    assert acc.s_hi.sum() == 4 and acc.s_lo.sum() == 0
    first = acc.first_seen(np.array([20]), np.array([21]))[0]
    assert first == dt.datetime(2025, 1, 1)


@pytest.mark.parametrize("level, sigma", [(1000, 5), (8000, 40), (0, 4)])
def test_noise_fit_of_a_flat_field(level, sigma):
    """One level only (a flat field, a dark frame): the fitted variance at that level is the
    measured one, not a slope fitted on noise: between 16 sigma^2 (4 v - sum4 with the
    neighbour sum fixed, as in a narrow level bin) and 20 sigma^2 (sum free)."""
    rng = np.random.default_rng(level)
    m = np.round(BLACK + level + rng.normal(0, sigma, (400, 600))).astype(np.uint16)
    acc = Accumulator.from_frame(make_frame(m))
    prep = acc.prepare(make_frame(m))
    var = prep.noise_a + prep.noise_b * level
    assert 0.9 * 16 * sigma**2 < var < 1.1 * 20 * sigma**2


@pytest.mark.parametrize("W, col", [(71, 66), (136, 124), (130, 122)])
def test_kernel_reports_candidates_anywhere_in_the_row(W, col):
    """Outliers and line candidates are found at the border columns, in every byte of a word,
    and in the photosites after the last whole 8-photosite word (W not a multiple of 8 or 64)."""
    rng = np.random.default_rng(W)
    H = 40
    m = np.round(BLACK + 1000 + rng.normal(0, 5, (H, W))).astype(np.uint16)
    hot = [(10, W - 1), (11, W - 3), (20, 1), (21, 0), (5, 8), (6, 15), (7, 63), (8, 64)]
    for i, j in hot:
        m[i, j] += 400
    m[14:34, col] += 60  # a bright column segment (at 66: after the last whole word)
    acc = Accumulator.from_frame(make_frame(m))
    prep = acc.prepare(make_frame(m))
    for band in range(acc.N_BANDS):
        acc.fold(prep, band)
    found = np.concatenate(prep.found)
    got = {divmod(int(c) - 1, W) for c in found if c > 0}
    segment = {(i, col) for i in range(14, 34)}
    assert set(hot) <= got and got - set(hot) <= segment  # the segment's sites are outliers too
    lines = np.concatenate(prep.lines)
    col_cands = {divmod(int(c) // 4, W) for c in lines if c % 4 == 0}  # bright, across a column
    assert {(i, col) for i in range(16, 32)} <= col_cands  # the segment's interior, every row
    assert {j for _, j in col_cands} == {col}


def test_star_is_not_an_isolated_outlier():
    rng = np.random.default_rng(2)
    acc = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    stars = [(20 + 3 * i, 15 + 4 * i) for i in range(3)]
    for i, star in enumerate(stars):
        acc.update(flat_frame(rng, i, level=300 + 100 * i, star=star))
    acc.close_scene()
    # the star's centre lights its neighbours: never an isolated outlier
    for star in stars:
        assert acc.s_hi[star] == 0
    # faint ring photosites may pass once, but never in two scenes (classification needs two)
    assert acc.s_hi.max() <= 1


def scene_frame(rng, i, scene, gain=1.0, hot=None, detail=None, exposure=1.0):
    """A textured view ``scene`` (the same picture for the same number) at exposure ``gain``, new noise."""
    H, W = 40, 48
    texture = np.random.default_rng(1000 + scene).uniform(200, 3000, (H // 16 + 1, W // 16 + 1))
    img = np.kron(texture, np.ones((16, 16)))[:H, :W] * gain + BLACK
    if detail is not None:  # a static single-photosite detail of this view
        img[detail] += 900 * gain
    img += rng.normal(0, 8, (H, W))
    if hot is not None:
        img[hot] += 800
    return make_frame(np.clip(np.round(img), 0, WHITE).astype(np.uint16), i, exposure=exposure)


def test_one_view_counts_once_whatever_its_exposure_and_order():
    """A burst, a bracket 2 stops apart, and a view that comes back later are one view each;
    darks have no view and count one by one; static detail of a view counts once."""
    rng = np.random.default_rng(4)
    acc = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    i = 0
    for _ in range(3):  # view 1: a burst
        acc.update(scene_frame(rng, i, 1, hot=(10, 10), detail=(24, 25), exposure=0.5))
        i += 1
    for g in (0.25, 1.0, 4.0):  # view 2: a bracket at three exposures
        acc.update(scene_frame(rng, i, 2, gain=g / 2, hot=(10, 10), detail=(20, 21), exposure=0.1 * g))
        i += 1
    for _ in range(2):  # lens-cap darks
        acc.update(flat_frame(rng, i, level=0, hot=(10, 10), exposure=30))
        i += 1
    acc.update(scene_frame(rng, i, 1, gain=3.0, hot=(10, 10), detail=(24, 25), exposure=2))
    i += 1  # view 1 again
    acc.close_scene()
    assert [f.kind for f in acc.frames] == ["photo"] * 6 + ["dark"] * 2 + ["photo"]
    assert [f.scene for f in acc.frames] == [1, 1, 1, 2, 2, 2, 3, 4, 1]
    assert acc.n_scenes == 4
    assert acc.s_hi[10, 10] == 4  # two views and two darks
    assert acc.s_hi[24, 25] == 1 and acc.s_hi[20, 21] == 1  # static detail: once per view


def _handheld_scene(scene, H=160, W=240, pad=16, cell=24):
    """A view's scene (the same for the same number) with room to be moved ``pad`` photosites each way,
    its detail at the scale of ``cell`` photosites."""
    rng = np.random.default_rng(2000 + scene)
    cells = rng.uniform(300, 3000, ((H + 2 * pad) // cell + 2, (W + 2 * pad) // cell + 2))
    img = np.kron(cells, np.ones((cell, cell)))
    box = np.ones(cell) / cell  # smoothed as optics do
    img = np.apply_along_axis(np.convolve, 0, img, box, mode="same")
    img = np.apply_along_axis(np.convolve, 1, img, box, mode="same")
    return img[cell // 2 : cell // 2 + H + 2 * pad, cell // 2 : cell // 2 + W + 2 * pad]


def _handheld_views(scenes, shots, params, seed, *, pad=16, recent=True):
    """The view numbers of frames cut from ``scenes`` (by number) at ``shots``: (scene, dy, dx) each,
    moved from the centre (even: the CFA kept), with new noise; ``recent`` False hides the view of the
    frame before from the moved search."""
    rng = np.random.default_rng(seed)
    acc = Accumulator((160, 240), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM, params=params)
    if not recent:
        acc.views.recent = lambda: None  # type: ignore[method-assign]
    for i, (s, dy, dx) in enumerate(shots):
        img = scenes[s][pad + dy : pad + dy + 160, pad + dx : pad + dx + 240] + BLACK
        img = img + rng.normal(0, 8, img.shape)
        acc.update(make_frame(np.clip(np.round(img), 0, WHITE).astype(np.uint16), i))
    acc.close_scene()
    return [f.scene for f in acc.frames]


def test_handheld_frames_of_one_view_count_once():
    """Frames of one view moved by up to a signature block (a handheld bracket or burst: each frame a few
    photosites off) are one view, as in place; other scenes stay views of their own.  Without the
    moved search (``view_shift`` 0) the 10 frames of these three views counted as 4."""
    rng = np.random.default_rng(12)
    # a 160 x 240 frame's signature blocks are 8 photosites: frames up to 4 off the centre are up to a
    # block apart
    scenes = {s: _handheld_scene(s) for s in (1, 2, 3)}
    shots = [
        (s, *((0, 0) if k == 0 else (2 * rng.integers(-2, 3, 2)).tolist()))
        for s, n in ((1, 5), (2, 4), (3, 1))
        for k in range(n)
    ]
    assert _handheld_views(scenes, shots, DetectionParams(), 12) == [1] * 5 + [2] * 4 + [3]
    assert len(set(_handheld_views(scenes, shots, DetectionParams(view_shift=0.0), 12))) > 3


def test_handheld_frames_a_block_apart_join_the_view_before_them():
    """Frames a block apart may correlate little in place (under ``view_shift_floor``): the view the
    frame before joined is searched moved by up to ``view_shift`` blocks whatever its in-place
    correlation.  Without the view before among those searched, or without the search, the same frames
    count as more views."""
    scenes = {s: _handheld_scene(s, cell=8) for s in (1, 2, 3)}  # detail a block wide
    # a signature block is 8 photosites here: consecutive frames 8 apart each way
    shots = [(s, dy, dx) for s in (1, 2, 3) for dy, dx in ((4, 4), (-4, -4), (4, -4), (-4, 4))]
    assert _handheld_views(scenes, shots, DetectionParams(), 21) == [1] * 4 + [2] * 4 + [3] * 4
    assert len(set(_handheld_views(scenes, shots, DetectionParams(view_shift=0.0), 21))) > 3
    assert len(set(_handheld_views(scenes, shots, DetectionParams(), 21, recent=False))) > 3


def test_a_view_whose_light_changes_unevenly_stays_one_view():
    """A still view at one exposure whose daylight falls 0.8 x a frame while its lamps stay lit (a city
    at dusk): in its last frames the dim blocks' order is noise and the lamps', and a frame ranks only
    0.83-0.88 like the one before, under ``view_corr``, so it started a view of its own.  Its detail,
    gradients aside, is the frame before's (Pearson 1.0): it joins that view.  Without the rule
    (``view_follow_corr`` above 1) the last two frames are views 2 and 3.  A different scene of the
    same layout right after, 0.9 alike in place but not in detail, is a view of its own."""
    from rawmap.accumulate.views import Views, _correlation, _finite_detail_correlation

    rng = np.random.default_rng(5)
    h, w = 20, 30
    scene = np.kron(rng.uniform(0.5, 1.5, (10, 15)), np.ones((2, 2)))
    lamps = np.zeros((h, w))
    lamps[rng.integers(0, h, 30), rng.integers(0, w, 30)] = 1.0
    frames = [1000 * 0.8**t * scene + 400 * lamps + rng.normal(0, 1.0, (h, w)) for t in range(24)]
    assert _correlation(frames[23], frames[22]) < 0.9 <= _finite_detail_correlation(frames[23], frames[22])

    def joined(params, series):
        views, ids = Views(params), []
        for f in series:
            view, _ = views.join(f, np.ones_like(f), False, max(ids, default=0) + 1)
            ids.append(view.scene)
        return ids

    assert joined(DetectionParams(), frames) == [1] * 24
    assert joined(DetectionParams(view_follow_corr=2.0), frames) == [1] * 22 + [2, 3]
    layout = np.linspace(4.0, 1.0, h)[:, None] * np.ones((1, w))
    a, b = (1000 * layout * np.kron(rng.uniform(0.8, 1.2, (10, 15)), np.ones((2, 2))) for _ in range(2))
    assert _correlation(a, b) >= 0.8 and _finite_detail_correlation(a, b) < 0.5
    assert joined(DetectionParams(), [a, b]) == [1, 2]


def test_a_brackets_clipped_longest_exposure_joins_its_view():
    """A frame clipped over most of its signature (a bracket's longest exposure) whose few unclipped blocks
    rank like its view's only 0.8 alike (the real scenes' brackets: 0.62-0.89) joins the view it resembles
    by 0.75 and by 0.15 more than any other, and the view keeps its signature; without that rule
    (``view_clipped_corr`` above 1) and the next ones (``view_clipped_recent``, ``view_clipped_detail``)
    it is a view of its own."""
    from rawmap.accumulate.views import Views, _correlation

    rng = np.random.default_rng(4)
    own = np.kron(rng.uniform(0, 1000, (10, 15)), np.ones((2, 2))) + rng.normal(0, 20, (20, 30))
    other = np.kron(rng.uniform(0, 1000, (10, 15)), np.ones((2, 2)))
    bright = own * 8 + rng.normal(0, 700, own.shape)  # its unclipped blocks, disturbed near the clip
    bright[own > np.quantile(own, 0.3)] = np.nan  # 70 % of the blocks clipped
    assert 0.75 <= _correlation(bright, own) < 0.9
    off = DetectionParams(view_clipped_corr=2.0, view_clipped_recent=2.0, view_clipped_detail=2.0)
    for params, scene in ((DetectionParams(), 1), (off, 3)):
        views = Views(params)
        views.join(own, np.ones_like(own), False, 1)
        views.join(other, np.ones_like(other), False, 2)
        view, _ = views.join(bright, np.ones_like(own), False, 3)
        assert view.scene == scene
        assert np.array_equal(views.sigs[1], own)  # the view keeps the signature its next frames match


def test_a_handheld_brackets_clipped_longest_exposure_joins_the_view_before_it():
    """A mostly clipped frame moved off its view (its few unclipped blocks 0.5-0.75 alike in place) joins
    the view the frame before it joined when it resembles that view the most of all, by
    ``view_clipped_recent``; not when the frame before joined another view, nor below that bar.  A frame
    with too few unclipped blocks to compare joins the view of the frame before."""
    from rawmap.accumulate.views import Views, _correlation

    rng = np.random.default_rng(8)
    own = np.kron(rng.uniform(0, 1000, (10, 15)), np.ones((2, 2))) + rng.normal(0, 20, (20, 30))
    other = np.kron(rng.uniform(0, 1000, (10, 15)), np.ones((2, 2)))
    bright = own * 8 + rng.normal(0, 1000, own.shape)  # far off near the clip: 0.5-0.75 alike
    bright[own > np.quantile(own, 0.3)] = np.nan
    c = _correlation(bright, own)
    assert 0.5 <= c < 0.75 and _correlation(bright, other) < c

    def joined(order, params=DetectionParams()):
        views = Views(params)
        for scene, sig in order:  # the last one here is the view the frame before joined
            view, _ = views.join(sig, np.ones_like(sig), False, scene)
            views.touch(view, float("nan"))
        return views.join(bright, np.ones_like(own), False, 3)[0].scene

    assert joined([(2, other), (1, own)]) == 1
    assert joined([(1, own), (2, other)]) == 3  # the frame before showed another view
    below = DetectionParams(view_clipped_recent=c + 0.01, view_clipped_detail=2.0)
    assert joined([(2, other), (1, own)], below) == 3
    # clipped nearly everywhere (7 blocks left, too few to compare): the view of the frame before
    white = np.full_like(own, np.nan)
    white[0, :7] = 1000.0
    views = Views(DetectionParams())
    for scene, sig in ((1, own), (2, other)):
        views.touch(views.join(sig, np.ones_like(sig), False, scene)[0], float("nan"))
    assert views.join(white, np.ones_like(own), False, 3)[0].scene == 2
    assert np.array_equal(views.sigs[2], other)


def test_a_move_does_not_join_noisy_signatures_alike_only_in_their_glow(monkeypatch):
    """Two signatures of one smooth glow with noise of their own (lens-cap darks' JPEGs: 0.85-0.87 alike
    in place) correlate above 0.9 moved a fraction of a block, the neighbouring blocks averaged: the
    mirrored placement gains as much, so the move does not count."""
    from rawmap.accumulate import views

    yy, xx = np.mgrid[0:24, 0:36]
    glow = 50 * np.exp(-(yy + xx) / 8.0)
    rng = np.random.default_rng(5)
    pairs = [(glow + rng.normal(0, 0.6, glow.shape), glow + rng.normal(0, 0.6, glow.shape)) for _ in range(6)]
    assert all(0.8 < views._correlation(a, b) < 0.9 for a, b in pairs)
    assert all(views._shifted_correlation(a, b, 1.0) < 0.9 for a, b in pairs)
    monkeypatch.setattr(views, "_MIRROR_MARGIN", -np.inf)  # without the mirrored comparison
    assert max(views._shifted_correlation(a, b, 1.0) for a, b in pairs) >= 0.9


def test_frame_kinds():
    rng = np.random.default_rng(5)
    acc = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    acc.update(scene_frame(rng, 0, 1))
    acc.update(flat_frame(rng, 1, level=0, exposure=30))
    acc.update(flat_frame(rng, 2, level=5000))
    # a dim scene (under 2 % of the range) with detail between neighbouring blocks is still a scene
    texture = np.kron(rng.uniform(0, 250, (10, 12)), np.ones((4, 4)))
    dim = np.clip(np.round(texture + BLACK + rng.normal(0, 8, (40, 48))), 0, WHITE).astype(np.uint16)
    acc.update(make_frame(dim, 3))
    assert [f.kind for f in acc.frames] == ["photo", "dark", "flat", "photo"]
    # darks never join a view, even when they look alike
    acc.update(flat_frame(rng, 4, level=0, exposure=30))
    assert acc.frames[-1].kind == "dark"
    assert len({f.scene for f in acc.frames}) == 5


def test_sparse_records_merge_in_order():
    from rawmap.accumulate.sums import _merge_sorted

    keys, vals = np.array([2, 5, 9], np.int64), np.array([10.0, np.nan, 30.0])
    k, v = _merge_sorted(keys, vals, np.array([9, 1, 5, 7]), np.array([20.0, 1.0, 4.0, np.nan]), np.fmin)
    np.testing.assert_array_equal(k, [1, 2, 5, 7, 9])
    np.testing.assert_array_equal(v, [1.0, 10.0, 4.0, np.nan, 20.0])  # earliest time; NaN means unknown
    k, c = _merge_sorted(np.array([3], np.int64), np.array([2], np.uint32), np.array([3, 4]), np.array([1, 1]), np.add)
    np.testing.assert_array_equal(k, [3, 4])
    np.testing.assert_array_equal(c, [3, 1])
    assert c.dtype == np.uint32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_bins_equal_numpy(seed):
    """The compiled per-bin statistics of the noise fit are numpy's, to the last bit."""
    from rawmap import _kernels

    rng = np.random.default_rng(seed)
    n = int(rng.integers(3000, 6000))
    r = np.round(rng.normal(0, rng.uniform(5, 60), n)) * 4  # integer residuals, many repeats
    lv = np.round(rng.gamma(2.0, 300.0, n))
    edges = np.quantile(lv, np.linspace(0, 1, 17))
    counts, level, q25 = _kernels.level_bins(r, lv, np.sort(lv), edges, 50)
    idx = np.clip(np.searchsorted(edges, lv, side="right") - 1, 0, 15)
    np.testing.assert_array_equal(counts, np.bincount(idx, minlength=16))
    assert counts.sum() == n and (counts >= 50).sum() >= 10
    for b in range(16):
        rb, lb = r[idx == b], lv[idx == b]
        if rb.size < 50:
            assert np.isnan(level[b]) and np.isnan(q25[b])
            continue
        assert level[b] == np.median(lb)
        assert q25[b] == np.quantile(np.abs(rb - np.median(rb)), 0.25)


@pytest.mark.parametrize(
    "blacks, bits", [((512, 512, 512, 512), 14), ((2047, 2048, 2048.5, 2046.25), 14), ((0, 0, 0, 0), 16)]
)
def test_levels_sorted_by_counting_equal_numpy(blacks, bits):
    """Levels sorted by counting their codes, and the bin edges read off them, are numpy's sort
    and quantiles, value for value (one black or four, up to 16-bit sums)."""
    from rawmap import _kernels

    rng = np.random.default_rng(bits)
    black2 = np.array(blacks, np.float32).reshape(2, 2)
    m = rng.integers(0, 2**bits, (64, 96)).astype(np.uint16)
    m[10:20] = rng.integers(1000, 1010, (10, 96))  # a flat patch: many repeated sums
    rows = np.arange(0, 64, 3, dtype=np.int64)
    r, lv, code = _kernels.residual_sample(m, black2, 2**bits, rows, 2)
    assert lv.size > 1000
    got = _kernels.sorted_levels(code, black2)
    np.testing.assert_array_equal(got, np.sort(lv))
    qs = np.linspace(0, 1, 17)
    np.testing.assert_array_equal(_kernels.sorted_quantiles(got, qs), np.quantile(lv, qs))
    wide = np.array([0, 4 * 10**7 + 1], np.int64)  # sums far apart: sorted, not counted
    np.testing.assert_array_equal(_kernels.sorted_levels(wide, black2), [-blacks[0], 2_500_000 - blacks[1]])


@pytest.mark.parametrize("shape", [(32, 32), (33, 61), (127, 129), (400, 600)])
def test_thumbnail_equals_numpy_block_means(shape):
    from rawmap import _kernels

    m = np.random.default_rng(shape[0]).integers(0, 2**16, shape).astype(np.uint16)
    sub = m[::4, ::4]
    h, w = sub.shape[0] // 8 * 8, sub.shape[1] // 8 * 8
    want = sub[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3), dtype=np.float32)
    np.testing.assert_array_equal(_kernels.thumbnail(m), want)


def test_a_lean_shaped_like_a_scene_edge_is_told_from_a_defective_lines():
    """Across a defective line its same-colour neighbours lean half as much the other way; at a step in
    the scene one of them leans as hard or not at all, and at the ends of a soft step neither does."""
    from rawmap import _kernels

    rng = np.random.default_rng(11)
    H, W = 48, 64
    base = 1000.0 + rng.normal(0, 3, (H, W))

    def edge(img, i, j, row_line):
        m = np.clip(np.round(img), 0, 65535).astype(np.uint16)
        v = int(m[i, j])
        across = (int(m[i - 2, j]) + int(m[i + 2, j])) if row_line else (int(m[i, j - 2]) + int(m[i, j + 2]))
        return _kernels._line_edge(m, i, j, row_line, 2 * v - across > 0, H, W)

    js = range(8, W - 8)
    row = base.copy()
    row[24] += 60  # a bright row
    assert not any(edge(row, 24, j, 1) for j in js)
    col = base.copy()
    col[:, 30] -= 40  # a dark column
    assert not any(edge(col, i, 30, 0) for i in range(8, H - 8))
    step = base.copy()
    step[25:] -= 300  # a hard step between rows 24 and 25: row 24 leans bright, row 26 dark
    assert all(edge(step, 24, j, 1) for j in js) and all(edge(step, 26, j, 1) for j in js)
    soft = base.copy()
    soft[23:] -= np.minimum(np.arange(1, H - 22) * 150.0, 600.0)[:, None]  # falling over rows 23..26
    assert all(edge(soft, i, j, 1) for i in (22, 26) for j in js)  # its two ends
    vstep = base.copy()
    vstep[:, 33:] += 250
    assert all(edge(vstep, i, 32, 0) for i in range(8, H - 8))
    # a faint line (its lean about 3 noise sigmas) is rarely taken for an edge
    faint = np.stack([base + rng.normal(0, 3, (H, W)) for _ in range(20)])
    faint[:, 24] += 4
    calls = [edge(f, 24, j, 1) for f in faint for j in js]
    assert np.mean(calls) < 0.05


def test_a_views_line_leans_count_only_where_they_outnumber_its_edge_leans(tmp_path):
    """A view counts a photosite's lean across a line where enough of its frames showed it and more of
    them than showed an edge's lean there (a frame's edge verdict, a negative code, vetoes as many
    frames' leans): a soft scene edge is told in the view's contrasty frame and not in its dim ones."""
    from rawmap.accumulate.views import _OpenView

    rng = np.random.default_rng(0)
    frame = make_frame((BLACK + 100 + rng.normal(0, 3, (24, 30))).astype(np.uint16))
    acc = Accumulator.from_frame(frame)
    acc.update(frame)
    acc.close_scene()
    acc.ln_code, acc.ln_count = np.zeros(0, np.int64), np.zeros(0, np.uint32)
    W = acc.shape[1]
    line = [(10 * W + c) * 4 + 2 for c in (4, 6, 8)]  # bright leans across a row line
    codes = np.array([-line[2] - 1, -line[1] - 1, -line[0] - 1, *line], np.int64)  # sorted, as pended
    counts = np.array([2, 1, 3, 2, 2, 1], np.int64)  # edge verdicts (negative codes), then leans
    acc._open[0] = _OpenView(scene=0, frames=4, pending_lines=[(codes, counts)])
    path = acc.save(tmp_path / "open.rawstate")  # an open view's edge verdicts are kept in a state
    acc = Accumulator.load(path)
    np.testing.assert_array_equal(acc._open[0].pending_lines[0][0], codes)
    acc._close_view(0)
    # (10, 4): 2 leans against 3 edge verdicts; (10, 6): 2 against 1; (10, 8): 1 against 2 (the view needs 1)
    assert acc.ln_code.tolist() == [line[1]] and acc.ln_count.tolist() == [1]


@pytest.mark.parametrize("kind", ["integers", "even count", "half-integers", "wide range", "tiny"])
def test_noise_spread_by_counting_equals_numpy(kind):
    """Median and lower quartile of |r - median| by counting (or by selection where counting
    does not apply) are numpy's, to the last bit."""
    from rawmap import _kernels

    rng = np.random.default_rng(3)
    n = {"even count": 2000, "tiny": 3}.get(kind, 2001)
    r = np.round(rng.normal(0, 25, n)) * 4
    if kind == "half-integers":  # not whole numbers: selection
        r = r + 0.5 * (rng.random(n) < 0.3)
    if kind == "wide range":  # far wider than the sample: selection
        r[0] = 1e9
    med, q25 = _kernels._median_spread(r)
    assert med == np.median(r)
    assert q25 == np.quantile(np.abs(r - np.median(r)), 0.25)


def test_pending_codes_in_kernel_order_are_merged_sorted():
    from rawmap.accumulate.sums import _pend

    # photosite order, dark ones negated (as the kernel emits them), then once more in another frame
    first = _pend([], np.array([-3, 5, -8, 9, 12]))
    np.testing.assert_array_equal(first[0][0], [-8, -3, 5, 9, 12])
    both = _pend(first, np.array([-8, 5, 7]))
    np.testing.assert_array_equal(both[0][0], [-8, -3, 5, 7, 9, 12])
    np.testing.assert_array_equal(both[0][1], [2, 1, 2, 1, 1, 1])
    shuffled = _pend([], np.array([9, -3, 5]))  # not in kernel order: still sorted
    np.testing.assert_array_equal(shuffled[0][0], [-3, 5, 9])


def test_state_saved_inside_a_view_continues_exactly(tmp_path):
    """A view still open when the state is saved stays open: its later frames join it, not count again."""
    rng = np.random.default_rng(6)
    frames = [scene_frame(rng, i, 1, gain=0.5 + 0.25 * i, hot=(10, 10), detail=(24, 25)) for i in range(4)]
    whole = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    for f in frames:
        whole.update(f)
    part = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    for f in frames[:2]:
        part.update(f)
    assert part.closed().s_hi[24, 25] == 1 and part.s_hi[24, 25] == 0  # counted on a copy only
    part.save(tmp_path / "s.rawstate")
    resumed = Accumulator.load(tmp_path / "s.rawstate")
    for f in frames[2:]:
        resumed.update(f)
    a, b = whole.closed(), resumed.closed()
    assert a.n_scenes == b.n_scenes == 1
    for name in ("s_hi", "s_lo", "n_invalid", "s_v", "s_r"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.fs_index, b.fs_index)
    assert a.s_hi[24, 25] == 1 and a.s_hi[10, 10] == 1


# --------------------------------------------------------------------------- hostile state files


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """An .npy header alone: what a file claims before its data."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _rewrite(src, dst, members: dict[str, bytes | None], deflate: tuple[str, ...] = ()):
    """A copy of the state ``src`` with members replaced (``None``: removed), some of them deflated."""
    import zipfile

    with zipfile.ZipFile(src) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    content.update(members)
    with zipfile.ZipFile(dst, "w", allowZip64=True) as zf:
        for name, data in content.items():
            if data is not None:
                zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return dst


def _meta(src, **changes) -> bytes:
    import json
    import zipfile

    with zipfile.ZipFile(src) as zf:
        meta = json.loads(zf.read("meta.json"))
    for key, value in changes.items():
        meta[key] = value(meta) if callable(value) else value
    return json.dumps(meta).encode()


@pytest.fixture(scope="module")
def good_state(tmp_path_factory):
    """A 24x30 state of 8 frames with first-seen and line records, saved with open views (version 1: ``.npy`` sums)."""
    from rawmap.accumulate.state import state_bytes

    frames = series(seed=5, n=6)
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    acc.close_scene()  # first-seen times and line counts recorded
    for f in series(seed=7, n=2):
        acc.update(f)  # views open again, with pending outliers
    path = tmp_path_factory.mktemp("state") / "good.rawstate"
    path.write_bytes(state_bytes(acc, version=1))
    return path


ZEROS_20MB = 20 * 1024 * 1024

HOSTILE_STATES = {
    # meta.json (it was parsed outside the try: tracebacks)
    "meta-not-json": (lambda s: {"meta.json": b"{"}, (), "not JSON"),
    "meta-deep": (lambda s: {"meta.json": b"[" * 1000 + b"]" * 1000}, (), "JSON nested too deeply to read"),
    "meta-shape-text": (lambda s: {"meta.json": _meta(s, shape="24x30")}, (), "shape '24x30' is not a list of 2"),
    "meta-shape-float": (lambda s: {"meta.json": _meta(s, shape=[24.0, 30])}, (), "shape 24.0 is not a whole number"),
    "meta-n-frames": (lambda s: {"meta.json": _meta(s, n_frames="six")}, (), "n_frames 'six' is not a whole number"),
    "meta-frame-record": (
        lambda s: {"meta.json": _meta(s, frames=[{"path": 1}])},
        (),
        "frame record 0: path, time or overflow",
    ),
    "meta-frame-level": (
        lambda s: {
            "meta.json": _meta(s, frames=lambda m: [dict(m["frames"][0], level=[1.0, 2.0, 3.0])] + m["frames"][1:])
        },
        (),
        "frame record 0: level is not a list of 4 numbers",
    ),
    "meta-frame-level-negative": (
        lambda s: {
            "meta.json": _meta(
                s, frames=lambda m: [dict(m["frames"][0], level=[1.0, -2.0, 3.0, 4.0])] + m["frames"][1:]
            )
        },
        (),
        "frame record 0: level below 0",
    ),
    "meta-cfa": (lambda s: {"meta.json": _meta(s, cfa=[[0, 1], [3, 7]])}, (), "cfa 7 is out of range (0 to 3)"),
    "meta-params": (lambda s: {"meta.json": _meta(s, params={"open_views": "8"})}, (), "params.open_views '8'"),
    "meta-huge": (
        lambda s: {"meta.json": b" " * (64 * 1024 * 1024 + 1)},
        ("meta.json",),
        "more than the 67,108,864 rawmap reads",
    ),
    # arrays: a header claiming a huge array, a deflate bomb, out-of-range indices, other dtypes
    "npy-huge-header": (
        lambda s: {"fs_index.npy": _npy_header((10**10,), "<i8") + b"\0" * 64},
        (),
        "fs_index.npy has shape (10000000000,), not (k,), k <= 720",
    ),
    "npy-dense-huge-header": (
        lambda s: {"s_v.npy": _npy_header((100_000, 100_000), "<u4")},
        (),
        "s_v.npy has shape (100000, 100000), not (24, 30)",
    ),
    "deflate-bomb-sparse": (
        lambda s: {"fs_index.npy": _npy_header((ZEROS_20MB // 8,), "<i8") + bytes(ZEROS_20MB)},
        ("fs_index.npy",),
        "fs_index.npy has shape (2621440,), not (k,), k <= 720",
    ),
    "deflate-bomb-dense": (
        lambda s: {"s_v.npy": _npy(np.zeros((24, 30), np.uint32)) + bytes(ZEROS_20MB)},
        ("s_v.npy",),
        "s_v.npy declares 20,974,528 bytes, its header 3,008",
    ),
    "sparse-out-of-range": (
        lambda s: {"fs_index.npy": _npy(np.array([0, 5, 10**6])), "fs_time.npy": _npy(np.zeros(3))},
        (),
        "fs_index.npy holds indices out of order or outside [0, 720)",
    ),
    "sparse-negative": (
        lambda s: {"ln_code.npy": _npy(np.array([-4, 8])), "ln_count.npy": _npy(np.ones(2, np.uint32))},
        (),
        "ln_code.npy holds indices out of order or outside [0, 2880)",
    ),
    "sparse-unsorted": (
        lambda s: {"ln_code.npy": _npy(np.array([8, 4])), "ln_count.npy": _npy(np.ones(2, np.uint32))},
        (),
        "ln_code.npy holds indices out of order",
    ),
    "sparse-mismatch": (
        lambda s: {"fs_index.npy": _npy(np.array([3, 4])), "fs_time.npy": _npy(np.zeros(1))},
        (),
        "fs_index.npy and fs_time.npy have shapes (2,) and (1,)",
    ),
    "complex128": (
        lambda s: {"s_xr.npy": _npy(np.zeros((24, 30), np.complex128))},
        (),
        "s_xr.npy holds complex128, not float32",
    ),
    "object": (lambda s: {"s_zz.npy": _npy(np.zeros((24, 30), object))}, (), "s_zz.npy holds object, not float32"),
    "byte-swapped": (lambda s: {"vmin.npy": _npy(np.zeros((24, 30), ">u2"))}, (), "vmin.npy holds >u2, not uint16"),
    "fortran": (
        lambda s: {"s_r.npy": _npy(np.asfortranarray(np.zeros((24, 30), np.int32)))},
        (),
        "s_r.npy is in Fortran order",
    ),
    "truncated": (lambda s: {"s_v.npy": _npy(np.zeros((24, 30), np.uint32))[:-100]}, (), "s_v.npy declares"),
    "missing": (lambda s: {"vmax.npy": None}, (), "no vmax.npy"),
    "n-invalid": (
        lambda s: {"n_invalid.npy": _npy(np.full((24, 30), 200, np.uint8))},
        (),
        "n_invalid counts more frames than the 8 of the state",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_STATES))
def test_load_refuses_a_hostile_state_in_one_line_before_using_it(good_state, tmp_path, case):
    import tracemalloc

    members, deflate, fragment = HOSTILE_STATES[case]
    path = _rewrite(good_state, tmp_path / f"{case}.rawstate", members(good_state), deflate)
    tracemalloc.start()
    try:
        with pytest.raises(MapFormatError) as exc:
            Accumulator.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and len(msg) < 400, msg
    assert fragment in msg, msg
    # refused before the claimed sizes were allocated or read (numpy's allocations are traced)
    assert peak < (80 << 20 if case == "meta-huge" else 8 << 20), peak


def test_load_still_reads_every_part_of_a_good_state(good_state):
    acc = Accumulator.load(good_state)
    assert acc.shape == (24, 30) and acc.n_frames == 8 and len(acc.frames) == 8
    assert (
        acc.fs_index.size and acc.ln_code.size and acc.view_sigs and acc._open
    )  # every optional part was there to check
    assert any(v.pending for v in acc._open.values())


def test_load_refuses_an_archive_listing_too_many_members_before_listing_them(good_state, tmp_path, monkeypatch):
    import zipfile

    import rawmap.safeio as safeio

    with zipfile.ZipFile(good_state) as zf:
        members = len(zf.namelist())
    assert 20 < members < safeio.MAX_ZIP_MEMBERS == 100_000
    monkeypatch.setattr(safeio, "MAX_ZIP_MEMBERS", members - 1)
    with pytest.raises(MapFormatError) as exc:
        Accumulator.load(good_state)
    assert str(exc.value) == (
        f"{good_state}: not a rawmap state file (the archive lists {members} members, more than the "
        f"{members - 1} rawmap reads)"
    )
    monkeypatch.setattr(safeio, "MAX_ZIP_MEMBERS", members)
    assert Accumulator.load(good_state).n_frames == 8


def test_kernels_compiled_tells_a_first_run(tmp_path):
    """``compiled()`` is False with an empty numba cache (what a fresh install has), True once the fold ran."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from rawmap import _kernels

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", "from rawmap import _kernels; print(_kernels.compiled())"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
    frames = series(seed=3, n=3)
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    assert acc.n_frames == 3
    assert _kernels.compiled()


@pytest.mark.parametrize("shape", [(3, 3), (4, 7), (40, 61)])
def test_median3x3_is_numpys_median_bit_for_bit(shape):
    """The selection network picks exactly the value np.median gives over each 3 x 3 window (edges repeated)."""
    from rawmap.accumulate.views import median3x3

    rng = np.random.default_rng(5)
    grids = [
        rng.normal(0.0, 100.0, shape),
        rng.integers(0, 4, shape).astype(np.float64),  # many ties
        np.round(rng.normal(0.0, 1.0, shape), 1),  # ties and -0.0 (np.median's own path)
    ]
    nan = rng.normal(0.0, 1.0, shape)
    nan[1, 1] = np.nan
    grids.append(nan)
    for g in grids:
        pad = np.pad(g, 1, mode="edge")
        want = np.median(np.lib.stride_tricks.sliding_window_view(pad, (3, 3)).reshape(g.shape + (9,)), axis=2)
        got = median3x3(g)
        assert got.shape == g.shape
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.array_equal(got[~np.isnan(got)].view(np.int64), want[~np.isnan(want)].view(np.int64))


def _hot_darks(n=10, seed=4, H=24, W=30):
    """Darks from 0.1 s to 60 s with hot photosites that clip in the long ones (and one that never does)."""
    rng = np.random.default_rng(seed)
    hot = {(6, 8): 900.0, (12, 20): 150.0, (18, 12): 4.0}  # DN/s at ISO 100
    frames = []
    for i, t in enumerate(np.geomspace(0.1, 60.0, n)):
        img = BLACK + rng.normal(0, 4, (H, W))
        for (r, c), rate in hot.items():
            img[r, c] += rate * t
        m = np.clip(np.round(img), 0, WHITE).astype(np.uint16)
        frames.append(make_frame(m, i, exposure=float(t), iso=100))
    return frames, hot


def test_clipped_outliers_are_kept_apart():
    """A hot photosite's clipped frames: their count, x and residual sums, exactly (4 v - sum4 at white)."""
    frames, hot = _hot_darks()
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    acc = acc.closed()
    for r, c in hot:
        clipped = [(f, rec) for f, rec in zip(frames, acc.frames) if f.mosaic[r, c] >= acc.clip]
        stats = acc.unclipped(np.array([r]), np.array([c]))[0]
        assert stats[0] == len(clipped), (r, c)
        if clipped:
            s4 = np.array([neighbour_sum(f.mosaic)[0][r, c] for f, _ in clipped], float)
            res = 4.0 * np.array([f.mosaic[r, c] for f, _ in clipped], float) - s4
            xs = np.array([rec.x for _, rec in clipped])
            np.testing.assert_allclose(
                stats[1:], [xs.sum(), (xs * xs).sum(), res.sum(), (res * xs).sum(), (xs * xs).sum()]
            )
    assert acc.unclipped(np.array([0]), np.array([0]))[0].tolist() == [0.0] * 6


def test_clipped_outliers_merge_and_survive_a_saved_state(tmp_path):
    frames, _ = _hot_darks()
    a, c = _merged_and_whole(frames, 5)
    assert c.cl_code.size > 0
    np.testing.assert_array_equal(a.cl_code, c.cl_code)
    np.testing.assert_allclose(a.cl_stats, c.cl_stats)
    c.save(tmp_path / "s.rawstate")
    back = Accumulator.load(tmp_path / "s.rawstate")
    np.testing.assert_array_equal(back.cl_code, c.cl_code)
    np.testing.assert_array_equal(back.cl_stats, c.cl_stats)


def test_the_noise_floor_is_the_noise_where_texture_lifts_the_detection_s_model():
    """Smooth ramps over three quarters, fine detail in the last, Poisson noise of 4 DN per electron
    and 8 DN of read noise: the lower envelope of the level bins gives the noise within 1.6x (the
    detail's quarter of each bin lifts its lower quartile), the detection's fit of every bin, which
    must not be tight where texture is, gives more than 2x."""
    from rawmap.accumulate.noise import noise_floor, noise_model

    rng = np.random.default_rng(11)
    h, w = 400, 600
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    light = 200 + 12 * (xx % (w // 4)) + 2 * yy
    light[:, 3 * w // 4 :] += np.abs(rng.normal(0, 1500, (h, w // 4)))
    k, read = 4.0, 8.0
    plane = np.clip(np.rint(256 + rng.poisson(light / k) * k + rng.normal(0, read, (h, w))), 0, 16383)
    plane = plane.astype(np.uint16)
    black2 = np.full((2, 2), 256.0)
    floor = noise_floor(plane, black2, 16383)
    for level in (500.0, 1500.0):
        truth = read**2 + k * level
        assert 0.7 * truth < float(floor.variance(np.array(level))) < 1.6 * truth, (floor, level)
    assert 0.7 * k < floor.shot <= floor.shot_bound < 1.6 * k, floor
    a, b = noise_model(plane, black2, 16383)
    assert (a + b * 1500.0) / 20.0 > 2.0 * (read**2 + k * 1500.0)  # (why repair does not use it)


@pytest.mark.parametrize(
    ("scenario", "seed"),
    [
        ("timelapse", 31),
        ("brackets", 1),
        ("black0", 2027),
        ("black0", 31),
        ("mixed", 4),
        ("mixed", 11),
        ("darks-glow", 4),
    ],
)
def test_frame_kinds_of_generated_series(tmp_path, scenario, seed):
    """Lens-cap darks, flat fields and dim photos told apart, in series where they were not.

    The timelapse's last four frames (a facade at dusk, under 2 % of the
    range, its few edges drowned in the even walls' noise) and a bracket's
    darkest frames were taken for darks; darks on a 12-bit sensor with black
    level 0, whose photosites mostly read 0, for photos.  The blocks that
    stand out the same way in both samplings tell a dim photo from a dark
    only: a flat field's dust shadows do that too (the mixed series' flats
    of seeds 4 and 11 became photos when the test applied to every frame).
    Darks whose corner glows (``darks-glow``: clipped there, fading over a
    third of the frame) were all taken for photos, each a view of its own.
    """
    from rawmap.mapping import collect_inputs, map_files
    from rawmap.testing import write_scenario

    truth = write_scenario(tmp_path, scenario, seed=seed, shape=(300, 450), n_frames=24)
    paths, _ = collect_inputs([tmp_path])
    frames = map_files(paths).maps[0].accumulator.frames
    told = {f.time: f.kind for f in frames}  # a duplicate file is read as one frame, under either name
    expected = {f.time: f.scene if f.scene in ("dark", "flat") else "photo" for f in truth.frames}
    assert told == expected


@pytest.mark.parametrize(("scenario", "seed"), [("darks-same", 2027), ("darks-mixed", 31), ("mixed", 4), ("mixed", 11)])
def test_frame_kinds_of_jpeg_renderings(tmp_path, scenario, seed):
    """The same series' JPEGs (the camera's renderings): lens-cap darks, flat fields and photos told apart.

    A JPEG's tone curve lifts a dark to 4-10 % of white (above the raw
    ``dark_level``), and demosaicing and compression correlate its noise
    between the two samplings (0.65-0.89 in an independent series' darks),
    so every dark was a photo, each a view of its own; the mixed series' flat
    field of seed 4 was a photo too.  Without the samplings' tests, a
    bright photo (seed 4) was a flat field until a flat field's detail had
    to stay below ``flat_detail_image`` of its level.
    """
    from rawmap.mapping import map_files
    from rawmap.testing import write_scenario

    truth = write_scenario(tmp_path, scenario, seed=seed, shape=(300, 450), n_frames=24, jpeg=True)
    frames = map_files(sorted(tmp_path.glob("*.jpg"))).maps[0].accumulator.frames
    told = {f.time: f.kind for f in frames}
    expected = {f.time: f.scene if f.scene in ("dark", "flat") else "photo" for f in truth.frames}
    assert told == expected


def _corner_glow(h=18, w=28, peak=8000.0, scale=2.0, row=0, col=None):
    """Block means of an exponential glow from one block, over a background of 20 +- 1 DN."""
    rng = np.random.default_rng(0)
    col = w - 1 if col is None else col
    y, x = np.mgrid[0:h, 0:w]
    return 20.0 + rng.normal(0, 1, (h, w)) + peak * np.exp(-np.hypot(y - row, x - col) / scale)


def test_border_glow_is_a_corner_fading_away():
    """A glow is lit from the border, fades from it (most of it dim, but not too fast), has no peak
    inside the frame, spans no two opposite sides and covers at most max_share; a single bright block
    inside it (a hot photosite) does not break it."""
    from rawmap.accumulate.views import border_glow

    glow = _corner_glow()
    found = border_glow(glow, 30.0, 10.0, 0.5)
    lit = glow > 30.0
    assert found is not None and found[lit].all() and found[0, -1] and not found[-1, 0]
    assert found.sum() > lit.sum()  # grown by the fringe where it fades under the bar
    spiked = glow.copy()
    spiked[4, 20] += 3000.0  # a hot photosite's block inside the glow
    assert border_glow(spiked, 30.0, 10.0, 0.5) is not None
    assert border_glow(_corner_glow(row=9, col=14), 30.0, 10.0, 0.5) is None  # a lamp: reaches no border
    assert border_glow(_corner_glow(row=3, col=24), 30.0, 10.0, 0.5) is None  # at the border, brightest inside
    rows = np.arange(18)[:, None] + np.zeros((1, 28))
    sky = 20.0 + np.where(rows < 6, 500.0 - 50.0 * rows, 0.0)
    assert border_glow(sky, 30.0, 10.0, 0.5) is None  # across the frame, side to side
    lit_corner = 20.0 + np.where((rows < 8) & (np.arange(28)[None, :] > 14), 400.0, 0.0)
    assert border_glow(lit_corner, 30.0, 10.0, 0.5) is None  # lit evenly: does not fade
    assert border_glow(_corner_glow(scale=12.0), 30.0, 10.0, 0.5) is None  # more than half the frame
    # falling by e every 2 blocks, about half from block to block: too steep where less is allowed
    assert border_glow(glow, 30.0, 10.0, 0.5, min_ratio=0.3) is not None
    assert border_glow(glow, 30.0, 10.0, 0.5, min_ratio=0.8) is None
    assert border_glow(np.full((18, 28), 20.0), 30.0, 10.0, 0.5) is None  # nothing lit


def test_blocks_standing_out_in_both_samplings():
    """Noise alone shares almost no such block between the two samplings; a scene's edges are in both,
    the same way; a block standing out up in one and down in the other is not counted."""
    from rawmap.accumulate.views import _edges_in_both

    rng = np.random.default_rng(3)
    shared = [_edges_in_both(rng.normal(0, 1, (21, 24)), rng.normal(0, 1, (21, 24)), 1.0, 2.7) for _ in range(300)]
    assert max(shared) < 3 and sum(shared) <= 10  # a scene needs 3; noise: 0.01 a frame expected (5 here)
    a, b = rng.normal(0, 1, (21, 24)), rng.normal(0, 1, (21, 24))
    for i, (y, x) in enumerate([(3, 4), (10, 10), (15, 20), (5, 18), (18, 6)]):
        a[y, x] += 8.0
        b[y, x] += 8.0 if i < 4 else -8.0  # the last one the other way in the second sampling
    assert _edges_in_both(a, b, 1.0, 2.7) == 4
    assert _edges_in_both(a, b, 0.0, 2.7) == 0 and _edges_in_both(a[:2], b[:2], 1.0, 2.7) == 0


def test_closing_a_view_records_the_photosites_it_counted():
    """The union of the view's frames' outliers (either sign), once each, in each of its frames' records."""
    rng = np.random.default_rng(2)
    acc = Accumulator((40, 48), cfa=CFA, black=np.full(4, float(BLACK)), white=WHITE, camera=CAM)
    spots = [(8, 8), (24, 24), (8, 40)]  # inside the texture's 16 x 16 patches
    for i, spot in enumerate(spots):  # one view, a bracket: another bright spot in each frame
        acc.update(scene_frame(rng, i, 1, gain=2.0**i / 2, hot=spot, exposure=0.1 * 2**i))
    assert [f.view_outliers for f in acc.frames] == [None] * 3  # the view is open
    closed = acc.closed()
    counted = (closed.s_hi.astype(int) + closed.s_lo) - (acc.s_hi.astype(int) + acc.s_lo)
    n = int(np.count_nonzero(counted))
    assert counted.max() == 1 and all(counted[s] == 1 for s in spots)  # each spot once
    assert [f.view_outliers for f in closed.frames] == [n] * 3
    assert n > np.mean([f.outliers for f in closed.frames])  # the union, not the frames' mean
    assert [f.view_outliers for f in acc.frames] == [None] * 3  # the open state is left as it was


def test_darks_of_a_black_level_0_sensor_measure_their_cut_noise():
    """A 12-bit sensor with black level 0: a lens-cap dark reads 0 in about half its photosites, and the
    noise fit (lower quartile of the residuals) saw 0.4 DN against a true 6.  Every photosite's noise was
    then an outlier; a hot photosite's adjacent ones counted against its isolation, and it counted in 2 of
    4 darks.  A dark's noise term is now measured on its thumbnail blocks where that is larger."""
    rng = np.random.default_rng(4)
    H, W, white = 256, 384, 4095
    hot = [(40, 60), (101, 203), (150, 301), (211, 77)]
    acc = None
    for i in range(4):
        exp = float([1.6, 0.4, 4.8, 8.0][i])
        sig = rng.normal(0.0, 6.0, (H, W))
        for r, c in hot:
            sig[r, c] += 60.0 * exp * 8  # 60 DN/s at ISO 100, shot at ISO 800
        f = make_frame(np.clip(np.round(sig), 0, white).astype(np.uint16), i, exp, 800, black=0, white=white)
        if acc is None:
            acc = Accumulator.from_frame(f)
        acc.update(f)
    assert acc is not None
    acc.close_scene()
    assert [f.kind for f in acc.frames] == ["dark"] * 4
    # the cut noise: var(max(0, X)) = 0.34 sigma^2 for X ~ N(0, sigma), sigma = 6 DN
    for f in acc.frames:
        assert 0.5 * 0.34 * 36 <= f.noise_a / 20.0 <= 2.0 * 0.34 * 36, f.noise_a / 20.0
    assert all(int(acc.s_hi[r, c]) == 4 for r, c in hot), [int(acc.s_hi[r, c]) for r, c in hot]
    # and the noise itself is no outlier: a few photosites a dark at most
    assert int(acc.s_hi.sum() + acc.s_lo.sum()) - 4 * len(hot) <= 8


def test_warm_args_are_typed_as_a_new_series_fold(monkeypatch):
    """The warm-up compiles the very signature a new series' fold calls (else the first fold compiles anew)."""
    import numba

    from rawmap import _kernels

    seen = []
    real = _kernels.update_kernel

    def recording(*args):
        seen.append(tuple(numba.typeof(a) for a in args))
        return real(*args)

    monkeypatch.setattr(_kernels, "update_kernel", recording)
    frames = series(seed=4, n=3)
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    assert seen
    assert set(seen) == {tuple(numba.typeof(a) for a in _kernels._warm_args())}


def test_fold_warmup_compiles_the_fold_kernel_in_another_process(tmp_path):
    """With an empty cache the warm-up process compiles the fold kernel; this process then loads it, compiling nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from rawmap import _kernels\n"
        "with _kernels.fold_warmup():\n"
        "    before = _kernels.compiled()\n"
        "    _kernels.await_warmup()\n"
        "    after = _kernels.compiled()\n"
        "    _kernels.update_kernel(*_kernels._warm_args())\n"
        "st = _kernels.update_kernel.stats\n"
        "print(before, after, sum(st.cache_hits.values()), sum(st.cache_misses.values()))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "1", "0"]


def test_fold_warmup_stops_a_warmup_the_run_did_not_wait_for():
    """A run that ends before its first fold leaves no compiling process behind."""
    from rawmap import _kernels

    with _kernels.fold_warmup():
        proc = _kernels._warmup
        assert proc is not None and proc.poll() is None
    assert proc.returncode is not None
    assert _kernels._warmup is None
    _kernels.await_warmup()  # nothing to wait for: returns at once
