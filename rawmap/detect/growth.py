"""Hot photosites of a one-view series whose exposure varied while the picture did not.

A timelapse shot in aperture priority at sunset, or a static view on a
tripod whose exposure went up as the light went down, is one view: its
static detail is never evidence, so the rules that count views
find no hot photosite in it.  Yet there the scene and a hot photosite can
be told apart within the view: the scene's part of a photosite's residual
follows the picture's brightness, a hot photosite's excess follows the
exposure (dark current x time x gain).  Per photosite, the residual
``r = 4 v - sum4`` is taken as ``g m + b x`` over the frames (``m`` the
frame's brightness at the photosite's position of the pattern,
:attr:`~rawmap.accumulate.FrameRecord.level`; ``x`` = exposure x ISO/100),
solved from the sums the accumulator keeps (``s_r`` and ``s_xr``: the
model summed, and summed times ``x``).  Where the brightness went with the
exposure (a bracket) the two cannot be told apart and the rule does not
run.

A photosite is hot here when its slope ``b`` stands out of the slopes
around it (robust local sigmas, :attr:`ClassifyParams.growth_sigma`), it
ends brighter than its neighbours, its range over the frames is what that
growth and noise give (not a scene point jumping between two values), and
it is alone: its same-colour and adjacent photosites neither grow with it
(two adjacent ones may, a cluster) nor move in the scene.  A view that
drifts or shakes moves its fine detail, and detail moving in or out of a
photosite shifts its residual either way; so the rule also counts the
photosites that pass it with the sign turned (*decoys*: detail leaving,
no defect does that) and does not run where more than
:attr:`ClassifyParams.growth_max_decoys` of the sensor pass at
:attr:`ClassifyParams.growth_guard_sigma`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..accumulate import Accumulator
from ..defectmap import DefectKind
from ..frame import SourceKind
from .series import _sample_index, _Series, _temporal_read_noise

#: photosites of a block of the local spread (16 x 16: 8 x 8 of each colour position)
_BLOCK = 16
#: rows per band (a multiple of the block)
_BAND = 512
_ADJACENT = ((-1, 0), (1, 0), (0, -1), (0, 1))
_SAME = ((-2, 0), (2, 0), (0, -2), (0, 2), (-2, -2), (-2, 2), (2, -2), (2, 2))
#: every photosite within two steps
_AROUND = tuple((a, b) for a in range(-2, 3) for b in range(-2, 3) if (a, b) != (0, 0))


@dataclass(frozen=True)
class _Model:
    """The series-wide figures of the fit (one entry per position of the 2 x 2 pattern where indexed)."""

    sm: np.ndarray  #: (4,) sum of the frames' brightness
    smx: np.ndarray  #: (4,) ... times x
    den: np.ndarray  #: (4,) sm * sum(x^2) - smx * sum(x)
    m_end: np.ndarray  #: (4,) brightness of the frame of the largest x
    spread: np.ndarray  #: (4,) (largest - smallest brightness) / mean brightness
    sx: float
    x_end: float
    x_range: float


def _model(ser: _Series) -> _Model | None:
    """The fit's figures, or None where the rule does not apply (see the module docstring)."""
    acc, p = ser.acc, ser.p
    frames = acc.frames
    if acc.source is SourceKind.IMAGE or len(frames) < p.growth_min_frames or len(frames) != acc.n_frames:
        return None
    if any(f.kind != "photo" or f.level is None or len(f.level) != 4 for f in frames):
        return None
    if len({f.scene for f in frames}) != 1:
        return None
    x = np.array([f.x for f in frames], float)
    if not (x.min() > 0 and x.max() >= p.growth_x_spread * x.min()):
        return None
    m = np.array([f.level for f in frames], float)  # (frames, 4)
    sm, smx = m.sum(axis=0), (m * x[:, None]).sum(axis=0)
    sx, sxx = float(x.sum()), float((x * x).sum())
    den = sm * sxx - smx * sx
    # brightness tied to the exposure (a bracket): the scene's share and the dark current cannot be told apart
    if not (sm.min() > 0 and bool(np.all(den >= p.growth_min_independence * sm * sxx))):
        return None
    end = int(np.argmax(x))
    return _Model(
        sm=sm,
        smx=smx,
        den=den,
        m_end=m[end],
        spread=(m.max(axis=0) - m.min(axis=0)) / (sm / len(frames)),
        sx=sx,
        x_end=float(x[end]),
        x_range=float(x.max() - x.min()),
    )


def _slope(acc: Accumulator, mod: _Model, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows a..b-1: the growth slope ``b`` (residual units per unit of x) and the residual in the frame
    of the largest x, both (b - a, W) float64."""
    s_r = acc.s_r[a:b].astype(np.float64)
    s_xr = acc.s_xr[a:b].astype(np.float64)
    beta = np.empty_like(s_r)
    end = np.empty_like(s_r)
    for k in range(4):
        dy, dx = divmod(k, 2)
        i0 = (dy - a) & 1
        sr, sxr = s_r[i0::2, dx::2], s_xr[i0::2, dx::2]
        bk = (mod.sm[k] * sxr - mod.smx[k] * sr) / mod.den[k]
        beta[i0::2, dx::2] = bk
        end[i0::2, dx::2] = (sr - bk * mod.sx) * (mod.m_end[k] / mod.sm[k]) + bk * mod.x_end
    return beta, end


def _local_spread(acc: Accumulator, mod: _Model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per position of the pattern, the median slope of each block and the largest robust sigma of
    the block and its 8 neighbours ((blocks down, blocks across) grids).

    Blocks at the sensor's right and bottom edges are filled out by
    repeating their last photosites (their median and spread barely move).
    """
    H, W = acc.shape
    gh, gw = -(-H // _BLOCK), -(-W // _BLOCK)
    med = [np.zeros((gh, gw)) for _ in range(4)]
    sig = [np.zeros((gh, gw)) for _ in range(4)]
    half = _BLOCK // 2
    n = half * half
    for a in range(0, H, _BAND):
        b = min(H, a + _BAND)
        beta, _ = _slope(acc, mod, a, b)
        for k in range(4):
            dy, dx = divmod(k, 2)
            pl = beta[dy::2, dx::2]
            h, w = pl.shape
            hb, wb = -(-h // half), -(-w // half)
            pad = np.pad(pl, ((0, hb * half - h), (0, wb * half - w)), mode="edge")
            blk = pad.reshape(hb, half, wb, half).transpose(0, 2, 1, 3).reshape(hb, wb, n)
            m_ = np.partition(blk, n // 2, axis=2)[:, :, n // 2]
            dev = np.abs(blk - m_[:, :, None])
            g0 = a // _BLOCK
            med[k][g0 : g0 + hb, :wb] = m_
            sig[k][g0 : g0 + hb, :wb] = 1.4826 * np.partition(dev, n // 2, axis=2)[:, :, n // 2]
    out = []
    for s_ in sig:
        pad = np.pad(s_, 1, mode="edge")
        out.append(
            np.max([pad[1 + i : 1 + i + gh, 1 + j : 1 + j + gw] for i in (-1, 0, 1) for j in (-1, 0, 1)], axis=0)
        )
    return med, out


def _noise_range(ser: _Series) -> tuple[np.ndarray, np.ndarray] | None:
    """A static photosite's range over the frames by its neighbours' level: the lower quartile of the
    sampled photosites' ranges in 16 level bins ((centres, ranges), DN)."""
    acc = ser.acc
    H, W = acc.shape
    sr, sc = _sample_index(H, W, 100_000)
    ok = (acc.n_invalid[sr, sc] == 0) & (acc.vmax[sr, sc] < acc.clip)
    sr, sc = sr[ok], sc[ok]
    if sr.size < 1000:
        return None
    level = _level(ser, sr, sc)
    rng = acc.vmax[sr, sc].astype(np.float64) - acc.vmin[sr, sc]
    edges = np.quantile(level, np.linspace(0, 1, 17))
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, 15)
    centres, ranges = [], []
    for i in range(16):
        sel = idx == i
        if sel.sum() >= 50:
            centres.append(float(np.median(level[sel])))
            ranges.append(float(np.quantile(rng[sel], 0.25)))
    if len(centres) < 2:
        return None
    return np.array(centres), np.array(ranges)


def _level(ser: _Series, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The same-colour neighbours' mean level above black over the frames (DN)."""
    acc = ser.acc
    n = np.maximum(acc.valid_counts((r, c)), 1).astype(np.float64)
    s4 = 4.0 * acc.s_v[r, c].astype(np.float64) - acc.s_r[r, c]
    return s4 / (4.0 * n) - ser.black_at(r, c)


def _zmap(beta: np.ndarray, lo: int, grids: tuple[list[np.ndarray], list[np.ndarray]]) -> np.ndarray:
    """Rows ``lo``.. of the slope in local robust sigmas: (slope - its block's median) / the spread
    (:func:`_local_spread`); 0 where the spread is 0."""
    h, W = beta.shape
    z = np.zeros_like(beta)
    half = _BLOCK // 2
    for k in range(4):
        dy, dx = divmod(k, 2)
        i0 = (dy - lo) & 1
        gi = ((lo + i0) // 2 + np.arange(len(range(i0, h, 2)))) // half
        gj = np.arange(len(range(dx, W, 2))) // half
        med = grids[0][k][np.ix_(gi, gj)]
        sig = grids[1][k][np.ix_(gi, gj)]
        with np.errstate(all="ignore"):
            zk = (beta[i0::2, dx::2] - med) / sig
        z[i0::2, dx::2] = np.where(np.isfinite(zk), zk, 0.0)
    return z


_OFF = np.array(_AROUND)
_SAME_AT = [_AROUND.index(o) for o in _SAME]
_ADJACENT_AT = [_AROUND.index(o) for o in _ADJACENT]
#: the four same-colour neighbours whose sum the residual is taken against
_SUM4_AT = [_AROUND.index(o) for o in ((-2, 0), (2, 0), (0, -2), (0, 2))]


def _pass(
    ser: _Series,
    mod: _Model,
    grids: tuple[list[np.ndarray], list[np.ndarray]],
    noise: tuple[np.ndarray, np.ndarray],
    sig_pix: tuple[float, float],
    a: int,
    b: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Rows a..b-1: the photosites that pass (rows, cols, slopes, local sigmas) and the decoys counted.

    Only the photosites whose slope is out by the lower of the two
    thresholds are looked at further, with their 24 neighbours (edges
    repeated).
    """
    acc, p = ser.acc, ser.p
    H, W = acc.shape
    lo, hi = max(0, a - 2), min(H, b + 2)
    beta, r_end = _slope(acc, mod, lo, hi)
    z = _zmap(beta, lo, grids)
    core = slice(a - lo, b - lo)
    low = min(p.growth_sigma, p.growth_guard_sigma)
    cand = (np.abs(z[core]) >= low) & (acc.n_invalid[a:b] == 0) & (acc.vmax[a:b] < acc.clip)
    r, c = np.nonzero(cand)
    empty = np.zeros(0, np.int64)
    if r.size == 0:
        return empty, empty, np.zeros(0), np.zeros(0), 0
    r = r + a
    zc, bc, ec = z[r - lo, c], beta[r - lo, c], r_end[r - lo, c]
    rn = np.clip(r[:, None] + _OFF[:, 0], 0, H - 1)
    cn = np.clip(c[:, None] + _OFF[:, 1], 0, W - 1)
    zn = z[rn - lo, cn]

    def still_range(rr, cc):
        level = _level(ser, rr, cc)
        rng = acc.vmax[rr, cc].astype(np.float64) - acc.vmin[rr, cc]
        k = 2 * (rr & 1) + (cc & 1)
        still = rng <= np.abs(level) * mod.spread[k] * p.growth_light_margin + p.growth_still * np.interp(level, *noise)
        return level, rng, still

    level, rng, _ = still_range(r, c)
    _, _, still_n = still_range(rn, cn)
    sigma = np.sqrt(sig_pix[0] ** 2 + sig_pix[1] * np.maximum(level, 0.0))
    out = []
    for sign, thr in ((1.0, p.growth_sigma), (-1.0, p.growth_guard_sigma)):
        near = sign * zn >= thr / 2
        grows = np.maximum(sign * bc, 0.0) * mod.x_range / 4.0
        ok = (sign * zc >= thr) & (sign * ec > 0) & (rng <= p.growth_range * (grows + 6.0 * sigma))
        ok &= (near[:, _SAME_AT].sum(axis=1) <= 1) & (near[:, _ADJACENT_AT].sum(axis=1) <= 2)
        # the four photosites the residual is taken against stay still (a glint beside it, shaken, moves
        # its residual either way)
        ok &= still_n[:, _SUM4_AT].all(axis=1)
        if sign > 0:  # decoys may have any other photosite around move: they measure how much the view moved
            ok &= ~ser.taken[r, c]
            ok &= (~still_n & ~near).sum(axis=1) <= p.growth_moving
        out.append(ok)
    keep = out[0]
    return r[keep], c[keep], bc[keep], zc[keep], int(out[1].sum())


def _growth(ser: _Series) -> None:
    """Flag the hot photosites of a one-view series found by their growth with exposure (module docstring).

    Adds to ``ser.found`` and ``ser.taken`` in place; the flat indices go
    to ``ser.grown`` too (each was shown by the one view), and what the
    test did to ``ser.growth`` (``"ran"``, or ``"moved"`` when the decoys
    stopped it).
    """
    acc = ser.acc
    mod = _model(ser)
    if mod is None:
        return
    noise = _noise_range(ser)
    read = _temporal_read_noise(acc)
    if noise is None or not math.isfinite(read):
        return
    shot = float(np.mean([f.noise_b for f in acc.frames])) / 20.0
    grids = _local_spread(acc, mod)
    H, W = acc.shape
    found_r, found_c, found_b, found_z = [], [], [], []
    decoys = 0
    for a in range(0, H, _BAND):
        r_, c_, b_, z_, d_ = _pass(ser, mod, grids, noise, (read, max(shot, 0.0)), a, min(H, a + _BAND))
        found_r.append(r_)
        found_c.append(c_)
        found_b.append(b_)
        found_z.append(z_)
        decoys += d_
    if decoys > max(1.0, ser.p.growth_max_decoys * H * W):
        ser.growth = "moved"
        return
    ser.growth = "ran"
    r = np.concatenate(found_r)
    c = np.concatenate(found_c)
    if r.size == 0:
        return
    ser.found.add(r, c, DefectKind.HOT, np.concatenate(found_z), np.concatenate(found_b) / 4.0)
    ser.taken[r, c] = True
    ser.grown = np.union1d(ser.grown, r * W + c)
