"""Per-photosite on-line statistics over a series of frames.

One pass, constant memory whatever the number of frames, mergeable and
resumable.  It extends the on-line mean/variance idea with what detection
needs; per photosite it keeps

=============  =========  ===================================================
array          dtype      meaning (sums over the frames where all four
                          same-colour neighbours were below the clip level)
=============  =========  ===================================================
``n_invalid``  uint8      frames skipped because a neighbour was clipped
``s_v``        uint32     sum of values *v* (DN, black included)
``s_r``        int32      sum of residuals ``r = 4 v - (sum of the 4
                          same-colour neighbours)`` (promoted to int64 before
                          it could overflow)
``vmin/vmax``  uint16     smallest / largest value over **all** frames
``s_xr``       float32    sum of ``r * x``, x = exposure time x ISO/100: a
                          per-photosite dark-current slope
``s_zz``       float32    sum of squared normalised residuals (``r`` over the
                          frame's own noise at that level): temporal noise
``s_hi/s_lo``  uint8      scenes in which the photosite was an isolated bright
                          / dark outlier (bursts of near-identical frames count
                          once)
=============  =========  ===================================================

The integer sums are exact; merging two states gives exactly the state of
the union of their frames (float sums up to rounding).  23 bytes per
photosite; the one-byte counts widen to 2 bytes from 255 frames, the sums
(and counts again) before they could overflow.  Sparse extras: the capture time at which each photosite first
showed as a confirmed outlier, and the number of scenes in which a
photosite leaned across a column or a row (the line test of
:class:`DetectionParams`).

Examples
--------
>>> acc = Accumulator.from_frame(frame)          # doctest: +SKIP
>>> for f in frames: acc.update(f)               # doctest: +SKIP
>>> acc.save("body.rawstate")                    # doctest: +SKIP
>>> acc += Accumulator.load("other.rawstate")    # doctest: +SKIP
"""

from __future__ import annotations

import copy
import datetime as _dt
import io
import json
import lzma
import math
import mmap
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import _kernels
from ._memory import available_bytes, gigabytes
from .defectmap import MAX_PHOTOSITES, MAX_SENSOR_SIDE
from .errors import FrameMismatchError, MapFormatError, UnsupportedFileError
from .fileio import atomic_write_bytes
from .frame import CameraId, Frame, SourceKind
from .safeio import StateFormatProblem, open_zip, read_json_member, read_npy_member

__all__ = ["Accumulator", "PreparedFrame", "new_sums", "FrameRecord", "DetectionParams", "STATE_FORMAT", "STATE_VERSION",
           "MAX_STATE_META_BYTES", "frame_plane"]

STATE_FORMAT = "rawmap-accumulator"
STATE_VERSION = 1
#: Largest ``meta.json`` (frame records included) :meth:`Accumulator.load` reads: about 200,000 frames.
MAX_STATE_META_BYTES = 64 * 1024 * 1024

_EPOCH = _dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class DetectionParams:
    """Per-frame outlier test used while accumulating.

    Attributes
    ----------
    k : float
        A photosite is an outlier in a frame when its residual exceeds ``k``
        times the frame's own noise at that level.
    k_line : float
        Line test: a photosite and its two same-colour neighbours along a
        column (row) all deviate by more than this many sigmas, the same way,
        across the line (against the neighbours beside the line, so the whole
        offset of a defective line counts).
    k_adjacent : float
        An adjacent photosite (other colour) deviating by more than this many
        sigmas counts against isolation.
    max_adjacent : int
        More deviating adjacent photosites than this: a scene feature (star,
        edge, glint), not a defect.  2 keeps clusters of up to four.
    scene_share : float
        Within one view (frames of the same scene) the photosite must be an
        outlier in at least this share of the view's frames to count once.
    view_corr : float
        Two frames show the same view when the correlation of their
        thumbnails (block means, so exposure, ISO and black level drop out;
        blocks clipped in either frame left out) is at least this.  Measured
        on an independent series: frames of one view (brackets four stops
        apart, a timelapse) 0.993-1.000, different scenes at most 0.64.
    open_views : int
        Views kept open for frames to join; the one used least recently is
        closed (its outliers counted) when one more opens.  A view that comes
        back after this many other views is counted again.
    blank_noise : float
        A frame is *blank* (no scene: a lens-cap dark, a flat field) when the
        90th percentile of its thumbnail's detail (block minus the median of
        its 3 x 3 blocks) is within this many sigmas of a block's noise, plus
        1 % of its level.
    dark_level : float
        A blank frame is a *dark* when 99 % of its blocks sit below this share
        of the range above black.
    scene_corr : float
        ... unless the detail of its blocks (block minus the median of its
        3 x 3 blocks) correlates with the detail of the same blocks sampled
        two photosites apart by at least this many standard errors of a
        correlation of pure noise (1 / sqrt(blocks)), and by 0.25: then it
        shows a scene, however dim (noise, and a dark's hot photosites,
        differ between the samplings).  Measured: darks -0.01 to 0.01, the
        dimmest frame of a generated bracket 0.30, photos of an independent
        series 0.94-0.97.
    """

    k: float = 6.0
    k_line: float = 3.5
    k_adjacent: float = 4.0
    max_adjacent: int = 2
    scene_share: float = 0.25
    view_corr: float = 0.9
    open_views: int = 8
    blank_noise: float = 5.0
    dark_level: float = 0.02
    scene_corr: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectionParams":
        """Parameters read from a state file; keys of other versions (e.g. the burst test's) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class FrameRecord:
    """What the accumulator kept of one frame."""

    path: str
    time: _dt.datetime | None
    exposure: float
    iso: float
    x: float  #: exposure x ISO/100
    scene: int  #: evidence unit: the frame's view (frames of one view share it) or, for a dark, its own
    noise_a: float  #: residual variance at black, ``4v - sum4`` units
    noise_b: float  #: residual variance slope per DN
    outliers: int  #: isolated outliers accepted in this frame
    overflow: bool = False  #: too many outliers: the frame's outliers were not counted
    kind: str = "photo"  #: ``photo``, ``dark`` (lens-cap dark: no scene) or ``flat`` (lit, no scene detail)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = self.time.isoformat() if self.time else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrameRecord":
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        d["time"] = _dt.datetime.fromisoformat(d["time"]) if d.get("time") else None
        return cls(**d)


@dataclass
class PreparedFrame:
    """A frame checked and measured by :meth:`Accumulator.prepare`, waiting to be folded band by band.

    It keeps the frame's pixels only until every band is folded (then
    ``plane`` is dropped), so a queue of prepared frames costs no memory.
    """

    path: str
    time: _dt.datetime | None
    exposure: float
    iso: float
    plane: np.ndarray | None  #: (H, W) uint16, see :func:`frame_plane`
    black2: np.ndarray  #: (2, 2) float32 black level per pattern position
    clip: int
    row_clip: np.ndarray  #: (H,) bool: a clipped photosite within two rows
    x: float  #: exposure x ISO/100
    noise_a: float
    noise_b: float
    thumb: np.ndarray  #: block means, to tell which frames show the same view
    kind: str = "photo"  #: see :attr:`FrameRecord.kind`
    found: list = field(default_factory=list)  #: per band: outlier codes (None: the band overflowed)
    lines: list = field(default_factory=list)  #: per band: line-candidate codes (None: overflowed)
    counts: list = field(default_factory=list)  #: per band: outliers found
    folded: list = field(default_factory=list)  #: per band: folded yet?


def frame_plane(frame: Frame) -> tuple[np.ndarray, int]:
    """The 2-D plane the statistics run on, and its white level.

    Parameters
    ----------
    frame : Frame

    Returns
    -------
    plane : (H, W) ndarray of uint16
        The mosaic itself for RAW frames; for developed images the sum of the
        channels (8-bit) or their mean (16-bit).
    white : int
    """
    m = frame.mosaic
    if frame.source is SourceKind.RAW:
        return np.ascontiguousarray(m, dtype=np.uint16), int(frame.white)
    if m.ndim == 2:
        return np.ascontiguousarray(m, dtype=np.uint16), int(frame.white)
    if m.shape[2] == 1:
        return np.ascontiguousarray(m[:, :, 0], dtype=np.uint16), int(frame.white)
    if m.dtype == np.uint8:
        return m.sum(axis=2, dtype=np.uint16), int(frame.white) * m.shape[2]
    return (m.sum(axis=2, dtype=np.uint32) // m.shape[2]).astype(np.uint16), int(frame.white)


def _zeros(shape: tuple[int, int], dtype) -> np.ndarray:
    """A zeroed array for the running sums, in plain anonymous memory.

    ``np.zeros`` asks the kernel for transparent huge pages on big arrays;
    where the kernel then compacts memory on the first write (THP defrag
    ``madvise``, a common default) the first frame of a 24 MP series stalled
    for 1-2 s, against ~0.4 s for ordinary pages (measured on the project's
    machine).  The memory is returned when the array is freed.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < 1 << 22:
        return np.zeros(shape, dtype)
    # Linux: map the pages in one go (every page is written by the first frame
    # anyway); 0.25 s instead of 0.45 s of page faults for 24 MP of sums
    populate = getattr(mmap, "MAP_POPULATE", None)
    try:
        if populate is None:
            buf = mmap.mmap(-1, nbytes)
        else:
            buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    except OSError as exc:  # ENOMEM: the address-space limit, or no memory left
        raise MemoryError(f"cannot map {gigabytes(nbytes)} for the running sums ({exc.strerror or exc})") from None
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def new_sums(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Zeroed running sums of an :class:`Accumulator` for a sensor of ``shape`` (``vmin`` at its top).

    ~0.25 s for 24 MP (the operating system zeroes 550 MB of pages).
    """
    dtypes = {"n_invalid": np.uint8, "s_v": np.uint32, "s_r": np.int32, "vmin": np.uint16, "vmax": np.uint16,
              "s_xr": np.float32, "s_zz": np.float32, "s_hi": np.uint8, "s_lo": np.uint8}
    sums = {name: _zeros(shape, dt) for name, dt in dtypes.items()}
    sums["vmin"].fill(np.iinfo(np.uint16).max)
    return sums


def _merge_sorted(keys: np.ndarray, vals: np.ndarray, new_keys: np.ndarray, new_vals, combine):
    """Merge ``new_keys -> new_vals`` into the sorted unique ``keys -> vals``.

    ``combine`` is ``np.add`` (counts) or ``np.fmin`` (earliest time, NaN
    unknown) for keys in both.  Linear in the size of the stored arrays (no
    re-sort), so a long series does not pay more per frame as its sparse
    records grow.
    """
    new_keys = np.asarray(new_keys, keys.dtype)
    if new_keys.size == 0:
        return keys, vals
    new_vals = np.broadcast_to(np.asarray(new_vals, vals.dtype), new_keys.shape)
    if new_keys.size > 1 and not bool(np.all(new_keys[1:] > new_keys[:-1])):
        new_keys, first = np.unique(new_keys, return_index=True)
        new_vals = new_vals[first]
    return _kernels.merge_sorted(keys, vals, new_keys, np.ascontiguousarray(new_vals), combine is np.fmin)


def _pend(pending: list[tuple[np.ndarray, np.ndarray]], codes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Add one frame's codes (each once) to an open burst's (unique codes, frames seen) record.

    Keeps a burst's pending outliers at about one frame's worth, however long the burst.
    """
    keys, counts = pending[0] if pending else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    # the kernel emits codes in photosite order, dark ones negated: that order, dark ones
    # reversed first, is sorted (_merge_sorted checks, and sorts if it is not)
    codes = np.concatenate([codes[codes < 0][::-1], codes[codes >= 0]])
    return [_merge_sorted(keys, counts, codes, 1, np.add)]


def _unix(t: _dt.datetime | None) -> float:
    if t is None:
        return math.nan
    if t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return (t - _EPOCH).total_seconds()


def _signature_block(shape: tuple[int, int]) -> tuple[int, int]:
    """Photosites (rows, columns) of one block of a view's signature on a sensor of ``shape``.

    Follows :meth:`Accumulator._thumb` (blocks of 32 photosites, or of
    ``4 f`` on small frames) and :meth:`Accumulator._signature` (at most
    32 x 48 of those blocks, pooled ``fy`` x ``fx``).
    """
    sub_h, sub_w = -(-shape[0] // 4), -(-shape[1] // 4)  # plane[::4, ::4]
    f = 8 if min(sub_h, sub_w) >= 128 else max(1, min(sub_h, sub_w) // 16)
    th, tw = sub_h // f, sub_w // f
    fy, fx = max(1, -(-th // 32)), max(1, -(-tw // 48))
    return 4 * f * fy, 4 * f * fx


@dataclass
class _OpenView:
    """A view still collecting its frames' outliers (see :meth:`Accumulator._view_for`)."""

    scene: int
    frames: int = 0
    time: float = math.nan  #: earliest capture (unix s) among its frames
    last_used: int = 0
    pending: list = field(default_factory=list)  #: [(unique codes, frames each showed in)]
    pending_lines: list = field(default_factory=list)


def _detail(level: np.ndarray) -> np.ndarray:
    """Each block minus the median of its 3 x 3 blocks (smooth gradients drop out)."""
    pad = np.pad(level, 1, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, (3, 3)).reshape(level.shape + (9,))
    return level - np.median(win, axis=2)


def _detail_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the detail of two block grids of one frame (0 when undecidable)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    if h < 3 or w < 3:
        return 0.0
    x = _detail(a[:h, :w]).ravel()
    y = _detail(b[:h, :w]).ravel()
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 0 else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(x.size, np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(x.size, dtype=np.float64)
    return r


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Rank (Spearman) correlation of two signatures over the blocks valid in both (-1 when undecidable).

    Ranks, not values: a bracket's long exposures clip part of some blocks
    (glints, highlights), which bends the relation between two frames'
    block means but keeps their order.
    """
    if a.shape != b.shape:
        return -1.0
    ok = np.isfinite(a) & np.isfinite(b)
    if int(ok.sum()) < 8:
        return -1.0
    x = _ranks(a[ok])
    y = _ranks(b[ok])
    x -= x.mean()
    y -= y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 0 else -1.0


class Accumulator:
    """Running per-photosite statistics of one camera body's frames.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the visible area; both at least 4.
    cfa : (2, 2) array_like of int or None
        Colour index per pattern position; ``None`` for developed images and
        for monochrome RAW mosaics (``source`` RAW: treated as a mosaic whose
        photosites are all of one colour).
    black : (4,) array_like of float
        Black level per colour index (zeros for images; one value repeated
        for a monochrome mosaic).
    white : int
        White level of the plane.
    camera : CameraId
    source : SourceKind
    margins, full_shape : tuple of int
        Geometry of the visible area in the full frame, kept for the map.
    params : DetectionParams, optional
    sums : dict of ndarray, optional
        Fresh arrays from :func:`new_sums` for this shape (made ahead of time,
        e.g. while the first frames decode); new ones are made otherwise.

    Raises
    ------
    MemoryError
        New sums (:attr:`BYTES_PER_PHOTOSITE` per photosite) would not fit
        in the memory available (checked before allocating, see
        :mod:`rawmap._memory`), or their allocation failed.
    """

    _ARRAYS = ("n_invalid", "s_v", "s_r", "vmin", "vmax", "s_xr", "s_zz", "s_hi", "s_lo")
    #: bytes of running sums per photosite (the arrays of :func:`new_sums`)
    BYTES_PER_PHOTOSITE = 23
    # the running sums (set from :func:`new_sums` or a saved state; see the class docstring)
    n_invalid: np.ndarray
    s_v: np.ndarray
    s_r: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    s_xr: np.ndarray
    s_zz: np.ndarray
    s_hi: np.ndarray
    s_lo: np.ndarray
    _SPARSE = ("fs_index", "fs_time", "ln_code", "ln_count")

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        cfa: np.ndarray | None,
        black: np.ndarray,
        white: int,
        camera: CameraId,
        source: SourceKind = SourceKind.RAW,
        margins: tuple[int, int] = (0, 0),
        full_shape: tuple[int, int] = (0, 0),
        params: DetectionParams | None = None,
        sums: dict[str, np.ndarray] | None = None,
    ) -> None:
        H, W = int(shape[0]), int(shape[1])
        if H < 4 or W < 4:
            raise ValueError(f"shape must be at least 4x4 photosites, got {H}x{W}")
        self.shape = (H, W)
        self.cfa = None if cfa is None else np.asarray(cfa, dtype=np.uint8).reshape(2, 2)
        self.black = np.asarray(black, dtype=np.float64).reshape(4)
        self.white = int(white)
        self.camera = camera
        self.source = SourceKind(source)
        self.margins = (int(margins[0]), int(margins[1]))
        self.full_shape = (int(full_shape[0]), int(full_shape[1]))
        self.params = params or DetectionParams()
        if sums is None:
            need = H * W * self.BYTES_PER_PHOTOSITE
            free = available_bytes()
            if free is not None and need > free:
                raise MemoryError(
                    f"the statistics of a {H}x{W} sensor need {gigabytes(need)}, "
                    f"more than the {gigabytes(free)} of memory available"
                )
            sums = new_sums(self.shape)
        for name in self._ARRAYS:
            if sums[name].shape != self.shape:
                raise ValueError(f"{name} is {sums[name].shape}, not {self.shape}")
            setattr(self, name, sums[name])
        # sparse: first capture time (unix s, camera clock) at which a photosite was a confirmed outlier
        self.fs_index = np.zeros(0, np.int64)
        self.fs_time = np.zeros(0, np.float64)
        # sparse: scenes in which a photosite leaned across a line; code = flat * 4 + 2 * row_line + dark
        self.ln_code = np.zeros(0, np.int64)
        self.ln_count = np.zeros(0, np.uint32)
        self.n_frames = 0
        self.n_scenes = 0
        self.sum_x = 0.0
        self.sum_xx = 0.0
        self.frames: list[FrameRecord] = []
        # views: the signature of every view seen (scene number -> (h, w) float64, NaN where
        # clipped), kept to recognise a view when it comes back; the open ones collect
        # their frames' outliers until they are closed (before save/merge/detect)
        self.view_sigs: dict[int, np.ndarray] = {}
        # and, per view, its frames' signal summed block by block (same blocks, clipped ones at
        # the clip level): what share of a photosite's summed signal one view holds
        self.view_w: dict[int, np.ndarray] = {}
        self._open: dict[int, _OpenView] = {}
        self._dark_views: set[int] = set()  #: open views of darks only (their signatures in view_sigs)
        self._clock = 0

    # ------------------------------------------------------------------ set-up
    @classmethod
    def from_frame(
        cls, frame: Frame, *, params: DetectionParams | None = None, sums: dict[str, np.ndarray] | None = None
    ) -> "Accumulator":
        """An empty accumulator shaped for ``frame``'s body and sensor (``sums``: see the class).

        Raises
        ------
        UnsupportedFileError
            The running sums of a sensor this size (23 bytes per photosite)
            do not fit in the memory available (see :mod:`rawmap._memory`).
        """
        plane, white = frame_plane(frame)
        black = frame.black if frame.source is SourceKind.RAW else np.zeros(4)
        try:
            return cls(
                plane.shape,
                cfa=frame.cfa if frame.source is SourceKind.RAW else None,
                black=black,
                white=white,
                camera=frame.camera,
                source=frame.source,
                margins=frame.margins,
                full_shape=frame.full_shape,
                params=params,
                sums=sums,
            )
        except MemoryError as exc:
            raise UnsupportedFileError(
                frame.path, f"is too large to map here: {exc}", "close other programs, or map on a machine with more memory"
            ) from None

    @property
    def black2(self) -> np.ndarray:
        """(2, 2) ndarray of float64: black level at each pattern position."""
        if self.cfa is None:  # images (zero black) and monochrome mosaics: one level
            return np.full((2, 2), float(self.black[0]))
        return self.black[self.cfa]

    @property
    def clip(self) -> int:
        """Values at or above this are treated as clipped."""
        b = float(self.black.max())
        return int(b + 0.97 * (self.white - b))

    def check(self, frame: Frame) -> None:
        """Raise :class:`FrameMismatchError` if ``frame`` cannot join this series."""
        plane_shape = frame.mosaic.shape[:2]
        if frame.camera != self.camera:
            raise FrameMismatchError(
                frame.path, f"taken by {frame.camera.label or 'an unknown camera'}, not {self.camera.label}",
                "map each body separately",
            )
        if tuple(plane_shape) != self.shape:
            raise FrameMismatchError(
                frame.path,
                f"frame is {plane_shape[0]}x{plane_shape[1]}, this body's series is {self.shape[0]}x{self.shape[1]}",
                "crop or resized images cannot be mapped with the others",
            )
        if frame.source is not self.source:
            raise FrameMismatchError(
                frame.path, f"{frame.source.value} frame in a {self.source.value} series",
                "map RAW files and developed images separately",
            )
        if (self.cfa is None) != (frame.cfa is None) or (
            self.cfa is not None and not np.array_equal(np.asarray(frame.cfa), self.cfa)
        ):
            raise FrameMismatchError(frame.path, "CFA pattern differs from the rest of the series", "")

    # ---------------------------------------------------------------- update
    def update(self, frame: Frame) -> FrameRecord:
        """Fold one frame into the statistics.

        The same as :meth:`prepare`, :meth:`fold` on every band, then
        :meth:`commit`; :func:`rawmap.mapping.map_files` runs those steps of
        successive frames on two threads at once.

        Parameters
        ----------
        frame : Frame
            Same body, size and kind as the series (see :meth:`check`).

        Returns
        -------
        FrameRecord
        """
        prep = self.prepare(frame)
        self.reserve(1)
        for band in range(self.N_BANDS):
            self.fold(prep, band)
        return self.commit(prep)

    #: the frame is folded in this many bands of rows (each may run on its own thread)
    N_BANDS = 4

    def band_rows(self, band: int) -> tuple[int, int]:
        """First row and row after the last of ``band``."""
        H = self.shape[0]
        per = (H + self.N_BANDS - 1) // self.N_BANDS
        return min(H, band * per), min(H, (band + 1) * per)

    def reserve(self, n_more: int) -> None:
        """Widen the integer sums now if ``n_more`` further frames could overflow them.

        Call before folding frames on several threads: the arrays must not be
        replaced while bands are being folded.
        """
        self._ensure_capacity(self.n_frames + n_more)

    def prepare(self, frame: Frame) -> "PreparedFrame":
        """Check ``frame`` against the series and measure what folding it needs.

        Reads only the series' fixed description (shape, levels, parameters),
        never the running sums, so frames can be prepared on any thread.

        Raises
        ------
        FrameMismatchError
            When the frame cannot join this series (see :meth:`check`).
        """
        self.check(frame)
        plane, _ = frame_plane(frame)
        black2 = self.black2.astype(np.float32)
        clip = self.clip
        noise_a, noise_b = self._noise_model(plane, black2, clip)
        row_max = plane.max(axis=1)
        row_clip = row_max >= clip
        if row_clip.any():
            near = row_clip.copy()
            for d in (1, 2):
                near[d:] |= row_clip[:-d]
                near[:-d] |= row_clip[d:]
            row_clip = near
        thumb, sigma_block, per_block, other = self._thumb(plane)
        n = self.N_BANDS
        return PreparedFrame(
            path=str(frame.path), time=frame.time, exposure=float(frame.exposure), iso=float(frame.iso),
            plane=plane, black2=black2, clip=clip, row_clip=row_clip,
            x=float(frame.exposure) * (float(frame.iso) / 100.0 if frame.iso > 0 else 1.0),
            noise_a=noise_a, noise_b=noise_b, thumb=thumb, kind=self._frame_kind(thumb, sigma_block, per_block, noise_a, noise_b, other),
            found=[None] * n, lines=[None] * n, counts=[0] * n, folded=[False] * n,
        )

    def fold(self, prep: "PreparedFrame", band: int) -> None:
        """Add rows :meth:`band_rows` ``(band)`` of a prepared frame into the sums.

        Writes only those rows of the state: different bands may be folded
        on different threads at the same time (the compiled kernel releases
        the GIL), but one band must not be folded by two threads at once.
        Folding the frames of a band in capture order keeps the float sums
        bit-identical to a serial run.
        """
        r0, r1 = self.band_rows(band)
        H, W = self.shape
        cap = max(64, (H * W) // (50 * self.N_BANDS))  # 2 % of the band's photosites
        lcap = max(256, (H * W) // (20 * self.N_BANDS))
        out_idx = np.empty(cap, np.int64)
        line_idx = np.empty(lcap, np.int64)
        p = self.params
        with _kernels.launch():
            n, nl = _kernels.update_kernel(
                prep.plane, r0, r1, prep.black2, np.int32(prep.clip), prep.row_clip, np.float32(prep.x),
                np.float32(prep.noise_a), np.float32(prep.noise_b),
                np.float32(p.k * p.k), np.float32(p.k_adjacent * p.k_adjacent),
                int(p.max_adjacent), self.source is SourceKind.RAW,
                self.n_invalid, self.s_v, self.s_r, self.vmin, self.vmax, self.s_xr, self.s_zz,
                out_idx, np.float32(p.k_line * p.k_line), line_idx,
            )
        prep.found[band] = out_idx[:n].copy() if n <= cap else None
        prep.lines[band] = line_idx[:nl].copy() if nl <= lcap else None
        prep.counts[band] = n
        prep.folded[band] = True
        if all(prep.folded):
            prep.plane = None

    def commit(self, prep: "PreparedFrame") -> FrameRecord:
        """Close the frame once all its bands are folded: scenes, outliers, the frame record."""
        if not all(prep.folded):
            raise RuntimeError("commit() before every band of the frame was folded")
        lines = (
            np.concatenate(prep.lines) if all(ln is not None for ln in prep.lines) else np.zeros(0, np.int64)
        )
        overflow = any(f is None for f in prep.found)
        found = np.concatenate(prep.found) if not overflow else np.zeros(0, np.int64)
        noise_a, noise_b = prep.noise_a, prep.noise_b
        view = self._view_for(prep)
        view.frames += 1
        self._clock += 1
        view.last_used = self._clock
        t = _unix(prep.time)
        if not math.isnan(t) and (math.isnan(view.time) or t < view.time):
            view.time = t
        if len(found):
            view.pending = _pend(view.pending, found)
        if lines.size:
            view.pending_lines = _pend(view.pending_lines, lines)
        if len(self._open) > max(1, self.params.open_views):
            self._close_view(min(self._open.values(), key=lambda v: v.last_used).scene)
        x = prep.x
        self.n_frames += 1
        self.sum_x += x
        self.sum_xx += x * x
        rec = FrameRecord(
            path=prep.path, time=prep.time, exposure=prep.exposure, iso=prep.iso, x=x,
            scene=view.scene, noise_a=float(noise_a), noise_b=float(noise_b),
            outliers=int(sum(prep.counts)), overflow=overflow, kind=prep.kind,
        )
        self.frames.append(rec)
        return rec

    def _noise_model(self, plane: np.ndarray, black2: np.ndarray, clip: int) -> tuple[float, float]:
        """Fit var(r) = a + b * level on a subsample of the frame (robust per level bin)."""
        H, W = plane.shape
        target = 200_000
        row_step = max(1, int(math.sqrt(H * W / target)))
        rows = np.arange(0, H, row_step, dtype=np.int64)
        r, lv, code = _kernels.residual_sample(plane, black2, clip, rows, row_step)
        floor = 2.0
        if r.size < 100:
            return floor, 0.0
        nb = 16
        lv_sorted = _kernels.sorted_levels(code, black2)  # by counting: a tenth of np.quantile's time
        edges = _kernels.sorted_quantiles(lv_sorted, np.linspace(0, 1, nb + 1))
        # per bin, the lower quartile of |r|: flat areas dominate it, texture does not (Gaussian: 0.3186 sigma)
        counts, med_level, q25 = _kernels.level_bins(r, lv, lv_sorted, edges, 50)
        keep = counts >= 50
        levels = med_level[keep].tolist()
        variances = [(q / 0.3186) ** 2 for q in q25[keep].tolist()]
        weights = counts[keep].tolist()
        if not levels:
            return floor, 0.0
        L = np.maximum(np.array(levels), 0.0)
        V = np.array(variances)
        w = np.array(weights, float)
        v_mean = float(np.average(V, weights=w))
        if len(L) >= 2 and np.ptp(L) > 0:
            A = np.stack([np.ones_like(L), L], axis=1) * w[:, None]
            a, b = np.linalg.lstsq(A, V * w, rcond=None)[0]
        else:
            a, b = v_mean, 0.0
        if b < 0:
            a, b = v_mean, 0.0
        # Texture curves the binned variances, which can drive the fitted intercept
        # below the true read noise; never predict less than the darkest bins showed.
        dark = np.argsort(L)[:2]
        a = max(a, float(np.min(V[dark] - b * L[dark])), floor)
        # Levels that vary no more than noise moves them (a flat field) cannot separate read
        # noise from shot noise: the slope fitted on them is noise, and with its intercept
        # raised to the floor it can overstate the variance many times.  There, one variance
        # for the one level (~0.45 sqrt(V) is the spread of bin levels that noise alone gives).
        if np.ptp(L) < 2.0 * math.sqrt(float(V.max())) and float(np.average(a + b * L, weights=w)) > 2.0 * v_mean:
            a, b = max(v_mean, floor), 0.0
        return float(a), float(b)

    def _thumb(self, plane: np.ndarray) -> tuple[np.ndarray, float, int, np.ndarray]:
        """Block means of every 4th photosite of every 4th row, and the noise of a block mean.

        8 x 8 samples (32 x 32 photosites) per block on sensors big enough for
        16 blocks a side; smaller blocks on small frames, so that the view and
        blank-frame tests still see the scene's layout.  The noise is measured,
        not modelled: the same blocks sampled two photosites further down and
        right (the same colour) differ from these by noise alone, plus what
        little of the scene's finest texture the block means keep.

        Returns
        -------
        thumb : (h, w) ndarray of float32
        sigma : float
            Robust standard deviation of one block mean's noise (DN).
        per_block : int
            Photosites averaged in one block.
        other : (h', w') ndarray of float32
            The same blocks sampled two photosites further down and right.
        """
        sub = plane[::4, ::4]
        if min(sub.shape) >= 128:
            a, b = _kernels.thumbnail(plane), _kernels.thumbnail(plane[2:, 2:])
            f = 8
        else:
            f = max(1, min(sub.shape) // 16)

            def blocks(s: np.ndarray) -> np.ndarray:
                h, w = (s.shape[0] // f) * f, (s.shape[1] // f) * f
                return s[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)

            a, b = blocks(sub), blocks(plane[2::4, 2::4])
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        d = a[:h, :w].astype(np.float64) - b[:h, :w]
        sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0) if d.size else 0.0
        return a, sigma, f * f, b

    def _frame_kind(
        self, thumb: np.ndarray, sigma_block: float, per_block: int, noise_a: float, noise_b: float,
        other: np.ndarray | None = None,
    ) -> str:
        """``dark``, ``flat`` or ``photo``: is there a scene in this frame at all?

        A scene has detail at the scale of a few blocks (edges, texture); a
        lens-cap dark or a flat field has only noise and smooth gradients
        (vignetting, amplifier glow).  Detail is each block's distance from
        the median of its 3 x 3 blocks; the frame is blank when 90 % of the
        blocks are within :attr:`DetectionParams.blank_noise` sigmas of a
        block mean's noise plus 1 % of the level.  Measured on an independent
        series: lens-cap darks 1.4-2.3 DN at the 90th percentile, photos
        (dim ones included) 110-1340 DN.  A blank frame is a dark when 99 %
        of its blocks sit below :attr:`DetectionParams.dark_level` of the
        range, a flat field when its blocks lie within half its level.
        """
        base = float(np.mean(self.black))  # zeros for developed images
        level = thumb.astype(np.float64) - base
        if level.shape[0] < 3 or level.shape[1] < 3:
            return "photo"
        pad = np.pad(level, 1, mode="edge")
        win = np.lib.stride_tricks.sliding_window_view(pad, (3, 3)).reshape(level.shape + (9,))
        detail = np.abs(level - np.median(win, axis=2))
        med = max(float(np.median(level)), 0.0)
        # two estimates of a block mean's noise, each inflated by texture of its own scale: the
        # measured one (block-scale texture) and the noise fit's (photosite-scale texture,
        # var(4v - sum4) = 20 sigma^2); the smaller is the better
        model = math.sqrt(max(noise_a + noise_b * med, 0.0) / 20.0 / per_block)
        sigma_block = min(sigma_block, model)
        if float(np.quantile(detail, 0.9)) > self.params.blank_noise * sigma_block + 0.01 * med:
            return "photo"
        # a dim scene (the darkest frame of a bracket) can hide its few edges below that bound;
        # but its detail is the same in the blocks sampled two photosites apart, where noise
        # (and a dark's hot photosites, which sit in one sampling only) is not
        if other is not None:
            bound = max(0.25, self.params.scene_corr / math.sqrt(level.size))
            if _detail_correlation(level, other.astype(np.float64) - base) >= bound:
                return "photo"
        lo, hi = np.quantile(level, [0.01, 0.99]).tolist()
        if hi <= self.params.dark_level * (self.white - base):
            return "dark"
        # a flat field: smooth (vignetting) and lit evenly (its blocks within about half its level)
        return "flat" if hi - lo <= 0.5 * med else "photo"

    def _signature(self, thumb: np.ndarray) -> np.ndarray:
        """At most 32 x 48 block means of the thumbnail, NaN where a block holds clipped photosites."""
        th, tw = thumb.shape
        fy, fx = max(1, -(-th // 32)), max(1, -(-tw // 48))
        h, w = (th // fy) * fy, (tw // fx) * fx
        t = thumb[:h, :w].astype(np.float64)
        base = float(np.mean(self.black))  # zeros for developed images
        hot = t >= base + 0.9 * (self.clip - base)
        sig = t.reshape(h // fy, fy, w // fx, fx).mean(axis=(1, 3))
        sig[hot.reshape(h // fy, fy, w // fx, fx).any(axis=(1, 3))] = np.nan
        return sig

    def _view_for(self, prep: "PreparedFrame") -> "_OpenView":
        """The open view ``prep`` joins: the known view it shows (reopened if closed) or a new one.

        Frames show the same view when their signatures correlate by at
        least :attr:`DetectionParams.view_corr`, whatever their exposure,
        ISO or order in the series, so brackets, timelapses and bursts are
        one view.  A dark starts a view of its own: with no scene, whatever is
        static in it is the sensor, and two darks never join (their amplifier
        glow and vignetting of dark current look alike).  But a frame that
        looks dark may be the dimmest of a bracket: a dark joins a photo's
        view it matches, and while a dark's view is open a later photo of the
        same view joins it, so the bracket's brightest specks count once.
        Flat fields do join views (the vignetting of one set-up is their
        signature): a frame of fine texture that averages out in the
        thumbnail (a lawn) can look blank, and its static detail must not
        count frame by frame.
        """
        sig = self._signature(prep.thumb)
        dark = prep.kind == "dark"
        best, best_c = None, self.params.view_corr
        for scene, ref in self.view_sigs.items():
            if dark and scene in self._dark_views:
                continue
            c = _correlation(sig, ref)
            if c >= best_c:
                best, best_c = scene, c
        if best is not None:
            if not dark:  # follow slow changes (a timelapse's light); a photo makes a dark's view a photo's
                self.view_sigs[best] = sig
                self._dark_views.discard(best)
            self._add_weight(best, sig)
            if best not in self._open:
                self._open[best] = _OpenView(best)
            return self._open[best]
        self.n_scenes += 1
        scene = self.n_scenes
        self.view_sigs[scene] = sig
        self._add_weight(scene, sig)
        if dark:
            self._dark_views.add(scene)
        self._open[scene] = _OpenView(scene)
        return self._open[scene]

    def _add_weight(self, scene: int, sig: np.ndarray) -> None:
        base = float(np.mean(self.black))
        w = np.maximum(np.where(np.isnan(sig), self.clip - base, sig - base), 0.0)
        prev = self.view_w.get(scene)
        self.view_w[scene] = w if prev is None or prev.shape != w.shape else prev + w

    def view_shares(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
        """The largest share of each photosite's summed signal that one view holds.

        From the views' summed block signals (the blocks of
        :meth:`_signature`), so it follows each photosite's surroundings,
        not the frame's mean: a view bright where the photosite sits weighs
        more there.  1.0 where one view holds everything (a timelapse).

        Parameters
        ----------
        rows, cols : (n,) int arrays

        Returns
        -------
        (n,) float64 ndarray, or None
            ``None`` when the views' signals are unknown (states written
            before they were kept) or the views' blocks disagree in shape.
        """
        ws = [w for s, w in self.view_w.items()]
        if not ws or len({w.shape for w in ws}) != 1 or len(ws) != len(self.view_sigs):
            return None
        stack = np.stack(ws)  # (views, h, w)
        sh, sw = stack.shape[1:]
        by, bx = _signature_block(self.shape)
        i = np.minimum(np.asarray(rows) // by, sh - 1)
        j = np.minimum(np.asarray(cols) // bx, sw - 1)
        total = stack.sum(axis=0)
        share = np.where(total > 0, stack.max(axis=0) / np.where(total > 0, total, 1.0), 1.0)
        return share[i, j]

    def closed(self) -> "Accumulator":
        """This state with every open view counted, leaving ``self`` as it is.

        Classification needs the open views' outliers counted; continuing the
        series later needs them still open (a view's later frames must join
        it, not count again).  Without open views this is ``self``; otherwise
        a shallow copy with its own scene counts and sparse records.
        """
        if not self._open:
            return self
        c = copy.copy(self)
        c.s_hi = self.s_hi.copy()
        c.s_lo = self.s_lo.copy()
        c._open = dict(self._open)
        c.view_sigs = dict(self.view_sigs)
        c.view_w = dict(self.view_w)
        c._dark_views = set(self._dark_views)
        c.close_scene()
        return c

    def close_scene(self) -> None:
        """Close every open view: turn their frames' outliers into per-view counts."""
        for scene in list(self._open):
            self._close_view(scene)

    def _close_view(self, scene: int) -> None:
        """Count the outliers of one open view: once each, where seen in enough of its frames."""
        view = self._open.pop(scene)
        if scene in self._dark_views:  # a closed dark is counted: nothing may join it any more
            self._dark_views.discard(scene)
            self.view_sigs.pop(scene, None)
            self.view_w.pop(scene, None)
        need = max(1, math.ceil(self.params.scene_share * view.frames))
        if view.pending_lines:
            codes, c = view.pending_lines[0]
            self._add_lines(codes[c >= need], np.ones(int((c >= need).sum()), np.uint32))
        if view.pending:
            found, found_n = view.pending[0]
            confirmed = []
            for sign, counts in ((1, self.s_hi), (-1, self.s_lo)):
                sel = found > 0 if sign > 0 else found < 0
                # codes are sorted: bright ones ascend, dark ones (negative) descend
                u = (found[sel] - 1) if sign > 0 else (-found[sel] - 1)[::-1]
                u = u[(found_n[sel] if sign > 0 else found_n[sel][::-1]) >= need]
                if u.size == 0:
                    continue
                counts.ravel()[u] += 1
                confirmed.append(u)
            if confirmed and not math.isnan(view.time):
                both = confirmed[0]
                if len(confirmed) == 2:
                    both = _merge_sorted(confirmed[0], np.zeros(confirmed[0].size), confirmed[1], 0.0, np.add)[0]
                self._note_first_seen(both, view.time)

    def _add_lines(self, codes: np.ndarray, counts: np.ndarray) -> None:
        """Add per-code scene counts into the sparse line counters."""
        self.ln_code, self.ln_count = _merge_sorted(
            self.ln_code, self.ln_count, codes.astype(np.int64), counts.astype(np.uint32), np.add
        )

    def _note_first_seen(self, index: np.ndarray, t: float | np.ndarray) -> None:
        """Keep the earliest known time per photosite (NaN = unknown)."""
        times = np.broadcast_to(np.asarray(t, np.float64), index.shape)
        self.fs_index, self.fs_time = _merge_sorted(self.fs_index, self.fs_time, index.astype(np.int64), times, np.fmin)

    def _ensure_capacity(self, n_frames: int) -> None:
        """Promote integer sums to wider types before they could overflow."""
        if self.s_r.dtype == np.int32 and n_frames * 4 * max(self.white, 1) >= np.iinfo(np.int32).max:
            self.s_r = self.s_r.astype(np.int64)
        if self.s_v.dtype == np.uint32 and n_frames * max(self.white, 1) >= np.iinfo(np.uint32).max:
            self.s_v = self.s_v.astype(np.uint64)
        for name in ("n_invalid", "s_hi", "s_lo"):  # frame / scene counts: 1 byte up to 254 frames
            counts = getattr(self, name)
            if n_frames >= np.iinfo(counts.dtype).max:
                setattr(self, name, counts.astype(np.uint16 if n_frames < np.iinfo(np.uint16).max else np.uint32))

    # ----------------------------------------------------------------- reading
    def valid_counts(self, index=...) -> np.ndarray:
        """Frames that entered the sums of each photosite (ndarray of int32).

        Parameters
        ----------
        index : optional
            Any numpy index into the (H, W) grid, e.g. ``(rows, cols)``; the
            whole grid when omitted.
        """
        return np.int32(self.n_frames) - self.n_invalid[index].astype(np.int32)

    def first_seen(self, rows: np.ndarray, cols: np.ndarray) -> list[_dt.datetime | None]:
        """Capture time at which each given photosite first showed as an outlier."""
        flat = np.asarray(rows, np.int64) * self.shape[1] + np.asarray(cols, np.int64)
        if self.fs_index.size == 0:
            return [None] * flat.size
        pos = np.minimum(np.searchsorted(self.fs_index, flat), self.fs_index.size - 1)
        t = np.where(self.fs_index[pos] == flat, self.fs_time[pos], np.nan)
        # few distinct times (one per scene): build each datetime once
        when = {s: _EPOCH + _dt.timedelta(seconds=s) for s in np.unique(t[~np.isnan(t)]).tolist()}
        return [None if math.isnan(s) else when[s] for s in t.tolist()]

    # ------------------------------------------------------------------- merge
    def _compatible(self, other: "Accumulator") -> None:
        if other.shape != self.shape or other.camera != self.camera or other.source is not self.source:
            raise FrameMismatchError(
                None,
                f"cannot merge statistics of {other.camera.label} {other.shape} into {self.camera.label} {self.shape}",
                "merge only states of the same body",
            )
        if (self.cfa is None) != (other.cfa is None) or (
            self.cfa is not None and other.cfa is not None and not np.array_equal(self.cfa, other.cfa)
        ):
            raise FrameMismatchError(None, "cannot merge states with different CFA patterns", "")

    def merge(self, other: "Accumulator") -> "Accumulator":
        """Add ``other``'s frames into this state (in place) and return self."""
        self._compatible(other)
        self.close_scene()
        other.close_scene()
        self._ensure_capacity(self.n_frames + other.n_frames)
        for name in ("n_invalid", "s_v", "s_r", "s_xr", "s_zz", "s_hi", "s_lo"):
            mine = getattr(self, name)
            theirs = getattr(other, name)
            if theirs.dtype.itemsize > mine.dtype.itemsize:
                mine = mine.astype(theirs.dtype)
                setattr(self, name, mine)
            np.add(mine, theirs, out=mine, casting="unsafe")
        np.minimum(self.vmin, other.vmin, out=self.vmin)
        np.maximum(self.vmax, other.vmax, out=self.vmax)
        if other.fs_index.size:
            self._note_first_seen(other.fs_index, other.fs_time)
        self._add_lines(other.ln_code, other.ln_count)
        # the other's scenes are numbered after this one's
        self.frames.extend(replace(f, scene=f.scene + self.n_scenes) for f in other.frames)
        self.view_sigs.update({scene + self.n_scenes: sig for scene, sig in other.view_sigs.items()})
        self.view_w.update({scene + self.n_scenes: w for scene, w in other.view_w.items()})
        self.n_frames += other.n_frames
        self.n_scenes += other.n_scenes
        self.sum_x += other.sum_x
        self.sum_xx += other.sum_xx
        return self

    def __iadd__(self, other: "Accumulator") -> "Accumulator":
        return self.merge(other)

    # ------------------------------------------------------------- save / load
    def _meta(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "shape": list(self.shape),
            "cfa": None if self.cfa is None else self.cfa.tolist(),
            "black": self.black.tolist(),
            "white": self.white,
            "camera": self.camera.to_dict(),
            "source": self.source.value,
            "margins": list(self.margins),
            "full_shape": list(self.full_shape),
            "params": self.params.to_dict(),
            "n_frames": self.n_frames,
            "n_scenes": self.n_scenes,
            "sum_x": self.sum_x,
            "sum_xx": self.sum_xx,
            "frames": [f.to_dict() for f in self.frames],
        }

    def to_bytes(self) -> bytes:
        """The state as an uncompressed ``.npz`` archive (arrays + ``meta.json``).

        Open views are saved open (their pending outliers as arrays), so a
        series continued from the file counts exactly as one run would.
        """
        buf = io.BytesIO()
        meta = self._meta()
        views = sorted(self._open.values(), key=lambda v: v.scene)
        meta["open_views"] = [
            {"scene": v.scene, "frames": v.frames, "time": None if math.isnan(v.time) else v.time, "last_used": v.last_used}
            for v in views
        ]
        meta["clock"] = self._clock
        meta["dark_views"] = sorted(self._dark_views)
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr("meta.json", json.dumps(meta))
            arrays = {name: getattr(self, name) for name in self._ARRAYS}
            arrays["fs_index"] = self.fs_index
            arrays["fs_time"] = self.fs_time
            arrays["ln_code"] = self.ln_code
            arrays["ln_count"] = self.ln_count
            scenes = sorted(self.view_sigs)
            arrays["view_scene"] = np.array(scenes, np.int64)
            if scenes:
                arrays["view_sig"] = np.stack([self.view_sigs[k] for k in scenes]).astype(np.float32)
                if set(self.view_w) == set(scenes):
                    arrays["view_w"] = np.stack([self.view_w[k] for k in scenes]).astype(np.float64)
            empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
            for i, v in enumerate(views):
                for name, pend in (("pending", v.pending), ("pending_lines", v.pending_lines)):
                    codes, counts = pend[0] if pend else empty
                    arrays[f"open{i}_{name}_codes"] = codes
                    arrays[f"open{i}_{name}_counts"] = counts
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
        return buf.getvalue()

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the state file atomically (never replacing one unless ``overwrite``)."""
        return atomic_write_bytes(path, self.to_bytes(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "Accumulator":
        """Read a state written by :meth:`save`, every part checked and bounded before it is used.

        The metadata (``meta.json``, at most :data:`MAX_STATE_META_BYTES`) is
        parsed as strict JSON and each field checked for type and range: a
        sensor of at least 4 x 4 and at most
        :data:`rawmap.defectmap.MAX_PHOTOSITES` photosites, a CFA of colour
        indices 0-3, frame records and open views of the right types.  Each
        array's ``.npy`` header is then checked against what the metadata
        implies (dtype among those the sums take, shape (H, W) for the sums,
        at most one entry per photosite for the sparse records) and its
        member's declared size against that header, before its data is read:
        a header claiming a huge array or a deflate bomb is refused unread.
        Sparse indices must be sorted, unique and on the sensor; pickled
        arrays are never read.

        Raises
        ------
        MapFormatError
            Missing, not a state file, of another version, or damaged: one
            line naming ``path`` and what is wrong.
        """
        path = Path(path)
        try:
            zf = open_zip(path)
        except FileNotFoundError:
            raise MapFormatError(f"{path}: no such state file") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise MapFormatError(f"{path}: not a rawmap state file ({_one_line(exc)})") from None
        with zf:
            try:
                meta = read_json_member(
                    zf, "meta.json", source=str(path), what="rawmap state file", limit=MAX_STATE_META_BYTES, allow_nan=True
                )
            except KeyError:
                raise MapFormatError(f"{path}: not a rawmap state file (no meta.json)") from None
            except _ZIP_ERRORS as exc:
                raise MapFormatError(f"{path}: damaged state file ({_one_line(exc)}); map the photos again") from None
            if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
                raise MapFormatError(f"{path}: not a rawmap state file")
            if meta.get("version") != STATE_VERSION:
                raise MapFormatError(
                    f"{path}: state version {_short(meta.get('version'))} is not supported (this rawmap reads "
                    f"{STATE_VERSION}); map the photos again"
                )
            try:
                return cls._from_state(zf, meta)
            except (StateFormatProblem, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
                raise MapFormatError(f"{path}: damaged state file ({_one_line(exc)}); map the photos again") from None
            except _ZIP_ERRORS as exc:
                raise MapFormatError(f"{path}: damaged state file ({_one_line(exc)}); map the photos again") from None

    @classmethod
    def _from_state(cls, zf: zipfile.ZipFile, meta: dict[str, Any]) -> "Accumulator":
        """The accumulator of an open state archive whose ``meta`` has the right format and version (see :meth:`load`)."""
        shape = _pair(meta, "shape", lo=4, hi=MAX_SENSOR_SIDE)
        H, W = shape
        if H * W > MAX_PHOTOSITES:
            raise StateFormatProblem(f"shape {H}x{W} is more than the {MAX_PHOTOSITES:,} photosites rawmap reads")
        n = H * W
        cfa = meta.get("cfa")
        if cfa is not None:
            cfa = [_int_in(v, "cfa", 0, 3) for row in _list_of(cfa, "cfa", 2) for v in _list_of(row, "cfa", 2)]
        black = [_finite(v, "black") for v in _list_of(meta.get("black"), "black", 4)]
        camera = meta.get("camera")
        if not isinstance(camera, dict) or not all(isinstance(camera.get(k, ""), str) for k in ("make", "model", "serial")):
            raise StateFormatProblem(f"camera {_short(camera)} is not a make, model and serial")
        source = SourceKind(meta.get("source"))
        params = meta.get("params")
        if not isinstance(params, dict):
            raise StateFormatProblem(f"params {_short(params)} is not an object")
        for f in fields(DetectionParams):
            if f.name in params:
                v = params[f.name]
                if isinstance(f.default, int):
                    _int_in(v, f"params.{f.name}", 0, 1 << 31)
                else:
                    _finite(v, f"params.{f.name}")
        n_frames = _int_in(meta.get("n_frames"), "n_frames", 0, 1 << 40)
        n_scenes = _int_in(meta.get("n_scenes"), "n_scenes", 0, 1 << 40)
        frames = meta.get("frames")
        if not isinstance(frames, list):
            raise StateFormatProblem(f"frames {_short(frames)} is not a list")
        records = [_frame_record(f, i, n_scenes) for i, f in enumerate(frames)]
        sums = {}
        for name in cls._ARRAYS:
            sums[name] = read_npy_member(zf, f"{name}.npy", _SUM_DTYPES[name], lambda s: s == (H, W), expect=f"({H}, {W})")
        if n_frames < int(sums["n_invalid"].max(initial=0)):
            raise StateFormatProblem(f"n_invalid counts more frames than the {n_frames} of the state")
        acc = cls(
            shape,
            cfa=None if cfa is None else np.array(cfa, np.uint8).reshape(2, 2),
            black=np.array(black, np.float64),
            white=_int_in(meta.get("white"), "white", 0, 1 << 32),
            camera=CameraId(*(camera.get(k, "") for k in ("make", "model", "serial"))),
            source=source,
            margins=_pair(meta, "margins", lo=0, hi=MAX_SENSOR_SIDE),
            full_shape=_pair(meta, "full_shape", lo=0, hi=MAX_SENSOR_SIDE),
            params=DetectionParams.from_dict(params),
            sums=sums,
        )

        def vector(name: str, dtype: Any, most: int) -> np.ndarray:
            return read_npy_member(zf, name, [dtype], lambda s: len(s) == 1 and s[0] <= most, expect=f"(k,), k <= {most:,}")

        def indices(arr: np.ndarray, name: str, lo: int, hi: int) -> np.ndarray:
            """Sorted, unique, within [lo, hi): what the merge kernels and detection take for granted."""
            if arr.size and (int(arr[0]) < lo or int(arr[-1]) >= hi or not bool(np.all(arr[1:] > arr[:-1]))):
                raise StateFormatProblem(f"{name} holds indices out of order or outside [{lo}, {hi})")
            return arr

        def pair(keys: str, vals: str, kdtype: Any, vdtype: Any, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
            k = indices(vector(keys, kdtype, hi - lo), keys, lo, hi)
            v = vector(vals, vdtype, hi - lo)
            if v.shape != k.shape:
                raise StateFormatProblem(f"{keys} and {vals} have shapes {k.shape} and {v.shape}")
            return k, v

        acc.fs_index, acc.fs_time = pair("fs_index.npy", "fs_time.npy", np.int64, np.float64, 0, n)
        acc.ln_code, acc.ln_count = pair("ln_code.npy", "ln_count.npy", np.int64, np.uint32, 0, 4 * n)
        # view signatures (absent in states written before views were tracked)
        if "view_scene.npy" in zf.namelist():
            scenes = indices(vector("view_scene.npy", np.int64, n_scenes), "view_scene", 1, n_scenes + 1)
            if scenes.size:
                sigs = read_npy_member(
                    zf, "view_sig.npy", [np.float32], lambda s: len(s) == 3 and s[0] == scenes.size and s[1] <= 32 and s[2] <= 48,
                    expect=f"({scenes.size}, h <= 32, w <= 48)",
                )
                acc.view_sigs = {int(k): sigs[i].astype(np.float64) for i, k in enumerate(scenes.tolist())}
                if "view_w.npy" in zf.namelist():
                    ws = read_npy_member(zf, "view_w.npy", [np.float64], lambda s: s == sigs.shape, expect=str(sigs.shape))
                    acc.view_w = {int(k): ws[i] for i, k in enumerate(scenes.tolist())}
        views = meta.get("open_views", [])
        if not isinstance(views, list) or len(views) > 1 << 16:
            raise StateFormatProblem("open_views is not a list of views")
        for i, v in enumerate(views):
            if not isinstance(v, dict):
                raise StateFormatProblem(f"open view {i} is not an object")
            t = v.get("time")
            view = _OpenView(
                _int_in(v.get("scene"), "open view scene", 0, n_scenes),
                frames=_int_in(v.get("frames"), "open view frames", 0, 1 << 40),
                time=math.nan if t is None else _number(t, "open view time"),
                last_used=_int_in(v.get("last_used"), "open view last_used", 0, 1 << 62),
            )
            for name, lo, hi in (("pending", -n, n + 1), ("pending_lines", 0, 4 * n)):
                codes, counts = pair(f"open{i}_{name}_codes.npy", f"open{i}_{name}_counts.npy", np.int64, np.int64, lo, hi)
                if name == "pending" and codes.size and not bool(np.all(codes != 0)):
                    raise StateFormatProblem(f"open view {i}: pending codes hold a 0")
                if codes.size:
                    setattr(view, name, [(codes, counts)])
            acc._open[view.scene] = view
        acc._clock = _int_in(meta.get("clock", 0), "clock", 0, 1 << 62)
        dark_views = meta.get("dark_views", [])
        if not isinstance(dark_views, list):
            raise StateFormatProblem(f"dark_views {_short(dark_views)} is not a list")
        acc._dark_views = {_int_in(v, "dark_views", 0, n_scenes) for v in dark_views} & set(acc._open)
        acc.n_frames = n_frames
        acc.n_scenes = n_scenes
        acc.sum_x = _number(meta.get("sum_x"), "sum_x")
        acc.sum_xx = _number(meta.get("sum_xx"), "sum_xx")
        acc.frames = records
        return acc


# ------------------------------------------------------------- reading a state file: checks
# (see Accumulator.load: everything read from a state file is checked before use)

#: Zip-level failures met while reading a member (a corrupt stream, a CRC mismatch, an
#: encrypted or unsupported member): the file is damaged.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError,
               NotImplementedError, OSError)

#: dtypes each running sum may have (see Accumulator._ensure_capacity).
_SUM_DTYPES: dict[str, tuple[Any, ...]] = {
    "n_invalid": (np.uint8, np.uint16, np.uint32),
    "s_v": (np.uint32, np.uint64),
    "s_r": (np.int32, np.int64),
    "vmin": (np.uint16,),
    "vmax": (np.uint16,),
    "s_xr": (np.float32,),
    "s_zz": (np.float32,),
    "s_hi": (np.uint8, np.uint16, np.uint32),
    "s_lo": (np.uint8, np.uint16, np.uint32),
}

_FRAME_KINDS = ("photo", "dark", "flat")


def _short(value: Any, n: int = 40) -> str:
    """A value read from a file, on one line, at most ``n`` characters."""
    text = repr(value).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _int_in(v: Any, what: str, lo: int, hi: int) -> int:
    """``v``: a JSON integer (not a boolean or float) in ``[lo, hi]``."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise StateFormatProblem(f"{what} {_short(v)} is not a whole number")
    if not lo <= v <= hi:
        raise StateFormatProblem(f"{what} {_short(v)} is out of range ({lo} to {hi})")
    return v


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise StateFormatProblem(f"{what} {_short(v)} is not a number")
    return float(v)


def _finite(v: Any, what: str) -> float:
    v = _number(v, what)
    if not math.isfinite(v):
        raise StateFormatProblem(f"{what} {v} is not a finite number")
    return v


def _list_of(v: Any, what: str, n: int) -> list[Any]:
    if not isinstance(v, list) or len(v) != n:
        raise StateFormatProblem(f"{what} {_short(v)} is not a list of {n}")
    return v


def _ints(meta: dict[str, Any], key: str, n: int, *, lo: int, hi: int) -> tuple[int, ...]:
    return tuple(_int_in(v, key, lo, hi) for v in _list_of(meta.get(key), key, n))


def _pair(meta: dict[str, Any], key: str, *, lo: int, hi: int) -> tuple[int, int]:
    a, b = _ints(meta, key, 2, lo=lo, hi=hi)
    return a, b


def _frame_record(d: Any, i: int, n_scenes: int) -> FrameRecord:
    """Frame record ``i`` of a state's metadata, its fields checked."""
    what = f"frame record {i}"
    if not isinstance(d, dict):
        raise StateFormatProblem(f"{what} is not an object")
    path, time, kind, overflow = d.get("path"), d.get("time"), d.get("kind", "photo"), d.get("overflow", False)
    if not isinstance(path, str) or not (time is None or isinstance(time, str)) or not isinstance(overflow, bool):
        raise StateFormatProblem(f"{what}: path, time or overflow of the wrong type")
    if kind not in _FRAME_KINDS:
        raise StateFormatProblem(f"{what}: kind {_short(kind)} is not one of {', '.join(_FRAME_KINDS)}")
    return FrameRecord(
        path=path,
        time=_dt.datetime.fromisoformat(time) if time else None,
        exposure=_number(d.get("exposure"), f"{what}: exposure"),
        iso=_number(d.get("iso"), f"{what}: iso"),
        x=_number(d.get("x"), f"{what}: x"),
        scene=_int_in(d.get("scene"), f"{what}: scene", 0, n_scenes),
        noise_a=_number(d.get("noise_a"), f"{what}: noise_a"),
        noise_b=_number(d.get("noise_b"), f"{what}: noise_b"),
        outliers=_int_in(d.get("outliers"), f"{what}: outliers", 0, 1 << 62),
        overflow=overflow,
        kind=kind,
    )
