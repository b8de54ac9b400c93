"""The state file of the accumulator (``.rawstate``): a zip archive of ``meta.json`` and the arrays.

:func:`state_bytes` writes it (open views saved open, so a series continued
from the file counts exactly as one run would); :func:`load_state` reads
it, every part checked and bounded before it is used (see
:meth:`rawmap.accumulate.Accumulator.load`).  The format is this module's
alone: the sums (:mod:`~rawmap.accumulate.sums`) and the views
(:mod:`~rawmap.accumulate.views`) do not know it.

=======  ==================================================================
version  members (the zip itself uncompressed)
=======  ==================================================================
1        ``meta.json``; every array an ``.npy`` member: 23-25 bytes per
         photosite in all (written before 2026-12; still read)
2        ``meta.json``; each per-photosite sum and each sparse record a
         packed array ``<name>.pk`` (:func:`rawmap.safeio.pack_planes`:
         a header, then the byte planes of the array after a lossless
         transform, each deflated or stored); the views' thumbnails
         deflated ``.npy`` members.  10.3-11.2 bytes per photosite on
         mapped series, bit for bit the same arrays once read
3        version 2 and ``s_xi.pk``, ``s_xxi.pk`` (each photosite's sums
         of x = exposure x ISO/100 and of x squared over the frames
         skipped for it); versions 1 and 2 are read as if those frames
         were average frames of the series
=======  ==================================================================

Version 2's (and 3's) transforms (each array's in its header, chosen on a sample of
rows where there are two; all integer arithmetic wraps, so they are exact
whatever the values): ``s_r`` minus ``4 s_v`` minus the ``s_v`` of the four
same-colour neighbours (0 wherever no frame was skipped), ``s_v``,
``vmin`` and ``vmax`` minus their same-colour neighbour to the left,
sorted sparse keys minus the key before; residuals zigzag-coded (small
either side of 0 -> small).  The float sums are stored as their bits: their
low mantissa bytes are noise, stored as they are.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import lzma
import math
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from ..defectmap import MAX_PHOTOSITES, MAX_SENSOR_SIDE
from ..errors import MapFormatError, one_line
from ..frame import CameraId, SourceKind
from ..safeio import (
    StateFormatProblem,
    open_zip,
    pack_planes,
    pack_planes_later,
    read_json_member,
    read_npy_member,
    read_packed_member,
)
from .records import DetectionParams, FrameRecord
from .views import _OpenView

STATE_FORMAT = "rawmap-accumulator"
STATE_VERSION = 3
#: state versions :func:`load_state` reads (1: the sums as ``.npy`` members; 1 and 2: no ``s_xi``, ``s_xxi``)
READ_VERSIONS = (1, 2, 3)
#: the per-photosite sums versions 1 and 2 lack (:func:`_skipped_x_sums_of_old`)
_SINCE_3 = ("s_xi", "s_xxi")
#: Largest ``meta.json`` (frame records included) :meth:`Accumulator.load` reads: about 200,000 frames.
MAX_STATE_META_BYTES = 64 * 1024 * 1024


def _sums_in(names: tuple[str, ...], version: int) -> tuple[str, ...]:
    """The per-photosite sums of ``names`` that a state of ``version`` holds."""
    return tuple(n for n in names if version >= 3 or n not in _SINCE_3)


def meta_of(acc: Any) -> dict[str, Any]:
    """The metadata of an :class:`~rawmap.accumulate.Accumulator`'s state (``meta.json``, frame records included).

    The file format knows the accumulator by its attributes only (no import: it sits below it).
    """
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "shape": list(acc.shape),
        "cfa": None if acc.cfa is None else acc.cfa.tolist(),
        "black": acc.black.tolist(),
        "white": acc.white,
        "camera": acc.camera.to_dict(),
        "source": acc.source.value,
        "channels": acc.channels,
        "margins": list(acc.margins),
        "full_shape": list(acc.full_shape),
        "params": acc.params.to_dict(),
        "n_frames": acc.n_frames,
        "n_scenes": acc.n_scenes,
        "sum_x": acc.sum_x,
        "sum_xx": acc.sum_xx,
        "frames": [f.to_dict() for f in acc.frames],
    }


def state_bytes(acc: Any, *, version: int = STATE_VERSION) -> bytes:
    """The state as an uncompressed zip archive (``meta.json``, the per-photosite sums, sparse ``.npy`` arrays).

    Open views are saved open (their pending outliers as arrays), so a
    series continued from the file counts exactly as one run would.

    Parameters
    ----------
    acc : Accumulator
    version : int, optional
        :data:`STATE_VERSION` (3): each per-photosite sum and sparse record
        a packed array (``<name>.pk``, see :func:`_write_packed`), about
        10-11 bytes per photosite in all; 2: the same without ``s_xi`` and ``s_xxi``; 1:
        each an ``.npy`` member (23-25 bytes per photosite), what rawmap
        wrote before (both kept to test and measure against).
    """
    if version not in READ_VERSIONS:
        raise ValueError(f"state version {version} is not one of {READ_VERSIONS}")
    buf = io.BytesIO()
    meta = meta_of(acc)
    meta["version"] = version
    views = sorted(acc._open.values(), key=lambda v: v.scene)
    meta["open_views"] = [
        {"scene": v.scene, "frames": v.frames, "time": None if math.isnan(v.time) else v.time, "last_used": v.last_used}
        for v in views
    ]
    meta["clock"] = acc._clock
    meta["dark_views"] = sorted(acc._dark_views)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("meta.json", json.dumps(meta))
        sums = {name: getattr(acc, name) for name in _sums_in(acc._ARRAYS, version)}
        arrays: dict[str, np.ndarray] = {}
        if version == 1:
            arrays.update(sums)
        else:
            _write_packed(zf, {name: (a, None, sums["s_v"]) for name, a in sums.items()})
        arrays["fs_index"] = acc.fs_index
        arrays["fs_time"] = acc.fs_time
        arrays["ln_code"] = acc.ln_code
        arrays["ln_count"] = acc.ln_count
        arrays["cl_code"] = acc.cl_code
        for j, col in enumerate(acc.CLIP_STATS):
            arrays[f"cl_{col}"] = np.ascontiguousarray(acc.cl_stats[:, j])
        scenes = sorted(acc.view_sigs)
        arrays["view_scene"] = np.array(scenes, np.int64)
        if scenes:
            # (version 1 kept them as float32: version 2 as they are, so a continued series matches exactly)
            sig_dtype = np.float32 if version == 1 else np.float64
            arrays["view_sig"] = np.stack([acc.view_sigs[k] for k in scenes]).astype(sig_dtype)
            if set(acc.view_w) == set(scenes):
                arrays["view_w"] = np.stack([acc.view_w[k] for k in scenes]).astype(np.float64)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        for i, v in enumerate(views):
            for name, pend in (("pending", v.pending), ("pending_lines", v.pending_lines)):
                codes, counts = pend[0] if pend else empty
                arrays[f"open{i}_{name}_codes"] = codes
                arrays[f"open{i}_{name}_counts"] = counts
        if version > 1:
            # the sparse vectors packed too (the sorted keys as differences: a few bits each)
            vectors = {k: a for k, a in arrays.items() if k not in ("view_sig", "view_w")}
            keys = {k for k in vectors if k in ("fs_index", "ln_code", "cl_code", "view_scene") or k.endswith("_codes")}
            _write_packed(zf, {k: (a.reshape(1, -1), _DELTA if k in keys else _RAW, None) for k, a in vectors.items()})
            arrays = {k: a for k, a in arrays.items() if k not in vectors}
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy")
            if version > 1:  # the views' thumbnails (a few kB each): deflated
                info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


# ------------------------------------------------------------- version 2: the sums packed
#
# Each sum is stored as what is left once it is predicted from what is
# stored before it (a transform, undone exactly on reading: all integer
# arithmetic wraps modulo 2**bits, so it is exact whatever the values; the
# floats are stored as their bits), then packed in byte planes
# (rawmap.safeio.pack_planes).  Measured on mapped series
# (tests/benchmarks/bench_state.py): the residual of s_r from the s_v of a
# photosite and its four same-colour neighbours is 0 wherever no frame was
# skipped (0.1-0.4 byte per photosite instead of 2); s_v from its left
# same-colour neighbour saves ~0.3 byte, vmin/vmax ~0.1 where that helps
# (decided on a sample of rows); the float sums' low mantissa bytes are noise
# and are stored as they are.  One compiled pass per array predicts and
# splits it into byte planes (numpy took 4 s of the 6 s of a 24 MP state).

#: the array as it is
_RAW = 0
#: minus its same-colour neighbour to the left (above, in the first two columns), zigzag-coded
_LEFT = 1
#: ``s_r`` minus ``4 s_v - (s_v of the 4 same-colour neighbours)`` (as the fold takes them at the edges), zigzag-coded
_FROM_SV = 2
#: minus the element before it (1-D: the sorted keys of the sparse records), zigzag-coded
_DELTA = 3
_TRANSFORMS = {
    "n_invalid": (_RAW,),
    "s_v": (_RAW, _LEFT),
    "s_r": (_RAW, _FROM_SV),
    "vmin": (_RAW, _LEFT),
    "vmax": (_RAW, _LEFT),
    "s_xr": (_RAW,),
    "s_xi": (_RAW,),
    "s_xxi": (_RAW,),
    "s_zz": (_RAW,),
    "s_hi": (_RAW,),
    "s_lo": (_RAW,),
}
#: rows sampled to choose between transforms
_SAMPLE_ROWS = 64
#: stands for ``s_v`` where a transform does not use it (one compiled variant fewer)
_NO_SV = np.zeros((1, 1), np.uint32)

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(inline="always")
def _zig(d, mask, top):  # pragma: no cover  (compiled)
    """Zigzag code of the wrapped difference ``d`` (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)."""
    d &= mask
    return ((d << _U1) ^ (_U0 - ((d >> top) & _U1))) & mask


@njit(inline="always")
def _unzig(z, mask):  # pragma: no cover  (compiled)
    return ((z >> _U1) ^ (_U0 - (z & _U1))) & mask


@njit(inline="always")
def _around(s_v, i, j, H, W):  # pragma: no cover  (compiled)
    """``4 s_v - (s_v of the 4 same-colour neighbours)`` at (i, j), wrapped to 64 bits, the edges as the fold takes them."""
    up = i - 2 if i >= 2 else i + 2
    down = i + 2 if i + 2 < H else i - 2
    left = j - 2 if j >= 2 else j + 2
    right = j + 2 if j + 2 < W else j - 2
    around = np.uint64(s_v[up, j]) + np.uint64(s_v[down, j]) + np.uint64(s_v[i, left]) + np.uint64(s_v[i, right])
    return np.uint64(4) * np.uint64(s_v[i, j]) - around


@njit(inline="always")
def _first(u, i, j, t):  # pragma: no cover  (compiled)
    """The prediction of :data:`_LEFT` / :data:`_DELTA` where there is no element to the left."""
    if t == _LEFT and i >= 2:
        return np.uint64(u[i - 2, j])
    return _U0


@njit(cache=True, nogil=True)
def _encode_planes(u, s_v, t, planes):  # pragma: no cover  (compiled)
    """``u`` (unsigned, (H, W)) under transform ``t`` into its byte planes ``planes`` (k, H * W)."""
    H, W = u.shape
    k = planes.shape[0]
    bits = np.uint64(8 * k)
    mask = _ONES >> (np.uint64(64) - bits)
    top = bits - _U1
    step = 1 if t == _DELTA else 2
    row = np.empty(W, np.uint64)
    for i in range(H):
        ui = u[i]
        if t == _RAW:
            for j in range(W):
                row[j] = np.uint64(ui[j])
        elif t == _FROM_SV:
            for j in range(W):
                row[j] = _zig(np.uint64(ui[j]) - _around(s_v, i, j, H, W), mask, top)
        else:
            for j in range(min(step, W)):
                row[j] = _zig(np.uint64(ui[j]) - _first(u, i, j, t), mask, top)
            for j in range(step, W):
                row[j] = _zig(np.uint64(ui[j]) - np.uint64(ui[j - step]), mask, top)
        at = i * W
        for b in range(k):
            pb = planes[b]
            shift = np.uint64(8 * b)
            for j in range(W):
                pb[at + j] = np.uint8((row[j] >> shift) & np.uint64(0xFF))


@njit(cache=True, nogil=True)
def _decode_planes(planes, s_v, t, u):  # pragma: no cover  (compiled)
    """The inverse of :func:`_encode_planes`: ``u`` (unsigned, (H, W)) from its byte planes."""
    H, W = u.shape
    k = planes.shape[0]
    bits = np.uint64(8 * k)
    mask = _ONES >> (np.uint64(64) - bits)
    step = 1 if t == _DELTA else 2
    row = np.empty(W, np.uint64)
    for i in range(H):
        at = i * W
        row[:] = 0
        for b in range(k):
            pb = planes[b]
            shift = np.uint64(8 * b)
            for j in range(W):
                row[j] |= np.uint64(pb[at + j]) << shift
        ui = u[i]
        if t == _RAW:
            for j in range(W):
                ui[j] = row[j]
        elif t == _FROM_SV:
            for j in range(W):
                ui[j] = (_unzig(row[j], mask) + _around(s_v, i, j, H, W)) & mask
        else:
            for j in range(min(step, W)):
                row[j] = (_unzig(row[j], mask) + _first(u, i, j, t)) & mask
            for j in range(step, W):
                row[j] = (_unzig(row[j], mask) + row[j - step]) & mask
            for j in range(W):
                ui[j] = row[j]


def _unsigned(a: np.ndarray) -> np.ndarray:
    """``a`` viewed as the unsigned integers of its width (arithmetic on them wraps)."""
    return a.view(np.dtype(f"<u{a.dtype.itemsize}"))


def _encode(a: np.ndarray, t: int, s_v: np.ndarray | None, buffer: np.ndarray | None = None) -> np.ndarray:
    """The byte planes ((k, H * W) uint8) of 2-D ``a`` under transform ``t`` (in ``buffer`` when it is large enough)."""
    a = np.ascontiguousarray(a)
    k = a.dtype.itemsize
    if t == _RAW and k == 1:
        return a.reshape(1, -1)
    if a.shape[0] == 1:  # a sparse record: small, numpy (no compiled variant for its dtype)
        u = _unsigned(a).reshape(-1)
        if t == _DELTA:
            d = u.copy()
            d[1:] -= u[:-1]
            s = d.view(np.dtype(f"<i{k}"))
            u = ((s << 1) ^ (s >> (8 * k - 1))).view(u.dtype)
        return np.ascontiguousarray(u.view(np.uint8).reshape(-1, k).T)
    if buffer is not None and buffer.size >= k * a.size:
        planes = buffer[: k * a.size].reshape(k, a.size)
    else:
        planes = np.empty((k, a.size), np.uint8)
    _encode_planes(_unsigned(a), _NO_SV if s_v is None else np.ascontiguousarray(s_v), t, planes)
    return planes


def _decode(planes: np.ndarray, dtype: np.dtype, shape: tuple[int, int], t: int, s_v: np.ndarray | None) -> np.ndarray:
    """The inverse of :func:`_encode`: the (H, W) array of ``dtype``."""
    if t == _RAW and dtype.itemsize == 1:
        return planes.reshape(shape).view(dtype).copy()  # (the planes may be a buffer used again)
    if t == _FROM_SV and (s_v is None or s_v.shape != shape):
        raise StateFormatProblem("s_r is stored from s_v, and there is no s_v of its shape")
    unsigned = np.dtype(f"<u{dtype.itemsize}")
    if shape[0] == 1:  # a sparse record (see _encode)
        u = np.ascontiguousarray(planes.T).view(unsigned).reshape(-1)
        if t == _DELTA:
            u = (u >> 1) ^ (np.zeros_like(u) - (u & 1))
            u = np.cumsum(u, dtype=unsigned)
        return u.view(dtype).reshape(shape)
    u = np.empty(shape, unsigned)
    _decode_planes(planes, _NO_SV if s_v is None else s_v, t, u)
    return u.view(dtype)


def _choose(name: str, a: np.ndarray, s_v: np.ndarray) -> int:
    """The transform of ``name`` that packs a sample of rows smallest."""
    options = _TRANSFORMS[name]
    if len(options) == 1:
        return options[0]
    H = a.shape[0]
    rows = np.unique(np.linspace(0, H - 5, min(_SAMPLE_ROWS, H // 5)).astype(np.int64) // 2 * 2)
    take = (rows[:, None] + np.arange(5)).ravel()  # 5 rows each: the predictions look 2 rows up and down
    sizes = []
    for t in options:
        planes = _encode(a[take], t, s_v[take]).reshape(a.dtype.itemsize, -1, 5, a.shape[1])[:, :, 2]
        packed = pack_planes([(planes.reshape(a.dtype.itemsize, -1), a.dtype, (rows.size, a.shape[1]), t)], threads=1)
        sizes.append(sum(len(p) for p in packed[0]))  # rows predicted from rows of the sample
    return options[int(np.argmin(sizes))]


def _write_packed(zf: zipfile.ZipFile, arrays: dict[str, tuple[np.ndarray, int | None, np.ndarray | None]]) -> None:
    """Each 2-D array ``name: (array, transform, s_v)`` transformed and packed into member ``name.pk`` of ``zf``.

    A transform of ``None`` is chosen on a sample (:func:`_choose`).  The
    planes of one array are deflated on two threads while the next array is
    transformed into the other of two buffers (fresh pages for every array
    cost more than the packing: ~1 s for the 550 MB of a 24 MP state).
    """
    buffers = [np.empty(0, np.uint8), np.empty(0, np.uint8)]
    waiting: list[tuple[str, Any]] = []

    def write(name: str, pieces: Any) -> None:
        with zf.open(f"{name}.pk", "w", force_zip64=True) as fh:
            for piece in pieces()[0]:
                fh.write(piece)

    with ThreadPoolExecutor(2) as pool:
        for i, (name, (a, t, s_v)) in enumerate(arrays.items()):
            if t is None:
                assert s_v is not None
                t = _choose(name, a, s_v)
            if a.dtype.itemsize * a.size > buffers[i % 2].size and a.size > 1 << 16:
                buffers[i % 2] = np.empty(a.dtype.itemsize * a.size, np.uint8)
            planes = _encode(a, t, s_v, buffers[i % 2])
            waiting.append((name, pack_planes_later([(planes, a.dtype, a.shape, t)], pool)))
            if len(waiting) > 1:  # the previous array, packed meanwhile: its buffer is free once written
                write(*waiting.pop(0))
        for job in waiting:
            write(*job)


def _read_packed_sums(zf: zipfile.ZipFile, names: tuple[str, ...], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The per-photosite sums of a version 2 state, each checked (:func:`rawmap.safeio.read_packed_member`) and decoded.

    One array is decoded on a thread of its own while the next is read and
    inflated into the other of two buffers.
    """
    H, W = shape
    buffers = [np.empty(0, np.uint8), np.empty(0, np.uint8)]
    decoded: dict[str, Any] = {}
    with ThreadPoolExecutor(1) as pool:
        for i, name in enumerate(names):
            if i >= 2:
                decoded[names[i - 2]].result()  # its buffer is free again
            if buffers[i % 2].size == 0:
                buffers[i % 2] = np.empty(4 * H * W, np.uint8)  # (a wider sum gets planes of its own)
            planes, dtype, _, transform = read_packed_member(
                zf,
                f"{name}.pk",
                _SUM_DTYPES[name],
                lambda s: s == (H, W),
                expect=f"({H}, {W})",
                transforms=_TRANSFORMS[name],
                buffer=buffers[i % 2],
            )
            s_v = decoded["s_v"].result() if transform == _FROM_SV and "s_v" in decoded else None
            decoded[name] = pool.submit(_decode, planes, dtype, (H, W), transform, s_v)
        return {name: job.result() for name, job in decoded.items()}


def load_state(cls: Any, path: str | Path) -> Any:
    """The state in ``path`` read into a new ``cls``: see :meth:`rawmap.accumulate.Accumulator.load`."""
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
        if type(meta.get("version")) is not int or meta.get("version") not in READ_VERSIONS:
            raise MapFormatError(
                f"{path}: state version {_short(meta.get('version'))} is not supported (this rawmap reads "
                f"{', '.join(map(str, READ_VERSIONS[:-1]))} and {READ_VERSIONS[-1]}); map the photos again"
            )
        try:
            return _from_state(cls, zf, meta)
        except (StateFormatProblem, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise MapFormatError(f"{path}: damaged state file ({_one_line(exc)}); map the photos again") from None
        except _ZIP_ERRORS as exc:
            raise MapFormatError(f"{path}: damaged state file ({_one_line(exc)}); map the photos again") from None


def _from_state(cls: Any, zf: zipfile.ZipFile, meta: dict[str, Any]) -> Any:
    """The accumulator of an open state archive whose ``meta`` has the right format and version (see :func:`load_state`)."""
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
    if not isinstance(camera, dict) or not all(
        isinstance(camera.get(k, ""), str) for k in ("make", "model", "serial", "serial_source")
    ):
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
    names = _sums_in(cls._ARRAYS, meta["version"])
    if meta["version"] == 1:
        sums = {
            name: read_npy_member(zf, f"{name}.npy", _SUM_DTYPES[name], lambda s: s == (H, W), expect=f"({H}, {W})")
            for name in names
        }
    else:
        sums = _read_packed_sums(zf, names, (H, W))
    if n_frames < int(sums["n_invalid"].max(initial=0)):
        raise StateFormatProblem(f"n_invalid counts more frames than the {n_frames} of the state")
    if meta["version"] < 3:
        sums["s_xi"], sums["s_xxi"] = _skipped_x_sums_of_old(sums["n_invalid"], meta, n_frames)
    acc = cls(
        shape,
        cfa=None if cfa is None else np.array(cfa, np.uint8).reshape(2, 2),
        black=np.array(black, np.float64),
        white=_int_in(meta.get("white"), "white", 0, 1 << 32),
        camera=CameraId(*(camera.get(k, "") for k in ("make", "model", "serial", "serial_source"))),
        source=source,
        margins=_pair(meta, "margins", lo=0, hi=MAX_SENSOR_SIDE),
        full_shape=_pair(meta, "full_shape", lo=0, hi=MAX_SENSOR_SIDE),
        params=DetectionParams.from_dict(params),
        sums=sums,
    )

    def member(name: str) -> str:
        """The member of array ``name.npy`` in this state's version."""
        return name if meta["version"] == 1 else name.removesuffix(".npy") + ".pk"

    def vector(name: str, dtype: Any, most: int) -> np.ndarray:
        if meta["version"] == 1:
            return read_npy_member(
                zf, name, [dtype], lambda s: len(s) == 1 and s[0] <= most, expect=f"(k,), k <= {most:,}"
            )
        name = member(name)
        planes, dt, shape, transform = read_packed_member(
            zf,
            name,
            [dtype],
            lambda s: s[0] == 1 and s[1] <= most,
            expect=f"(1, k), k <= {most:,}",
            transforms=(_RAW, _DELTA),
        )
        return _decode(planes, dt, shape, transform, None)[0]

    def indices(arr: np.ndarray, name: str, lo: int, hi: int) -> np.ndarray:
        """Sorted, unique, within [lo, hi): what the merge kernels and detection take for granted."""
        if arr.size and (int(arr[0]) < lo or int(arr[-1]) >= hi or not bool(np.all(arr[1:] > arr[:-1]))):
            raise StateFormatProblem(f"{name} holds indices out of order or outside [{lo}, {hi})")
        return arr

    def pair(keys: str, vals: str, kdtype: Any, vdtype: Any, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        k = indices(vector(keys, kdtype, hi - lo), member(keys), lo, hi)
        v = vector(vals, vdtype, hi - lo)
        if v.shape != k.shape:
            raise StateFormatProblem(f"{member(keys)} and {member(vals)} have shapes {k.shape} and {v.shape}")
        return k, v

    channels = meta.get("channels")
    if channels is not None:
        acc.channels = _int_in(channels, "channels", 0, 5)
    acc.fs_index, acc.fs_time = pair("fs_index.npy", "fs_time.npy", np.int64, np.float64, 0, n)
    acc.ln_code, acc.ln_count = pair("ln_code.npy", "ln_count.npy", np.int64, np.uint32, 0, 4 * n)
    # what the frames in which a photosite clipped alone put into its sums (absent in states written
    # before it was kept): the keys read once, then each column checked against them
    if member("cl_code.npy") in zf.namelist():
        code = indices(vector("cl_code.npy", np.int64, n), member("cl_code.npy"), 0, n)
        columns = []
        for col in acc.CLIP_STATS:
            values = vector(f"cl_{col}.npy", np.float64, n)
            if values.shape != code.shape:
                raise StateFormatProblem(
                    f"{member('cl_code.npy')} and {member(f'cl_{col}.npy')} have shapes {code.shape} and {values.shape}"
                )
            if not np.all(np.isfinite(values)):
                raise StateFormatProblem(f"{member(f'cl_{col}.npy')} holds a value that is not finite")
            columns.append(values)
        acc.cl_code = code
        acc.cl_stats = np.stack(columns, axis=1) if code.size else np.zeros((0, len(acc.CLIP_STATS)), np.float64)
    # view signatures (absent in version-1 states written before views were tracked; every version-2
    # state has the member, so its absence there is damage: a flipped bit in its name)
    if meta["version"] > 1 and "view_scene.pk" not in zf.namelist():
        raise StateFormatProblem("view_scene.pk is missing")
    if ("view_scene.npy" if meta["version"] == 1 else "view_scene.pk") in zf.namelist():
        scenes = indices(vector("view_scene.npy", np.int64, n_scenes), "view_scene", 1, n_scenes + 1)
        if scenes.size:
            sigs = read_npy_member(
                zf,
                "view_sig.npy",
                [np.float32] if meta["version"] == 1 else [np.float64],
                lambda s: len(s) == 3 and s[0] == scenes.size and s[1] <= 32 and s[2] <= 48,
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
        for name, lo, hi in (("pending", -n, n + 1), ("pending_lines", -4 * n, 4 * n)):
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
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    OSError,
)

#: dtypes each running sum may have (see Accumulator._ensure_capacity).
_SUM_DTYPES: dict[str, tuple[Any, ...]] = {
    "n_invalid": (np.uint8, np.uint16, np.uint32),
    "s_v": (np.uint32, np.uint64),
    "s_r": (np.int32, np.int64),
    "vmin": (np.uint16,),
    "vmax": (np.uint16,),
    "s_xr": (np.float32,),
    "s_xi": (np.float32,),
    "s_xxi": (np.float32,),
    "s_zz": (np.float32,),
    "s_hi": (np.uint8, np.uint16, np.uint32),
    "s_lo": (np.uint8, np.uint16, np.uint32),
}

_FRAME_KINDS = ("photo", "dark", "flat")


def _skipped_x_sums_of_old(n_invalid: np.ndarray, meta: dict[str, Any], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``s_xi`` and ``s_xxi`` for a version 1 or 2 state, which did not keep them: each skipped frame
    taken as an average frame of the series (its mean x and mean x squared).

    A series continued from such a state adds the exact sums of its new
    frames.
    """
    n = max(n_frames, 1)
    skipped = n_invalid.astype(np.float64)
    mean_x = _finite(meta.get("sum_x"), "sum_x") / n
    mean_xx = _finite(meta.get("sum_xx"), "sum_xx") / n
    return (skipped * mean_x).astype(np.float32), (skipped * mean_xx).astype(np.float32)


def _short(value: Any, n: int = 40) -> str:
    """A value read from a file, on one line, at most ``n`` characters."""
    text = repr(value).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def _one_line(exc: BaseException) -> str:
    return one_line(exc, 160) or type(exc).__name__


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
        temperature=_temperature(d.get("temperature"), what),
        view_outliers=None
        if d.get("view_outliers") is None
        else _int_in(d.get("view_outliers"), f"{what}: view_outliers", 0, 1 << 62),
        level=_levels(d.get("level"), what),
    )


def _levels(v: Any, what: str) -> tuple[float, ...] | None:
    """A frame record's brightness per pattern position: absent or null (older states) or 4 finite numbers >= 0."""
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 4:
        raise StateFormatProblem(f"{what}: level is not a list of 4 numbers")
    out = tuple(_finite(x, f"{what}: level") for x in v)
    if min(out) < 0:
        raise StateFormatProblem(f"{what}: level below 0")
    return out


def _temperature(v: Any, what: str) -> float | None:
    """A frame record's temperature: absent or null (older states, files without one) or a finite number."""
    return None if v is None else _finite(v, f"{what}: temperature")
