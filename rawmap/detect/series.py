"""What every rule works from: one series' state and figures, the flags found so far, shared statistics.

:class:`_Series` holds the accumulated state, the parameters and the
figures each rule needs (the read noise, the evidence units a count needs
against chance); :class:`_Found` the flags in the order the rules made
them.  The per-photosite statistics more than one rule uses live here too:
same-colour and adjacent neighbours, gain and noise ratios, robust spreads,
trimmed means over frames, the noise of a set of darks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from ..accumulate import Accumulator
from ..accumulate.noise import robust_sigma as _robust_sigma
from ..defectmap import DefectKind
from .params import _BLOCK_ROWS, ClassifyParams


def _scene_rates(acc: Accumulator) -> np.ndarray:
    """(S,) each evidence unit's chance rate: the share of photosites it counted as outliers (either sign).

    A view's rate is the number of photosites it counted when it closed (the
    union of its frames' outliers, an outlier in one of a bracket's four
    frames being enough); for darks, and views of states written before
    views recorded it, its frames' mean rate (an overflowed frame counting
    none).
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
    return np.array([min(sum(rates) / len(rates), 1.0) for rates in per_scene.values()], np.float64)


def _at_least(rates: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N, S+2) ``[i, k]``: the chance of being an outlier in ``k`` units or more at unit u's rate
    ``rates[u] x scale[i]`` (Poisson-binomial; ``rates`` (S,), ``scale`` (N,))."""
    q = np.minimum(rates[None, :] * scale[:, None], 1.0)
    pmf = np.zeros((scale.size, rates.size + 2))
    pmf[:, 0] = 1.0
    for u in range(rates.size):
        pmf[:, 1:] = pmf[:, 1:] * (1.0 - q[:, u : u + 1]) + pmf[:, :-1] * q[:, u : u + 1]
        pmf[:, 0] *= 1.0 - q[:, u]
    return np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]


def _tail(rates: np.ndarray, scale: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N,) chance that a photosite is an outlier in ``k`` units or more, unit u's rate ``rates[u] x scale``.

    Poisson-binomial, one distribution per photosite: ``rates`` (S,), ``scale`` and ``k`` (N,).
    """
    return _at_least(rates, scale)[np.arange(scale.size), np.minimum(k, rates.size + 1)]


def _chance_need(acc: Accumulator, need: int, max_chance: float) -> int:
    """Scenes a photosite must be an outlier in, raised until chance alone gets few photosites there.

    Scene detail and noise make a few outliers per thousand photosites in
    every frame, at new places in each scene.  With few scenes, two or three
    of them coincide at thousands of photosites of a big sensor; those must
    not become defects.  Each scene's chance rate is its frames' isolated
    outliers (of either sign) per photosite (:func:`_scene_rates`); the
    number of scenes in which one healthy photosite is an outlier is then
    Poisson-binomial, and the smallest count (from ``need`` up) that fewer
    than ``max_chance`` photosites of the sensor reach by chance is
    returned.  Where the scenes are busier than the sensor's mean, the
    rates are higher still: :func:`_by_chance_here`.

    Returns
    -------
    int
    """
    H, W = acc.shape
    n = float(H * W)
    rates = _scene_rates(acc)
    at_least = _at_least(rates, np.ones(1))[0]  # at_least[k]: P(outlier in k scenes or more)
    while need < rates.size and n * at_least[need] > max_chance:
        need += 1
    return need


def _dilate2(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by 2 photosites each way (a 5 x 5 square), (h, w) bool."""
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        for d in (1, 2):
            if axis == 0:
                grown[d:] |= out[:-d]
                grown[:-d] |= out[d:]
            else:
                grown[:, d:] |= out[:, :-d]
                grown[:, :-d] |= out[:, d:]
        out = grown
    return out


def _tile_sums(x: np.ndarray, tile: int) -> np.ndarray:
    """Sums of ``x`` (h, w) over tiles of ``tile`` x ``tile`` (the last ones cut short), (ceil(h/tile), ceil(w/tile)) int64."""
    h, w = x.shape
    if h % tile or w % tile:
        x = np.pad(x, ((0, -h % tile), (0, -w % tile)))
    # along the rows first (a contiguous reduction), then down the much smaller result
    across = x.reshape(x.shape[0], x.shape[1] // tile, tile).sum(axis=2, dtype=np.int32)
    return across.reshape(x.shape[0] // tile, tile, across.shape[1]).sum(axis=1, dtype=np.int64)


def _by_chance_here(
    acc: Accumulator, local: _LocalRates | None, max_chance: float, r: np.ndarray, c: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """(N,) bool: outliers in ``counts[r, c]`` units that the busy scenes around them explain.

    :func:`_chance_need` takes each unit's chance rate over the whole
    sensor, but scene detail is not spread evenly: where every view is
    textured (foliage, gravel), and more so where handheld frames move it
    across the photosites, outliers are several times as frequent as the
    sensor's mean, and a photosite there reaches ``need`` units by chance.
    The local rate (:func:`_local_rates`), taken at its lower bound (the
    sum less 2 Poisson sigmas: the count around is itself a sample), over
    the same mean across the sensor, times each unit's rate (where above 1)
    gives the photosite's chance tail; a photosite that more than
    ``max_chance`` photosites of the sensor would reach at that rate is
    explained by chance.

    Parameters
    ----------
    acc : Accumulator
    local : _LocalRates or None
        The counts around (:func:`_local_rates`); None: no local test.
    max_chance : float
    r, c : (N,) int arrays
        The candidates.
    counts : (H, W) ndarray
        ``acc.s_hi`` or ``acc.s_lo``: the units each was an outlier in.

    Returns
    -------
    (N,) ndarray of bool
    """
    out = np.zeros(r.size, bool)
    if local is None or r.size == 0:
        return out
    ratio = local.ratio(r, c, upper=False)
    busy = ratio > 1.0
    if busy.any():
        out[busy] = _chance_photosites(acc, ratio[busy], counts[r[busy], c[busy]]) > max_chance
    return out


def _quiet_here(
    acc: Accumulator, local: _LocalRates | None, max_chance: float, r: np.ndarray, c: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """(N,) bool: outliers in fewer than ``need`` units that the quiet scenes around them do not explain.

    The other side of :func:`_by_chance_here`: where busy views raised
    the units needed over the whole sensor (a few brackets, each counting an
    outlier in any of its frames), a photosite in a quieter part of the
    scenes reaches fewer units by chance.  The local rate is taken at its
    upper bound (the count around plus 2 Poisson sigmas), and a photosite
    is evidence where at most ``max_chance`` photosites of the sensor would
    reach its count at that rate.  Brackets of 3 and 4 of the real samples'
    scenes (a hot photosite hidden in the busiest view was lost when all 3
    were needed): see ``bench_real_brackets.py --short``.
    """
    out = np.zeros(r.size, bool)
    if local is None or r.size == 0:
        return out
    ratio = local.ratio(r, c, upper=True)
    quiet = ratio < 1.0
    if quiet.any():
        out[quiet] = _chance_photosites(acc, ratio[quiet], counts[r[quiet], c[quiet]]) <= max_chance
    return out


def _chance_photosites(acc: Accumulator, scale: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N,) photosites of the sensor expected by chance in ``k`` units or more, each unit's rate x ``scale``."""
    H, W = acc.shape
    return float(H * W) * _tail(_scene_rates(acc), scale, k.astype(np.int64))


@dataclass(frozen=True)
class _LocalRates:
    """Outlier counts around each tile of the sensor (:func:`_local_rates`)."""

    around: np.ndarray  #: (th, tw) counts of either sign in each tile's 3 x 3 tiles
    sizes: np.ndarray  #: (th, tw) photosites those counts were taken over
    mean: float  #: the count per photosite over the whole sensor
    tile: int  #: side of a tile, photosites

    def ratio(self, r: np.ndarray, c: np.ndarray, *, upper: bool) -> np.ndarray:
        """(N,) the rate around each photosite over the sensor's mean, the count around at its lower
        bound (less 2 Poisson sigmas) or, with ``upper``, its upper bound (plus 2).  Where no outlier
        was counted anywhere (nothing to compare with): infinite with ``upper`` (no part is quieter),
        else 0 (none busier)."""
        if self.mean <= 0:
            return np.full(r.size, np.inf) if upper else np.zeros(r.size)
        around = self.around[r // self.tile, c // self.tile]
        bound = around + 2.0 * np.sqrt(around) if upper else np.maximum(around - 2.0 * np.sqrt(around), 0.0)
        return bound / np.maximum(self.sizes[r // self.tile, c // self.tile], 1.0) / self.mean


def _local_rates(acc: Accumulator, need: int, tile: int) -> _LocalRates | None:
    """The outlier counts in the ``3 x 3`` tiles of ``tile`` photosites around each tile, once for
    every test of a classification (:func:`_by_chance_here`, :func:`_quiet_here`); None when ``tile``
    is 0 (no local test).  About 0.1 s on 24 MP.

    Counts of either sign, the photosites at ``need`` or more and those
    within 2 of them left out (a defect's same-colour neighbours lean the
    other way, a hot cluster's members count in fewer units).
    """
    if tile <= 0:
        return None
    H, W = acc.shape
    th, tw = -(-H // tile), -(-W // tile)
    sums = np.zeros((th, tw), np.float64)
    sizes = np.zeros((th, tw), np.float64)
    step = tile * max(1, _BLOCK_ROWS // tile)
    wide = np.uint16 if acc.s_hi.itemsize == 1 and acc.s_lo.itemsize == 1 else np.int64  # room for the sum
    for a in range(0, H, step):
        lo, hi = max(a - 2, 0), min(a + step + 2, H)  # two rows beyond the block each way
        both = np.add(acc.s_hi[lo:hi], acc.s_lo[lo:hi], dtype=wide)
        # a defect and the photosites within 2 of it are not the scene's chance
        near = _dilate2(both >= need)[a - lo : a - lo + min(step, H - a)]
        both = both[a - lo : a - lo + near.shape[0]]
        both[near] = 0
        t0, n = a // tile, -(-both.shape[0] // tile)
        sums[t0 : t0 + n] = _tile_sums(both, tile)
        sizes[t0 : t0 + n] = _tile_sums(~near, tile)

    def window(grid: np.ndarray) -> np.ndarray:  # each tile's 3 x 3 neighbourhood, summed
        p = np.pad(grid, 1)
        total = np.zeros_like(grid)
        for i in range(3):
            for j in range(3):
                total += p[i : i + th, j : j + tw]
        return total

    return _LocalRates(window(sums), window(sizes), float(sums.sum() / max(sizes.sum(), 1.0)), tile)


def _touching(flat: np.ndarray, others: np.ndarray, width: int) -> np.ndarray:
    """(N,) bool: which of the photosites ``flat`` (flat indices) have one of ``others`` among their 8 adjacent ones.

    ``width`` is the sensor's; a neighbour across the left or right edge does not count.
    """
    out = np.zeros(flat.size, bool)
    if flat.size == 0 or others.size == 0:
        return out
    others = np.unique(others)
    col = flat % width
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == 0 and dc == 0:
                continue
            inside = (col + dc >= 0) & (col + dc < width)
            out |= inside & np.isin(flat + dr * width + dc, others)
    return out


def _groups8(rows: np.ndarray, cols: np.ndarray, members: np.ndarray) -> np.ndarray:
    """(N,) int64: a label per 8-connected group of the photosites ``members`` selects, -1 for the rest.

    Parameters
    ----------
    rows, cols : (N,) ndarray of int
    members : (N,) ndarray of bool
        Only these join groups, each with the members among its 8 adjacent photosites.

    Returns
    -------
    (N,) ndarray of int64
        Equal labels for the members of one group (the index of one of them).
    """
    n = rows.size
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    where = {(int(r), int(c)): i for i, (r, c, m) in enumerate(zip(rows, cols, members)) if m}
    for (r, c), i in where.items():
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                j = where.get((r + dr, c + dc))
                if j is not None and j != i:
                    a, b = find(i), find(j)
                    if a != b:
                        parent[a] = b
    return np.array([find(i) if m else -1 for i, m in enumerate(members)], np.int64)


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


def _mean_residual(acc: Accumulator, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N,) float64: each photosite's residual ``4 v - sum4`` averaged over the frames that entered its sums."""
    return acc.s_r[r, c].astype(np.float64) / np.maximum(acc.valid_counts((r, c)), 1)


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

    def relabel(self, index: np.ndarray, kind: DefectKind, value) -> None:
        """Give the defects at ``index`` (into these arrays) another kind and value."""
        self.kinds[index] = _KINDS.index(kind)
        self.values[index] = value


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
    grown : ndarray of int64
        Flat indices of the hot flags of :func:`rawmap.detect.growth._growth` (shown by the one view).
    lo_chance : ndarray of int64
        Flat indices (sorted) whose dark-outlier counts the busy scenes around them explain (series
        of fewer than ``guard_views`` views, see :func:`rawmap.detect.build._classify`): no evidence.
    growth : str or None
        What that test did (:attr:`rawmap.defectmap.FrameStats.growth`).
    lines : str or None
        What the one-view line test did (:attr:`rawmap.defectmap.FrameStats.lines`).
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
    grown: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lo_chance: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    growth: str | None = None
    lines: str | None = None

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

    def mean_reading(self, r, c) -> np.ndarray:
        """Mean reading (DN, black included) of each photosite over the frames that entered its sums
        (float64, the shape of ``r`` and ``c``; 0 where none did)."""
        acc = self.acc
        return acc.s_v[r, c].astype(np.float64) / np.maximum(acc.valid_counts((r, c)), 1)


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


def _noise_ratio(ser: _Series, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Temporal noise of each photosite over the median of its same-colour neighbours'."""
    acc = ser.acc

    def mean_z2(r_, c_):
        return acc.s_zz[r_, c_] / np.maximum(acc.valid_counts((r_, c_)), 1)

    nr, nc = _neighbours(r, c, ser.H, ser.W)
    return mean_z2(r, c) / np.maximum(np.median(mean_z2(nr, nc), axis=0), 1e-6)


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
