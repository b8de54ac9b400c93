"""Detection on the independent series ``../shared/samples/series/indep-8080`` (made outside this project).

Run:  python tests/benchmarks/bench_indep.py [--series DIR]

Maps the 30 ``map_NNN.dng`` frames (and, separately, their JPEG renderings)
with ``rawmap.mapping.map_files`` and scores them against ``truth.json`` as
the series' README says: recall = share of ``must_find`` point defects
flagged (a column segment counts as found when 80 % of its photosites are
flagged); precision = share of flags that are planted defect photosites;
JPEG flags count within 2 pixels.  rawpy.enhance runs on the same DNGs when
``--enhance`` is given (minutes).

``--subsets K [K ...]`` maps ``--draws`` random subsets of K of the 30 map
frames each (RAW and JPEG, seeded by K) and scores them against the same
truth (its ``must_find`` is for all 30 frames): how far the figures lean on
this one series' make-up, as a second series of the same kind would test.
Each JPEG map is also classified without the rule of colour photos counted
both ways (its figures in brackets), from the same statistics.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from rawmap.detect import ClassifyParams, build_map
from rawmap.mapping import map_files
from rawmap.testing import score_flags

SERIES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "series" / "indep-8080"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=Path, default=SERIES)
    ap.add_argument("--enhance", action="store_true", help="also score rawpy.enhance.find_bad_pixels (slow)")
    ap.add_argument("--subsets", type=int, nargs="+", default=[], help="also map random subsets of this many frames")
    ap.add_argument("--draws", type=int, default=4, help="with --subsets: subsets of each size")
    args = ap.parse_args()
    truth = json.loads((args.series / "truth.json").read_text())
    maps = [args.series / f["file"] for f in truth["frames"] if f["role"] == "map"]
    if args.subsets:
        subsets(truth, maps, args.subsets, args.draws)
        return
    rows = []
    for name, files, radius in (("RAW", maps, 0), ("JPEG", [p.with_suffix(".jpg") for p in maps], 2)):
        t = time.perf_counter()
        dmap = map_files(files).maps[0].defect_map
        secs = time.perf_counter() - t
        flags = {(d.row, d.col) for d in dmap.defects}
        rec, prec, found, total = score_flags(flags, truth, radius, jpeg=name == "JPEG")
        rows.append((f"rawmap ({name})", rec, prec, len(flags), secs))
        print(f"{name}: found by class " + ", ".join(f"{k} {found[k]}/{total[k]}" for k in sorted(total)))
    if args.enhance:
        from rawpy import enhance

        t = time.perf_counter()
        coords = np.asarray(enhance.find_bad_pixels([str(p) for p in maps]), np.int64).reshape(-1, 2)
        secs = time.perf_counter() - t
        rec, prec, _, _ = score_flags({(int(r), int(c)) for r, c in coords}, truth)
        rows.append(("rawpy.enhance (RAW)", rec, prec, len(coords), secs))
    print(f"\n{'method':<22} {'recall':>7} {'precision':>9} {'flagged':>8} {'seconds':>8}")
    for name, rec, prec, n, secs in rows:
        print(f"{name:<22} {rec:>7.3f} {prec:>9.3f} {n:>8d} {secs:>8.1f}")
    print("targets (issue 9): RAW recall >= 0.97 at precision >= 0.99; JPEG >= 0.90 / 0.97")


def subsets(truth: dict, maps: list[Path], sizes: list[int], draws: int) -> None:
    """Recall and precision of random subsets of the map frames, RAW and JPEG (see the module docstring)."""
    darks = {i for i, f in enumerate(f for f in truth["frames"] if f["role"] == "map") if f["dark"]}
    for k in sizes:
        rng = random.Random(k)
        for draw in range(draws):
            picked = sorted(rng.sample(range(len(maps)), k))
            for name, radius in (("RAW", 0), ("JPEG", 2)):
                files = [maps[i] if radius == 0 else maps[i].with_suffix(".jpg") for i in picked]
                body = map_files(files).maps[0]
                flags = {(d.row, d.col) for d in body.defect_map.defects}
                rec, prec, found, total = score_flags(flags, truth, radius, jpeg=name == "JPEG")
                missed = ", ".join(f"{c} {found[c]}/{total[c]}" for c in sorted(total) if found[c] < total[c])
                before = ""
                if name == "JPEG":  # side by side: the rule of colour photos counted both ways left out
                    off = ClassifyParams(two_way_image_excess=float("inf"))
                    flags0 = {(d.row, d.col) for d in build_map(body.accumulator, off).defects}
                    rec0, prec0, _, _ = score_flags(flags0, truth, radius, jpeg=True)
                    before = f" (without the both-ways rule {rec0:.3f}, {prec0:.3f})"
                print(
                    f"{k} frames ({len(darks & set(picked))} darks), draw {draw}, {name}: recall {rec:.3f}, "
                    f"precision {prec:.3f}, {len(flags)} flags{before}; missed: {missed or 'none'}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
