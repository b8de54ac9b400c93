"""Developed images (JPEG, TIFF, PNG) read with Pillow, 16-bit TIFF with tifffile.

An image is returned as an ``(H, W, C)`` array of uint8 or uint16 turned
back to sensor orientation (see :func:`_undo_rotation`); what was undone is
recorded in ``FileInfo.extra["rotation"]``, and :data:`TO_STORED` turns the
pixels back the way they are stored (what :mod:`rawmap.repair` writes).
The tifffile and Pillow helpers here also serve
:mod:`rawmap.readers.mosaic`, which reads grayscale images as raw mosaics.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ..errors import InputError, UnreadableFileError, UnsupportedFileError
from ..frame import CameraId, Frame, SourceKind
from ..metadata import Metadata
from .base import (
    FORMATS_HINT,
    MAX_PHOTOSITES,
    QUIET_LOGS,
    RECOPY_HINT,
    Backend,
    FileInfo,
    Probe,
    catching_warnings,
    describe_head,
    quiet_decoders,
    truncated_error,
)

__all__ = ["BACKEND", "IMAGE_EXTENSIONS", "PORTRAIT_GUESS", "TO_STORED"]

#: File-name extensions (lower case, no dot) of developed images read with Pillow.
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "jpe", "tif", "tiff", "png"})


#: numpy transform that undoes each quarter-turn EXIF Orientation (displayed -> sensor).
_TO_SENSOR = {
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, -1),
}
_ROTATION_NAMES = {5: "transpose", 6: "rotate 90 ccw", 7: "transverse", 8: "rotate 90 cw"}
#: What was undone (``FileInfo.extra["rotation"]``, a name of :data:`_ROTATION_NAMES`) -> the
#: numpy transform back to the pixels as the file stores them (sensor -> stored).
TO_STORED = {
    "": lambda a: a,
    "transpose": lambda a: np.swapaxes(a, 0, 1),
    "rotate 90 ccw": lambda a: np.rot90(a, -1),
    "transverse": lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    "rotate 90 cw": lambda a: np.rot90(a, 1),
}

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
        temperature=meta.temperature,
    )
    return info, arr


def _tiff_with_tifffile(p: Path, *, pixels: bool):
    """((H, W, C, dtype), pixels or None) of a TIFF's first image, or None to let Pillow try."""
    try:
        with QUIET_LOGS.reading(), tifffile.TiffFile(p) as tf:
            page = tf.pages.first  # the first image, always a TiffPage
            photometric = int(page.photometric)
            if photometric not in (1, 2) or page.compression not in (1, 5, 8, 32773, 32946):
                return None  # palette, CMYK, YCbCr, JPEG-in-TIFF, ...: Pillow's business or refusal
            dtype = np.dtype(page.dtype)
            if dtype not in (np.uint8, np.uint16):
                raise UnsupportedFileError(
                    p,
                    f"holds {dtype} samples; rawmap reads 8- or 16-bit unsigned images",
                    "save it as an 8- or 16-bit TIFF",
                )
            axes = page.axes
            shape = dict(zip(axes, page.shape))
            h, w, s = int(shape["Y"]), int(shape["X"]), int(shape.get("S", 1))
            ch = 3 if photometric == 2 else 1
            if s < ch:
                return None
            if h * w > MAX_PHOTOSITES:
                raise UnreadableFileError(
                    p,
                    f"its header claims a {w}x{h} image ({h * w / 1e6:,.0f} million pixels), more than rawmap reads "
                    f"({MAX_PHOTOSITES / 1e6:.0f} million): the header is damaged, or the image must be split",
                    RECOPY_HINT,
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


_PIL_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF"}


@contextlib.contextmanager
def quiet_pillow() -> Iterator[None]:
    """Pillow's warnings and log records kept off the command line while a file is opened and decoded.

    A camera's 100-megapixel JPEG is not a decompression bomb; Pillow warns
    of damaged metadata and reads on (a damaged image is reported in one
    line instead).  Warning filters are the process's:
    :func:`~rawmap.readers.base.catching_warnings` keeps threads from
    leaving them changed.
    """
    with catching_warnings(), QUIET_LOGS.reading():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _with_pillow(p: Path, *, pixels: bool):
    """((H, W, C, dtype), pixels or None, format name) read with Pillow."""
    try:
        with quiet_pillow():
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
                        p,
                        f"is a 16-bit RGB {fmt}, which Pillow can only read at 8 bits",
                        "save it as an uncompressed 16-bit TIFF",
                    )
                kind = _PIL_MODES.get(mode)
                if kind is None:
                    raise UnsupportedFileError(
                        p,
                        f"is a {_MODE_WORDS.get(mode, mode + ' mode')} image, not grayscale or RGB",
                        "save it as an RGB or grayscale image",
                    )
                ch, dtype = kind
                w, h = img.size
                arr = None
                if pixels:
                    img.load()  # raises on truncated data unless ImageFile.LOAD_TRUNCATED_IMAGES was set
                    arr = _pil_array(p, img, mode, ch, dtype)
                return (h, w, ch, dtype), arr, fmt
    except Image.DecompressionBombError as exc:
        raise UnsupportedFileError(
            p, f"is too large for Pillow's safety limit ({exc})", "split or downscale it"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).strip().replace("\n", " ") or type(exc).__name__
        if "truncated" in msg:
            raise UnreadableFileError(p, "is truncated: its image data ends early", RECOPY_HINT) from None
        raise UnreadableFileError(p, f"is corrupt or not an image; Pillow says: {msg}", RECOPY_HINT) from None


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


# --------------------------------------------------------------------------- the backend's hooks


def _is_image(meta: Metadata, ext: str) -> bool:
    """Whether the headers show a developed image: a JPEG or PNG, or a non-CFA TIFF named .tif/.tiff."""
    c = meta.container
    return c in ("jpeg", "png") or (c == "tiff" and ext in ("tif", "tiff") and meta.photometric != 32803)


def _claims(probe: Probe) -> bool:
    """Developed images by their headers, and files named as images whose headers match no format.

    A TIFF-based RAW file (a DNG, a CFA TIFF) named ``.tif`` is left to
    LibRaw; an image-named file without a known signature is claimed only
    to be refused with what it looks like (:func:`check`).
    """
    return _is_image(probe.meta, probe.ext) or (probe.meta.container == "" and probe.ext in IMAGE_EXTENSIONS)


def check(probe: Probe) -> None:
    """Refuse a claimed file before decoding: no image signature, or data cut short by the headers' count."""
    p, meta = probe.path, probe.meta
    if not _is_image(meta, probe.ext):
        raise UnreadableFileError(p, f"is not a JPEG, TIFF or PNG image ({describe_head(p)})", FORMATS_HINT)
    if meta.truncated_at:
        raise truncated_error(p, meta)


def _identify(probe: Probe) -> tuple[CameraId, SourceKind]:
    check(probe)
    meta = probe.meta
    return CameraId(meta.make, meta.model, meta.serial, meta.serial_source), SourceKind.IMAGE


def _read_info(probe: Probe) -> FileInfo:
    check(probe)
    return _read_image(probe.path, probe.meta, pixels=False)[0]


def _read_frame(probe: Probe, out: np.ndarray | None, share: bool) -> Frame:
    check(probe)
    info, pixels = _read_image(probe.path, probe.meta, pixels=True)
    return info.to_frame(pixels)  # type: ignore[arg-type]  # pixels=True always gives an array


#: Developed images, read with Pillow and tifffile.
BACKEND = Backend(
    name="images",
    extensions=IMAGE_EXTENSIONS,
    claims=_claims,
    identify=_identify,
    read_info=_read_info,
    read_frame=_read_frame,
)
