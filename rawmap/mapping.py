"""From a pile of photos to one defect map per camera body.

Two passes over the inputs:

1. identify every file from its header only (a fraction of a millisecond,
   no decoding): body, RAW or image; files that cannot be read are skipped
   with their reason;
2. per body, decode the frames on a reader thread while the main thread
   folds each one into the body's :class:`~rawmap.accumulate.Accumulator`
   (the compiled kernel releases the GIL, so decoding and accumulating run on
   two cores), then classify.

Bodies are done one after another, so memory stays at one accumulator
whatever the number of bodies.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from . import reader
from .accumulate import Accumulator, DetectionParams
from .defectmap import DefectMap
from .detect import ClassifyParams, build_map
from .errors import InputError, NothingToMapError
from .frame import CameraId, SourceKind

__all__ = ["Skipped", "BodyMap", "MapRun", "collect_inputs", "map_files", "MIN_FRAMES"]

#: fewest frames a body needs before rawmap decides anything about it
MIN_FRAMES = 3

BodyKey = tuple[CameraId, SourceKind]
ProgressFn = Callable[[int, int, Path], None]


@dataclass(frozen=True)
class Skipped:
    """A file that was not used, and why (one line)."""

    path: Path
    reason: str


@dataclass
class BodyMap:
    """The result for one body: its map and the statistics it came from."""

    camera: CameraId
    source: SourceKind
    defect_map: DefectMap
    accumulator: Accumulator
    files: list[Path] = field(default_factory=list)

    @property
    def key(self) -> BodyKey:
        return (self.camera, self.source)


@dataclass
class MapRun:
    """Everything a ``rawmap map`` run produced."""

    maps: list[BodyMap]
    skipped: list[Skipped]

    @property
    def frames_used(self) -> int:
        return sum(len(b.files) for b in self.maps)


def collect_inputs(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Skipped]]:
    """Expand files, folders (recursively) and glob patterns into a file list.

    Files named explicitly are always tried; inside folders and globs only
    files whose extension rawmap reads are taken.  Each file appears once, in
    a stable (sorted per input) order.

    Returns
    -------
    files : list of Path
    skipped : list of Skipped
        Inputs that name nothing.
    """
    files: list[Path] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for item in inputs:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and reader.is_candidate(q))
            if not found:
                skipped.append(Skipped(p, "folder holds no RAW or image files"))
            for q in found:
                add(q)
        elif p.exists():
            add(p)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            matches = [m for m in matches if m.is_file() and reader.is_candidate(m)]
            if not matches:
                skipped.append(Skipped(p, "pattern matches no RAW or image files"))
            for q in matches:
                add(q)
        else:
            skipped.append(Skipped(p, "no such file or folder"))
    return files, skipped


def _prefetch(paths: Sequence[Path], workers: int) -> Iterable[tuple[Path, Future]]:
    """Decode ``paths`` ahead of use on ``workers`` threads, at most ``workers + 1`` frames in flight."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rawmap-read") as pool:
        window: list[tuple[Path, Future]] = []
        it = iter(paths)
        for p in it:
            window.append((p, pool.submit(reader.read_frame, p)))
            if len(window) > workers:
                yield window.pop(0)
        while window:
            yield window.pop(0)


def map_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    params: DetectionParams | None = None,
    classify_params: ClassifyParams | None = None,
    states: Mapping[BodyKey, Accumulator] | None = None,
    progress: ProgressFn | None = None,
    read_workers: int = 1,
) -> MapRun:
    """Build one defect map per camera body from ``paths``.

    Parameters
    ----------
    paths : sequence of path-like
        Photo files (see :func:`collect_inputs` to expand folders).
    params : DetectionParams, optional
        Per-frame outlier test.
    classify_params : ClassifyParams, optional
        Final thresholds.
    states : mapping, optional
        Stored statistics to continue, keyed by (camera, source): new frames
        are added to them (nothing old is re-read).
    progress : callable, optional
        Called as ``progress(done, total, path)`` after each file.
    read_workers : int
        Decoding threads (1 keeps one core for accumulating on a 2-core machine).

    Returns
    -------
    MapRun

    Raises
    ------
    NothingToMapError
        When no body is left with enough usable frames.
    """
    files = [Path(p) for p in paths]
    total = len(files)
    done = 0
    skipped: list[Skipped] = []

    def tick(p: Path) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, p)

    # pass 1: identify from headers (no decoding)
    groups: dict[BodyKey, list[Path]] = {}
    for p in files:
        try:
            key = reader.identify(p)
        except InputError as exc:
            skipped.append(Skipped(p, exc.reason if exc.reason else str(exc)))
            tick(p)
            continue
        groups.setdefault(key, []).append(p)

    maps: list[BodyMap] = []
    for key, members in groups.items():
        camera, source = key
        base = states.get(key) if states else None
        # the first decoded frame (or the stored state) sets the size; frames of
        # another size are refused by Accumulator.check and reported
        usable = list(members)
        have = (base.n_frames if base is not None else 0) + len(usable)
        if have < MIN_FRAMES:
            for p in usable:
                skipped.append(Skipped(p, f"only {len(usable)} frame(s) of {camera.label or 'this camera'}; at least {MIN_FRAMES} are needed"))
                tick(p)
            continue
        acc = base
        used: list[Path] = []
        for p, fut in _prefetch(usable, read_workers):
            try:
                frame = fut.result()
                if acc is None:
                    acc = Accumulator.from_frame(frame, params=params)
                acc.update(frame)
            except InputError as exc:
                skipped.append(Skipped(p, exc.reason if exc.reason else str(exc)))
            else:
                used.append(p)
            finally:
                tick(p)
                # drop this frame before the next decode starts: two frames in memory, not three
                frame = fut = None  # noqa: F841
        if acc is None or acc.n_frames < MIN_FRAMES:
            for p in used:
                skipped.append(Skipped(p, f"only {len(used)} usable frame(s) of {camera.label or 'this camera'}; at least {MIN_FRAMES} are needed"))
            continue
        member_set = set(members)
        n_skipped_here = sum(1 for s in skipped if s.path in member_set)
        dmap = build_map(acc, classify_params, skipped=n_skipped_here)
        maps.append(BodyMap(camera, source, dmap, acc, used))

    if not maps:
        reasons = Counter(s.reason for s in skipped)
        common = "; ".join(f"{r} ({n})" for r, n in reasons.most_common(3))
        raise NothingToMapError(
            f"no usable frames to map from {total} file(s)" + (f": {common}" if common else "")
            + f" — rawmap needs at least {MIN_FRAMES} RAW or image frames of the same body"
        )
    return MapRun(maps=maps, skipped=skipped)
