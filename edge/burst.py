"""``sc edge burst``: push synthetic alarm events through a gateway's real
outbox and forwarder, as fast as the disk allows, and wait until the broker
has acknowledged all of them.

For installers (prove the path from this gateway to the broker end to end,
under load) and for the loss tests and benchmarks. The events are ordinary
contract events (``smoke_alarm`` raised/cleared, alternating) of devices
``burst-0 .. burst-{devices-1}``; each device gets ``count / devices`` of
them. It resumes: run it again after a crash and it continues from the last
sequence number the outbox committed, so every device ends at exactly its
target and any gap at the receiver is a real loss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sc.config.loader import LoadedConfig
from sc.contracts.messages import (
    AlarmPayload,
    Event,
    EventKind,
    EventState,
    Severity,
    SmokeReading,
    encode,
)
from sc.contracts.topics import Kind, Topic

from .app import build_pipeline

__all__ = ["BurstResult", "burst_device_ids", "run_burst"]

log = logging.getLogger(__name__)


def burst_device_ids(devices: int) -> list[str]:
    return [f"burst-{i}" for i in range(devices)]


@dataclass(frozen=True)
class BurstResult:
    written: int
    seconds_to_write: float
    seconds_to_ack: float
    drained: bool


def run_burst(
    loaded: LoadedConfig,
    gateway: str,
    *,
    count: int,
    devices: int = 10,
    drain_timeout: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> BurstResult:
    gw = loaded.site.gateway(gateway)
    site = loaded.site.site.id
    pipe = build_pipeline(loaded, gw)
    ids = burst_device_ids(devices)
    per_device = count // devices
    reading = SmokeReading(smoke_density=12.5, temperature_c=31.0, battery_pct=90, alarm=True, fault=False)
    payload_raise = AlarmPayload(rule="smoke_density >= 8", value=12.5, threshold=8.0, reading=reading)
    topics = {d: str(Topic(site, gw.id, Kind.EVENT, d)) for d in ids}
    pipe.conn.start()
    pipe.forwarder.start()
    written = 0
    t0 = time.perf_counter()
    try:
        # round-robin over the devices, each continuing from its committed seq
        next_seq = {d: pipe.outbox.last_seq(d) + 1 for d in ids}
        while True:
            pending = [d for d in ids if next_seq[d] <= per_device]
            if not pending:
                break
            for d in pending:

                def build(seq: int, d: str = d) -> tuple[str, bytes]:
                    ev = Event(
                        site=site,
                        gateway=gw.id,
                        device=d,
                        ts=datetime.now(UTC),
                        seq=seq,
                        kind=EventKind.SMOKE_ALARM,
                        state=EventState.RAISED if seq % 2 else EventState.CLEARED,
                        severity=Severity.CRITICAL,
                        payload=payload_raise,
                    )
                    return topics[d], encode(ev)

                next_seq[d] = pipe.outbox.put_event(d, build) + 1
                written += 1
                if progress is not None:
                    progress(written)
        t_written = time.perf_counter() - t0
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            if pipe.outbox.depth()["events"] == 0:
                break
            time.sleep(0.01)
        t_acked = time.perf_counter() - t0
        drained = pipe.outbox.depth()["events"] == 0
        log.info(
            "burst gateway=%s wrote %d events in %.2f s, all acknowledged after %.2f s: %s",
            gw.id,
            written,
            t_written,
            t_acked,
            drained,
        )
        return BurstResult(written, t_written, t_acked, drained)
    finally:
        pipe.forwarder.stop()
        pipe.conn.stop()
        pipe.outbox.close()
