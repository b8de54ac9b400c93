"""Detection quality of ``rawmap map`` against the seed's ranking and rawpy.enhance, on one generated series.

Run:  python tests/benchmarks/bench_detect.py [--frames 40] [--height 1000 --width 1500] [--seed 2026]
      (needs scikit-image for rawpy.enhance: pip install -e '.[bench]')

A seeded series from ``rawmap.testing`` (a seed the detector was not tuned on)
is written as DNG files and their JPEG renderings.  On the same files:

* rawmap: ``rawmap.mapping.map_files``;
* lowest variance: the seed's loop (float64 Welford over the mosaics) and its
  K lowest-M2 photosites, K = number of defects to find;
* rawpy.enhance: ``find_bad_pixels(paths)`` (its defaults).

Scoring.  Defects to find are the planted photosites visible (5 sigma above
a healthy photosite's noise) in at least ``--min-visible`` (20 %) of the
frames.  Recall = share of those flagged.  Precision = share of flagged
photosites that are planted defects (a planted defect too faint to be
required is not a false positive).  On JPEGs a flag counts when it lies
within 2 pixels of a planted defect, and a defect is found when a flag lies
within 2 pixels of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import rawpy

from rawmap.mapping import map_files
from rawmap.testing import SensorSpec, generate_series


def lowest_variance(paths, k):
    count, mean, m2 = 0, None, None
    for p in paths:
        with rawpy.imread(str(p)) as raw:
            x = raw.raw_image_visible.astype(np.float64)
        if mean is None:
            mean, m2 = np.zeros_like(x), np.zeros_like(x)
        count += 1
        d = x - mean
        mean += d / count
        m2 += d * (x - mean)
    flat = np.argpartition(m2.ravel(), k)[:k]
    return np.stack(np.unravel_index(flat, m2.shape), axis=1)


def enhance(paths):
    from rawpy import enhance as rpe

    coords = rpe.find_bad_pixels([str(p) for p in paths])
    return np.asarray(coords, dtype=np.int64).reshape(-1, 2)


def score_exact(flags, truth_all, required):
    flags = {(int(r), int(c)) for r, c in flags}
    found = len(flags & required)
    tp = len(flags & truth_all)
    recall = found / len(required) if required else 1.0
    precision = tp / len(flags) if flags else 1.0
    return recall, precision, len(flags)


def score_near(flags, truth_all, required, radius=2):
    flags = np.asarray(list(flags), dtype=np.int64).reshape(-1, 2)
    t_all = np.array(sorted(truth_all), dtype=np.int64).reshape(-1, 2)
    req = np.array(sorted(required), dtype=np.int64).reshape(-1, 2)

    def near(a, b):
        if len(a) == 0 or len(b) == 0:
            return np.zeros(len(a), bool)
        out = np.zeros(len(a), bool)
        for i in range(0, len(a), 2048):
            d = np.abs(a[i : i + 2048, None, :] - b[None, :, :]).max(axis=2)
            out[i : i + 2048] = (d <= radius).any(axis=1)
        return out

    recall = float(near(req, flags).mean()) if len(req) else 1.0
    precision = float(near(flags, t_all).mean()) if len(flags) else 1.0
    return recall, precision, len(flags)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--min-visible", type=float, default=0.2)
    ap.add_argument("--no-enhance", action="store_true", help="skip rawpy.enhance (slow: minutes)")
    ap.add_argument("--keep", type=Path, help="write the series here instead of a temporary folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="rawmap-detect-") as tmp:
        folder = args.keep or Path(tmp)
        spec = SensorSpec(args.height, args.width, top_margin=8, left_margin=12)
        t = time.perf_counter()
        truth = generate_series(folder, n_frames=args.frames, seed=args.seed, spec=spec, jpeg=True, overwrite=True)
        gen_s = time.perf_counter() - t
        dngs = [folder / f.file for f in truth.frames]
        jpgs = [folder / f.jpeg for f in truth.frames]
        vis = np.asarray(truth.visible_fraction)
        truth_all = {(d.row, d.col) for d in truth.defects}
        required = {(d.row, d.col) for d, v in zip(truth.defects, vis) if v >= args.min_visible}
        kind_of = {(d.row, d.col): d.kind.value for d in truth.defects}
        print(
            f"series: {args.frames} frames of {args.height}x{args.width}, seed {args.seed} (generated in {gen_s:.0f} s); "
            f"{len(truth_all)} planted defects, {len(required)} visible in >= {args.min_visible:.0%} of frames"
        )
        print(f"  to find by kind: {dict(Counter(kind_of[k] for k in required))}")

        rows = []
        t = time.perf_counter()
        run = map_files(dngs)
        t_map = time.perf_counter() - t
        dm = run.maps[0].defect_map
        flags = {(d.row, d.col) for d in dm.defects}
        rows.append(("rawmap map (RAW)", *score_exact(flags, truth_all, required), t_map))
        points = {k for k in required if kind_of[k] != "column"}
        lines = required - points
        pflags = {(d.row, d.col) for d in dm.defects if d.kind.value != "column"}
        rows.append(("  rawmap, point defects only", *score_exact(pflags, truth_all, points), t_map))
        rows.append(("  rawmap, column/row segments only", *score_exact(flags - pflags, truth_all, lines), t_map))
        missed = Counter(kind_of[k] for k in required - flags)
        false = Counter(d.kind.value for d in dm.defects if (d.row, d.col) not in truth_all)

        t = time.perf_counter()
        lv = lowest_variance(dngs, max(1, len(required)))
        rows.append(
            ("lowest variance top-K (RAW)", *score_exact(map(tuple, lv), truth_all, required), time.perf_counter() - t)
        )

        if not args.no_enhance:
            t = time.perf_counter()
            en = enhance(dngs)
            rows.append(
                (
                    "rawpy.enhance.find_bad_pixels (RAW)",
                    *score_exact(map(tuple, en), truth_all, required),
                    time.perf_counter() - t,
                )
            )

        t = time.perf_counter()
        jrun = map_files(jpgs)
        t_jmap = time.perf_counter() - t
        jflags = {(d.row, d.col) for d in jrun.maps[0].defect_map.defects}
        rows.append(("rawmap map (JPEG, within 2 px)", *score_near(jflags, truth_all, required), t_jmap))

    print()
    print(f"{'method':<38} {'recall':>7} {'precision':>9} {'flagged':>8} {'seconds':>8}")
    for name, rec, prec, n, secs in rows:
        print(f"{name:<38} {rec:>7.3f} {prec:>9.3f} {n:>8d} {secs:>8.1f}")
    print()
    print(f"rawmap RAW misses by kind: {dict(missed)}; false flags by kind: {dict(false)}")
    print("targets: RAW recall >= 0.97 and precision >= 0.97; JPEG recall >= 0.9 at precision >= 0.9")


if __name__ == "__main__":
    main()
