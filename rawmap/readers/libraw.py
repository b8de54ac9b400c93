"""Camera RAW files decoded by LibRaw (through rawpy): the visible Bayer mosaic in sensor orientation.

Files without a 2x2 RGB colour mosaic (linear DNG, scanners, stacked
colour, X-Trans, monochrome) are refused with :class:`NotBayerError`.
Camera identity and shot data come from the file's headers
(:mod:`rawmap.metadata`); LibRaw's figures fill what the headers lack.
This backend comes last in :data:`rawmap.readers.BACKENDS`: it claims
every file the others leave, and a file that is no RAW file at all is
refused here with what its first bytes look like.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy

from ..errors import NotBayerError, UnreadableFileError, UnsupportedFileError
from ..frame import CameraId, Frame, SourceKind
from ..metadata import Metadata
from .base import (
    FORMATS_HINT,
    MAX_PHOTOSITES,
    RECOPY_HINT,
    Backend,
    FileInfo,
    Probe,
    check_levels,
    describe_head,
    extension,
    quiet_decoders,
    truncated_error,
)

__all__ = ["BACKEND", "RAW_EXTENSIONS", "RawExtras", "visible_shape"]

#: File-name extensions (lower case, no dot) of camera RAW formats LibRaw reads.
RAW_EXTENSIONS = frozenset(
    """3fr ari arw bay cap cr2 cr3 crw cs1 dc2 dcr dcs dng drf eip erf fff gpr iiq k25 kc2
    kdc mdc mef mfw mos mrw nef nrw orf ori pef ptx pxn qtk raf raw rdc rw2 rwl rwz sr2 srf
    srw sti x3f""".split()
)
#: Most photosites a RAW file may hold per byte of its size: 32 is 1/4 bit per photosite, below what
#: any lossless codec reaches on a real (noisy) frame; a header claiming more is damaged.
_PHOTOSITES_PER_BYTE = 32
_LIBRAW_VERSION = ".".join(str(v) for v in rawpy.libraw_version)


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


@dataclass(frozen=True)
class RawExtras:
    """What LibRaw knows of a RAW file beyond its :class:`~rawmap.frame.Frame`: what a DNG copy needs.

    Read from the same LibRaw decode as the frame (``read_frame(...,
    extras=True)`` puts it in ``Frame.extra["libraw"]``), so that writing a
    repaired copy does not open and unpack the file a second time.

    Attributes
    ----------
    full_frame : (FH, FW) ndarray of uint16 or None
        The whole sensor frame, margins included (a copy); ``None`` when it
        is the visible area itself.
    rgb_xyz_matrix : (3, 3) ndarray of float64
        LibRaw's XYZ-to-camera matrix; where it reports none but develops
        the file with a colour conversion of its own (the Kodak DC50), the
        matrix that gives that conversion (:func:`_developed_matrix`); all
        zero when it develops the camera's channels as they are.
    camera_whitebalance : (3,) ndarray of float64
        The camera's multipliers for R, G, B as LibRaw reports them
        (``-1`` first: the camera was on automatic white balance and the
        file keeps none).
    flip : int
        LibRaw's ``sizes.flip``.
    aperture, focal_length : float
        LibRaw's f-number and focal length (mm); 0 or 1.0 when unknown.
    artist : str
        LibRaw's owner/artist string.
    preview : bytes or (h, w, 3) ndarray of uint8 or None
        The camera's embedded preview: JPEG bytes, or an RGB bitmap;
        ``None`` when there is none or LibRaw cannot unpack it.
    metadata : rawmap.metadata.Metadata
        What the file's headers state (:func:`rawmap.metadata.read_metadata`,
        as the reader read them).
    """

    full_frame: np.ndarray | None
    rgb_xyz_matrix: np.ndarray
    camera_whitebalance: np.ndarray
    flip: int
    aperture: float
    focal_length: float
    artist: str
    preview: bytes | np.ndarray | None
    metadata: Metadata


def _extras(raw: rawpy.RawPy, visible: np.ndarray, meta: Metadata) -> RawExtras:
    """:class:`RawExtras` of an opened and unpacked ``raw`` whose visible area is ``visible``."""
    full_image = raw.raw_image
    full = None if full_image.shape == visible.shape else np.array(full_image, dtype=np.uint16, copy=True)
    preview: bytes | np.ndarray | None = None
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, MemoryError):  # no preview, or one LibRaw cannot unpack
        thumb = None
    if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
        preview = bytes(thumb.data)
    elif thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
        arr = np.asarray(thumb.data)
        preview = arr if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8 else None
    other = raw.other
    return RawExtras(
        full_frame=full,
        rgb_xyz_matrix=_xyz_to_camera(raw, meta),
        camera_whitebalance=np.asarray(raw.camera_whitebalance, dtype=np.float64)[:3].copy(),
        flip=int(raw.sizes.flip),
        aperture=float(other.aperture),
        focal_length=float(other.focal_length),
        artist=str(other.artist or "").strip(),
        preview=preview,
        metadata=meta,
    )


def _xyz_to_camera(raw: rawpy.RawPy, meta: Metadata) -> np.ndarray:
    """LibRaw's XYZ-to-camera matrix, or the one its development implies when it reports none.

    A DNG's own colour tags (which LibRaw does not report) are carried by
    the copy as they are, so a DNG is never developed here.
    """
    cm = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3].copy()
    if np.any(cm != 0) or raw.num_colors < 3 or meta.dng_colour:
        return cm
    implied = _developed_matrix(raw)
    return cm if implied is None else implied


def _developed_matrix(raw: rawpy.RawPy) -> np.ndarray | None:
    """The XYZ-to-camera matrix that makes LibRaw develop a copy as it develops ``raw``.

    Some files carry no colour matrix, and LibRaw reports none, yet develops
    them with a camera-to-sRGB conversion of its own (the Kodak DC50's KDC:
    blue 11 % darker than its channels as they are).  A DNG copy without a
    ColorMatrix1 cannot be developed, and with sRGB primaries it develops
    differently; so the conversion is measured, once per file (two linear
    half-size developments, the camera's channels and sRGB: LibRaw's own
    code, whatever it does), and turned into the ColorMatrix1 whose
    conversion it is (LibRaw inverts ``ColorMatrix1 x sRGB-to-XYZ`` after
    scaling its rows to sum to 1; a conversion's rows sum to 1, and so do
    its inverse's).  ``None`` where the development leaves the channels as
    they are, or cannot be measured.
    """
    from ..dng import DEFAULT_COLOR_MATRIX

    def develop(space: rawpy.ColorSpace) -> np.ndarray:
        params = rawpy.Params(
            use_camera_wb=True, half_size=True, no_auto_bright=True, output_bps=16, gamma=(1, 1), output_color=space
        )
        return raw.postprocess(params).reshape(-1, 3).astype(np.float64)

    try:
        camera, srgb = develop(rawpy.ColorSpace.raw), develop(rawpy.ColorSpace.sRGB)
    except (rawpy.LibRawError, MemoryError, ValueError):
        return None
    # pixels clipped in neither development (sRGB clips negative values to 0), lit enough to see the conversion
    ok = (
        (camera.max(axis=1) < 60000)
        & (srgb.max(axis=1) < 60000)
        & (camera.min(axis=1) > 256)
        & (srgb.min(axis=1) > 256)
    )
    if np.count_nonzero(ok) < 1000:
        return None
    conversion = np.linalg.lstsq(camera[ok], srgb[ok], rcond=None)[0].T  # srgb = conversion @ camera
    if np.allclose(conversion, np.eye(3), atol=2e-3) or not np.all(np.isfinite(conversion)):
        return None
    try:
        return np.linalg.inv(conversion) @ DEFAULT_COLOR_MATRIX
    except np.linalg.LinAlgError:
        return None


def _clearly_truncated(meta: Metadata) -> bool:
    """Whether a RAW file misses more data than any camera's loose byte counts explain.

    A few cameras write strip byte counts slightly past the end of the file;
    such small overruns are left to LibRaw, which stops with an I/O error
    only if it really runs out of data.
    """
    deficit = meta.truncated_at - meta.file_size
    return meta.truncated_at > 0 and deficit > max(4096, meta.file_size // 100)


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
        return (
            f"its header claims a {frame} ({n / 1e6:,.0f} million photosites), "
            f"more than any camera has ({MAX_PHOTOSITES / 1e6:.0f} million): the header is damaged"
        )
    if n > _PHOTOSITES_PER_BYTE * max(file_size, 1):
        return (
            f"its header claims a {frame} ({n / 1e6:,.1f} million photosites), far too many for a "
            f"file of {file_size:,} bytes: the header is damaged"
        )
    return ""


def _read_raw(
    p: Path,
    meta: Metadata,
    *,
    pixels: bool,
    out: np.ndarray | None = None,
    share: bool = False,
    extras: bool = False,
) -> tuple[FileInfo, np.ndarray | None]:
    fmt = extension(p).upper() or "RAW"
    kept: RawExtras | None = None
    try:
        with quiet_decoders():
            raw = rawpy.imread(str(p))
        shared = False
        try:
            sizes = raw.sizes
            problem = _size_problem(sizes, meta.file_size)
            if problem:  # before LibRaw allocates the frame it claims
                raise UnreadableFileError(p, problem, RECOPY_HINT)
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
                elif (
                    out is not None
                    and out.shape == visible.shape
                    and out.dtype == np.uint16
                    and out.flags.c_contiguous
                    and out.flags.writeable
                ):
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
            check_levels(p, black, white, visible[::7, ::7])
            other = raw.other
            full_shape = (int(sizes.raw_height), int(sizes.raw_width))
            flip = int(sizes.flip)
            if extras:
                with quiet_decoders():
                    kept = _extras(raw, visible, meta)
        finally:
            if not shared:
                raw.close()
    except rawpy.LibRawFileUnsupportedError as exc:
        raise _unsupported(p, meta, fmt, exc) from None
    except rawpy.LibRawIOError:
        if meta.container == "":
            raise _not_raw(p) from None
        if meta.truncated_at:
            raise truncated_error(p, meta) from None
        raise UnreadableFileError(
            p,
            "could not be read to the end (LibRaw: input/output error); it is probably truncated or damaged",
            RECOPY_HINT,
        ) from None
    except rawpy.LibRawDataError:
        raise UnreadableFileError(p, "its image data is corrupt (LibRaw: data error)", RECOPY_HINT) from None
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError):
        raise UnsupportedFileError(
            p,
            f"is too large for LibRaw {_LIBRAW_VERSION} to decode in memory",
            "close other programs or use a machine with more memory",
        ) from None
    except rawpy.LibRawError as exc:
        raise UnreadableFileError(
            p, f"LibRaw cannot decode it ({type(exc).__name__}: {_libraw_msg(exc)})", RECOPY_HINT
        ) from None
    except MemoryError:
        raise UnsupportedFileError(
            p,
            "is too large to decode in the memory available",
            "close other programs or use a machine with more memory",
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
        extra={"flip": flip} if kept is None else {"flip": flip, "libraw": kept},
        temperature=meta.temperature,
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
        what = (
            "a film scanner" if "scan" in meta.model.lower() else "a scanner, stacked-colour or already demosaiced file"
        )
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
            p,
            "comes from a monochrome sensor (no colour filter array); monochrome sensors are not supported yet",
            _BAYER_HINT,
        )
    if pattern.shape != (2, 2):
        raise NotBayerError(
            p, f"has a {pattern.shape[0]}x{pattern.shape[1]} colour filter pattern, not a 2x2 Bayer one", _BAYER_HINT
        )
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
        p,
        f"is not a camera RAW file: no RAW signature LibRaw {_LIBRAW_VERSION} knows ({describe_head(p)})",
        FORMATS_HINT,
    )


def _unsupported(p: Path, meta: Metadata, fmt: str, exc: BaseException) -> Exception:
    """The error for a file LibRaw does not decode: unsupported variant, or not a RAW file at all."""
    if meta.container == "":
        return _not_raw(p)
    if meta.damaged:
        return UnreadableFileError(
            p,
            f"looks like a {meta.container.upper()} file but its header is damaged; LibRaw cannot decode it",
            RECOPY_HINT,
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


# --------------------------------------------------------------------------- the backend's hooks


def _claims(probe: Probe) -> bool:
    """Every file: this backend is the registry's last resort (see the module docstring)."""
    return True


def _check_length(probe: Probe) -> None:
    if _clearly_truncated(probe.meta):
        raise truncated_error(probe.path, probe.meta)  # before LibRaw, which would also print to stderr


def _identify(probe: Probe) -> tuple[CameraId, SourceKind]:
    _check_length(probe)
    meta = probe.meta
    camera = CameraId(meta.make, meta.model, meta.serial, meta.serial_source)
    if not camera.make and not camera.model:
        make, model = _libraw_names(probe.path)
        camera = CameraId(make, model, meta.serial, meta.serial_source)
    return camera, SourceKind.RAW


def read(
    probe: Probe, *, pixels: bool, out: np.ndarray | None = None, share: bool = False, extras: bool = False
) -> tuple[FileInfo, np.ndarray | None]:
    """The file's :class:`FileInfo` and, with ``pixels``, its visible mosaic (see :func:`rawmap.reader.read_frame`).

    With ``extras``, ``FileInfo.extra["libraw"]`` holds the file's
    :class:`RawExtras`, read from the same decode.
    """
    _check_length(probe)
    return _read_raw(probe.path, probe.meta, pixels=pixels, out=out, share=share, extras=extras)


def _read_info(probe: Probe) -> FileInfo:
    return read(probe, pixels=False)[0]


def read_frame_extras(probe: Probe, out: np.ndarray | None, share: bool) -> Frame:
    """As the backend's ``read_frame``, with the file's :class:`RawExtras` in ``Frame.extra["libraw"]``."""
    return _read_frame(probe, out, share, extras=True)


def _read_frame(probe: Probe, out: np.ndarray | None, share: bool, extras: bool = False) -> Frame:
    info, mosaic = read(probe, pixels=True, out=out, share=share, extras=extras)
    return info.to_frame(mosaic)  # type: ignore[arg-type]  # pixels=True always gives an array


#: Camera RAW files, decoded by LibRaw.
BACKEND = Backend(
    name="libraw",
    extensions=RAW_EXTENSIONS,
    claims=_claims,
    identify=_identify,
    read_info=_read_info,
    read_frame=_read_frame,
)
