"""From a pile of photos to one defect map per camera body.

Two passes over the inputs:

1. identify every file from its header only (a fraction of a millisecond,
   no decoding): body, RAW or image; files that cannot be read are skipped
   with their reason;
2. per body, two threads each take a file from decoding (LibRaw releases
   the GIL) to folded into the body's
   :class:`~rawmap.accumulate.Accumulator` (the compiled kernel releases it
   too); the frame is folded in bands of rows, each band taking the frames
   in file order, so two frames fold different bands at once and the sums
   are bit-identical to a serial run.  The main thread closes each frame in
   order (scenes, outliers), then classifies.

Bodies are done one after another, so memory stays at one accumulator
whatever the number of bodies.
"""

from __future__ import annotations

import glob
import os
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from . import _kernels, reader
from .accumulate import Accumulator, DetectionParams, PreparedFrame, frame_plane, new_sums
from .defectmap import DefectMap
from .detect import ClassifyParams, build_map
from .errors import InputError, NothingToMapError
from .frame import CameraId, Frame, SourceKind

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


def collect_inputs(
    inputs: Iterable[str | os.PathLike[str]], *, mosaic: bool = False
) -> tuple[list[Path], list[Skipped]]:
    """Expand files, folders (recursively) and glob patterns into a file list.

    Files named explicitly are always tried; inside folders and globs only
    files whose extension rawmap reads are taken (with ``mosaic``, PGM files
    too: see :func:`rawmap.reader.is_candidate`).  Each file appears once, in
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
            found = sorted(q for q in p.rglob("*") if q.is_file() and reader.is_candidate(q, mosaic=mosaic))
            if not found:
                skipped.append(Skipped(p, "folder holds no RAW or image files"))
            for q in found:
                add(q)
        elif p.exists():
            add(p)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            matches = [m for m in matches if m.is_file() and reader.is_candidate(m, mosaic=mosaic)]
            if not matches:
                skipped.append(Skipped(p, "pattern matches no RAW or image files"))
            for q in matches:
                add(q)
        else:
            skipped.append(Skipped(p, "no such file or folder"))
    return files, skipped


class _Turnstile:
    """Frame ``seq`` may fold band ``b`` only after frame ``seq - 1`` has.

    Frames go through each band in capture order (so the float sums are the
    same as in a serial run), while two frames can be folding different
    bands at the same time.  Every sequence number must pass exactly once,
    folded or not, or the frames after it wait for ever.
    """

    def __init__(self, n_bands: int) -> None:
        self._next = [0] * n_bands
        self._cv = threading.Condition()

    def run(self, seq: int, work: Callable[[int], None] | None) -> None:
        """Call ``work(band)`` for every band as its turn comes (``None``: just pass the turn)."""
        todo = list(range(len(self._next)))
        failed: BaseException | None = None
        while todo:
            with self._cv:
                while not any(self._next[b] == seq for b in todo):
                    self._cv.wait()
                band = next(b for b in todo if self._next[b] == seq)
            try:
                if work is not None and failed is None:
                    work(band)
            except BaseException as exc:  # pass the remaining turns, then re-raise
                failed = exc
            finally:
                with self._cv:
                    self._next[band] = seq + 1
                    todo.remove(band)
                    self._cv.notify_all()
        if failed is not None:
            raise failed


class _SeriesStart:
    """The body's accumulator: the stored state, or made from the first frame (in file order) that decodes.

    For a new series the statistics (~0.25 s of page zeroing at 24 MP) are
    allocated on a thread of their own as soon as LibRaw's header pass
    gives the first file's size, while the first frames decode.
    """

    def __init__(
        self, base: Accumulator | None, params: DetectionParams | None, n_files: int, first: Path | None = None
    ) -> None:
        self.acc = base
        self._params = params
        self._n_files = n_files
        self._decided = -1  # every file up to this one has decoded or failed
        self._cv = threading.Condition()
        self._sums: Future | None = None
        if base is not None:
            base.reserve(n_files)
        elif first is not None:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rawmap-alloc")
            self._sums = pool.submit(_sums_for, first)
            pool.shutdown(wait=False)  # the thread ends with its one task

    def get(self, seq: int, frame: Frame | None) -> Accumulator | None:
        """The accumulator for file ``seq`` (``frame`` None: that file failed to decode)."""
        with self._cv:
            if self.acc is None:
                while self.acc is None and self._decided != seq - 1:
                    self._cv.wait()
                if self.acc is None and frame is not None:
                    sums = self._sums.result() if self._sums is not None else None
                    if sums is not None and sums["s_v"].shape != frame_plane(frame)[0].shape:
                        sums = None  # the first file that decoded is not the one measured
                    self._sums = None
                    self.acc = Accumulator.from_frame(frame, params=self._params, sums=sums)
                    self.acc.reserve(self._n_files)
            self._decided = max(self._decided, seq)
            self._cv.notify_all()
            return self.acc


class _MosaicPool:
    """Mosaic buffers of one series, handed from a folded frame to the next one decoded.

    For RAW files whose visible area is not one block of LibRaw's buffer
    (left or right margins): copying it into memory the process already
    has, rather than into a fresh 48 MB array per 24 MP frame, saves the
    operating system's page mapping (and, with transparent huge pages, its
    compaction stalls).  It holds no more buffers than frames were ever
    decoded at once (about one per worker).
    """

    def __init__(self) -> None:
        self._free: list = []
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            return self._free.pop() if self._free else None

    def give(self, buf, shape: tuple[int, int] | None = None) -> None:
        """Keep ``buf`` for reuse: one taken and not used (``shape`` None), or a folded mosaic of ``shape``.

        Only plain uint16 arrays of the series' size are kept (not views of
        LibRaw's buffer, not developed images).
        """
        if buf is None:
            return
        if shape is None or (buf.shape == shape and buf.dtype == np.uint16 and buf.base is None
                             and buf.flags.c_contiguous):
            with self._lock:
                self._free.append(buf)


def _sums_for(path: Path) -> dict | None:
    """Fresh statistics sized for the RAW file ``path`` (None for images and unreadable files)."""
    shape = reader.visible_shape(path)
    return new_sums(shape) if shape is not None and min(shape) >= 4 else None


def _fold_series(
    paths: Sequence[Path], start: _SeriesStart, workers: int, mosaic: reader.MosaicSpec | None = None
) -> Iterable[tuple[Path, PreparedFrame | InputError]]:
    """Decode, prepare and fold ``paths`` on ``workers`` threads; yield each, in order, ready to commit.

    Each worker takes one file from decoding to folded: while one frame is
    being folded, the next one is decoding, and two frames can fold
    different bands at once, so both cores stay busy.  The compiled kernel
    and LibRaw release the GIL.  At most ``2 * workers`` files are in hand.
    """
    turnstile = _Turnstile(Accumulator.N_BANDS)
    mosaics = _MosaicPool()

    def work(seq: int, path: Path) -> PreparedFrame | InputError:
        frame = prep = None
        buf = mosaics.take()
        try:
            try:
                # LibRaw's own buffer when the visible area is contiguous, else a copy into buf
                frame = reader.read_frame(path, out=buf, share=True, mosaic=mosaic)
            finally:
                acc = start.get(seq, frame)  # every file passes here once, decoded or not
            prep = acc.prepare(frame)
        except InputError as exc:
            return exc
        finally:
            if prep is None:  # not to be folded: pass its turn on every band
                turnstile.run(seq, None)
            if frame is None or frame.mosaic is not buf:  # buf not used: back to the pool
                mosaics.give(buf)
                buf = None
        # the mosaic is the plane the bands fold from; once folded, nothing refers to it
        # (a view of LibRaw's buffer is then freed with it)
        del frame
        turnstile.run(seq, lambda band: acc.fold(prep, band))
        if prep.plane is None:  # every band folded
            mosaics.give(buf, acc.shape)
        return prep

    workers = max(1, workers)
    with ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="rawmap-fold", initializer=_kernels.single_thread
    ) as pool:
        window: list[tuple[Path, Future]] = []
        for seq, p in enumerate(paths):
            window.append((p, pool.submit(work, seq, p)))
            if len(window) >= 2 * workers:
                p0, fut = window.pop(0)
                yield p0, fut.result()
        while window:
            p0, fut = window.pop(0)
            yield p0, fut.result()


def map_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    params: DetectionParams | None = None,
    classify_params: ClassifyParams | None = None,
    states: Mapping[BodyKey, Accumulator] | None = None,
    progress: ProgressFn | None = None,
    workers: int = 2,
    mosaic: reader.MosaicSpec | None = None,
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
    workers : int
        Threads that decode and fold frames (each takes a file from decoding
        to folded, two frames fold different row bands at once).
    mosaic : rawmap.reader.MosaicSpec, optional
        Read grayscale TIFF, PNG and PGM files as raw sensor mosaics of this
        pattern (``rawmap map --cfa``); colour images are then skipped.

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
            key = reader.identify(p, mosaic=mosaic)
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
        first = usable[0] if source is SourceKind.RAW and mosaic is None else None  # LibRaw sizes RAW files only
        start = _SeriesStart(base, params, len(usable), first)
        used: list[Path] = []
        for p, prep in _fold_series(usable, start, workers, mosaic):
            if isinstance(prep, InputError):
                skipped.append(Skipped(p, prep.reason if prep.reason else str(prep)))
            else:
                start.acc.commit(prep)
                used.append(p)
            tick(p)
        acc = start.acc
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
