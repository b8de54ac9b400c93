"""False flags on one-view series made from the real RAW samples' own mosaics (real optics, real scenes).

Run:  python tests/benchmarks/bench_real_oneview.py [--samples DIR] [--frames 12]
      python tests/benchmarks/bench_real_oneview.py --jpeg [--bright 2.0]

For each Bayer RAW in ``../shared/samples/raw/`` that LibRaw decodes, the
visible mosaic (black removed) is the scene of a timelapse: ``--frames``
DNGs whose light falls 4 stops, each with fresh shot and read noise
(0.5 DN per electron, 2 DN read noise), written to a temporary folder and
mapped with ``rawmap.mapping.map_files``.  The map is then classified again
with the one-view low-gain rule switched off (``ClassifyParams.cold_alone``
and ``cold_alone_wide`` < 0), and the flags of both are printed by kind,
side by side.

What the rule adds on these series is what it would add on a real
timelapse of that scene: the series' only defects are the sensor's own, so
any low-gain flag it adds must be checked by eye (the script prints the
5 x 5 neighbourhood of the original mosaic around each).  The construction
freezes the original's own noise into the scene, so flags in the deepest
shadows (photosites below black in the original) are its artefacts, not
the detector's.

Each line also gives what the one-view line test did (``frames.lines``:
``moved`` where the view drifted more than ``line_max_drift`` between its
brightest and dimmest frame) and the flags without that drift measure
(``line_max_drift`` infinite, the test as it was before 2026-12-03): with
``--drift`` the edges that move lean as faulty lines do.

``--aperture-priority`` makes the timelapse of a camera in aperture
priority instead: the light falls 6 stops and the exposure rises 6 stops
with it (1/100 s to 0.64 s), so the picture keeps its brightness, and
``--hot N`` photosites (seeded, away from the edges) get a dark current of
50-3000 DN/s at ISO 100 that grows with it.  The map is classified again
with the growth test switched off (``ClassifyParams.growth_sigma`` infinite)
and the script prints, per sample, the planted photosites found with and
without it and the flags it adds that are not planted.  ``--drift PX``
moves the scene PX photosites down (and half that across) over the series,
as a tripod settling does: fine detail then moves in and out of
photosites.

``--jpeg`` develops each frame of the (falling-light) series with LibRaw
(``rawpy`` ``postprocess``, AHD, ``--bright``) and saves it as a JPEG
(Pillow, quality 90), as a camera shooting JPEG would, then maps the JPEGs
alone: the series holds no defect of its own, so every flag is false. The
map is classified again with the developed images' neighbour-lift rule as
it stood before 2026-12-02 (``ClassifyParams.cold_lift_depth`` 0: a deficit
that lifts its neighbours' ratios passed the one-view bound whatever its
size), and both counts are printed.  With ``--stuck N`` each series gets N
photosites stuck at 30-100 % of the range (seeded, in every frame, before
development), and the script prints how many are mapped stuck within 2
pixels and the flags that are not near one (2026-12-03: 0 of 120; a test
that found 48 of them took a city's small lamps for stuck pixels too, see
HISTORY).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from rawmap.detect import ClassifyParams, build_map
from rawmap.mapping import map_files
from rawmap.testing import develop_jpegs, write_oneview_series

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "raw"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--aperture-priority", action="store_true", help="the exposure follows the light (see above)")
    ap.add_argument("--hot", type=int, default=0, help="photosites given a dark current (with --aperture-priority)")
    ap.add_argument("--drift", type=float, default=0.0, help="photosites the scene moves down over the series")
    ap.add_argument("--jpeg", action="store_true", help="map the series' JPEG renderings instead (see above)")
    ap.add_argument("--bright", type=float, default=2.0, help="with --jpeg: LibRaw's brightness of the renderings")
    ap.add_argument("--stuck", type=int, default=0, help="with --jpeg: photosites stuck in every frame (see above)")
    args = ap.parse_args()
    if args.aperture_priority:
        _growth_figures(args)
        return
    if args.jpeg:
        _jpeg_figures(args)
        return
    off = dataclasses.replace(ClassifyParams(), cold_alone=-1.0, cold_alone_wide=-1.0)
    unmeasured = dataclasses.replace(ClassifyParams(), line_max_drift=float("inf"))
    added_total = 0
    flags_total = Counter()
    np.set_printoptions(linewidth=160)
    for src in sorted(p for p in args.samples.iterdir() if p.is_file()):
        with tempfile.TemporaryDirectory(prefix="bench-oneview-") as tmp:
            made = write_oneview_series(src, Path(tmp), args.frames, drift=args.drift)
            if made is None:
                print(f"{src.name}: not a Bayer RAW LibRaw decodes, skipped")
                continue
            mosaic = made[0]
            acc = map_files(sorted(Path(tmp).glob("*.dng"))).maps[0].accumulator
        now, without, before = build_map(acc), build_map(acc, off), build_map(acc, unmeasured)
        kinds = lambda m: dict(Counter(d.kind.value for d in m.defects))  # noqa: E731
        added = {(d.row, d.col) for d in now.defects} - {(d.row, d.col) for d in without.defects}
        added_total += len(added)
        flags_total.update(now=len(now.defects), before=len(before.defects))
        print(
            f"{src.name} {mosaic.shape}: rule off {kinds(without)}; on {kinds(now)}; added {len(added)}; "
            f"line test {now.frames.lines}; without the drift measure {kinds(before)}"
        )
        for r, c in sorted(added)[:10]:
            print(f"  added ({r}, {c}); original mosaic around it:")
            print(mosaic[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3].astype(int))
    print(f"flags the one-view low-gain rule adds over all samples: {added_total}")
    print(
        f"all flags (nothing planted: false, or the original sensor's own defects): {flags_total['now']}; "
        f"without the drift measure: {flags_total['before']}"
    )


def _near(d, sites) -> bool:
    """Whether defect ``d`` lies within 2 pixels of one of ``sites`` ((row, col) pairs)."""
    return any(abs(d.row - r) <= 2 and abs(d.col - c) <= 2 for r, c in sites)


def _jpeg_figures(args: argparse.Namespace) -> None:
    """Each sample's falling-light series developed to JPEGs and mapped from them: the flags (all false),
    now and with the neighbour-lift rule as it was (``cold_lift_depth`` 0)."""

    before = dataclasses.replace(ClassifyParams(), cold_lift_depth=0.0)
    totals = Counter()
    for src in sorted(p for p in args.samples.iterdir() if p.is_file()):
        with tempfile.TemporaryDirectory(prefix="bench-oneview-") as tmp:
            folder = Path(tmp)
            made = write_oneview_series(src, folder, args.frames, drift=args.drift, stuck=args.stuck)
            if made is None:
                print(f"{src.name}: not a Bayer RAW LibRaw decodes, skipped")
                continue
            planted = list(made[1])
            dngs = sorted(folder.glob("*.dng"))
            jpgs = develop_jpegs(dngs, bright=args.bright)
            for dng in dngs:
                dng.unlink()
            acc = map_files(jpgs).maps[0].accumulator
        now, old = build_map(acc), build_map(acc, before)
        kinds = lambda m: dict(Counter(d.kind.value for d in m.defects))  # noqa: E731
        false_now = [d for d in now.defects if not _near(d, planted)]
        false_old = [d for d in old.defects if not _near(d, planted)]
        found = sum(any(_near(d, [site]) and d.kind.value == "stuck" for d in now.defects) for site in planted)
        totals.update(now=len(false_now), old=len(false_old), planted=len(planted), found=found)
        print(
            f"{src.name} {acc.shape}: flags not near a planted photosite {len(false_now)} {kinds(now)}; lift rule "
            f"as before {len(false_old)}" + (f"; planted stuck {len(planted)}, mapped stuck {found}" if planted else "")
        )
    print(
        f"all samples, flags not near a planted photosite (all false): {totals['now']}; with the lift rule as before: "
        f"{totals['old']}" + (f"; planted stuck {totals['planted']}, mapped {totals['found']}" if args.stuck else "")
    )


def _growth_figures(args: argparse.Namespace) -> None:
    """Aperture-priority timelapses of each sample: planted hot photosites found with and without the
    growth test, and the flags it adds that are not planted."""
    off = dataclasses.replace(ClassifyParams(), growth_sigma=float("inf"))
    totals = Counter()
    for src in sorted(p for p in args.samples.iterdir() if p.is_file()):
        with tempfile.TemporaryDirectory(prefix="bench-oneview-") as tmp:
            made = write_oneview_series(src, Path(tmp), args.frames, priority=True, hot=args.hot, drift=args.drift)
            if made is None:
                print(f"{src.name}: not a Bayer RAW LibRaw decodes, skipped")
                continue
            mosaic, planted = made
            acc = map_files(sorted(Path(tmp).glob("*.dng"))).maps[0].accumulator
        now, without = build_map(acc), build_map(acc, off)
        flags_now = {(d.row, d.col) for d in now.defects}
        flags_off = {(d.row, d.col) for d in without.defects}
        seen = {k for k, (_, visible) in planted.items() if visible}
        found_now, found_off = len(flags_now & seen), len(flags_off & seen)
        added = (flags_now - flags_off) - set(planted)
        totals.update(planted=len(seen), now=found_now, off=found_off, added=len(added))
        print(
            f"{src.name} {mosaic.shape}: planted hot {len(planted)}, {len(seen)} visible (6 sigmas in the "
            f"longest frame), found {found_now} (without the growth test {found_off}); flags it adds that "
            f"are not planted: {len(added)}; growth test: {now.frames.growth}"
        )
        for r, c in sorted(added)[:5]:
            print(f"  added ({r}, {c}); original mosaic around it:")
            print(mosaic[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3].astype(int))
    print(
        f"all samples: visible planted {totals['planted']}, found {totals['now']} (without the growth test "
        f"{totals['off']}), false flags it adds {totals['added']}"
    )


if __name__ == "__main__":
    main()
