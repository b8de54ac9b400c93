"""Allocator setting of the ``rawmap`` command: let big freed buffers be reused.

LibRaw allocates every photo's raw data (48 MB for 24 MP) and frees it when
the file is closed.  glibc serves a request that large with a fresh
``mmap`` and gives it back with ``munmap``, so each frame decoded by a
worker thread of ``rawmap map`` faulted in ~12 000 new pages, two threads
at once in one address space: 0.07 s of system time per 24 MP frame,
measured on the project's 2-core machine, against 0.03 s with this setting.
(The main thread's heap often keeps such blocks; worker threads' arenas
never do.)

:func:`reuse_large_buffers` raises glibc's mmap threshold and puts every
thread on one arena, so a freed frame buffer stays in the heap and the next
decode reuses it.  It also stops numpy from asking for transparent huge
pages (:func:`no_huge_pages`).  It changes the whole process, so only the
command (an application) calls it; library functions never do.
"""

from __future__ import annotations

import ctypes
import importlib
import os

__all__ = ["reuse_large_buffers", "no_huge_pages"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return False


def no_huge_pages() -> bool:
    """Stop numpy from advising transparent huge pages for its large arrays (Linux).

    numpy marks every array of 4 MB or more ``MADV_HUGEPAGE``.  Where the
    kernel honours that advice at the first write, with direct reclaim and
    compaction when no huge page is free (THP ``enabled`` and ``defrag``
    set to ``madvise``, common defaults; the project's machine), the
    full-sensor temporaries of classifying a 24 MP series cost seconds of
    system time: the whole ``rawmap map`` of 12 frames of 24 MP, five runs
    of each alternated, took 4.5-6.3 s (CPU 5.8-6.1 s, 1.0-1.5 s of it
    system) instead of 5.6-7.0 s (CPU 6.8-7.3 s, 2.3-2.6 s system).  The
    running sums never asked for huge pages (see
    :func:`rawmap.accumulate.sums._zeros`).

    Returns
    -------
    bool
        True when numpy took the setting (False: a numpy without it).
    """
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            setter = getattr(importlib.import_module(name), "_set_madvise_hugepage", None)
        except ImportError:
            continue
        if setter is not None:
            setter(False)
            return True
    return False


def reuse_large_buffers(threshold: int = 512 << 20) -> bool:
    """Keep freed blocks up to ``threshold`` bytes in the heap for reuse (glibc only).

    Parameters
    ----------
    threshold : int
        Requests up to this size come from the heap instead of a fresh
        ``mmap``; freed memory at the top of the heap is returned to the
        system only beyond twice this.

    Also calls :func:`no_huge_pages`.

    Returns
    -------
    bool
        True when glibc accepted the settings; False on other C libraries
        (nothing is changed there).
    """
    no_huge_pages()
    mallopt = _glibc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    trim = min(2 * threshold, 2**31 - 1)
    return all(
        mallopt(option, value) == 1
        for option, value in ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, threshold), (_M_TRIM_THRESHOLD, trim))
    )


def release_free_memory() -> bool:
    """Return the heap's free pages to the system (glibc's ``malloc_trim``; glibc only).

    Under :func:`reuse_large_buffers` the frames' decode buffers stay in the
    heap once freed; a caller done with them (a series folded, its
    classification next) calls this so that classification's own arrays
    do not come on top of them in the process's peak.

    Returns
    -------
    bool
        True when memory was returned; False when none was, or on other C
        libraries.
    """
    trim = _glibc_function("malloc_trim", [ctypes.c_size_t])
    return trim is not None and bool(trim(0))


def _glibc_function(name: str, argtypes: list):
    """glibc's function ``name`` (returning int) with ``argtypes``; None on other C libraries."""
    if not _glibc():
        return None
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn
