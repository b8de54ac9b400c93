"""Test support: a simulated camera sensor with planted defects, and series written from it.

Tests, benchmarks and ``fixtures/generate.py`` use it to make photo series
whose defects are known, then check what rawmap finds.  The runtime never
imports it: no module directly in :mod:`rawmap` (reader, mapping, detection,
library, export, repair, cli ...) depends on anything here, and a test
checks that (``tests/test_testing.py``).  It depends on the runtime only for
the records and writers it shares (:class:`rawmap.frame.CameraId`,
:class:`rawmap.defectmap.DefectKind`, :func:`rawmap.dng.write_dng`, the
atomic writes of :mod:`rawmap.fileio`).

Pure numpy, fully determined by a seed: the same seed gives byte-identical
files.  The modules, each building on the ones before it:

* :mod:`~rawmap.testing.sensor` - :class:`SensorSpec`: geometry, levels and
  noise of a Bayer sensor (or a monochrome one, ``cfa=None``; 12-bit with
  black 0 is ``black=0, white=4095``); :meth:`SensorSpec.gain` and
  :meth:`SensorSpec.read_noise_dn` give the ISO-dependent conversion gain
  and read noise.
* :mod:`~rawmap.testing.defects` - :func:`plant_defects`: a random,
  non-overlapping set of defective photosites (:class:`PlantedDefect`, one
  record per photosite) of every kind rawmap maps: stuck, dead, hot and
  warm, cold, noisy (RTS), clusters and column/row segments; their models;
  the finer classes of the truth (:data:`DEFECT_CLASSES`).
* :mod:`~rawmap.testing.scene` - :func:`render_scene`: linear RGB
  irradiance of a synthetic scene ("landscape", "flat", "night", "glints",
  "indoor", "edges": buildings with straight edges on photosite
  boundaries, "texture": 1/f natural texture with sharp grass blades,
  "dark": a lens-cap dark); :func:`render_lamps`: a view's self-luminous
  point lights (street lamps), which keep their light as the daylight falls.
* :mod:`~rawmap.testing.exposure` - :func:`simulate` /
  :func:`simulate_frame`: one exposure (shot noise, dark current, read
  noise, quantisation, the defects; also the same frame without defects,
  same noise realisation, and which defects showed); the signal model;
  :func:`develop`, a camera-JPEG-like rendering.
* :mod:`~rawmap.testing.plans` - :class:`FramePlan`, :class:`SeriesPlan`,
  :func:`plan_series`: how each frame of a series is taken.  Frames that
  share a :attr:`FramePlan.burst` id show one static view: bursts, exposure
  brackets, timelapses (:attr:`FramePlan.light`).
* :mod:`~rawmap.testing.files` - :data:`FILE_FORMATS`: a frame as 8/16-bit
  grayscale TIFF or PNG mosaic, or a JPEG (DNG through :mod:`rawmap.dng`).
* :mod:`~rawmap.testing.truth` - :class:`SeriesTruth` (``truth.json``, read
  back with :func:`load_truth`): the planted defects, where each was
  visible, which must be found.
* :mod:`~rawmap.testing.series` - :func:`generate_series`: a realistic
  series of DNG files (or grayscale TIFF/PNG mosaics; and JPEGs, and
  duplicate files) with its ``truth.json``.
* :mod:`~rawmap.testing.scenarios` - :func:`write_scenario`: one line for a
  named series (:data:`SCENARIOS`: brackets, timelapse, timelapse-ae, timelapse-city, timelapse-drift, burst,
  darks-same, darks-mixed, darks-glow, mixed, mono, gray16, gray8, black0, banded), :func:`scenario_plan`
  its frames.
* :mod:`~rawmap.testing.oneview` - :func:`write_oneview_series`: a
  one-view series (a timelapse, the light falling or the exposure rising
  with it) whose scene is a real RAW file's own mosaic; :func:`develop_jpegs`:
  DNG frames developed by LibRaw and saved as JPEGs.
* :mod:`~rawmap.testing.brackets` - :func:`write_real_brackets`: exposure
  brackets whose views are crops of real RAW files' own mosaics, with
  planted defects and where each was visible against the scene.
* :mod:`~rawmap.testing.scoring` - :func:`score_map`: recall and precision
  of a defect map against the truth; :func:`score_flags` against the truth
  of an outside series (``indep-8080``); :func:`within`, the rule both
  match flags and defects by.

Every public name of these modules is importable from :mod:`rawmap.testing`
itself.

Examples
--------
>>> import tempfile
>>> from rawmap.testing import SensorSpec, generate_series
>>> truth = generate_series(tempfile.mkdtemp(), n_frames=3, seed=1, spec=SensorSpec(40, 60))
>>> len(truth.frames), truth.frames[0].file
(3, 'frame_000.dng')
"""

from __future__ import annotations

from .brackets import RealBrackets, write_real_brackets
from .defects import (
    BORDER,
    COLD_GAIN,
    DEFECT_CLASSES,
    HOT_RATE,
    WARM_RATE,
    DefectCounts,
    PlantedDefect,
    defect_class,
    plant_defects,
)
from .exposure import (
    CAMERA_MATRIX,
    DARK_DOUBLING_C,
    REFERENCE_TEMPERATURE_C,
    VISIBILITY_SIGMA,
    SimulatedFrame,
    dark_factor,
    develop,
    simulate,
    simulate_frame,
)
from .files import FILE_FORMATS, sample_scale, to_file_values
from .oneview import develop_jpegs, write_oneview_series
from .plans import FramePlan, SeriesPlan, plan_series
from .scenarios import DARK_EXPOSURES, SCENARIOS, scenario_counts, scenario_plan, scenario_spec, write_scenario
from .scene import SCENE_KINDS, render_lamps, render_scene
from .scoring import MapScore, score_flags, score_map, within
from .sensor import SensorSpec
from .series import generate_series
from .truth import FIND_SIGMA, MUST_FIND_SHARE, TRUTH_FORMAT, TRUTH_VERSION, FrameTruth, SeriesTruth, load_truth

__all__ = [
    "SCENE_KINDS",
    "VISIBILITY_SIGMA",
    "TRUTH_FORMAT",
    "TRUTH_VERSION",
    "BORDER",
    "SensorSpec",
    "PlantedDefect",
    "DefectCounts",
    "plant_defects",
    "render_lamps",
    "render_scene",
    "SimulatedFrame",
    "simulate",
    "simulate_frame",
    "develop",
    "CAMERA_MATRIX",
    "FramePlan",
    "SeriesPlan",
    "plan_series",
    "FrameTruth",
    "SeriesTruth",
    "generate_series",
    "load_truth",
    "FIND_SIGMA",
    "MUST_FIND_SHARE",
    "DARK_DOUBLING_C",
    "REFERENCE_TEMPERATURE_C",
    "HOT_RATE",
    "WARM_RATE",
    "COLD_GAIN",
    "DEFECT_CLASSES",
    "defect_class",
    "dark_factor",
    "FILE_FORMATS",
    "sample_scale",
    "to_file_values",
    "SCENARIOS",
    "DARK_EXPOSURES",
    "scenario_plan",
    "scenario_counts",
    "scenario_spec",
    "write_oneview_series",
    "develop_jpegs",
    "RealBrackets",
    "write_real_brackets",
    "write_scenario",
    "MapScore",
    "score_map",
    "score_flags",
    "within",
]
