"""Read photos into :class:`~rawmap.frame.Frame`: the one module that owns rawpy and Pillow.

* Camera RAW files are decoded by LibRaw (through rawpy) into the visible
  Bayer mosaic, in sensor orientation, with its CFA pattern and levels.
  Files without a 2x2 RGB colour mosaic (linear DNG, scanners, stacked
  colour, X-Trans, monochrome) are refused with :class:`NotBayerError`.
* JPEG, TIFF and PNG images are read with Pillow (16-bit TIFF with
  tifffile, which keeps all 16 bits) as ``(H, W, C)`` arrays, turned back to
  sensor orientation.
* With a :class:`MosaicSpec` (``rawmap map --cfa``), grayscale 8/16-bit
  TIFF, PNG and PGM files are read as what machine-vision and astronomy
  cameras save in them: the raw sensor mosaic itself (a Bayer pattern the
  user names, or a monochrome sensor), as stored (no rotation), with its
  own white level (PNG ``sBIT``, TIFF MaxSampleValue or BitsPerSample,
  PGM maximum value).  Such a frame is a RAW frame
  (``source`` :attr:`SourceKind.RAW`); a monochrome one has ``cfa=None``.
* Camera identity and shot data come from :mod:`rawmap.metadata`, which
  reads only the file's headers; LibRaw's figures fill what the headers
  lack.

Everything after this module sees only :class:`~rawmap.frame.Frame` and
:class:`FileInfo`.  Every failure is an :class:`~rawmap.errors.InputError`
whose one-line message names the file, what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import functools
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rawpy
import tifffile
from PIL import Image

from .errors import InputError, NotBayerError, UnreadableFileError, UnsupportedFileError
from .frame import CameraId, Frame, SourceKind
from .metadata import Metadata, read_metadata

__all__ = [
    "CFA_PATTERNS",
    "FileInfo",
    "MAX_PHOTOSITES",
    "MIN_SIDE",
    "MOSAIC_EXTENSIONS",
    "MosaicSpec",
    "IMAGE_EXTENSIONS",
    "RAW_EXTENSIONS",
    "identify",
    "is_candidate",
    "quiet_decoders",
    "read_frame",
    "read_info",
    "visible_shape",
]

#: File-name extensions (lower case, no dot) of camera RAW formats LibRaw reads.
RAW_EXTENSIONS = frozenset(
    """3fr ari arw bay cap cr2 cr3 crw cs1 dc2 dcr dcs dng drf eip erf fff gpr iiq k25 kc2
    kdc mdc mef mfw mos mrw nef nrw orf ori pef ptx pxn qtk raf raw rdc rw2 rwl rwz sr2 srf
    srw sti x3f""".split()
)
#: File-name extensions (lower case, no dot) of developed images read with Pillow.
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "jpe", "tif", "tiff", "png"})

#: File-name extensions (lower case, no dot) read only as a raw mosaic (with a :class:`MosaicSpec`).
MOSAIC_EXTENSIONS = frozenset({"pgm"})

#: ``--cfa`` names -> colour index (0=R, 1=G, 2=B, 3=second G) per pattern position, LibRaw's
#: convention; ``"mono"`` (a sensor without colour filters) has no pattern.
CFA_PATTERNS: dict[str, np.ndarray | None] = {
    "RGGB": np.array([[0, 1], [3, 2]], np.uint8),
    "BGGR": np.array([[2, 3], [1, 0]], np.uint8),
    "GRBG": np.array([[1, 0], [2, 3]], np.uint8),
    "GBRG": np.array([[3, 2], [0, 1]], np.uint8),
    "mono": None,
}

#: Fewest rows and columns of a frame rawmap reads (the statistics need a 2x2 pattern's neighbours).
MIN_SIDE = 4
#: Most photosites a frame may have: more than any camera's Bayer sensor (the largest, 150 MP medium
#: format backs, have about 151 million); a header claiming more is damaged.
MAX_PHOTOSITES = 200_000_000
#: Most photosites a RAW file may hold per byte of its size: 32 is 1/4 bit per photosite, below what
#: any lossless codec reaches on a real (noisy) frame; a header claiming more is damaged.
_PHOTOSITES_PER_BYTE = 32
#: Share of a frame's photosites above its white level beyond which the level cannot be right.
_ABOVE_WHITE_MAX = 0.5

_FORMATS_HINT = "rawmap reads camera RAW files such as NEF, CR2, CR3, CRW, DNG, ARW, ORF, RW2 or PEF, and JPEG, TIFF or PNG images"
_RECOPY_HINT = "copy it again from the camera card or a backup"
_LIBRAW_VERSION = ".".join(str(v) for v in rawpy.libraw_version)


@dataclass(frozen=True)
class MosaicSpec:
    """How to read grayscale image files as a raw sensor mosaic (``rawmap map --cfa``).

    Machine-vision and astronomy software saves the sensor's mosaic (or a
    monochrome sensor's image) as a grayscale 8- or 16-bit TIFF, PNG or
    PGM, usually without exposure data.  Read with this spec, such a file
    becomes a RAW frame: the pixels as stored, no demosaicing assumed.

    Attributes
    ----------
    cfa : str
        ``"RGGB"``, ``"BGGR"``, ``"GRBG"``, ``"GBRG"`` (the colours of the
        top-left 2x2 photosites in reading order) or ``"mono"`` (no colour
        filters: ``Frame.cfa`` is ``None``).
    black : int
        Black level in DN, the same for every photosite (0: the files hold
        black-subtracted or offset-free data).
    exposure : float
        Exposure time in seconds for files that do not record one (0:
        unknown).  A file's own EXIF ExposureTime wins.
    iso : float
        ISO speed (or gain in ISO-like units) for files that do not record
        one; a file's own ISO wins.
    camera : CameraId or None
        The body that took every file read with this spec.  ``None``: the
        file's Make/Model/serial tags, else an unnamed body named by the
        pattern and size (``"RGGB sensor 1280x960"``), so that frames of
        one size group as one body.

    Raises
    ------
    ValueError
        An unknown pattern, or a negative black level, exposure or ISO.

    Examples
    --------
    >>> MosaicSpec("RGGB", exposure=2.0).pattern.tolist()
    [[0, 1], [3, 2]]
    >>> MosaicSpec("mono").pattern is None
    True
    """

    cfa: str
    black: int = 0
    exposure: float = 0.0
    iso: float = 0.0
    camera: CameraId | None = None

    def __post_init__(self) -> None:
        if self.cfa not in CFA_PATTERNS:
            raise ValueError(f"cfa must be one of {', '.join(CFA_PATTERNS)}, got {self.cfa!r}")
        if int(self.black) != self.black or self.black < 0 or self.black > 65534:
            raise ValueError(f"black must be an integer in 0..65534, got {self.black!r}")
        if not self.exposure >= 0 or not self.iso >= 0:
            raise ValueError(f"exposure and iso must be >= 0, got exposure={self.exposure!r}, iso={self.iso!r}")

    @property
    def pattern(self) -> np.ndarray | None:
        """(2, 2) ndarray of uint8 (a fresh copy), or ``None`` for ``"mono"``."""
        p = CFA_PATTERNS[self.cfa]
        return None if p is None else p.copy()


@dataclass(frozen=True, eq=False)
class FileInfo:
    """What a photo is, without its pixels (what ``rawmap info`` shows).

    Attributes
    ----------
    path : Path
        The file.
    format : str
        Short format name: the RAW extension upper-cased (``"NEF"``,
        ``"CRW"``, ``"DNG"``), or ``"JPEG"``, ``"TIFF"``, ``"PNG"``.
    source : SourceKind
        RAW mosaic or developed image.
    camera : CameraId
        Make, model and body serial (``""`` where unknown).
    shape : tuple of int
        (H, W) of the visible area in sensor orientation, as
        ``Frame.mosaic.shape[:2]`` will be.
    channels : int
        1 for a RAW mosaic or a grayscale image, 3 for RGB.
    dtype : str
        ``"uint16"`` or ``"uint8"``.
    cfa : (2, 2) ndarray of uint8 or None
        Colour index (0=R, 1=G, 2=B, 3=second G) of each pattern position,
        relative to the top-left visible photosite; ``None`` for images.
    black : (4,) ndarray of float64
        Black level per colour index; zeros for images.
    white : int
        Saturation level in DN.
    exposure : float
        Exposure time in seconds, 0 when unknown.
    iso : float
        ISO speed, 0 when unknown.
    time : datetime or None
        Capture time, camera clock (naive).
    margins : tuple of int
        (top, left) of the visible area inside the full sensor frame.
    full_shape : tuple of int
        (height, width) of the full sensor frame including margins.
    orientation : int
        EXIF/TIFF Orientation as stored (1..8), 0 when absent.  Display
        information only: pixels are always returned in sensor orientation.
    extra : dict
        Format-specific details: ``"flip"`` (LibRaw display flip) for RAW,
        ``"rotation"`` (what was undone to return a rotated image to
        sensor orientation, ``""`` for nothing) for images.
    """

    path: Path
    format: str
    source: SourceKind
    camera: CameraId
    shape: tuple[int, int]
    channels: int
    dtype: str
    cfa: np.ndarray | None
    black: np.ndarray
    white: int
    exposure: float
    iso: float
    time: _dt.datetime | None
    margins: tuple[int, int] = (0, 0)
    full_shape: tuple[int, int] = (0, 0)
    orientation: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def cfa_string(self) -> str:
        """The pattern as letters in reading order, e.g. ``"RGGB"``; ``""`` for images."""
        if self.cfa is None:
            return ""
        return "".join("RGBG"[int(c)] for c in np.asarray(self.cfa).ravel())

    def to_frame(self, mosaic: np.ndarray) -> Frame:
        """The :class:`Frame` of these facts and ``mosaic``.

        Parameters
        ----------
        mosaic : (H, W) or (H, W, C) ndarray
            Pixels of shape ``shape`` (plus ``channels`` for images).
        """
        return Frame(
            path=self.path,
            mosaic=mosaic,
            cfa=None if self.cfa is None else self.cfa.copy(),
            black=self.black.copy(),
            white=self.white,
            exposure=self.exposure,
            iso=self.iso,
            time=self.time,
            camera=self.camera,
            source=self.source,
            format=self.format,
            margins=self.margins,
            full_shape=self.full_shape,
            extra=dict(self.extra, orientation=self.orientation),
        )


# --------------------------------------------------------------------------- public API

def is_candidate(path: str | os.PathLike[str], *, mosaic: bool = False) -> bool:
    """Whether a folder scan should try this file, judged by its name only.

    Parameters
    ----------
    path : str or path-like
    mosaic : bool
        The scan reads grayscale images as raw mosaics (a :class:`MosaicSpec`
        is given): PGM files (:data:`MOSAIC_EXTENSIONS`) are taken too.

    Returns
    -------
    bool
        True for RAW extensions LibRaw reads (:data:`RAW_EXTENSIONS`) and
        for JPEG/TIFF/PNG (:data:`IMAGE_EXTENSIONS`), any letter case.
        False for hidden files and macOS ``._`` resource-fork companions,
        which carry the photo's extension but hold no photo.

    Examples
    --------
    >>> is_candidate("DSC_0001.NEF"), is_candidate("IMG_1.jpeg"), is_candidate("._IMG_1.CR2")
    (True, True, False)
    >>> is_candidate("notes.txt"), is_candidate("dark_001.pgm"), is_candidate("dark_001.pgm", mosaic=True)
    (False, False, True)
    """
    name = Path(path).name
    if name.startswith("."):
        return False
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return ext in RAW_EXTENSIONS or ext in IMAGE_EXTENSIONS or (mosaic and ext in MOSAIC_EXTENSIONS)


def read_frame(
    path: str | os.PathLike[str],
    *,
    out: np.ndarray | None = None,
    share: bool = False,
    mosaic: MosaicSpec | None = None,
) -> Frame:
    """Decode a photo's pixels and metadata.

    Parameters
    ----------
    path : str or path-like
        A camera RAW file, or a JPEG, TIFF or PNG image (with ``mosaic``:
        a grayscale TIFF, PNG or PGM holding a raw mosaic).
    out : (H, W) ndarray of uint16, optional
        A writeable C-contiguous array to copy a RAW file's visible area
        into, when it has that shape: a series reuses a few such buffers
        instead of having fresh memory mapped in for every frame.  Ignored
        (a new array is made) for another shape and for images.
    share : bool
        For a RAW file whose visible area is one contiguous block of
        LibRaw's buffer (no left or right margin), return a view of that
        buffer instead of a copy: LibRaw's memory, and the file, stay open
        until the last reference to ``mosaic`` is dropped.  Saves a copy
        and a frame's worth of memory; the caller must not write to it.
    mosaic : MosaicSpec, optional
        Read grayscale TIFF, PNG and PGM files as a raw sensor mosaic of
        this pattern (RAW files are read as always).  Without it such files
        are developed images and PGM files are refused.

    Returns
    -------
    Frame
        For RAW: ``mosaic`` is the visible area, ``(H, W)`` ndarray of
        uint16 in sensor orientation (a private copy: ``out`` when it was
        used; LibRaw's own buffer with ``share``), with ``cfa``,
        ``black`` and ``white`` from LibRaw.  For images: ``(H, W, C)``
        ndarray of uint8 or uint16 (C = 1 or 3) in sensor orientation,
        ``cfa=None``, zero black, ``white`` 255 or 65535.  For an image
        read with ``mosaic``: ``source`` RAW, ``(H, W)`` ndarray of uint16
        as stored (8-bit values kept as they are), ``cfa`` the spec's
        pattern (``None`` for mono), the spec's black level and the file's
        white level; ``format`` "TIFF", "PNG" or "PGM", ``extra["mosaic"]``
        True, ``extra["dtype"]`` the file's sample type and
        ``extra["shift"]`` the bits a PNG's samples were shifted down by
        (see ``sBIT`` in :class:`MosaicSpec`).

    Raises
    ------
    UnreadableFileError
        Missing, empty, truncated or corrupt file, a folder, or not a photo.
    UnsupportedFileError
        A format or variant that LibRaw / Pillow cannot decode.
    NotBayerError
        A RAW file without a 2x2 RGB colour mosaic (linear DNG, scanner or
        stacked-colour data, X-Trans, monochrome); with ``mosaic``, a
        colour or lossy (JPEG) image.

    Examples
    --------
    >>> frame = read_frame("DSC_0001.NEF")  # doctest: +SKIP
    >>> frame.mosaic.shape, frame.cfa_string, frame.camera.label  # doctest: +SKIP
    ((1324, 2012), 'BGGR', 'NIKON CORPORATION NIKON D1')
    """
    info, pixels = _read(path, pixels=True, out=out, share=share, mosaic=mosaic)
    return info.to_frame(pixels)  # type: ignore[arg-type]  # pixels=True always gives an array


def read_info(path: str | os.PathLike[str], *, mosaic: MosaicSpec | None = None) -> FileInfo:
    """Read what a photo is (camera, geometry, CFA, levels, exposure) without keeping its pixels.

    For images only the header is read.  For RAW files LibRaw still has to
    unpack the data (its pattern, black and white levels are known only
    then), so this costs about as much as :func:`read_frame` minus the copy
    of the mosaic; the same files are refused with the same errors.

    Parameters
    ----------
    path : str or path-like
    mosaic : MosaicSpec, optional
        As :func:`read_frame`.

    Returns
    -------
    FileInfo

    Raises
    ------
    UnreadableFileError, UnsupportedFileError, NotBayerError
        As :func:`read_frame`.  A truncated JPEG/PNG is only noticed by
        :func:`read_frame`, which decodes it.
    """
    info, _ = _read(path, pixels=False, mosaic=mosaic)
    return info


def visible_shape(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(H, W) of a RAW file's visible area from LibRaw's header pass, without decoding.

    About a millisecond: lets the mapper size its statistics while the first
    frames decode.  ``None`` for anything LibRaw does not open (images,
    damaged files); :func:`read_frame` reports those properly.  A size
    that no sensor has, or too many photosites for the file's size (a
    damaged header, see :data:`MAX_PHOTOSITES`), gives ``None`` too:
    nothing is ever sized from it.
    """
    try:
        with quiet_decoders():
            raw = rawpy.RawPy()
            try:
                raw.open_file(os.fspath(path))
                sizes = raw.sizes
            finally:
                raw.close()
        if _size_problem(sizes, os.stat(path).st_size):
            return None
    except (rawpy.LibRawError, OSError, ValueError):
        return None
    return int(sizes.height), int(sizes.width)


def identify(path: str | os.PathLike[str], *, mosaic: MosaicSpec | None = None) -> tuple[CameraId, SourceKind]:
    """Which body took a photo, and whether it is RAW, from its header alone (no decoding).

    Cheap (a fraction of a millisecond): for sorting many files by body
    before decoding each once.  Missing, empty, truncated and unrecognisable
    files are refused here as in :func:`read_frame`; what only decoding can
    tell (a non-Bayer RAW, damaged data) is left to :func:`read_frame`.

    Parameters
    ----------
    path : str or path-like
    mosaic : MosaicSpec, optional
        As :func:`read_frame`: images are then identified as the mosaic
        frames they will be read as (a colour image is refused here).

    Returns
    -------
    camera : CameraId
    source : SourceKind
    """
    p = Path(path)
    if mosaic is not None and _is_mosaic_image(p):
        info, _ = _read(p, pixels=False, mosaic=mosaic)
        return info.camera, info.source
    meta, source = _sort(p)
    camera = CameraId(meta.make, meta.model, meta.serial, meta.serial_source)
    if source is SourceKind.RAW and not camera.make and not camera.model:
        make, model = _libraw_names(p)
        camera = CameraId(make, model, meta.serial, meta.serial_source)
    return camera, source


# --------------------------------------------------------------------------- dispatch

def _ext(p: Path) -> str:
    return p.suffix[1:].lower()


def _sort(p: Path) -> tuple[Metadata, SourceKind]:
    """Header checks shared by every reader: the file's metadata and whether it is RAW or an image."""
    meta = _check_file(p)
    ext = _ext(p)
    c = meta.container
    if c in ("jpeg", "png") or (c == "tiff" and ext in ("tif", "tiff") and meta.photometric != 32803):
        if meta.truncated_at:
            raise _truncated(p, meta)
        return meta, SourceKind.IMAGE
    if c == "" and ext in IMAGE_EXTENSIONS:
        raise UnreadableFileError(
            p, f"is not a JPEG, TIFF or PNG image ({_describe_head(p)})", _FORMATS_HINT
        )
    if _clearly_truncated(meta):
        raise _truncated(p, meta)  # before LibRaw, which would also print to stderr
    return meta, SourceKind.RAW


def _is_mosaic_image(p: Path) -> bool:
    """Whether, with a :class:`MosaicSpec`, ``p`` is read as a mosaic image: not a RAW file by its name."""
    return _ext(p) not in RAW_EXTENSIONS


def _read(
    path: str | os.PathLike[str],
    *,
    pixels: bool,
    out: np.ndarray | None = None,
    share: bool = False,
    mosaic: MosaicSpec | None = None,
) -> tuple[FileInfo, np.ndarray | None]:
    p = Path(path)
    try:
        if mosaic is not None and _is_mosaic_image(p):
            got = _read_mosaic(p, mosaic, pixels=pixels)
        else:
            meta, source = _sort(p)
            if source is SourceKind.IMAGE:
                got = _read_image(p, meta, pixels=pixels)
            else:
                got = _read_raw(p, meta, pixels=pixels, out=out, share=share)
    except MemoryError:
        raise UnsupportedFileError(
            p, "is too large to decode in the memory available", "close other programs or use a machine with more memory"
        ) from None
    h, w = got[0].shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise UnsupportedFileError(
            p, f"is only {h}x{w} pixels; rawmap needs at least {MIN_SIDE}x{MIN_SIDE}", "give a photo, not a thumbnail or an icon"
        )
    return got


def _describe_head(p: Path) -> str:
    """A few words on what a file's first bytes look like."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return "its content cannot be read"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return "its first bytes match no image format"
        text = head[: exc.start].decode("utf-8")
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "it looks like a text file"
    return "its first bytes match no image format"


def _check_file(p: Path) -> Metadata:
    """Refuse missing, empty, unreadable and truncated files; return the header metadata."""
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UnreadableFileError(p, "no such file", "check the path") from None
    except OSError as exc:
        raise UnreadableFileError(p, f"cannot be read ({exc.strerror or exc})") from None
    if p.is_dir():
        raise UnreadableFileError(p, "is a folder, not a photo", "give a photo file, or scan the folder")
    if st.st_size == 0:
        raise UnreadableFileError(p, "is empty (0 bytes)", _RECOPY_HINT)
    try:
        meta = read_metadata(p)
    except OSError as exc:
        raise UnreadableFileError(p, f"cannot be read ({exc.strerror or exc})") from None
    if meta.container == "ciff" and meta.damaged:
        # LibRaw would only say "unsupported": CRW keeps its directory at the very end.
        raise UnreadableFileError(
            p, "is truncated or damaged: its CIFF (CRW) directory, kept at the end of the file, does not parse", _RECOPY_HINT
        )
    return meta


def _truncated(p: Path, meta: Metadata) -> UnreadableFileError:
    return UnreadableFileError(
        p,
        f"is truncated: its header places image data up to byte {meta.truncated_at:,} "
        f"but the file has only {meta.file_size:,} bytes",
        _RECOPY_HINT,
    )


def _clearly_truncated(meta: Metadata) -> bool:
    """Whether a RAW file misses more data than any camera's loose byte counts explain.

    A few cameras write strip byte counts slightly past the end of the file;
    such small overruns are left to LibRaw, which stops with an I/O error
    only if it really runs out of data.
    """
    deficit = meta.truncated_at - meta.file_size
    return meta.truncated_at > 0 and deficit > max(4096, meta.file_size // 100)


# --------------------------------------------------------------------------- RAW

class _CStderr:
    """Points C stdio's ``stderr`` stream at ``/dev/null`` while at least one thread is inside.

    LibRaw reports damaged data with ``fprintf(stderr, ...)`` ("Unexpected
    end of file", "data corrupted at N") before it returns an error code;
    rawmap reports the same file with its own one-line error.  Only the C
    stream is swapped (a pointer in the C library), not file descriptor 2:
    Python's ``sys.stderr`` writes to the descriptor itself, so progress
    bars and messages of other threads still show while a worker decodes,
    which redirecting the descriptor would swallow.  A count under a lock
    makes it reentrant and thread-safe; where the C library's stream cannot
    be reached (not POSIX, an unknown C library) it does nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None
        self._slot: ctypes.c_void_p | None = None
        self._null: int | None = None
        self._tried = False

    def _setup(self) -> None:
        self._tried = True
        if os.name != "posix":
            return
        try:
            libc = ctypes.CDLL(None)
            fopen = libc.fopen
            fopen.restype = ctypes.c_void_p
            fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            for name in ("stderr", "__stderrp"):  # glibc and musl; macOS and the BSDs
                try:
                    slot = ctypes.c_void_p.in_dll(libc, name)
                except ValueError:
                    continue
                if slot.value:
                    null = fopen(os.devnull.encode(), b"w")
                    if null:
                        self._slot, self._null = slot, null
                    return
        except (OSError, AttributeError):
            return

    def __enter__(self) -> None:
        with self._lock:
            if not self._tried:
                self._setup()
            if self._slot is not None:
                if self._depth == 0:
                    self._saved = self._slot.value
                    self._slot.value = self._null
                self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._slot is not None and self._depth > 0:
                self._depth -= 1
                if self._depth == 0:
                    self._slot.value = self._saved


_C_STDERR = _CStderr()


def quiet_decoders() -> contextlib.AbstractContextManager[None]:
    """A context in which the C decoders' own messages to stderr are silenced (any thread, reentrant).

    LibRaw ("Unexpected end of file", "data corrupted at N") and libtiff
    under Pillow ("More samples per pixel than can be decoded") print with
    C stdio before they return an error.  Every LibRaw call and Pillow
    decode of this module runs inside it; callers that use rawpy or Pillow
    themselves (e.g. a second read of a file already read here) can wrap
    their calls too.  Python's ``sys.stderr`` is untouched (see
    :class:`_CStderr`).

    Examples
    --------
    >>> with quiet_decoders():
    ...     pass
    """
    return _C_STDERR


def _size_problem(sizes, file_size: int) -> str:
    """Why the frame size of a RAW header cannot be true (``""``: it can).

    Parameters
    ----------
    sizes : rawpy sizes
        LibRaw's ``sizes`` after opening the file: the visible ``height``
        and ``width``, and ``raw_height`` and ``raw_width`` of the full
        frame, which LibRaw allocates at unpacking.
    file_size : int
        Bytes of the file.
    """
    h, w = int(sizes.height), int(sizes.width)
    fh, fw = int(sizes.raw_height), int(sizes.raw_width)
    n = max(h * w, fh * fw)
    frame = f"{h}x{w} sensor" if fh * fw <= h * w else f"{h}x{w} sensor in a {fh}x{fw} frame"
    if h <= 0 or w <= 0:
        return f"its header gives an empty {h}x{w} image: the header is damaged"
    if n > MAX_PHOTOSITES:
        return (f"its header claims a {frame} ({n / 1e6:,.0f} million photosites), "
                f"more than any camera has ({MAX_PHOTOSITES / 1e6:.0f} million): the header is damaged")
    if n > _PHOTOSITES_PER_BYTE * max(file_size, 1):
        return (f"its header claims a {frame} ({n / 1e6:,.1f} million photosites), far too many for a "
                f"file of {file_size:,} bytes: the header is damaged")
    return ""


def _check_levels(p: Path, black: np.ndarray, white: int, sample: np.ndarray | None = None) -> None:
    """Refuse black and white levels that no sensor has (a damaged header).

    The white level must lie above every black level and within the 16-bit
    container; black levels must be finite and not negative.  With a
    ``sample`` of the decoded photosites, a white level below most of them
    (:data:`_ABOVE_WHITE_MAX`) is refused too: every photosite would count
    as clipped.  Mapping such a file would flag nothing useful, and writing
    a repaired DNG with its levels fails.

    Raises
    ------
    UnreadableFileError
    """
    black = np.asarray(black, dtype=np.float64)
    finite = bool(np.all(np.isfinite(black)))
    top = float(black.max()) if black.size and finite else 0.0
    if not finite or (black.size and float(black.min()) < 0) or not top < white <= 65535:
        levels = ", ".join(f"{b:g}" for b in np.unique(black)) if black.size else "none"
        raise UnreadableFileError(
            p,
            f"has impossible levels (black {levels}, white {white}): the white level must lie above "
            "the black level and at most at 65535; its header is damaged",
            _RECOPY_HINT,
        )
    if sample is not None and sample.size:
        above = np.count_nonzero(sample > white) / sample.size
        if above > _ABOVE_WHITE_MAX:
            raise UnreadableFileError(
                p,
                f"has an impossible white level {white}: {above:.0%} of its photosites lie above it; its header is damaged",
                _RECOPY_HINT,
            )


def _read_raw(
    p: Path, meta: Metadata, *, pixels: bool, out: np.ndarray | None = None, share: bool = False
) -> tuple[FileInfo, np.ndarray | None]:
    fmt = _ext(p).upper() or "RAW"
    try:
        with quiet_decoders():
            raw = rawpy.imread(str(p))
        shared = False
        try:
            sizes = raw.sizes
            problem = _size_problem(sizes, meta.file_size)
            if problem:  # before LibRaw allocates the frame it claims
                raise UnreadableFileError(p, problem, _RECOPY_HINT)
            with quiet_decoders():
                _check_bayer(p, raw, meta, fmt)
                visible = raw.raw_image_visible  # unpacks the data
            tm, lm = int(sizes.top_margin), int(sizes.left_margin)
            if visible.ndim != 2:
                raise NotBayerError(p, f"LibRaw returned {visible.ndim}-D data, not a Bayer mosaic", _BAYER_HINT)
            mosaic = None
            if pixels:
                if share and visible.dtype == np.uint16 and visible.flags.c_contiguous:
                    mosaic = visible  # keeps LibRaw's buffer (and the file) open until it is dropped
                    shared = True
                elif (out is not None and out.shape == visible.shape and out.dtype == np.uint16
                        and out.flags.c_contiguous and out.flags.writeable):
                    np.copyto(out, visible, casting="unsafe")
                    mosaic = out
                else:
                    mosaic = np.array(visible, dtype=np.uint16, copy=True, order="C")
            shape = (int(visible.shape[0]), int(visible.shape[1]))
            # rawpy's raw_pattern is phased at the full frame's origin; the map
            # works in visible coordinates, so shift it by the margins.
            cfa = np.roll(np.asarray(raw.raw_pattern, dtype=np.uint8), (-tm, -lm), axis=(0, 1)).copy()
            black = np.asarray(raw.black_level_per_channel, dtype=np.float64).reshape(4)
            white = int(raw.white_level)
            _check_levels(p, black, white, visible[::7, ::7])
            other = raw.other
            full_shape = (int(sizes.raw_height), int(sizes.raw_width))
            flip = int(sizes.flip)
        finally:
            if not shared:
                raw.close()
    except rawpy.LibRawFileUnsupportedError as exc:
        raise _unsupported(p, meta, fmt, exc) from None
    except rawpy.LibRawIOError:
        if meta.container == "":
            raise _not_raw(p) from None
        if meta.truncated_at:
            raise _truncated(p, meta) from None
        raise UnreadableFileError(
            p, "could not be read to the end (LibRaw: input/output error); it is probably truncated or damaged",
            _RECOPY_HINT,
        ) from None
    except rawpy.LibRawDataError:
        raise UnreadableFileError(p, "its image data is corrupt (LibRaw: data error)", _RECOPY_HINT) from None
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError):
        raise UnsupportedFileError(
            p, f"is too large for LibRaw {_LIBRAW_VERSION} to decode in memory", "close other programs or use a machine with more memory"
        ) from None
    except rawpy.LibRawError as exc:
        raise UnreadableFileError(p, f"LibRaw cannot decode it ({type(exc).__name__}: {_libraw_msg(exc)})", _RECOPY_HINT) from None
    except MemoryError:
        raise UnsupportedFileError(
            p, "is too large to decode in the memory available", "close other programs or use a machine with more memory"
        ) from None

    camera = CameraId(meta.make, meta.model, meta.serial, meta.serial_source)
    if not camera.make and not camera.model:
        make, model = _libraw_names(p)
        camera = CameraId(make, model, meta.serial, meta.serial_source)
    exposure = meta.exposure if meta.exposure is not None else float(other.shutter_speed)
    iso = meta.iso if meta.iso is not None else float(other.iso_speed)
    time = meta.time
    if time is None and other.timestamp != _dt.datetime.fromtimestamp(0):
        # rawpy turns LibRaw's time_t into local time; 0 (the epoch) means unknown.
        time = other.timestamp
    info = FileInfo(
        path=p,
        format=fmt,
        source=SourceKind.RAW,
        camera=camera,
        shape=shape,
        channels=1,
        dtype="uint16",
        cfa=cfa,
        black=black,
        white=white,
        exposure=max(0.0, float(exposure)),
        iso=max(0.0, float(iso)),
        time=time,
        margins=(tm, lm),
        full_shape=full_shape,
        orientation=meta.orientation,
        extra={"flip": flip},
    )
    return info, mosaic


_BAYER_HINT = "rawmap maps cameras with a 2x2 Bayer colour mosaic; use such a camera's original RAW file"


def _camera_words(p: Path, meta: Metadata) -> str:
    """``"Make Model"`` for messages (the model alone when it already names the make)."""
    make, model = meta.make, meta.model
    if not make and not model:
        make, model = _libraw_names(p)
    if make and model.lower().startswith(make.lower().split()[0]):
        return model
    return " ".join(s for s in (make, model) if s) or "unknown camera"


def _check_bayer(p: Path, raw: rawpy.RawPy, meta: Metadata, fmt: str) -> None:
    """Raise NotBayerError unless ``raw`` is a flat mosaic with a 2x2 R, G, B, G pattern."""
    if raw.raw_type != rawpy.RawType.Flat:
        if fmt == "DNG" or meta.photometric == 34892:
            raise NotBayerError(
                p,
                "is a linear (already demosaiced) DNG: every pixel holds full colour, there is no Bayer mosaic",
                "rawmap needs the camera's original RAW mosaic; use the camera's RAW file, or a DNG converted without demosaicing",
            )
        what = "a film scanner" if "scan" in meta.model.lower() else "a scanner, stacked-colour or already demosaiced file"
        raise NotBayerError(
            p, f"holds full colour at every pixel ({what}: {_camera_words(p, meta)}), not a Bayer mosaic", _BAYER_HINT
        )
    try:
        pattern = raw.raw_pattern
    except NotImplementedError:
        pattern = None
    if pattern is None:
        raise NotBayerError(p, "LibRaw reports no usable colour filter pattern", _BAYER_HINT)
    pattern = np.asarray(pattern)
    if pattern.shape == (6, 6):
        raise NotBayerError(
            p,
            f"has a Fujifilm X-Trans 6x6 colour filter ({_camera_words(p, meta)}); X-Trans is not supported yet",
            "rawmap maps 2x2 Bayer sensors only for now; the camera's JPEGs can be mapped instead",
        )
    if pattern.shape == (1, 1):
        raise NotBayerError(
            p, "comes from a monochrome sensor (no colour filter array); monochrome sensors are not supported yet", _BAYER_HINT
        )
    if pattern.shape != (2, 2):
        raise NotBayerError(p, f"has a {pattern.shape[0]}x{pattern.shape[1]} colour filter pattern, not a 2x2 Bayer one", _BAYER_HINT)
    desc = raw.color_desc.decode("ascii", "replace")
    letters = sorted(desc[int(c)] if int(c) < len(desc) else "?" for c in pattern.ravel())
    if raw.num_colors != 3 or letters != ["B", "G", "G", "R"]:
        raise NotBayerError(
            p,
            f"has a {raw.num_colors}-colour filter ({desc[:4]}), not the R, G, B Bayer pattern rawmap maps",
            _BAYER_HINT,
        )


def _libraw_msg(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else ""
    if isinstance(arg, bytes):
        arg = arg.decode("utf-8", "replace")
    return str(arg).strip().replace("\n", " ")


_CODECS = {9: "GoPro's VC-5 codec"}


def _not_raw(p: Path) -> UnreadableFileError:
    """The error for a file that LibRaw fails on and whose first bytes carry no known container signature."""
    return UnreadableFileError(
        p, f"is not a camera RAW file: no RAW signature LibRaw {_LIBRAW_VERSION} knows ({_describe_head(p)})", _FORMATS_HINT
    )


def _unsupported(p: Path, meta: Metadata, fmt: str, exc: BaseException) -> Exception:
    """The error for a file LibRaw does not decode: unsupported variant, or not a RAW file at all."""
    if meta.container == "":
        return _not_raw(p)
    if meta.damaged:
        return UnreadableFileError(
            p, f"looks like a {meta.container.upper()} file but its header is damaged; LibRaw cannot decode it", _RECOPY_HINT
        )
    who = f" from {_camera_words(p, meta)}" if (meta.make or meta.model) else ""
    codec = _CODECS.get(meta.compression)
    if codec:
        return UnsupportedFileError(
            p,
            f"is a {fmt}{who} compressed with {codec}, which LibRaw {_LIBRAW_VERSION} cannot decode",
            "convert it to a plain DNG first, e.g. with GoPro's open-source gpr tool",
        )
    return UnsupportedFileError(
        p,
        f"is a {fmt}{who} that LibRaw {_LIBRAW_VERSION} cannot decode ({_libraw_msg(exc)})",
        "update rawpy, or convert the file to DNG, e.g. with Adobe DNG Converter",
    )


@functools.lru_cache(maxsize=1)
def _libraw_c() -> ctypes.CDLL | None:
    """LibRaw's C API from the library rawpy ships, or None where it cannot be used."""
    if os.name != "posix":
        return None
    here = Path(rawpy.__file__).parent
    candidates = sorted(here.glob("libraw_r.so*")) + sorted(here.glob("libraw_r*.dylib"))
    if not candidates:
        return None
    try:
        lib = ctypes.CDLL(str(candidates[0]))
        lib.libraw_versionNumber.restype = ctypes.c_int
        lib.libraw_init.restype = ctypes.c_void_p
        lib.libraw_init.argtypes = [ctypes.c_uint]
        lib.libraw_open_file.restype = ctypes.c_int
        lib.libraw_open_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.libraw_get_iparams.restype = ctypes.c_void_p
        lib.libraw_get_iparams.argtypes = [ctypes.c_void_p]
        lib.libraw_close.restype = None
        lib.libraw_close.argtypes = [ctypes.c_void_p]
        if lib.libraw_versionNumber() < 0x1400:  # layout checked for LibRaw >= 0.20
            return None
    except (OSError, AttributeError):
        return None
    return lib


def _libraw_names(p: Path) -> tuple[str, str]:
    """LibRaw's (make, model) for a file whose headers name no camera; ("", "") if unavailable.

    Uses ``libraw_get_iparams`` of LibRaw's C API: ``libraw_iparams_t``
    starts with ``char guard[4]; char make[64]; char model[64]`` in every
    LibRaw release since 0.14.  LibRaw's names are normalised (``"Nikon"``,
    ``"D1"``), unlike the EXIF names preferred everywhere else.
    """
    lib = _libraw_c()
    if lib is None:
        return "", ""
    handle = lib.libraw_init(0)
    if not handle:
        return "", ""
    try:
        with quiet_decoders():
            opened = lib.libraw_open_file(handle, os.fsencode(p))
        if opened != 0:
            return "", ""
        ip = lib.libraw_get_iparams(handle)
        if not ip:
            return "", ""
        blob = ctypes.string_at(ip, 4 + 64 + 64)
    finally:
        lib.libraw_close(handle)

    def cstr(b: bytes) -> str:
        return b.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()

    return cstr(blob[4:68]), cstr(blob[68:132])


# --------------------------------------------------------------------------- images

#: numpy transform that undoes each quarter-turn EXIF Orientation (displayed -> sensor).
_TO_SENSOR = {
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, -1),
}
_ROTATION_NAMES = {5: "transpose", 6: "rotate 90 ccw", 7: "transverse", 8: "rotate 90 cw"}

#: Orientation assumed for a portrait image whose tag says nothing about rotation.
PORTRAIT_GUESS = 6


def _undo_rotation(height: int, width: int, orientation: int) -> int:
    """Which EXIF orientation to undo so that an image is back in sensor orientation (0: none).

    Cameras store JPEG pixels as the sensor delivers them (landscape) and
    only *tag* how to display them, so a landscape or square image is left
    as it is whatever its Orientation tag.  A portrait image (H > W) has
    been turned by software.  If its tag still says a quarter turn (5-8),
    the pixels were turned as that tag says and the tag was left stale:
    that is undone.  If the tag was reset (1-4 or none), the direction is
    unknowable; :data:`PORTRAIT_GUESS` (6, the tag of a phone held upright
    and of a camera turned clockwise) is assumed, i.e. the image is turned
    90 degrees counter-clockwise.  ``FileInfo.extra["rotation"]`` records
    what was done.
    """
    if height <= width:
        return 0
    return orientation if orientation in _TO_SENSOR else PORTRAIT_GUESS


def _read_image(p: Path, meta: Metadata, *, pixels: bool) -> tuple[FileInfo, np.ndarray | None]:
    arr: np.ndarray | None = None
    if meta.container == "tiff":
        got = _tiff_with_tifffile(p, pixels=pixels)
        if got is not None:
            (h, w, ch, dtype), arr = got
            fmt = "TIFF"
        else:
            (h, w, ch, dtype), arr, fmt = _with_pillow(p, pixels=pixels)
    else:
        (h, w, ch, dtype), arr, fmt = _with_pillow(p, pixels=pixels)

    undo = _undo_rotation(h, w, meta.orientation)
    if undo:
        h, w = w, h
        if arr is not None:
            arr = np.ascontiguousarray(_TO_SENSOR[undo](arr))
    info = FileInfo(
        path=p,
        format=fmt,
        source=SourceKind.IMAGE,
        camera=CameraId(meta.make, meta.model, meta.serial, meta.serial_source),
        shape=(h, w),
        channels=ch,
        dtype=dtype,
        cfa=None,
        black=np.zeros(4, dtype=np.float64),
        white=65535 if dtype == "uint16" else 255,
        exposure=max(0.0, meta.exposure or 0.0),
        iso=max(0.0, meta.iso or 0.0),
        time=meta.time,
        margins=(0, 0),
        full_shape=(h, w),
        orientation=meta.orientation,
        extra={"rotation": _ROTATION_NAMES.get(undo, "")},
    )
    return info, arr


def _tiff_with_tifffile(p: Path, *, pixels: bool):
    """((H, W, C, dtype), pixels or None) of a TIFF's first image, or None to let Pillow try."""
    try:
        with _QUIET_LOGS.reading(), tifffile.TiffFile(p) as tf:
            page = tf.pages[0]
            photometric = int(page.photometric)
            if photometric not in (1, 2) or page.compression not in (1, 5, 8, 32773, 32946):
                return None  # palette, CMYK, YCbCr, JPEG-in-TIFF, ...: Pillow's business or refusal
            dtype = np.dtype(page.dtype)
            if dtype not in (np.uint8, np.uint16):
                raise UnsupportedFileError(
                    p, f"holds {dtype} samples; rawmap reads 8- or 16-bit unsigned images", "save it as an 8- or 16-bit TIFF"
                )
            axes = page.axes
            shape = dict(zip(axes, page.shape))
            h, w, s = int(shape["Y"]), int(shape["X"]), int(shape.get("S", 1))
            ch = 3 if photometric == 2 else 1
            if s < ch:
                return None
            if h * w > MAX_PHOTOSITES:
                raise UnreadableFileError(
                    p, f"its header claims a {w}x{h} image ({h * w / 1e6:,.0f} million pixels), more than rawmap reads "
                    f"({MAX_PHOTOSITES / 1e6:.0f} million): the header is damaged, or the image must be split", _RECOPY_HINT,
                )
            arr = None
            if pixels:
                data = page.asarray()
                data = data.reshape([shape[a] for a in axes])
                if "S" in axes and axes.index("S") < axes.index("Y"):
                    data = np.moveaxis(data, axes.index("S"), -1)
                data = data.reshape(h, w, -1)[:, :, :ch]  # extra samples (alpha) dropped
                arr = np.ascontiguousarray(data, dtype=dtype.newbyteorder("="))
            return (h, w, ch, str(dtype)), arr
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - tifffile fails in many ways on damaged files (IndexError, struct.error ...)
        return None  # Pillow tries next, and reports what it cannot read


class _QuietLogs(logging.Filter):
    """Drops the image readers' log records on threads inside a read here.

    tifffile ("<TiffTag.fromfile> raised TiffFileError ...") and Pillow
    ("More samples per pixel than can be decoded") log what they find
    damaged, which Python prints on stderr when the program configured no
    logging; rawmap reports a damaged file in its own one-line error, or
    reads it when the damage does not matter.  Records of other threads
    (another program's use of these libraries) pass: the flag is per thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "depth", 0)

    @contextlib.contextmanager
    def reading(self):
        self.local.depth = getattr(self.local, "depth", 0) + 1
        try:
            yield
        finally:
            self.local.depth -= 1


_QUIET_LOGS = _QuietLogs()
#: the loggers of tifffile and of the Pillow modules that read JPEG, PNG and TIFF (a logger's filter
#: applies to its own records only, not to those of its children)
for _name in ("tifffile", "PIL.Image", "PIL.ImageFile", "PIL.TiffImagePlugin", "PIL.TiffTags",
              "PIL.PngImagePlugin", "PIL.JpegImagePlugin", "PIL.MpoImagePlugin"):
    logging.getLogger(_name).addFilter(_QUIET_LOGS)

_PIL_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF"}


def _with_pillow(p: Path, *, pixels: bool):
    """((H, W, C, dtype), pixels or None, format name) read with Pillow."""
    try:
        with warnings.catch_warnings(), _QUIET_LOGS.reading():
            # A camera's 100-megapixel JPEG is not a decompression bomb.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow warns of damaged metadata and reads on; a damaged image is reported in one line
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with quiet_decoders(), Image.open(p) as img:  # libtiff prints some damage with C stdio
                fmt = _PIL_FORMATS.get(img.format or "")
                if fmt is None:
                    raise UnsupportedFileError(p, f"is a {img.format} image", "save it as JPEG, TIFF or PNG")
                mode = img.mode
                rawmode = ""
                if img.tile:
                    args = img.tile[0].args
                    rawmode = args if isinstance(args, str) else (args[0] if args and isinstance(args[0], str) else "")
                if mode in ("RGB", "RGBA") and ";16" in rawmode:
                    raise UnsupportedFileError(
                        p, f"is a 16-bit RGB {fmt}, which Pillow can only read at 8 bits", "save it as an uncompressed 16-bit TIFF"
                    )
                kind = _PIL_MODES.get(mode)
                if kind is None:
                    raise UnsupportedFileError(
                        p, f"is a {_MODE_WORDS.get(mode, mode + ' mode')} image, not grayscale or RGB", "save it as an RGB or grayscale image"
                    )
                ch, dtype = kind
                w, h = img.size
                arr = None
                if pixels:
                    img.load()  # raises on truncated data unless ImageFile.LOAD_TRUNCATED_IMAGES was set
                    arr = _pil_array(p, img, mode, ch, dtype)
                return (h, w, ch, dtype), arr, fmt
    except Image.DecompressionBombError as exc:
        raise UnsupportedFileError(p, f"is too large for Pillow's safety limit ({exc})", "split or downscale it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).strip().replace("\n", " ") or type(exc).__name__
        if "truncated" in msg:
            raise UnreadableFileError(p, "is truncated: its image data ends early", _RECOPY_HINT) from None
        raise UnreadableFileError(p, f"is corrupt or not an image; Pillow says: {msg}", _RECOPY_HINT) from None


#: Pillow mode -> (channels kept, dtype)
_PIL_MODES = {
    "L": (1, "uint8"),
    "LA": (1, "uint8"),
    "I;16": (1, "uint16"),
    "I;16L": (1, "uint16"),
    "I;16B": (1, "uint16"),
    "I;16N": (1, "uint16"),
    "I": (1, "uint16"),  # 16-bit grayscale PNG in some Pillow versions; range checked
    "RGB": (3, "uint8"),
    "RGBA": (3, "uint8"),
    "RGBX": (3, "uint8"),
    "YCbCr": (3, "uint8"),
}
_MODE_WORDS = {
    "P": "palette (indexed colour)",
    "PA": "palette (indexed colour)",
    "1": "black-and-white (1-bit)",
    "CMYK": "CMYK",
    "F": "floating-point",
    "LAB": "Lab colour",
    "HSV": "HSV colour",
}


def _pil_array(p: Path, img: Image.Image, mode: str, ch: int, dtype: str) -> np.ndarray:
    """(H, W, C) array of ``img`` in its stored orientation."""
    if mode in ("RGBA", "RGBX", "YCbCr"):
        img = img.convert("RGB")  # alpha or padding dropped; YCbCr to RGB
    elif mode == "LA":
        img = img.convert("L")
    a = np.asarray(img)
    if mode == "I":
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UnsupportedFileError(p, "holds 32-bit integer samples", "save it as an 8- or 16-bit image")
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype))
    return a.reshape(a.shape[0], a.shape[1], ch)


# --------------------------------------------------------------------------- raw mosaics in images

_MOSAIC_HINT = "--cfa reads grayscale 8- or 16-bit TIFF, PNG or PGM files holding a sensor's raw mosaic"


def _read_mosaic(p: Path, spec: MosaicSpec, *, pixels: bool) -> tuple[FileInfo, np.ndarray | None]:
    """A grayscale TIFF, PNG or PGM read as the raw mosaic ``spec`` describes (see :class:`MosaicSpec`)."""
    meta = _check_file(p)
    shift = 0
    if _ext(p) in MOSAIC_EXTENSIONS:
        (h, w, ch, dtype), arr, white = _read_pgm(p, pixels=pixels)
        fmt = "PGM"
    else:
        meta, source = _sort(p)
        if source is SourceKind.RAW:  # a camera RAW file under another name: read as always
            return _read_raw(p, meta, pixels=pixels)
        if meta.container == "jpeg":
            raise NotBayerError(
                p, "is a JPEG: lossy compression has changed every photosite of any mosaic it held",
                "save the mosaic as TIFF, PNG or PGM, or map JPEGs without --cfa, as developed images",
            )
        got = _tiff_with_tifffile(p, pixels=pixels) if meta.container == "tiff" else None
        if got is not None:
            (h, w, ch, dtype), arr = got
            fmt = "TIFF"
            white = _tiff_white(p, dtype)
        else:
            (h, w, ch, dtype), arr, fmt = _with_pillow(p, pixels=pixels)
            white = 65535 if dtype == "uint16" else 255
            if fmt == "PNG":
                white, shift, arr = _png_significant(p, dtype, arr)
    if ch != 1:
        raise NotBayerError(
            p, f"is a colour (RGB) {fmt} image, not a raw mosaic: a mosaic has one value per photosite",
            f"give --cfa only for grayscale files that hold the sensor's mosaic; map {p.name} without --cfa",
        )
    if spec.black >= white:
        raise InputError(
            p, f"black level {spec.black} is not below this file's white level {white}",
            f"give a --black below {white}",
        )
    camera = spec.camera
    if camera is None:
        camera = CameraId(meta.make, meta.model, meta.serial, meta.serial_source)
        if not camera.make and not camera.model:
            camera = CameraId("", f"{spec.cfa} sensor {w}x{h}")
    info = FileInfo(
        path=p,
        format=fmt,
        source=SourceKind.RAW,
        camera=camera,
        shape=(h, w),
        channels=1,
        dtype=dtype,
        cfa=spec.pattern,
        black=np.full(4, float(spec.black)),
        white=int(white),
        exposure=meta.exposure if meta.exposure else float(spec.exposure),
        iso=meta.iso if meta.iso else float(spec.iso),
        time=meta.time,
        margins=(0, 0),
        full_shape=(h, w),
        orientation=meta.orientation,
        extra={"mosaic": True, "shift": shift, "dtype": dtype},
    )
    mosaic = None if arr is None else np.ascontiguousarray(arr.reshape(h, w), dtype=np.uint16)
    if mosaic is not None:
        _check_levels(p, info.black, info.white, mosaic[::7, ::7])
    return info, mosaic


def _read_pgm(p: Path, *, pixels: bool):
    """((H, W, 1, dtype), pixels or None, maxval) of a binary (P5) PGM, values exactly as stored.

    Pillow rescales PGM files whose maximum value is not 255 or 65535 to the
    full range; a mosaic needs its DN, so the format is read here.
    """
    with open(p, "rb") as fh:
        head = fh.read(512)
        fields: list[bytes] = []
        pos = 0
        while len(fields) < 4 and pos < len(head):
            ch = head[pos : pos + 1]
            if ch == b"#":
                end = head.find(b"\n", pos)
                pos = len(head) if end < 0 else end + 1
            elif ch.isspace():
                pos += 1
            else:
                end = pos
                while end < len(head) and not head[end : end + 1].isspace() and head[end : end + 1] != b"#":
                    end += 1
                fields.append(head[pos:end])
                pos = end
        if not fields or fields[0] != b"P5":
            what = "an ASCII (P2) PGM" if fields and fields[0] == b"P2" else f"not a binary PGM ({_describe_head(p)})"
            raise UnsupportedFileError(p, f"is {what}", "save the mosaic as a binary (P5) PGM, TIFF or PNG")
        try:
            w, h, maxval = (int(f) for f in fields[1:4])
        except ValueError:
            w = h = maxval = 0
        if len(fields) < 4 or w <= 0 or h <= 0 or not 0 < maxval <= 65535:
            raise UnreadableFileError(p, "its PGM header is damaged", _RECOPY_HINT)
        start = pos + 1  # one white-space character ends the header
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
        need = start + w * h * dtype.itemsize
        size = p.stat().st_size
        if size < need:
            raise UnreadableFileError(
                p, f"is truncated: its header places image data up to byte {need:,} but the file has only {size:,} bytes",
                _RECOPY_HINT,
            )
        arr = None
        if pixels:
            fh.seek(start)
            arr = np.frombuffer(fh.read(w * h * dtype.itemsize), dtype=dtype).reshape(h, w, 1)
            if int(arr.max(initial=0)) > maxval:
                raise UnreadableFileError(p, f"holds values above its declared maximum {maxval}", _RECOPY_HINT)
    return (h, w, 1, "uint16" if dtype.itemsize == 2 else "uint8"), arr, maxval


def _tiff_white(p: Path, dtype: str) -> int:
    """White level of a grayscale TIFF: MaxSampleValue when given, else 2**BitsPerSample - 1."""
    top = 65535 if dtype == "uint16" else 255
    try:
        with _QUIET_LOGS.reading(), tifffile.TiffFile(p) as tf:
            page = tf.pages[0]
            tag = page.tags.get("MaxSampleValue")
            if tag is not None:
                value = np.asarray(tag.value).ravel()
                if value.size and 0 < int(value[0]) <= top:
                    return int(value[0])
            bits = int(page.bitspersample)
            if 0 < bits < 16:
                return min(top, (1 << bits) - 1)
    except Exception:  # noqa: BLE001 - a damaged tag: the container's range then
        pass
    return top


def _png_sbit(p: Path) -> tuple[int, int]:
    """(bit depth, significant bits) of a PNG from its IHDR and sBIT chunks (sBIT absent: the depth)."""
    with open(p, "rb") as fh:
        data = fh.read(8)
        depth = sbit = 0
        while True:
            head = fh.read(8)
            if len(head) < 8:
                break
            n = int.from_bytes(head[:4], "big")
            kind = head[4:8]
            if kind == b"IDAT" or kind == b"IEND" or n > 1 << 20:
                break
            data = fh.read(n)
            fh.seek(4, os.SEEK_CUR)  # CRC
            if kind == b"IHDR" and len(data) >= 9:
                depth = data[8]
            elif kind == b"sBIT" and data:
                sbit = data[0]
    return depth, (sbit if 0 < sbit <= depth else depth)


def _png_significant(p: Path, dtype: str, arr: np.ndarray | None) -> tuple[int, int, np.ndarray | None]:
    """White level, right shift and pixels of a grayscale PNG, honouring its ``sBIT`` chunk.

    The PNG specification has a writer scale b-bit samples up to the file's
    depth d and record b in ``sBIT``; the original values are the stored
    ones shifted right by ``d - b``, and the white level is ``2**b - 1``.
    Some writers store the b-bit values unscaled and still record b: when
    every value already fits in b bits and not all of them are multiples of
    ``2**(d - b)``, they are kept as they are.
    """
    depth, bits = _png_sbit(p)
    top = 65535 if dtype == "uint16" else 255
    if not 0 < bits < depth:
        return top, 0, arr
    white = (1 << bits) - 1
    shift = depth - bits
    if arr is None:
        return white, shift, arr
    step_mask = (1 << shift) - 1
    unscaled = int(arr.max(initial=0)) <= white and bool(np.any(arr & step_mask))
    if unscaled:
        return white, 0, arr
    return white, shift, arr >> shift
