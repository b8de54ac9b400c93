"""How much memory this process can still get: to refuse a big allocation before it fails half-way.

A corrupt header can claim a sensor of hundreds of millions of photosites;
sizing statistics from it must fail at once with a clear message, not
take gigabytes and then fail inside a worker thread.  Two limits apply,
whichever is lower:

* the memory the operating system can hand out without swapping
  (``MemAvailable`` of ``/proc/meminfo`` on Linux, else the free physical
  pages from ``os.sysconf``);
* the process's address-space limit (``RLIMIT_AS``, e.g. ``ulimit -v`` or
  a container's setting) minus the address space already in use
  (``VmSize`` of ``/proc/self/status``).

Both are estimates: memory in use by other programs changes all the time,
so a check here makes a failure unlikely, never impossible; callers still
turn a :class:`MemoryError` into a clear message.
"""

from __future__ import annotations

import os

__all__ = ["available_bytes", "gigabytes"]


def _meminfo(field: str, path: str = "/proc/meminfo") -> int | None:
    """A ``kB`` field of a ``/proc`` status file, in bytes; None when unknown."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    parts = line.split()
                    return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    except OSError:
        return None
    return None


def _physical() -> int | None:
    """Memory the system can hand out now, in bytes (None: unknown)."""
    avail = _meminfo("MemAvailable")
    if avail is not None:
        return avail
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _address_space() -> int | None:
    """Address space left under ``RLIMIT_AS``, in bytes (None: no limit, or unknown)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    used = _meminfo("VmSize", "/proc/self/status") or 0
    return max(0, soft - used)


def available_bytes() -> int | None:
    """Bytes this process can still allocate, at best; ``None`` when nothing is known.

    Returns
    -------
    int or None
        The lower of the physical memory available and the address space
        left under ``RLIMIT_AS`` (see the module docstring).

    Examples
    --------
    >>> n = available_bytes()
    >>> n is None or n >= 0
    True
    """
    limits = [v for v in (_physical(), _address_space()) if v is not None]
    return min(limits) if limits else None


def gigabytes(nbytes: float) -> str:
    """``nbytes`` for messages: ``"16.1 GB"``, ``"0.31 GB"``.

    Examples
    --------
    >>> gigabytes(16.1e9), gigabytes(3.1e8)
    ('16.1 GB', '0.31 GB')
    """
    gb = nbytes / 1e9
    return f"{gb:.1f} GB" if gb >= 10 else f"{gb:.2g} GB"
