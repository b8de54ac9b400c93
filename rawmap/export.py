"""Write a defect map in the formats other raw tools read.

Every writer is a pure function from a :class:`~rawmap.defectmap.DefectMap`
to text; :func:`write_export` puts that text in a file atomically and never
replaces an existing file unless asked.

* ``dcraw``: a ``-P`` list for dcraw and LibRaw's ``dcraw_emu``; default
  name ``<slug>.dcraw.txt``.  Every line is dated 0 ("always": older photos
  are repaired too) unless ``since_first_seen``, which dates each line with
  the defect's ``first_seen`` so that photos taken before it showed are
  left alone.
* ``rawtherapee``: RawTherapee's per-body file, named
  ``<Make> <Model>[ <Serial>].badpixels`` as RawTherapee spells them.
* ``siril``: a cosmetic-correction list for Siril's ``cosme`` /
  ``cosme_cfa``; default name ``<slug>.lst``.
* ``csv``: every field of every defect; default name ``<slug>-defects.csv``.

What the peers do, as measured
------------------------------
Measured on Debian 12 with dcraw 9.28, LibRaw 0.20.2 ``dcraw_emu``
(``libraw-bin``) and ``rawtherapee-cli`` 5.9, on DNG files written by
:func:`rawmap.dng.write_dng` whose visible area (``ActiveArea``) sits at row
8, column 12 of a larger frame (``tests/test_export.py`` repeats these
measurements whenever the peers are installed).

dcraw and LibRaw ``-P``
    One photosite per line, ``col row unixtime``; ``#`` starts a comment.
    Coordinates are those of the visible area, as rawpy's
    ``raw_image_visible`` and as the map's: the line ``30 20 0`` repairs
    visible (row 20, col 30); the full-frame position ``42 28 0`` repairs
    nothing.  ``dcraw -D -4 -T`` writes exactly the visible area (no
    margins), ``dcraw_emu`` (which has no ``-D``) likewise with
    ``-disinterp -o 0 -4 -r 1 1 1 1 -k 0 -S <white>`` (one colour per pixel,
    scaled by 65535 / white).  A line is applied when ``unixtime`` <= the photo's
    capture time, and both programs read the camera clock as UTC whatever
    the ``TZ`` of the machine (a defect dated with the photo's own capture
    time is repaired in that photo, one dated a second later is not: dcraw
    under ``TZ`` UTC, UTC+9, UTC+14 and UTC-5, LibRaw under UTC, UTC+9 and
    UTC-5).  So, when the lines are dated (``since_first_seen``),
    ``first_seen`` (the camera's naive clock time) is written as if it were
    UTC, truncated to the second; an aware datetime contributes its
    wall-clock reading (its offset is dropped, because the photo's own time
    carries none); unknown or pre-1970 times are written as 0, "always".
    By default every line is dated 0.

RawTherapee ``.badpixels``
    RawTherapee reads every ``*.badpixels`` file in the folder named by
    ``DarkFramesPath=`` in its options file (``$XDG_CONFIG_HOME`` or
    ``~/.config/RawTherapee/options``; a file holding only ``[General]``
    ``DarkFramesPath=...`` is enough) and, for every raw photo, in batch
    mode too and with no profile setting ("always correct camera
    badpixels"), looks up ``"<make> <model> <serial>"`` and then
    ``"<make> <model>"``.  The names are not the EXIF ones:

    * make and model are RawTherapee's own (its built-in dcraw's), i.e. the
      EXIF Make simplified to a company name (``NIKON CORPORATION`` ->
      ``Nikon``, ``OLYMPUS CORPORATION`` -> ``Olympus``, ``SONY`` ->
      ``Sony``, ``KONICA MINOLTA`` -> ``Minolta``, ``samsung`` ->
      ``Samsung``), a model starting with ``PENTAX`` making the make
      ``Pentax``, and the make dropped from the front of the model
      (``NIKON D750`` -> ``D750``, compared without case); see
      :func:`rawtherapee_name`;
    * the serial number is the EXIF one: a DNG carrying ``BodySerialNumber``
      in its EXIF IFD (as :func:`rawmap.dng.write_dng` writes it) is found
      under ``"<make> <model> <serial>"``; ``CameraSerialNumber`` (50735)
      alone, or ``BodySerialNumber`` put in IFD0, is not read, nor is the
      serial of a maker note or of a CRW's CIFF record: for the Canon EOS
      D30 CRW and the Blackmagic Pocket Cinema Camera 4K DNG (serial in
      CameraSerialNumber only), whose serials rawmap reads, RawTherapee
      looks up ``"Canon EOS D30"`` and ``"Blackmagic Pocket Cinema Camera
      4K"`` only.  So the serial goes into the name only when the map
      records that it came from EXIF BodySerialNumber
      (``camera.serial_source == "exif"``, :func:`rawtherapee_reads_serial`);
      otherwise the file is named without it and applies to every body of
      the model.

    Lines are ``x y`` = ``col row``; a first line holding a single number
    would be an offset added to all of them (never written here); other
    lines that do not start with two integers, like the ``#`` header
    written here, are ignored.  The coordinates are those of RawTherapee's
    raw crop, which is the visible area (the map's coordinates) unless
    RawTherapee's ``camconst.json`` gives the camera a ``raw_crop``: then
    the crop starts there, DNGs included (a Canon EOS 5D Mark IV DNG with
    ActiveArea at (54, 148) is cropped from (42, 136) by RawTherapee 5.9).
    Pass ``crop_origin`` to :func:`rawtherapee_text` for such cameras.
    Its output is that crop less 4 pixels on every side.  RawTherapee 5.9
    refuses raw files smaller than about 100 kB ("Error loading file").

Siril cosmetic list
    ``P x y H|C`` per photosite, ``C x 0 H|C`` for a whole column,
    ``L y 0 H|C`` for a whole row, ``#`` comments, ``x`` = column and
    ``y`` = row counted from the top of the visible area.  Siril uses the
    letter only to choose its repair (mean of the neighbours for H, median
    for C).  Measured with ``siril-cli`` 1.0.6 (``siril-cli -d DIR -s
    SCRIPT`` runs a script headless: ``load``, ``cosme_cfa`` or ``cosme``
    with the list, ``save``; ``tests/test_export.py`` repeats it whenever
    Siril is installed): Siril keeps images bottom-up in memory and counts
    ``y`` from the top of the image as it shows it, i.e. from the last row
    it stores.  On a DNG (which Siril turns bottom-up at load) and on a
    FITS file stored bottom-up (``ROWORDER = 'BOTTOM-UP'`` or none, the
    FITS convention), that is the map's row: every listed photosite
    changes, Bayer (``cosme_cfa``) and monochrome (``cosme``), and nothing
    else; a ``C`` line repairs its whole column (the partial segment it
    stands for, and most of the column's healthy photosites, interpolated
    from the columns beside).  A FITS file stored top-down
    (``ROWORDER = 'TOP-DOWN'``: N.I.N.A., SharpCap, ASCOM) is not turned
    at load by Siril 1.0, which then counts ``y`` from its last stored row,
    rawmap's bottom row: the list of a map made from such files repairs
    the mirrored rows ``H - 1 - y`` in Siril 1.0 (later Siril turns such
    files bottom-up at load, where the rows agree).
"""

from __future__ import annotations

import calendar
import csv
import datetime as _dt
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ._version import __version__
from .defectmap import Defect, DefectMap
from .errors import ExportError, one_line
from .fileio import atomic_write_text
from .frame import CameraId
from .kinds import KINDS

__all__ = [
    "ExportFormat",
    "FormatInfo",
    "FORMATS",
    "ExportError",
    "CSV_HEADER",
    "dcraw_timestamp",
    "dcraw_text",
    "rawtherapee_name",
    "rawtherapee_filename",
    "rawtherapee_reads_serial",
    "rawtherapee_text",
    "siril_text",
    "csv_text",
    "export_text",
    "default_filename",
    "write_export",
]


class ExportFormat(str, Enum):
    """Formats :func:`write_export` can write."""

    DCRAW = "dcraw"  #: dcraw / LibRaw ``-P`` list
    RAWTHERAPEE = "rawtherapee"  #: RawTherapee per-body ``.badpixels`` file
    SIRIL = "siril"  #: Siril cosmetic-correction list (``cosme``)
    CSV = "csv"  #: one row per defect, every field of the map


#: Header line of :func:`csv_text`.
CSV_HEADER = "row,col,kind,score,channel,first_seen,value"

# dcraw's "simplify company names" table, in its order (a make containing one
# of these, compared without case, becomes it).
_COMPANIES = (
    "AgfaPhoto", "Canon", "Casio", "Epson", "Fujifilm", "Mamiya", "Minolta",
    "Motorola", "Kodak", "Konica", "Leica", "Nikon", "Nokia", "Olympus",
    "Pentax", "Phase One", "Ricoh", "Samsung", "Sigma", "Sinar", "Sony",
)  # fmt: skip


def _coerce_format(fmt: ExportFormat | str) -> ExportFormat:
    try:
        return ExportFormat(fmt)
    except ValueError:
        names = ", ".join(f.value for f in ExportFormat)
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {names}") from None


def _software() -> str:

    return f"rawmap {__version__}"


def _require_raw(defect_map: DefectMap, what: str) -> None:
    if defect_map.sensor.source != "raw":
        raise ExportError(
            f"{what} lists photosites of RAW files, but this map was made from developed images "
            f"(sensor.source={defect_map.sensor.source!r}); make the map from the camera's RAW files, "
            "or export it as siril or csv"
        )


# --- dcraw / LibRaw ----------------------------------------------------------


def dcraw_timestamp(t: _dt.datetime | None) -> int:
    """The ``unixtime`` field of a dcraw ``-P`` line for a ``first_seen`` time.

    Parameters
    ----------
    t : datetime or None
        Camera-clock time.  Naive times are read as UTC, as dcraw and LibRaw
        read the photo's own capture time; an aware time contributes its
        wall-clock reading (its offset is ignored).

    Returns
    -------
    int
        Seconds since 1970-01-01 UTC, truncated; 0 ("always") for ``None``
        and for times before 1970.

    Examples
    --------
    >>> import datetime as dt
    >>> dcraw_timestamp(dt.datetime(2002, 8, 3, 16, 26, 40))
    1028392000
    >>> dcraw_timestamp(None)
    0
    """
    if t is None:
        return 0
    stamp = calendar.timegm(t.replace(tzinfo=None).timetuple())
    return max(0, int(stamp))


def dcraw_text(defect_map: DefectMap, *, since_first_seen: bool = False) -> str:
    """The map as a dcraw / LibRaw ``-P`` bad-pixel list.

    One line ``col row unixtime`` per defect, in visible-area coordinates,
    after a ``#`` header naming the camera, the rawmap version and which
    dating was chosen.  dcraw and LibRaw repair a photosite only in photos
    taken at or after ``unixtime``; 0 means always.

    Parameters
    ----------
    defect_map : DefectMap
        A map made from RAW files.
    since_first_seen : bool, optional
        Date each line with the defect's ``first_seen``
        (:func:`dcraw_timestamp`: the capture time of the earliest frame of
        the map that showed it, camera clock read as UTC, as the peers read
        the photo's own time), so photos taken before the defect showed are
        not touched.  By default every line is dated 0: every photo is
        repaired, older ones included (a defect is usually there long
        before the photos it was mapped from).

    Returns
    -------
    str
        The file's text, ``\\n`` line ends.

    Raises
    ------
    ExportError
        The map was made from developed images (``sensor.source`` is not
        ``"raw"``).
    """
    _require_raw(defect_map, "a dcraw/LibRaw -P list")
    lines = [
        f"# dcraw/LibRaw -P bad-pixel list for {one_line(defect_map.camera.label) or 'unknown camera'}",
        f"# written by {_software()}: col row unixtime (visible area; 0 = always; camera clock read as UTC)",
        "# dated: "
        + (
            "first_seen, each photosite repaired from the first photo that showed it on"
            if since_first_seen
            else "0 on every line, every photo repaired"
        ),
    ]
    lines += [f"{d.col} {d.row} {dcraw_timestamp(d.first_seen) if since_first_seen else 0}" for d in defect_map.defects]
    return "\n".join(lines) + "\n"


# --- RawTherapee -------------------------------------------------------------


def _strip_prefix_nocase(text: str, prefix: str) -> str:
    """``text`` without a leading ``prefix + " "`` (prefix compared without case)."""
    n = len(prefix)
    if n and text[:n].lower() == prefix.lower() and text[n : n + 1] == " ":
        return text[n + 1 :]
    return text


def rawtherapee_reads_serial(camera: CameraId) -> bool:
    """True when RawTherapee reads this body's serial number, so a serial-named file applies to it.

    RawTherapee 5.9 reads the serial of EXIF ``BodySerialNumber`` only
    (measured; not DNG ``CameraSerialNumber``, maker notes or CRW's CIFF
    record).  A camera whose ``serial_source`` is unknown (maps written
    before rawmap recorded it) counts as not read.

    Examples
    --------
    >>> rawtherapee_reads_serial(CameraId("Canon", "Canon EOS D30", "171048961", "makernote"))
    False
    >>> rawtherapee_reads_serial(CameraId("NIKON CORPORATION", "NIKON D750", "3001234", "exif"))
    True
    """
    return bool(camera.serial.strip(" \0")) and camera.serial_source == "exif"


def rawtherapee_name(camera: CameraId, *, with_serial: bool = True) -> str:
    """The camera name RawTherapee looks up ``.badpixels`` files by.

    RawTherapee (5.9, measured) names a body ``"<make> <model>[ <serial>]"``
    with its own (dcraw's) spelling of make and model:

    1. a make containing a known company name (``Canon``, ``Nikon``,
       ``Olympus``, ``Sony``, ``Fujifilm``, ``Leica``, ``Pentax``,
       ``Ricoh``, ``Samsung``, ``Sigma``, ``Minolta``, ``Kodak`` ...),
       compared without case, becomes that name;
    2. Kodak and Leica models lose a trailing ``" DIGITAL CAMERA"``;
    3. a model starting with ``PENTAX`` makes the make ``Pentax``;
    4. trailing blanks are dropped, and the make (compared without case)
       followed by a blank is dropped from the front of the model, as are
       ``"FUJIFILM "`` and ``"Digital Camera "``.

    Model renames that dcraw makes for a few native formats (some
    Hasselblad, Leaf, Phase One, CHDK files) are not reproduced: check with
    ``rawtherapee-cli`` and ``Verbose=true``, which prints the names it
    tries.

    Parameters
    ----------
    camera : CameraId
        Make and model as the file's EXIF states them.
    with_serial : bool, optional
        Append the serial number when RawTherapee reads it
        (:func:`rawtherapee_reads_serial`: it came from EXIF
        BodySerialNumber).  RawTherapee then tries the name with the serial
        first, then without; for a body whose serial it does not read it
        tries only the name without, which is what is returned.

    Returns
    -------
    str

    Raises
    ------
    ExportError
        The camera's make or model is unknown.

    Examples
    --------
    >>> rawtherapee_name(CameraId("NIKON CORPORATION", "NIKON D750", "3001234", "exif"))
    'Nikon D750 3001234'
    >>> rawtherapee_name(CameraId("Canon", "Canon EOS D30", "171048961", "makernote"))
    'Canon EOS D30'
    >>> rawtherapee_name(CameraId("Canon", "Canon EOS R5", "012345"), with_serial=False)
    'Canon EOS R5'
    """
    make = camera.make.strip(" \0")
    model = camera.model.strip(" \0")
    if not make or not model:
        raise ExportError(
            f"camera {camera.label!r}: RawTherapee names .badpixels files after the make and model, "
            "and this map does not know both (make the map again from files that carry EXIF Make/Model)"
        )
    for company in _COMPANIES:
        if company.lower() in make.lower():
            make = company
            break
    if make in ("Kodak", "Leica"):
        at = model.upper().find(" DIGITAL CAMERA")
        if at < 0:
            at = model.find("FILE VERSION")
        if at >= 0:
            model = model[:at]
    if model[:6].lower() == "pentax":
        make = "Pentax"
    model = model.rstrip(" ")
    model = _strip_prefix_nocase(model, make)
    if model.startswith("FUJIFILM "):
        model = model[len("FUJIFILM ") :]
    if model.startswith("Digital Camera "):
        model = model[len("Digital Camera ") :]
    name = f"{make} {model}"
    serial = camera.serial.strip(" \0")
    if with_serial and rawtherapee_reads_serial(camera):
        name += f" {serial}"
    if any(c in name for c in "/\\\0\n\r"):
        raise ExportError(
            f"camera name {name!r} cannot be a file name (it contains a path separator or a control character)"
        )
    return name


def rawtherapee_filename(camera: CameraId, *, with_serial: bool = True) -> str:
    """``"<rawtherapee_name(camera)>.badpixels"``, the file RawTherapee looks for.

    Examples
    --------
    >>> rawtherapee_filename(CameraId("OLYMPUS CORPORATION", "E-M1MarkII"))
    'Olympus E-M1MarkII.badpixels'
    """
    return rawtherapee_name(camera, with_serial=with_serial) + ".badpixels"


def rawtherapee_text(defect_map: DefectMap, *, crop_origin: tuple[int, int] | None = None) -> str:
    """The map as a RawTherapee ``.badpixels`` file.

    One line ``x y`` (column, row) per defect after a ``#`` header.

    Parameters
    ----------
    defect_map : DefectMap
        A map made from RAW files.
    crop_origin : (int, int), optional
        (top, left) of RawTherapee's raw crop inside the full sensor frame,
        for cameras whose entry in RawTherapee's ``camconst.json`` has a
        ``raw_crop`` (RawTherapee's verbose log shows it as
        ``raw crop: <left> <top> <width> <height> (provided by
        camconst.json)``).  By default the crop is the visible area
        (``sensor.top_margin``, ``sensor.left_margin``) and the map's
        coordinates are written unchanged.  Defects that fall left of or
        above a given crop are left out: RawTherapee does not see them.

    Returns
    -------
    str

    Raises
    ------
    ExportError
        The map was made from developed images.
    ValueError
        ``crop_origin`` is not two non-negative integers.
    """
    _require_raw(defect_map, "a RawTherapee .badpixels file")
    s = defect_map.sensor
    dy = dx = 0
    if crop_origin is not None:
        try:
            top, left = (int(crop_origin[0]), int(crop_origin[1]))
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"crop_origin must be (top, left) in full-frame photosites, got {crop_origin!r}") from None
        if top < 0 or left < 0:
            raise ValueError(f"crop_origin must be non-negative, got {crop_origin!r}")
        dy, dx = s.top_margin - top, s.left_margin - left
    lines = [
        f"# RawTherapee bad pixels for {one_line(defect_map.camera.label) or 'unknown camera'}",
        f"# written by {_software()}: x y (column row of the "
        + ("visible area" if (dy, dx) == (0, 0) else f"raw crop at top {s.top_margin - dy}, left {s.left_margin - dx}")
        + ")",
    ]
    for d in defect_map.defects:
        x, y = d.col + dx, d.row + dy
        if x >= 0 and y >= 0:
            lines.append(f"{x} {y}")
    return "\n".join(lines) + "\n"


# --- Siril -------------------------------------------------------------------


def _offset_type(defects: Iterable[Defect]) -> str:
    """H for a line or column that reads high, C for one that reads low (median offset)."""
    vals = sorted(d.value for d in defects if math.isfinite(d.value))
    if not vals:
        return "H"
    mid = vals[len(vals) // 2] if len(vals) % 2 else 0.5 * (vals[len(vals) // 2 - 1] + vals[len(vals) // 2])
    return "C" if mid < 0 else "H"


#: a column or row segment this long (photosites) goes to Siril as its whole line (see :func:`siril_text`)
SIRIL_SEGMENT = 16


def siril_command(defect_map: DefectMap) -> str:
    """The Siril command a map's list is for: ``cosme_cfa`` on a colour mosaic, ``cosme`` on a monochrome one."""
    return "cosme_cfa" if defect_map.sensor.cfa else "cosme"


def _siril_point_type(d: Defect) -> str:
    return KINDS[d.kind].siril_letter(d.value)


def siril_text(defect_map: DefectMap) -> str:
    """The map as a Siril cosmetic-correction list (for ``cosme`` / ``cosme_cfa``).

    Defects of a line kind (:attr:`~rawmap.kinds.KindInfo.line`: column
    defects) that cover every row of a column (``sensor.height`` of them),
    or a segment of at least :data:`SIRIL_SEGMENT` of its photosites,
    become one line ``C x 0 t``; likewise ``L y 0 t`` for rows.  Siril has
    no partial line, and a segment's photosites as ``P`` lines are each
    averaged with their defective neighbours along the line (about 15 % of
    the offset stays): the whole line is repaired instead, its healthy
    photosites interpolated from the lines beside it too.  Every other
    defect, a few photosites of a line kind included, is a line
    ``P x y t``.  ``t`` is the kind's letter
    (:meth:`~rawmap.kinds.KindInfo.siril_letter`): ``H`` for hot, stuck,
    noisy and positive-offset column defects and ``C`` for dead, cold and
    negative-offset column defects (a whole line takes the sign of its
    median offset).  ``x`` is the column and ``y`` the row from
    the top of the visible area.

    Parameters
    ----------
    defect_map : DefectMap
        A RAW map: of a colour mosaic, for ``cosme_cfa``; of a monochrome
        sensor (no CFA), for ``cosme`` (see :func:`siril_command`).

    Returns
    -------
    str

    Raises
    ------
    ExportError
        A map made from developed colour images (JPEG), or from images whose
        channels the map does not record (older maps): Siril's ``cosme``
        repairs the first channel of a colour image only, so the list would
        leave two of its three channels as they were.  Maps of grayscale
        images are written (for ``cosme``; checked with ``siril-cli`` 1.0.6
        on 8-bit PNG and 16-bit TIFF: the listed pixels and no others change).
    """
    s = defect_map.sensor
    if s.source == "image" and s.channels != 1:
        raise ExportError(
            f"{one_line(defect_map.camera.label) or 'this map'} was made from developed images: Siril's cosme "
            "repairs only the first channel of a colour image, so a list would leave two of three channels "
            "unrepaired; map the RAW files (or grayscale images) for Siril, or export csv"
        )
    column = [d for d in defect_map.defects if KINDS[d.kind].line]
    by_col: dict[int, list[Defect]] = {}
    by_row: dict[int, list[Defect]] = {}
    for d in column:
        by_col.setdefault(d.col, []).append(d)
        by_row.setdefault(d.row, []).append(d)
    # Siril has no partial line: the photosites of a segment as P lines are each averaged with their
    # defective neighbours along the line (about 15 % of the offset stays, as reported with Siril 1.0.6),
    # so a segment of SIRIL_SEGMENT photosites or more goes out as its whole line, whose other
    # photosites Siril then interpolates from the lines beside it as well
    full_cols = {
        c: ds
        for c, ds in by_col.items()
        if s.height > 0 and ({d.row for d in ds} >= set(range(s.height)) or len(ds) >= SIRIL_SEGMENT)
    }
    full_rows = {
        r: ds
        for r, ds in by_row.items()
        if s.width > 0 and ({d.col for d in ds} >= set(range(s.width)) or len(ds) >= SIRIL_SEGMENT)
    }
    covered = {(d.row, d.col) for ds in full_cols.values() for d in ds}
    covered |= {(d.row, d.col) for ds in full_rows.values() for d in ds}

    lines = [
        f"# Siril cosmetic-correction list for {one_line(defect_map.camera.label) or 'unknown camera'}",
        f"# written by {_software()}: P x y = column, row from the top; C x = whole column; L y = whole row; "
        "H hot, C cold",
    ]
    lines += [f"C {c} 0 {_offset_type(full_cols[c])}" for c in sorted(full_cols)]
    lines += [f"L {r} 0 {_offset_type(full_rows[r])}" for r in sorted(full_rows)]
    lines += [f"P {d.col} {d.row} {_siril_point_type(d)}" for d in defect_map.defects if (d.row, d.col) not in covered]
    return "\n".join(lines) + "\n"


# --- CSV ---------------------------------------------------------------------


def _num(x: float, digits: int) -> str:
    return repr(round(float(x), digits)) if math.isfinite(x) else ""


def csv_text(defect_map: DefectMap) -> str:
    """The map as CSV: header :data:`CSV_HEADER`, one row per defect.

    ``score`` is rounded to 3 decimals and ``value`` to 4 (as in the JSON
    map); ``first_seen`` is ISO 8601 and ``value`` empty when unknown.

    Examples
    --------
    >>> from rawmap.defectmap import SensorGeometry, FrameStats, DefectKind
    >>> m = DefectMap(CameraId("Canon", "EOS 5D"), SensorGeometry(10, 10), FrameStats(3),
    ...               [Defect(2, 5, DefectKind.DEAD, 9.5, "B")])
    >>> print(csv_text(m), end="")
    row,col,kind,score,channel,first_seen,value
    2,5,dead,9.5,B,,
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER.split(","))
    for d in defect_map.defects:
        w.writerow(
            [
                d.row,
                d.col,
                d.kind.value,
                _num(d.score, 3),
                d.channel,
                d.first_seen.isoformat() if d.first_seen else "",
                _num(d.value, 4),
            ]
        )
    return buf.getvalue()


# --- the registry ------------------------------------------------------------


def _slug_stem(defect_map: DefectMap) -> str:
    return defect_map.camera.slug


def _rawtherapee_stem(defect_map: DefectMap) -> str:
    return rawtherapee_name(defect_map.camera)


@dataclass(frozen=True)
class FormatInfo:
    """One export format: its writer, its default file name and what to do with the file.

    Attributes
    ----------
    format : ExportFormat
    write : callable
        ``write(defect_map, **options) -> str``: the file's text.
    suffix : str
        End of the default file name, after :attr:`stem`.
    stem : callable
        ``stem(defect_map) -> str``: start of the default file name (the
        camera's slug, or the name the peer looks the file up by).
    hint : str
        One line telling the user what to do with the file, ``{path}``
        standing for it (``rawmap export`` prints it); ``""`` for nothing to add.
    options : tuple of str
        Keyword options ``write`` takes (the CLI refuses the others' options
        for this format).
    """

    format: ExportFormat
    write: Callable[..., str]
    suffix: str
    stem: Callable[[DefectMap], str]
    hint: str
    options: tuple[str, ...] = ()

    def filename(self, defect_map: DefectMap) -> str:
        """The default file name of ``defect_map`` in this format."""
        return self.stem(defect_map) + self.suffix


#: Every :class:`ExportFormat`'s :class:`FormatInfo`.  Adding a format: a member
#: of :class:`ExportFormat`, its writer above and its entry here
#: (``tests/test_export.py`` checks that every member has one).
FORMATS: dict[ExportFormat, FormatInfo] = {
    f.format: f
    for f in (
        FormatInfo(
            ExportFormat.DCRAW,
            dcraw_text,
            ".dcraw.txt",
            _slug_stem,
            "use it with: dcraw -P {path} PHOTO  (or dcraw_emu -P {path} PHOTO)",
            ("since_first_seen",),
        ),
        FormatInfo(
            ExportFormat.RAWTHERAPEE,
            rawtherapee_text,
            ".badpixels",
            _rawtherapee_stem,
            "put it in RawTherapee's dark-frame folder (Preferences > Image Processing > Dark frame)",
            ("crop_origin",),
        ),
        FormatInfo(ExportFormat.SIRIL, siril_text, ".lst", _slug_stem, "use it in Siril with: {siril_command} {path}"),
        FormatInfo(ExportFormat.CSV, csv_text, "-defects.csv", _slug_stem, ""),
    )
}


# --- dispatch and files ------------------------------------------------------


def export_text(defect_map: DefectMap, fmt: ExportFormat | str, **options: Any) -> str:
    """The map in format ``fmt``; ``options`` go to that format's writer (:data:`FORMATS`).

    Raises
    ------
    ExportError
        Unknown format, or a map the format cannot express.
    rawmap.errors.MapFormatError
        A defect outside the map's sensor (a map built in code; see
        :meth:`rawmap.defectmap.DefectMap.check`).
    """
    defect_map.check()
    return FORMATS[_coerce_format(fmt)].write(defect_map, **options)


def default_filename(defect_map: DefectMap, fmt: ExportFormat | str) -> str:
    """The file name an export of ``defect_map`` in ``fmt`` gets by default.

    RawTherapee's is the exact name it looks up (:func:`rawtherapee_filename`);
    the others use the camera's slug: ``<slug>.dcraw.txt`` (given to
    ``dcraw -P``), ``<slug>.lst`` (Siril wants ``.lst``) and
    ``<slug>-defects.csv`` (see :data:`FORMATS`).

    Examples
    --------
    >>> from rawmap.defectmap import SensorGeometry, FrameStats
    >>> m = DefectMap(CameraId("NIKON CORPORATION", "NIKON D750", "3001234", "exif"), SensorGeometry(4, 4), FrameStats(1))
    >>> default_filename(m, "rawtherapee")
    'Nikon D750 3001234.badpixels'
    >>> default_filename(m, ExportFormat.SIRIL)
    'nikon-corporation-nikon-d750-3001234.lst'
    """
    return FORMATS[_coerce_format(fmt)].filename(defect_map)


def write_export(
    defect_map: DefectMap,
    fmt: ExportFormat | str,
    path: str | Path,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write ``defect_map`` in format ``fmt`` to ``path``, atomically.

    Parameters
    ----------
    defect_map : DefectMap
    fmt : ExportFormat or str
        ``"dcraw"``, ``"rawtherapee"``, ``"siril"`` or ``"csv"``.
    path : str or Path
        Output file, or an existing folder: the file is then
        :func:`default_filename` inside it (for RawTherapee, give its dark
        frame folder).
    overwrite : bool, optional
        Replace an existing file; by default an existing file is an error.
    **options
        Passed to the format's writer (``crop_origin`` for RawTherapee,
        ``since_first_seen`` for dcraw).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ExportError
        Unknown format, or a map the format cannot express.
    rawmap.errors.OutputExistsError
        The file exists and ``overwrite`` is false.
    """
    fmt = _coerce_format(fmt)
    text = export_text(defect_map, fmt, **options)
    path = Path(path)
    if path.is_dir():
        path = path / default_filename(defect_map, fmt)
    return atomic_write_text(path, text, overwrite=overwrite)
