"""Detection quality of ``rawmap map`` on the named scenarios of ``rawmap.testing``.

Run:  python tests/benchmarks/bench_scenarios.py [--frames 24] [--height 300 --width 450] [--seed 2027 31 7]
      [--scenarios brackets timelapse ...]

Each scenario of :func:`rawmap.testing.write_scenario` (exposure brackets, a
timelapse, bursts, lens-cap darks at one and at mixed exposures, a mixed
series with darks, brackets, bursts and duplicates, the same on a mono
sensor, as 16-bit and 8-bit grayscale images, and on a 12-bit sensor with
black level 0) is written to a temporary folder and mapped with
``rawmap.mapping.map_files`` (the grayscale ones, ``mono``, ``gray16`` and
``gray8``, as the README tells users to map such files: ``--cfa`` with the
pattern and black level; read without it they are developed images, whose
rules give one record per blob of pixels, which is printed beside); the
map is scored with
:func:`rawmap.testing.score_map` (recall on must-find defects: visible at
6 sigma in at least 20 % of the frames, a segment found when 80 % of its
photosites are flagged; precision = share of flags on planted defects).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rawmap.mapping import collect_inputs, map_files
from rawmap.reader import MosaicSpec
from rawmap.testing import SCENARIOS, score_map, write_scenario
from rawmap.testing.files import sample_scale
from rawmap.testing.scenarios import scenario_spec

#: the grayscale scenarios: their files' format and pattern (what ``rawmap map --cfa`` is told)
GRAYSCALE = {"mono": ("tiff16", "mono"), "gray16": ("tiff16", "RGGB"), "gray8": ("png8", "RGGB")}


def mosaic_spec(name: str, shape: tuple[int, int]) -> MosaicSpec:
    """How the README tells a user to map a grayscale scenario: ``--cfa PATTERN --black DN`` (the black
    level in the file's own units)."""
    fmt, cfa = GRAYSCALE[name]
    spec = scenario_spec(name, *shape)
    return MosaicSpec(cfa, black=int(round(float(np.max(spec.black)) * sample_scale(spec, fmt))))


def run(name: str, frames: int, shape: tuple[int, int], seed: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        truth = write_scenario(folder, name, seed=seed, shape=shape, n_frames=frames)
        t1 = time.perf_counter()
        paths, _ = collect_inputs([folder])
        result = map_files(paths, mosaic=mosaic_spec(name, shape) if name in GRAYSCALE else None)
        t2 = time.perf_counter()
        maps = result.maps
        if len(maps) != 1:
            return f"{name:12s} {len(maps)} maps (expected one body)"
        sc = score_map(maps[0].defect_map, truth)
        by = ", ".join(f"{k} {f}/{n}" for k, (f, n) in sorted(sc.recall_by_class.items()))
        out = (
            f"{name:12s} gen {t1 - t0:4.1f}s map {t2 - t1:4.1f}s frames used {len(maps[0].files)}, "
            f"skipped {len(result.skipped)}\n    {sc.summary()}\n    found/must by class: {by}"
        )
        if name in GRAYSCALE:  # the same files without --cfa: developed images, one record per blob of pixels
            plain = score_map(map_files(paths).maps[0].defect_map, truth)
            out += f"\n    without --cfa (developed-image rules): {plain.summary()}"
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--height", type=int, default=300)
    ap.add_argument("--width", type=int, default=450)
    ap.add_argument("--seed", type=int, nargs="+", default=[2027, 31, 7], help="one run per seed")
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=SCENARIOS)
    a = ap.parse_args()
    for name in a.scenarios:
        for seed in a.seed:
            print(f"seed {seed}: " + run(name, a.frames, (a.height, a.width), seed), flush=True)


if __name__ == "__main__":
    main()
