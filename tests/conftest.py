"""Shared test settings: hypothesis profiles.

`ci` (default): 25 derandomized examples per property, no example database, so a run's outcome does not depend
on which test files are collected or on earlier runs. `thorough` (before a release): 500 random examples per
property. `dev`: 50 random examples. Choose with HYPOTHESIS_PROFILE=thorough (NTKODE_HYPOTHESIS is the older
name of the same variable).
"""
import os

import matplotlib
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "thorough",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or os.environ.get("NTKODE_HYPOTHESIS") or "ci")


def examples(n: int) -> int:
    """A property's example count: n under the ci profile, scaled with the loaded profile (thorough: 20 n), for
    tests whose own @settings would otherwise pin it."""
    return max(1, round(n * settings.default.max_examples / 25))
