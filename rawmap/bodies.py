"""A body's map over time: a run's result folded into what the library holds for that body.

:func:`rawmap.mapping.map_files` makes one map per body from new photos;
:class:`rawmap.library.Library` stores entries and decides nothing.  This
module sits between them and decides what an update of a body's entry
holds (:func:`update_entry`), which the library then writes as given:

* **Statistics.**  A run that continued the stored statistics
  (``map_files(states=library.states())``) simply replaces them.  A run
  made without them, from other photos, is merged into them (an exact
  union, :meth:`rawmap.accumulate.Accumulator.merge`) and the map is
  classified again from the merged statistics with the thresholds the run's
  map recorded (:func:`rawmap.detect.build_map`).  A run that repeats
  photos already counted, by path or by content key, or that continues an
  older version of the stored statistics (another run saved meanwhile), is
  refused.
* **Imported defects.**  A map imported from elsewhere
  (:meth:`rawmap.library.Library.import_map`) has no statistics behind it;
  its defects are merged into every new map
  (:func:`rawmap.defectmap.merge_defects`: one entry per photosite, the
  higher score wins, the earliest ``first_seen`` is kept, the frame
  statistics add up), so an imported defect is never dropped.
* **Edits by hand.**  The stored map's manual defects and dropped
  photosites (``rawmap edit``) are carried over to the new map
  (:func:`rawmap.defectmap.carry_edits`), after the imported defects are
  merged in: a dropped photosite stays out even when detection or an
  imported map lists it.

Examples
--------
>>> lib = Library()                                          # doctest: +SKIP
>>> with lib.updating():                                     # doctest: +SKIP
...     run = map_files(paths, states=lib.states())
...     for body in run.maps:
...         entry, dmap = store_body(lib, body)              # dmap: the map the entry now holds
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path

from .accumulate import Accumulator
from .defectmap import EVIDENCE_FIELDS, DefectMap, FrameStats, carry_edits, merge_defects
from .detect import ClassifyParams, build_map
from .errors import LibraryError, RawmapError
from .frame import CameraId, SourceKind
from .library import EntryUpdate, Library, LibraryEntry, StoredEntry, recorded_path
from .mapping import BodyMap

__all__ = ["update_entry", "store_body", "merge_imported"]


def _describe(camera: CameraId, source: SourceKind) -> str:
    name = camera.label or "an unknown camera"
    return name + (" (maps from developed images)" if source is SourceKind.IMAGE else "")


def update_entry(body: BodyMap, stored: StoredEntry | None) -> EntryUpdate:
    """What a body's entry holds once ``body`` is added to it: statistics, the final map, the photos counted.

    Parameters
    ----------
    body : rawmap.mapping.BodyMap
        One series of a :func:`rawmap.mapping.map_files` run.
    stored : rawmap.library.StoredEntry or None
        The body's entry as stored (:meth:`rawmap.library.Library.stored`
        with the series' camera, source and sensor size), ``None`` when the
        library has none: the update makes a new entry.

    Returns
    -------
    rawmap.library.EntryUpdate
        ``defect_map`` is the map to store, final: the run's own map, or
        the map classified again from merged statistics, with the imported
        defects merged in and the edits by hand carried over (see the module
        docstring).  ``base`` is ``stored``: :meth:`Library.store` refuses
        the update when the entry changed after ``stored`` was read.

    Raises
    ------
    LibraryError
        The run repeats photos already counted (by path or content), or
        continues an older version of the stored statistics; its statistics
        cannot be merged with the stored ones; the imported map is of
        another sensor size.
    rawmap.errors.MapFormatError
        A stored map or state is damaged.
    """
    camera: CameraId = body.camera
    source = SourceKind(body.source)
    acc: Accumulator = body.accumulator
    dmap: DefectMap = body.defect_map
    new_keys = {recorded_path(p): k for p, k in (body.content or {}).items() if k}
    stored_files: list[str] = list(stored.files) if stored is not None else []
    keys: dict[str, str] = dict(stored.content_keys) if stored is not None else {}
    added = [recorded_path(f.path) for f in acc.frames]
    if stored is not None and stored.has_state:
        if stored.continued_by(acc):
            added = added[stored.entry.state_frames :]
        else:
            if set(added) & set(stored_files):
                raise LibraryError(
                    f"{stored.entry.path}: these statistics of {_describe(camera, source)} repeat photos already in "
                    "the library, or another run updated the entry meanwhile; map only the new photos, "
                    "continuing the stored statistics (`rawmap map PHOTOS --save`)"
                )
            merged = stored.load_state()
            assert merged is not None  # has_state
            try:
                merged.merge(acc)
            except RawmapError as exc:
                raise LibraryError(
                    f"{stored.entry.path}: cannot add these statistics to the stored ones ({exc})"
                ) from None
            acc = merged
            dmap = build_map(acc, _classify_params(dmap), skipped=dmap.frames.skipped)
    seen = set(stored_files)
    repeated = []
    for f in added:
        if f in seen:
            repeated.append(f)
        seen.add(f)
    for f in added:
        k = new_keys.get(f)
        if k is None:
            continue
        if k in keys:
            repeated.append(f"{f} (same content as {keys[k]})")
        keys[k] = f
    if repeated:
        raise LibraryError(
            f"{repeated[0]}: already counted in the statistics of {_describe(camera, source)}"
            + (f" (and {len(repeated) - 1} more)" if len(repeated) > 1 else "")
            + "; leave the photos listed by Library.known_files() and known_keys() out of the run"
        )
    if stored is not None:
        imported = stored.load_imported()
        if imported is not None:
            dmap = merge_imported(dmap, imported, where=stored.entry.path)
        current = stored.load_map()
        if current is not None:
            dmap = carry_edits(dmap, current)  # `rawmap edit`: manual and dropped
    return EntryUpdate(
        camera=camera,
        source=source,
        defect_map=dmap,
        accumulator=acc,
        files=tuple(stored_files + added),
        content_keys=keys,
        base=stored,
    )


def store_body(library: Library, body: BodyMap) -> tuple[LibraryEntry, DefectMap]:
    """Add one series of a run to its body's entry: :func:`update_entry`, then :meth:`Library.store`.

    Holds the library's lock from reading the entry to writing it (hold
    :meth:`Library.updating` around the whole run, from
    :meth:`Library.states`, so that another process cannot update the body
    between the two).

    Returns
    -------
    entry : rawmap.library.LibraryEntry
        The updated entry.
    defect_map : DefectMap
        The map the entry now holds (the one written: nothing is read back).

    Raises
    ------
    LibraryError
        See :func:`update_entry` and :meth:`Library.store`.
    """
    with library.updating():
        update = update_entry(body, library.stored(body.camera, body.source, shape=body.shape))
        return library.store(update), update.defect_map


def _classify_params(dmap: DefectMap) -> ClassifyParams | None:
    """The classification thresholds a map was made with (defaults when not recorded)."""
    recorded = dmap.thresholds.get("classify")
    if not isinstance(recorded, dict):
        return None
    try:
        return ClassifyParams(**recorded)
    except TypeError:
        return None


def _earliest(a: _dt.datetime | None, b: _dt.datetime | None) -> _dt.datetime | None:
    if a is None or b is None:
        return a or b
    try:
        return min(a, b)
    except TypeError:  # naive vs aware: keep the first
        return a


def _merge_frame_stats(a: FrameStats, b: FrameStats) -> FrameStats:
    def lo(x: float, y: float) -> float:
        vals = [v for v in (x, y) if v > 0]
        return min(vals) if vals else 0.0

    last = [t for t in (a.last_capture, b.last_capture) if t is not None]
    try:
        last_capture = max(last) if last else None
    except TypeError:
        last_capture = last[0]
    return FrameStats(
        count=a.count + b.count,
        skipped=a.skipped + b.skipped,
        first_capture=_earliest(a.first_capture, b.first_capture),
        last_capture=last_capture,
        exposure_min=lo(a.exposure_min, b.exposure_min),
        exposure_max=max(a.exposure_max, b.exposure_max),
        iso_min=lo(a.iso_min, b.iso_min),
        iso_max=max(a.iso_max, b.iso_max),
        **{
            k: getattr(a, k) + getattr(b, k)
            for k in EVIDENCE_FIELDS
            if getattr(a, k) is not None and getattr(b, k) is not None
        },
        temperature_min=min((t for t in (a.temperature_min, b.temperature_min) if t is not None), default=None),
        temperature_max=max((t for t in (a.temperature_max, b.temperature_max) if t is not None), default=None),
        dark_noise=_weighted_noise(a, b),
        growth=a.growth if a.growth == b.growth else None,
        lines=a.lines if a.lines == b.lines else None,
    )


def _weighted_noise(a: FrameStats, b: FrameStats) -> float | None:
    """The darks' noise of two maps together: their figures weighted by their darks (one alone as it is)."""
    known = [(f.dark_noise, f.darks or 0) for f in (a, b) if f.dark_noise is not None]
    if not known:
        return None
    weight = sum(n for _, n in known)
    return known[0][0] if weight == 0 else sum(v * n for v, n in known) / weight


def merge_imported(dmap: DefectMap, imported: DefectMap, *, where: Path | None = None) -> DefectMap:
    """``dmap`` with an imported map's defects merged in.

    One defect per photosite (the higher score wins,
    :func:`rawmap.defectmap.merge_defects`), each with the earliest
    ``first_seen`` of the two maps; the frame statistics add up (counts,
    skipped, views, darks, flats) or span both (capture times, exposures,
    ISO); ``thresholds["imported"]`` records the imported map's defects,
    frames and date.  Dropped photosites are ``dmap``'s.

    Parameters
    ----------
    dmap : DefectMap
        A map made from photos.
    imported : DefectMap
        The imported map, of the same sensor size.
    where : Path, optional
        The library entry, named in the error message.

    Raises
    ------
    LibraryError
        The two maps are of different sensor sizes.
    """
    if (imported.sensor.height, imported.sensor.width) != (dmap.sensor.height, dmap.sensor.width):
        raise LibraryError(
            f"{where / 'imported.json' if where is not None else 'the imported map'}: the imported map is "
            f"{imported.sensor.height}x{imported.sensor.width}, the new photos {dmap.sensor.height}x"
            f"{dmap.sensor.width}; remove the entry and map the body again"
        )
    merged = merge_defects(imported.defects, dmap.defects)
    first: dict[tuple[int, int], _dt.datetime | None] = {}
    for d in list(imported.defects) + list(dmap.defects):
        k = (d.row, d.col)
        first[k] = _earliest(first[k], d.first_seen) if k in first else d.first_seen
    defects = [
        d if d.first_seen == first[(d.row, d.col)] else replace(d, first_seen=first[(d.row, d.col)]) for d in merged
    ]
    thresholds = dict(dmap.thresholds)
    thresholds["imported"] = {
        "defects": len(imported),
        "frames": imported.frames.count,
        "created": imported.created.isoformat(),
    }
    return DefectMap(
        camera=dmap.camera,
        sensor=dmap.sensor,
        frames=_merge_frame_stats(dmap.frames, imported.frames),
        defects=defects,
        thresholds=thresholds,
        created=dmap.created,
        dropped=dmap.dropped,
    )
