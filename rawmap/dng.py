"""Write Bayer DNG files that LibRaw, dcraw and Adobe readers open.

Used for repaired output, for the simulated test series of :mod:`rawmap.testing`
and for tests against dcraw / RawTherapee.  The file is one little-endian
TIFF IFD holding the whole sensor frame as 16-bit CFA data
(PhotometricInterpretation 32803) in a single strip, uncompressed or as one
lossless JPEG (``compress``), with the DNG tags that
LibRaw needs to reproduce exactly what it was given:

* ``raw_image_visible`` is ``mosaic`` bit for bit, and ``sizes.top_margin`` /
  ``sizes.left_margin`` are ``margins`` (DNG ``ActiveArea``) when a full
  frame with an optical-black border is written;
* ``raw_pattern`` follows ``cfa`` (LibRaw numbers the second green 3);
* ``black_level_per_channel`` and ``white_level`` are ``black`` and ``white``;
* ``other.iso_speed``, ``other.shutter_speed`` and ``other.timestamp`` come
  from an EXIF IFD.

The TIFF structure is written here (:func:`_tiff_bytes`), not by tifffile,
which writes neither an EXIF IFD nor already compressed strips.

The CFA pattern is given relative to the top-left photosite of the visible
area (DNG's convention: the pattern phase is that of the ``ActiveArea``
origin).
"""

from __future__ import annotations

import datetime as _dt
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ._version import __version__
from .fileio import atomic_write_bytes
from .frame import CameraId

__all__ = ["write_dng", "rgb_tiff_bytes", "DEFAULT_COLOR_MATRIX", "MIN_SIZE"]

#: Smallest visible height and width LibRaw and dcraw accept as a raw image.
MIN_SIZE = 22

# TIFF data types
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED, _SRATIONAL = 1, 2, 3, 4, 5, 7, 10

#: XYZ (D65) to linear sRGB: the ColorMatrix1 written when none is given, i.e.
#: a camera whose raw channels are the sRGB primaries.
DEFAULT_COLOR_MATRIX = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)
_D65 = 21  # EXIF LightSource code used for CalibrationIlluminant1


def _ascii(text: str) -> bytes:
    """TIFF ASCII: 7-bit, non-ASCII characters replaced by '?'."""
    return str(text).encode("ascii", "replace")


def _rational(x: float, *, signed: bool = False, max_den: int = 1_000_000) -> tuple[int, int]:
    """(numerator, denominator) of ``x`` fitting 32-bit TIFF (S)RATIONAL."""
    limit = 2**31 - 1 if signed else 2**32 - 1
    if not np.isfinite(x):
        raise ValueError(f"cannot store {x!r} as a TIFF rational")
    f = Fraction(float(x)).limit_denominator(max_den)
    while abs(f.numerator) > limit and max_den > 1:
        max_den //= 10
        f = Fraction(float(x)).limit_denominator(max_den)
    if abs(f.numerator) > limit:
        raise ValueError(f"{x!r} is too large for a TIFF rational")
    return f.numerator, f.denominator


def _flat_rationals(values: Sequence[float], *, signed: bool = False, max_den: int = 1_000_000) -> list[int]:
    out: list[int] = []
    for v in values:
        out.extend(_rational(v, signed=signed, max_den=max_den))
    return out


def _check_cfa(cfa: np.ndarray) -> np.ndarray:
    cfa = np.asarray(cfa)
    if cfa.shape != (2, 2) or not np.issubdtype(cfa.dtype, np.integer):
        raise ValueError(
            f"cfa must be a (2, 2) integer array of colour indices, got shape {cfa.shape} dtype {cfa.dtype}"
        )
    if cfa.min() < 0 or cfa.max() > 3:
        raise ValueError("cfa colour indices must be 0=R, 1=G, 2=B or 3=second G")
    colours = set(np.where(cfa == 3, 1, cfa).ravel().tolist())
    if colours != {0, 1, 2}:
        raise ValueError(f"cfa must contain red (0), green (1 or 3) and blue (2), got {cfa.tolist()}")
    return cfa.astype(np.int64)


def _black_per_position(black: float | Sequence[float] | np.ndarray, cfa: np.ndarray) -> np.ndarray:
    """(2, 2) float64 black level at each pattern position."""
    b = np.asarray(black, dtype=np.float64)
    if b.ndim == 0:
        out = np.full((2, 2), float(b))
    elif b.shape == (4,):
        out = b[cfa]
    else:
        raise ValueError(f"black must be a scalar or a (4,) array indexed by colour, got shape {b.shape}")
    if not np.all(np.isfinite(out)) or out.min() < 0 or out.max() > 65535:
        raise ValueError(f"black levels must lie in [0, 65535], got {out.tolist()}")
    return out


def write_dng(
    path: str | Path,
    mosaic: np.ndarray,
    *,
    cfa: np.ndarray,
    black: float | Sequence[float] | np.ndarray,
    white: int,
    camera: CameraId,
    exposure: float = 0.0,
    iso: float = 0.0,
    time: _dt.datetime | None = None,
    full_frame: np.ndarray | None = None,
    margins: tuple[int, int] = (0, 0),
    color_matrix: np.ndarray | None = None,
    as_shot_neutral: Sequence[float] | np.ndarray | None = None,
    orientation: int = 1,
    opcodes: bytes | None = None,
    temperature: float | None = None,
    compress: bool = False,
    aperture: float = 0.0,
    focal_length: float = 0.0,
    lens: str = "",
    lens_spec: Sequence[float] | None = None,
    owner: str = "",
    preview: bytes | np.ndarray | None = None,
    colour_tags: Mapping[int, Sequence[float]] | None = None,
    linearization: Sequence[int] | np.ndarray | None = None,
    private_data: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Bayer mosaic as a 16-bit DNG, uncompressed or lossless JPEG, atomically.

    Parameters
    ----------
    path : str or Path
        Output file (``.dng``).  Never replaced unless ``overwrite``.
    mosaic : (H, W) ndarray of uint16
        The visible area, in sensor orientation.  What LibRaw returns as
        ``raw_image_visible``.  H and W at least :data:`MIN_SIZE` (22).
    cfa : (2, 2) ndarray of int
        Colour index of each pattern position relative to the top-left
        visible photosite: 0=R, 1=G, 2=B; 3 (second green) is written as G.
    black : float or (4,) array_like
        Black level in DN, one value or one per colour index of ``cfa``
        (``black[cfa[y % 2, x % 2]]`` is the black of photosite (y, x)).  When
        the positions differ, ``BlackLevelRepeatDim`` 2x2 and one
        ``BlackLevel`` per position are written.  Integers are written
        exactly; fractional levels as rationals (LibRaw truncates them).
    white : int
        Saturation level in DN (``WhiteLevel``), at most 65535.
    camera : CameraId
        Written as Make, Model, ``UniqueCameraModel`` (``"Make Model"``) and,
        when ``camera.serial`` is not empty, ``CameraSerialNumber``.
        Non-ASCII characters become ``?``.
    exposure : float, optional
        Exposure time in seconds (EXIF ExposureTime); 0 leaves it out.
    iso : float, optional
        ISO speed (EXIF ISOSpeedRatings, rounded, at most 65535); 0 leaves it out.
    time : datetime, optional
        Capture time, camera clock (DateTimeOriginal and DateTime, to the
        second; any tzinfo is ignored).
    full_frame : (FH, FW) ndarray of uint16, optional
        The whole sensor frame including an optical-black border.  The visible
        area of this array (at ``margins``) is replaced by ``mosaic``; the
        border is written as given, and ``ActiveArea`` marks the visible area.
    margins : (int, int), optional
        (top, left) of the visible area inside ``full_frame``; must be
        (0, 0) without ``full_frame``.  Both must be even: LibRaw rounds an
        odd ActiveArea origin up and would crop the visible area.
    color_matrix : (3, 3) array_like, optional
        ColorMatrix1, XYZ (D65) to camera RGB; :data:`DEFAULT_COLOR_MATRIX`
        (a camera with sRGB primaries) when omitted.  CalibrationIlluminant1
        is D65.
    as_shot_neutral : (3,) array_like, optional
        AsShotNeutral: camera RGB of a neutral, e.g. ``1 / wb_multipliers``.
    orientation : int, optional
        TIFF Orientation (1..8), how to display; the data stays in sensor
        orientation.
    opcodes : bytes, optional
        An already encoded, big-endian DNG opcode list, written unchanged as
        OpcodeList1 (tag 51008).
    temperature : float, optional
        Temperature in degrees Celsius, written as EXIF Temperature (tag
        0x9400, EXIF 2.31; an ambient temperature: EXIF has no sensor
        temperature tag).  LibRaw does not report it through rawpy.
    compress : bool, optional
        Compress the frame losslessly (DNG Compression 7: one lossless JPEG,
        predictor 1, two interleaved components per row, as Adobe's DNG
        converter writes; see :mod:`rawmap._ljpeg`), typically to 40-60 %
        of the uncompressed size.  The first call compiles the encoder
        (numba, cached).  Uncompressed when false.
    aperture : float, optional
        F-number (EXIF FNumber); 0 leaves it out.
    focal_length : float, optional
        Focal length in mm (EXIF FocalLength); 0 leaves it out.
    lens : str, optional
        Lens name (EXIF LensModel); ``""`` leaves it out.
    lens_spec : (4,) array_like, optional
        Shortest and longest focal length (mm) and smallest f-number at each
        (0 = unknown), written as DNG LensInfo and EXIF LensSpecification.
    owner : str, optional
        The camera's owner (TIFF Artist, EXIF CameraOwnerName); LibRaw
        reports Artist as ``other.artist``.
    preview : bytes or (PH, PW, 3) ndarray of uint8, optional
        A reduced-resolution preview, written as a SubIFD (NewSubFileType
        1): JPEG bytes (e.g. the camera's own preview, from rawpy's
        ``extract_thumb``) are stored as they are (Compression 7, YCbCr), an
        RGB array uncompressed.  LibRaw's ``extract_thumb`` and dcraw
        ``-e`` return it.
    colour_tags : mapping of int to sequence of float, optional
        A source DNG's colour calibration, tag -> values (the tags of
        :data:`rawmap.metadata.DNG_COLOUR_TAGS`, as
        :attr:`rawmap.metadata.Metadata.dng_colour` gives them), written
        as they were; ColorMatrix1 and CalibrationIlluminant1 among them
        replace ``color_matrix`` and its D65.
    linearization : (N,) array_like of int, optional
        A LinearizationTable (tag 50712, N <= 65536 values in 0..65535):
        ``mosaic`` and ``full_frame`` then hold stored values below N, and
        readers report ``linearization[stored]`` (so ``black`` and ``white``
        are linear levels).  What a DNG with a non-linear encoding (e.g.
        Blackmagic's log curve) keeps, so that its repair compresses as
        well as the original.
    private_data : bytes, optional
        DNGPrivateData (tag 50740): e.g. the original's maker note in
        Adobe's ``MakN`` block (:func:`adobe_maker_note`).
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError, TypeError
        Invalid arguments (the message names the argument).
    rawmap.fileio.OutputExistsError
        ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from rawmap.frame import CameraId
    >>> m = np.full((24, 36), 600, dtype=np.uint16)
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.dng"
    >>> write_dng(p, m, cfa=np.array([[0, 1], [1, 2]]), black=512, white=16383,
    ...           camera=CameraId("Rawmap", "Test")).name
    'x.dng'
    """
    # --- validation -------------------------------------------------------
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2 or mosaic.dtype != np.uint16:
        raise TypeError(f"mosaic must be a (H, W) uint16 array, got shape {mosaic.shape} dtype {mosaic.dtype}")
    if mosaic.shape[0] < MIN_SIZE or mosaic.shape[1] < MIN_SIZE:
        raise ValueError(
            f"mosaic must be at least {MIN_SIZE}x{MIN_SIZE} photosites (LibRaw and dcraw refuse "
            f"smaller raw images), got {mosaic.shape[0]}x{mosaic.shape[1]}"
        )
    cfa = _check_cfa(cfa)
    black_pos = _black_per_position(black, cfa)
    white = int(white)
    if not 0 < white <= 65535 or white <= black_pos.max():
        raise ValueError(f"white must be above the black level and at most 65535, got {white}")
    if not isinstance(camera, CameraId):
        raise TypeError(f"camera must be a rawmap.frame.CameraId, got {type(camera).__name__}")
    if not np.isfinite(exposure) or exposure < 0:
        raise ValueError(f"exposure must be >= 0 seconds, got {exposure!r}")
    if not np.isfinite(iso) or iso < 0 or iso > 65535:
        raise ValueError(f"iso must lie in [0, 65535], got {iso!r}")
    if not 1 <= int(orientation) <= 8:
        raise ValueError(f"orientation must be a TIFF orientation 1..8, got {orientation!r}")
    top, left = (int(margins[0]), int(margins[1]))
    h, w = mosaic.shape
    if full_frame is None:
        if (top, left) != (0, 0):
            raise ValueError("margins need a full_frame holding the border; pass full_frame= or margins=(0, 0)")
        data = mosaic
    else:
        full_frame = np.asarray(full_frame)
        if full_frame.ndim != 2 or full_frame.dtype != np.uint16:
            raise TypeError(
                f"full_frame must be a (FH, FW) uint16 array, got shape {full_frame.shape} dtype {full_frame.dtype}"
            )
        if top < 0 or left < 0 or top + h > full_frame.shape[0] or left + w > full_frame.shape[1]:
            raise ValueError(
                f"a {h}x{w} mosaic at margins (top={top}, left={left}) does not fit in the "
                f"{full_frame.shape[0]}x{full_frame.shape[1]} full_frame"
            )
        if top % 2 or left % 2:
            raise ValueError(
                f"margins must be even (got top={top}, left={left}): LibRaw rounds an odd "
                "ActiveArea origin up to even and would crop the visible area"
            )
        data = full_frame.copy()
        data[top : top + h, left : left + w] = mosaic
    cm = DEFAULT_COLOR_MATRIX if color_matrix is None else np.asarray(color_matrix, dtype=np.float64)
    if cm.shape != (3, 3) or not np.all(np.isfinite(cm)):
        raise ValueError(f"color_matrix must be a finite (3, 3) array, got shape {cm.shape}")
    if as_shot_neutral is not None:
        asn = np.asarray(as_shot_neutral, dtype=np.float64)
        if asn.shape != (3,) or not np.all(asn > 0):
            raise ValueError("as_shot_neutral must be 3 positive numbers (camera R, G, B of a neutral)")
    if temperature is not None and not (np.isfinite(temperature) and -273.15 < temperature < 1000):
        raise ValueError(f"temperature must be a finite number of degrees Celsius, got {temperature!r}")
    if opcodes is not None and not isinstance(opcodes, (bytes, bytearray)):
        raise TypeError("opcodes must be bytes: an encoded DNG opcode list")
    for name, v in (("aperture", aperture), ("focal_length", focal_length)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if lens_spec is not None:
        spec = np.asarray(lens_spec, dtype=np.float64)
        if spec.shape != (4,) or not np.all(np.isfinite(spec)) or spec.min() < 0 or spec[0] <= 0:
            raise ValueError("lens_spec must be 4 numbers >= 0 (min and max focal length, f-number at each)")
    preview_ifd = None if preview is None else _preview_ifd(preview)
    colour = _colour_entries(colour_tags or {})
    if linearization is not None:
        lin = np.asarray(linearization)
        if lin.ndim != 1 or not 1 <= lin.size <= 65536 or not np.issubdtype(lin.dtype, np.integer):
            raise ValueError("linearization must be 1 to 65536 integers (a DNG LinearizationTable)")
        if lin.min() < 0 or lin.max() > 65535:
            raise ValueError("linearization values must lie in 0..65535")

    # --- tags -------------------------------------------------------------
    cfa_dng = np.where(cfa == 3, 1, cfa).astype(np.uint8)
    label = " ".join(p for p in (camera.make, camera.model) if p) or "Unknown camera"
    tags: list[tuple[int, int, int, object, bool]] = [
        (50706, _BYTE, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, _BYTE, 4, (1, 3, 0, 0) if opcodes else (1, 1, 0, 0), True),  # DNGBackwardVersion
        (271, _ASCII, 0, _ascii(camera.make), True),  # Make
        (272, _ASCII, 0, _ascii(camera.model), True),  # Model
        (50708, _ASCII, 0, _ascii(label), True),  # UniqueCameraModel
        (274, _SHORT, 1, int(orientation), True),  # Orientation
        (33421, _SHORT, 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, _BYTE, 4, tuple(int(c) for c in cfa_dng.ravel()), True),  # CFAPattern
        (50710, _BYTE, 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, _SHORT, 1, 1, True),  # CFALayout: rectangular
        (50717, _LONG, 1, white, True),  # WhiteLevel
        (50721, _SRATIONAL, 9, _flat_rationals(cm.ravel().tolist(), signed=True, max_den=10000), True),  # ColorMatrix1
        (50778, _SHORT, 1, _D65, True),  # CalibrationIlluminant1
    ]
    if np.all(black_pos == black_pos[0, 0]):
        bl = [float(black_pos[0, 0])]
    else:
        tags.append((50713, _SHORT, 2, (2, 2), True))  # BlackLevelRepeatDim (rows, cols)
        bl = [float(v) for v in black_pos.ravel()]
    if all(v == int(v) for v in bl):
        tags.append((50714, _LONG, len(bl), tuple(int(v) for v in bl), True))
    else:
        tags.append((50714, _RATIONAL, len(bl), _flat_rationals(bl, max_den=1000), True))
    if camera.serial:
        tags.append((50735, _ASCII, 0, _ascii(camera.serial), True))  # CameraSerialNumber
    if full_frame is not None:
        tags.append((50829, _LONG, 4, (top, left, top + h, left + w), True))  # ActiveArea
    tags.append((50719, _LONG, 2, (0, 0), True))  # DefaultCropOrigin (relative to ActiveArea)
    tags.append((50720, _LONG, 2, (w, h), True))  # DefaultCropSize
    if as_shot_neutral is not None:
        tags.append((50728, _RATIONAL, 3, _flat_rationals(np.asarray(asn).tolist(), max_den=10000), True))
    exif = _shot_exif(
        camera=camera, exposure=exposure, iso=iso, time=time, aperture=aperture, focal_length=focal_length, lens=lens
    )
    if time is not None:
        tags.append((306, _ASCII, 0, time.strftime("%Y:%m:%d %H:%M:%S").encode("ascii"), True))  # DateTime
    if temperature is not None:
        exif.append((37888, _SRATIONAL, 1, _rational(temperature, signed=True, max_den=1000)))  # Temperature
    if lens_spec is not None:
        spec_r = _flat_rationals(np.asarray(lens_spec, dtype=np.float64).tolist(), max_den=1000)
        spec_r = [0 if i % 2 and spec_r[i - 1] == 0 else v for i, v in enumerate(spec_r)]  # 0/0: unknown
        exif.append((42034, _RATIONAL, 4, spec_r))  # LensSpecification
        tags.append((50736, _RATIONAL, 4, spec_r, True))  # LensInfo
    if owner:
        exif.append((42032, _ASCII, 0, _ascii(owner)))  # CameraOwnerName
        tags.append((315, _ASCII, 0, _ascii(owner), True))  # Artist
    if opcodes:
        tags.append((51008, _UNDEFINED, len(opcodes), bytes(opcodes), True))  # OpcodeList1
    if private_data:
        tags.append((50740, _BYTE, len(private_data), tuple(bytes(private_data)), True))  # DNGPrivateData

    tags.append((305, _ASCII, 0, _ascii(f"rawmap {__version__}"), True))  # Software
    fh, fw = data.shape
    tags += [
        (254, _LONG, 1, 0, True),  # NewSubFileType: the main image
        (256, _LONG, 1, fw, True),  # ImageWidth
        (257, _LONG, 1, fh, True),  # ImageLength
        (258, _SHORT, 1, 16, True),  # BitsPerSample
        (262, _SHORT, 1, 32803, True),  # PhotometricInterpretation: CFA
        (277, _SHORT, 1, 1, True),  # SamplesPerPixel
        (278, _LONG, 1, fh, True),  # RowsPerStrip: one strip
        (284, _SHORT, 1, 1, True),  # PlanarConfiguration
    ]
    if compress:
        from ._ljpeg import encode_lossless_jpeg

        tags.append((259, _SHORT, 1, 7, True))  # Compression: lossless JPEG
        strip = encode_lossless_jpeg(data)
    else:
        tags.append((259, _SHORT, 1, 1, True))  # Compression: none
        strip = np.ascontiguousarray(data, dtype="<u2").tobytes()
    if linearization is not None:
        if int(data.max()) >= lin.size:
            raise ValueError(
                f"with a {lin.size}-entry linearization the stored values must be below {lin.size}, "
                f"got {int(data.max())}"
            )
        tags.append((50712, _SHORT, lin.size, tuple(int(v) for v in lin), True))  # LinearizationTable
    if colour:
        written = {e[0] for e in colour}
        tags = [t for t in tags if t[0] not in written] + [(*e, True) for e in colour]
    ifd0 = _Ifd([t[:4] for t in tags], [strip], exif=_Ifd(exif), subifds=[preview_ifd] if preview_ifd else [])
    return atomic_write_bytes(path, _tiff_bytes(ifd0), overwrite=overwrite)


_TYPE_FMT = {_BYTE: "B", _SHORT: "H", _LONG: "I", _RATIONAL: "I", _SRATIONAL: "i"}


def _shot_exif(
    *,
    camera: CameraId,
    exposure: float,
    iso: float,
    time: _dt.datetime | None,
    aperture: float,
    focal_length: float,
    lens: str,
) -> list[tuple[int, int, int, object]]:
    """EXIF IFD entries of the shot: version, exposure, ISO, capture time, body serial, f-number, focal length, lens.

    A value of 0 (or ``None``, ``""``) is unknown and left out.
    """
    exif: list[tuple[int, int, int, object]] = [(36864, _UNDEFINED, 4, b"0230")]  # ExifVersion
    if exposure > 0:
        exif.append((33434, _RATIONAL, 1, _rational(exposure, max_den=1_000_000)))  # ExposureTime
    if iso > 0:
        exif.append((34855, _SHORT, 1, min(int(round(iso)), 65535)))  # ISOSpeedRatings
    if time is not None:
        exif.append((36867, _ASCII, 0, time.strftime("%Y:%m:%d %H:%M:%S").encode("ascii")))  # DateTimeOriginal
    if camera.serial:
        exif.append((42033, _ASCII, 0, _ascii(camera.serial)))  # BodySerialNumber
    if aperture > 0:
        exif.append((33437, _RATIONAL, 1, _rational(aperture, max_den=1000)))  # FNumber
    if focal_length > 0:
        exif.append((37386, _RATIONAL, 1, _rational(focal_length, max_den=1000)))  # FocalLength
    if lens:
        exif.append((42036, _ASCII, 0, _ascii(lens)))  # LensModel
    return exif


def rgb_tiff_bytes(
    rgb: np.ndarray,
    *,
    camera: CameraId,
    exposure: float = 0.0,
    iso: float = 0.0,
    time: _dt.datetime | None = None,
    aperture: float = 0.0,
    focal_length: float = 0.0,
    lens: str = "",
    owner: str = "",
    icc_profile: bytes | None = None,
) -> bytes:
    """A baseline RGB TIFF (one uncompressed strip) of ``rgb`` with the shot's EXIF and an ICC profile.

    IFD0 holds Make, Model, DateTime, Artist, Software (rawmap and its
    version), Orientation 1 (the pixels are upright) and, when given, the
    ICC profile (InterColorProfile, tag 34675); an EXIF IFD holds exposure
    time, ISO, DateTimeOriginal, body serial, f-number, focal length, lens
    and owner (see :func:`_shot_exif`: unknown values are left out).

    Parameters
    ----------
    rgb : (H, W, 3) ndarray of uint8 or uint16
    camera : CameraId
    exposure, iso, time, aperture, focal_length, lens, owner : optional
        As :func:`write_dng`.
    icc_profile : bytes, optional
        The ICC profile of the colour space the pixels are in.

    Returns
    -------
    bytes
    """

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"rgb must be an (H, W, 3) array of uint8 or uint16, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    bits = rgb.dtype.itemsize * 8
    tags: list[tuple[int, int, int, object]] = [
        (254, _LONG, 1, 0),  # NewSubFileType
        (256, _LONG, 1, w),  # ImageWidth
        (257, _LONG, 1, h),  # ImageLength
        (258, _SHORT, 3, (bits, bits, bits)),  # BitsPerSample
        (259, _SHORT, 1, 1),  # Compression: none
        (262, _SHORT, 1, 2),  # PhotometricInterpretation: RGB
        (274, _SHORT, 1, 1),  # Orientation: upright
        (277, _SHORT, 1, 3),  # SamplesPerPixel
        (278, _LONG, 1, h),  # RowsPerStrip: one strip
        (284, _SHORT, 1, 1),  # PlanarConfiguration: chunky
        (305, _ASCII, 0, _ascii(f"rawmap {__version__}")),  # Software
    ]
    if camera.make:
        tags.append((271, _ASCII, 0, _ascii(camera.make)))  # Make
    if camera.model:
        tags.append((272, _ASCII, 0, _ascii(camera.model)))  # Model
    if time is not None:
        tags.append((306, _ASCII, 0, time.strftime("%Y:%m:%d %H:%M:%S").encode("ascii")))  # DateTime
    if owner:
        tags.append((315, _ASCII, 0, _ascii(owner)))  # Artist
    if icc_profile:
        tags.append((34675, _UNDEFINED, len(icc_profile), bytes(icc_profile)))  # InterColorProfile
    exif = _shot_exif(
        camera=camera, exposure=exposure, iso=iso, time=time, aperture=aperture, focal_length=focal_length, lens=lens
    )
    if owner:
        exif.append((42032, _ASCII, 0, _ascii(owner)))  # CameraOwnerName
    strip = np.ascontiguousarray(rgb, dtype=rgb.dtype.newbyteorder("<")).tobytes()
    return _tiff_bytes(_Ifd(tags, [strip], exif=_Ifd(exif)))


def _colour_entries(colour_tags: Mapping[int, Sequence[float]]) -> list[tuple[int, int, int, object]]:
    """IFD0 entries of a source DNG's colour tags (checked against DNG_COLOUR_TAGS)."""
    from .metadata import DNG_COLOUR_TAGS

    out: list[tuple[int, int, int, object]] = []
    for tag, values in colour_tags.items():
        if tag not in DNG_COLOUR_TAGS:
            raise ValueError(f"colour_tags: {tag} is not one of the DNG colour tags {sorted(DNG_COLOUR_TAGS)}")
        name, n = DNG_COLOUR_TAGS[tag]
        vals = np.asarray(values, dtype=np.float64).ravel()
        if vals.size != n or not np.all(np.isfinite(vals)):
            raise ValueError(f"colour_tags: {name} ({tag}) needs {n} finite numbers, got {vals.size}")
        if tag in (50778, 50779):
            out.append((tag, _SHORT, 1, int(vals[0])))
        elif tag == 50727:
            out.append((tag, _RATIONAL, n, _flat_rationals(vals.tolist(), max_den=100000)))
        else:
            out.append((tag, _SRATIONAL, n, _flat_rationals(vals.tolist(), signed=True, max_den=100000)))
    return out


def _jpeg_size(data: bytes) -> tuple[int, int, int]:
    """(height, width, components) from a JPEG's first SOF marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            prec, h, w, nc = struct.unpack_from(">BHHB", data, i + 4)
            return h, w, nc
        i += 2 + length
    raise ValueError("preview is not a JPEG with a frame header (SOF)")


def _preview_ifd(preview: bytes | np.ndarray) -> _Ifd:
    """The SubIFD of a reduced-resolution preview: JPEG bytes as they are, or an RGB array."""
    if isinstance(preview, (bytes, bytearray)):
        data = bytes(preview)
        if not data.startswith(b"\xff\xd8"):
            raise ValueError("preview bytes must be a JPEG (start with FF D8)")
        ph, pw, nc = _jpeg_size(data)
        if nc not in (1, 3):
            raise ValueError(f"preview JPEG must have 1 or 3 components, got {nc}")
        return _Ifd(
            [
                (254, _LONG, 1, 1),  # NewSubFileType: reduced resolution
                (256, _LONG, 1, pw),
                (257, _LONG, 1, ph),
                (258, _SHORT, nc, (8,) * nc),
                (259, _SHORT, 1, 7),  # Compression: JPEG
                (262, _SHORT, 1, 6 if nc == 3 else 1),  # YCbCr (the camera's JPEG) or grey
                (277, _SHORT, 1, nc),
                (278, _LONG, 1, ph),
                (284, _SHORT, 1, 1),
            ],
            [data],
        )
    rgb = np.asarray(preview)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise TypeError(f"preview must be JPEG bytes or a (H, W, 3) uint8 array, got {type(preview).__name__}")
    ph, pw = rgb.shape[:2]
    return _Ifd(
        [
            (254, _LONG, 1, 1),
            (256, _LONG, 1, pw),
            (257, _LONG, 1, ph),
            (258, _SHORT, 3, (8, 8, 8)),
            (259, _SHORT, 1, 1),  # uncompressed
            (262, _SHORT, 1, 2),  # RGB
            (277, _SHORT, 1, 3),
            (278, _LONG, 1, ph),
            (284, _SHORT, 1, 1),
        ],
        [np.ascontiguousarray(rgb).tobytes()],
    )


@dataclass
class _Ifd:
    """One TIFF IFD to write: its entries ``(tag, type, count, value)``, strips, child IFDs.

    ``segments`` become StripOffsets/StripByteCounts (273/279), ``exif`` the
    ExifIFD pointer (34665) and ``subifds`` the SubIFDs tag (330); the count
    of ASCII and UNDEFINED entries is taken from the value.
    """

    entries: list[tuple[int, int, int, object]]
    segments: list[bytes] = field(default_factory=list)
    exif: _Ifd | None = None
    subifds: list[_Ifd] = field(default_factory=list)


def adobe_maker_note(note: bytes, offset: int, order: str) -> bytes:
    """A maker note as DNGPrivateData the way Adobe's converter keeps it, so readers find its tags.

    ``b"Adobe\\0" b"MakN"``, the byte count that follows (big-endian), the
    original file's byte order (``"II"``/``"MM"``), the note's original
    offset from its TIFF header (big-endian: a note's own offsets may count
    from there) and the note's bytes (DNG 1.4 specification, "MakerNote
    safety"; read by exiftool).

    Examples
    --------
    >>> adobe_maker_note(b"Nikon", 1234, "MM")[:16]
    b'Adobe\\x00MakN\\x00\\x00\\x00\\x0bMM'
    """
    if order not in ("II", "MM"):
        raise ValueError(f"order must be 'II' or 'MM', got {order!r}")
    body = order.encode("ascii") + struct.pack(">I", int(offset)) + bytes(note)
    return b"Adobe\x00MakN" + struct.pack(">I", len(body)) + body


def adobe_crw_notes(records: Sequence[tuple[int, bytes]], order: str) -> bytes:
    """A CRW's CIFF records as DNGPrivateData the way Adobe's converter keeps them.

    ``b"Adobe\\0" b"CRW "``, the byte count that follows (big-endian),
    the original file's byte order (``"II"``/``"MM"``), the number of
    records (big-endian 16 bits), then each record: its CIFF tag
    (big-endian 16 bits, type bits included), its size (big-endian 32
    bits) and its bytes as the original stores them.  Sub-directories are
    flattened (exiftool reads this as the ``AdobeCRW`` directory of its
    CanonRaw tags, and derives the Canon maker-note tags from it).

    Parameters
    ----------
    records : sequence of (int, bytes)
        (tag, data) in the original's directory order, at most 65535.
    order : {"II", "MM"}
        The original file's byte order.

    Examples
    --------
    >>> adobe_crw_notes([(0x0810, b"Ann\\0")], "II")
    b'Adobe\\x00CRW \\x00\\x00\\x00\\x0eII\\x00\\x01\\x08\\x10\\x00\\x00\\x00\\x04Ann\\x00'
    """
    if order not in ("II", "MM"):
        raise ValueError(f"order must be 'II' or 'MM', got {order!r}")
    if len(records) > 0xFFFF:
        raise ValueError(f"at most 65535 CIFF records, got {len(records)}")
    body = order.encode("ascii") + struct.pack(">H", len(records))
    body += b"".join(struct.pack(">HI", tag & 0xFFFF, len(data)) + bytes(data) for tag, data in records)
    return b"Adobe\x00CRW " + struct.pack(">I", len(body)) + body


def _entry_bytes(typ: int, value: object) -> tuple[int, bytes]:
    """(count, little-endian bytes) of one IFD entry's value."""
    if typ in (_ASCII, _UNDEFINED):
        raw = bytes(value)  # type: ignore[call-overload]
        if typ == _ASCII and not raw.endswith(b"\0"):
            raw += b"\0"
        return len(raw), raw
    vals = list(value) if isinstance(value, (tuple, list)) else [value]
    raw = struct.pack(f"<{len(vals)}{_TYPE_FMT[typ]}", *vals)
    return (len(vals) // 2 if typ in (_RATIONAL, _SRATIONAL) else len(vals)), raw


def _tiff_bytes(ifd0: _Ifd) -> bytes:
    """A little-endian classic TIFF holding ``ifd0`` (and its EXIF and SubIFDs).

    Strip data first, then each IFD after its children, so that every
    offset is known when a table is written.  tifffile is not used: it
    writes neither an EXIF IFD nor already compressed strips with DNG's
    tags.
    """
    out = bytearray(b"II*\0\0\0\0\0")

    def align() -> None:
        if len(out) % 2:
            out.append(0)

    def place(ifd: _Ifd) -> int:
        entries = list(ifd.entries)
        if ifd.segments:
            offsets = []
            for seg in ifd.segments:
                align()
                offsets.append(len(out))
                out.extend(seg)
            entries.append((273, _LONG, len(offsets), offsets))
            entries.append((279, _LONG, len(offsets), [len(s) for s in ifd.segments]))
        if ifd.exif is not None:
            entries.append((34665, _LONG, 1, place(ifd.exif)))
        if ifd.subifds:
            entries.append((330, _LONG, len(ifd.subifds), [place(s) for s in ifd.subifds]))
        entries.sort(key=lambda e: e[0])
        align()
        base = len(out)
        data_at = base + 2 + 12 * len(entries) + 4
        table = bytearray(struct.pack("<H", len(entries)))
        blob = bytearray()
        for code, typ, _count, value in entries:
            count, raw = _entry_bytes(typ, value)
            if len(raw) <= 4:
                fld = raw.ljust(4, b"\0")
            else:
                fld = struct.pack("<I", data_at + len(blob))
                blob += raw
                if len(blob) % 2:
                    blob += b"\0"
            table += struct.pack("<HHI", code, typ, count) + fld
        table += struct.pack("<I", 0)  # no next IFD
        out.extend(table + blob)
        return base

    struct.pack_into("<I", out, 4, place(ifd0))
    return bytes(out)
