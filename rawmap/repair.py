"""Repair flagged photosites of a Bayer mosaic, or flagged pixels of a developed image.

Pure functions over arrays: :func:`repair_mosaic` (RAW mosaics, Bayer or
monochrome), :func:`repair_image` (developed images); and the file level:
:func:`repair_file`, :func:`repair_raw_file` (RAW in, DNG or 16-bit TIFF
out), :func:`repair_image_file` (JPEG in, JPEG out),
:func:`repair_mosaic_file` (a grayscale TIFF/PNG/PGM holding a raw mosaic,
``rawmap repair --cfa``: the same format out), :func:`repair_fits_file`
(FITS in, FITS out: same header, type and row order).  With ``opcodes=True``
(``rawmap repair --opcodes``) a RAW file's mosaic is left untouched and the
map is listed in the DNG's OpcodeList1 instead (:mod:`rawmap.opcodes`), for
raw developers that apply it.

How :func:`repair_mosaic` estimates a flagged photosite:

1. **Learn the frame's own neighbourhood law.**  On a regular sample of
   unflagged photosites whose 7x7 neighbourhood holds no flagged photosite,
   it fits, by least squares and separately for each of the four pattern
   positions and each *structure class*, the linear predictor of a
   photosite from its 48 neighbours of all colours.  This is colour-difference
   interpolation with the weights measured on the frame instead of assumed:
   how much the adjacent photosites of the other colours, the same-colour
   neighbours and the third colour tell about a site at this position, in
   this frame's optics, colours and noise.  Training sites that are
   impulses (far outside the range of their same-colour neighbours:
   unmapped hot pixels, glints) are left out.
2. **Structure classes.**  At every site the mean absolute difference of
   same-colour pairs (of every colour, unflagged only) along the horizontal,
   the vertical and both diagonals gives four gradients; the class is the
   direction of least gradient, or "isotropic" where no direction stands
   out (largest < 2x least), or "flat" where all four are within noise
   (step 5).  A predictor fitted on sites of one class follows edges of
   that orientation.
3. **Never borrow from flagged photosites.**  For a site whose neighbourhood
   holds other flagged photosites (clusters, column segments) or reaches
   past the frame border, the predictor is re-solved without those
   neighbours, exactly, from the same normal equations (one small solve per
   distinct pattern of missing neighbours).  A column segment is thus
   predicted from the columns beside it.  Sites with a clipped photosite in
   their 7x7 neighbourhood, where the linear law fails, are left to step 4.
4. **Directional fallback.**  Where no predictor can be fitted (frames too
   small to learn from), beside clipped highlights, or where fewer than two
   same-colour neighbours remain in the 5x5 window, a gradient-weighted
   blend of directional colour-difference estimates is used: along each
   direction, the same-colour neighbours corrected by the change of the
   photosites of the other colour between them; weights
   ``1 / (gradient + 1)**2``.
5. **Flat neighbourhoods** (when the black level is given).  Where every
   direction's gradient is at most 1.7 noise sigmas at the local level
   (the frame's read and shot noise, measured on the frame by
   :func:`rawmap.accumulate.noise.noise_floor`), there is no structure to
   follow: a sixth class.  Its sites take the mean of their unflagged
   same-colour neighbours (8 in the 5x5 window; 12 for a green site, its 4
   diagonal neighbours included; at least 6, none clipped), which carries
   no colour ratio or level learned elsewhere in the frame, and they no
   longer train the isotropic class's predictor.  Measured on 9,000
   unflagged photosites of the independent series' three test frames,
   repaired as if flagged, against dcraw's same-colour mean: the flattest
   third 1.10x -> 0.99x, the most textured third 0.62x -> 0.61x, all
   0.74x -> 0.72x.
6. **Clip** to the range of the unflagged same-colour neighbours (5x5
   window, plus the diagonal greens for a green site) widened by half that
   range on each side, and to ``[0, white]``.
7. **Clipped highlights.**  A photosite within 0.5 % of ``white`` counts as
   clipped.  A site inside a clipped highlight (the other three photosites
   of two of its four 2x2 blocks clipped, or all its same-colour neighbours
   clipped) is set to ``white``; at a corner of one (one such block) it may
   lie anywhere between its neighbours' estimate and white, and takes the
   middle of the two.  The blocks count only where the site's own colour
   clips nearby (a same-colour neighbour clipped, or a highlight within one
   photosite of the site, such as a star's core): in a coloured highlight
   the other colours saturate while the site's colour still reads its
   level, which its same-colour neighbours give.
8. Sites whose whole 5x5 same-colour neighbourhood is flagged take the mean
   of the nearest unflagged photosites of the same pattern position,
   searching outwards (a site with none at all in the frame keeps its value).

Unflagged photosites are returned bit for bit.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import _kernels
from ._version import __version__
from .accumulate.noise import NoiseFloor, noise_floor
from .correct import CorrectionCounts, correct_mosaic
from .defectmap import DefectMap
from .errors import InputError, MapMismatchError, OutputExistsError, UnreadableFileError, UnsupportedFileError, one_line
from .fileio import atomic_write_bytes
from .frame import Frame, SourceKind
from .reader import quiet_decoders
from .readers.images import TO_STORED, quiet_pillow

if TYPE_CHECKING:  # pragma: no cover
    from .metadata import Metadata
    from .opcodes import BadPixelList
    from .reader import MosaicSpec

__all__ = [
    "MapMismatchError",
    "RepairResult",
    "repair_mosaic",
    "repair_image",
    "repair_region",
    "repair_file",
    "repair_raw_file",
    "repair_image_file",
    "repair_mosaic_file",
    "repair_fits_file",
    "output_name",
    "plan_outputs",
]

#: Neighbourhood radius of the learned predictor (7x7 stencil, 48 neighbours).
_RADIUS = 3
#: Target number of training photosites per pattern position.
_TRAIN_PER_PHASE = 40_000
#: Frames this big (photosites) fit their four pattern positions on two threads.
_FIT_THREADS_FROM = 4_000_000
#: Fewest training photosites for a class of its own (else the position's all-class fit).
_MIN_CLASS_SAMPLES = 1500
#: Predictors solved at once (bounds the memory of the batched solve to ~40 MB).
_SOLVE_CHUNK = 1024
#: Fewest training photosites to fit a predictor at all (else directional fallback).
_MIN_SAMPLES = 300
#: A direction "stands out" when the largest gradient exceeds the least by this factor.
_ANISOTROPY = 2.0
#: Clip to the neighbours' range widened by this fraction of it on each side.
_WIDEN = 0.5

_DIRS = ((0, 1), (1, 0), (1, 1), (1, -1))
#: Offset of the nearest parallel line for each direction.
_PERP = {(0, 1): (1, 0), (1, 0): (0, 1), (1, 1): (0, 1), (1, -1): (0, 1)}
_STENCIL = tuple(
    (dy, dx) for dy in range(-_RADIUS, _RADIUS + 1) for dx in range(-_RADIUS, _RADIUS + 1) if (dy, dx) != (0, 0)
)
_N_CLASSES = 6  # 4 directions, isotropic, flat
#: Columns of the 8 same-colour neighbours (two apart) in the stencil.
_SAME8 = [i for i, (dy, dx) in enumerate(_STENCIL) if dy % 2 == 0 and dx % 2 == 0 and max(abs(dy), abs(dx)) == 2]
#: Columns of the 24 photosites of the 5x5 window in the stencil.
_WINDOW24 = [i for i, (dy, dx) in enumerate(_STENCIL) if max(abs(dy), abs(dx)) <= 2]
#: Training sites further than this many neighbour ranges outside that range are impulses.
_IMPULSE_TRIM = 1.0
#: A neighbourhood is flat when no gradient exceeds this many noise sigmas at its level.
_FLAT = 1.7
#: Fewest unflagged same-colour neighbours (of 8; 12 for green) for the flat class's mean.
_FLAT_MIN = 6
#: Values this close to white (fraction of white) count as clipped.
_CLIP_MARGIN = 0.005
#: At the corner of a clipped highlight: this much of the way from the estimate up to white.
_CORNER_W = 0.5


class _Lookup:
    """The mosaic and its flagged photosites, looked up around sites; outside the frame counts as flagged.

    Kept as the mosaic's own integers plus the mask, not copied: a padded
    copy of both (the border flagged) took 0.07 s of a 24 MP repair, most
    of it first-touch page faults, and a float copy with NaN 0.1-0.3 s.
    Sites are flat indices into the mosaic (:meth:`index`); look-ups
    check the frame's bounds and give float64 with NaN where flagged or
    outside.  Clipped: unflagged and at or above ``saturated``.
    """

    def __init__(self, mosaic: np.ndarray, mask: np.ndarray, saturated: float) -> None:
        self.h, self.w = mosaic.shape
        self.values_flat = np.ascontiguousarray(mosaic).ravel()
        self.flagged = np.ascontiguousarray(mask).ravel()
        self.stride = self.w
        self.saturated = saturated
        #: flat offsets of the predictor's stencil neighbours (:data:`_STENCIL`)
        self.offsets = np.array([dy * self.stride + dx for dy, dx in _STENCIL], dtype=np.int64)

    def index(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return ys * self.stride + xs

    def interior(self, py: int, px: int, step: int, margin: int = _RADIUS) -> np.ndarray:
        """(N,) flat indices of every ``step``-th site of pattern position (py, px), ``margin`` or more
        photosites inside the frame: where flat offsets of the stencil stay in their own row and column."""
        ys = np.arange(py, self.h, 2 * step)
        xs = np.arange(px, self.w, 2 * step)
        ys = ys[(ys >= margin) & (ys < self.h - margin)]
        xs = xs[(xs >= margin) & (xs < self.w - margin)]
        return (ys[:, None] * self.stride + xs[None, :]).ravel()

    def _look(self, idx: np.ndarray, dy, dx) -> tuple[np.ndarray, np.ndarray]:
        """Raw values and flags at offset (dy, dx) from ``idx`` (offsets broadcast against it); outside: 0, flagged."""
        y, x = np.divmod(idx, self.stride)
        y = y + dy
        x = x + dx
        inside = (y >= 0) & (y < self.h) & (x >= 0) & (x < self.w)
        j = np.where(inside, y * self.stride + x, 0)
        raw = self.values_flat[j]
        return np.where(inside, raw, 0), ~inside | self.flagged[j]

    def at(self, idx: np.ndarray, dy: int, dx: int) -> np.ndarray:
        """(N,) float64 values at offset (dy, dx) from the sites ``idx`` (NaN = unusable)."""
        raw, flagged = self._look(idx, dy, dx)
        return np.where(flagged, np.nan, raw.astype(np.float64))

    def clipped(self, idx: np.ndarray, dy: int, dx: int) -> np.ndarray:
        """(N,) bool: the photosite at offset (dy, dx) is unflagged and clipped."""
        raw, flagged = self._look(idx, dy, dx)
        return ~flagged & (raw >= self.saturated)

    def stencil(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) raw values and flags of the K stencil neighbours of each site (outside: 0, flagged).

        Sites ``_RADIUS`` or more inside the frame (nearly all) are read at
        their flat offsets directly; only those near the border go through
        the bounds checks (15 -> 7.5 ms for 10^4 sites of a 24 MP frame).
        """
        y, x = np.divmod(idx, self.stride)
        r = _RADIUS
        edge = np.flatnonzero((y < r) | (y >= self.h - r) | (x < r) | (x >= self.w - r))
        j = idx[:, None] + self.offsets[None, :]
        if edge.size:
            j[edge] = 0  # read below, then replaced
        raw = self.values_flat[j]
        flagged = self.flagged[j]
        if edge.size:
            dy = np.array([d for d, _ in _STENCIL], np.int64)
            dx = np.array([d for _, d in _STENCIL], np.int64)
            raw[edge], flagged[edge] = self._look(idx[edge][:, None], dy[None, :], dx[None, :])
        return raw, flagged

    def features(self, idx: np.ndarray) -> np.ndarray:
        """(N, K) float64 values of the K stencil neighbours of each site (NaN = flagged or outside)."""
        raw, flagged = self.stencil(idx)
        return np.where(flagged, np.nan, raw.astype(np.float64))


class _Sites:
    """The stencil neighbourhoods of a set of sites, gathered once: the look-ups of :class:`_Lookup` by row.

    ``at``, ``clipped`` and ``features`` take row numbers into the sites
    (``np.arange(n)`` for all) instead of flat indices and answer as
    :class:`_Lookup` does for those sites, from two (N, K) tables read in one
    gather each: on a 24 MP frame with 10^4 flagged photosites the ~170
    separate gathers of the estimates took 35-40 ms, mostly cache misses.
    Offsets outside the stencil are read from the padded mosaic.
    """

    _COLUMN = {off: i for i, off in enumerate(_STENCIL)}

    def __init__(self, pad: _Lookup, idx: np.ndarray) -> None:
        self.pad = pad
        self.idx = idx
        raw, flagged = pad.stencil(idx)
        self.vals = np.where(flagged, np.nan, raw.astype(np.float64))
        self.clip = ~flagged & (raw >= pad.saturated)

    def at(self, rows: np.ndarray, dy: int, dx: int) -> np.ndarray:
        col = self._COLUMN.get((dy, dx))
        return self.pad.at(self.idx[rows], dy, dx) if col is None else self.vals[rows, col]

    def clipped(self, rows: np.ndarray, dy: int, dx: int) -> np.ndarray:
        col = self._COLUMN.get((dy, dx))
        return self.pad.clipped(self.idx[rows], dy, dx) if col is None else self.clip[rows, col]

    def features(self, rows: np.ndarray) -> np.ndarray:
        return self.vals[rows]


def _gradients(pad: _Lookup | _Sites, idx: np.ndarray) -> np.ndarray:
    """(4, N) mean absolute same-colour differences along H, V, D1, D2.

    Pairs two photosites apart along the direction (always of one colour) on
    the site's line (not touching the site) and on the two parallel lines
    beside it; flagged photosites are left out.  NaN where no pair is usable.
    """
    out = np.empty((len(_DIRS), len(idx)))
    for k, (dy, dx) in enumerate(_DIRS):
        py, px = _PERP[(dy, dx)]
        pairs = [(-3, -1, 0), (-1, 1, 0), (1, 3, 0)]  # (t0, t1, line) along the site's own line
        pairs += [(t, t + 2, s) for s in (-1, 1) for t in (-2, -1, 0)]
        total = np.zeros(len(idx))
        count = np.zeros(len(idx))
        for t0, t1, s in pairs:
            a = pad.at(idx, s * py + t0 * dy, s * px + t0 * dx)
            b = pad.at(idx, s * py + t1 * dy, s * px + t1 * dx)
            d = np.abs(a - b)
            ok = ~np.isnan(d)
            total += np.where(ok, d, 0.0)
            count += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = total / count
    return out


def _classify(grad: np.ndarray, bound: np.ndarray | None = None) -> np.ndarray:
    """(N,) int class: index of the direction of least gradient, 4 (isotropic) or 5 (flat).

    Flat where every measured gradient (at least three) is at most ``bound``
    (the noise's own, see :func:`_flat_bound`); never without ``bound``.
    """
    g = np.where(np.isnan(grad), np.inf, grad)
    best = np.argmin(g, axis=0)
    gmin = g.min(axis=0)
    gmax = np.where(np.isinf(g), -1.0, g).max(axis=0)
    iso = (gmax <= _ANISOTROPY * gmin) | ~np.isfinite(gmin)
    cls = np.where(iso, _N_CLASSES - 2, best)
    if bound is not None:
        measured = np.isfinite(g)
        flat = (gmax <= bound) & (measured.sum(axis=0) >= 3)
        cls = np.where(flat, _N_CLASSES - 1, cls)
    return cls


def _flat_bound(vals: np.ndarray, noise: NoiseFloor, black: float) -> np.ndarray:
    """(N,) the largest gradient of a flat neighbourhood: :data:`_FLAT` x the noise sigma at its level.

    ``vals`` (N, K): the stencil neighbours (NaN = unusable); the level is
    the mean of the usable ones of the 5x5 window, above ``black``.
    """
    win = vals[:, _WINDOW24]
    usable = ~np.isnan(win)
    level = np.where(usable, win, 0.0).sum(axis=1) / np.maximum(usable.sum(axis=1), 1) - black
    return _FLAT * np.sqrt(noise.variance(level))


def _directional(pad: _Lookup | _Sites, idx: np.ndarray, green: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """(N,) gradient-weighted directional colour-difference estimates (NaN where none)."""
    est = np.full((len(_DIRS), len(idx)), np.nan)
    for k, (dy, dx) in enumerate(_DIRS):
        diagonal = dy != 0 and dx != 0
        sides = []
        for s in (-1, 1):
            near = pad.at(idx, s * dy, s * dx)
            same = pad.at(idx, 2 * s * dy, 2 * s * dx)
            back = pad.at(idx, -s * dy, -s * dx)
            far = pad.at(idx, 3 * s * dy, 3 * s * dx)
            # other colour at the site minus at the same-colour neighbour
            corr = (back - far) / 2
            corr = np.where(np.isnan(corr), near - far, corr)
            corr = np.where(np.isnan(corr), back - near, corr)
            corr = np.where(np.isnan(corr), 0.0, corr)
            cd = same + corr
            # along a diagonal the nearest photosite of a green site is green itself
            sides.append(np.where(green, near, cd) if diagonal else cd)
        a, b = sides
        est[k] = np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2))
    g = np.where(np.isnan(grad), 1e9, grad)
    w = np.where(np.isnan(est), 0.0, 1.0 / (g + 1.0) ** 2)
    wsum = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wsum > 0, (np.where(w > 0, est, 0.0) * w).sum(axis=0) / wsum, np.nan)


def _same_colour_offsets(green: bool) -> list[tuple[int, int]]:
    offs = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if (dy, dx) != (0, 0)]
    if green:
        offs += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    return offs


def _neighbour_range(
    pad: _Lookup | _Sites, idx: np.ndarray, green: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Min, max, sum and count of the unflagged same-colour neighbours, and how many of them are clipped.

    The neighbours are those of the 5x5 window, plus the diagonal greens of a green site.
    """
    lo = np.full(len(idx), np.inf)
    hi = np.full(len(idx), -np.inf)
    total = np.zeros(len(idx))
    n = np.zeros(len(idx), dtype=np.int64)
    n_clip = np.zeros(len(idx), dtype=np.int64)
    for g in (False, True):
        sel = np.nonzero(green == g)[0]
        for dy, dx in _same_colour_offsets(g):
            v = pad.at(idx[sel], dy, dx)
            ok = ~np.isnan(v)
            lo[sel] = np.where(ok, np.minimum(lo[sel], v), lo[sel])
            hi[sel] = np.where(ok, np.maximum(hi[sel], v), hi[sel])
            total[sel] += np.where(ok, v, 0.0)
            n[sel] += ok
            n_clip[sel] += pad.clipped(idx[sel], dy, dx)
    return lo, hi, total, n, n_clip


def _clipped_blocks(pad: _Lookup | _Sites, idx: np.ndarray) -> np.ndarray:
    """(N,) int: how many of the four 2x2 blocks holding the site have their other three clipped."""
    count = np.zeros(len(idx), dtype=np.int64)
    for sy in (-1, 1):
        for sx in (-1, 1):
            count += pad.clipped(idx, sy, 0) & pad.clipped(idx, 0, sx) & pad.clipped(idx, sy, sx)
    return count


#: The photosites two rows (columns) and one column (row) away: never of the site's colour in a Bayer mosaic.
_RING_OTHER = [(dy, dx) for dy in (-2, -1, 1, 2) for dx in (-2, -1, 1, 2) if abs(dy) != abs(dx)]


def _own_colour_clips(pad: _Lookup | _Sites, idx: np.ndarray, n_clip: np.ndarray) -> np.ndarray:
    """(N,) bool: whether clipped photosites beside the site say that its own colour clips there too.

    Yes when a same-colour neighbour is clipped, or when the clipped
    photosites stay within one photosite of the site (a highlight too small
    to reach the same-colour neighbours, such as a star's core).  No when
    the other colours are clipped further out and the site's own colour is
    clipped nowhere around it: a coloured highlight, whose other channels
    saturate while this one still reads its level.
    """
    ring = np.zeros(len(idx), dtype=bool)
    for dy, dx in _RING_OTHER:
        ring |= pad.clipped(idx, dy, dx)
    return (n_clip > 0) | ~ring


def _gradient_pairs(stride: int) -> np.ndarray:
    """(4, 9, 2) flat offsets of the pairs :func:`_gradients` compares along each direction."""
    out = np.empty((len(_DIRS), 9, 2), np.int64)
    for k, (dy, dx) in enumerate(_DIRS):
        py, px = _PERP[(dy, dx)]
        pairs = [(-3, -1, 0), (-1, 1, 0), (1, 3, 0)] + [(t, t + 2, s) for s in (-1, 1) for t in (-2, -1, 0)]
        for i, (t0, t1, s) in enumerate(pairs):
            out[k, i, 0] = (s * py + t0 * dy) * stride + s * px + t0 * dx
            out[k, i, 1] = (s * py + t1 * dy) * stride + s * px + t1 * dx
    return out


def _fit_position(pad: _Lookup, py: int, px: int, step: int, flat: np.ndarray):
    """The normal equations of one pattern position (see :func:`_fit`); None with too few training sites.

    Training sites: every ``step``-th site of the position in both
    directions whose whole stencil is usable and unclipped and which is no
    impulse (an unmapped hot or dead photosite, a glint: a centre far
    outside the range of its eight same-colour neighbours); summed per
    structure class in one compiled pass (:func:`rawmap._kernels.predictor_sums`).
    """
    # a site whose stencil leaves the frame never trains: the sites 3 or more inside are all there is
    grams, rhss, counts = _kernels.predictor_sums(
        pad.values_flat,
        pad.flagged,
        pad.interior(py, px, step).astype(np.int64),
        pad.offsets,
        np.array(_SAME8, np.int64),
        _gradient_pairs(pad.stride),
        float(pad.saturated),
        _IMPULSE_TRIM,
        _ANISOTROPY,
        _N_CLASSES,
        np.array(_WINDOW24, np.int64),
        flat,
    )
    n = int(counts.sum())
    if n < _MIN_SAMPLES:
        return None
    g_all, r_all = grams.sum(axis=0) / n, rhss.sum(axis=0) / n
    few = counts < _MIN_CLASS_SAMPLES
    with np.errstate(invalid="ignore", divide="ignore"):
        grams = np.where(few[:, None, None], g_all, grams / counts[:, None, None])
        rhss = np.where(few[:, None], r_all, rhss / counts[:, None])
    return grams, rhss


def _fit(
    pad: _Lookup, h: int, w: int, noise: NoiseFloor | None = None, black: float = 0.0
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Normal equations of the predictor of each pattern position and structure class.

    Returns ``{(py, px): (grams, rhss)}``, ``grams`` (C, K+1, K+1) and
    ``rhss`` (C, K+1) for the C classes, each divided by its sample count; a
    class with too few training sites gets the position's all-class
    equations.  Positions with too few training sites are left out; so are
    training sites with an unusable (flagged, outside, clipped) neighbour.
    On big frames the four positions are fitted on two threads (numpy's
    gathers and products release the GIL) when no other photo is being
    repaired at the same time (``rawmap repair --threads`` already keeps
    the cores busy); each position's equations are the same either way.
    """
    per_phase = (h * w) / 4
    step = max(1, int(round(np.sqrt(per_phase / _TRAIN_PER_PHASE))))
    flat = np.zeros(4) if noise is None else np.array([noise.read, noise.shot, black, _FLAT])
    positions = [(py, px) for py in range(2) for px in range(2)]
    if h * w >= _FIT_THREADS_FROM and _ACTIVE.count <= 1:
        with ThreadPoolExecutor(2) as pool:
            fits = list(pool.map(lambda p: _fit_position(pad, p[0], p[1], step, flat), positions))
    else:
        fits = [_fit_position(pad, py, px, step, flat) for py, px in positions]
    return {p: f for p, f in zip(positions, fits) if f is not None}


def _solve(grams: np.ndarray, rhss: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Batched least-squares coefficients using only the ``keep`` features.

    grams (G, K+1, K+1), rhss (G, K+1), keep (G, K) bool -> (G, K+1)
    coefficients (dropped features get 0; the last is the intercept).
    """
    g, k1 = rhss.shape
    keep1 = np.hstack([keep, np.ones((g, 1), bool)])
    m = keep1[:, :, None] & keep1[:, None, :]
    a = np.where(m, grams, 0.0)
    # a tiny ridge on the kept features keeps nearly collinear neighbourhoods solvable
    diag = np.einsum("gii->gi", grams)[:, :-1]
    ridge = 1e-7 * diag.mean(axis=1, keepdims=True) + 1e-12
    eye = np.eye(k1, dtype=bool)[None]
    a = a + np.where(eye, np.hstack([np.where(keep, ridge, 1.0), np.zeros((g, 1))])[:, None, :], 0.0)
    b = np.where(keep1, rhss, 0.0)
    return np.linalg.solve(a, b[:, :, None])[:, :, 0]


def _learned(
    pad: _Lookup | _Sites, idx: np.ndarray, ys: np.ndarray, xs: np.ndarray, cls: np.ndarray, models
) -> np.ndarray:
    """(N,) learned-predictor estimates; NaN where the position has no model or beside a clipped highlight.

    Unusable neighbours (flagged, outside the frame) are left out of each
    site's predictor.  Next to a clipped value the linear law fails; those
    sites are left to the directional estimate.
    """
    est = np.full(len(idx), np.nan)
    feats = pad.features(idx)
    avail = ~np.isnan(feats)
    if isinstance(pad, _Sites):
        near_clip = pad.clip[idx].any(axis=1)
    else:
        near_clip = np.zeros(len(idx), dtype=bool)
        for dy, dx in _STENCIL:
            near_clip |= pad.clipped(idx, dy, dx)
    feats = np.where(avail, feats, 0.0)
    for (py, px), (grams, rhss) in models.items():
        sel = np.nonzero((ys % 2 == py) & (xs % 2 == px))[0]
        if len(sel) == 0:
            continue
        # group sites by (class, pattern of usable neighbours): one solve per group
        bit = np.int64(1) << np.arange(len(_STENCIL), dtype=np.int64)
        key = (avail[sel].astype(np.int64) * bit).sum(axis=1) + (cls[sel].astype(np.int64) << len(_STENCIL))
        uniq, inv = np.unique(key, return_inverse=True)
        keep = (uniq[:, None] & bit) != 0
        k = uniq >> len(_STENCIL)
        # in chunks: a dense map can have a distinct pattern per site (19 kB of matrix each)
        coef = np.concatenate(
            [
                _solve(grams[k[i : i + _SOLVE_CHUNK]], rhss[k[i : i + _SOLVE_CHUNK]], keep[i : i + _SOLVE_CHUNK])
                for i in range(0, len(uniq), _SOLVE_CHUNK)
            ]
        )
        c = coef[inv]
        est[sel] = np.einsum("nk,nk->n", feats[sel], c[:, :-1]) + c[:, -1]
    est[near_clip] = np.nan
    return est


class _Active:
    """How many photos are being repaired at this moment (a context manager around each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> _Active:
        with self._lock:
            self.count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1


_ACTIVE = _Active()


def _repair_frame(frame: Frame, defect_map: DefectMap, mask: np.ndarray) -> tuple[np.ndarray, CorrectionCounts]:
    """A frame's mosaic with the mapped photosites interpolated, then corrected where they still carry signal.

    Parameters
    ----------
    frame : Frame
        Its exposure, ISO and temperature scale the map's dark currents.
    defect_map : DefectMap
    mask : (H, W) ndarray of bool
        ``defect_map.mask()``.

    Returns
    -------
    repaired : (H, W) ndarray of uint16
    counts : CorrectionCounts
    """
    # the frame's noise, measured once for both (8-10 ms of a 24 MP frame), where there is a site to repair
    floor = noise_floor(frame.mosaic, _black2(frame.black2), int(frame.white)) if mask.any() else None
    with _ACTIVE:
        repaired = repair_mosaic(frame.mosaic, mask, frame.cfa, white=frame.white, black=frame.black2, floor=floor)
    return correct_mosaic(
        frame.mosaic,
        repaired,
        defect_map,
        frame.black2,
        frame.white,
        mask=mask,
        exposure=frame.exposure,
        iso=frame.iso,
        temperature=frame.temperature,
        copy=False,  # repaired is this call's own
        floor=floor,
    )


def _black2(black: np.ndarray | float) -> np.ndarray:
    """(2, 2) float32 black level per pattern position, as :func:`repair_mosaic` measures the noise with it."""
    return np.broadcast_to(np.asarray(black, np.float64), (2, 2)).astype(np.float32)


def _nearest_same_colour(mosaic: np.ndarray, mask: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Mean of the nearest unflagged photosites of the same pattern position, searching outwards."""
    h, w = mosaic.shape
    out = np.full(len(ys), np.nan)
    for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist())):
        r = 4
        while r < max(h, w) + 2:
            y0 = y - r if y >= r else y % 2  # r is even: same pattern position
            x0 = x - r if x >= r else x % 2
            sub = mosaic[y0 : y + r + 1 : 2, x0 : x + r + 1 : 2]
            ok = ~mask[y0 : y + r + 1 : 2, x0 : x + r + 1 : 2]
            if ok.any():
                out[i] = sub[ok].mean()
                break
            r = r + 2 if r < 16 else 2 * r
    return out


def _flagged_sites(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the True entries of a (H, W) mask, in row-major order.

    ``np.nonzero`` of the same mask: 41 ms on a sparse 24 MP mask against
    3 ms for the flat indices split here.
    """
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def repair_mosaic(
    mosaic: np.ndarray,
    mask: np.ndarray,
    cfa: np.ndarray | None,
    *,
    white: int | None = None,
    black: np.ndarray | float | None = None,
    floor: NoiseFloor | None = None,
) -> np.ndarray:
    """Estimate flagged photosites of a Bayer (or monochrome) mosaic from unflagged neighbours.

    Parameters
    ----------
    mosaic : (H, W) ndarray of uint16
        Visible area of the raw mosaic, sensor orientation.
    mask : (H, W) ndarray of bool
        True at flagged photosites (e.g. :meth:`rawmap.defectmap.DefectMap.mask`).
    cfa : (2, 2) array_like of int or None
        Colour index at each pattern position: 0=R, 1=G, 2=B, 3=second G.
        ``None`` for a monochrome sensor: every photosite is of one colour,
        so, like a green one, its diagonal neighbours are of its colour too.
    white : int, optional
        Saturation level; estimates are clipped to ``[0, white]``
        (``[0, 65535]`` when omitted).
    black : float or (2, 2) array_like of float, optional
        Black level (per pattern position).  With it the frame's noise is
        measured and sites in flat neighbourhoods take the mean of their
        same-colour neighbours (step 5 of the module documentation); without
        it they keep the learned estimate.
    floor : NoiseFloor, optional
        The frame's noise, ``noise_floor(mosaic, black, white)``, when the
        caller has it already (with ``black``).

    Returns
    -------
    (H, W) ndarray of uint16
        A new array: unflagged photosites bit-identical to ``mosaic``,
        flagged ones replaced by their estimates.  See the module
        documentation for the method.

    Raises
    ------
    TypeError
        ``mosaic`` is not a 2-D uint16 array, or ``mask`` not boolean.
    ValueError
        Shapes differ, ``cfa`` is not a 2x2 pattern of R, G and B, the frame
        is smaller than 4x4, or ``white`` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.full((8, 8), 1000, dtype=np.uint16); m[4, 4] = 4095
    >>> mask = np.zeros((8, 8), bool); mask[4, 4] = True
    >>> int(repair_mosaic(m, mask, np.array([[0, 1], [3, 2]]))[4, 4])
    1000
    """
    mosaic = np.asarray(mosaic)
    mask = np.asarray(mask)
    if mosaic.ndim != 2 or mosaic.dtype != np.uint16:
        raise TypeError(f"mosaic must be a (H, W) uint16 array, got shape {mosaic.shape} dtype {mosaic.dtype}")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype} (use mask.astype(bool))")
    if mask.shape != mosaic.shape:
        raise ValueError(f"mask shape {mask.shape} differs from mosaic shape {mosaic.shape}")
    mono = cfa is None
    cfa = np.ones((2, 2), np.uint8) if mono else np.asarray(cfa)
    if cfa.shape != (2, 2) or not np.issubdtype(cfa.dtype, np.integer) or cfa.min() < 0 or cfa.max() > 3:
        raise ValueError(f"cfa must be a (2, 2) integer array of colour indices 0..3, got {cfa.tolist()}")
    if not mono and set(np.where(cfa == 3, 1, cfa).ravel().tolist()) != {0, 1, 2}:
        raise ValueError(f"cfa must hold red (0), green (1 or 3) and blue (2), got {cfa.tolist()}")
    h, w = mosaic.shape
    if h < 4 or w < 4:
        raise ValueError(f"mosaic must be at least 4x4 photosites, got {h}x{w}")
    top = 65535 if white is None else int(white)
    if not 0 < top <= 65535:
        raise ValueError(f"white must lie in 1..65535, got {white!r}")

    out = mosaic.copy()
    ys, xs = _flagged_sites(mask)
    if len(ys) == 0:
        return out
    pad = _Lookup(mosaic, mask, top - max(1.0, _CLIP_MARGIN * top))
    idx = pad.index(ys, xs)
    colour = cfa[ys % 2, xs % 2]
    green = (colour == 1) | (colour == 3)

    sites, rows = _Sites(pad, idx), np.arange(len(idx))
    grad = _gradients(sites, rows)
    noise, bl = None, 0.0
    if black is not None:
        black2 = _black2(black)
        noise = noise_floor(mosaic, black2, top) if floor is None else floor
        bl = float(black2.mean())
    cls = _classify(grad, None if noise is None else _flat_bound(sites.features(rows), noise, bl))
    est = _learned(sites, rows, ys, xs, cls, _fit(pad, h, w, noise, bl))
    lo, hi, total, n_same, n_clip = _neighbour_range(sites, rows, green)
    # the learned predictor needs some same-colour support; else the directional estimate
    weak = np.isnan(est) | (n_same < 2)
    if weak.any():
        est[weak] = _directional(sites, rows[weak], green[weak], grad[:, weak])
    # flat: the mean of the same-colour neighbours, with enough of them left and none clipped
    flat = (cls == _N_CLASSES - 1) & (n_same >= _FLAT_MIN) & (n_clip == 0)
    est[flat] = total[flat] / n_same[flat]
    span = np.where(n_same > 0, hi - lo, 0.0)
    est = np.where(n_same > 0, np.clip(est, lo - _WIDEN * span, hi + _WIDEN * span), est)
    # inside a clipped highlight the site is clipped too; at its corner, anywhere from
    # the unclipped neighbours' level up to white: take the middle
    blocks = np.where(_own_colour_clips(sites, rows, n_clip), _clipped_blocks(sites, rows), 0)
    inside = (blocks >= 2) | ((n_same > 0) & (n_clip == n_same))
    corner = (blocks == 1) & ~inside
    est[corner] = (1 - _CORNER_W) * est[corner] + _CORNER_W * top
    est[inside] = top
    far = (np.isnan(est) | (n_same == 0)) & ~inside
    if far.any():
        est[far] = _nearest_same_colour(mosaic, mask, ys[far], xs[far])
    # a frame with no unflagged photosite of this pattern position at all: nothing to go on
    est = np.where(np.isnan(est), mosaic[ys, xs], est)
    out[ys, xs] = np.clip(np.rint(est), 0, top).astype(np.uint16)
    return out


# ---------------------------------------------------------------------------
# developed images
# ---------------------------------------------------------------------------

#: The eight walking directions of :func:`repair_image`, as four lines.
_LINES = ((0, 1), (1, 0), (1, 1), (1, -1))


def _disc(radius: int) -> list[tuple[int, int]]:
    r2 = radius * radius + 1
    return [
        (dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1) if dy * dy + dx * dx <= r2
    ]


def repair_region(mask: np.ndarray, *, radius: int = 2) -> np.ndarray:
    """The pixels :func:`repair_image` replaces: a small disc around each flagged pixel.

    Parameters
    ----------
    mask : (H, W) ndarray of bool
        Flagged pixels (blob centres).
    radius : int, optional
        Disc radius in pixels; the disc is ``dy**2 + dx**2 <= radius**2 + 1``
        (5x5 without its corners for the default 2).

    Returns
    -------
    (H, W) ndarray of bool
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, xs = _flagged_sites(mask)
    for dy, dx in _disc(radius):
        y, x = ys + dy, xs + dx
        ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        out[y[ok], x[ok]] = True
    return out


def repair_image(img: np.ndarray, mask: np.ndarray, *, radius: int = 2) -> np.ndarray:
    """Fill a small disc around each flagged pixel of a developed image from the ring outside it.

    After demosaicing and JPEG compression a defective photosite is a small
    blob, so the whole disc of :func:`repair_region` is replaced.  For each
    pixel of the region, along the horizontal, the vertical and both
    diagonals it finds the nearest pixel outside the region on either side
    and interpolates linearly between the two; the lines are blended with
    weights ``1 / ((|a - b| + 1)**2 * length)``, where ``|a - b|`` is the
    difference of the two end points in the mean of the channels: the line
    that runs along an edge dominates.  The direction weights are shared by
    all channels; the estimate is clipped to the range of the end points
    used.  Pixels with no outside pixel within reach on any line take the
    mean of the nearest outside pixels.

    Parameters
    ----------
    img : (H, W, C) or (H, W) ndarray of uint8 or uint16
    mask : (H, W) ndarray of bool
        Flagged pixels (blob centres).
    radius : int, optional
        Disc radius, pixels (default 2).

    Returns
    -------
    ndarray
        A new array of the same shape and dtype; pixels outside the region
        are bit-identical.

    Raises
    ------
    TypeError
        ``img`` is not uint8/uint16, or ``mask`` not boolean.
    ValueError
        Shapes differ or ``radius`` < 0.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((12, 12, 3), 80, np.uint8); img[6, 6] = 255
    >>> mask = np.zeros((12, 12), bool); mask[6, 6] = True
    >>> repair_image(img, mask)[6, 6].tolist()
    [80, 80, 80]
    """
    img = np.asarray(img)
    mask = np.asarray(mask)
    if img.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"img must be uint8 or uint16, got {img.dtype}")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype} (use mask.astype(bool))")
    if img.ndim not in (2, 3) or img.shape[:2] != mask.shape:
        raise ValueError(f"img must be (H, W) or (H, W, C) with (H, W) = mask shape {mask.shape}, got {img.shape}")
    if int(radius) < 0:
        raise ValueError(f"radius must be >= 0 pixels, got {radius}")
    planar = img.ndim == 2
    work = img[:, :, None] if planar else img
    h, w, c = work.shape
    out = img.copy()
    region = repair_region(mask, radius=int(radius))
    ys, xs = _flagged_sites(region)
    if len(ys) == 0:
        return out
    vals = work.astype(np.float64)
    reach = 2 * int(radius) + 6
    num = np.zeros((len(ys), c))
    den = np.zeros(len(ys))
    lo = np.full((len(ys), c), np.inf)
    hi = np.full((len(ys), c), -np.inf)

    def first_outside(dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
        """Steps to the nearest pixel outside the region (0 = none within reach) and its values."""
        steps = np.zeros(len(ys), dtype=np.int64)
        for k in range(1, reach + 1):
            y, x = ys + k * dy, xs + k * dx
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            yc, xc = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
            hit = (steps == 0) & inside & ~region[yc, xc]
            steps[hit] = k
        y = np.clip(ys + steps * dy, 0, h - 1)
        x = np.clip(xs + steps * dx, 0, w - 1)
        return steps, vals[y, x]

    for dy, dx in _LINES:
        ka, va = first_outside(-dy, -dx)
        kb, vb = first_outside(dy, dx)
        step_len = np.hypot(dy, dx)
        both = (ka > 0) & (kb > 0)
        one = (ka > 0) ^ (kb > 0)
        # two-sided: linear interpolation, weighted by how flat the line is
        t = np.where(both, ka / np.maximum(ka + kb, 1), 0.0)[:, None]
        est = va + t * (vb - va)
        diff = np.abs(va - vb).mean(axis=1)
        length = (ka + kb) * step_len
        wgt = np.where(both, 1.0 / ((diff + 1.0) ** 2 * np.maximum(length, 1.0)), 0.0)
        # one-sided: the nearest outside value, as a weak vote
        single = np.where((ka > 0)[:, None], va, vb)
        k1 = np.maximum(ka, kb) * step_len
        w1 = np.where(one, 1e-3 / np.maximum(k1, 1.0), 0.0)
        num += est * wgt[:, None] + single * w1[:, None]
        den += wgt + w1
        used_a = (ka > 0)[:, None]
        used_b = (kb > 0)[:, None]
        lo = np.minimum(lo, np.where(used_a, va, np.inf))
        lo = np.minimum(lo, np.where(used_b, vb, np.inf))
        hi = np.maximum(hi, np.where(used_a, va, -np.inf))
        hi = np.maximum(hi, np.where(used_b, vb, -np.inf))
    with np.errstate(invalid="ignore", divide="ignore"):
        est = num / den[:, None]
    est = np.clip(est, lo, hi)
    none = den == 0
    if none.any():
        outside = ~region
        for i in np.nonzero(none)[0]:
            y, x = int(ys[i]), int(xs[i])
            r = reach
            while True:
                sl = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
                ok = outside[sl]
                if ok.any() or r > max(h, w):
                    est[i] = vals[sl][ok].mean(axis=0) if ok.any() else vals[y, x]
                    break
                r *= 2
    top = np.iinfo(img.dtype).max
    res = np.clip(np.rint(est), 0, top).astype(img.dtype)
    if planar:
        out[ys, xs] = res[:, 0]
    else:
        out[ys, xs] = res
    return out


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair_file` wrote.

    Attributes
    ----------
    source : Path
        The photo read.
    output : Path
        The file written.
    format : str
        ``"DNG"``, ``"TIFF"``, ``"JPEG"``, ``"FITS"`` (or the mosaic's
        ``"PNG"``, ``"PGM"``).
    flagged : int
        Photosites (RAW) or blob centres (images) of the map.
    changed : int
        Photosites or pixels whose value the repair changed (before any
        re-encoding).
    psnr : float or None
        Images only: PSNR in dB of the written file against the input over
        the pixels outside the repaired discs (``inf`` when identical):
        how much re-encoding cost away from the defects.
    forced : bool
        The map's camera differs from the photo's and ``force`` let it through.
    opcodes : BadPixelList or None
        ``opcodes=True`` only: what the DNG's OpcodeList1 lists for the raw
        developer (the mosaic itself is unchanged, ``changed`` is 0).
    corrected : CorrectionCounts or None
        RAW only: how many mapped photosites were corrected (segment offset,
        gain) rather than interpolated (:func:`rawmap.correct.correct_mosaic`).
    """

    source: Path
    output: Path
    format: str
    flagged: int
    changed: int
    psnr: float | None = None
    forced: bool = False
    opcodes: BadPixelList | None = None
    corrected: CorrectionCounts | None = None


#: LibRaw ``sizes.flip`` -> TIFF/DNG Orientation (inverse of LibRaw's "50132467" table).
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


_RAW_FORMATS = {"dng": ".dng", "tiff": ".tif"}


def output_name(src: str | os.PathLike[str], *, fmt: str | None = None) -> str:
    """The file name :func:`repair_file` gives the repaired copy of ``src`` by default.

    ``<stem>.dng`` (``<stem>.tif`` with ``fmt="tiff"``) for a RAW file, the
    input's own name for images and mosaics in image files.

    Examples
    --------
    >>> output_name("card/IMG_0001.CR2"), output_name("a/x.NEF", fmt="tiff"), output_name("b/p.JPG")
    ('IMG_0001.dng', 'x.tif', 'p.JPG')
    """
    from .reader import RAW_EXTENSIONS

    src = Path(src)
    if src.suffix[1:].lower() in RAW_EXTENSIONS:
        return src.stem + _RAW_FORMATS.get(fmt or "dng", ".dng")
    return src.name


def plan_outputs(
    sources: list[Path] | tuple[Path, ...], out_dir: str | os.PathLike[str], *, fmt: str | None = None
) -> dict[Path, Path]:
    """A distinct output file in ``out_dir`` for every photo of ``sources``, none of them an input.

    Each photo gets ``out_dir / output_name(src)``.  Where that name is
    taken (compared without case, since case-blind file systems would merge
    them) by an input photo (repairing ``x.dng`` into its own folder, or
    ``IMG.DNG`` beside ``IMG.dng``) or by the output of an earlier photo of
    ``sources`` (two folders holding ``x.dng``), the photo gets
    ``<stem>-2<suffix>``, ``<stem>-3<suffix>`` ... instead: the first free
    number, in the order of ``sources``.

    Parameters
    ----------
    sources : sequence of Path
        The photos to repair, in the order given.
    out_dir : path-like
    fmt : {None, "dng", "tiff"}, optional
        Output of RAW photos, as :func:`repair_file`.

    Returns
    -------
    dict of Path to Path
        Output path of each source.

    Examples
    --------
    >>> plan = plan_outputs([Path("a/x.dng"), Path("b/x.dng"), Path("b/IMG.CR2")], "out")
    >>> [str(p) for p in plan.values()]
    ['out/x.dng', 'out/x-2.dng', 'out/IMG.dng']
    """
    from .fileio import same_file

    out_dir = Path(out_dir)
    try:  # the inputs that live in out_dir, by name
        base = out_dir.resolve()
    except (OSError, RuntimeError):
        base = Path(os.path.abspath(out_dir))
    inputs_here = {p.name.casefold() for p in sources if _parent(p) == base}
    taken: set[str] = set()
    plan: dict[Path, Path] = {}
    for src in sources:
        name = output_name(src, fmt=fmt)
        stem, suffix = os.path.splitext(name)
        n = 1
        while True:
            cand = name if n == 1 else f"{stem}-{n}{suffix}"
            key = cand.casefold()
            if key not in taken and key not in inputs_here and not same_file(out_dir / cand, src):
                break
            n += 1
        taken.add(key)
        plan[src] = out_dir / cand
    return plan


def _parent(p: Path) -> Path:
    try:
        return p.resolve().parent
    except (OSError, RuntimeError):
        return Path(os.path.abspath(p)).parent


def _output_path(src: Path, out_dir: Path, suffix: str, *, overwrite: bool, name: str | None = None) -> Path:
    out = Path(out_dir) / (name if name is not None else src.stem + suffix)
    try:
        same = out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src))
    except OSError:
        same = False
    if same:
        raise OutputExistsError(f"{out}: is the input photo itself; choose another output folder")
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"{out}: already exists (choose another output folder, or add --overwrite to replace it)"
        )
    return out


def _auto_neutral(frame: Frame) -> np.ndarray | None:
    """AsShotNeutral of dcraw's and LibRaw's automatic white balance of ``frame`` (grey world).

    What both compute when the camera was set to automatic white balance
    and the file keeps no multipliers (LibRaw's ``camera_whitebalance[0]``
    is -1, e.g. Canon CRWs): over 8x8 blocks of the visible mosaic without
    a photosite within 25 DN of white, the mean above black of each colour;
    the neutral is each colour's mean over green's.  ``None`` when a colour
    has no such photosite.
    """
    if frame.cfa is None:
        return None
    m = frame.mosaic
    h, w = (m.shape[0] // 8) * 8, (m.shape[1] // 8) * 8
    if not h or not w:
        return None
    blocks = m[:h, :w].reshape(h // 8, 8, w // 8, 8)
    keep = ~(blocks > frame.white - 25).any(axis=(1, 3))
    colour = np.where(frame.cfa == 3, 1, frame.cfa)
    means = []
    for c in range(3):
        total = 0.0
        count = 0
        for y in range(2):
            for x in range(2):
                if colour[y, x] != c:
                    continue
                v = blocks[:, y::2, :, x::2].astype(np.float64) - float(frame.black[frame.cfa[y, x]])
                total += float(np.clip(v, 0, None).sum(axis=(1, 3))[keep].sum())
                count += int(keep.sum()) * 16
        means.append(total / count if count else 0.0)
    if min(means) <= 0:
        return None
    return np.array(means) / means[1]


#: dcraw's scaling of the Nikon D1's stated red and blue levels (its ``identify``), by model
_NIKON_WB_SCALE = {"NIKON D1": (256 / 527, 256 / 317)}


def _maker_note_neutral(meta: Metadata) -> np.ndarray | None:
    """AsShotNeutral of a Nikon maker note's white balance as shot (:attr:`Metadata.wb_levels`), as dcraw reads it.

    dcraw takes the red and blue multipliers from WB_RBLevels, scaled for
    the D1 by 256/527 and 256/317; LibRaw reads none for the D1 (all its
    multipliers 1).  Carried as AsShotNeutral, dcraw develops the repaired
    DNG with the multipliers it finds in the original, and LibRaw with the
    camera's balance it could not read there.
    """
    if meta.wb_levels is None:
        return None
    red, blue = meta.wb_levels
    kr, kb = _NIKON_WB_SCALE.get(meta.model.upper(), (1.0, 1.0))
    red, blue = red * kr, blue * kb
    if not (red > 0 and blue > 0):
        return None
    return np.array([1.0 / red, 1.0, 1.0 / blue])


def _raw_extras(frame: Frame) -> dict:
    """What the DNG needs beyond the frame: full frame, colour, white balance, orientation, shot data, preview.

    From the :class:`rawmap.readers.libraw.RawExtras` the reader kept from
    the frame's own decode (``read_frame(..., extras=True)``: the file is
    opened once) and, for what LibRaw does not report (lens, f-number and
    focal length as the file states them), the headers it read
    (:func:`rawmap.metadata.read_metadata`).
    """
    from .readers.libraw import RawExtras

    kept = frame.extra.get("libraw")
    if not isinstance(kept, RawExtras):
        raise ValueError(f"{frame.path}: the frame was read without extras; read it with read_frame(extras=True)")
    full = kept.full_frame if kept.full_frame is not None else frame.mosaic
    cm, wb, flip, meta = kept.rgb_xyz_matrix, kept.camera_whitebalance, kept.flip, kept.metadata
    preview = kept.preview
    top, left = frame.margins
    # write_dng needs an even ActiveArea origin: drop a border row/column when odd
    full = full[top % 2 :, left % 2 :]
    margins = (top - top % 2, left - left % 2)
    neutral = None
    if meta.wb_levels is not None and np.all(wb == wb[0]):  # LibRaw read no balance, the maker note states one
        neutral = _maker_note_neutral(meta)
    elif np.all(np.isfinite(wb)) and np.all(wb > 0):
        neutral = wb[1] / wb
    elif wb[0] == -1:  # LibRaw's (and dcraw's) mark of a camera set to automatic white balance
        neutral = _auto_neutral(frame)

    def shot(stated: float | None, libraw: float) -> float:
        # the file's own EXIF value first (0 there means unknown: LibRaw turns an
        # APEX 0 into 1.0); LibRaw's where the file has none (CRW, maker notes)
        value = stated if stated is not None else libraw
        return float(value) if np.isfinite(value) and value > 0 else 0.0

    return {
        "full_frame": full if full.shape != frame.shape else None,
        "margins": margins if full.shape != frame.shape else (0, 0),
        "color_matrix": cm if np.any(cm != 0) and np.all(np.isfinite(cm)) else None,
        "as_shot_neutral": neutral,
        "orientation": _FLIP_TO_ORIENTATION.get(flip, 1),
        "aperture": shot(meta.fnumber, kept.aperture),
        "focal_length": shot(meta.focal_length, kept.focal_length),
        "lens": meta.lens,
        "lens_spec": meta.lens_spec,
        "owner": meta.owner or kept.artist,
        "preview": preview,
        "colour_tags": dict(meta.dng_colour) or None,  # a DNG's own calibration (LibRaw reports none for DNGs)
        "linearization": np.asarray(meta.linearization, dtype=np.int64) if meta.linearization else None,
        # the maker note, as Adobe's converter keeps it (lens, shutter count, the maker's own settings)
        "private_data": _private_data(meta),
    }


def _private_data(meta: Metadata) -> bytes | None:
    """The original's maker note as Adobe's DNGPrivateData: a TIFF MakerNote (``MakN``), a CRW's CIFF records (``CRW ``)."""
    from .dng import adobe_crw_notes, adobe_maker_note

    if meta.maker_note:
        return adobe_maker_note(*meta.maker_note)
    if meta.ciff_notes and meta.ciff_notes[1]:
        return adobe_crw_notes(meta.ciff_notes[1], meta.ciff_notes[0])
    return None


def _delinearize(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the table entry nearest to each value: the stored value a linearization table maps to it."""
    hi = np.clip(np.searchsorted(table, values), 0, table.size - 1)
    lo = np.clip(hi - 1, 0, table.size - 1)
    v = values.astype(np.int64)
    return np.where(np.abs(table[lo] - v) < np.abs(table[hi] - v), lo, hi).astype(np.uint16)


def _stored(repaired: np.ndarray, frame: Frame, extras: dict) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The repaired mosaic and full frame as a DNG's stored (pre-linearization) values, or None.

    Only when the source's table is non-decreasing and maps stored values
    back onto every photosite LibRaw decoded (so the unmapped ones stay
    bit-identical); a repaired photosite is moved to the nearest linear
    value the table can give.
    """
    table = extras["linearization"]
    if table is None or np.any(np.diff(table) < 0):
        return None
    full = extras["full_frame"]
    for given in (frame.mosaic, full):
        if given is not None and not np.array_equal(table[_delinearize(given, table)], given):
            return None
    return _delinearize(repaired, table), None if full is None else _delinearize(full, table)


#: LibRaw's (power, toe slope) of the sRGB tone curve (its default, (2.222, 4.5), is BT.709's).
_SRGB_GAMMA = (2.4, 12.92)


@functools.lru_cache(maxsize=1)
def _srgb_profile() -> bytes:
    """An sRGB ICC profile (littleCMS's built-in sRGB, through Pillow's ImageCms)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _repair_raw(
    frame: Frame,
    defect_map: DefectMap,
    out: Path,
    *,
    fmt: str,
    overwrite: bool,
    forced: bool,
    opcodes: bool = False,
) -> RepairResult:
    from .dng import write_dng

    mask = defect_map.mask()
    extras = _raw_extras(frame)
    if opcodes:
        from .opcodes import bad_pixel_list, fix_bad_pixels_list

        if frame.cfa is None:
            raise UnsupportedFileError(
                frame.path,
                "has no Bayer pattern; FixBadPixelsList applies to Bayer mosaics only",
                "repair it without --opcodes",
            )
        # the written DNG's ActiveArea origin is even (see _raw_extras): the pattern of
        # the stored image's top-left photosite is that of the visible area's
        listed = bad_pixel_list(defect_map, cfa=frame.cfa, origin=extras["margins"])
        extras["linearization"] = None  # the decoded values as they are, bit for bit
        write_dng(
            out,
            frame.mosaic,
            cfa=frame.cfa,
            black=frame.black,
            white=frame.white,
            camera=frame.camera,
            exposure=frame.exposure,
            iso=frame.iso,
            time=frame.time,
            opcodes=fix_bad_pixels_list(listed),
            overwrite=overwrite,
            **extras,
        )
        return RepairResult(frame.path, out, "DNG", int(np.count_nonzero(mask)), 0, None, forced, listed)
    repaired, how = _repair_frame(frame, defect_map, mask)
    stored = _stored(repaired, frame, extras) if fmt == "dng" else None
    if stored is None:
        extras["linearization"] = None
    else:  # write the source's encoding and its LinearizationTable: compresses as the original does
        repaired, extras["full_frame"] = stored
        stored_given = _delinearize(frame.mosaic, extras["linearization"])
    # only flagged photosites can change (repair_mosaic and correct_mosaic keep the rest bit for bit):
    # compared there, not over the whole frame
    at = np.flatnonzero(mask)
    given = frame.mosaic if stored is None else stored_given
    changed = int(np.count_nonzero(repaired.ravel()[at] != given.ravel()[at]))
    kwargs = dict(
        cfa=frame.cfa,
        black=frame.black,
        white=frame.white,
        camera=frame.camera,
        exposure=frame.exposure,
        iso=frame.iso,
        time=frame.time,
        **extras,
    )
    if fmt == "dng":
        write_dng(out, repaired, compress=True, overwrite=overwrite, **kwargs)
    else:
        import rawpy

        from .dng import rgb_tiff_bytes

        with tempfile.TemporaryDirectory(prefix="rawmap-") as tmp:
            dng = write_dng(Path(tmp) / "repaired.dng", repaired, **kwargs)
            with quiet_decoders(), rawpy.imread(str(dng)) as raw:
                # sRGB primaries and white (D65) and the sRGB tone curve: what the ICC profile says
                rgb = raw.postprocess(output_bps=16, use_camera_wb=True, gamma=_SRGB_GAMMA)
        data = rgb_tiff_bytes(
            rgb,
            camera=frame.camera,
            exposure=frame.exposure,
            iso=frame.iso,
            time=frame.time,
            aperture=extras["aperture"],
            focal_length=extras["focal_length"],
            lens=extras["lens"],
            owner=extras["owner"],
            icc_profile=_srgb_profile(),
        )
        atomic_write_bytes(out, data, overwrite=overwrite)
    return RepairResult(frame.path, out, fmt.upper(), int(np.count_nonzero(mask)), changed, None, forced, corrected=how)


def _repair_jpeg(frame: Frame, defect_map: DefectMap, out: Path, *, overwrite: bool, forced: bool) -> RepairResult:
    from PIL import Image, JpegImagePlugin

    rotation = str(frame.extra.get("rotation", ""))
    to_stored = TO_STORED.get(rotation)  # the reader's own table of what it undid and the way back
    if to_stored is None:
        raise UnsupportedFileError(frame.path, f"was turned by the reader in an unknown way ({rotation!r})")
    try:
        with quiet_pillow(), quiet_decoders():
            img = Image.open(frame.path)
            img.load()
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors on a file tifffile or LibRaw read
        raise UnreadableFileError(
            frame.path,
            f"cannot be decoded again for writing ({one_line(str(exc), 120)})",
            "repair the camera's original JPEG or RAW file",
        ) from None
    with img:
        if img.format not in ("JPEG", "MPO") or img.mode not in ("RGB", "L"):
            raise UnsupportedFileError(
                frame.path,
                f"is a {img.format} {img.mode} image; rawmap repairs RGB or grayscale JPEGs",
                "repair the camera's original JPEG or RAW file",
            )
        stored = np.asarray(img)
        sensor = frame.mosaic[:, :, 0] if stored.ndim == 2 else frame.mosaic
        if not np.array_equal(to_stored(sensor), stored):
            raise InputError(frame.path, "its pixels changed between two reads", "copy the file again and retry")
        mask = np.ascontiguousarray(to_stored(defect_map.mask()))
        repaired = repair_image(stored, mask)
        changed = int(np.count_nonzero(np.any((repaired != stored).reshape(*mask.shape, -1), axis=-1)))
        img.paste(Image.fromarray(repaired, img.mode))
        opts = {k: img.info[k] for k in ("exif", "icc_profile", "dpi", "comment", "xmp") if img.info.get(k)}
        buf = io.BytesIO()
        # what quality="keep" does, spelled out so that MPO files (camera JPEGs with
        # a multi-picture preview) are accepted too: the primary image is written
        img.save(
            buf,
            "JPEG",
            qtables=img.quantization,  # type: ignore[attr-defined]
            subsampling=JpegImagePlugin.get_sampling(img),
            progressive=bool(img.info.get("progressive")),
            **opts,
        )
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as back:
        written = np.asarray(back).astype(np.float64)
    away = ~repair_region(mask)
    err = (written - stored.astype(np.float64))[away]
    mse = float(np.mean(err * err)) if err.size else 0.0
    psnr = float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
    atomic_write_bytes(out, data, overwrite=overwrite)
    return RepairResult(frame.path, out, "JPEG", int(np.count_nonzero(mask)), changed, psnr, forced)


def _read(src: str | os.PathLike[str], mosaic: MosaicSpec | None = None, *, extras: bool = False) -> Frame:
    from .reader import read_frame

    return read_frame(src, mosaic=mosaic, extras=extras)


def _encode_mosaic(frame: Frame, pixels: np.ndarray) -> bytes:
    """``pixels`` ((H, W) uint16 DN) in the format, depth and white level of ``frame``'s file."""
    h, w = frame.shape
    if frame.format == "PGM":
        head = f"P5\n{w} {h}\n{frame.white}\n".encode("ascii")
        return head + pixels.astype(">u2" if frame.white > 255 else "u1").tobytes()
    narrow = _stored_bytes(frame) == 1
    top = 255 if narrow else 65535
    buf = io.BytesIO()
    if frame.format == "PNG":
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        shift = int(frame.extra.get("shift", 0))
        info = PngInfo()
        if frame.white < top:
            info.add(b"sBIT", bytes([int(frame.white).bit_length()]))
        stored = (pixels.astype(np.uint32) << shift).astype(np.uint8 if narrow else np.uint16)
        Image.fromarray(stored).save(buf, "PNG", pnginfo=info)
        return buf.getvalue()
    import tifffile

    extratags = [(281, "H", 1, int(frame.white), False)] if frame.white < top else []  # MaxSampleValue
    tifffile.imwrite(
        buf,
        pixels.astype(np.uint8 if narrow else np.uint16),
        photometric="minisblack",
        metadata=None,
        extratags=extratags,
    )
    return buf.getvalue()


def _stored_bytes(frame: Frame) -> int:
    """Bytes per sample of the file ``frame`` was read from (1 for 8-bit files)."""
    return 1 if str(frame.extra.get("dtype", "uint16")) == "uint8" else 2


def repair_mosaic_file(
    src: str | os.PathLike[str],
    defect_map: DefectMap,
    out_dir: str | os.PathLike[str],
    *,
    mosaic: MosaicSpec,
    overwrite: bool = False,
    force: bool = False,
    name: str | None = None,
) -> RepairResult:
    """Repair a grayscale TIFF, PNG or PGM holding a raw mosaic; write ``out_dir/<same name>``.

    The file is read as :func:`rawmap.reader.read_frame` with ``mosaic``
    reads it (as ``rawmap map --cfa`` did to make the map), repaired by
    :func:`repair_mosaic` and written in its own format and bit depth
    (8-bit stays 8-bit; a PNG's ``sBIT`` and the scaling it implies, a
    TIFF's MaxSampleValue below the depth's maximum and a PGM's maximum
    value are kept).  Every photosite not in the map is bit-identical to
    the input.  Other tags of the input (EXIF, descriptions) are not copied.

    Parameters
    ----------
    src : str or path-like
    defect_map : DefectMap
        A map made from such files (``sensor.source == "raw"``), of the same
        pattern (``sensor.cfa`` ``""`` for a monochrome sensor).
    out_dir : str or path-like
    mosaic : rawmap.reader.MosaicSpec
        How the file holds its mosaic (the ``--cfa`` options of the map).
    overwrite, force, name : optional
        As :func:`repair_raw_file`.

    Returns
    -------
    RepairResult
        ``format`` is "TIFF", "PNG" or "PGM".

    Raises
    ------
    MapMismatchError, rawmap.errors.OutputExistsError, rawmap.errors.InputError
        As :func:`repair_raw_file`; also for a map of another pattern and a
        file that is not a grayscale mosaic image.
    """
    src = Path(src)
    out = _output_path(src, Path(out_dir), src.suffix, overwrite=overwrite, name=name)
    frame = _read(src, mosaic)
    if not frame.extra.get("mosaic"):
        raise UnsupportedFileError(
            src, f"is a {frame.format} RAW file, not a mosaic in an image file", "repair it without --cfa"
        )
    sensor = defect_map.sensor
    if sensor.source == "raw" and sensor.cfa != frame.cfa_string:
        words = lambda cfa: cfa or "monochrome (no pattern)"  # noqa: E731
        raise MapMismatchError(
            src,
            f"read with the pattern {words(frame.cfa_string)}, the defect map's is {words(sensor.cfa)}",
            "give the --cfa the map was made with",
        )
    forced = defect_map.check_photo(frame, force=force)
    mask = defect_map.mask()
    repaired, how = _repair_frame(frame, defect_map, mask)
    changed = int(np.count_nonzero(repaired != frame.mosaic))
    atomic_write_bytes(out, _encode_mosaic(frame, repaired), overwrite=overwrite)
    return RepairResult(src, out, frame.format, int(np.count_nonzero(mask)), changed, None, forced, corrected=how)


def _fits_history(defect_map: DefectMap, flagged: int) -> list[str]:
    """The ``HISTORY`` text :func:`repair_fits_file` adds: rawmap, its version, the map's body and date (UTC)."""

    body = one_line(defect_map.camera.label) or "an unknown body"
    when = defect_map.created.strftime("%Y-%m-%d %H:%M:%S")
    # one fact a card (72 characters): astropy cuts longer text into several cards anywhere
    return [f"rawmap {__version__} repaired {flagged} photosites", f"map of {body}"[:72], f"map made {when} UTC"]


def repair_fits_file(
    src: str | os.PathLike[str],
    defect_map: DefectMap,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    force: bool = False,
    name: str | None = None,
) -> RepairResult:
    """Repair a FITS light or calibrated frame; write ``out_dir/<same name>``, a FITS file again.

    The frame is read as :mod:`rawmap.readers.fits` reads it (row 0 at the
    top, 16-bit DN), repaired by :func:`repair_mosaic` in those
    coordinates, and the repaired photosites only are written back with
    :func:`rawmap.readers.fits.rewrite`: in the file's own data type
    (``BITPIX``; ``BZERO``/``BSCALE`` kept, so integer data stay integer and
    floats stay floats, normalised ones normalised) and its own row order
    (a ``BOTTOM-UP`` file stays bottom-up on disk).  Every other stored
    value is bit-identical to the input, every header card is kept, and a
    ``HISTORY`` card (rawmap, its version, the map's body and creation date) names rawmap, its version and
    the map.  Compressed (``.fz``) files are refused.

    Parameters
    ----------
    src : str or path-like
        A FITS file holding one single-plane image (Bayer or monochrome).
    defect_map : DefectMap
        The body's map, made from RAW or FITS frames of the same size and
        pattern.
    out_dir : str or path-like
    overwrite, force, name : optional
        As :func:`repair_raw_file`.

    Returns
    -------
    RepairResult
        ``format`` is "FITS".

    Raises
    ------
    MapMismatchError, rawmap.errors.OutputExistsError, rawmap.errors.InputError
        As :func:`repair_raw_file`; also for a compressed FITS file.
    """
    from .readers.fits import rewrite

    src = Path(src)
    out = _output_path(src, Path(out_dir), src.suffix, overwrite=overwrite, name=name)
    frame = _read(src)
    if frame.format != "FITS":
        raise UnsupportedFileError(src, f"is a {frame.format} file, not a FITS file", "repair it as it is named")
    forced = defect_map.check_photo(frame, force=force)
    mask = defect_map.mask()
    repaired, how = _repair_frame(frame, defect_map, mask)
    changed = int(np.count_nonzero(repaired != frame.mosaic))
    data = rewrite(src, repaired, mask, history=_fits_history(defect_map, int(np.count_nonzero(mask))))
    atomic_write_bytes(out, data, overwrite=overwrite)
    return RepairResult(src, out, "FITS", int(np.count_nonzero(mask)), changed, None, forced, corrected=how)


def repair_raw_file(
    src: str | os.PathLike[str],
    defect_map: DefectMap,
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "dng",
    overwrite: bool = False,
    force: bool = False,
    name: str | None = None,
    opcodes: bool = False,
) -> RepairResult:
    """Repair a camera RAW file with its body's defect map; write a DNG (or a developed TIFF).

    The output ``out_dir/<input stem>.dng`` holds the whole sensor frame
    (margins included, the same geometry; lossless JPEG compressed), the
    same CFA pattern, black and white levels, colour matrix (ColorMatrix1 =
    LibRaw's XYZ-to-camera matrix), white balance (AsShotNeutral;
    :func:`_auto_neutral` for a camera on automatic white balance whose file
    keeps no multipliers), orientation, make, model, serial, exposure, ISO,
    capture time, f-number, focal length, lens, owner and the camera's
    preview (see :func:`_raw_extras`).  Every photosite not in the map
    is bit-identical to the input; the map's photosites are estimated by
    :func:`repair_mosaic` (only the visible area is repaired).

    Parameters
    ----------
    src : str or path-like
        A camera RAW file LibRaw reads.
    defect_map : DefectMap
        The body's map, made from RAW files.
    out_dir : str or path-like
        Output folder (created if missing).
    fmt : {"dng", "tiff"}, optional
        ``"tiff"`` writes ``<stem>.tif`` instead: the repaired frame
        developed by LibRaw (camera white balance, 16 bits per channel,
        upright) in **sRGB**: sRGB primaries and D65 white (LibRaw's
        sRGB output), the sRGB tone curve (power 2.4, toe slope 12.92),
        tagged with an sRGB ICC profile (InterColorProfile), and the
        shot's EXIF: make, model, capture time, exposure, ISO, f-number,
        focal length, lens and owner where known
        (:func:`rawmap.dng.rgb_tiff_bytes`).
    overwrite : bool, optional
        Replace an existing output.  The input itself is never replaced.
    force : bool, optional
        Accept a map of another camera body (a size or pattern mismatch is
        always refused).
    name : str, optional
        File name of the output in ``out_dir`` instead of
        :func:`output_name` (see :func:`plan_outputs`).
    opcodes : bool, optional
        Leave the mosaic untouched and list the map's photosites instead in
        the DNG's OpcodeList1, as one FixBadPixelsList opcode
        (:mod:`rawmap.opcodes`; full-frame coordinates), for raw developers
        that apply DNG opcodes (darktable; RawTherapee, dcraw and LibRaw
        ignore it).  ``fmt`` must be ``"dng"``.

    Returns
    -------
    RepairResult
        With ``opcodes`` set (and ``changed`` 0) when ``opcodes``.

    Raises
    ------
    MapMismatchError
        The map is of another body (without ``force``), another sensor size
        or pattern, or was made from developed images.
    rawmap.errors.OutputExistsError
        The output exists (without ``overwrite``) or would be the input.
    rawmap.errors.InputError
        The photo cannot be read, or is not a RAW file.
    rawmap.errors.MapFormatError
        A defect outside the map's sensor (a map built in code: maps read
        from files are checked by :meth:`rawmap.defectmap.DefectMap.load`).
    ValueError
        ``fmt`` is not ``"dng"`` or ``"tiff"``, or ``opcodes`` with ``"tiff"``.
    """
    if fmt not in _RAW_FORMATS:
        raise ValueError(f"fmt must be 'dng' or 'tiff', got {fmt!r}")
    if opcodes and fmt != "dng":
        raise ValueError("opcodes are written into DNG files: use fmt='dng' with opcodes=True")
    src = Path(src)
    out = _output_path(src, Path(out_dir), _RAW_FORMATS[fmt], overwrite=overwrite, name=name)
    frame = _read(src, extras=True)  # one LibRaw decode gives the mosaic and what the DNG needs
    if frame.source is not SourceKind.RAW:
        raise UnsupportedFileError(
            src, f"is a {frame.format} image, not a camera RAW file", "use repair_image_file for JPEGs"
        )
    forced = defect_map.check_photo(frame, force=force)
    return _repair_raw(frame, defect_map, out, fmt=fmt, overwrite=overwrite, forced=forced, opcodes=opcodes)


def repair_image_file(
    src: str | os.PathLike[str],
    defect_map: DefectMap,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    force: bool = False,
    name: str | None = None,
) -> RepairResult:
    """Repair a camera JPEG with its body's image defect map; write ``out_dir/<same name>``.

    Only a small disc around each flagged pixel changes (:func:`repair_image`);
    the file is saved with the original quantisation tables and chroma
    subsampling (what Pillow's ``quality="keep"`` does), its EXIF (orientation
    tag included), ICC profile, XMP, comment and resolution.  Of an MPO file
    (a camera JPEG with multi-picture previews) the primary image is written.  Re-encoding
    changes the rest of the image a little; :attr:`RepairResult.psnr`
    says how much.  The map's coordinates are in sensor orientation (as
    :func:`rawmap.reader.read_frame` returns images); the repair is applied
    to the pixels as stored, whatever the Orientation tag.

    Parameters
    ----------
    src : str or path-like
        An RGB or grayscale JPEG (or MPO).
    defect_map : DefectMap
        The body's map made from JPEGs (``sensor.source == "image"``).
    out_dir : str or path-like
    overwrite, force, name : optional
        As :func:`repair_raw_file`.

    Returns
    -------
    RepairResult
        With ``psnr`` set.

    Raises
    ------
    MapMismatchError, rawmap.errors.OutputExistsError, rawmap.errors.InputError
        As :func:`repair_raw_file`; also for a non-JPEG image.
    """
    src = Path(src)
    out = _output_path(src, Path(out_dir), src.suffix, overwrite=overwrite, name=name)
    frame = _read(src)
    if frame.source is not SourceKind.IMAGE:
        raise UnsupportedFileError(
            src, f"is a {frame.format} RAW file, not a JPEG", "use repair_raw_file for RAW files"
        )
    forced = defect_map.check_photo(frame, force=force)
    return _repair_jpeg(frame, defect_map, out, overwrite=overwrite, forced=forced)


def repair_file(
    src: str | os.PathLike[str],
    defect_map: DefectMap,
    out_dir: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    mosaic: MosaicSpec | None = None,
    name: str | None = None,
    opcodes: bool = False,
) -> RepairResult:
    """Repair one photo with :func:`repair_raw_file`, :func:`repair_fits_file`, :func:`repair_image_file` or :func:`repair_mosaic_file`, by its kind.

    Parameters
    ----------
    src, defect_map, out_dir, overwrite, force
        As :func:`repair_raw_file`.
    fmt : {None, "dng", "tiff"}, optional
        Output of a RAW file (``None``: DNG).  Images and FITS files are
        always written in their own format.
    mosaic : rawmap.reader.MosaicSpec, optional
        Images (not RAW or FITS files) are raw mosaics to repair with
        :func:`repair_mosaic_file`.
    name : str, optional
        File name of the output in ``out_dir`` (default :func:`output_name`);
        :func:`plan_outputs` gives every photo of a batch a distinct one
        that is none of the inputs.
    opcodes : bool, optional
        RAW files only: list the map in the DNG's OpcodeList1 instead of
        repairing the mosaic (see :func:`repair_raw_file`); other photos
        are refused with :class:`rawmap.errors.UnsupportedFileError`.

    Returns
    -------
    RepairResult

    Examples
    --------
    >>> from rawmap.defectmap import DefectMap
    >>> m = DefectMap.load("body.rawmap.json")  # doctest: +SKIP
    >>> repair_file("IMG_0001.CR2", m, "repaired/").output  # doctest: +SKIP
    PosixPath('repaired/IMG_0001.dng')
    """
    from .reader import RAW_EXTENSIONS
    from .readers.fits import is_fits

    src = Path(src)
    if src.suffix[1:].lower() in RAW_EXTENSIONS:
        return repair_raw_file(
            src, defect_map, out_dir, fmt=fmt or "dng", overwrite=overwrite, force=force, name=name, opcodes=opcodes
        )
    if opcodes:
        raise UnsupportedFileError(
            src,
            "is not a camera RAW file; DNG opcodes are written into DNG copies of RAW photos only",
            "repair it without --opcodes",
        )
    if fmt not in (None, "jpeg", "jpg"):
        raise ValueError(f"fmt {fmt!r} applies to RAW files only; {src.name} is written as it came")
    if is_fits(src):
        return repair_fits_file(src, defect_map, out_dir, overwrite=overwrite, force=force, name=name)
    if mosaic is not None:
        return repair_mosaic_file(src, defect_map, out_dir, mosaic=mosaic, overwrite=overwrite, force=force, name=name)
    return repair_image_file(src, defect_map, out_dir, overwrite=overwrite, force=force, name=name)
