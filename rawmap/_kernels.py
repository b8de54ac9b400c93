"""Compiled per-photosite kernels (numba).

Why numba: one frame of 24 MP must be folded into the statistics in about
the time LibRaw takes to decode it (~0.1 s).  The same work written as numpy
array expressions makes ~20 passes over memory (0.5 s per frame measured on
the project's 2-core machine, even tiled); a fused loop does it in one pass.

Threads: :func:`update_kernel` folds one band of rows and releases the GIL;
the caller runs bands of successive frames on threads of its own (see
:mod:`rawmap.mapping`).  It is a plain ``njit`` function, so launching it from
several threads at once is safe under any numba threading layer.  Two
settings let LLVM vectorise its row loops (8 photosites per instruction):
``error_model="numpy"`` (a float division is not a branch that raises) and
unsigned column indices in those loops (numba wraps a signed index that
could be negative, a select per access that LLVM cannot see through).

Compile time: numba compiles these on first use and caches the result
(``cache=True``: in ``__pycache__`` beside this file, or ``NUMBA_CACHE_DIR``).
:func:`update_kernel` is most of it, and numba's compile time grows faster
than the code it compiles: every ``inline="always"`` call site is a copy of
the callee's code.  So each helper is inlined at one call site (loops over
the four neighbours or the two sides of a line instead of four or two calls,
the last partial word of a row visited by the same loop as the whole words),
and :func:`_site` (four photosites per row) is an ordinary call.  Until
2026-12-01 the kernel was declared ``parallel`` for a one-step ``prange``
(numba compiles such a body as a separate function, then the one way found to
vectorise the row loops); numba's parallel passes copied its whole IR over
and over: 40 s of CPU to compile on the project's 2-core machine against 13 s
now, for the same sums bit for bit.  The price: the candidate tests (a few
per cent of the photosites) run slower as plain code: the kernel takes up
to 1.4x as long on heavily textured frames, which made the whole ``rawmap
map`` command about 4 % slower (``bench_throughput.py``); the first run of a
new install saves the 27 s.  (Ordinary calls for the candidate tests instead of inlining cost
20-60 % per frame, see :func:`_candidate`.)
:func:`compiled` tells whether the cache holds it.

Neighbour rule used everywhere: the same-colour neighbours of photosite
(i, j) on a 2x2 mosaic are (i-2, j), (i+2, j), (i, j-2), (i, j+2); at the
border a missing neighbour is replaced by the one on the opposite side, so
every photosite has four same-colour neighbours (needs H, W >= 4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

__all__ = [
    "update_kernel",
    "residual_sample",
    "sorted_levels",
    "sorted_quantiles",
    "level_bins",
    "thumbnail",
    "merge_sorted",
    "lattice_median",
    "predictor_sums",
    "fold_warmup",
    "await_warmup",
    "compiled",
]


def compiled() -> bool:
    """Whether numba's cache holds a compiled :func:`update_kernel` for this source (else the first fold compiles it).

    Reads numba's cache index (internal API; when it cannot be read, the
    answer is True, so callers only announce a compilation they know of).
    """
    try:
        return bool(update_kernel._cache._cache_file._load_index())  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - another numba version's internals
        return True


_warmup_lock = threading.Lock()
_warmup: subprocess.Popen[bytes] | None = None


def _warm_args() -> tuple:
    """Arguments of :func:`update_kernel` for a blank 8 x 8 frame, typed as a new series' statistics are.

    The same numba types as :meth:`rawmap.accumulate.Accumulator.fold_band`
    passes for a series short enough for 32-bit sums (a test checks it).
    """
    h = w = 8

    def zeros(dtype):
        return np.zeros((h, w), dtype)

    return (
        zeros(np.uint16),
        0,
        h,
        np.zeros((2, 2), np.float32),
        np.int32(65535),
        np.zeros(h, np.bool_),
        np.float32(1.0),
        np.float32(1.0),
        np.float32(0.0),
        np.float32(36.0),
        np.float32(9.0),
        2,
        1,
        zeros(np.uint8),
        zeros(np.uint32),
        zeros(np.int32),
        zeros(np.uint16),
        zeros(np.uint16),
        zeros(np.float32),
        zeros(np.float32),
        zeros(np.float32),
        zeros(np.float32),
        np.empty(64, np.int64),
        np.float32(16.0),
        np.empty(256, np.int64),
    )


def _warm_fold() -> None:
    """Compile :func:`update_kernel` (into numba's cache) by folding a blank frame; the warm-up process runs this."""
    update_kernel(*_warm_args())


@contextmanager
def fold_warmup() -> Iterator[None]:
    """Compile :func:`update_kernel` in a process of its own while the body runs (a first run's idle core).

    A first run compiles the kernels that measure each frame, then the fold
    kernel, one after the other (numba compiles one function at a time in a
    process).  Started here, the fold kernel compiles on the other core
    meanwhile and lands in numba's cache; the first fold waits for it
    (:func:`await_warmup`) and loads it from there.  If the process cannot
    start or fails, the fold compiles the kernel itself, as without it.  At
    the end of the body a warm-up still running (the run ended before its
    first fold) is stopped.
    """
    global _warmup
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # this copy of rawmap, not another one on the path
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    try:
        proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", "from rawmap._kernels import _warm_fold; _warm_fold()"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:  # pragma: no cover - no process to spare: the fold compiles it
        proc = None
    with _warmup_lock:
        _warmup = proc
    try:
        yield
    finally:
        with _warmup_lock:
            if _warmup is not None:
                _warmup.terminate()
                _warmup.wait()
            _warmup = None


def await_warmup(timeout: float = 600.0) -> None:
    """Wait for a :func:`fold_warmup` process to finish compiling; return at once when there is none."""
    global _warmup
    if _warmup is None:
        return
    with _warmup_lock:
        if _warmup is None:
            return
        try:
            _warmup.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung compiler: compile here instead
            _warmup.kill()
            _warmup.wait()
        _warmup = None


@njit(inline="always")
def _up(i):
    return i - 2 if i >= 2 else i + 2


@njit(inline="always")
def _down(i, n):
    return i + 2 if i + 2 < n else i - 2


@njit(inline="always")
def _sum4(m, i, j, H, W):
    return np.int64(m[_up(i), j]) + np.int64(m[_down(i, H), j]) + np.int64(m[i, _up(j)]) + np.int64(m[i, _down(j, W)])


@njit(nogil=True)
def _pair(a, b, clip):
    """Two opposite same-colour neighbours, one of them clipped: the other stands in for it, as at the
    sensor's edge (a hot photosite's same-colour mate clipping in a long dark left both without that
    frame); both clipped: as they are (the frame does not count)."""
    if a >= clip and b < clip:
        return b, b
    if b >= clip and a < clip:
        return a, a
    return a, b


@njit(inline="always")
def _sub_clip(clip, stand_in):
    """The level from which :func:`_pair` stands one neighbour in for the other: ``clip`` in lens-cap
    darks (``stand_in``), where a clipped photosite is a hot one, never a highlight's edge; else a level
    no 16-bit value reaches."""
    return np.int64(clip) if stand_in else np.int64(1 << 20)


@njit(nogil=True)
def _sum4c(m, i, j, H, W, clip):
    """:func:`_sum4` with a clipped neighbour replaced by the opposite one (:func:`_pair`)."""
    a, b = _pair(m[_up(i), j], m[_down(i, H), j], clip)
    c, d = _pair(m[i, _up(j)], m[i, _down(j, W)], clip)
    return np.int64(a) + np.int64(b) + np.int64(c) + np.int64(d)


@njit(inline="always")
def _zsq(m, i, j, H, W, black2, noise_a, noise_b):
    """Squared residual of (i, j) in units of its expected noise."""
    s = _sum4(m, i, j, H, W)
    r = 4 * np.int64(m[i, j]) - s
    level = s * 0.25 - black2[i & 1, j & 1]
    if level < 0.0:
        level = 0.0
    var = noise_a + noise_b * level
    return (r * r) / var, r


@njit(inline="always")
def _isolated(m, i, j, H, W, black2, noise_a, noise_b, kadj2, max_adjacent, same_way, bright):
    """At most ``max_adjacent`` of the 4 adjacent photosites deviate by more than ``kadj2`` (squared
    sigmas); with ``same_way``, only those deviating the way (i, j) does (``bright``) count."""
    nadj = 0
    for k in range(4):  # above, below, left, right (a loop: the residual's code is compiled once)
        if k == 0:
            ii, jj, inside = i - 1, j, i > 0
        elif k == 1:
            ii, jj, inside = i + 1, j, i + 1 < H
        elif k == 2:
            ii, jj, inside = i, j - 1, j > 0
        else:
            ii, jj, inside = i, j + 1, j + 1 < W
        if inside:
            z2, r = _zsq(m, ii, jj, H, W, black2, noise_a, noise_b)
            if z2 > kadj2 and (not same_way or (r > 0) == bright):
                nadj += 1
    return nadj <= max_adjacent


@njit(inline="always")
def _shadow(m, i, j, H, W, r):
    """True when a same-colour neighbour deviates the other way than (i, j)'s residual ``r``, more strongly.

    A bright defect lowers the estimate of its four same-colour neighbours,
    which then look dark by a quarter of its excess: those are shadows, not
    defects (and the same holds the other way round for dark defects).
    """
    for k in range(4):
        if k == 0:
            ii, jj = _up(i), j
        elif k == 1:
            ii, jj = _down(i, H), j
        elif k == 2:
            ii, jj = i, _up(j)
        else:
            ii, jj = i, _down(j, W)
        rn = 4 * np.int64(m[ii, jj]) - _sum4(m, ii, jj, H, W)
        if (rn > 0) != (r > 0) and abs(rn) > abs(r):
            return True
    return False


@njit(inline="always")
def _line_lean(m, i, j, row_line, bright, kl2, black2, noise_a, noise_b, W, H):
    """Does (i, j) deviate across a column (row_line 0) or row (1) beyond the line threshold, same sign?"""
    v = np.int64(m[i, j])
    if row_line == 0:
        p = np.int64(m[i, _up(j)])
        q = np.int64(m[i, _down(j, W)])
    else:
        p = np.int64(m[_up(i), j])
        q = np.int64(m[_down(i, H), j])
    rr = 2 * v - p - q
    if (rr > 0) != bright:
        return False
    level = (p + q) * 0.5 - black2[i & 1, j & 1]
    if level < 0.0:
        level = 0.0
    return rr * rr > kl2 * 0.3 * (noise_a + noise_b * level)


@njit(inline="always")
def _line_shadow(m, i, j, row_line, H, W):
    """Is (i, j) the shadow of a defective line beside it (the neighbour across leans the other way, harder)?"""
    v = np.int64(m[i, j])
    if row_line == 0:
        r0 = 2 * v - np.int64(m[i, j - 2]) - np.int64(m[i, j + 2])
        n1 = 2 * np.int64(m[i, j - 2]) - np.int64(m[i, _up(j - 2)]) - v
        n2 = 2 * np.int64(m[i, j + 2]) - v - np.int64(m[i, _down(j + 2, W)])
    else:
        r0 = 2 * v - np.int64(m[i - 2, j]) - np.int64(m[i + 2, j])
        n1 = 2 * np.int64(m[i - 2, j]) - np.int64(m[_up(i - 2), j]) - v
        n2 = 2 * np.int64(m[i + 2, j]) - v - np.int64(m[_down(i + 2, H), j])
    for n in (n1, n2):
        if (n > 0) != (r0 > 0) and abs(n) > abs(r0):
            return True
    return False


#: :func:`_line_edge`: same-colour photosites along the line whose leans are weighed together (odd)
_EDGE_SPAN = 9
#: ... a neighbour across leaning against the line by less than this share of its lean is an edge's ...
_EDGE_SHARE = 0.15
#: ... when the shortfall is this many of its own standard errors along the line (Student's t, 8 df)
_EDGE_T = 3.0


@njit(inline="always")
def _line_edge(m, i, j, row_line, bright, H, W):
    """Does the lean of (i, j) across a line look like a scene edge's rather than a defective line's?

    Across a line offset by ``d`` the line's photosite leans ``2d`` and each
    of its same-colour neighbours across the line ``-d``: half as much, the
    other way.  At a step in the scene one of those neighbours leans as hard
    as the line's photosite or not at all, and at either end of a soft step
    neither leans.  So the lean is an edge's where, over the ``_EDGE_SPAN``
    same-colour photosites along the line around (i, j), a neighbour across
    leans the other way by less than ``_EDGE_SHARE`` of the line's lean, and
    that shortfall is steady along the line (``_EDGE_T`` standard errors of
    its spread there).  Neither a lone photosite's figures nor the frame's
    noise model (which a textured frame inflates 10-100 times) tell an edge
    from a faint line in noise: cut on them, a true column lost 6-56 % of
    its leans in developed frames.

    Developed images only (the kernel's ``isolate`` 0): their demosaicing
    and sharpening ring along hard edges, and three views of a scene with
    such an edge within two rows of one another made a row segment.  The
    kernel records such a lean as an edge's, and the view counts a line
    lean only where its frames showed more of them than of edges' leans
    (when the accumulator closes the view).
    """
    s = 1.0 if bright else -1.0
    lean = 0.0
    s1 = 0.0
    s2 = 0.0
    q1 = 0.0
    q2 = 0.0
    n = 0
    h = _EDGE_SPAN // 2
    for k in range(-h, h + 1):
        if row_line == 0:
            ii, jj = i + 2 * k, j
            if ii < 0 or ii >= H:
                continue
            v = float(m[ii, jj])
            a = float(m[ii, jj - 2])
            c = float(m[ii, jj + 2])
            b = float(m[ii, _up(jj - 2)])
            e = float(m[ii, _down(jj + 2, W)])
        else:
            ii, jj = i, j + 2 * k
            if jj < 0 or jj >= W:
                continue
            v = float(m[ii, jj])
            a = float(m[ii - 2, jj])
            c = float(m[ii + 2, jj])
            b = float(m[_up(ii - 2), jj])
            e = float(m[_down(ii + 2, H), jj])
        r = s * (2.0 * v - a - c)
        # each neighbour's lean against the line, less _EDGE_SHARE of the line's: below 0 at an edge
        u1 = -s * (2.0 * a - b - v) - _EDGE_SHARE * r
        u2 = -s * (2.0 * c - e - v) - _EDGE_SHARE * r
        lean += r
        s1 += u1
        s2 += u2
        q1 += u1 * u1
        q2 += u2 * u2
        n += 1
    if lean <= 0.0 or n < 3:
        return False
    for su, sq in ((s1, q1), (s2, q2)):
        if su < 0.0:
            var = max(sq - su * su / n, 0.0) / (n - 1)  # of one photosite's shortfall, along the line
            if su * su > _EDGE_T * _EDGE_T * n * var:  # (su / n)^2 > T^2 var / n
                return True
    return False


@njit(inline="always")
def _z2(rf, s, black, noise_a, noise_b):
    """Squared residual ``rf`` over the frame's noise variance at its neighbours' level (and that variance)."""
    level = max(np.float32(s) * np.float32(0.25) - black, np.float32(0.0))
    var = noise_a + noise_b * level
    return rf * rf / var, var


@njit(inline="always")
def _flags(z2, rh, rv, var, k2, kl2v):
    """Candidate bits of one photosite: 1 outlier, 2 leans across a column, 4 across a row."""
    fh = np.float32(rh)
    fv = np.float32(rv)
    return np.uint8(z2 > k2) | (np.uint8(fh * fh > kl2v) << 1) | (np.uint8(fv * fv > kl2v) << 2)


@njit(nogil=True)
def _site(
    m,
    i,
    j,
    H,
    W,
    iu,
    idn,
    ju,
    jd,
    clip,
    sub_clip,
    b0,
    x,
    noise_a,
    noise_b,
    k2,
    n_invalid,
    s_v,
    s_r,
    vmin,
    vmax,
    s_xr,
    s_xi,
    s_xxi,
    s_zz,
    frow,
):
    """General (slow-path) update of one photosite; writes its outlier bit into frow[j]."""
    v = m[i, j]
    frow[j] = 0
    if v < vmin[i, j]:
        vmin[i, j] = v
    if v > vmax[i, j]:
        vmax[i, j] = v
    a, b = _pair(m[iu, j], m[idn, j], sub_clip)
    cl, d = _pair(m[i, ju], m[i, jd], sub_clip)
    if a >= clip or b >= clip or cl >= clip or d >= clip:
        n_invalid[i, j] += 1
        s_xi[i, j] += x
        s_xxi[i, j] += x * x
        return
    s = np.int32(a) + np.int32(b) + np.int32(cl) + np.int32(d)
    r = 4 * np.int32(v) - s
    s_v[i, j] += v
    s_r[i, j] += r
    rf = np.float32(r)
    s_xr[i, j] += rf * x
    z2, _ = _z2(rf, s, b0, noise_a, noise_b)
    s_zz[i, j] += z2
    frow[j] = np.uint8(z2 > k2)


# numba's parallel passes, only the one that compiles the prange loop (the others find nothing
# to do here and cost compile time)
_PRANGE_ONLY = {
    "prange": True,
    "comprehension": False,
    "reduction": False,
    "inplace_binop": False,
    "setitem": False,
    "numpy": False,
    "stencil": False,
    "fusion": False,
}

_BYTE_LSB = np.uint64(0x0101010101010101)


@njit(inline="always")
def _candidate(
    m,
    i,
    j,
    fl,
    H,
    W,
    lines_here,
    black2,
    noise_a,
    noise_b,
    kl2,
    kadj2,
    max_adjacent,
    isolate,
    sub_clip,
    out_idx,
    cnt,
    cap,
    line_idx,
    lcnt,
    lcap,
):
    """The costly tests on one candidate (flags ``fl`` from :func:`_flags`); returns the new counts.

    Inlined with its helpers (one call site): as ordinary calls they made a
    frame 20-60 % slower, though they run on a few per cent of the
    photosites; a function of their own called once per row (inlining them
    there) was 1.1-1.2x slower than inlining them into the kernel.
    """
    if lines_here and (fl & 6) != 0 and 2 <= j < W - 2:
        for row_line in range(2):  # 0: leans across a column line, 1: across a row line
            if (fl & (2 << row_line)) == 0:
                continue
            if row_line == 0:  # the same-colour photosites above and below must lean too
                across = np.int64(m[i, j - 2]) + np.int64(m[i, j + 2])
                i1, j1, i2, j2 = i - 2, j, i + 2, j
            else:
                across = np.int64(m[i - 2, j]) + np.int64(m[i + 2, j])
                i1, j1, i2, j2 = i, j - 2, i, j + 2
            bright = 2 * np.int64(m[i, j]) - across > 0
            lean = True
            for side in range(2):  # both, the second tested only when the first leans
                ii, jj = (i1, j1) if side == 0 else (i2, j2)
                if not _line_lean(m, ii, jj, row_line, bright, kl2, black2, noise_a, noise_b, W, H):
                    lean = False
                    break
            if lean and not _line_shadow(m, i, j, row_line, H, W):
                code = (np.int64(i) * W + j) * 4 + 2 * row_line + (0 if bright else 1)
                if isolate == 0 and _line_edge(m, i, j, row_line, bright, H, W):
                    code = -code - 1  # an edge's lean: it counts against the view's leans there
                if lcnt < lcap:
                    line_idx[lcnt] = code
                lcnt += 1
    if (fl & 1) == 0:
        return cnt, lcnt
    r = 4 * np.int64(m[i, j]) - _sum4c(m, i, j, H, W, sub_clip)  # once, for the three tests below
    if _shadow(m, i, j, H, W, r):
        return cnt, lcnt
    if isolate > 0 and not _isolated(m, i, j, H, W, black2, noise_a, noise_b, kadj2, max_adjacent, isolate == 2, r > 0):
        return cnt, lcnt
    if cnt < cap:
        flat = np.int64(i) * W + j + 1
        out_idx[cnt] = flat if r > 0 else -flat
    return cnt + 1, lcnt


@njit(cache=True, nogil=True, error_model="numpy")
def update_kernel(
    m,  # (H, W) uint16 frame
    r0,  # int: first row of the band to fold
    r1,  # int: row after the last of the band
    black2,  # (2, 2) float32 black per pattern position
    clip,  # int: a neighbour at or above this is treated as clipped
    row_clipped,  # (H,) bool: row i-2..i+2 holds a clipped photosite
    x,  # float32: exposure x gain of this frame (s at ISO 100)
    noise_a,  # float32: residual variance at black (4v - sum4 units)
    noise_b,  # float32: residual variance slope per DN of level
    k2,  # float32: squared outlier threshold in sigmas
    kadj2,  # float32: squared threshold for "adjacent photosite also deviates"
    max_adjacent,  # int: a candidate with more deviating adjacent photosites is not isolated
    isolate,  # int: 0 no isolation test (developed images), 1 every deviating adjacent photosite counts,
    # 2 only those deviating the same way (lens-cap darks: no scene edges, and a hot cluster's members
    # darken their neighbours' estimates, which then deviate the other way)
    n_invalid,  # (H, W) uint16: frames in which both of two opposite neighbours were clipped
    s_v,  # (H, W) uint32: sum of values
    s_r,  # (H, W) int32 or int64: sum of residuals 4 v - sum4
    vmin,  # (H, W) uint16
    vmax,  # (H, W) uint16
    s_xr,  # (H, W) float32: sum of residual x exposure-gain
    s_xi,  # (H, W) float32: sum of exposure-gain over the frames counted in n_invalid
    s_xxi,  # (H, W) float32: ... of its square
    s_zz,  # (H, W) float32: sum of squared normalised residuals
    out_idx,  # (cap,) int64: accepted outliers, +(flat+1) bright, -(flat+1) dark
    kl2,  # float32: squared threshold of the line test
    line_idx,  # (lcap,) int64: line candidates, flat * 4 + 2 * (row line) + (dark); -(code + 1) an edge's
):
    """Fold rows ``r0:r1`` of one frame into the statistics; only those rows of the state are written.

    Bands of one frame may run on different threads at once, and so may
    different frames on different bands.  Returns the number of outliers and
    of line candidates found (either may exceed its buffer: overflow).
    """
    H, W = m.shape
    cap = out_idx.shape[0]
    lcap = line_idx.shape[0]
    # in lens-cap darks (isolate 2) one of two opposite clipped neighbours is stood in for by the other
    sub_clip = _sub_clip(clip, isolate == 2)
    # across-the-line residual 2v - (two neighbours across) has 0.3x the variance of 4v - sum4
    kl2v_scale = kl2 * np.float32(0.3)
    nwords = W // 8
    nall = nwords + (1 if W > nwords * 8 else 0)  # and a last partial word
    nblocks = (nall + 7) // 8  # blocks of 8 words: 64 photosites
    cnt = 0
    lcnt = 0
    # candidate bits per photosite of the row; np.empty(W) exactly: with another
    # length (or np.zeros) LLVM no longer vectorises the row loops below
    frow = np.empty(W, np.uint8)
    words = frow[: nwords * 8].view(np.uint64)
    # black per column, one row per row parity: one vector load in the row loops
    # (selecting b0/b1 by column parity costs the loop a dozen instructions per 8 sites)
    brows = np.empty((2, W), np.float32)
    for par in range(2):
        for j in range(W):
            brows[par, j] = black2[par, j & 1]
    f2 = np.float32(2.0)
    f4 = np.float32(4.0)
    two = np.uintp(2)
    for i in range(r0, r1):
        iu = _up(i)
        idn = _down(i, H)
        bk = brows[i & 1]
        for j in (0, 1, W - 2, W - 1):
            _site(
                m,
                i,
                j,
                H,
                W,
                iu,
                idn,
                _up(j),
                _down(j, W),
                clip,
                sub_clip,
                black2[i & 1, j & 1],
                x,
                noise_a,
                noise_b,
                k2,
                n_invalid,
                s_v,
                s_r,
                vmin,
                vmax,
                s_xr,
                s_xi,
                s_xxi,
                s_zz,
                frow,
            )
        mi = m[i]
        mu = m[iu]
        md = m[idn]
        svi = s_v[i]
        sri = s_r[i]
        vmini = vmin[i]
        vmaxi = vmax[i]
        sxri = s_xr[i]
        szzi = s_zz[i]
        lines_here = 2 <= i < H - 2
        # The residuals are computed in float32: every value is an integer below
        # 2**24 (4 x 65535 at most), so they are exact and equal to the integer
        # ones, and the loop runs on 8-lane vectors (numba widens int32 sums to
        # int64 lanes).
        if row_clipped[i]:
            # interior with clipping nearby: masked, still branch-free
            nii = n_invalid[i]
            sxii = s_xi[i]
            sxxii = s_xxi[i]
            xx = x * x
            for jj in range(2, W - 2):
                j = np.uintp(jj)  # unsigned: no negative-index wraparound, so LLVM vectorises the loop
                v = mi[j]
                vmini[j] = min(vmini[j], v)
                vmaxi[j] = max(vmaxi[j], v)
                a = mu[j]
                b = md[j]
                cl = mi[j - two]
                d = mi[j + two]
                # one of two opposite neighbours clipped: the other stands in for it (_pair)
                ca = a >= sub_clip
                cb = b >= sub_clip
                cc = cl >= sub_clip
                cd = d >= sub_clip
                a, b = (b if ca and not cb else a), (a if cb and not ca else b)
                cl, d = (d if cc and not cd else cl), (cl if cd and not cc else d)
                ok = max(max(a, b), max(cl, d)) < clip
                fv = np.float32(v)
                fa = np.float32(a)
                fb = np.float32(b)
                fc = np.float32(cl)
                fd = np.float32(d)
                s = (fa + fb) + (fc + fd)
                zero = np.float32(0.0)
                rf = (f4 * fv - s) if ok else zero
                rh = (f2 * fv - fc - fd) if ok else zero
                rv = (f2 * fv - fa - fb) if ok else zero
                nii[j] += 0 if ok else 1
                sxii[j] += zero if ok else x
                sxxii[j] += zero if ok else xx
                svi[j] += v if ok else 0
                sri[j] += np.int32(rf)
                sxri[j] += rf * x
                z2, var = _z2(rf, s, bk[j], noise_a, noise_b)
                szzi[j] += z2
                frow[j] = _flags(z2, rh, rv, var, k2, kl2v_scale * var)
        else:
            # fast path: interior, no clipping nearby, branch-free so it vectorises
            for jj in range(2, W - 2):
                j = np.uintp(jj)  # unsigned: no negative-index wraparound, so LLVM vectorises the loop
                v = mi[j]
                vmini[j] = min(vmini[j], v)
                vmaxi[j] = max(vmaxi[j], v)
                fv = np.float32(v)
                fa = np.float32(mu[j])
                fb = np.float32(md[j])
                fc = np.float32(mi[j - two])
                fd = np.float32(mi[j + two])
                s = (fa + fb) + (fc + fd)
                rf = f4 * fv - s
                rh = f2 * fv - fc - fd
                rv = f2 * fv - fa - fb
                svi[j] += v
                sri[j] += np.int32(rf)
                sxri[j] += rf * x
                z2, var = _z2(rf, s, bk[j], noise_a, noise_b)
                szzi[j] += z2
                frow[j] = _flags(z2, rh, rv, var, k2, kl2v_scale * var)
        # candidates are a few per cent of the row: skip 64 clear photosites at a time (one
        # test per eight 64-bit words; a test per word cost a quarter of the kernel's time),
        # then visit the candidates of a word by their bits, and apply the costly tests
        # (line, shadow, isolation) to them only; the photosites after the last whole
        # word are one more word (so the candidate tests are compiled in one place)
        tail = np.uint64(0)
        for j in range(nwords * 8, W):
            tail |= np.uint64(frow[j]) << np.uint64(8 * (j - nwords * 8))
        for blk in range(nblocks):
            w0 = blk * 8
            w1 = min(w0 + 8, nall)
            seen = np.uint64(0)
            for w in range(w0, min(w1, nwords)):
                seen |= words[w]
            if w1 > nwords:
                seen |= tail
            if seen == 0:
                continue
            for w in range(w0, w1):
                word = words[w] if w < nwords else tail
                # one bit per candidate byte (the flags use the low 3 bits of each byte)
                bits = (word | (word >> np.uint64(1)) | (word >> np.uint64(2))) & _BYTE_LSB
                while bits != 0:
                    j = w * 8 + (trailing_zeros(bits) >> 3)
                    bits &= bits - np.uint64(1)
                    cnt, lcnt = _candidate(
                        m,
                        i,
                        j,
                        frow[j],
                        H,
                        W,
                        lines_here,
                        black2,
                        noise_a,
                        noise_b,
                        kl2,
                        kadj2,
                        max_adjacent,
                        isolate,
                        sub_clip,
                        out_idx,
                        cnt,
                        cap,
                        line_idx,
                        lcnt,
                        lcap,
                    )
    return cnt, lcnt


@njit(cache=True, nogil=True)
def residual_sample(m, black2, clip, rows, col_step):
    """Residuals and levels on a subsample of rows, for the per-frame noise fit.

    Returns
    -------
    r : (N,) ndarray of float64
        ``4 v - sum4`` at sampled photosites whose neighbours are all below ``clip``.
    level : (N,) ndarray of float64
        Neighbour mean above black at the same photosites.
    code : (N,) ndarray of int64
        ``4 sum4 + 2 (row parity) + column parity``: what each level was
        computed from, so :func:`sorted_levels` can sort them by counting.
    """
    H, W = m.shape
    n = rows.shape[0] * ((W + col_step - 1) // col_step)
    r = np.empty(n, np.float64)
    lv = np.empty(n, np.float64)
    code = np.empty(n, np.int64)
    k = 0
    for ii in range(rows.shape[0]):
        i = rows[ii]
        for j in range(0, W, col_step):
            if (
                m[_up(i), j] >= clip
                or m[_down(i, H), j] >= clip
                or m[i, _up(j)] >= clip
                or m[i, _down(j, W)] >= clip
                or m[i, j] >= clip
            ):
                continue
            s = _sum4(m, i, j, H, W)
            r[k] = 4.0 * m[i, j] - s
            lv[k] = _level(s, black2, i & 1, j & 1)
            code[k] = 4 * s + 2 * (i & 1) + (j & 1)
            k += 1
    return r[:k], lv[:k], code[:k]


@njit(cache=True, nogil=True)
def strong_cold_scan(s_v, s_r, n_invalid, n_frames, black2, taken, cut, floor, out_idx):
    """Photosites whose summed signal is below ``cut`` of their neighbours' estimate (``rawmap.detect``).

    Per photosite, with ``n`` its valid frames and ``b`` its black level:
    ``est = (s_v - s_r / 4) - n b`` (the neighbours' signal), kept where
    ``est > n floor`` and ``s_v - n b < cut est`` and not ``taken``: the
    float64 arithmetic of the numpy expression it replaces, in its order.
    Writes flat indices (photosite order) and returns how many there are.
    """
    H, W = s_v.shape
    cap = out_idx.shape[0]
    k = 0
    for i in range(H):
        b0 = black2[i & 1, 0]
        b1 = black2[i & 1, 1]
        for j in range(W):
            if taken[i, j]:
                continue
            n = np.float64(n_frames - np.int64(n_invalid[i, j]))
            nb = n * (b0 if (j & 1) == 0 else b1)
            sv = np.float64(s_v[i, j])
            est = (sv - np.float64(s_r[i, j]) / 4.0) - nb
            if est > n * floor and (sv - nb) < cut * est:
                if k < cap:
                    out_idx[k] = i * W + j
                k += 1
    return k


@njit(cache=True, nogil=True)
def clipped_points(m, rows, clip, stand_in, out_idx, out_res):
    """Photosites at or above ``clip`` whose four same-colour neighbours are below it, in ``rows``
    (with ``stand_in``, in darks, one of two opposite ones clipped counts as the other, as in the
    sums: :func:`_sub_clip`, :func:`_pair`).

    Writes their flat indices (in photosite order) and residuals ``4 v - sum4``
    into the buffers and returns how many there are (more than the buffers
    hold: only that many were written).
    """
    H, W = m.shape
    cap = out_idx.shape[0]
    sub_clip = _sub_clip(clip, stand_in)
    k = 0
    for ii in range(rows.shape[0]):
        i = rows[ii]
        iu = _up(i)
        idn = _down(i, H)
        for j in range(W):
            if m[i, j] < clip:
                continue
            a, b = _pair(m[iu, j], m[idn, j], sub_clip)
            c, d = _pair(m[i, _up(j)], m[i, _down(j, W)], sub_clip)
            if a >= clip or b >= clip or c >= clip or d >= clip:
                continue
            if k < cap:
                out_idx[k] = i * W + j
                out_res[k] = 4.0 * m[i, j] - (np.float64(a) + b + c + d)
            k += 1
    return k


@njit(inline="always")
def _level(s, black2, pi, pj):
    """Neighbour mean above black of a photosite whose four neighbours sum to ``s``."""
    return s * 0.25 - black2[pi, pj]


@njit(cache=True, nogil=True)
def sorted_levels(code, black2):
    """The levels of :func:`residual_sample`, sorted (``np.sort(level)``, value for value).

    Counts the codes instead of comparing the values: four ascending runs,
    one per pattern position, merged.  Falls back to sorting when the codes
    span far more values than there are samples.

    Returns
    -------
    (N,) ndarray of float64
    """
    n = code.shape[0]
    out = np.empty(n, np.float64)
    if n == 0:
        return out
    lo = code.min() & ~np.int64(3)
    span = code.max() - lo + 1
    if span > 8 * n + (1 << 20):
        for k in range(n):
            c = code[k]
            out[k] = _level(c >> 2, black2, (c >> 1) & 1, c & 1)
        out.sort()
        return out
    hist = np.zeros(span, np.int32)
    for k in range(n):
        hist[code[k] - lo] += 1
    nsum = span >> 2 if span & 3 == 0 else (span >> 2) + 1
    pos = np.zeros(4, np.int64)  # per pattern position: index of the next sum to emit
    for p in range(4):
        pos[p] = _next_counted(hist, p, 0, nsum)
    k = 0
    while k < n:
        best = -1
        bv = 0.0
        for p in range(4):
            if pos[p] < nsum:
                v = _level((lo >> 2) + pos[p], black2, p >> 1, p & 1)
                if best < 0 or v < bv:
                    best = p
                    bv = v
        c = hist[4 * pos[best] + best]
        for _ in range(c):
            out[k] = bv
            k += 1
        pos[best] = _next_counted(hist, best, pos[best] + 1, nsum)
    return out


@njit(inline="always")
def _next_counted(hist, p, s, nsum):
    """First sum index from ``s`` on whose code at pattern position ``p`` was counted (``nsum``: none)."""
    while s < nsum and (4 * s + p >= hist.shape[0] or hist[4 * s + p] == 0):
        s += 1
    return s


@njit(cache=True, nogil=True)
def sorted_quantiles(a, qs):
    """``np.quantile(a, qs)`` (numpy's default, 'linear') of an already sorted array.

    Returns
    -------
    (len(qs),) ndarray of float64
    """
    n = a.shape[0]
    out = np.empty(qs.shape[0], np.float64)
    for k in range(qs.shape[0]):
        vi = (n - 1) * qs[k]
        prev = int(np.floor(vi))
        if prev >= n - 1:
            out[k] = a[n - 1]
        else:
            out[k] = _lerp_q(a[prev], a[prev + 1], vi, prev)
    return out


@njit(cache=True, nogil=True)
def thumbnail(m):
    """Means of 8 x 8 blocks of every 4th photosite of every 4th row (``float32``).

    The same numbers as numpy's ``m[::4, ::4]`` cut to whole blocks and
    ``mean(axis=(1, 3), dtype=float32)``: the 64 values are integers whose
    sum is exact in float32, and dividing by 64 is exact.

    Returns
    -------
    (h // 32, w // 32) ndarray of float32
        ``h, w`` rounded up to whole steps of 4 first (as the slice does).
    """
    H, W = m.shape
    th = ((H + 3) // 4) // 8
    tw = ((W + 3) // 4) // 8
    out = np.zeros((th, tw), np.float32)
    acc = np.zeros(tw, np.int64)
    for a in range(th):
        acc[:] = 0
        for k in range(8):
            row = m[32 * a + 4 * k]
            for b in range(tw):
                t = np.int64(0)
                for c in range(8):
                    t += row[32 * b + 4 * c]
                acc[b] += t
        for b in range(tw):
            out[a, b] = np.float32(acc[b]) / np.float32(64.0)
    return out


@njit(cache=True, nogil=True)
def merge_sorted(k1, v1, k2, v2, use_min):
    """Union of two sorted unique key arrays with their values, in one linear pass.

    Values of keys in both are added (``use_min`` False) or the smaller is
    kept, NaN meaning unknown (``use_min`` True).  Values take ``v1``'s dtype.

    Returns
    -------
    keys : (N,) ndarray
    values : (N,) ndarray
    """
    n1 = k1.shape[0]
    n2 = k2.shape[0]
    keys = np.empty(n1 + n2, k1.dtype)
    vals = np.empty(n1 + n2, v1.dtype)
    i = 0
    j = 0
    n = 0
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and k1[i] < k2[j]):
            keys[n] = k1[i]
            vals[n] = v1[i]
            i += 1
        elif i >= n1 or k2[j] < k1[i]:
            keys[n] = k2[j]
            vals[n] = v2[j]
            j += 1
        else:
            keys[n] = k1[i]
            if use_min:
                a = v1[i]
                b = v2[j]
                vals[n] = b if a != a else (a if b != b else min(a, b))
            else:
                vals[n] = v1[i] + v2[j]
            i += 1
            j += 1
        n += 1
    return keys[:n].copy(), vals[:n].copy()


@njit
def _select(a, k):
    """Partition ``a`` in place around its k-th smallest value and return it (3-way quickselect).

    Residuals are integers with many repeats; three-way partitions keep the
    selection linear with them.  Afterwards ``a[:k] <= a[k] <= a[k+1:]``.
    """
    lo = 0
    hi = a.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        lt = lo
        i = lo
        gt = hi
        while i <= gt:
            v = a[i]
            if v < pivot:
                a[i] = a[lt]
                a[lt] = v
                lt += 1
                i += 1
            elif v > pivot:
                a[i] = a[gt]
                a[gt] = v
                gt -= 1
            else:
                i += 1
        if k < lt:
            hi = lt - 1
        elif k > gt:
            lo = gt + 1
        else:
            return a[k]
    return a[k]


@njit
def _median(a):
    """numpy's median of a 1-D float array (mean of the two middle values when even)."""
    n = a.shape[0]
    p = a.copy()
    hi = _select(p, n // 2)
    if n % 2:
        return hi
    return (p[: n // 2].max() + hi) / 2.0


@njit(cache=True, nogil=True, parallel=_PRANGE_ONLY)  # type: ignore[call-overload]  # numba takes a dict of passes
def lattice_median(part, rows, step, out):
    """Median of each photosite's 24 neighbours on a 5 x 5 lattice of pitch ``step`` (numpy's median of 24).

    Keeps the 13 smallest values seen in an insertion-sorted buffer (1.2x
    faster than a quickselect of all 24, 2x faster than sorting them);
    rows run in parallel.

    Parameters
    ----------
    part : (rows + 4 step, W + 4 step) ndarray of float32
        The rows to answer with a halo of ``2 step`` on every side.
    rows : int
    step : int
        1 (every neighbour) or 2 (same colour on a 2 x 2 mosaic).
    out : (rows, W) ndarray of float32
        Written in place.
    """
    W = out.shape[1]
    halo = 2 * step
    for i in prange(rows):
        buf = np.empty(13, np.float32)
        for j in range(W):
            n = 0
            for dr in range(-2, 3):
                for dc in range(-2, 3):
                    if dr == 0 and dc == 0:
                        continue
                    v = part[i + halo + dr * step, j + halo + dc * step]
                    if n < 13:
                        k = n
                        n += 1
                    elif v < buf[12]:
                        k = 12
                    else:
                        continue
                    while k > 0 and buf[k - 1] > v:
                        buf[k] = buf[k - 1]
                        k -= 1
                    buf[k] = v
            out[i, j] = (buf[11] + buf[12]) / np.float32(2.0)


@njit
def _quantile(a, q):
    """numpy's default ('linear') quantile of a 1-D float array."""
    n = a.shape[0]
    vi = (n - 1) * q
    prev = int(np.floor(vi))
    if prev >= n - 1:
        return a.max()
    p = a.copy()
    lo = _select(p, prev)
    return _lerp_q(lo, p[prev + 1 :].min(), vi, prev)


@njit
def _lerp_q(lo, hi, vi, prev):
    """numpy's 'linear' interpolation between two order statistics."""
    t = vi - prev
    diff = hi - lo
    if t >= 0.5:
        return hi - diff * (1 - t)
    return lo + diff * t


@njit
def _kth(hist, k):
    """Index of the k-th smallest (0-based) element counted in ``hist``."""
    c = 0
    for i in range(hist.shape[0]):
        c += hist[i]
        if c > k:
            return i
    return hist.shape[0] - 1


@njit
def _median_spread(rb):
    """numpy's ``median(rb)`` and ``quantile(abs(rb - median), 0.25)`` for integer-valued ``rb``.

    Counts the values instead of selecting them (the residuals are integers
    with many repeats: a few thousand distinct values per bin); falls back to
    selection for non-integers or a range much wider than the sample.
    """
    n = rb.shape[0]
    lo = rb.min()
    span = rb.max() - lo
    integral = span <= 4 * n + 1024
    if integral:
        for v in rb:
            if v != np.floor(v):
                integral = False
                break
    if not integral:
        med = _median(rb)
        return med, _quantile(np.abs(rb - med), 0.25)
    hist = np.zeros(int(span) + 1, np.int64)
    for v in rb:
        hist[int(v - lo)] += 1
    upper = _kth(hist, n // 2) + lo
    med = upper if n % 2 else (_kth(hist, n // 2 - 1) + lo + upper) / 2.0
    # |rb - med| doubled is an integer (med is whole or half)
    hist2 = np.zeros(2 * (int(span) + 1) + 1, np.int64)
    for v in rb:
        hist2[int(2.0 * abs(v - med))] += 1
    vi = (n - 1) * 0.25
    prev = int(np.floor(vi))
    if prev >= n - 1:
        return med, _kth(hist2, n - 1) / 2.0
    return med, _lerp_q(_kth(hist2, prev) / 2.0, _kth(hist2, prev + 1) / 2.0, vi, prev)


@njit(cache=True, nogil=True)
def level_bins(r, lv, lv_sorted, edges, min_count):
    """Per level bin of the noise sample: count, median level, lower quartile of |r - median r|.

    The same numbers as numpy's ``searchsorted``, ``median`` and
    ``quantile`` on each bin (bin b holds ``edges[b] <= lv < edges[b + 1]``,
    the last one closed), without a dozen numpy calls per bin.  Bins with
    fewer than ``min_count`` samples get NaN statistics.

    Parameters
    ----------
    r, lv : (N,) ndarray of float64
        Residuals and their levels.
    lv_sorted : (N,) ndarray of float64
        ``lv`` sorted: the bins are runs of it, so their medians are read off.
    edges : (nb + 1,) ndarray of float64

    Returns
    -------
    counts : (nb,) ndarray of int64
    level : (nb,) ndarray of float64
    q25 : (nb,) ndarray of float64
    """
    nb = edges.shape[0] - 1
    n = r.shape[0]
    idx = np.empty(n, np.int64)
    counts = np.zeros(nb, np.int64)
    for i in range(n):
        x = lv[i]
        above = 0
        for e in range(nb + 1):  # searchsorted(edges, x, side="right"), branch-free
            above += edges[e] <= x
        b = min(max(above - 1, 0), nb - 1)
        idx[i] = b
        counts[b] += 1
    start = np.zeros(nb + 1, np.int64)
    for b in range(nb):
        start[b + 1] = start[b] + counts[b]
    fill = start[:nb].copy()
    rs = np.empty(n, np.float64)
    for i in range(n):  # group by bin, keeping the order
        b = idx[i]
        rs[fill[b]] = r[i]
        fill[b] += 1
    level = np.full(nb, np.nan)
    q25 = np.full(nb, np.nan)
    for b in range(nb):
        c = counts[b]
        if c < min_count:
            continue
        q25[b] = _median_spread(rs[start[b] : start[b + 1]])[1]
        # the bin index never decreases with the level: bin b is lv_sorted[start[b]:start[b + 1]]
        hi = lv_sorted[start[b] + c // 2]
        level[b] = hi if c % 2 else (lv_sorted[start[b] + c // 2 - 1] + hi) / 2.0
    return counts, level, q25


@njit(cache=True, nogil=True)
def predictor_sums(values, flagged, sites, offsets, same8, pairs, saturated, trim, anisotropy, n_classes, window, flat):
    """Sums of the repair predictor's normal equations over training sites, per structure class.

    One pass over the sites of one pattern position (``rawmap.repair._fit_position``):
    a site trains when its 48 stencil neighbours and itself are unflagged and
    below ``saturated``, and it lies within ``trim`` x the range of its 8
    same-colour neighbours beyond that range (impulses out).  Its class is
    the direction of least mean same-colour gradient (H, V, D1, D2; the 9
    pairs of flat offsets of ``pairs[k]``), or ``n_classes - 2`` (isotropic)
    when the largest is at most ``anisotropy`` x the least, or
    ``n_classes - 1`` (flat) when every gradient is at most ``flat[3]`` x
    the noise sigma at the level of the ``window`` neighbours
    (``sqrt(flat[0] + flat[1] x (mean - flat[2]))``; never when ``flat[3]``
    is 0).  Every product
    is of integers below 2**32 and every sum stays below 2**53, so the sums
    are exact whatever their order: the same as numpy's ``einsum`` over the
    gathered features.

    Parameters
    ----------
    values : (P,) ndarray of uint16
        The padded mosaic, flattened.
    flagged : (P,) ndarray of bool
        Flagged photosites and the border.
    sites : (N,) ndarray of int64
        Flat indices of the candidate training sites.
    offsets : (K,) ndarray of int64
        Flat offsets of the stencil neighbours.
    same8 : (8,) ndarray of int64
        Positions in ``offsets`` of the 8 same-colour neighbours.
    pairs : (4, 9, 2) ndarray of int64
        Flat offsets of each direction's gradient pairs.
    window : (M,) ndarray of int64
        Positions in ``offsets`` whose mean is the site's level.
    flat : (4,) ndarray of float64
        Read-noise variance, shot-noise slope, black level (DN) and the
        flat class's bound in noise sigmas (0: no flat class).

    Returns
    -------
    grams : (C, K+1, K+1) ndarray of float64
        ``[a a^T, a; a^T, n]`` summed per class (a: the site's features).
    rhss : (C, K+1) ndarray of float64
        ``[a b, b]`` summed per class (b: the site's value).
    counts : (C,) ndarray of int64
    """
    k = offsets.size
    grams = np.zeros((n_classes, k + 1, k + 1))
    rhss = np.zeros((n_classes, k + 1))
    counts = np.zeros(n_classes, np.int64)
    f = np.empty(k + 1)
    grad = np.empty(4)
    # each class's sites are added four at a time: one pass over the class's square per four
    # sites instead of one per site (the square's loads and stores, not the products, bound it)
    block = np.empty((n_classes, 4, k + 2))
    held = np.zeros(n_classes, np.int64)
    for s in range(sites.size):
        j = sites[s]
        if flagged[j] or values[j] >= saturated:
            continue
        ok = True
        for q in range(k):
            jq = j + offsets[q]
            if flagged[jq] or values[jq] >= saturated:
                ok = False
                break
            f[q] = values[jq]
        if not ok:
            continue
        f[k] = 1.0
        b = float(values[j])
        lo = f[same8[0]]
        hi = lo
        for q in range(1, 8):
            v = f[same8[q]]
            lo = min(lo, v)
            hi = max(hi, v)
        span = hi - lo
        if b < lo - trim * span or b > hi + trim * span:
            continue
        for d in range(4):
            t = 0.0
            for p in range(pairs.shape[1]):
                t += abs(float(values[j + pairs[d, p, 0]]) - float(values[j + pairs[d, p, 1]]))
            grad[d] = t / pairs.shape[1]
        best = 0
        for d in range(1, 4):
            if grad[d] < grad[best]:
                best = d
        gmax = grad[0]
        for d in range(1, 4):
            gmax = max(gmax, grad[d])
        c = n_classes - 2 if gmax <= anisotropy * grad[best] else best
        if flat[3] > 0.0:
            level = 0.0
            for q in range(window.size):
                level += f[window[q]]
            level = max(level / window.size - flat[2], 0.0)
            if gmax <= flat[3] * np.sqrt(flat[0] + flat[1] * level):
                c = n_classes - 1
        counts[c] += 1
        m = held[c]
        for q in range(k + 1):
            block[c, m, q] = f[q]
        block[c, m, k + 1] = b
        m += 1
        if m == 4:
            f0, f1, f2, f3 = block[c, 0], block[c, 1], block[c, 2], block[c, 3]
            g = grams[c]
            for q in range(k + 1):  # the whole square, not the triangle: a contiguous inner loop vectorises
                a0, a1, a2, a3 = f0[q], f1[q], f2[q], f3[q]
                gq = g[q]
                for r in range(k + 1):
                    gq[r] += (a0 * f0[r] + a1 * f1[r]) + (a2 * f2[r] + a3 * f3[r])
                rhss[c, q] += (a0 * f0[k + 1] + a1 * f1[k + 1]) + (a2 * f2[k + 1] + a3 * f3[k + 1])
            m = 0
        held[c] = m
    for c in range(n_classes):  # the last sites of each class, one at a time
        g = grams[c]
        for i in range(held[c]):
            fi = block[c, i]
            for q in range(k + 1):
                fq = fi[q]
                gq = g[q]
                for r in range(k + 1):
                    gq[r] += fq * fi[r]
                rhss[c, q] += fq * fi[k + 1]
    return grams, rhss, counts
