"""The garage service's live state: what it publishes, how often, and that it skips rather than queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.garage.service import GarageService
from sc.config.loader import load_site_config
from sc.contracts.commands import LightsOverrideArgs
from sc.contracts.messages import GarageFaultKind, GarageState, OverrideLevel, decode

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "site.example.yaml"


class Wire:
    """Stands in for the gateway's MQTT connection: records what is published while ``connected``."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, GarageState]] = []

    def __call__(self, device: str, payload: bytes) -> bool:
        if not self.connected:
            return False
        self.sent.append((device, decode(GarageState, payload)))
        return True


def test_the_state_is_published_every_interval_and_skipped_while_disconnected() -> None:
    site = load_site_config(EXAMPLE).site
    (garage,) = site.garages
    now = [100.0]
    wire = Wire()
    svc = GarageService(
        garage=garage, gateway=site.gateway(garage.gateway), emit=lambda *a: None, bus_for=lambda _bus: None,
        publish_state=wire, clock=lambda: now[0],
    )  # fmt: skip
    svc.override(LightsOverrideArgs(level=OverrideLevel.OFF, lights=["l-001"], for_s=30))

    async def rounds(n: int, step: float) -> None:
        for _ in range(n):
            await svc.tick(now[0])
            now[0] += step

    asyncio.run(rounds(10, 0.25))  # 2.5 s at 0.25 s: states at 100, 101, 102
    assert [d for d, _ in wire.sent] == [garage.id] * 3
    first, last = wire.sent[0][1], wire.sent[-1][1]
    assert [lt.id for lt in first.lights] == [lt.id for lt in garage.lights]
    l1 = first.lights[0]
    assert l1.override is OverrideLevel.OFF and l1.override_left_s == 30.0
    # no bus is open: the sensor module is offline after 3 failed reads, its sensors' zones are full
    assert {(f.device, f.kind) for f in last.faults} >= {(garage.sensor_modules[0].id, GarageFaultKind.OFFLINE)}
    # ...whatever the override says: safety first (l-001 was set off)
    assert all(lt.full and lt.level == garage.levels.full_pct for lt in last.lights)
    assert not last.fire and last.tracks == []
    wire.connected = False
    asyncio.run(rounds(8, 0.25))  # 2 s without the broker: skipped, not queued
    wire.connected = True
    asyncio.run(rounds(3, 0.25))  # the next one is due a whole interval after the last skipped one
    assert len(wire.sent) == 4
    c = svc.health()["counters"]
    assert (c["states_published"], c["states_skipped"], c["states_too_big"]) == (4, 2, 0)
