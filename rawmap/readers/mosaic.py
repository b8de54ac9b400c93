"""Raw sensor mosaics saved in grayscale image files, read with a :class:`MosaicSpec` (``rawmap map --cfa``).

Machine-vision and astronomy cameras save the sensor's mosaic (a Bayer
pattern the user names, or a monochrome sensor) in grayscale 8/16-bit
TIFF, PNG and PGM files.  Read here, such a file is a RAW frame
(``source`` :attr:`SourceKind.RAW`; a monochrome one has ``cfa=None``):
the pixels as stored (no rotation), with the file's own white level (PNG
``sBIT``, TIFF MaxSampleValue or BitsPerSample, PGM maximum value).  The
backend claims every file not named as a camera RAW file when a spec is
given, and hands a camera RAW file under another name to
:mod:`rawmap.readers.libraw`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from ..errors import (
    InputError,
    NotBayerError,
    UnreadableFileError,
    UnsupportedFileError,
)
from ..frame import CameraId, Frame, SourceKind
from . import images, libraw
from .base import (
    CFA_PATTERNS,
    QUIET_LOGS,
    RECOPY_HINT,
    Backend,
    FileInfo,
    MosaicSpec,
    Probe,
    check_levels,
    check_side,
    describe_head,
)
from .images import _tiff_with_tifffile, _with_pillow
from .libraw import RAW_EXTENSIONS

__all__ = ["BACKEND", "CFA_PATTERNS", "MOSAIC_EXTENSIONS", "MosaicSpec"]

#: File-name extensions (lower case, no dot) read only as a raw mosaic (with a :class:`MosaicSpec`).
MOSAIC_EXTENSIONS = frozenset({"pgm"})

_MOSAIC_HINT = "--cfa reads grayscale 8- or 16-bit TIFF, PNG or PGM files holding a sensor's raw mosaic"


def _read_mosaic(probe: Probe, spec: MosaicSpec, *, pixels: bool) -> tuple[FileInfo, np.ndarray | None]:
    """A grayscale TIFF, PNG or PGM read as the raw mosaic ``spec`` describes (see :class:`MosaicSpec`)."""
    p, meta = probe.path, probe.meta
    shift = 0
    if probe.ext in MOSAIC_EXTENSIONS:
        (h, w, ch, dtype), arr, white = _read_pgm(p, pixels=pixels)
        fmt = "PGM"
    else:
        if not images.BACKEND.claims(probe):  # a camera RAW file under another name: read as always
            return libraw.read(probe, pixels=pixels)
        images.check(probe)
        if meta.container == "jpeg":
            raise NotBayerError(
                p,
                "is a JPEG: lossy compression has changed every photosite of any mosaic it held",
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
            p,
            f"is a colour (RGB) {fmt} image, not a raw mosaic: a mosaic has one value per photosite",
            f"give --cfa only for grayscale files that hold the sensor's mosaic; map {p.name} without --cfa",
        )
    if spec.black >= white:
        raise InputError(
            p,
            f"black level {spec.black} is not below this file's white level {white}",
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
        temperature=meta.temperature,
    )
    mosaic = None if arr is None else np.ascontiguousarray(arr.reshape(h, w), dtype=np.uint16)
    if mosaic is not None:
        check_levels(p, info.black, info.white, mosaic[::7, ::7])
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
            what = "an ASCII (P2) PGM" if fields and fields[0] == b"P2" else f"not a binary PGM ({describe_head(p)})"
            raise UnsupportedFileError(p, f"is {what}", "save the mosaic as a binary (P5) PGM, TIFF or PNG")
        try:
            w, h, maxval = (int(f) for f in fields[1:4])
        except ValueError:
            w = h = maxval = 0
        if len(fields) < 4 or w <= 0 or h <= 0 or not 0 < maxval <= 65535:
            raise UnreadableFileError(p, "its PGM header is damaged", RECOPY_HINT)
        start = pos + 1  # one white-space character ends the header
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
        need = start + w * h * dtype.itemsize
        size = p.stat().st_size
        if size < need:
            raise UnreadableFileError(
                p,
                f"is truncated: its header places image data up to byte {need:,} but the file has only {size:,} bytes",
                RECOPY_HINT,
            )
        arr = None
        if pixels:
            fh.seek(start)
            arr = np.frombuffer(fh.read(w * h * dtype.itemsize), dtype=dtype).reshape(h, w, 1)
            if int(arr.max(initial=0)) > maxval:
                raise UnreadableFileError(p, f"holds values above its declared maximum {maxval}", RECOPY_HINT)
    return (h, w, 1, "uint16" if dtype.itemsize == 2 else "uint8"), arr, maxval


def _tiff_white(p: Path, dtype: str) -> int:
    """White level of a grayscale TIFF: MaxSampleValue when given, else 2**BitsPerSample - 1."""
    top = 65535 if dtype == "uint16" else 255
    try:
        with QUIET_LOGS.reading(), tifffile.TiffFile(p) as tf:
            page = tf.pages.first  # the first image, always a TiffPage
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


# --------------------------------------------------------------------------- the backend's hooks


def _claims(probe: Probe) -> bool:
    """With a :class:`MosaicSpec`, every file not named as a camera RAW file (:data:`RAW_EXTENSIONS`)."""
    return probe.mosaic is not None and probe.ext not in RAW_EXTENSIONS


def _spec(probe: Probe) -> MosaicSpec:
    if probe.mosaic is None:  # pragma: no cover - claims() makes sure of it
        raise ValueError("the mosaic backend needs a MosaicSpec")
    return probe.mosaic


def _identify(probe: Probe) -> tuple[CameraId, SourceKind]:
    info, _ = _read_mosaic(probe, _spec(probe), pixels=False)  # the camera may be named by the size
    check_side(probe.path, info.shape)
    return info.camera, info.source


def _read_info(probe: Probe) -> FileInfo:
    return _read_mosaic(probe, _spec(probe), pixels=False)[0]


def _read_frame(probe: Probe, out: np.ndarray | None, share: bool) -> Frame:
    info, pixels = _read_mosaic(probe, _spec(probe), pixels=True)
    return info.to_frame(pixels)  # type: ignore[arg-type]  # pixels=True always gives an array


#: Grayscale images holding a raw mosaic, read only with a :class:`MosaicSpec`.
BACKEND = Backend(
    name="mosaic",
    extensions=MOSAIC_EXTENSIONS | {"tif", "tiff", "png"},
    claims=_claims,
    identify=_identify,
    read_info=_read_info,
    read_frame=_read_frame,
    needs_mosaic=True,
)
