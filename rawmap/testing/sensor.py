"""The simulated sensor: geometry, levels and noise (:class:`SensorSpec`).

A Bayer sensor (or a monochrome one, ``cfa=None``; 12-bit with black 0 is
``black=0, white=4095``).  :meth:`SensorSpec.gain` and
:meth:`SensorSpec.read_noise_dn` give the ISO-dependent conversion gain and
read noise used by the signal model of :mod:`rawmap.testing.exposure`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..frame import CameraId

__all__ = ["SensorSpec"]


def _default_cfa() -> tuple[tuple[int, int], tuple[int, int]]:
    return ((0, 1), (1, 2))


@dataclass(frozen=True)
class SensorSpec:
    """Geometry, levels and noise of a simulated Bayer sensor.

    Attributes
    ----------
    height, width : int
        Visible area in photosites (at least 22 x 22, the smallest raw image
        LibRaw accepts).
    cfa : (2, 2) tuple of int, or None
        Colour index per pattern position, 0=R, 1=G, 2=B, 3=second G.
        RGGB by default.  Arrays are accepted and stored as tuples.
        ``None`` makes a monochrome sensor (no colour filter): every
        photosite samples the green channel of the scene with QE
        ``channel_qe[1]``, and :attr:`cfa_array` is all 1 (the black level
        and noise are those of colour index 1).  Monochrome series are
        written as grayscale TIFF or PNG (the DNG writer writes CFA data
        only).
    black : int or (4,) tuple of int
        Black level in DN, one value or one per colour index.
    white : int
        Saturation level in DN.
    read_noise_e : float
        Pre-amplifier read noise in electrons (scales with gain).
    adc_noise_dn : float
        Post-amplifier read noise in DN (independent of ISO).
    full_well_e : float
        Full-well capacity in electrons; at ISO 100 it maps to ``white``.
    channel_qe : (3,) tuple of float
        Relative sensitivity of the R, G, B photosites (G = 1).
    dark_current_e : float
        Dark current of a healthy photosite, electrons per second.
    glow_e : float
        Amplifier glow at the top-right corner of the visible area,
        electrons per second (a dark signal: it grows with exposure and
        temperature as dark current does); 0 for none.
    glow_scale : float
        Photosites over which the glow falls by a factor e, from that corner.
    row_noise : float
        Horizontal banding: each row of each frame is offset by a fresh
        normal draw of this many read-noise sigmas (the frame's ISO); 0 for
        none.  Many CMOS sensors show 0.1-0.3 of the read noise this way,
        more at high ISO.
    column_noise : float
        Column pattern noise: each column is offset by a fixed draw of this
        many read-noise sigmas, the same in every frame (drawn from the
        sensor's size, not the series' generator); 0 for none.
    top_margin, left_margin : int
        Optical-black border above and left of the visible area (even; the
        DNG gets an ActiveArea when non-zero).
    camera : CameraId
        Make, model and serial written to the files.
    """

    height: int
    width: int
    cfa: Any = field(default_factory=_default_cfa)
    black: Any = 512
    white: int = 16383
    read_noise_e: float = 3.0
    adc_noise_dn: float = 1.5
    full_well_e: float = 30000.0
    channel_qe: Any = (0.55, 1.0, 0.75)
    dark_current_e: float = 0.1
    glow_e: float = 0.0
    glow_scale: float = 30.0
    row_noise: float = 0.0
    column_noise: float = 0.0
    top_margin: int = 0
    left_margin: int = 0
    camera: CameraId = field(default_factory=lambda: CameraId("Rawmap", "Simulated Sensor", "SIM0001"))

    def __post_init__(self) -> None:
        cfa = np.asarray(self.cfa if self.cfa is not None else ((1, 1), (1, 1)))
        if cfa.shape != (2, 2) or not np.issubdtype(cfa.dtype, np.integer) or cfa.min() < 0 or cfa.max() > 3:
            raise ValueError(f"cfa must be (2, 2) colour indices 0..3, got {cfa.tolist()}")
        if self.cfa is not None:
            if set(np.where(cfa == 3, 1, cfa).ravel().tolist()) != {0, 1, 2}:
                raise ValueError(
                    f"cfa must hold red, green and blue (or be None for a monochrome sensor), got {cfa.tolist()}"
                )
            object.__setattr__(self, "cfa", tuple(tuple(int(v) for v in row) for row in cfa))
        b = np.asarray(self.black)
        if b.ndim == 0:
            object.__setattr__(self, "black", int(b))
        elif b.shape == (4,):
            object.__setattr__(self, "black", tuple(int(v) for v in b))
        else:
            raise ValueError(f"black must be an int or 4 ints (one per colour index), got {self.black!r}")
        qe = tuple(float(v) for v in np.asarray(self.channel_qe, dtype=float).ravel())
        if len(qe) != 3 or min(qe) <= 0:
            raise ValueError(f"channel_qe must be 3 positive numbers, got {self.channel_qe!r}")
        object.__setattr__(self, "channel_qe", qe)
        if self.height < 22 or self.width < 22:
            raise ValueError(f"the visible area must be at least 22x22 photosites, got {self.height}x{self.width}")
        if self.top_margin < 0 or self.left_margin < 0 or self.top_margin % 2 or self.left_margin % 2:
            raise ValueError(
                f"margins must be even and >= 0 (LibRaw rounds odd ActiveArea origins), got "
                f"top={self.top_margin}, left={self.left_margin}"
            )
        if not 0 < self.white <= 65535 or self.white <= int(np.max(self.black_levels())) + 16:
            raise ValueError(f"white ({self.white}) must be at most 65535 and well above black ({self.black})")
        if self.read_noise_e < 0 or self.adc_noise_dn < 0 or self.full_well_e <= 0 or self.dark_current_e < 0:
            raise ValueError("read_noise_e, adc_noise_dn, dark_current_e must be >= 0 and full_well_e > 0")
        if not (self.glow_e >= 0 and self.glow_scale > 0):
            raise ValueError(f"glow_e must be >= 0 and glow_scale > 0, got {self.glow_e!r}, {self.glow_scale!r}")
        if not (self.row_noise >= 0 and self.column_noise >= 0):
            raise ValueError(f"row_noise and column_noise must be >= 0, got {self.row_noise!r}, {self.column_noise!r}")

    # --- derived quantities ------------------------------------------------
    @property
    def mono(self) -> bool:
        """True for a monochrome sensor (``cfa`` None)."""
        return self.cfa is None

    @property
    def cfa_array(self) -> np.ndarray:
        """(2, 2) ndarray of uint8: the colour index of each pattern position (all 1 when mono)."""
        return np.array(self.cfa if self.cfa is not None else ((1, 1), (1, 1)), dtype=np.uint8)

    @property
    def cfa_string(self) -> str:
        """Pattern letters in reading order, e.g. ``"RGGB"``; ``""`` when mono."""
        if self.cfa is None:
            return ""
        return "".join("RGBG"[c] for c in self.cfa_array.ravel())

    def colour_plane(self) -> np.ndarray:
        """(2, 2) ndarray of int: RGB channel (0, 1, 2) sampled at each pattern position."""
        c = self.cfa_array.astype(np.int64)
        return np.where(c == 3, 1, c)

    def black_levels(self) -> np.ndarray:
        """(4,) ndarray of float64: black level per colour index."""
        b = np.asarray(self.black, dtype=np.float64)
        return np.full(4, float(b)) if b.ndim == 0 else b.copy()

    def black_map(self) -> np.ndarray:
        """(2, 2) ndarray of float64: black level at each pattern position."""
        return self.black_levels()[self.cfa_array]

    @property
    def full_shape(self) -> tuple[int, int]:
        """(height, width) of the full frame, optical-black border included."""
        return (self.height + self.top_margin, self.width + self.left_margin)

    def gain(self, iso: float) -> float:
        """Conversion gain in DN per electron at ``iso`` (ISO 100 maps full well to white)."""
        return (self.white - float(self.black_map().mean())) / self.full_well_e * float(iso) / 100.0

    def column_pattern(self) -> np.ndarray:
        """(W,) float32: each column's fixed offset in read-noise sigmas (:attr:`column_noise`)."""
        rng = np.random.default_rng([self.height, self.width, 0xC01])
        return (self.column_noise * rng.standard_normal(self.width)).astype(np.float32)

    def read_noise_dn(self, iso: float) -> float:
        """Read noise sigma in DN at ``iso``."""
        return float(math.hypot(self.read_noise_e * self.gain(iso), self.adc_noise_dn))

    def wb_neutral(self) -> tuple[float, float, float]:
        """Camera RGB of a neutral grey (for DNG AsShotNeutral), G = 1."""
        qe = np.asarray(self.channel_qe)
        return tuple(float(v) for v in qe / qe[1])  # type: ignore[return-value]

    # --- file edge --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        fh, fw = self.full_shape
        return {
            "height": self.height,
            "width": self.width,
            "top_margin": self.top_margin,
            "left_margin": self.left_margin,
            "full_height": fh,
            "full_width": fw,
            "cfa": self.cfa_string,
            "cfa_indices": None if self.cfa is None else [list(r) for r in self.cfa],
            "black": [int(v) for v in self.black_levels()],
            "white": self.white,
            "read_noise_e": self.read_noise_e,
            "adc_noise_dn": self.adc_noise_dn,
            "full_well_e": self.full_well_e,
            "channel_qe": list(self.channel_qe),
            "dark_current_e": self.dark_current_e,
            "glow_e": self.glow_e,
            "glow_scale": self.glow_scale,
            "row_noise": self.row_noise,
            "column_noise": self.column_noise,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], camera: CameraId | None = None) -> SensorSpec:
        black = d.get("black", 512)
        cfa = d.get("cfa_indices", [[0, 1], [1, 2]])
        if isinstance(black, list) and len(set(black)) == 1:
            black = black[0]
        kw: dict[str, Any] = {}
        if camera is not None:
            kw["camera"] = camera
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            cfa=None if cfa is None else np.array(cfa),
            black=black,
            white=int(d.get("white", 16383)),
            read_noise_e=float(d.get("read_noise_e", 3.0)),
            adc_noise_dn=float(d.get("adc_noise_dn", 1.5)),
            full_well_e=float(d.get("full_well_e", 30000.0)),
            channel_qe=tuple(d.get("channel_qe", (0.55, 1.0, 0.75))),
            dark_current_e=float(d.get("dark_current_e", 0.1)),
            glow_e=float(d.get("glow_e", 0.0)),
            glow_scale=float(d.get("glow_scale", 30.0)),
            row_noise=float(d.get("row_noise", 0.0)),
            column_noise=float(d.get("column_noise", 0.0)),
            top_margin=int(d.get("top_margin", 0)),
            left_margin=int(d.get("left_margin", 0)),
            **kw,
        )
