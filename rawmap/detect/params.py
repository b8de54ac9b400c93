"""What the classification can be told: the sensitivity presets and :class:`ClassifyParams`.

Every threshold of every rule is declared (and explained) here, once; the
rules of the other modules read them from the :class:`ClassifyParams` they
are given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

#: a body needs at least this many frames to be classified at all
MIN_FRAMES = 3

#: rows per block where a rule scans the whole sensor (keeps its temporaries small on big sensors)
_BLOCK_ROWS = 512


class Sensitivity(str, Enum):
    """How readily a photosite is called defective (:meth:`ClassifyParams.for_sensitivity`)."""

    LOW = "low"  #: only the surest defects: more scenes, larger deviations
    NORMAL = "normal"  #: the defaults
    HIGH = "high"  #: also fainter stuck, cold, noisy and line defects, and rarer ones in short series


#: ClassifyParams values each sensitivity changes (NORMAL: the defaults); every one is
#: monotone, so a higher sensitivity flags at least the photosites a lower one flags
_SENSITIVITY: dict[Sensitivity, dict[str, Any]] = {
    Sensitivity.LOW: {
        "min_share": 0.15,
        "min_scenes": 3,
        "max_chance": 1.0,
        "max_chance_darks": 0.01,
        "stuck_contrast": 6.0,
        "cold_sigma": 8.0,
        "cold_min_drop": 0.15,
        "noisy_ratio": 6.0,
        "line_min_scenes": 3,
        "column_share": 0.65,
        "growth_sigma": 18.0,
    },
    Sensitivity.NORMAL: {},
    Sensitivity.HIGH: {
        "min_share": 0.10,
        "min_scenes": 2,
        "max_chance": 10.0,
        "max_chance_darks": 0.5,
        "stuck_contrast": 3.0,
        "cold_sigma": 4.5,
        "cold_min_drop": 0.07,
        "noisy_ratio": 3.0,
        "line_min_scenes": 3,
        "column_share": 0.55,
        "growth_sigma": 12.0,
    },
}


@dataclass(frozen=True)
class ClassifyParams:
    """Thresholds of the final classification (see the module docstring).

    :meth:`for_sensitivity` gives the three presets of ``rawmap map
    --sensitivity``; ``sensitivity`` names the preset the values came from
    (for the record in the map's thresholds; it changes nothing itself).
    """

    min_share: float = 0.10  #: share of scenes with an isolated outlier
    min_scenes: int = 2  #: ... and at least this many scenes (1 when the series has fewer than 6 scenes)
    max_chance: float = 5.0  #: ... and more scenes still while more photosites than this would get there by chance
    max_chance_darks: float = 0.05  #: ... this many in a set of darks alone
    chance_tile: int = 16  #: ... and in photos, where the scenes around (3 x 3 tiles this big) are busier than the sensor's mean, at their rate (0: the mean's only)
    stuck_noise_factor: float = 10.0  #: stuck if range <= this x read-noise sigma (DN)
    stuck_contrast: float = 4.0  #: ... and neighbours' range >= this x own range + 2 x that bound
    stuck_response: float = 20.0  #: ... and, in series with photos, >= this x own range ...
    stuck_centre: float = 2.5  #: ... or its mean within this many standard errors of black or its range's middle
    cold_sigma: float = 6.0  #: cold if gain ratio below 1 - this x robust sigma
    cold_min_drop: float = 0.10  #: ... and at least this far below 1
    cold_strong: float = (
        0.5  #: cold also if the gain ratio is below this share of the plane's median (and dark in 2 views)
    )
    cluster_share: float = 0.25  #: a hot photosite's neighbour is hot too with this share of its mean residual ...
    cluster_sigma: float = 20.0  #: ... and this many robust sigmas above its plane's
    cold_strong_sigma: float = (
        10.0  #: ... or, in developed images, below the median by this many robust sigmas if higher
    )
    ringing_reach: int = 15  #: developed colour images: a hot, noisy or cold flag this close (grayscale: half) ...
    ringing_ratio: float = 3.0  #: ... this many times stronger is the compression's echo of it
    cold_image: float = 0.75  #: ... but in developed images never above this share of the median
    dead_share: float = 0.02  #: dead: never more than this share of the range above black
    dead_gain: float = 0.02  #: ... or found low gain at most this share of its neighbours' response
    dead_noise: float = (
        3.0  #: ... or, for a constant photosite, within this many read-noise sigmas (plus its range) of it
    )
    clip_neighbour_share: float = (
        0.5  #: clipped in every frame while its neighbours never reach this share of the clip level
    )
    clip_alone_share: float = 0.1  #: ... or (one view) each of them below this share of it in its darkest frame
    hot_clip_growth: float = 0.05  #: hot when clipping while growing by this share of its offset
    hot_margin_growth: float = 2.0  #: in photos, hot in just the views needed only growing this many times its offset
    hot_max_fill: float = 20.0  #: ... and its dark current (ISO 100) fills the range at most this many times a second
    hot_fill_seconds: float = 60.0  #: hot when that dark current fills the range within this many seconds, else warm
    cold_view_margin: float = (
        1.2  #: a strong cold ratio must stay below 1 - this x the largest view's share of its signal
    )
    cold_isolation: float = 0.75  #: ... and its adjacent and same-colour neighbours' ratios above this (relative)
    cold_strong_spread: float = 5.0  #: ... and this many robust sigmas of its plane's ratios below the median
    cold_below_around: float = 0.55  #: ... and, raw, below this share of its darkest neighbour's ratio
    cold_alone: float = (
        0.05  #: ... or, past the view bound, every adjacent ratio within this of 1 and below half of each neighbour
    )
    cold_alone_wide: float = 0.12  #: ... or every adjacent ratio within this of 1, its own signal lit (below)
    cold_alone_lit: float = 10.0  #: ... at least this many read-noise sigmas above black on average
    cold_below_lowest: float = 0.9  #: ... and below this share of its darkest same-colour neighbour's mean signal
    cold_alone_signal: float = 20.0  #: ... whose signal is at least this many read-noise sigmas
    cold_black_signal: float = 2.0  #: ... or this many and less for the photosite, reading black ...
    cold_black_beside: float = 10.0  #: ... while its darkest neighbour's signal is this many
    noisy_ratio: float = 4.0  #: noisy if mean squared normalised residual >= this x neighbours'
    blink_excess: float = 6.0  #: darks of one exposure: a bright outlier this many read-noise sigmas up on average ...
    blink_floor: float = 3.0  #: ... whose lowest reading is within this many of its neighbours' mean is blinking
    line_min_scenes: int = 3  #: a photosite leans across a line in at least this many scenes (and min_share of them)
    line_image_share: float = 0.15  #: ... and, in developed images, at least this share of them
    column_share: float = 0.6  #: share of a window that must lean the same way
    column_min: int = 16  #: window length (photosites); shorter segments are reported as single defects
    noisy_min_excess: float = (
        2.0  #: in photos, a bright outlier not growing with exposure is noisy from this noise ratio
    )
    noisy_margin_excess: float = 7.5  #: ... and from this one where it was an outlier in just the units needed
    two_way_image_excess: float = 15.0  #: colour images: outliers both ways in ``need`` views, from this noise ratio
    flat_sigma: float = (
        5.0  #: flats only: low gain at least this many robust sigmas of the gain ratio below the median ...
    )
    flat_false_flags: float = 0.1  #: ... and past the line where a Gaussian spread gives this many over the sensor ...
    flat_min_drop: float = 0.05  #: ... and at least this share below it
    flat_adjacent: float = 1.5  #: ... with its 8 adjacent photosites' median ratio within this many sigmas of level
    cold_lift: float = (
        1.05  #: developed images: strong cold past the view bound where it lifts its neighbours this much
    )
    cold_lift_isolation: float = 0.85  #: ... and its adjacent and same-colour neighbours' ratios above this
    cold_lift_depth: float = 0.8  #: ... and its deficit at least this x the largest view's share of its signal
    few_views: int = 3  #: below this many views (one or two), stuck and dead follow the one-view rules
    dead_beside_lit: float = (
        20.0  #: ... where a photosite on black is dead if all around read this x its range above black
    )
    dead_line_lit: float = 10.0  #: ... a line on black where the picture kept its brightness: those across it this x
    dead_line_weak: float = 0.5  #: ... and a dead line runs on along it where this share of its contrast is met
    guard_views: int = 5  #: below this many views, stuck and dead need every neighbour to vary far more
    stuck_stand_out: float = (
        15.0  #: ... and, three or four views, a stuck one its residual this many noise sigmas in two frames
    )
    quiet_share: float = 0.2  #: ... or a range below this share of the shot noise its level must show
    line_hysteresis: int = 1  #: a found segment runs on where its photosites leaned in this many units fewer
    line_offset_share: float = 0.35  #: RAW photos of several exposures at one ISO: a lit segment's offset at x = 0 is this share of its lean or more
    line_echo_share: float = 0.5  #: a flag beside a segment stays if its excess off the line keeps this share
    dark_line_sigma: float = 4.0  #: darks only: a photosite's mean offset across a line this many robust sigmas out
    dark_line_min_offset: float = 1.0  #: ... and at least this many times a frame's noise
    line_sigma: float = 4.0  #: one view: a photosite's offset across a line this many robust sigmas out ...
    line_light_ratio: float = 3.0  #: ... where the view's light changed this many times ...
    line_shake: float = 0.3  #: ... and the offset x (ratio - 1) above this share of the scene's contrast there ...
    line_max_drift: float = 0.25  #: ... in a view that drifted at most this many photosites (else it does not run) ...
    line_wide: float = 0.75  #: ... and neither photosite beside it across the line this share of those sigmas out
    line_weak: float = 0.5  #: ... and a segment so found runs on where its photosites lean this share of the sigmas
    line_keep_share: float = 0.5  #: ... to the last photosite whose offset is this share of its colour's median
    growth_sigma: float = 14.0  #: one view, exposure varied: hot when its growth slope is this many local sigmas out
    growth_min_frames: int = 6  #: ... in a series of at least this many frames, all photos of one view ...
    growth_x_spread: float = 4.0  #: ... whose exposure x ISO spans at least this factor ...
    growth_min_independence: float = 0.05  #: ... and does not follow the brightness (1 - its share explained)
    growth_range: float = 1.5  #: ... its range over the frames at most this x (its growth + 6 noise sigmas)
    growth_still: float = 2.5  #: ... its neighbours' ranges within this x a static photosite's (plus the light's)
    growth_moving: int = 2  #: ... all but this many of the 24 photosites around it (growing ones aside)
    growth_light_margin: float = 1.2  #: ... the light's part: this x the level times the view's brightness spread
    growth_guard_sigma: float = 8.0  #: decoys (the test with the sign turned) counted at this many local sigmas ...
    growth_max_decoys: float = 1e-5  #: ... more than this share of the sensor (and than 1): the view moved, no flags
    sensitivity: str = "normal"  #: the preset these values came from (a label, see :meth:`for_sensitivity`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_sensitivity(cls, sensitivity: Sensitivity | str) -> ClassifyParams:
        """The thresholds of one sensitivity preset.

        Only classification thresholds change, never the per-frame outlier
        test of :class:`~rawmap.accumulate.DetectionParams`: the same
        statistics give a map at any sensitivity, and stored statistics
        continue whatever the sensitivity.

        ====================  ======  ======  ======
        parameter             low     normal  high
        ====================  ======  ======  ======
        ``min_share``         0.15    0.10    0.10
        ``min_scenes``        3       2       2
        ``max_chance``        1       5       10
        ``max_chance_darks``  0.01    0.05    0.5
        ``stuck_contrast``    6       4       3
        ``cold_sigma``        8       6       4.5
        ``cold_min_drop``     0.15    0.10    0.07
        ``noisy_ratio``       6       4       3
        ``line_min_scenes``   3       3       3
        ``column_share``      0.65    0.6     0.55
        ``growth_sigma``      18      14      12
        ====================  ======  ======  ======

        ``high`` does not lower the share of scenes below 10 %: on a
        generated 40-frame series (32 scenes) 7 % let 51 chance
        coincidences of scene detail through (precision 0.84); with the
        values above it found 268 photosites against normal's 267, precision
        1.00 for both.

        Parameters
        ----------
        sensitivity : Sensitivity or str
            ``"low"``, ``"normal"`` or ``"high"``.

        Raises
        ------
        ValueError
            Another name.

        Examples
        --------
        >>> ClassifyParams.for_sensitivity("high").max_chance
        10.0
        >>> ClassifyParams.for_sensitivity("normal") == ClassifyParams()
        True
        """
        try:
            level = Sensitivity(sensitivity)
        except ValueError:
            raise ValueError(f"sensitivity must be one of low, normal, high, got {sensitivity!r}") from None
        return cls(**_SENSITIVITY[level], sensitivity=level.value)
