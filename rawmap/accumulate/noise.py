"""A frame's read and shot noise, measured on the frame itself (:func:`noise_model`).

Used by the accumulator for each frame's record (the detection's noise
bounds) and by the corrections of :mod:`rawmap.correct` (how far a
photosite's own corrected signal can be trusted against an interpolation).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _kernels

__all__ = ["noise_model"]


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
    H, W = plane.shape
    target = 200_000
    row_step = max(1, int(math.sqrt(H * W / target)))
    rows = np.arange(0, H, row_step, dtype=np.int64)
    r, lv, code = _kernels.residual_sample(plane, black2, clip, rows, row_step)
    floor = 2.0
    if r.size < 100:
        return floor, 0.0
    nb = 16
    lv_sorted = _kernels.sorted_levels(code, black2)  # by counting: a tenth of np.quantile's time
    edges = _kernels.sorted_quantiles(lv_sorted, np.linspace(0, 1, nb + 1))
    # per bin, the lower quartile of |r|: flat areas dominate it, texture does not (Gaussian: 0.3186 sigma)
    counts, med_level, q25 = _kernels.level_bins(r, lv, lv_sorted, edges, 50)
    keep = counts >= 50
    levels = med_level[keep].tolist()
    variances = [(q / 0.3186) ** 2 for q in q25[keep].tolist()]
    weights = counts[keep].tolist()
    if not levels:
        return floor, 0.0
    L = np.maximum(np.array(levels), 0.0)
    V = np.array(variances)
    w = np.array(weights, float)
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
