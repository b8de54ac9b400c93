"""The defect kinds, and what each one means to the exports, the plot and the reports.

:class:`DefectKind` names the kinds a map may hold; :data:`KINDS` gives,
for each, one :class:`KindInfo` record that every consumer of a map reads
instead of keeping its own table:

========== ============================= =============== ======= ======= ====
kind       ``Defect.value``              report          Siril   marker  line
========== ============================= =============== ======= ======= ====
``stuck``  level in DN (black included)  ``812 DN``      H       square  no
``dead``   level in DN (black included)  ``64 DN``       C       cross   no
``hot``    dark current, DN/s at ISO 100 ``812 DN/s``    H       disc    no
``warm``   dark current, DN/s at ISO 100 ``36 DN/s``     H       ring    no
``cold``   relative gain (0 or more)     ``gain 0.42``   C       diamond no
``noisy``  excess noise ratio            ``noise x3.10`` H       plus    no
``column`` mean offset in DN             ``+30.0 DN``    by sign cell    yes
========== ============================= =============== ======= ======= ====

* :mod:`rawmap.export` takes the Siril letter (:meth:`KindInfo.siril_letter`)
  and writes the photosites of *line* kinds that cover a whole column or
  row as one Siril line;
* :mod:`rawmap.show` draws each kind with its colour and marker, and line
  kinds as column/row segments (:func:`rawmap.defectmap.column_segments`);
* the map table of :mod:`rawmap.report` (``rawmap map``) prints
  :meth:`KindInfo.value_text` and counts line kinds as segments.

Adding a kind: a member of :class:`DefectKind`, its entry in :data:`KINDS`
(``tests/test_kinds.py`` checks that every member has a complete one), the
rule of :mod:`rawmap.detect` that finds it, and its planting in the
simulator.

Examples
--------
>>> KINDS[DefectKind.HOT].value_text(812.4)
'812 DN/s'
>>> KINDS[DefectKind.COLUMN].siril_letter(-30.0), KINDS[DefectKind.COLUMN].line
('C', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "DefectKind",
    "Marker",
    "KindInfo",
    "KINDS",
    "NOISE_RATIO_CAP",
    "plain_number",
]


class DefectKind(str, Enum):
    """Kinds of defective photosite (the ``kind`` of a map's defects)."""

    STUCK = "stuck"  #: constant value whatever the light
    DEAD = "dead"  #: no response, sits at black
    HOT = "hot"  #: extra signal growing with exposure time x gain (dark current)
    #: a weak hot photosite: its dark current fills the range more slowly (shows in long exposures only;
    #: the line is :attr:`rawmap.detect.ClassifyParams.hot_fill_seconds`)
    WARM = "warm"
    COLD = "cold"  #: responds with a fraction of normal sensitivity (low gain)
    NOISY = "noisy"  #: abnormal temporal noise / blinking (RTS)
    COLUMN = "column"  #: part of a defective column or row segment


class Marker(str, Enum):
    """Shape of a defect's mark in :func:`rawmap.show.plot_map`."""

    DISC = "disc"
    RING = "ring"  #: a disc's outline around a dot
    SQUARE = "square"
    DIAMOND = "diamond"
    CROSS = "cross"  #: a diagonal cross (x)
    PLUS = "plus"
    CELL = "cell"  #: a small square: a photosite of a line kind outside any segment


#: excess-noise ratios above this print as ">x1000" (a photosite beside noiseless neighbours gives 1e13)
NOISE_RATIO_CAP = 1000.0


def plain_number(value: float, sign: str = "") -> str:
    """``value`` with 3 significant digits and no exponent: 0.0123, 4.56, 812, 12,345.

    Parameters
    ----------
    value : float
        A finite number.
    sign : str, optional
        ``"+"`` to write the sign of positive numbers too.

    Examples
    --------
    >>> plain_number(0.012345), plain_number(4.5678), plain_number(123456.7), plain_number(30, "+")
    ('0.0123', '4.57', '123,457', '+30.0')
    """
    a = abs(value)
    if a >= 100 or a == 0:
        return f"{value:{sign},.0f}"
    digits = max(0, 2 - math.floor(math.log10(a)))
    return f"{value:{sign}.{min(digits, 6)}f}"


def _level(value: float) -> str:
    return f"{value:.0f} DN"


def _dark_current(value: float) -> str:
    return f"{plain_number(value)} DN/s"


def _gain(value: float) -> str:
    return f"gain {value:.2f}"


def _noise(value: float) -> str:
    return f"noise >x{NOISE_RATIO_CAP:.0f}" if value > NOISE_RATIO_CAP else f"noise x{plain_number(value)}"


def _offset(value: float) -> str:
    return f"{plain_number(value, '+')} DN"


@dataclass(frozen=True)
class KindInfo:
    """What one defect kind means outside detection.

    Attributes
    ----------
    kind : DefectKind
    description : str
        What is wrong with such a photosite, in a few words.
    value : str
        What :attr:`rawmap.defectmap.Defect.value` holds for this kind, with its unit.
    report : callable
        ``report(value) -> str``: the value as the CLI's map table prints it
        (a finite value; see :meth:`value_text`).
    siril_type : str
        Siril's letter: ``"H"`` (repaired like a hot pixel, mean of the
        neighbours) or ``"C"`` (like a cold one, their median).
    siril_by_sign : bool
        The letter follows the sign of the value instead: ``"C"`` for a
        negative value, ``siril_type`` otherwise (column offsets).
    colour : (int, int, int)
        RGB colour of its marks in the plot.
    marker : Marker
        Shape of its marks in the plot.
    line : bool
        Its photosites form column or row segments (drawn as lines, reported
        as segments, exported to Siril as whole lines when they cover one);
        False for a point defect.
    """

    kind: DefectKind
    description: str
    value: str
    report: Callable[[float], str]
    siril_type: str
    siril_by_sign: bool
    colour: tuple[int, int, int]
    marker: Marker
    line: bool

    def value_text(self, value: float) -> str:
        """``value`` as the map table prints it; ``""`` when unknown (NaN) or infinite.

        Examples
        --------
        >>> KINDS[DefectKind.NOISY].value_text(1.56e13), KINDS[DefectKind.COLD].value_text(float("nan"))
        ('noise >x1000', '')
        """
        return self.report(value) if math.isfinite(value) else ""

    def siril_letter(self, value: float) -> str:
        """Siril's ``H`` or ``C`` for one photosite of this kind with this value.

        Examples
        --------
        >>> KINDS[DefectKind.DEAD].siril_letter(0.0), KINDS[DefectKind.COLUMN].siril_letter(12.0)
        ('C', 'H')
        """
        if self.siril_by_sign and math.isfinite(value) and value < 0:
            return "C"
        return self.siril_type


def _info(
    kind: DefectKind,
    description: str,
    value: str,
    report: Callable[[float], str],
    siril_type: str,
    colour: tuple[int, int, int],
    marker: Marker,
    *,
    siril_by_sign: bool = False,
    line: bool = False,
) -> KindInfo:
    return KindInfo(kind, description, value, report, siril_type, siril_by_sign, colour, marker, line)


#: Every defect kind's :class:`KindInfo`, in :class:`DefectKind` order.
KINDS: dict[DefectKind, KindInfo] = {
    i.kind: i
    for i in (
        _info(
            DefectKind.STUCK,
            "constant value whatever the light",
            "level in DN, black included",
            _level,
            "H",
            (255, 212, 0),
            Marker.SQUARE,
        ),
        _info(
            DefectKind.DEAD,
            "no response, sits at black",
            "level in DN, black included",
            _level,
            "C",
            (92, 220, 255),
            Marker.CROSS,
        ),
        _info(
            DefectKind.HOT,
            "extra signal growing with exposure time x gain (dark current)",
            "dark-current slope in DN per second at ISO 100",
            _dark_current,
            "H",
            (255, 84, 54),
            Marker.DISC,
        ),
        _info(
            DefectKind.WARM,
            "weak dark current: shows only in long exposures",
            "dark-current slope in DN per second at ISO 100",
            _dark_current,
            "H",
            (255, 168, 40),
            Marker.RING,
        ),
        _info(
            DefectKind.COLD,
            "a fraction of normal sensitivity (low gain)",
            "gain relative to its neighbours",
            _gain,
            "C",
            (110, 120, 255),
            Marker.DIAMOND,
        ),
        _info(
            DefectKind.NOISY,
            "abnormal temporal noise, blinking (RTS)",
            "excess noise ratio",
            _noise,
            "H",
            (236, 72, 236),
            Marker.PLUS,
        ),
        _info(
            DefectKind.COLUMN,
            "part of a column or row segment that reads high or low",
            "mean offset in DN",
            _offset,
            "H",
            (70, 222, 120),
            Marker.CELL,
            siril_by_sign=True,
            line=True,
        ),
    )
}
