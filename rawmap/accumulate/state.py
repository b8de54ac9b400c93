"""The state file of the accumulator: an uncompressed ``.npz`` archive (arrays + ``meta.json``).

:func:`state_bytes` writes it (open views saved open, so a series continued
from the file counts exactly as one run would); :func:`load_state` reads
it, every part checked and bounded before it is used (see
:meth:`rawmap.accumulate.Accumulator.load`).  The format is this module's
alone: the sums (:mod:`~rawmap.accumulate.sums`) and the views
(:mod:`~rawmap.accumulate.views`) do not know it.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import lzma
import math
import zipfile
import zlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..defectmap import MAX_PHOTOSITES, MAX_SENSOR_SIDE
from ..errors import MapFormatError, one_line
from ..frame import CameraId, SourceKind
from ..safeio import (
    StateFormatProblem,
    open_zip,
    pack_arrays,
    read_json_member,
    read_npy_member,
    read_packed_member,
)
from .records import DetectionParams, FrameRecord
from .views import _OpenView

STATE_FORMAT = "rawmap-accumulator"
STATE_VERSION = 2
#: state versions :func:`load_state` reads (1: the sums as ``.npy`` members)
READ_VERSIONS = (1, 2)
#: Largest ``meta.json`` (frame records included) :meth:`Accumulator.load` reads: about 200,000 frames.
MAX_STATE_META_BYTES = 64 * 1024 * 1024


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
        :data:`STATE_VERSION` (2): each per-photosite sum a packed array
        (``<name>.pk``, see :func:`_packed_sums`), about 10-11 bytes per
        photosite in all; 1: each an ``.npy`` member (23 bytes per
        photosite), what rawmap wrote before (kept to test and measure
        against).
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
        sums = {name: getattr(acc, name) for name in acc._ARRAYS}
        arrays: dict[str, np.ndarray] = {}
        if version == 1:
            arrays.update(sums)
        else:
            for name, pieces in _packed_sums(sums).items():
                with zf.open(f"{name}.pk", "w", force_zip64=True) as fh:
                    for piece in pieces:
                        fh.write(piece)
        arrays["fs_index"] = acc.fs_index
        arrays["fs_time"] = acc.fs_time
        arrays["ln_code"] = acc.ln_code
        arrays["ln_count"] = acc.ln_count
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
            keys = {k for k in vectors if k in ("fs_index", "ln_code", "view_scene") or k.endswith("_codes")}
            kinds = [_DELTA if k in keys else _RAW for k in vectors]
            jobs = [(_encode(k, a.reshape(1, -1), t, None), t) for (k, a), t in zip(vectors.items(), kinds)]
            for k, pieces in zip(vectors, pack_arrays(jobs)):
                with zf.open(f"{k}.pk", "w", force_zip64=True) as fh:
                    for piece in pieces:
                        fh.write(piece)
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
# arithmetic wraps modulo 2**bits, so it is exact whatever the values), then
# packed in byte planes (rawmap.safeio.pack_arrays).  Measured on mapped
# series (tests/benchmarks/bench_state.py): the residual of s_r from the s_v
# of a photosite and its four same-colour neighbours is 0 wherever no frame
# was skipped (~0.1-0.4 byte per photosite instead of 2); s_v from its left
# same-colour neighbour saves ~0.3 byte, vmin/vmax ~0.1 when that helps
# (decided on a sample); the float sums' low mantissa bytes are noise and
# are stored as they are.

#: the array as it is
_RAW = 0
#: minus its same-colour neighbour to the left (above, in the first two columns), zigzag-coded
_LEFT = 1
#: minus the element before it (1-D: the sorted keys of the sparse records), zigzag-coded
_DELTA = 3
#: ``s_r`` minus ``4 s_v - (s_v of the 4 same-colour neighbours)`` (as the fold takes them at the edges), zigzag-coded
_FROM_SV = 2
_TRANSFORMS = {
    "n_invalid": (_RAW,),
    "s_v": (_RAW, _LEFT),
    "s_r": (_RAW, _FROM_SV),
    "vmin": (_RAW, _LEFT),
    "vmax": (_RAW, _LEFT),
    "s_xr": (_RAW,),
    "s_zz": (_RAW,),
    "s_hi": (_RAW,),
    "s_lo": (_RAW,),
}
#: rows sampled to choose between transforms
_SAMPLE_ROWS = 64


def _unsigned(a: np.ndarray) -> np.ndarray:
    """``a`` viewed as the unsigned integers of its width (arithmetic on them wraps)."""
    return a.view(np.dtype(f"<u{a.dtype.itemsize}"))


def _zigzag(d: np.ndarray) -> np.ndarray:
    """Wrapped differences (unsigned) as zigzag codes: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... (in place)."""
    bits = 8 * d.dtype.itemsize
    s = d.view(np.dtype(f"<i{d.dtype.itemsize}"))
    sign = s >> (bits - 1)
    s <<= 1
    s ^= sign
    return d


def _unzigzag(z: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_zigzag` (in place)."""
    low = z & 1
    z >>= 1
    z ^= np.negative(low)
    return z


def _left(u: np.ndarray) -> np.ndarray:
    """The prediction of :data:`_LEFT` for unsigned ``u`` (a new array)."""
    pred = np.zeros_like(u)
    pred[:, 2:] = u[:, :-2]
    pred[2:, :2] = u[:-2, :2]
    return pred


def _undo_left(d: np.ndarray) -> np.ndarray:
    """``u`` from its :data:`_LEFT` differences ``d`` (unsigned, zigzag undone), in place."""
    for p in (0, 1):
        for q in (0, 1):
            np.cumsum(d[p::2, q], dtype=d.dtype, out=d[p::2, q])
    for q in (0, 1):
        np.cumsum(d[:, q::2], axis=1, dtype=d.dtype, out=d[:, q::2])
    return d


def _around(s_v: np.ndarray) -> np.ndarray:
    """``4 s_v - (s_v of the 4 same-colour neighbours)`` wrapped to 64 bits, the edges as the fold takes them."""
    s = s_v.astype(np.uint64)
    nb = np.zeros_like(s)
    nb[2:] += s[:-2]
    nb[:2] += s[2:4]
    nb[:-2] += s[2:]
    nb[-2:] += s[-4:-2]
    nb[:, 2:] += s[:, :-2]
    nb[:, :2] += s[:, 2:4]
    nb[:, :-2] += s[:, 2:]
    nb[:, -2:] += s[:, -4:-2]
    s <<= 2
    s -= nb
    return s


def _encode(name: str, a: np.ndarray, t: int, s_v: np.ndarray | None) -> np.ndarray:
    """``a`` under transform ``t`` (a new array of ``a``'s dtype)."""
    if t == _RAW:
        return np.ascontiguousarray(a)
    u = _unsigned(np.ascontiguousarray(a))
    if t == _LEFT:
        d = u - _left(u)
    elif t == _DELTA:
        d = u.copy()
        d[:, 1:] -= u[:, :-1]
    else:  # _FROM_SV: the residual in s_r's width (wrapped)
        assert s_v is not None
        d = (u.astype(np.uint64) - _around(s_v)).astype(u.dtype)
    return _zigzag(d).view(a.dtype)


def _decode(a: np.ndarray, t: int, s_v: np.ndarray | None) -> np.ndarray:
    """The inverse of :func:`_encode` (in place when it can)."""
    if t == _RAW:
        return a
    d = _unzigzag(_unsigned(a))
    if t == _LEFT:
        return _undo_left(d).view(a.dtype)
    if t == _DELTA:
        return np.cumsum(d, axis=1, dtype=d.dtype, out=d).view(a.dtype)
    assert s_v is not None
    return (d.astype(np.uint64) + _around(s_v)).astype(d.dtype).view(a.dtype)


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
        enc = _encode(name, a[take], t, s_v[take])[2::5]  # rows predicted from rows of the sample
        planes = pack_arrays([(np.ascontiguousarray(enc), t)], threads=1)[0]
        sizes.append(sum(len(p) for p in planes))
    return options[int(np.argmin(sizes))]


def _packed_sums(sums: dict[str, np.ndarray]) -> dict[str, list[bytes | memoryview]]:
    """Each per-photosite sum transformed (the best of its transforms on a sample of rows) and packed."""
    s_v = sums["s_v"]
    chosen = {name: _choose(name, a, s_v) for name, a in sums.items()}
    packed = pack_arrays([(_encode(name, a, chosen[name], s_v), chosen[name]) for name, a in sums.items()])
    return dict(zip(sums, packed))


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
        if meta.get("version") not in READ_VERSIONS or isinstance(meta.get("version"), bool):
            raise MapFormatError(
                f"{path}: state version {_short(meta.get('version'))} is not supported (this rawmap reads "
                f"{' and '.join(map(str, READ_VERSIONS))}); map the photos again"
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
    sums = {}
    for name in cls._ARRAYS:
        if meta["version"] == 1:
            sums[name] = read_npy_member(
                zf, f"{name}.npy", _SUM_DTYPES[name], lambda s: s == (H, W), expect=f"({H}, {W})"
            )
        else:
            arr, transform = read_packed_member(
                zf,
                f"{name}.pk",
                _SUM_DTYPES[name],
                lambda s: s == (H, W),
                expect=f"({H}, {W})",
                transforms=_TRANSFORMS[name],
            )
            sums[name] = _decode(arr, transform, sums.get("s_v"))
    if n_frames < int(sums["n_invalid"].max(initial=0)):
        raise StateFormatProblem(f"n_invalid counts more frames than the {n_frames} of the state")
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

    def vector(name: str, dtype: Any, most: int) -> np.ndarray:
        if meta["version"] == 1:
            return read_npy_member(
                zf, name, [dtype], lambda s: len(s) == 1 and s[0] <= most, expect=f"(k,), k <= {most:,}"
            )
        name = name.removesuffix(".npy") + ".pk"
        arr, transform = read_packed_member(
            zf,
            name,
            [dtype],
            lambda s: s[0] == 1 and s[1] <= most,
            expect=f"(1, k), k <= {most:,}",
            transforms=(_RAW, _DELTA),
        )
        return _decode(arr, transform, None)[0]

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
    )
