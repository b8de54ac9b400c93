"""Column and row segments: runs of photosites that leaned across a line, and where each segment ends.

See the rules in :mod:`rawmap.detect` (``column``).
"""

from __future__ import annotations

import math

import numpy as np

from ..accumulate import Accumulator
from ..defectmap import DefectKind
from ..frame import SourceKind
from .params import _BLOCK_ROWS, ClassifyParams
from .series import (
    _dark_noise,
    _darks_only,
    _mean_residual,
    _neighbours,
    _nonzero2,
    _robust_sigma,
    _sample_index,
    _Series,
    _share_score,
    _trimmed_means,
)


def _runs_block(lean: np.ndarray, p: ClassifyParams) -> np.ndarray:
    """(H, w) bool: leaning photosites inside windows of ``column_min`` rows that mostly lean."""
    H, W = lean.shape
    L = p.column_min
    out = np.zeros((H, W), bool)
    if H < L:
        return out
    need = math.ceil(p.column_share * L)
    cs = np.zeros((H + 1, W), np.int32)
    np.cumsum(lean, axis=0, out=cs[1:])
    good = (cs[L:] - cs[:-L]) >= need  # window of L starting at each row
    if not good.any():
        return out
    cover = np.zeros((H + 1, W), np.int32)
    cover[: H - L + 1] += good
    cover[L:] -= good
    covered = np.cumsum(cover[:H], axis=0) > 0
    # the whole span between the first and last leaning photosite of each covered run
    return covered & _seen_in_run(lean, covered) & _seen_in_run(lean[::-1], covered[::-1])[::-1]


def _seen_in_run(lean: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """True where a leaning photosite occurred at or above, within the same covered run."""
    li = lean.astype(np.int32)
    cs = np.cumsum(li, axis=0)
    starts = covered.copy()
    starts[1:] &= ~covered[:-1]
    base = np.where(starts, cs - li, 0)
    np.maximum.accumulate(base, axis=0, out=base)
    return (cs - base) > 0


def _lines(ser: _Series) -> None:
    """Column and row segments (see the module docstring), replacing the point defects they contain.

    Photosites that leaned across a line in ``line_min_scenes`` units (and
    ``min_share`` of them), plus the stuck and dead ones, are grouped into
    segments by :func:`_segments`; in a series of one view, the segments of
    :func:`_one_view_lines`, their ends trimmed (:func:`_trim_segment_ends`).
    The line test needs neighbours on both
    sides, so a segment's last photosites show as point defects: a flagged
    photosite continuing a segment by two along its line joins it.  Values
    are the line's mean offset: the residual 4v - sum4 of a photosite in a
    defective line is 2x the offset.
    """
    acc, p, found = ser.acc, ser.p, ser.found
    H, W = acc.shape
    share = max(p.min_share, p.line_image_share) if acc.source is SourceKind.IMAGE else p.min_share
    m_line = max(p.line_min_scenes, math.ceil(share * ser.units))
    fr, fc = found.rows, found.cols
    stuck = found.of(DefectKind.STUCK)
    deadk = found.of(DefectKind.DEAD)

    def segments(m: int):
        codes = acc.ln_code[acc.ln_count >= m]
        flat = codes >> 2
        row_line = (codes >> 1) & 1
        dark = (codes & 1).astype(bool)
        lr, lc = flat // W, flat % W
        return _segments(
            H,
            W,
            [
                (lr[(row_line == 0) & ~dark], lc[(row_line == 0) & ~dark], 0),
                (lr[(row_line == 0) & dark], lc[(row_line == 0) & dark], 0),
                (lr[(row_line == 1) & ~dark], lc[(row_line == 1) & ~dark], 1),
                (lr[(row_line == 1) & dark], lc[(row_line == 1) & dark], 1),
                (fr[stuck], fc[stuck], 0),
                (fr[stuck], fc[stuck], 1),
                (fr[deadk], fc[deadk], 0),
                (fr[deadk], fc[deadk], 1),
                *dark_leans,
            ],
            p,
        )

    dark_leans = _dark_set_leans(ser)

    cr, ccl, caxis = segments(m_line)
    if cr.size:
        cr, ccl, caxis = _readout_offsets(ser, cr, ccl, caxis)
    vr, vc, va = _trim_segment_ends(*_one_view_lines(ser), acc)
    if vr.size:
        cr, ccl, caxis = _merged([cr, vr], [ccl, vc], [caxis, va], W)
    m_weak = max(2, m_line - p.line_hysteresis)
    if cr.size and m_weak < m_line:
        # hysteresis: a segment found in m_line units runs on where its photosites leaned in fewer
        wr, wc, wa = segments(m_weak)
        cr, ccl, caxis = _grow_segments(cr, ccl, caxis, wr, wc, wa, H, W)
    if cr.size and acc.source is SourceKind.IMAGE:
        cr, ccl, caxis = _strongest_lines(cr, ccl, caxis, acc, W)
    elif cr.size:
        cr, ccl, caxis = _extend_segment_ends(cr, ccl, caxis, acc)
    if not cr.size:
        return
    seg = np.zeros((H, W), bool)
    seg[cr, ccl] = True
    for _ in range(2):
        join = np.zeros(found.rows.size, bool)
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            r1, c1 = found.rows - dr, found.cols - dc
            r2, c2 = found.rows - 2 * dr, found.cols - 2 * dc
            ok = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W) & (r1 >= 0) & (r1 < H) & (c1 >= 0) & (c1 < W)
            hit = np.zeros(found.rows.size, bool)
            hit[ok] = seg[r1[ok], c1[ok]] & seg[r2[ok], c2[ok]]
            join |= hit
        seg[found.rows[join], found.cols[join]] = True
    cr, ccl = _nonzero2(seg)
    found.keep(~seg[found.rows, found.cols])
    del seg
    ser.taken[cr, ccl] = True
    offs = _mean_residual(acc, cr, ccl) / 2.0
    found.add(cr, ccl, DefectKind.COLUMN, _share_score(_line_scenes(acc, cr * W + ccl), ser.units), offs)


def _readout_offsets(ser: _Series, cr: np.ndarray, ccl: np.ndarray, caxis: np.ndarray):
    """The segments (``cr, ccl, caxis``) but those whose lean grows with the exposure as a scene's does.

    A readout fault offsets its line by the same amount in every frame
    (or reads black: dead); a thin line of the scene leans in proportion
    to the light.  Where the frames' exposures differ at one ISO (brackets),
    each photosite's residual regressed on x
    (:func:`rawmap.detect.hot._dark_current`) gives the offset at x = 0; a
    run of a segment whose photosites are lit (their mean at least half
    their same-colour neighbours' across the line, above black: not dead)
    and whose median offset at x = 0 is under ``line_offset_share`` of its
    median lean, either way, grew with the light: a scene's line seen in
    ``line_min_scenes`` views of one scene (crops of one panorama sharing a
    horizontal edge).  Measured on the real scenes' brackets (handheld,
    shake 8, seed 7): a thin bright scene row in three crops of one sample,
    0.21; generated brackets' planted offset segments 0.65-1.25 (or 2.9-5.9
    times of the other sign, where a faint one's mean lean is near zero),
    dead ones 0.45-0.65.  A series of one exposure has no slope: nothing is
    dropped; nor in developed images, nor where the ISO changed: a readout
    offset scales with the gain, as x does (a mixed series' planted column
    on a mono sensor: -0.34).
    """
    from .hot import _dark_current

    acc, p = ser.acc, ser.p
    xs = np.array([f.x for f in acc.frames if f.kind == "photo"])
    isos = {f.iso for f in acc.frames}
    if acc.source is not SourceKind.RAW or len(isos) != 1 or xs.size < 3 or xs.min() <= 0 or xs.max() < 2.0 * xs.min():
        # developed images: their tone curve bends a fixed offset with the light; several ISOs: the
        # offset grows with the gain, and x with it
        return cr, ccl, caxis
    x_hi = float(np.percentile(xs, 90))
    _, _, measured, alpha = _dark_current(acc, p, cr, ccl, x_hi)
    lean = _mean_residual(acc, cr, ccl)
    black = ser.black_at(cr, ccl)
    level = ser.mean_reading(cr, ccl) - black
    # the same-colour photosites across the line: left and right of a column, above and below a row
    nr, nc = _neighbours(cr, ccl, ser.H, ser.W)  # up, down, left, right
    pick = np.where(caxis == 0, 2, 0)
    cols = np.arange(cr.size)
    beside = np.maximum(
        0.5
        * (ser.mean_reading(nr[pick, cols], nc[pick, cols]) + ser.mean_reading(nr[pick + 1, cols], nc[pick + 1, cols]))
        - black,
        0.0,
    )
    keep = np.ones(cr.size, bool)
    for _, run, _ in _line_runs(cr, ccl, caxis, 1):
        if not measured[run].all():
            continue
        if np.median(level[run]) < 0.5 * np.median(beside[run]):
            continue  # dead: reads black whatever the light
        m = abs(float(np.median(lean[run])))
        a = abs(float(np.median(alpha[run])))
        if a < p.line_offset_share * m:
            keep[run] = False
    return cr[keep], ccl[keep], caxis[keep]


def _dark_set_leans(ser: _Series) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Leaning photosites of a calibration set of darks or bias frames, from the means over all of them.

    A readout fault of a few read-noise sigmas (a bias column 3 sigmas
    up) rarely leans beyond ``k_line`` in one frame, and the per-frame
    line test then misses it; over n frames its mean stands out by
    sqrt(n) more.  Only where every frame is a dark: in photos the means
    hold the scenes.  A photosite's offset across a line is its mean
    minus the median of the four same-colour photosites 2 and 4 away on
    either side (the photosites beside a faulty line keep theirs: the
    median ignores the line), in robust sigmas of that offset on its
    colour plane; those beyond ``dark_line_sigma`` and at least
    ``dark_line_min_offset`` times a frame's noise (:func:`_dark_noise`, or
    the read noise; a camera's fixed column pattern, a fraction of that,
    stands out in the means of a few hundred darks and is no fault; not
    clipped, valid in every frame) lean, bright and dark apart, as the
    per-frame test's do.
    The means leave out each photosite's lowest and highest value, so one
    cosmic ray's track in one dark makes no segment.

    Returns
    -------
    list of (rows, cols, axis)
        Groups for :func:`_segments`: bright and dark, along columns (axis
        0) and rows (axis 1); empty when the set is not all darks or has
        fewer than ``line_min_scenes`` frames.
    """
    acc, p = ser.acc, ser.p
    H, W = acc.shape
    if acc.n_frames < p.line_min_scenes or H < 9 or W < 9 or not _darks_only(acc):
        return []

    def offsets(a: int, b: int, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Offsets across the line (against the smallest estimate, and against the median), where they
        are valid, and the level beside it (rows ``a:b``)."""
        lo, hi = (max(0, a - 4), min(H, b + 4)) if axis == 1 else (a, b)
        # without each photosite's lowest and highest value: a cosmic ray's hit in one dark (a track
        # along a column) does not shift it
        trimmed, n = _trimmed_means(acc, (slice(lo, hi),))
        mean = trimmed.astype(np.float32)
        ok = (n == acc.n_frames) & (acc.vmax[lo:hi] < acc.clip)
        # a neighbour that clipped in some dark has a mean cut short: no offset is measured beside it
        # (beside a glow's clipped corner, photosites leaned away from their clipped neighbours)
        cut = acc.vmax[lo:hi] >= acc.clip

        def across_of(x: np.ndarray, fill) -> list[np.ndarray]:
            """The photosites 4 and 2 before and 2 and 4 after each of rows a..b-1 across the line."""
            if axis == 0:
                pad = np.pad(x, ((0, 0), (4, 4)), constant_values=fill)
                return [pad[:, i : i + W] for i in (0, 2, 6, 8)]
            pad = np.pad(x, ((4 - (a - lo), 4 - (hi - b)), (0, 0)), constant_values=fill)
            return [pad[i : i + b - a] for i in (0, 2, 6, 8)]

        across = across_of(mean, np.nan)
        if axis == 1:
            mean, ok = mean[a - lo : a - lo + b - a], ok[a - lo : a - lo + b - a]
        ok &= ~np.logical_or.reduce(across_of(cut, False))
        # both sides needed (beside a faulty line at the edge, one side's median is half its offset)
        ok = ok & (np.isfinite(across[0]) | np.isfinite(across[1])) & (np.isfinite(across[2]) | np.isfinite(across[3]))
        stack = np.sort(np.stack(across), axis=0)  # NaN (off the sensor) last
        k = np.isfinite(stack).sum(axis=0)
        med = np.where(k == 4, (stack[1] + stack[2]) / 2.0, np.where(k == 3, stack[1], (stack[0] + stack[1]) / 2.0))
        # across a gradient (a glow) the median is pulled towards a faulty line beside it, and
        # beside the sensor's edge it is one-sided; the means of the symmetric pairs (2 and 4 away)
        # are not moved by a straight gradient, and a line beside spoils one of them only: the
        # offset is the smallest against any of the three (photosites 2 and 4 beside a bright
        # segment in a glow leaned against the median: 79 false flags in 4 series). The spread it is
        # judged by stays the median's: the smallest of three is narrower, and a camera's fixed
        # pattern of columns then stood out (30 "column" photosites in a clean bias set)
        off = mean - med
        smallest = off
        for pair in ((across[1] + across[2]) / 2.0, (across[0] + across[3]) / 2.0):
            other = mean - pair
            smallest = np.where(np.isfinite(other) & (np.abs(other) < np.abs(smallest)), other, smallest)
        return smallest, off, ok, med

    planes = [(0, 0), (0, 1), (1, 0), (1, 1)] if acc.cfa is not None else [None]
    # and at least a frame's noise: the fixed pattern of a camera's columns (a fraction of it) would
    # stand out in the means of a few hundred darks, and is no fault
    noise = _dark_noise(acc)
    floor = p.dark_line_min_offset * (noise if noise is not None else ser.sig_read)
    groups: list[tuple[np.ndarray, np.ndarray, int]] = []
    # a mean's noise grows with its level (an amplifier's glow in a corner, 2,000-16,000 DN against a
    # background of 20, made 179 "column" photosites in 4 defect-free sets): the plane's robust sigma,
    # measured where most photosites are, scales with the frames' noise model at the level beside
    # each photosite (not its own: a line's offset adds no shot noise)
    noise_a = float(np.median([f.noise_a for f in acc.frames]))
    noise_b = float(np.median([f.noise_b for f in acc.frames]))
    for axis in (0, 1):
        samples: dict = {pl: [] for pl in planes}
        levels: dict = {pl: [] for pl in planes}
        for a in range(0, H, _BLOCK_ROWS):
            _, o, ok, beside = offsets(a, min(H, a + _BLOCK_ROWS), axis)
            for pl in planes:
                sub = o if pl is None else o[(pl[0] - a) % 2 :: 2, pl[1] :: 2]
                use = ok if pl is None else ok[(pl[0] - a) % 2 :: 2, pl[1] :: 2]
                samples[pl].append(sub[use][::7])
                lv = beside if pl is None else beside[(pl[0] - a) % 2 :: 2, pl[1] :: 2]
                levels[pl].append(lv[use][::7])
        sigma = {pl: _robust_sigma(np.concatenate(v).astype(np.float64)) for pl, v in samples.items()}
        level_at = {
            pl: float(np.median(np.concatenate(v))) if sum(x.size for x in v) else 0.0 for pl, v in levels.items()
        }
        bright_r: list[np.ndarray] = []
        bright_c: list[np.ndarray] = []
        dark_r: list[np.ndarray] = []
        dark_c: list[np.ndarray] = []
        for a in range(0, H, _BLOCK_ROWS):
            b = min(H, a + _BLOCK_ROWS)
            o, _, ok, beside = offsets(a, b, axis)
            if acc.cfa is None:
                sig = np.full(o.shape, sigma[None], np.float32)
                ref = np.full(o.shape, level_at[None], np.float32)
            else:
                sig = np.empty(o.shape, np.float32)
                ref = np.empty(o.shape, np.float32)
                for (py, px), v in sigma.items():
                    sig[(py - a) % 2 :: 2, px::2] = v
                    ref[(py - a) % 2 :: 2, px::2] = level_at[(py, px)]
            # noise_b: residual variance per DN of level above black; the means hold black too,
            # which cancels in the difference
            var_ref = np.maximum(noise_a + noise_b * (ref - acc.black2.mean()), 1e-6)
            sig *= np.sqrt(np.maximum(1.0, (noise_a + noise_b * (beside - acc.black2.mean())) / var_ref))
            with np.errstate(invalid="ignore", divide="ignore"):
                z = o / sig
            big = np.abs(o) >= floor
            for want, rr, cc in (
                (big & (z >= p.dark_line_sigma), bright_r, bright_c),
                (big & (z <= -p.dark_line_sigma), dark_r, dark_c),
            ):
                r, c = np.nonzero(want & ok)
                rr.append(r + a)
                cc.append(c)
        for rr, cc in ((bright_r, bright_c), (dark_r, dark_c)):
            groups.append((np.concatenate(rr).astype(np.int64), np.concatenate(cc).astype(np.int64), axis))
    return groups


def _two_point_offsets(
    acc: Accumulator,
    a: int,
    b: int,
    axis: int,
    k: float,
    shake: float,
    cols: tuple[int, int] | None = None,
    with_opposed: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``a:b`` of each photosite's offset from the photosites beside it across a line.

    In one view whose light changed, a photosite's scene detail scales with
    the light while an offset (a readout fault) does not.  The lowest and
    highest values over the series give two points; with ``k`` the view's
    light ratio (:func:`_light_ratio`) a photosite's offset against black is
    ``(k vmin - vmax) / (k - 1)`` (scene detail cancels), and its offset
    across the line that minus the mean of the same-colour photosites two
    away on either side (columns for ``axis`` 0, rows for 1).  A faulty
    line two away echoes in the photosites beside it at minus half its
    offset: where the offset two away is 1.5 times larger and of the other
    sign, the photosite is not usable.

    Parameters
    ----------
    acc : Accumulator
    a, b : int
        The rows.
    axis : int
        0 across a column line (the photosites two columns away), 1 across a row line.
    k : float
        The view's light ratio.
    shake : float
        See ``usable`` below.
    cols : (int, int), optional
        Only columns ``first:last`` (W below is their number): a photosite's
        figures are those of the whole rows where it is 2 columns or more
        inside them, or at the sensor's edge.
    with_opposed : bool, optional
        Also the echo ratio ``opposed`` (three more temporaries of the
        block's size).

    Returns
    -------
    offset : (b - a, W) ndarray of float32
        DN.
    level : (b - a, W) ndarray of float32
        The photosites beside it at the lowest light, DN above black (the
        offset's noise grows with it).
    usable : (b - a, W) ndarray of bool
        No echo, no photosite of the three clipped, and the offset x ``(k - 1)``
        above ``shake`` x the scene's contrast there (``|vmax - nb_hi|``
        plus the difference of the two sides at the highest light), which
        a subpixel shake of the view turns into an apparent offset.
    opposed : (b - a, W) ndarray of float32, or (0, W) unless ``with_opposed``
        The larger offset against black of the two photosites two away of
        the other sign, over the photosite's own offset (0 where neither is
        of the other sign): about 2 beside a faulty line (its echo), about
        0 on one.
    """
    H, W = acc.shape
    first, last = (0, W) if cols is None else cols
    W = last - first
    lo_r, hi_r = max(0, a - 2), min(H, b + 2)
    black = np.tile(acc.black2.astype(np.float32), ((hi_r - lo_r + 3) // 2 + 1, (W + 3) // 2 + 2))
    black = black[(lo_r & 1) : (lo_r & 1) + hi_r - lo_r, (first & 1) : (first & 1) + W]
    vlo = acc.vmin[lo_r:hi_r, first:last].astype(np.float32) - black
    vhi = acc.vmax[lo_r:hi_r, first:last].astype(np.float32) - black
    clip = acc.vmax[lo_r:hi_r, first:last] >= acc.clip
    del black

    def beside(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if axis == 0:
            pad = np.pad(x, ((0, 0), (2, 2)), mode="reflect")
            return pad[:, :-4], pad[:, 4:]
        pad = np.pad(x, ((2, 2), (0, 0)), mode="reflect") if x.shape[0] >= 3 else np.pad(x, ((2, 2), (0, 0)), "edge")
        return pad[:-4], pad[4:]

    s = slice(a - lo_r, a - lo_r + (b - a))
    full = (np.float32(k) * vlo - vhi) / np.float32(k - 1.0)
    f1, f2 = beside(full)
    offset = full[s] - 0.5 * (f1[s] + f2[s])
    if with_opposed:
        opposed = np.maximum(
            np.where(f1[s] * offset < 0, np.abs(f1[s]), 0), np.where(f2[s] * offset < 0, np.abs(f2[s]), 0)
        )
        opposed /= np.maximum(np.abs(offset), np.float32(1e-6))
    else:  # (three block-sized temporaries fewer in the sensor-wide pass)
        opposed = np.zeros((0, W), np.float32)
    echo = ((np.abs(f1[s]) >= 1.5 * np.abs(offset)) & (f1[s] * offset < 0)) | (
        (np.abs(f2[s]) >= 1.5 * np.abs(offset)) & (f2[s] * offset < 0)
    )
    del full, f1, f2
    lo1, lo2 = beside(vlo)
    level = 0.5 * (lo1[s] + lo2[s])
    hi1, hi2 = beside(vhi)
    edge = np.abs(vhi[s] - 0.5 * (hi1[s] + hi2[s])) + np.abs(hi1[s] - hi2[s])
    # a shake mixes each photosite with the ones next to it (any colour), the photosites beside it
    # with theirs: the contrast of the three photosites either side across the line counts too
    pad = np.pad(vhi, ((0, 0), (3, 3)) if axis == 0 else ((3, 3), (0, 0)), mode="edge")
    n = vhi.shape[axis ^ 1]
    hi_w = pad[:, :n].copy() if axis == 0 else pad[:n].copy()
    lo_w = hi_w.copy()
    for d in range(1, 7):  # running max and min: no stack of seven windows
        w_ = pad[:, d : d + n] if axis == 0 else pad[d : d + n]
        np.maximum(hi_w, w_, out=hi_w)
        np.minimum(lo_w, w_, out=lo_w)
    edge = np.maximum(edge, hi_w[s] - lo_w[s])
    del hi_w, lo_w
    pad = np.pad(vhi, 1, mode="edge")
    for dr, dc in ((0, 1), (2, 1)) if axis == 0 else ((1, 0), (1, 2)):
        edge = np.maximum(edge, np.abs(pad[dr : dr + vhi.shape[0], dc : dc + W][s] - vhi[s]))
    del pad
    c1, c2 = beside(clip)
    usable = ~(clip[s] | c1[s] | c2[s] | echo) & (np.abs(offset) * np.float32(k - 1.0) >= shake * edge)
    return offset, level, usable, opposed


def _light_ratio(acc: Accumulator) -> float:
    """How many times the light of a one-view series changed: the median ratio of the highest to the
    lowest value (above black) over the photosites lit clearly above black at both and never clipped."""
    H, W = acc.shape
    sr, sc = _sample_index(H, W)
    black = acc.black2[sr & 1, sc & 1]
    lo = acc.vmin[sr, sc] - black
    hi = acc.vmax[sr, sc] - black
    ok = (lo >= 0.005 * (acc.clip - float(np.max(acc.black2)))) & (acc.vmax[sr, sc] < acc.clip)
    if ok.sum() < 100:
        return 1.0
    return float(np.median(hi[ok] / lo[ok]))


def _plane_shifted(p: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Each of the (T, h, w) tiles ``p`` read ``(dy, dx)`` samples further on (bilinear, edges repeated)."""
    _, h, w = p.shape
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    r0 = np.clip(np.arange(h) + iy, 0, h - 1)
    r1 = np.clip(np.arange(h) + iy + 1, 0, h - 1)
    c0 = np.clip(np.arange(w) + ix, 0, w - 1)
    c1 = np.clip(np.arange(w) + ix + 1, 0, w - 1)
    top, bottom = p[:, r0], p[:, r1]
    out = top[:, :, c0] * ((1 - fy) * (1 - fx))
    out += top[:, :, c1] * ((1 - fy) * fx)
    out += bottom[:, :, c0] * (fy * (1 - fx))
    out += bottom[:, :, c1] * (fy * fx)
    return out


#: colour-plane samples a side of one tile of :func:`_view_drift`, and the most tiles of a colour plane
_DRIFT_TILE, _DRIFT_TILES = 64, 24
#: samples kept clear of a tile's edges (a shift reads that far past them), and the largest shift (samples)
_DRIFT_HALO, _DRIFT_MAX = 4, 3.0


def _view_drift(acc: Accumulator, k: float, iterations: int = 5) -> float:
    """How far a one-view series' picture moved between its brightest and its dimmest frame, photosites.

    Where the light fell ``k`` times, each photosite's highest value is
    the brightest frame's and its lowest the dimmest's, so ``k vmin`` is
    the bright picture ``vmax`` as the dimmest frame saw it: the same on a
    still tripod, moved where the view drifted (a tripod settling, a mount
    sinking in the cold).  The shift is fitted by Lucas-Kanade steps
    (:func:`_lk_shift`) on tiles of each colour plane spread over the
    sensor (photosites by a clipped one left out), for the whole sensor
    and for each quarter of it: a view that turns (a head creeping round)
    or zooms (a lens whose focus breathes as it cools) moves its quarters
    apart while its centre stays.  The largest is returned.
    Measured on one-view series of the real samples' scenes (12 frames)
    moved 0.5 and 1.5 photosites down (half that across, 0.56 and 1.68 in
    all): 0.55-0.61 and 1.65-1.72; turned or zoomed so that the corners
    move 1.5: 0.57-1.13; on a still tripod 0-0.15; the timelapse
    scenario's 0.1-photosite shake 0.02-0.14, its drift of 1.68 photosites
    1.09-1.60 (sharp edges that a subpixel model follows less well).
    0.15-0.26 s on the real samples, whatever their size.

    Parameters
    ----------
    acc : Accumulator
        A one-view series (``vmin``, ``vmax`` (H, W)).
    k : float
        The view's light ratio (:func:`_light_ratio`).
    iterations : int
        Lucas-Kanade steps.

    Returns
    -------
    float
        Photosites; 0 where no tile fits the sensor or none holds texture.
    """
    H, W = acc.shape
    span = _DRIFT_TILE + 2 * _DRIFT_HALO
    his, los, clips, quarter = [], [], [], []
    for py in range(2):
        for px in range(2):
            b = float(acc.black2[py, px])
            n, m = (H - py + 1) // 2, (W - px + 1) // 2
            # tiles side by side, at most _DRIFT_TILES of them spread evenly over the plane
            starts = [(a, c) for a in range(0, n - span + 1, span) for c in range(0, m - span + 1, span)]
            pick = np.unique(np.linspace(0, len(starts) - 1, min(len(starts), _DRIFT_TILES)).round().astype(int))
            for i in pick if starts else []:
                a, c = starts[i]
                rows = slice(py + 2 * a, py + 2 * (a + span), 2)
                cols = slice(px + 2 * c, px + 2 * (c + span), 2)
                his.append(acc.vmax[rows, cols].astype(np.float64) - b)
                los.append(k * (acc.vmin[rows, cols].astype(np.float64) - b))
                clips.append(acc.vmax[rows, cols] >= acc.clip)
                quarter.append(2 * (2 * (a + span // 2) >= n) + (2 * (c + span // 2) >= m))
    if not his:
        return 0.0
    hi, lo = np.stack(his), np.stack(los)
    # photosites within the largest shift of a clipped one are left out
    clip = np.stack(clips)
    reach = int(math.ceil(_DRIFT_MAX)) + 1
    near = clip.copy()
    for _ in range(reach):
        near[:, 1:] |= near[:, :-1].copy()
        near[:, :-1] |= near[:, 1:].copy()
        near[:, :, 1:] |= near[:, :, :-1].copy()
        near[:, :, :-1] |= near[:, :, 1:].copy()
    del his, los, clips, clip
    inner = (slice(None), slice(_DRIFT_HALO, -_DRIFT_HALO), slice(_DRIFT_HALO, -_DRIFT_HALO))
    use = ~near[inner]
    # the whole sensor's shift, and each quarter's: a view that turns or zooms (a head creeping
    # round, a lens whose focus breathes) moves its quarters apart while its centre stays
    moves = [_lk_shift(hi, lo[inner], use, iterations)]
    which = np.asarray(quarter)
    for q in range(4):
        if int((which == q).sum()) >= 2:
            moves.append(_lk_shift(hi[which == q], lo[inner][which == q], use[which == q], iterations))
    return 2.0 * max(moves)  # plane samples are two photosites apart


def _lk_shift(hi: np.ndarray, lo: np.ndarray, use: np.ndarray, iterations: int) -> float:
    """How far the tiles ``hi`` moved to their inner parts ``lo``, by Lucas-Kanade steps.

    Parameters
    ----------
    hi : (T, h, w) ndarray of float64
        The bright picture's tiles, with a margin of ``_DRIFT_HALO`` samples.
    lo : (T, h - 2 _DRIFT_HALO, w - 2 _DRIFT_HALO) ndarray of float64
        The dim picture (times the light ratio) inside that margin.
    use : ndarray of bool, the shape of ``lo``
        The samples that count (none beside a clipped one).
    iterations : int

    Returns
    -------
    float
        Samples: the shift's length less two of its standard errors (the
        residual's spread over the gradients' weakest direction), at least
        0; 0 where the tiles hold no texture.
    """
    y0 = lo.ravel()[use.ravel()]
    ok = use.ravel()
    d = np.zeros(2)
    spread = 0.0
    for _ in range(iterations):
        hs = _plane_shifted(hi, d[0], d[1])
        h0, h1 = _DRIFT_HALO, hs.shape[1] - _DRIFT_HALO
        w0, w1 = _DRIFT_HALO, hs.shape[2] - _DRIFT_HALO
        gy = 0.5 * (hs[:, h0 + 1 : h1 + 1, w0:w1] - hs[:, h0 - 1 : h1 - 1, w0:w1]).ravel()[ok]
        gx = 0.5 * (hs[:, h0:h1, w0 + 1 : w1 + 1] - hs[:, h0:h1, w0 - 1 : w1 - 1]).ravel()[ok]
        y = y0 - hs[:, h0:h1, w0:w1].ravel()[ok]
        # a defect's own offset (a stuck photosite, a faulty line: (k - 1) times it) follows no gradient
        # and would outweigh a quarter's few tiles: residuals far out of the rest's spread stay out
        mad = float(np.median(np.abs(y - np.median(y)))) if y.size else 0.0
        fit = np.abs(y) <= 8.0 * 1.4826 * mad if mad > 0 else np.ones(y.size, bool)
        gy, gx, y = gy[fit], gx[fit], y[fit]
        ata = np.array([[gy @ gy, gy @ gx], [gy @ gx, gx @ gx]])
        if y.size < 3 or np.linalg.det(ata) <= 1e-12 * max(float(np.trace(ata)) ** 2, 1e-300):
            return 0.0
        step = np.linalg.solve(ata, np.array([gy @ y, gx @ y]))
        d = np.clip(d + step, -_DRIFT_MAX, _DRIFT_MAX)
        spread = float(np.sqrt(np.mean((y - gy * step[0] - gx * step[1]) ** 2)))
    error = spread / math.sqrt(max(float(np.linalg.eigvalsh(ata)[0]), 1e-300))
    return max(float(np.hypot(d[0], d[1])) - 2.0 * error, 0.0)


def _beside_across(mask: np.ndarray, axis: int) -> np.ndarray:
    """Where either photosite next to each one across a line (columns beside a column line, ``axis``
    0; rows beside a row line, 1) is set in ``mask``."""
    out = np.zeros_like(mask)
    if axis == 0:
        out[:, 1:] |= mask[:, :-1]
        out[:, :-1] |= mask[:, 1:]
    else:
        out[1:] |= mask[:-1]
        out[:-1] |= mask[1:]
    return out


def _one_view_lines(ser: _Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column and row segments of a series of one view whose light changed (a timelapse at dusk).

    The line test of the accumulator needs ``line_min_scenes`` views; one
    view cannot tell a line of the scene from a readout fault by the lean
    alone.  But a fault's offset stays while the light falls, where scene
    detail falls with it (:func:`_two_point_offsets`).  A photosite leans
    when its offset is ``line_sigma`` robust sigmas out among the
    photosites at its level (16 bins of the level beside it; the noise grows
    with the light) and the view's light changed ``line_light_ratio`` times
    at least; runs of them make segments as in :func:`_segments`.  RAW
    mosaics with photos in them (the dimmest frames of a dusk may pass
    for darks; a view's light ratio is measured where it is lit).  Not in
    a view that drifted more than ``line_max_drift`` photosites between
    its brightest and its dimmest frame (:func:`_view_drift`, a
    tripod settling): its edges move across the photosites, which then
    lean as a fault does (``ser.lines`` is then "moved", else "ran").  A
    fault is one photosite wide: a photosite whose neighbour across the
    line leans the same way by ``line_wide`` of the sigmas is the scene's
    (the edge of a row of lit windows that stay lit while the daylight
    falls at a fixed exposure; any edge through a lens spans two or more).
    A segment so found runs on along its line where its photosites lean
    ``line_weak`` of those sigmas (where the scene's light hides part of
    its offset: :func:`_grow_segments`), to the last photosite that
    carries ``line_keep_share`` of its offset (:func:`_trim_to_offset`),
    and a run that echoes a faulty line two away is dropped (there too).

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    axis : (N,) ndarray of int8
    """
    acc, p = ser.acc, ser.p
    empty = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    if acc.n_scenes != 1 or acc.source is not SourceKind.RAW or acc.n_frames < 8:
        return empty
    if not any(f.kind == "photo" for f in acc.frames):
        return empty
    H, W = acc.shape
    k = _light_ratio(acc)
    if k < p.line_light_ratio:
        return empty
    n_bins = 16
    # a view that drifted moves its edges across the photosites, which then lean as a fault does
    if _view_drift(acc, k) > p.line_max_drift:
        ser.lines = "moved"
        return empty
    ser.lines = "ran"
    groups = []
    weak_groups: list[tuple[np.ndarray, np.ndarray, int]] = []
    for axis in (0, 1):
        # the offsets' spread per level bin, from rows spread over the sensor
        step = max(1, H // 256)
        offs, lvls = [], []
        for a in range(0, H, step):
            o, lv, ok, _ = _two_point_offsets(acc, a, min(H, a + 1), axis, k, 0.0)
            offs.append(o[ok])
            lvls.append(lv[ok])
        o_s, l_s = np.concatenate(offs), np.concatenate(lvls)
        if o_s.size < 50 * n_bins:
            continue
        edges = np.quantile(l_s, np.linspace(0.0, 1.0, n_bins + 1))[1:-1]
        b_s = np.searchsorted(edges, l_s, side="right")
        med = np.array([np.median(o_s[b_s == i]) for i in range(n_bins)])
        sig = np.array([1.4826 * np.median(np.abs(o_s[b_s == i] - med[i])) for i in range(n_bins)])
        sig = np.maximum(sig, 0.5)
        rows_p: list[np.ndarray] = []
        cols_p: list[np.ndarray] = []
        rows_n: list[np.ndarray] = []
        cols_n: list[np.ndarray] = []
        weak_p: list[tuple[np.ndarray, np.ndarray]] = []
        weak_n: list[tuple[np.ndarray, np.ndarray]] = []
        for a in range(0, H, _BLOCK_ROWS):
            b = min(H, a + _BLOCK_ROWS)
            a0, b0 = max(0, a - 1), min(H, b + 1)  # a row either side: the photosites beside a row line
            o, lv, ok, _ = _two_point_offsets(acc, a0, b0, axis, k, p.line_shake)
            bins = np.searchsorted(edges, lv, side="right")
            z = (o - med[bins]) / sig[bins]
            del o, lv, bins
            core = slice(a - a0, a - a0 + (b - a))
            for sign, rows_s, cols_s in ((1.0, rows_p, cols_p), (-1.0, rows_n, cols_n)):
                lean = ok & (sign * z >= p.line_sigma)
                # a fault is one photosite wide; the scene's edges, a row of lit windows, are wider
                # through any lens: where the photosite beside it across the line leans the same way
                # (line_wide as far), it is the scene's
                wide = _beside_across(sign * z >= p.line_wide * p.line_sigma, axis)
                r_, c_ = _nonzero2((lean & ~wide)[core])
                rows_s.append(r_ + a)
                cols_s.append(c_)
                r_, c_ = _nonzero2((ok & (sign * z >= p.line_weak * p.line_sigma) & ~wide)[core])
                (weak_p if sign > 0 else weak_n).append((r_ + a, c_))
        groups.append((np.concatenate(rows_p), np.concatenate(cols_p), axis))
        groups.append((np.concatenate(rows_n), np.concatenate(cols_n), axis))
        for weak in (weak_p, weak_n):
            weak_groups.append((np.concatenate([w[0] for w in weak]), np.concatenate([w[1] for w in weak]), axis))
    if not groups:
        return empty
    sr, sc, sa = _segments(H, W, groups, p)
    if sr.size:
        # a segment runs on where its photosites lean line_weak of the sigmas (the scene's light hides
        # part of its offset), and ends where its offset does; only the lines that hold one are sought
        on_lines = []
        for rows, cols, axis in weak_groups:
            line, strong = (cols, sc[sa == 0]) if axis == 0 else (rows, sr[sa == 1])
            keep = np.isin(line, strong)
            on_lines.append((rows[keep], cols[keep], axis))
        wr, wc, wa = _segments(H, W, on_lines, p)
        sr, sc, sa = _grow_segments(sr, sc, sa, wr, wc, wa, H, W)
    return _trim_to_offset(sr, sc, sa, acc, k, p.line_keep_share)


def _run_offsets(acc: Accumulator, k: float, axis: int, line: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two-point ``offset`` and ``opposed`` (:func:`_two_point_offsets`) of a run of consecutive
    photosites at ``pos`` along column ``line`` (``axis`` 0) or row ``line`` (1), (n,) float32 each.

    A column's run is measured on the five columns about it only: the whole rows of a long column
    of a 24 MP sensor would take about a gigabyte."""
    if axis == 0:
        W = acc.shape[1]
        c0, c1 = max(0, line - 3) & ~1, min(W, line + 3)
        o, _, _, opp = _two_point_offsets(acc, int(pos[0]), int(pos[-1]) + 1, 0, k, 0.0, (c0, c1), True)
        return o[:, line - c0], opp[:, line - c0]
    o, _, _, opp = _two_point_offsets(acc, line, line + 1, 1, k, 0.0, with_opposed=True)
    return o[0, pos], opp[0, pos]


def _line_echoes(ser: _Series) -> None:
    """Drop point flags that only echo a neighbouring column or row segment.

    A photosite's residual ``4v - sum4`` compares it with its four
    same-colour neighbours; when one of them lies on a defective line (two
    of them at the sensor's edge, where the kernels reflect), the line's
    offset shows in the photosite's residual, and a whole row beside a row
    segment turned hot or noisy (176 false flags in one generated dark
    series).  For each hot, noisy or cold photosite touching a segment, the
    excess is measured again from the value sums against its neighbours off
    the line; the flag stays when that excess keeps the sign and at least
    ``line_echo_share`` of the original.
    """
    found, acc = ser.found, ser.acc
    col = found.of(DefectKind.COLUMN)
    if not col.any():
        return
    H, W = acc.shape
    # sparse (sorted flat indices), no sensor-sized arrays: a segment's photosites, and two further
    # along its line each way (its ends are found to within a photosite or two)
    sr, sc = found.rows[col].astype(np.int64), found.cols[col].astype(np.int64)
    flat = np.unique(sr * W + sc)
    in_row = np.isin(sr * W + np.clip(sc - 1, 0, W - 1), flat) & (sc > 0)
    in_row |= np.isin(sr * W + np.clip(sc + 1, 0, W - 1), flat) & (sc < W - 1)
    grown = [flat]
    for k in (-2, -1, 1, 2):
        r2 = np.where(in_row, sr, sr + k)
        c2 = np.where(in_row, sc + k, sc)
        ok = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
        grown.append(r2[ok] * W + c2[ok])
    seg_flat = np.unique(np.concatenate(grown))
    point = found.of(DefectKind.HOT) | found.of(DefectKind.NOISY) | found.of(DefectKind.COLD)
    idx = np.flatnonzero(point)
    if idx.size == 0:
        return
    r, c = found.rows[idx], found.cols[idx]
    nr, nc = _neighbours(r, c, H, W)
    on_line = np.isin(nr.astype(np.int64) * W + nc, seg_flat)
    touch = on_line.any(axis=0) & ~on_line.all(axis=0)
    if not touch.any():
        return
    idx, r, c, nr, nc, on_line = idx[touch], r[touch], c[touch], nr[:, touch], nc[:, touch], on_line[:, touch]
    own = ser.mean_reading(r, c)
    nb = ser.mean_reading(nr, nc)
    off_line = np.where(on_line, 0.0, nb).sum(axis=0) / (~on_line).sum(axis=0)
    before = _mean_residual(acc, r, c) / 4.0
    after = own - off_line
    echo = (np.sign(after) != np.sign(before)) | (np.abs(after) < ser.p.line_echo_share * np.abs(before))
    if echo.any():
        drop = np.zeros(found.rows.size, bool)
        drop[idx[echo]] = True
        ser.taken[found.rows[drop], found.cols[drop]] = False
        found.keep(~drop)


def _segments(H: int, W: int, groups, p: ClassifyParams):
    """Photosites in column/row segments, from sparse leaning photosites.

    Parameters
    ----------
    groups : list of (rows, cols, axis)
        Leaning photosites of one sign and direction; axis 0 = along a
        column, 1 = along a row.  Runs are sought along each line within one
        colour (every second photosite), so a fault that shows in one colour
        only is found too; the photosites of the other colour inside the
        span are then included, since a readout fault takes the whole line
        segment.

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    axis : (N,) ndarray of int8
        0 for a photosite of a column segment, 1 of a row segment.
    """
    half = ClassifyParams(**{**p.to_dict(), "column_min": max(4, p.column_min // 2)})
    min_count = math.ceil(half.column_share * half.column_min)
    out_r: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    out_a: list[np.ndarray] = []
    for rows, cols, axis in groups:
        if rows.size < min_count:
            continue
        along, line = (rows, cols) if axis == 0 else (cols, rows)
        n_along = H if axis == 0 else W
        lines, inv, counts = np.unique(line, return_inverse=True, return_counts=True)
        ok = counts >= min_count
        if not ok.any():
            continue
        keep = ok[inv]
        lines_ok = lines[ok]
        col_of = np.searchsorted(lines_ok, line[keep])
        blk = np.zeros((n_along, lines_ok.size), bool)
        blk[along[keep], col_of] = True
        seg = np.zeros(blk.shape, bool)
        for par in (0, 1):
            seg[par::2] = _runs_block(blk[par::2], half)
        gap = np.zeros_like(seg)
        gap[1:-1] = seg[:-2] & seg[2:]
        seg |= gap
        a_, b_ = _nonzero2(seg)
        r_, c_ = (a_, lines_ok[b_]) if axis == 0 else (lines_ok[b_], a_)
        out_r.append(r_.astype(np.int64))
        out_c.append(c_.astype(np.int64))
        out_a.append(np.full(r_.size, axis, np.int8))
    if not out_r:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    return _merged(out_r, out_c, out_a, W)


def _merged(rows: list, cols: list, axes: list, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment photosites given in parts, each photosite once (with the axis of the first part that
    has it), in row-major order.

    Parameters
    ----------
    rows, cols : list of (n_i,) ndarray of int
    axes : list of (n_i,) ndarray of int8
    W : int
        The sensor's width.

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    axis : (N,) ndarray of int8
    """
    r = np.concatenate(rows).astype(np.int64)
    c = np.concatenate(cols).astype(np.int64)
    a = np.concatenate(axes)
    _, first = np.unique(r * W + c, return_index=True)
    return r[first], c[first], a[first]


def _runs_along(rows: np.ndarray, cols: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Photosites in order along their lines (columns for ``axis`` 0, rows for 1), and where each run starts.

    Returns
    -------
    order : (N,) ndarray of int64
        Sorts the photosites by line, then by position along it.
    start : (N,) ndarray of bool
        In that order: True at the first photosite of each run of consecutive positions on one line.
    """
    line, pos = (cols, rows) if axis == 0 else (rows, cols)
    order = np.lexsort((pos, line))
    line, pos = line[order], pos[order]
    start = np.ones(order.size, bool)
    start[1:] = (line[1:] != line[:-1]) | (pos[1:] != pos[:-1] + 1)
    return order, start


def _grow_segments(cr, ccl, caxis, wr, wc, wa, H: int, W: int):
    """The strong segments (``cr, ccl, caxis``) and every weak segment run (``wr, wc, wa``) that shares
    a photosite with one of them along the same axis.

    Sparse throughout (sorted photosite lists, no sensor-sized arrays): the
    classification's peak memory stays that of the sums.
    """
    out_r, out_c, out_a = [cr], [ccl], [caxis]
    for axis in (0, 1):
        sel = wa == axis
        on_axis = caxis == axis
        if not sel.any() or not on_axis.any():
            continue
        # a weak run grows only a strong segment of its own axis: a scene's pole leaning in two views
        # crossed a true row segment and became a 25-photosite column (brackets, seed 1)
        strong = np.unique(cr[on_axis].astype(np.int64) * W + ccl[on_axis])
        r_, c_ = wr[sel].astype(np.int64), wc[sel].astype(np.int64)
        order, start = _runs_along(r_, c_, axis)
        r_, c_ = r_[order], c_[order]
        run = np.cumsum(start)
        good = np.unique(run[np.isin(r_ * W + c_, strong)])
        keep = np.isin(run, good)
        out_r.append(r_[keep])
        out_c.append(c_[keep])
        out_a.append(np.full(int(keep.sum()), axis, np.int8))
    return _merged(out_r, out_c, out_a, W)


def _trim_to_offset(cr, ccl, caxis, acc: Accumulator, k: float, share: float, echo_ratio: float = 1.0):
    """One view's segments (``cr, ccl, caxis``) from the first to the last photosite carrying their offset,
    without the runs that echo a faulty line two away.

    The offset of each photosite against the ones two away across its line
    (:func:`_two_point_offsets`, scene detail cancelled by the light's
    change), per colour parity along a run of 4 or more: the span keeps the
    photosites from the first to the last whose offset is at least
    ``share`` of its parity's median.  A segment grown where its
    photosites lean weakly (``line_weak``) otherwise ran on past its end
    where the scene leaned the same way (a timelapse, seed 7: 7 photosites
    past a column's end, those leaning at 0.3-0.4 of its offset of 110 DN).  A parity
    whose median is under a quarter of the other's is the colour a
    one-colour fault spans without leaning: it follows the other's span.

    A faulty line's offset ``O`` shows in the photosites two away across it
    as ``-O / 2`` (their neighbour across is in it), so a photosite there
    leans the other way.  Each photosite is checked alone (usable only
    where the offset two away is under 1.5 x its own, of the other sign:
    :func:`_two_point_offsets`), but noise lets some of a long echo through,
    and a run of them was a false row beside a true one (a timelapse, seed
    21: 28 photosites two rows above a faulty row segment of 200).  A run
    whose median ``opposed`` ratio is ``echo_ratio`` or more is such an
    echo, and is dropped: an echo's is about 2, a faulty line's about 0.

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    axis : (N,) ndarray of int8
    """
    keep = np.ones(cr.size, bool)
    for axis, run, pos in _line_runs(cr, ccl, caxis, 4):
        o, opposed = _run_offsets(acc, k, axis, int(ccl[run[0]]) if axis == 0 else int(cr[run[0]]), pos)
        if float(np.median(opposed)) >= echo_ratio:
            keep[run] = False
            continue
        par = pos & 1
        meds = _parity_medians(o, par)
        if meds is None:
            continue
        _cut_to_span(keep, run, [(par == q) & (o / m >= share) for q, m in enumerate(meds) if m is not None])
    return cr[keep], ccl[keep], caxis[keep]


def _cut_to_span(keep: np.ndarray, run: np.ndarray, carrying: list[np.ndarray]) -> None:
    """Set ``keep[run]`` False before the first and after the last photosite that any mask of
    ``carrying`` marks ((len(run),) bool each, per colour parity); nothing where none marks one."""
    marked = [np.flatnonzero(m) for m in carrying]
    marked = [m for m in marked if m.size]
    if marked:
        keep[run[: min(m[0] for m in marked)]] = False
        keep[run[max(m[-1] for m in marked) + 1 :]] = False


def _line_runs(cr, ccl, caxis, min_len: int):
    """Each run of consecutive photosites along one line of the segments (``cr, ccl, caxis``), ``min_len`` or longer.

    Yields
    ------
    axis : int
        0 along a column, 1 along a row.
    run : (n,) ndarray of int64
        The run's indices into ``cr, ccl``, in order along the line.
    pos : (n,) ndarray of int64
        Their positions along it.
    """
    for axis in (0, 1):
        idx = np.flatnonzero(caxis == axis)
        if idx.size == 0:
            continue
        order, start = _runs_along(cr[idx], ccl[idx], axis)
        idx = idx[order]
        bounds = np.append(np.flatnonzero(start), idx.size)
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b - a >= min_len:
                run = idx[a:b]
                yield axis, run, (cr[run] if axis == 0 else ccl[run]).astype(np.int64)


def _parity_medians(res: np.ndarray, par: np.ndarray) -> list[float | None] | None:
    """A run's median residual in each colour parity along it (``par`` 0 and 1): its offset there, x2.

    None for a parity under a quarter of the other's: the colour a
    one-colour fault spans without leaning.  None for the run when neither
    parity's median moves from 0.
    """
    med = [float(np.median(res[par == k])) for k in (0, 1)]
    big = max(abs(m) for m in med)
    if big == 0.0:
        return None
    return [m if abs(m) >= 0.25 * big else None for m in med]


def _spread_about_one(u: np.ndarray) -> float:
    """Robust sigma of residuals in units of their run's median (about 1 for a fault's offset)."""
    return 1.4826 * float(np.median(np.abs(u - 1.0)))


def _trim_segment_ends(
    cr, ccl, caxis, acc: Accumulator, share: float = 0.5, quiet: float = 0.75, max_spread: float = 0.25
):
    """The segments of a one-view series (``cr, ccl, caxis``) without end photosites that do not carry the offset.

    A segment's span runs from its first to its last leaning photosite in
    windows that mostly lean (:func:`_runs_block`), so a photosite leaning
    by chance a few places past the true end carries the span on to it
    (a timelapse, seed 6: 7 good photosites flagged past a row segment,
    their mean residuals -19 to +13 beside the segment's +180).  The
    fault's offset tells: a photosite of the segment carries it in every
    frame; one past its end reads about zero, or minus half the segment's
    (its neighbour along the line is in the segment).  Per segment (a run
    of consecutive photosites along one line) and per colour parity along
    it, with ``u`` each photosite's mean residual ``4 v - sum4`` over the
    frames in units of the parity's median: the span keeps the photosites
    from the first to the last whose ``u`` is at least ``share``, or below
    ``-quiet`` (scene detail dominates it: one view leaves it in the
    means, and it tells nothing of the fault).  Where the segment's own
    ``u`` spread wider than ``max_spread`` (robust sigma), its median does
    not stand for a fault's offset and nothing is trimmed.  A parity whose
    median is under a quarter of the other's is the colour a one-colour
    fault spans without leaning: it is kept inside the span the other
    keeps.  Segments shorter than 4 are left as they are.  Simulated
    timelapses, seeds 1-12: 7 false photosites fewer, 9 true ones fewer,
    7 of those in runs the scene made (seed 4: a grid's dark bars across a
    faulty column, whose photosites between the bars are trimmed; the
    column is missed either way).

    Only the one-view segments are trimmed (:func:`_one_view_lines`, one
    test of the means per photosite): the line test's leans needed
    ``line_min_scenes`` views each, and there a true segment's first
    photosites may read near zero (``generate_series`` seed 2026: two of
    them, kept).

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    axis : (N,) ndarray of int8
    """
    if cr.size == 0:
        return cr, ccl, caxis
    res = _mean_residual(acc, cr, ccl)
    keep = np.ones(cr.size, bool)
    for _, run, pos in _line_runs(cr, ccl, caxis, 4):
        r = res[run]
        par = pos & 1
        meds = _parity_medians(r, par)
        if meds is None:
            continue
        carrying = []
        for k, m in enumerate(meds):
            if m is None:
                continue  # the colour the fault spans without leaning
            # in units of the segment's offset: a photosite past the end reads about 0 (-0.5 with a
            # neighbour along the line in the segment); far from both, it is the scene's detail
            u = r / m
            if _spread_about_one(u[par == k]) > max_spread:  # scene detail in them: no telling the end
                carrying.append(np.ones(run.size, bool))
            else:
                carrying.append((par == k) & ((u >= share) | (u < -quiet)))
        _cut_to_span(keep, run, carrying)  # the span from the first to the last that carries the offset
    return cr[keep], ccl[keep], caxis[keep]


def _line_residuals(acc: Accumulator, axis: int, line: int, pos: np.ndarray) -> np.ndarray:
    """(N,) float64 mean residuals ``4 v - sum4`` of the photosites at ``pos`` along a column (``axis`` 0) or row."""
    line_at = np.full(pos.size, line)
    return _mean_residual(acc, pos, line_at) if axis == 0 else _mean_residual(acc, line_at, pos)


def _extend_segment_ends(
    cr,
    ccl,
    caxis,
    acc: Accumulator,
    share: float = 0.5,
    max_spread: float = 0.6,
    reach: int = 1,
    bg_sigma: float = 3.0,
):
    """The segments (``cr, ccl, caxis``) with the end photosites the line test cannot see.

    The line test asks the same-colour photosites before and after a
    photosite along its line to lean too, so the first and last photosite
    of each colour of a segment never lean: two photosites at each end were
    left out (1-7 of a series' 226-328 segment photosites in the simulated
    photo series, seeds 2027, 31 and 7, each reading the full offset, or
    black where the segment is dead, in every repaired photo).  Beyond each
    end of a run, per colour parity along it, the next photosite is taken
    while its mean residual ``4 v - sum4``, in units of the median of the
    run's photosites of that parity, is at least ``share``: a photosite of
    the segment whose neighbour along the line is in it reads about 1.5
    there (1 further in), one past the end about -0.5, and it must stand
    ``bg_sigma`` robust sigmas out of the residuals of the 8 photosites of
    its parity further out (the scene's, in a series of few views: black-0
    mixed series, seed 6, took two scene photosites at 0.49 and -0.33 of
    the offset without that floor).  At most ``reach``
    photosites per parity and end: the one of each colour the line test
    cannot see (a second step took a scene photosite past a dead column's
    end in a timelapse, seed 31, 300 x 450); not where that parity's residuals spread
    wider than ``max_spread`` of their median (robust sigma: scene detail
    in them), nor in runs shorter than 8.  A parity whose median is under a
    quarter of the other's (a one-colour fault's other colour) follows the
    span the other reaches.

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    axis : (N,) ndarray of int8
    """
    H, W = acc.shape
    add_r: list[int] = []
    add_c: list[int] = []
    add_a: list[int] = []
    for axis, run, pos in _line_runs(cr, ccl, caxis, 8):
        n_along = H if axis == 0 else W
        line = int(ccl[run[0]]) if axis == 0 else int(cr[run[0]])
        lo, hi = int(pos[0]), int(pos[-1])
        res = _line_residuals(acc, axis, line, pos)
        par = pos & 1
        meds = _parity_medians(res, par)
        if meds is None:
            continue
        taken: list[int] = []
        weak = [k for k, m in enumerate(meds) if m is None]
        for k, m in enumerate(meds):
            if m is None or _spread_about_one(res[par == k] / m) > max_spread:
                continue
            for end, step in ((lo if (lo & 1) == k else lo + 1, -2), (hi if (hi & 1) == k else hi - 1, 2)):
                # the photosites further out, past any the segment may still hold: the scene's residuals
                out = end + step * np.arange(reach + 1, reach + 9)
                out = out[(out >= 0) & (out < n_along)]
                if out.size < 4:
                    continue
                floor = bg_sigma * _robust_sigma(_line_residuals(acc, axis, line, out))
                if not math.isfinite(floor):
                    continue
                q = end
                for _ in range(reach):
                    nxt = q + step
                    if not 0 <= nxt < n_along:
                        break
                    v = float(_line_residuals(acc, axis, line, np.array([nxt]))[0])
                    if v / m < share or abs(v) < floor:
                        break
                    q = nxt
                    taken.append(q)
        if taken:
            span_lo, span_hi = min(lo, *taken), max(hi, *taken)
            taken += [q for q in (*range(span_lo, lo), *range(hi + 1, span_hi + 1)) if (q & 1) in weak]
        for q in taken:
            r_, c_ = (q, line) if axis == 0 else (line, q)
            add_r.append(r_)
            add_c.append(c_)
            add_a.append(axis)
    if not add_r:
        return cr, ccl, caxis
    return _merged(
        [cr, np.array(add_r, np.int64)], [ccl, np.array(add_c, np.int64)], [caxis, np.array(add_a, np.int8)], W
    )


def _line_scenes(acc: Accumulator, flat: np.ndarray) -> np.ndarray:
    """Most scenes in which each photosite leaned across a line (either direction and sign)."""
    out = np.zeros(flat.size, float)
    if acc.ln_code.size == 0:
        return out
    for low in range(4):  # code = flat * 4 + 2 * row_line + dark
        code = flat * 4 + low
        pos = np.minimum(np.searchsorted(acc.ln_code, code), acc.ln_code.size - 1)
        hit = acc.ln_code[pos] == code
        out = np.maximum(out, np.where(hit, acc.ln_count[pos], 0))
    return out


def _strongest_lines(rows, cols, axis, acc: Accumulator, W: int, reach: int = 4):
    """Developed images: of parallel line segments within ``reach`` pixels, keep the strongest.

    Demosaicing, sharpening and JPEG compression echo a defective line in
    the lines beside it; the line is reported once, where it leans in most
    scenes (the line analogue of a blob's centre pixel).
    """
    count = _line_scenes(acc, rows * W + cols)
    strength: dict[tuple[int, int], list[float]] = {}
    for r, c, a, n in zip(rows.tolist(), cols.tolist(), axis.tolist(), count.tolist()):
        key = (a, c if a == 0 else r)  # a column segment is keyed by its column, a row one by its row
        strength.setdefault(key, []).append(n)
    mean = {k: float(np.mean(v)) for k, v in strength.items()}
    drop = {
        k
        for k in mean
        for d in range(1, reach + 1)
        for s in (-d, d)
        if (k[0], k[1] + s) in mean and mean[(k[0], k[1] + s)] > mean[k]
    }
    keep = np.array(
        [(a, c if a == 0 else r) not in drop for r, c, a in zip(rows.tolist(), cols.tolist(), axis.tolist())], bool
    )
    return rows[keep], cols[keep], axis[keep]
