"""Read photos into :class:`~rawmap.frame.Frame`: the public face of the reader backends.

* Camera RAW files are decoded by LibRaw (through rawpy) into the visible
  Bayer mosaic, in sensor orientation, with its CFA pattern and levels.
  Files without a 2x2 RGB colour mosaic (linear DNG, scanners, stacked
  colour, X-Trans, monochrome) are refused with :class:`NotBayerError`
  (:mod:`rawmap.readers.libraw`).
* JPEG, TIFF and PNG images are read with Pillow (16-bit TIFF with
  tifffile, which keeps all 16 bits) as ``(H, W, C)`` arrays, turned back to
  sensor orientation (:mod:`rawmap.readers.images`).
* With a :class:`MosaicSpec` (``rawmap map --cfa``), grayscale 8/16-bit
  TIFF, PNG and PGM files are read as what machine-vision and astronomy
  cameras save in them: the raw sensor mosaic itself (a Bayer pattern the
  user names, or a monochrome sensor), as stored (no rotation), with its
  own white level (PNG ``sBIT``, TIFF MaxSampleValue or BitsPerSample,
  PGM maximum value).  Such a frame is a RAW frame
  (``source`` :attr:`SourceKind.RAW`); a monochrome one has ``cfa=None``
  (:mod:`rawmap.readers.mosaic`).
* Camera identity and shot data come from :mod:`rawmap.metadata`, which
  reads only the file's headers; LibRaw's figures fill what the headers
  lack.

Each kind of file has its backend in :mod:`rawmap.readers`; this module
checks a file (missing, empty, a folder), asks the backends of
:data:`rawmap.readers.BACKENDS` in order which one claims it, and calls
that one.  Everything after this module sees only
:class:`~rawmap.frame.Frame` and :class:`FileInfo`.  Every failure is an
:class:`~rawmap.errors.InputError` whose one-line message names the file,
what is wrong and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import readers
from .errors import UnsupportedFileError
from .frame import CameraId, Frame, SourceKind
from .readers import libraw as _libraw
from .readers.base import (
    MAX_PHOTOSITES,
    MIN_SIDE,
    FileInfo,
    Probe,
    check_file,
    check_side,
    quiet_decoders,
)
from .readers.images import IMAGE_EXTENSIONS
from .readers.images import PORTRAIT_GUESS as PORTRAIT_GUESS
from .readers.libraw import RAW_EXTENSIONS, visible_shape
from .readers.libraw import _check_bayer as _check_bayer
from .readers.libraw import _libraw_c as _libraw_c
from .readers.libraw import _libraw_names as _libraw_names
from .readers.mosaic import CFA_PATTERNS, MOSAIC_EXTENSIONS, MosaicSpec

# The ``X as X`` imports above keep private names reachable here, as before the split into backends.

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
    return any(ext in b.extensions for b in readers.BACKENDS if mosaic or not b.needs_mosaic)


def read_frame(
    path: str | os.PathLike[str],
    *,
    out: np.ndarray | None = None,
    share: bool = False,
    mosaic: MosaicSpec | None = None,
    extras: bool = False,
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
    extras : bool
        For a camera RAW file, also keep what a DNG copy of it needs (full
        frame with margins, colour matrix, white balance, embedded preview,
        header metadata) in ``extra["libraw"]``, a
        :class:`rawmap.readers.libraw.RawExtras` read from the same LibRaw
        decode (``rawmap repair`` opens each photo once).  Costs a copy of
        the full frame and the preview's extraction; ignored for other
        files.

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

    def hook(backend, probe):
        if extras and backend is _libraw.BACKEND:
            return _libraw.read_frame_extras(probe, out, share)
        return backend.read_frame(probe, out, share)

    frame = _call(path, mosaic, hook)
    check_side(frame.path, frame.shape)
    return frame


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
    info = _call(path, mosaic, lambda backend, probe: backend.read_info(probe))
    check_side(info.path, info.shape)
    return info


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
    return _call(path, mosaic, lambda backend, probe: backend.identify(probe))


# --------------------------------------------------------------------------- dispatch


def _call(path: str | os.PathLike[str], mosaic: MosaicSpec | None, hook):
    """``hook(backend, probe)`` for the backend that claims ``path``; a MemoryError becomes one line."""
    p = Path(path)
    try:
        probe = Probe(p, check_file(p), mosaic)
        return hook(readers.backend_for(probe), probe)
    except MemoryError:
        raise UnsupportedFileError(
            p,
            "is too large to decode in the memory available",
            "close other programs or use a machine with more memory",
        ) from None
