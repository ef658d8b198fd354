"""The garage's live state: the message's validation, and the cloud view's staleness on an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.garages.view import GarageView
from harness import DATA
from sc.config.loader import load_site_config
from sc.config.schema import Garage, SiteConfig
from sc.contracts.messages import (
    MAX_PAYLOAD_BYTES,
    MAX_STATE_LIGHTS,
    MAX_STATE_TRACKS,
    ContractError,
    GarageState,
    LightState,
    OverrideLevel,
    TrackKind,
    decode,
    encode,
)
from sc.contracts.topics import Kind, Topic

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _state(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "garage": "garage-1",
        "ts": T0.isoformat(),
        "lights": [
            {"id": "l-001", "level": 100, "full": True},
            {"id": "l-002", "level": 20, "full": False, "override": "standby", "override_left_s": 30.0},
        ],
        "tracks": [
            {"id": 3, "kind": "car", "x": 0.0, "y": -12.5, "speed_mps": 4.2, "heading_deg": 90.0, "sensor": "ps-01"}
        ],
        "ghosts": [{"track": 1, "x": 12.0, "y": 6.0, "left_s": 40.0}],
        "faults": [{"device": "lc-2", "kind": "offline", "reason": "3 writes not acknowledged"}],
        "fire": False,
        "fire_devices": [],
    }
    base.update(over)
    return base


def _bytes(d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode()


def test_a_state_round_trips_and_its_topic_is_the_state_kind() -> None:
    st = decode(GarageState, _bytes(_state()))
    assert st.tracks[0].kind is TrackKind.CAR and st.lights[1].override is OverrideLevel.STANDBY
    assert decode(GarageState, encode(st)) == st
    assert str(Topic("s", "gw-a", Kind.STATE, "garage-1")) == "sc/v1/s/gw-a/state/garage-1"
    assert Topic.parse("sc/v1/s/gw-a/state/garage-1").kind is Kind.STATE


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"extra": 1}, "extra"),
        ({"v": 2}, "v"),
        ({"ts": "2026-11-23T08:00:00"}, "ts"),  # naive
        ({"lights": [{"id": "l-001", "level": 101, "full": True}]}, "lights.0.level"),
        ({"lights": [{"id": "L 1", "level": 10, "full": False}]}, "lights.0.id"),
        ({"lights": [{"id": "l-1", "level": 10, "full": False}] * 2}, "light ids must be unique"),
        ({"lights": [{"id": "l-1", "level": 10, "full": False, "override": "auto"}]}, "auto is not a state"),
        ({"lights": [{"id": "l-1", "level": 10, "full": False, "override_left_s": 3}]}, "without an override"),
        ({"tracks": [{"id": 1, "kind": "bike", "x": 0, "y": 0, "speed_mps": 0, "sensor": "s"}]}, "tracks.0.kind"),
        ({"tracks": [{"id": 1, "kind": "car", "x": 0, "y": 0, "speed_mps": -1, "sensor": "s"}]}, "speed_mps"),
        ({"tracks": [{"id": 1, "kind": "car", "x": 0, "y": 0, "speed_mps": 1, "heading_deg": 200, "sensor": "s"}]},
         "heading_deg"),
        ({"faults": [{"device": "lc-1", "kind": "broken"}]}, "faults.0.kind"),
        ({"faults": [{"device": "lc-1", "kind": "fault", "reason": "x" * 201}]}, "faults.0.reason"),
        ({"lights": [{"id": f"l-{i}", "level": 0, "full": False} for i in range(MAX_STATE_LIGHTS + 1)]}, "lights"),
        ({"ghosts": [{"track": 1, "x": 0, "y": 0, "left_s": 1}] * (MAX_STATE_TRACKS + 1)}, "ghosts"),
    ],
)  # fmt: skip
def test_a_bad_state_is_refused_with_the_reason(over: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match=reason.replace(".", r"\.")):
        decode(GarageState, _bytes(_state(**over)))


def test_the_largest_ordinary_garage_state_fits_in_one_message() -> None:
    lights = [LightState(id=f"l-{i:03d}", level=100, full=True) for i in range(MAX_STATE_LIGHTS)]
    st = GarageState.model_validate({**_state(), "lights": [lt.model_dump() for lt in lights]})
    assert len(encode(st)) < MAX_PAYLOAD_BYTES


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    s = load_site_config(DATA / "site.yaml").site
    return s.model_copy(update={"garages": [Garage(id="garage-1", name="G", location="g1", gateway="gw-a")]})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_the_view_keeps_the_latest_state_and_says_when_it_is_stale(site: SiteConfig) -> None:
    clock = Clock()
    view = GarageView(site, stale_after_s=5.0, clock=clock)
    assert view.latest("garage-1") is None
    st = decode(GarageState, _bytes(_state()))
    assert view.put("gw-a", st)
    live = view.latest("garage-1")
    assert live is not None and live.state == st and live.received_at == T0
    assert live.stale  # its gateway's status not heard yet
    view.gateway_status("gw-a", True)
    clock.now = T0 + timedelta(seconds=4.9)
    live = view.latest("garage-1")
    assert live is not None and not live.stale and live.age_s == pytest.approx(4.9)
    clock.now = T0 + timedelta(seconds=5.1)
    assert view.latest("garage-1").stale  # type: ignore[union-attr]
    view.put("gw-a", st)  # a new one: fresh again
    assert not view.latest("garage-1").stale  # type: ignore[union-attr]
    view.gateway_status("gw-a", False)  # the gateway stopped: its retained state is the last it knew
    assert view.latest("garage-1").stale  # type: ignore[union-attr]


def test_the_view_ignores_a_state_from_another_gateway_or_garage(site: SiteConfig) -> None:
    view = GarageView(site, clock=Clock())
    assert not view.put("gw-b", decode(GarageState, _bytes(_state())))
    assert not view.put("gw-a", decode(GarageState, _bytes(_state(garage="garage-9"))))
    assert view.latest("garage-1") is None and view.counters.ignored == 2
