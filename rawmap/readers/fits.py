"""FITS files of astronomy cameras (cooled CMOS and CCD, smart telescopes, DSLRs through capture software).

Read with :mod:`astropy.io.fits`, the optional extra ``rawmap[fits]``;
without astropy a FITS file is refused with one line saying how to
install it.  The backend claims files named ``.fits``, ``.fit``, ``.fts``
or ``.fz`` (fpack-compressed) and any file that starts with the FITS
signature ``SIMPLE  =``; it comes first in :data:`rawmap.readers.BACKENDS`,
so ``--cfa`` and its options do not apply to FITS files: their header says
what they are.

What is read
------------
The first header-and-data unit holding a 2-D image (the primary one, or
the first extension for compressed files); a third axis of one plane is
dropped, more planes (a colour image) are refused with
:class:`~rawmap.errors.NotBayerError`.

Pixels become the ``(H, W)`` uint16 mosaic every RAW reader gives:

* Integer data (BITPIX 8, 16, 32, 64) with ``BZERO``/``BSCALE`` applied
  (astropy does it; unsigned 16-bit data stored as BITPIX 16 with
  ``BZERO = 32768`` comes back as 0..65535).  Values below 0 (calibrated,
  bias-subtracted frames) are clipped to 0; data with no value above 0 and
  some below is refused.  A white level beyond 65535 (32-bit data) is
  brought into 16 bits by the right shift that fits it (the same for every
  file with the same header); 32-bit data without ``DATAMAX``/``SATURATE``
  must hold values up to 65535 (most capture software writes 16-bit
  values into 32-bit files) or is refused.
* Floating-point data (BITPIX -32, -64, or integers with a non-integer
  scaling): NaN or infinite values are refused.  The white level is
  ``DATAMAX`` or ``SATURATE`` when given; else data within [0, 1] are
  normalised (as Siril and PixInsight write them) and scaled by 65535;
  else values are DN, white 65535.  Values are multiplied by the scale
  (65535 for normalised data, ``65535 / white`` for a white level above
  65535, else 1), rounded and clipped to 0..65535; ``extra["scale"]``
  records the factor.  The black level is scaled alike, unless it is not
  below the data's white level (an ``OFFSET`` setting in DN written with
  normalised data), when it is taken in 16-bit DN as it stands.

Row order and Bayer pattern
---------------------------
Row 0 of the mosaic is the row Siril shows at the top, which is the
row its cosmetic-correction files count ``y`` from (see
:mod:`rawmap.export`), so a map made from FITS files exports to Siril
as from any other reader (measured with Siril 1.0.6 for bottom-up files;
Siril 1.0 does not turn ``TOP-DOWN`` files at load, and counts their rows
from the last one stored, see :mod:`rawmap.export`).  Siril's FITS documentation ("Orientation of
FITS images") and its reader (``src/algos/demosaicing.c``,
``get_bayer_pattern``) set the convention followed here:

* ``ROWORDER = 'TOP-DOWN'`` (N.I.N.A., SharpCap, INDI, ASCOM drivers,
  the Seestar): the first row stored is the top row, row 0.
* ``ROWORDER = 'BOTTOM-UP'``, and a file without ``ROWORDER`` (the FITS
  standard's display convention, which Siril follows): the first row
  stored is the bottom row; the mosaic is the stored rows in reverse, row
  0 is the last row stored.
* ``BAYERPAT`` (``RGGB``, ``BGGR``, ``GRBG``, ``GBRG``) names the
  colours of the top-left 2x2 photosites of the image read top-down when
  ``ROWORDER`` is given (Siril flips the pattern of a bottom-up image);
  without ``ROWORDER`` it names those of the first rows stored (Siril's
  default, "from the header, else top-down").  ``XBAYROFF``/``YBAYROFF``
  shift the pattern by one column/row when odd.  ``Frame.cfa`` is the
  pattern of the mosaic's own top-left photosite after all of this.
  No ``BAYERPAT``: a monochrome sensor (``cfa=None``).

Other keywords
--------------
=====================  =========================================================
``EXPTIME``,           exposure time in seconds (the first present)
``EXPOSURE``
``ISOSPEED``, ``GAIN``  ``iso`` is ``ISOSPEED`` (DSLRs), else ``GAIN`` (camera
                       gain setting, as ``--iso`` takes it); ``extra["gain"]``
``CCD-TEMP``,          sensor temperature in deg C (``CCD_TEMP``, ``CCDTEMP``,
``SET-TEMP``           ``TEMPERAT`` as Siril reads them), cooler set point:
                       ``extra["ccd_temp"]``, ``extra["set_temp"]``
``DATE-OBS``           capture time (UTC as FITS has it, kept naive)
``IMAGETYP``,          frame type, ``extra["frame_type"]``: ``"bias"``,
``FRAMETYP``,          ``"dark"``, ``"flat"``, ``"dark flat"``, ``"light"`` (the
``FRAME``              words of MaxIm DL, N.I.N.A., SharpCap, Siril), else
                       the value as written
``INSTRUME``           camera model; the make is the vendor when the name
                       starts with one (:data:`VENDORS`), else ``""``.  No
                       ``INSTRUME``: ``"RGGB sensor 4144x2822"`` (or ``mono``),
                       so that files of one size form one body
``CAMSERIAL``,         body serial (``serial_source`` ``"fits"``); ``CAMSERIAL`` has
``SERIALNO``           nine letters, so it is found as a ``HIERARCH`` card
``XBINNING``,          binning (``BINX``/``BINY`` too); a binned frame is
``YBINNING``           another sensor geometry, mapped apart: its model
                       gets ``" binned 2x2"``, so it is another body
``PEDESTAL``,          black level in DN: ``-PEDESTAL`` when negative (MaxIm
``BLKLEVEL``,          DL adds ``PEDESTAL`` to get zero-based values), else
``OFFSET``             ``BLKLEVEL``, else ``OFFSET`` (the camera's offset
                       setting, in DN for most drivers), else 0
``DATAMAX``,           white level; else 255 for 8-bit, 32767 for signed
``SATURATE``           16-bit, 65535 for unsigned 16-bit and wider data
=====================  =========================================================

``extra`` also holds ``"iso_source"`` (the keyword ``iso`` came from), ``"bayer_pattern"`` and ``"bayer_offset"`` as
written, ``"row_order"`` (``""`` when absent), ``"flipped"`` (the stored
rows were reversed), ``"binning"``, ``"bitpix"`` and ``"clipped"`` (values
below 0 set to 0).

Writing back
------------
:func:`rewrite` gives the bytes of a FITS file with some photosites of
its mosaic replaced (what ``rawmap repair`` writes): the stored values of
those photosites only are changed, in the file's own type and units
(``BITPIX``, ``BZERO``/``BSCALE``, the 16-bit scaling undone) and row
order; every other value, every other unit and every header card stay as
they were, and ``HISTORY`` cards are added.
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import NotBayerError, UnreadableFileError, UnsupportedFileError
from ..frame import CameraId, Frame, SourceKind, cfa_letters, cfa_pattern
from .base import RECOPY_HINT, Backend, FileInfo, Probe, catching_warnings, check_levels

__all__ = ["BACKEND", "FITS_EXTENSIONS", "INSTALL_HINT", "VENDORS", "FitsHeader", "is_fits", "rewrite"]

#: File-name extensions (lower case, no dot) of FITS files; ``fz`` is fpack's compressed FITS.
FITS_EXTENSIONS = frozenset({"fits", "fit", "fts", "fz"})
#: The first bytes of every FITS file (the mandatory first card).
_SIGNATURE = b"SIMPLE  ="
#: What to do when astropy is missing.
INSTALL_HINT = "pip install 'rawmap[fits]'"

#: First word of ``INSTRUME`` (lower case) -> the make named for it.
VENDORS = {
    "zwo": "ZWO",
    "seestar": "ZWO",
    "qhy": "QHYCCD",
    "qhyccd": "QHYCCD",
    "atik": "Atik",
    "sbig": "SBIG",
    "fli": "FLI",
    "moravian": "Moravian",
    "touptek": "ToupTek",
    "altair": "Altair",
    "svbony": "SVBONY",
    "player": "Player One",
    "canon": "Canon",
    "nikon": "Nikon",
    "sony": "Sony",
    "starlight": "Starlight Xpress",
}
#: Model names that start with the vendor glued to the number (``ASI2600MM``, ``QHY268M``).
_PREFIXES = (("asi", "ZWO"), ("qhy", "QHYCCD"))

_FRAME_TYPES = (
    (("dark flat", "darkflat", "flat dark", "flatdark"), "dark flat"),
    (("bias", "offset", "zero"), "bias"),
    (("dark",), "dark"),
    (("flat",), "flat"),
    (("light", "object", "science"), "light"),
)


@dataclass(frozen=True)
class FitsHeader:
    """What rawmap reads from a FITS image header (see the module docstring for the keywords).

    Attributes
    ----------
    shape : tuple of int
        (H, W) as stored: ``NAXIS2``, ``NAXIS1``.
    planes : int
        ``NAXIS3`` (1 for a 2-D image).
    bitpix : int
        ``BITPIX`` of the stored data.
    exposure, gain, iso : float
        Seconds; camera gain; ISO (0 when not recorded).
    iso_source : str
        The keyword ``iso`` came from: ``"ISOSPEED"``, ``"GAIN"`` or ``""``.
    ccd_temp, set_temp : float or None
        Sensor temperature and cooler set point in deg C.
    time : datetime or None
        ``DATE-OBS``.
    frame_type : str
        ``"bias"``, ``"dark"``, ``"flat"``, ``"dark flat"``, ``"light"``, the
        value as written, or ``""``.
    instrument, serial : str
    binning : tuple of int
        (x, y), at least 1.
    bayer_pattern : str
        ``BAYERPAT`` upper-cased, ``""`` for none.
    bayer_offset : tuple of int
        (``XBAYROFF``, ``YBAYROFF``).
    row_order : str
        ``"TOP-DOWN"``, ``"BOTTOM-UP"`` or ``""`` (absent).
    black : float
        In the data's physical units (before any 16-bit scaling).
    white : float or None
        ``DATAMAX`` or ``SATURATE``; ``None`` when neither is given.
    """

    shape: tuple[int, int]
    planes: int
    bitpix: int
    exposure: float
    gain: float
    iso: float
    iso_source: str
    ccd_temp: float | None
    set_temp: float | None
    time: _dt.datetime | None
    frame_type: str
    instrument: str
    serial: str
    binning: tuple[int, int]
    bayer_pattern: str
    bayer_offset: tuple[int, int]
    row_order: str
    black: float
    white: float | None

    @property
    def flipped(self) -> bool:
        """The stored rows run bottom-up (``ROWORDER`` BOTTOM-UP or absent): row 0 is the last one stored."""
        return self.row_order != "TOP-DOWN"


# --------------------------------------------------------------------------- header


def _num(header: Any, *keys: str) -> float | None:
    """The first of ``keys`` present with a finite number (numbers written as strings too)."""
    for key in keys:
        value = header.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(number):
            return number
    return None


def _text(header: Any, *keys: str) -> str:
    """The first of ``keys`` present, as stripped text (``""`` for none)."""
    for key in keys:
        value = header.get(key)
        if value is not None and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return ""


def _date(text: str) -> _dt.datetime | None:
    """``DATE-OBS`` (``2024-06-01T22:10:05.1234567``, ``2024-06-01``) as a naive datetime; ``None`` if it does not parse."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip().replace(" ", "T"))
    try:
        when = _dt.datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(_dt.UTC).replace(tzinfo=None)
    return when


def _frame_type(text: str) -> str:
    low = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    for words, name in _FRAME_TYPES:
        if any(w in low for w in words):
            return name
    return text


def parse_header(header: Any) -> FitsHeader:
    """The :class:`FitsHeader` of an astropy image header (any mapping of keyword to value).

    Examples
    --------
    >>> h = parse_header({"NAXIS": 2, "NAXIS1": 6, "NAXIS2": 4, "BITPIX": 16, "EXPTIME": 30.0,
    ...                   "IMAGETYP": "Dark Frame", "BAYERPAT": "rggb", "ROWORDER": "TOP-DOWN"})
    >>> h.shape, h.exposure, h.frame_type, h.bayer_pattern, h.flipped
    ((4, 6), 30.0, 'dark', 'RGGB', False)
    """
    naxis = int(header.get("NAXIS", 0) or 0)
    dims = [int(header.get(f"NAXIS{i}", 0) or 0) for i in range(1, naxis + 1)]
    w = dims[0] if dims else 0
    h = dims[1] if len(dims) > 1 else 0
    planes = int(np.prod(dims[2:])) if len(dims) > 2 else 1
    gain = _num(header, "GAIN")
    iso = _num(header, "ISOSPEED", "ISO")
    iso_source = "ISOSPEED" if iso and iso > 0 else ("GAIN" if gain and gain > 0 else "")
    pedestal = _num(header, "PEDESTAL")
    if pedestal is not None and pedestal < 0:
        black = -pedestal
    else:
        black = _num(header, "BLKLEVEL", "OFFSET") or 0.0
    white = _num(header, "DATAMAX", "SATURATE")
    binx = _num(header, "XBINNING", "BINX")
    biny = _num(header, "YBINNING", "BINY")
    xoff = _num(header, "XBAYROFF")
    yoff = _num(header, "YBAYROFF")
    return FitsHeader(
        shape=(h, w),
        planes=planes,
        bitpix=int(header.get("BITPIX", 0) or 0),
        exposure=max(_num(header, "EXPTIME", "EXPOSURE") or 0.0, 0.0),
        gain=gain if gain is not None and gain >= 0 else 0.0,
        iso=iso if iso and iso > 0 else (gain if gain and gain > 0 else 0.0),
        iso_source=iso_source,
        ccd_temp=_num(header, "CCD-TEMP", "CCD_TEMP", "CCDTEMP", "TEMPERAT"),
        set_temp=_num(header, "SET-TEMP", "SET_TEMP"),
        time=_date(_text(header, "DATE-OBS")),
        frame_type=_frame_type(_text(header, "IMAGETYP", "FRAMETYP", "FRAME")),
        instrument=_text(header, "INSTRUME"),
        serial=_text(header, "CAMSERIAL", "SERIALNO"),
        binning=(max(int(binx or 1), 1), max(int(biny or 1), 1)),
        bayer_pattern=_text(header, "BAYERPAT").upper(),
        bayer_offset=(int(xoff or 0), int(yoff or 0)),
        row_order=_text(header, "ROWORDER").upper(),
        black=max(black, 0.0),
        white=white if white is not None and white > 0 else None,
    )


def camera_of(head: FitsHeader, pattern: str) -> CameraId:
    """The body named by ``INSTRUME`` and the serial keywords, binning kept apart (see the module docstring).

    Examples
    --------
    >>> camera_of(parse_header({"NAXIS": 2, "NAXIS1": 8, "NAXIS2": 6, "INSTRUME": "ZWO ASI183MM Pro",
    ...                         "XBINNING": 2, "YBINNING": 2}), "").label
    'ZWO ASI183MM Pro binned 2x2'
    >>> camera_of(parse_header({"NAXIS": 2, "NAXIS1": 8, "NAXIS2": 6}), "RGGB").model
    'RGGB sensor 8x6'
    """
    h, w = head.shape
    model = head.instrument
    make = ""
    if model:
        first = model.split()[0].lower()
        make = VENDORS.get(first, "")
        if not make:
            make = next((vendor for prefix, vendor in _PREFIXES if first.startswith(prefix)), "")
    else:
        model = f"{pattern or 'mono'} sensor {w}x{h}"
    bx, by = head.binning
    if bx > 1 or by > 1:
        model += f" binned {bx}x{by}"
    return CameraId(make, model, head.serial, "fits" if head.serial else "")


def cfa_of(p: Path, head: FitsHeader) -> np.ndarray | None:
    """The (2, 2) colour indices of the mosaic's top-left photosites (row order and offsets applied), or ``None``.

    Raises
    ------
    NotBayerError
        ``BAYERPAT`` is not a 2x2 Bayer pattern (X-Trans, CMYG).
    """
    pat = head.bayer_pattern
    if not pat:
        return None
    if len(pat) != 4 or sorted(pat) != sorted("RGGB"):
        raise NotBayerError(
            p,
            f"has BAYERPAT {pat[:40]!r}, not a 2x2 Bayer pattern (RGGB, BGGR, GRBG or GBRG)",
            "rawmap maps Bayer and monochrome sensors",
        )
    h = head.shape[0]
    xoff, yoff = head.bayer_offset
    letters = ""
    for r in range(2):
        # with ROWORDER the pattern is of the image read top-down (row r); without, of the rows as stored
        y = (h - 1 - r) if (head.flipped and not head.row_order) else r
        for c in range(2):
            letters += pat[2 * ((y + yoff) % 2) + (c + xoff) % 2]
    return cfa_pattern(letters)


# --------------------------------------------------------------------------- pixels


def _to_uint16(p: Path, data: np.ndarray, head: FitsHeader) -> tuple[np.ndarray, int, float, float, int]:
    """(mosaic, white, black, scale, clipped) of the data as astropy scaled it (see the module docstring)."""
    data = data.reshape(head.shape)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        bad = int(data.size - np.count_nonzero(finite))
        if bad:
            raise UnreadableFileError(
                p,
                f"holds {bad:,} NaN or infinite values: rawmap needs a value at every photosite",
                "give the camera's original frames, not a masked or rejected result",
            )
    low, top = float(data.min(initial=0)), float(data.max(initial=0))
    if top <= 0 and low < 0:
        raise UnreadableFileError(
            p,
            f"holds only values at or below 0 (lowest {low:g}): not a frame of photosite levels",
            "give the camera's original frames, not a calibrated difference",
        )
    clipped = int(np.count_nonzero(data < 0)) if low < 0 else 0
    black = head.black
    if data.dtype.kind == "f":
        white_phys = head.white if head.white is not None else (1.0 if top <= 1.0 else 65535.0)
        scale = 65535.0 / white_phys if (white_phys <= 1.0 or white_phys > 65535) else 1.0
        out = np.empty(head.shape, np.uint16)
        np.rint(np.clip(data * scale, 0, 65535), out=out, casting="unsafe")
        # a black level not below the white level cannot be in the data's units (an OFFSET setting
        # recorded with normalised data): it is taken in 16-bit DN as it stands
        black16 = black * scale if black < white_phys else black
        return out, int(round(white_phys * scale)), black16, scale, clipped
    if head.white is not None:
        white = int(head.white)
    elif data.dtype.itemsize == 1:
        white = 255
    elif data.dtype.kind == "i" and data.dtype.itemsize == 2:  # signed 16-bit without BZERO = 32768
        white = 32767
    else:
        white = 65535
        if top > 65535:
            raise UnsupportedFileError(
                p,
                f"holds {8 * data.dtype.itemsize}-bit values up to {int(top):,} and no DATAMAX or SATURATE "
                "keyword to scale them to the 16 bits rawmap maps",
                "save the frames as 16-bit FITS, or add DATAMAX with the sensor's white level",
            )
    shift = max(white.bit_length() - 16, 0)
    if shift:
        data = data >> shift
    if data.dtype.itemsize > 2:
        data = np.clip(data, 0, 65535)
    elif low < 0:
        data = np.maximum(data, 0)
    return data.astype(np.uint16), white >> shift, black / (1 << shift), 1.0 / (1 << shift), clipped


# --------------------------------------------------------------------------- reading


def _astropy(p: Path):
    """``astropy.io.fits``, or the one-line error saying how to install it."""
    try:
        from astropy.io import fits
    except ImportError:
        raise UnsupportedFileError(
            p, "is a FITS file, and reading FITS needs astropy, which is not installed", INSTALL_HINT
        ) from None
    return fits


def _image_hdu(p: Path, hdul: Any) -> tuple[int, Any]:
    """(index, unit) of the first unit holding an image of at least two axes."""
    for index, hdu in enumerate(hdul):
        if getattr(hdu, "is_image", False) and int(hdu.header.get("NAXIS", 0) or 0) >= 2:
            return index, hdu
    raise UnsupportedFileError(p, "is a FITS file without an image (tables only, or an empty header)")


def _check_extent(p: Path, hdul: Any, index: int, hdu: Any, head: FitsHeader) -> None:
    """Refuse a file shorter than its header says (uncompressed data only, whose size the header gives)."""
    if type(hdu).__name__ == "CompImageHDU" or head.bitpix == 0:
        return
    start = int(hdul.fileinfo(index)["datLoc"])
    need = start + abs(head.bitpix) // 8 * head.shape[0] * head.shape[1] * head.planes
    size = p.stat().st_size
    if size < need:
        raise UnreadableFileError(
            p,
            f"is truncated: its header places image data up to byte {need:,} but the file has only {size:,} bytes",
            RECOPY_HINT,
        )


def _open(p: Path, *, pixels: bool) -> tuple[FitsHeader, np.ndarray | None]:
    """The parsed header of a FITS file's image and, with ``pixels``, its data as astropy scales them."""
    fits = _astropy(p)
    try:
        with catching_warnings():
            warnings.simplefilter("ignore")  # astropy warns on non-standard cards; their values still read
            with fits.open(p, memmap=False, lazy_load_hdus=True) as hdul:
                index, hdu = _image_hdu(p, hdul)
                head = parse_header(hdu.header)
                _check_extent(p, hdul, index, hdu, head)
                data = np.asarray(hdu.data) if pixels else None
    except (UnsupportedFileError, UnreadableFileError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds of error on a damaged file
        raise UnreadableFileError(p, f"is not a readable FITS file ({str(exc)[:120]})", RECOPY_HINT) from None
    if head.planes != 1:
        raise NotBayerError(
            p,
            f"is a FITS image of {head.planes} planes (a colour image), not a raw mosaic",
            "give the camera's single-plane frames",
        )
    return head, data


def read(probe: Probe) -> tuple[FileInfo, np.ndarray]:
    """A FITS file's :class:`FileInfo` and its (H, W) uint16 mosaic (row 0 at the top, as Siril shows it).

    The data are always read: the white level of floating-point data, and
    the share of values clipped at 0, depend on them.

    Raises
    ------
    UnsupportedFileError
        astropy is missing (the hint says ``pip install 'rawmap[fits]'``);
        no image; 32-bit values without a white level.
    UnreadableFileError
        Damaged or truncated file, NaN values, nothing above 0, impossible levels.
    NotBayerError
        A colour (3-plane) image, or a pattern other than 2x2 Bayer.
    """
    p = probe.path
    head, data = _open(p, pixels=True)
    data = cast(np.ndarray, data)  # pixels=True always gives an array
    h, w = head.shape
    cfa = cfa_of(p, head)
    mosaic, white, black, scale, clipped = _to_uint16(p, data, head)
    if head.flipped:
        mosaic = np.ascontiguousarray(mosaic[::-1])
    extra = {
        "frame_type": head.frame_type,
        "gain": head.gain,
        "iso_source": head.iso_source,
        "ccd_temp": head.ccd_temp,
        "set_temp": head.set_temp,
        "binning": head.binning,
        "bayer_pattern": head.bayer_pattern,
        "bayer_offset": head.bayer_offset,
        "row_order": head.row_order,
        "flipped": head.flipped,
        "bitpix": head.bitpix,
        "scale": scale,
        "clipped": clipped,
    }
    info = FileInfo(
        path=p,
        format="FITS",
        source=SourceKind.RAW,
        camera=camera_of(head, cfa_letters(cfa)),
        shape=(h, w),
        channels=1,
        dtype="uint16",
        cfa=cfa,
        black=np.full(4, float(black)),
        white=min(int(white), 65535),
        exposure=head.exposure,
        iso=head.iso,
        time=head.time,
        margins=(0, 0),
        full_shape=(h, w),
        orientation=0,
        extra=extra,
        temperature=head.ccd_temp if head.ccd_temp is not None else head.set_temp,
    )
    check_levels(p, info.black, info.white, mosaic[::7, ::7])
    return info, mosaic


# --------------------------------------------------------------------------- writing back


def rewrite(p: Path, mosaic: np.ndarray, mask: np.ndarray, *, history: list[str]) -> bytes:
    """The bytes of the FITS file ``p`` with the photosites of ``mask`` set to ``mosaic``'s values.

    ``mosaic`` is in rawmap's terms (as :func:`read` gives it: row 0 at the
    top, 16-bit DN); each masked value is brought back to the file's units
    (the 16-bit factor of :func:`read` undone, then ``BZERO``/``BSCALE``),
    rounded and clipped to the stored type when it is an integer type, and
    written at its place in the file's row order.  Nothing else changes:
    every other stored value is kept bit for bit (the data are handled as
    stored, never scaled), so are the other units and cards; ``history``
    becomes ``HISTORY`` cards of the image's header, and ``CHECKSUM`` /
    ``DATASUM``, when present, are computed again.

    Parameters
    ----------
    p : Path
        A FITS file :func:`read` reads.
    mosaic : (H, W) ndarray of uint16
        New values (only those under ``mask`` are used).
    mask : (H, W) ndarray of bool
        The photosites to write, row 0 at the top.
    history : list of str
        Text of the ``HISTORY`` cards to add (long lines are continued on
        further cards by astropy).

    Returns
    -------
    bytes
        The whole file.

    Raises
    ------
    UnsupportedFileError
        A compressed (``.fz``) image: it is written back only uncompressed,
        which rawmap does not do behind the user's back.
    UnreadableFileError, NotBayerError
        As :func:`read`.
    """
    import io

    head, data = _open(p, pixels=True)
    current, _, _, scale, _ = _to_uint16(p, cast(np.ndarray, data), head)
    if head.flipped:
        current = current[::-1]
    if mosaic.shape != head.shape or mask.shape != head.shape or not np.array_equal(current[~mask], mosaic[~mask]):
        raise UnreadableFileError(p, "changed between two reads (other pixels than before)", RECOPY_HINT)
    fits = _astropy(p)
    try:
        with catching_warnings():
            warnings.simplefilter("ignore")  # non-standard cards: kept as they are
            with fits.open(p, memmap=False, do_not_scale_image_data=True) as hdul:
                index, hdu = _image_hdu(p, hdul)
                if type(hdu).__name__ == "CompImageHDU":
                    raise UnsupportedFileError(
                        p,
                        "is a compressed (fpack) FITS image: rawmap writes repaired FITS files uncompressed only",
                        "decompress it first (funpack) and repair the .fits file",
                    )
                stored = hdu.data.reshape(head.shape)  # as stored: BZERO/BSCALE not applied
                bzero = float(hdu.header.get("BZERO", 0) or 0)
                bscale = float(hdu.header.get("BSCALE", 1) or 1)
                where = mask[::-1] if head.flipped else mask
                values = mosaic[::-1][where] if head.flipped else mosaic[where]
                target = (values.astype(np.float64) / scale - bzero) / bscale
                if stored.dtype.kind in "iu":
                    info = np.iinfo(stored.dtype)
                    target = np.clip(np.rint(target), info.min, info.max)
                stored[where] = target.astype(stored.dtype)
                for line in history:
                    hdu.header.add_history(line)
                checksum = any(k in unit.header for unit in hdul for k in ("CHECKSUM", "DATASUM"))
                buf = io.BytesIO()
                hdul.writeto(buf, checksum=checksum, output_verify="silentfix")
    except (UnsupportedFileError, UnreadableFileError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds of error on a damaged file
        raise UnreadableFileError(p, f"is not a readable FITS file ({str(exc)[:120]})", RECOPY_HINT) from None
    return buf.getvalue()


# --------------------------------------------------------------------------- the backend's hooks


def is_fits(p: Path) -> bool:
    """``p`` is named as a FITS file or starts with the FITS signature (what this backend claims)."""
    if p.suffix[1:].lower() in FITS_EXTENSIONS:
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(len(_SIGNATURE)) == _SIGNATURE
    except OSError:
        return False


def _claims(probe: Probe) -> bool:
    """Files named as FITS, and any file that starts with the FITS signature."""
    return probe.ext in FITS_EXTENSIONS or is_fits(probe.path)


def _identify(probe: Probe) -> tuple[CameraId, SourceKind]:
    """The body from the header alone (the data are not read)."""
    head, _ = _open(probe.path, pixels=False)
    return camera_of(head, cfa_letters(cfa_of(probe.path, head))), SourceKind.RAW


def _read_info(probe: Probe) -> FileInfo:
    return read(probe)[0]


def _read_frame(probe: Probe, out: np.ndarray | None, share: bool) -> Frame:
    info, mosaic = read(probe)
    return info.to_frame(mosaic)


#: FITS files, through astropy (the ``rawmap[fits]`` extra).
BACKEND = Backend(
    name="fits",
    extensions=FITS_EXTENSIONS,
    claims=_claims,
    identify=_identify,
    read_info=_read_info,
    read_frame=_read_frame,
)
