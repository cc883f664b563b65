"""Hypothesis settings shared by the fuzz tests (tests/unit/test_fuzz_*.py).

Reproducible and quick: the examples are derived from each test's name (no random seed,
no example database on disk), a bounded number of them per test, no deadline (a slow
example on a busy machine is not a failure).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=False,
    )
