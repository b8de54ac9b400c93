"""How a defect map compares with the truth of a series: :func:`score_map`, :func:`score_flags`.

:func:`score_map` scores a map against a :class:`~rawmap.testing.truth.SeriesTruth`
of a generated series (recall on must-find defects, precision of the flags);
:func:`score_flags` scores flagged photosites against the ``truth.json`` of
an outside series such as ``indep-8080``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..defectmap import DefectKind
from .truth import SeriesTruth

__all__ = ["MapScore", "score_map", "score_flags"]


@dataclass(frozen=True)
class MapScore:
    """How a defect map compares with a series' truth (:func:`score_map`).

    Attributes
    ----------
    recall : float
        Share of the must-find units found: a point defect (any class but
        ``column``) is found when its photosite is flagged (any kind); a
        column or row segment is one unit, must-find when at least half of
        its photosites are, found when at least 80 % of them are flagged.
        1.0 when there is nothing to find.
    precision : float
        Share of the map's flags that lie on a planted defect photosite
        (must-find or not); 1.0 for an empty map.
    n_must_find, n_found : int
        Must-find units, and how many of them were found.
    n_flags, n_false : int
        Flags in the map, and those on no planted defect.
    false_by_kind : dict of str to int
        False flags per map kind (``DefectKind`` value).
    recall_by_class : dict of str to (int, int)
        Per finer class (:data:`DEFECT_CLASSES`), (found, must-find units).
    """

    recall: float
    precision: float
    n_must_find: int
    n_found: int
    n_flags: int
    n_false: int
    false_by_kind: dict[str, int]
    recall_by_class: dict[str, tuple[int, int]]

    def summary(self) -> str:
        """One line: recall, precision and the false flags by kind."""
        fk = ", ".join(f"{k} {v}" for k, v in sorted(self.false_by_kind.items())) or "none"
        return (
            f"recall {self.recall:.2f} ({self.n_found}/{self.n_must_find}), precision {self.precision:.2f} "
            f"({self.n_flags - self.n_false}/{self.n_flags}); false flags: {fk}"
        )


def within(points: np.ndarray, targets: np.ndarray, radius: int) -> np.ndarray:
    """Which points have a target within ``radius`` photosites (Chebyshev distance).

    The matching rule of every score here: a planted defect is found when a
    flag lies within ``radius`` of it, a flag is true when a planted defect
    does (developed images move a defect's trace by a pixel or two).  In
    chunks of points, so that thousands of flags against hundreds of
    defects stay a few megabytes.

    Parameters
    ----------
    points : (N, 2) array_like of int
        Rows and columns.
    targets : (M, 2) array_like of int
    radius : int
        0 for the same photosite.

    Returns
    -------
    (N,) ndarray of bool

    Examples
    --------
    >>> within(np.array([[5, 5], [9, 0]]), np.array([[6, 7]]), 2).tolist()
    [True, False]
    """
    points = np.asarray(points, np.int64).reshape(-1, 2)
    targets = np.asarray(targets, np.int64).reshape(-1, 2)
    out = np.zeros(len(points), bool)
    if len(points) == 0 or len(targets) == 0:
        return out
    for i in range(0, len(points), 2048):
        chunk = points[i : i + 2048]
        out[i : i + 2048] = (np.abs(chunk[:, None, :] - targets[None, :, :]).max(axis=2) <= radius).any(axis=1)
    return out


def _rows_cols(pairs) -> np.ndarray:
    """(N, 2) int64 array of (row, col) pairs."""
    return np.array(list(pairs), np.int64).reshape(-1, 2)


def score_map(defect_map: Any, truth: SeriesTruth, radius: int = 0) -> MapScore:
    """Score a defect map against the truth of a generated series.

    Parameters
    ----------
    defect_map : rawmap.defectmap.DefectMap
        Or anything with ``defects``, each with ``row``, ``col`` and ``kind``
        (visible-area coordinates).
    truth : SeriesTruth
        With ``visible_frames`` (see :attr:`SeriesTruth.must_find`).
    radius : int, optional
        A planted defect is found when a flag lies within this many
        photosites of it (Chebyshev), and a flag is true when a planted
        defect lies within as many: 2 for maps made from a series' JPEG
        renderings, whose demosaicing and compression move a defect's trace
        (and merge a cluster's flags into one per blob).  0 (exact) by default.

    Returns
    -------
    MapScore

    Examples
    --------
    >>> score_map(jpeg_map, truth, radius=2).recall  # doctest: +SKIP
    """
    if radius < 0:
        raise ValueError(f"radius must be 0 or more, got {radius}")
    must = truth.must_find
    classes = truth.classes()
    flags = {(int(d.row), int(d.col)): DefectKind(d.kind).value for d in defect_map.defects}
    planted = _rows_cols((d.row, d.col) for d in truth.defects)
    flagged = _rows_cols(flags)
    found = within(planted, flagged, radius)
    by_class: dict[str, list[int]] = {}
    segments: dict[int, list[tuple[bool, bool]]] = {}
    for d, c, m, hit in zip(truth.defects, classes, must, found.tolist()):
        if c == "column":
            segments.setdefault(int(d.params.get("segment", -1)), []).append((bool(m), hit))
        elif m:
            fc = by_class.setdefault(c, [0, 0])
            fc[0] += hit
            fc[1] += 1
    for members in segments.values():
        if sum(m for m, _ in members) * 2 >= len(members):
            fc = by_class.setdefault("column", [0, 0])
            fc[0] += sum(h for _, h in members) >= 0.8 * len(members)
            fc[1] += 1
    n_must = sum(v[1] for v in by_class.values())
    n_found = sum(v[0] for v in by_class.values())
    false: dict[str, int] = {}
    for kind, true in zip(flags.values(), within(flagged, planted, radius).tolist()):
        if not true:
            false[kind] = false.get(kind, 0) + 1
    n_false = sum(false.values())
    return MapScore(
        recall=n_found / n_must if n_must else 1.0,
        precision=(len(flags) - n_false) / len(flags) if flags else 1.0,
        n_must_find=n_must,
        n_found=n_found,
        n_flags=len(flags),
        n_false=n_false,
        false_by_kind=false,
        recall_by_class={k: (v[0], v[1]) for k, v in by_class.items()},
    )


def score_flags(
    flags: set[tuple[int, int]], truth: dict[str, Any], radius: int = 0, *, jpeg: bool = False
) -> tuple[float, float, Counter, Counter]:
    """Score flagged photosites against a ``truth.json`` of an outside series (e.g. ``indep-8080``).

    That format lists ``defects`` with ``row``, ``col``, ``kind`` and
    ``must_find`` (``must_find_jpeg`` for the series' JPEG renderings).

    Parameters
    ----------
    flags : set of (row, col)
    truth : dict
        The parsed ``truth.json``.
    radius : int, optional
        A flag hits a defect within this many photosites (Chebyshev); 2 for
        JPEGs, whose demosaicing and compression move a defect's trace.
    jpeg : bool, optional
        Score against ``must_find_jpeg``.

    Returns
    -------
    recall : float
        Share of must-find units flagged; a column segment counts when 80 %
        of its must-find photosites are flagged.
    precision : float
        Share of flags within ``radius`` of any planted defect.
    found, total : Counter
        Must-find units found and planted, by truth kind.
    """
    defects = truth["defects"]
    planted = _rows_cols((d["row"], d["col"]) for d in defects)
    f = _rows_cols(sorted(flags))
    precision = float(within(f, planted, radius).mean()) if len(f) else 1.0
    found: Counter = Counter()
    total: Counter = Counter()
    columns: dict[int, list[tuple[int, int]]] = {}
    key = "must_find_jpeg" if jpeg else "must_find"
    for d in defects:
        if not d.get(key, d.get("must_find")):
            continue
        if d["kind"] == "column":
            columns.setdefault(d["col"], []).append((d["row"], d["col"]))
            continue
        total[d["kind"]] += 1
        found[d["kind"]] += int(within(np.array([[d["row"], d["col"]]]), f, radius)[0])
    for pts in columns.values():
        total["column"] += 1
        found["column"] += int(within(np.array(pts), f, radius).mean() >= 0.8)
    recall = sum(found.values()) / max(sum(total.values()), 1)
    return recall, precision, found, total
