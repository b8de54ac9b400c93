"""Repair quality and speed: rawmap against dcraw ``-P``, rawpy.enhance and no repair.

Run:  python tests/benchmarks/bench_repair.py [--frames 10] [--seed 3] [--height 600 --width 900] [--speed-only]

Generates a simulated series with :func:`rawmap.testing.generate_series`
(DNG frames with an optical-black border, a realistic mix of daylight,
glints, indoor and star-field frames, every defect kind, more defects than
the default so that the figures are stable) and keeps each frame's
defect-free mosaic.  Every frame is then repaired with the *true* defect
list by:

* rawmap: :func:`rawmap.repair.repair_file` (RAW -> DNG), read back with LibRaw;
* dcraw:  ``dcraw -D -4 -T -c -P list`` (same-colour mean of the 3x3 or 5x5
  window; flagged neighbours not excluded);
* rawpy:  ``rawpy.enhance.repair_bad_pixels`` (3x3 same-colour median,
  needs scikit-image or OpenCV);
* none:   the frame as it came.

Printed: RMSE against the defect-free truth at the defect sites (all, isolated
ones, those in clusters and column/row segments), the ratio to dcraw, the
count of photosites changed outside the map (must be 0), and time per frame.
Then JPEG in, JPEG out (:func:`rawmap.repair.repair_image_file` on the
series' renderings): RMSE over the repaired discs against the rendering of
the defect-free frame, and the PSNR of the rest after re-encoding.  Last,
the speed of :func:`rawmap.repair.repair_mosaic` on a 24 MP frame with
10^4 and 10^5 flagged photosites, and of a whole RAW -> DNG repair of a
24 MP frame (:func:`rawmap.repair.repair_file`), with the DNG write itself
uncompressed (as before lossless JPEG) and compressed side by side; then
(also alone, with ``--speed-only``) the time per photo of ``repair_file``
on a 24 MP DNG decoding it once (now) and twice (as before: a second LibRaw
open for the DNG's extras), against LibRaw's decode plus ``write_dng`` of
the unrepaired mosaic alone (the issue's target: repair <= 1.2x that), and
``rawmap repair --threads 1`` vs ``--threads 2`` on 8 photos (outputs
compared byte for byte).  ``--speed-only`` runs with the allocator setting
of the ``rawmap repair`` command (:func:`rawmap._malloc.reuse_large_buffers`).

Needs ``dcraw`` on PATH (Debian: ``apt-get install dcraw``) and
scikit-image (``pip install scikit-image``); a missing one is reported and
its row left out.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rawpy
import tifffile

from rawmap.defectmap import Defect, DefectMap, FrameStats, SensorGeometry
from rawmap.repair import repair_file, repair_mosaic
from rawmap.testing import DefectCounts, SensorSpec, generate_series

COUNTS = DefectCounts(
    n_stuck=40, n_dead=40, n_hot=120, n_warm=60, n_cold=40, n_noisy=40, n_clusters=30, n_columns=3, n_rows=3
)


def _truth_map(truth) -> DefectMap:
    spec = truth.spec
    sensor = SensorGeometry(
        spec.height,
        spec.width,
        spec.top_margin,
        spec.left_margin,
        spec.full_shape[0],
        spec.full_shape[1],
        cfa=spec.cfa_string,
        source="raw",
    )
    defects = [Defect(d.row, d.col, d.kind, 99.0) for d in truth.defects]
    return DefectMap(truth.camera, sensor, FrameStats(len(truth.frames)), defects)


def _isolated(mask: np.ndarray) -> np.ndarray:
    """Flagged photosites with no other flagged photosite in their 5x5 window."""
    h, w = mask.shape
    p = np.pad(mask, 2).astype(np.int64)
    count = sum(p[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] for dy in range(-2, 3) for dx in range(-2, 3))
    return mask & (count == 1)


def _dcraw(path: Path, listing: Path) -> np.ndarray:
    out = subprocess.run(
        ["dcraw", "-D", "-4", "-T", "-c", "-P", str(listing), str(path)], check=True, capture_output=True
    ).stdout
    return tifffile.imread(io.BytesIO(out))


def _rawpy_median(path: Path, coords: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import rawpy.enhance

    with rawpy.imread(str(path)) as raw, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its chatter: no OpenCV, scikit-image's 14-bit rank filter
        rawpy.enhance.repair_bad_pixels(raw, coords, method="median")
        return raw.raw_image_visible.copy()


def _rawmap(path: Path, dmap: DefectMap, out_dir: Path) -> np.ndarray:
    result = repair_file(path, dmap, out_dir, overwrite=True)
    with rawpy.imread(str(result.output)) as raw:
        return raw.raw_image_visible.copy()


def _speed(repeats: int = 2) -> list[tuple[int, float]]:
    rng = np.random.default_rng(0)
    h, w = 4000, 6000
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    base = 2000 + 1500 * np.sin(x / 37.0) * np.cos(y / 53.0) + rng.normal(0, 30, (h, w)).astype(np.float32)
    mosaic = np.clip(base, 0, 16383).astype(np.uint16)
    del base
    out = []
    for n in (10_000, 100_000):
        mask = np.zeros((h, w), dtype=bool)
        mask[rng.integers(0, h, n), rng.integers(0, w, n)] = True
        mask[1000:1800, 3001] = True  # a column segment
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            repair_mosaic(mosaic, mask, np.array([[0, 1], [3, 2]]), white=16383)
            best = min(best, time.perf_counter() - t)
        out.append((int(mask.sum()), best))
    return out


def _dng_speed(repeats: int = 2) -> None:
    """A 24 MP RAW -> DNG repair end to end, and its DNG write uncompressed and compressed, side by side."""
    from rawmap.dng import write_dng
    from rawmap.frame import CameraId

    rng = np.random.default_rng(1)
    h, w = 4000, 6000
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    base = 2000 + 1500 * np.sin(x / 37.0) * np.cos(y / 53.0) + rng.normal(0, 30, (h, w)).astype(np.float32)
    mosaic = np.clip(base, 0, 16383).astype(np.uint16)
    del base
    cam = CameraId("Rawmap", "Bench 24MP", "B24")
    kw = dict(cfa=np.array([[0, 1], [1, 2]]), black=512, white=16383, camera=cam, iso=200, exposure=0.01)
    with tempfile.TemporaryDirectory(prefix="bench-repair-dng-") as tmp:
        tmp = Path(tmp)
        src = write_dng(tmp / "src.dng", mosaic, **kw)
        write_dng(tmp / "warm.dng", mosaic[:64, :64], compress=True, **kw)  # compile (or load) the encoder
        mask = np.zeros((h, w), dtype=bool)
        mask[rng.integers(0, h, 100_000), rng.integers(0, w, 100_000)] = True
        rows, cols = np.nonzero(mask)
        from rawmap.defectmap import DefectKind

        dmap = DefectMap(
            cam,
            SensorGeometry(h, w, cfa="RGGB"),
            FrameStats(1),
            [Defect(int(r), int(c), DefectKind.HOT, 9.0) for r, c in zip(rows, cols)],
        )
        import rawmap.dng

        def uncompressed(*args, **kwargs):  # the writer as repair called it before: no compression
            return write_dng(*args, **{**kwargs, "compress": False})

        times = {"plain": np.inf, "lossless JPEG": np.inf, "repair plain": np.inf, "repair": np.inf}
        sizes = {}
        for _ in range(repeats):
            for name, compress in (("plain", False), ("lossless JPEG", True)):
                t = time.perf_counter()
                p = write_dng(tmp / f"{name}.dng", mosaic, compress=compress, overwrite=True, **kw)
                times[name] = min(times[name], time.perf_counter() - t)
                sizes[name] = p.stat().st_size
            t = time.perf_counter()
            repair_file(src, dmap, tmp / "out", overwrite=True)
            times["repair"] = min(times["repair"], time.perf_counter() - t)
            rawmap.dng.write_dng = uncompressed  # type: ignore[assignment]
            try:
                t = time.perf_counter()
                repair_file(src, dmap, tmp / "out", overwrite=True)
                times["repair plain"] = min(times["repair plain"], time.perf_counter() - t)
            finally:
                rawmap.dng.write_dng = write_dng
    plain, packed = times["plain"], times["lossless JPEG"]
    print(f"\nDNG of a 4000x6000 frame (best of {repeats}):")
    print(
        f"  write uncompressed {plain:.2f} s ({sizes['plain'] / 1e6:.1f} MB), lossless JPEG {packed:.2f} s "
        f"({sizes['lossless JPEG'] / 1e6:.1f} MB): x{packed / plain:.2f} time, x{sizes['lossless JPEG'] / sizes['plain']:.2f} size"
    )
    print(
        f"  repair_file RAW -> DNG, 10^5 flagged: {times['repair']:.2f} s with lossless JPEG, "
        f"{times['repair plain']:.2f} s uncompressed (as before): x{times['repair'] / times['repair plain']:.2f}"
    )


def _bench_frame(seed: int, h: int = 4000, w: int = 6000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    base = 2000 + 1500 * np.sin(x / 37.0) * np.cos(y / 53.0) + rng.normal(0, 30, (h, w)).astype(np.float32)
    return np.clip(base, 0, 16383).astype(np.uint16)


def _decode_once_speed(repeats: int = 7) -> None:
    """Time per 24 MP photo of repair_file, decoding once (now) vs twice (before), vs decode + write alone.

    *before*: the frame read by LibRaw, then the file opened and unpacked
    again for the DNG's extras (full frame, colour, preview), as
    ``_raw_extras`` did; *now*: one decode serves both
    (``read_frame(extras=True)``); *decode + write*: LibRaw's decode of the
    same file and :func:`rawmap.dng.write_dng` of the unrepaired mosaic with
    the options repair uses (lossless JPEG, the same tags), no repair.
    Interleaved ``repeats`` times: best of each, and the median and range
    of the ratio now / decode + write within each round (the two run
    seconds apart, so a slow spell of the machine weighs on both; the best
    times of different rounds swung x1.09-1.36 from run to run here).
    """
    import rawmap.repair
    from rawmap.defectmap import DefectKind
    from rawmap.dng import write_dng
    from rawmap.frame import CameraId
    from rawmap.reader import read_frame

    h, w = 4000, 6000
    mosaic = _bench_frame(2, h, w)
    cam = CameraId("Rawmap", "Bench 24MP", "B24")
    kw = dict(cfa=np.array([[0, 1], [1, 2]]), black=512, white=16383, camera=cam, iso=200, exposure=0.01)
    rng = np.random.default_rng(3)
    coords = sorted({(int(r), int(c)) for r, c in zip(rng.integers(0, h, 10_000), rng.integers(0, w, 10_000))})
    dmap = DefectMap(
        cam, SensorGeometry(h, w, cfa="RGGB"), FrameStats(1), [Defect(r, c, DefectKind.HOT, 9.0) for r, c in coords]
    )
    own = rawmap.repair._read

    def twice(src, mosaic=None, *, extras=False):  # what repair did before: a second LibRaw open for the extras
        frame = read_frame(src, mosaic=mosaic)
        if extras:
            again = read_frame(src, mosaic=mosaic, extras=True)
            if not np.array_equal(again.mosaic, frame.mosaic):
                raise SystemExit("LibRaw returned other pixels on a second read")
            frame.extra["libraw"] = again.extra["libraw"]
        return frame

    with tempfile.TemporaryDirectory(prefix="bench-repair-once-") as tmp:
        tmp = Path(tmp)
        src = write_dng(tmp / "src.dng", mosaic, compress=True, **kw)
        write_dng(tmp / "warm.dng", mosaic[:64, :64], compress=True, **kw)  # compile (or load) the encoder
        repair_file(src, dmap, tmp / "out", overwrite=True)  # warm: caches, numba
        times = {"decode + write": np.inf, "before (2 decodes)": np.inf, "now (1 decode)": np.inf}
        pairs = []
        for _ in range(repeats):
            t = time.perf_counter()
            frame = read_frame(src, extras=True)
            extras = rawmap.repair._raw_extras(frame)
            extras["linearization"] = None
            write_dng(tmp / "plain.dng", frame.mosaic, compress=True, overwrite=True, **{**kw, **extras})
            base_round = time.perf_counter() - t
            times["decode + write"] = min(times["decode + write"], base_round)
            del frame, extras
            rawmap.repair._read = twice  # type: ignore[assignment]
            try:
                t = time.perf_counter()
                repair_file(src, dmap, tmp / "out", overwrite=True)
                times["before (2 decodes)"] = min(times["before (2 decodes)"], time.perf_counter() - t)
            finally:
                rawmap.repair._read = own
            t = time.perf_counter()
            repair_file(src, dmap, tmp / "out", overwrite=True)
            now_round = time.perf_counter() - t
            times["now (1 decode)"] = min(times["now (1 decode)"], now_round)
            pairs.append(now_round / base_round)
    base = times["decode + write"]
    print(f"\nrepair_file of a 4000x6000 DNG (lossless JPEG), {len(dmap.defects)} flagged, best of {repeats}:")
    for name, secs in times.items():
        print(f"  {name:<20} {secs:6.2f} s   x{secs / base:.2f} of decode + write")
    print(f"  now / before: x{times['now (1 decode)'] / times['before (2 decodes)']:.2f}")
    print(
        f"  now / decode + write within each round: median x{np.median(pairs):.2f} "
        f"(x{min(pairs):.2f}-{max(pairs):.2f}, {len(pairs)} rounds)"
    )


def _threads_speed(n_photos: int = 8, h: int = 2000, w: int = 3000) -> None:
    """``rawmap repair --threads 1`` vs ``--threads 2`` on ``n_photos`` DNGs, side by side (wall time)."""
    from rawmap.defectmap import DefectKind
    from rawmap.dng import write_dng
    from rawmap.frame import CameraId

    cam = CameraId("Rawmap", "Bench 6MP", "B6")
    kw = dict(cfa=np.array([[0, 1], [1, 2]]), black=512, white=16383, camera=cam, iso=200, exposure=0.01)
    rng = np.random.default_rng(4)
    coords = sorted({(int(r), int(c)) for r, c in zip(rng.integers(0, h, 5000), rng.integers(0, w, 5000))})
    dmap = DefectMap(
        cam, SensorGeometry(h, w, cfa="RGGB"), FrameStats(1), [Defect(r, c, DefectKind.HOT, 9.0) for r, c in coords]
    )
    with tempfile.TemporaryDirectory(prefix="bench-repair-threads-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        photos = [write_dng(tmp / "in" / f"p{i}.dng", _bench_frame(10 + i, h, w), compress=True, **kw)
                  for i in range(n_photos)]  # fmt: skip
        map_file = tmp / "map.json"
        dmap.save(map_file)
        times = {}
        for n in ("1", "2", "1", "2"):
            out = tmp / f"out-{n}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "rawmap", "repair", *map(str, photos), "--map", str(map_file), "-o", str(out),
                 "-q", "--threads", n],
                check=True, capture_output=True,
            )  # fmt: skip
            times[n] = min(times.get(n, np.inf), time.perf_counter() - t)
        same = all((tmp / "out-1" / p.name).read_bytes() == (tmp / "out-2" / p.name).read_bytes()
                   for p in (tmp / "out-1").iterdir())  # fmt: skip
    print(f"\nrawmap repair of {n_photos} DNGs of {h}x{w} (best of 2, wall time incl. start-up):")
    print(
        f"  --threads 1 {times['1']:.2f} s, --threads 2 {times['2']:.2f} s: x{times['2'] / times['1']:.2f} "
        f"({'identical' if same else 'DIFFERENT'} outputs)"
    )


def _jpeg_table(args) -> None:
    """JPEG in, JPEG out: error over the repaired discs against the defect-free rendering, PSNR elsewhere."""
    from PIL import Image

    from rawmap.repair import repair_region
    from rawmap.testing import develop

    with tempfile.TemporaryDirectory(prefix="bench-repair-jpeg-") as tmp:
        tmp = Path(tmp)
        spec = SensorSpec(args.height, args.width)
        truth = generate_series(
            tmp / "series",
            n_frames=max(3, args.frames // 2),
            seed=args.seed + 1,
            spec=spec,
            counts=COUNTS,
            jpeg=True,
            clean_dir=tmp / "clean",
        )
        dng_map = _truth_map(truth)
        mask = dng_map.mask()
        # the same defects, as an image map (a rendering keeps the sensor's geometry)
        img_map = DefectMap(
            truth.camera, SensorGeometry(spec.height, spec.width, source="image"), dng_map.frames, dng_map.defects
        )
        region = repair_region(mask)
        err_none, err_ours, psnrs = [], [], []
        for fr in truth.frames:
            src = tmp / "series" / fr.jpeg
            ref = develop(np.load(fr.clean), spec).astype(np.float64)
            with Image.open(src) as im:
                given = np.asarray(im).astype(np.float64)
            res = repair_file(src, img_map, tmp / "out", overwrite=True)
            with Image.open(res.output) as im:
                ours = np.asarray(im).astype(np.float64)
            err_none.append(np.sqrt(np.mean((given[region] - ref[region]) ** 2)))
            err_ours.append(np.sqrt(np.mean((ours[region] - ref[region]) ** 2)))
            psnrs.append(res.psnr)
    print(
        f"\nJPEG (quality 90, {len(err_ours)} frames): RMSE over the repaired discs against the "
        f"defect-free rendering, 8-bit levels"
    )
    print(
        f"  none {np.sqrt(np.mean(np.square(err_none))):.2f}   rawmap {np.sqrt(np.mean(np.square(err_ours))):.2f}   "
        f"PSNR of the rest after re-encoding: {min(psnrs):.1f}-{max(psnrs):.1f} dB"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--height", type=int, default=600)
    ap.add_argument("--width", type=int, default=900)
    ap.add_argument("--no-speed", action="store_true", help="skip the 24 MP speed measurement")
    ap.add_argument(
        "--speed-only", action="store_true", help="only decode-once (24 MP) and --threads 1 vs 2 (8 photos)"
    )
    args = ap.parse_args(argv)
    if args.speed_only:
        from rawmap._malloc import reuse_large_buffers

        reuse_large_buffers()  # as the rawmap repair command does: work buffers reused from photo to photo
        _decode_once_speed()
        _threads_speed()
        return 0

    have_dcraw = shutil.which("dcraw") is not None
    try:
        import skimage  # noqa: F401  (rawpy.enhance's median without OpenCV)

        have_skimage = True
    except ImportError:
        have_skimage = False
    if not have_dcraw:
        print("dcraw not found (apt-get install dcraw): its row is left out")
    if not have_skimage:
        print("scikit-image not found (pip install scikit-image): the rawpy.enhance row is left out")

    with tempfile.TemporaryDirectory(prefix="bench-repair-") as tmp:
        tmp = Path(tmp)
        spec = SensorSpec(args.height, args.width, top_margin=8, left_margin=12)
        t0 = time.perf_counter()
        truth = generate_series(
            tmp / "series", n_frames=args.frames, seed=args.seed, spec=spec, counts=COUNTS, clean_dir=tmp / "clean"
        )
        print(
            f"generated {len(truth.frames)} frames of {spec.height}x{spec.width} with "
            f"{len(truth.defects)} defective photosites in {time.perf_counter() - t0:.1f} s"
        )
        dmap = _truth_map(truth)
        mask = dmap.mask()
        iso = _isolated(mask)
        groups = mask & ~iso
        coords = dmap.coordinates()
        listing = tmp / "defects.txt"
        listing.write_text("".join(f"{c} {r} 0\n" for r, c in coords))

        methods = (
            ["rawmap"] + (["dcraw"] if have_dcraw else []) + (["rawpy.enhance"] if have_skimage else []) + ["none"]
        )
        sq = {m: np.zeros(3) for m in methods}
        n = np.zeros(3)
        outside = {m: 0 for m in methods}
        seconds: dict[str, list[float]] = {m: [] for m in methods}
        scenes = []
        for fr in truth.frames:
            path = tmp / "series" / fr.file
            clean = np.load(fr.clean)
            with rawpy.imread(str(path)) as raw:
                given = raw.raw_image_visible.copy()
            scenes.append(fr.scene)
            for m in methods:
                t = time.perf_counter()
                if m == "rawmap":
                    out = _rawmap(path, dmap, tmp / "out")
                elif m == "dcraw":
                    out = _dcraw(path, listing)
                elif m == "rawpy.enhance":
                    out = _rawpy_median(path, coords)
                else:
                    out = given
                seconds[m].append(time.perf_counter() - t)
                if out.shape != given.shape:
                    raise SystemExit(f"{m} returned {out.shape}, expected {given.shape}")
                err = out.astype(np.float64) - clean
                for k, where in enumerate((mask, iso, groups)):
                    sq[m][k] += float(np.sum(err[where] ** 2))
                outside[m] += int(np.count_nonzero(out[~mask] != given[~mask]))
            n += [mask.sum(), iso.sum(), groups.sum()]

    nf = len(truth.frames)
    print(f"\nscenes: {', '.join(f'{s} x{scenes.count(s)}' for s in sorted(set(scenes)))}")
    print(
        f"defect sites per frame: {int(n[0] / nf)} ({int(n[1] / nf)} isolated, {int(n[2] / nf)} in clusters/segments)\n"
    )
    rmse = {m: np.sqrt(sq[m] / np.maximum(n, 1)) for m in methods}
    ref = rmse.get("dcraw")
    head = f"{'method':<15}{'RMSE all':>10}{'isolated':>10}{'groups':>10}{'vs dcraw':>10}{'iso vs dc':>10}{'changed outside':>17}{'s/frame':>9}"
    print(head)
    print("-" * len(head))
    for m in methods:
        r = rmse[m]
        ratio = f"{r[0] / ref[0]:.3f}" if ref is not None else "-"
        ratio_iso = f"{r[1] / ref[1]:.3f}" if ref is not None else "-"
        print(
            f"{m:<15}{r[0]:>10.1f}{r[1]:>10.1f}{r[2]:>10.1f}{ratio:>10}{ratio_iso:>10}{outside[m]:>17}{np.median(seconds[m]):>9.2f}"
        )
    print(
        "\n(RMSE in DN at the true defect sites against the defect-free frame; time: median per frame, "
        "rawmap's includes reading the RAW and writing the DNG)"
    )
    _jpeg_table(args)

    if not args.no_speed:
        print("\nrepair_mosaic on a 4000x6000 frame (best of 2):")
        for count, secs in _speed():
            print(f"  {count:>7} flagged photosites: {secs:.2f} s")
        _dng_speed()
        _decode_once_speed()
        _threads_speed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
