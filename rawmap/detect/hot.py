"""Hot, warm and noisy photosites: isolated bright outliers in enough views, and what makes them grow.

The excess grows with exposure x ISO: hot (or warm); it does not, or the
photosite is also dark in many views, or its temporal noise is high: noisy.
With them: hot clusters' members, a flagged photosite's ringing, the dark
noisy ones and, in darks, the ones bright in some views and dark in others.
See the rules in :mod:`rawmap.detect` (``hot`` / ``noisy``, ``warm``).
"""

from __future__ import annotations

import numpy as np

from ..accumulate import Accumulator
from ..accumulate.records import dark_current_factor
from ..defectmap import DefectKind
from .params import _BLOCK_ROWS, ClassifyParams
from .series import (
    _darks_only,
    _Found,
    _groups8,
    _mean_residual,
    _neighbours,
    _noise_ratio,
    _nonzero2,
    _robust_sigma,
    _sample_index,
    _Series,
    _share_score,
    _touching,
    _trimmed_means,
    _trimmed_residual,
)


def _complete_clusters(acc: Accumulator, p: ClassifyParams, found: _Found, taken: np.ndarray, x_hi: float) -> None:
    """Flag the unflagged members of hot clusters, from their sums.

    The per-frame outlier test wants an outlier isolated from its adjacent
    photosites (scene edges are not), so a cluster's member touching two
    others is rarely counted, though its sums are as far out as theirs.
    Next to a flagged hot photosite, a photosite whose mean residual is at
    least ``cluster_share`` of that neighbour's and ``cluster_sigma`` robust
    sigmas above its plane's, growing with exposure as a hot one does, is
    hot too.  Adds to ``found`` and ``taken`` in place.
    """
    hot = found.of(DefectKind.HOT)
    if not hot.any() or acc.n_frames < 2:
        return
    H, W = acc.shape
    hr, hc = found.rows[hot], found.cols[hot]
    off = np.array([(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc])
    cr = (hr[:, None] + off[:, 0]).ravel()
    cc = (hc[:, None] + off[:, 1]).ravel()
    src = np.repeat(np.arange(hr.size), len(off))
    ok = (cr >= 0) & (cr < H) & (cc >= 0) & (cc < W)
    cr, cc, src = cr[ok], cc[ok], src[ok]
    ok = ~taken[cr, cc]
    cr, cc, src = cr[ok], cc[ok], src[ok]
    if cr.size == 0:
        return

    def mean_res(r, c):
        if darks:
            return _trimmed_residual(acc, r, c)
        return _mean_residual(acc, r, c)

    darks = _darks_only(acc)

    sr, sc = _sample_index(H, W)
    m_s = mean_res(sr, sc)
    m_c = mean_res(cr, cc)
    far = m_c >= p.cluster_share * mean_res(hr[src], hc[src])
    for pl in {(int(a), int(b)) for a, b in zip(cr & 1, cc & 1)}:
        in_s = ((sr & 1) == pl[0]) & ((sc & 1) == pl[1])
        in_c = ((cr & 1) == pl[0]) & ((cc & 1) == pl[1])
        med = float(np.median(m_s[in_s]))
        far[in_c] &= m_c[in_c] > med + p.cluster_sigma * _robust_sigma(m_s[in_s])
    cr, cc = cr[far], cc[far]
    if cr.size == 0:
        return
    flat = np.unique(cr * W + cc)
    cr, cc = flat // W, flat % W
    beta, grows, measured, _ = _dark_current(acc, p, cr, cc, x_hi)
    if not measured.any():  # one exposure x ISO throughout (same-exposure darks): as the hot rule, no growth test
        grows[:] = True
        # and, as there, the mean excess over that exposure x ISO (unknown when the frames state none)
        x = acc.sum_x / max(acc.n_frames, 1)
        beta = mean_res(cr, cc) / x if x > 0 else np.full(cr.size, np.nan)
    cr, cc, beta = cr[grows], cc[grows], beta[grows]
    found.add(cr, cc, DefectKind.HOT, _share_score(acc.s_hi[cr, cc], max(acc.n_scenes, 1)), beta / 4.0)
    taken[cr, cc] = True


def _dark_current(
    acc: Accumulator, p: ClassifyParams, r: np.ndarray, c: np.ndarray, x_hi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The residual of each photosite regressed on x = exposure x ISO/100, over the frames in its sums.

    A strong hot photosite clips in long exposures, which flattens the
    regression: where it was recorded clipped while its neighbours were not
    (:meth:`Accumulator.unclipped`) the regression runs over the other frames when three or more of them with a
    spread of exposure are left; and reaching the clip level while growing
    by at least ``hot_clip_growth`` of its offset counts as growing too.

    Returns
    -------
    beta : (n,) ndarray
        The slope (residual units, 4x DN, per unit of x); 0 where not measured.
    grows : (n,) bool ndarray
        Its excess grows with x as a hot photosite's does (over the 90th
        percentile ``x_hi`` of the frames' x).
    measured : (n,) bool ndarray
        Where the frames' x differ enough for a slope.
    alpha : (n,) ndarray
        The offset: the residual the regression gives at x = 0.
    """
    n = np.maximum(acc.valid_counts((r, c)), 1).astype(float)
    s_r = acc.s_r[r, c].astype(float)
    s_xr = acc.s_xr[r, c].astype(float)
    sx, sxx = _valid_x_sums(acc, r, c)
    # the frames in which the photosite clipped flatten the slope: take it over the others where
    # at least three with a spread of exposure are left (:meth:`Accumulator.unclipped`)
    cl = acc.unclipped(r, c)
    n_u, sx_u, sxx_u = n - cl[:, 0], sx - cl[:, 1], sxx - cl[:, 2]
    den_u = n_u * sxx_u - sx_u * sx_u
    use = (cl[:, 0] > 0) & (n_u >= 3) & (den_u > 1e-9 * np.maximum(n_u * sxx_u, 1e-300))
    n = np.where(use, n_u, n)
    sx = np.where(use, sx_u, sx)
    sxx = np.where(use, sxx_u, sxx)
    s_r = np.where(use, s_r - cl[:, 3], s_r)
    s_xr = np.where(use, s_xr - cl[:, 4], s_xr)
    den = n * sxx - sx * sx
    measured = den > 0
    beta = np.where(measured, (n * s_xr - sx * s_r) / np.where(measured, den, 1), 0.0)
    alpha = (s_r - beta * sx) / n
    growth = beta * x_hi
    clipped = acc.vmax[r, c].astype(np.int64) >= acc.clip
    grows = (growth > np.maximum(alpha, 0)) | (clipped & (growth > p.hot_clip_growth * np.maximum(alpha, 0)))
    return beta, grows, measured, alpha


def _valid_x_sums(acc: Accumulator, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each photosite's sums of x and x squared over the frames that entered its sums ((n,) float64 each).

    The frames skipped for a photosite (two opposite neighbours clipped:
    ``n_invalid``) are in the series' sums, not in its ``s_r`` and
    ``s_xr``; in a bracket they are its view's longest exposures, and a
    regression over the series' sums then took a strong hot photosite's
    growth for none (on brackets of the real samples' scenes, 8 of 10 strong
    hot photosites labelled noisy, the other two measured at 6-28 % of their
    dark current).  The accumulator sums their x and x squared per photosite
    (``s_xi``, ``s_xxi``).
    """
    sx = acc.sum_x - acc.s_xi[r, c].astype(float)
    sxx = acc.sum_xx - acc.s_xxi[r, c].astype(float)
    return sx, sxx


def _temperature_factor(acc: Accumulator, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """How much warmer than at 20 degrees C each photosite's frames ran, as its slope weighs them.

    A dark-current slope is about ``sum(r x) / sum(x^2)`` over the frames in
    which the photosite did not clip: frame ``f`` weighs ``x_f^2``, and its
    dark current runs :func:`~rawmap.accumulate.records.dark_current_factor`
    of its temperature times that at 20 degrees C (a frame that states none
    counts at 20).  Returns that weighted mean per photosite; ones when no
    frame states a temperature (values then stand at the frames' own).
    """
    frames = acc.frames
    if not any(f.temperature is not None for f in frames):
        return np.ones(r.size)
    sxx = sum(f.x * f.x for f in frames)
    sxxf = sum(f.x * f.x * dark_current_factor(f.temperature) for f in frames)
    cl = acc.unclipped(r, c)
    w, wf = sxx - cl[:, 2], sxxf - cl[:, 5]
    ok = (w > 1e-12 * max(sxx, 1e-300)) & (wf > 0)
    return np.where(ok, wf / np.where(ok, w, 1.0), sxxf / sxx if sxx > 0 else 1.0)


def _ring_reach(acc: Accumulator, p: ClassifyParams) -> int:
    """How far a developed image's compression echoes a defect: ``ringing_reach`` pixels in colour
    images (16 x 16 blocks with chroma subsampling), half that in grayscale ones (8 x 8 blocks)."""
    return (p.ringing_reach + 1) // 2 if acc.channels == 1 else p.ringing_reach


def _ringing_runs(acc: Accumulator, found: _Found, p: ClassifyParams) -> np.ndarray:
    """Which column and row flags of a developed image are runs that echo a stronger point defect.

    The compression's echo of a strong defect (:func:`_ringing`) repeats in
    every frame, so in the means of a set of lens-cap darks it leans across
    short stretches of the rows and columns about the defect, as a faulty
    line does.  A run of column flags (8-connected) is one when each of its
    pixels lies within ``ringing_reach`` pixels of a point flag (any kind
    but column) at least ``ringing_ratio`` times stronger than the run
    (the median of its pixels' mean residuals over frames).  A faulty line
    runs on past the reach (segments are 20 pixels long and more) or is the
    stronger.  Measured: the JPEGs of generated lens-cap darks at mixed
    exposures, seeds 2027 / 31 / 7: 14, 11 and 4 false column flags in runs
    3-13 pixels from a stuck (clipped) or hot photosite, every one dropped,
    recall unchanged (darks at one exposure, darks with a glow, mixed
    series: the same scores with and without).

    Returns
    -------
    (n_found,) bool ndarray
    """
    rows, cols = found.rows, found.cols
    echo = np.zeros(rows.size, bool)
    line = found.of(DefectKind.COLUMN)
    if not line.any() or line.all():
        return echo
    strength = np.abs(_mean_residual(acc, rows, cols))
    reach = _ring_reach(acc, p)
    groups = _groups8(rows, cols, line)
    pr, pc, ps = rows[~line], cols[~line], strength[~line]
    members = np.flatnonzero(line)
    members = members[np.argsort(groups[members], kind="stable")]
    for run in np.split(members, np.flatnonzero(np.diff(groups[members])) + 1):
        bar = p.ringing_ratio * float(np.median(strength[run]))
        strong = ps >= bar
        if not strong.any():
            continue
        near = (np.abs(rows[run][:, None] - pr[strong][None, :]) <= reach) & (
            np.abs(cols[run][:, None] - pc[strong][None, :]) <= reach
        )
        if near.any(axis=1).all():
            echo[run] = True
    return echo


def _ringing(acc: Accumulator, found: _Found, p: ClassifyParams) -> np.ndarray:
    """Which hot, noisy and cold flags of a developed image are the compression's echo of a stronger defect.

    JPEG spreads a strong defect's error over its 8 x 8 block (its 16 x 16
    MCU with chroma subsampling: up to 15 pixels away), and in every frame:
    the echo repeats like a defect, at a small fraction of the defect's mean
    residual, bright or dark whatever the defect's sign.  A hot, noisy or
    cold flag within ``ringing_reach`` photosites of a flagged defect at
    least ``ringing_ratio`` times stronger (mean residual over frames) is
    one (in grayscale images, whose blocks are 8 x 8, half that reach).
    Measured: on an independent series' JPEGs, echoes at 3-106 DN
    beside defects at 956-1563 DN; on the JPEGs of generated lens-cap darks,
    dark (cold) echoes 3 pixels from hot photosites at 1/3.4-1/6.5 of their
    strength; on real-scene brackets' JPEGs, a bright (hot) echo 4 pixels
    from a dead photosite at 1/3.1 and 1/4.6 of it, and in night brackets
    (handheld) echoes 9-14 pixels from stuck photosites lit far above the
    dark scene, at 1/7-1/91 of them.  Two true defects of our scenarios
    stand 16 pixels from one 7-12 times stronger, outside the reach; a
    blinking photosite of our grayscale mosaics read as images, within 15
    pixels of a stronger one, stays within the 8 of grayscale.

    Returns
    -------
    (n_found,) bool ndarray
    """
    rows, cols = found.rows, found.cols
    echo = np.zeros(rows.size, bool)
    weak = found.of(DefectKind.HOT) | found.of(DefectKind.NOISY) | found.of(DefectKind.COLD)
    if not weak.any():
        return echo
    strength = np.abs(_mean_residual(acc, rows, cols))
    reach = _ring_reach(acc, p)
    for i in np.flatnonzero(weak):
        near = (np.abs(rows - rows[i]) <= reach) & (np.abs(cols - cols[i]) <= reach)
        near[i] = False
        if near.any() and float(strength[near].max()) >= p.ringing_ratio * float(strength[i]):
            echo[i] = True
    return echo


def _clipped_cluster_members(ser: _Series) -> None:
    """Darks only: a photosite at the clip level in every dark, beside a hot one or another such, is hot.

    In darks nothing tells a hot photosite that clips in every dark from one
    stuck at white, but hot photosites come in clusters and stuck ones do
    not: touching (any of its 8 adjacent photosites) a flagged hot or warm
    photosite, or another clipped one, it is a cluster's member, hot, its
    dark current unknown (NaN: it filled the range in every dark).  A
    clipped one alone stays stuck at white.  Runs after the segments, which
    take clipped lines first.
    """
    acc, found = ser.acc, ser.found
    white = found.of(DefectKind.STUCK) & (found.values >= acc.clip)
    if not white.any():
        return
    W = ser.W
    marked = white | found.of(DefectKind.HOT) | found.of(DefectKind.WARM)
    beside = _touching(found.rows[white] * W + found.cols[white], found.rows[marked] * W + found.cols[marked], W)
    found.relabel(np.flatnonzero(white)[beside], DefectKind.HOT, np.nan)


def _back_to_normal(ser: _Series, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Darks of one exposure: bright outliers whose lowest reading is a normal photosite's.

    Dark current lifts every dark: a photosite ``blink_excess`` read-noise
    sigmas above its same-colour neighbours on average never reads within
    ``blink_floor`` sigmas of them in a dark.  A blinking one (random
    telegraph noise, up only) does, whenever it sits at its low level: in
    darks of one exposure nothing else tells it from a warm photosite (its
    mean excess read as dark current, which repair would subtract).
    """
    acc, p = ser.acc, ser.p
    # each without its highest and lowest dark, and the neighbours' median: a cosmic ray's hit in a
    # long dark lifts a mean by up to 250 DN (a CCD's 20 darks of 300 s), as a blinking one's level
    nr, nc = _neighbours(r, c, ser.H, ser.W)
    nb = np.median(_trimmed_means(acc, (nr, nc))[0], axis=0)
    mean = _trimmed_means(acc, (r, c))[0]
    low = acc.vmin[r, c].astype(np.float64)
    return (
        (mean - nb >= p.blink_excess * ser.sig_read)
        & (low - nb <= p.blink_floor * ser.sig_read)
        & (acc.vmax[r, c].astype(np.int64) < acc.clip)
    )


def _hot_and_noisy(ser: _Series, hi_r: np.ndarray, hi_c: np.ndarray) -> None:
    """Bright outliers in enough units: hot when the excess grows with exposure x ISO, else noisy.

    Growth is measured by :func:`_dark_current` (a regression on exposure x
    ISO); without a spread of exposure x ISO every one counts as growing
    (same-exposure darks: the value is then the mean excess over exposure x
    ISO, over the frames in which the photosite did not clip).  A photosite that is also
    a dark outlier in half the units needed is blinking: noisy.  Hot
    values are the dark-current slope in DN per second at ISO 100 (the
    residual is 4x DN), unknown (NaN) when no frame states its exposure (a
    stripped JPEG); noisy values, the excess noise ratio.  In a series
    with photos, one that neither grows nor is noisier than its neighbours
    (``noisy_min_excess``) is static detail that coincided in a few views:
    it is only kept where it ends a segment (:func:`_drop_weak`).  When
    frames state their temperature, hot values are given at 20 degrees C
    (:func:`_temperature_factor`).  An excess growing faster than
    ``hot_max_fill`` ranges a second at ISO 100 is no dark current: stuck
    where the photosite sits at the clip level in every frame, else static
    detail (weak).  In photos, one that is an outlier in just the views
    needed is hot only when its growth over the series passes
    ``hot_margin_growth`` times its offset: static detail of a bracket grows
    with the exposure too.
    """
    acc, found = ser.acc, ser.found
    if ser.x_spread:
        beta, exposure_driven, _, alpha = _dark_current(acc, ser.p, hi_r, hi_c, ser.x_hi)
    else:
        # one exposure x ISO: the mean excess over it, from the frames in which the photosite did not clip
        cl = acc.unclipped(hi_r, hi_c)
        n = acc.valid_counts((hi_r, hi_c)).astype(float) - cl[:, 0]
        x = acc.sum_x / max(acc.n_frames, 1)
        mean_r = (acc.s_r[hi_r, hi_c].astype(float) - cl[:, 3]) / np.maximum(n, 1)
        if _darks_only(acc):  # a cosmic ray's hit beside it in one dark stays out (never clipped ones only)
            mean_r = np.where(cl[:, 0] == 0, _trimmed_residual(acc, hi_r, hi_c), mean_r)
        beta = np.where((n > 0) & (x > 0), mean_r / max(x, 1e-12), 0.0)
        exposure_driven = np.ones(hi_r.size, bool)
        alpha = np.zeros(hi_r.size)
    # frames that state no exposure (stripped JPEGs): the excess is there, its rate unknown
    rate = beta / 4.0 if ser.x_spread or acc.sum_x > 0 else np.full(hi_r.size, np.nan)
    blinking = acc.s_lo[hi_r, hi_c] >= max(1, ser.need // 2)
    if not ser.x_spread and _darks_only(acc):
        blinking |= _back_to_normal(ser, hi_r, hi_c)
    excess_noise = _noise_ratio(ser, hi_r, hi_c)
    # a dark current that would fill the range in under 1 / hot_max_fill s at ISO 100 is not one (a
    # real photosite that hot reads white in any photo: stuck); in short exposures a glint's excess
    # over exposure x ISO gives such rates (1.2 million DN/s in a burst at 1/2000 s)
    plausible = beta / 4.0 <= ser.p.hot_max_fill * ser.span
    lit = bool(acc.frames) and not _darks_only(acc)
    margin = acc.s_hi[hi_r, hi_c] <= ser.need
    # in photos whose views were brighter the longer the exposure (a bracket), static detail grows with
    # x as dark current does; at the margin (outliers in just the views needed) its growth must pass
    # hot_margin_growth x its offset, as dark current's (about 0 at x = 0) does. Brackets of the real
    # samples' scenes: one false hot at 1.4 x, the true ones outliers in 6 views or more; the scenarios'
    # true hot at the margin: 6-12 x, and one at 1.0 x that is noisier (noisy_margin_excess) and
    # stays flagged, as noisy
    unclear = margin & lit & ser.x_spread & (beta * ser.x_hi <= ser.p.hot_margin_growth * np.maximum(alpha, 0))
    hot = exposure_driven & ~blinking & plausible & ~unclear
    # neither growing with exposure nor noisier than its neighbours: static detail that coincided
    # (in darks alone there is no scene: every bright outlier is the sensor's)
    weak = ~hot & ~blinking & (excess_noise < ser.p.noisy_min_excess) & lit
    # at the margin (outliers in just the units needed, where chance coincidences of scene detail are
    # allowed up to max_chance a map) a noisy one must be clearly noisier: its own outlier frames alone
    # lift its noise ratio to 2-7 (27 false flags at 2.5-7.4 in the scenarios; the true ones there
    # 7.7-9.9, and two column photosites at 5.5 and 6.4 that their segment takes back)
    weak |= ~hot & ~blinking & margin & (excess_noise < ser.p.noisy_margin_excess) & lit
    # within two photosites of the sensor's edge the kernels reflect the missing neighbour, so a scene's
    # gradient across the edge enters the residual twice and grows with exposure as dark current does
    # (6 hot and noisy flags along the last rows of one bracket series); there the margin is not enough
    H, W = ser.H, ser.W
    edge = (hi_r < 2) | (hi_r >= H - 2) | (hi_c < 2) | (hi_c >= W - 2)
    weak |= edge & margin & ~blinking & lit
    # faster than any dark current: at the clip level in every frame it is stuck there; else the
    # excess is the scene's light (a bright speck of a two-view burst at 1/2000 s)
    too_fast = exposure_driven & ~plausible & ~blinking
    white = too_fast & (acc.vmin[hi_r, hi_c].astype(np.int64) >= acc.clip)
    weak |= too_fast & ~white & lit
    # short of the units needed (taken where the scenes around are quiet, :func:`_quiet_here`): only
    # hot, never noisy (static detail's noise ratio is no evidence); at one exposure x ISO every one
    # "grows", and the chance bound at the quiet local rate is then the evidence, as the series' bound
    # is for one in the units needed (bursts of 3 and 4 real scenes, seeds 7 / 3: planted hot mapped
    # 165 -> 189 of 210, one photo each 116 -> 122 of 210, the false flags unchanged in every subset)
    weak |= (acc.s_hi[hi_r, hi_c] < ser.need) & ~hot
    score = _share_score(acc.s_hi[hi_r, hi_c], ser.units)
    warm = _temperature_factor(acc, hi_r[hot], hi_c[hot])
    found.add(hi_r[hot], hi_c[hot], DefectKind.HOT, score[hot], rate[hot] / warm)
    found.add(hi_r[white], hi_c[white], DefectKind.STUCK, score[white], acc.vmin[hi_r[white], hi_c[white]])
    noisy = ~hot & ~white
    found.add(hi_r[noisy], hi_c[noisy], DefectKind.NOISY, score[noisy], excess_noise[noisy])
    # the weak ones may still end a column or row segment (:func:`_lines`); :func:`_drop_weak` removes the rest
    ser.weak = np.concatenate([ser.weak, hi_r[weak] * ser.W + hi_c[weak]])
    ser.taken[hi_r, hi_c] = True


def _dark_noisy(ser: _Series, r: np.ndarray, c: np.ndarray) -> None:
    """Dark outliers in enough units that are not low gain: noisy when their temporal noise is
    ``noisy_ratio`` times their neighbours', or they are bright outliers in half the units needed too;
    not beside a flagged same-colour photosite, whose own swings they would be showing."""
    acc = ser.acc
    # a flagged same-colour neighbour (a hot cluster member beside it) enters its residual: the dark
    # outliers and the noise are that neighbour's
    nr, nc = _neighbours(r, c, ser.H, ser.W)
    keep = ~ser.taken[nr, nc].any(axis=0)
    r, c = r[keep], c[keep]
    ratio = _noise_ratio(ser, r, c)
    noisy = (ratio >= ser.p.noisy_ratio) | (acc.s_hi[r, c] >= max(1, ser.need // 2))
    score = _share_score(acc.s_lo[r, c], ser.units)
    ser.found.add(r[noisy], c[noisy], DefectKind.NOISY, score[noisy], ratio[noisy])
    ser.taken[r[noisy], c[noisy]] = True


def _two_way(ser: _Series, excess: float) -> None:
    """A bright outlier in some units and a dark one in others, ``need`` in all, ``excess`` times noisier
    than its same-colour neighbours and beside no flagged one (whose swings it would be showing): noisy.

    The chance bound counts a unit's outliers of either sign
    (:func:`_chance_need`), so such a photosite is as far past chance as
    one outlier in ``need`` units.  :func:`classify` asks it in two places.

    *Sets of darks*, at ``noisy_ratio``: a blinking photosite with levels on
    both sides of its neighbours splits its darks so (the darks of seed 31:
    3 bright and 3 dark, 4 needed, and neither count alone reached it).  In
    raw photos it is not asked: each dark is a unit of one frame, while a
    view of several photos can count one photosite both ways (a glint's
    edge in a jittered burst; 2 false flags in 24 defect-free series with
    photos).

    *Developed colour photos of* ``guard_views`` *views or more*, at
    ``two_way_image_excess``: a developed image's colour matrix turns a
    one-colour defect into a pixel that departs from its neighbours in
    every channel, brighter or darker by the colours of the scene around
    it: a blue photosite stuck at white in indep-8080's JPEGs reads blue
    with red and green at 0, a dark outlier in bright views and a bright
    one in dark views, and neither count alone reaches the views needed (4
    of its 6 stuck and 7 of its 22 hot photosites lost from subsets of 20
    of its frames).  Such a pixel's residual swings in every frame, so its
    noise ratio is 45-170 there (18-30 from 12 frames); scene detail that
    coincided both ways in a few views, many more of them, reads 1-11 (our
    scenarios' JPEGs, brackets, mixed, black-0, bursts and timelapses, 6
    defect-free seeds each, and indep-8080's subsets).  The chance bound of
    busy scenes is not asked: it held out the defects as often as the
    coincidences, and the noise ratio tells them apart where it does not.
    In fewer views a photo or two of its own outliers lift a photosite's
    noise ratio as much (defect-free JPEG series of 3, 4 and 6 photos, 16
    seeds each: 2 flags added, in 3 and 4 views, at 28-32), and in
    grayscale images no colour matrix turns a defect about (gray mosaics
    read as developed images: 2 flags added, both false).
    """
    acc = ser.acc
    rows, cols = [], []
    for a in range(0, ser.H, _BLOCK_ROWS):
        hi = acc.s_hi[a : a + _BLOCK_ROWS].astype(np.int32)
        lo = acc.s_lo[a : a + _BLOCK_ROWS]
        r_, c_ = _nonzero2((hi > 0) & (lo > 0) & (hi + lo >= ser.need) & ~ser.taken[a : a + _BLOCK_ROWS])
        rows.append(r_ + a)
        cols.append(c_)
    r, c = np.concatenate(rows), np.concatenate(cols)
    if r.size == 0:
        return
    nr, nc = _neighbours(r, c, ser.H, ser.W)
    keep = ~ser.taken[nr, nc].any(axis=0)
    r, c = r[keep], c[keep]
    ratio = _noise_ratio(ser, r, c)
    noisy = ratio >= excess
    score = _share_score(acc.s_hi[r, c].astype(np.int64) + acc.s_lo[r, c], ser.units)
    ser.found.add(r[noisy], c[noisy], DefectKind.NOISY, score[noisy], ratio[noisy])
    ser.taken[r[noisy], c[noisy]] = True
