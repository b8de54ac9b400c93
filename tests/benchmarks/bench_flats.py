"""Low-gain photosites from FITS flat fields: ccdproc's ``ccdmask`` vs ``rawmap map``, side by side.

Run:  python tests/benchmarks/bench_flats.py [--frames 10] [--height 400 --width 600] [--seeds 1 2 3] [--bayer]
      (needs astropy and ccdproc: pip install -e '.[fits]' ccdproc)

Each seed writes ``--frames`` flat fields of a monochrome cooled camera as
16-bit FITS files (``IMAGETYP = 'Flat Field'``, ``ROWORDER = 'TOP-DOWN'``,
``OFFSET`` 1000): levels of 15,000-30,000 DN, 25 % vignetting, 2 % pixel
response non-uniformity, five out-of-focus dust shadows (10-25 photosites
across, 5-20 % deep, soft edges), shot and read noise, and 60 low-gain
photosites with gains drawn from 0.3 to 0.95.  ``--bayer``: a colour
camera's (``BAYERPAT = 'RGGB'``, red and blue at 55 % and 75 % of green).  Must-find: gain <= 0.90
(the photosites a user sees; the 0.90-0.95 ones are scored as neither found
nor false).

* rawmap: :func:`rawmap.mapping.map_files` on the files (flat-field rule of
  :mod:`rawmap.detect`).
* ccdmask on the median master flat (of each colour plane apart with ``--bayer``) (``ccdproc.ccdmask`` with its defaults:
  the ratio to a 7x7... median, 9 sigma low and high); ccdproc's own docs
  apply it to the ratio of two flats of different level, which cancels a
  photosite's gain, so that variant is run too (flat 0 / flat 1).

Printed: recall, precision, flags and seconds per method.  Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _write(
    folder: Path, seed: int, n: int, h: int, w: int, bayer: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write the flats; return the low-gain sites (n, 2), their planted gains and their response non-uniformity."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    prnu = rng.normal(1, 0.02, (h, w))
    gain = (1 - 0.25 * 4 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)) * prnu
    for _ in range(5):
        cy, cx, rad, depth = (
            rng.uniform(20, h - 20),
            rng.uniform(20, w - 20),
            rng.uniform(5, 12),
            rng.uniform(0.05, 0.2),
        )
        gain *= 1 - depth / (1 + np.exp((np.hypot(yy - cy, xx - cx) - rad) / 2.5))
    sites = np.stack([rng.integers(3, h - 3, 60), rng.integers(3, w - 3, 60)], axis=1)
    sites = np.unique(sites, axis=0)
    lows = rng.uniform(0.3, 0.95, len(sites))
    gain[sites[:, 0], sites[:, 1]] *= lows
    if bayer:  # an RGGB colour camera: each colour plane at its own level under the flat's light
        gain[0::2, 0::2] *= 0.55
        gain[1::2, 1::2] *= 0.75
    t0 = dt.datetime(2024, 6, 1, 20)
    for i in range(n):
        frame = 1000 + rng.poisson(rng.uniform(15000, 30000) * gain / 2.0) * 2.0 + rng.normal(0, 5, (h, w))
        hdu = fits.PrimaryHDU(np.clip(np.rint(frame), 0, 65535).astype(np.uint16))
        for key, value in {
            "INSTRUME": "Bench Flat Camera",
            "EXPTIME": 2.0,
            "GAIN": 100,
            "IMAGETYP": "Flat Field",
            "DATE-OBS": (t0 + dt.timedelta(seconds=10 * i)).isoformat(),
            "OFFSET": 1000,
            "ROWORDER": "TOP-DOWN",
            **({"BAYERPAT": "RGGB"} if bayer else {}),
        }.items():
            hdu.header[key] = value
        hdu.writeto(folder / f"flat_{i:03d}.fits")
    return sites, lows, prnu[sites[:, 0], sites[:, 1]]


def _score(flags: set[tuple[int, int]], sites: np.ndarray, lows: np.ndarray) -> tuple[float, float]:
    must = {(int(r), int(c)) for (r, c), g in zip(sites, lows) if g <= 0.90}
    subtle = {(int(r), int(c)) for (r, c), g in zip(sites, lows) if g > 0.90}
    recall = len(flags & must) / max(len(must), 1)
    counted = flags - subtle
    precision = len(counted & must) / max(len(counted), 1)
    return recall, precision


def _ccdmask(ccdmask, image: np.ndarray, bayer: bool) -> np.ndarray:
    """ccdmask of the image, of each colour plane apart on a colour camera (on the whole mosaic it flags
    the colour pattern)."""
    if not bayer:
        return ccdmask(image)
    mask = np.zeros(image.shape, bool)
    for r0 in (0, 1):
        for c0 in (0, 1):
            mask[r0::2, c0::2] = ccdmask(image[r0::2, c0::2])
    return mask


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--height", type=int, default=400)
    ap.add_argument("--width", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--bayer", action="store_true", help="a colour (RGGB) camera's flats instead of a mono one's")
    a = ap.parse_args(argv)
    from astropy.io import fits
    from ccdproc import ccdmask

    from rawmap.mapping import collect_inputs, map_files

    print(f"{'seed':>4} {'method':28s} {'recall':>7} {'precision':>9} {'flags':>6} {'seconds':>8}")
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            sites, lows, prnu = _write(folder, seed, a.frames, a.height, a.width, a.bayer)
            paths, _ = collect_inputs([folder])
            map_files(paths)  # warm-up: kernels loaded
            t = time.perf_counter()
            dmap = map_files(paths).maps[0].defect_map
            secs = time.perf_counter() - t
            rows = [("rawmap map", {(d.row, d.col) for d in dmap.defects}, secs)]
            stack = np.stack([fits.getdata(p).astype(np.float64) - 1000 for p in sorted(paths)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                master = np.median(stack, axis=0)
                mask = _ccdmask(ccdmask, master, a.bayer)
                secs = time.perf_counter() - t
                rows.append(("ccdmask (median master flat)", set(zip(*map(np.ndarray.tolist, np.nonzero(mask)))), secs))
                t = time.perf_counter()
                mask = _ccdmask(ccdmask, stack[0] / np.maximum(stack[1], 1), a.bayer)
                secs = time.perf_counter() - t
                rows.append(("ccdmask (flat 0 / flat 1)", set(zip(*map(np.ndarray.tolist, np.nonzero(mask)))), secs))
            for name, flags, secs in rows:
                rec, prec = _score(flags, sites, lows)
                print(f"{seed:>4} {name:28s} {rec:>7.3f} {prec:>9.3f} {len(flags):>6d} {secs:>8.2f}")
            missed = [
                f"{g:.3f} x {u:.3f} = {g * u:.3f}"
                for (r, c), g, u in zip(sites, lows, prnu)
                if g <= 0.90 and (int(r), int(c)) not in rows[0][1]
            ]
            if missed:  # a planted gain times the photosite's own response non-uniformity: what a flat sees
                print(f"{'':>4} rawmap missed (planted gain x response): {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
