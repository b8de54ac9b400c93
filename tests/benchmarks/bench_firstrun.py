"""First run of the README's first command with no compiled kernels (cold) against a run with them (warm).

Run:  python tests/benchmarks/bench_firstrun.py [--runs 2]

Runs ``python -m rawmap map fixtures/example -o OUT --overwrite`` from the
repository root in a subprocess, as the README's first command does: once
with ``NUMBA_CACHE_DIR`` pointing at a new empty folder (what a fresh
install sees: numba compiles the kernels and writes them to the cache),
then once more with the same folder (the kernels are loaded from it).
Each pair is repeated ``--runs`` times; prints the seconds (wall and CPU)
of each run and the cold / warm ratio, and checks that the cold and warm
runs write the same map.

Target: the cold run <= 30 s on the project's 2-core machine.
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

ROOT = Path(__file__).resolve().parents[2]


def run_once(cache: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``rawmap map`` of the example with numba's cache in ``cache``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rawmap", "map", "fixtures/example", "-o", str(out), "--overwrite", "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def defects(path: Path) -> list:
    """The map's defects (what must not change between runs; the file also records when it was made)."""
    return json.loads(path.read_text())["defects"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="cold/warm pairs (default 2)")
    args = ap.parse_args()
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            cache = Path(tmp) / f"numba-cache-{k}"
            cache.mkdir()
            c = run_once(cache, Path(tmp) / "cold.json")
            w = run_once(cache, Path(tmp) / "warm.json")
            same = defects(Path(tmp) / "cold.json") == defects(Path(tmp) / "warm.json")
            print(
                f"run {k + 1}: cold {c[0]:.1f} s ({c[1]:.1f} s CPU), warm {w[0]:.1f} s ({w[1]:.1f} s CPU), "
                f"cold/warm {c[0] / w[0]:.1f}x, same map: {same}",
                flush=True,
            )
            if not same:
                raise SystemExit("the cold and warm runs made different maps")
            cold.append(c)
            warm.append(w)
    best_c = min(cold)
    best_w = min(warm)
    print(
        f"cold first run: {', '.join(f'{c[0]:.1f}' for c in cold)} s (target <= 30 s; "
        f"{'met' if best_c[0] <= 30 else 'not met'}); warm: {', '.join(f'{w[0]:.1f}' for w in warm)} s; "
        f"cold/warm (fastest of each) {best_c[0] / best_w[0]:.1f}x"
    )


if __name__ == "__main__":
    main()
