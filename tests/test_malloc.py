"""The allocator setting of the rawmap command (run in child processes: it is process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GLIBC = hasattr(os, "confstr") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")

# LibRaw-sized blocks freed and allocated again on a worker thread: page faults per round
PROBE = r"""
import ctypes, resource, sys, threading
from rawmap._malloc import reuse_large_buffers
ok = reuse_large_buffers() if sys.argv[1] == "reuse" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def work():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        a = libc.malloc(48 << 20)           # what LibRaw does for a 24 MP frame
        ctypes.memset(a, 1, 48 << 20)        # and writes it
        libc.free(a)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
t = threading.Thread(target=work); t.start(); t.join()
print(ok, max(faults[2:]))
"""


def _probe(setting: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, setting], check=True, capture_output=True, text=True)
    ok, faults = out.stdout.split()
    return ok, int(faults)


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's; elsewhere reuse_large_buffers() changes nothing")
def test_freed_frame_buffers_are_reused_on_worker_threads():
    ok, faults = _probe("reuse")
    assert ok == "True"
    assert faults < 100  # the block is reused: no page of it is mapped again
    # without the setting, each round maps the 48 MB afresh (~12 000 pages)
    assert _probe("default")[1] > 10_000


# two frame-sized blocks freed under the setting stay in the heap until released
RELEASE = r"""
import ctypes
from rawmap._malloc import release_free_memory, reuse_large_buffers
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
reuse_large_buffers()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(48 << 20) for _ in range(2)]
keep = libc.malloc(1 << 20)                  # above them: the heap's top cannot shrink past it
for b in blocks:
    ctypes.memset(b, 1, 48 << 20)
    libc.free(b)
held = rss()
released = release_free_memory()
print(released, held - rss())
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_release_free_memory_returns_the_freed_frame_buffers():
    """Freed decode buffers stay mapped under reuse_large_buffers; release_free_memory hands their pages
    back (called once a series is folded, before its classification)."""
    out = subprocess.run([sys.executable, "-c", RELEASE], check=True, capture_output=True, text=True)
    released, dropped = out.stdout.split()
    assert released == "True"
    assert int(dropped) > 80 << 20  # most of the 96 MB


@pytest.mark.skipif(GLIBC, reason="on glibc the setting applies")
def test_other_c_libraries_are_left_alone():
    assert _probe("reuse")[0] == "False"


def test_numpy_no_longer_asks_for_huge_pages():
    """After the command's setting, numpy's huge-page advice is off (its setter returns the previous value)."""
    code = (
        "import numpy as np\n"
        "from rawmap._malloc import reuse_large_buffers\n"
        "try:\n"
        "    from numpy._core.multiarray import _set_madvise_hugepage as advise\n"
        "except ImportError:\n"
        "    from numpy.core.multiarray import _set_madvise_hugepage as advise\n"
        "before = advise(True)\n"
        "advise(before)\n"
        "reuse_large_buffers()\n"
        "print(before, advise(True))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    before, after = out.stdout.split()
    assert after == "False"
    assert before in ("True", "False")  # numpy's own default depends on the kernel's version
