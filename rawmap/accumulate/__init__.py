"""Per-photosite on-line statistics over a series of frames.

One pass, constant memory whatever the number of frames, mergeable and
resumable.  It extends the on-line mean/variance idea with what detection
needs; per photosite it keeps

=============  =========  ===================================================
array          dtype      meaning (sums over the frames where the four
                          same-colour neighbours were below the clip level;
                          one of two opposite ones clipped, the other
                          stands in for it, as at the sensor's edge)
=============  =========  ===================================================
``n_invalid``  uint8      frames skipped because two opposite neighbours
                          were clipped
``s_v``        uint32     sum of values *v* (DN, black included)
``s_r``        int32      sum of residuals ``r = 4 v - (sum of the 4
                          same-colour neighbours)`` (promoted to int64 before
                          it could overflow)
``vmin/vmax``  uint16     smallest / largest value over **all** frames
``s_xr``       float32    sum of ``r * x``, x = exposure time x ISO/100: a
                          per-photosite dark-current slope
``s_xi``       float32    sum of x over the frames counted in ``n_invalid``
``s_xxi``      float32    ... and of x squared: the dark-current regression
                          runs over the x of the frames in the sums
``s_zz``       float32    sum of squared normalised residuals (``r`` over the
                          frame's own noise at that level): temporal noise
``s_hi/s_lo``  uint8      scenes in which the photosite was an isolated bright
                          / dark outlier (bursts of near-identical frames count
                          once)
=============  =========  ===================================================

The integer sums are exact; merging two states gives exactly the state of
the union of their frames (float sums up to rounding).  31 bytes per
photosite; the one-byte counts widen to 2 bytes from 255 frames, the sums
(and counts again) before they could overflow.  Sparse extras: the capture time at which each photosite first
showed as a confirmed outlier, the number of scenes in which a
photosite leaned across a column or a row (the line test of
:class:`DetectionParams`), and, for photosites clipped in a frame while
their four same-colour neighbours were not, what those frames put in
(count, x, x squared, residual, residual x x, x squared x the frame's
dark-current temperature factor): a strong hot photosite's dark-current
slope is then taken over the frames in which it did not clip
(:meth:`Accumulator.unclipped`).

The package keeps apart what changes for different reasons:

====================  =====================================================
module                job
====================  =====================================================
``sums``              the exact, mergeable per-photosite arrays and sparse
                      records; their memory
``views``             per-series bookkeeping: which frames show one view,
                      the open views' pending outliers, each view's signal
``records``           the per-frame test's parameters, frame records, a
                      frame prepared for folding
``state``             the state file (``.rawstate``): writing, and reading
                      with every part checked
``accumulator``       :class:`Accumulator`: prepare, fold, commit a frame,
                      count a closed view, merge, the noise model and the
                      thumbnail a frame's view is told by
====================  =====================================================

Examples
--------
>>> acc = Accumulator.from_frame(frame)          # doctest: +SKIP
>>> for f in frames: acc.update(f)               # doctest: +SKIP
>>> acc.save("body.rawstate")                    # doctest: +SKIP
>>> acc += Accumulator.load("other.rawstate")    # doctest: +SKIP
"""

from .accumulator import Accumulator
from .records import DetectionParams, FrameRecord, PreparedFrame
from .state import MAX_STATE_META_BYTES, STATE_FORMAT, STATE_VERSION
from .sums import BYTES_PER_PHOTOSITE, frame_plane, new_sums
from .views import Views

__all__ = [
    "Accumulator",
    "PreparedFrame",
    "new_sums",
    "FrameRecord",
    "DetectionParams",
    "STATE_FORMAT",
    "STATE_VERSION",
    "MAX_STATE_META_BYTES",
    "frame_plane",
    "Views",
    "BYTES_PER_PHOTOSITE",
]
