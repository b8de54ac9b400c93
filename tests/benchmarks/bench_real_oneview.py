"""False flags on one-view series made from the real RAW samples' own mosaics (real optics, real scenes).

Run:  python tests/benchmarks/bench_real_oneview.py [--samples DIR] [--frames 12]

For each Bayer RAW in ``../shared/samples/raw/`` that LibRaw decodes, the
visible mosaic (black removed) is the scene of a timelapse: ``--frames``
DNGs whose light falls 4 stops, each with fresh shot and read noise
(0.5 DN per electron, 2 DN read noise), written to a temporary folder and
mapped with ``rawmap.mapping.map_files``.  The map is then classified again
with the one-view low-gain rule switched off (``ClassifyParams.cold_alone``
< 0), and the flags of both are printed by kind, side by side.

What the rule adds on these series is what it would add on a real
timelapse of that scene: the series' only defects are the sensor's own, so
any low-gain flag it adds must be checked by eye (the script prints the
5 x 5 neighbourhood of the original mosaic around each).  The construction
freezes the original's own noise into the scene, so flags in the deepest
shadows (photosites below black in the original) are its artefacts, not
the detector's.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import rawpy

from rawmap.detect import ClassifyParams, build_map
from rawmap.dng import write_dng
from rawmap.frame import CameraId
from rawmap.mapping import map_files

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "raw"


def _series(src: Path, folder: Path, n: int) -> np.ndarray | None:
    """Write the one-view series of ``src`` into ``folder``; its (H, W) signal, or None when not a Bayer RAW."""
    try:
        with rawpy.imread(str(src)) as raw:
            if raw.num_colors < 3 or raw.raw_image_visible.ndim != 2:
                return None
            mosaic = raw.raw_image_visible.astype(np.float64)
            cfa = raw.raw_colors_visible[:2, :2].copy()
            black = np.array(raw.black_level_per_channel, float)
            white = int(raw.white_level)
    except (rawpy.LibRawError, ValueError):
        return None
    bmap = np.empty_like(mosaic)
    for y in range(2):
        for x in range(2):
            bmap[y::2, x::2] = black[cfa[y, x]]
    signal = np.clip(mosaic - bmap, 0, None)
    rng = np.random.default_rng(5)
    for i in range(n):
        s = signal * 2.0 ** (-4.0 * i / (n - 1))
        frame = bmap + s + rng.standard_normal(mosaic.shape) * np.sqrt(0.5 * s + 4.0)
        write_dng(
            folder / f"tl_{i:02d}.dng",
            np.clip(np.rint(frame), 0, white).astype(np.uint16),
            cfa=cfa,
            black=black,
            white=white,
            camera=CameraId("Bench", src.stem, "1"),
            exposure=0.01,
            iso=100,
            time=dt.datetime(2026, 1, 1, 18, i),
        )
    return mosaic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    off = dataclasses.replace(ClassifyParams(), cold_alone=-1.0)
    added_total = 0
    np.set_printoptions(linewidth=160)
    for src in sorted(p for p in args.samples.iterdir() if p.is_file()):
        with tempfile.TemporaryDirectory(prefix="bench-oneview-") as tmp:
            mosaic = _series(src, Path(tmp), args.frames)
            if mosaic is None:
                print(f"{src.name}: not a Bayer RAW LibRaw decodes, skipped")
                continue
            acc = map_files(sorted(Path(tmp).glob("*.dng"))).maps[0].accumulator
        now, without = build_map(acc), build_map(acc, off)
        kinds = lambda m: dict(Counter(d.kind.value for d in m.defects))  # noqa: E731
        added = {(d.row, d.col) for d in now.defects} - {(d.row, d.col) for d in without.defects}
        added_total += len(added)
        print(f"{src.name} {mosaic.shape}: rule off {kinds(without)}; on {kinds(now)}; added {len(added)}")
        for r, c in sorted(added)[:10]:
            print(f"  added ({r}, {c}); original mosaic around it:")
            print(mosaic[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3].astype(int))
    print(f"flags the one-view low-gain rule adds over all samples: {added_total}")


if __name__ == "__main__":
    main()
