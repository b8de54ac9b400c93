"""Classify photosites into defects from an :class:`~rawmap.accumulate.Accumulator`.

Pure functions over the accumulated arrays.  Every threshold is relative to
a robust spread measured on the same colour plane (median absolute
deviation), or to the noise the frames themselves showed, never an absolute
DN value, so high-ISO series do not flood the map.

Rules (a photosite gets the first kind that applies):

``stuck`` / ``dead``
    Its value range over all frames is within the read noise while its
    same-colour neighbours' ranges are many times larger (so clipped
    highlights, where the neighbours are constant too, are not flagged).
    ``dead`` when that constant sits at black.  In fewer than
    ``few_views`` views the read-noise figure is the scene's texture, so a
    dead photosite must sit on black (its range centred there) and a stuck
    one vary less than the shot noise of its level allows
    (:func:`_quieter_than_light`); a dead line's photosites have dead
    neighbours along it and count those across it; a photosite clipped in
    every frame of one view needs every neighbour below half the clip level
    (or under a tenth of it at its darkest) and dimming with the light.  In
    fewer than ``guard_views`` views every same-colour neighbour must vary
    far more (the two across it, on a line), and most adjacent ones: with 3
    views, three values within the bound by chance are common.
``hot`` / ``noisy``
    It was an isolated bright outlier (more than ``k`` sigma of the frame's
    own noise above its same-colour neighbours, with its adjacent photosites
    normal) in at least ``min_share`` of the scenes; bursts of near-identical
    frames count as one scene, so static detail in a burst, stars and glints
    (which move between scenes and light their neighbours) do not qualify.
    In short series more scenes are required: as many as keeps the number of
    photosites that would get there by chance (from each scene's outlier
    rate, Poisson-binomial) below ``max_chance``.
    ``hot`` when the excess grows with exposure time x ISO (a regression of
    the residual on it), ``noisy`` when it does not, or when the photosite is
    also a dark outlier in many scenes (blinking), or its temporal noise is
    several times its neighbours'.
    A hot photosite's cluster-mates touching two others are rarely
    isolated outliers: beside a flagged hot photosite, one whose sums are as
    far out is hot too.
``warm``
    A hot photosite whose dark current (its value: DN/s at ISO 100, and at
    20 degrees C where the frames give a temperature) would take longer than
    ``hot_fill_seconds`` (60 s) to fill the sensor's range (white minus
    black) on its own.  A hot photosite clips in long exposures and carries
    no signal there; a warm one keeps its signal in any exposure up to a
    minute at ISO 100 (one stop less per doubling of the ISO), where
    subtracting its dark current repairs it, and shows only in long
    exposures.  The line is a choice, tied to the sensor's own range rather
    than to a level in DN.  Developed images (JPEG) give no dark current
    to tell by: their dark-current photosites stay ``hot``.
``cold``
    Low gain: the ratio of its signal to its neighbours' over all frames is
    far below 1 in robust sigmas of that ratio on its colour plane, and it
    was an isolated dark outlier in enough scenes; or the ratio is below
    half the plane's, with its neighbourhood's ratios normal and below what
    one view's static detail could do, or, past that view bound, below half
    of each of its 8 nearest same-colour photosites with every adjacent
    photosite normal (see :func:`_cold`).
``column``
    Segments of a column (or row): runs, within one colour, of photosites
    that leaned across the line in at least ``line_min_scenes`` scenes (and
    ``min_share`` of them).  A photosite leans when it and its two
    same-colour neighbours along the line all deviate beyond ``k_line``
    sigmas, the same way, from the photosites beside the line (so the whole
    offset of a defective line counts, where the point test loses half of it
    to the neighbours along the line), and the line beside it does not lean
    the other way harder (a shadow).  A scene edge leans in the scenes that
    show it; a readout fault in every scene where it is visible.  Reported
    photosite by photosite, the segment's end photosites included.  In a
    series of one view whose light changed (a timelapse at dusk), the
    offset that stays while the scene dims (:func:`_one_view_lines`); in a
    set of darks or bias frames, also the offset of the means over the set
    (:func:`_dark_set_leans`).

For maps made from developed images (JPEG), a defect is a small blob: each
8-connected group of flagged pixels is reported once, at its strongest pixel.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from statistics import NormalDist
from typing import Any

import numpy as np

from . import _kernels
from .accumulate import Accumulator
from .accumulate.records import dark_current_factor
from .defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from .frame import CFA_LETTERS, SourceKind, cfa_letters

__all__ = ["Sensitivity", "ClassifyParams", "classify", "build_map"]

#: a body needs at least this many frames to be classified at all
MIN_FRAMES = 3

#: rows per block where a rule scans the whole sensor (keeps its temporaries small on big sensors)
_BLOCK_ROWS = 512


class Sensitivity(str, Enum):
    """How readily a photosite is called defective (:meth:`ClassifyParams.for_sensitivity`)."""

    LOW = "low"  #: only the surest defects: more scenes, larger deviations
    NORMAL = "normal"  #: the defaults
    HIGH = "high"  #: also fainter stuck, cold, noisy and line defects, and rarer ones in short series


#: ClassifyParams values each sensitivity changes (NORMAL: the defaults); every one is
#: monotone, so a higher sensitivity flags at least the photosites a lower one flags
_SENSITIVITY: dict[Sensitivity, dict[str, Any]] = {
    Sensitivity.LOW: {
        "min_share": 0.15,
        "min_scenes": 3,
        "max_chance": 1.0,
        "max_chance_darks": 0.01,
        "stuck_contrast": 6.0,
        "cold_sigma": 8.0,
        "cold_min_drop": 0.15,
        "noisy_ratio": 6.0,
        "line_min_scenes": 3,
        "column_share": 0.65,
    },
    Sensitivity.NORMAL: {},
    Sensitivity.HIGH: {
        "min_share": 0.10,
        "min_scenes": 2,
        "max_chance": 10.0,
        "max_chance_darks": 0.5,
        "stuck_contrast": 3.0,
        "cold_sigma": 4.5,
        "cold_min_drop": 0.07,
        "noisy_ratio": 3.0,
        "line_min_scenes": 3,
        "column_share": 0.55,
    },
}


@dataclass(frozen=True)
class ClassifyParams:
    """Thresholds of the final classification (see the module docstring).

    :meth:`for_sensitivity` gives the three presets of ``rawmap map
    --sensitivity``; ``sensitivity`` names the preset the values came from
    (for the record in the map's thresholds; it changes nothing itself).
    """

    min_share: float = 0.10  #: share of scenes with an isolated outlier
    min_scenes: int = 2  #: ... and at least this many scenes (1 when the series has fewer than 6 scenes)
    max_chance: float = 5.0  #: ... and more scenes still while more photosites than this would get there by chance
    max_chance_darks: float = 0.05  #: ... this many in a set of darks alone
    stuck_noise_factor: float = 10.0  #: stuck if range <= this x read-noise sigma (DN)
    stuck_contrast: float = 4.0  #: ... and neighbours' range >= this x own range + 2 x that bound
    stuck_response: float = 20.0  #: ... and, in series with photos, >= this x own range ...
    stuck_centre: float = 2.5  #: ... or its mean within this many standard errors of black or its range's middle
    cold_sigma: float = 6.0  #: cold if gain ratio below 1 - this x robust sigma
    cold_min_drop: float = 0.10  #: ... and at least this far below 1
    cold_strong: float = (
        0.5  #: cold also if the gain ratio is below this share of the plane's median (and dark in 2 views)
    )
    cluster_share: float = 0.25  #: a hot photosite's neighbour is hot too with this share of its mean residual ...
    cluster_sigma: float = 20.0  #: ... and this many robust sigmas above its plane's
    cold_strong_sigma: float = (
        10.0  #: ... or, in developed images, below the median by this many robust sigmas if higher
    )
    ringing_reach: int = 8  #: developed images: a hot/noisy flag this close to a defect ...
    ringing_ratio: float = 5.0  #: ... this many times stronger is the compression's echo of it
    cold_image: float = 0.75  #: ... but in developed images never above this share of the median
    dead_share: float = 0.02  #: dead: never more than this share of the range above black
    dead_noise: float = (
        3.0  #: ... or, for a constant photosite, within this many read-noise sigmas (plus its range) of it
    )
    clip_neighbour_share: float = (
        0.5  #: clipped in every frame while its neighbours never reach this share of the clip level
    )
    clip_alone_share: float = 0.1  #: ... or (one view) each of them below this share of it in its darkest frame
    hot_clip_growth: float = 0.05  #: hot when clipping while growing by this share of its offset
    hot_max_fill: float = 20.0  #: ... and its dark current (ISO 100) fills the range at most this many times a second
    hot_fill_seconds: float = 60.0  #: hot when that dark current fills the range within this many seconds, else warm
    cold_view_margin: float = (
        1.2  #: a strong cold ratio must stay below 1 - this x the largest view's share of its signal
    )
    cold_isolation: float = 0.75  #: ... and its adjacent and same-colour neighbours' ratios above this (relative)
    cold_strong_spread: float = 5.0  #: ... and this many robust sigmas of its plane's ratios below the median
    cold_below_around: float = 0.55  #: ... and, raw, below this share of its darkest neighbour's ratio
    cold_alone: float = (
        0.05  #: ... or, past the view bound, every adjacent ratio within this of 1 and below half of each neighbour
    )
    cold_below_lowest: float = 0.9  #: ... and below this share of its darkest same-colour neighbour's mean signal
    cold_alone_signal: float = 20.0  #: ... whose signal is at least this many read-noise sigmas
    cold_black_signal: float = 2.0  #: ... or this many and less for the photosite, reading black ...
    cold_black_beside: float = 10.0  #: ... while its darkest neighbour's signal is this many
    noisy_ratio: float = 4.0  #: noisy if mean squared normalised residual >= this x neighbours'
    line_min_scenes: int = 3  #: a photosite leans across a line in at least this many scenes (and min_share of them)
    column_share: float = 0.6  #: share of a window that must lean the same way
    column_min: int = 16  #: window length (photosites); shorter segments are reported as single defects
    noisy_min_excess: float = (
        2.0  #: in photos, a bright outlier not growing with exposure is noisy from this noise ratio
    )
    noisy_margin_excess: float = 7.5  #: ... and from this one where it was an outlier in just the units needed
    flat_sigma: float = (
        5.0  #: flats only: low gain at least this many robust sigmas of the gain ratio below the median ...
    )
    flat_false_flags: float = 0.1  #: ... and past the line where a Gaussian spread gives this many over the sensor ...
    flat_min_drop: float = 0.05  #: ... and at least this share below it
    flat_adjacent: float = 1.5  #: ... with its 8 adjacent photosites' median ratio within this many sigmas of level
    cold_lift: float = (
        1.05  #: developed images: strong cold past the view bound where it lifts its neighbours this much
    )
    cold_lift_isolation: float = 0.85  #: ... and its adjacent and same-colour neighbours' ratios above this
    few_views: int = 3  #: below this many views (one or two), stuck and dead follow the one-view rules
    guard_views: int = 5  #: below this many views, stuck and dead need every neighbour to vary far more
    quiet_share: float = 0.2  #: ... or a range below this share of the shot noise its level must show
    line_hysteresis: int = 1  #: a found segment runs on where its photosites leaned in this many units fewer
    line_echo_share: float = 0.5  #: a flag beside a segment stays if its excess off the line keeps this share
    dark_line_sigma: float = 4.0  #: darks only: a photosite's mean offset across a line this many robust sigmas out
    dark_line_min_offset: float = 1.0  #: ... and at least this many times a frame's noise
    line_sigma: float = 4.0  #: one view: a photosite's offset across a line this many robust sigmas out ...
    line_light_ratio: float = 3.0  #: ... where the view's light changed this many times ...
    line_shake: float = 0.3  #: ... and the offset x (ratio - 1) above this share of the scene's contrast there
    sensitivity: str = "normal"  #: the preset these values came from (a label, see :meth:`for_sensitivity`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_sensitivity(cls, sensitivity: Sensitivity | str) -> ClassifyParams:
        """The thresholds of one sensitivity preset.

        Only classification thresholds change, never the per-frame outlier
        test of :class:`~rawmap.accumulate.DetectionParams`: the same
        statistics give a map at any sensitivity, and stored statistics
        continue whatever the sensitivity.

        ====================  ======  ======  ======
        parameter             low     normal  high
        ====================  ======  ======  ======
        ``min_share``         0.15    0.10    0.10
        ``min_scenes``        3       2       2
        ``max_chance``        1       5       10
        ``max_chance_darks``  0.01    0.05    0.5
        ``stuck_contrast``    6       4       3
        ``cold_sigma``        8       6       4.5
        ``cold_min_drop``     0.15    0.10    0.07
        ``noisy_ratio``       6       4       3
        ``line_min_scenes``   3       3       3
        ``column_share``      0.65    0.6     0.55
        ====================  ======  ======  ======

        ``high`` does not lower the share of scenes below 10 %: on a
        generated 40-frame series (32 scenes) 7 % let 51 chance
        coincidences of scene detail through (precision 0.84); with the
        values above it found 268 photosites against normal's 267, precision
        1.00 for both.

        Parameters
        ----------
        sensitivity : Sensitivity or str
            ``"low"``, ``"normal"`` or ``"high"``.

        Raises
        ------
        ValueError
            Another name.

        Examples
        --------
        >>> ClassifyParams.for_sensitivity("high").max_chance
        10.0
        >>> ClassifyParams.for_sensitivity("normal") == ClassifyParams()
        True
        """
        try:
            level = Sensitivity(sensitivity)
        except ValueError:
            raise ValueError(f"sensitivity must be one of low, normal, high, got {sensitivity!r}") from None
        return cls(**_SENSITIVITY[level], sensitivity=level.value)


def _chance_need(acc: Accumulator, need: int, max_chance: float) -> int:
    """Scenes a photosite must be an outlier in, raised until chance alone gets few photosites there.

    Scene detail and noise make a few outliers per thousand photosites in
    every frame, at new places in each scene.  With few scenes, two or three
    of them coincide at thousands of photosites of a big sensor; those must
    not become defects.  Each scene's chance rate is its frames' isolated
    outliers (of either sign) per photosite; the number of scenes in which one
    healthy photosite is an outlier is then Poisson-binomial, and the smallest
    count (from ``need`` up) that fewer than ``max_chance`` photosites of the
    sensor reach by chance is returned.  A view's rate is the number of
    photosites it counted when it closed (the union of its frames' outliers,
    an outlier in one of a bracket's four frames being enough); for darks,
    and views of states written before views recorded it, its frames' mean
    rate (an overflowed frame counting none).

    Returns
    -------
    int
    """
    H, W = acc.shape
    n = float(H * W)
    per_scene: dict[int, list[float]] = {}
    counted: dict[int, float] = {}
    for f in acc.frames:
        per_scene.setdefault(f.scene, []).append(0.0 if f.overflow else f.outliers / n)
        if f.view_outliers is not None:
            counted[f.scene] = f.view_outliers / n
    for scene, rate in counted.items():
        per_scene[scene] = [rate]
    pmf = np.zeros(len(per_scene) + 2)
    pmf[0] = 1.0
    for rates in per_scene.values():
        q = min(sum(rates) / len(rates), 1.0)
        pmf[1:] = pmf[1:] * (1.0 - q) + pmf[:-1] * q
        pmf[0] *= 1.0 - q
    at_least = np.cumsum(pmf[::-1])[::-1]  # at_least[k]: P(outlier in k scenes or more)
    while need < len(per_scene) and n * at_least[need] > max_chance:
        need += 1
    return need


def _nonzero2(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask, through the flat index (~20x faster on sparse masks)."""
    flat = np.flatnonzero(mask)
    return np.divmod(flat, mask.shape[1])


def _candidates(counts: np.ndarray, need: int, taken: np.ndarray, block: int = _BLOCK_ROWS):
    """Rows and columns where ``counts >= need`` and not ``taken``, in row blocks (small temporaries)."""
    rr, cc = [], []
    for a in range(0, counts.shape[0], block):
        r_, c_ = _nonzero2((counts[a : a + block] >= need) & ~taken[a : a + block])
        rr.append(r_ + a)
        cc.append(c_)
    return np.concatenate(rr), np.concatenate(cc)


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


def _darks_only(acc: Accumulator) -> bool:
    """Is every frame a lens-cap dark or bias frame (a calibration set)?"""
    return bool(acc.frames) and all(f.kind == "dark" for f in acc.frames)


def _trimmed_means(acc: Accumulator, index: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each photosite's mean over its valid frames without its lowest and highest value, and its valid frames.

    For sets of darks, where a cosmic ray hits a few photosites of a frame:
    one hit is the highest value and stays out.  ``index`` is any numpy
    index into the (H, W) grid.  The mean is only that where the photosite
    was valid in every frame (its extremes are over all frames) and there
    are 3 frames or more; callers check the returned counts.
    """
    n = acc.valid_counts(index)
    rest = acc.s_v[index].astype(np.float64) - acc.vmax[index] - acc.vmin[index]
    return rest / np.maximum(n - 2, 1), n


def _trimmed_residual(acc: Accumulator, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Mean residual ``4v - sum4`` per frame of darks, each photosite's lowest and highest value left out.

    In long darks cosmic rays hit a few photosites in a frame; a hit beside
    a photosite enters its residual sum (-8,000 in one dark turned a warm
    photosite's mean excess negative).  Leaving out each photosite's
    extremes (its own and its neighbours') keeps one hit out; a photosite
    not valid in every frame, or of fewer than 3 frames, keeps its plain
    mean.
    """
    nr, nc = _neighbours(r, c, *acc.shape)
    rr, cc = np.concatenate([r[None], nr]), np.concatenate([c[None], nc])
    trimmed, n = _trimmed_means(acc, (rr, cc))
    full = (n == acc.n_frames) & (n >= 3)
    mean = np.where(full, trimmed, acc.s_v[rr, cc].astype(float) / np.maximum(n, 1))
    return 4.0 * mean[0] - mean[1:].sum(axis=0)


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
        return acc.s_r[r, c].astype(float) / np.maximum(acc.valid_counts((r, c)), 1)

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
    beta, grows, measured = _dark_current(acc, p, cr, cc, x_hi)
    if not measured.any():  # one exposure x ISO throughout (same-exposure darks): as the hot rule, no growth test
        grows[:] = True
    cr, cc, beta = cr[grows], cc[grows], beta[grows]
    found.add(cr, cc, DefectKind.HOT, _share_score(acc.s_hi[cr, cc], max(acc.n_scenes, 1)), beta / 4.0)
    taken[cr, cc] = True


def _dark_current(
    acc: Accumulator, p: ClassifyParams, r: np.ndarray, c: np.ndarray, x_hi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The residual of each photosite regressed on x = exposure x ISO/100, with the series' x sums.

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
    """
    n = np.maximum(acc.valid_counts((r, c)), 1).astype(float)
    s_r = acc.s_r[r, c].astype(float)
    s_xr = acc.s_xr[r, c].astype(float)
    sx = np.full(n.shape, acc.sum_x)
    sxx = np.full(n.shape, acc.sum_xx)
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
    return beta, grows, measured


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


def _ringing(acc: Accumulator, found: _Found, p: ClassifyParams) -> np.ndarray:
    """Which hot and noisy flags of a developed image are the compression's echo of a stronger defect.

    JPEG spreads a strong defect's error over its 8 x 8 block (16 x 16 with
    chroma subsampling), and in every frame: the echo repeats like a
    defect, at a small fraction of the defect's mean residual.  A hot or
    noisy flag within ``ringing_reach`` photosites of a flagged defect at
    least ``ringing_ratio`` times stronger (mean residual over frames) is
    one.  Measured on an independent series' JPEGs: echoes at 3-106 DN
    beside defects at 956-1563 DN.

    Returns
    -------
    (n_found,) bool ndarray
    """
    rows, cols = found.rows, found.cols
    echo = np.zeros(rows.size, bool)
    weak = found.of(DefectKind.HOT) | found.of(DefectKind.NOISY)
    if not weak.any():
        return echo
    strength = np.abs(acc.s_r[rows, cols].astype(np.float64)) / np.maximum(acc.valid_counts((rows, cols)), 1)
    reach = p.ringing_reach
    for i in np.flatnonzero(weak):
        near = (np.abs(rows - rows[i]) <= reach) & (np.abs(cols - cols[i]) <= reach)
        near[i] = False
        if near.any() and float(strength[near].max()) >= p.ringing_ratio * float(strength[i]):
            echo[i] = True
    return echo


def _robust_sigma(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan
    med = np.median(a)
    return float(1.4826 * np.median(np.abs(a - med)))


def _neighbours(rows: np.ndarray, cols: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """(4, N) row and column indices of the same-colour neighbours (border rule of the kernels)."""
    up = np.where(rows >= 2, rows - 2, rows + 2)
    dn = np.where(rows + 2 < H, rows + 2, rows - 2)
    lf = np.where(cols >= 2, cols - 2, cols + 2)
    rt = np.where(cols + 2 < W, cols + 2, cols - 2)
    rr = np.stack([up, dn, rows, rows])
    cc = np.stack([cols, cols, lf, rt])
    return rr, cc


def _adjacent(rows: np.ndarray, cols: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """(4, N) row and column indices of the 4-connected neighbours (other colours on a Bayer sensor;
    reflected at the border)."""
    up = np.where(rows >= 1, rows - 1, rows + 1)
    dn = np.where(rows + 1 < H, rows + 1, rows - 1)
    lf = np.where(cols >= 1, cols - 1, cols + 1)
    rt = np.where(cols + 1 < W, cols + 1, cols - 1)
    return np.stack([up, dn, rows, rows]), np.stack([cols, cols, lf, rt])


def _sample_index(H: int, W: int, n: int = 400_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random photosites (with repeats) for robust spreads; the whole frame when it is small."""
    if H * W <= n:
        flat = np.arange(H * W)
    else:
        flat = np.random.default_rng(seed).integers(0, H * W, n)
    return flat // W, flat % W


_KINDS = list(DefectKind)


class _Found:
    """Defects found so far, as arrays (kinds as indices into ``_KINDS``)."""

    def __init__(self) -> None:
        self.rows = np.zeros(0, np.int64)
        self.cols = np.zeros(0, np.int64)
        self.kinds = np.zeros(0, np.int8)
        self.scores = np.zeros(0, float)
        self.values = np.zeros(0, float)

    def add(self, r, c, kind: DefectKind, score, value) -> None:
        r = np.atleast_1d(np.asarray(r, np.int64))
        self.rows = np.concatenate([self.rows, r])
        self.cols = np.concatenate([self.cols, np.atleast_1d(np.asarray(c, np.int64))])
        self.kinds = np.concatenate([self.kinds, np.full(r.size, _KINDS.index(kind), np.int8)])
        self.scores = np.concatenate([self.scores, np.broadcast_to(np.asarray(score, float), r.shape)])
        self.values = np.concatenate([self.values, np.broadcast_to(np.asarray(value, float), r.shape)])

    def keep(self, mask: np.ndarray) -> None:
        for name in ("rows", "cols", "kinds", "scores", "values"):
            setattr(self, name, getattr(self, name)[mask])

    def of(self, kind: DefectKind) -> np.ndarray:
        return self.kinds == _KINDS.index(kind)


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


def classify(acc: Accumulator, params: ClassifyParams | None = None) -> list[Defect]:
    """Decide which photosites are defective.

    The rules run in the order of the module docstring, each in a function
    of its own over a :class:`_Series` (the statistics, the thresholds, what
    the series as a whole measured, and what earlier rules found): stuck
    and dead (:func:`_stuck_and_dead`), hot and noisy (:func:`_hot_and_noisy`,
    then :func:`_complete_clusters`), cold and the dark noisy ones
    (:func:`_cold`, :func:`_dark_noisy`), column and row segments
    (:func:`_lines`); :func:`_assemble` makes the records.

    Parameters
    ----------
    acc : Accumulator
        Statistics of at least three frames.
    params : ClassifyParams, optional

    Returns
    -------
    list of Defect
        One entry per defective photosite, sorted by (row, col).
    """
    acc = acc.closed()
    if acc.n_frames < MIN_FRAMES:
        return []
    ser = _Series.of(acc, params or ClassifyParams())
    _stuck_and_dead(ser)
    hi_r, hi_c = _candidates(acc.s_hi, ser.need, ser.taken)
    lo_r, lo_c = _candidates(acc.s_lo, ser.need, ser.taken)
    # low gain shows in the gain ratio even where few views made it a dark outlier
    g_r, g_c = _strong_cold_candidates(acc, ser.p, ser.taken, ser.sig_read)
    if g_r.size:
        flat = np.union1d(lo_r * ser.W + lo_c, g_r * ser.W + g_c)
        lo_r, lo_c = flat // ser.W, flat % ser.W
    if hi_r.size:
        _hot_and_noisy(ser, hi_r, hi_c)
        _complete_clusters(acc, ser.p, ser.found, ser.taken, ser.x_hi)
    _flat_cold(ser)
    keep = ~ser.taken[lo_r, lo_c]
    lo_r, lo_c = lo_r[keep], lo_c[keep]
    if lo_r.size:
        cold = _cold(ser, lo_r, lo_c)
        rest = ~cold & (acc.s_lo[lo_r, lo_c] >= ser.need)
        if rest.any():
            _dark_noisy(ser, lo_r[rest], lo_c[rest])
    if acc.source is not SourceKind.IMAGE and _darks_only(acc):
        _two_way(ser)
    _lines(ser)
    _line_echoes(ser)
    _drop_weak(ser)
    return _assemble(ser)


@dataclass
class _Series:
    """What every rule of :func:`classify` reads: the statistics, the thresholds, series-wide measures.

    Attributes
    ----------
    acc : Accumulator
        With every view closed.
    p : ClassifyParams
    found : _Found
        Defects found so far (rules add to it).
    taken : (H, W) bool ndarray
        Photosites already given a kind (later rules skip them).
    sig_read : float
        Read noise (DN) of the median frame: the per-frame fits give
        var(4v - sum4) = 20 sigma^2, and fine texture inflates a busy
        frame's fit many times (measured: 8 to 960,000 within one
        independent series), so the bound must not follow the noisiest.
    units : int
        Evidence units (views and darks), at least 1.
    need : int
        Units a photosite must be an outlier in (see :func:`_units_needed`).
    x_hi : float
        90th percentile of exposure x ISO/100 over the frames.
    x_spread : bool
        Do the frames' exposure x ISO differ (can growth be measured)?
    weak : ndarray of int64
        Flat indices of provisional noisy flags (see :func:`_hot_and_noisy`).
    """

    acc: Accumulator
    p: ClassifyParams
    found: _Found
    taken: np.ndarray
    sig_read: float
    units: int
    need: int
    x_hi: float
    x_spread: bool
    weak: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def H(self) -> int:
        return self.acc.shape[0]

    @property
    def W(self) -> int:
        return self.acc.shape[1]

    @property
    def span(self) -> float:
        """The range above the highest black level (white minus black), DN."""
        return self.acc.white - float(np.max(self.acc.black2))

    @classmethod
    def of(cls, acc: Accumulator, p: ClassifyParams) -> _Series:
        frames = acc.frames
        sig_read = max(math.sqrt(float(np.median([f.noise_a for f in frames])) / 20.0), 0.5) if frames else 1.0
        sig_read = min(sig_read, _temporal_read_noise(acc))
        xs = np.array([f.x for f in frames]) if frames else np.zeros(1)
        return cls(
            acc=acc,
            p=p,
            found=_Found(),
            taken=np.zeros(acc.shape, bool),
            sig_read=sig_read,
            units=max(acc.n_scenes, 1),
            need=_units_needed(acc, p),
            x_hi=float(np.quantile(xs, 0.9)) if xs.size else 0.0,
            x_spread=xs.size > 1 and float(np.ptp(xs)) > 0,
        )

    def black_at(self, r, c):
        """Black level (DN) of each photosite."""
        return self.acc.black2[r & 1, c & 1]


def _temporal_read_noise(acc: Accumulator, share: float = 0.01) -> float:
    """An upper bound of the read noise (DN) from the photosites' ranges over the frames.

    The frames' noise fits take static texture for noise (a timelapse of one
    view: 30-300 DN against a true 5), but static views cannot raise the
    quietest photosites' range over the series above their noise: the
    ``share`` quantile of the non-zero ranges over 3 (the low tail of the
    range of a few dozen Gaussian samples) bounds it.  Varied scenes give
    large ranges everywhere, and the frames' fits then stay the smaller bound.
    """
    if acc.n_frames < 2:
        return math.inf
    H, W = acc.shape
    sr, sc = _sample_index(H, W)
    rng = acc.vmax[sr, sc].astype(np.int32) - acc.vmin[sr, sc]
    rng = rng[rng > 0]
    if rng.size < 100:
        return math.inf
    return max(float(np.quantile(rng, share)) / 3.0, 0.5)


def _units_needed(acc: Accumulator, p: ClassifyParams) -> int:
    """Evidence units (views, darks) an outlier must show in: ``min_share`` of them, at least
    ``min_scenes`` (2 below 6 units: one view cannot tell a defect from static scene detail), and more
    while chance alone would get more than ``max_chance`` photosites there (:func:`_chance_need`)."""
    S = max(acc.n_scenes, 1)
    min_scenes = p.min_scenes if S >= 6 else 2
    # a set of darks has no scene: a defect stands out in (nearly) every dark, a blinking one in a share
    # of them, so a far stricter chance bound costs no defect, and keeps cosmic rays' hits out
    chance = min(p.max_chance, p.max_chance_darks) if _darks_only(acc) else p.max_chance
    return _chance_need(acc, max(min_scenes, math.ceil(p.min_share * S)), chance)


def _share_score(counts: np.ndarray, units: int) -> np.ndarray:
    """The score of an outlier-based defect: the percentage of evidence units it showed in."""
    return 100.0 * (counts / units)


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
    in its darkest frame (no lens images a point of light that way).
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
    for a in range(0, H, _BLOCK_ROWS):
        b = min(H, a + _BLOCK_ROWS)
        rng_blk = acc.vmax[a:b].astype(np.int32) - acc.vmin[a:b]
        top = acc.vmax[a:b].astype(np.float64) - float(np.max(black2))
        rr, cc = _nonzero2((rng_blk <= bound) | (top <= dead_bound))
        del rng_blk, top
        if rr.size == 0:
            continue
        rr += a
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
        quiet = np.zeros(rr.size, bool)
        few = acc.n_scenes < p.few_views
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
                every = np.where(vertical | horizontal, np.minimum(nmed, across), ranges.min(axis=0))
                nmed = np.where(adjacent_vary, every, 0.0)
        if few:
            # and one view's read-noise figure is the scene's texture (many times the true noise), so
            # the range bound cannot tell a dark scene point from a dead photosite: a dead one sits on
            # black (its range centred there, where a dark point's rises with the light), a stuck one
            # varies less than the shot noise of its level (:func:`_quieter_than_light`)
            mid = 0.5 * (acc.vmin[rr, cc].astype(np.float64) + acc.vmax[rr, cc]) - ser.black_at(rr, cc)
            on_black = np.abs(mid) <= 0.15 * own + 2.0
            quiet = _quieter_than_light(ser, rr, cc, own, shot)
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
            line = on_black & (along_col ^ along_row) & (own <= bound) & (across >= far)
        ok = (nmed >= p.stuck_contrast * own + 2 * bound) | (quiet & (nmed >= p.stuck_contrast * own))
        # a dead photosite's own noise may pass the range bound; its neighbours must vary far more
        # (in one view the neighbours' range is the scene's: the photosite's own must be noise)
        ok &= (own <= bound) | ((nmed >= p.stuck_contrast * dead_bound + 2 * bound) & (acc.n_scenes >= p.few_views))
        if lit and not few:
            # where the read-noise figure is the scenes' texture (brackets: 80 DN against a true 4), a
            # dim photosite's range passes the bound, though it follows the light (blue ones in warm
            # light, 510 -> 1300 DN, mostly low, high in the longest exposures). Its same-colour
            # neighbours must vary stuck_response times more, or its mean sit where noise about a
            # constant puts it: on black (a dead photosite at ISO 6400: 250 -> 618 DN, mean 504 on a
            # black of 512) or in the middle of its range (stuck), within stuck_centre standard
            # errors (a range of n Gaussian values is about 4.3 sigmas); a dim one's mean sits low
            n_v = np.maximum(acc.valid_counts((rr, cc)), 1).astype(float)
            mean = acc.s_v[rr, cc] / n_v
            se = np.maximum(own, 1) / 4.3 / np.sqrt(n_v)
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
            pend = line & ~ok
            line_r.append(rr[pend])
            line_c.append(cc[pend])
            line_a.append(np.where(along_col[pend], 0, 1))
            line_s.append(across[pend] / np.maximum(own[pend], ser.sig_read))
            line_v.append(mid[pend] + ser.black_at(rr[pend], cc[pend]))
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
            dimmed = np.median(fell, axis=0) >= p.line_light_ratio
            ok |= clipped & (nmax <= p.clip_neighbour_share * acc.clip) & dimmed
            # or clipped while every one of them, in its darkest frame, read under clip_alone_share of
            # the clip level: no lens puts a point of light on one photosite with its adjacent ones
            # below a tenth of it, and a lamp that stays lit keeps its halo (a stuck photosite in a
            # timelapse whose brightest frames lit its neighbours to 58 % of the clip, 7 % at dusk)
            darkest = (acc.vmin[allr, allc] - blk).max(axis=0)
            ok |= clipped & (darkest <= p.clip_alone_share * (acc.clip - blk.max(axis=0))) & dimmed
        rr, cc, own, nmed = rr[ok], cc[ok], own[ok], nmed[ok]
        if rr.size == 0:
            continue
        level = 0.5 * (acc.vmin[rr, cc].astype(float) + acc.vmax[rr, cc]) - ser.black_at(rr, cc)
        dead = level <= np.maximum(p.dead_noise * ser.sig_read + own, dead_bound)
        score = nmed / np.maximum(own, ser.sig_read)
        found.add(rr[dead], cc[dead], DefectKind.DEAD, score[dead], level[dead] + ser.black_at(rr[dead], cc[dead]))
        found.add(
            rr[~dead], cc[~dead], DefectKind.STUCK, score[~dead], level[~dead] + ser.black_at(rr[~dead], cc[~dead])
        )
        taken[rr, cc] = True
    if line_r and sum(x.size for x in line_r):
        # dead line photosites stand only beside another one along their line (a segment is made of
        # them in :func:`_lines`); a lone one is a dark scene line's end, not a fault
        lr, lc, la = np.concatenate(line_r), np.concatenate(line_c), np.concatenate(line_a)
        ls, lv = np.concatenate(line_s), np.concatenate(line_v)
        flat = lr.astype(np.int64) * W + lc
        beside = np.zeros(lr.size, bool)
        for step in (-2, 2):
            nr_ = np.where(la == 0, lr + step, lr)
            nc_ = np.where(la == 1, lc + step, lc)
            beside |= np.isin(nr_.astype(np.int64) * W + nc_, flat)
        found.add(lr[beside], lc[beside], DefectKind.DEAD, ls[beside], lv[beside])
        taken[lr[beside], lc[beside]] = True


class _ShotNoise:
    """What :func:`_quieter_than_light` measures of the whole series, once (not per block of rows).

    ``b``: the frames' median noise slope (residual units, see
    :func:`rawmap.accumulate.noise.noise_model`), at least 1 (a gain of 0.05 DN per
    electron: scientific 16-bit cameras sit near it, photographic sensors
    above; texture can drive a frame's fitted slope to 0).
    :meth:`plateau_levels`: the sorted levels of the constant photosites
    among a sample of 400,000, taken on first use.
    """

    def __init__(self, acc: Accumulator) -> None:
        self.acc = acc
        slopes = [f.noise_b for f in acc.frames if f.noise_b > 0]
        self.b = max(float(np.median(slopes)) if slopes else 0.0, 1.0)
        self._levels: np.ndarray | None = None

    def plateau_levels(self) -> np.ndarray:
        if self._levels is None:
            acc = self.acc
            sr, sc = _sample_index(*acc.shape)
            const = (acc.vmax[sr, sc].astype(np.int32) - acc.vmin[sr, sc]) <= 2
            self._levels = np.sort(acc.vmax[sr, sc][const].astype(np.float64))
        return self._levels


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


def _noise_ratio(ser: _Series, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Temporal noise of each photosite over the median of its same-colour neighbours'."""
    acc = ser.acc

    def mean_z2(r_, c_):
        return acc.s_zz[r_, c_] / np.maximum(acc.valid_counts((r_, c_)), 1)

    nr, nc = _neighbours(r, c, ser.H, ser.W)
    return mean_z2(r, c) / np.maximum(np.median(mean_z2(nr, nc), axis=0), 1e-6)


def _hot_and_noisy(ser: _Series, hi_r: np.ndarray, hi_c: np.ndarray) -> None:
    """Bright outliers in enough units: hot when the excess grows with exposure x ISO, else noisy.

    Growth is measured by :func:`_dark_current` (a regression on exposure x
    ISO); without a spread of exposure x ISO every one counts as growing
    (same-exposure darks: the value is then the mean excess over exposure x
    ISO, over the frames in which the photosite did not clip).  A photosite that is also
    a dark outlier in half the units needed is blinking: noisy.  Hot
    values are the dark-current slope in DN per second at ISO 100 (the
    residual is 4x DN); noisy values, the excess noise ratio.  In a series
    with photos, one that neither grows nor is noisier than its neighbours
    (``noisy_min_excess``) is static detail that coincided in a few views:
    it is only kept where it ends a segment (:func:`_drop_weak`).  When
    frames state their temperature, hot values are given at 20 degrees C
    (:func:`_temperature_factor`).  An excess growing faster than
    ``hot_max_fill`` ranges a second at ISO 100 is no dark current: stuck
    where the photosite sits at the clip level in every frame, else static
    detail (weak).
    """
    acc, found = ser.acc, ser.found
    if ser.x_spread:
        beta, exposure_driven, _ = _dark_current(acc, ser.p, hi_r, hi_c, ser.x_hi)
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
    blinking = acc.s_lo[hi_r, hi_c] >= max(1, ser.need // 2)
    excess_noise = _noise_ratio(ser, hi_r, hi_c)
    # a dark current that would fill the range in under 1 / hot_max_fill s at ISO 100 is not one (a
    # real photosite that hot reads white in any photo: stuck); in short exposures a glint's excess
    # over exposure x ISO gives such rates (1.2 million DN/s in a burst at 1/2000 s)
    plausible = beta / 4.0 <= ser.p.hot_max_fill * ser.span
    hot = exposure_driven & ~blinking & plausible
    # neither growing with exposure nor noisier than its neighbours: static detail that coincided
    # (in darks alone there is no scene: every bright outlier is the sensor's)
    lit = bool(acc.frames) and not _darks_only(acc)
    weak = ~hot & ~blinking & (excess_noise < ser.p.noisy_min_excess) & lit
    # at the margin (outliers in just the units needed, where chance coincidences of scene detail are
    # allowed up to max_chance a map) a noisy one must be clearly noisier: its own outlier frames alone
    # lift its noise ratio to 2-7 (27 false flags at 2.5-7.4 in the scenarios; the true ones there
    # 7.7-9.9, and two column photosites at 5.5 and 6.4 that their segment takes back)
    margin = acc.s_hi[hi_r, hi_c] <= ser.need
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
    score = _share_score(acc.s_hi[hi_r, hi_c], ser.units)
    warm = _temperature_factor(acc, hi_r[hot], hi_c[hot])
    found.add(hi_r[hot], hi_c[hot], DefectKind.HOT, score[hot], beta[hot] / 4.0 / warm)
    found.add(hi_r[white], hi_c[white], DefectKind.STUCK, score[white], acc.vmin[hi_r[white], hi_c[white]])
    noisy = ~hot & ~white
    found.add(hi_r[noisy], hi_c[noisy], DefectKind.NOISY, score[noisy], excess_noise[noisy])
    # the weak ones may still end a column or row segment (:func:`_lines`); :func:`_drop_weak` removes the rest
    ser.weak = np.concatenate([ser.weak, hi_r[weak] * ser.W + hi_c[weak]])
    ser.taken[hi_r, hi_c] = True


def _gain_ratio(ser: _Series, r: np.ndarray, c: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Signal over the neighbours' signal (black removed), summed over frames; NaN where the neighbours are dark.

    With ``exclude`` (H, W bool), flagged same-colour neighbours are left
    out of the estimate: the sum over frames of (sum4 - v_nb) is
    4 s_v - s_r - s_v[nb].
    """
    acc = ser.acc
    n = acc.valid_counts((r, c)).astype(float)
    b = ser.black_at(r, c)
    sv = acc.s_v[r, c].astype(float)
    sig = sv - n * b
    if exclude is None:
        est = sv - acc.s_r[r, c].astype(float) / 4.0 - n * b
    else:
        nr, nc = _neighbours(r, c, ser.H, ser.W)
        bad = exclude[nr, nc]
        total = 4.0 * sv - acc.s_r[r, c].astype(float) - (acc.s_v[nr, nc].astype(float) * bad).sum(axis=0)
        k = np.maximum(4 - bad.sum(axis=0), 1)
        est = total / k - n * b
    return np.where(est > n * ser.sig_read, sig / np.where(est > 0, est, 1), np.nan)


def _planes(ser: _Series) -> list:
    """The colour planes, as (row parity, column parity); ``[None]`` (one plane) without a CFA."""
    return [(0, 0), (0, 1), (1, 0), (1, 1)] if ser.acc.cfa is not None else [None]


def _ratio_stats(ser: _Series) -> tuple[dict, dict]:
    """Median and robust sigma of the gain ratio on each colour plane (from a fixed sample)."""
    sr, sc = _sample_index(ser.H, ser.W)
    return _plane_stats(ser, sr, sc, _gain_ratio(ser, sr, sc))


def _plane_stats(ser: _Series, sr: np.ndarray, sc: np.ndarray, values: np.ndarray) -> tuple[dict, dict]:
    """Median (1.0 when none is finite) and robust sigma (1e-3 when none) of sampled ``values`` per colour plane."""
    med_of, sigma_of = {}, {}
    for pl in _planes(ser):
        in_s = np.ones(sr.size, bool) if pl is None else ((sr & 1) == pl[0]) & ((sc & 1) == pl[1])
        gs = values[in_s]
        sigma = _robust_sigma(gs)
        med_of[pl] = float(np.nanmedian(gs)) if np.isfinite(gs).any() else 1.0
        sigma_of[pl] = sigma if np.isfinite(sigma) and sigma > 0 else 1e-3
    return med_of, sigma_of


def _gaussian_line(n: int, expected: float) -> float:
    """The z above which ``n`` Gaussian draws give ``expected`` outliers on one side: ``isf(expected / n)``."""
    return -NormalDist().inv_cdf(min(max(expected / max(n, 1), 1e-300), 0.5))


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
            ser.found.add(lr[alone], lc[alone], DefectKind.COLD, 100.0, lrel[alone])
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
    sig = acc.s_v[r, c].astype(float) / np.maximum(acc.valid_counts((r, c)), 1) - ser.black_at(r, c)
    nb = acc.s_v[nr, nc].astype(float) / np.maximum(acc.valid_counts((nr, nc)), 1) - ser.black_at(nr, nc)
    low = nb.min(axis=0)
    # a photosite at black beside neighbours clearly lit is no shadow's noise: dimmer ones count there
    lit = (low > ser.p.cold_alone_signal * ser.sig_read) | (
        (sig <= ser.p.cold_black_signal * ser.sig_read) & (low > ser.p.cold_black_beside * ser.sig_read)
    )
    lit &= acc.vmax[r, c] < acc.clip
    return np.divide(sig, low, out=np.full(r.size, np.nan), where=lit)


def _cold(ser: _Series, lo_r: np.ndarray, lo_c: np.ndarray) -> np.ndarray:
    """Low gain, among the dark-outlier and low-ratio candidates; returns which candidates were cold.

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
    ``cold_alone`` of its plane's, none clipped) is low gain whatever the
    views.  Measured on defect-free timelapses (40 seeds and half-lit
    views): the 4-neighbour mean, lifted by the bright end of a pole, gave
    up to 144 false flags a series, an 8 % spread a coloured 1 x 2 window
    pane of a blur-free scene; with these bounds, none.  In raw mosaics a
    strong one must also read below ``cold_below_lowest`` of the darkest
    of those 8 on average, or, where they are too dim to tell, have
    ``guard_views`` views or more.
    """
    acc, p = ser.acc, ser.p
    share = acc.view_shares(lo_r, lo_c)
    view_bound = None if share is None else 1.0 - p.cold_view_margin * share
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
        alone = (spread <= p.cold_alone) & (below < p.cold_strong)
        # and a strong one darker on average than the darkest of its 8 nearest same-colour photosites;
        # where they are too dim to tell (a texture-inflated read-noise figure makes brackets so),
        # only with guard_views views or more: in fewer, a shadow's noise gave low ratios (15 cold
        # flags in 8 defect-free series of 4 photos, 2 in a two-view burst), and only where it stood out
        # as a dark outlier in a view at least: with neither, the ratio is the views' dark detail (5 of
        # the 8 cold flags in 12 defect-free bracket series; every planted one so admitted had a view)
        dim_ok = np.isnan(below) & (acc.n_scenes >= p.guard_views) & (acc.s_lo[lo_r, lo_c] >= 1)
        darker = (below < p.cold_below_lowest) | dim_ok
    isolated = clean_nb & (around >= p.cold_isolation)
    dark_in = acc.s_lo[lo_r, lo_c]
    cold = np.zeros(lo_r.size, bool)
    score = np.zeros(lo_r.size)
    for pl in _planes(ser):
        in_c = np.ones(lo_r.size, bool) if pl is None else ((lo_r & 1) == pl[0]) & ((lo_c & 1) == pl[1])
        med, sigma = med_of[pl], sigma_of[pl]
        drop = max(p.cold_sigma * sigma, p.cold_min_drop)
        cold[in_c] = (g[in_c] < med - drop) & (dark_in[in_c] >= ser.need)
        # and far out of its plane's spread: in warm light the blue photosites' ratios spread so wide
        # (robust sigma 0.12) that scene detail puts 2 % of them below half the median
        strong = (g[in_c] < min(p.cold_strong * med, med - p.cold_strong_spread * sigma)) & isolated[in_c]
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
        if view_bound is None:
            strong &= dark_in[in_c] >= min(2, ser.need)
        else:
            beyond_view = g[in_c] < view_bound[in_c] * med
            if acc.source is SourceKind.IMAGE:
                # in developed images a defect's deficit lifts its same-colour neighbours' ratios,
                # which a view's static dark detail (darkening them too) never does; the
                # neighbourhood must be clearly normal, not only above cold_isolation
                beyond_view |= (lifted[in_c] >= p.cold_lift) & (around[in_c] >= p.cold_lift_isolation)
            strong &= beyond_view | alone[in_c]
        cold[in_c] |= strong
        score[in_c] = (med - g[in_c]) / sigma
    cold &= np.isfinite(g)
    ser.found.add(lo_r[cold], lo_c[cold], DefectKind.COLD, score[cold], g[cold])
    ser.taken[lo_r[cold], lo_c[cold]] = True
    return cold


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


def _two_way(ser: _Series) -> None:
    """Sets of darks: blinking both ways, a bright outlier in some darks and a dark one in others, ``need`` in all.

    The chance bound counts a unit's outliers of either sign
    (:func:`_chance_need`), so such a photosite is as far past chance as
    one outlier in ``need`` units; a blinking photosite with levels on both
    sides of its neighbours splits its darks so (the darks of seed 31: 3
    bright and 3 dark, 4 needed, and neither count alone reached it).  It
    must be ``noisy_ratio`` times noisier than its same-colour neighbours,
    and not beside a flagged same-colour photosite, whose swings it would be
    showing.  Only darks: each is a unit of one frame, while a view of
    several photos can count one photosite both ways (a glint's edge in a
    jittered burst; 2 false flags in 24 defect-free series with photos).
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
    noisy = ratio >= ser.p.noisy_ratio
    score = _share_score(acc.s_hi[r, c].astype(np.int64) + acc.s_lo[r, c], ser.units)
    ser.found.add(r[noisy], c[noisy], DefectKind.NOISY, score[noisy], ratio[noisy])
    ser.taken[r[noisy], c[noisy]] = True


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
    m_line = max(p.line_min_scenes, math.ceil(p.min_share * ser.units))
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
    vr, vc, va = _trim_segment_ends(*_one_view_lines(ser), acc)
    if vr.size:
        cr = np.concatenate([cr, vr])
        ccl = np.concatenate([ccl, vc])
        caxis = np.concatenate([caxis, va])
        _, first = np.unique(cr.astype(np.int64) * W + ccl, return_index=True)
        cr, ccl, caxis = cr[first], ccl[first], caxis[first]
    m_weak = max(2, m_line - p.line_hysteresis)
    if cr.size and m_weak < m_line:
        # hysteresis: a segment found in m_line units runs on where its photosites leaned in fewer
        wr, wc, wa = segments(m_weak)
        cr, ccl, caxis = _grow_segments(cr, ccl, caxis, wr, wc, wa, H, W)
    if cr.size and acc.source is SourceKind.IMAGE:
        cr, ccl, caxis = _strongest_lines(cr, ccl, caxis, acc, W)
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
    offs = acc.s_r[cr, ccl] / np.maximum(acc.valid_counts((cr, ccl)), 1) / 2.0
    found.add(cr, ccl, DefectKind.COLUMN, _share_score(_line_scenes(acc, cr * W + ccl), ser.units), offs)


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

    def offsets(a: int, b: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (max(0, a - 4), min(H, b + 4)) if axis == 1 else (a, b)
        # without each photosite's lowest and highest value: a cosmic ray's hit in one dark (a track
        # along a column) does not shift it
        trimmed, n = _trimmed_means(acc, (slice(lo, hi),))
        mean = trimmed.astype(np.float32)
        ok = (n == acc.n_frames) & (acc.vmax[lo:hi] < acc.clip)
        if axis == 0:
            pad = np.pad(mean, ((0, 0), (4, 4)), constant_values=np.nan)
            across = [pad[:, i : i + W] for i in (0, 2, 6, 8)]
        else:
            pad = np.pad(mean, ((4 - (a - lo), 4 - (hi - b)), (0, 0)), constant_values=np.nan)
            across = [pad[i : i + b - a] for i in (0, 2, 6, 8)]
            mean, ok = mean[a - lo : a - lo + b - a], ok[a - lo : a - lo + b - a]
        # both sides needed (beside a faulty line at the edge, one side's median is half its offset)
        ok = ok & (np.isfinite(across[0]) | np.isfinite(across[1])) & (np.isfinite(across[2]) | np.isfinite(across[3]))
        stack = np.sort(np.stack(across), axis=0)  # NaN (off the sensor) last
        k = np.isfinite(stack).sum(axis=0)
        med = np.where(k == 4, (stack[1] + stack[2]) / 2.0, np.where(k == 3, stack[1], (stack[0] + stack[1]) / 2.0))
        return mean - med, ok

    planes = [(0, 0), (0, 1), (1, 0), (1, 1)] if acc.cfa is not None else [None]
    # and at least a frame's noise: the fixed pattern of a camera's columns (a fraction of it) would
    # stand out in the means of a few hundred darks, and is no fault
    noise = _dark_noise(acc)
    floor = p.dark_line_min_offset * (noise if noise is not None else ser.sig_read)
    groups: list[tuple[np.ndarray, np.ndarray, int]] = []
    for axis in (0, 1):
        samples: dict = {pl: [] for pl in planes}
        for a in range(0, H, _BLOCK_ROWS):
            o, ok = offsets(a, min(H, a + _BLOCK_ROWS), axis)
            for pl in planes:
                sub = o if pl is None else o[(pl[0] - a) % 2 :: 2, pl[1] :: 2]
                use = ok if pl is None else ok[(pl[0] - a) % 2 :: 2, pl[1] :: 2]
                samples[pl].append(sub[use][::7])
        sigma = {pl: _robust_sigma(np.concatenate(v).astype(np.float64)) for pl, v in samples.items()}
        bright_r: list[np.ndarray] = []
        bright_c: list[np.ndarray] = []
        dark_r: list[np.ndarray] = []
        dark_c: list[np.ndarray] = []
        for a in range(0, H, _BLOCK_ROWS):
            b = min(H, a + _BLOCK_ROWS)
            o, ok = offsets(a, b, axis)
            if acc.cfa is None:
                sig = np.full(o.shape, sigma[None], np.float32)
            else:
                sig = np.empty(o.shape, np.float32)
                for (py, px), v in sigma.items():
                    sig[(py - a) % 2 :: 2, px::2] = v
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
    acc: Accumulator, a: int, b: int, axis: int, k: float, shake: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    """
    H, W = acc.shape
    lo_r, hi_r = max(0, a - 2), min(H, b + 2)
    black = np.tile(acc.black2.astype(np.float32), ((hi_r - lo_r + 3) // 2 + 1, (W + 3) // 2 + 1))
    black = black[(lo_r & 1) : (lo_r & 1) + hi_r - lo_r, :W]
    vlo = acc.vmin[lo_r:hi_r].astype(np.float32) - black
    vhi = acc.vmax[lo_r:hi_r].astype(np.float32) - black
    clip = acc.vmax[lo_r:hi_r] >= acc.clip
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
    return offset, level, usable


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
    for darks; a view's light ratio is measured where it is lit).

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
    groups = []
    for axis in (0, 1):
        # the offsets' spread per level bin, from rows spread over the sensor
        step = max(1, H // 256)
        offs, lvls = [], []
        for a in range(0, H, step):
            o, lv, ok = _two_point_offsets(acc, a, min(H, a + 1), axis, k, 0.0)
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
        rows_p, cols_p, rows_n, cols_n = [], [], [], []
        for a in range(0, H, _BLOCK_ROWS):
            b = min(H, a + _BLOCK_ROWS)
            o, lv, ok = _two_point_offsets(acc, a, b, axis, k, p.line_shake)
            bins = np.searchsorted(edges, lv, side="right")
            z = (o - med[bins]) / sig[bins]
            del o, lv, bins
            r_, c_ = _nonzero2(ok & (z >= p.line_sigma))
            rows_p.append(r_ + a)
            cols_p.append(c_)
            r_, c_ = _nonzero2(ok & (z <= -p.line_sigma))
            rows_n.append(r_ + a)
            cols_n.append(c_)
        groups.append((np.concatenate(rows_p), np.concatenate(cols_p), axis))
        groups.append((np.concatenate(rows_n), np.concatenate(cols_n), axis))
    if not groups:
        return empty
    return _segments(H, W, groups, p)


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

    def mean_v(r_, c_):
        return acc.s_v[r_, c_].astype(np.float64) / np.maximum(acc.valid_counts((r_, c_)), 1)

    own = mean_v(r, c)
    nb = mean_v(nr, nc)
    off_line = np.where(on_line, 0.0, nb).sum(axis=0) / (~on_line).sum(axis=0)
    before = acc.s_r[r, c].astype(np.float64) / 4.0 / np.maximum(acc.valid_counts((r, c)), 1)
    after = own - off_line
    echo = (np.sign(after) != np.sign(before)) | (np.abs(after) < ser.p.line_echo_share * np.abs(before))
    if echo.any():
        drop = np.zeros(found.rows.size, bool)
        drop[idx[echo]] = True
        ser.taken[found.rows[drop], found.cols[drop]] = False
        found.keep(~drop)


def _drop_weak(ser: _Series) -> None:
    """Drop the provisional hot and noisy flags that no segment took (see :func:`_hot_and_noisy`)."""
    if ser.weak.size == 0:
        return
    found = ser.found
    point = found.of(DefectKind.NOISY) | found.of(DefectKind.HOT)
    weak = point & np.isin(found.rows * ser.W + found.cols, ser.weak)
    ser.taken[found.rows[weak], found.cols[weak]] = False
    found.keep(~weak)


def _assemble(ser: _Series) -> list[Defect]:
    """The records, sorted by (row, col); in developed images compression echoes dropped and one
    record per blob (:func:`_ringing`, :func:`_blob_centres`)."""
    acc, found = ser.acc, ser.found
    if acc.source is SourceKind.IMAGE and found.rows.size:
        found.keep(~_ringing(acc, found, ser.p))
        kinds_list = [_KINDS[k] for k in found.kinds.tolist()]
        keep = np.zeros(found.rows.size, bool)
        keep[_blob_centres(found.rows, found.cols, found.scores, kinds_list)] = True
        found.keep(keep)
    order = np.lexsort((found.cols, found.rows))
    found.keep(order)
    rows, cols = found.rows.tolist(), found.cols.tolist()
    series_start = min((f.time for f in acc.frames if f.time), default=None)
    first = _first_seen(acc, found, series_start)
    if acc.cfa is not None:
        letters = np.array(list(CFA_LETTERS))[np.asarray(acc.cfa)[found.rows & 1, found.cols & 1]].tolist()
    else:
        letters = [""] * len(rows)
    kinds = [_KINDS[k] for k in found.kinds.tolist()]
    # warm: slower than hot_fill_seconds to fill the range; developed images' values are not linear,
    # no dark current to tell by
    if acc.source is not SourceKind.IMAGE:
        rate = found.values
        warm = found.of(DefectKind.HOT) & (rate > 0) & (ser.p.hot_fill_seconds * rate < ser.span)
        kinds = [DefectKind.WARM if w else k for k, w in zip(kinds, warm.tolist())]
    views = _views_shown(acc, found).tolist()
    return [
        Defect(r, c, k, s, ch, f, v, views=n)
        for r, c, k, s, ch, f, v, n in zip(
            rows, cols, kinds, found.scores.tolist(), letters, first, found.values.tolist(), views
        )
    ]


def _views_shown(acc: Accumulator, found: _Found) -> np.ndarray:
    """Per defect found, the evidence units that showed it (see :attr:`rawmap.defectmap.Defect.views`)."""
    S = max(acc.n_scenes, 1)
    r, c = found.rows, found.cols
    n = np.minimum(acc.s_hi[r, c].astype(np.int64) + acc.s_lo[r, c], S)
    const = found.of(DefectKind.STUCK) | found.of(DefectKind.DEAD)
    n[const] = S
    line = found.of(DefectKind.COLUMN)
    if line.any() and acc.ln_code.size:
        flat = acc.ln_code >> 2
        order = np.argsort(flat, kind="stable")
        keys, counts = flat[order], acc.ln_count[order].astype(np.int64)
        q = r[line] * acc.shape[1] + c[line]
        lo = np.searchsorted(keys, q, "left")
        hi = np.searchsorted(keys, q, "right")
        best = np.array([counts[a:b].max() if b > a else 0 for a, b in zip(lo, hi)], np.int64)
        n[line] = np.minimum(np.maximum(n[line], best), S)
    return n


#: kinds found from what every frame showed (the value range over all frames, lines leaning in every scene)
_ALWAYS_SHOWN = (DefectKind.STUCK, DefectKind.DEAD, DefectKind.COLUMN)


def _first_seen(acc: Accumulator, found: _Found, series_start) -> list:
    """Capture time of the earliest frame that showed each defect found.

    Stuck and dead photosites are found from their value range over all
    frames and column/row segments from lines that lean in every scene
    where they are visible: they showed from the series' first capture.
    Hot, noisy and cold photosites showed from the first frame of the
    earliest scene (burst) in which they were confirmed outliers (the
    accumulator's record, merged by earliest time), or from the series'
    first capture when no time was recorded.  The time is never later than
    the earliest frame in which the photosite was a confirmed outlier, so a
    dcraw ``-P`` line dated with it repairs that frame.
    """
    if not found.rows.size:
        return []
    always = np.isin(found.kinds, [_KINDS.index(k) for k in _ALWAYS_SHOWN])
    recorded = acc.first_seen(found.rows, found.cols)
    return [series_start if a or f is None else f for a, f in zip(always.tolist(), recorded)]


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
    r = np.concatenate(out_r)
    c = np.concatenate(out_c)
    a = np.concatenate(out_a)
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
    r = np.concatenate(out_r).astype(np.int64)
    c = np.concatenate(out_c).astype(np.int64)
    a = np.concatenate(out_a)
    _, first = np.unique(r * W + c, return_index=True)
    return r[first], c[first], a[first]


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
    res = acc.s_r[cr, ccl] / np.maximum(acc.valid_counts((cr, ccl)), 1)
    keep = np.ones(cr.size, bool)
    for axis in (0, 1):
        idx = np.flatnonzero(caxis == axis)
        if idx.size == 0:
            continue
        order, start = _runs_along(cr[idx], ccl[idx], axis)
        idx = idx[order]
        pos = cr[idx] if axis == 0 else ccl[idx]
        bounds = np.append(np.flatnonzero(start), idx.size)
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b - a < 4:
                continue
            run = idx[a:b]
            r = res[run]
            par = pos[a:b] & 1
            med = np.array([np.median(r[par == k]) for k in (0, 1)])
            big = float(np.abs(med).max())
            if big == 0.0:
                continue
            firsts, lasts = [], []
            for k in (0, 1):
                if abs(med[k]) < 0.25 * big:
                    continue  # the colour the fault spans without leaning
                # in units of the segment's offset: a photosite past the end reads about 0 (-0.5 with a
                # neighbour along the line in the segment); far from both, it is the scene's detail
                u = r * np.sign(med[k]) / abs(med[k])
                spread = 1.4826 * float(np.median(np.abs(u[par == k] - 1.0)))
                if spread > max_spread:  # offsets this varied (scene detail in them): no telling the end
                    firsts.append(0)
                    lasts.append(b - a - 1)
                    continue
                ok = np.flatnonzero((par == k) & ((u >= share) | (u < -quiet)))
                if ok.size:
                    firsts.append(ok[0])
                    lasts.append(ok[-1])
            if firsts:  # the span from the first to the last photosite that carries the offset
                keep[run[: min(firsts)]] = False
                keep[run[max(lasts) + 1 :]] = False
    return cr[keep], ccl[keep], caxis[keep]


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


def _blob_centres(rows, cols, scores, kinds) -> list[int]:
    """Indices of the strongest pixel of each 8-connected group (column runs kept whole)."""
    n = rows.size
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    where = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows, cols))}
    for i in range(n):
        if kinds[i] is DefectKind.COLUMN:
            continue
        r, c = int(rows[i]), int(cols[i])
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                j = where.get((r + dr, c + dc))
                if j is not None and j != i and kinds[j] is not DefectKind.COLUMN:
                    a, b = find(i), find(j)
                    if a != b:
                        parent[a] = b
    best: dict[int, int] = {}
    keep = []
    for i in range(n):
        if kinds[i] is DefectKind.COLUMN:
            keep.append(i)
            continue
        root = find(i)
        if root not in best or scores[i] > scores[best[root]]:
            best[root] = i
    keep.extend(best.values())
    return sorted(keep)


def _evidence(acc: Accumulator) -> dict[str, int]:
    """Evidence units of a series: views (a dark that joined a photo's view is part of it), darks, flats,
    and the views shot several times (brackets, bursts, timelapses: each counted once)."""
    lit = {f.scene for f in acc.frames if f.kind != "dark"}
    darks = {f.scene for f in acc.frames if f.kind == "dark"} - lit
    flats = {f.scene for f in acc.frames if f.kind == "flat"}
    per_view = Counter(f.scene for f in acc.frames if f.scene in lit)
    repeated = sum(1 for n in per_view.values() if n > 1)
    return {"views": len(lit), "darks": len(darks), "flats": len(flats), "repeated": repeated}


def _dark_noise(acc: Accumulator) -> float | None:
    """The temporal noise of a set of darks of one exposure (DN per frame); None for any other series.

    Each photosite's range over the set (lowest to highest value) is, for
    Gaussian noise, a known multiple of its sigma; the mean range
    over the photosites valid in every frame, the 2 % widest left out (hot
    and blinking ones), gives the sigma.  For bias frames that is the read
    noise (with the rounding's 1/12 DN^2); for darks it includes the dark
    current's shot noise.  At different exposures a dark current moves the
    means, so no figure is given then, nor with photos (their scenes).
    """
    frames = acc.frames
    if acc.n_frames < 3 or not _darks_only(acc) or len({(f.exposure, f.iso) for f in frames}) != 1:
        return None
    sr, sc = _sample_index(*acc.shape)
    ok = (acc.n_invalid[sr, sc] == 0) & (acc.vmax[sr, sc] < acc.clip)
    ranges = (acc.vmax[sr, sc].astype(np.float64) - acc.vmin[sr, sc])[ok]
    if ranges.size < 100:
        return None
    ranges = np.sort(ranges)[: int(0.98 * ranges.size)]
    # the 2 % cut takes the top of the noise's own range distribution too: the mean of the rest,
    # divided by that of Gaussian ranges cut the same way
    return round(float(ranges.mean() / _gaussian_range(acc.n_frames)), 3)


@functools.lru_cache(maxsize=8)
def _gaussian_range(n: int) -> float:
    """Mean range of ``n`` standard normal values, the widest 2 % left out (a fixed sample; once per ``n``)."""
    rng = np.random.default_rng(0)
    ref = np.ptp(rng.standard_normal((max(2_000, 4_000_000 // n), n)), axis=1)
    return float(np.sort(ref)[: int(0.98 * ref.size)].mean())


def build_map(acc: Accumulator, params: ClassifyParams | None = None, *, skipped: int = 0) -> DefectMap:
    """Classify and wrap the result with the body's identity, geometry and frame summary."""
    p = params or ClassifyParams()
    defects = classify(acc, p)
    times = [f.time for f in acc.frames if f.time]
    exps = [f.exposure for f in acc.frames if f.exposure > 0]
    isos = [f.iso for f in acc.frames if f.iso > 0]
    temps = [f.temperature for f in acc.frames if f.temperature is not None]
    H, W = acc.shape
    sensor = SensorGeometry(
        height=H,
        width=W,
        top_margin=acc.margins[0],
        left_margin=acc.margins[1],
        full_height=acc.full_shape[0] or H,
        full_width=acc.full_shape[1] or W,
        cfa=cfa_letters(acc.cfa),
        source=acc.source.value,
        channels=acc.channels if acc.source is SourceKind.IMAGE else None,
    )
    frames = FrameStats(
        count=acc.n_frames,
        skipped=skipped,
        first_capture=min(times) if times else None,
        last_capture=max(times) if times else None,
        exposure_min=min(exps) if exps else 0.0,
        exposure_max=max(exps) if exps else 0.0,
        iso_min=min(isos) if isos else 0.0,
        iso_max=max(isos) if isos else 0.0,
        **_evidence(acc),
        temperature_min=min(temps) if temps else None,
        temperature_max=max(temps) if temps else None,
        dark_noise=_dark_noise(acc),
    )
    thresholds = {
        "sensitivity": p.sensitivity,
        "accumulate": acc.params.to_dict(),
        "classify": p.to_dict(),
        "scenes": acc.n_scenes,
    }
    return DefectMap(camera=acc.camera, sensor=sensor, frames=frames, defects=defects, thresholds=thresholds)
