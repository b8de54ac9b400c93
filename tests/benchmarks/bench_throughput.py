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
  compiled kernel, classification at the end); also on one thread, and on
  all cores where the machine has more than two, to show how far a second
  core speeds it up here.

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

Then the whole command as a user runs it (``--command-runs``, 3): ``python
-m rawmap map FOLDER -o MAP`` (start-up, header pass, decoding and folding,
classification, writing) against a single-process decode-only loop over
the same files, each in a fresh process, alternating, fastest of N, with
the CPU time (user + sys) and peak memory of each process (the
``rawmap`` of the checkout this script is in, everywhere).  With
``--before CHECKOUT`` (another copy of the repository, e.g. ``git archive``
of an older commit; may be repeated) its command runs in the same
alternation: before and after side by side.  Last, the CPU time of each step of a frame on one
thread (decode, measure, fold, commit), of the header pass and of
classification, the fold's floor (a compiled sweep that only updates the
sums, :func:`sums_floor`), and what two cores could give at best: the
per-frame CPU over two, against decode-only.

Targets: rawmap <= 1.5x decode-only, >= 2.5x faster than the seed's loop,
<= 40 bytes per photosite (issue 12: the whole command <= 1.0x decode-only,
>= 4x faster than the seed's loop, <= 32 bytes per photosite).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rawpy

# the rawmap of this checkout (python puts this script's folder first on sys.path, not the repository's root)
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))

from rawmap._malloc import reuse_large_buffers  # noqa: E402
from rawmap.mapping import map_files  # noqa: E402
from rawmap.testing import SensorSpec, generate_series  # noqa: E402

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


# a fresh process running ``rawmap map`` (argv after the script) from the current directory, or the
# decode-only loop (argv[1] == "--decode"); prints its peak memory (VmHWM) last on stderr
COMMAND = r"""
import atexit, runpy, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
atexit.register(lambda: sys.stderr.write(f"\nVMHWM {hwm()}\n"))
if sys.argv[1] == "--decode":
    import rawpy
    for p in sys.argv[2:]:
        with rawpy.imread(p) as raw:
            m = raw.raw_image_visible.copy()
else:
    sys.argv = ["rawmap", *sys.argv[1:]]
    runpy.run_module("rawmap", run_name="__main__", alter_sys=True)
"""


def run_command(args: list[str], cwd: Path) -> dict:
    """Wall time, CPU time (user + sys) and peak memory of one fresh process running ``COMMAND``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", COMMAND, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{args[:2]} in {cwd} failed: {out.stderr[-800:]}")
    peak = int(out.stderr.rsplit("VMHWM", 1)[1].split()[0])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak": peak}


def command_times(paths: list[Path], folder: Path, runs: int, checkouts: dict[str, Path]) -> dict:
    """``rawmap map FOLDER -o MAP`` of each checkout and the decode-only loop, alternating; fastest of ``runs``."""
    best: dict[str, dict] = {}
    order = ["decode", *checkouts]
    for i in range(runs + 1):  # the first round warms the page cache and the compiled kernels
        for name in order:
            if name == "decode":
                got = run_command(["--decode", *map(str, paths)], ROOT)
            else:
                out = folder / f"map-{name}-{i}.json"
                got = run_command(["map", str(folder), "-o", str(out)], checkouts[name])
                out.unlink()
            if i == 0:
                continue
            b = best.setdefault(name, {"wall": float("inf"), "cpu": float("inf"), "peak": 0})
            b["wall"], b["cpu"] = min(b["wall"], got["wall"]), min(b["cpu"], got["cpu"])
            b["peak"] = max(b["peak"], got["peak"])
    return best


def cpu_breakdown(paths: list[Path]) -> dict:
    """CPU time (this thread) of each step of mapping the series on one thread, per frame and fixed."""
    from rawmap import reader
    from rawmap.accumulate import Accumulator
    from rawmap.detect import build_map
    from rawmap.mapping import content_key

    steps = {k: 0.0 for k in ("decode-only", "hash", "decode", "prepare", "fold", "commit", "classify")}
    clock = time.thread_time

    def add(key: str, t0: float) -> float:
        t1 = clock()
        steps[key] += t1 - t0
        return t1

    map_files(paths[:3])  # load the compiled kernels first
    for p in paths:
        t = clock()
        decode_only([p])
        t = add("decode-only", t)
        content_key(p)
        add("hash", t)
    acc = None
    for p in paths:
        t = clock()
        frame = reader.read_frame(p, share=True)
        t = add("decode", t)
        if acc is None:
            acc = Accumulator.from_frame(frame)
            acc.reserve(len(paths))
            t = clock()
        prep = acc.prepare(frame)
        t = add("prepare", t)
        del frame
        for band in range(acc.N_BANDS):
            acc.fold(prep, band)
        t = add("fold", t)
        acc.commit(prep)
        add("commit", t)
    assert acc is not None
    t = clock()
    build_map(acc)
    add("classify", t)
    return steps


def sums_floor(paths: list[Path]) -> float:
    """CPU seconds per frame (this thread, fastest of 3) of the least any fold over rawmap's sums must do.

    A compiled sweep that reads each photosite and its four same-colour
    neighbours and updates arrays of the sums' types (:func:`rawmap.accumulate.new_sums`:
    the 23 bytes per photosite a fold updates where nothing clips; the x sums
    of the skipped frames, 8 more, are written only in rows near clipping)
    with no test at all, its loops vectorised: the memory traffic of one
    frame's fold.  rawmap's fold kernel does this and
    the noise, outlier and line tests besides.
    """
    import numba

    from rawmap.accumulate import new_sums

    @numba.njit(nogil=True, error_model="numpy")
    def sweep(plane, n_invalid, s_v, s_r, vmin, vmax, s_xr, s_zz, x, inv_var):
        h, w = plane.shape
        for i in range(2, h - 2):
            for j in range(np.uint64(2), np.uint64(w - 2)):
                v = plane[i, j]
                s4 = np.int32(plane[i - 2, j]) + plane[i + 2, j] + plane[i, j - 2] + plane[i, j + 2]
                r = 4 * np.int32(v) - s4
                s_v[i, j] += v
                s_r[i, j] += r
                vmin[i, j] = min(vmin[i, j], v)
                vmax[i, j] = max(vmax[i, j], v)
                s_xr[i, j] += np.float32(r) * x
                z = np.float32(r) * inv_var
                s_zz[i, j] += z * z
                n_invalid[i, j] += s4 > 60000

    with rawpy.imread(str(paths[0])) as raw:
        plane = raw.raw_image_visible.copy()
    sums = new_sums(plane.shape)
    args = [sums[k] for k in ("n_invalid", "s_v", "s_r", "vmin", "vmax", "s_xr", "s_zz")]
    sweep(plane, *args, np.float32(0.5), np.float32(0.01))  # compile
    best = float("inf")
    for _ in range(3):
        t = time.thread_time()
        sweep(plane, *args, np.float32(0.5), np.float32(0.01))
        best = min(best, time.thread_time() - t)
    return best


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


def thread_counts() -> list[int]:
    """The ``map_files`` worker counts measured: 1, 2 and all cores (the default, 2, is ``rawmap``)."""
    return sorted({1, 2, os.cpu_count() or 1})


def times(setting, n_runs, paths):
    if setting == "reuse":
        reuse_large_buffers()
    # warm-up: page cache and compiled kernels
    decode_only(paths)
    map_files(paths[:3])
    extra = [w for w in thread_counts() if w != 2]
    runs = {"decode": [], "welford": [], "rawmap": [], **{f"rawmap-{w}": [] for w in extra}}
    for _ in range(n_runs):
        runs["decode"].append(timed(decode_only, paths))
        runs["welford"].append(timed(seed_welford, paths))
        runs["rawmap"].append(timed(map_files, paths))
        for w in extra:
            runs[f"rawmap-{w}"].append(timed(lambda ps, w=w: map_files(ps, workers=w), paths))
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
    ap.add_argument("--command-runs", type=int, default=3, help="runs of the whole command (fastest kept); 0: none")
    ap.add_argument(
        "--before", type=Path, action="append", default=[], help="another checkout whose `rawmap map` runs side by side"
    )
    ap.add_argument("--series", type=Path, help="use the .dng files of this folder instead of simulating")
    ap.add_argument("--skip-inprocess", action="store_true", help="only the whole command and the CPU breakdown")
    args = ap.parse_args()
    H, W = args.height, args.width
    n_px = H * W
    rows = [("frames", f"{args.frames} x {H}x{W} ({n_px / 1e6:.0f} MP) uncompressed DNG, fastest of {args.runs} runs")]
    with tempfile.TemporaryDirectory(prefix="rawmap-bench-") as tmp:
        if args.series is not None:
            paths = sorted(args.series.glob("*.dng"))
            rows[0] = ("frames", f"{len(paths)} x {H}x{W} from {args.series}, fastest of {args.runs} runs")
        else:
            paths = make_series(Path(tmp), args.frames, H, W)
        n_frames = len(paths)
        for setting in () if args.skip_inprocess else ("default", "reuse"):
            t = child_times(setting, args.runs, paths)
            mem = child_memory(setting, "map", paths)
            base = child_memory(setting, "none", paths)
            rows += [
                (f"[{setting}] decode only, s/frame", f"{t['decode'] / n_frames:.3f}"),
                (f"[{setting}] seed Welford loop, s/frame", f"{t['welford'] / n_frames:.3f}"),
                (f"[{setting}] rawmap map, s/frame", f"{t['rawmap'] / n_frames:.3f}"),
                (f"[{setting}] rawmap / decode-only", f"{t['rawmap'] / t['decode']:.2f}x  (target <= 1.5x)"),
                (
                    f"[{setting}] by threads, rawmap",
                    "  ".join(
                        f"{w} {'core' if w == 1 else 'cores'}{' (all)' if w == os.cpu_count() else ''}: "
                        f"{t['rawmap' if w == 2 else f'rawmap-{w}'] / t['decode']:.2f}x decode-only, seed loop "
                        f"{t['welford'] / t['rawmap' if w == 2 else f'rawmap-{w}']:.2f}x"
                        for w in thread_counts()
                    )
                    + f"; 2 threads / 1: {t['rawmap-1'] / t['rawmap']:.2f}x faster",
                ),
                (f"[{setting}] seed loop / rawmap", f"{t['welford'] / t['rawmap']:.2f}x faster  (target >= 2.5x)"),
                (
                    f"[{setting}] peak memory, bytes/photosite",
                    f"{mem['peak'] / n_px:.1f} gross, {(mem['peak'] - base['peak']) / n_px:.1f} net of "
                    f"interpreter+imports ({base['peak'] / 2**20:.0f} MiB)  (target <= 40)",
                ),
            ]
        if args.command_runs:
            folder = Path(tmp) / "series"
            folder.mkdir()
            for p in paths:  # the command maps a folder: one of links to the frames
                (folder / p.name).symlink_to(p.resolve())
            linked = sorted(folder.iterdir())
            checkouts = {"after": ROOT}
            others = {f"{b.resolve().name}": b.resolve() for b in args.before}
            checkouts = {**others, **checkouts}
            c = command_times(linked, folder, args.command_runs, checkouts)
            d = c["decode"]
            rows.append(
                (
                    "[command] decode-only loop (own process)",
                    f"{d['wall']:.2f} s, CPU {d['cpu']:.2f} s, peak {d['peak'] / n_px:.1f} B/photosite",
                )
            )
            for name in checkouts:
                r = c[name]
                rows.append(
                    (
                        f"[command] rawmap map ({name})",
                        f"{r['wall']:.2f} s = {r['wall'] / d['wall']:.2f}x decode-only (target <= 1.0x); "
                        f"CPU {r['cpu']:.2f} s = {r['cpu'] / d['cpu']:.2f}x; peak {r['peak'] / n_px:.1f} B/photosite "
                        f"(target <= 32)",
                    )
                )
        steps = cpu_breakdown(paths)
        per = {k: v / n_frames for k, v in steps.items()}
        floor = sums_floor(paths)
        frame_cpu = per["hash"] + per["decode"] + per["prepare"] + per["fold"] + per["commit"]
        rows += [
            (
                "[cpu] per frame, one thread, s",
                "  ".join(f"{k} {per[k]:.3f}" for k in ("decode-only", "hash", "decode", "prepare", "fold", "commit")),
            ),
            (
                "[cpu] fold's floor, s/frame",
                f"{floor:.3f}: a vectorised sweep updating the sums with no test (rawmap's fold {per['fold']:.3f}); "
                f"with it, decode + prepare + hash + commit + floor = "
                f"{(per['decode'] + per['prepare'] + per['hash'] + per['commit'] + floor) / per['decode-only']:.2f}x "
                "decode-only of CPU per frame",
            ),
            (
                "[cpu] classification, s",
                f"{steps['classify']:.2f} (= {steps['classify'] / steps['decode-only']:.2f}x the "
                "whole decode-only loop)",
            ),
            (
                "[cpu] best on 2 cores",
                f"per frame (hash + decode + prepare + fold + commit) / 2 = {frame_cpu / 2:.3f} s = "
                f"{frame_cpu / 2 / per['decode-only']:.2f}x decode-only; with classification, "
                f"{(frame_cpu * n_frames / 2 + steps['classify']) / steps['decode-only']:.2f}x for {n_frames} frames",
            ),
        ]
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


if __name__ == "__main__":
    main()
