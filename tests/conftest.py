"""Hypothesis profiles of every property and fuzz test.

`make test` (and CI) runs the `quick` profile: few examples, derandomized — each test draws the same
examples on every run, so a red build is a regression someone can reproduce, never a new example
found by chance on a fresh clone. Exploring is `make fuzz` (HYPOTHESIS_PROFILE=fuzz): many more
examples, random, no deadline; what it finds becomes an explicit test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
