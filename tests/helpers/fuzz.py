"""Hypothesis settings shared by the fuzz tests (tests/unit/test_fuzz_*.py).

Reproducible and quick: the examples are derived from each test's name (no random seed,
no example database on disk), a bounded number of them per test, no deadline (a slow
example on a busy machine is not a failure). ``CAPSA_FUZZ_RANDOM=1`` explores fresh
random examples instead, to hunt for new bugs by hand (raise the counts too).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=os.environ.get("CAPSA_FUZZ_RANDOM") != "1",
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=False,
    )
