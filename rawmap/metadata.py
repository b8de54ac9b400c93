"""Camera identity and shot data from file headers, without decoding pixels.

rawpy (LibRaw) decodes the mosaic but does not expose the camera's make,
model or body serial number, and no single Python package reads them from
every RAW container.  This module reads them itself, from the headers only:

======================  ===================================================
container               what is read
======================  ===================================================
TIFF (NEF, CR2, DNG,    IFD0 chain and SubIFDs (Make, Model, Orientation,
ARW, PEF, KDC, ORF,     DateTime, DNG UniqueCameraModel 50708 and
RW2, TIFF images ...)   CameraSerialNumber 50735), the EXIF IFD
                        (ExposureTime, ISO, DateTimeOriginal, FNumber,
                        FocalLength, LensModel, LensSpecification,
                        CameraOwnerName, BodySerialNumber 0xA431), Artist,
                        DNG LensInfo, the serial number in Nikon (0x001D)
                        and Canon (0x000C) maker notes and the lens of
                        Nikon's (0x0084)
CIFF (Canon CRW)        Make/Model (0x080A), SerialNumber (0x180B),
                        TimeStamp (0x180E), OwnerName (0x0810), the lens
                        focal range of CanonCameraSettings (0x102D)
ISO BMFF (Canon CR3)    the CMT1 (IFD0), CMT2 (EXIF) and CMT3 (Canon maker
                        note) TIFF blocks inside ``moov/uuid``
RAF (Fujifilm)          the EXIF of the embedded JPEG
JPEG, PNG               the EXIF block (APP1 ``Exif``, ``eXIf`` chunk)
======================  ===================================================

Only header bytes are read (in 64 KiB blocks, so pixel data is never
read); parsing a header costs well under a millisecond.  Damaged optional parts (a maker note pointing nowhere) are
skipped, never fatal.  The one structural check made is whether image data
that the header points to lies beyond the end of the file
(:attr:`Metadata.truncated_at`), so that a truncated copy can be refused
before a decoder sees it.

Values are kept as the file states them: strings are only stripped of NULs
and surrounding white space (``"NIKON D1 "`` becomes ``"NIKON D1"``), numeric
serial numbers are written in decimal, an all-zero serial counts as none.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["Metadata", "sniff", "read_metadata", "parse_exif", "DNG_COLOUR_TAGS"]

#: DNG colour tags read into :attr:`Metadata.dng_colour`, tag -> (name, number of values)
DNG_COLOUR_TAGS = {
    50721: ("ColorMatrix1", 9),
    50722: ("ColorMatrix2", 9),
    50723: ("CameraCalibration1", 9),
    50724: ("CameraCalibration2", 9),
    50727: ("AnalogBalance", 3),
    50730: ("BaselineExposure", 1),
    50778: ("CalibrationIlluminant1", 1),
    50779: ("CalibrationIlluminant2", 1),
    50964: ("ForwardMatrix1", 9),
    50965: ("ForwardMatrix2", 9),
}


@dataclass(frozen=True)
class Metadata:
    """What a file's headers say about the camera and the shot.

    Attributes
    ----------
    container : str
        ``"tiff"``, ``"ciff"``, ``"bmff"``, ``"raf"``, ``"jpeg"``, ``"png"`` or
        ``""`` when the first bytes match none of them.
    make, model : str
        EXIF/TIFF Make and Model (CIFF's pair for CRW); when the file has no
        Make, ``model`` is DNG ``UniqueCameraModel`` and ``make`` its first
        word.  ``""`` when absent.
    serial : str
        Body serial number, ``""`` when absent.  Priority: DNG
        CameraSerialNumber, EXIF BodySerialNumber, maker-note / CIFF serial.
    serial_source : str
        Where ``serial`` was read: ``"exif"`` when EXIF BodySerialNumber
        holds it (also when a DNG CameraSerialNumber says the same),
        ``"dng"`` (CameraSerialNumber only), ``"makernote"`` (a maker note
        or CRW's CIFF record), ``""`` without a serial.  RawTherapee reads
        the EXIF one only (see :func:`rawmap.export.rawtherapee_name`).
    time : datetime or None
        Capture time as the camera clock shows it (naive): DateTimeOriginal,
        else DateTimeDigitized, else CIFF TimeStamp, else TIFF DateTime.
    exposure : float or None
        Exposure time in seconds; ``None`` when the file has no such tag
        (0.0 when the tag says 0, i.e. unknown).
    iso : float or None
        ISO speed; ``None`` when the file has no such tag.
    orientation : int
        EXIF/TIFF Orientation (1..8), 0 when absent.
    compression, photometric : int
        TIFF Compression and PhotometricInterpretation of the largest
        full-resolution image in a TIFF container, 0 when unknown.
    file_size : int
        Size of the file in bytes (of the blob for :func:`parse_exif`).
    truncated_at : int
        0, or the byte offset up to which the header says image data
        reaches when that is beyond ``file_size`` (the file is cut short).
    damaged : bool
        The container was recognised but its main structure (TIFF IFD0,
        CIFF directory, ...) does not parse.
    fnumber, focal_length : float or None
        EXIF FNumber and FocalLength (mm); ``None`` when the file has no
        such tag (0.0 when the tag says 0, i.e. unknown).
    lens_spec : tuple of 4 floats or None
        Shortest and longest focal length (mm), smallest f-number at each
        (0 = unknown): EXIF LensSpecification, DNG LensInfo, Nikon's maker
        note Lens, or the focal range of Canon's camera settings (CRW).
    lens : str
        Lens name: EXIF LensModel, else written from ``lens_spec`` the way
        exiftool does (``"20mm f/2.8"``, ``"16-35mm"``); ``""`` when unknown.
    owner : str
        EXIF CameraOwnerName, else TIFF Artist, else CIFF OwnerName.
    dng_colour : tuple of (int, tuple of float)
        A DNG's colour calibration, (tag, values) in tag order, from IFD0:
        ColorMatrix1/2, CameraCalibration1/2, AnalogBalance,
        BaselineExposure, CalibrationIlluminant1/2, ForwardMatrix1/2
        (:data:`DNG_COLOUR_TAGS`); empty for other files.
    linearization : tuple of int
        A DNG's LinearizationTable (50712) of its full-resolution image:
        stored value -> linear value; empty when it has none.
    maker_note : (bytes, int, str) or None
        The EXIF MakerNote of a TIFF-based file (at most 1 MiB): its bytes,
        its offset from the TIFF header (what its own offsets may count
        from) and the file's byte order (``"II"`` or ``"MM"``); what a DNG
        carries as Adobe's ``MakN`` DNGPrivateData.  ``None`` without one.
    ciff_notes : (str, tuple of (int, bytes)) or None
        A CRW's CIFF records, the Canon equivalent of a maker note: the
        file's byte order and every data record's (tag, bytes) in directory
        order, sub-directories flattened, without the image records (raw
        data, JPEG and thumbnail: :data:`CIFF_IMAGE_TAGS`); what a DNG
        carries as Adobe's ``CRW `` DNGPrivateData.  ``None`` for other files.
    wb_levels : (float, float) or None
        A Nikon maker note's white balance as shot (WB_RBLevels, 0x000C):
        the red and blue multipliers over green, as stated (dcraw reads
        them; LibRaw does not for the oldest bodies, e.g. the D1).
        ``None`` for other files.
    temperature : float or None
        EXIF 2.31 Temperature (0x9400), degrees C, ``None`` when absent or
        outside -100..150 (its "unknown" value).  EXIF defines it as the
        ambient temperature; cameras that write it (and rawmap's own DNGs)
        are the only source of a temperature in photos: the sensor
        temperatures of maker notes are not read.
    """

    container: str = ""
    make: str = ""
    model: str = ""
    serial: str = ""
    serial_source: str = ""
    time: _dt.datetime | None = None
    exposure: float | None = None
    iso: float | None = None
    orientation: int = 0
    compression: int = 0
    photometric: int = 0
    file_size: int = 0
    truncated_at: int = 0
    damaged: bool = False
    fnumber: float | None = None
    focal_length: float | None = None
    lens_spec: tuple[float, float, float, float] | None = None
    lens: str = ""
    owner: str = ""
    dng_colour: tuple[tuple[int, tuple[float, ...]], ...] = ()
    linearization: tuple[int, ...] = ()
    temperature: float | None = None
    maker_note: tuple[bytes, int, str] | None = None
    ciff_notes: tuple[str, tuple[tuple[int, bytes], ...]] | None = None
    wb_levels: tuple[float, float] | None = None


#: CIFF record ids (tag & 0x3FFF) of image data, left out of ``ciff_notes``:
#: RawData, JpgFromRaw, ThumbnailImage.
CIFF_IMAGE_TAGS = frozenset({0x2005, 0x2007, 0x2008})
#: At most this many bytes of CIFF records are kept in ``ciff_notes``.
_CIFF_NOTES_MAX = 1 << 20


class _Bad(Exception):
    """A structure that does not parse (internal; never escapes this module)."""


def _unpack(fmt: str, buf, off: int) -> tuple:
    """``struct.unpack`` of ``fmt`` at ``off`` in ``buf`` (bytes or :class:`_FileView`)."""
    size = struct.calcsize(fmt)
    if off < 0:
        raise _Bad("negative offset")
    data = buf[off : off + size]
    if len(data) < size:
        raise _Bad("read past the end")
    return struct.unpack(fmt, data)


class _FileView:
    """Random access to an open file's bytes, read in cached 64 KiB blocks.

    Supports ``len()``, ``view[i]`` and ``view[a:b]`` like ``bytes``, so the
    parsers treat a file and an in-memory EXIF block alike, and only the
    blocks holding headers are ever read.  (Plain reads rather than
    ``mmap``: a memory map fails on some network file systems and turns a
    file shrinking under it into a crash.)
    """

    _BLOCK = 1 << 16

    def __init__(self, fh, size: int) -> None:
        self._fh, self._size = fh, size
        self._cache: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self._size

    def _block(self, i: int) -> bytes:
        blk = self._cache.get(i)
        if blk is None:
            self._fh.seek(i * self._BLOCK)
            blk = self._cache[i] = self._fh.read(self._BLOCK)
        return blk

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self._size)
            if step != 1:
                raise ValueError("only contiguous slices")
            parts = []
            pos = start
            while pos < stop:
                i, o = divmod(pos, self._BLOCK)
                blk = self._block(i)
                if o >= len(blk):
                    break
                part = blk[o : o + (stop - pos)]
                parts.append(part)
                pos += len(part)
            return b"".join(parts)
        if key < 0:
            key += self._size
        if not 0 <= key < self._size:
            raise IndexError("offset out of range")
        i, o = divmod(key, self._BLOCK)
        blk = self._block(i)
        if o >= len(blk):
            raise IndexError("offset out of range")
        return blk[o]


# --------------------------------------------------------------------------- sniffing

_TIFF_MAGIC = {42, 0x4F52, 0x5352, 0x55}  # TIFF, Olympus ORF ("RO", "RS"), Panasonic RW2
_CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")


def sniff(head: bytes) -> str:
    """Name the container from the first bytes of a file.

    Parameters
    ----------
    head : bytes
        At least the first 16 bytes of the file (fewer are accepted).

    Returns
    -------
    str
        ``"tiff"``, ``"ciff"``, ``"bmff"``, ``"raf"``, ``"jpeg"``, ``"png"``,
        ``"x3f"``, ``"mrw"`` or ``""``.

    Examples
    --------
    >>> sniff(b"II*\\x00\\x08\\x00\\x00\\x00")
    'tiff'
    >>> sniff(b"hello")
    ''
    """
    if len(head) >= 14 and head[:2] in (b"II", b"MM") and head[6:14] == b"HEAPCCDR":
        return "ciff"
    if len(head) >= 4 and head[:2] in (b"II", b"MM"):
        e = "<" if head[:2] == b"II" else ">"
        if struct.unpack(e + "H", head[2:4])[0] in _TIFF_MAGIC:
            return "tiff"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:8] == b"FUJIFILM":
        return "raf"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "bmff"
    if head[:4] == b"FOVb":
        return "x3f"
    if head[:4] == b"\x00MRM":
        return "mrw"
    return ""


# --------------------------------------------------------------------------- value helpers


def _text(raw: bytes) -> str:
    """ASCII/UTF-8 field: cut at the first NUL, strip white space."""
    raw = raw.split(b"\x00", 1)[0]
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        s = raw.decode("latin-1")
    return s.strip()


def _serial_text(s: str) -> str:
    """A serial number, ``""`` when it is empty or all zeros."""
    s = s.strip()
    return "" if s.strip("0 ") == "" else s


_DT_RE = re.compile(rb"(\d{4})\D(\d{1,2})\D(\d{1,2})\D+(\d{1,2})\D(\d{1,2})\D(\d{1,2})")


def _parse_datetime(raw: bytes | str) -> _dt.datetime | None:
    """``"YYYY:MM:DD HH:MM:SS"`` (any separators) to a naive datetime; None if invalid."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    m = _DT_RE.search(raw)
    if not m:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        t = _dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    return t if t.year >= 1900 else None


# --------------------------------------------------------------------------- TIFF

# (struct code, size) per TIFF field type; rationals are two codes.
_TYPES = {
    1: ("B", 1),
    2: ("s", 1),
    3: ("H", 2),
    4: ("I", 4),
    5: ("II", 8),
    6: ("b", 1),
    7: ("s", 1),
    8: ("h", 2),
    9: ("i", 4),
    10: ("ii", 8),
    11: ("f", 4),
    12: ("d", 8),
    13: ("I", 4),
}
_MAX_ENTRIES = 1000  # more entries than any camera writes: not an IFD
_MAX_IFDS = 64


class _Tiff:
    """Random access to one TIFF structure inside ``buf``.

    ``base`` is the absolute offset that the structure's offsets are
    relative to (the TIFF header, or a maker note's own header).
    """

    def __init__(self, buf, base: int, endian: str) -> None:
        self.buf, self.base, self.e = buf, base, endian

    @classmethod
    def at_header(cls, buf, base: int) -> tuple[_Tiff, int]:
        """Parse the 8-byte header at ``base``; return the reader and IFD0's absolute offset."""
        head = bytes(buf[base : base + 8])
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise _Bad("no TIFF header")
        e = "<" if head[:2] == b"II" else ">"
        magic, ifd0 = struct.unpack(e + "HI", head[2:8])
        if magic not in _TIFF_MAGIC:
            raise _Bad("bad TIFF magic")
        return cls(buf, base, e), base + ifd0

    def _unpack(self, fmt: str, off: int, size: int) -> tuple:
        return _unpack(self.e + fmt, self.buf, off)

    def ifd(self, off: int) -> tuple[dict[int, tuple[int, int, int]], int]:
        """Entries of the IFD at absolute ``off``.

        Returns ``{tag: (type, count, absolute value offset)}`` and the
        absolute offset of the next IFD (0 when none).
        """
        (n,) = self._unpack("H", off, 2)
        if n == 0 or n > _MAX_ENTRIES or off + 2 + 12 * n > len(self.buf):
            raise _Bad("bad IFD")
        entries: dict[int, tuple[int, int, int]] = {}
        invalid = 0
        for i in range(n):
            p = off + 2 + 12 * i
            tag, typ, count = self._unpack("HHI", p, 8)
            if typ not in _TYPES:
                invalid += 1
                continue
            size = _TYPES[typ][1] * count
            voff = p + 8 if size <= 4 else self.base + self._unpack("I", p + 8, 4)[0]
            entries.setdefault(tag, (typ, count, voff))
        if 2 * invalid > n:  # mostly unknown field types: this is not an IFD
            raise _Bad("not an IFD")
        nxt_p = off + 2 + 12 * n
        nxt = self._unpack("I", nxt_p, 4)[0] if nxt_p + 4 <= len(self.buf) else 0
        return entries, (self.base + nxt if nxt else 0)

    def raw(self, entry: tuple[int, int, int]) -> bytes:
        typ, count, voff = entry
        size = _TYPES[typ][1] * count
        if voff < 0 or voff + size > len(self.buf):
            raise _Bad("value past the end")
        return bytes(self.buf[voff : voff + size])

    def text(self, entry: tuple[int, int, int]) -> str:
        return _text(self.raw(entry))

    def numbers(self, entry: tuple[int, int, int], limit: int = 4096) -> list[float]:
        """Numeric values (rationals as floats, x/0 as 0.0), at most ``limit``."""
        typ, count, voff = entry
        if typ in (2, 7):
            raise _Bad("not numeric")
        code, size = _TYPES[typ]
        count = min(count, limit)
        vals = self._unpack(f"{count * len(code)}{code[0]}", voff, size * count)
        if typ in (5, 10):
            return [vals[i] / vals[i + 1] if vals[i + 1] else 0.0 for i in range(0, len(vals), 2)]
        return list(vals)


class _Acc:
    """Collects what the walkers find, with first-found-wins per field."""

    def __init__(self) -> None:
        self.f: dict[str, object] = {}
        self.extent = 0  # furthest byte image data reaches
        self.best_area = -1

    def put(self, key: str, value: object) -> None:
        if value not in (None, "") and key not in self.f:
            self.f[key] = value


def _try(fn, *args, **kwargs) -> None:
    """Run an optional parser step; a damaged structure only loses that step."""
    try:
        fn(*args, **kwargs)
    except (_Bad, struct.error, ValueError, IndexError, OverflowError):
        pass


def _get_text(t: _Tiff, ent: dict, tag: int) -> str:
    if tag in ent:
        try:
            return t.text(ent[tag])
        except _Bad:
            return ""
    return ""


def _get_num(t: _Tiff, ent: dict, tag: int) -> float | None:
    if tag in ent:
        try:
            vals = t.numbers(ent[tag], limit=1)
        except _Bad:
            return None
        return float(vals[0]) if vals else None
    return None


def _exif_fields(t: _Tiff, ent: dict, acc: _Acc, prefix: str) -> None:
    """Shot fields that may sit in the EXIF IFD or (TIFF/EP) in IFD0."""
    acc.put(prefix + "exposure", _get_num(t, ent, 33434))
    iso = _get_num(t, ent, 34855)
    if iso == 65535:  # ISOSpeedRatings saturates; EXIF 2.3 keeps the true value elsewhere
        iso = _get_num(t, ent, 34867) or _get_num(t, ent, 34866) or iso
    acc.put(prefix + "iso", iso)
    for tag, key in ((36867, "dto"), (36868, "dtd")):
        if tag in ent:
            try:
                acc.put(prefix + key, _parse_datetime(t.raw(ent[tag])))
            except _Bad:
                pass
    acc.put("exif_serial", _serial_text(_get_text(t, ent, 42033)))
    acc.put(prefix + "fnumber", _get_num(t, ent, 33437))
    acc.put(prefix + "temperature", _get_num(t, ent, 37888))  # EXIF 2.31 Temperature (SRATIONAL, deg C)
    acc.put(prefix + "focal", _get_num(t, ent, 37386))
    acc.put("lens_model", _get_text(t, ent, 42036))
    acc.put("owner_exif", _get_text(t, ent, 42032))
    _try(_lens_spec, t, ent, 42034, acc, "exif_lens_spec")


def _lens_spec(t: _Tiff, ent: dict, tag: int, acc: _Acc, key: str) -> None:
    if tag in ent:
        vals = t.numbers(ent[tag], limit=4)
        if len(vals) == 4 and all(v == v and v >= 0 for v in vals) and vals[0] > 0:
            acc.put(key, tuple(float(v) for v in vals))


def _ifd0_fields(t: _Tiff, ent: dict, acc: _Acc) -> None:
    acc.put("make", _get_text(t, ent, 271))
    acc.put("model", _get_text(t, ent, 272))
    acc.put("unique_model", _get_text(t, ent, 50708))
    acc.put("dng_serial", _serial_text(_get_text(t, ent, 50735)))
    acc.put("artist", _get_text(t, ent, 315))
    if 50706 in ent:  # DNGVersion: a DNG's colour calibration
        colour = []
        for tag, (_, n) in DNG_COLOUR_TAGS.items():
            if tag in ent:
                try:
                    vals = t.numbers(ent[tag], limit=n + 1)
                except _Bad:
                    continue
                if len(vals) == n and all(math.isfinite(v) for v in vals):
                    colour.append((tag, tuple(float(v) for v in vals)))
        acc.put("dng_colour", tuple(colour) or None)
    _try(_lens_spec, t, ent, 50736, acc, "dng_lens_spec")
    o = _get_num(t, ent, 274)
    if o is not None and 1 <= o <= 8:
        acc.put("orientation", int(o))
    if 306 in ent:
        try:
            acc.put("datetime", _parse_datetime(t.raw(ent[306])))
        except _Bad:
            pass
    _exif_fields(t, ent, acc, "ifd0_")


def _image_fields(t: _Tiff, ent: dict, acc: _Acc, check_extent: bool) -> None:
    """Record how far this IFD's image data reaches, and the main image's coding."""
    ends = 0
    for off_tag, cnt_tag in ((273, 279), (324, 325), (513, 514)):
        if off_tag in ent and cnt_tag in ent:
            try:
                offs = t.numbers(ent[off_tag], limit=1 << 20)
                cnts = t.numbers(ent[cnt_tag], limit=1 << 20)
            except _Bad:
                continue
            for o, c in zip(offs, cnts):
                if c > 0:
                    ends = max(ends, t.base + int(o) + int(c))
    if check_extent:
        acc.extent = max(acc.extent, ends)
    sub = _get_num(t, ent, 254)
    w, h = _get_num(t, ent, 256), _get_num(t, ent, 257)
    if w and h and not (int(sub or 0) & 1):  # full-resolution image, not a preview
        area = int(w) * int(h)
        if area > acc.best_area:
            acc.best_area = area
            acc.f["compression"] = int(_get_num(t, ent, 259) or 0)
            acc.f["photometric"] = int(_get_num(t, ent, 262) or 0)
            table: tuple[int, ...] = ()
            if 50712 in ent:
                try:
                    table = tuple(int(v) for v in t.numbers(ent[50712], limit=65536))
                except _Bad:
                    table = ()
            acc.f["linearization"] = table


def _maker_note(t: _Tiff, entry: tuple[int, int, int], acc: _Acc) -> None:
    """Body serial number from a Nikon or Canon maker note."""
    make = str(acc.f.get("make", "")).lower()
    typ, count, mn = entry
    if mn < 0 or mn + count > len(t.buf):
        raise _Bad("maker note past the end")
    if make.startswith("nikon"):
        head = bytes(t.buf[mn : mn + 10])
        if head[:6] == b"Nikon\x00" and head[6] == 2:
            # Type 3: its own TIFF header at +10, offsets relative to it.
            mt, ifd_off = _Tiff.at_header(t.buf, mn + 10)
        elif head[:6] == b"Nikon\x00":
            return  # type 1 (early Coolpix): no serial number tag
        else:
            mt, ifd_off = t, mn  # D1 style: bare IFD, offsets relative to the file's TIFF
        ent, _ = mt.ifd(ifd_off)
        acc.put("mn_serial", _serial_text(_get_text(mt, ent, 0x001D)))
        _try(_lens_spec, mt, ent, 0x0084, acc, "mn_lens_spec")
        _try(_nikon_wb_levels, mt, ent, acc)
    elif make.startswith("canon"):
        ent, _ = t.ifd(mn)  # bare IFD, offsets relative to the file's TIFF header
        if 0x000C in ent:
            v = t.numbers(ent[0x000C], limit=1)
            if v and int(v[0]) > 0:
                acc.put("mn_serial", str(int(v[0])))


def _nikon_wb_levels(t: _Tiff, ent: dict, acc: _Acc) -> None:
    """A Nikon maker note's WB_RBLevels (0x000C, four rationals): the red and blue multipliers as shot."""
    if 0x000C in ent and ent[0x000C][1] == 4:
        vals = t.numbers(ent[0x000C], limit=4)
        if len(vals) == 4 and all(v == v and 0 < v < 64 for v in vals[:2]):
            acc.put("mn_wb_levels", (float(vals[0]), float(vals[1])))


def _exif_ifd(t: _Tiff, off: int, acc: _Acc) -> None:
    ent, _ = t.ifd(off)
    _exif_fields(t, ent, acc, "exif_")
    if 37500 in ent:
        _try(_maker_note, t, ent[37500], acc)
        _, count, mn = ent[37500]
        if 0 < count <= 1 << 20 and 0 <= mn and mn + count <= len(t.buf) and "maker_note" not in acc.f:
            acc.f["maker_note"] = (bytes(t.buf[mn : mn + count]), mn - t.base, "II" if t.e == "<" else "MM")


def _walk_tiff(buf, base: int, acc: _Acc, *, check_extent: bool) -> None:
    """Walk IFD0's chain, SubIFDs and the EXIF IFD of the TIFF at ``base``."""
    t, ifd0 = _Tiff.at_header(buf, base)
    if check_extent and ifd0 >= len(buf):
        acc.extent = max(acc.extent, ifd0 + 2)
        return
    seen: set[int] = set()
    todo: list[tuple[int, bool]] = [(ifd0, True)]  # (offset, follow next-IFD chain)
    exif_done = False
    first = True
    while todo and len(seen) < _MAX_IFDS:
        off, chain = todo.pop(0)
        if off in seen or off <= 0:
            continue
        seen.add(off)
        try:
            ent, nxt = t.ifd(off)
        except (_Bad, struct.error):
            if first:
                raise
            if check_extent and off >= len(buf):  # an IFD the header promises is missing
                acc.extent = max(acc.extent, off + 2)
            continue
        if first:
            _ifd0_fields(t, ent, acc)
            first = False
        _try(_image_fields, t, ent, acc, check_extent)
        if 330 in ent:  # SubIFDs
            try:
                subs = t.numbers(ent[330], limit=64)
            except _Bad:
                subs = []
            todo.extend((t.base + int(s), False) for s in subs if s)
        if 34665 in ent and not exif_done:
            exif_done = True
            try:
                (eoff,) = t.numbers(ent[34665], limit=1)
                _try(_exif_ifd, t, t.base + int(eoff), acc)
            except (_Bad, ValueError):
                pass
        if chain and nxt and nxt < len(buf):
            todo.append((nxt, True))


# --------------------------------------------------------------------------- CIFF


def _walk_ciff(buf, acc: _Acc) -> None:
    """Canon CIFF (CRW): a heap of records; the directory sits at the heap's end."""
    e = "<" if bytes(buf[:2]) == b"II" else ">"
    (hlen,) = _unpack(e + "I", buf, 2)
    if hlen < 14 or hlen >= len(buf):
        raise _Bad("bad CIFF header")
    notes: list[tuple[int, bytes]] = []
    kept = 0

    def heap(start: int, end: int, depth: int) -> None:
        nonlocal kept
        if depth > 8 or end - start < 6:
            raise _Bad("bad CIFF heap")
        (tbl,) = _unpack(e + "I", buf, end - 4)
        tbl += start
        if not start <= tbl <= end - 2:
            raise _Bad("CIFF directory outside its heap")
        (n,) = _unpack(e + "H", buf, tbl)
        if n == 0 or tbl + 2 + 10 * n > end:
            raise _Bad("bad CIFF directory")
        for i in range(n):
            p = tbl + 2 + 10 * i
            tag, size, off = _unpack(e + "HII", buf, p)
            kind = tag & 0x3800
            tid = tag & 0x3FFF
            if tag & 0xC000 == 0x4000:  # value stored in the entry itself (8 bytes)
                data = bytes(buf[p + 2 : p + 10])
            else:
                if off + size > end - start:
                    raise _Bad("CIFF record outside its heap")
                if kind in (0x2800, 0x3000):
                    heap(start + off, start + off + size, depth + 1)
                    continue
                if tid in CIFF_IMAGE_TAGS or kept + size > _CIFF_NOTES_MAX:
                    continue
                data = bytes(buf[start + off : start + off + size])
            notes.append((tag, data))
            kept += len(data)
            if tid == 0x080A:  # "Make\0Model\0"
                parts = data.split(b"\x00")
                acc.put("make", _text(parts[0]) if parts else "")
                acc.put("model", _text(parts[1]) if len(parts) > 1 else "")
            elif tid == 0x0810:  # OwnerName
                acc.put("ciff_owner", _text(data.split(b"\x00")[0]))
            elif tid == 0x102D and len(data) >= 52:  # CanonCameraSettings: shorts
                long_focal, short_focal, units = _unpack(e + "3H", data, 2 * 23)
                if short_focal and units:
                    acc.put("mn_lens_spec", (short_focal / units, long_focal / units, 0.0, 0.0))
            elif tid == 0x180B and len(data) >= 4:
                (sn,) = _unpack(e + "I", data, 0)
                if sn:
                    acc.put("mn_serial", str(sn))
            elif tid == 0x180E and len(data) >= 4:
                (secs,) = _unpack(e + "I", data, 0)
                if secs:  # seconds since 1970 on the camera clock (no time zone applied)
                    acc.put("ciff_time", _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs))

    heap(hlen, len(buf), 0)
    acc.put("ciff_notes", ("II" if e == "<" else "MM", tuple(notes)))


# --------------------------------------------------------------------------- BMFF (CR3), JPEG, PNG, RAF


def _boxes(buf, start: int, end: int):
    """(type, payload start, payload end) of the ISO BMFF boxes in [start, end)."""
    p = start
    while p + 8 <= end:
        size, typ = _unpack(">I4s", buf, p)
        hdr = 8
        if size == 1:
            if p + 16 > end:
                return
            (size,) = _unpack(">Q", buf, p + 8)
            hdr = 16
        elif size == 0:
            size = end - p
        if size < hdr or p + size > end:
            return
        yield typ, p + hdr, p + size
        p += size


def _walk_bmff(buf, acc: _Acc) -> None:
    """Canon CR3: TIFF blocks CMT1 (IFD0), CMT2 (EXIF IFD), CMT3 (maker note)."""
    for typ, s, e in _boxes(buf, 0, len(buf)):
        if typ != b"moov":
            continue
        for typ2, s2, e2 in _boxes(buf, s, e):
            if typ2 != b"uuid" or bytes(buf[s2 : s2 + 16]) != _CR3_UUID:
                continue
            cmt = {t3: s3 for t3, s3, _e3 in _boxes(buf, s2 + 16, e2)}
            if b"CMT1" in cmt:
                _try(_walk_tiff, buf, cmt[b"CMT1"], acc, check_extent=False)
            if b"CMT2" in cmt:

                def exif(off: int) -> None:
                    t, ifd = _Tiff.at_header(buf, off)
                    _exif_fields(t, t.ifd(ifd)[0], acc, "exif_")

                _try(exif, cmt[b"CMT2"])
            if b"CMT3" in cmt and str(acc.f.get("make", "")).lower().startswith("canon"):

                def canon(off: int) -> None:
                    t, ifd = _Tiff.at_header(buf, off)
                    ent, _ = t.ifd(ifd)
                    if 0x000C in ent:
                        v = t.numbers(ent[0x000C], limit=1)
                        if v and int(v[0]) > 0:
                            acc.put("mn_serial", str(int(v[0])))

                _try(canon, cmt[b"CMT3"])
            return


def _jpeg_exif_offset(buf, start: int = 0) -> int:
    """Absolute offset of the TIFF header in a JPEG's APP1 ``Exif`` segment, -1 if none."""
    if bytes(buf[start : start + 2]) != b"\xff\xd8":
        return -1
    p = start + 2
    while p + 4 <= len(buf):
        if buf[p] != 0xFF:
            return -1
        marker = buf[p + 1]
        if marker == 0xFF:  # fill byte
            p += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more headers
            return -1
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            p += 2
            continue
        (length,) = _unpack(">H", buf, p + 2)
        if marker == 0xE1 and bytes(buf[p + 4 : p + 10]) == b"Exif\x00\x00":
            return p + 10
        p += 2 + length
    return -1


def _walk_jpeg(buf, acc: _Acc, start: int = 0) -> None:
    off = _jpeg_exif_offset(buf, start)
    if off >= 0:
        _walk_tiff(buf, off, acc, check_extent=False)


def _walk_png(buf, acc: _Acc) -> None:
    p = 8
    while p + 12 <= len(buf):
        length, typ = _unpack(">I4s", buf, p)
        if typ == b"eXIf":
            blob = bytes(buf[p + 8 : p + 8 + length])
            if blob.startswith(b"Exif\x00\x00"):
                blob = blob[6:]
            _walk_tiff(blob, 0, acc, check_extent=False)
            return
        if typ == b"IEND":
            return
        p += 12 + length


def _walk_raf(buf, acc: _Acc) -> None:
    """Fujifilm RAF: big-endian offset of the embedded JPEG at byte 84."""
    (jpeg_off,) = _unpack(">I", buf, 84)
    _walk_jpeg(buf, acc, jpeg_off)


# --------------------------------------------------------------------------- assembling


def _finish(acc: _Acc, container: str, size: int, damaged: bool = False) -> Metadata:
    f = acc.f
    make, model = str(f.get("make", "")), str(f.get("model", ""))
    if not make and not model and f.get("unique_model"):
        # DNG without EXIF Make (e.g. Blackmagic): the unique model names the vendor first.
        model = str(f["unique_model"])
        make = model.split()[0]
    serial_key = next((k for k in ("dng_serial", "exif_serial", "mn_serial") if f.get(k)), "")
    serial = str(f[serial_key]) if serial_key else ""
    if serial and str(f.get("exif_serial", "")) == serial:
        serial_key = "exif_serial"
    serial_source = {"dng_serial": "dng", "exif_serial": "exif", "mn_serial": "makernote"}.get(serial_key, "")
    time = next(
        (f[k] for k in ("exif_dto", "ifd0_dto", "exif_dtd", "ifd0_dtd", "ciff_time", "datetime") if f.get(k)),
        None,
    )
    exposure = f.get("exif_exposure", f.get("ifd0_exposure"))
    iso = f.get("exif_iso", f.get("ifd0_iso"))
    fnumber = f.get("exif_fnumber", f.get("ifd0_fnumber"))
    focal = f.get("exif_focal", f.get("ifd0_focal"))
    temperature = f.get("exif_temperature", f.get("ifd0_temperature"))
    if temperature is not None and not -100.0 < float(temperature) < 150.0:  # type: ignore[arg-type]
        temperature = None  # the tag's "unknown" (0xFFFFFFFF / 1000) or a garbled value
    spec = next((f[k] for k in ("exif_lens_spec", "dng_lens_spec", "mn_lens_spec") if f.get(k)), None)
    lens = str(f.get("lens_model", "")) or (_lens_name(spec) if spec else "")  # type: ignore[arg-type]
    owner = next((str(f[k]) for k in ("owner_exif", "artist", "ciff_owner") if f.get(k)), "")
    return Metadata(
        container=container,
        make=make,
        model=model,
        serial=serial,
        serial_source=serial_source,
        time=time,  # type: ignore[arg-type]
        exposure=None if exposure is None else float(exposure),  # type: ignore[arg-type]
        iso=None if iso is None else float(iso),  # type: ignore[arg-type]
        orientation=int(f.get("orientation", 0)),  # type: ignore[call-overload]
        compression=int(f.get("compression", 0)),  # type: ignore[call-overload]
        photometric=int(f.get("photometric", 0)),  # type: ignore[call-overload]
        file_size=size,
        truncated_at=acc.extent if acc.extent > size else 0,
        damaged=damaged,
        fnumber=None if fnumber is None else float(fnumber),  # type: ignore[arg-type]
        focal_length=None if focal is None else float(focal),  # type: ignore[arg-type]
        lens_spec=spec,  # type: ignore[arg-type]
        lens=lens,
        owner=owner,
        dng_colour=f.get("dng_colour", ()),  # type: ignore[arg-type]
        linearization=f.get("linearization", ()),  # type: ignore[arg-type]
        temperature=None if temperature is None else float(temperature),  # type: ignore[arg-type]
        maker_note=f.get("maker_note"),  # type: ignore[arg-type]
        ciff_notes=f.get("ciff_notes"),  # type: ignore[arg-type]
        wb_levels=f.get("mn_wb_levels"),  # type: ignore[arg-type]
    )


def _lens_name(spec: tuple[float, float, float, float]) -> str:
    """``"20mm f/2.8"``, ``"16-35mm f/3.5-4.5"``, ``"100mm"``: a lens from its focal and aperture range."""

    def num(x: float) -> str:
        return f"{x:.1f}".rstrip("0").rstrip(".")

    lo, hi, a_lo, a_hi = spec
    text = f"{num(lo)}mm" if hi <= lo else f"{num(lo)}-{num(hi)}mm"
    if a_lo > 0:
        text += f" f/{num(a_lo)}" if a_hi <= 0 or abs(a_hi - a_lo) < 0.05 else f" f/{num(a_lo)}-{num(a_hi)}"
    return text


_WALKERS = {
    "tiff": lambda buf, acc: _walk_tiff(buf, 0, acc, check_extent=True),
    "ciff": _walk_ciff,
    "bmff": _walk_bmff,
    "raf": _walk_raf,
    "jpeg": _walk_jpeg,
    "png": _walk_png,
}


def _parse(buf, size: int) -> Metadata:
    container = sniff(bytes(buf[:16]))
    acc = _Acc()
    damaged = False
    walker = _WALKERS.get(container)
    if walker is not None:
        try:
            walker(buf, acc)
        except (_Bad, struct.error, ValueError, IndexError, OverflowError):
            damaged = True  # for CIFF, whose directory sits at the very end: typically a cut file
    return _finish(acc, container, size, damaged)


def read_metadata(path: str | os.PathLike[str]) -> Metadata:
    """Read camera identity and shot data from a file's headers.

    Parameters
    ----------
    path : str or path-like
        A RAW or image file.

    Returns
    -------
    Metadata
        Everything found; fields the file lacks stay empty.  A file in an
        unknown container gives ``Metadata(container="")``.

    Raises
    ------
    OSError
        The file cannot be opened or mapped (missing, a directory, no
        permission).  Malformed headers never raise.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = p.write_text("not an image")
    >>> read_metadata(p).container
    ''
    """
    with open(Path(path), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return Metadata(file_size=0)
        return _parse(_FileView(fh, size), size)


def parse_exif(blob: bytes) -> Metadata:
    """Parse an EXIF block as found in a JPEG APP1 segment or a PNG ``eXIf`` chunk.

    Parameters
    ----------
    blob : bytes
        A TIFF structure, optionally preceded by ``b"Exif\\0\\0"``.

    Returns
    -------
    Metadata
        With ``container="tiff"``; empty fields when the block does not parse.
    """
    if blob.startswith(b"Exif\x00\x00"):
        blob = blob[6:]
    acc = _Acc()
    _try(_walk_tiff, blob, 0, acc, check_extent=False)
    return replace(_finish(acc, "tiff", len(blob)), truncated_at=0)
