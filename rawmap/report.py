"""Every text rawmap shows: records in, lines of text out.

The commands of :mod:`rawmap.cli` print what these functions return and
nothing else of their own making (but for error lines and one-line
confirmations); the plot of :mod:`rawmap.show` writes its header with the
same short forms.  Nothing here prints, reads a file or exits: each
function takes records (a :class:`~rawmap.defectmap.DefectMap`, a
:class:`~rawmap.mapping.Skipped`, a :class:`~rawmap.reader.FileInfo`, a
library entry, a repair result) and returns a line or a list of lines
without trailing newlines.

* **Summary of a map** (``rawmap show``, ``rawmap library show``):
  :func:`summarize` counts a map's defects by kind and colour channel and
  collects what went into it (:class:`MapSummary`); :func:`format_summary`
  turns that into the plain-text table.
* **Segments**: :func:`rawmap.defectmap.column_segments` (also importable
  from here) groups the defects of line kinds into column and row segments,
  as the reports and the plot list them.
* **Map report** (``rawmap map``): :func:`body_header`,
  :func:`evidence_lines`, :func:`map_lines`, :func:`skipped_lines`,
  :func:`nothing_new`, :func:`state_line`.
* **Other commands**: :func:`info_lines` (``info``), :func:`export_lines`
  and :func:`rawtherapee_serial_warning` (``export``), :func:`repair_line`
  and :func:`repair_summary` (``repair``), :func:`edit_lines` (``edit``),
  :func:`entry_lines` and :func:`library_list_lines` (``library``).

Two families of short forms exist and are kept apart on purpose, as the
output of the commands is relied upon: the summary table and the plot use
:func:`fmt_exposure` (``"1/250 s"``, ``"?"`` when unknown) and
:func:`fmt_time` (to the minute); the ``map`` and ``info`` reports use
:func:`exposure_text` (``"unknown"``) and :func:`time_text` (ISO format).

Examples
--------
>>> dmap = DefectMap.load("d750.json")                      # doctest: +SKIP
>>> print(format_summary(summarize(dmap)))                  # doctest: +SKIP
>>> print("\\n".join(map_lines(dmap)))                       # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .defectmap import Defect, DefectKind, DefectMap, Segment, column_segments
from .errors import one_line
from .frame import CameraId, SourceKind, printable
from .kinds import KINDS

if TYPE_CHECKING:  # pragma: no cover
    from .accumulate import Accumulator
    from .defectmap import FrameStats
    from .export import ExportFormat
    from .library import LibraryEntry
    from .mapping import Skipped
    from .reader import FileInfo
    from .repair import RepairResult
    from .series_state import StateUpdate

__all__ = [
    "MapSummary",
    "Segment",
    "summarize",
    "strongest",
    "format_summary",
    "column_segments",
    "show_path",
    "fmt_exposure",
    "fmt_time",
    "fmt_range",
    "fmt_iso",
    "exposure_text",
    "iso_text",
    "time_text",
    "black_text",
    "TABLE_ROWS",
    "SEGMENT_ROWS",
    "map_lines",
    "evidence_lines",
    "body_header",
    "skipped_lines",
    "nothing_new",
    "map_written_line",
    "state_line",
    "info_lines",
    "fits_rows",
    "export_lines",
    "rawtherapee_serial_warning",
    "repair_line",
    "repair_summary",
    "renamed_line",
    "edit_lines",
    "entry_lines",
    "library_list_lines",
    "library_export_lines",
]

_CHANNEL_ORDER = ("R", "G", "B")


def show_path(p: str | Path) -> str:
    """A path as the user would like to read it: relative to the working folder when inside it.

    Examples
    --------
    >>> show_path(Path.cwd() / "maps" / "d750.json") == str(Path("maps", "d750.json"))
    True
    """
    p = Path(p)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


# =========================================================================== summary
@dataclass(frozen=True)
class MapSummary:
    """The figures of one defect map.

    Attributes
    ----------
    camera : CameraId
    source : str
        ``"raw"`` or ``"image"``.
    height, width : int
        Visible area in photosites.
    cfa : str
        Pattern letters (``"RGGB"``), ``""`` for image maps.
    total : int
        Number of defective photosites.
    by_kind : dict of DefectKind to int
        Every kind, zeros included, in :class:`DefectKind` order.
    channels : tuple of str
        Columns of ``by_kind_channel``: ``("R", "G", "B")`` for RAW maps
        (other letters found are appended), ``("",)`` for image maps.
    by_kind_channel : dict of DefectKind to dict of str to int
        Defects per kind and colour channel (every kind and channel present).
    segments : int
        Column and row segments (see :func:`column_segments`).
    frames, skipped : int
        Frames used to make the map, and frames left out.
    first_capture, last_capture : datetime or None
        Capture dates of the frames.
    exposure_min, exposure_max : float
        Exposure times in seconds (0 when unknown).
    iso_min, iso_max : float
        ISO speeds (0 when unknown).
    strongest : tuple of Defect
        The defects with the highest scores, strongest first.
    created : datetime
        When the map was made.
    """

    camera: CameraId
    source: str
    height: int
    width: int
    cfa: str
    total: int
    by_kind: dict[DefectKind, int]
    channels: tuple[str, ...]
    by_kind_channel: dict[DefectKind, dict[str, int]]
    segments: int
    frames: int
    skipped: int
    first_capture: _dt.datetime | None
    last_capture: _dt.datetime | None
    exposure_min: float
    exposure_max: float
    iso_min: float
    iso_max: float
    strongest: tuple[Defect, ...]
    created: _dt.datetime

    @property
    def per_million(self) -> float:
        """Defective photosites per million."""
        n = self.height * self.width
        return 1e6 * self.total / n if n else 0.0

    def channel_totals(self) -> dict[str, int]:
        """Defects per channel, all kinds together."""
        return {c: sum(row[c] for row in self.by_kind_channel.values()) for c in self.channels}


def strongest(defects: Sequence[Defect], n: int) -> list[Defect]:
    """The ``n`` defects with the highest scores, strongest first (ties by row, then column)."""
    return sorted(defects, key=lambda d: (-d.score, d.row, d.col))[: max(n, 0)]


def summarize(defect_map: DefectMap, *, top: int = 10) -> MapSummary:
    """Count a map's defects and collect what went into it.

    Parameters
    ----------
    defect_map : DefectMap
    top : int, optional
        How many of the strongest defects (highest score) to keep.

    Returns
    -------
    MapSummary

    Examples
    --------
    >>> from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
    >>> from rawmap.frame import CameraId
    >>> m = DefectMap(CameraId("Nikon", "D750"), SensorGeometry(4, 6, cfa="RGGB"), FrameStats(3),
    ...               [Defect(0, 0, DefectKind.HOT, 9.0, "R"), Defect(1, 0, DefectKind.HOT, 5.0, "G")])
    >>> s = summarize(m)
    >>> s.by_kind[DefectKind.HOT], s.by_kind_channel[DefectKind.HOT]
    (2, {'R': 1, 'G': 1, 'B': 0})
    """
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    dm = defect_map
    raw = dm.sensor.source != SourceKind.IMAGE.value
    found = {d.channel for d in dm.defects}
    if raw:
        channels = _CHANNEL_ORDER + tuple(sorted(found - set(_CHANNEL_ORDER)))
    else:
        channels = ("",) + tuple(sorted(found - {""}))
    table = {k: {c: 0 for c in channels} for k in DefectKind}
    for d in dm.defects:
        table[d.kind][d.channel] += 1
    fr = dm.frames
    return MapSummary(
        camera=dm.camera,
        source=dm.sensor.source,
        height=dm.sensor.height,
        width=dm.sensor.width,
        cfa=dm.sensor.cfa,
        total=len(dm.defects),
        by_kind=dm.counts(),
        channels=channels,
        by_kind_channel=table,
        segments=len(column_segments(dm.defects)),
        frames=fr.count,
        skipped=fr.skipped,
        first_capture=fr.first_capture,
        last_capture=fr.last_capture,
        exposure_min=fr.exposure_min,
        exposure_max=fr.exposure_max,
        iso_min=fr.iso_min,
        iso_max=fr.iso_max,
        strongest=tuple(strongest(dm.defects, top)),
        created=dm.created,
    )


def fmt_exposure(s: float) -> str:
    """An exposure time as the summary table and the plot show it: ``"1/250 s"``, ``"2.5 s"``, ``"?"`` when unknown.

    Examples
    --------
    >>> fmt_exposure(1 / 250), fmt_exposure(2.5), fmt_exposure(30.0), fmt_exposure(0.0)
    ('1/250 s', '2.5 s', '30 s', '?')
    """
    if not s or s <= 0 or not math.isfinite(s):
        return "?"
    if s >= 1:
        return f"{s:g} s" if s < 10 else f"{s:.0f} s"
    return f"1/{1 / s:.0f} s" if 1 / s >= 10 else f"1/{1 / s:.1f} s".replace(".0 s", " s")


def fmt_time(t: _dt.datetime | None) -> str:
    """A capture time to the minute (``"2024-05-06 07:08"``), ``"?"`` when unknown."""
    return t.strftime("%Y-%m-%d %H:%M") if t else "?"


def fmt_range(lo: str, hi: str) -> str:
    """``"lo … hi"``, or ``lo`` alone when both are the same text."""
    return lo if lo == hi else f"{lo} … {hi}"


def fmt_iso(v: float) -> str:
    """An ISO speed (``"6400"``), ``"?"`` when unknown."""
    return f"{v:g}" if v > 0 else "?"


def format_summary(summary: MapSummary) -> str:
    """The summary as a plain-text table (no trailing newline), as ``rawmap show`` prints it.

    Parameters
    ----------
    summary : MapSummary

    Returns
    -------
    str
    """
    s = summary
    kind_name = "RAW map" if s.source != SourceKind.IMAGE.value else "image map (from developed photos)"
    pattern = f" ({s.cfa})" if s.cfa else ""
    unit = "photosites" if s.source != SourceKind.IMAGE.value else "pixels"
    lines = [
        f"{s.camera.label or 'unknown camera'} — {kind_name}{pattern}, {s.height} x {s.width} {unit} (rows x columns)",
        f"  made      {s.created.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        f"  frames    {s.frames} used" + (f", {s.skipped} skipped" if s.skipped else ""),
    ]
    if s.first_capture or s.last_capture:
        lines.append(f"  captured  {fmt_range(fmt_time(s.first_capture), fmt_time(s.last_capture))}")
    if s.exposure_max > 0:
        lines.append(f"  exposure  {fmt_range(fmt_exposure(s.exposure_min), fmt_exposure(s.exposure_max))}")
    if s.iso_max > 0:
        lines.append(f"  ISO       {fmt_range(fmt_iso(s.iso_min), fmt_iso(s.iso_max))}")
    density = f" ({s.per_million:.1f} per million {unit})" if s.total else ""
    seg = f", {s.segments} column/row segment{'s' if s.segments != 1 else ''}" if s.segments else ""
    lines.append(f"  defects   {s.total}{density}{seg}")
    lines.append("")

    split = s.channels != ("",)
    cols = list(s.channels) if split else []
    head = f"  {'kind':<8}" + "".join(f"{c or '-':>7}" for c in cols) + f"{'total':>8}"
    lines.append(head)
    for kind in DefectKind:
        row = s.by_kind_channel[kind]
        lines.append(f"  {kind.value:<8}" + "".join(f"{row[c]:>7}" for c in cols) + f"{s.by_kind[kind]:>8}")
    totals = s.channel_totals()
    lines.append(f"  {'total':<8}" + "".join(f"{totals[c]:>7}" for c in cols) + f"{s.total:>8}")

    if s.strongest:
        lines.append("")
        lines.append(f"  strongest {len(s.strongest)}:")
        lines.append(f"  {'row':>6} {'col':>6}  {'kind':<7}{'ch':<3}{'score':>8}  first seen")
        for d in s.strongest:
            lines.append(
                f"  {d.row:>6} {d.col:>6}  {d.kind.value:<7}{d.channel or '-':<3}{d.score:>8.1f}  {fmt_time(d.first_seen)}"
            )
    return "\n".join(lines)


# =========================================================================== map and info reports
def exposure_text(seconds: float) -> str:
    """An exposure time as ``rawmap map`` and ``info`` print it: ``"1/250 s"``, ``"2.5 s"``, ``"unknown"``.

    Examples
    --------
    >>> exposure_text(1 / 250), exposure_text(2.5), exposure_text(0.0)
    ('1/250 s', '2.5 s', 'unknown')
    """
    if not seconds or seconds <= 0 or not math.isfinite(seconds):
        return "unknown"
    if seconds < 0.4:
        return f"1/{round(1.0 / seconds):d} s"
    return f"{seconds:.3g} s"


def iso_text(iso: float) -> str:
    """An ISO speed, ``"unknown"`` when not recorded."""
    return f"{iso:g}" if iso and iso > 0 else "unknown"


def time_text(t: _dt.datetime | None) -> str:
    """A capture time in ISO format (``"2024-05-06 07:08:09"``), ``"unknown"`` when not recorded."""
    return t.isoformat(sep=" ") if t is not None else "unknown"


def black_text(black: Iterable[float]) -> str:
    """Black levels: one number when the channels agree, else ``"R 600, G 602, B 600, G2 602"``.

    Examples
    --------
    >>> black_text([512, 512, 512, 512]), black_text([600, 602, 601, 602])
    ('512', 'R 600, G 602, B 601, G2 602')
    """
    vals = [float(v) for v in black]
    if len(set(vals)) == 1:
        return f"{vals[0]:g}"
    return ", ".join(f"{name} {v:g}" for name, v in zip(("R", "G", "B", "G2"), vals))


#: how many single-photosite defects ``rawmap map`` lists per body
TABLE_ROWS = 25
#: how many column/row segments it lists
SEGMENT_ROWS = 10


def map_lines(dmap: DefectMap, *, table_rows: int = TABLE_ROWS, segment_rows: int = SEGMENT_ROWS) -> list[str]:
    """The defect counts and a short table of one map, as ``rawmap map`` prints them.

    Defects of point kinds are listed one a line (the first ``table_rows``);
    defects of line kinds (:attr:`rawmap.kinds.KindInfo.line`) as the
    segments of :func:`column_segments` (the first ``segment_rows``).  Each
    kind's value is written by its :attr:`~rawmap.kinds.KindInfo.report`.

    Parameters
    ----------
    dmap : DefectMap
    table_rows, segment_rows : int, optional

    Returns
    -------
    list of str
        Indented by two spaces; the first line is the counts by kind.
    """
    counts = dmap.counts()
    total = len(dmap)
    points = [d for d in dmap.defects if not KINDS[d.kind].line]
    columns = {(d.row, d.col): d for d in dmap.defects if KINDS[d.kind].line}
    segs = column_segments(dmap.defects)
    parts = [f"{k.value} {n}" for k, n in counts.items() if n and not KINDS[k].line]
    for k, n in counts.items():
        if n and KINDS[k].line:
            ks = [s for s in segs if s.kind is k]
            parts.append(f"{k.value} {n} (in {len(ks)} segment{'s' if len(ks) != 1 else ''})")
    lines = [f"  defects: {total} photosite{'s' if total != 1 else ''}" + (": " + ", ".join(parts) if parts else "")]
    if points:
        lines.append(
            f"    {'row':>6} {'col':>6}  {'kind':<6} {'ch':<2} {'score':>7}  {'value':<14} {'views':>5}  first seen"
        )
        for d in points[:table_rows]:
            lines.append(
                f"    {d.row:>6} {d.col:>6}  {d.kind.value:<6} {d.channel or '-':<2} {d.score:>7.1f}  "
                f"{KINDS[d.kind].value_text(d.value):<14} {'-' if d.views is None else d.views:>5}  "
                f"{d.first_seen.isoformat(sep=' ') if d.first_seen else '-'}"
            )
        if len(points) > table_rows:
            lines.append(
                f"    ... and {len(points) - table_rows} more (all are in the map file; see `rawmap export --format csv`)"
            )
    for seg in segs[:segment_rows]:
        members = [columns[rc] for rc in seg.cells() if rc in columns]
        offs = [m.value for m in members if math.isfinite(m.value)]
        off = ""
        if offs:
            mean = sum(offs) / len(offs)
            # three significant digits, never in e-notation: -2,650 DN rather than -2.65e+03 DN
            off = f", mean offset {mean:{'+,.0f' if abs(mean) >= 1000 else '+.3g'}} DN"
        where = (
            f"col {seg.index}, rows {seg.start}-{seg.stop}"
            if seg.axis == "column"
            else f"row {seg.index}, cols {seg.start}-{seg.stop}"
        )
        lines.append(f"    {seg.axis} segment: {where} ({seg.count} photosites{off})")
    if len(segs) > segment_rows:
        lines.append(f"    ... and {len(segs) - segment_rows} more segments")
    return lines


def evidence_lines(fr: FrameStats, *, source: str = "raw", stuck: int = 0) -> list[str]:
    """The views and darks a map stands on, and a warning when they are too few for every kind.

    Parameters
    ----------
    fr : FrameStats
        A map's frame statistics; ``[]`` when it records no views (maps of older versions).
    source : str
        The map's :attr:`SensorGeometry.source`: ``"raw"`` or ``"image"``
        (developed images, whose one view tells almost nothing).
    stuck : int
        Stuck photosites in the map: in darks of one exposure, those at
        white may be hot ones that fill the range (a note says so).

    Returns
    -------
    list of str
    """
    if fr.views is None:
        return []
    units = fr.views + (fr.darks or 0)
    parts = [f"{fr.views} view{'s' if fr.views != 1 else ''} (frames of one scene count once)"]
    if fr.repeated:
        parts.append(
            f"{fr.repeated} of them shot several times (bracket, burst or timelapse)"
            if fr.repeated != 1
            else "1 of them shot several times (a bracket, burst or timelapse)"
        )
    if fr.darks:
        parts.append(f"{fr.darks} lens-cap dark{'s' if fr.darks != 1 else ''}")
        if fr.dark_noise is not None:
            what = "read noise" if fr.exposure_max <= 0 and not fr.views else "noise"
            parts[-1] += f" ({what} {fr.dark_noise:.1f} DN per frame)"
    if fr.flats:
        parts.append(f"{fr.flats} of the views flat fields" if fr.flats != fr.views else "flat fields")
    lines = ["  evidence: " + ", ".join(parts)]
    if fr.flats and fr.flats == fr.views and units <= 1:
        lines.append(
            "  note: flat fields only: low-gain (cold) photosites are measured from them, and stuck and dead "
            "ones; hot, noisy and line defects need lens-cap darks (or photos of several scenes)"
        )
    elif fr.darks and fr.darks == units and not fr.views and fr.exposure_max <= 0:
        lines.append(
            "  note: bias frames only (no exposure): hot photosites are fixed offsets above the bias level "
            "(no dark current to measure, so their values read 0 DN/s); darks at your exposures measure it"
        )
    elif units <= 1 and source == "image":
        # measured: generated timelapses' JPEGs gave no flag where their RAW files mapped 8-10 of 10-12
        # defects (stuck, dead, low gain, column segments; bench_scenarios.py --jpeg)
        lines.append(
            "  warning: one view of developed images (JPEG): demosaicing and compression blend each photosite "
            "into its neighbours, so almost no defect can be told from the scene; map the RAW files if you "
            "have them, or add photos of other scenes or lens-cap darks"
        )
    elif units <= 1:
        if fr.growth == "ran":  # hot photosites by their growth with exposure (rawmap.detect.growth)
            hot = (
                "hot photosites are found by their growth with exposure alone (the exposure rose while the "
                "picture kept its brightness); noisy ones cannot be told from the scene"
            )
            lines_too = ""
        else:
            hot = "hot and noisy photosites cannot be told from the scene" + (
                " (the exposure rose while the picture kept its brightness, but the view moved: hot photosites "
                "are told by their growth with exposure only in a still view)"
                if fr.growth == "moved"
                else ""
            )
            lines_too = ", and column segments where the light changed"
        moved = ""
        if fr.lines == "moved":  # rawmap.detect.lines._one_view_lines: its edges lean as a faulty line does
            lines_too = ""
            moved = (
                ", nor column segments: the view moved between its brightest and dimmest frames, and its "
                "edges then lean as a faulty line does"
            )
        lines.append(
            f"  warning: one view only: {hot}, nor low-gain ones in textured areas (stuck and dead ones are "
            f"mapped, low-gain ones in smooth areas{lines_too}){moved}; add photos of other scenes or lens-cap "
            "darks"
        )
    elif units < 6:
        # rawmap.detect.series._units_needed (2 units below 6) and rawmap.detect.lines (a lean across a
        # line in line_min_scenes units: 3 in every preset; stuck and dead lines come from those rules)
        darks = fr.darks or 0
        what = " and ".join(
            x
            for x in (
                f"{fr.views} view{'s' if fr.views != 1 else ''}" if fr.views else "",
                f"{darks} dark{'s' if darks != 1 else ''}" if darks else "",
            )
            if x
        )
        lines_too = (
            ", and a column or row segment (not stuck or dead) in 3, so none is mapped here" if units < 3 else ""
        )
        lines.append(
            f"  warning: {what}: a defect must show in 2 of them to be mapped{lines_too}; "
            f"{6 - units} more different scenes (or lens-cap darks) give the full map"
        )
    one_exposure = fr.exposure_max > 0 and fr.exposure_min == fr.exposure_max and fr.iso_min == fr.iso_max
    if stuck and not fr.views and fr.darks and one_exposure:
        # rawmap.detect.hot._clipped_cluster_members: only a cluster tells them apart in such darks
        lines.append(
            "  note: darks of one exposure: a hot photosite that fills the range in every dark reads white, "
            "as one stuck at white does, so stuck ones reading white may be hot (those beside a hot one are "
            "mapped hot); a few darks of a shorter exposure tell them apart"
        )
    return lines


def body_header(dmap: DefectMap, new: int) -> list[str]:
    """The lines that open a body's part of the ``rawmap map`` report: camera, sensor, frames, evidence.

    Parameters
    ----------
    dmap : DefectMap
        The map to report (the library's, imported defects merged in, when saved).
    new : int
        Frames this run added (``len(BodyMap.files)``); the others came from stored statistics.

    Returns
    -------
    list of str
    """
    s, fr = dmap.sensor, dmap.frames
    kind = "RAW" if s.source == "raw" else "images"
    cfa = f", {s.cfa}" if s.cfa else (", monochrome" if s.source == "raw" else "")
    lines = [f"{dmap.camera.label or 'unknown camera'} ({kind}, {s.height}x{s.width}{cfa})"]
    extra = []
    if fr.exposure_max > 0:
        lo, hi = exposure_text(fr.exposure_min), exposure_text(fr.exposure_max)
        extra.append(f"exposures {lo}" + (f" to {hi}" if hi != lo else ""))
    if fr.iso_max > 0:
        extra.append(f"ISO {fr.iso_min:g}" + (f" to {fr.iso_max:g}" if fr.iso_max != fr.iso_min else ""))
    if fr.first_capture and fr.last_capture:
        extra.append(f"taken {fr.first_capture:%Y-%m-%d} to {fr.last_capture:%Y-%m-%d}")
    if fr.temperature_min is not None and fr.temperature_max is not None:
        lo_t, hi_t = f"{fr.temperature_min:.1f}", f"{fr.temperature_max:.1f}"
        extra.append(f"{lo_t}" + (f" to {hi_t}" if hi_t != lo_t else "") + " °C (hot values at 20 °C)")
    older = fr.count - new
    used = f"{fr.count} frames" + (f" ({new} new, {older} from the stored statistics)" if older > 0 else "")
    lines.append("  frames: " + "; ".join([used] + extra))
    stuck = sum(1 for d in dmap.defects if d.kind is DefectKind.STUCK)
    lines += evidence_lines(fr, source=s.source, stuck=stuck)
    sensitivity = dmap.thresholds.get("sensitivity")
    if sensitivity and sensitivity != "normal":
        lines.append(f"  sensitivity: {sensitivity}")
    return lines


def skipped_lines(skipped: Sequence[Skipped], shown: Mapping[Path, str] | None = None) -> list[str]:
    """Files that could not be used, one line each; copies, counted photos and twins, one line per kind.

    Parameters
    ----------
    skipped : sequence of Skipped
    shown : mapping of Path to str, optional
        How to write a file's path (as the user typed it); others go through :func:`show_path`.

    Returns
    -------
    list of str
    """
    from .mapping import SKIP_SUMMARY, SkipKind

    shown = shown or {}
    unusable = [s for s in skipped if s.kind in (SkipKind.UNUSABLE, SkipKind.TOO_FEW)]
    lines = []
    if unusable:
        lines.append(f"Skipped {len(unusable)} file{'s' if len(unusable) != 1 else ''}:")
        for s in unusable:
            lines.append(f"  {shown.get(s.path, show_path(s.path))}: {one_line(s.reason)}")
    for kind in (SkipKind.DUPLICATE, SkipKind.TWIN, SkipKind.COUNTED):
        n = sum(1 for s in skipped if s.kind is kind)
        if n:
            what = "JPEG" if kind is SkipKind.TWIN else "file"
            lines.append(f"{n} {what}{'s' if n != 1 else ''} skipped: {SKIP_SUMMARY[kind]}")
    return lines


def nothing_new(n: int, where: str) -> str:
    """The one line of a run that found only photos already counted (``where``: "the library", a state file).

    Examples
    --------
    >>> nothing_new(12, "the library")
    'Nothing new to map: 12 files are already counted in the library.'
    """
    return f"Nothing new to map: {n} file{'s are' if n != 1 else ' is'} already counted in {where}."


def map_written_line(path: Path, *, replacing_own: bool = False) -> str:
    """The line saying where a body's map was written (``replacing_own``: over the map its --state file wrote)."""
    again = " (replacing the map this state wrote before)" if replacing_own else ""
    return f"  map written to {show_path(path)}{again}"


def state_line(update: StateUpdate) -> str:
    """What became of a ``--state`` file (:meth:`rawmap.series_state.SeriesState.save`)."""
    if not update.written:
        size = f"{update.shape[0]}x{update.shape[1]}"
        return f"{show_path(update.path)}: unchanged (no new frames of {update.camera.label or 'its body'}, {size})"
    return f"statistics of {update.camera.label} ({update.frames} frames) written to {show_path(update.path)}"


def info_lines(info: FileInfo) -> list[str]:
    """What ``rawmap info`` shows of one file: its path, then one ``name value`` line per fact.

    Names read from the file (make, model, serial) are made printable (:func:`rawmap.frame.printable`).
    """
    raw = info.source is SourceKind.RAW
    in_image = bool(info.extra.get("mosaic"))
    h, w = info.shape
    fh, fw = info.full_shape
    size = (
        f"{h} x {w} photosites (rows x columns)"
        if raw
        else f"{h} x {w} pixels, {info.channels} channel(s), {info.dtype}"
    )
    if raw and (fh, fw) != (0, 0) and (fh, fw) != (h, w):
        size += f"; full frame {fh} x {fw}, visible area at row {info.margins[0]}, column {info.margins[1]}"
    from_gain = info.format == "FITS" and info.extra.get("iso_source") == "GAIN"
    rows = [
        ("make", printable(info.camera.make) or "unknown"),
        ("model", printable(info.camera.model) or "unknown"),
        ("serial", printable(info.camera.serial) or "not recorded"),
        ("format", f"{info.format} ({_kind_words(info, raw, in_image)})"),
        ("size", size),
        ("CFA", (info.cfa_string or "none (monochrome sensor)") if raw else "none (developed image)"),
        ("black", black_text(info.black) if raw else "0"),
        ("white", str(info.white)),
        ("exposure", exposure_text(info.exposure)),
        ("ISO", iso_text(info.iso) + (" (the GAIN keyword: no ISOSPEED)" if from_gain else "")),
        ("captured", time_text(info.time)),
    ]
    if info.format == "FITS":
        rows += fits_rows(info.extra)
    elif info.temperature is not None:
        rows.append(("temperature", f"{info.temperature:.1f} °C (EXIF Temperature)"))
    return [str(info.path)] + [f"  {k:<9} {v}" for k, v in rows]


def fits_rows(extra: dict) -> list[tuple[str, str]]:
    """What ``rawmap info`` adds for a FITS file, from ``FileInfo.extra`` (:mod:`rawmap.readers.fits`).

    Examples
    --------
    >>> rows = fits_rows({"frame_type": "dark", "gain": 120.0, "ccd_temp": -10.2, "set_temp": -10.0,
    ...                   "binning": (1, 1), "bayer_pattern": "", "bayer_offset": (0, 0),
    ...                   "row_order": "TOP-DOWN", "bitpix": 16, "scale": 1.0, "clipped": 0})
    >>> [f"{k}: {v}" for k, v in rows][:3]
    ['frame: dark', 'gain: 120', 'CCD temp: -10.2 °C (set point -10 °C)']
    """
    temp, setp = extra.get("ccd_temp"), extra.get("set_temp")
    if temp is None and setp is None:
        temp_text = "not recorded"
    elif temp is None:
        temp_text = f"not recorded (set point {setp:g} °C)"
    else:
        temp_text = f"{temp:.1f} °C" + (f" (set point {setp:g} °C)" if setp is not None else "")
    bx, by = extra.get("binning", (1, 1))
    binning = f"{bx}x{by}" + (" (another sensor geometry: mapped as its own body)" if bx > 1 or by > 1 else "")
    pattern = extra.get("bayer_pattern", "")
    xoff, yoff = extra.get("bayer_offset", (0, 0))
    bayer = (
        f"BAYERPAT {printable(pattern)}, XBAYROFF {xoff}, YBAYROFF {yoff}" if pattern else "none (monochrome sensor)"
    )
    order = extra.get("row_order", "")
    rows_text = {
        "TOP-DOWN": "TOP-DOWN: row 0 is the first row stored",
        "BOTTOM-UP": "BOTTOM-UP: row 0 is the last row stored (the top row, as Siril shows it)",
    }.get(order, f"{printable(order) or 'no ROWORDER'}: bottom-up, as FITS has it; row 0 is the last row stored")
    data = f"BITPIX {extra.get('bitpix', 0)}"
    scale = float(extra.get("scale", 1.0))
    if scale != 1.0:
        data += f", values multiplied by {scale:g} into 16 bits"
    clipped = int(extra.get("clipped", 0))
    if clipped:
        data += f", {clipped:,} values below 0 set to 0"
    gain = float(extra.get("gain", 0.0) or 0.0)
    return [
        ("frame", printable(extra.get("frame_type", "")) or "not recorded"),
        ("gain", f"{gain:g}" if gain else "not recorded"),
        ("CCD temp", temp_text),
        ("binning", binning),
        ("Bayer", bayer),
        ("rows", rows_text),
        ("data", data),
    ]


def _kind_words(info: FileInfo, raw: bool, in_image: bool) -> str:
    if not raw:
        return "developed image"
    what = "RAW Bayer mosaic" if info.cfa is not None else "RAW monochrome mosaic"
    return f"{what} in a {info.dtype[4:]}-bit image (--cfa)" if in_image else what


# =========================================================================== export, repair, edit, library
#: Where a serial number was read (``CameraId.serial_source``), in words.
SERIAL_SOURCES = {
    "exif": "EXIF BodySerialNumber",
    "dng": "DNG CameraSerialNumber",
    "makernote": "the maker note (a CRW's CIFF record)",
    "fits": "the FITS header (CAMSERIAL or SERIALNO)",
}


def export_lines(dmap: DefectMap, fmt: ExportFormat, written: Path, *, since_first_seen: bool = False) -> list[str]:
    """What ``rawmap export`` prints: the defects written and where, how dcraw lines are dated, the format's hint.

    Parameters
    ----------
    dmap : DefectMap
    fmt : ExportFormat
    written : Path
        The file written.
    since_first_seen : bool
        dcraw only: whether the lines were dated with each defect's first_seen.

    Returns
    -------
    list of str
        The first line is the one to print before :func:`rawtherapee_serial_warning`.
    """
    from .export import FORMATS, ExportFormat

    lines = [
        f"{len(dmap)} defects of {printable(dmap.camera.label) or 'unknown camera'} written as {fmt.value} to {show_path(written)}"
    ]
    if fmt is ExportFormat.DCRAW:
        lines.append(
            "lines dated with first_seen: photos taken before a defect showed are left alone"
            if since_first_seen
            else "every line dated 0: every photo is repaired, older ones too (--since-first-seen dates them)"
        )
    hint = FORMATS[fmt].hint
    if hint:
        from .export import siril_command

        lines.append(hint.format(path=show_path(written), siril_command=siril_command(dmap)))
    return lines


def rawtherapee_serial_warning(camera: CameraId, *, serial: bool) -> str:
    """Why a RawTherapee list is named without a serial, and what that means (the text of a warning).

    Parameters
    ----------
    camera : CameraId
    serial : bool
        Whether the serial was asked for (``--serial``, the default).
    """
    from .export import rawtherapee_name

    model = printable(rawtherapee_name(camera, with_serial=False))
    why = (
        "--no-serial"
        if not serial or not camera.serial
        else f"RawTherapee does not read the serial number {printable(camera.serial)!r} of this file type "
        f"(only EXIF BodySerialNumber; this one came from {SERIAL_SOURCES.get(camera.serial_source, 'an unrecorded tag')})"
    )
    if not camera.serial:
        why = "the map records no serial number"
    return f"the file is named without a serial ({why}): RawTherapee applies it to every {model} it opens"


def repair_line(src: Path, result: RepairResult) -> str:
    """One repaired photo: where it went, what was changed, how much the rest moved (PSNR)."""
    if result.opcodes is not None:
        listed = result.opcodes
        text = (
            f"{src} -> {show_path(result.output)} (DNG): {result.flagged} mapped photosites listed in "
            f"OpcodeList1 (FixBadPixelsList: {len(listed.points)} point{'s' if len(listed.points) != 1 else ''}, "
            f"{len(listed.rects)} rect{'s' if len(listed.rects) != 1 else ''}), mosaic unchanged"
        )
        return text + (" (map of another body, --force)" if result.forced else "")
    what = "spots" if result.format == "JPEG" else "photosites"
    text = (
        f"{src} -> {show_path(result.output)} ({result.format}): {result.flagged} mapped {what}, "
        f"{result.changed} {'photosites' if what == 'photosites' else 'pixels'} changed"
    )
    c = result.corrected
    if c is not None and (c.offset or c.gain or c.dark or c.kept):
        parts = [
            f"{n} by {what}"
            for n, what in ((c.offset, "a segment's offset"), (c.gain, "gain"), (c.dark, "dark current"))
            if n
        ]
        said = [f"{' and '.join(parts)} corrected"] if parts else []
        said += [f"{c.kept} noisy in their normal state kept"] if c.kept else []
        text += f" ({', '.join(said)}, {c.interpolated} interpolated)"
    if result.psnr is not None:
        psnr = "identical" if math.isinf(result.psnr) else f"{result.psnr:.1f} dB"
        text += f"; PSNR elsewhere {psnr}"
    if result.forced:
        text += " (map of another body, --force)"
    return text


def repair_summary(repaired: int, total: int, out_dir: Path, *, failed: int = 0, skipped: int = 0) -> str:
    """The closing line of ``rawmap repair`` (followed by one error line per failure when ``failed``).

    ``skipped``: photos whose output was already there (``--skip-existing``).

    Examples
    --------
    >>> repair_summary(2, 3, Path("/nowhere/out"), failed=1)
    'Repaired 2 of 3 photos into /nowhere/out; 1 failed:'
    >>> repair_summary(1, 4, Path("/nowhere/out"), skipped=3)
    'Repaired 1 of 4 photos into /nowhere/out; 3 skipped, their output already there (--skip-existing)'
    """
    summary = f"Repaired {repaired} of {total} photo{'s' if total != 1 else ''} into {show_path(out_dir)}"
    if skipped:
        summary += f"; {skipped} skipped, {'their' if skipped != 1 else 'its'} output already there (--skip-existing)"
    if failed:
        summary += f"; {failed} failed:"
    return summary


def renamed_line(n: int) -> str:
    """The note on ``n`` repaired photos written as ``<name>-2``, ``-3`` ... (their plain name was taken)."""
    return (
        f"{n} photo{'s' if n != 1 else ''} written as <name>-2, -3 ...: the plain name was an input photo's "
        "or another input's output (inputs are never written over)"
    )


def edit_lines(
    before: DefectMap,
    edited: DefectMap,
    added: Sequence[tuple[int, int, Any]],
    dropped: Sequence[tuple[int, int]],
) -> list[str]:
    """What ``rawmap edit`` did: one line per --add and --drop, then the map's new counts.

    Parameters
    ----------
    before, edited : DefectMap
        The map before the edit and after (:meth:`DefectMap.edited`).
    added : sequence of (row, col, kind or None)
    dropped : sequence of (row, col)

    Returns
    -------
    list of str
    """
    old_defects = {(d.row, d.col): d for d in before.defects}
    lines = []
    for r, c, _ in added:
        old = old_defects.get((r, c))
        now = next(d for d in edited.defects if (d.row, d.col) == (r, c))
        if old is None:
            lines.append(f"added row {r}, col {c}: {now.kind.value} ({now.channel or '-'}), manual")
        elif old.kind is now.kind:
            lines.append(f"kept row {r}, col {c}: {now.kind.value}, now manual")
        else:
            lines.append(f"changed row {r}, col {c}: {old.kind.value} -> {now.kind.value}, manual")
    for r, c in dropped:
        old = old_defects.get((r, c))
        lines.append(
            f"dropped row {r}, col {c} (was {old.kind.value})"
            if old is not None
            else f"row {r}, col {c} was not in the map: recorded as dropped, so mapping again leaves it out"
        )
    n_manual = sum(d.manual for d in edited.defects)
    n_dropped = len(edited.dropped)
    lines.append(
        f"{len(edited)} defect{'s' if len(edited) != 1 else ''} ({n_manual} manual), "
        f"{n_dropped} photosite{'s' if n_dropped != 1 else ''} dropped by hand"
    )
    return lines


def entry_lines(e: LibraryEntry) -> list[str]:
    """One library entry as ``rawmap library show`` opens it: folder name, camera, map, dates, folder."""
    kind = "RAW" if e.source.value == "raw" else "images"
    stats = f"{e.state_frames} frames in its statistics" if e.has_state else "no statistics (imported map)"
    size = f", {e.shape[0]}x{e.shape[1]}" if e.shape else ""
    return [
        f"{e.path.name}",
        f"  camera    {e.label or 'unknown camera'} ({kind}{size})",
        f"  map       {e.defects} defects from {e.frames} frames; {stats}"
        + ("; includes imported defects" if e.imported else ""),
        f"  updated   {e.updated:%Y-%m-%d %H:%M} UTC (created {e.created:%Y-%m-%d})",
        f"  folder    {e.path}",
    ]


def library_list_lines(root: Path, entries: Sequence[LibraryEntry]) -> list[str]:
    """``rawmap library list``: a heading and one line per body, or one line for an empty library."""
    if not entries:
        return [f"No maps in {root} yet; make one with `rawmap map PHOTOS --save`."]
    lines = [f"Library {root}: {len(entries)} bod{'ies' if len(entries) != 1 else 'y'}"]
    width = max(len(e.path.name) for e in entries)
    for e in entries:
        kind = "RAW" if e.source.value == "raw" else "images"
        flags = "" if e.has_state else "  (imported, no statistics)"
        lines.append(
            f"  {e.path.name:<{width}}  {e.label or 'unknown camera'} ({kind}): {e.defects} defects, "
            f"{e.frames} frames, updated {e.updated:%Y-%m-%d}{flags}"
        )
    return lines


def library_export_lines(written: Sequence[Path]) -> list[str]:
    """``rawmap library export``: the files written (the map first, then its statistics) and how to take them back."""
    lines = [f"wrote {show_path(w)}" for w in written]
    lines.append(
        f"take it back with: rawmap library import {show_path(written[0])}"
        + (f" --state {show_path(written[1])}" if len(written) > 1 else "")
    )
    return lines


def merge_lines(
    acc: Accumulator, n_states: int, output: Path, dmap: DefectMap | None = None, map_file: Path | None = None
) -> list[str]:
    """What ``rawmap merge`` reports: the merged statistics and where they (and their map) went."""
    lines = [
        f"merged {n_states} states: {acc.n_frames} frames of {acc.camera.label or 'an unknown camera'} "
        f"({acc.shape[0]}x{acc.shape[1]}), written to {output}"
    ]
    if dmap is not None and map_file is not None:
        lines.append(f"map of {len(dmap)} defects written to {map_file}")
    return lines
