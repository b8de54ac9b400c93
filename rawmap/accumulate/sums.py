"""The exact, mergeable running sums of the accumulator: the arrays, their memory, sparse records.

Per-photosite arrays (see the table of :mod:`rawmap.accumulate`) and the
sorted sparse records (first-seen times, line counts, a view's pending
outliers) merged linearly.  Nothing here knows about views or files.
"""

from __future__ import annotations

import mmap

import numpy as np

from .. import _kernels
from .._memory import gigabytes
from ..frame import Frame, SourceKind

#: bytes of running sums per photosite (the arrays of :func:`new_sums`)
BYTES_PER_PHOTOSITE = 31


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
    dtypes = {
        "n_invalid": np.uint8,
        "s_v": np.uint32,
        "s_r": np.int32,
        "vmin": np.uint16,
        "vmax": np.uint16,
        "s_xr": np.float32,
        "s_xi": np.float32,
        "s_xxi": np.float32,
        "s_zz": np.float32,
        "s_hi": np.uint8,
        "s_lo": np.uint8,
    }
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


def _merge_rows(
    keys: np.ndarray, rows: np.ndarray, new_keys: np.ndarray, new_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Add ``new_keys -> new_rows`` (K, C) into the sorted unique ``keys -> rows`` (N, C); keys in
    both add.  For the few hundred records a frame adds (photosites clipped alone), not a sensor's worth."""
    new_keys = np.asarray(new_keys, np.int64)
    if new_keys.size == 0:
        return keys, rows
    out_keys = np.union1d(keys, new_keys)
    out = np.zeros((out_keys.size, rows.shape[1]), np.float64)
    out[np.searchsorted(out_keys, keys)] += rows
    np.add.at(out, np.searchsorted(out_keys, new_keys), np.asarray(new_rows, np.float64))
    return out_keys, out


def _pend(pending: list[tuple[np.ndarray, np.ndarray]], codes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Add one frame's codes (each once) to an open burst's (unique codes, frames seen) record.

    Keeps a burst's pending outliers at about one frame's worth, however long the burst.
    """
    keys, counts = pending[0] if pending else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    # the kernel emits codes in photosite order, dark ones negated: that order, dark ones
    # reversed first, is sorted (_merge_sorted checks, and sorts if it is not)
    codes = np.concatenate([codes[codes < 0][::-1], codes[codes >= 0]])
    return [_merge_sorted(keys, counts, codes, 1, np.add)]
