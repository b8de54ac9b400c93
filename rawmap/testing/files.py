"""The bytes of a simulated frame as a file: grayscale TIFF or PNG mosaics and JPEG renderings.

DNG frames are written by the runtime's own writer, :func:`rawmap.dng.write_dng`;
this module writes the other formats of :data:`FILE_FORMATS` (the raw
mosaic as an 8- or 16-bit grayscale image, with EXIF) and the JPEG of a
developed frame.
"""

from __future__ import annotations

import datetime as _dt
import io

import numpy as np

from ..frame import CameraId
from .plans import FramePlan
from .sensor import SensorSpec

__all__ = ["FILE_FORMATS", "sample_scale", "to_file_values"]

_F32 = np.float32


#: What :func:`generate_series` can write: uncompressed DNG (LibRaw decodes it),
#: or the raw mosaic (no demosaic) as a one-channel grayscale TIFF or PNG of
#: 8 or 16 bits.  16 bits: DN times the largest integer that keeps white
#: within 65535 (x4 for a 14-bit white, x16 for 12-bit); 8 bits: DN x 255 /
#: white, rounded.  Images hold the visible area only, with EXIF.
FILE_FORMATS = ("dng", "tiff16", "tiff8", "png16", "png8")


def sample_scale(spec: SensorSpec, file_format: str) -> float:
    """File value per DN for ``file_format`` (see :data:`FILE_FORMATS`)."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {', '.join(FILE_FORMATS)}; got {file_format!r}")
    if file_format == "dng":
        return 1.0
    if file_format.endswith("16"):
        return float(65535 // spec.white)
    return 255.0 / spec.white


def to_file_values(mosaic: np.ndarray, spec: SensorSpec, file_format: str) -> np.ndarray:
    """(H, W) uint16 DN -> the sample values written for ``file_format`` (uint8 or uint16)."""
    scale = sample_scale(spec, file_format)
    if file_format == "dng":
        return mosaic
    if file_format.endswith("16"):
        return mosaic * np.uint16(scale)
    return np.clip(np.rint(mosaic.astype(_F32) * _F32(scale)), 0, 255).astype(np.uint8)


def _exif_entries(camera: CameraId, fp: FramePlan) -> list[tuple[int, int, int, object]]:
    from ..dng import _ASCII, _RATIONAL, _SHORT, _SRATIONAL, _UNDEFINED, _ascii, _rational

    ent: list[tuple[int, int, int, object]] = [
        (36864, _UNDEFINED, 4, b"0230"),
        (33434, _RATIONAL, 1, _rational(fp.exposure)),
        (34855, _SHORT, 1, int(round(fp.iso))),
        (36867, _ASCII, 0, fp.time.strftime("%Y:%m:%d %H:%M:%S").encode()),
    ]
    if camera.serial:
        ent.append((42033, _ASCII, 0, _ascii(camera.serial)))
    if fp.temperature is not None:
        ent.append((37888, _SRATIONAL, 1, _rational(fp.temperature, signed=True, max_den=1000)))
    return ent


def _image_bytes(values: np.ndarray, camera: CameraId, fp: FramePlan, file_format: str) -> bytes:
    """A grayscale TIFF or PNG of ``values`` with Make, Model and an EXIF block."""
    if file_format.startswith("tiff"):
        from ..dng import _ASCII, _LONG, _SHORT, _ascii, _Ifd, _tiff_bytes

        h, w = values.shape
        data = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
        ifd = _Ifd(
            entries=[
                (256, _LONG, 1, w),
                (257, _LONG, 1, h),
                (258, _SHORT, 1, 8 * data.dtype.itemsize),
                (259, _SHORT, 1, 1),  # uncompressed
                (262, _SHORT, 1, 1),  # BlackIsZero
                (271, _ASCII, 0, _ascii(camera.make)),
                (272, _ASCII, 0, _ascii(camera.model)),
                (277, _SHORT, 1, 1),
                (278, _LONG, 1, h),
                (306, _ASCII, 0, fp.time.strftime("%Y:%m:%d %H:%M:%S").encode()),
            ],
            segments=[data.tobytes()],
            exif=_Ifd(_exif_entries(camera, fp)),
        )
        return _tiff_bytes(ifd)
    from fractions import Fraction

    from PIL import Image, TiffImagePlugin

    img = Image.fromarray(values)
    exif = Image.Exif()
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    stamp = fp.time.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0132] = stamp
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = stamp
    f = Fraction(fp.exposure).limit_denominator(1_000_000)
    sub[0x829A] = TiffImagePlugin.IFDRational(f.numerator, f.denominator)
    sub[0x8827] = int(round(fp.iso))
    if camera.serial:
        sub[0xA431] = camera.serial
    if fp.temperature is not None:
        tf = Fraction(fp.temperature).limit_denominator(1000)
        sub[0x9400] = TiffImagePlugin.IFDRational(tf.numerator, tf.denominator)
    out = io.BytesIO()
    img.save(out, "PNG", exif=exif)
    return out.getvalue()


def _jpeg_bytes(
    rgb: np.ndarray,
    camera: CameraId,
    exposure: float,
    iso: float,
    time: _dt.datetime | None,
    quality: int = 90,
) -> bytes:
    from fractions import Fraction

    from PIL import Image, TiffImagePlugin

    img = Image.fromarray(rgb, "RGB")
    exif = Image.Exif()
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    sub = exif.get_ifd(0x8769)
    if time is not None:
        stamp = time.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        sub[0x9003] = stamp
    f = Fraction(exposure).limit_denominator(1_000_000)
    sub[0x829A] = TiffImagePlugin.IFDRational(f.numerator, f.denominator)
    sub[0x8827] = int(round(iso))
    if camera.serial:
        sub[0xA431] = camera.serial
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif)
    return buf.getvalue()
