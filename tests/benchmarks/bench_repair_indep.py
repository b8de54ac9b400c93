"""Repair error on the independent series ``../shared/samples/series/indep-8080`` (made outside this project).

Run:  python tests/benchmarks/bench_repair_indep.py [--series DIR]

The 30 map frames (DNG) are mapped with ``rawmap.mapping.map_files`` (the
map rawmap itself makes); the three test frames ``test_030..032.dng`` are
then repaired, and compared at the true defect sites with their
defect-free mosaics ``clean_030..032.npy``:

* rawmap with its own map, and with the true list (``truth.json``);
* dcraw ``-D -4 -T -P`` with the true list (same-colour mean; the
  reference of issue 11);
* the frame as it came.

Printed: RMSE (DN) per defect kind and over all sites, each method's ratio to
dcraw, and the photosites changed outside the map (must be 0).  Needs
``dcraw`` on PATH.  Not part of the test suite.
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
from rawmap.repair import repair_file

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=Path, default=SERIES)
    a = ap.parse_args(argv)
    truth = json.loads((a.series / "truth.json").read_text())
    paths, _ = collect_inputs(sorted(a.series.glob("map_*.dng")))
    own = map_files(paths).maps[0].defect_map
    true = _true_map(own, truth)
    kinds = sorted({d["kind"] for d in truth["defects"]})
    sites = {k: np.array([(d["row"], d["col"]) for d in truth["defects"] if d["kind"] == k]) for k in kinds}
    allsites = np.array([(d["row"], d["col"]) for d in truth["defects"]])
    err: dict[str, dict[str, list[float]]] = {}
    outside: dict[str, int] = {}
    have_dcraw = shutil.which("dcraw") is not None
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        listing = tmpd / "true.txt"
        # dcraw -P: "col row time", visible-area coordinates (dcraw -D writes the visible area)
        listing.write_text("".join(f"{d['col']} {d['row']} 0\n" for d in truth["defects"]))
        for n in (30, 31, 32):
            src = a.series / f"test_{n:03d}.dng"
            clean = np.load(a.series / f"clean_{n:03d}.npy").astype(np.float64)
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
    print(f"indep-8080: own map {len(own.defects)} flags; true list {len(truth['defects'])} photosites; 3 test frames")
    print(f"{'method':22s} " + " ".join(f"{k:>10s}" for k in cols) + "   outside map")
    for label, per in err.items():
        print(
            f"{label:22s} "
            + " ".join(f"{rmse(per[k]):10.1f}" for k in cols)
            + (f"   {outside[label]}" if label in outside else "")
        )
    if ref is not None:
        print("ratio to dcraw -P (true list):")
        for label, per in err.items():
            print(f"{label:22s} " + " ".join(f"{rmse(per[k]) / rmse(ref[k]):10.3f}" for k in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
