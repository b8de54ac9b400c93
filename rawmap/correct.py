"""Corrections of mapped photosites that still carry signal (:func:`correct_mosaic`).

Interpolation (:func:`rawmap.repair.repair_mosaic`) replaces a flagged
photosite by an estimate from its neighbours, and so loses whatever detail
of the scene fell on it.  Where the map says what is wrong with a photosite
and the photosite still measures the light, the measurement can be corrected
instead:

* **column and row segments** (``column``): a readout offset added to every
  photosite of the segment.  It scales with ISO, so it is measured again in
  each frame: the median, over the segment's photosites of one colour, of
  their value less the mean of their same-colour neighbours across the line
  (which the fault does not touch), or, where a scene edge or a thin line
  along the segment pulls that median, the same median over the half of
  them whose two sides agree best (:func:`_offset`); then subtracted from
  every photosite of the segment that is not clipped (at white, or at 0 by
  a negative offset).  A live segment varies at least as much as the flatter side
  beside it; a stuck one does not, nor does a dead one beside a lit or
  textured scene: their photosites keep the interpolated value.  A dead
  segment beside a dim, flat scene passes for live, and its "correction"
  is then its sides' level plus its read noise, about what interpolation
  gives; a live one whose negative offset brings it down to black cannot
  be told from a dead one by its level (a rule that tried interpolated
  such a segment in a dim photo, 240 DN RMSE instead of 18).
* **low-gain photosites** (``cold``): the map's ``value`` is the gain
  relative to the neighbours; the signal above black is divided by it when
  it stands above ``min_signal``.
* **hot and warm photosites** (``hot``, ``warm``): the map's ``value`` is the dark
  current in DN/s at ISO 100 (taken over the frames in which the photosite
  did not clip; at 20 degrees C when the map's frames stated temperatures,
  and then scaled to the photo's own when it states one); the photo's dark
  signal, value x exposure x ISO/100, is subtracted where the photosite is
  not clipped.

A segment's offset, measured over the whole segment, is used as it is,
however far the corrected photosite lies from the interpolation: the
segment's own reading holds the scene's detail along it, which its
neighbours do not see (a thin line or an edge running along a column).  A
low-gain or hot photosite's
correction and the interpolation are **weighed by their expected errors**
(inverse variances), measured in the photo itself
(:func:`rawmap.accumulate.noise.noise_floor`, the lower envelope of its
noise per level):

* the interpolation's: the variance of the 8 unflagged same-colour
  neighbours at distance 2 (the detail it cannot follow) plus the photo's
  noise at the level (which no estimate from neighbours can know);
* a low-gain correction's: the photosite's own noise at its reading,
  amplified by the division beyond a normal photosite's (x ``1/g^2 - 1``),
  and the gain's error (``gain_error`` of the corrected signal);
* a dark-current correction's: the dark signal's shot noise (at most the
  variance per DN the photo's darkest levels allow) and the rate's error
  (``dark_error`` of the dark signal).

So a strong hot photosite in a smooth sky at a high ISO leans to its
neighbours, the same photosite in foliage to its own corrected value.  A
correction that falls outside the range of the neighbours by more than
``agree`` x its own error and the noise is refused as a map's value gone
wrong (a rate off by 2x in one of indep-8080's clipping photosites), not
the scene.  Measured on indep-8080's three test frames, RMSE at the true
sites against the defect-free frames: hot 83 -> 47 DN, low gain 81 -> 79,
against 126 and 93 for dcraw ``-P`` given the true list.

A **noisy** (blinking) photosite reads as a normal one in its normal state
and jumps by far more than the noise in the other: it keeps its own value
where that lies within ``state_agree`` x the interpolation's expected error
of the interpolated value, and is interpolated elsewhere (indep-8080: in
10 of its 15 test readings the blinking photosites read exactly the
defect-free value; RMSE 65 -> 45 DN, against 99 for dcraw).  Every
photosite that is clipped, stuck or dead keeps the interpolated value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .accumulate.noise import NoiseFloor, noise_floor, robust_sigma
from .accumulate.records import dark_current_factor
from .defectmap import DefectKind, DefectMap, column_segments

__all__ = ["CorrectionCounts", "correct_mosaic"]

#: Kinds whose value is a dark-current slope, subtracted by the correction.
_DARK_KINDS = frozenset({DefectKind.HOT, DefectKind.WARM})

#: Same-colour neighbours at distance 2 (every colour of a Bayer mosaic has them).
_RING = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx]


@dataclass(frozen=True)
class CorrectionCounts:
    """How the flagged photosites of one frame were estimated.

    Attributes
    ----------
    offset : int
        Column/row segment photosites corrected by the frame's offset.
    gain : int
        Low-gain photosites divided by their gain (weighing at least as
        much as the interpolation in the estimate).
    dark : int
        Hot and warm photosites less their dark signal (likewise).
    kept : int
        Noisy (blinking) photosites kept as they read: in their normal
        state, within ``state_agree`` x the interpolation's error of it.
    interpolated : int
        All the others: interpolated, or mostly so (and corrections refused).
    """

    offset: int = 0
    gain: int = 0
    interpolated: int = 0
    dark: int = 0
    kept: int = 0


def _neighbour_stats(
    mosaic: np.ndarray, mask: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each photosite's unflagged same-colour neighbours at distance 2 (the 8 of :data:`_RING`).

    Returns
    -------
    n : (N,) ndarray of int
        How many there are.
    low, high : (N,) ndarray of float64
        Their smallest and largest value (NaN where there are none).
    std : (N,) ndarray of float64
        Their standard deviation (0 where there are fewer than 2): fine
        detail's full spread, which the robust one understates.
    """
    H, W = mosaic.shape
    vals = []
    for dy, dx in _RING:
        r, c = rows + dy, cols + dx
        ok = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        r, c = np.where(ok, r, rows), np.where(ok, c, cols)
        v = mosaic[r, c].astype(np.float64)
        vals.append(np.where(ok & ~mask[r, c], v, np.nan))
    stack = np.stack(vals)
    n = np.sum(np.isfinite(stack), axis=0)
    filled = np.where(n > 0, stack, 0.0)
    with np.errstate(all="ignore"):
        std = np.where(n > 1, np.nanstd(stack, axis=0, ddof=1), 0.0)
        low = np.where(n > 0, np.nanmin(filled, axis=0), np.nan)
        high = np.where(n > 0, np.nanmax(filled, axis=0), np.nan)
    return n, low, high, std


def _offset(value: np.ndarray, sides: np.ndarray) -> float:
    """A segment's offset in one colour from its photosites and their neighbours across the line.

    Parameters
    ----------
    value : (N,) ndarray of float64
        The segment's photosites of one colour (NaN: clipped).
    sides : (2, N) ndarray of float64
        Their same-colour neighbours on either side of the line (NaN: unusable).

    Returns
    -------
    float
        The median of the photosites' values less the mean of their sides
        (a gradient across the line cancels in the mean), unless it lies
        beyond three standard errors of the same median over the half of
        them whose two sides agree best; then the latter.  A scene edge or
        a thin line running along the segment, seen on one side or on
        neither, pulls the plain median, which may lie thousands of DN from
        the offset where more than half the segment runs along one (the
        edges are left out of the agreeing half, and a thin line is
        outvoted there); in texture the plain median, over twice the
        photosites, is the steadier.  With fewer than 8 photosites seen from
        both sides (a segment at the frame's border), the plain median over
        whichever side each has.
    """
    two = np.isfinite(value) & np.isfinite(sides).all(axis=0)
    if two.sum() >= 8:
        d = value[two] - sides[:, two].mean(axis=0)
        apart = np.abs(sides[0, two] - sides[1, two])
        agree = d[apart <= np.median(apart)]
        plain, robust = float(np.median(d)), float(np.median(agree))
        if abs(plain - robust) <= 3.0 * 1.25 * robust_sigma(agree) / np.sqrt(agree.size) + 1.0:
            return plain
        return robust
    with np.errstate(all="ignore"):  # (a photosite with no usable side gives NaN, left out)
        d = value - np.nanmean(sides, axis=0)
    return float(np.median(d[np.isfinite(d)]))


def _segment_offsets(
    mosaic: np.ndarray, mask: np.ndarray, defects: list, white: int, black2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each segment photosite's frame offset (NaN where none can be measured).

    The segments are :func:`rawmap.defectmap.column_segments`' unbroken runs
    (a one-colour segment, which skips every second photosite, is left to
    interpolation).

    Returns
    -------
    rows, cols : (N,) ndarray of int64
    offset : (N,) ndarray of float64
    """
    H, W = mosaic.shape
    rows_out, cols_out, off_out = [], [], []
    for seg in column_segments(defects, max_gap=1):
        cells = np.array(seg.cells(), dtype=np.int64)
        rr, cc = cells[:, 0], cells[:, 1]
        column = seg.axis == "column"  # neighbours across a column: left and right
        a, b = ((rr, cc - 2), (rr, cc + 2)) if column else ((rr - 2, cc), (rr + 2, cc))
        diffs = []
        for r2, c2 in (a, b):
            ok = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
            r2c, c2c = np.where(ok, r2, rr), np.where(ok, c2, cc)
            good = ok & ~mask[r2c, c2c] & (mosaic[r2c, c2c] < white)
            diffs.append(np.where(good, mosaic[r2c, c2c].astype(np.float64), np.nan))
        both = np.stack(diffs)
        n_ok = np.sum(np.isfinite(both), axis=0)
        with np.errstate(all="ignore"):  # (nanmean would warn where both sides are unusable)
            across = np.where(n_ok > 0, np.nansum(both, axis=0) / np.maximum(n_ok, 1), np.nan)
        # a photosite clipped at white, or at 0 by a negative offset, carries no signal to correct
        read = mosaic[rr, cc]
        value = np.where((read < white) & (read > 0), read.astype(np.float64), np.nan)
        d = value - across
        offset = np.full(rr.size, np.nan)
        pos = rr if column else cc
        for parity in (0, 1):  # its photosites of one colour share the offset
            sel = (pos & 1) == parity
            ok = np.isfinite(d[sel])
            dv, av = d[sel][ok], across[sel][ok]
            if dv.size < 4:
                continue
            own = mosaic[rr[sel], cc[sel]][ok].astype(np.float64)
            med = _offset(value[sel], both[:, sel])
            spread = robust_sigma(own)
            # a live segment varies as much as the flatter side beside it (scene and noise; the
            # other side may hold an edge or texture the segment does not see); a stuck one does
            # not, nor does a dead one (its read noise only) beside a lit or textured scene
            sides = [robust_sigma(x) for x in both[:, sel] if np.isfinite(x).sum() >= 4]
            scene = min(sides) if sides else robust_sigma(av)
            if spread >= 0.5 * scene:
                offset[sel] = np.where(np.isfinite(value[sel]), med, np.nan)
        rows_out.append(rr)
        cols_out.append(cc)
        off_out.append(offset)
    if not rows_out:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0)
    return np.concatenate(rows_out), np.concatenate(cols_out), np.concatenate(off_out)


def correct_mosaic(
    mosaic: np.ndarray,
    repaired: np.ndarray,
    defect_map: DefectMap,
    black: np.ndarray,
    white: int,
    *,
    agree: float = 4.0,
    min_signal: float = 20.0,
    gain_error: float = 0.05,
    mask: np.ndarray | None = None,
    exposure: float = 0.0,
    iso: float = 0.0,
    temperature: float | None = None,
    dark_error: float = 0.03,
    state_agree: float = 1.5,
    copy: bool = True,
    floor: NoiseFloor | None = None,
) -> tuple[np.ndarray, CorrectionCounts]:
    """Correct the mapped photosites that still carry signal; keep the interpolated value elsewhere.

    Parameters
    ----------
    mosaic : (H, W) ndarray of uint16
        The frame as read (visible area).
    repaired : (H, W) ndarray of uint16
        The same after :func:`rawmap.repair.repair_mosaic` with the map's mask.
    defect_map : DefectMap
        The map (its ``value`` per defect: a column's offset, a cold photosite's gain).
    black : (2, 2) array_like of float
        Black level (DN) at each position of the 2x2 pattern.
    white : int
        Clip level (DN): clipped photosites are never corrected.
    agree : float, optional
        A gain or dark-current correction is refused where it lies further
        than ``agree`` x its expected error and the noise outside the range
        of the neighbours.
    min_signal : float, optional
        DN above black a low-gain photosite must read to be divided by its gain.
    gain_error : float, optional
        Relative error of a mapped gain (measured on indep-8080: 1.5-12 %,
        6 % rms), part of a gain correction's expected error.
    mask : (H, W) ndarray of bool, optional
        ``defect_map.mask()``, when the caller has it already.
    exposure, iso : float, optional
        The photo's; with an exposure (> 0), hot photosites are corrected
        by their dark signal (ISO 0: taken as 100).
    temperature : float, optional
        The photo's, degrees C: scales a map's dark currents given at 20
        degrees C (maps whose frames stated temperatures).
    dark_error : float, optional
        Relative error of a mapped dark current (measured on indep-8080: 1 %
        median, 2.5 % at the 90th percentile, one of 39 off 2x), part of a
        dark-current correction's expected error.
    state_agree : float, optional
        A noisy photosite keeps its own value where that lies within this
        many times the interpolation's expected error of the interpolated
        value (a blinking photosite in its normal state); else interpolated.
    copy : bool, optional
        False: write the corrections into ``repaired`` itself and return it
        (a caller that owns it saves a copy of the frame).
    floor : NoiseFloor, optional
        ``noise_floor(mosaic, black, white)``, when the caller has it
        already (:func:`rawmap.repair.repair_mosaic` measures it too).

    Returns
    -------
    out : (H, W) ndarray of uint16
        ``repaired`` with the accepted corrections; unflagged photosites untouched.
    counts : CorrectionCounts
    """
    if mask is None:
        mask = defect_map.mask()
    out = repaired.copy() if copy else repaired
    n_flagged = int(np.count_nonzero(mask))
    if n_flagged == 0:
        return out, CorrectionCounts()
    black2 = np.asarray(black, dtype=np.float64).reshape(2, 2)
    cand_r: list[np.ndarray] = []
    cand_c: list[np.ndarray] = []
    cand_v: list[np.ndarray] = []
    cand_k: list[np.ndarray] = []
    sr, sc, off = _segment_offsets(mosaic, mask, defect_map.defects, white, black2)
    if sr.size:
        ok = np.isfinite(off)
        cand_r.append(sr[ok])
        cand_c.append(sc[ok])
        cand_v.append(mosaic[sr[ok], sc[ok]].astype(np.float64) - off[ok])
        cand_k.append(np.zeros(int(ok.sum()), np.int8))
    cold = [(d.row, d.col, d.value) for d in defect_map.defects if d.kind is DefectKind.COLD and 0.02 < d.value < 1]
    if cold:
        arr = np.array(cold)
        r, c, g = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2]
        v = mosaic[r, c].astype(np.float64)
        bl = black2[r & 1, c & 1]
        ok = (mosaic[r, c] < white) & (v - bl > min_signal)
        cand_r.append(r[ok])
        cand_c.append(c[ok])
        cand_v.append(bl[ok] + (v[ok] - bl[ok]) / g[ok])
        cand_k.append(np.ones(int(ok.sum()), np.int8))
        cold_gain = g[ok]
    else:
        cold_gain = np.zeros(0)
    hot = [(d.row, d.col, d.value) for d in defect_map.defects if d.kind in _DARK_KINDS and d.value > 0]
    if hot and exposure > 0:
        arr = np.array(hot)
        r, c, rate = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2]
        at_20 = defect_map.frames.temperature_min is not None
        dark = (
            rate * exposure * (iso / 100.0 if iso > 0 else 1.0) * (dark_current_factor(temperature) if at_20 else 1.0)
        )
        ok = mosaic[r, c] < white
        cand_r.append(r[ok])
        cand_c.append(c[ok])
        cand_v.append(mosaic[r[ok], c[ok]].astype(np.float64) - dark[ok])
        cand_k.append(np.full(int(ok.sum()), 2, np.int8))
        hot_dark = dark[ok]
    else:
        hot_dark = np.zeros(0)
    noisy = [(d.row, d.col) for d in defect_map.defects if d.kind is DefectKind.NOISY]
    if noisy:
        arr = np.array(noisy, dtype=np.int64).reshape(-1, 2)
        r, c = arr[:, 0], arr[:, 1]
        ok = mosaic[r, c] < white
        cand_r.append(r[ok])
        cand_c.append(c[ok])
        cand_v.append(mosaic[r[ok], c[ok]].astype(np.float64))
        cand_k.append(np.full(int(ok.sum()), 3, np.int8))
    if not cand_r:
        return out, CorrectionCounts(interpolated=n_flagged)
    r = np.concatenate(cand_r)
    c = np.concatenate(cand_c)
    v = np.concatenate(cand_v)
    k = np.concatenate(cand_k)
    interp = repaired[r, c].astype(np.float64)
    bl = black2[r & 1, c & 1]
    n, low, high, std = _neighbour_stats(mosaic, mask, r, c)
    level = np.maximum(interp - bl, 0.0)
    gap = np.abs(v - interp)
    # hot and low-gain photosites: the correction and the interpolation weighed by their expected
    # errors (see the module documentation), against the photo's own read and shot noise
    weight = np.zeros(k.size)
    pointwise = k > 0
    if pointwise.any():
        noise = noise_floor(mosaic, black2, white) if floor is None else floor
        var_i = np.where(n >= 3, std**2, np.inf) + noise.variance(level)
        var_c = np.full(k.size, np.inf)
        signal = np.maximum(mosaic[r, c].astype(np.float64) - bl, 0.0)  # as read, above black
        # a low-gain photosite's noise, divided by its gain, beyond a normal photosite's (all of it
        # counted as read noise, which the division amplifies most), and the gain's own error
        own = noise.variance(signal[k == 1])
        var_c[k == 1] = own * (1.0 / cold_gain**2 - 1.0) + (gain_error * signal[k == 1] / cold_gain) ** 2
        # a dark signal's shot noise (at most the bound a dark photo allows) and the rate's error
        var_c[k == 2] = noise.shot_bound * hot_dark + (dark_error * hot_dark) ** 2
        # a noisy (blinking) photosite in its normal state reads as a normal one: its own value,
        # where it agrees with the interpolation within ``state_agree`` x the latter's error
        var_c[k == 3] = 0.0
        var_c = np.maximum(var_c, 0.25)  # (the rounding to whole DN)
        # fewer than 3 neighbours to interpolate from: the correction alone (inf / inf computed, not used)
        with np.errstate(invalid="ignore"):
            w = np.where(np.isinf(var_i), 1.0, var_i / (var_i + var_c))
        # a correction is refused where it falls outside the range of the neighbours by more than its
        # own error and the noise allow: a map's value gone wrong (a rate, a gain), not the scene (the
        # neighbours' range holds fine detail, which their spread, of 8, can understate many times)
        margin = agree * np.sqrt(var_c + noise.variance(level))
        agrees = ~(v < low - margin) & ~(v > high + margin)
        agrees = np.where(k == 3, gap <= state_agree * np.sqrt(var_i), agrees)
        weight = np.where(pointwise & agrees & (v >= 0), w, 0.0)
    weight[k == 0] = 1.0  # an offset measured over a whole segment (see the module documentation)
    est = weight * v + (1.0 - weight) * interp
    use = (weight > 0) & (v < white)
    out[r[use], c[use]] = np.clip(np.rint(est[use]), 0, white).astype(np.uint16)
    mostly = use & (weight >= 0.5)
    n_off = int(np.sum(mostly & (k == 0)))
    n_gain = int(np.sum(mostly & (k == 1)))
    n_dark = int(np.sum(mostly & (k == 2)))
    n_kept = int(np.sum(mostly & (k == 3)))
    return out, CorrectionCounts(
        offset=n_off,
        gain=n_gain,
        dark=n_dark,
        kept=n_kept,
        interpolated=n_flagged - n_off - n_gain - n_dark - n_kept,
    )
