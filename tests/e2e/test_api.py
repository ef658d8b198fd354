"""The HTTP API on a real server: auth and roles, work-order lifecycle, Open311 reports,
supervision figures, escalation with a controlled clock, and the live feed."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.workorders.states import Role
from harness import API_PASSWORD, Site, add_api_users, api_settings, api_tokens, wait_until
from sc.contracts.messages import AlarmPayload, Event, EventKind, EventState, Severity, SmokeReading, encode
from sc.contracts.topics import Kind, Topic

PASSWORD = API_PASSWORD
USERS = {
    "op-1": (Role.OPERATOR, None, None),
    "w-fire": (Role.GRID_WORKER, "fire", None),
    "w-prop": (Role.GRID_WORKER, "property", None),
    "dept-fire": (Role.DEPARTMENT, "fire", None),
    "r-1": (Role.RESIDENT, None, "b1-u1"),
    "r-2": (Role.RESIDENT, None, "b1-u2"),
    "r-c2": (Role.RESIDENT, None, "b9-u1"),  # community 2: no gate of its own in the test site
    "r-nowhere": (Role.RESIDENT, None, None),  # an account with no home yet
    "prop": (Role.DEPARTMENT, "property", None),  # community 1's property company
    "prop-2": (Role.DEPARTMENT, "property-2", None),
}


class Clock:
    """A clock the test moves by hand (deadlines, escalation)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, minutes: float) -> None:
        with self._lock:
            self.now += timedelta(minutes=minutes)


@dataclass
class Stack:
    site: Site
    app: CloudApp
    clock: Clock
    base: str
    tokens: dict[str, str]
    tmp: Path

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)


@pytest.fixture
def stack(site: Site, db: Engine, tmp_path: Path) -> Iterator[Stack]:
    clock = Clock()
    add_api_users(db, USERS, now=clock())
    settings = api_settings(db, tmp_path)
    app = CloudApp(site.loaded, settings, clock=clock)
    app.start()
    base = f"http://127.0.0.1:{app.api_port}"
    tokens = api_tokens(base, USERS)
    try:
        yield Stack(site, app, clock, base, tokens, tmp_path)
    finally:
        app.stop()


def raise_alarm(st: Stack, device: str = "smoke-1", seq: int = 1) -> str:
    reading = SmokeReading(smoke_density=15, temperature_c=30, battery_pct=80, alarm=True, fault=False)
    ev = Event(
        site="test", gateway="gw-a", device=device, ts=st.clock(), seq=seq, kind=EventKind.SMOKE_ALARM,
        state=EventState.RAISED, severity=Severity.CRITICAL,
        payload=AlarmPayload(rule="smoke_density >= 8", value=15, threshold=8, reading=reading),
    )  # fmt: skip
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-a-api-{seq}")
    c.username_pw_set("gw-a", st.site.password("gw-a"))
    c.connect("127.0.0.1", st.site.port)
    c.loop_start()
    c.publish(str(Topic("test", "gw-a", Kind.EVENT, device)), encode(ev), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    return ev.id


def orders_of(st: Stack, user: str) -> list[dict[str, object]]:
    with st.client(user) as c:
        r = c.get("/api/v1/work-orders")
        assert r.status_code == 200, r.text
        return list(r.json())


def act(st: Stack, user: str, order_id: int, **body: object) -> httpx.Response:
    with st.client(user) as c:
        return c.post(f"/api/v1/work-orders/{order_id}/actions", json=body)


def test_every_call_is_authenticated(stack: Stack) -> None:
    with stack.client(None) as c:
        assert c.get("/health").json() == {"status": "ok"}
        r = c.get("/api/v1/work-orders")
        assert r.status_code == 401 and r.json()["detail"] == "sign in first: POST /api/v1/auth/token"
        r = c.post("/api/v1/auth/token", data={"username": "op-1", "password": "nope"})
        assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
        r = c.get("/api/v1/work-orders", headers={"Authorization": "Bearer made-up"})
        assert r.status_code == 401 and r.json()["detail"] == "the token is unknown or expired"
    with stack.client("w-fire") as c:
        assert c.get("/api/v1/auth/me").json() == {
            "id": "w-fire", "name": "w-fire", "role": "grid_worker", "department": "fire", "location": None
        }  # fmt: skip
    stack.clock.advance(13 * 60)  # tokens last 12 h
    with stack.client("op-1") as c:
        assert c.get("/api/v1/work-orders").status_code == 401


def test_an_alarm_is_worked_through_to_a_rated_close(stack: Stack) -> None:
    event_id = raise_alarm(stack)
    assert wait_until(lambda: len(orders_of(stack, "op-1")) == 1, 10)
    [o] = orders_of(stack, "op-1")
    assert (o["kind"], o["status"], o["department"], o["assignee"]) == ("smoke_alarm", "dispatched", "fire", "w-fire")
    oid = int(o["id"])  # type: ignore[call-overload]
    # who sees it: the assignee, its department and the control room; not another department's worker
    assert [x["id"] for x in orders_of(stack, "w-fire")] == [oid]
    assert [x["id"] for x in orders_of(stack, "dept-fire")] == [oid]
    assert orders_of(stack, "r-1") == []
    with stack.client("r-1") as c:
        r = c.get("/api/v1/devices")
        assert r.status_code == 403
        assert r.json()["detail"] == "a resident may not do this (allowed: admin, department, grid_worker, operator)"
        assert c.get(f"/api/v1/work-orders/{oid}").status_code == 404
    # wrong role, wrong order of steps, bad input: refused with the reason, nothing written
    r = act(stack, "r-1", oid, action="accept")
    assert r.status_code == 404  # a resident does not even see someone else's order
    r = act(stack, "op-1", oid, action="close")
    assert (r.status_code, r.json()["detail"]) == (409, "cannot close an order that is dispatched (only from resolved)")
    r = act(stack, "op-1", oid, action="dispatch", assignee="nobody")
    assert (r.status_code, r.json()["detail"]) == (422, "unknown worker 'nobody'")
    r = act(stack, "op-1", oid, action="explode")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "action"]
    r = act(stack, "op-1", oid, action="accept", extra=1)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "extra_forbidden"
    # the worker's steps, a minute apart
    for action in ("accept", "arrive", "resolve"):
        stack.clock.advance(1)
        r = act(stack, "w-fire", oid, action=action, note=f"{action} note")
        assert r.status_code == 200, r.text
    r = act(stack, "op-1", oid, action="close", rating=6)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rating"]
    r = act(stack, "op-1", oid, action="close", rating=5, comment="quick")
    assert r.status_code == 200
    detail = r.json()
    assert (detail["status"], detail["rating"], detail["rating_comment"]) == ("closed", 5, "quick")
    assert [(h["action"], h["actor"], h["to_status"]) for h in detail["history"]] == [
        ("open", "system", "open"),
        ("dispatch", "system", "dispatched"),
        ("accept", "w-fire", "accepted"),
        ("arrive", "w-fire", "on_site"),
        ("resolve", "w-fire", "resolved"),
        ("close", "op-1", "closed"),
    ]
    assert [e["id"] for e in detail["events"]] == [event_id]
    # the figures come straight from the data
    with stack.client("op-1") as c:
        r = c.get("/api/v1/stats", params={"by": "department"})
        assert r.status_code == 200
        [fig] = r.json()
        # the period is bounded: its cost grows with the orders in it
        long = {"since": "2020-01-01T00:00:00Z", "until": "2021-06-01T00:00:00Z"}
        r2 = c.get("/api/v1/stats", params=long)
        assert (r2.status_code, r2.json()["detail"]) == (
            422,
            "at most 400 days at once (asked for 517): split the period",
        )
    assert fig == {
        "key": "fire", "orders": 1, "responded": 1, "resolved": 1, "closed": 1, "avg_response_min": 1.0,
        "avg_resolution_min": 3.0, "response_deadline_met_pct": 100.0, "resolution_deadline_met_pct": 100.0,
        "escalated": 0, "reopen_rate_pct": 0.0, "avg_rating": 5.0, "ratings": 1,
    }  # fmt: skip


def test_missed_deadlines_escalate_and_the_live_feed_shows_it(stack: Stack) -> None:
    received: list[dict[str, object]] = []
    ready = threading.Event()

    def listen() -> None:
        with stack.client("op-1") as c, c.stream("GET", "/api/v1/live", timeout=20) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith(": live feed"):
                    ready.set()
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if received[-1]["action"] == "escalate":
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(60), "the live feed did not open"
    raise_alarm(stack)
    # how soon the feed shows it is bench/control_room_latency.py's question; here: that it does
    assert wait_until(lambda: len(received) >= 2, 60), f"the live feed did not show the order: {received}"
    assert [r["action"] for r in received[:2]] == ["open", "dispatch"]
    oid = received[0]["order"]["id"]  # type: ignore[index]
    stack.clock.advance(6)  # critical: first response due within 5 minutes
    assert stack.app.scheduler.tick() == [oid]
    t.join(10)
    assert received[-1]["action"] == "escalate"
    assert received[-1]["order"]["escalation_level"] == 1  # type: ignore[index]
    assert received[-1]["note"] == "first response deadline passed: escalated to c1 (level 1)"


def test_a_resident_files_a_report_with_open311_and_rates_it(stack: Stack) -> None:
    with stack.client("r-1") as c:
        services = c.get("/open311/v2/services.json").json()
        assert len(services) == 23 and {s["service_code"] for s in services} >= {"stairwell.lighting"}
        r = c.post(
            "/open311/v2/requests.json",
            data={"service_code": "stairwell.lighting", "address_id": "b1-u1", "description": "light out on floor 3"},
        )
        assert r.status_code == 200, r.text
        [created] = r.json()
        rid = created["service_request_id"]
        assert created["service_notice"].startswith("routed to grid-office; first response by ")
        bad = c.post("/open311/v2/requests.json", data={"service_code": "stairwell.lighting", "address_id": "nowhere"})
        assert bad.status_code == 400
        assert bad.json() == [{"code": 400, "description": "location 'nowhere' is not in the grid tree"}]
        bad = c.post("/open311/v2/requests.json", data={"service_code": "x.y", "address_id": "b1-u1"})
        assert bad.json() == [{"code": 400, "description": "unknown service_code 'x.y': see /open311/v2/services.json"}]
        [req] = c.get(f"/open311/v2/requests/{rid}.json").json()
        assert (req["status"], req["status_notes"], req["address"], req["agency_responsible"]) == (
            "open", "dispatched", "Building 1 Stair 1", "Grid office"
        )  # fmt: skip
    with stack.client("r-2") as c:  # another resident sees nothing of it
        assert c.get("/open311/v2/requests.json").json() == []
        assert c.get(f"/open311/v2/requests/{rid}.json").status_code == 404
    for action in ("accept", "resolve"):
        assert act(stack, "op-1", int(rid), action=action).status_code == 200
    r = act(stack, "r-2", int(rid), action="close", rating=1)
    assert r.status_code == 404
    r = act(stack, "r-1", int(rid), action="close", rating=4, comment="fixed next day")
    assert r.status_code == 200 and r.json()["rating"] == 4
    with stack.client("r-1") as c:
        [req] = c.get("/open311/v2/requests.json", params={"status": "closed"}).json()
        assert req["service_request_id"] == rid


def test_a_report_can_carry_a_photo(stack: Stack) -> None:
    from PIL import Image

    buf = BytesIO()
    exif = Image.Exif()
    exif[0x9003] = "2026:12:02 08:00:00"  # DateTimeOriginal
    exif[0xA431] = "CAMERA-SERIAL-12345"  # BodySerialNumber
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG", exif=exif)
    photo = buf.getvalue()
    assert b"CAMERA-SERIAL-12345" in photo
    media = stack.tmp / "media"
    with stack.client("r-1") as c:
        r = c.post(
            "/open311/v2/requests.json",
            data={"service_code": "stairwell.clutter", "address_id": "b1-u1", "description": "bikes in the stairwell"},
            files={"media": ("clutter.jpg", photo, "image/jpeg")},
        )
        assert r.status_code == 200, r.text
        rid = r.json()[0]["service_request_id"]
        [req] = c.get(f"/open311/v2/requests/{rid}.json").json()
        assert req["media_url"].startswith("/media/") and req["media_url"].endswith(".jpg")
        got = c.get(req["media_url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        # the pixels are kept, re-encoded; the metadata (a camera's serial, a phone's GPS position) is not
        assert got.content.startswith(b"\xff\xd8") and b"CAMERA-SERIAL-12345" not in got.content
        assert Image.open(BytesIO(got.content)).size == (64, 48)
        assert len(list(media.iterdir())) == 1
        bad = c.post(
            "/open311/v2/requests.json",
            data={"service_code": "stairwell.clutter", "address_id": "b1-u1"},
            files={"media": ("x.jpg", b"not a photo", "image/jpeg")},
        )
        assert bad.status_code == 400 and bad.json() == [
            {"code": 400, "description": "media is not an image (send a JPEG or PNG photo)"}
        ]
        # a valid photo with a report that is refused leaves no file behind
        refused = c.post(
            "/open311/v2/requests.json",
            data={"service_code": "no.such_service", "address_id": "b1-u1"},
            files={"media": ("clutter.jpg", photo, "image/jpeg")},
        )
        assert refused.status_code == 400
        assert len(list(media.iterdir())) == 1
        # a request over the size limit is refused from its header, before its body is read (30 MB announced,
        # 100 bytes sent: the answer comes at once)
        host, port = stack.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                b"boundary=x\r\nContent-Length: 31457280\r\n\r\n" + b"x" * 100
            )
            answer = b""
            while b"limit" not in answer and len(answer) < 8192:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 ") and b"31457280 bytes, over the 27262976-byte limit" in answer
    with stack.client(None) as c:
        assert c.get(req["media_url"]).status_code == 401


def test_a_resident_invites_a_visitor_and_the_gate_lets_them_in_once(stack: Stack) -> None:
    import base64

    from edge.gate.ledger import PassLedger
    from edge.gate.passcheck import PassChecker
    from sc.passes import Refusal, load_public_key

    until = (stack.clock() + timedelta(hours=3)).isoformat()
    with stack.client("r-1") as c:
        r = c.post("/api/v1/visitor-passes", json={"visitor_name": "Li Lei", "gates": ["north"], "valid_until": until})
        assert r.status_code == 201, r.text
        p = r.json()
        assert (p["visitor_name"], p["gates"], p["uses"]) == ("Li Lei", ["north"], 1)
        png = base64.b64decode(p["qr_png"].split(",", 1)[1])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        for bad, detail in [
            (
                {"visitor_name": "x", "gates": ["west"], "valid_until": until},
                "unknown gates ['west'] (known: ['north', 'south'])",
            ),
            (
                {"visitor_name": "x", "valid_until": (stack.clock() + timedelta(days=8)).isoformat()},
                "a pass may last at most 7 days",
            ),
            (
                {"visitor_name": "x", "valid_until": (stack.clock() - timedelta(hours=1)).isoformat()},
                "valid_until must be after valid_from",
            ),
        ]:
            r = c.post("/api/v1/visitor-passes", json=bad)
            assert (r.status_code, r.json()["detail"]) == (422, detail)
    with stack.client("dept-fire") as c:
        r = c.post("/api/v1/visitor-passes", json={"visitor_name": "x", "valid_until": until})
        assert r.status_code == 403
    # the gate checks it offline with the public key the cloud made at its first start
    gate = PassChecker(
        public_key=load_public_key(stack.tmp / "keys" / "pass.pub.pem"), site="test", gate="north",
        ledger=PassLedger(stack.tmp / "gate-ledger.db"),
    )  # fmt: skip
    first = gate.check(p["token"], stack.clock())
    assert (first.granted, first.uses_left, first.detail) == (True, 0, "visitor Li Lei invited by r-1")
    again = gate.check(p["token"], stack.clock())
    assert (again.granted, again.reason) == (False, Refusal.USED_UP)
    south = PassChecker(public_key=gate.public_key, site="test", gate="south", ledger=gate.ledger)
    assert south.check(p["token"], stack.clock()).reason is Refusal.WRONG_GATE


def test_passes_are_kept_for_the_residents_own_community_a_few_a_day_and_revocable_by_them_and_staff(
    stack: Stack,
) -> None:
    def make(user: str, **body: object) -> httpx.Response:
        body.setdefault("visitor_name", "Li Lei")
        body.setdefault("valid_until", (stack.clock() + timedelta(hours=3)).isoformat())
        with stack.client(user) as c:
            return c.post("/api/v1/visitor-passes", json=body)

    def listed(user: str, **params: str | bool) -> list[str]:
        with stack.client(user) as c:
            r = c.get("/api/v1/visitor-passes", params=params)
            assert r.status_code == 200, r.text
            return [p["pass_id"] for p in r.json()]

    first = make("r-1", uses=2)
    assert first.status_code == 201, first.text
    p1 = first.json()
    assert (p1["gates"], p1["uses"]) == (["north", "south"], 2)  # every gate of the resident's own community
    # the cloud keeps it: listed for its resident, and shown again with the same token
    with stack.client("r-1") as c:
        [mine] = c.get("/api/v1/visitor-passes").json()
        again = c.get(f"/api/v1/visitor-passes/{p1['pass_id']}").json()
    assert {k: mine[k] for k in ("pass_id", "resident", "visitor_name", "uses", "revoked_at")} == {
        "pass_id": p1["pass_id"], "resident": "r-1", "visitor_name": "Li Lei", "uses": 2, "revoked_at": None,
    }  # fmt: skip
    assert mine["gates"] == [
        {"gate": "north", "revocation": "none", "error": None},
        {"gate": "south", "revocation": "none", "error": None},
    ]
    assert "token" not in mine and again["token"] == p1["token"]
    # refused, with the reason: other communities' gates, no home, too many entries, another resident's pass
    refusals: list[tuple[str, dict[str, object], int, str]] = [
        (
            "r-c2",
            {},
            403,
            "there are no gates for your home location: ask the property company to set it before inviting",
        ),
        ("r-nowhere", {}, 403, "your account has no home location: ask the property company to set it before inviting"),
        ("r-1", {"gates": ["north", "west"]}, 422, "unknown gates ['west'] (known: ['north', 'south'])"),
        ("r-1", {"uses": 6}, 422, "a pass may allow at most 5 entries"),
        ("prop", {}, 403, "a department may not do this (allowed: admin, operator, resident)"),
    ]
    for user, body, code, detail in refusals:
        r = make(user, **body)
        assert (user, r.status_code, r.json()["detail"]) == (user, code, detail)
    with stack.client("r-2") as c:
        assert c.get(f"/api/v1/visitor-passes/{p1['pass_id']}").status_code == 404
        assert c.post(f"/api/v1/visitor-passes/{p1['pass_id']}/revoke").status_code == 404
    assert listed("r-2") == []
    # three a day (the test site's visitors.per_resident_per_day): the fourth is refused until a day has passed
    p2, p3 = (make("r-1").json()["pass_id"] for _ in range(2))
    fourth = make("r-1")
    assert (fourth.status_code, fourth.headers["retry-after"], fourth.json()["detail"]) == (
        429, "3600",
        "you have created 3 visitor passes in the last 24 hours, this site's limit (3): try again later, or ask the "
        "property company",
    )  # fmt: skip
    assert make("op-1").status_code == 201  # the control room is not counted: its guards let deliveries in
    # staff see the passes valid at their gates: community 1's property company all of them, community 2's none
    everything = listed("op-1")
    assert len(everything) == 4 and set(listed("prop")) == set(everything) and listed("prop-2") == []
    with stack.client("w-prop") as c:
        assert c.get("/api/v1/visitor-passes").status_code == 403
    with stack.client("dept-fire") as c:
        r = c.get("/api/v1/visitor-passes")
        assert (r.status_code, r.json()["detail"]) == (403, "only a property company's department sees visitor passes")
    with stack.client("prop-2") as c:
        assert c.post(f"/api/v1/visitor-passes/{p2}/revoke").status_code == 404
    # the resident revokes one, the property company another: each gate gets the revocation (no gate runs here)
    with stack.client("r-1") as c:
        r = c.post(f"/api/v1/visitor-passes/{p1['pass_id']}/revoke")
    assert r.status_code == 200
    assert (r.json()["revoked_by"], [g["revocation"] for g in r.json()["gates"]]) == ("r-1", ["pending", "pending"])
    with stack.client("prop") as c:
        assert c.post(f"/api/v1/visitor-passes/{p2}/revoke").json()["revoked_by"] == "prop"
    assert set(listed("r-1", active=True)) == {p3}
    assert set(listed("op-1", resident="r-1")) == {p1["pass_id"], p2, p3}
    # a day later the resident may invite again (signed in anew: tokens last 12 hours)
    stack.clock.advance(24 * 60 + 1)
    stack.tokens.update(api_tokens(stack.base, ["r-1"]))
    assert make("r-1").status_code == 201


def test_a_resident_who_moves_out_has_every_live_pass_revoked(stack: Stack, db: Engine) -> None:
    from cloud.db.engine import make_sessions
    from cloud.db.models import PassGate, VisitorPass
    from cloud.users import deactivate_user

    with stack.client("r-2") as c:
        live = c.post(
            "/api/v1/visitor-passes",
            json={
                "visitor_name": "A",
                "gates": ["north"],
                "valid_until": (stack.clock() + timedelta(hours=3)).isoformat(),
            },
        )
        short = c.post(
            "/api/v1/visitor-passes",
            json={
                "visitor_name": "B",
                "gates": ["south"],
                "valid_until": (stack.clock() + timedelta(hours=1)).isoformat(),
            },
        )
    assert live.status_code == short.status_code == 201
    stack.clock.advance(90)  # the second has ended: nothing to revoke at its gate
    with make_sessions(db).begin() as s:
        assert deactivate_user(s, user_id="r-2", now=stack.clock(), by="op-1") == 1
    with Session(db) as s:
        rows = {p.id: (p.revoked_by, p.revoked_at is not None) for p in s.execute(select(VisitorPass)).scalars()}
        planned = {g.pass_id: (g.gate, g.command_id is not None) for g in s.execute(select(PassGate)).scalars()}
    assert rows == {live.json()["pass_id"]: ("op-1", True), short.json()["pass_id"]: (None, False)}
    assert planned == {live.json()["pass_id"]: ("north", True), short.json()["pass_id"]: ("south", False)}
    with stack.client("r-2") as c:
        assert c.get("/api/v1/visitor-passes").status_code == 401  # and signed out


def test_the_control_room_acknowledges_an_alarm_once_and_each_role_sees_its_actions(stack: Stack) -> None:
    raise_alarm(stack)
    assert wait_until(lambda: len(orders_of(stack, "op-1")) == 1, 10)
    oid = int(orders_of(stack, "op-1")[0]["id"])  # type: ignore[call-overload]
    with stack.client("op-1") as c:
        d = c.get(f"/api/v1/work-orders/{oid}").json()
    assert (d["acknowledged_at"], d["acknowledged_by"]) == (None, None)
    assert d["actions"] == ["acknowledge", "dispatch", "accept"]  # the control room may also act for a worker
    with stack.client("w-fire") as c:
        assert c.get(f"/api/v1/work-orders/{oid}").json()["actions"] == ["accept"]
    # a grid worker may not acknowledge for the control room; nothing is written
    r = act(stack, "w-fire", oid, action="acknowledge")
    assert (r.status_code, r.json()["detail"]) == (
        403,
        "a grid_worker may not acknowledge an order (allowed: admin, department, operator)",
    )
    stack.clock.advance(1)
    r = act(stack, "op-1", oid, action="acknowledge", note="seen on the wall")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "dispatched"  # acknowledging changes no status
    assert d["acknowledged_by"] == "op-1"
    assert datetime.fromisoformat(d["acknowledged_at"]) == stack.clock()
    assert d["actions"] == ["dispatch", "accept"]
    assert [(h["action"], h["from_status"], h["to_status"], h["note"]) for h in d["history"]][-1] == (
        "acknowledge", "dispatched", "dispatched", "seen on the wall",
    )  # fmt: skip
    r = act(stack, "op-1", oid, action="acknowledge")
    assert r.status_code == 409 and r.json()["detail"].startswith("already acknowledged by op-1 at ")
    # once resolved, there is nothing left to acknowledge
    for action in ("accept", "resolve"):
        assert act(stack, "w-fire", oid, action=action).status_code == 200
    with stack.client("op-1") as c:
        assert c.get(f"/api/v1/work-orders/{oid}").json()["actions"] == ["close", "reopen"]


def test_the_site_tree_workers_and_gates_for_the_page(stack: Stack) -> None:
    with stack.client("op-1") as c:
        r = c.get("/api/v1/site")
    assert r.status_code == 200, r.text
    s = r.json()
    site = stack.site.loaded.site
    assert s["id"] == site.site.id and s["timezone"] == site.site.timezone
    ids = [n["id"] for n in s["tree"]]
    assert ids[0] == site.street.id and len(ids) == len(set(ids)) == len(list(site.locations()))
    by_id = {n["id"]: n for n in s["tree"]}
    for n in s["tree"][1:]:  # parents come before their children
        assert ids.index(n["parent"]) < ids.index(n["id"])
    assert by_id["g1"]["level"] == "micro_grid"
    assert [w["id"] for w in s["workers"]] == [w.id for w in site.workers]
    assert [g["id"] for g in s["gates"]] == [g.id for g in site.gates]
    with stack.client("r-1") as c:
        assert c.get("/api/v1/site").status_code == 403


@pytest.mark.parametrize(
    ("query", "headers", "expect_lang", "expect_text"),
    [
        ("", {}, "en", "Live alarms"),
        ("", {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, "zh-CN", "实时告警"),
        ("?lang=zh", {}, "zh-CN", "实时告警"),
        ("?lang=klingon", {"Accept-Language": "zh"}, "zh-CN", "实时告警"),
    ],
)
def test_the_pages_are_served_in_the_chosen_language(
    stack: Stack, query: str, headers: dict[str, str], expect_lang: str, expect_text: str
) -> None:
    with httpx.Client(base_url=stack.base, timeout=10) as c:
        r = c.get("/ui/wall" + query, headers=headers)
        assert r.status_code == 200
        assert f'<html lang="{expect_lang}">' in r.text and expect_text in r.text
        # the choice sticks (a cookie) only when asked for a language the page has
        assert ("sc_lang=zh" in r.headers.get("set-cookie", "")) is (query == "?lang=zh")


def test_every_page_its_scripts_and_the_chart_library_are_served(stack: Stack) -> None:
    from cloud.web.pages import VIEWS

    with httpx.Client(base_url=stack.base, timeout=10) as c:
        r = c.get("/", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (307, "/ui/wall")
        for view in (*VIEWS, "login"):
            r = c.get(f"/ui/{view}")
            assert r.status_code == 200, view
            for src in __import__("re").findall(r'<script src="([^"?]+)', r.text):
                s = c.get(src)
                assert s.status_code == 200 and len(s.content) > 500, src
        r = c.get("/ui/nope")
        assert r.status_code == 404 and "no page 'nope'" in r.json()["detail"]
        r = c.get("/ui/static/vendor/chart-4.6.1.umd.min.js")
        assert r.status_code == 200 and b"Chart.js v4.6.1" in r.content[:200]


def test_the_cloud_refuses_to_start_when_its_api_port_is_taken(site: Site, db: Engine, tmp_path: Path) -> None:
    import socket

    from cloud.app import CloudStartupError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = api_settings(db, tmp_path, api_port=port)
        app = CloudApp(site.loaded, settings)
        with pytest.raises(CloudStartupError) as err:
            app.start()
        app.stop()
    assert str(err.value) == f"the API did not start on 127.0.0.1:{port}: the port is taken or cannot be bound"
