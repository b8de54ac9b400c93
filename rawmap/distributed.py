"""Map on Dask workers: ``rawmap map --dask SCHEDULER`` for fleets of bodies and tens of thousands of frames.

:class:`DaskEngine` is an :class:`rawmap.mapping.Engine`:
:func:`rawmap.mapping.map_files` stays the one mapping run (grouping by
body, copies, twins, skipped files, classification) and the engine does its
two heavy passes on the workers:

1. the headers and content keys of the files, in batches;
2. the frames of each series, in contiguous chunks of at most
   ``chunk_frames`` files, in the order a local run takes them.  Each chunk
   is two tasks.  :func:`prepare_chunk` decodes and measures its files
   (:meth:`~rawmap.accumulate.Accumulator.prepare`): the chunks of every
   series do this at once, on every worker.  :func:`fold_chunk` then folds
   them (:meth:`~rawmap.accumulate.Accumulator.fold`) into the series' sums
   as the previous chunk's fold left them, and returns those sums with
   every frame's prepared record (outliers, line candidates, thumbnail,
   noise model; no pixels): a :class:`ChunkResult`.  The folds of one
   series run one after the other (a fold is a fraction of a decode); the
   folds of different series, and every decode, in parallel.

On the client, chunk after chunk in file order, the series' sums become the
ones the chunk's fold returned, and every frame of the chunk is committed in
file order (:meth:`~rawmap.accumulate.Accumulator.commit`): which view it
joins, the outliers each view confirms, the frame records.

Exactness
---------
Every photosite's sums see the frames in the order of a local run, from the
same start (the stored statistics, or zeros), through the same compiled
kernel; the views are committed by the same code in the same order.  So
the statistics are those of a local run, bit for bit, the float sums
(``s_xr``, ``s_zz``) too, and the map is the same map (only its ``created``
time differs).  Workers should run the same rawmap, numpy and numba
versions on the same kind of CPU as each other (a kernel compiled for
other vector instructions may round its float sums differently).

Why neither the views nor the float sums are merged like ``rawmap merge``:
:meth:`~rawmap.accumulate.Accumulator.merge` closes each state's open views
and numbers the other's scenes after its own, right for separate runs, but
a view whose frames fall into two chunks would count twice, and a frame
showing a view of an earlier chunk would start a scene of its own instead
of joining it; and float32 sums added chunk by chunk round differently from
frame by frame (about one unit in the last place: the dark-current values
of a map then differ in their last digit).

Lost workers and retried tasks
------------------------------
A task writes nothing anywhere: it returns its result, a function of its
inputs only.  When a worker is lost, Dask runs its tasks again elsewhere
(from their inputs, recomputed if they were on the lost worker).  The
client takes each chunk's result once, in chunk order: the series' sums
*become* that result's (they are not added to), and its frames are
committed once.  A task run twice (a retry, a task whose worker died after
finishing it) therefore gives the same result and is counted once, and
nothing a lost task had folded reaches the statistics.

Shared paths
------------
Workers open the photos by the paths the client gives (``rawmap map`` gives
absolute, resolved paths): every worker must see the files at the same path
(a network share mounted at the same place on every machine).  A file a
worker cannot read is skipped with its reason, as in a local run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import reader
from .accumulate import Accumulator, DetectionParams, PreparedFrame, frame_plane
from .errors import EngineError, InputError, MissingExtraError, RawmapError, UnsupportedFileError, one_line
from .frame import CameraId, Frame, SourceKind
from .mapping import SeriesJob, _Header, _read_header, _SeriesStart

__all__ = [
    "INSTALL_HINT",
    "DEFAULT_CHUNK_FRAMES",
    "ChunkResult",
    "DaskEngine",
    "SeriesDescription",
    "PreparedChunk",
    "prepare_chunk",
    "describe_series",
    "dask_engine",
    "fold_chunk",
    "parse_address",
    "require_distributed",
]

#: how to install what ``--dask`` needs
INSTALL_HINT = "pip install 'rawmap[dask]'"
#: most files of a series per chunk (a decode task and a fold task); a worker holds about two chunks' frames
DEFAULT_CHUNK_FRAMES = 16
#: files whose headers one task reads
HEADER_BATCH = 64
#: the arrays a frame's fold writes (a commit writes the others, on the client)
FOLDED = ("n_invalid", "s_v", "s_r", "vmin", "vmax", "s_xr", "s_xi", "s_xxi", "s_zz")


def require_distributed() -> Any:
    """The ``distributed`` package, or a :class:`MissingExtraError` saying how to install it.

    Raises
    ------
    MissingExtraError
        ``dask[distributed]`` is not installed.
    """
    try:
        import distributed
    except ImportError:
        raise MissingExtraError(
            f"mapping on Dask needs dask.distributed, which is not installed: {INSTALL_HINT}"
        ) from None
    return distributed


def parse_address(text: str) -> int | None:
    """The worker count of ``local:N`` (a :class:`distributed.LocalCluster` of N processes), else None.

    Anything else is a scheduler address (``tcp://host:8786``, ``host:8786``).

    Raises
    ------
    ValueError
        ``local:`` followed by anything but a whole number from 1.

    Examples
    --------
    >>> parse_address("local:2"), parse_address("tcp://10.0.0.5:8786")
    (2, None)
    """
    text = text.strip()
    if not text:
        raise ValueError("give a scheduler address (tcp://host:8786) or local:N")
    if text.lower().startswith("local"):
        n = text[len("local") :].lstrip(":")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"{text!r}: local:N wants a number of worker processes from 1, e.g. local:4")
        return int(n)
    return None


@dataclass(frozen=True)
class SeriesDescription:
    """What every frame of a series is measured against: the fixed part of an :class:`Accumulator`.

    Taken from the series' first file that decodes (as a local run does) or
    from the stored statistics it continues; each chunk's partial sums are
    made from it, so all of them add up.
    """

    shape: tuple[int, int]
    cfa: np.ndarray | None
    black: np.ndarray
    white: int
    camera: CameraId
    source: SourceKind
    margins: tuple[int, int]
    full_shape: tuple[int, int]
    params: DetectionParams

    @classmethod
    def of_accumulator(cls, acc: Accumulator) -> SeriesDescription:
        return cls(
            acc.shape, acc.cfa, acc.black, acc.white, acc.camera, acc.source, acc.margins, acc.full_shape, acc.params
        )

    @classmethod
    def of_frame(cls, frame: Frame, params: DetectionParams | None) -> SeriesDescription:
        """What :meth:`Accumulator.from_frame` would make of ``frame`` (its own reading, on sums of no memory)."""
        shape = frame_plane(frame)[0].shape
        empty = {name: np.broadcast_to(np.zeros((), np.uint8), shape) for name in Accumulator._ARRAYS}
        return cls.of_accumulator(Accumulator.from_frame(frame, params=params, sums=empty))

    def new_accumulator(self, sums: dict[str, np.ndarray] | None = None) -> Accumulator:
        """Empty statistics of this series (allocates the sums, unless given).

        Raises
        ------
        MemoryError
            As :class:`Accumulator`.
        """
        return Accumulator(
            self.shape,
            cfa=self.cfa,
            black=self.black,
            white=self.white,
            camera=self.camera,
            source=self.source,
            margins=self.margins,
            full_shape=self.full_shape,
            params=self.params,
            sums=sums,
        )

    def same_as(self, other: SeriesDescription) -> bool:
        """Both describe the series alike (sums made from the one add up with the other's)."""
        return (
            self.shape == other.shape
            and ((self.cfa is None) == (other.cfa is None))
            and (self.cfa is None or other.cfa is None or bool(np.array_equal(self.cfa, other.cfa)))
            and bool(np.array_equal(self.black, other.black))
            and (self.white, self.camera, self.source, self.params)
            == (other.white, other.camera, other.source, other.params)
        )


@dataclass
class PreparedChunk:
    """What :func:`prepare_chunk` gives :func:`fold_chunk` (on the worker that ran it, as a rule).

    Attributes
    ----------
    description : SeriesDescription or None
        The one the frames were measured against; None when no file decoded.
    frames : list of PreparedFrame or InputError
        One per file, in order: measured, with its pixels, or why it is skipped.
    """

    description: SeriesDescription | None
    frames: list[PreparedFrame | InputError]


@dataclass
class ChunkResult:
    """What a worker returns for one chunk of a series (see :func:`fold_chunk`).

    Attributes
    ----------
    description : SeriesDescription or None
        The one its sums were made from; None while no file of the series
        up to this chunk decoded.
    sums : dict of str to (H, W) ndarray, or None
        The arrays of :data:`FOLDED` over every frame of the series up to
        and including this chunk (and the stored statistics it continues).
    frames : list of PreparedFrame or InputError
        One per file, in order: folded into ``sums``, waiting to be
        committed (no pixels), or why the file is skipped.
    """

    description: SeriesDescription | None
    sums: dict[str, np.ndarray] | None
    frames: list[PreparedFrame | InputError]


def _too_large(path: Path) -> UnsupportedFileError:
    return UnsupportedFileError(
        path,
        "is too large to decode and measure in the memory available",
        "close other programs, or map fewer files at once",
    )


def describe_series(
    paths: Sequence[Path], params: DetectionParams | None, mosaic: reader.MosaicSpec | None
) -> SeriesDescription | None:
    """The description of a series from its first file that decodes (a worker's task); None if none does."""
    for p in paths:
        try:
            frame = reader.read_frame(p, mosaic=mosaic)
        except (InputError, MemoryError):
            continue
        return SeriesDescription.of_frame(frame, params)
    return None


def prepare_chunk(
    paths: Sequence[Path],
    description: SeriesDescription | None,
    params: DetectionParams | None,
    mosaic: reader.MosaicSpec | None,
) -> PreparedChunk:
    """Decode and measure ``paths`` (:meth:`Accumulator.prepare`), in order: a worker's task.

    Parameters
    ----------
    paths : sequence of Path
        Contiguous files of one series, as the workers see them.
    description : SeriesDescription or None
        The series'; None: from the chunk's first file that decodes (the
        first chunk of a series, as a local run does).
    params : DetectionParams or None
        Used only when ``description`` is None.
    mosaic : rawmap.reader.MosaicSpec or None
    """
    # an accumulator whose sums take no memory: prepare() reads only the series' description
    probe = None if description is None else _probe(description)
    frames: list[PreparedFrame | InputError] = []
    for p in paths:
        try:
            frame = reader.read_frame(p, mosaic=mosaic)
            if probe is None:
                description = SeriesDescription.of_frame(frame, params)
                probe = _probe(description)
            frames.append(probe.prepare(frame))
        except InputError as exc:
            frames.append(exc)
        except MemoryError:
            frames.append(_too_large(p))
    return PreparedChunk(description, frames)


def _probe(description: SeriesDescription) -> Accumulator:
    empty = {name: np.broadcast_to(np.zeros((), np.uint8), description.shape) for name in Accumulator._ARRAYS}
    return description.new_accumulator(sums=empty)


def fold_chunk(
    chunk: PreparedChunk, previous: ChunkResult | dict[str, np.ndarray] | None, reserve_for: int
) -> ChunkResult:
    """Fold a prepared chunk into the series' sums as ``previous`` left them: a worker's task.

    Keeps nothing and changes none of its inputs: running it twice gives two
    equal results, of which the client takes one.

    Parameters
    ----------
    chunk : PreparedChunk
    previous : ChunkResult, dict of ndarray or None
        The previous chunk's result, the stored statistics' arrays of
        :data:`FOLDED` (first chunk of a continued series), or None (first
        chunk of a new series).
    reserve_for : int
        Frames the series will hold at the end (stored ones included): the
        integer sums are widened for them, as a local run does first.

    Returns
    -------
    ChunkResult
    """
    start = previous.sums if isinstance(previous, ChunkResult) else previous
    description = chunk.description
    if isinstance(previous, ChunkResult) and previous.description is not None:
        description = previous.description
    acc = None
    if description is not None:
        if start is None:
            acc = description.new_accumulator()
            acc.reserve(reserve_for)
        else:
            acc = _probe(description)
            for name in FOLDED:  # the previous result is Dask's: fold into copies
                setattr(acc, name, np.array(start[name], copy=True))
            acc.reserve(reserve_for)  # stored statistics: widened as the local run widens them
    frames: list[PreparedFrame | InputError] = []
    for got in chunk.frames:
        if isinstance(got, PreparedFrame):
            assert acc is not None  # a measured frame has a description
            prep = replace(got, found=list(got.found), lines=list(got.lines), counts=list(got.counts))
            # arrays that crossed between workers arrive read-only, which the compiled kernel takes as another type
            prep.plane = np.require(prep.plane, requirements="W")
            prep.black2 = np.require(prep.black2, requirements="W")
            prep.row_clip = np.require(prep.row_clip, requirements="W")
            prep.folded = [False] * acc.N_BANDS
            for band in range(acc.N_BANDS):
                acc.fold(prep, band)
            frames.append(prep)
        else:
            frames.append(got)
    sums = None if acc is None else {name: getattr(acc, name) for name in FOLDED}
    return ChunkResult(description, sums, frames)


def _without_sums(result: ChunkResult) -> ChunkResult:
    """``result`` without its sums: what the client needs of a chunk in the middle of a series."""
    return ChunkResult(result.description, None, result.frames)


def _headers_task(
    paths: Sequence[Path], counted_paths: set[Path], mosaic: reader.MosaicSpec | None, legacy: bool
) -> list[_Header | InputError]:
    return [_read_header(p, counted_paths, mosaic, legacy) for p in paths]


def _chunks(n: int, most: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into the fewest contiguous chunks of at most ``most``, of even sizes."""
    k = max(1, -(-n // max(1, most)))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k) if bounds[i + 1] > bounds[i]]


class DaskEngine:
    """Read headers and fold frames on the workers of a Dask cluster (see the module docstring).

    Parameters
    ----------
    client : distributed.Client
    chunk_frames : int
        Most files per chunk; a series of more files is cut into contiguous
        chunks of even sizes.  Fewer: more tasks to spread, cheaper retries
        and less memory on the workers (a chunk's decoded frames wait there
        for its fold), but the series' sums (21 bytes per photosite) move
        from worker to worker once per chunk.
    ahead : int, optional
        Chunks submitted ahead of the one the client is taking (their
        results wait on the workers); default twice the workers.
    """

    def __init__(self, client: Any, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES, ahead: int | None = None) -> None:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
        self.client = client
        self.chunk_frames = int(chunk_frames)
        workers = len(client.scheduler_info().get("workers", {})) or 1
        self.ahead = max(1, ahead if ahead is not None else 2 * workers)
        self._token = uuid.uuid4().hex[:12]
        self._jobs: list[SeriesJob] = []
        self._cuts: list[list[tuple[int, int]]] = []
        self._order: list[tuple[int, int]] = []  # (job, chunk) in the order the client takes them
        self._next = 0  # first entry of _order not yet submitted
        self._futures: dict[tuple[int, int], Any] = {}
        self._describe: dict[int, Any] = {}
        self._last: dict[int, Any] = {}  # each series' last fold submitted: the next one starts from it
        #: chunks whose result the client has taken, in order (for tests and summaries)
        self.chunks_done = 0

    # ------------------------------------------------------------ the Engine
    def read_headers(
        self, files: Sequence[Path], counted_paths: set[Path], mosaic: reader.MosaicSpec | None, legacy: bool
    ) -> list[_Header | InputError]:
        """Each file's header and content key, read on the workers in batches of :data:`HEADER_BATCH`."""
        futures = []
        for i in range(0, len(files), HEADER_BATCH):
            batch = list(files[i : i + HEADER_BATCH])
            mine = {p.resolve() for p in batch} & counted_paths if counted_paths else set()
            futures.append(
                self.client.submit(_headers_task, batch, mine, mosaic, legacy, key=f"rawmap-headers-{self._token}-{i}")
            )
        out: list[_Header | InputError] = []
        for fut in futures:
            out.extend(self._result(fut, "reading headers"))
        return out

    def plan(self, jobs: Sequence[SeriesJob]) -> None:
        """Cut every series into chunks and submit the first :attr:`ahead` of them."""
        self._jobs = list(jobs)
        self._cuts = [_chunks(len(j.paths), self.chunk_frames) for j in self._jobs]
        self._order = [(j, k) for j, cuts in enumerate(self._cuts) for k in range(len(cuts))]
        self._next = 0
        self._fill()

    def fold_series(
        self, index: int, start: _SeriesStart, pause_every: int
    ) -> Iterator[tuple[Path | None, PreparedFrame | InputError | None]]:
        """Take series ``index``'s chunks in order and yield its frames to be committed (see :class:`Engine`)."""
        job = self._jobs[index]
        cuts = self._cuts[index]
        since = 0
        for k, (a, b) in enumerate(cuts):
            while (index, k) not in self._futures:  # the client may run ahead of the window only here
                self._submit_next()
            fut = self._futures.pop((index, k))
            # the sums travel to the client at the end of the series and at checkpoints only; between
            # them the next fold starts from them on the workers, and the client needs only the frames
            pause_here = bool(pause_every) and since + (b - a) >= pause_every and k + 1 < len(cuts)
            want = fut
            if not pause_here and k + 1 < len(cuts):
                want = self.client.submit(_without_sums, fut, key=f"rawmap-frames-{self._token}-{index}-{k}")
            res: ChunkResult = self._result(want, f"folding {job.paths[a]} and the next {b - a - 1} file(s)")
            del want, fut  # released when nothing holds them (the next fold of the series may still need it)
            self._fill()
            if res.description is not None and start.acc is None:
                acc = res.description.new_accumulator()
                acc.reserve(len(job.paths))
                start.acc = acc
            if res.sums is not None and res.description is not None:
                assert start.acc is not None
                if not res.description.same_as(SeriesDescription.of_accumulator(start.acc)):
                    raise EngineError(
                        f"{job.paths[a]}: a worker measured this series' levels or size differently from its first "
                        "frame; map these photos without --dask"
                    )
                for name in FOLDED:  # the sums of every frame up to this chunk: taken, not added
                    got = res.sums[name]
                    setattr(start.acc, name, got if got.flags.writeable else got.copy())
            self.chunks_done += 1
            yield from zip(job.paths[a:b], res.frames)
            since += b - a
            if pause_here:
                since = 0
                yield None, None

    # ------------------------------------------------------------- internals
    def _fill(self) -> None:
        while self._next < len(self._order) and len(self._futures) < self.ahead:
            self._submit_next()

    def _submit_next(self) -> None:
        j, k = self._order[self._next]
        self._next += 1
        job = self._jobs[j]
        a, b = self._cuts[j][k]
        name = f"{self._token}-{j}-{k}"
        if job.base is not None:
            description: Any = SeriesDescription.of_accumulator(job.base)
        elif k == 0:
            description = None  # the series' first file that decodes, as a local run
        else:
            if j not in self._describe:
                self._describe[j] = self.client.submit(
                    describe_series, job.paths, job.params, job.mosaic, key=f"rawmap-describe-{self._token}-{j}"
                )
            description = self._describe[j]
        prepared = self.client.submit(
            prepare_chunk, job.paths[a:b], description, job.params, job.mosaic, key=f"rawmap-prepare-{name}"
        )
        if k > 0:
            previous: Any = self._last[j]
        elif job.base is not None:
            previous = self.client.scatter({n: getattr(job.base, n) for n in FOLDED}, hash=False)
        else:
            previous = None
        reserve_for = (job.base.n_frames if job.base is not None else 0) + len(job.paths)
        fut = self.client.submit(fold_chunk, prepared, previous, reserve_for, key=f"rawmap-fold-{name}")
        self._futures[(j, k)] = fut
        self._last[j] = fut
        if k == len(self._cuts[j]) - 1:  # every task of the series holds what it needs now
            self._describe.pop(j, None)
            self._last.pop(j, None)

    def _result(self, fut: Any, what: str) -> Any:
        try:
            return fut.result()
        except RawmapError:
            raise
        except Exception as exc:
            raise EngineError(f"the Dask cluster failed {what}: {one_line(exc, 300)}") from None


@contextmanager
def dask_engine(address: str, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> Iterator[DaskEngine]:
    """A :class:`DaskEngine` on the scheduler at ``address``, or on a local cluster for ``local:N``.

    ``local:N`` starts a :class:`distributed.LocalCluster` of N worker
    processes of one thread each, closed on leaving.

    Raises
    ------
    MissingExtraError
        ``dask[distributed]`` is not installed.
    ValueError
        A malformed ``local:N``.
    EngineError
        The scheduler cannot be reached.
    """
    distributed = require_distributed()
    n = parse_address(address)
    cluster = None
    try:
        if n is not None:
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
            )
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(address.strip(), timeout=30)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise EngineError(
            f"cannot reach the Dask scheduler at {address} ({one_line(exc, 200)}): start one with `dask scheduler` "
            "and workers with `dask worker ADDRESS`, or use --dask local:N"
        ) from None
    try:
        yield DaskEngine(client, chunk_frames=chunk_frames)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
