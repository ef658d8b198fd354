"""The garage service's answers to the control room's ``lights_override`` arguments, without any bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.garage.service import GarageService, fire_devices_of
from sc.config.loader import load_site_config

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
        ({}, "level must be one of full, standby, off, auto (got '')"),
        ({"level": "bright"}, "level must be one of full, standby, off, auto (got 'bright')"),
        ({"level": "full", "for_s": -5}, "for_s must be a positive number of seconds (got -5)"),
        ({"level": "full", "for_s": 0}, "for_s must be a positive number of seconds (got 0)"),
        ({"level": "full", "for_s": True}, "for_s must be a positive number of seconds (got True)"),
        ({"level": "full", "for_s": "soon"}, "for_s must be a positive number of seconds (got 'soon')"),
        ({"level": "off", "lights": "l-001, l-999"}, "garage heping-garage has no light 'l-999'"),
    ],
)
def test_bad_override_arguments_are_refused_with_the_reason(
    service: GarageService, args: dict[str, Any], error: str
) -> None:
    before = service.controller.snapshot()["overrides"]
    with pytest.raises(ValueError) as exc:
        service.override(args)
    assert str(exc.value) == error
    assert service.controller.snapshot()["overrides"] == before  # nothing half-applied


def test_an_override_names_how_many_lights_it_set(service: GarageService) -> None:
    assert service.override({"level": "standby", "lights": " l-001 ,l-002,", "for_s": 30}) == {
        "level": "standby",
        "lights": 2,
        "for_s": 30,
    }
    assert service.controller.snapshot()["overrides"] == 2
    assert service.override({"level": "auto"}) == {"level": "auto", "lights": 41, "for_s": None}
    assert service.controller.snapshot()["overrides"] == 0


def test_health_before_the_first_round(service: GarageService) -> None:
    h = service.health()
    assert (h["tracks"], h["lights"], h["modules_down"], h["controllers_down"]) == ([], 41, {}, {})
    assert h["decision_ms"] == {"p50": 0.0, "p99": 0.0}
    assert h["counters"]["loops"] == 0
