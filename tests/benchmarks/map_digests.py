"""Digests of the maps the benchmarks make: a refactoring must leave every one of them unchanged.

Run:  python tests/benchmarks/map_digests.py [--write FILE | --check FILE]

Maps the series the detection benchmarks use (``indep-8080`` from RAW and
from JPEG when ``../shared`` is beside the repository; each scenario of
``write_scenario``, 24 frames of 300 x 450, seed 2027; ``generate_series``
40 frames of 1000 x 1500, seed 2026, as ``bench_detect.py``) and prints, per
series, the number of defects and a SHA-256 of the defects' JSON (row, col,
kind, score, value, channel, first seen, views).  ``--write`` saves them;
``--check`` compares with a saved file and exits 1 on any difference.  Run
``--write`` before a redesign step and ``--check`` after it; a change of the
detection itself changes the digests on purpose (write them again then).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from rawmap.mapping import collect_inputs, map_files

SERIES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "series" / "indep-8080"


def digest(defect_map) -> tuple[int, str]:
    text = json.dumps([d.to_dict() for d in defect_map.defects], sort_keys=True)
    return len(defect_map.defects), hashlib.sha256(text.encode()).hexdigest()[:16]


def series_maps():
    """(name, defect map) for every benchmark series."""
    from rawmap.testing import SCENARIOS, SensorSpec, generate_series, write_scenario

    if (SERIES / "truth.json").is_file():
        truth = json.loads((SERIES / "truth.json").read_text())
        raws = [SERIES / f["file"] for f in truth["frames"] if f["role"] == "map"]
        yield "indep-8080 RAW", map_files(raws).maps[0].defect_map
        yield "indep-8080 JPEG", map_files([p.with_suffix(".jpg") for p in raws]).maps[0].defect_map
    for name in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            write_scenario(Path(tmp), name, seed=2027, shape=(300, 450), n_frames=24)
            paths, _ = collect_inputs([Path(tmp)])
            yield f"scenario {name}", map_files(paths).maps[0].defect_map
    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_series(tmp, n_frames=40, seed=2026, spec=SensorSpec(1000, 1500))
        yield "detect 1000x1500", map_files([Path(tmp) / f.file for f in truth.frames]).maps[0].defect_map


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", type=Path, help="save the digests to this JSON file")
    g.add_argument("--check", type=Path, help="compare with digests saved by --write")
    a = ap.parse_args()
    got = {}
    for name, dmap in series_maps():
        n, h = digest(dmap)
        got[name] = [n, h]
        print(f"{name:<28} {n:>6} defects  {h}", flush=True)
    if a.write:
        a.write.write_text(json.dumps(got, indent=1) + "\n")
    if a.check:
        want = json.loads(a.check.read_text())
        bad = [k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
        for k in bad:
            print(f"DIFFERS: {k}: saved {want.get(k)}, now {got.get(k)}")
        print("all maps identical" if not bad else f"{len(bad)} map(s) differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
