"""Rate strings for --network-rate-in/out and update."""

from __future__ import annotations

import pytest

from capsa.engine.network import tc
from capsa.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("10mbit", 10_000_000),
        ("512kbit", 512_000),
        ("1gbit", 10**9),
        ("2mbps", 16_000_000),
        ("1000", 1000),
        ("1.5mbit", 1_500_000),
        ("10M", 10_000_000),
    ],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert tc.parse_rate(text) == bps


@pytest.mark.parametrize(
    "text", ["", "fast", "10 parsecs", "-1mbit", "10xbit", "1e400", "nan", "inf", "1e30gbit"]
)
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        tc.parse_rate(text)
