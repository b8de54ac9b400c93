"""Throughput and memory of ``rawmap map`` on 24 MP frames, as ratios measured in one run.

Run:  python tests/benchmarks/bench_throughput.py [--frames 16] [--runs 5] [--height 4000 --width 6000]

Writes a simulated series of uncompressed 24 MP DNG frames (``rawmap.testing``:
varied scenes, shot/read noise, planted defects) to a temporary folder, then
times, in one process and in turn:

* decode only: LibRaw decode + copy of ``raw_image_visible`` for every file
  (what any mapper must do at least);
* the seed's loop: the same decode, then the classic float64 Welford
  mean/M2 update per photosite;
* rawmap: ``rawmap.mapping.map_files`` on the same files (two threads each
  decoding a file and folding it into the sums band by band with the
  compiled kernel, classification at the end).

Each is run ``--runs`` times (5), alternating, and its fastest run is kept:
on a shared 2-core machine single runs of the same code vary by 30 % or
more, and the fastest run is the one least disturbed.  This is done
in two child processes, one per allocator setting, all three methods
under the same one:

* ``default``: glibc as it comes (what a program calling ``map_files``
  gets);
* ``reuse``: the setting the ``rawmap`` command makes
  (``rawmap._malloc.reuse_large_buffers``: freed frame buffers stay in the
  heap and are reused).  It speeds up the baselines too, the seed's loop
  most (it allocates three 192 MB float64 arrays per frame).

Peak memory (``VmHWM``) is measured in further children running the same
``map_files`` call under each setting, reported per photosite both gross
and net of the child's interpreter + imports baseline.

Targets: rawmap <= 1.5x decode-only, >= 2.5x faster than the seed's loop,
<= 40 bytes per photosite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rawpy

from rawmap._malloc import reuse_large_buffers
from rawmap.mapping import map_files
from rawmap.testing import SensorSpec, generate_series

# VmHWM (not ru_maxrss, which a child inherits from its parent across fork+exec)
CHILD = r"""
import json, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
if sys.argv[1] == "reuse":
    from rawmap._malloc import reuse_large_buffers
    reuse_large_buffers()  # as the rawmap command does
from rawmap.mapping import map_files
import rawmap._kernels  # load the compiled kernels before measuring the baseline
base = hwm()
if sys.argv[2] == "map":
    map_files(sys.argv[3:])
print(json.dumps({"base": base, "peak": hwm()}))
"""


def make_series(folder: Path, n: int, H: int, W: int, seed: int = 7) -> list[Path]:
    """A simulated series (rawmap.testing: varied scenes, bursts, long exposures, planted defects)."""
    truth = generate_series(folder, n_frames=n, seed=seed, spec=SensorSpec(H, W))
    return [folder / f.file for f in truth.frames]


def decode_only(paths):
    for p in paths:
        with rawpy.imread(str(p)) as raw:
            m = raw.raw_image_visible.copy()
    return m


def seed_welford(paths):
    count = 0
    mean = m2 = None
    for p in paths:
        with rawpy.imread(str(p)) as raw:
            x = raw.raw_image_visible.astype(np.float64)
        if mean is None:
            mean = np.zeros_like(x)
            m2 = np.zeros_like(x)
        count += 1
        delta = x - mean
        mean += delta / count
        m2 += delta * (x - mean)
    return np.argmin(m2)


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def child_memory(setting, mode, paths):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, setting, mode, *map(str, paths)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_times(setting, runs, paths):
    """Run the three methods, alternating, in a child process under one allocator setting."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", setting, str(runs), *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def times(setting, n_runs, paths):
    if setting == "reuse":
        reuse_large_buffers()
    # warm-up: page cache and compiled kernels
    decode_only(paths)
    map_files(paths[:3])
    runs = {"decode": [], "welford": [], "rawmap": []}
    for _ in range(n_runs):
        runs["decode"].append(timed(decode_only, paths))
        runs["welford"].append(timed(seed_welford, paths))
        runs["rawmap"].append(timed(map_files, paths))
    return {k: min(v) for k, v in runs.items()}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(times(sys.argv[2], int(sys.argv[3]), sys.argv[4:])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5, help="runs of each method per setting (fastest kept)")
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--width", type=int, default=6000)
    args = ap.parse_args()
    H, W = args.height, args.width
    n_px = H * W
    rows = [("frames", f"{args.frames} x {H}x{W} ({n_px / 1e6:.0f} MP) uncompressed DNG, fastest of {args.runs} runs")]
    with tempfile.TemporaryDirectory(prefix="rawmap-bench-") as tmp:
        paths = make_series(Path(tmp), args.frames, H, W)
        for setting in ("default", "reuse"):
            t = child_times(setting, args.runs, paths)
            mem = child_memory(setting, "map", paths)
            base = child_memory(setting, "none", paths)
            rows += [
                (f"[{setting}] decode only, s/frame", f"{t['decode'] / args.frames:.3f}"),
                (f"[{setting}] seed Welford loop, s/frame", f"{t['welford'] / args.frames:.3f}"),
                (f"[{setting}] rawmap map, s/frame", f"{t['rawmap'] / args.frames:.3f}"),
                (f"[{setting}] rawmap / decode-only", f"{t['rawmap'] / t['decode']:.2f}x  (target <= 1.5x)"),
                (f"[{setting}] seed loop / rawmap", f"{t['welford'] / t['rawmap']:.2f}x faster  (target >= 2.5x)"),
                (
                    f"[{setting}] peak memory, bytes/photosite",
                    f"{mem['peak'] / n_px:.1f} gross, {(mem['peak'] - base['peak']) / n_px:.1f} net of "
                    f"interpreter+imports ({base['peak'] / 2**20:.0f} MiB)  (target <= 40)",
                ),
            ]
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


if __name__ == "__main__":
    main()
