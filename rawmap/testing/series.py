"""A simulated series of photos from one defective sensor, written to a folder (:func:`generate_series`).

Realistic series of DNG files (or 8/16-bit grayscale TIFF/PNG mosaics; and
JPEGs, and duplicate files) with a ``truth.json``
(:class:`~rawmap.testing.truth.SeriesTruth`).  Frames that share a
:attr:`~rawmap.testing.plans.FramePlan.burst` id show one static view:
bursts, exposure brackets, timelapses (:attr:`~rawmap.testing.plans.FramePlan.light`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fileio import OutputExistsError, atomic_write_bytes
from .defects import DefectCounts, PlantedDefect, plant_defects
from .exposure import _border_frame, develop, simulate
from .files import _image_bytes, _jpeg_bytes, sample_scale, to_file_values
from .plans import FramePlan, SeriesPlan, plan_series
from .scene import SCENE_KINDS, _shift, render_lamps, render_scene
from .sensor import SensorSpec
from .truth import FIND_SIGMA, FrameTruth, SeriesTruth, _view_keys

__all__ = ["generate_series"]

_F32 = np.float32


def _scene_rate(spec: SensorSpec, fp: FramePlan) -> float:
    """Irradiance (e-/s at QE 1) that puts mid grey (or night sky) at ``fp.level`` of the raw range."""
    range_e = (spec.white - float(spec.black_map().mean())) / spec.gain(fp.iso)
    return fp.level * range_e / fp.exposure


def generate_series(
    out_dir: str | Path,
    *,
    n_frames: int = 40,
    seed: int = 0,
    spec: SensorSpec | None = None,
    counts: DefectCounts | None = None,
    defects: Sequence[PlantedDefect] | None = None,
    plan: SeriesPlan | None = None,
    jpeg: bool = False,
    clean_dir: str | Path | None = None,
    file_format: str = "dng",
    duplicates: int = 0,
    overwrite: bool = False,
    jpeg_matrix: Sequence[Sequence[float]] | None = None,
) -> SeriesTruth:
    """Simulate a series of photos from one defective sensor and write it.

    Writes ``frame_000.dng`` ... (uncompressed DNG, with an ActiveArea
    border when the spec has margins; or ``.tif`` / ``.png``, see
    ``file_format``), with ``jpeg`` also ``frame_000.jpg`` ... (a simple
    rendering with EXIF), the ``duplicates``, and last ``truth.json``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    n_frames : int, optional
        Ignored when ``plan`` is given.
    seed : int, optional
        Everything (defects, plan, scenes, noise) derives from it; the same
        seed gives byte-identical files.
    spec : SensorSpec, optional
        600 x 900 RGGB sensor with no border when omitted.
    counts : DefectCounts, optional
        Defects to plant; :meth:`DefectCounts.for_sensor` when omitted.
    defects : sequence of PlantedDefect, optional
        Use these instead of planting new ones.
    plan : SeriesPlan, optional
        Use this instead of :func:`plan_series` (brackets, timelapses,
        darks: see :class:`FramePlan` and :func:`scenario_plan`).
    jpeg : bool, optional
        Also write JPEG renderings (colour sensors only).
    clean_dir : str or Path, optional
        Also write each frame's defect-free mosaic as ``frame_000.npy``
        (uint16 DN, visible area) there.
    file_format : {"dng", "tiff16", "tiff8", "png16", "png8"}, optional
        How frames are written (:data:`FILE_FORMATS`): a DNG, or the raw
        mosaic as a grayscale image scaled to 8 or 16 bits (visible area
        only).  A monochrome spec (``cfa=None``) needs an image format.
    duplicates : int, optional
        Also write this many byte-identical copies of randomly chosen
        frames: alternately under another name in ``out_dir``
        (``frame_007-copy.dng``) and under the same name in
        ``out_dir/backup/``.  Listed in :attr:`SeriesTruth.duplicates`.
    overwrite : bool, optional
        Replace existing files; otherwise any existing output is refused
        before anything is written.
    jpeg_matrix : (3, 3) sequence of float, optional
        With ``jpeg``: the colour matrix of the renderings (:func:`develop`,
        e.g. :data:`CAMERA_MATRIX`); none by default.

    Returns
    -------
    SeriesTruth

    Raises
    ------
    ValueError
        An unknown ``file_format``, a DNG or JPEG asked of a monochrome
        sensor, a negative ``duplicates``.
    rawmap.fileio.OutputExistsError
        Output files exist and ``overwrite`` is false.
    """
    from ..dng import write_dng

    out_dir = Path(out_dir)
    spec = spec or SensorSpec(600, 900)
    scale = sample_scale(spec, file_format)
    if spec.mono and (file_format == "dng" or jpeg):
        raise ValueError(
            "a monochrome sensor (cfa=None) is written as a grayscale image: pass file_format="
            "'tiff16', 'tiff8', 'png16' or 'png8', and no jpeg (the DNG writer writes CFA data only)"
        )
    if duplicates < 0:
        raise ValueError(f"duplicates must be >= 0, got {duplicates}")
    ss = np.random.SeedSequence(seed)
    s_defects, s_plan, s_frames, s_bursts, s_extra = ss.spawn(5)
    if defects is None:
        counts = counts or DefectCounts.for_sensor(spec.height, spec.width)
        defects = plant_defects(spec, np.random.default_rng(s_defects), **counts.as_kwargs())  # type: ignore[arg-type]
    defects = sorted(defects, key=lambda d: (d.row, d.col))
    if plan is None:
        plan = plan_series(n_frames, np.random.default_rng(s_plan))
    for fp in plan.frames:
        if fp.scene not in SCENE_KINDS:
            raise ValueError(f"frame scene must be one of {', '.join(SCENE_KINDS)}; got {fp.scene!r}")
    n = len(plan)
    ext = {"dng": "dng", "tiff16": "tif", "tiff8": "tif", "png16": "png", "png8": "png"}[file_format]
    names = [f"frame_{i:03d}" for i in range(n)]
    extra_rng = np.random.default_rng(s_extra)
    dup_of = [int(i) for i in extra_rng.choice(n, size=min(duplicates, n), replace=False)] if duplicates else []
    while len(dup_of) < duplicates:  # more copies than frames: copy some twice
        dup_of.append(int(extra_rng.integers(n)))
    dups = [
        (
            (f"{names[i]}-copy.{ext}" if k % 2 == 0 else f"backup/{names[i]}.{ext}")
            if k < 2 * n
            else f"backup/{names[i]}-{k}.{ext}",
            f"{names[i]}.{ext}",
        )
        for k, i in enumerate(dup_of)
    ]
    clean_path = None if clean_dir is None else Path(clean_dir)
    wanted = [out_dir / f"{s}.{ext}" for s in names] + [out_dir / "truth.json"] + [out_dir / a for a, _ in dups]
    if jpeg:
        wanted += [out_dir / f"{s}.jpg" for s in names]
    if clean_path is not None:
        wanted += [clean_path / f"{s}.npy" for s in names]
    if not overwrite:
        for p in wanted:
            if p.exists():
                raise OutputExistsError(f"{p}: already exists (choose another output folder, or allow overwriting)")
    out_dir.mkdir(parents=True, exist_ok=True)

    frame_seeds = s_frames.spawn(n)
    burst_seeds: dict[int, np.random.SeedSequence] = {}
    burst_scene: dict[int, np.ndarray] = {}
    burst_lamps: dict[int, np.ndarray] = {}
    visible = np.zeros(len(defects), dtype=np.int64)
    found = np.zeros((n, len(defects)), dtype=bool)
    q_var = max(0.0, (1.0 / scale) ** 2 - 1.0) / 12.0  # quantisation of the file beyond 1 DN
    frames: list[FrameTruth] = []
    for i, fp in enumerate(plan.frames):
        rng = np.random.default_rng(frame_seeds[i])
        if fp.scene == "dark":
            scene = render_scene(spec, rng, "dark")
        elif fp.burst is not None:
            if fp.burst not in burst_scene:
                burst_seeds.setdefault(fp.burst, s_bursts.spawn(1)[0])
                burst_rng = np.random.default_rng(burst_seeds[fp.burst])
                rate = _scene_rate(spec, fp)
                burst_scene[fp.burst] = render_scene(spec, burst_rng, fp.scene, rate=rate)
                if fp.lamps > 0:  # drawn after the scene: a plan without lamps renders the same scene
                    burst_lamps[fp.burst] = render_lamps(spec, burst_rng, fp.lamps, rate)
            scene = _shift(burst_scene[fp.burst], *fp.jitter)
            if fp.light != 1.0:
                scene *= _F32(fp.light)
            if fp.burst in burst_lamps:  # self-luminous: unscaled by the frame's light
                scene += _shift(burst_lamps[fp.burst], *fp.jitter)
        else:
            scene = render_scene(spec, rng, fp.scene, rate=_scene_rate(spec, fp))
        sim = simulate(spec, defects, scene, fp.exposure, fp.iso, rng, temperature=fp.temperature)
        del scene
        visible += sim.visible
        found[i] = np.abs(sim.deviation) > FIND_SIGMA * np.sqrt(sim.sigma**2 + q_var)
        if file_format == "dng":
            full = None
            if spec.top_margin or spec.left_margin:
                full = _border_frame(spec, sim.mosaic, fp.iso, rng)
            kw = {} if fp.temperature is None else {"temperature": fp.temperature}
            written = write_dng(
                out_dir / f"{names[i]}.dng",
                sim.mosaic,
                cfa=spec.cfa_array,
                black=spec.black_levels(),
                white=spec.white,
                camera=spec.camera,
                exposure=fp.exposure,
                iso=fp.iso,
                time=fp.time,
                full_frame=full,
                margins=(spec.top_margin, spec.left_margin),
                as_shot_neutral=spec.wb_neutral(),
                overwrite=overwrite,
                **kw,  # type: ignore[arg-type]
            )
        else:
            written = atomic_write_bytes(
                out_dir / f"{names[i]}.{ext}",
                _image_bytes(to_file_values(sim.mosaic, spec, file_format), spec.camera, fp, file_format),
                overwrite=overwrite,
            )
        jpg_name = None
        if jpeg:
            jpg = atomic_write_bytes(
                out_dir / f"{names[i]}.jpg",
                _jpeg_bytes(develop(sim.mosaic, spec, matrix=jpeg_matrix), spec.camera, fp.exposure, fp.iso, fp.time),
                overwrite=overwrite,
            )
            jpg_name = jpg.name
        clean_name = None
        if clean_path is not None:
            buf = io.BytesIO()
            np.save(buf, sim.clean, allow_pickle=False)
            clean_name = str(atomic_write_bytes(clean_path / f"{names[i]}.npy", buf.getvalue(), overwrite=overwrite))
        frames.append(
            FrameTruth(
                written.name, fp.exposure, fp.iso, fp.scene, fp.time, fp.burst, jpg_name, clean_name, fp.temperature
            )
        )
    for copy, orig in dups:
        atomic_write_bytes(out_dir / copy, (out_dir / orig).read_bytes(), overwrite=overwrite)
    keys = _view_keys(plan.frames)
    views = np.array([len({keys[i] for i in np.flatnonzero(found[:, j])}) for j in range(len(defects))], np.int64)
    truth = SeriesTruth(
        camera=spec.camera,
        spec=spec,
        frames=frames,
        defects=list(defects),
        visible_fraction=visible / max(1, n),
        seed=seed,
        visible_frames=found.sum(axis=0).astype(np.int64),
        visible_views=views,
        file_format=file_format,
        sample_scale=scale,
        duplicates=dups,
    )
    truth.save(out_dir / "truth.json", overwrite=overwrite)
    return truth
