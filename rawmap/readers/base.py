"""What every reader backend shares: the :class:`Backend` record, the :class:`Probe` of a file,
:class:`FileInfo`, :class:`MosaicSpec` (how ``--cfa`` reads a grayscale file as a mosaic), the
checks made before any decoder runs, and the silencing of decoders.

A backend (:mod:`rawmap.readers.libraw`, :mod:`~rawmap.readers.images`,
:mod:`~rawmap.readers.mosaic`) imports from here and from nowhere else in
the package but :mod:`rawmap.frame`, :mod:`rawmap.metadata` and
:mod:`rawmap.errors`; the registry (:mod:`rawmap.readers`) lists them and
:mod:`rawmap.reader` picks one per file.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnreadableFileError, UnsupportedFileError
from ..frame import CameraId, Frame, SourceKind, cfa_letters
from ..metadata import Metadata, read_metadata

#: ``--cfa`` names -> colour index (0=R, 1=G, 2=B, 3=second G) per pattern position, LibRaw's
#: convention; ``"mono"`` (a sensor without colour filters) has no pattern.
CFA_PATTERNS: dict[str, np.ndarray | None] = {
    "RGGB": np.array([[0, 1], [3, 2]], np.uint8),
    "BGGR": np.array([[2, 3], [1, 0]], np.uint8),
    "GRBG": np.array([[1, 0], [2, 3]], np.uint8),
    "GBRG": np.array([[3, 2], [0, 1]], np.uint8),
    "mono": None,
}


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


#: Fewest rows and columns of a frame rawmap reads (the statistics need a 2x2 pattern's neighbours).
MIN_SIDE = 4
#: Most photosites a frame may have: more than any camera's Bayer sensor (the largest, 150 MP medium
#: format backs, have about 151 million); a header claiming more is damaged.
MAX_PHOTOSITES = 200_000_000
#: Share of a frame's photosites above its white level beyond which the level cannot be right.
_ABOVE_WHITE_MAX = 0.5

#: What to do, in messages: the formats rawmap reads; copy a damaged file again.
FORMATS_HINT = (
    "rawmap reads camera RAW files such as NEF, CR2, CR3, CRW, DNG, ARW, ORF, RW2 or PEF, FITS files, "
    "and JPEG, TIFF or PNG images"
)
RECOPY_HINT = "copy it again from the camera card or a backup"


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
    temperature : float or None
        Temperature the file states, degrees C (FITS ``CCD-TEMP``, else
        ``SET-TEMP``; EXIF Temperature), ``None`` when it states none.
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
    temperature: float | None = None

    @property
    def cfa_string(self) -> str:
        """The pattern as letters in reading order, e.g. ``"RGGB"``; ``""`` for images."""
        return cfa_letters(self.cfa)

    def to_frame(self, mosaic: np.ndarray) -> Frame:
        """The :class:`Frame` of these facts and ``mosaic``.

        Every field of :class:`Frame` but ``mosaic`` is a field of this
        record of the same name, copied over (arrays and ``extra`` as
        copies); ``orientation`` goes into ``Frame.extra``.  The fields a
        Frame does not have (``shape``, ``channels``, ``dtype``) are what
        its ``mosaic`` tells (see :data:`PIXEL_FIELDS`).

        Parameters
        ----------
        mosaic : (H, W) or (H, W, C) ndarray
            Pixels of shape ``shape`` (plus ``channels`` for images).
        """
        facts: dict[str, Any] = {}
        for f in fields(Frame):
            if f.name == "mosaic":
                continue
            value = getattr(self, f.name)
            facts[f.name] = value.copy() if isinstance(value, np.ndarray) else value
        facts["extra"] = dict(self.extra, orientation=self.orientation)
        return Frame(mosaic=mosaic, **facts)


#: The fields of :class:`FileInfo` that :class:`Frame` lacks because its pixels tell them
#: (``shape``, ``channels``, ``dtype``), or keeps in ``Frame.extra`` (``orientation``): every other
#: field is the Frame field of the same name (``tests/test_reader.py`` checks both ways).
PIXEL_FIELDS = ("shape", "channels", "dtype", "orientation")


@dataclass
class Probe:
    """One file as the registry sees it before picking a backend: path, header metadata, options.

    Built once per file by :mod:`rawmap.reader` after :func:`check_file`
    (missing, empty, folder, damaged CRW directory refused); handed to each
    :attr:`Backend.claims` in turn and to the hooks of the backend that
    claims it.

    Attributes
    ----------
    path : Path
    meta : Metadata
        What :func:`rawmap.metadata.read_metadata` found in the headers
        (container, Make/Model/serial, shot data, truncation).
    mosaic : MosaicSpec or None
        ``rawmap map --cfa``: read grayscale images as raw mosaics.
    """

    path: Path
    meta: Metadata
    mosaic: MosaicSpec | None = None

    @property
    def ext(self) -> str:
        """The file-name extension, lower case, without the dot (``""`` for none)."""
        return extension(self.path)


@dataclass(frozen=True)
class Backend:
    """One reader backend: which files it claims and how it reads them.

    :data:`rawmap.readers.BACKENDS` lists them; :mod:`rawmap.reader` asks
    each, in that order, whether it :attr:`claims` a file, and uses the
    first that does.  Every hook raises the
    :class:`~rawmap.errors.InputError` subclasses of
    :func:`rawmap.reader.read_frame`, with one-line messages.

    Attributes
    ----------
    name : str
        Short name (``"libraw"``, ``"images"``, ``"mosaic"``).
    extensions : frozenset of str
        File-name extensions (lower case, no dot) a folder scan takes for
        this backend (:func:`rawmap.reader.is_candidate`).
    needs_mosaic : bool
        The backend reads only with a :class:`~rawmap.readers.mosaic.MosaicSpec`
        (its ``extensions`` are scanned only then).
    claims : callable
        ``claims(probe) -> bool``: whether this backend reads the file, by
        its name, its header metadata or its first bytes.  Cheap; raises
        nothing.
    identify : callable
        ``identify(probe) -> (CameraId, SourceKind)`` from the headers,
        decoding as little as the format allows.
    read_info : callable
        ``read_info(probe) -> FileInfo`` without keeping the pixels.
    read_frame : callable
        ``read_frame(probe, out, share) -> Frame`` (``out`` and ``share``
        as :func:`rawmap.reader.read_frame`; a backend may ignore them).
    """

    name: str
    extensions: frozenset[str]
    claims: Callable[[Probe], bool]
    identify: Callable[[Probe], tuple[CameraId, SourceKind]]
    read_info: Callable[[Probe], FileInfo]
    read_frame: Callable[[Probe, np.ndarray | None, bool], Frame]
    needs_mosaic: bool = False


# --------------------------------------------------------------------------- checks before decoding


def extension(p: Path) -> str:
    """The file-name extension of ``p``, lower case, without the dot."""
    return p.suffix[1:].lower()


def check_side(p: Path, shape: tuple[int, int]) -> None:
    """Refuse a frame smaller than :data:`MIN_SIDE` in either direction (a thumbnail, an icon).

    Raises
    ------
    UnsupportedFileError
    """
    h, w = shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise UnsupportedFileError(
            p,
            f"is only {h}x{w} pixels; rawmap needs at least {MIN_SIDE}x{MIN_SIDE}",
            "give a photo, not a thumbnail or an icon",
        )


def describe_head(p: Path) -> str:
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


def check_file(p: Path) -> Metadata:
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
        raise UnreadableFileError(p, "is empty (0 bytes)", RECOPY_HINT)
    try:
        meta = read_metadata(p)
    except OSError as exc:
        raise UnreadableFileError(p, f"cannot be read ({exc.strerror or exc})") from None
    if meta.container == "ciff" and meta.damaged:
        # LibRaw would only say "unsupported": CRW keeps its directory at the very end.
        raise UnreadableFileError(
            p,
            "is truncated or damaged: its CIFF (CRW) directory, kept at the end of the file, does not parse",
            RECOPY_HINT,
        )
    return meta


def truncated_error(p: Path, meta: Metadata) -> UnreadableFileError:
    """The error for a file shorter than its headers say (``meta.truncated_at`` past its end)."""
    return UnreadableFileError(
        p,
        f"is truncated: its header places image data up to byte {meta.truncated_at:,} "
        f"but the file has only {meta.file_size:,} bytes",
        RECOPY_HINT,
    )


# --------------------------------------------------------------------------- silencing the decoders


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


QUIET_LOGS = _QuietLogs()

#: ``warnings.catch_warnings`` saves and restores the process's one list of warning filters, so two
#: reader threads inside it at once can restore each other's "ignore" for good: every later warning
#: of the process silenced (seen in the test suite: a FITS series read on two threads left numpy's
#: warnings off for the rest of the run).  Readers take this lock around it (:func:`catching_warnings`).
_WARNING_FILTERS = threading.RLock()


@contextlib.contextmanager
def catching_warnings():
    """``warnings.catch_warnings()`` for reader threads: one thread at a time, filters always restored.

    While a thread is inside, the filters it sets apply to the whole
    process (Python's warning filters are global), but only until it
    leaves.
    """
    with _WARNING_FILTERS, warnings.catch_warnings():
        yield


#: the loggers of tifffile and of the Pillow modules that read JPEG, PNG and TIFF (a logger's filter
#: applies to its own records only, not to those of its children)
for _name in (
    "tifffile",
    "PIL.Image",
    "PIL.ImageFile",
    "PIL.TiffImagePlugin",
    "PIL.TiffTags",
    "PIL.PngImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.MpoImagePlugin",
):
    logging.getLogger(_name).addFilter(QUIET_LOGS)


# --------------------------------------------------------------------------- levels


def check_levels(p: Path, black: np.ndarray, white: int, sample: np.ndarray | None = None) -> None:
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
            RECOPY_HINT,
        )
    if sample is not None and sample.size:
        above = np.count_nonzero(sample > white) / sample.size
        if above > _ABOVE_WHITE_MAX:
            raise UnreadableFileError(
                p,
                f"has an impossible white level {white}: {above:.0%} of its photosites lie above it; its header is damaged",
                RECOPY_HINT,
            )
