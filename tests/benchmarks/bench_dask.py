"""``rawmap map --dask`` on a LocalCluster against the local run, over the same files, in one run.

Run:  python tests/benchmarks/bench_dask.py [--bodies 4] [--frames 24] [--height 1000 --width 1500]
      [--workers 2] [--chunk 16] [--runs 2]

Writes a small simulated fleet (``rawmap.testing.write_scenario``: one body
per scenario, mixed / brackets / burst / darks-mixed ..., uncompressed DNG),
then, in this process and in turn:

* local: ``rawmap.mapping.map_files`` as ``rawmap map`` runs it (two
  threads, the command's allocator setting ``reuse_large_buffers``);
* dask: the same call with a :class:`rawmap.distributed.DaskEngine` on a
  ``distributed.LocalCluster`` of ``--workers`` processes of one thread,
  set as ``rawmap map --dask`` sets them (started once; its start-up and the workers' first run, which loads the
  compiled kernels, are reported apart).

Each timed ``--runs`` times, alternating, fastest kept.  Checks that every
sum of every body (integer and float) and every map (apart from its
``created`` time) are identical.

Then measures, in this process on one thread, what one frame costs on a
worker (decode + measure: :func:`~rawmap.distributed.prepare_chunk`; fold:
:func:`~rawmap.distributed.fold_chunk`) and on the client (commit), per
photosite, and projects 10,000 frames of 24 MP on N workers: a fleet of
many bodies (every step in parallel but the client's commits) and one body
(its folds one after the other).  The projection ignores the network: each
chunk's sums (21 bytes per photosite, 0.5 GB at 24 MP) move once between
workers, the photos are read from the shared folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rawmap._malloc import reuse_large_buffers
from rawmap.accumulate import Accumulator, PreparedFrame
from rawmap.distributed import DaskEngine, fold_chunk, prepare_chunk
from rawmap.mapping import collect_inputs, map_files
from rawmap.testing import write_scenario

SCENARIOS = ["mixed", "brackets", "burst", "darks-mixed", "timelapse", "darks-same"]


def _same(a, b) -> bool:
    if [m.slug for m in a.maps] != [m.slug for m in b.maps]:
        return False
    for x, y in zip(a.maps, b.maps):
        for name in Accumulator._ARRAYS:
            if not np.array_equal(getattr(x.accumulator, name), getattr(y.accumulator, name)):
                return False
        dx, dy = json.loads(x.defect_map.to_json()), json.loads(y.defect_map.to_json())
        dx.pop("created"), dy.pop("created")
        if dx != dy:
            return False
    return True


def _per_frame(files: list[Path]) -> tuple[float, float, float]:
    """Seconds per frame on one thread: decode + measure, fold, commit."""
    t0 = time.perf_counter()
    prepared = prepare_chunk(files, None, None, None)
    t1 = time.perf_counter()
    folded = fold_chunk(prepared, None, len(files))
    t2 = time.perf_counter()
    assert folded.description is not None
    acc = folded.description.new_accumulator()
    acc.reserve(len(files))
    t3 = time.perf_counter()
    for f in folded.frames:
        if isinstance(f, PreparedFrame):
            acc.commit(f)
    t4 = time.perf_counter()
    n = len(files)
    return (t1 - t0) / n, (t2 - t1) / n, (t4 - t3) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bodies", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24, help="frames per body")
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    import distributed

    reuse_large_buffers()  # the allocator setting of the `rawmap` command, here and on the workers
    with tempfile.TemporaryDirectory(prefix="rawmap-bench-dask-") as tmp:
        root = Path(tmp)
        for i in range(args.bodies):
            name = SCENARIOS[i % len(SCENARIOS)]
            write_scenario(
                root / f"{i}-{name}", name, seed=100 + i, shape=(args.height, args.width), n_frames=args.frames
            )
        files = [p.resolve() for p in collect_inputs([root])[0]]
        mp = args.height * args.width / 1e6
        print(f"{len(files)} files, {args.bodies} bodies, {args.height}x{args.width} ({mp:.2f} MP)")

        map_files(files[:3] if len(files) >= 3 else files)  # kernels compiled / loaded here first
        t = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
            ) as lc,
            distributed.Client(lc) as client,
        ):
            startup = time.perf_counter() - t
            client.run(reuse_large_buffers)  # as `rawmap map --dask` sets its workers
            t = time.perf_counter()
            first = map_files(files, engine=DaskEngine(client, chunk_frames=args.chunk))
            first_dask = time.perf_counter() - t
            local_t, dask_t = [], []
            local = run = first
            for _ in range(args.runs):
                t = time.perf_counter()
                local = map_files(files)
                local_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                run = map_files(files, engine=DaskEngine(client, chunk_frames=args.chunk))
                dask_t.append(time.perf_counter() - t)
        identical = _same(local, run) and _same(local, first)
        n = sum(len(m.files) for m in local.maps)
        lt, dt = min(local_t), min(dask_t)
        print(f"cluster start-up: {startup:.2f} s; first dask run (workers load the kernels): {first_dask:.2f} s")
        print(f"local (2 threads): {lt:.2f} s ({1e3 * lt / n:.0f} ms/frame)")
        print(
            f"dask ({args.workers} worker processes, chunks of {args.chunk}): {dt:.2f} s ({1e3 * dt / n:.0f} ms/frame)"
        )
        print(f"dask / local time: {dt / lt:.2f}")
        print(f"sums and maps identical: {identical}")

        body = [m.files for m in local.maps][0][: args.chunk]
        prep, fold, commit = _per_frame(body)
        scale = 24e6 / (args.height * args.width)
        print(
            f"per frame on one thread at {mp:.2f} MP: decode + measure {1e3 * prep:.0f} ms, fold {1e3 * fold:.0f} ms, "
            f"commit (client) {1e3 * commit:.1f} ms"
        )
        p24, f24, c24 = prep * scale, fold * scale, commit * scale
        print(f"scaled to 24 MP (x{scale:.1f}): {p24:.2f} s, {f24:.2f} s, {c24:.3f} s")
        for workers in (2, 8, 32, 128):
            fleet = 10_000 * max((p24 + f24) / workers, c24)
            one = 10_000 * max((p24 + f24) / workers, f24, c24)
            print(
                f"projected 10,000 frames of 24 MP on {workers:3d} workers: fleet {fleet / 3600:.2f} h, "
                f"one body {one / 3600:.2f} h"
            )


if __name__ == "__main__":
    main()
