"""Records of the accumulator: the per-frame outlier test's parameters, what it keeps of a frame,
and a frame prepared for folding (see :mod:`rawmap.accumulate`)."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

_EPOCH = _dt.datetime(1970, 1, 1)

#: Dark current doubles every this many degrees C (silicon near room temperature: 5-7 degrees; the
#: middle of that range, not a value fitted to any one sensor).
DARK_DOUBLING_C = 6.5
#: Dark-current values are given at this temperature when the frames state theirs, degrees C.
REFERENCE_TEMPERATURE_C = 20.0


def dark_current_factor(temperature: float | None) -> float:
    """Dark current at ``temperature`` (degrees C) relative to :data:`REFERENCE_TEMPERATURE_C`.

    ``2 ** ((T - 20) / 6.5)``; 1 when the temperature is unknown (``None``
    or not finite): such a frame counts at the reference.

    Examples
    --------
    >>> dark_current_factor(26.5), dark_current_factor(None)
    (2.0, 1.0)
    """
    if temperature is None or not math.isfinite(temperature):
        return 1.0
    return float(2.0 ** ((float(temperature) - REFERENCE_TEMPERATURE_C) / DARK_DOUBLING_C))


@dataclass(frozen=True)
class DetectionParams:
    """Per-frame outlier test used while accumulating.

    Attributes
    ----------
    k : float
        A photosite is an outlier in a frame when its residual exceeds ``k``
        times the frame's own noise at that level.
    k_line : float
        Line test: a photosite and its two same-colour neighbours along a
        column (row) all deviate by more than this many sigmas, the same way,
        across the line (against the neighbours beside the line, so the whole
        offset of a defective line counts).
    k_adjacent : float
        An adjacent photosite (other colour) deviating by more than this many
        sigmas counts against isolation.
    max_adjacent : int
        More deviating adjacent photosites than this: a scene feature (star,
        edge, glint), not a defect.  2 keeps clusters of up to four.
    scene_share : float
        Within one view (frames of the same scene) the photosite must be an
        outlier in at least this share of the view's frames to count once.
    view_corr : float
        Two frames show the same view when the correlation of their
        thumbnails (block means, so exposure, ISO and black level drop out;
        blocks clipped in either frame left out) is at least this.  Measured
        on an independent series: frames of one view (brackets four stops
        apart, a timelapse) 0.993-1.000, different scenes at most 0.64.
    view_shift : float
        ... or, where no view reaches that, with one of the three it
        resembles most moved by up to this many of the signature's blocks
        each way (half and quarter blocks, bilinear), where the move beats
        the mirrored one by 0.1 (a fraction of a block averages noise out,
        whichever way): a handheld bracket or burst.  0 turns it off.
        Measured on real scenes' brackets of 1200 x 1800 photosites, frames
        up to 32 photosites off (half a block): pairs of one view 0.52-0.98
        in place, 0.85-0.99 moved; different scenes at most 0.81 in place,
        0.87 moved.  Not two blocks, though frames each up to 32
        photosites off their view's centre are up to 64 apart, two blocks
        of a 480 x 720 frame (the real scenes' brackets with that shake,
        seeds 7 and 3: 40-41 views counted for 22 at one block, 31-32 at
        two): with fewer views, 10 % of them (``min_share``) fell from 5 to
        4, and a photosite bright by chance in 4 busy, mostly clipped views
        (3.6 such photosites expected there) was mapped hot.
    view_shift_floor : float
        ... only views it correlates with by at least this in place are
        searched moved (one view's frames half a block apart: 0.52 and more),
        and the view the frame before it joined, however little alike in
        place (a handheld bracket's frames come one after another; frames of
        one view a block apart or more: 0.2-0.4 in place, up to 0.97 moved).
    view_clipped_corr : float
        ... or, for a frame clipped over half its signature's blocks or more
        (a bracket's longest exposure), the view it correlates with by at
        least this over its unclipped blocks, 0.15 more than with any other
        (the view keeps its signature).  Measured on the real scenes'
        brackets (480 x 720, seeds 7 and 3, on a tripod and handheld): its
        own view 0.62-0.89, other views at most 0.70.
    view_clipped_recent : float
        ... or, short of that, the view the frame before it joined, where it
        resembles that view the most of all and by at least this (a handheld
        bracket's longest exposure, moved off its view: the real scenes'
        brackets with 8-32 photosites of shake, its own view 0.54-0.75 in
        place; the first frame of a view, never mostly clipped in a bracket,
        at most 0.67 alike with the view before it).
    view_clipped_detail : float
        ... or the view the frame before it joined, where its detail over
        the unclipped blocks (as for ``view_follow_corr``) correlates with
        that view's by at least this: a colour matrix bends the order of a
        long exposure's half-clipped blocks (a JPEG bracket's 0.04 s frame
        rendered through one: 0.54 alike in place with its own view, 0.57
        with another; in detail 0.86 against at most 0.12).
    view_follow_corr : float
        ... or the view the frame before it joined, where they correlate by
        at least this in place and their detail (each block minus the median
        of its 3 x 3, so gradients drop out; Pearson, over the blocks
        clipped in neither) by ``view_follow_detail``: a view whose light
        changed unevenly, as a city at dusk at one exposure whose lamps
        stay lit while the daylight falls 6 stops (its last frames 0.90
        alike in place, 0.999 in detail; counted as a second view, its
        nothing-planted series had 664 flags).  Different real scenes
        (the real scenes' brackets, on a tripod and handheld): at most
        0.82 alike in place, their detail at most 0.70, and 0.34 among
        those 0.8 alike.
    view_follow_detail : float
        See ``view_follow_corr``.
    open_views : int
        Views kept open for frames to join; the one used least recently is
        closed (its outliers counted) when one more opens.  A view that comes
        back after this many other views is counted again.
    blank_noise : float
        A frame is *blank* (no scene: a lens-cap dark, a flat field) when the
        90th percentile of its thumbnail's detail (block minus the median of
        its 3 x 3 blocks) is within this many sigmas of a block's noise, plus
        1 % of its level.
    dark_level : float
        A blank frame is a *dark* when 99 % of its blocks sit below this share
        of the range above black.
    dark_level_image : float
        ... in developed images (JPEG): their tone curve lifts a dark's noise
        and dark current (the JPEGs of generated lens-cap darks, ISO 800-
        3200 and warming up: 99 % of their blocks below 4-10 % of white; of
        an independent series' darks, 1-7 %).  The two samplings' tests
        (``scene_corr``, ``scene_edges``) do not apply to them (their noise
        is correlated over pixels), so a dim scene is told by its detail
        alone (``blank_noise``).
    flat_detail_image : float
        A blank developed image that is not a dark is a flat field only where
        90 % of its blocks' detail stays below this share of its level (the
        JPEGs of generated flats: 0.1-0.7 %; a bright photo whose noise
        raised the blank bound to 48 DN, its detail 26 DN: 4.3 %).
    scene_corr : float
        ... unless the detail of its blocks (block minus the median of its
        3 x 3 blocks) correlates with the detail of the same blocks sampled
        two photosites apart by at least this many standard errors of a
        correlation of pure noise (1 / sqrt(blocks)), and by 0.25: then it
        shows a scene, however dim (noise, and a dark's hot photosites,
        differ between the samplings).  Measured: darks -0.01 to 0.01, the
        dimmest frame of a generated bracket 0.30, photos of an independent
        series 0.94-0.97.
    scene_edges : float
        ... or unless at least 3 blocks stand out of the noise by this many
        sigmas (of a block mean's measured noise) in both samplings, the same
        way; the bar rises with the number of blocks so that noise alone
        gives 0.01 such blocks a frame.  A dim photo's few edges (a facade
        at dusk) do that where their correlation over the whole frame is
        drowned by its even areas; a dark's hot photosites sit in one
        sampling only.  Measured on the generated series: 342 darks, at
        most 1 such block at 3 sigmas; the 16 dim photos that the
        correlation had taken for darks, 3 to 68.
    glow_share : float
        A frame these tests call a photo or a flat field, blank outside a
        glow lit from the border and fading away from it (an amplifier's,
        in long darks: :func:`~rawmap.accumulate.views.border_glow`) of at
        most this share of the blocks, is tested again without the glow: a
        lens-cap dark with a glowing corner is still a dark.
    glow_scale : float
        ... unless the glow falls by e in fewer photosites than this (no
        amplifier's glow is that steep; the darks' line test needs it
        smooth at the photosites' scale).
    """

    k: float = 6.0
    k_line: float = 3.5
    k_adjacent: float = 4.0
    max_adjacent: int = 2
    scene_share: float = 0.25
    view_corr: float = 0.9
    view_shift: float = 1.0
    view_shift_floor: float = 0.4
    view_clipped_corr: float = 0.75
    view_clipped_recent: float = 0.5
    view_clipped_detail: float = 0.8
    view_follow_corr: float = 0.8
    view_follow_detail: float = 0.95
    open_views: int = 8
    blank_noise: float = 5.0
    dark_level: float = 0.02
    dark_level_image: float = 0.12
    flat_detail_image: float = 0.015
    scene_corr: float = 5.0
    scene_edges: float = 2.7
    glow_share: float = 0.5
    glow_scale: float = 15.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectionParams:
        """Parameters read from a state file; keys of other versions (e.g. the burst test's) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class FrameRecord:
    """What the accumulator kept of one frame."""

    path: str
    time: _dt.datetime | None
    exposure: float
    iso: float
    x: float  #: exposure x ISO/100
    scene: int  #: evidence unit: the frame's view (frames of one view share it) or, for a dark, its own
    noise_a: float  #: residual variance at black, ``4v - sum4`` units
    noise_b: float  #: residual variance slope per DN
    outliers: int  #: isolated outliers accepted in this frame
    overflow: bool = False  #: too many outliers: the frame's outliers were not counted
    kind: str = "photo"  #: ``photo``, ``dark`` (lens-cap dark: no scene) or ``flat`` (lit, no scene detail)
    temperature: float | None = None  #: degrees C, when the file stated it
    #: photosites its view counted as outliers when it closed (one each, either sign; None: a dark, a view
    #: still open, or a state written before views recorded it)
    view_outliers: int | None = None
    #: the frame's brightness at each position of the 2 x 2 pattern, ``[(0, 0), (0, 1), (1, 0), (1, 1)]``:
    #: the median of about 20,000 photosites there, above black (DN); None in states written before
    #: it was kept
    level: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = self.time.isoformat() if self.time else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameRecord:
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        d["time"] = _dt.datetime.fromisoformat(d["time"]) if d.get("time") else None
        if d.get("level") is not None:
            d["level"] = tuple(float(v) for v in d["level"])
        return cls(**d)


@dataclass
class PreparedFrame:
    """A frame checked and measured by :meth:`Accumulator.prepare`, waiting to be folded band by band.

    It keeps the frame's pixels only until every band is folded (then
    ``plane`` is dropped), so a queue of prepared frames costs no memory.
    """

    path: str
    time: _dt.datetime | None
    exposure: float
    iso: float
    plane: np.ndarray | None  #: (H, W) uint16, see :func:`frame_plane`
    black2: np.ndarray  #: (2, 2) float32 black level per pattern position
    clip: int
    row_clip: np.ndarray  #: (H,) bool: a clipped photosite within two rows
    x: float  #: exposure x ISO/100
    noise_a: float
    noise_b: float
    thumb: np.ndarray  #: block means, to tell which frames show the same view
    kind: str = "photo"  #: see :attr:`FrameRecord.kind`
    temperature: float | None = None  #: degrees C, when the file stated it
    found: list = field(default_factory=list)  #: per band: outlier codes (None: the band overflowed)
    lines: list = field(default_factory=list)  #: per band: line-candidate codes (None: overflowed)
    counts: list = field(default_factory=list)  #: per band: outliers found
    folded: list = field(default_factory=list)  #: per band: folded yet?
    clipped: tuple = ()  #: (flat indices, residuals) of the photosites clipped while their neighbours were not
    channels: int | None = None  #: a developed image's channels (None: a RAW mosaic)
    level: tuple[float, ...] | None = None  #: see :attr:`FrameRecord.level`


def _unix(t: _dt.datetime | None) -> float:
    if t is None:
        return math.nan
    if t.tzinfo is not None:
        t = t.astimezone(_dt.UTC).replace(tzinfo=None)
    return (t - _EPOCH).total_seconds()
