"""Bounded reading of files rawmap did not necessarily write: JSON text, zip members, ``.npy`` and packed arrays.

Every reader of a map or a state file goes through these, so that a
hand-edited, damaged or hostile file is refused with one
:class:`~rawmap.errors.MapFormatError` line before it can take memory, time
or a traceback:

* :func:`parse_json`: strict JSON (no ``NaN``/``Infinity`` unless asked
  for), Python's parser limits (integer digits, nesting) turned into the
  typed error, and an optional bound on the number of objects parsed;
* :func:`open_zip`: a zip archive, refused before :mod:`zipfile` reads a
  central directory of more than :data:`MAX_ZIP_MEMBERS` members;
* :func:`read_json_member`: a zip member of bounded declared size, parsed
  by :func:`parse_json`;
* :func:`read_npy_member`: an ``.npy`` member whose header (dtype, shape,
  order) is checked against what the caller expects, and whose declared
  size must be exactly what that header implies, before a byte of data is
  read (a deflate bomb or a header claiming a huge array is refused
  without allocating it).  Pickled (object) arrays are never read;
* :func:`read_packed_member`: a packed array (what :func:`pack_planes`
  writes: the byte planes of an array, each deflated or stored, behind a
  header of dtype, shape, transform and plane sizes), its header and plane
  table checked and every plane's size bounded by the shape the caller
  expects before a byte is read, each deflated plane inflated to exactly
  one byte per element, never more.

A zip member never yields more than its declared uncompressed size
(:mod:`zipfile` stops there and checks the CRC), so checking that size is
enough to bound what a member costs.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MapFormatError, StateFormatProblem  # StateFormatProblem re-exported here

__all__ = [
    "MAX_ZIP_MEMBERS",
    "PACK_MAGIC",
    "StateFormatProblem",
    "open_zip",
    "pack_planes",
    "pack_planes_later",
    "parse_json",
    "read_json_member",
    "read_npy_member",
    "read_packed_member",
]

#: Bytes read per step when an array member is copied into its array.
_CHUNK = 1 << 24

#: Most members :func:`open_zip` lets :mod:`zipfile` list (a state file has a few dozen:
#: 4 per open view): its central directory is read whole when the archive is opened.
MAX_ZIP_MEMBERS = 100_000


class _Refused(ValueError):
    """Raised inside the JSON parser's hooks: the text breaks one of :func:`parse_json`'s bounds."""


def _short(text: str, n: int = 40) -> str:
    """``text`` on one line, cut to ``n`` characters (hostile files put anything in their values)."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def parse_json(
    data: bytes | str,
    *,
    source: str,
    what: str = "rawmap defect map",
    allow_nan: bool = False,
    max_objects: int | None = None,
) -> Any:
    """Parse untrusted JSON within bounds, or raise one typed error line.

    Parameters
    ----------
    data : bytes or str
        The file's content; bytes must be UTF-8.
    source : str
        The file's name, first in every message.
    what : str, optional
        What the file should be, for the messages ("rawmap defect map").
    allow_nan : bool, optional
        Accept ``NaN``, ``Infinity`` and ``-Infinity`` (Python's ``json``
        writes them for non-finite floats: a state's metadata may hold
        some).  Off by default: a map holds none, and numbers that overflow
        to infinity (``1e999``) are refused alike.
    max_objects : int, optional
        Stop parsing with an error after this many JSON objects (``{...}``),
        so that a huge file cannot take gigabytes before it is refused.

    Returns
    -------
    object
        What :func:`json.loads` returns.

    Raises
    ------
    MapFormatError
        Not UTF-8, not JSON, ``NaN``/``Infinity`` (unless allowed), an
        integer of more than 4,300 digits (Python's limit), nesting deeper
        than Python's parser takes (about 1,000 levels), or more than
        ``max_objects`` objects.
    """

    def constant(name: str) -> float:
        if not allow_nan:
            raise _Refused(f"{name} is not a JSON number")
        return float(name)

    def number(text: str) -> float:
        value = float(text)
        if not allow_nan and not math.isfinite(value):
            raise _Refused(f"the number {_short(text, 20)} overflows to infinity")
        return value

    count = 0

    def counted(obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal count
        count += 1
        if max_objects is not None and count > max_objects:
            raise _Refused(f"more than {max_objects:,} entries, more than rawmap reads")
        return obj

    try:
        text = bytes(data).decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        return json.loads(text, parse_constant=constant, parse_float=number, object_hook=counted)
    except UnicodeDecodeError:
        raise MapFormatError(f"{source}: not a {what} (not JSON: a binary file)") from None
    except json.JSONDecodeError as exc:
        raise MapFormatError(f"{source}: not JSON ({exc.msg} at line {exc.lineno}); is this a {what}?") from None
    except _Refused as exc:
        raise MapFormatError(f"{source}: not a {what} ({exc})") from None
    except RecursionError:
        raise MapFormatError(f"{source}: not a {what} (JSON nested too deeply to read)") from None
    except (ValueError, OverflowError) as exc:
        if "digits" in str(exc):  # Python's own limit on integer literals (sys.get_int_max_str_digits)
            raise MapFormatError(f"{source}: not a {what} (an integer of more than 4,300 digits)") from None
        raise MapFormatError(f"{source}: not a {what} ({_short(str(exc), 120)})") from None


def open_zip(path: str | Path, *, max_members: int | None = None) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)``, refused before its central directory is read when it lists too many members.

    :mod:`zipfile` builds one record per member when it opens an archive, so
    a small file listing millions of members would take gigabytes; the
    count is read first from the end-of-archive record.

    Parameters
    ----------
    path : str or Path
    max_members : int, optional
        :data:`MAX_ZIP_MEMBERS` when omitted.

    Raises
    ------
    StateFormatProblem
        More than ``max_members`` members.
    OSError, zipfile.BadZipFile
        As :class:`zipfile.ZipFile` (missing file, not a zip archive).
    """
    max_members = MAX_ZIP_MEMBERS if max_members is None else max_members
    end_record = getattr(zipfile, "_EndRecData", None)  # private, but in every CPython since 2.x
    if end_record is not None:
        with open(path, "rb") as fh:
            try:
                record = end_record(fh)
            except (OSError, ValueError, struct.error):
                record = None
        if record is not None and int(record[4]) > max_members:
            raise StateFormatProblem(
                f"the archive lists {int(record[4]):,} members, more than the {max_members:,} rawmap reads"
            )
    return zipfile.ZipFile(path)


def read_json_member(
    zf: zipfile.ZipFile, name: str, *, source: str, what: str, limit: int, allow_nan: bool = False
) -> Any:
    """Member ``name`` of ``zf`` parsed by :func:`parse_json`, refused unread when it declares more than ``limit`` bytes.

    Raises
    ------
    KeyError
        No such member (the caller decides what that means).
    MapFormatError
        Larger than ``limit``, or not the JSON :func:`parse_json` takes.
    """
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise MapFormatError(
            f"{source}: not a {what} ({name} holds {info.file_size:,} bytes, more than the {limit:,} rawmap reads)"
        )
    return parse_json(zf.read(info), source=source, what=what, allow_nan=allow_nan)


def read_npy_member(
    zf: zipfile.ZipFile,
    name: str,
    dtypes: Iterable[np.dtype | type | str],
    shape_ok: Callable[[tuple[int, ...]], bool],
    *,
    expect: str,
) -> np.ndarray:
    """An ``.npy`` member of ``zf``, read only once its header and size are what the caller expects.

    Parameters
    ----------
    zf : zipfile.ZipFile
    name : str
        The member, e.g. ``"s_v.npy"``.
    dtypes : iterable of dtype-like
        The dtypes accepted, in native byte order (an object, complex,
        structured or byte-swapped array is refused).
    shape_ok : callable
        ``shape_ok(shape)`` is true for an acceptable shape; it bounds the
        array's size, and so the bytes read.
    expect : str
        The acceptable shapes in words, for the message.

    Returns
    -------
    ndarray
        A writable, C-ordered array of one of ``dtypes``.

    Raises
    ------
    StateFormatProblem
        Missing member, not ``.npy`` (version 1 or 2), a dtype or shape
        not accepted, Fortran order, a declared size other than the header
        implies, or data that ends early.
    """
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise StateFormatProblem(f"no {name}") from None
    allowed = [np.dtype(d) for d in dtypes]
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise StateFormatProblem(f"{name} is an .npy file of version {version}, not 1 or 2")
        except StateFormatProblem:
            raise
        except (ValueError, SyntaxError, TypeError) as exc:
            raise StateFormatProblem(f"{name} is not an .npy array ({_short(str(exc), 80)})") from None
        if dtype.hasobject or dtype not in allowed:
            words = " or ".join(str(d) for d in allowed)
            raise StateFormatProblem(f"{name} holds {dtype}, not {words}")
        if fortran:
            raise StateFormatProblem(f"{name} is in Fortran order")
        shape = tuple(int(n) for n in shape)
        if any(n < 0 for n in shape) or not shape_ok(shape):
            raise StateFormatProblem(f"{name} has shape {shape}, not {expect}")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != fh.tell() + nbytes:
            raise StateFormatProblem(f"{name} declares {info.file_size:,} bytes, its header {fh.tell() + nbytes:,}")
        arr = np.empty(shape, dtype)
        view = arr.reshape(-1).view(np.uint8).data
        done = 0
        while done < nbytes:
            n = fh.readinto(view[done : min(nbytes, done + _CHUNK)])  # type: ignore[attr-defined]
            if not n:
                raise StateFormatProblem(f"{name} ends after {done:,} of {nbytes:,} bytes")
            done += n
    return arr


# ------------------------------------------------------------- packed arrays (state files, version 2)

#: First bytes of a packed array (:func:`pack_arrays`).
PACK_MAGIC = b"RMPK"
#: The layout of the packed arrays :func:`pack_arrays` writes and :func:`read_packed_member` reads.
PACK_VERSION = 1
#: The dtypes a packed array may hold, by their code in its header.
_PACK_DTYPES = tuple(np.dtype(d) for d in ("|u1", "<u2", "<u4", "<u8", "<i4", "<i8", "<f4", "<f8"))
#: magic, layout version, dtype code, transform (the caller's), planes, rows, columns
_PACK_HEAD = struct.Struct("<4sBBBBII")
#: each plane: codec (:data:`_STORED` or :data:`_DEFLATED`), bytes stored
_PACK_PLANE = struct.Struct("<BQ")
_STORED, _DEFLATED = 0, 1
#: a plane is deflated only when a sample of it shrinks below this fraction
_DEFLATE_WORTH = 0.92
#: the sample: this many pieces of this many bytes spread over the plane
_SAMPLE_PIECES, _SAMPLE_BYTES = 8, 1 << 15


def _deflate(plane: np.ndarray) -> tuple[int, bytes | memoryview]:
    """One byte plane as (codec, bytes): deflated (run-length strategy) when a sample of it shrinks enough, else stored."""
    n = plane.size
    if n > _SAMPLE_PIECES * _SAMPLE_BYTES:
        starts = np.linspace(0, n - _SAMPLE_BYTES, _SAMPLE_PIECES).astype(np.int64)
        sample = b"".join(plane[s : s + _SAMPLE_BYTES].tobytes() for s in starts.tolist())
        c = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        if len(c.compress(sample) + c.flush()) > _DEFLATE_WORTH * len(sample):
            return _STORED, plane.data
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    packed = c.compress(plane.data) + c.flush()
    return (_DEFLATED, packed) if len(packed) < n else (_STORED, plane.data)


def pack_planes(
    arrays: list[tuple[np.ndarray, np.dtype, tuple[int, int], int]], *, threads: int = 2
) -> list[list[bytes | memoryview]]:
    """Each array, given as its byte planes, as a packed array: a header, then the planes, each deflated or stored.

    The byte planes of an array (byte 0 of every element, then byte 1, ...,
    as blosc's and HDF5's *shuffle* do) hold similar bytes together: the high
    bytes of small residuals are nearly all zero and shrink to almost
    nothing, the random low bytes are stored as they are (deflating them
    costs time for nothing: a sample of each plane decides).  Planes are
    deflated (:mod:`zlib`, run-length strategy) on ``threads`` threads
    (:mod:`zlib` runs without the interpreter lock).

    Parameters
    ----------
    arrays : list of ((k, H * W) ndarray of uint8, dtype, (H, W), int)
        Per array: its byte planes, little-endian (``k`` the itemsize of
        ``dtype``, one of the packed dtypes), the dtype and shape
        :func:`read_packed_member` checks, and the caller's transform code
        (0-255) it returns.
    threads : int, optional

    Returns
    -------
    list of list of bytes or memoryview
        Per array, the pieces of its packed form, in order (join them, or
        write them one after the other).
    """
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            return pack_planes_later(arrays, pool)()
    return pack_planes_later(arrays, None)()


def pack_planes_later(
    arrays: list[tuple[np.ndarray, np.dtype, tuple[int, int], int]], pool: Executor | None
) -> Callable[[], list[list[bytes | memoryview]]]:
    """:func:`pack_planes` started on ``pool`` (or run now when ``None``): call the result for the pieces.

    The caller may work meanwhile (prepare the next array's planes), but
    must not change ``arrays``' planes until it has the pieces.
    """
    heads = []
    for planes, dtype, (h, w), transform in arrays:
        dtype = np.dtype(dtype)
        if dtype not in _PACK_DTYPES or planes.shape != (dtype.itemsize, h * w) or planes.dtype != np.uint8:
            raise ValueError(f"cannot pack {planes.shape} planes of {planes.dtype} as {dtype} of shape {(h, w)}")
        heads.append(_PACK_HEAD.pack(PACK_MAGIC, PACK_VERSION, _PACK_DTYPES.index(dtype), transform, len(planes), h, w))
    flat = [np.ascontiguousarray(p) for planes, *_ in arrays for p in planes]
    if pool is None:
        now = [_deflate(p) for p in flat]
        started: list[Callable[[], tuple[int, bytes | memoryview]]] = [lambda d=d: d for d in now]  # type: ignore[misc]
    else:
        started = [pool.submit(_deflate, p).result for p in flat]

    def pieces() -> list[list[bytes | memoryview]]:
        done = [get() for get in started]
        out: list[list[bytes | memoryview]] = []
        i = 0
        for head, (planes, *_) in zip(heads, arrays):
            parts = done[i : i + len(planes)]
            i += len(planes)
            table = b"".join(_PACK_PLANE.pack(codec, len(data)) for codec, data in parts)  # (byte planes: len = bytes)
            out.append([head + table, *(data for _, data in parts)])
        return out

    return pieces


def read_packed_member(
    zf: zipfile.ZipFile,
    name: str,
    dtypes: Iterable[np.dtype | type | str],
    shape_ok: Callable[[tuple[int, int]], bool],
    *,
    expect: str,
    transforms: Iterable[int],
    buffer: np.ndarray | None = None,
) -> tuple[np.ndarray, np.dtype, tuple[int, int], int]:
    """A packed array (:func:`pack_planes`) of ``zf``, read only once its header and sizes are what the caller expects.

    The header is checked first (magic, layout version, a dtype among
    ``dtypes``, a transform among ``transforms``, a shape ``shape_ok``
    accepts (it bounds the array's size, and so the bytes read), one plane
    per byte of the dtype), then the plane table: a stored plane holds
    exactly one byte per element, a deflated one less, and the member's
    declared size must be exactly the header, table and planes.  A deflated
    plane is inflated to at most one byte per element and must give exactly
    that: what a member costs is bounded by the shape the caller expects,
    whatever the file holds.

    Parameters
    ----------
    zf : zipfile.ZipFile
    name : str
    dtypes : iterable of dtype-like
        The dtypes accepted.
    shape_ok : callable
        ``shape_ok((h, w))`` is true for an acceptable shape.
    expect : str
        The acceptable shapes in words, for the message.
    transforms : iterable of int
        The transform codes accepted.
    buffer : ndarray of uint8, optional
        Where to put the planes when it is large enough (a caller reading
        several arrays of one size saves the pages of fresh memory).

    Returns
    -------
    planes : (k, H * W) ndarray of uint8
        The byte planes (the caller undoes its transform), in ``buffer``
        when it was large enough.
    dtype : dtype
    shape : (int, int)
    transform : int

    Raises
    ------
    StateFormatProblem
        Missing member, not a packed array, anything in its header or
        table not as expected, or a plane that does not inflate to exactly
        one byte per element.
    """
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise StateFormatProblem(f"no {name}") from None
    allowed = [np.dtype(d).newbyteorder("<") for d in dtypes]
    with zf.open(info) as fh:
        head = fh.read(_PACK_HEAD.size)
        if len(head) < _PACK_HEAD.size:
            raise StateFormatProblem(f"{name} ends inside its header")
        magic, version, code, transform, nplanes, h, w = _PACK_HEAD.unpack(head)
        if magic != PACK_MAGIC or version != PACK_VERSION:
            raise StateFormatProblem(f"{name} is not a packed array of version {PACK_VERSION}")
        if code >= len(_PACK_DTYPES) or _PACK_DTYPES[code] not in allowed:
            words = " or ".join(str(d) for d in allowed)
            got = _PACK_DTYPES[code] if code < len(_PACK_DTYPES) else f"dtype code {code}"
            raise StateFormatProblem(f"{name} holds {got}, not {words}")
        dtype = _PACK_DTYPES[code]
        if transform not in set(transforms):
            raise StateFormatProblem(f"{name} has transform {transform}, which this rawmap does not know")
        if not shape_ok((h, w)):
            raise StateFormatProblem(f"{name} has shape {(h, w)}, not {expect}")
        if nplanes != dtype.itemsize:
            raise StateFormatProblem(f"{name} has {nplanes} byte planes for {dtype}")
        table = fh.read(_PACK_PLANE.size * nplanes)
        if len(table) < _PACK_PLANE.size * nplanes:
            raise StateFormatProblem(f"{name} ends inside its plane table")
        n = h * w
        sizes = [_PACK_PLANE.unpack_from(table, k * _PACK_PLANE.size) for k in range(nplanes)]
        for k, (codec, size) in enumerate(sizes):
            if codec == _STORED and size != n or codec == _DEFLATED and size >= n or codec not in (_STORED, _DEFLATED):
                raise StateFormatProblem(f"{name}: plane {k} (codec {codec}) of {size:,} bytes for {n:,} elements")
        total = _PACK_HEAD.size + len(table) + sum(size for _, size in sizes)
        if info.file_size != total:
            raise StateFormatProblem(f"{name} declares {info.file_size:,} bytes, its header {total:,}")
        if buffer is not None and buffer.size >= nplanes * n:
            planes = buffer[: nplanes * n].reshape(nplanes, n)
        else:
            planes = np.empty((nplanes, n), np.uint8)
        jobs = []
        for k, (codec, size) in enumerate(sizes):
            buf = planes[k] if codec == _STORED else np.empty(size, np.uint8)  # a stored plane read in place
            view = buf.data
            done = 0
            while done < size:
                got = fh.readinto(view[done : min(size, done + _CHUNK)])  # type: ignore[attr-defined]
                if not got:
                    raise StateFormatProblem(f"{name} ends after {done:,} of {size:,} bytes of plane {k}")
                done += got
            if codec == _DEFLATED:
                jobs.append((k, buf))

    def inflate(job: tuple[int, np.ndarray]) -> str | None:
        k, buf = job
        d = zlib.decompressobj()
        try:
            data = d.decompress(buf.data, n)
        except zlib.error as exc:
            return f"plane {k} is damaged ({_short(str(exc), 80)})"
        if len(data) != n or not d.eof or d.unconsumed_tail or d.unused_data:
            return f"plane {k} does not inflate to exactly {n:,} bytes"
        planes[k] = np.frombuffer(data, np.uint8)
        return None

    if len(jobs) > 1:
        with ThreadPoolExecutor(2) as pool:
            problems = list(pool.map(inflate, jobs))
    else:
        problems = [inflate(job) for job in jobs]
    for problem in problems:
        if problem:
            raise StateFormatProblem(f"{name}: {problem}")
    return planes, dtype, (h, w), transform
