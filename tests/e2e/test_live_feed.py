"""Issue 13, finding 1, on the real PostgreSQL and the real broker: the control room's live feed cannot stop
ingestion, ends when its user is no longer signed in, is bounded per user and per process, and replays a
bounded window.

Before: each open stream held a pooled database connection for as long as it was open, and the ingester shared
that pool: about 15 streams left alarms waiting at the broker with no work order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.db.models import User, WorkOrder
from cloud.workorders.states import Role
from harness import Site, add_api_users, api_settings, api_tokens, wait_until
from sc.contracts.messages import AlarmPayload, Event, EventKind, EventState, Severity, SmokeReading, encode
from sc.contracts.topics import Kind, Topic

LIMIT = 60
USERS: dict[str, tuple[Any, str | None, str | None]] = {
    "op-1": (Role.OPERATOR, None, None),
    "op-2": (Role.OPERATOR, None, None),
    "r-1": (Role.RESIDENT, None, "b1-u1"),
}


@dataclass
class Feed:
    """One live feed read in a thread: its status code and the SSE lines so far."""

    base: str
    token: str
    last_event_id: int | None = None
    status: int | None = None
    lines: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Feed:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        try:
            with (
                httpx.Client(base_url=self.base, timeout=httpx.Timeout(10, read=120)) as c,
                c.stream("GET", "/api/v1/live", headers=headers) as r,
            ):
                self.status = r.status_code
                self.opened.set()
                for line in r.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def events(self, kind: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for i, line in enumerate(self.lines):
            if line == f"event: {kind}" and i + 1 < len(self.lines) and self.lines[i + 1].startswith("data: "):
                out.append(json.loads(self.lines[i + 1][6:]))
        return out


@pytest.fixture
def stack(site: Site, db: Engine, tmp_path: Path) -> Iterator[tuple[CloudApp, str, dict[str, str]]]:
    add_api_users(db, USERS)
    settings = api_settings(db, tmp_path, live_streams_per_user=60, live_streams_max=80, live_replay_max=2)
    app = CloudApp(site.loaded, settings)
    app.start()
    base = f"http://127.0.0.1:{app.api_port}"
    try:
        yield app, base, api_tokens(base, USERS)
    finally:
        app.stop()


def raise_alarm(site: Site, device: str, seq: int = 1) -> str:
    reading = SmokeReading(smoke_density=15, temperature_c=30, battery_pct=80, alarm=True, fault=False)
    ev = Event(
        site="test", gateway="gw-a", device=device, ts=datetime.now(UTC), seq=seq, kind=EventKind.SMOKE_ALARM,
        state=EventState.RAISED, severity=Severity.CRITICAL,
        payload=AlarmPayload(rule="smoke_density >= 8", value=15, threshold=8, reading=reading),
    )  # fmt: skip
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="gw-a")
    c.username_pw_set("gw-a", site.password("gw-a"))
    c.connect("127.0.0.1", site.port)
    c.loop_start()
    c.publish(str(Topic("test", "gw-a", Kind.EVENT, device)), encode(ev), qos=1).wait_for_publish(LIMIT)
    c.disconnect()
    c.loop_stop()
    return ev.id


def orders(db: Engine) -> int:
    with Session(db) as s:
        return int(s.execute(select(func.count()).select_from(WorkOrder)).scalar_one())


def test_fifty_open_live_feeds_do_not_stop_an_alarm_becoming_a_work_order(
    site: Site, db: Engine, stack: tuple[CloudApp, str, dict[str, str]]
) -> None:
    app, base, tokens = stack
    feeds = [Feed(base, tokens["op-1"]).start() for _ in range(25)] + [
        Feed(base, tokens["op-2"]).start() for _ in range(25)
    ]
    assert all(f.opened.wait(LIMIT) for f in feeds)
    assert [f.status for f in feeds] == [200] * 50
    assert app.api_ctx.streams.count() == 50  # all open at once, none holding a database connection
    raise_alarm(site, "smoke-1")
    assert wait_until(lambda: orders(db) == 1, LIMIT), "the alarm's work order was not committed"
    # the API still answers while the feeds are open, and every feed shows the new order
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['op-1']}"}, timeout=30) as c:
        r = c.get("/api/v1/work-orders")
        assert r.status_code == 200 and len(r.json()) == 1
    assert wait_until(lambda: all(f.events("order") for f in feeds), LIMIT)


def test_live_feeds_are_bounded_per_user(db: Engine, site: Site, tmp_path: Path) -> None:
    add_api_users(db, USERS)
    app = CloudApp(site.loaded, api_settings(db, tmp_path, live_streams_per_user=2, live_streams_max=3))
    app.start()
    try:
        base = f"http://127.0.0.1:{app.api_port}"
        tokens = api_tokens(base, USERS)
        two = [Feed(base, tokens["op-1"]).start() for _ in range(2)]
        assert all(f.opened.wait(LIMIT) for f in two) and [f.status for f in two] == [200, 200]
        third = Feed(base, tokens["op-1"]).start()
        assert third.ended.wait(LIMIT) and third.status == 429
        other = Feed(base, tokens["op-2"]).start()  # another user: within the process's 3
        assert other.opened.wait(LIMIT) and other.status == 200
        fourth = Feed(base, tokens["r-1"]).start()  # the process's limit
        assert fourth.ended.wait(LIMIT) and fourth.status == 429
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['op-1']}"}) as c:
            r = c.get("/api/v1/live")
            assert (r.status_code, r.headers["retry-after"]) == (429, "30")
            assert r.json()["detail"] == "op-1 has 2 live feeds open already (at most 2)"
    finally:
        app.stop()


def test_a_feed_ends_when_its_user_is_deactivated(db: Engine, stack: tuple[CloudApp, str, dict[str, str]]) -> None:
    _, base, tokens = stack
    feed = Feed(base, tokens["r-1"]).start()
    assert feed.opened.wait(LIMIT) and feed.status == 200
    with Session(db) as s, s.begin():
        s.execute(update(User).where(User.id == "r-1").values(active=False))
    assert feed.ended.wait(LIMIT), "the deactivated user's feed kept streaming"
    assert feed.events("signed_out") == [{"reason": "the token is no longer valid: sign in again"}]
    again = Feed(base, tokens["r-1"]).start()
    assert again.ended.wait(LIMIT) and again.status == 401


def test_a_reconnecting_feed_is_replayed_a_bounded_window(
    site: Site, db: Engine, stack: tuple[CloudApp, str, dict[str, str]]
) -> None:
    _, base, tokens = stack
    for i, device in enumerate(("smoke-1", "smoke-2", "smoke-3")):
        raise_alarm(site, device, seq=1 + i)
    assert wait_until(lambda: orders(db) == 3, LIMIT)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['op-1']}"}) as c:
        history = c.get("/api/v1/work-orders").json()
    assert len(history) == 3
    feed = Feed(base, tokens["op-1"], last_event_id=0).start()  # "everything since the beginning"
    assert wait_until(lambda: len(feed.events("order")) >= 2, LIMIT)
    [gap] = feed.events("gap")
    assert gap["asked_from"] == 0 and isinstance(gap["from"], int) and gap["from"] > 0
    replayed = feed.events("order")
    assert len(replayed) == 2 and all(int(str(e["history_id"])) > int(str(gap["from"])) for e in replayed)
