"""A frame's read and shot noise, measured on the frame itself (:func:`noise_model`).

Used by the accumulator for each frame's record (the detection's noise
bounds) and by the corrections of :mod:`rawmap.correct` (how far a
photosite's own corrected signal can be trusted against an interpolation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _kernels

__all__ = ["NoiseFloor", "noise_floor", "noise_model", "robust_sigma"]


def robust_sigma(a: np.ndarray) -> float:
    """Robust standard deviation of the finite values of ``a``: 1.4826 x their median absolute deviation.

    Parameters
    ----------
    a : ndarray of float
        Any shape; NaN and infinities are left out.

    Returns
    -------
    float
        NaN when no value is finite.
    """
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan
    med = np.median(a)
    return float(1.4826 * np.median(np.abs(a - med)))


def noise_model(plane: np.ndarray, black2: np.ndarray, clip: int) -> tuple[float, float]:
    """A frame's noise: var(r) = a + b * level, fitted on a subsample (robust per level bin).

    ``r`` is the kernels' residual ``4 v - sum4`` of a photosite against its
    four same-colour neighbours (20x the variance of one photosite's noise
    where they are alike), ``level`` the neighbours' mean above black (DN).
    Per level bin, the lower quartile of ``|r|`` stands for the noise: flat
    areas dominate it, texture does not.

    Parameters
    ----------
    plane : (H, W) ndarray of uint16
        The frame's mosaic (or image plane).
    black2 : (2, 2) ndarray of float64
        Black level at each position of the 2x2 pattern.
    clip : int
        Photosites at or above it are left out.

    Returns
    -------
    a, b : float
        Read-noise variance (residual units, at least 2) and the shot-noise
        slope (residual units per DN of level; 0 where the levels cannot
        separate it).
    """
    floor = 2.0
    binned = _level_bins(plane, black2, clip)
    if binned is None:
        return floor, 0.0
    L, V, w = binned
    v_mean = float(np.average(V, weights=w))
    if len(L) >= 2 and np.ptp(L) > 0:
        A = np.stack([np.ones_like(L), L], axis=1) * w[:, None]
        a, b = np.linalg.lstsq(A, V * w, rcond=None)[0]
    else:
        a, b = v_mean, 0.0
    if b < 0:
        a, b = v_mean, 0.0
    # Texture curves the binned variances, which can drive the fitted intercept
    # below the true read noise; never predict less than the darkest bins showed.
    dark = np.argsort(L)[:2]
    a = max(a, float(np.min(V[dark] - b * L[dark])), floor)
    # Levels that vary no more than noise moves them (a flat field) cannot separate read
    # noise from shot noise: the slope fitted on them is noise, and with its intercept
    # raised to the floor it can overstate the variance many times.  There, one variance
    # for the one level (~0.45 sqrt(V) is the spread of bin levels that noise alone gives).
    if np.ptp(L) < 2.0 * math.sqrt(float(V.max())) and float(np.average(a + b * L, weights=w)) > 2.0 * v_mean:
        a, b = max(v_mean, floor), 0.0
    return float(a), float(b)


def _level_bins(
    plane: np.ndarray, black2: np.ndarray, clip: int, n_bins: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The residual's variance per level bin, on about 200,000 photosites of the frame.

    Per bin, the lower quartile of ``|r|`` stands for the noise: flat areas
    dominate it, texture does not (Gaussian: 0.3186 sigma).

    Returns
    -------
    levels, variances, counts : (n,) ndarray of float64
        Bins of at least 50 photosites: median level (DN above black, at
        least 0), residual variance (residual units), photosites.  ``None``
        when fewer than 100 photosites could be sampled or no bin is left.
    """
    H, W = plane.shape
    row_step = max(1, int(math.sqrt(H * W / 200_000)))
    rows = np.arange(0, H, row_step, dtype=np.int64)
    r, lv, code = _kernels.residual_sample(plane, black2, clip, rows, row_step)
    if r.size < 100:
        return None
    lv_sorted = _kernels.sorted_levels(code, black2)  # by counting: a tenth of np.quantile's time
    edges = _kernels.sorted_quantiles(lv_sorted, np.linspace(0, 1, n_bins + 1))
    counts, med_level, q25 = _kernels.level_bins(r, lv, lv_sorted, edges, 50)
    keep = counts >= 50
    if not keep.any():
        return None
    L = np.maximum(np.array(med_level[keep].tolist()), 0.0)
    V = np.array([(q / 0.3186) ** 2 for q in q25[keep].tolist()])
    return L, V, counts[keep].astype(np.float64)


@dataclass(frozen=True)
class NoiseFloor:
    """One photosite's noise in a frame, from the quietest parts of each level (:func:`noise_floor`).

    Attributes
    ----------
    read : float
        Variance (DN^2) at black.
    shot : float
        Variance per DN of signal above black (DN per electron, where the
        levels separate it from read noise).
    shot_bound : float
        An upper bound of ``shot``: the whole variance at the highest level
        fitted, over that level (a dark frame shows no shot noise, and its
        read noise is all the slope can be).
    """

    read: float
    shot: float
    shot_bound: float

    def variance(self, level: np.ndarray) -> np.ndarray:
        """Variance (DN^2) of one photosite's reading at ``level`` DN above black (any shape)."""
        return self.read + self.shot * np.maximum(level, 0.0)


def noise_floor(plane: np.ndarray, black2: np.ndarray, clip: int, *, grow: float = 1.5) -> NoiseFloor:
    """A frame's noise as the lower envelope of its level bins: texture only ever adds to it.

    :func:`noise_model` fits every bin, which suits the detection (its
    bounds must not be too tight where texture is); a correction weighed
    against interpolation needs the noise itself.  Bins are taken from the
    darkest up: the first three fit ``read + shot x level``, and each next
    bin joins the fit when its variance is within ``grow`` x the fit's (a
    bin lifted by texture stays out).

    Parameters
    ----------
    plane : (H, W) ndarray of uint16
    black2 : (2, 2) ndarray of float64
    clip : int
    grow : float, optional

    Returns
    -------
    NoiseFloor
        In DN^2 of one photosite (the residual's variance / 20).
    """
    binned = _level_bins(plane, black2, clip)
    if binned is None:
        return NoiseFloor(0.1, 0.0, 0.0)
    order = np.argsort(binned[0], kind="stable")
    L, V, w = (x[order] for x in binned)

    def fit(keep: np.ndarray) -> tuple[float, float]:
        lk, vk, wk = L[keep], V[keep], w[keep]
        mean = float(np.average(vk, weights=wk))
        if np.ptp(lk) <= 0:
            return mean, 0.0
        a, b = np.linalg.lstsq(np.stack([np.ones(lk.size), lk], axis=1) * wk[:, None], vk * wk, rcond=None)[0]
        if b < 0:
            return mean, 0.0
        if a < 0:  # the slope alone, through the origin
            return 0.0, float(np.sum(wk * lk * vk) / np.sum(wk * lk * lk))
        return float(a), float(b)

    keep = np.zeros(L.size, bool)
    keep[:3] = True
    a, b = fit(keep)
    for i in range(3, L.size):
        if V[i] <= grow * (a + b * L[i]):
            keep[i] = True
            a, b = fit(keep)
    top = float(L[keep].max())
    bound = (a + b * top) / top if top > 0 else b
    return NoiseFloor(max(a / 20.0, 0.1), b / 20.0, max(bound, b) / 20.0)
