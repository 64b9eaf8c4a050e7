"""What the JSON decoding tests compare by: decoded values equal as the standard library gives them."""

from __future__ import annotations

import math
from typing import Any


def same_json(got: Any, expected: Any) -> bool:
    """Equal, with the same types throughout (1 is not 1.0, key order kept), floats to the bit
    (-0.0 is not 0.0) and NaN equal to NaN."""
    if type(got) is not type(expected):
        return False
    if isinstance(got, dict):
        return list(got) == list(expected) and all(same_json(got[k], expected[k]) for k in got)
    if isinstance(got, list):
        return len(got) == len(expected) and all(same_json(g, e) for g, e in zip(got, expected, strict=True))
    if isinstance(got, float):
        return (math.isnan(got) and math.isnan(expected)) or got.hex() == expected.hex()
    return bool(got == expected)
