"""Which frames show the same view: the per-series bookkeeping of the accumulator.

Not statistics.  :class:`Views` records, for one series, the signature of
every view seen (to recognise a view when it comes back, whatever its
exposure), the signal each view put on each block of the sensor (to tell
how much one view's static detail can weigh in a photosite's sums), and
the views still *open*: collecting their frames' outliers until they are
closed and counted once each.  The exact sums it feeds are in
:mod:`rawmap.accumulate.sums`; the accumulator folds frames, asks this
record which view each frame joins, and counts what a closed view saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .records import DetectionParams


def _signature_block(shape: tuple[int, int]) -> tuple[int, int]:
    """Photosites (rows, columns) of one block of a view's signature on a sensor of ``shape``.

    Follows :meth:`Accumulator._thumb` (blocks of 32 photosites, or of
    ``4 f`` on small frames) and :meth:`Accumulator._signature` (at most
    32 x 48 of those blocks, pooled ``fy`` x ``fx``).
    """
    sub_h, sub_w = -(-shape[0] // 4), -(-shape[1] // 4)  # plane[::4, ::4]
    f = 8 if min(sub_h, sub_w) >= 128 else max(1, min(sub_h, sub_w) // 16)
    th, tw = sub_h // f, sub_w // f
    fy, fx = max(1, -(-th // 32)), max(1, -(-tw // 48))
    return 4 * f * fy, 4 * f * fx


@dataclass
class _OpenView:
    """A view still collecting its frames' outliers (see :meth:`Views.join`)."""

    scene: int
    frames: int = 0
    time: float = math.nan  #: earliest capture (unix s) among its frames
    last_used: int = 0
    pending: list = field(default_factory=list)  #: [(unique codes, frames each showed in)]
    pending_lines: list = field(default_factory=list)


#: compare-exchange pairs whose last leaves the median of 9 values in position 4 (Paeth's network)
_MEDIAN9 = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip


def median3x3(level: np.ndarray) -> np.ndarray:
    """The median of each block's 3 x 3 neighbourhood (edge blocks repeated), (h, w) float64.

    The same values as ``np.median`` over the 3 x 3 windows (the median of
    9 values is one of them, picked exactly), by a selection network of 19
    element-wise min/max steps: a 24 MP frame's thumbnail in ~1 ms instead
    of ~8 ms (``np.median`` copies the windows nine times over and
    partitions each).  Grids holding NaN or -0.0 fall back to ``np.median``
    (the network would not give its NaN, and may pick the other zero).
    """
    level = np.asarray(level, dtype=np.float64)
    h, w = level.shape
    pad = np.pad(level, 1, mode="edge")
    if not np.isfinite(pad).all() or bool(np.any(np.signbit(pad) & (pad == 0))):
        win = np.lib.stride_tricks.sliding_window_view(pad, (3, 3)).reshape(level.shape + (9,))
        return np.median(win, axis=2)
    p = [pad[i : i + h, j : j + w].copy() for i in range(3) for j in range(3)]
    for a, b in _MEDIAN9:
        lo = np.minimum(p[a], p[b])
        np.maximum(p[a], p[b], out=p[b])
        p[a] = lo
    return p[4]


def _detail(level: np.ndarray) -> np.ndarray:
    """Each block minus the median of its 3 x 3 blocks (smooth gradients drop out)."""
    return level - median3x3(level)


def _detail_correlation(a: np.ndarray, b: np.ndarray, leave_out: np.ndarray | None = None) -> float:
    """Pearson correlation of the detail of two block grids of one frame (0 when undecidable),
    without the blocks ``leave_out`` marks (a glow's, :func:`border_glow`; the grid of ``a``)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    if h < 3 or w < 3:
        return 0.0
    x = _detail(a[:h, :w])
    y = _detail(b[:h, :w])
    if leave_out is not None:
        keep = ~leave_out[:h, :w]
        x, y = x[keep], y[keep]
        if x.size < 9:
            return 0.0
    x = x.ravel()
    y = y.ravel()
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 0 else 0.0


def _finite_detail_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`_detail_correlation` of two signatures over the blocks finite in both (clipped blocks, NaN,
    stand at the grid's highest value for the 3 x 3 medians and are left out of the sum)."""
    if a.shape != b.shape:
        return 0.0
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return 0.0
    fill_a = np.where(np.isfinite(a), a, np.nanmax(a))
    fill_b = np.where(np.isfinite(b), b, np.nanmax(b))
    return _detail_correlation(fill_a, fill_b, leave_out=~ok)


def _edges_in_both(a: np.ndarray, b: np.ndarray, sigma: float, k: float, leave_out: np.ndarray | None = None) -> int:
    """Blocks whose detail stands out of the noise the same way in two block grids of one frame.

    The bar is ``k`` sigmas of a block mean's noise, raised with the
    number of blocks n so that two grids of Gaussian noise share 0.01 such
    blocks a frame (2.7 sigmas for 500 blocks, 3.3 for 23,000).

    Parameters
    ----------
    a, b : (h, w) ndarray of float64
        Block means above black of the two samplings.
    sigma : float
        Standard deviation of one block mean's noise (DN).
    k : float
        Lowest bar, in sigmas.
    leave_out : (h, w) ndarray of bool, optional
        Blocks not counted (a glow's, :func:`border_glow`).

    Returns
    -------
    int
        0 when the grids are smaller than 3 x 3 or ``sigma`` is not positive.
    """
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    if h < 3 or w < 3 or not sigma > 0:
        return 0
    x = _detail(a[:h, :w])
    y = _detail(b[:h, :w])
    # one tail's probability q with 2 q^2 n <= 0.01 (both tails, the same way in both grids)
    q = math.sqrt(0.005 / (h * w))
    bar = max(k, NormalDist().inv_cdf(1.0 - q)) * sigma
    same = ((x > bar) & (y > bar)) | ((x < -bar) & (y < -bar))
    if leave_out is not None:
        same &= ~leave_out[:h, :w]
    return int(np.count_nonzero(same))


def _around(grid: np.ndarray, fill) -> list[np.ndarray]:
    """The 8 neighbours of every cell of a 2-D grid, as 8 shifted copies (``fill`` beyond the edge)."""
    h, w = grid.shape
    pad = np.pad(grid, 1, constant_values=fill)
    return [pad[1 + di : 1 + di + h, 1 + dj : 1 + dj + w] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]


def _dilated(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one cell in each of the 8 directions."""
    return np.logical_or.reduce([mask, *_around(mask, False)])


def border_glow(
    level: np.ndarray,
    bar: float,
    tolerance: float,
    max_share: float,
    relative: float = 0.02,
    fade: float = 0.25,
    min_ratio: float = 0.0,
) -> np.ndarray | None:
    """The blocks of a glow lit from the sensor's border (an amplifier's, in long darks), or None.

    A glow is lit from the border and fades away from it: the blocks
    above ``bar`` connected to the border (8-connected) have no peak of
    their own inside the frame, each of them at most ``tolerance`` (plus
    ``relative`` of its level: the glow's shot noise) above its brightest
    neighbour in the glow (a scene's lit area has highlights, edges and
    texture that rise and fall).  They must cover at most ``max_share`` of
    the blocks, reach no two opposite sides of the frame (a sky does), and
    fade as a glow does, exponentially from its peak: most of it dim, its
    median at most ``fade`` of the way from ``bar`` to the peak (a lit
    foreground is lit evenly), though not faster than ``min_ratio`` from
    block to block.  Lit regions inside the frame are left to the other
    tests.  All of this on the median of each block's 3 x 3 blocks, so
    that a single bright block (a hot photosite's) neither breaks a glow
    nor makes one.  The glows are returned grown by two blocks: the fringe
    where they fade under ``bar``.

    Parameters
    ----------
    level : (h, w) ndarray of float64
        Block means above black.
    bar : float
        Level above which a block is lit, DN.
    tolerance : float
        How much a block may exceed its brightest neighbour in the glow
        (a block mean's noise), DN.
    max_share : float
        Largest share of the blocks the glows may cover.
    relative : float, optional
        Further tolerance, as a share of the block's level.
    fade : float, optional
        Highest median of the glow's blocks, as a share of the way from
        ``bar`` to its brightest block.
    min_ratio : float, optional
        Lowest median, over the glow's blocks, of a block's level above
        ``bar`` over its brightest neighbour's: a glow falling faster than
        that from block to block is refused.

    Returns
    -------
    (h, w) ndarray of bool, or None
        None when nothing lit touches the border, what does has a peak
        inside the frame, reaches two opposite sides, covers more than
        ``max_share``, does not fade, or fades too fast.
    """
    h, w = level.shape
    smooth = median3x3(level)
    lit = smooth > bar
    border = np.zeros((h, w), bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    glow = lit & border
    if not glow.any():
        return None
    limit = max_share * h * w
    while True:  # grown through the lit blocks from the border
        grown = lit & _dilated(glow)
        if int(np.count_nonzero(grown)) > limit:
            return None
        if np.array_equal(grown, glow):
            break
        glow = grown
    if (glow[0].any() and glow[-1].any()) or (glow[:, 0].any() and glow[:, -1].any()):
        return None  # from one side of the frame to the other: a sky, a lit wall, not one corner's glow
    inside = smooth[glow]
    if float(np.median(inside)) - bar > fade * (float(inside.max()) - bar):
        return None  # lit evenly, not fading fast from its peak: a lit foreground, not a glow
    brightest = np.maximum.reduce(_around(np.where(glow, smooth, -np.inf), -np.inf))
    if np.any(glow & ~border & (smooth > brightest + tolerance + relative * smooth)):
        return None  # a peak inside the frame: a lamp, a lit window, a cloud, not a glow
    falling = glow & (brightest > smooth)
    if falling.any() and float(np.median((smooth[falling] - bar) / (brightest[falling] - bar))) < min_ratio:
        return None  # too steep for a glow at the photosites' scale (the darks' line test needs it smooth)
    return _dilated(_dilated(glow))


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(x.size, np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(x.size, dtype=np.float64)
    return r


#: Fewest blocks valid in both signatures for a correlation
_MIN_COMPARED = 8


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Rank (Spearman) correlation of two signatures over the blocks valid in both (-1 when undecidable).

    Ranks, not values: a bracket's long exposures clip part of some blocks
    (glints, highlights), which bends the relation between two frames'
    block means but keeps their order.
    """
    if a.shape != b.shape:
        return -1.0
    ok = np.isfinite(a) & np.isfinite(b)
    if int(ok.sum()) < _MIN_COMPARED:
        return -1.0
    x = _ranks(a[ok])
    y = _ranks(b[ok])
    x -= x.mean()
    y -= y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 0 else -1.0


#: Views searched moved for one frame, those it resembles most in place: 200 frames of different
#: scenes sharing a layout (a bright top) took 68 s to join with every view above the floor searched,
#: 2.5 s in place only
_MOVED_VIEWS = 3
#: A moved placement must correlate by this much more than the mirrored one: the JPEGs of lens-cap
#: darks with a glowing corner (signatures mostly noise, 0.4-0.9 alike in place) correlated above 0.9
#: moved by a fraction of a block, the neighbouring blocks averaged; 0.05 still joined two of them
_MIRROR_MARGIN = 0.1
#: A frame clipped over at least this share of its signature's blocks is *mostly clipped* (Views.join)
_MOSTLY_CLIPPED = 0.5
#: ... and joins the view it resembles most only by this much more than any other
_CLIPPED_LEAD = 0.15
#: Fewest blocks a moved comparison must cover: the best of 33 placements of a few dozen blocks of
#: two unrelated scenes reached 0.9 (24 x 30 test frames, 48 blocks)
_MIN_MOVED_BLOCKS = 96


def _bilinear_shift(b: np.ndarray, sy: float, sx: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """``b`` read ``(sy, sx)`` blocks further on, bilinearly, where that stays inside it.

    Returns the cells of the grid that have a value there (rows, columns)
    and those values (NaN where a clipped block contributes), or None when
    fewer than 3 x 3 remain.
    """
    h, w = b.shape
    y0, x0 = math.floor(sy), math.floor(sx)
    fy, fx = sy - y0, sx - x0
    # cells i with i + y0 and i + y0 + 1 inside (the second only weighs when fy > 0)
    r0, r1 = max(0, -y0), min(h, h - y0 - (1 if fy > 0 else 0))
    c0, c1 = max(0, -x0), min(w, w - x0 - (1 if fx > 0 else 0))
    if r1 - r0 < 3 or c1 - c0 < 3:
        return None
    top = b[r0 + y0 : r1 + y0]
    if fy > 0:
        top = (1.0 - fy) * top + fy * b[r0 + y0 + 1 : r1 + y0 + 1]
    out = top[:, c0 + x0 : c1 + x0]
    if fx > 0:
        out = (1.0 - fx) * out + fx * top[:, c0 + x0 + 1 : c1 + x0 + 1]
    return (slice(r0, r1), slice(c0, c1)), out


def _shifted_correlation(a: np.ndarray, b: np.ndarray, reach: float) -> float:
    """The best :func:`_correlation` of ``a`` with ``b`` moved by up to ``reach`` blocks each way.

    A handheld bracket or burst moves between frames: on a 2 MP frame, 32
    photosites are half a signature block, and frames of one view then
    correlated 0.52-0.98 (17 of 30 pairs under the 0.9 of one view).
    Searched in half-block steps, then in quarter blocks around the best;
    placements covering fewer than :data:`_MIN_MOVED_BLOCKS` unclipped
    blocks do not count.  A placement a fraction of a block off averages
    neighbouring blocks, which takes noise out and raises the correlation
    of any two noisy grids; the mirrored placement averages as many, so the
    best counts only where it beats that by :data:`_MIRROR_MARGIN` (-1
    otherwise).
    """
    if a.shape != b.shape or reach <= 0:
        return -1.0

    def at(sy: float, sx: float) -> float:
        moved = _bilinear_shift(b, sy, sx)
        if moved is None:
            return -1.0
        cells, vals = moved
        a_in = a[cells]
        if int(np.count_nonzero(np.isfinite(a_in) & np.isfinite(vals))) < _MIN_MOVED_BLOCKS:
            return -1.0
        return _correlation(a_in, vals)

    steps = np.arange(-reach, reach + 1e-9, 0.5)
    best, by, bx = -1.0, 0.0, 0.0
    for sy in steps.tolist():
        for sx in steps.tolist():
            c = at(sy, sx)
            if c > best:
                best, by, bx = c, sy, sx
    for dy in (-0.25, 0.0, 0.25):
        for dx in (-0.25, 0.0, 0.25):
            if (dy or dx) and abs(by + dy) <= reach and abs(bx + dx) <= reach:
                c = at(by + dy, bx + dx)
                if c > best:
                    best, by, bx = c, by + dy, bx + dx
    # the mirrored placement averages as many blocks: what it gains too is noise averaged out, not a move
    if best - at(-by, -bx) < _MIRROR_MARGIN:
        return -1.0
    return best


class Views:
    """The views of one series (see the module docstring).

    Parameters
    ----------
    params : DetectionParams
        ``view_corr`` (same view) and ``open_views`` (how many stay open).

    Attributes
    ----------
    sigs : dict of int to (h, w) ndarray of float64
        Signature of each known view (scene number), NaN on clipped blocks;
        a dark's only while its view is open.
    weights : dict of int to (h, w) ndarray of float64
        Each view's frames' signal summed block by block (clipped blocks at
        the clip level).
    open : dict of int to _OpenView
        The views still collecting outliers.
    dark : set of int
        Open views of darks only (two darks never join).
    clock : int
        Frames committed, to close the least recently used view first.
    """

    def __init__(self, params: DetectionParams) -> None:
        self.params = params
        self.sigs: dict[int, np.ndarray] = {}
        self.weights: dict[int, np.ndarray] = {}
        self.open: dict[int, _OpenView] = {}
        self.dark: set[int] = set()
        self.clock = 0

    def copy(self) -> Views:
        """A copy whose dictionaries can change apart (the open views' records are shared)."""
        c = Views(self.params)
        c.sigs, c.weights, c.open, c.dark, c.clock = (
            dict(self.sigs),
            dict(self.weights),
            dict(self.open),
            set(self.dark),
            self.clock,
        )
        return c

    def join(self, sig: np.ndarray, weight: np.ndarray, dark: bool, new_scene: int) -> tuple[_OpenView, bool]:
        """The open view a frame joins: the known view it shows (reopened if closed) or a new one.

        Frames show the same view when their signatures correlate by at
        least :attr:`DetectionParams.view_corr`, whatever their exposure,
        ISO or order in the series, so brackets, timelapses and bursts are
        one view.  Where no view matches in place, a frame is compared with
        the few it correlates with most, by at least
        :attr:`DetectionParams.view_shift_floor`, and with the view of the
        frame before it, however little alike in place, moved by up to
        :attr:`DetectionParams.view_shift` blocks (a handheld bracket or
        burst).  A frame clipped over most of its blocks (a bracket's longest
        exposure) joins the view it resembles by
        :attr:`DetectionParams.view_clipped_corr` and by far the most, or
        the view of the frame before it where it resembles that one the
        most, by :attr:`DetectionParams.view_clipped_recent`, or where too
        few of its blocks are left to compare.  A dark starts a view of its
        own: with no scene, whatever is
        static in it is the sensor, and two darks never join (their amplifier
        glow and vignetting of dark current look alike).  But a frame that
        looks dark may be the dimmest of a bracket: a dark joins a photo's
        view it matches, and while a dark's view is open a later photo of the
        same view joins it, so the bracket's brightest specks count once.
        Flat fields do join views (the vignetting of one set-up is their
        signature): a frame of fine texture that averages out in the
        thumbnail (a lawn) can look blank, and its static detail must not
        count frame by frame.

        Parameters
        ----------
        sig, weight : (h, w) ndarray of float64
            The frame's signature and its signal per block.
        dark : bool
            The frame is a lens-cap dark.
        new_scene : int
            The number a new view gets.

        Returns
        -------
        view : _OpenView
        new : bool
            A new view was started (numbered ``new_scene``).
        """
        best, best_c = None, self.params.view_corr
        recent = self.recent()  # the view of the frame before (never a dark's)
        plain: dict[int, float] = {}
        for scene, ref in self.sigs.items():
            if dark and scene in self.dark:
                continue
            c = plain[scene] = _correlation(sig, ref)
            if c >= best_c:
                best, best_c = scene, c
        if best is None and self.params.view_shift > 0:
            # a handheld frame moved off its view: the few views it resembles most in place, searched moved
            near = sorted((c, scene) for scene, c in plain.items() if c >= self.params.view_shift_floor)
            moved = [scene for _, scene in near[-_MOVED_VIEWS:]]
            # and the view of the frame before, however little it resembles this one in place: the frames
            # of a handheld bracket come one after another, up to twice the shake apart
            if recent is not None and recent not in moved:
                moved.append(recent)
            for scene in moved:
                c = _shifted_correlation(sig, self.sigs[scene], self.params.view_shift)
                if c >= best_c:
                    best, best_c = scene, c
        if best is None and not dark and recent is not None and plain.get(recent, -1.0) >= self.params.view_follow_corr:
            # the frame before's view, where its light changed unevenly (lamps that stay lit while the
            # daylight falls reorder the blocks: a city at dusk at one exposure fell to 0.90 in its last
            # frames) but its detail, gradients aside, is the same (0.999 there; different real scenes
            # at most 0.70, 0.34 among those 0.8 alike in place)
            if _finite_detail_correlation(sig, self.sigs[recent]) >= self.params.view_follow_detail:
                best = recent
        keep_ref = False
        finite = np.isfinite(sig)
        if best is None and not dark and float(np.mean(~finite)) >= _MOSTLY_CLIPPED:
            # a bracket's longest exposure, clipped over most blocks: its few unclipped ones rank its view
            # 0.62-0.89 alike, other views at most 0.70 (the real scenes' brackets); the view it resembles by far the most.  A wrong
            # view costs nothing: its static detail then needs more frames there than as a view of its own
            ranked = sorted(plain.values(), reverse=True)
            top = max(plain, key=plain.__getitem__) if plain else None
            if ranked and ranked[0] >= self.params.view_clipped_corr:
                if len(ranked) == 1 or ranked[0] - ranked[1] >= _CLIPPED_LEAD:
                    best = top
            # a handheld bracket's: moved off its view, it resembles the view of the frame before the most
            if best is None and top is not None and top == recent and plain[top] >= self.params.view_clipped_recent:
                best = top
            # or whose detail it shares: a colour matrix bends the order of half-clipped blocks, not where
            # the detail lies
            if (
                best is None
                and recent is not None
                and _finite_detail_correlation(sig, self.sigs[recent]) >= self.params.view_clipped_detail
            ):
                best = recent
            if best is None and int(np.count_nonzero(finite)) < _MIN_COMPARED:
                # clipped nearly everywhere, too few blocks to compare with any view: the longest exposure
                # of the frame before's bracket (it holds no evidence either way)
                best = recent
            keep_ref = best is not None  # the view keeps a signature its next frames can match
        if best is not None:
            # follow slow changes (a timelapse's light); a photo makes a dark's view a photo's
            if not dark and not keep_ref:
                self.sigs[best] = sig
                self.dark.discard(best)
            self._add_weight(best, weight)
            if best not in self.open:
                self.open[best] = _OpenView(best)
            return self.open[best], False
        self.sigs[new_scene] = sig
        self._add_weight(new_scene, weight)
        if dark:
            self.dark.add(new_scene)
        self.open[new_scene] = _OpenView(new_scene)
        return self.open[new_scene], True

    def recent(self) -> int | None:
        """The open view the latest frame joined (None with none open, or when it was a dark's)."""
        if not self.open:
            return None
        scene = max(self.open.values(), key=lambda v: v.last_used).scene
        return None if scene in self.dark or scene not in self.sigs else scene

    def _add_weight(self, scene: int, w: np.ndarray) -> None:
        prev = self.weights.get(scene)
        self.weights[scene] = w if prev is None or prev.shape != w.shape else prev + w

    def touch(self, view: _OpenView, t: float) -> None:
        """A frame joined ``view``: count it, note its capture time (unix s, NaN unknown) and the clock."""
        view.frames += 1
        self.clock += 1
        view.last_used = self.clock
        if not math.isnan(t) and (math.isnan(view.time) or t < view.time):
            view.time = t

    def stale(self) -> int | None:
        """The least recently used open view when more than ``open_views`` are open, else None."""
        if len(self.open) > max(1, self.params.open_views):
            return min(self.open.values(), key=lambda v: v.last_used).scene
        return None

    def close(self, scene: int) -> _OpenView:
        """Take an open view out, to be counted; a dark's view is then forgotten (nothing may join it)."""
        view = self.open.pop(scene)
        if scene in self.dark:
            self.dark.discard(scene)
            self.sigs.pop(scene, None)
            self.weights.pop(scene, None)
        return view

    def add_renumbered(self, other: Views, offset: int) -> None:
        """Take ``other``'s (closed) views in, their scene numbers moved up by ``offset`` (merging states)."""
        self.sigs.update({scene + offset: sig for scene, sig in other.sigs.items()})
        self.weights.update({scene + offset: w for scene, w in other.weights.items()})

    def shares(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
        """The largest share of each photosite's summed signal that one view holds.

        From the views' summed block signals (the signature's blocks), so it
        follows each photosite's surroundings, not the frame's mean: a view
        bright where the photosite sits weighs more there.  1.0 where one
        view holds everything (a timelapse).

        Parameters
        ----------
        rows, cols : (n,) int arrays
        shape : (H, W) of the sensor

        Returns
        -------
        (n,) float64 ndarray, or None
            ``None`` when the views' signals are unknown (states written
            before they were kept) or the views' blocks disagree in shape.
        """
        ws = list(self.weights.values())
        if not ws or len({w.shape for w in ws}) != 1 or len(ws) != len(self.sigs):
            return None
        stack = np.stack(ws)  # (views, h, w)
        sh, sw = stack.shape[1:]
        by, bx = _signature_block(shape)
        i = np.minimum(np.asarray(rows) // by, sh - 1)
        j = np.minimum(np.asarray(cols) // bx, sw - 1)
        total = stack.sum(axis=0)
        share = np.where(total > 0, stack.max(axis=0) / np.where(total > 0, total, 1.0), 1.0)
        return share[i, j]
