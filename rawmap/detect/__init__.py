"""Classify photosites into defects from an :class:`~rawmap.accumulate.Accumulator`.

Pure functions over the accumulated arrays.  Every threshold is relative to
a robust spread measured on the same colour plane (median absolute
deviation), or to the noise the frames themselves showed, never an absolute
DN value, so high-ISO series do not flood the map.

Rules (a photosite gets the first kind that applies):

``stuck`` / ``dead``
    Its value range over all frames is within the read noise while its
    same-colour neighbours' ranges are many times larger (so clipped
    highlights, where the neighbours are constant too, are not flagged).
    ``dead`` when that constant sits at black.  In fewer than
    ``few_views`` views the read-noise figure is the scene's texture, so a
    dead photosite must sit on black (its range centred there) and a stuck
    one vary less than the shot noise of its level allows
    (:func:`.stuck._quieter_than_light`, which in more views marks a stuck
    one too where its neighbours vary too little for the range contrast:
    bursts at one exposure); a dead line's photosites have dead
    neighbours along it and count those across it (their ranges where the
    picture dimmed or in two views; where it kept its brightness, their
    light: ``dead_line_lit`` x the line's range above black in their
    darkest frame, with the line's mean at black), and a found dead line
    runs on along it where ``dead_line_weak`` of that is met; a photosite clipped in
    every frame of one view needs every neighbour below half the clip level
    (or under a tenth of it at its darkest) and dimming with the light.  In
    fewer than ``guard_views`` views every same-colour neighbour must vary
    far more (the two across it, on a line), and most adjacent ones: with 3
    views, three values within the bound by chance are common; with 3 or 4
    views a stuck one (not on black) must also stand out from its
    neighbours by ``stuck_stand_out`` times their noise in two frames'
    worth (one busy photo in which its neighbours differ does not show it
    stuck).
``hot`` / ``noisy``
    It was an isolated bright outlier (more than ``k`` sigma of the frame's
    own noise above its same-colour neighbours, with its adjacent photosites
    normal) in at least ``min_share`` of the scenes; bursts of near-identical
    frames count as one scene, so static detail in a burst, stars and glints
    (which move between scenes and light their neighbours) do not qualify.
    In short series more scenes are required: as many as keeps the number of
    photosites that would get there by chance (from each scene's outlier
    rate, Poisson-binomial) below ``max_chance``; in photos, a bright
    outlier where the scenes around it are busier than the sensor's mean
    (the counts of the ``chance_tile`` tiles around, defects left out) must
    pass that bound at the local rate, unless it touches one that does (a
    hot cluster's member); where they are quieter, one a scene short of
    the bound passes at their rate, and is then mapped hot or not at all.
    ``hot`` when the excess grows with exposure time x ISO (a regression of
    the residual on it), ``noisy`` when it does not, or when the photosite is
    also a dark outlier in many scenes (blinking), or its temporal noise is
    several times its neighbours'.
    A hot photosite's cluster-mates touching two others are rarely
    isolated outliers: beside a flagged hot photosite, one whose sums are as
    far out is hot too.
    In a series of one view (all photos) whose exposure x ISO spans at
    least ``growth_x_spread`` while the picture's brightness does not follow
    it (a timelapse in aperture priority at dusk), ``hot`` also where the
    residual grows with exposure beyond the brightness's share, alone and
    out by ``growth_sigma`` local robust sigmas, unless the view moved
    (:mod:`.growth`).
``warm``
    A hot photosite whose dark current (its value: DN/s at ISO 100, and at
    20 degrees C where the frames give a temperature) would take longer than
    ``hot_fill_seconds`` (60 s) to fill the sensor's range (white minus
    black) on its own.  A hot photosite clips in long exposures and carries
    no signal there; a warm one keeps its signal in any exposure up to a
    minute at ISO 100 (one stop less per doubling of the ISO), where
    subtracting its dark current repairs it, and shows only in long
    exposures.  The line is a choice, tied to the sensor's own range rather
    than to a level in DN.  Developed images (JPEG) give no dark current
    to tell by: their dark-current photosites stay ``hot``.
``cold``
    Low gain: the ratio of its signal to its neighbours' over all frames is
    far below 1 in robust sigmas of that ratio on its colour plane, and it
    was an isolated dark outlier in enough scenes; or the ratio is below
    half the plane's, with its neighbourhood's ratios normal and below what
    one view's static detail could do, or, past that view bound, below half
    of each of its 8 nearest same-colour photosites with every adjacent
    photosite normal (see :func:`.cold._cold`).  One whose gain so measured
    is at most ``dead_gain`` (0.02) reads black whatever the light: ``dead``.
``column``
    Segments of a column (or row): runs, within one colour, of photosites
    that leaned across the line in at least ``line_min_scenes`` scenes (and
    ``min_share`` of them).  A photosite leans when it and its two
    same-colour neighbours along the line all deviate beyond ``k_line``
    sigmas, the same way, from the photosites beside the line (so the whole
    offset of a defective line counts, where the point test loses half of it
    to the neighbours along the line), and the line beside it does not lean
    the other way harder (a shadow).  A scene edge leans in the scenes that
    show it; a readout fault in every scene where it is visible.  Reported
    photosite by photosite, the segment's end photosites included (the
    first and last of each colour, whose outer neighbour along the line
    does not lean, are taken back from their mean residuals:
    :func:`.lines._extend_segment_ends`).  In a
    series of one view whose light changed (a timelapse at dusk), the
    offset that stays while the scene dims (:func:`.lines._one_view_lines`); in a
    set of darks or bias frames, also the offset of the means over the set
    (:func:`.lines._dark_set_leans`).

For maps made from developed images (JPEG), a defect is a small blob: each
8-connected group of flagged pixels is reported once, at its strongest pixel.

The rules live one family per module, each reading the accumulated sums
through :class:`~rawmap.detect.series._Series`:

==============  ============================================================
module          job
==============  ============================================================
``params``      :class:`Sensitivity`, :class:`ClassifyParams`: every threshold
``series``      a series' state and figures, the flags found, shared statistics
``stuck``       stuck and dead photosites
``hot``         hot, warm and noisy photosites, cluster members, ringing
``growth``      hot photosites of one view whose exposure varied, by their growth
``cold``        cold (low-gain) photosites
``lines``       column and row segments
``build``       the rules' order (:func:`classify`) and the map (:func:`build_map`)
==============  ============================================================
"""

from .build import build_map, classify
from .params import MIN_FRAMES, ClassifyParams, Sensitivity

__all__ = ["Sensitivity", "ClassifyParams", "classify", "build_map", "MIN_FRAMES"]
