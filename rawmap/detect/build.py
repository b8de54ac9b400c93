"""The order the rules run in (:func:`classify`), their flags put together, and the map (:func:`build_map`)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..accumulate import Accumulator
from ..defectmap import Defect, DefectKind, DefectMap, FrameStats, SensorGeometry
from ..frame import CFA_LETTERS, SourceKind, cfa_letters
from .cold import _cold, _flat_cold, _strong_cold_candidates
from .growth import _growth
from .hot import (
    _clipped_cluster_members,
    _complete_clusters,
    _dark_noisy,
    _hot_and_noisy,
    _ringing,
    _ringing_runs,
    _two_way,
)
from .lines import _line_echoes, _lines
from .params import MIN_FRAMES, ClassifyParams
from .series import (
    _KINDS,
    _by_chance_here,
    _candidates,
    _dark_noise,
    _darks_only,
    _Found,
    _groups8,
    _local_rates,
    _quiet_here,
    _Series,
    _touching,
)
from .stuck import _stuck_and_dead


def classify(acc: Accumulator, params: ClassifyParams | None = None) -> list[Defect]:
    """Decide which photosites are defective.

    The rules run in the order of the module docstring, each in a function
    of its own over a :class:`_Series` (the statistics, the thresholds, what
    the series as a whole measured, and what earlier rules found): stuck
    and dead (:func:`_stuck_and_dead`), hot and noisy (:func:`_hot_and_noisy`,
    then :func:`_complete_clusters`), hot by their growth in one view
    (:func:`_growth`), cold and the dark noisy ones
    (:func:`_cold`, :func:`_dark_noisy`), column and row segments
    (:func:`_lines`); :func:`_assemble` makes the records.

    Parameters
    ----------
    acc : Accumulator
        Statistics of at least three frames.
    params : ClassifyParams, optional

    Returns
    -------
    list of Defect
        One entry per defective photosite, sorted by (row, col).
    """
    return _classify(acc, params)[0]


def _classify(acc: Accumulator, params: ClassifyParams | None) -> tuple[list[Defect], _Series | None]:
    """:func:`classify`, and the series the rules ran over (None below :data:`MIN_FRAMES` frames)."""
    acc = acc.closed()
    if acc.n_frames < MIN_FRAMES:
        return [], None
    ser = _Series.of(acc, params or ClassifyParams())
    _stuck_and_dead(ser)
    hi_r, hi_c = _candidates(acc.s_hi, ser.need, ser.taken)
    lo_r, lo_c = _candidates(acc.s_lo, ser.need, ser.taken)
    darks = _darks_only(acc)
    if not darks:  # where busy scenes explain the count, it is no evidence
        local = _local_rates(acc, ser.need, ser.p.chance_tile)  # once for the three tests below
        chance = _by_chance_here(acc, local, ser.p.max_chance, hi_r, hi_c, acc.s_hi)
        # ... unless it touches a photosite the scenes do not explain (a hot cluster's member)
        chance &= ~_touching(hi_r * ser.W + hi_c, hi_r[~chance] * ser.W + hi_c[~chance], ser.W)
        hi_r, hi_c = hi_r[~chance], hi_c[~chance]
        if ser.need > 2:  # where busy views raised the units needed, quieter parts of the scenes need fewer
            q_r, q_c = _candidates(acc.s_hi, ser.need - 1, ser.taken)
            short = acc.s_hi[q_r, q_c] == ser.need - 1
            q_r, q_c = q_r[short], q_c[short]
            quiet = _quiet_here(acc, local, ser.p.max_chance, q_r, q_c, acc.s_hi)
            if quiet.any():
                flat = np.union1d(hi_r * ser.W + hi_c, q_r[quiet] * ser.W + q_c[quiet])
                hi_r, hi_c = flat // ser.W, flat % ser.W
        if acc.n_scenes < ser.p.guard_views:
            # in a few views the same holds for dark outliers (3 photos of 3 scenes: a textured
            # photosite dark in 2 of them was low gain); with more views a true low-gain photosite in a
            # busy block was lost to it, and the view bound and isolation guard those
            lo_chance = _by_chance_here(acc, local, ser.p.max_chance, lo_r, lo_c, acc.s_lo)
            lo_chance &= ~_touching(lo_r * ser.W + lo_c, lo_r[~lo_chance] * ser.W + lo_c[~lo_chance], ser.W)
            ser.lo_chance = np.sort(lo_r[lo_chance] * ser.W + lo_c[lo_chance])
    # low gain shows in the gain ratio even where few views made it a dark outlier
    g_r, g_c = _strong_cold_candidates(acc, ser.p, ser.taken, ser.sig_read)
    if g_r.size:
        flat = np.union1d(lo_r * ser.W + lo_c, g_r * ser.W + g_c)
        lo_r, lo_c = flat // ser.W, flat % ser.W
    if hi_r.size:
        _hot_and_noisy(ser, hi_r, hi_c)
        _complete_clusters(acc, ser.p, ser.found, ser.taken, ser.x_hi)
    _growth(ser)
    _flat_cold(ser)
    keep = ~ser.taken[lo_r, lo_c]
    lo_r, lo_c = lo_r[keep], lo_c[keep]
    if lo_r.size:
        mapped = _cold(ser, lo_r, lo_c)  # cold, or dead at gain 0
        rest = ~mapped & (acc.s_lo[lo_r, lo_c] >= ser.need) & ~np.isin(lo_r * ser.W + lo_c, ser.lo_chance)
        if rest.any():
            _dark_noisy(ser, lo_r[rest], lo_c[rest])
    if acc.source is not SourceKind.IMAGE and darks:
        _two_way(ser, ser.p.noisy_ratio)
    elif acc.source is SourceKind.IMAGE and acc.channels == 3 and not darks and acc.n_scenes >= ser.p.guard_views:
        _two_way(ser, ser.p.two_way_image_excess)  # colour photos: a one-colour defect the scene turns about
    _lines(ser)
    _line_echoes(ser)
    _drop_weak(ser)
    if darks:
        _clipped_cluster_members(ser)
    return _assemble(ser), ser


def _drop_weak(ser: _Series) -> None:
    """Drop the provisional hot and noisy flags that no segment took (see :func:`_hot_and_noisy`)."""
    if ser.weak.size == 0:
        return
    found = ser.found
    point = found.of(DefectKind.NOISY) | found.of(DefectKind.HOT)
    weak = point & np.isin(found.rows * ser.W + found.cols, ser.weak)
    ser.taken[found.rows[weak], found.cols[weak]] = False
    found.keep(~weak)


def _assemble(ser: _Series) -> list[Defect]:
    """The records, sorted by (row, col); in developed images compression echoes dropped and one
    record per blob (:func:`_ringing`, :func:`_blob_centres`)."""
    acc, found = ser.acc, ser.found
    if acc.source is SourceKind.IMAGE and found.rows.size:
        found.keep(~_ringing(acc, found, ser.p))
        found.keep(~_ringing_runs(acc, found, ser.p))
        kinds_list = [_KINDS[k] for k in found.kinds.tolist()]
        keep = np.zeros(found.rows.size, bool)
        keep[_blob_centres(found.rows, found.cols, found.scores, kinds_list)] = True
        found.keep(keep)
    order = np.lexsort((found.cols, found.rows))
    found.keep(order)
    rows, cols = found.rows.tolist(), found.cols.tolist()
    series_start = min((f.time for f in acc.frames if f.time), default=None)
    first = _first_seen(acc, found, series_start)
    if acc.cfa is not None:
        letters = np.array(list(CFA_LETTERS))[np.asarray(acc.cfa)[found.rows & 1, found.cols & 1]].tolist()
    else:
        letters = [""] * len(rows)
    kinds = [_KINDS[k] for k in found.kinds.tolist()]
    # warm: slower than hot_fill_seconds to fill the range; developed images' values are not linear,
    # no dark current to tell by
    if acc.source is not SourceKind.IMAGE:
        rate = found.values
        warm = found.of(DefectKind.HOT) & (rate > 0) & (ser.p.hot_fill_seconds * rate < ser.span)
        kinds = [DefectKind.WARM if w else k for k, w in zip(kinds, warm.tolist())]
    views_n = _views_shown(acc, found)
    if ser.grown.size:
        views_n[np.isin(found.rows * ser.W + found.cols, ser.grown)] = 1
    views = views_n.tolist()
    return [
        Defect(r, c, k, s, ch, f, v, views=n)
        for r, c, k, s, ch, f, v, n in zip(
            rows, cols, kinds, found.scores.tolist(), letters, first, found.values.tolist(), views
        )
    ]


def _views_shown(acc: Accumulator, found: _Found) -> np.ndarray:
    """Per defect found, the evidence units that showed it (see :attr:`rawmap.defectmap.Defect.views`)."""
    S = max(acc.n_scenes, 1)
    r, c = found.rows, found.cols
    n = np.minimum(acc.s_hi[r, c].astype(np.int64) + acc.s_lo[r, c], S)
    const = found.of(DefectKind.STUCK) | found.of(DefectKind.DEAD)
    n[const] = S
    line = found.of(DefectKind.COLUMN)
    if line.any() and acc.ln_code.size:
        flat = acc.ln_code >> 2
        order = np.argsort(flat, kind="stable")
        keys, counts = flat[order], acc.ln_count[order].astype(np.int64)
        q = r[line] * acc.shape[1] + c[line]
        lo = np.searchsorted(keys, q, "left")
        hi = np.searchsorted(keys, q, "right")
        best = np.array([counts[a:b].max() if b > a else 0 for a, b in zip(lo, hi)], np.int64)
        n[line] = np.minimum(np.maximum(n[line], best), S)
    return n


#: kinds found from what every frame showed (the value range over all frames, lines leaning in every scene)
_ALWAYS_SHOWN = (DefectKind.STUCK, DefectKind.DEAD, DefectKind.COLUMN)


def _first_seen(acc: Accumulator, found: _Found, series_start) -> list:
    """Capture time of the earliest frame that showed each defect found.

    Stuck and dead photosites are found from their value range over all
    frames and column/row segments from lines that lean in every scene
    where they are visible: they showed from the series' first capture.
    Hot, noisy and cold photosites showed from the first frame of the
    earliest scene (burst) in which they were confirmed outliers (the
    accumulator's record, merged by earliest time), or from the series'
    first capture when no time was recorded.  The time is never later than
    the earliest frame in which the photosite was a confirmed outlier, so a
    dcraw ``-P`` line dated with it repairs that frame.
    """
    if not found.rows.size:
        return []
    always = np.isin(found.kinds, [_KINDS.index(k) for k in _ALWAYS_SHOWN])
    recorded = acc.first_seen(found.rows, found.cols)
    return [series_start if a or f is None else f for a, f in zip(always.tolist(), recorded)]


def _blob_centres(rows, cols, scores, kinds) -> list[int]:
    """Indices of the strongest pixel of each 8-connected group (column runs kept whole)."""
    column = np.array([k is DefectKind.COLUMN for k in kinds], bool)
    groups = _groups8(rows, cols, ~column)
    best: dict[int, int] = {}
    for i in np.flatnonzero(~column).tolist():
        g = int(groups[i])
        if g not in best or scores[i] > scores[best[g]]:
            best[g] = i
    return sorted(np.flatnonzero(column).tolist() + list(best.values()))


def _evidence(acc: Accumulator) -> dict[str, int]:
    """Evidence units of a series: views (a dark that joined a photo's view is part of it), darks, flats,
    and the views shot several times (brackets, bursts, timelapses: each counted once)."""
    lit = {f.scene for f in acc.frames if f.kind != "dark"}
    darks = {f.scene for f in acc.frames if f.kind == "dark"} - lit
    flats = {f.scene for f in acc.frames if f.kind == "flat"}
    per_view = Counter(f.scene for f in acc.frames if f.scene in lit)
    repeated = sum(1 for n in per_view.values() if n > 1)
    return {"views": len(lit), "darks": len(darks), "flats": len(flats), "repeated": repeated}


def build_map(acc: Accumulator, params: ClassifyParams | None = None, *, skipped: int = 0) -> DefectMap:
    """Classify and wrap the result with the body's identity, geometry and frame summary."""
    p = params or ClassifyParams()
    defects, ser = _classify(acc, p)
    times = [f.time for f in acc.frames if f.time]
    exps = [f.exposure for f in acc.frames if f.exposure > 0]
    isos = [f.iso for f in acc.frames if f.iso > 0]
    temps = [f.temperature for f in acc.frames if f.temperature is not None]
    H, W = acc.shape
    sensor = SensorGeometry(
        height=H,
        width=W,
        top_margin=acc.margins[0],
        left_margin=acc.margins[1],
        full_height=acc.full_shape[0] or H,
        full_width=acc.full_shape[1] or W,
        cfa=cfa_letters(acc.cfa),
        source=acc.source.value,
        channels=acc.channels if acc.source is SourceKind.IMAGE else None,
    )
    frames = FrameStats(
        count=acc.n_frames,
        skipped=skipped,
        first_capture=min(times) if times else None,
        last_capture=max(times) if times else None,
        exposure_min=min(exps) if exps else 0.0,
        exposure_max=max(exps) if exps else 0.0,
        iso_min=min(isos) if isos else 0.0,
        iso_max=max(isos) if isos else 0.0,
        **_evidence(acc),
        temperature_min=min(temps) if temps else None,
        temperature_max=max(temps) if temps else None,
        dark_noise=_dark_noise(acc),
        growth=None if ser is None else ser.growth,
        lines=None if ser is None else ser.lines,
    )
    thresholds = {
        "sensitivity": p.sensitivity,
        "accumulate": acc.params.to_dict(),
        "classify": p.to_dict(),
        "scenes": acc.n_scenes,
    }
    return DefectMap(camera=acc.camera, sensor=sensor, frames=frames, defects=defects, thresholds=thresholds)
