"""Size and speed of the accumulator's state file, version 1 (``.npy`` sums) against version 3 (packed), in one run.

Run:  python tests/benchmarks/bench_state.py [--height 1000 --width 1500] [--frames 16] [--runs 3] [--no-indep]

Builds states the way ``rawmap map --save`` does (``rawmap.mapping.map_files``) from

* a simulated series (``rawmap.testing.generate_series``: varied scenes,
  bursts, long exposures, planted defects) of ``--frames`` frames of
  ``--height`` x ``--width`` (``--height 4000 --width 6000`` for 24 MP);
* the independent series ``../shared/samples/series/indep-8080`` (DNGs made
  outside this project), unless ``--no-indep``;

then, for each state, writes it in both versions (``state_bytes`` + the
file) and reads it back (``Accumulator.load``) ``--runs`` times in turn,
keeping each one's fastest run (single runs vary by 30 % on a shared
2-core machine), and checks that every array read back is bit for bit the
one saved (version 1 keeps no x sums of the skipped frames, ``s_xi`` and
``s_xxi``: those are left out of its check).  Prints bytes per photosite
(the whole file: sums, sparse records, metadata) and seconds, with the
ratios new / old.

Target: version 3 at most 12 bytes per photosite, lossless; save + load of
24 MP within a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rawmap.accumulate import STATE_VERSION, Accumulator
from rawmap.accumulate.state import _sums_in, state_bytes
from rawmap.mapping import map_files
from rawmap.testing import SensorSpec, generate_series

SERIES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "series" / "indep-8080"


def mapped_state(paths: list[Path]) -> Accumulator:
    run = map_files(paths)
    return run.maps[0].accumulator


def same(a: Accumulator, b: Accumulator, version: int) -> bool:
    names = _sums_in(Accumulator._ARRAYS, version) + Accumulator._SPARSE
    return all(
        getattr(a, k).dtype == getattr(b, k).dtype
        and np.array_equal(getattr(a, k).view(np.uint8), getattr(b, k).view(np.uint8))
        for k in names
    )


def measure(label: str, acc: Accumulator, folder: Path, runs: int) -> None:
    n = acc.shape[0] * acc.shape[1]
    best: dict[int, list[float]] = {1: [1e9, 1e9], STATE_VERSION: [1e9, 1e9]}
    size = {}
    for _ in range(runs):
        for version in (1, STATE_VERSION):
            path = folder / f"v{version}.rawstate"
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            path.write_bytes(state_bytes(acc, version=version))
            t1 = time.perf_counter()
            back = Accumulator.load(path)
            t2 = time.perf_counter()
            if not same(acc, back, version):
                sys.exit(f"{label}: version {version} did not read back bit for bit")
            del back
            size[version] = path.stat().st_size
            best[version] = [min(best[version][0], t1 - t0), min(best[version][1], t2 - t1)]
    old, new = best[1], best[STATE_VERSION]
    print(
        f"{label:34s} {n / 1e6:5.1f} MP  bytes/photosite {size[1] / n:5.2f} -> {size[STATE_VERSION] / n:5.2f} "
        f"({size[STATE_VERSION] / size[1]:.2f}x)  save {old[0]:5.2f} -> {new[0]:5.2f} s  load {old[1]:5.2f} -> {new[1]:5.2f} s  "
        f"save+load {sum(old):5.2f} -> {sum(new):5.2f} s ({sum(new) / sum(old):.1f}x)  lossless: yes"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1500)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-indep", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        series = folder / "series"
        series.mkdir()
        truth = generate_series(series, n_frames=args.frames, seed=7, spec=SensorSpec(args.height, args.width))
        acc = mapped_state([series / f.file for f in truth.frames])
        for f in truth.frames:
            (series / f.file).unlink()
        measure(f"simulated {args.height}x{args.width}, {args.frames} frames", acc, folder, args.runs)
        del acc
        if not args.no_indep:
            if not SERIES.is_dir():
                sys.exit(f"{SERIES}: no such folder (or pass --no-indep)")
            paths = sorted(SERIES.glob("*.dng"))
            measure(f"indep-8080, {len(paths)} frames", mapped_state(paths), folder, args.runs)


if __name__ == "__main__":
    main()
