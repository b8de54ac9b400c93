"""From a pile of photos to one defect map per camera body.

Two passes over the inputs:

1. identify every file from its header (no decoding): body, RAW or image,
   sensor size, and a content key (an XXH3-128 hash of the file's bytes, see
   :func:`content_key`); files that cannot be read are skipped with their
   reason, and so are copies of a file already in the run or already
   counted in stored statistics (:class:`Counted`), and the JPEG twin of a
   RAW file of the same shot (see *Which files are one photo* below);
2. per body, two threads each take a file from decoding (LibRaw releases
   the GIL) to folded into the body's
   :class:`~rawmap.accumulate.Accumulator` (the compiled kernel releases it
   too); the frame is folded in bands of rows, each band taking the frames
   in file order, so two frames fold different bands at once and the sums
   are bit-identical to a serial run.  The main thread closes each frame in
   order (scenes, outliers), then classifies.

Bodies are done one after another, so memory stays at one accumulator
whatever the number of bodies.

Both passes can run elsewhere: an :class:`Engine` (``map_files(engine=...)``)
reads the headers and folds the frames, in contiguous chunks of a series,
on other processes or machines, and hands back what each frame needs to be
committed here in file order (:mod:`rawmap.distributed` runs them on Dask).

Which files are one photo
-------------------------
* **Copies.**  Files are recognised by content, not by name: a copy, a
  renamed file or a moved folder has the same :func:`content_key` and is
  counted once (the first path given wins; the others are skipped as
  :attr:`SkipKind.DUPLICATE`, or :attr:`SkipKind.COUNTED` when stored
  statistics hold it already).
* **RAW+JPEG twins.**  A JPEG beside a RAW file of the same stem (same
  folder, e.g. ``IMG_0001.CR2`` and ``IMG_0001.JPG``), with the same
  capture time when both record one, is the same shot: the map is made
  from the RAW file, the JPEG is skipped (:attr:`SkipKind.TWIN`).

Series
------
A series is one body (make, model, serial), one source kind (RAW or
developed image) and one sensor size: a body shooting in several crop modes
gives one map per size (:attr:`BodyMap.split` marks them, their
:attr:`BodyMap.slug` carries the size), whatever the order of the files.
Photos that record no camera make or model are grouped by source kind and
size alone, and assumed to come from one body (:attr:`MapRun.notes` says
so).
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xxhash

from . import reader
from ._malloc import release_free_memory
from ._memory import available_bytes
from .accumulate import MAX_STATE_META_BYTES, Accumulator, DetectionParams, PreparedFrame, frame_plane, new_sums
from .defectmap import DefectMap
from .detect import MIN_FRAMES, ClassifyParams, build_map
from .errors import InputError, MapFormatError, NothingToMapError, UnsupportedFileError
from .fileio import atomic_write_bytes
from .frame import BodyKey, CameraId, Frame, SourceKind
from .metadata import read_metadata
from .safeio import open_zip, read_json_member

__all__ = [
    "Skipped",
    "SkipKind",
    "BodyMap",
    "MapRun",
    "Checkpoint",
    "Engine",
    "SeriesJob",
    "merge_states",
    "body_of",
    "Counted",
    "collect_inputs",
    "content_key",
    "map_files",
    "save_state",
    "load_state_keys",
    "load_state_outputs",
    "MIN_FRAMES",
]

#: fewest frames a body needs before rawmap decides anything about it

ProgressFn = Callable[[int, int, Path], None]


#: file-name extensions (lower case) of the JPEGs a camera writes beside its RAW files
TWIN_EXTENSIONS = frozenset({"jpg", "jpeg", "jpe"})
#: the member of a state file (:func:`save_state`) that holds the content keys of its photos
STATE_KEYS_MEMBER = "content_keys.json"
STATE_KEYS_FORMAT = "rawmap-content-keys"


class SkipKind(str, Enum):
    """Why a file was not used."""

    UNUSABLE = "unusable"  #: the file itself cannot be used (unreadable, unsupported, ...): see the reason
    TOO_FEW = "too-few"  #: readable, but its body has fewer usable frames than a map needs: see the reason
    DUPLICATE = "duplicate"  #: same content as a file earlier in the same run
    COUNTED = "counted"  #: same file or same content as a photo already in the stored statistics
    TWIN = "twin"  #: the JPEG twin of a RAW file of the same shot in the same run


#: what files skipped for the same reason have in common, for summaries (UNUSABLE: each has its own reason)
SKIP_SUMMARY = {
    SkipKind.DUPLICATE: "same content as a file already counted in this run",
    SkipKind.COUNTED: "already counted in the stored statistics",
    SkipKind.TWIN: "twin of a RAW file in the same run",
}


@dataclass(frozen=True)
class Skipped:
    """A file that was not used, and why (one line)."""

    path: Path
    reason: str
    kind: SkipKind = SkipKind.UNUSABLE
    body: str = ""  #: TOO_FEW: the body (and sensor size where it has several) it belongs to


@dataclass
class BodyMap:
    """The result for one series: its map and the statistics it came from.

    Attributes
    ----------
    camera : CameraId
        ``CameraId("", "")`` for photos that record no make or model.
    source : SourceKind
    defect_map : DefectMap
    accumulator : Accumulator
    files : list of Path
        The new files folded in, in order.
    content : dict
        Content key (:func:`content_key`) of each path in ``files``.
    split : bool
        This body (camera and source) gave frames of several sensor sizes
        in the run, each mapped on its own: the size is part of :attr:`slug`.
    """

    camera: CameraId
    source: SourceKind
    defect_map: DefectMap
    accumulator: Accumulator
    files: list[Path] = field(default_factory=list)
    content: dict[Path, str] = field(default_factory=dict)
    split: bool = False

    @property
    def key(self) -> BodyKey:
        return (self.camera, self.source)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the series' frames."""
        return self.accumulator.shape

    @property
    def slug(self) -> str:
        """A file-system safe name: ``<camera slug>[-image][-<H>x<W>]`` (the size for split series)."""
        return map_slug(self.camera, self.source, self.shape, split=self.split)


def map_slug(camera: CameraId, source: SourceKind, shape: tuple[int, int], *, split: bool = False) -> str:
    """The file-system safe name of a body's map: ``<camera slug>[-image][-<H>x<W>]``.

    ``split``: the body has maps of several sensor sizes, so the size is part of the name.
    """
    H, W = shape
    return camera.slug + ("-image" if source is SourceKind.IMAGE else "") + (f"-{H}x{W}" if split else "")


@dataclass(frozen=True)
class Checkpoint:
    """A body's statistics part-way through a run (see :func:`map_files` ``checkpoint``).

    Attributes
    ----------
    camera : CameraId
    source : SourceKind
    accumulator : Accumulator
        The running statistics (not a copy: save them, do not keep them).
    files : list of Path
        The files of this run folded in so far, in order.
    content : dict of Path to str
        Their content keys.
    """

    camera: CameraId
    source: SourceKind
    accumulator: Accumulator
    files: list[Path]
    content: dict[Path, str]


@dataclass(frozen=True)
class SeriesJob:
    """One series :func:`map_files` will fold, as it tells an :class:`Engine` ahead of time.

    Attributes
    ----------
    paths : list of Path
        Its files, in the order they are committed.
    base : Accumulator or None
        Stored statistics the series continues (their description is the series').
    params : DetectionParams or None
    mosaic : rawmap.reader.MosaicSpec or None
    """

    paths: list[Path]
    base: Accumulator | None
    params: DetectionParams | None
    mosaic: reader.MosaicSpec | None


class Engine(Protocol):
    """Where :func:`map_files` reads headers and folds frames, when not on its own threads.

    :func:`map_files` calls :meth:`read_headers` once, then :meth:`plan`
    with every series it will fold (so an engine can start them all), then
    :meth:`fold_series` for each of them in plan order.  Whatever the engine
    does, the caller commits the frames (views, outliers, frame records) one
    by one in file order, so the views are those of a local run.
    """

    def read_headers(
        self, files: Sequence[Path], counted_paths: set[Path], mosaic: reader.MosaicSpec | None, legacy: bool
    ) -> list[_Header | InputError]:
        """What :func:`_read_header` gives for each of ``files``, in order."""
        ...

    def plan(self, jobs: Sequence[SeriesJob]) -> None:
        """Every series to be folded, in the order :meth:`fold_series` will be asked for them."""
        ...

    def fold_series(
        self, index: int, start: _SeriesStart, pause_every: int
    ) -> Iterable[tuple[Path | None, PreparedFrame | InputError | None]]:
        """Fold series ``jobs[index]``: the contract of :func:`_fold_series`.

        Sets ``start.acc`` (when it is None) before yielding a prepared frame;
        every frame yielded is already folded into ``start.acc``'s sums and
        waits to be committed; ``(None, None)`` marks a point where the sums
        hold exactly the frames yielded so far.
        """
        ...


@dataclass
class MapRun:
    """Everything a ``rawmap map`` run produced.

    Attributes
    ----------
    maps : list of BodyMap
    skipped : list of Skipped
    notes : list of str
        Warnings about how files were grouped (photos without camera
        identity assumed to be one body, a body mapped per sensor size), one
        line each.
    """

    maps: list[BodyMap]
    skipped: list[Skipped]
    notes: list[str] = field(default_factory=list)

    @property
    def frames_used(self) -> int:
        return sum(len(b.files) for b in self.maps)


@dataclass
class Counted:
    """Photos already folded into stored statistics, to be left out of a run.

    Attributes
    ----------
    keys : dict
        Content key (:func:`content_key`) -> the path the photo was counted
        from.  Recognises copies, renamed files and moved folders.
    paths : set of Path
        Resolved paths of counted photos: the fallback for photos recorded
        before content keys were (they are not re-hashed either).
    """

    keys: dict[str, str] = field(default_factory=dict)
    paths: set[Path] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.keys or self.paths)


def content_key(path: str | os.PathLike[str]) -> str:
    """What identifies a photo whatever its name: a hash of the file's bytes.

    XXH3 (128 bits) over the whole file, with its size:
    ``"x3:<size>:<32 hex digits>"``.  Hashing the bytes needs no decoding,
    so copies are found in the header pass, before anything is decoded (a
    hash of the decoded pixels would cost a decode per file first).  XXH3
    (the ``xxhash`` package) rather than a cryptographic hash: it hashes at
    about 10 GB/s on this project's machine against 1.4 GB/s for SHA-256
    (with the CPU's SHA instructions) and 0.7 GB/s for BLAKE2b, 5 ms instead
    of 34 ms for a 48 MB 24 MP RAW file, a quarter of a decode's CPU time
    saved per photo.  What a cryptographic hash adds, resistance to files
    made on purpose to collide, guards nothing here: two different photos
    collide by chance with odds of about 2**-128.  Keys made before
    2026-12-01 (``"s256:..."``, the first 128 bits of SHA-256) stay valid in
    libraries and state files: while stored statistics hold any, the header
    pass computes both hashes in the same read (:func:`_file_keys`).  The
    price of hashing bytes: a photo whose metadata was rewritten in place (a
    tagging tool writing into the RAW file) gets another key, and is then
    recognised by its path only.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str

    Raises
    ------
    OSError
        The file cannot be read.
    """
    return _file_keys(path, legacy=False)[0]


_LEGACY_KEY = "s256:"  #: content keys made before 2026-12-01 begin so


def _file_keys(path: str | os.PathLike[str], legacy: bool) -> tuple[str, str]:
    """:func:`content_key` of ``path`` and, with ``legacy``, its SHA-256 key of before (else ``""``), in one read."""
    h = xxhash.xxh3_128()
    old = hashlib.sha256() if legacy else None
    size = 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            if old is not None:
                old.update(view[:n])
            size += n
    return f"x3:{size}:{h.hexdigest()}", (f"{_LEGACY_KEY}{size}:{old.hexdigest()[:32]}" if old is not None else "")


def save_state(
    path: str | os.PathLike[str],
    acc: Accumulator,
    keys: Mapping[str, str],
    *,
    overwrite: bool = False,
    outputs: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write ``acc`` as a state file (:meth:`Accumulator.save`) that also records its photos' content keys.

    The keys go into one more member of the archive
    (:data:`STATE_KEYS_MEMBER`), which :meth:`Accumulator.load` ignores, so
    the file stays a plain state file for every reader.

    Parameters
    ----------
    path : path-like
    acc : Accumulator
    keys : mapping
        Content key -> path of each photo counted in ``acc`` (those known).
    overwrite : bool
        Replace an existing file (atomically).
    outputs : mapping, optional
        Map file (absolute path) -> SHA-256 hex digests of the maps written
        there from this state (see :func:`load_state_outputs`).
    """
    buf = io.BytesIO(acc.to_bytes())
    meta: dict[str, Any] = {"format": STATE_KEYS_FORMAT, "version": 1, "keys": dict(keys)}
    if outputs:
        meta["outputs"] = {str(k): [str(h) for h in v] for k, v in outputs.items()}
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(STATE_KEYS_MEMBER, json.dumps(meta))
    return atomic_write_bytes(Path(path), buf.getvalue(), overwrite=overwrite)


def _keys_member(path: str | os.PathLike[str]) -> Any:
    """The parsed :data:`STATE_KEYS_MEMBER` of a state file (bounded, strict JSON), or None when it has none.

    Raises
    ------
    MapFormatError
        The file is missing or not a readable archive.
    """
    try:
        with open_zip(Path(path)) as zf:
            if STATE_KEYS_MEMBER not in zf.namelist():
                return None
            return read_json_member(
                zf, STATE_KEYS_MEMBER, source=str(path), what="rawmap state file", limit=MAX_STATE_META_BYTES
            )
    except FileNotFoundError:
        raise MapFormatError(f"{path}: no such state file") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        RuntimeError,
        NotImplementedError,
        OSError,
        ValueError,
    ) as exc:
        raise MapFormatError(f"{path}: not a rawmap state file ({' '.join(str(exc).split())[:160]})") from None


def load_state_outputs(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The map files written from a state (:func:`save_state` ``outputs``): path -> SHA-256 digests; ``{}`` if none.

    ``rawmap map --state S -o M`` records the map it writes, so that the
    next continuation of ``S`` may replace ``M`` again, and only while ``M``
    is still that map.

    Raises
    ------
    MapFormatError
        The file is not a readable archive.
    """
    data = _keys_member(path)
    if data is None:
        return {}
    outputs = data.get("outputs") if isinstance(data, dict) else None
    if not isinstance(outputs, dict):
        return {}
    return {str(k): [str(h) for h in v if isinstance(h, str)] for k, v in outputs.items() if isinstance(v, list)}


def load_state_keys(path: str | os.PathLike[str]) -> dict[str, str]:
    """The content keys recorded by :func:`save_state` (content key -> path); ``{}`` for older state files.

    The member is read like the state's metadata (:meth:`Accumulator.load`):
    at most :data:`rawmap.accumulate.MAX_STATE_META_BYTES`, strict JSON,
    every key and path a string.

    Raises
    ------
    MapFormatError
        The file is not a readable archive, or its key list is too large
        or damaged.
    """
    data = _keys_member(path)
    if data is None:
        return {}
    keys = data.get("keys") if isinstance(data, dict) and data.get("format") == STATE_KEYS_FORMAT else None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise MapFormatError(f"{path}: damaged list of content keys in the state file; map the photos again")
    return dict(keys)


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
                skipped.append(Skipped(p, "folder holds no RAW, image or FITS files"))
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
    gives the first file's size, while the first frames decode.  That is
    only a head start: the header's size is checked (:func:`_sums_for`),
    the sums are used only if the first frame that decodes has that size,
    and if allocating them failed they are made again from the frame.

    Every file passes :meth:`get` once, decoded or not, and its turn is
    given on whatever happens, so a failure on one file (a frame too large
    for the memory, say) never leaves the next one waiting: the frame is
    skipped with its reason and the next decoded frame tries again.
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
        """The accumulator for file ``seq`` (``frame`` None: that file failed to decode).

        Raises
        ------
        UnsupportedFileError
            ``frame`` is the first to decode and its statistics do not fit
            in memory; file ``seq`` still counts as decided.
        """
        with self._cv:
            try:
                if self.acc is None:
                    while self.acc is None and self._decided < seq - 1:
                        self._cv.wait()
                    if self.acc is None and frame is not None:
                        acc = Accumulator.from_frame(frame, params=self._params, sums=self._presized(frame))
                        acc.reserve(self._n_files)
                        self.acc = acc
            finally:  # decided whatever happened, or the files after it would wait for ever
                self._decided = max(self._decided, seq)
                self._cv.notify_all()
            return self.acc

    def _presized(self, frame: Frame) -> dict | None:
        """The sums allocated ahead of time, if they fit ``frame`` (once: later calls give None)."""
        pending, self._sums = self._sums, None
        if pending is None:
            return None
        try:
            sums = pending.result()
        except Exception:  # a head start only: the sums are made again (and checked) from the frame
            return None
        if sums is not None and sums["s_v"].shape != frame_plane(frame)[0].shape:
            return None  # the first file that decoded is not the one measured
        return sums


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
        if shape is None or (
            buf.shape == shape and buf.dtype == np.uint16 and buf.base is None and buf.flags.c_contiguous
        ):
            with self._lock:
                self._free.append(buf)


def _sums_for(path: Path) -> dict | None:
    """Fresh statistics sized for the RAW file ``path`` from its header.

    None for images, unreadable files, sizes no sensor has (see
    :func:`rawmap.reader.visible_shape`) and sums that would not fit in
    the memory available: those are left to :meth:`Accumulator.from_frame`,
    which checks the decoded frame.
    """
    shape = reader.visible_shape(path)
    if shape is None or min(shape) < 4:
        return None
    free = available_bytes()
    if free is not None and shape[0] * shape[1] * Accumulator.BYTES_PER_PHOTOSITE > free:
        return None
    return new_sums(shape)


def _fold_series(
    paths: Sequence[Path],
    start: _SeriesStart,
    workers: int,
    mosaic: reader.MosaicSpec | None = None,
    pause_every: int = 0,
) -> Iterable[tuple[Path | None, PreparedFrame | InputError | None]]:
    """Decode, prepare and fold ``paths`` on ``workers`` threads; yield each, in order, ready to commit.

    Each worker takes one file from decoding to folded: while one frame is
    being folded, the next one is decoding, and two frames can fold
    different bands at once, so both cores stay busy.  The compiled kernel
    and LibRaw release the GIL.  At most ``2 * workers`` files are in hand.

    With ``pause_every``, after every that many files the pipeline drains
    and ``(None, None)`` is yielded: when the caller gets it, every frame
    yielded before is committed and no other frame has touched the sums,
    so the statistics can be saved as they are (a checkpoint).
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
            assert acc is not None and frame is not None  # start.get returns the series' state for a decoded frame
            prep = acc.prepare(frame)
        except InputError as exc:
            return exc
        except MemoryError:  # decoding or measuring it: this file is skipped, the others go on
            return UnsupportedFileError(
                path,
                "is too large to decode and measure in the memory available",
                "close other programs, or map fewer files at once",
            )
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
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rawmap-fold") as pool:
        window: list[tuple[Path, Future]] = []
        for seq, p in enumerate(paths):
            window.append((p, pool.submit(work, seq, p)))
            if len(window) >= 2 * workers:
                p0, fut = window.pop(0)
                yield p0, fut.result()
            if pause_every and (seq + 1) % pause_every == 0 and seq + 1 < len(paths):
                while window:
                    p0, fut = window.pop(0)
                    yield p0, fut.result()
                yield None, None
        while window:
            p0, fut = window.pop(0)
            yield p0, fut.result()


@dataclass
class _Header:
    """What pass 1 learns of one file without decoding it."""

    camera: CameraId
    source: SourceKind
    shape: tuple[int, int]
    content: str  #: content key, "" when the path alone showed it was counted
    legacy: str = ""  #: its key of before 2026-12-01, computed only while stored statistics hold such keys


def body_of(
    path: str | os.PathLike[str], mosaic: reader.MosaicSpec | None = None
) -> tuple[CameraId, SourceKind, tuple[int, int]]:
    """The body (camera, source) and visible size of a photo, from its header where that tells the size.

    LibRaw sizes a RAW file from its header pass, without decoding; images,
    mosaics in image files and RAW files LibRaw does not size are read
    (:func:`rawmap.reader.read_info`).

    Raises
    ------
    InputError
        As :func:`rawmap.reader.identify` and :func:`rawmap.reader.read_info`.
    """
    p = Path(path)
    camera, source = reader.identify(p, mosaic=mosaic)
    shape = reader.visible_shape(p) if source is SourceKind.RAW else None
    if shape is None:  # an image or mosaic file (header only), or a RAW file LibRaw does not open
        h, w = reader.read_info(p, mosaic=mosaic).shape[:2]
        shape = (h, w)
    return camera, source, shape


def _read_header(
    p: Path, counted_paths: set[Path], mosaic: reader.MosaicSpec | None = None, legacy: bool = False
) -> _Header | InputError:
    """Identify ``p`` (body, source, size) and hash it; an :class:`InputError` when it cannot be used.

    ``legacy``: also compute the key of before 2026-12-01 (see :func:`content_key`).
    """
    try:
        camera, source, shape = body_of(p, mosaic)
        if p.resolve() in counted_paths:
            return _Header(camera, source, shape, "")
        key, old = _file_keys(p, legacy)
    except InputError as exc:
        return exc
    except OSError as exc:
        return InputError(p, f"cannot be read ({exc.strerror or exc})", "check the file's permissions")
    return _Header(camera, source, shape, key, old)


def _unusable(p: Path, mosaic: reader.MosaicSpec | None) -> str:
    """Why ``p`` cannot be used at all, found by decoding it (``""``: it can be)."""
    try:
        reader.read_info(p, mosaic=mosaic)
    except InputError as exc:
        return exc.reason if exc.reason else str(exc)
    except MemoryError:
        return "is too large to decode in the memory available"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return ""


def _capture_time(p: Path):
    try:
        return read_metadata(p).time
    except OSError:
        return None


def _twins(accepted: Sequence[Path], raws: Sequence[Path], headers: Mapping[Path, _Header]) -> dict[Path, Path]:
    """JPEG -> the RAW file of the same shot: same folder, same stem, same capture time when both have one."""
    by_stem: dict[tuple[Path, str], Path] = {}
    for r in raws:
        by_stem.setdefault((r.resolve().parent, r.stem.lower()), r)
    out: dict[Path, Path] = {}
    for p in accepted:
        if headers[p].source is not SourceKind.IMAGE or p.suffix[1:].lower() not in TWIN_EXTENSIONS:
            continue
        raw = by_stem.get((p.resolve().parent, p.stem.lower()))
        if raw is None:
            continue
        t_jpeg, t_raw = _capture_time(p), _capture_time(raw)
        if t_jpeg is not None and t_raw is not None and t_jpeg.replace(microsecond=0) != t_raw.replace(microsecond=0):
            continue
        out[p] = raw
    return out


def _size(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _stored_state(
    states: Mapping | None, camera: CameraId, source: SourceKind, shape: tuple[int, int]
) -> Accumulator | None:
    """The stored statistics of this series: looked up by (camera, source, shape), then (camera, source).

    A state of another sensor size belongs to another series and is not used.
    """
    if not states:
        return None
    try:
        acc = states[(camera, source, shape)]
    except KeyError:
        acc = states.get((camera, source))
    if acc is not None and tuple(acc.shape) != tuple(shape):
        return None
    return acc


def map_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    params: DetectionParams | None = None,
    classify_params: ClassifyParams | None = None,
    states: Mapping | None = None,
    counted: Counted | None = None,
    progress: ProgressFn | None = None,
    workers: int = 2,
    mosaic: reader.MosaicSpec | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 50,
    engine: Engine | None = None,
) -> MapRun:
    """Build one defect map per camera body (and sensor size) from ``paths``.

    Parameters
    ----------
    paths : sequence of path-like
        Photo files (see :func:`collect_inputs` to expand folders).
    params : DetectionParams, optional
        Per-frame outlier test.
    classify_params : ClassifyParams, optional
        Final thresholds.
    states : mapping, optional
        Stored statistics to continue, keyed by ``(camera, source, (H, W))``
        or ``(camera, source)``: new frames are added to them (nothing old
        is re-read).  A state of another size than a series is not used.
    counted : Counted, optional
        Photos already in ``states``: files with one of these paths or
        content keys are skipped (:attr:`SkipKind.COUNTED`).
    progress : callable, optional
        Called as ``progress(done, total, path)`` after each file.
    workers : int
        Threads that identify and hash files, then decode and fold frames
        (each takes a file from decoding to folded, two frames fold
        different row bands at once).
    mosaic : rawmap.reader.MosaicSpec, optional
        Read grayscale TIFF, PNG and PGM files as raw sensor mosaics of this
        pattern (``rawmap map --cfa``); colour images are then skipped.
    checkpoint : callable, optional
        Called with a :class:`Checkpoint` after every ``checkpoint_every``
        files of a body's series (not after its last: the run's result is
        that), at a point where the statistics hold exactly the frames
        listed, so the caller can save them (``rawmap map --state`` does):
        a run killed later and started again reads only the photos not yet
        saved.
    checkpoint_every : int
        Files between checkpoints (with an ``engine``, taken at the next
        boundary of its chunks).
    engine : Engine, optional
        Read the headers and fold the frames there instead of on ``workers``
        threads (e.g. :class:`rawmap.distributed.DaskEngine`); the map is
        the one a local run makes.

    Returns
    -------
    MapRun
        Within one run a file is used at most once by content; the JPEG
        twin of a RAW file is not used (see the module docstring).

    Raises
    ------
    NothingToMapError
        When no body is left with enough usable frames.
    """
    files = [Path(p) for p in paths]
    total = len(files)
    done = 0
    skipped: list[Skipped] = []
    counted = counted or Counted()

    def tick(p: Path) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, p)

    # pass 1: identify and hash, no decoding (LibRaw's header pass releases the GIL; XXH3 takes 5 ms of a 48 MB file)
    legacy = any(k.startswith(_LEGACY_KEY) for k in counted.keys)  # statistics stored before 2026-12-01
    if engine is not None:
        read = engine.read_headers(files, counted.paths, mosaic, legacy)
    else:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rawmap-header") as pool:
            read = list(pool.map(lambda p: _read_header(p, counted.paths, mosaic, legacy), files))
    headers: dict[Path, _Header] = {}
    accepted: list[Path] = []
    raws: list[Path] = []
    first_of: dict[str, Path] = {}
    for p, h in zip(files, read):
        if isinstance(h, InputError):
            skipped.append(Skipped(p, h.reason if h.reason else str(h)))
            tick(p)
            continue
        headers[p] = h
        if h.source is SourceKind.RAW:
            raws.append(p)  # counted and duplicate RAW files still have twins
        known = next((k for k in (h.content, h.legacy) if k and k in counted.keys), "")
        if not h.content:
            skipped.append(Skipped(p, "already counted in the stored statistics", SkipKind.COUNTED))
        elif known:
            skipped.append(
                Skipped(
                    p,
                    f"same content as {counted.keys[known]}, already counted in the stored statistics",
                    SkipKind.COUNTED,
                )
            )
        elif h.content in first_of:
            skipped.append(Skipped(p, f"duplicate of {first_of[h.content]}", SkipKind.DUPLICATE))
        else:
            first_of[h.content] = p
            accepted.append(p)
            continue
        tick(p)
    twins = _twins(accepted, raws, headers)
    for p in twins:
        skipped.append(Skipped(p, f"twin of {twins[p]}", SkipKind.TWIN))
        tick(p)

    groups: dict[tuple[CameraId, SourceKind, tuple[int, int]], list[Path]] = {}
    for p in accepted:
        if p not in twins:
            h = headers[p]
            groups.setdefault((h.camera, h.source, h.shape), []).append(p)
    sizes = Counter((camera, source) for camera, source, _ in groups)

    def stored(gkey: tuple[CameraId, SourceKind, tuple[int, int]]) -> int:
        base = _stored_state(states, *gkey)
        return base.n_frames if base is not None else 0

    # a series too small to map: each file's own reason comes first (a linear DNG, a codec LibRaw
    # lacks, a damaged file), which only decoding tells
    too_few = [p for g, members in groups.items() if stored(g) + len(members) < MIN_FRAMES for p in members]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rawmap-check") as pool:
        own_reason = dict(zip(too_few, pool.map(lambda p: _unusable(p, mosaic), too_few)))

    maps: list[BodyMap] = []
    notes: list[str] = []
    # the same series in the same order whatever the order of the arguments: by body, RAW first,
    # the largest size (the full sensor, before its crop modes) first
    order = sorted(groups, key=lambda k: (k[0], k[1] is not SourceKind.RAW, -k[2][0] * k[2][1], k[2]))
    job_of: dict[tuple[CameraId, SourceKind, tuple[int, int]], int] = {}
    if engine is not None:
        jobs: list[SeriesJob] = []
        for gkey in order:
            if stored(gkey) + len(groups[gkey]) >= MIN_FRAMES:
                job_of[gkey] = len(jobs)
                jobs.append(SeriesJob(list(groups[gkey]), _stored_state(states, *gkey), params, mosaic))
        engine.plan(jobs)
    for gkey in order:
        camera, source, shape = gkey
        members = groups[gkey]
        several = sizes[(camera, source)] > 1
        name = (camera.label or "an unknown camera") + (f" ({_size(shape)})" if several or not camera.label else "")
        base = _stored_state(states, camera, source, shape)
        usable = list(members)
        have = (base.n_frames if base is not None else 0) + len(usable)
        if have < MIN_FRAMES:
            readable = [p for p in usable if not own_reason.get(p)]
            for p in usable:
                if own_reason.get(p):
                    skipped.append(Skipped(p, own_reason[p]))
                else:
                    why = f"only {len(readable)} frame(s) of {name}; at least {MIN_FRAMES} are needed"
                    skipped.append(Skipped(p, why, SkipKind.TOO_FEW, body=name))
                tick(p)
            continue
        # LibRaw sizes RAW files only; an engine makes the sums from what its workers measured
        first = usable[0] if source is SourceKind.RAW and mosaic is None and engine is None else None
        start = _SeriesStart(base, params, len(usable), first)
        used: list[Path] = []
        pause = checkpoint_every if checkpoint is not None else 0
        folding = (
            engine.fold_series(job_of[gkey], start, pause)
            if engine is not None
            else _fold_series(usable, start, workers, mosaic, pause)
        )
        for got, prep in folding:
            if got is None:  # a checkpoint: every frame yielded so far is committed, no other one folded
                if checkpoint is not None and start.acc is not None and used:
                    checkpoint(Checkpoint(camera, source, start.acc, list(used), {q: headers[q].content for q in used}))
                continue
            p = got
            assert prep is not None
            if isinstance(prep, InputError):
                skipped.append(Skipped(p, prep.reason if prep.reason else str(prep)))
            else:
                assert start.acc is not None  # a folded frame has a series
                start.acc.commit(prep)
                used.append(p)
            tick(p)
        acc = start.acc
        if acc is None or acc.n_frames < MIN_FRAMES:
            for p in used:
                skipped.append(
                    Skipped(
                        p,
                        f"only {len(used)} usable frame(s) of {name}; at least {MIN_FRAMES} are needed",
                        SkipKind.TOO_FEW,
                        body=name,
                    )
                )
            continue
        member_set = set(members)
        n_skipped_here = sum(1 for s in skipped if s.path in member_set)
        release_free_memory()  # the decode buffers, freed: classification's arrays not on top of them
        dmap = build_map(acc, classify_params, skipped=n_skipped_here)
        maps.append(BodyMap(camera, source, dmap, acc, used, {p: headers[p].content for p in used}))

    made = Counter(b.key for b in maps)
    for b in maps:
        b.split = made[b.key] > 1
    for key in sorted(made, key=lambda k: (k[0], k[1] is not SourceKind.RAW)):
        camera, source = key
        kind = "RAW" if source is SourceKind.RAW else "image"
        these = [b for b in maps if b.key == key]
        if not (camera.make or camera.model):
            for b in these:
                notes.append(
                    f"warning: {b.accumulator.n_frames} {kind} frame(s) of {_size(b.shape)} record no camera make "
                    "or model: they are assumed to come from one body (map photos of other cameras separately)"
                )
        if len(these) > 1:
            notes.append(
                f"{camera.label or 'an unknown camera'} ({kind}) has frames of {len(these)} sensor sizes "
                f"({', '.join(_size(b.shape) for b in these)}): each size is mapped on its own"
            )

    if not maps:
        raise NothingToMapError(
            f"no usable frames to map from {total} file(s)"
            + (f": {common}" if (common := _why_nothing(skipped)) else "")
            + f" — rawmap needs at least {MIN_FRAMES} RAW or image frames of the same body",
            skipped=skipped,
        )
    return MapRun(maps=maps, skipped=skipped, notes=notes)


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def _why_nothing(skipped: Sequence[Skipped]) -> str:
    """One line of why no map was made: the three most common reasons with their files, and the rest counted.

    Bodies with too few frames are one reason, naming the bodies, when there
    are several (a folder of one photo from each of several cameras).

    Examples
    --------
    >>> a, b = Path("a.nef"), Path("b.crw")
    >>> _why_nothing([Skipped(a, "only 1 frame(s) of Nikon D1; at least 3 are needed", SkipKind.TOO_FEW, "Nikon D1"),
    ...               Skipped(b, "only 1 frame(s) of Canon EOS D30; at least 3 are needed", SkipKind.TOO_FEW,
    ...                       "Canon EOS D30")])
    'fewer than 3 frames of each of 2 bodies: Nikon D1 (1), Canon EOS D30 (1)'
    """
    few: dict[str, int] = {}
    for s in skipped:
        if s.kind is SkipKind.TOO_FEW:
            few[s.body] = few.get(s.body, 0) + 1
    reasons = Counter(
        SKIP_SUMMARY.get(s.kind, s.reason) for s in skipped if s.kind is not SkipKind.TOO_FEW or len(few) < 2
    )
    items = [(f"{r} ({_files(n)})", n) for r, n in reasons.items()]
    if len(few) >= 2:
        named = ", ".join(f"{body} ({n})" for body, n in list(few.items())[:3])
        more = f" and {len(few) - 3} more" if len(few) > 3 else ""
        items.append((f"fewer than {MIN_FRAMES} frames of each of {len(few)} bodies: {named}{more}", sum(few.values())))
    items.sort(key=lambda it: -it[1])  # stable: among equals, the order the files came in
    top = items[:3]
    line = "; ".join(text for text, _ in top)
    rest = sum(n for _, n in items[3:])
    if rest:  # one line: the three most common reasons, and how many files the others hold
        others = len(items) - len(top)
        line += f"; {_files(rest)} more for {others} other reason{'s' if others > 1 else ''}"
    return line


def merge_states(paths: Sequence[str | os.PathLike[str]]) -> tuple[Accumulator, dict[str, str]]:
    """Merge the statistics of several runs (``--state`` files, possibly from several machines) into one.

    The merged statistics are exactly those of one run over all their
    photos (the integer sums are exact; the float ones equal up to rounding),
    so a map classified from them is the map of one run.  Each state's open
    views are closed first: a view shot across two runs counts twice, once
    per run.

    Parameters
    ----------
    paths : sequence of path-like
        Two or more state files of one body and sensor size.

    Returns
    -------
    acc : Accumulator
    keys : dict
        Content key -> path of every photo the states recorded.

    Raises
    ------
    MapFormatError
        A file is not a readable state.
    FrameMismatchError
        The states are of different bodies, sizes or CFA patterns.
    InputError
        Two states counted the same photo (the same content key): merging
        would count it twice.
    """
    if len(paths) < 2:
        raise ValueError("merge needs two state files or more")
    acc: Accumulator | None = None
    keys: dict[str, str] = {}
    owner: dict[str, Path] = {}
    for p in map(Path, paths):
        part = Accumulator.load(p)
        part_keys = load_state_keys(p)
        for k, photo in part_keys.items():
            if k in owner:
                raise InputError(
                    p,
                    f"counts {photo} (the same content as a photo {owner[k]} counts)",
                    "merge states of different photos only; map the photos again with one --state",
                )
            owner[k] = p
        keys.update(part_keys)
        acc = part if acc is None else acc.merge(part)
    assert acc is not None
    return acc, keys
