"""The one frame type every part of rawmap after the reader works on."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

__all__ = [
    "CameraId",
    "Frame",
    "SourceKind",
    "printable",
    "NAME_LIMIT",
    "BodyKey",
    "CFA_LETTERS",
    "cfa_letters",
    "cfa_pattern",
    "black_per_position",
]

#: Longest name (camera make, model, serial) put in a message, in characters.
NAME_LIMIT = 80

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: object, limit: int | None = NAME_LIMIT) -> str:
    r"""``text`` safe to print on a terminal: control characters replaced, at most ``limit`` characters.

    File metadata (EXIF Make, Model, serial) is whatever the file says:
    ESC, CR or LF in it would move the cursor or forge lines.  Each control
    character (C0, DEL, C1, line and paragraph separators) becomes ``?``;
    a text longer than ``limit`` is cut and ends with ``…``.

    Examples
    --------
    >>> printable("Canon\x1b[2J\r\nEOS")
    'Canon?[2J??EOS'
    >>> printable("X" * 100, 10)
    'XXXXXXXXX…'
    """
    out = _CONTROL.sub("?", str(text))
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)] + "…"
    return out


class SourceKind(str, Enum):
    """Where a frame's pixels came from."""

    RAW = "raw"  #: a sensor mosaic before demosaicing: decoded by LibRaw, or a grayscale image read with ``--cfa``
    IMAGE = "image"  #: an already developed 8/16-bit image (JPEG, TIFF, PNG) read by Pillow


@dataclass(frozen=True, order=True)
class CameraId:
    """Identity of one camera body.

    Attributes
    ----------
    make, model : str
        As the file names them (DNG ``UniqueCameraModel`` or EXIF Make/Model,
        LibRaw's names where the file has neither).
    serial : str
        Body serial number, ``""`` when the file does not record one.
    serial_source : str
        Where the serial was read (:attr:`rawmap.metadata.Metadata.serial_source`:
        ``"exif"``, ``"dng"``, ``"makernote"``), ``""`` when unknown (no
        serial, a name given by hand, a map written before rawmap recorded
        it).  Not part of the identity: two files of one body whose serials
        come from different tags are the same body.
    """

    make: str
    model: str
    serial: str = ""
    serial_source: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """``"Make Model[ Serial]"`` for messages, the make left out when the model repeats it.

        Safe to print (:func:`printable`: control characters replaced, at
        most :data:`NAME_LIMIT` characters).

        Examples
        --------
        >>> CameraId("Canon", "Canon EOS D30", "171048961").label
        'Canon EOS D30 171048961'
        >>> CameraId("NIKON CORPORATION", "NIKON D1").label
        'NIKON D1'
        >>> CameraId("Eastman Kodak Company", "Kodak DC50").label
        'Kodak DC50'
        >>> CameraId("Rawmap", "Simulated Sensor").label
        'Rawmap Simulated Sensor'
        """
        make, model = " ".join(self.make.split()), " ".join(self.model.split())
        first = model.split(" ", 1)[0].lower()
        if first and first in make.lower().split():
            make = ""  # "Canon" "Canon EOS D30"; "NIKON CORPORATION" "NIKON D1"; "Eastman Kodak Company" "Kodak ..."
        parts = [make, model] + ([self.serial] if self.serial else [])
        return printable(" ".join(p for p in parts if p))

    @property
    def slug(self) -> str:
        """A file-system safe name for this body, e.g. ``canon-eos-d30-171048961``."""
        text = "-".join(p for p in (self.make, self.model, self.serial) if p) or "unknown-camera"
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown-camera"

    def to_dict(self) -> dict[str, str]:
        """``make``, ``model``, ``serial``, and ``serial_source`` when known."""
        d = {"make": self.make, "model": self.model, "serial": self.serial}
        if self.serial and self.serial_source:
            d["serial_source"] = self.serial_source
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CameraId:
        return cls(
            str(d.get("make", "")), str(d.get("model", "")), str(d.get("serial", "")), str(d.get("serial_source", ""))
        )


#: What a library entry and a map belong to: a body, and the kind of files (RAW or developed
#: images) the map is made from.
BodyKey = tuple[CameraId, SourceKind]


#: Colour letter of each colour index of a CFA pattern (0=R, 1=G, 2=B, 3=the second G), LibRaw's convention.
CFA_LETTERS = "RGBG"


def cfa_letters(cfa: np.ndarray | None) -> str:
    """A (2, 2) pattern of colour indices as letters in reading order; ``""`` for none.

    Parameters
    ----------
    cfa : (2, 2) array_like of int or None
        Colour index (0=R, 1=G, 2=B, 3=second G) of each position.

    Examples
    --------
    >>> cfa_letters(np.array([[0, 1], [3, 2]])), cfa_letters(None)
    ('RGGB', '')
    """
    if cfa is None:
        return ""
    return "".join(CFA_LETTERS[int(c)] for c in np.asarray(cfa).ravel())


def cfa_pattern(letters: str) -> np.ndarray | None:
    """Letters of a 2x2 pattern in reading order (``"RGGB"``) as colour indices; ``None`` for ``""``.

    The inverse of :func:`cfa_letters`, as LibRaw numbers the colours: a G
    in a row with R is 1, a G in a row with B is 3 (as
    :data:`rawmap.reader.CFA_PATTERNS`).

    Parameters
    ----------
    letters : str
        Four letters of R, G and B (case ignored), or ``""`` (no pattern).

    Returns
    -------
    (2, 2) ndarray of uint8 or None

    Raises
    ------
    ValueError
        ``letters`` is neither four letters of R, G, B nor empty.

    Examples
    --------
    >>> cfa_pattern("RGGB").tolist(), cfa_pattern("GBRG").tolist()
    ([[0, 1], [3, 2]], [[3, 2], [0, 1]])
    """
    if letters == "":
        return None
    up = letters.upper()
    if len(up) != 4 or set(up) - set("RGB"):
        raise ValueError(f"a CFA pattern is four letters of R, G and B (e.g. RGGB), got {letters!r}")
    idx = []
    for i, ch in enumerate(up):
        if ch == "G":
            idx.append(3 if "B" in up[i & 2 : (i & 2) + 2] else 1)
        else:
            idx.append(CFA_LETTERS.index(ch))
    return np.array(idx, dtype=np.uint8).reshape(2, 2)


def black_per_position(black: np.ndarray, cfa: np.ndarray | None) -> np.ndarray:
    """(2, 2) ndarray of float64: the black level at each position of the 2x2 pattern.

    Parameters
    ----------
    black : (4,) array_like of float
        Black level per colour index (as :attr:`Frame.black`).
    cfa : (2, 2) ndarray of int or None
        Colour index per position; ``None`` (images, whose black is zero, and
        monochrome mosaics) gives ``black[0]`` everywhere.
    """
    b = np.asarray(black, dtype=np.float64).ravel()
    if cfa is None:
        return np.full((2, 2), float(b[0]) if b.size else 0.0)
    return b[np.asarray(cfa)]


@dataclass
class Frame:
    """One photo, reduced to what mapping and repair need.

    Attributes
    ----------
    path : Path
        File it was read from.
    mosaic : (H, W) ndarray of uint16
        For RAW input, the visible area of the Bayer mosaic in sensor
        orientation (``raw_image_visible``), a private copy; for a
        grayscale image read as a mosaic (:class:`rawmap.reader.MosaicSpec`),
        its pixels as stored.  For image
        input, ``(H, W, C)`` ndarray of uint8 or uint16 (C = 1 or 3), turned
        back to sensor orientation (EXIF orientation undone).
    cfa : (2, 2) ndarray of uint8 or None
        Colour index (0=R, 1=G, 2=B, 3=second G) of each position of the
        2x2 pattern, ``None`` for image input and for a monochrome sensor's
        mosaic (``source`` RAW, no colour filters).
    black : (4,) ndarray of float64
        Black level per colour index of ``cfa`` (``black[cfa[y % 2, x % 2]]``
        is the black of photosite (y, x)).  Zeros for image input; four
        equal values for a monochrome mosaic.
    white : int
        Saturation level in DN.
    exposure : float
        Exposure time in seconds, 0 when unknown.
    iso : float
        ISO speed, 0 when unknown.
    time : datetime or None
        Capture time (naive, camera clock), ``None`` when unknown.
    camera : CameraId
        The body that took it.
    source : SourceKind
        RAW mosaic or developed image.
    format : str
        Short file-format name ("NEF", "DNG", "JPEG", ...).
    margins : tuple of int
        (top, left) of the visible area inside the full sensor frame.
    full_shape : tuple of int
        (height, width) of the full sensor frame including margins.
    extra : dict
        Reader-specific details.
    temperature : float or None
        Sensor (or, from EXIF, ambient) temperature in degrees C, ``None``
        when the file does not say.
    """

    path: Path
    mosaic: np.ndarray
    cfa: np.ndarray | None
    black: np.ndarray
    white: int
    exposure: float
    iso: float
    time: _dt.datetime | None
    camera: CameraId
    source: SourceKind = SourceKind.RAW
    format: str = ""
    margins: tuple[int, int] = (0, 0)
    full_shape: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)
    temperature: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the visible area."""
        h, w = self.mosaic.shape[:2]
        return h, w

    @property
    def cfa_string(self) -> str:
        """The pattern as letters in reading order, e.g. ``"RGGB"``; ``""`` for images and monochrome mosaics."""
        return cfa_letters(self.cfa)

    @property
    def black2(self) -> np.ndarray:
        """(2, 2) black level at each pattern position (:func:`black_per_position`)."""
        return black_per_position(self.black, self.cfa)

    @property
    def is_mono(self) -> bool:
        """A monochrome sensor's mosaic: RAW semantics (isolated defects), no colour pattern."""
        return self.source is SourceKind.RAW and self.cfa is None
