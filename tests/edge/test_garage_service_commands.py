"""The garage service's answers to the control room's ``lights_override`` arguments, without any bus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.garage.service import GarageService, fire_devices_of
from sc.config.loader import load_site_config
from sc.contracts.commands import Command, LightsOverrideArgs, LightsOverrideResult
from sc.contracts.messages import ContractError, OverrideLevel, decode

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "site.example.yaml"


@pytest.fixture(scope="module")
def service() -> GarageService:
    site = load_site_config(EXAMPLE).site
    (garage,) = site.garages
    return GarageService(
        garage=garage, gateway=site.gateway(garage.gateway), emit=lambda *a: None, bus_for=lambda _bus: None
    )


def test_fire_comes_from_the_gateways_smoke_detectors_at_the_garage(service: GarageService) -> None:
    assert service.fire_devices == {"smoke-hp-garage-1"}
    site = load_site_config(EXAMPLE).site
    garage = site.garages[0].model_copy(update={"fire_devices": []})
    assert fire_devices_of(garage, site.gateway(garage.gateway)) == set()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({}, "args.level: Field required"),
        ({"level": "bright"}, "args.level: Input should be 'full', 'standby', 'off' or 'auto'"),
        ({"level": "full", "for_s": -5}, "args.for_s: Input should be greater than 0"),
        ({"level": "full", "for_s": 0}, "args.for_s: Input should be greater than 0"),
        ({"level": "full", "for_s": "soon"}, "args.for_s: Input should be a valid number, unable to parse string"),
        ({"level": "full", "for_s": 8 * 86400}, "args.for_s: Input should be less than or equal to 604800"),
        ({"level": "off", "lights": "l-001, l-999"}, "args.lights: Input should be a valid array"),
        ({"level": "off", "lights": []}, "args.lights: List should have at least 1 item after validation"),
        ({"level": "off", "dim": 3}, "args.dim: Extra inputs are not permitted"),
    ],
)
def test_bad_override_arguments_are_refused_with_the_reason(args: dict[str, Any], error: str) -> None:
    body = {"expires": "2026-12-02T08:00:10Z", "ts": "2026-12-02T08:00:00Z", "site": "s", "gateway": "g"}
    with pytest.raises(ContractError) as exc:
        decode(Command, json.dumps({**body, "device": "d", "name": "lights_override", "args": args}).encode())
    assert str(exc.value).startswith(f"invalid Command: {error}"), str(exc.value)


def test_an_unknown_light_is_refused_and_nothing_is_half_applied(service: GarageService) -> None:
    before = service.controller.snapshot()["overrides"]
    with pytest.raises(ValueError) as exc:
        service.override(LightsOverrideArgs(level=OverrideLevel.OFF, lights=["l-001", "l-999"]))
    assert str(exc.value) == "garage heping-garage has no light 'l-999'"
    assert service.controller.snapshot()["overrides"] == before


def test_an_override_names_how_many_lights_it_set(service: GarageService) -> None:
    standby = LightsOverrideArgs(level=OverrideLevel.STANDBY, lights=["l-001", "l-002"], for_s=30)
    assert service.override(standby) == LightsOverrideResult(level=OverrideLevel.STANDBY, lights=2, for_s=30)
    assert service.controller.snapshot()["overrides"] == 2
    back = service.override(LightsOverrideArgs(level=OverrideLevel.AUTO))
    assert back == LightsOverrideResult(level=OverrideLevel.AUTO, lights=41, for_s=None)
    assert service.controller.snapshot()["overrides"] == 0


def test_health_before_the_first_round(service: GarageService) -> None:
    h = service.health()
    assert (h["tracks"], h["lights"], h["modules_down"], h["controllers_down"]) == ([], 41, {}, {})
    assert h["decision_ms"] == {"p50": 0.0, "p99": 0.0}
    assert h["counters"]["loops"] == 0
