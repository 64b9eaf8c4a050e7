"""Hypothesis profiles of the fuzz tests.

`make test` runs the `quick` profile: few examples, so the fuzz tests take a few seconds in all.
`make fuzz` selects the `fuzz` profile (HYPOTHESIS_PROFILE=fuzz): many more examples, no deadline.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
