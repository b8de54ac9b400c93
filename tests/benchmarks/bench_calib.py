"""Hot photosites of FITS darks: Siril's ``find_hot`` on a median master dark vs ``rawmap map``, side by side.

Run:  python tests/benchmarks/bench_calib.py [--frames 16] [--height 400 --width 600] [--seeds 7 8]
      [--sigma 3 5]   (needs siril-cli: apt-get install siril; and astropy: pip install -e '.[fits]')

Each seed's dark set is ``rawmap.testing.write_scenario(..., "darks-same")``:
lens-cap darks of 30 s on a Bayer sensor warming from 20 to 32 deg C, with
the scenario's planted defects (hot 50-3000 DN/s, warm 10-100 DN/s, clusters
of 2-4 adjacent hot photosites, stuck, dead, blinking, cold, column and row
segments).  The DNGs are read by rawmap and written as 16-bit FITS files
the way capture software writes them (``ROWORDER = 'BOTTOM-UP'``,
``BAYERPAT``, ``OFFSET`` = black, ``DATAMAX`` = white, ``EXPTIME``,
``IMAGETYP = 'Dark'``).  On those same FITS files:

* Siril (``siril-cli -d DIR -s SCRIPT``, headless): ``link`` the darks into
  a sequence, ``stack ... med -nonorm`` (median master dark), ``load`` it,
  ``find_hot LIST <cold sigma> <hot sigma>`` (the list ``cosme`` takes);
  ``P x y`` lines are photosites (``y`` from the top, as measured in
  ``tests/test_export.py``), ``C``/``L`` lines whole columns/rows.  One
  run per ``--sigma`` (the same figure for cold and hot).
* rawmap: ``rawmap.mapping.map_files`` on the FITS files.

Scoring is :func:`rawmap.testing.score_map` (recall on the must-find
defects: visible at 6 sigma in >= 20 % of the frames, a column segment found
when 80 % of it is flagged; precision = share of flags on planted
defects), overall and for the hot classes (hot, warm, cluster) alone.  Time
is the wall time of each tool on the files (Siril: the whole script;
rawmap: the map after one warm-up run, the kernels compiled).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from rawmap.mapping import collect_inputs, map_files
from rawmap.reader import read_frame
from rawmap.testing import MapScore, SeriesTruth, score_map, write_scenario

HOT_CLASSES = ("hot", "warm", "cluster")


@dataclass
class Flag:
    """A flagged photosite, as :func:`score_map` reads a map's defects."""

    row: int
    col: int
    kind: str


def write_fits_darks(folder: Path, seed: int, frames: int, shape: tuple[int, int]) -> tuple[SeriesTruth, list[Path]]:
    """The scenario's darks as DNG (in ``folder/dng``) and as FITS (``folder/fits``); the truth and the FITS paths."""
    truth = write_scenario(folder / "dng", "darks-same", seed=seed, shape=shape, n_frames=frames)
    return truth, fits_copies(sorted((folder / "dng").glob("*.dng")), folder / "fits")


def fits_copies(dngs: list[Path], out: Path) -> list[Path]:
    """FITS copies (in ``out``, made here) of the dark frames ``dngs``, as an astronomy camera writes them."""
    out.mkdir()
    paths = []
    for i, p in enumerate(dngs):
        f = read_frame(p)
        hdu = fits.PrimaryHDU(f.mosaic[::-1].copy())  # bottom-up, as FITS and Siril store rows
        for key, value in {
            "ROWORDER": "BOTTOM-UP",
            "BAYERPAT": f.cfa_string,
            "EXPTIME": f.exposure,
            "GAIN": f.iso,
            "OFFSET": int(f.black[0]),
            "DATAMAX": int(f.white),
            "IMAGETYP": "Dark Frame",
            "INSTRUME": "Simulated Cam",
            "DATE-OBS": f.time.isoformat() if f.time else "",
        }.items():
            hdu.header[key] = value
        path = out / f"dark_{i:03d}.fits"
        hdu.writeto(path)
        paths.append(path)
    return paths


def siril_find_hot(darks: list[Path], sigma: float, height: int, width: int) -> tuple[list[Flag], float]:
    """Flags of Siril's find_hot on the median master of ``darks``, and the script's wall time."""
    with tempfile.TemporaryDirectory(prefix="rawmap-siril-") as tmp:
        work = Path(tmp)
        for p in darks:
            shutil.copy(p, work / p.name)
        script = work / "hot.ssf"
        script.write_text(
            "requires 1.0.0\nsetext fits\nlink dark -out=seq\ncd seq\nstack dark med -nonorm -out=master\n"
            f"load master\nfind_hot hot {sigma:g} {sigma:g}\n"
        )
        env = dict(os.environ, HOME=str(work / "home"))
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["siril-cli", "-d", str(work), "-s", str(script)], capture_output=True, text=True, env=env, timeout=600
        )
        elapsed = time.perf_counter() - t0
        if "Script execution finished successfully" not in proc.stdout:
            raise SystemExit(f"siril-cli failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        found = list((work / "seq").glob("hot*.lst"))
        if len(found) != 1:
            raise SystemExit(f"siril-cli wrote no list (or several): {found}")
        flags: list[Flag] = []
        for line in found[0].read_text().splitlines():
            parts = line.split()
            if not parts or parts[0] not in "PCL":
                continue
            kind = "dead" if parts[-1] == "C" else "hot"
            a, b = int(float(parts[1])), int(float(parts[2]))
            if parts[0] == "P":
                flags.append(Flag(b, a, kind))
            elif parts[0] == "C":
                flags += [Flag(r, a, kind) for r in range(height)]
            else:
                flags += [Flag(a, c, kind) for c in range(width)]
    return flags, elapsed


def rawmap_map(darks: list[Path]) -> tuple[list, float]:
    """Defects of ``rawmap map`` on ``darks`` (after an untimed warm-up run) and its wall time."""
    paths, _ = collect_inputs([str(p) for p in darks])
    map_files(paths)  # warm-up: numba kernels compiled or loaded from the cache
    t0 = time.perf_counter()
    run = map_files(paths)
    elapsed = time.perf_counter() - t0
    if len(run.maps) != 1:
        raise SystemExit(f"rawmap made {len(run.maps)} maps of one dark set")
    return run.maps[0].defect_map.defects, elapsed


def hot_recall(score: MapScore) -> str:
    found = sum(score.recall_by_class.get(c, (0, 0))[0] for c in HOT_CLASSES)
    must = sum(score.recall_by_class.get(c, (0, 0))[1] for c in HOT_CLASSES)
    return f"{found / must if must else 1.0:.3f} ({found}/{must})"


def line(name: str, score: MapScore, elapsed: float) -> str:
    missed = ", ".join(f"{c} {n - f}" for c, (f, n) in sorted(score.recall_by_class.items()) if f < n) or "none"
    return (
        f"  {name:22s} recall {score.recall:.3f} ({score.n_found}/{score.n_must_find}), hot classes "
        f"{hot_recall(score)}, precision {score.precision:.3f} ({score.n_flags - score.n_false}/{score.n_flags}), "
        f"{elapsed:.2f} s; missed: {missed}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=400)
    ap.add_argument("--width", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--sigma", type=float, nargs="+", default=[3.0, 5.0])
    a = ap.parse_args()
    if shutil.which("siril-cli") is None:
        raise SystemExit("siril-cli is not installed (on Debian: apt-get install siril)")
    version = subprocess.run(["siril-cli", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; {a.frames} darks of {a.height}x{a.width} per seed (darks-same, FITS bottom-up 16-bit)")
    for seed in a.seeds:
        with tempfile.TemporaryDirectory(prefix="rawmap-bench-calib-") as tmp:
            truth, darks = write_fits_darks(Path(tmp), seed, a.frames, (a.height, a.width))
            print(f"seed {seed}: {len(truth.defects)} planted photosites", flush=True)
            defects, t_rawmap = rawmap_map(darks)
            print(line("rawmap map", score_map(type("M", (), {"defects": defects})(), truth), t_rawmap), flush=True)
            for sigma in a.sigma:
                flags, t_siril = siril_find_hot(darks, sigma, a.height, a.width)
                sc = score_map(type("M", (), {"defects": flags})(), truth)
                print(line(f"siril find_hot {sigma:g} sigma", sc, t_siril), flush=True)
                print(f"    ratio of times siril / rawmap: {t_siril / t_rawmap:.2f}", flush=True)


if __name__ == "__main__":
    main()
