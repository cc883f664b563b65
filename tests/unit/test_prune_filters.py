"""``prune --filter`` parsed once (capsa.engine.system.filters.parse_prune), as dockerd reads it."""

from __future__ import annotations

import time

import pytest

from capsa.engine.system.filters import (
    CONTAINER_PRUNE,
    IMAGE_PRUNE,
    NETWORK_PRUNE,
    VOLUME_PRUNE,
    PruneFilters,
    parse_prune,
)
from capsa.errors import InvalidArgument

NOW = 1_700_000_000.0


def test_each_verb_accepts_what_dockerd_accepts() -> None:
    assert CONTAINER_PRUNE == NETWORK_PRUNE == {"until", "label", "label!"}
    assert {"until", "label", "label!", "dangling"} == IMAGE_PRUNE
    assert {"label", "label!", "all"} == VOLUME_PRUNE  # no until for volumes
    with pytest.raises(InvalidArgument, match="invalid filter 'until'"):
        parse_prune({"until": ["1h"]}, VOLUME_PRUNE)
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling'"):
        parse_prune({"dangling": ["true"]}, CONTAINER_PRUNE)
    with pytest.raises(InvalidArgument, match="invalid filter 'name'"):
        parse_prune({"label": ["a"], "name": ["x"]}, IMAGE_PRUNE)
    assert parse_prune(None, CONTAINER_PRUNE) == PruneFilters()
    assert parse_prune({"label": []}, CONTAINER_PRUNE) == PruneFilters()


def test_until_takes_durations_timestamps_and_rfc3339() -> None:
    assert parse_prune({"until": ["10m"]}, CONTAINER_PRUNE, NOW).until == NOW - 600
    assert parse_prune({"until": ["1h30m"]}, IMAGE_PRUNE, NOW).until == NOW - 5400
    assert parse_prune({"until": ["1700000000"]}, CONTAINER_PRUNE).until == 1_700_000_000
    stamp = parse_prune({"until": ["2023-11-14T22:13:20Z"]}, NETWORK_PRUNE).until
    assert stamp == 1_700_000_000
    with pytest.raises(InvalidArgument, match='failed to parse value as time or duration: "x"'):
        parse_prune({"until": ["x"]}, CONTAINER_PRUNE)
    with pytest.raises(InvalidArgument, match="more than one until filter specified"):
        parse_prune({"until": ["1h", "2h"]}, CONTAINER_PRUNE)
    # the same value twice is one value: Docker's filter values are sets
    assert parse_prune({"until": ["1h", "1h"]}, CONTAINER_PRUNE, NOW).until == NOW - 3600


def test_until_keeps_objects_created_after_it() -> None:
    until = parse_prune({"until": ["2023-11-14T22:13:20Z"]}, CONTAINER_PRUNE)
    assert until.matches({}, "2023-11-14T22:13:19.5Z")
    assert until.matches({}, "2023-11-14T22:13:20Z")  # at it: pruned, as dockerd's After
    assert not until.matches({}, "2023-11-14T22:13:21Z")
    assert not until.matches({}, None)  # an image without a creation time is kept
    assert not until.matches({}, "not a time")
    assert PruneFilters().matches({}, None)  # no until: the time does not matter


def test_labels_match_as_dockerd_match_kv_list() -> None:
    f = parse_prune({"label": ["a", "b=2"]}, CONTAINER_PRUNE)
    assert f.matches({"a": "", "b": "2"})
    assert not f.matches({"a": "x"})  # every label= must be there
    assert not f.matches({"a": "", "b": "3"})
    assert not f.matches({})
    # label!=: kept when the object has the label (or key=value) ...
    g = parse_prune({"label!": ["keep"]}, VOLUME_PRUNE)
    assert not g.matches({"keep": "yes"}) and g.matches({"other": "1"}) and g.matches({})
    h = parse_prune({"label!": ["keep=yes"]}, NETWORK_PRUNE)
    assert not h.matches({"keep": "yes"}) and h.matches({"keep": "no"})
    # ... and, with several, only when it has all of them (dockerd's MatchKVList)
    both = parse_prune({"label!": ["a", "b"]}, CONTAINER_PRUNE)
    assert not both.matches({"a": "", "b": ""}) and both.matches({"a": ""})
    mixed = parse_prune({"label": ["a"], "label!": ["b"]}, IMAGE_PRUNE)
    assert mixed.matches({"a": ""}) and not mixed.matches({"a": "", "b": ""})


def test_boolean_filters() -> None:
    assert parse_prune({"dangling": ["false"]}, IMAGE_PRUNE).dangling is False
    assert parse_prune({"dangling": ["1"]}, IMAGE_PRUNE).dangling is True
    assert parse_prune({}, IMAGE_PRUNE).dangling is None
    assert parse_prune({"all": ["true"]}, VOLUME_PRUNE).all is True
    assert parse_prune({"all": ["0"]}, VOLUME_PRUNE).all is False
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        parse_prune({"dangling": ["maybe"]}, IMAGE_PRUNE)
    with pytest.raises(InvalidArgument, match="invalid filter 'all=false,true'"):
        parse_prune({"all": ["true", "false"]}, VOLUME_PRUNE)


def test_durations_count_back_from_now() -> None:
    before = time.time()
    until = parse_prune({"until": ["1s"]}, CONTAINER_PRUNE).until
    assert until is not None and before - 1 <= until <= time.time() - 1
