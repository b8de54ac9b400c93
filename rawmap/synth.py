"""Deprecated: the simulator moved to :mod:`rawmap.testing`; import it from there.

This module only re-exports the public names of :mod:`rawmap.testing` (so
that ``from rawmap.synth import SensorSpec, generate_series`` keeps working)
and warns with a :class:`DeprecationWarning` when imported.  It will be
removed once nothing imports it; the runtime never did.
"""

from __future__ import annotations

import warnings

from .testing import *  # noqa: F403
from .testing import __all__  # noqa: F401

warnings.warn(
    "rawmap.synth is deprecated: import the simulator from rawmap.testing instead",
    DeprecationWarning,
    stacklevel=2,
)
