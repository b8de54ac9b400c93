"""rawmap.frame: the CFA letters and colour indices, one mapping both ways."""

from __future__ import annotations

import numpy as np
import pytest

from rawmap.frame import CFA_LETTERS, cfa_letters, cfa_pattern
from rawmap.reader import CFA_PATTERNS


@pytest.mark.parametrize("name", [n for n, p in CFA_PATTERNS.items() if p is not None])
def test_cfa_letters_and_pattern_are_inverse_and_match_the_reader(name):
    p = cfa_pattern(name)
    assert p.dtype == np.uint8 and p.shape == (2, 2)
    assert np.array_equal(p, CFA_PATTERNS[name])  # LibRaw's numbering: a G beside R is 1, beside B is 3
    assert cfa_letters(p) == name and cfa_pattern(name.lower()).tolist() == p.tolist()


def test_cfa_edge_cases():
    assert CFA_LETTERS == "RGBG"
    assert cfa_letters(None) == "" and cfa_pattern("") is None
    assert cfa_letters([[1, 2], [0, 3]]) == "GBRG"
    for bad in ("RGG", "RGGX", "RGGBB"):
        with pytest.raises(ValueError, match="four letters of R, G and B"):
            cfa_pattern(bad)
