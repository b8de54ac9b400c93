"""One exposure of the simulated sensor (:func:`simulate`), and its rendering (:func:`develop`).

:func:`simulate` / :func:`simulate_frame` expose the sensor to a scene:
shot noise, dark current, read noise, quantisation and the planted defects
(their models are in :mod:`rawmap.testing.defects`); the same frame without
defects (same noise realisation) and which defects showed.  :func:`develop`
renders a mosaic as a camera JPEG would show it.

Signal model, per photosite of colour ``c`` (all in float32)::

    e     = scene[c] * qe[c] * t + dark_current_e * t          expected electrons
    e'    = clip(e + sqrt(e) * z1, 0, full_well_e)             shot noise (Gaussian)
    DN    = clip(round(black + g(ISO) * e' + rn(ISO) * z2), 0, white)

with ``g(ISO) = (white - black) / full_well_e * ISO / 100`` (ISO 100 fills the
raw range at full well) and ``rn(ISO) = hypot(read_noise_e * g, adc_noise_dn)``
(pre-amplifier noise grows with gain, the ADC part does not).

Dark current (healthy, hot and warm) is given at 20 degrees C and doubles
every 6 degrees C of the frame's sensor temperature (:func:`dark_factor`).

A defect is *visible* in a frame when the difference between the expected
value of the defective photosite and that of a healthy one at the same place
(both clipped to [0, white]) exceeds :data:`VISIBILITY_SIGMA` (5) times the
healthy photosite's noise sigma ``sqrt(g**2 * e + rn**2 + 1/12)`` in that
frame (:attr:`SimulatedFrame.visible`).  For a noisy photosite the RTS
state drawn for that frame counts.  The stricter rule of a series' truth is
in :mod:`rawmap.testing.truth`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..defectmap import DefectKind
from .defects import PlantedDefect
from .scene import _STRIP, _tap3
from .sensor import SensorSpec

__all__ = [
    "VISIBILITY_SIGMA",
    "DARK_DOUBLING_C",
    "REFERENCE_TEMPERATURE_C",
    "SimulatedFrame",
    "simulate",
    "simulate_frame",
    "dark_factor",
    "develop",
    "CAMERA_MATRIX",
]

#: A defect is visible in a frame when its deviation exceeds this many sigma.
VISIBILITY_SIGMA = 5.0
#: Dark current (of healthy, hot and warm photosites) doubles every this many degrees Celsius ...
DARK_DOUBLING_C = 6.0
#: ... from its nominal value at this sensor temperature.
REFERENCE_TEMPERATURE_C = 20.0

#: A camera's colour matrix (white-balanced camera RGB -> linear sRGB, each row summing to 1) of the
#: kind real developers apply: its negative terms take a one-colour defect out of the other channels
#: (a blue photosite stuck at white develops blue with red and green at 0, as in indep-8080's JPEGs)
CAMERA_MATRIX = ((1.80, -0.64, -0.16), (-0.20, 1.56, -0.36), (0.03, -0.52, 1.49))

_F32 = np.float32


# defect model codes used by the vectorised simulation
_STUCK, _DEAD, _HOT, _COLD, _NOISY, _OFFSET = range(6)


@dataclass
class _Layout:
    rows: np.ndarray
    cols: np.ndarray
    code: np.ndarray
    value: np.ndarray  # stuck DN
    dark: np.ndarray  # hot DN/s at ISO 100
    gain: np.ndarray  # cold factor
    amp: np.ndarray  # noisy amplitude / column offset, read-noise units (signed for offsets)
    p: np.ndarray  # noisy on-probability
    sign: np.ndarray  # noisy: +1, -1, or 0 for random sign per frame


def _layout(defects: Sequence[PlantedDefect]) -> _Layout:
    n = len(defects)
    lay = _Layout(
        rows=np.zeros(n, np.int64),
        cols=np.zeros(n, np.int64),
        code=np.zeros(n, np.int8),
        value=np.zeros(n),
        dark=np.zeros(n),
        gain=np.ones(n),
        amp=np.zeros(n),
        p=np.zeros(n),
        sign=np.zeros(n),
    )
    for i, d in enumerate(defects):
        lay.rows[i], lay.cols[i] = d.row, d.col
        k, pr = d.kind, d.params
        if k is DefectKind.STUCK:
            lay.code[i], lay.value[i] = _STUCK, float(pr["value"])
        elif k is DefectKind.DEAD:
            lay.code[i] = _DEAD
        elif k is DefectKind.HOT:
            lay.code[i], lay.dark[i] = _HOT, float(pr["dark_dn_per_s"])
        elif k is DefectKind.COLD:
            lay.code[i], lay.gain[i] = _COLD, float(pr["gain"])
        elif k is DefectKind.NOISY:
            lay.code[i], lay.amp[i], lay.p[i] = _NOISY, float(pr["amplitude_rn"]), float(pr["p"])
            lay.sign[i] = {"+": 1.0, "-": -1.0, "+-": 0.0}[pr.get("levels", "+")]
        elif k is DefectKind.COLUMN:
            if pr.get("mode") == "dead":
                lay.code[i] = _DEAD
            else:
                lay.code[i], lay.amp[i] = _OFFSET, float(pr["offset_rn"])
        else:  # pragma: no cover - every DefectKind is handled above
            raise ValueError(f"unknown defect kind {k!r}")
    return lay


# ---------------------------------------------------------------------------
# one exposure
# ---------------------------------------------------------------------------


@dataclass
class SimulatedFrame:
    """One simulated exposure.

    Attributes
    ----------
    mosaic : (H, W) ndarray of uint16
        Visible area with the defects.
    clean : (H, W) ndarray of uint16
        The same exposure and noise realisation without any defect.
    deviation : (N,) ndarray of float64
        Per defect (order of the ``defects`` given): expected defective value
        minus expected healthy value, DN, both clipped to [0, white].
    sigma : (N,) ndarray of float64
        Noise sigma of a healthy photosite at each defect, DN.
    visible : (N,) ndarray of bool
        ``abs(deviation) > VISIBILITY_SIGMA * sigma``.
    """

    mosaic: np.ndarray
    clean: np.ndarray
    deviation: np.ndarray
    sigma: np.ndarray
    visible: np.ndarray


def _tile2(v2: np.ndarray, h: int, w: int) -> np.ndarray:
    """(2, 2) -> (H, W) float32 periodic map."""
    return np.tile(np.asarray(v2, dtype=_F32), ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def _glow(spec: SensorSpec, a: int, b: int) -> np.ndarray:
    """(b - a, W) float32: the amplifier glow of rows ``a:b``, electrons per second at the nominal temperature."""
    y = np.arange(a, b, dtype=_F32)[:, None]
    x = _F32(spec.width - 1) - np.arange(spec.width, dtype=_F32)[None, :]
    return (_F32(spec.glow_e) * np.exp(-np.hypot(y, x) / _F32(spec.glow_scale))).astype(_F32)


def simulate(
    spec: SensorSpec,
    defects: Sequence[PlantedDefect],
    scene: np.ndarray,
    exposure: float,
    iso: float,
    rng: np.random.Generator,
    *,
    temperature: float | None = None,
) -> SimulatedFrame:
    """Expose the sensor to ``scene``: noise, quantisation and defects.

    Parameters
    ----------
    spec : SensorSpec
    defects : sequence of PlantedDefect
    scene : (H, W, 3) ndarray of float32
        Irradiance in electrons per second at QE 1 (:func:`render_scene`).
    exposure : float
        Exposure time, seconds (> 0).
    iso : float
        ISO speed (> 0).
    rng : numpy.random.Generator
        Draws the shot and read noise, then the RTS states.
    temperature : float, optional
        Sensor temperature, degrees Celsius: the dark current of every
        photosite (``spec.dark_current_e``, ``spec.glow_e`` and the hot / warm rates) is
        multiplied by ``2 ** ((temperature - 20) / 6)``
        (:data:`REFERENCE_TEMPERATURE_C`, :data:`DARK_DOUBLING_C`).  The
        nominal dark current when omitted.

    Returns
    -------
    SimulatedFrame
    """
    h, w = spec.height, spec.width
    scene = np.asarray(scene)
    if scene.shape != (h, w, 3):
        raise ValueError(f"scene must be (H, W, 3) = ({h}, {w}, 3) for this sensor, got {scene.shape}")
    if not exposure > 0 or not iso > 0:
        raise ValueError(f"exposure and iso must be > 0, got exposure={exposure!r}, iso={iso!r}")
    g = spec.gain(iso)
    rn = spec.read_noise_dn(iso)
    fw = _F32(spec.full_well_e)
    warm = 1.0 if temperature is None else dark_factor(temperature)
    t = _F32(exposure)
    qe = np.asarray(spec.channel_qe, dtype=_F32)
    plane = spec.colour_plane()

    lay = _layout(defects)
    n = len(lay.rows)
    if n and (lay.rows.min() < 0 or lay.cols.min() < 0 or lay.rows.max() >= h or lay.cols.max() >= w):
        raise ValueError(f"a defect lies outside the {h}x{w} visible area; plant defects for this spec")
    order = np.argsort(lay.rows, kind="stable")
    e_h, za, zb = np.zeros(n), np.zeros(n), np.zeros(n)

    # banding: each row's offset in this frame and each column's fixed one, DN (drawn only when
    # asked for, so that series without them keep their draws)
    bands = np.zeros(h, _F32)
    if spec.row_noise > 0:
        bands = (spec.row_noise * rn * rng.standard_normal(h)).astype(_F32)
    columns = (spec.column_pattern() * _F32(rn)).astype(_F32) if spec.column_noise > 0 else None

    # healthy photosites, strip by strip: small temporaries even at 24 MP
    clean = np.empty((h, w), dtype=np.uint16)
    black_rows = _tile2(spec.black_map(), _STRIP, w)
    dark = _F32(spec.dark_current_e * exposure * warm)
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        e = np.empty((b - a, w), dtype=_F32)
        for dy in range(2):
            for dx in range(2):
                c = int(plane[dy, dx])
                np.multiply(scene[a + dy : b : 2, dx::2, c], qe[c] * t, out=e[dy::2, dx::2])
        e += dark
        if spec.glow_e > 0:
            e += _glow(spec, a, b) * _F32(exposure * warm)
        np.maximum(e, 0, out=e)
        z1 = rng.standard_normal((b - a, w), dtype=_F32)
        z2 = rng.standard_normal((b - a, w), dtype=_F32)
        lo, hi = np.searchsorted(lay.rows[order], [a, b])
        if hi > lo:
            idx = order[lo:hi]
            rr, cc = lay.rows[idx] - a, lay.cols[idx]
            e_h[idx], za[idx], zb[idx] = e[rr, cc], z1[rr, cc], z2[rr, cc]
        dn = np.sqrt(e)
        dn *= z1
        dn += e
        np.clip(dn, 0, fw, out=dn)
        dn *= _F32(g)
        z2 *= _F32(rn)
        dn += z2
        dn += black_rows[: b - a]
        if spec.row_noise > 0:
            dn += bands[a:b, None]
        if columns is not None:
            dn += columns[None, :]
        np.rint(dn, out=dn)
        np.clip(dn, 0, spec.white, out=dn)
        clean[a:b] = dn

    mosaic = clean.copy()
    if n == 0:
        empty = np.zeros(0)
        return SimulatedFrame(mosaic, clean, empty, empty, np.zeros(0, bool))
    r, c = lay.rows, lay.cols  # type: ignore[assignment]
    blk = spec.black_map()[r % 2, c % 2]

    # RTS states, drawn after the frame noise
    on = rng.random(n) < lay.p
    sgn = np.where(lay.sign == 0, np.where(rng.random(n) < 0.5, -1.0, 1.0), lay.sign)
    state = np.where((lay.code == _NOISY) & on, sgn, 0.0)

    e_d = e_h.copy()
    e_d = np.where(lay.code == _HOT, e_h + lay.dark * warm * exposure / spec.gain(100), e_d)
    e_d = np.where(lay.code == _COLD, e_h * lay.gain, e_d)
    e_d = np.where(lay.code == _DEAD, 0.0, e_d)
    offset = np.where(lay.code == _NOISY, state * lay.amp * rn, 0.0)
    offset = np.where(lay.code == _OFFSET, lay.amp * rn, offset)

    en = np.clip(e_d + np.sqrt(e_d) * za, 0, spec.full_well_e)
    pattern = bands[r] + (0.0 if columns is None else columns[c])
    dn = np.clip(np.rint(blk + en * g + rn * zb + offset + pattern), 0, spec.white)
    dn = np.where(lay.code == _STUCK, lay.value, dn)
    mosaic[r, c] = dn.astype(np.uint16)

    mean_h = np.clip(blk + np.minimum(e_h, spec.full_well_e) * g, 0, spec.white)
    mean_d = np.clip(blk + np.minimum(e_d, spec.full_well_e) * g + offset, 0, spec.white)
    mean_d = np.where(lay.code == _STUCK, lay.value, mean_d)
    deviation = mean_d - mean_h
    sigma = np.sqrt(g * g * e_h + rn * rn + 1.0 / 12.0)
    return SimulatedFrame(mosaic, clean, deviation, sigma, np.abs(deviation) > VISIBILITY_SIGMA * sigma)


def dark_factor(temperature: float) -> float:
    """Dark current at ``temperature`` (degrees C) relative to its nominal value (at 20 degrees C).

    Examples
    --------
    >>> dark_factor(26.0), dark_factor(14.0)
    (2.0, 0.5)
    """
    return float(2.0 ** ((float(temperature) - REFERENCE_TEMPERATURE_C) / DARK_DOUBLING_C))


def simulate_frame(
    spec: SensorSpec,
    defects: Sequence[PlantedDefect],
    scene: np.ndarray,
    exposure: float,
    iso: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(mosaic, clean): :func:`simulate` without the per-defect visibility.

    Returns
    -------
    mosaic : (H, W) ndarray of uint16
        The frame with defects.
    clean : (H, W) ndarray of uint16
        The same frame (same noise) without defects.
    """
    s = simulate(spec, defects, scene, exposure, iso, rng)
    return s.mosaic, s.clean


def _border_frame(spec: SensorSpec, mosaic: np.ndarray, iso: float, rng: np.random.Generator) -> np.ndarray:
    """Full sensor frame: optical-black border (black + read noise) around ``mosaic``."""
    fh, fw = spec.full_shape
    t, left = spec.top_margin, spec.left_margin
    full = np.empty((fh, fw), dtype=np.uint16)
    full[t:, left:] = mosaic
    rn = _F32(spec.read_noise_dn(iso))
    # margins are even, so the pattern phase at (0, 0) is that of the visible area
    for rows, cols in ((slice(0, t), slice(0, fw)), (slice(t, fh), slice(0, left))):
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        if shape[0] == 0 or shape[1] == 0:
            continue
        blk = _tile2(spec.black_map(), *shape)
        blk += rn * rng.standard_normal(shape, dtype=_F32)
        full[rows, cols] = np.clip(np.rint(blk), 0, spec.white)
    return full


# ---------------------------------------------------------------------------
# developing (for JPEG output)
# ---------------------------------------------------------------------------


def develop(
    mosaic: np.ndarray, spec: SensorSpec, *, brightness: float = 1.5, matrix: Sequence[Sequence[float]] | None = None
) -> np.ndarray:
    """A simple rendering of a simulated mosaic: what a camera JPEG would show.

    Bilinear demosaic (normalised [1 2 1] x [1 2 1] convolution of each
    colour's photosites), white balance (``1 / channel_qe``), a linear
    brightness gain, optionally a colour matrix, the sRGB tone curve, 8 bits.

    Parameters
    ----------
    mosaic : (H, W) ndarray of uint16
        Visible area.
    spec : SensorSpec
    brightness : float, optional
        Linear gain applied after white balance (before clipping).
    matrix : (3, 3) sequence of float, optional
        White-balanced camera RGB -> linear sRGB (e.g. :data:`CAMERA_MATRIX`),
        applied before clipping; none by default (each channel as its colour
        of photosites gave it).

    Returns
    -------
    (H, W, 3) ndarray of uint8
    """
    h, w = mosaic.shape
    if (h, w) != (spec.height, spec.width):
        raise ValueError(f"mosaic is {h}x{w}, the sensor {spec.height}x{spec.width}")
    qe = np.asarray(spec.channel_qe, dtype=_F32)
    scale = _F32(brightness) * qe[1] / qe / _F32(spec.white - spec.black_map().mean())
    out = np.empty((h, w, 3), dtype=np.uint8)
    to_srgb = None if matrix is None else np.asarray(matrix, dtype=_F32).T
    for a in range(0, h, _STRIP):
        b = min(h, a + _STRIP)
        ra, rb = max(0, a - 1), min(h, b + 1)
        blk = mosaic[ra:rb].astype(_F32)
        blk -= _tile2(spec.black_map(), rb - ra + 1, w)[ra % 2 : ra % 2 + rb - ra]
        np.maximum(blk, 0, out=blk)
        plane = _tile2(spec.colour_plane(), rb - ra + 1, w)[ra % 2 : ra % 2 + rb - ra]
        rgb = np.empty((b - a, w, 3), dtype=_F32)
        for ch in range(3):
            site = plane == ch
            num = _tap3(_tap3(np.where(site, blk, _F32(0)), 0.25, 0), 0.25, 1)
            den = _tap3(_tap3(site.astype(_F32), 0.25, 0), 0.25, 1)
            v = np.where(site, blk, num / den)[a - ra : a - ra + b - a]
            rgb[..., ch] = v * scale[ch]
        if to_srgb is not None:
            rgb = rgb @ to_srgb
        np.clip(rgb, 0, 1, out=rgb)
        srgb = np.where(rgb <= 0.0031308, rgb * _F32(12.92), _F32(1.055) * np.power(rgb, _F32(1 / 2.4)) - _F32(0.055))
        out[a:b] = np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8)
    return out
