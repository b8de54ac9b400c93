"""Synthetic scenes at the photosite grid (:func:`render_scene`).

Linear RGB irradiance of a procedural scene: "landscape", "flat", "night",
"glints", "indoor", "edges" (buildings with straight edges on photosite
boundaries), "texture" (1/f natural texture with sharp grass blades) and
"dark" (a lens-cap dark).  Pure numpy in float32, rendered in row strips so
that every temporary stays a few MB even at 24 MP; :func:`_shift` moves a
rendered scene by a sub-pixel amount (the jitter of a burst).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .defects import BORDER
from .sensor import SensorSpec

__all__ = ["SCENE_KINDS", "render_scene"]

#: Scene kinds :func:`render_scene` knows.
SCENE_KINDS = ("landscape", "flat", "night", "glints", "indoor", "edges", "texture", "dark")

_F32 = np.float32


# ---------------------------------------------------------------------------
# image helpers (float32, pure numpy, row strips to keep temporaries small)
# ---------------------------------------------------------------------------

#: Rows rendered at a time: keeps every temporary a few MB even at 24 MP.
#: Even, so that every strip starts on the same CFA phase.
_STRIP = 256


def _blur_passes(sigma: float) -> tuple[int, float]:
    """(passes, alpha): repeated [alpha, 1 - 2 alpha, alpha] kernels of total variance sigma**2."""
    if sigma <= 0:
        return 0, 0.0
    n = max(1, int(math.ceil(sigma * sigma / 0.5)))
    return n, sigma * sigma / (2.0 * n)


def _tap3(a: np.ndarray, alpha: float, axis: int) -> np.ndarray:
    """3-tap smoothing ``[alpha, 1 - 2 alpha, alpha]`` along ``axis``, edges replicated."""
    al = _F32(alpha)
    out = a * _F32(1 - 2 * alpha)

    def sl(s: slice) -> tuple:
        idx = [slice(None)] * a.ndim
        idx[axis] = s
        return tuple(idx)

    out[sl(slice(1, None))] += al * a[sl(slice(None, -1))]
    out[sl(slice(0, 1))] += al * a[sl(slice(0, 1))]
    out[sl(slice(None, -1))] += al * a[sl(slice(1, None))]
    out[sl(slice(-1, None))] += al * a[sl(slice(-1, None))]
    return out


def _blur_block(block: np.ndarray, sigma: float, row_axis: int) -> np.ndarray:
    """Near-Gaussian blur (iterated binomial kernels) over the two last axes."""
    n, alpha = _blur_passes(sigma)
    for axis in (row_axis, row_axis + 1):
        for _ in range(n):
            block = _tap3(block, alpha, axis)
    return block


class _Grid:
    """A smooth random field: bilinear interpolation of a coarse N(0, 1) grid.

    Evaluated a few rows at a time (:meth:`rows`); features have the size
    ``scale`` photosites.  The grid is placed at a random sub-cell phase, so
    that its nodes (where the interpolated field varies most) do not fall
    on the same rows and columns in every frame.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
        gh, gw = int(math.ceil(h / scale)) + 2, int(math.ceil(w / scale)) + 2
        self.g = rng.standard_normal((gh, gw), dtype=_F32)
        py, px = rng.uniform(0.0, 1.0, 2)
        self.y0, self.y1, self.fy = self._axis(h, scale, py)
        self.x0, self.x1, self.fx = self._axis(w, scale, px)

    @staticmethod
    def _axis(n_out: int, scale: float, phase: float):
        pos = np.arange(n_out) / scale + phase
        i0 = np.floor(pos).astype(np.int64)
        return i0, i0 + 1, (pos - i0).astype(_F32)

    def rows(self, a: int, b: int) -> np.ndarray:
        """(b - a, W) ndarray of float32: rows a..b-1 of the field."""
        y0, y1, fy = self.y0[a:b], self.y1[a:b], self.fy[a:b, None]
        r0, r1 = int(y0[0]), int(y1[-1]) + 1
        sub = self.g[r0:r1]
        cols = sub[:, self.x0] * (1 - self.fx) + sub[:, self.x1] * self.fx
        return cols[y0 - r0] * (1 - fy) + cols[y1 - r0] * fy


class _Texture:
    """Multi-scale fine texture (features of 2-32 photosites), about N(0, 1)."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.parts = [
            (_F32(0.5), _Grid(rng, h, w, 32.0)),
            (_F32(0.45), _Grid(rng, h, w, 8.0)),
            (_F32(0.55), _Grid(rng, h, w, 2.0)),
        ]

    def rows(self, a: int, b: int) -> np.ndarray:
        out = None
        for k, g in self.parts:
            r = g.rows(a, b)
            r *= k
            out = r if out is None else out + r
        return out  # type: ignore[return-value]


@dataclass
class _Shape:
    """A hard-edged shape painted over the scene (absolute photosite coordinates)."""

    kind: str  # "ellipse", "rect" or "line"
    geom: tuple  # ellipse: cy, cx, ry, rx, angle; rect: y0, y1, x0, x1; line: ya, xa, yb, xb, width
    colour: np.ndarray  # (3,) float32
    tex_amp: float = 0.0

    def bbox(self) -> tuple[float, float, float, float]:
        g = self.geom
        if self.kind == "ellipse":
            r = max(g[2], g[3])
            return g[0] - r - 1, g[0] + r + 2, g[1] - r - 1, g[1] + r + 2
        if self.kind == "rect":
            return g
        return min(g[0], g[2]) - 3, max(g[0], g[2]) + 4, min(g[1], g[3]) - 3, max(g[1], g[3]) + 4

    def paint(self, planes: np.ndarray, a: int, tex: np.ndarray | None) -> None:
        """Paint into ``planes`` (3, n, W) holding rows a..a+n-1."""
        n, w = planes.shape[1:]
        by0, by1, bx0, bx1 = self.bbox()
        y0, y1 = max(a, int(math.floor(by0))), min(a + n, int(math.ceil(by1)))
        x0, x1 = max(0, int(math.floor(bx0))), min(w, int(math.ceil(bx1)))
        if y0 >= y1 or x0 >= x1:
            return
        yy = np.arange(y0, y1, dtype=_F32)[:, None]
        xx = np.arange(x0, x1, dtype=_F32)[None, :]
        g = self.geom
        if self.kind == "ellipse":
            cy, cx, ry, rx, ang = g
            ca, sa = _F32(math.cos(ang)), _F32(math.sin(ang))
            dy, dx = yy - _F32(cy), xx - _F32(cx)
            u, v = (dx * ca + dy * sa) / _F32(rx), (-dx * sa + dy * ca) / _F32(ry)
            cover = ((u * u + v * v) <= 1).astype(_F32)
        elif self.kind == "rect":
            cover = np.ones((y1 - y0, x1 - x0), dtype=_F32)
        else:
            ya, xa, yb, xb, width = g
            ddy, ddx = yb - ya, xb - xa
            ln = math.hypot(ddy, ddx) or 1.0
            dist = np.abs((yy - _F32(ya)) * _F32(ddx) - (xx - _F32(xa)) * _F32(ddy)) / _F32(ln)
            t = ((yy - _F32(ya)) * _F32(ddy) + (xx - _F32(xa)) * _F32(ddx)) / _F32(ln * ln)
            cover = np.clip(_F32(width / 2 + 0.5) - dist, 0, 1) * ((t >= 0) & (t <= 1))  # type: ignore[assignment]
        shade = None
        if tex is not None and self.tex_amp:
            shade = np.maximum(_F32(0.05), 1 + _F32(self.tex_amp) * tex[y0 - a : y1 - a, x0:x1])
        for ch in range(3):
            view = planes[ch, y0 - a : y1 - a, x0:x1]
            val = self.colour[ch] if shade is None else self.colour[ch] * shade
            view += cover * (val - view)


@dataclass
class _Points:
    """Gaussian spots drawn after the optical blur (stars, specular glints)."""

    ys: np.ndarray
    xs: np.ndarray
    sigma: np.ndarray
    peak: np.ndarray  # (N, 3)

    def add_to(self, planes: np.ndarray) -> None:
        """Add to C-contiguous ``planes`` (3, H, W) in place."""
        if len(self.ys) == 0:
            return
        _, h, w = planes.shape
        r = int(math.ceil(3.5 * float(self.sigma.max())))
        off = np.arange(-r, r + 1)
        ys, xs, s = self.ys[:, None, None], self.xs[:, None, None], self.sigma[:, None, None]
        cy = np.round(ys).astype(np.int64) + off[None, :, None]
        cx = np.round(xs).astype(np.int64) + off[None, None, :]
        g = np.exp(-((cy - ys) ** 2 + (cx - xs) ** 2) / (2 * s * s))
        cy, cx = np.broadcast_arrays(cy, cx)
        ok = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
        flat = (cy * w + cx)[ok]
        for ch in range(3):
            np.add.at(planes[ch].reshape(-1), flat, (g * self.peak[:, ch, None, None])[ok].astype(_F32))


_PALETTE = np.array(
    [
        [0.35, 0.50, 0.20],  # foliage
        [0.20, 0.32, 0.12],  # dark foliage
        [0.60, 0.45, 0.30],  # earth
        [0.55, 0.55, 0.52],  # stone
        [0.85, 0.82, 0.78],  # white wall
        [0.90, 0.12, 0.06],  # vivid red
        [0.06, 0.20, 0.95],  # vivid blue
        [0.95, 0.70, 0.05],  # yellow
        [0.15, 0.60, 0.55],  # teal
        [0.08, 0.08, 0.09],  # black
    ],
    dtype=_F32,
)


def _colour(rng: np.random.Generator, lo: float = 0.3, hi: float = 2.5) -> np.ndarray:
    c = _PALETTE[rng.integers(len(_PALETTE))] * _F32(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return (c * rng.uniform(0.85, 1.15, 3).astype(_F32)).astype(_F32)


def _horizon(rng: np.random.Generator, h: int, w: int, level: float, rough: float) -> tuple[np.ndarray, np.ndarray]:
    """(smooth, rough): (W,) float32 rows of the horizon in each column.

    ``rough`` adds photosite-scale detail (tree line, rocks) to ``smooth``;
    sky gradients follow ``smooth`` so that they do not stripe the sky
    column by column.
    """
    x = np.linspace(0, 1, w, dtype=_F32)
    y = level * h + _F32(0.06 * h) * np.sin(_F32(2 * np.pi * rng.uniform(0.3, 1.5)) * x + _F32(rng.uniform(0, 6.3)))
    smooth = (y + _F32(0.04 * h) * _Grid(rng, 1, w, w / 12).rows(0, 1)[0]).astype(_F32)
    return smooth, (smooth + _F32(rough) * _Grid(rng, 1, w, 3.0).rows(0, 1)[0]).astype(_F32)


# ---------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------


class _Recipe:
    """A procedural scene: :meth:`strip` renders rows a..b-1 before the optical blur."""

    sigma: float = 0.0
    points: _Points | None = None

    def strip(self, a: int, b: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class _Flat(_Recipe):
    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.vig = _F32(rng.uniform(0.1, 0.4))
        self.gy, self.gx = _F32(rng.uniform(-0.1, 0.1)), _F32(rng.uniform(-0.1, 0.1))
        self.low = _Grid(rng, h, w, max(h, w) / 3)
        tint = np.array([1.0, 1.0, 1.0], _F32) if rng.random() < 0.5 else np.array([0.85, 1.0, 1.2], _F32)
        self.tint = tint * _F32(rng.uniform(0.8, 2.0))
        m = max(h, w)
        self.xx = (np.linspace(-1, 1, w, dtype=_F32) * _F32(w / m))[None, :]

    def strip(self, a: int, b: int) -> np.ndarray:
        yy = (np.linspace(-1, 1, self.h, dtype=_F32)[a:b] * _F32(self.h / max(self.h, self.w)))[:, None]
        f = (1 - self.vig * (yy * yy + self.xx * self.xx) / 2) * (1 + self.gy * yy + self.gx * self.xx)
        f *= 1 + _F32(0.02) * self.low.rows(a, b)
        return f[None, :, :] * self.tint[:, None, None]


class _Landscape(_Recipe):
    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float, *, indoor: bool = False) -> None:
        self.h, self.w, self.sigma, self.indoor = h, w, sigma, indoor
        self.tex = _Texture(rng, h, w)
        self.low = _Grid(rng, h, w, max(h, w) / 4)
        self.shapes: list[_Shape] = []
        if indoor:
            self.wall = _colour(rng, 0.5, 1.5)
            fy = float(h * rng.uniform(0.6, 0.8))
            self.shapes.append(_Shape("rect", (fy, float(h), 0.0, float(w)), _colour(rng, 0.3, 1.0), 0.3))
            for _ in range(int(rng.integers(5, 12))):
                rh, rw = rng.uniform(0.05, 0.4) * h, rng.uniform(0.05, 0.4) * w
                y0, x0 = float(rng.uniform(0, h)), float(rng.uniform(0, w))
                self.shapes.append(_Shape("rect", (y0, y0 + rh, x0, x0 + rw), _colour(rng, 0.2, 2.0), 0.2))
            r = 0.03 * h + 2
            self.shapes.append(
                _Shape(
                    "ellipse",
                    (rng.uniform(0.1, 0.4) * h, rng.uniform(0.1, 0.9) * w, r, r, 0.0),
                    np.full(3, rng.uniform(20, 60), _F32),
                )
            )  # a lamp: clipped
            self.tint = np.array([1.5, 1.0, 0.6], _F32)
        else:
            self.hs, self.hy = _horizon(rng, h, w, rng.uniform(0.3, 0.6), 1.5)
            self.sky = np.array([0.55, 0.75, 1.0], _F32) * _F32(rng.uniform(1.5, 4.0))
            self.ground = _colour(rng, 0.4, 1.2)
            for _ in range(int(rng.integers(6, 16))):
                cy, cx = rng.uniform(0.2, 1.0) * h, rng.uniform(0, 1) * w
                r = rng.uniform(0.02, 0.2) * min(h, w)
                if rng.random() < 0.6:
                    self.shapes.append(
                        _Shape(
                            "ellipse", (cy, cx, r * rng.uniform(0.5, 1.5), r, rng.uniform(0, np.pi)), _colour(rng), 0.35
                        )
                    )
                else:  # buildings: hard vertical and horizontal edges
                    self.shapes.append(
                        _Shape(
                            "rect",
                            (cy - r, cy + r * rng.uniform(0.5, 2), cx - r / 2, cx + r / 2),
                            _colour(rng, 0.5, 3.0),
                            0.1,
                        )
                    )
            for _ in range(int(rng.integers(1, 5))):  # wires and branches
                self.shapes.append(
                    _Shape(
                        "line",
                        (
                            rng.uniform(0, h),
                            rng.uniform(0, w),
                            rng.uniform(0, h),
                            rng.uniform(0, w),
                            rng.uniform(0.6, 2.0),
                        ),
                        _colour(rng, 0.05, 3.0),
                    )
                )

    def strip(self, a: int, b: int) -> np.ndarray:
        w = self.w
        tex = self.tex.rows(a, b)
        low = self.low.rows(a, b)
        yy = np.arange(a, b, dtype=_F32)[:, None]
        planes = np.empty((3, b - a, w), dtype=_F32)
        if self.indoor:
            f = (1 + _F32(0.25) * low) * (1 - _F32(0.3) * yy / _F32(self.h))
            for ch in range(3):
                np.multiply(f, self.wall[ch], out=planes[ch])
        else:
            below = yy >= self.hy[None, :]
            sky_grad = (_F32(0.55) + _F32(0.45) * np.clip(yy / np.maximum(self.hs[None, :], 1), 0, 1)) * (
                1 + _F32(0.08) * low
            )
            shade = (1 + _F32(0.35) * low) * np.maximum(_F32(0.1), 1 + _F32(0.3) * tex)
            for ch in range(3):
                np.copyto(planes[ch], np.where(below, self.ground[ch] * shade, self.sky[ch] * sky_grad))
        for s in self.shapes:
            s.paint(planes, a, tex)
        if self.indoor:
            planes *= self.tint[:, None, None]
        return planes


class _Glints(_Landscape):
    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        super().__init__(rng, h, w, sigma)
        for _ in range(int(rng.integers(1, 4))):  # clipped highlight patches
            r = rng.uniform(0.01, 0.05) * min(h, w) + 1
            self.shapes.append(
                _Shape(
                    "ellipse",
                    (rng.uniform(0, h), rng.uniform(0, w), r, r * rng.uniform(0.5, 2), rng.uniform(0, 3)),
                    np.full(3, rng.uniform(15, 40), _F32),
                )
            )
        n = int(rng.integers(6, 16) * max(1.0, h * w / 540_000.0))
        peak = rng.uniform(20, 400, n)
        self.points = _Points(
            rng.uniform(BORDER, h - BORDER, n),
            rng.uniform(BORDER, w - BORDER, n),
            rng.uniform(0.5, 0.8, n),
            peak[:, None] * rng.uniform(0.8, 1.0, (n, 3)),
        )


class _Night(_Recipe):
    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.sigma = h, w, sigma
        self.hs, self.hy = _horizon(rng, h, w, rng.uniform(0.65, 0.85), 3.0)
        self.glow_amp = _F32(rng.uniform(0.5, 2.5))
        self.sky_col = np.array([0.8, 0.9, 1.1], _F32) if rng.random() < 0.5 else np.array([1.2, 1.0, 0.7], _F32)
        self.low = _Grid(rng, h, w, max(h, w) / 3)
        self.fg = _colour(rng, 0.05, 0.3)
        self.tex = _Texture(rng, h, w)
        n = int(h * w / rng.uniform(300, 1200))
        ys, xs = rng.uniform(0, h - 1, n), rng.uniform(0, w - 1, n)
        seeing = rng.uniform(0.6, 1.3)
        sig = np.clip(seeing * rng.uniform(0.9, 1.1, n), 0.6, 1.3)
        peak = np.exp(rng.uniform(0, 1, n) ** 2 * np.log(500.0)) * rng.uniform(0.3, 1.0, n)
        t = rng.uniform(-1, 1, n)
        tint = np.stack([1 + 0.3 * t, np.ones(n), 1 - 0.3 * t], axis=1)
        keep = ys < self.hy[np.clip(np.round(xs).astype(int), 0, w - 1)] - 2  # stars only in the sky
        self.points = _Points(ys[keep], xs[keep], sig[keep], peak[keep, None] * tint[keep])

    def strip(self, a: int, b: int) -> np.ndarray:
        yy = np.arange(a, b, dtype=_F32)[:, None]
        dist = np.maximum(self.hs[None, :] - yy, 0)
        sky = (1 + self.glow_amp * np.exp(-dist / _F32(0.2 * self.h))) * (1 + _F32(0.05) * self.low.rows(a, b))
        fg = np.maximum(_F32(0.1), 1 + _F32(0.3) * self.tex.rows(a, b))
        below = yy >= self.hy[None, :]
        planes = np.empty((3, b - a, self.w), dtype=_F32)
        for ch in range(3):
            np.copyto(planes[ch], np.where(below, self.fg[ch] * fg, self.sky_col[ch] * sky))
        return planes


class _Edges(_Recipe):
    """Buildings against the sky: long straight edges on exact photosite boundaries.

    A horizon on one row, facades with integer bounds, grids of windows with
    1-2 photosite frames and mullions, poles and a roof line running across
    the frame.  Every edge lies between two rows or two columns.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.sigma = h, w, sigma
        self.horizon = int(rng.integers(int(0.3 * h), int(0.6 * h) + 1))
        self.sky = np.array([0.55, 0.75, 1.0], _F32) * _F32(rng.uniform(1.5, 4.0))
        self.ground = _colour(rng, 0.3, 1.0)
        self.low = _Grid(rng, h, w, max(h, w) / 4)
        self.shapes: list[_Shape] = []
        x = int(rng.integers(-w // 10, w // 10))
        while x < w:  # facades side by side, each with a grid of windows
            bw = int(rng.integers(max(8, w // 12), max(9, w // 3)))
            top = int(rng.integers(int(0.05 * h), self.horizon))
            wall = _colour(rng, 0.3, 2.5)
            self.shapes.append(_Shape("rect", (float(top), float(h), float(x), float(x + bw)), wall, 0.05))
            frame = _colour(rng, 0.5, 3.0)
            ww, wh = int(rng.integers(3, 9)), int(rng.integers(4, 12))
            gx, gy = ww + int(rng.integers(2, 7)), wh + int(rng.integers(3, 9))
            for wy in range(top + 3, h - wh - 2, gy):
                for wx in range(x + 2, x + bw - ww - 1, gx):
                    ft = int(rng.integers(1, 3))  # frame thickness, photosites
                    self.shapes.append(_Shape("rect", (float(wy), float(wy + wh), float(wx), float(wx + ww)), frame))
                    glass = _colour(rng, 0.05, 0.4) if rng.random() < 0.7 else _colour(rng, 2.0, 8.0)
                    self.shapes.append(
                        _Shape(
                            "rect", (float(wy + ft), float(wy + wh - ft), float(wx + ft), float(wx + ww - ft)), glass
                        )
                    )
                    if ww - 2 * ft >= 3:  # a mullion
                        mx = wx + ww // 2
                        self.shapes.append(_Shape("rect", (float(wy), float(wy + wh), float(mx), float(mx + 1)), frame))
            x += bw + int(rng.integers(0, max(1, w // 15)))
        for _ in range(int(rng.integers(1, 4))):  # poles: 1-3 photosites wide, full height below the sky
            px, pw = int(rng.integers(0, w)), int(rng.integers(1, 4))
            self.shapes.append(
                _Shape(
                    "rect",
                    (float(rng.integers(0, self.horizon)), float(h), float(px), float(px + pw)),
                    _colour(rng, 0.05, 3.0),
                )
            )
        for _ in range(int(rng.integers(1, 3))):  # roof lines / cables: one row, across the frame
            py = int(rng.integers(0, h))
            self.shapes.append(_Shape("rect", (float(py), float(py + 1), 0.0, float(w)), _colour(rng, 0.05, 3.0)))

    def strip(self, a: int, b: int) -> np.ndarray:
        yy = np.arange(a, b, dtype=_F32)[:, None]
        low = self.low.rows(a, b)
        planes = np.empty((3, b - a, self.w), dtype=_F32)
        below = np.broadcast_to(yy >= self.horizon, (b - a, self.w))
        sky = (_F32(0.6) + _F32(0.4) * np.clip(yy / _F32(max(self.horizon, 1)), 0, 1)) * (1 + _F32(0.05) * low)
        ground = 1 + _F32(0.2) * low
        for ch in range(3):
            np.copyto(planes[ch], np.where(below, self.ground[ch] * ground, self.sky[ch] * sky))
        for sh in self.shapes:
            sh.paint(planes, a, None)
        return planes


def _pink_noise(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """(H, W) float32 field with amplitude spectrum 1 / f**beta, zero mean, unit sigma."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    spec = np.fft.rfft2(rng.standard_normal((h, w)))
    spec *= f**-beta
    spec[0, 0] = 0.0
    out = np.fft.irfft2(spec, s=(h, w))
    sd = float(out.std()) or 1.0
    return (out / sd).astype(_F32)


class _Texture2(_Recipe):
    """Fine natural texture (grass, foliage, fabric): 1/f noise with sharp structures.

    Reflectance is ``exp(0.6 * n)`` of a 1/f field ``n`` (the amplitude
    spectrum of natural images), over patches of foliage colours cut with
    hard edges from a second 1/f field, with hundreds of thin grass blades
    (sharp 1-2 photosite lines, bright or dark) drawn on top.
    """

    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.sigma = h, w, sigma
        self.field = _pink_noise(rng, h, w, float(rng.uniform(0.8, 1.1)))
        self.cut = _pink_noise(rng, h, w, 1.6)
        self.cols = [_colour(rng, 0.3, 1.5) for _ in range(3)]
        self.shapes: list[_Shape] = []
        n = int(h * w / rng.uniform(150, 400))
        ya, xa = rng.uniform(0, h, n), rng.uniform(0, w, n)
        ln = rng.uniform(3, 25, n)
        ang = rng.normal(-np.pi / 2, 0.35, n)
        for i in range(n):
            self.shapes.append(
                _Shape(
                    "line",
                    (
                        float(ya[i]),
                        float(xa[i]),
                        float(ya[i] + ln[i] * np.sin(ang[i])),
                        float(xa[i] + ln[i] * np.cos(ang[i])),
                        float(rng.uniform(0.5, 1.5)),
                    ),
                    _colour(rng, 0.1, 2.5),
                )
            )

    def strip(self, a: int, b: int) -> np.ndarray:
        refl = np.exp(_F32(0.6) * self.field[a:b])
        cut = self.cut[a:b]
        planes = np.empty((3, b - a, self.w), dtype=_F32)
        for ch in range(3):
            col = np.where(cut < -0.4, self.cols[0][ch], np.where(cut < 0.5, self.cols[1][ch], self.cols[2][ch]))
            np.multiply(refl, col, out=planes[ch])
        for sh in self.shapes:
            sh.paint(planes, a, None)
        return planes


def _rasterise(recipe: _Recipe, h: int, w: int) -> np.ndarray:
    """(3, H, W) float32: the recipe rendered strip by strip, blurred, points added."""
    out = np.empty((3, h, w), dtype=_F32)
    halo = _blur_passes(recipe.sigma)[0]
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        ra, rb = max(0, a - halo), min(h, b + halo)
        block = recipe.strip(ra, rb)
        if recipe.sigma > 0:
            block = _blur_block(block, recipe.sigma, 1)
        out[:, a:b] = block[:, a - ra : a - ra + (b - a)]
    if recipe.points is not None:
        recipe.points.add_to(out)
    return out


def render_lamps(spec: SensorSpec, rng: np.random.Generator, peak: float, rate: float) -> np.ndarray:
    """Self-luminous point lights (street lamps, distant lit windows) of a view, alone.

    About 40 per 300 x 450 photosites (as many per area on any sensor), at
    random positions: Gaussian spots of sigma 0.5-1.0 photosites (drawn
    after the optical blur, as :func:`render_scene` draws glints), warm
    (R : G : B about 1 : 0.75 : 0.45), their peaks log-uniform between
    ``peak`` / 60 and ``peak`` times ``rate``.  A timelapse adds them to
    every frame unscaled by the frame's light: at dusk they stay as the
    scene around them falls, and in aperture priority their signal grows
    with the exposure as a hot photosite's dark current does.

    Parameters
    ----------
    spec : SensorSpec
    rng : numpy.random.Generator
    peak : float
        The brightest lamp's peak, in units of ``rate``.
    rate : float
        Irradiance of a mid grey surface, electrons per second at QE 1
        (as :func:`render_scene`'s).

    Returns
    -------
    (H, W, 3) ndarray of float32
        Zero but at the lamps.

    Raises
    ------
    ValueError
        ``peak`` not above 0, or ``rate`` below 0.
    """
    if not (peak > 0 and rate >= 0):
        raise ValueError(f"peak must be > 0 and rate >= 0, got {peak!r} and {rate!r}")
    h, w = spec.height, spec.width
    n = max(1, int(round(40 * h * w / 135_000)))
    border = min(BORDER, max(0, min(h, w) // 2 - 1))
    peaks = rate * peak * np.exp(rng.uniform(np.log(1.0 / 60.0), 0.0, n))
    colour = np.array([1.0, 0.75, 0.45]) * rng.uniform(0.85, 1.0, (n, 3))
    points = _Points(
        rng.uniform(border, h - border, n),
        rng.uniform(border, w - border, n),
        rng.uniform(0.5, 1.0, n),
        (peaks[:, None] * colour).astype(_F32),
    )
    planes = np.zeros((3, h, w), _F32)
    points.add_to(planes)
    return np.moveaxis(planes, 0, -1)


def render_scene(
    spec: SensorSpec,
    rng: np.random.Generator,
    kind: str,
    *,
    rate: float = 1.0,
    blur: float | None = None,
) -> np.ndarray:
    """Render a synthetic scene at the photosite grid.

    Parameters
    ----------
    spec : SensorSpec
        Gives the (height, width) of the visible area.
    rng : numpy.random.Generator
    kind : {"landscape", "flat", "night", "glints", "indoor", "edges", "texture", "dark"}
        * ``landscape``: sky gradient over a textured ground, a rough
          horizon, objects with hard edges (ellipses, buildings, some vivid),
          thin wires, fine multi-scale texture; sky about 1.5-4x mid grey,
          some objects brighter (they clip when over-exposed).
        * ``flat``: a grey card / overcast sky, vignetting, faint gradients.
        * ``night``: dark sky (= ``rate``) with a glow above a dim foreground
          silhouette, and stars: Gaussian PSF sigma 0.6-1.3 px, peaks up to
          ~500x the sky, random positions (another pointing at each call).
        * ``glints``: a landscape plus tiny specular points (sigma 0.5-0.8 px,
          20-400x mid grey: clipped) and clipped highlight patches.
        * ``indoor``: walls, furniture, a lamp (clipped), tungsten tint.
        * ``edges``: buildings against the sky: a horizon on one row,
          facades, grids of windows with thin frames and mullions, poles and
          lines one photosite wide; every edge on a photosite boundary, and
          no optical blur unless ``blur`` is given.
        * ``texture``: fine natural texture (grass, foliage, fabric): a 1/f
          noise reflectance (``exp(0.6 n)``, amplitude spectrum 1/f**0.8-1.1)
          over colour patches with hard edges, and many thin sharp grass
          blades; blur 0.3-0.6 px unless ``blur`` is given.  Pure numpy.
        * ``dark``: no light at all (a lens-cap dark frame); zeros.
    rate : float, optional
        Irradiance of a mid grey (18 %) surface in the green channel, in
        photo-electrons per second at QE 1 (for "night": of the sky).
    blur : float, optional
        Optical blur sigma in photosites applied before sampling (a
        near-Gaussian iterated binomial kernel); random in 0.5-1.0 when
        omitted.  Stars and glints are drawn after it with their own PSF.

    Returns
    -------
    (H, W, 3) ndarray of float32
        Linear R, G, B irradiance in electrons per second at QE 1; each
        photosite samples its own channel (:func:`simulate`).  A view of
        three contiguous channel planes (``np.moveaxis`` of (3, H, W)).

    Examples
    --------
    >>> import numpy as np
    >>> s = render_scene(SensorSpec(40, 60), np.random.default_rng(0), "flat", rate=500.0)
    >>> s.shape, s.dtype
    ((40, 60, 3), dtype('float32'))
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SCENE_KINDS)}; got {kind!r}")
    if not rate > 0:
        raise ValueError(f"rate must be > 0 electrons per second, got {rate!r}")
    if blur is not None and blur < 0:
        raise ValueError(f"blur must be >= 0 photosites, got {blur!r}")
    h, w = spec.height, spec.width
    sigma = float(rng.uniform(0.5, 1.0)) if blur is None else float(blur)
    recipe: _Recipe
    if kind == "dark":
        return np.moveaxis(np.zeros((3, h, w), dtype=_F32), 0, -1)
    if kind == "edges":
        recipe = _Edges(rng, h, w, 0.0 if blur is None else sigma)
    elif kind == "texture":
        recipe = _Texture2(rng, h, w, sigma * 0.6 if blur is None else sigma)
    elif kind == "flat":
        recipe = _Flat(rng, h, w)
    elif kind == "night":
        recipe = _Night(rng, h, w, sigma)
    elif kind == "glints":
        recipe = _Glints(rng, h, w, sigma)
    else:
        recipe = _Landscape(rng, h, w, sigma, indoor=(kind == "indoor"))
    planes = _rasterise(recipe, h, w)
    planes *= _F32(rate)
    return np.moveaxis(planes, 0, -1)


def _shift_cols(r: np.ndarray, k: int) -> np.ndarray:
    """Columns of (n, W) ``r`` moved right by integer ``k`` (left if negative), edges replicated."""
    w = r.shape[1]
    k = max(-w, min(w, k))
    out = np.empty_like(r)
    if k >= 0:
        out[:, k:] = r[:, : w - k]
        out[:, :k] = r[:, :1]
    else:
        out[:, : w + k] = r[:, -k:]
        out[:, w + k :] = r[:, -1:]
    return out


def _shift(scene: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Sub-pixel translation of an (H, W, 3) scene by (dy, dx), bilinear, edges replicated."""
    planes = np.moveaxis(scene, -1, 0)
    out = np.empty(planes.shape, dtype=_F32)
    h = planes.shape[1]
    iy, ix = int(math.floor(dy)), int(math.floor(dx))
    fy, fx = _F32(dy - iy), _F32(dx - ix)
    rows0 = np.clip(np.arange(h) - iy, 0, h - 1)
    rows1 = np.clip(np.arange(h) - iy - 1, 0, h - 1)
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        for ch in range(3):
            p = planes[ch]
            r = p[rows0[a:b]] * (1 - fy)
            r += p[rows1[a:b]] * fy
            o = _shift_cols(r, ix)
            o *= 1 - fx
            o += _shift_cols(r, ix + 1) * fx
            out[ch, a:b] = o
    return np.moveaxis(out, 0, -1)
