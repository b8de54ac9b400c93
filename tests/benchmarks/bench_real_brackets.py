"""Exposure brackets of real scenes: the map against planted defects, and the hot photosites' dark currents.

Run:  python tests/benchmarks/bench_real_brackets.py [--samples DIR] [--peers] [--repair] [--jpeg] [--seeds 7 ...]
      [--shake 8] [--first-level 0.0005] [--per-source 1]

Writes bracket series whose views are crops of the real RAW samples' own
mosaics (``rawmap.testing.write_real_brackets``: 480 x 720 crops, up to 6 per
sample, each shot at 1/100, 1/25, 1/6 and 0.64 s, the last clipping over
much of the picture; 27 views, 108 DNG frames), once with nothing planted
and once per range of hot dark currents with 40 photosites planted (10 each
of hot, stuck, dead and cold). A planted defect must be found when it stood
out of the scene around it (6 robust sigmas of the local residuals) in at
least 20 % of the frames.

Each series is mapped once (``rawmap.mapping.map_files``) and classified
twice from the same statistics: as rawmap is, and as it was before
2026-12-02, when a photosite's dark-current regression took the series' x
sums whatever frames the photosite skipped (its ``s_xi`` and ``s_xxi``
zeroed) and a hot photosite at the margin needed no clear growth
(``ClassifyParams.hot_margin_growth`` 0). Printed per series and per rule:
recall of the must-find defects, false flags, the labels the planted hot
photosites got and their measured dark current over the planted one.

``--peers`` also runs ``rawpy.enhance.find_bad_pixels`` on the same DNG
files (a few minutes per series).

``--repair`` repairs every frame of the planted series with each of the two
maps (``rawmap.repair.repair_file``, as ``rawmap repair`` does) and prints
the RMSE against the frame without its planted defects (same noise) at the
planted photosites, per kind (hot: where the defect-free value is below the
clip level), beside the frames as shot, and the photosites changed outside
each map (must be 0).

``--jpeg`` also develops every frame with LibRaw and saves it as a JPEG
(``rawmap.testing.develop_jpegs``), maps the JPEGs alone and scores their
flags within 2 pixels of the planted defects (demosaicing moves a defect's
trace), the must-find ones as in the RAW frames; once with the EXIF a
camera writes (make, model, serial, time, exposure, ISO) and once with none
(stripped copies; the JPEG figures before 2026-12-02's fourteenth session
were of those). ``--seeds`` writes each
series once per seed (the planting and the noise). ``--shake N`` makes the
brackets handheld: each frame is cropped up to N photosites off its view's
centre, each way (even offsets), the defects staying on the sensor.
``--first-level`` sets the median of each view's shortest frame, as a share
of the range (default 0.02): 0.0005 makes night brackets, whose darkest
frames look like lens-cap darks. ``--per-source 1`` takes one view of each
sample (6 views, 24 frames: as short as the ``brackets`` scenario of
``bench_scenarios.py``).

``--short`` maps short series instead: of those 6 views (one per sample),
every subset of 3 and of 4 (``--views``: other sizes, 2-6), from one photo
per view (the 8 % exposure: all at one exposure), from the whole brackets,
and from bursts (each view shot 8 times at that exposure), once with nothing planted
(every flag false) and once with 12 photosites planted (hot of
3,000-30,000 DN/s, stuck, dead, cold; their flags found by kind, any other
flag false); per seed, subset size and frames a view, it prints the maps
with a false flag and the planted photosites mapped as planted.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import statistics
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from rawmap.defectmap import DefectKind
from rawmap.detect import ClassifyParams, build_map
from rawmap.mapping import map_files
from rawmap.reader import read_frame
from rawmap.repair import repair_file
from rawmap.testing import RealBrackets, develop_jpegs, within, write_real_brackets

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "raw"
#: (label, planted defects, hot dark currents DN/s at ISO 100)
SERIES = (
    ("nothing planted", 0, (3000.0, 100000.0)),
    ("hot 3,000-100,000 DN/s", 40, (3000.0, 100000.0)),
    ("hot 2,000-20,000 DN/s", 40, (2000.0, 20000.0)),
    ("hot 50-3,000 DN/s", 40, (50.0, 3000.0)),
)


def score(rb: RealBrackets, defects, *, kinds: bool = True) -> str:
    """Recall of the must-find defects, false flags, the planted hot photosites' labels and values
    (``kinds``: a peer's flags have none)."""
    flags = {(d.row, d.col): d for d in defects}
    must = rb.must_find()
    found = sum(1 for d, m in zip(rb.defects, must) if m and (d.row, d.col) in flags)
    planted = {(d.row, d.col) for d in rb.defects}
    false = Counter(d.kind.value for rc, d in flags.items() if rc not in planted)
    hot = [d for d, m in zip(rb.defects, must) if m and d.kind is DefectKind.HOT]
    labels = Counter(flags[(d.row, d.col)].kind.value for d in hot if (d.row, d.col) in flags)
    ratios = [
        flags[(d.row, d.col)].value / d.params["dark_dn_per_s"]
        for d in hot
        if (d.row, d.col) in flags and flags[(d.row, d.col)].kind in (DefectKind.HOT, DefectKind.WARM)
    ]
    value = f"median {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"
    recall = f"{found}/{int(must.sum())}" if must.any() else "-"
    all_hot = [d for d in rb.defects if d.kind is DefectKind.HOT]
    recall += f" (hot, must or not: {sum((d.row, d.col) in flags for d in all_hot)}/{len(all_hot)})" if all_hot else ""
    if not kinds:
        return f"recall {recall:>6}  false {sum(false.values()):>2}"
    return (
        f"recall {recall:>6}  false {sum(false.values()):>2} {dict(false) or ''}  "
        f"must-find hot labelled {dict(labels) or '-'}  dark current / planted {value}"
    )


def repair_errors(rb: RealBrackets, maps: dict[str, object], folder: Path) -> str:
    """RMSE at the planted photosites after repairing every frame with each map, per kind, and the
    photosites changed outside each map."""
    errs: dict[str, dict[str, list[float]]] = {"as shot": {}, **{k: {} for k in maps}}
    outside = dict.fromkeys(maps, 0)
    rows = np.array([d.row for d in rb.defects])
    cols = np.array([d.col for d in rb.defects])
    kinds = [d.kind.value for d in rb.defects]
    masks = {label: dmap.mask() for label, dmap in maps.items()}
    for src, clean_path in zip(rb.files, rb.clean):
        given = read_frame(src)
        clean = np.load(clean_path).astype(np.float64)
        shots = {"as shot": given.mosaic}
        for label, dmap in maps.items():
            out = repair_file(src, dmap, folder / label.replace(" ", "_"), overwrite=True)
            got = read_frame(out.output).mosaic
            outside[label] += int(((got != given.mosaic) & ~masks[label]).sum())
            shots[label] = got
        for label, img in shots.items():
            for k, r, c in zip(kinds, rows, cols):
                if k == "hot" and clean[r, c] >= given.white:
                    continue
                errs[label].setdefault(k, []).append(float(img[r, c]) - clean[r, c])
    lines = []
    for label, per in errs.items():
        cells = "  ".join(f"{k} {np.sqrt(np.mean(np.square(v))):7.1f}" for k, v in sorted(per.items()))
        extra = f"  changed outside the map: {outside[label]}" if label in outside else ""
        lines.append(f"    RMSE (DN) {label:12s} {cells}{extra}")
    return "\n".join(lines)


def jpeg_score(rb: RealBrackets, defects) -> str:
    """Flags of a map made from the JPEGs: must-find defects with a flag within 2 pixels, and flags
    with no planted defect within 2 pixels, by kind."""
    planted = np.array([(d.row, d.col) for d in rb.defects], np.int64).reshape(-1, 2)
    flags = np.array([(f.row, f.col) for f in defects], np.int64).reshape(-1, 2)
    must = planted[rb.must_find()]
    found = int(within(must, flags, 2).sum())
    false = Counter(f.kind.value for f, ok in zip(defects, within(flags, planted, 2)) if not ok)
    recall = f"{found}/{len(must)}" if len(must) else "-"
    return f"recall {recall:>6}  flags {len(defects)}  false {sum(false.values())} {dict(false) or ''}"


def as_it_was(acc):
    """The statistics with no x sums of the skipped frames (the regression then took the series')."""
    old = copy.copy(acc)
    old.s_xi = np.zeros_like(acc.s_xi)
    old.s_xxi = np.zeros_like(acc.s_xxi)
    return old


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--peers", action="store_true", help="also run rawpy.enhance.find_bad_pixels")
    ap.add_argument("--repair", action="store_true", help="also repair every frame with each map")
    ap.add_argument("--jpeg", action="store_true", help="also map the frames' JPEG renderings alone")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7], help="seeds of the planting and the noise")
    ap.add_argument("--shake", type=int, default=0, help="handheld: frames up to this many photosites off (even)")
    ap.add_argument("--first-level", type=float, default=0.02, help="median of each view's shortest frame (share)")
    ap.add_argument("--per-source", type=int, default=6, help="most views cropped from one sample (1: 6 views)")
    ap.add_argument("--short", action="store_true", help="every 3 and 4 of 6 views, one photo each or brackets")
    ap.add_argument("--views", type=int, nargs="+", default=[3, 4], help="with --short: the subset sizes (2-6)")
    args = ap.parse_args()
    sources = sorted(p for p in args.samples.iterdir() if p.is_file())
    if args.short:
        return short_series(sources, args.seeds, args.views)
    before = dataclasses.replace(ClassifyParams(), hot_margin_growth=0.0)
    for (label, n, rates), seed in ((s, seed) for s in SERIES for seed in args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            clean_dir = Path(tmp) / "clean" if args.repair and n else None
            if clean_dir is not None:
                clean_dir.mkdir()
            rb = write_real_brackets(
                sources,
                tmp,
                defects=n,
                hot_rates=rates,
                clean_dir=clean_dir,
                seed=seed,
                shake=args.shake,
                first_level=args.first_level,
                per_source=args.per_source,
            )
            must = rb.must_find()
            kinds = Counter(d.kind.value for d, m in zip(rb.defects, must) if m)
            print(
                f"{label}, seed {seed}{f', shake {args.shake}' if args.shake else ''}: {len(rb.views)} views, "
                f"{len(rb.files)} frames; must find {dict(kinds) or 'nothing'}"
            )
            acc = map_files(rb.files).maps[0].accumulator
            print(f"  rawmap counted {acc.n_scenes} views")
            now, then = build_map(acc), build_map(as_it_was(acc), before)
            print(f"  rawmap            {score(rb, now.defects)}")
            print(f"  rawmap as it was  {score(rb, then.defects)}")
            if clean_dir is not None:
                print(repair_errors(rb, {"rawmap": now, "as it was": then}, Path(tmp)))
            if args.jpeg:
                jpeg_map = map_files(develop_jpegs(rb.files)).maps[0].defect_map
                print(f"  rawmap, JPEGs     {jpeg_score(rb, jpeg_map.defects)}")
                bare = map_files(develop_jpegs(rb.files, exif=False)).maps[0].defect_map
                print(f"  ... without EXIF  {jpeg_score(rb, bare.defects)}")
            if args.peers:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "OpenCV not found": it falls back to scikit-image
                    from rawpy import enhance

                    t0 = time.perf_counter()
                    coords = np.asarray(enhance.find_bad_pixels([str(p) for p in rb.files]), np.int64).reshape(-1, 2)
                flags = [_Flag(int(r), int(c)) for r, c in coords]
                print(f"  rawpy.enhance     {score(rb, flags, kinds=False)}  ({time.perf_counter() - t0:.0f} s)")
    return 0


def short_series(sources: list[Path], seeds: list[int], sizes: list[int]) -> int:
    """``--short``: maps of ``sizes`` (3 and 4) of the 6 views, one photo each, brackets or bursts (see the
    module docstring)."""
    for seed in seeds:
        for n in (0, 12):
            with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_burst:
                rb = write_real_brackets(sources, tmp, per_source=1, defects=n, hot_rates=(3000, 30000), seed=seed)
                # the same views and planting shot 8 times at one exposure (the bracket's second): bursts
                bursts = write_real_brackets(
                    sources,
                    tmp_burst,
                    per_source=1,
                    exposures=(0.04,) * 8,
                    defects=n,
                    hot_rates=(3000, 30000),
                    seed=seed,
                )
                per_view = len(rb.files) // len(rb.views)
                modes = (
                    (rb, (1,), "one photo"),
                    (rb, tuple(range(per_view)), "brackets"),
                    (bursts, tuple(range(len(bursts.files) // len(bursts.views))), "a burst of 8"),
                )
                for k in sizes:
                    for series, frames, what in modes:
                        if k * len(frames) < 3:  # rawmap maps from 3 frames
                            continue
                        _short_maps(series, frames, k, f"seed {seed}, {n} planted, {k} views, {what} each")
    return 0


def _short_maps(series: RealBrackets, frames: tuple, k: int, label: str) -> None:
    """Map every ``k`` of the series' views from ``frames`` of each; print the false flags and the planted
    photosites mapped as planted."""
    planted = {(d.row, d.col): d.kind for d in series.defects}
    per_view = len(series.files) // len(series.views)
    maps = with_false = false = 0
    found: Counter = Counter()
    for subset in itertools.combinations(range(len(series.views)), k):
        files = [series.files[per_view * v + f] for v in subset for f in frames]
        flags = map_files(files).maps[0].defect_map.defects
        wrong = [d for d in flags if planted.get((d.row, d.col)) is None]
        maps += 1
        with_false += bool(wrong)
        false += len(wrong)
        got = {(d.row, d.col): d.kind for d in flags}
        for rc, kind in planted.items():
            found[(kind.value, got.get(rc) is kind)] += 1
    line = f"{label}: {maps} maps, {with_false} with false flags ({false} flags)"
    if planted:
        kinds = sorted({kd for kd, _ in found})
        line += "; planted mapped as planted: " + ", ".join(
            f"{kd} {found[(kd, True)]}/{found[(kd, True)] + found[(kd, False)]}" for kd in kinds
        )
    print(line, flush=True)


@dataclasses.dataclass(frozen=True)
class _Flag:
    """A peer's flag: a photosite (its kind stands for none)."""

    row: int
    col: int
    kind: DefectKind = DefectKind.NOISY


if __name__ == "__main__":
    raise SystemExit(main())
