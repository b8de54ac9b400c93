"""Detection quality of ``rawmap map`` on the named scenarios of ``rawmap.testing``.

Run:  python tests/benchmarks/bench_scenarios.py [--frames 24] [--height 300 --width 450] [--seed 2027 31 7]
      [--scenarios brackets timelapse ...]

Each scenario of :func:`rawmap.testing.write_scenario` (exposure brackets,
timelapses at fixed exposure, in aperture priority, and of a city whose street
lamps stay lit, bursts, lens-cap darks at one and at mixed exposures, a mixed
series with darks, brackets, bursts and duplicates, the same on a mono
sensor, as 16-bit and 8-bit grayscale images, and on a 12-bit sensor with
black level 0) is written to a temporary folder and mapped with
``rawmap.mapping.map_files`` (the grayscale ones, ``mono``, ``gray16`` and
``gray8``, as the README tells users to map such files: ``--cfa`` with the
pattern and black level; read without it they are developed images, whose
rules give one record per blob of pixels, which is printed beside); the
map is scored with
:func:`rawmap.testing.score_map` (recall on must-find defects: visible at
6 sigma in at least 20 % of the frames, a segment found when 80 % of its
photosites are flagged; precision = share of flags on planted defects).

With ``--peers``, the peers are scored side by side on the same files
where they apply: ``rawpy.enhance.find_bad_pixels`` on every RAW (DNG)
scenario (its default: a photosite far from the median of its same-colour
neighbours in at least ``frame_ratio`` of the frames), and Siril's
``find_hot`` (``siril-cli``, needs ``.[fits]`` for the FITS copies) on the
median master of the darks scenarios at 3 and 5 sigma, as
``bench_calib.py`` runs it.  rawpy.enhance takes about half a minute per
series of this size.  With ``--jpeg`` each DNG scenario is also written as
its JPEG renderings (the camera's JPEG beside each RAW) and mapped from
those alone (the JPEG fallback), scored with ``radius=2``: a flag within 2
pixels of a planted defect finds it (demosaicing and compression move a
defect's trace); the must-find defects are the RAW ones (visible in 20 % of
the frames of the mosaic), some of which a JPEG hides; each JPEG figure is
followed by the same map without the rule of colour photos counted both
ways.  ``--matrix`` renders the JPEGs through a camera's colour matrix
(``rawmap.testing.CAMERA_MATRIX``), whose negative terms take a one-colour
defect out of the other channels, as indep-8080's JPEGs do.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rawmap.detect import ClassifyParams, build_map
from rawmap.mapping import collect_inputs, map_files
from rawmap.reader import MosaicSpec
from rawmap.testing import CAMERA_MATRIX, SCENARIOS, score_map, write_scenario
from rawmap.testing.files import sample_scale
from rawmap.testing.scenarios import scenario_spec

#: the grayscale scenarios: their files' format and pattern (what ``rawmap map --cfa`` is told)
GRAYSCALE = {"mono": ("tiff16", "mono"), "gray16": ("tiff16", "RGGB"), "gray8": ("png8", "RGGB")}


def mosaic_spec(name: str, shape: tuple[int, int]) -> MosaicSpec:
    """How the README tells a user to map a grayscale scenario: ``--cfa PATTERN --black DN`` (the black
    level in the file's own units)."""
    fmt, cfa = GRAYSCALE[name]
    spec = scenario_spec(name, *shape)
    return MosaicSpec(cfa, black=int(round(float(np.max(spec.black)) * sample_scale(spec, fmt))))


#: scenarios of darks only, where Siril's find_hot (on a median master dark) applies
DARKS = ("darks-same", "darks-mixed", "darks-glow")


def _peer_line(name: str, flags: list, truth, elapsed: float) -> str:
    sc = score_map(SimpleNamespace(defects=flags), truth)
    return f"\n    {name}: {sc.summary()} ({elapsed:.1f} s)"


def peers(name: str, folder: Path, truth, shape: tuple[int, int]) -> str:
    """The peers' lines for one written scenario: rawpy.enhance on DNG series, Siril on darks."""
    dngs = sorted(folder.glob("*.dng"))
    if not dngs:
        return ""
    out = ""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "OpenCV not found": it falls back to scikit-image
        from rawpy import enhance

        coords = np.asarray(enhance.find_bad_pixels([str(p) for p in dngs]), np.int64).reshape(-1, 2)
    flags = [SimpleNamespace(row=int(r), col=int(c), kind="hot") for r, c in coords]
    out += _peer_line("rawpy.enhance.find_bad_pixels", flags, truth, time.perf_counter() - t0)
    if name in DARKS:
        if shutil.which("siril-cli") is None:
            return out + "\n    Siril find_hot: siril-cli not found (Debian: apt-get install siril)"
        from bench_calib import fits_copies, siril_find_hot

        fits_paths = fits_copies(dngs, folder / "fits")
        for sigma in (3.0, 5.0):
            flags, elapsed = siril_find_hot(fits_paths, sigma, *shape)
            out += _peer_line(f"Siril find_hot {sigma:g} sigma", flags, truth, elapsed)
    return out


def _by_class(sc) -> str:
    """``"kind found/must, ..."`` of a :func:`score_map` score."""
    return ", ".join(f"{k} {f}/{n}" for k, (f, n) in sorted(sc.recall_by_class.items()))


def run(
    name: str,
    frames: int,
    shape: tuple[int, int],
    seed: int,
    with_peers: bool = False,
    jpeg: bool = False,
    matrix: bool = False,
) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        jpeg &= name not in GRAYSCALE  # the grayscale scenarios are mosaics: no rendering to develop
        truth = write_scenario(
            folder,
            name,
            seed=seed,
            shape=shape,
            n_frames=frames,
            jpeg=jpeg,
            jpeg_matrix=CAMERA_MATRIX if matrix else None,
        )
        t1 = time.perf_counter()
        paths = [p for p in collect_inputs([folder])[0] if p.suffix.lower() != ".jpg"]
        result = map_files(paths, mosaic=mosaic_spec(name, shape) if name in GRAYSCALE else None)
        t2 = time.perf_counter()
        maps = result.maps
        if len(maps) != 1:
            return f"{name:12s} {len(maps)} maps (expected one body)"
        sc = score_map(maps[0].defect_map, truth)
        out = (
            f"{name:12s} gen {t1 - t0:4.1f}s map {t2 - t1:4.1f}s frames used {len(maps[0].files)}, "
            f"skipped {len(result.skipped)}\n    {sc.summary()}\n    found/must by class: {_by_class(sc)}"
        )
        if name in GRAYSCALE:  # the same files without --cfa: developed images, one record per blob of pixels
            plain = score_map(map_files(paths).maps[0].defect_map, truth)
            out += f"\n    without --cfa (developed-image rules): {plain.summary()}"
        if jpeg:  # the same series from its JPEG renderings (the JPEG fallback), flags within 2 px
            jpgs = sorted(folder.glob("*.jpg"))
            jrun = map_files(jpgs)
            if len(jrun.maps) == 1:
                jsc = score_map(jrun.maps[0].defect_map, truth, radius=2)
                out += f"\n    from its JPEGs (within 2 px): {jsc.summary()}\n    JPEG found/must by class: {_by_class(jsc)}"
                # side by side: the rule of colour photos counted both ways (issue 9) left out
                without = build_map(jrun.maps[0].accumulator, ClassifyParams(two_way_image_excess=float("inf")))
                out += f"\n    ... without the both-ways rule: {score_map(without, truth, radius=2).summary()}"
            else:
                out += f"\n    from its JPEGs: {len(jrun.maps)} maps (expected one body)"
        if with_peers:
            out += peers(name, folder, truth, shape)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--height", type=int, default=300)
    ap.add_argument("--width", type=int, default=450)
    ap.add_argument("--seed", type=int, nargs="+", default=[2027, 31, 7], help="one run per seed")
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--peers", action="store_true", help="also rawpy.enhance (DNG series) and Siril (darks)")
    ap.add_argument("--jpeg", action="store_true", help="also map each DNG scenario from its JPEG renderings")
    ap.add_argument("--matrix", action="store_true", help="with --jpeg: render through a camera's colour matrix")
    a = ap.parse_args()
    for name in a.scenarios:
        for seed in a.seed:
            out = run(name, a.frames, (a.height, a.width), seed, a.peers, a.jpeg, a.matrix)
            print(f"seed {seed}: " + out, flush=True)


if __name__ == "__main__":
    main()
