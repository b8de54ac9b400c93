"""Stuck and dead photosites: a value range over all frames within the read noise beside neighbours that vary.

See the rules in :mod:`rawmap.detect` (``stuck`` / ``dead``).
"""

from __future__ import annotations

import numpy as np

from ..accumulate import Accumulator
from ..defectmap import DefectKind
from ..frame import SourceKind
from .params import _BLOCK_ROWS
from .series import _adjacent, _darks_only, _neighbours, _nonzero2, _sample_index, _Series, _trimmed_means


def _picture_dimmed(acc: Accumulator, ratio: float) -> bool:
    """Did the frames' brightness (:attr:`~rawmap.accumulate.FrameRecord.level`) change ``ratio`` times
    or more (the median over the pattern's positions)?  True where a frame does not record it (states
    written before it was kept): the photosites' own ranges then tell alone."""
    levels = [f.level for f in acc.frames]
    if not levels or any(v is None for v in levels):
        return True
    m = np.asarray(levels, np.float64)
    return bool(np.median(m.max(axis=0) / np.maximum(m.min(axis=0), 1.0)) >= ratio)


def _stuck_and_dead(ser: _Series) -> None:
    """Stuck and dead: a range over all frames within the read noise while the neighbours vary far more.

    ``dead`` when the constant sits at black (never more than
    ``dead_share`` of the range above it, whatever the photosite's own noise:
    the noisiest frames' read noise can be several times the median
    frame's). Also a photosite clipped in every frame of two or more units
    whose neighbours never reach ``clip_neighbour_share`` of the clip level
    (in darks nothing varies, so the range test cannot see it); in one view
    whose light changed, one whose same-colour and adjacent neighbours
    never reach that share, or each read under ``clip_alone_share`` of it
    in its darkest frame (no lens images a point of light that way; where
    they also never reach half of it, whether or not the light changed).
    """
    acc, p, found, taken = ser.acc, ser.p, ser.found, ser.taken
    H, W = acc.shape
    black2 = acc.black2
    bound = p.stuck_noise_factor * ser.sig_read
    dead_bound = p.dead_share * ser.span
    shot = _ShotNoise(acc)  # the series' noise slope and plateau levels, measured once for every block
    darks_only = _darks_only(acc)
    lit = bool(acc.frames) and not darks_only
    line_r: list[np.ndarray] = []
    line_c: list[np.ndarray] = []
    line_a: list[np.ndarray] = []
    line_s: list[np.ndarray] = []
    line_v: list[np.ndarray] = []
    line_w: list[np.ndarray] = []
    few = acc.n_scenes < p.few_views
    picture_dimmed = _picture_dimmed(acc, p.line_light_ratio)  # for the one-view clip rule below
    for a in range(0, H, _BLOCK_ROWS):
        b = min(H, a + _BLOCK_ROWS)
        rng_blk = acc.vmax[a:b].astype(np.int32) - acc.vmin[a:b]
        top = acc.vmax[a:b].astype(np.float64) - float(np.max(black2))
        rr, cc = _nonzero2((rng_blk <= bound) | (top <= dead_bound))
        del rng_blk, top
        if rr.size == 0:
            continue
        rr += a
        if few:
            # one view's read-noise figure is the scene's texture (many times the true noise), so the
            # range bound cannot tell a dark scene point from a dead photosite: a dead one sits on black
            # (its range centred there, where a dark point's rises with the light), a stuck one varies
            # less than the shot noise of its level (:func:`_quieter_than_light`). Only those, and the
            # ones clipped in every frame, can be flagged in one view or two: the others leave before
            # their neighbours are read (nearly every photosite of a timelapse in aperture priority
            # passes the range bound above)
            lo_v, hi_v = acc.vmin[rr, cc], acc.vmax[rr, cc]
            span_v = hi_v.astype(np.int32) - lo_v
            mid = 0.5 * (lo_v.astype(np.float64) + hi_v) - ser.black_at(rr, cc)
            on_black = np.abs(mid) <= 0.15 * span_v + 2.0
            quiet_light = _quieter_than_light(ser, rr, cc, span_v, shot)
            keep = on_black | quiet_light | (lo_v.astype(np.int64) >= acc.clip)
            rr, cc, mid, on_black, quiet_light = rr[keep], cc[keep], mid[keep], on_black[keep], quiet_light[keep]
            del lo_v, hi_v, span_v, keep
            if rr.size == 0:
                continue
        nr, nc = _neighbours(rr, cc, H, W)
        ranges = acc.vmax[nr, nc].astype(np.float64) - acc.vmin[nr, nc]
        # the median of the distinct neighbours' ranges: at the edge the kernels reflect and the
        # inner neighbour stands in twice, so that one bright neighbour there cannot make a dead one
        flat_nb = nr.astype(np.int64) * W + nc
        dup = np.zeros(ranges.shape, bool)
        for i in range(1, 4):
            dup[i] = (flat_nb[i][None, :] == flat_nb[:i]).any(axis=0)
        nmed = np.nanmedian(np.where(dup, np.nan, ranges), axis=0)
        if darks_only:
            # in darks only cosmic rays make a neighbour's range: a track through two of them lifted
            # the median (3147 "dead" photosites beside tracks in 20 long darks). All four must vary,
            # each measured without its highest value (twice its trimmed mean's height above its lowest)
            trimmed, nv = _trimmed_means(acc, (nr, nc))
            robust = np.where(nv == acc.n_frames, 2.0 * (trimmed - acc.vmin[nr, nc]), ranges)
            nmed = robust.min(axis=0)
        own = acc.vmax[rr, cc].astype(np.int32) - acc.vmin[rr, cc]
        # a range far below the shot noise of its level (:func:`_quieter_than_light`), measured where that
        # noise can reach the 5 DN the test asks (500 / b DN above black: in darks nearly every photosite
        # passes the range bound; all 2.2 million of a 1200 x 1800 set took 0.11-0.14 s of its 2.3-2.5 s
        # classification, these 0.03 s, the same answer; measured on every candidate, 24 darks of that size
        # took 3.25 s against 2.93). Three views or more: such a photosite is stuck
        # too, whatever its neighbours did, as one view's rule below asks (bursts of real scenes at one
        # exposure left their ranges at 60-110 DN, too little for the contrast asked, beside a stuck
        # photosite that read one value in all 24 frames, which was mapped hot); in darks, see below
        measurable = acc.vmax[rr, cc] - ser.black_at(rr, cc) >= 500.0 / shot.b
        quieter = np.zeros(rr.size, bool)
        if not few or darks_only:
            quieter[measurable] = _quieter_than_light(ser, rr[measurable], cc[measurable], own[measurable], shot)
        quiet = quieter  # few: replaced by quiet_light and what follows, below
        on_line = np.zeros(rr.size, bool)
        if acc.n_scenes < p.guard_views:
            # few views: the scene's dark or bright specks pass the test below (3 frames of 3 scenes
            # kept 141 photosites within their bound by chance over 8 defect-free series), but optics
            # never make one photosite wide, so all four same-colour neighbours must vary far more, and
            # most adjacent ones (other colours, dimmer in coloured light) several times more
            ar, ac = _adjacent(rr, cc, H, W)
            aranges = acc.vmax[ar, ac].astype(np.int32) - acc.vmin[ar, ac]
            arange = np.sort(aranges, axis=0)
            adjacent_vary = 0.5 * (arange[1] + arange[2]) >= p.stuck_contrast * np.maximum(own, 2 * ser.sig_read)
            if few:
                nmed = np.where(adjacent_vary, ranges.min(axis=0), 0.0)
            else:  # three or four views: on a line (a dead column: its neighbours along it as quiet), the
                # two across it
                vertical = (np.maximum(ranges[0], ranges[1]) <= bound) & (np.minimum(ranges[2], ranges[3]) > bound)
                horizontal = (np.maximum(ranges[2], ranges[3]) <= bound) & (np.minimum(ranges[0], ranges[1]) > bound)
                across = np.where(vertical, np.minimum(ranges[2], ranges[3]), np.minimum(ranges[0], ranges[1]))
                on_line = vertical | horizontal
                every = np.where(on_line, np.minimum(nmed, across), ranges.min(axis=0))
                nmed = np.where(adjacent_vary, every, 0.0)
        if few:  # on black and quieter than the light: measured above
            quiet = quiet_light.copy()
            far = 2 * p.stuck_contrast * np.maximum(own, 2.0)
            quiet_as = 2.0 * np.maximum(own, 2.0) + 4.0
            # a lone one on black whose every same-colour neighbour varies that much more, and no
            # adjacent one is about as quiet (a short dark line of the scene), is dead as it stands
            lone = aranges.min(axis=0) > quiet_as
            quiet |= on_black & adjacent_vary & (ranges.min(axis=0) >= far) & lone
            # a dead line, one photosite wide: the same-colour and the adjacent neighbours along it are
            # as quiet (a dark line of the scene is lit in the other colour's photosites), the ones across
            # it, same colour and adjacent, vary that much more (a dark stripe of the scene is wider)
            along_col = (np.maximum(ranges[0], ranges[1]) <= bound) & (np.maximum(aranges[0], aranges[1]) <= quiet_as)
            along_row = (np.maximum(ranges[2], ranges[3]) <= bound) & (np.maximum(aranges[2], aranges[3]) <= quiet_as)
            across = np.where(
                along_col,
                np.minimum(np.minimum(ranges[2], ranges[3]), np.minimum(aranges[2], aranges[3])),
                np.minimum(np.minimum(ranges[0], ranges[1]), np.minimum(aranges[0], aranges[1])),
            )
            # (only where the picture dimmed: where it kept its brightness, as in aperture priority, a
            # dark line of the scene sits on black too and the photosites across it vary by their shot
            # noise alone: a dark wire one photosite wide against the sky of a timelapse in aperture
            # priority on a still tripod was a "dead" row; in two views no dimming is needed: a dark
            # scene line on the same photosites of two scenes is no chance, and two bursts at one
            # exposure never dim: a dead column segment of one was lost, seeds 1-16 of the burst
            # scenario 3 -> 5 of 16 segments, the defect-free twins still without a flag)
            two_views = acc.n_scenes >= 2
            shaped = on_black & (along_col ^ along_row) & (own <= bound)
            line = shaped & (across >= far) & (picture_dimmed | two_views)
            # where it did not dim (aperture priority), the light tells instead of the ranges: a dead line
            # sits on black in every frame, its mean at black, both colours along it, while the
            # photosites across it read far above black even in their darkest frame (a dark cable of the
            # blur-free city at dusk read 5-50 DN above black beside 2,600-6,500: its mean is off black)
            lit_lo = _lit_across(ser, rr, cc, (nr, nc), (ar, ac), along_col, own, quiet_as)
            line |= shaped & (lit_lo >= p.dead_line_lit * np.maximum(own, 2.0))
            # photosites that only continue a dead line, at dead_line_weak of either contrast asked
            weakline = shaped & ~line
            weakline &= ((across >= p.dead_line_weak * far) & (picture_dimmed | two_views)) | (
                lit_lo >= p.dead_line_weak * p.dead_line_lit * np.maximum(own, 2.0)
            )
        ok = (nmed >= p.stuck_contrast * own + 2 * bound) | (quiet & (nmed >= p.stuck_contrast * own))
        # a dead photosite's own noise may pass the range bound; its neighbours must vary far more
        # (in one view the neighbours' range is the scene's: the photosite's own must be noise)
        ok &= (own <= bound) | ((nmed >= p.stuck_contrast * dead_bound + 2 * bound) & (acc.n_scenes >= p.few_views))
        if darks_only:
            # in darks the neighbours are as quiet as a stuck photosite, but dark current far above black
            # varies by its shot noise: one held within the read noise there is stuck (at 14,934 DN over
            # 24 darks, it was mapped a warm photosite of 29 DN/s, whose repair subtracts that)
            ok |= (own <= bound) & quieter
        if lit and not few:
            # where the read-noise figure is the scenes' texture (brackets: 80 DN against a true 4), a
            # dim photosite's range passes the bound, though it follows the light (blue ones in warm
            # light, 510 -> 1300 DN, mostly low, high in the longest exposures). Its same-colour
            # neighbours must vary stuck_response times more, or its mean sit where noise about a
            # constant puts it: on black (a dead photosite at ISO 6400: 250 -> 618 DN, mean 504 on a
            # black of 512) or in the middle of its range (stuck), within stuck_centre standard
            # errors (a range of n Gaussian values is about 4.3 sigmas); a dim one's mean sits low
            mean, se = _mean_and_error(ser, rr, cc, own)
            centre = 0.5 * (acc.vmin[rr, cc].astype(float) + acc.vmax[rr, cc])
            constant = (np.abs(mean - ser.black_at(rr, cc)) <= p.stuck_centre * se) | (
                np.abs(mean - centre) <= p.stuck_centre * se
            )
            # all but one of its distinct neighbours: a bright edge of the scene beside a dim photosite
            # lights one side only (a black-0 sensor: 0 -> 93 DN, following its neighbours' 60-100 DN,
            # beside two that clipped, was "dead")
            second = np.sort(np.where(dup, np.inf, ranges), axis=0)[1]
            ok &= (np.minimum(nmed, second) >= p.stuck_response * own) | constant
        if few:
            ok &= (on_black & lone) | quiet
            if acc.source is SourceKind.RAW:
                # or on black beside lit photosites, whatever the light did: no lens leaves one photosite
                # black while each one around it reads far above black (a dead one in a view whose light
                # never changed, as a city's lamps at dusk, where the others vary by their noise alone)
                ok |= on_black & (own <= bound) & _black_beside_lit(ser, rr, cc, own, p.dead_beside_lit)
            pend = (line | weakline) & ~ok
            line_r.append(rr[pend])
            line_c.append(cc[pend])
            line_a.append(np.where(along_col[pend], 0, 1))
            line_s.append(across[pend] / np.maximum(own[pend], ser.sig_read))
            line_v.append(mid[pend] + ser.black_at(rr[pend], cc[pend]))
            line_w.append(weakline[pend])
        clipped = acc.vmin[rr, cc].astype(np.int64) >= acc.clip
        if acc.n_scenes >= 2:
            nmax = np.median(acc.vmax[nr, nc].astype(np.float64), axis=0)
            ok |= clipped & (nmax <= p.clip_neighbour_share * acc.clip)
        elif clipped.any():
            # one view: a glint or a distant lamp lights the photosites around it too, so every
            # same-colour and adjacent neighbour must stay below that share of the clip level in every
            # frame, and the light around it must have changed (a lamp that stays clipped while the
            # scene dims keeps its neighbours lit; in a view whose light never changed nothing tells)
            ar, ac = _adjacent(rr, cc, H, W)
            allr, allc = np.concatenate([nr, ar]), np.concatenate([nc, ac])
            nmax = acc.vmax[allr, allc].max(axis=0).astype(np.float64)
            blk = ser.black_at(allr, allc)
            fell = (acc.vmax[allr, allc] - blk) / np.maximum(acc.vmin[allr, allc] - blk, 1.0)
            # (and the picture's: a glint's halo shaken over dark neighbours multiplies their range as
            # falling light does, in a timelapse in aperture priority whose picture stayed as bright)
            dimmed = (np.median(fell, axis=0) >= p.line_light_ratio) & picture_dimmed
            darkest = (acc.vmin[allr, allc] - blk).max(axis=0)
            # these two are the only way in for a photosite clipped in every frame of one view: the
            # range tests above take its clipped range of 0-3 DN for a stuck photosite's (a glint of a
            # timelapse in aperture priority, its picture as bright in every frame, was "stuck")
            ok &= ~clipped
            ok |= clipped & (nmax <= p.clip_neighbour_share * acc.clip) & dimmed
            # or clipped while every one of them, in its darkest frame, read under clip_alone_share of
            # the clip level: no lens puts a point of light on one photosite with its adjacent ones
            # below a tenth of it, and a lamp that stays lit keeps its halo (a stuck photosite in a
            # timelapse whose brightest frames lit its neighbours to 58 % of the clip, 7 % at dusk).
            # That needs no change of light where they also never reached half the clip level (a
            # glint's halo shaken over them does): in aperture priority the picture keeps its
            # brightness, and 0 of 20 such photosites of the timelapse-ae scenario (seeds 1-12, 31,
            # 2027) were mapped while the light had to fall too; none added on their defect-free twins
            alone = darkest <= p.clip_alone_share * (acc.clip - blk.max(axis=0))
            ok |= clipped & alone & (dimmed | (nmax <= p.clip_neighbour_share * acc.clip))
        level = 0.5 * (acc.vmin[rr, cc].astype(float) + acc.vmax[rr, cc]) - ser.black_at(rr, cc)
        dead = level <= np.maximum(p.dead_noise * ser.sig_read + own, dead_bound)
        if not few and acc.n_scenes < p.guard_views:
            # three or four views: a photosite that read as its neighbours in two of three photos and
            # differed only in a busy one (where every neighbour varies far more) passes the guard by
            # chance; a stuck one stands out from its neighbours in most photos, by their noise
            # (s_zz: normalised residuals squared) stuck_stand_out times in two photos' worth. Defect-
            # free and planted series of 3 photos, 32 seeds: 160 false stuck -> 2 (their sums 0.5-281
            # and 2,463; the planted stuck 1,174 and up), every planted stuck and dead one kept; a dead
            # one sits on black, which chance did not give there (dim photos' dead row: 107-127)
            ok &= dead | (acc.s_zz[rr, cc] >= 2.0 * p.stuck_stand_out**2)
            if acc.source is SourceKind.IMAGE:
                # and in developed images only on a quiet line (a stuck or dead row or column): a lone
                # stuck photosite does not read constant there (demosaicing mixes the light of its
                # neighbours into its pixel), so a lone constant pixel is the scene's level met by chance
                # in the quiet photos (3 photos of 3 scenes, 32 seeds planted and defect-free: 9 false
                # stuck, every one lone; the 13 found on planted rows, every one on its line)
                ok &= dead | on_line
        rr, cc, own, nmed, level, dead = rr[ok], cc[ok], own[ok], nmed[ok], level[ok], dead[ok]
        if rr.size == 0:
            continue
        score = nmed / np.maximum(own, ser.sig_read)
        found.add(rr[dead], cc[dead], DefectKind.DEAD, score[dead], level[dead] + ser.black_at(rr[dead], cc[dead]))
        found.add(
            rr[~dead], cc[~dead], DefectKind.STUCK, score[~dead], level[~dead] + ser.black_at(rr[~dead], cc[~dead])
        )
        taken[rr, cc] = True
    if line_r and sum(x.size for x in line_r):
        # dead line photosites stand only beside another one along their line (a segment is made of
        # them in :func:`_lines`); a lone one is a dark scene line's end, not a fault; weaker ones only
        # continue them
        lr, lc, la = np.concatenate(line_r), np.concatenate(line_c), np.concatenate(line_a)
        ls, lv = np.concatenate(line_s), np.concatenate(line_v)
        weak = np.concatenate(line_w)
        beside = _along_dead_lines(lr, lc, la, weak, W)
        found.add(lr[beside], lc[beside], DefectKind.DEAD, ls[beside], lv[beside])
        taken[lr[beside], lc[beside]] = True


def _lit_across(
    ser: _Series,
    r: np.ndarray,
    c: np.ndarray,
    same: tuple[np.ndarray, np.ndarray],
    adjacent: tuple[np.ndarray, np.ndarray],
    along_col: np.ndarray,
    own: np.ndarray,
    quiet_as: np.ndarray,
) -> np.ndarray:
    """How far above black the photosites across a dead line candidate read in their darkest frame.

    Parameters
    ----------
    r, c : (N,) ndarray of int
        Candidates on black, on a line along a column where ``along_col``, else along a row.
    same, adjacent : (4, N) row and column indices
        Their same-colour (:func:`~rawmap.detect.series._neighbours`) and adjacent
        (:func:`~rawmap.detect.series._adjacent`) neighbours: up, down, left, right.
    own : (N,) ndarray
        Each candidate's range over the frames, DN.
    quiet_as : (N,) ndarray
        DN above black the adjacent photosites along the line may reach at most (both colours of a
        dead line sit on black).

    Returns
    -------
    (N,) ndarray of float64
        The lowest of the four photosites across the line (same colour and adjacent, either side),
        DN above black in its darkest frame; -1 where an adjacent photosite along the line rose
        above ``quiet_as`` or the candidate's mean is off black by more than ``stuck_centre``
        standard errors (its range over 4.3 x the root of its frame count).
    """
    acc, p = ser.acc, ser.p
    across = np.where(along_col, 2, 0)[None, :]
    lows = []
    for off in (0, 1):
        for rows, cols in (same, adjacent):
            ra = np.take_along_axis(rows, across + off, 0)[0]
            ca = np.take_along_axis(cols, across + off, 0)[0]
            lows.append(acc.vmin[ra, ca] - ser.black_at(ra, ca))
    lit = np.min(lows, axis=0)
    along = np.where(along_col, 0, 2)[None, :]
    ok = np.ones(r.size, bool)
    for off in (0, 1):
        ra = np.take_along_axis(adjacent[0], along + off, 0)[0]
        ca = np.take_along_axis(adjacent[1], along + off, 0)[0]
        ok &= acc.vmax[ra, ca] - ser.black_at(ra, ca) <= quiet_as
    mean, se = _mean_and_error(ser, r, c, own)
    ok &= np.abs(mean - ser.black_at(r, c)) <= p.stuck_centre * se
    return np.where(ok, lit, -1.0)


def _mean_and_error(ser: _Series, r: np.ndarray, c: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each photosite's mean reading (DN, black included) and its standard error were it a constant read
    with noise: its range ``own`` over 4.3 (a range of n Gaussian values is about 4.3 sigmas) over the
    root of its frame count; (N,) float64 each."""
    n_v = np.maximum(ser.acc.valid_counts((r, c)), 1).astype(np.float64)
    return ser.mean_reading(r, c), np.maximum(own, 1) / 4.3 / np.sqrt(n_v)


def _along_dead_lines(r: np.ndarray, c: np.ndarray, axis: np.ndarray, weak: np.ndarray, W: int) -> np.ndarray:
    """Which dead line candidates stand: a strong one beside another strong one two along its line,
    and weak ones (``weak``) joined to those through a chain of standing or weak candidates one or two
    apart along it.

    Parameters
    ----------
    r, c : (N,) ndarray of int
    axis : (N,) ndarray of int
        0 for a line along a column, 1 along a row.
    weak : (N,) ndarray of bool
    W : int
        The sensor's width.

    Returns
    -------
    (N,) ndarray of bool
    """
    flat = r.astype(np.int64) * W + c

    def next_to(sites: np.ndarray, steps: tuple[int, ...]) -> np.ndarray:
        hit = np.zeros(r.size, bool)
        for step in steps:
            rs = np.where(axis == 0, r + step, r).astype(np.int64)
            cs = np.where(axis == 1, c + step, c)
            hit |= np.isin(rs * W + cs, sites)
        return hit

    stand = ~weak & next_to(flat[~weak], (-2, 2))
    # chains of standing and weak candidates at most two apart along one line: a weak one stands in a
    # chain that holds a standing one
    use = np.flatnonzero(stand | weak)
    line = np.where(axis[use] == 0, c[use], r[use])
    pos = np.where(axis[use] == 0, r[use], c[use])
    order = np.lexsort((pos, line, axis[use]))
    use, line, pos, ax = use[order], line[order], pos[order], axis[use][order]
    start = np.ones(use.size, bool)
    start[1:] = (ax[1:] != ax[:-1]) | (line[1:] != line[:-1]) | (pos[1:] - pos[:-1] > 2)
    chain = np.cumsum(start) - 1
    held = np.zeros(int(chain[-1]) + 1 if chain.size else 0, bool)
    held[chain[stand[use]]] = True
    stand[use[held[chain]]] = True
    return stand


class _ShotNoise:
    """What :func:`_quieter_than_light` measures of the whole series, once (not per block of rows).

    ``b``: the least of the views' median noise slopes (residual units, see
    :func:`rawmap.accumulate.noise.noise_model`; texture only adds to a fitted
    slope), at least 1 (a gain of 0.05 DN per electron: scientific 16-bit
    cameras sit near it, photographic sensors above; texture can drive a
    frame's fitted slope to 0).
    :meth:`plateau_levels`: the sorted levels of the constant photosites
    among a sample of 400,000, taken on first use.
    """

    def __init__(self, acc: Accumulator) -> None:
        self.acc = acc
        by_view: dict[int, list[float]] = {}
        for f in acc.frames:
            if f.noise_b > 0:
                by_view.setdefault(f.scene, []).append(f.noise_b)
        # each view's median slope, and the least of those: texture only adds to a fitted slope (a burst
        # of a flat wall at 16 and one of glints at 4,000-5,900 made a median of 2,000 over their frames,
        # under which a healthy photosite of the wall, varying by 71 DN at 1,340, was "quieter")
        self.b = max(min((float(np.median(v)) for v in by_view.values()), default=0.0), 1.0)
        self._levels: np.ndarray | None = None

    def plateau_levels(self) -> np.ndarray:
        if self._levels is None:
            acc = self.acc
            sr, sc = _sample_index(*acc.shape)
            const = (acc.vmax[sr, sc].astype(np.int32) - acc.vmin[sr, sc]) <= 2
            self._levels = np.sort(acc.vmax[sr, sc][const].astype(np.float64))
        return self._levels


def _black_beside_lit(ser: _Series, r: np.ndarray, c: np.ndarray, own: np.ndarray, factor: float) -> np.ndarray:
    """Whether each of the 8 photosites around (r, c) and its 4 same-colour neighbours read, in their
    darkest frame, at least ``factor`` x the photosite's own range (2 DN at least) above black.

    A scene's dark point one photosite wide still gets its neighbours' light through the lens's
    spread; a photosite at black beside neighbours this bright is not lit at all.
    """
    acc = ser.acc
    H, W = ser.H, ser.W
    lowest = np.full(r.size, np.inf)
    nr, nc = _neighbours(r, c, H, W)
    around = [(nr[i], nc[i]) for i in range(4)]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                around.append((np.clip(r + dr, 0, H - 1), np.clip(c + dc, 0, W - 1)))
    for ar, ac in around:
        lowest = np.minimum(lowest, acc.vmin[ar, ac] - ser.black_at(ar, ac))
    return lowest >= factor * np.maximum(own, 2.0)


def _quieter_than_light(ser: _Series, r: np.ndarray, c: np.ndarray, own: np.ndarray, shot: _ShotNoise) -> np.ndarray:
    """Photosites that varied far less over the frames than the shot noise of their level allows.

    A healthy photosite at ``L`` DN above black varies by its shot noise,
    ``sigma = sqrt(b L / 20)`` with ``b`` the series' noise slope
    (:class:`_ShotNoise`), whatever the scene: over 8 frames or more its
    range stays above ``sigma`` all but never.  Sigma at least 5 DN (8-bit
    mosaics and the darkest levels can repeat a value).  RAW mosaics only
    (developed images compress their highlights), below the clip level, and
    not on a plateau: a sensor that saturates below its white level holds
    many photosites constant at about one level (more than two constant
    photosites within 1 % of the range of it, among a sample of 400,000).

    Parameters
    ----------
    r, c : (N,) ndarray of int
    own : (N,) ndarray
        Each photosite's range over the frames, DN.
    shot : _ShotNoise

    Returns
    -------
    (N,) ndarray of bool
        The range is below ``quiet_share`` of sigma.
    """
    acc = ser.acc
    if acc.source is not SourceKind.RAW or acc.n_frames < 8:
        return np.zeros(r.size, bool)
    black = ser.black_at(r, c)
    level = 0.5 * (acc.vmin[r, c].astype(np.float64) + acc.vmax[r, c]) - black
    sigma = np.sqrt(shot.b * np.maximum(level, 0.0) / 20.0)
    out = (acc.vmax[r, c] < acc.clip) & (own < ser.p.quiet_share * sigma) & (sigma >= 5.0)
    if out.any():
        # a sensor that saturates below its white level reads a plateau: many photosites constant
        # at about one level; a stuck one is alone at its own
        levels = shot.plateau_levels()
        span = 0.01 * ser.span
        v = acc.vmax[r, c].astype(np.float64)
        crowd = np.searchsorted(levels, v + span, side="right") - np.searchsorted(levels, v - span)
        out &= crowd <= 2
    return out
