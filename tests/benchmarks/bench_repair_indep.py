"""Repair error on the independent series ``../shared/samples/series/indep-8080`` (made outside this project).

Run:  python tests/benchmarks/bench_repair_indep.py [--series DIR] [--unflagged 3000]
      python tests/benchmarks/bench_repair_indep.py --scenario mixed [--seed 2027]   # our own simulator

The 30 map frames (DNG) are mapped with ``rawmap.mapping.map_files`` (the
map rawmap itself makes); the three test frames ``test_030..032.dng`` are
then repaired, and compared at the true defect sites with their
defect-free mosaics ``clean_030..032.npy``:

* rawmap with its own map, and with the true list (``truth.json``);
* dcraw ``-D -4 -T -P`` with the true list (same-colour mean; the
  reference of issue 11);
* the frame as it came.

With ``--scenario NAME`` the series is one of our own
(:func:`rawmap.testing.write_scenario`, 24 DNG frames of 600 x 900 with
their defect-free mosaics): mapped whole, then its photos of the lowest,
median and highest exposure x ISO are repaired (what a user does with the
photos the map was made from), scored per
:func:`rawmap.testing.defect_class`.

Printed: RMSE (DN) per defect kind and over all sites, each method's ratio to
dcraw, the photosites changed outside the map (must be 0), and the 90 %
interval of the own map's ratio when its readings are resampled (a kind
has 15-66 readings: 5-22 sites in 3 frames).  On indep-8080 also, with
``--unflagged N`` (default 3000 per test frame): unflagged photosites
spread over the three frames, repaired as if flagged and compared with
their own values, the ratio to dcraw over all of them and by thirds of the
scene's variation around them; a stuck or dead photosite is repaired the
same way (its own value is never read), so this is the interpolated kinds'
ratio without the sampling error of a handful of sites.  Needs ``dcraw``
on PATH.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rawpy
import tifffile

from rawmap.defectmap import Defect, DefectKind, DefectMap, FrameStats
from rawmap.mapping import collect_inputs, map_files
from rawmap.repair import repair_file, repair_mosaic
from rawmap.testing import defect_class, write_scenario

SERIES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "series" / "indep-8080"
_KIND = {
    "hot": DefectKind.HOT,
    "warm": DefectKind.HOT,
    "cluster": DefectKind.HOT,
    "stuck_high": DefectKind.STUCK,
    "stuck_mid": DefectKind.STUCK,
    "dead": DefectKind.DEAD,
    "low_gain": DefectKind.COLD,
    "blinking": DefectKind.NOISY,
    "column": DefectKind.COLUMN,
}


def _true_map(like: DefectMap, truth: dict) -> DefectMap:
    defects = [Defect(d["row"], d["col"], _KIND[d["kind"]], 99.0) for d in truth["defects"]]
    return DefectMap(like.camera, like.sensor, FrameStats(30), defects)


def _visible(path: Path) -> np.ndarray:
    with rawpy.imread(str(path)) as raw:
        return raw.raw_image_visible.astype(np.float64)


def _dcraw(src: Path, listing: Path) -> np.ndarray:
    out = subprocess.run(
        ["dcraw", "-D", "-4", "-T", "-c", "-P", str(listing), str(src)], check=True, capture_output=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile: dcraw's shaped-series note
        return tifffile.imread(io.BytesIO(out.stdout)).astype(np.float64)


def _indep(series: Path) -> tuple[list[Path], list[tuple[Path, np.ndarray]], list[dict]]:
    """indep-8080: its 30 map frames, its 3 test frames with their defect-free mosaics, its true defects."""
    truth = json.loads((series / "truth.json").read_text())
    tests = [(series / f"test_{n:03d}.dng", np.load(series / f"clean_{n:03d}.npy")) for n in (30, 31, 32)]
    return sorted(series.glob("map_*.dng")), tests, truth["defects"]


def _scenario(name: str, seed: int, tmp: Path) -> tuple[list[Path], list[tuple[Path, np.ndarray]], list[dict]]:
    """One of our scenarios: every frame to map; to repair, its photos of the lowest, median and highest exposure x ISO."""
    truth = write_scenario(tmp / "series", name, seed=seed, shape=(600, 900), clean_dir=tmp / "clean")
    photos = [f for f in truth.frames if f.scene != "dark" and f.clean]
    photos = sorted(photos, key=lambda f: f.exposure * f.iso)
    photos = [photos[0], photos[len(photos) // 2], photos[-1]]
    white = int(truth.spec.white)
    defects = [{"row": d.row, "col": d.col, "kind": defect_class(d, white)} for d in truth.defects]
    paths = sorted(p for p in (tmp / "series").iterdir() if p.suffix.lower() == ".dng")
    return paths, [(tmp / "series" / f.file, np.load(f.clean)) for f in photos], defects


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=Path, default=SERIES)
    ap.add_argument("--scenario", help="one of rawmap.testing.SCENARIOS written as DNG (instead of --series)")
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument(
        "--unflagged",
        type=int,
        default=3000,
        help="unflagged photosites per test frame repaired as if flagged (0: none)",
    )
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if a.scenario:
            map_paths, tests, true_defects = _scenario(a.scenario, a.seed, tmpd)
            title = f"scenario {a.scenario}, seed {a.seed}"
        else:
            map_paths, tests, true_defects = _indep(a.series)
            title = "indep-8080"
        rc = _run(map_paths, tests, true_defects, tmpd, title)
        if a.unflagged and shutil.which("dcraw"):
            _unflagged(tests, true_defects, a.unflagged, tmpd)
        return rc


def _run(
    map_paths: list[Path], tests: list[tuple[Path, np.ndarray]], true_defects: list[dict], tmpd: Path, title: str
) -> int:
    paths, _ = collect_inputs(map_paths)
    own = map_files(paths).maps[0].defect_map
    true = _true_map(own, {"defects": true_defects})
    kinds = sorted({d["kind"] for d in true_defects})
    sites = {k: np.array([(d["row"], d["col"]) for d in true_defects if d["kind"] == k]) for k in kinds}
    allsites = np.array([(d["row"], d["col"]) for d in true_defects])
    err: dict[str, dict[str, list[float]]] = {}
    outside: dict[str, int] = {}
    have_dcraw = shutil.which("dcraw") is not None
    listing = tmpd / "true.txt"
    # dcraw -P: "col row time", visible-area coordinates (dcraw -D writes the visible area)
    listing.write_text("".join(f"{d['col']} {d['row']} 0\n" for d in true_defects))
    for src, clean_mosaic in tests:
        clean = clean_mosaic.astype(np.float64)
        given = _visible(src)
        results = {"none": given}
        for label, dmap in (("rawmap, own map", own), ("rawmap, true list", true)):
            out = repair_file(src, dmap, tmpd / label.replace(" ", "_").replace(",", ""), overwrite=True)
            got = _visible(out.output)
            results[label] = got
            changed = got != given
            outside[label] = outside.get(label, 0) + int((changed & ~dmap.mask()).sum())
        if have_dcraw:
            results["dcraw -P, true list"] = _dcraw(src, listing)
        for label, img in results.items():
            per = err.setdefault(label, {})
            for k, rc in sites.items():
                per.setdefault(k, []).extend((img[rc[:, 0], rc[:, 1]] - clean[rc[:, 0], rc[:, 1]]).tolist())
            per.setdefault("all", []).extend(
                (img[allsites[:, 0], allsites[:, 1]] - clean[allsites[:, 0], allsites[:, 1]]).tolist()
            )

    def rmse(v: list[float]) -> float:
        return float(np.sqrt(np.mean(np.square(v)))) if v else float("nan")

    ref = err.get("dcraw -P, true list")
    cols = kinds + ["all"]
    print(
        f"{title}: own map {len(own.defects)} flags; true list {len(true_defects)} photosites; {len(tests)} test frames"
    )
    print(f"{'method':24s} " + " ".join(f"{k:>10s}" for k in cols) + "   outside map")
    for label, per in err.items():
        print(
            f"{label:24s} "
            + " ".join(f"{rmse(per[k]):10.1f}" for k in cols)
            + (f"   {outside[label]}" if label in outside else "")
        )
    if ref is not None:
        print("ratio to dcraw -P (true list):")
        for label, per in err.items():
            print(f"{label:24s} " + " ".join(f"{rmse(per[k]) / rmse(ref[k]):10.3f}" for k in cols))
        # the sampling spread of a ratio over a handful of readings: resample the readings (with both
        # methods' errors of a reading kept together) and take the 5th and 95th percentile
        own, rng = err["rawmap, own map"], np.random.default_rng(0)
        lo_hi = []
        for k in cols:
            a, b = np.square(own[k]), np.square(ref[k])
            pick = rng.integers(0, a.size, (2000, a.size))
            r = np.sqrt(a[pick].mean(axis=1) / np.maximum(b[pick].mean(axis=1), 1e-12))
            lo_hi.append(f"{np.quantile(r, 0.05):4.2f}-{np.quantile(r, 0.95):4.2f}")
        print(f"{'own map, 90 % interval':24s} " + " ".join(f"{x:>10s}" for x in lo_hi))
        print(f"{'readings':24s} " + " ".join(f"{len(own[k]):10d}" for k in cols))
    return 0


def _unflagged(tests: list[tuple[Path, np.ndarray]], true_defects: list[dict], n_sites: int, tmpd: Path) -> None:
    """Unflagged photosites repaired as if flagged, against their own values: thousands of readings.

    The interpolated kinds (stuck, dead) have a handful of sites per series,
    and the defect-free truth holds each photosite's own noise, which no
    estimate from its neighbours can know; a photosite that is not defective
    is repaired the same way (its own value is never read), so many of them
    give the ratio to dcraw's same-colour mean with a small sampling error,
    split by how much the scene varies around the site (the spread of its 8
    same-colour neighbours over the square root of their level).
    """
    rng = np.random.default_rng(0)
    errs: dict[str, list[np.ndarray]] = {"rawmap": [], "dcraw": []}
    contrast = []
    for src, clean_mosaic in tests:
        with rawpy.imread(str(src)) as raw:
            mosaic, cfa, black = raw.raw_image_visible.copy(), raw.raw_pattern.copy(), raw.black_level_per_channel
            white = int(raw.white_level)
        h, w = mosaic.shape
        taken = np.zeros((h, w), bool)
        for d in true_defects:
            taken[max(0, d["row"] - 3) : d["row"] + 4, max(0, d["col"] - 3) : d["col"] + 4] = True
        taken[:5], taken[-5:], taken[:, :5], taken[:, -5:] = True, True, True, True
        sites = []
        for _ in range(20 * n_sites):  # spread out: no site within 3 photosites of another or of a defect
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            if not taken[y, x]:
                sites.append((y, x))
                taken[y - 3 : y + 4, x - 3 : x + 4] = True
                if len(sites) == n_sites:
                    break
        ys, xs = np.array(sites).T
        mask = np.zeros((h, w), bool)
        mask[ys, xs] = True
        for d in true_defects:
            mask[d["row"], d["col"]] = True
        black2 = np.array(black, np.float64)[cfa]
        ours = repair_mosaic(mosaic, mask, cfa, white=white, black=black2).astype(np.float64)
        listing = tmpd / "unflagged.txt"
        listing.write_text("".join(f"{c} {r} 0\n" for r, c in zip(*np.nonzero(mask))))
        theirs = _dcraw(src, listing)
        clean = clean_mosaic.astype(np.float64)
        errs["rawmap"].append(ours[ys, xs] - clean[ys, xs])
        errs["dcraw"].append(theirs[ys, xs] - clean[ys, xs])
        same = np.stack(
            [mosaic[ys + dy, xs + dx].astype(np.float64) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx]
        )
        contrast.append(same.std(axis=0) / np.sqrt(np.maximum(same.mean(axis=0) - black2.mean(), 1.0)))
    ours_e, theirs_e, con = (np.concatenate(x) for x in (errs["rawmap"], errs["dcraw"], contrast))
    edges = np.quantile(con, [0, 1 / 3, 2 / 3, 1])
    print(f"unflagged photosites repaired as if flagged ({ours_e.size}, spread apart), RMSE ratio to dcraw -P:")
    print(f"  all {np.sqrt(np.mean(ours_e**2) / np.mean(theirs_e**2)):.3f}", end="")
    for name, a, b in zip(("flattest third", "middle third", "most textured third"), edges[:-1], edges[1:]):
        sel = (con >= a) & (con <= b)
        print(f"; {name} {np.sqrt(np.mean(ours_e[sel] ** 2) / np.mean(theirs_e[sel] ** 2)):.3f}", end="")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
