"""Fuzz campaign: mutated RAW files through ``rawmap info``, ``map`` (mutant first and last) and ``repair``.

Run:  python tests/benchmarks/bench_fuzz.py [--mutants 1000] [--seed 1] [--timeout 60] [--mem-gb 3]

Mutates, with a seeded generator, the real samples of ``../shared/samples/raw``
(when present) and two simulated DNG series (one with an optical-black
border) in turn: bit flips, byte runs, truncations, zeroed tails, TIFF tag
values (sizes, offsets, levels, pattern, coding), self-consistent wrong
sensor sizes, and entry counts and types (see ``tests/fuzzing.py``).  Each
mutant goes through four commands:

* ``rawmap info MUTANT``;
* ``rawmap map MUTANT GOOD... OTHERS... -o first.json`` (the mutant first,
  among good frames of its own body and a series of another body, 2 threads);
* ``rawmap map GOOD... OTHERS... MUTANT -o last.json --threads 1``;
* ``rawmap repair MUTANT --map MAP -o repaired/`` (the map of its body).

The commands run in a worker process with an address-space limit
(``--mem-gb`` above what it uses after loading), each with a deadline
(``--timeout``).  Printed: tracebacks (an exception escaped), hangs (no
answer in time), crashes (the worker died of a signal), runs with stray
stderr lines (anything but ``Error:`` and ``warning`` lines, e.g. LibRaw's
own messages), error lines that are too long or carry control characters,
and the exit codes of each command; then up to 40 examples.  Exit status
1 when anything was found.  Not part of the test suite (about 2 s per
mutant on the project's machine); ``tests/test_fuzz.py`` runs a bounded
subset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # tests/: the fuzzing support module

import fuzzing  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a command counts as a hang")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="address space the worker may add after loading")
    ap.add_argument("--samples", type=Path, default=ROOT.parent / "shared" / "samples" / "raw")
    ap.add_argument("--root", type=Path, default=ROOT, help="repository whose rawmap is fuzzed")
    args = ap.parse_args()

    sys.path.insert(0, str(args.root))  # the simulated series are made by the rawmap under test
    samples = args.samples if args.samples.is_dir() else None
    if samples is None:
        print(f"no real samples at {args.samples}: simulated DNGs only", flush=True)
    with tempfile.TemporaryDirectory(prefix="rawmap-fuzz-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, RAWMAP_LIBRARY=str(work / "library"))
        with fuzzing.CliWorker(
            args.root,
            timeout=args.timeout,
            mem_limit=int(args.mem_gb * 2**30),
            warm=args.root / "fixtures" / "example",
            env=env,
        ) as worker:
            bases = fuzzing.make_bases(worker, work, samples, seed=args.seed)
            print(f"{len(bases)} files to mutate: " + ", ".join(b.path.name for b in bases), flush=True)

            t0 = time.perf_counter()

            def progress(i: int, report: fuzzing.Report) -> None:
                if i % 50 == 0 or i == args.mutants:
                    print(
                        f"  {i}/{args.mutants} mutants, {report.bad} problem runs, {time.perf_counter() - t0:.0f} s",
                        flush=True,
                    )

            report = fuzzing.campaign(worker, bases, args.mutants, args.seed, work, progress)
            print(report.text())
            print(f"worker restarts (after hangs and crashes): {worker.restarts}")
    return 1 if report.bad else 0


if __name__ == "__main__":
    sys.exit(main())
