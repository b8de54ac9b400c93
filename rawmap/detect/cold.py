"""Cold (low-gain) photosites: a signal far below the neighbours' over all frames, beyond what scene detail does.

See the rules in :mod:`rawmap.detect` (``cold``) and :func:`_cold`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _kernels
from ..accumulate import Accumulator
from ..defectmap import DefectKind
from ..frame import SourceKind
from .params import _BLOCK_ROWS, ClassifyParams
from .series import (
    _darks_only,
    _gain_ratio,
    _gaussian_line,
    _neighbours,
    _plane_stats,
    _planes,
    _ratio_stats,
    _robust_sigma,
    _sample_index,
    _Series,
)


def _strong_cold_candidates(acc: Accumulator, p: ClassifyParams, taken: np.ndarray, sig_read: float):
    """Photosites whose signal, summed over all frames, is below ``cold_strong`` of their neighbours'.

    A first cut on the plain ratio (flagged neighbours not yet left out),
    one compiled pass over the sums (:func:`rawmap._kernels.strong_cold_scan`;
    0.3 s of numpy on 24 MP before); :func:`classify` then re-measures each
    candidate.
    """
    H, W = acc.shape
    b2 = acc.black2
    # the loosest of classify's bounds (0.5 x median; for developed images also the median
    # less 10 robust sigmas)
    sr, sc = _sample_index(H, W)
    n_s = acc.valid_counts((sr, sc)).astype(np.float64)
    sv_s = acc.s_v[sr, sc].astype(np.float64)
    bl_s = b2[sr & 1, sc & 1]
    est_s = sv_s - acc.s_r[sr, sc].astype(np.float64) / 4.0 - n_s * bl_s
    ok = est_s > n_s * max(10.0 * sig_read, 1.0)
    ratio = (sv_s[ok] - n_s[ok] * bl_s[ok]) / est_s[ok]
    cut = p.cold_strong
    if ratio.size >= 100 and acc.source is SourceKind.IMAGE:
        med = float(np.median(ratio))
        cut = max(p.cold_strong, (med - p.cold_strong_sigma * _robust_sigma(ratio)) / max(med, 1e-6))
    cap = max(1024, H * W // 1000)
    while True:
        out = np.empty(cap, np.int64)
        k = _kernels.strong_cold_scan(
            acc.s_v,
            acc.s_r,
            acc.n_invalid,
            np.int64(acc.n_frames),
            np.ascontiguousarray(b2, np.float64),
            taken,
            float(cut),
            float(max(10.0 * sig_read, 1.0)),
            out,
        )
        if k <= cap:
            flat = out[:k]
            return flat // W, flat % W
        cap = k


def _illumination(mean: np.ndarray, planes: list, floor: float, degree: int = 4) -> dict:
    """Smooth illumination of a flat per colour plane: a polynomial in (row, col) fitted to ``log(mean)``.

    Fitted by least squares on a grid of about 40,000 photosites of each
    plane, refitted once without the points 4 robust sigmas off (defects,
    dust shadows).  Dividing the flat by it leaves no gradient at the
    sensor's borders, where the mirrored neighbourhoods of
    :func:`_flat_reference` would otherwise turn a vignetting slope into a
    false deficit (a corner lies below all its mirrored neighbours).

    Returns
    -------
    dict
        Plane -> (degree + 1, degree + 1) coefficients ``c[i, j]`` of
        ``y**i x**j`` (``i + j <= degree``; y, x scaled to [-1, 1]), or None
        where too little of the plane is lit.
    """
    H, W = mean.shape
    out: dict = {}
    for pl in planes:
        r0, c0 = (0, 0) if pl is None else pl
        pitch = 1 if pl is None else 2
        k = max(1, int(math.sqrt(H * W / pitch**2 / 40_000)))
        rr = np.arange(r0, H, pitch * k)
        cc = np.arange(c0, W, pitch * k)
        v = mean[np.ix_(rr, cc)].astype(np.float64).ravel()
        y, x = np.meshgrid(2.0 * rr / max(H - 1, 1) - 1.0, 2.0 * cc / max(W - 1, 1) - 1.0, indexing="ij")
        y, x = y.ravel(), x.ravel()
        terms = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]
        ok = v > floor
        if ok.sum() < 4 * len(terms):
            out[pl] = None
            continue
        a = np.stack([y**i * x**j for i, j in terms], axis=1)
        lv = np.log(np.where(ok, v, 1.0))
        coef = np.linalg.lstsq(a[ok], lv[ok], rcond=None)[0]
        res = lv - a @ coef
        sigma = _robust_sigma(res[ok])
        kept = ok & (np.abs(res) < 4.0 * sigma)
        if np.isfinite(sigma) and sigma > 0 and kept.sum() >= 4 * len(terms):
            coef = np.linalg.lstsq(a[kept], lv[kept], rcond=None)[0]
        c = np.zeros((degree + 1, degree + 1))
        for (i, j), value in zip(terms, coef):
            c[i, j] = value
        out[pl] = c
    return out


def _flatten(mean: np.ndarray, coef: dict, a: int, b: int) -> np.ndarray:
    """(b - a, W) rows ``a:b`` of ``mean`` over the illumination of :func:`_illumination` (float32)."""
    H, W = mean.shape
    block = mean[a:b].copy()
    y = 2.0 * np.arange(a, b) / max(H - 1, 1) - 1.0
    x = 2.0 * np.arange(W) / max(W - 1, 1) - 1.0
    for pl, c in coef.items():
        if c is None:
            continue
        rs = slice(None) if pl is None else slice((pl[0] - a) % 2, None, 2)
        cs = slice(None) if pl is None else slice(pl[1], None, 2)
        yy, xx = y[rs], x[cs]
        # sum_i y^i (sum_j c_ij x^j): one polynomial in x per power of y, then one axpy per power
        log_l = np.zeros((yy.size, xx.size))
        for i in range(c.shape[0]):
            log_l += np.outer(yy**i, np.polynomial.polynomial.polyval(xx, c[i]))
        block[rs, cs] = block[rs, cs] / np.exp(log_l).astype(np.float32)
    return block


def _flat_reference(mean: np.ndarray, a: int, b: int, step: int) -> np.ndarray:
    """(b - a, W) median of each photosite's 24 same-colour neighbours (a 5 x 5 lattice of pitch ``step``).

    ``mean`` (H, W) is the mean signal; the sensor is mirrored at its
    borders (even offsets keep the colour).
    """
    H, W = mean.shape
    halo = 2 * step
    top, bottom = max(0, a - halo), min(H, b + halo)
    pad_top, pad_bottom = halo - (a - top), halo - (bottom - b)
    part = np.pad(mean[top:bottom], ((pad_top, pad_bottom), (halo, halo)), mode="reflect")
    out = np.empty((b - a, W), np.float32)
    _kernels.lattice_median(part, b - a, step, out)
    return out


def _flat_cold(ser: _Series) -> None:
    """Low-gain photosites from flat fields: a series whose lit frames are all flats measures gain directly.

    A flat field lights every photosite evenly (vignetting and dust shadows
    are smooth), so once the mean flat is divided by its smooth illumination
    (:func:`_illumination`), the ratio of a photosite's mean signal to the
    median of its 24 nearest same-colour neighbours' is its relative gain
    (that median's own spread is a quarter of the response non-uniformity's,
    a mean of 4's was half, and other defects do not move it).  It
    is low when it lies below its plane's median by at least ``flat_min_drop``
    and by more robust sigmas of the ratio than both ``flat_sigma`` and the
    line at which a Gaussian spread over the whole sensor would give
    ``flat_false_flags`` photosites (4.9 sigmas at 0.24 MP, 5.7 at 24 MP):
    the spread is the sensor's response non-uniformity (1-2 %) and the
    flats' noise, so a gain of 0.9 lies about 5 sigmas down.  Measured with
    ``bench_flats.py`` (seeds 1-6, mono and colour): every photosite of gain
    <= 0.9 found but those its own brighter-than-usual response lifts past
    0.9, no false flag (with the mean of 4 and 6 sigmas, 93-100 %).  Flats
    join one view, so the
    outlier rules (which want several views) never see these.  Adds to
    ``found`` and ``taken`` in place.
    """
    acc, p = ser.acc, ser.p
    lit = [f for f in acc.frames if f.kind != "dark"]
    if not lit or any(f.kind != "flat" for f in lit):
        return
    H, W = ser.H, ser.W
    step = 1 if acc.cfa is None else 2
    # two sensor-sized float32 arrays (8 bytes a photosite on top of the sums), filled by blocks:
    # the mean signal, and the ratio (NaN first where the mean is unlit, a border without light)
    mean = np.empty((H, W), np.float32)
    ratio = np.empty((H, W), np.float32)
    for a in range(0, H, _BLOCK_ROWS):
        b = min(H, a + _BLOCK_ROWS)
        blk = acc.s_v[a:b].astype(np.float32) / np.maximum(acc.valid_counts((slice(a, b),)), 1)
        blk -= ser.black_at(np.arange(a, b)[:, None], np.arange(W)[None, :])
        mean[a:b] = blk
        ratio[a:b] = np.where(blk <= ser.sig_read, np.float32(np.nan), np.float32(0.0))
    planes = _planes(ser)
    sr, sc = _sample_index(H, W)
    coef = _illumination(mean, planes, ser.sig_read)
    for a in range(0, H, _BLOCK_ROWS):
        b = min(H, a + _BLOCK_ROWS)
        mean[a:b] = _flatten(mean, coef, a, b)
    for a in range(0, H, _BLOCK_ROWS):
        b = min(H, a + _BLOCK_ROWS)
        ref = _flat_reference(mean, a, b, step)
        usable = (ref > 0) & ~np.isnan(ratio[a:b])
        ratio[a:b] = np.divide(mean[a:b], ref, out=np.full(ref.shape, np.nan, np.float32), where=usable)
    med_of, sigma_of = _plane_stats(ser, sr, sc, ratio[sr, sc].astype(np.float64))
    line = max(p.flat_sigma, _gaussian_line(H * W, p.flat_false_flags))  # every plane at one tail probability
    # per pattern position (row & 1, col & 1): the plane's median, the line below it, the relative spread
    med2, cut2, spread2 = np.empty((2, 2)), np.empty((2, 2)), np.empty((2, 2))
    for y in (0, 1):
        for x in (0, 1):
            pl = None if acc.cfa is None else (y, x)
            med, sigma = med_of[pl], sigma_of[pl]
            med2[y, x] = med
            cut2[y, x] = med - max(line * sigma, p.flat_min_drop * med)
            spread2[y, x] = sigma / med if med > 0 else np.inf
    for a in range(0, H, _BLOCK_ROWS):
        b = min(H, a + _BLOCK_ROWS)
        # compared in float32, as a Python float line was
        low = ratio[a:b] < cut2.astype(np.float32)[np.arange(a, b)[:, None] & 1, np.arange(W)[None, :] & 1]
        low &= ~ser.taken[a:b]
        lr, lc = np.nonzero(low)
        lr = lr + a
        med_at = med2[lr & 1, lc & 1]
        lrel = ratio[lr, lc].astype(np.float64) / np.where(med_at > 0, med_at, np.nan)
        alone = _flat_alone(ratio, med2, spread2, lr, lc, p.flat_adjacent)
        if alone.any():
            ser.found.add(lr[alone], lc[alone], DefectKind.COLD, 100.0, np.maximum(lrel[alone], 0.0))
            ser.taken[lr[alone], lc[alone]] = True


def _flat_alone(
    ratio: np.ndarray, med2: np.ndarray, spread2: np.ndarray, r: np.ndarray, c: np.ndarray, k: float
) -> np.ndarray:
    """Whether each photosite's 8 adjacent ones sit at their planes' level: the median of their relative
    gain ratios (each over its plane's median, ``med2`` by pattern position) is within ``k`` relative
    robust sigmas (``spread2``, the largest of the 8) of 1.

    A low-gain photosite darkens itself alone; the edge of a sharp dust
    shadow that the 24-neighbour median does not follow darkens an arc of
    photosites (small, sharp shadows of dust on the sensor's cover glass,
    measured: false flags at 0.87-0.89 whose adjacent photosites' median
    sat at 0.93-0.95).  A median, so that a second low-gain photosite
    beside it does not count.  Photosites off the sensor or unlit count as
    level.
    """
    H, W = ratio.shape
    if r.size == 0:
        return np.zeros(0, bool)
    rels = np.full((8, r.size), 1.0)
    spread = np.zeros((8, r.size))
    adjacent = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    for i, (dr, dc) in enumerate(adjacent):
        r2, c2 = r + dr, c + dc
        inside = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
        r2, c2 = np.where(inside, r2, r), np.where(inside, c2, c)
        spread[i] = spread2[r2 & 1, c2 & 1]
        v = ratio[r2, c2].astype(np.float64) / med2[r2 & 1, c2 & 1]
        rels[i] = np.where(inside & np.isfinite(v), v, 1.0)
    return np.median(rels, axis=0) >= 1.0 - k * spread.max(axis=0)


def _ratios_around(
    ser: _Series, lo_r: np.ndarray, lo_c: np.ndarray, med_of: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The neighbourhood's relative gain ratios, flagged photosites left out.

    Returns
    -------
    around : (n,) ndarray
        The lowest relative ratio among the 8 adjacent and the 4 same-colour
        neighbours (inf when none counts).
    lifted : (n,) ndarray
        The median relative ratio of the 4 same-colour neighbours (NaN when
        none counts): a defect's deficit lifts it (their estimates include
        the defect), scene detail darkens it.
    spread : (n,) ndarray
        The largest distance from 1 of the 8 adjacent photosites' relative
        ratios (inf when one of them is flagged, off the sensor or unlit):
        small where the photosite sits in a smooth neighbourhood.
    """
    H, W = ser.H, ser.W
    cfa = ser.acc.cfa
    around = np.full(lo_r.size, np.inf)
    spread = np.zeros(lo_r.size)
    same = []
    offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc] + [(-2, 0), (2, 0), (0, -2), (0, 2)]
    for dr, dc in offsets:
        r2, c2 = lo_r + dr, lo_c + dc
        inside = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
        r2, c2 = np.where(inside, r2, lo_r), np.where(inside, c2, lo_c)
        g2 = _gain_ratio(ser, r2, c2)
        med = np.array([med_of[(int(a), int(b)) if cfa is not None else None] for a, b in zip(r2 & 1, c2 & 1)])
        rel = np.divide(g2, med, out=np.full(g2.shape, np.nan), where=med > 0)  # no light (darks): no ratio
        use = inside & ~ser.taken[r2, c2] & np.isfinite(rel)
        around = np.where(use, np.minimum(around, rel), around)
        if abs(dr) == 2 or abs(dc) == 2:
            same.append(np.where(use, rel, np.nan))
        else:  # a clipped neighbour says nothing of the detail under it
            use &= ser.acc.vmax[r2, c2] < ser.acc.clip
            spread = np.where(use, np.maximum(spread, np.abs(rel - 1.0)), np.inf)
    lifted = np.full(lo_r.size, np.nan)
    if same:
        stack = np.stack(same)
        some = np.isfinite(stack).any(axis=0)
        if some.any():
            lifted[some] = np.nanmedian(stack[:, some], axis=0)
    return around, lifted, spread


def _below_every_neighbour(ser: _Series, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each photosite's mean signal over the lowest of its 8 nearest same-colour photosites' (black removed).

    A neighbour brighter than the rest (the end of a bright wire beside it)
    lifts the 4-neighbour mean that the gain ratio divides by, never the
    lowest of the eight; the diagonal ones catch a colour's own texture.
    NaN where that lowest neighbour's signal is below ``cold_alone_signal``
    read-noise sigmas (deep shadow, where one photosite's static detail is
    the size of the noise) or the photosite clipped; but a photosite whose
    mean is within ``cold_black_signal`` sigmas of black, beside neighbours
    all at ``cold_black_beside`` sigmas or more, is compared (a dead
    photosite in two bursts' scenes lit 300 DN, under a read-noise figure
    that their texture inflated to 18 DN, was lost to the 20 sigmas).
    """
    acc = ser.acc
    # the 8 nearest of its colour on any sensor: 2 photosites away along the axes (:func:`_neighbours`,
    # rows up, down, then columns left, right) and the diagonals they span
    ar, ac = _neighbours(r, c, ser.H, ser.W)
    nr = np.concatenate([ar, ar[[0, 0, 1, 1]]])
    nc = np.concatenate([ac, ac[[2, 3, 2, 3]]])
    sig = ser.mean_reading(r, c) - ser.black_at(r, c)
    nb = ser.mean_reading(nr, nc) - ser.black_at(nr, nc)
    low = nb.min(axis=0)
    # a photosite at black beside neighbours clearly lit is no shadow's noise: dimmer ones count there
    lit = (low > ser.p.cold_alone_signal * ser.sig_read) | (
        (sig <= ser.p.cold_black_signal * ser.sig_read) & (low > ser.p.cold_black_beside * ser.sig_read)
    )
    lit &= acc.vmax[r, c] < acc.clip
    return np.divide(sig, low, out=np.full(r.size, np.nan), where=lit)


def _cold(ser: _Series, lo_r: np.ndarray, lo_c: np.ndarray) -> np.ndarray:
    """Low gain, among the dark-outlier and low-ratio candidates; returns which candidates were mapped
    (cold, or dead where the gain measured is at most ``dead_gain``).

    Two ways in.  The gain ratio far below its plane's median (``cold_sigma``
    robust sigmas, at least ``cold_min_drop``) with isolated dark outliers
    in enough units: the ratio is signal-weighted, so a static detail
    repeated through a bright burst can bias it.  Or the *strong* rule:
    below ``cold_strong`` of the median (in developed images also
    ``cold_strong_sigma`` robust sigmas below it, at most ``cold_image`` of
    it, where the deficit lifts the same-colour neighbours' ratios), with no
    flagged same-colour neighbour spoiling the estimate.  In textured photos
    a low-gain photosite is rarely an outlier of its own frame (the texture
    is part of the frame's noise), but the ratio over many views shows it;
    since static dark scene detail pulls that ratio down too, two guards:
    the *view bound* (with one view's share w of the photosite's signal,
    that view's detail alone can pull the ratio to 1 - w, no lower; below
    1 - ``cold_view_margin`` x w the evidence needs a second view) and
    *isolation* (a low-gain photosite darkens itself alone; scene detail
    darkens its adjacent photosites of every colour, or its same-colour
    neighbours, as well: they must stay above ``cold_isolation``).  States
    without the views' signals fall back to dark outliers in two units.

    Past the view bound (one view, a timelapse; or two), optics still tell:
    a lens does not darken one photosite of one colour and none of its
    neighbours.  A raw photosite *alone* (below ``cold_strong`` of each of
    its 8 nearest same-colour photosites, :func:`_below_every_neighbour`,
    while each of its 8 adjacent photosites' ratio is within
    ``cold_alone`` of its plane's, or ``cold_alone_wide`` where its own
    mean signal is ``cold_alone_lit`` read-noise sigmas or more, none
    clipped) is low gain whatever the views, and is held to no bound from
    its plane's spread (``cold_strong_spread``, which a textured scene
    widens: that is the scene's detail, not this photosite's).  Measured
    on defect-free timelapses (40 seeds and half-lit views): the
    4-neighbour mean, lifted by the bright end of a pole, gave
    up to 144 false flags a series, an 8 % spread a coloured 1 x 2 window
    pane of a blur-free scene; with these bounds, none.  In raw mosaics a
    strong one must also read below ``cold_below_lowest`` of the darkest
    of those 8 on average, or, where they are too dim to tell, have
    ``guard_views`` views or more.  In developed images, where demosaicing
    spreads a defect, a strong one whose deficit lifts its neighbours'
    ratios (``cold_lift``) may pass a looser bound instead, a deficit of
    ``cold_lift_depth`` x w, but no looser (a pixel-wide speck of the
    scene lifts them too, and in one view it can darken the pixel by any
    share).
    """
    acc, p = ser.acc, ser.p
    share = acc.view_shares(lo_r, lo_c)
    # the view bound, and the looser one a developed image's lifting deficit passes (below)
    bounds = None if share is None else (1.0 - p.cold_view_margin * share, 1.0 - p.cold_lift_depth * share)
    med_of, sigma_of = _ratio_stats(ser)
    g = _gain_ratio(ser, lo_r, lo_c, exclude=ser.taken)
    nr_, nc_ = _neighbours(lo_r, lo_c, ser.H, ser.W)
    clean_nb = ~ser.taken[nr_, nc_].any(axis=0)
    around, lifted, spread = _ratios_around(ser, lo_r, lo_c, med_of)
    # alone in a smooth neighbourhood: static detail darkening one photosite of one colour
    # and no adjacent one does not come out of optics (raw mosaics only: demosaicing spreads it)
    alone = np.zeros(lo_r.size, bool)
    darker = np.ones(lo_r.size, bool)
    if acc.source is not SourceKind.IMAGE:
        below = _below_every_neighbour(ser, lo_r, lo_c)
        # adjacent ratios within 12 % rather than 5 % where the photosite itself is well lit: one-view
        # series of generated scenes (5 kinds of timelapse and burst, seeds 1-12) found 16 more of 177
        # visible low-gain photosites, none added on their defect-free twins (the blur-free scenes'
        # dark specks sat at 16-17 %); on the real scenes' one-view series (bench_real_oneview.py) the
        # two added sit alone in smooth areas of the D30-b's scene, 34 DN among same-colour neighbours
        # at 68-98 and 19 among 38-50: most likely that sensor's own
        lit = ser.mean_reading(lo_r, lo_c) - ser.black_at(lo_r, lo_c) >= p.cold_alone_lit * ser.sig_read
        smooth = (spread <= p.cold_alone) | ((spread <= p.cold_alone_wide) & lit)
        alone = smooth & (below < p.cold_strong)
        # and a strong one darker on average than the darkest of its 8 nearest same-colour photosites;
        # where they are too dim to tell (a texture-inflated read-noise figure makes brackets so),
        # only with guard_views views or more: in fewer, a shadow's noise gave low ratios (15 cold
        # flags in 8 defect-free series of 4 photos, 2 in a two-view burst), and only where it stood out
        # as a dark outlier in a view at least: with neither, the ratio is the views' dark detail (5 of
        # the 8 cold flags in 12 defect-free bracket series; every planted one so admitted had a view)
        dim_ok = np.isnan(below) & (acc.n_scenes >= p.guard_views) & (acc.s_lo[lo_r, lo_c] >= 1)
        darker = (below < p.cold_below_lowest) | dim_ok
    isolated = clean_nb & (around >= p.cold_isolation)
    dark_in = acc.s_lo[lo_r, lo_c].astype(np.int64)
    if ser.lo_chance.size:  # counts the busy scenes around explain are no evidence
        dark_in[np.isin(lo_r * ser.W + lo_c, ser.lo_chance)] = 0
    cold = np.zeros(lo_r.size, bool)
    score = np.zeros(lo_r.size)
    for pl in _planes(ser):
        in_c = np.ones(lo_r.size, bool) if pl is None else ((lo_r & 1) == pl[0]) & ((lo_c & 1) == pl[1])
        med, sigma = med_of[pl], sigma_of[pl]
        drop = max(p.cold_sigma * sigma, p.cold_min_drop)
        cold[in_c] = (g[in_c] < med - drop) & (dark_in[in_c] >= ser.need)
        # and far out of its plane's spread: in warm light the blue photosites' ratios spread so wide
        # (robust sigma 0.12) that scene detail puts 2 % of them below half the median
        # (scene detail does not leave one photosite alone below all of its neighbours in a smooth
        # neighbourhood: there the plane's spread is no bound; a textured one-view landscape's spread of
        # 0.30 put the bound below 0, and a photosite at 0.21 among flat neighbours was lost)
        spread_ok = (g[in_c] < med - p.cold_strong_spread * sigma) | alone[in_c]
        strong = (g[in_c] < p.cold_strong * med) & spread_ok & isolated[in_c]
        if acc.source is not SourceKind.IMAGE:
            # and well below its darkest neighbour's ratio: scene detail that darkens it by half
            # darkens a neighbour by a quarter or so (12 of 15 false flags in the scenarios, ratios
            # 0.43-0.50 beside neighbours at 0.76-0.84 of the median; the true ones 0.08-0.41)
            # (no neighbour's ratio counts, or no light at all: no bound from them)
            finite = np.isfinite(around[in_c])
            limit = np.where(finite, p.cold_below_around * np.where(finite, around[in_c], 0.0) * med, np.inf)
            strong &= (g[in_c] < limit) & darker[in_c]
        if acc.source is SourceKind.IMAGE:
            bound = max(p.cold_strong * med, min(med - p.cold_strong_sigma * sigma, p.cold_image * med))
            strong |= (g[in_c] < bound) & isolated[in_c] & (lifted[in_c] >= 1.0)
        if bounds is None:
            strong &= dark_in[in_c] >= min(2, ser.need)
        else:
            view_bound, lift_bound = bounds
            beyond_view = g[in_c] < view_bound[in_c] * med
            if acc.source is SourceKind.IMAGE:
                # in developed images a defect's deficit lifts its same-colour neighbours' ratios,
                # which a view's static dark detail (darkening them too) never does; the
                # neighbourhood must be clearly normal, not only above cold_isolation. But a speck of
                # the scene one pixel wide lifts them too (real optics: twigs against a bright sky
                # made 24 cold flags in a one-view series of the D30's scene, ratios 0.60-0.75), so
                # the deficit must still be more than such a speck, darkening the pixel by at most
                # cold_lift_depth in the largest view, leaves: (1 - ratio) >= that x the view's share
                beyond_view |= (
                    (lifted[in_c] >= p.cold_lift)
                    & (around[in_c] >= p.cold_lift_isolation)
                    & (g[in_c] < lift_bound[in_c] * med)
                )
            strong &= beyond_view | alone[in_c]
        cold[in_c] |= strong
        score[in_c] = (med - g[in_c]) / sigma
    cold &= np.isfinite(g)
    if _darks_only(acc):
        # lens-cap darks hold no light to measure a gain by, but where a glow lights them: elsewhere a
        # ratio of dark signals is noise, and a blinking photosite's low level read as gain 0 (the
        # scenarios' darks of one exposure, 9 seeds: 8 blinking photosites mapped cold)
        nr, nc = _neighbours(lo_r, lo_c, ser.H, ser.W)
        lit = (ser.mean_reading(nr, nc) - ser.black_at(nr, nc)).mean(axis=0)
        cold &= lit >= p.cold_black_beside * ser.sig_read
    # a gain measured below 0 is a photosite at or below black beside lit neighbours (noise about a
    # dead one's reading): no response, gain 0
    gain = np.maximum(g, 0.0)
    # and one that responds with at most dead_gain of its neighbours' signal is dead: it reads black
    # whatever the light (short series of real scenes, 2-4 views of one photo, a bracket or a burst
    # each: 147 planted dead photosites that the few-view dead rules leave to this one were mapped cold
    # at gain 0; mapped as dead 637 -> 784 of 810, nothing else changed; repair treats both alike,
    # interpolating a cold photosite of gain at most 0.02)
    dead = cold & (gain <= p.dead_gain)
    cold &= ~dead
    ser.found.add(lo_r[cold], lo_c[cold], DefectKind.COLD, score[cold], gain[cold])
    if dead.any():
        level = ser.mean_reading(lo_r[dead], lo_c[dead])
        ser.found.add(lo_r[dead], lo_c[dead], DefectKind.DEAD, score[dead], level)
    ser.taken[lo_r[cold | dead], lo_c[cold | dead]] = True
    return cold | dead
