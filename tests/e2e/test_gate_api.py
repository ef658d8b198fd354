"""Gates through the real cloud (API, ingester, gate link) on PostgreSQL and a private Mosquitto.

The gateway gw-b is played by :class:`FakeGate`: a paho client with gw-b's own
broker account that answers commands the way the gate does, by running the
gate's own command handlers (:class:`edge.gate.service.GateService`, whose
gallery is the SQLite :class:`edge.gate.gallery.Gallery` the vision loop
searches), so the tests see the embedding actually arrive and can make the
gate drop or refuse a command.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.db.models import DeadLetter, Entry, EventRow, Resident, ResidentEmbedding, WorkOrder
from cloud.workorders.states import Role
from edge.gate.gallery import GalleryError
from edge.gate.service import GateService
from firmware_sim.faces import identities
from harness import API_PASSWORD, Site, add_api_users, api_settings, api_tokens, wait_until
from sc.contracts.commands import (
    Command,
    CommandAck,
    CommandName,
    DoorOpenArgs,
    GalleryDeleteArgs,
    GalleryPutArgs,
    PassRevokeArgs,
    PassRevokeResult,
)
from sc.contracts.messages import (
    DEFAULT_SEVERITY,
    EntryMethod,
    Event,
    EventKind,
    EventState,
    GatePayload,
    Status,
    StatusState,
    encode,
)
from sc.contracts.topics import Kind, Topic, topic_filter
from sc.signing import load_verifier
from vision.faces import FaceEngine, load_rgb

PASSWORD = API_PASSWORD
USERS = {
    "op-1": (Role.OPERATOR, None),
    "prop-1": (Role.DEPARTMENT, "property"),  # the property company's office
    "w-prop": (Role.GRID_WORKER, "property"),  # its engineer: gets the gate alarms
    "fire-1": (Role.DEPARTMENT, "fire"),
    "r-1": (Role.RESIDENT, None),
    "prop-2": (Role.DEPARTMENT, "property-2"),  # community 2's property company: nothing of c1's gates
    "admin-1": (Role.ADMIN, None),  # reads the audit log
}
CONSENT = "face-entry-1"  # the test site's consent text (the default): enrolment names it


class FakeGate:
    """Gateway gw-b with gates north and south, answering commands with the gate's own handlers.

    ``drop`` and ``refuse`` (command name -> gates) make a gate ignore, or answer
    ``ok: false`` to, the first such command it gets.
    """

    def __init__(self, site: Site, var_dir: Path) -> None:
        self.site = site
        self.gates = {
            g.id: GateService(gate=g, site="test", base_dir=site.root, var_dir=var_dir, emit=lambda *a: None)
            for g in site.loaded.site.gates_of("gw-b")
        }
        self.received: list[tuple[str, Command]] = []
        # it checks the cloud's signature as a real gateway does (sc/signing.py)
        self.verifier = load_verifier(site.command_key.with_suffix(".pub.pem"), site="test", gateway="gw-b")
        self.drop: dict[CommandName, set[str]] = {}
        self.refuse: dict[CommandName, set[str]] = {}
        self.answer_door = True
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self.status_topic = str(Topic("test", "gw-b", Kind.STATUS, "gw-b"))
        self.client: paho.Client | None = None

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(topic_filter(site="test", gateway="gw-b", kind=Kind.CMD), qos=1)
        birth = Status(state=StatusState.ONLINE, ts=datetime.now(UTC))
        client.publish(self.status_topic, encode(birth), qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        gate = Topic.parse(msg.topic).device
        cmd = self.verifier.verify(gate, bytes(msg.payload))
        with self._lock:
            self.received.append((gate, cmd))
            if gate in self.drop.get(cmd.name, set()):
                self.drop[cmd.name].discard(gate)
                return
            refuse = gate in self.refuse.get(cmd.name, set())
            self.refuse.get(cmd.name, set()).discard(gate)
        if cmd.name is CommandName.DOOR_OPEN and not self.answer_door:
            return
        service = self.gates[gate]
        try:
            if refuse:
                raise GalleryError("gallery database is locked")
            a = cmd.args
            if isinstance(a, GalleryPutArgs):
                ack = CommandAck(id=cmd.id, ok=True, result=service.gallery_put(a).model_dump())
            elif isinstance(a, GalleryDeleteArgs):
                ack = CommandAck(id=cmd.id, ok=True, result=service.gallery_delete(a).model_dump())
            elif isinstance(a, PassRevokeArgs):
                assert a.expires is not None  # the cloud always says until when
                service.revoke_pass(a.pass_id, a.expires)
                ack = CommandAck(id=cmd.id, ok=True, result=PassRevokeResult(revoked=a.pass_id).model_dump())
            elif isinstance(a, DoorOpenArgs):
                ack = CommandAck(id=cmd.id, ok=True, result={"opened": True, "by": a.by})
            else:
                ack = CommandAck(id=cmd.id, ok=False, error=f"not played here: {cmd.name}")
        except GalleryError as exc:
            ack = CommandAck(id=cmd.id, ok=False, error=str(exc))
        client.publish(str(Topic("test", "gw-b", Kind.CMD_ACK, gate)), encode(ack), qos=1)

    def commands(self, name: CommandName, gate: str | None = None) -> list[Command]:
        with self._lock:
            return [c for g, c in self.received if c.name is name and gate in (None, g)]

    def start(self) -> FakeGate:
        """Connect (a new client each time, as a restarted gateway) and announce itself online."""
        self.connected.clear()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="gw-b")
        c.username_pw_set("gw-b", self.site.password("gw-b"))
        c.will_set(self.status_topic, encode(Status(state=StatusState.OFFLINE, reason="connection lost")), 1, True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect("127.0.0.1", self.site.port, keepalive=5)
        c.loop_start()
        self.client = c
        assert self.connected.wait(10)
        return self

    def stop(self) -> None:
        """A clean stop, as the edge does it: a retained offline status, then disconnect."""
        c = self.client
        assert c is not None
        bye = Status(state=StatusState.OFFLINE, ts=datetime.now(UTC), reason="gateway stopped")
        c.publish(self.status_topic, encode(bye), qos=1, retain=True).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()
        self.client = None

    def close(self) -> None:
        for g in self.gates.values():
            g.close()


@dataclass
class Stack:
    site: Site
    app: CloudApp
    db: Engine
    base: str
    tokens: dict[str, str]
    media: Path
    gate: FakeGate

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def sync(self, resident: str) -> dict[str, tuple[str, str, int]]:
        with self.client("op-1") as c:
            r = c.get(f"/api/v1/residents/{resident}/sync")
            assert r.status_code == 200, r.text
            return {d["gate"]: (d["op"], d["state"], d["attempts"]) for d in r.json()}


@pytest.fixture
def stack(site: Site, db: Engine, tmp_path: Path) -> Iterator[Stack]:
    add_api_users(db, {uid: (role, dept, None) for uid, (role, dept) in USERS.items()})
    settings = api_settings(
        db, tmp_path, device_flush_s=0.2, gate_sync_interval_s=0.2, gate_ack_timeout_s=1.0, gate_retry_max_s=2.0,
        door_open_timeout_s=1.5,
    )  # fmt: skip
    app = CloudApp(site.loaded, settings)
    app.start()
    base = f"http://127.0.0.1:{app.api_port}"
    tokens = api_tokens(base, USERS)
    gate = FakeGate(site, tmp_path / "gate-var")
    try:
        yield Stack(site, app, db, base, tokens, tmp_path / "media", gate)
    finally:
        app.stop()
        gate.close()


def photo(name: str, index: int = 0) -> tuple[str, bytes, str]:
    path = identities()[name][index].path
    return (path.name, path.read_bytes(), "image/png" if path.suffix == ".png" else "image/jpeg")


def enrol(
    st: Stack, rid: str, name: str, photos: list[tuple[str, bytes, str]], user: str = "op-1", **form: str
) -> httpx.Response:
    with st.client(user) as c:
        return c.post(
            "/api/v1/residents",
            data={"id": rid, "name": name, "consent": CONSENT, **form},
            files=[("photos", p) for p in photos],
        )


def files_under(path: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(path)) for d, _, fs in os.walk(path) for f in fs) if path.exists() else []


def wait_online(st: Stack, online: bool) -> None:
    assert st.app.gate_link is not None
    link = st.app.gate_link
    assert wait_until(lambda: link.online.get("gw-b") is online, 10), link.online


# --------------------------------------------------------------------------- enrolment and gallery sync


def test_an_enrolled_face_reaches_every_gate_and_its_removal_deletes_it_there(stack: Stack) -> None:
    stack.gate.start()
    wait_online(stack, True)
    r = enrol(stack, "r-obama", "Barack", [photo("obama", 0), photo("obama", 1)], unit="3-201", location="b1-u1")
    assert r.status_code == 201, r.text
    body = r.json()
    version = body["version"]
    assert {k: body[k] for k in ("id", "name", "unit", "location", "photos", "created_by", "deleted_at")} == {
        "id": "r-obama", "name": "Barack", "unit": "3-201", "location": "b1-u1", "photos": 2, "created_by": "op-1",
        "deleted_at": None,
    }  # fmt: skip
    assert "embedding" not in body
    assert wait_until(lambda: stack.sync("r-obama") == {"north": ("put", "acked", 1), "south": ("put", "acked", 1)}, 10)
    # what reached each gate is the embedding the cloud computed, and it recognises another photo of him
    with Session(stack.db) as s:
        row = s.get(ResidentEmbedding, ("r-obama", "dlib-resnet-v1"))
        assert row is not None and len(row.embedding) == 512  # 128 float32: the test site's gates are dlib's
        stored = np.frombuffer(row.embedding, dtype="<f4")
    [put] = stack.gate.commands(CommandName.GALLERY_PUT, "north")
    assert isinstance(put.args, GalleryPutArgs)
    assert (put.args.resident, put.args.name, put.args.version) == ("r-obama", "Barack", version)
    engine = FaceEngine()
    third, _ = engine.enrolment_embedding(load_rgb(str(identities()["obama"][2].path)))
    biden, _ = engine.enrolment_embedding(load_rgb(str(identities()["biden"][0].path)))
    for gate in ("north", "south"):
        gallery = stack.gate.gates[gate].gallery
        assert gallery.digest() == {"r-obama": version}
        index = gallery.index()
        assert np.allclose(index.matrix[0], stored, atol=1e-6)
        match = index.search(third)
        assert match is not None and match.resident == "r-obama" and match.distance < 0.35, match
        other = index.search(biden)
        assert other is not None and other.distance > 0.55  # not him: above any threshold a gate would use
    # nothing of the photos was kept: no file, no image bytes in the database
    assert files_under(stack.media) == []
    with Session(stack.db) as s:
        assert s.execute(select(func.count()).select_from(DeadLetter)).scalar_one() == 0
    with stack.client("prop-1") as c:  # the property company's office manages residents too
        listed = c.get("/api/v1/residents").json()
        assert [(x["id"], x["version"]) for x in listed] == [("r-obama", version)]
        removed = c.delete("/api/v1/residents/r-obama")
        assert removed.status_code == 200 and removed.json()["deleted_at"] is not None
        assert removed.json()["version"] > version
        assert c.delete("/api/v1/residents/r-obama").status_code == 404
    assert wait_until(
        lambda: stack.sync("r-obama") == {"north": ("delete", "acked", 1), "south": ("delete", "acked", 1)}, 10
    )
    for gate in ("north", "south"):
        assert stack.gate.gates[gate].gallery.digest() == {}
        assert stack.gate.gates[gate].gallery.index().search(third) is None
    with Session(stack.db) as s:
        tomb = s.get(Resident, "r-obama")
        assert tomb is not None and tomb.deleted_at is not None
        assert s.execute(select(ResidentEmbedding)).first() is None
    with stack.client("op-1") as c:
        assert c.get("/api/v1/residents").json() == []
        [gone] = c.get("/api/v1/residents", params={"include_deleted": True}).json()
        assert gone["id"] == "r-obama" and gone["deleted_at"] is not None
    stack.gate.stop()


def test_a_gate_that_is_offline_gets_the_enrolment_when_it_is_back(stack: Stack) -> None:
    stack.gate.start()
    wait_online(stack, True)
    stack.gate.stop()
    wait_online(stack, False)
    r = enrol(stack, "r-hopper", "Grace", [photo("hopper")])
    assert r.status_code == 201, r.text
    with stack.client("op-1") as c:
        [north, _] = c.get("/api/v1/residents/r-hopper/sync").json()
    assert (north["gate"], north["state"], north["attempts"], north["gateway_online"]) == ("north", "pending", 0, False)
    threading.Event().wait(2.5)  # well past the ack timeout: still nothing sent to a gateway that is offline
    assert stack.sync("r-hopper") == {"north": ("put", "pending", 0), "south": ("put", "pending", 0)}
    assert stack.gate.received == []
    stack.gate.start()
    assert wait_until(
        lambda: stack.sync("r-hopper") == {"north": ("put", "acked", 1), "south": ("put", "acked", 1)}, 10
    )
    assert {g: stack.gate.gates[g].gallery.digest() for g in ("north", "south")} == {
        "north": {"r-hopper": r.json()["version"]}, "south": {"r-hopper": r.json()["version"]}
    }  # fmt: skip
    stack.gate.stop()


def test_a_command_the_gate_misses_or_refuses_is_sent_again_until_it_is_applied(stack: Stack) -> None:
    stack.gate.drop = {CommandName.GALLERY_PUT: {"north"}}  # lost on the way: no answer at all
    stack.gate.refuse = {CommandName.GALLERY_PUT: {"south"}}  # answered ok=false
    stack.gate.start()
    wait_online(stack, True)
    r = enrol(stack, "r-biden", "Joe", [photo("biden")])
    assert r.status_code == 201, r.text
    assert wait_until(lambda: stack.sync("r-biden")["south"][1] == "error", 10)
    with stack.client("op-1") as c:
        south = next(d for d in c.get("/api/v1/residents/r-biden/sync").json() if d["gate"] == "south")
    assert (south["error"], south["acked_at"]) == ("gallery database is locked", None)
    assert wait_until(lambda: stack.sync("r-biden") == {"north": ("put", "acked", 2), "south": ("put", "acked", 2)}, 10)
    north = stack.gate.commands(CommandName.GALLERY_PUT, "north")
    assert len(north) == 2 and north[0].id == north[1].id  # missed: one command sent twice (signed anew)
    assert north[0].sig != north[1].sig and north[1].ts > north[0].ts
    south = stack.gate.commands(CommandName.GALLERY_PUT, "south")
    assert len(south) == 2 and south[0].id != south[1].id  # refused: the retry is a new command
    for gate in ("north", "south"):
        assert stack.gate.gates[gate].gallery.digest() == {"r-biden": r.json()["version"]}
    assert stack.app.gate_link is not None
    counters = stack.app.gate_link.counters
    assert (counters.sent, counters.resent, counters.acked, counters.refused) == (4, 2, 2, 1)
    stack.gate.stop()


def test_a_resident_with_no_embedding_of_a_gates_model_is_an_error_there_not_a_wrong_face(stack: Stack) -> None:
    """Enrolled (here directly in the database) with the ONNX model only, while the test site's gates are dlib's:
    nothing is sent, each gate's delivery says why."""
    from cloud.db.engine import make_sessions
    from cloud.gates.store import enrol_resident
    from sc.contracts.commands import EmbeddingModel

    stack.gate.start()
    wait_online(stack, True)
    onnx = np.ones(512, dtype="<f4") / np.sqrt(512)
    with make_sessions(stack.db).begin() as s:
        enrol_resident(
            s, resident_id="r-onnx", name="O", embeddings={EmbeddingModel.FACEPLUGIN_FR_FEATURE: onnx.tobytes()},
            photos=1, by="op-1", now=datetime.now(UTC), gates=stack.site.loaded.site.gates,
        )  # fmt: skip
    assert stack.app.gate_link is not None
    stack.app.gate_link.kick()
    assert wait_until(
        lambda: {g: st for g, (_, st, _) in stack.sync("r-onnx").items()} == {"north": "error", "south": "error"}, 10
    )
    with stack.client("op-1") as c:
        errors = {d["gate"]: d["error"] for d in c.get("/api/v1/residents/r-onnx/sync").json()}
    assert errors == {g: "no dlib-resnet-v1 embedding: enrol the resident again" for g in ("north", "south")}
    assert stack.gate.commands(CommandName.GALLERY_PUT) == []
    stack.gate.stop()


def test_enrolment_refuses_bad_photos_and_wrong_roles_and_keeps_nothing(stack: Stack) -> None:
    blank = cv2.imencode(".jpg", np.full((400, 300, 3), 200, np.uint8))[1].tobytes()
    sof = blank.index(b"\xff\xc0")  # a small file whose header declares 30,000 x 30,000 pixels (3 GB decoded)
    bomb = blank[: sof + 5] + (30_000).to_bytes(2, "big") * 2 + blank[sof + 9 :]
    cases = [
        (
            [("bomb.jpg", bomb, "image/jpeg")],
            "photo 1 (bomb.jpg) has 30000 x 30000 pixels, more than 50 million: send a smaller photo",
        ),
        ([("wall.jpg", blank, "image/jpeg")], "photo 1 (wall.jpg): no face found in the photo"),
        ([photo("obama"), photo("t1-0")], "photo 2 (t1.jpg): 6 faces in the photo: use a photo of the resident alone"),
        ([("notes.txt", b"hello", "text/plain")], "photo 1 (notes.txt) is not an image (send a JPEG or PNG photo)"),
        ([photo("hopper")] * 6, "send 1 to 5 photos of the resident (got 6)"),
    ]
    for photos, detail in cases:
        r = enrol(stack, "r-x", "X", photos)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(detail), r.json()
    r = enrol(stack, "r-x", "X", [photo("hopper")], location="nowhere")
    assert (r.status_code, r.json()["detail"]) == (422, "location 'nowhere' is not in the grid tree")
    r = enrol(stack, "bad id!", "X", [photo("hopper")])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "id"]
    for user in ("w-prop", "fire-1", "r-1"):
        r = enrol(stack, "r-x", "X", [photo("hopper")], user=user)
        assert r.status_code == 403, (user, r.text)
        with stack.client(user) as c:
            assert c.get("/api/v1/residents").status_code == 403
    with stack.client(None) as c:
        assert c.get("/api/v1/residents").status_code == 401
    assert enrol(stack, "r-x", "X", [photo("hopper")]).status_code == 201
    r = enrol(stack, "r-x", "X", [photo("hopper")])
    assert (r.status_code, r.json()["detail"]) == (
        409, "resident 'r-x' is already enrolled: remove them first to enrol again"
    )  # fmt: skip
    with stack.client("op-1") as c:
        assert c.get("/api/v1/residents/nobody/sync").status_code == 404
        assert c.delete("/api/v1/residents/nobody").status_code == 404
    assert files_under(stack.media) == []
    with Session(stack.db) as s:
        rows = s.execute(select(ResidentEmbedding)).scalars()
        assert [(x.resident, x.model, len(x.embedding)) for x in rows] == [("r-x", "dlib-resnet-v1", 512)]


# --------------------------------------------------------------------------- remote open


def test_the_control_room_opens_a_gate_and_waits_for_its_answer(stack: Stack) -> None:
    with stack.client("op-1") as c:
        r = c.post("/api/v1/gates/north/open")  # gw-b never seen: refused at once, nothing queued
        assert (r.status_code, r.json()["detail"]) == (
            504, "gate north cannot be reached: gateway gw-b of gate north is not heard from yet"
        )  # fmt: skip
        stack.gate.start()
        wait_online(stack, True)
        r = c.post("/api/v1/gates/north/open")
        assert r.status_code == 200, r.text
        assert r.json()["result"] == {"opened": True, "by": "op-1"}
        [cmd] = stack.gate.commands(CommandName.DOOR_OPEN)
        assert (cmd.id, cmd.args) == (r.json()["command_id"], DoorOpenArgs(by="op-1"))
        assert cmd.lifetime_s() == 1.5  # it expires when the API stops waiting: never opens after a 504
        stack.gate.answer_door = False
        r = c.post("/api/v1/gates/south/open")
        assert (r.status_code, r.json()["detail"]) == (504, "gate south did not answer within 1.5 s")
        assert c.post("/api/v1/gates/west/open").status_code == 404
        stack.gate.stop()
        wait_online(stack, False)
        r = c.post("/api/v1/gates/north/open")
        assert (r.status_code, r.json()["detail"]) == (
            504, "gate north cannot be reached: gateway gw-b of gate north is offline"
        )  # fmt: skip
    for user in ("prop-1", "w-prop", "r-1"):
        with stack.client(user) as c:
            assert c.post("/api/v1/gates/north/open").status_code == 403
    assert len(stack.gate.commands(CommandName.DOOR_OPEN)) == 2
    # every attempt is in the audit log with what came of it (not the refused roles': nothing was asked of a gate)
    with stack.client("admin-1") as c:
        log = c.get("/api/v1/audit", params={"action": "door_opened"}).json()
    assert [(a["actor"], a["target"], a["outcome"]) for a in reversed(log)] == [
        ("op-1", "north", "unreachable: gateway gw-b of gate north is not heard from yet"),
        ("op-1", "north", f"opened (command {cmd.id})"),
        ("op-1", "south", "no answer within 1.5 s"),
        ("op-1", "north", "unreachable: gateway gw-b of gate north is offline"),
    ]


# --------------------------------------------------------------------------- gate events: entries, alarms, snapshots


def jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return bytes(cv2.imencode(".jpg", img)[1].tobytes())


def gate_event(kind: EventKind, seq: int, gate: str = "north", **payload: Any) -> Event:
    return Event(
        site="test", gateway="gw-b", device=gate, ts=datetime.now(UTC) + timedelta(seconds=seq), seq=seq, kind=kind,
        state=EventState.RAISED, severity=DEFAULT_SEVERITY[kind], payload=GatePayload(gate=gate, **payload),
    )  # fmt: skip


def publish(st: Stack, events: list[Event]) -> None:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="gw-b-events")
    c.username_pw_set("gw-b", st.site.password("gw-b"))
    c.connect("127.0.0.1", st.site.port)
    c.loop_start()
    for ev in events:
        c.publish(str(Topic("test", "gw-b", Kind.EVENT, ev.device)), encode(ev), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def count(db: Engine, model: type[Any]) -> int:
    with Session(db) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_gate_events_become_entries_and_routed_security_orders_with_their_snapshots(stack: Stack) -> None:
    face_jpeg, tail_jpeg = jpeg(1), jpeg(2)
    b64: Callable[[bytes], str] = lambda b: base64.b64encode(b).decode()  # noqa: E731
    entry = gate_event(
        EventKind.ENTRY, 1, method=EntryMethod.FACE, person="r-101", distance=0.28, snapshot_jpeg=b64(face_jpeg)
    )
    refused = gate_event(EventKind.ENTRY_REFUSED, 2, "south", method=EntryMethod.PASS, reason="pass used up")
    tail = gate_event(EventKind.TAILGATING, 3, grants=1, crossings=2, snapshot_jpeg=b64(tail_jpeg))
    bad = gate_event(EventKind.DOOR_FORCED, 4, "south", reason="opened without a grant", snapshot_jpeg="@@not base64@@")
    png = gate_event(EventKind.STRANGER_AT_GATE, 5, seconds=12.0, snapshot_jpeg=b64(b"\x89PNG\r\n\x1a\n" + bytes(40)))
    publish(stack, [entry, refused, entry, tail, bad, png, tail])  # two of them delivered twice
    assert wait_until(lambda: count(stack.db, EventRow) == 5 and stack.app.worker.counters.messages >= 7, 10)
    assert (count(stack.db, Entry), count(stack.db, WorkOrder)) == (2, 3)
    counters = stack.app.worker.counters
    assert (counters.entries, counters.snapshots_bad, counters.events_duplicate) == (2, 2, 2)
    assert files_under(stack.media) == sorted([f"snapshots/{entry.id}.jpg", f"snapshots/{tail.id}.jpg"])
    with stack.client("prop-1") as c:
        got = c.get("/api/v1/entries").json()
        assert [(e["event_id"], e["kind"], e["granted"], e["method"], e["person"]) for e in got] == [
            (refused.id, "entry_refused", False, "pass", None),
            (entry.id, "entry", True, "face", "r-101"),
        ]
        assert got[1]["snapshot_url"] == f"/api/v1/snapshots/{entry.id}.jpg" and got[0]["snapshot_url"] is None
        assert [e["event_id"] for e in c.get("/api/v1/entries", params={"gate": "north"}).json()] == [entry.id]
        assert [e["event_id"] for e in c.get("/api/v1/entries", params={"limit": 1}).json()] == [refused.id]
        since = refused.ts.isoformat()
        assert [e["event_id"] for e in c.get("/api/v1/entries", params={"since": since}).json()] == [refused.id]
        shot = c.get(got[1]["snapshot_url"])
        assert (shot.status_code, shot.headers["content-type"], shot.content) == (200, "image/jpeg", face_jpeg)
    with stack.client("op-1") as c:
        orders = {o["kind"]: o for o in c.get("/api/v1/work-orders").json()}
    assert set(orders) == {"tailgating", "door_forced", "stranger_at_gate"}
    t = orders["tailgating"]
    assert (t["category"], t["subcategory"], t["department"], t["assignee"], t["status"], t["device"]) == (
        "security", "tailgating", "property", "w-prop", "dispatched", "north"
    )  # fmt: skip
    assert t["snapshot_url"] == f"/api/v1/snapshots/{tail.id}.jpg"
    assert orders["door_forced"]["snapshot_url"] is None and orders["stranger_at_gate"]["snapshot_url"] is None
    with Session(stack.db) as s:
        kept = s.get(EventRow, bad.id)
        assert kept is not None and kept.snapshot is None and "snapshot_jpeg" not in kept.payload
    # the engineer the order went to sees its snapshot; others see nothing, not even that it exists
    with stack.client("w-prop") as c:
        detail = c.get(f"/api/v1/work-orders/{t['id']}").json()
        assert detail["snapshot_url"] == t["snapshot_url"]
        shot = c.get(t["snapshot_url"])
        assert (shot.status_code, shot.content) == (200, tail_jpeg)
        assert c.get(f"/api/v1/snapshots/{entry.id}.jpg").status_code == 404  # an entry is no order of theirs
        assert c.get("/api/v1/entries").status_code == 403
    for user in ("fire-1", "r-1"):
        with stack.client(user) as c:
            assert c.get(t["snapshot_url"]).status_code == 404
            assert c.get("/api/v1/entries").status_code == 403
    # another community's property company: gate staff, but none of these gates are theirs
    with stack.client("prop-2") as c:
        assert c.get("/api/v1/entries").json() == []
        assert c.get(f"/api/v1/snapshots/{entry.id}.jpg").status_code == 404
    with stack.client("op-1") as c:
        assert c.get(f"/api/v1/snapshots/{bad.id}.jpg").status_code == 404  # kept without its bad snapshot
        assert c.get("/api/v1/snapshots/nothing-like-this.jpg").status_code == 404
        assert c.get("/api/v1/entries", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    with stack.client(None) as c:
        assert c.get(t["snapshot_url"]).status_code == 401
    # who looked at which face and frame is in the audit log; the refused attempts showed nothing
    with stack.client("admin-1") as c:
        views = c.get("/api/v1/audit", params={"action": "snapshot_viewed"}).json()
        lists = c.get("/api/v1/audit", params={"action": "entries_viewed", "actor": "prop-2"}).json()
    assert [(a["actor"], a["role"], a["target"], a["outcome"]) for a in views] == [
        ("w-prop", "grid_worker", tail.id, f"tailgating at north, work order {t['id']}"),
        ("prop-1", "department", entry.id, "entry at north"),
    ]
    assert [(a["target"], a["outcome"]) for a in lists] == [("(all gates)", "0 entries")]
    with stack.client("op-1") as c:
        r = c.get("/api/v1/audit")
        assert (r.status_code, r.json()["detail"]) == (403, "a operator may not do this (allowed: admin)")


def test_enrolment_records_consent_and_a_removal_forgets_the_residents_face_crops(stack: Stack) -> None:
    import hashlib

    stack.gate.start()
    wait_online(stack, True)
    with stack.client("prop-1") as c:
        text = c.get("/api/v1/privacy/consent").json()
    assert text["version"] == CONSENT and text["text_sha256"] == hashlib.sha256(text["text"].encode()).hexdigest()
    with stack.client("op-1") as c:  # no consent, or another text than the one in use: nothing enrolled
        r = c.post("/api/v1/residents", data={"id": "r-x", "name": "X"}, files=[("photos", photo("obama"))])
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "consent"]
    r = enrol(stack, "r-x", "X", [photo("obama")], consent="face-entry-0")
    assert (r.status_code, r.json()["detail"]) == (
        422,
        "consent 'face-entry-0' is not the text in use: show the resident consent 'face-entry-1' "
        "(GET /api/v1/privacy/consent) and send its version once they agree",
    )
    r = enrol(stack, "r-zw", "Zhang Wei", [photo("obama")], unit="3-201", location="b1-u1", consent_by="guardian Li Na")
    assert r.status_code == 201, r.text
    with stack.client("prop-1") as c:
        [consent] = c.get("/api/v1/residents/r-zw/consent").json()
    assert {k: consent[k] for k in ("version", "text_sha256", "given_by", "recorded_by", "withdrawn_at")} == {
        "version": CONSENT, "text_sha256": text["text_sha256"], "given_by": "guardian Li Na", "recorded_by": "op-1",
        "withdrawn_at": None,
    }  # fmt: skip
    # the gate let them in and sent its face crop; removing them removes it, here and in what the API serves
    entry = gate_event(EventKind.ENTRY, 1, method=EntryMethod.FACE, person="r-zw", distance=0.3,
                       snapshot_jpeg=base64.b64encode(jpeg(3)).decode())  # fmt: skip
    other = gate_event(EventKind.ENTRY, 2, method=EntryMethod.FACE, person="r-101",
                       snapshot_jpeg=base64.b64encode(jpeg(4)).decode())  # fmt: skip
    publish(stack, [entry, other])
    assert wait_until(lambda: count(stack.db, Entry) == 2, 10)
    assert files_under(stack.media) == sorted([f"snapshots/{entry.id}.jpg", f"snapshots/{other.id}.jpg"])
    with stack.client("prop-1") as c:
        assert c.delete("/api/v1/residents/r-zw").status_code == 200
        assert c.get(f"/api/v1/snapshots/{entry.id}.jpg").status_code == 404
        assert c.get(f"/api/v1/snapshots/{other.id}.jpg").status_code == 200
        [gone] = c.get("/api/v1/residents", params={"include_deleted": True}).json()
        [consent] = c.get("/api/v1/residents/r-zw/consent").json()
        [mine] = [e for e in c.get("/api/v1/entries").json() if e["event_id"] == entry.id]
    assert files_under(stack.media) == [f"snapshots/{other.id}.jpg"]
    assert (gone["id"], gone["name"], gone["unit"], gone["deleted_at"] is not None) == ("r-zw", "", None, True)
    assert consent["withdrawn_at"] is not None
    assert (mine["person"], mine["snapshot_url"]) == ("r-zw", None)  # the entry stays its retention period
    assert wait_until(
        lambda: stack.sync("r-zw") == {"north": ("delete", "acked", 1), "south": ("delete", "acked", 1)}, 10
    )
    with stack.client("admin-1") as c:
        log = c.get("/api/v1/audit", params={"target": "r-zw"}).json()
    assert [(a["action"], a["actor"], a["outcome"]) for a in log] == [
        ("resident_removed", "prop-1", "embedding deleted, 1 snapshots removed"),
        ("resident_enrolled", "op-1", "consent face-entry-1 given by guardian Li Na"),
    ]
    stack.gate.stop()


def test_a_property_company_enrols_lists_and_removes_only_its_communitys_residents(stack: Stack) -> None:
    stack.gate.start()
    wait_online(stack, True)
    r = enrol(stack, "r-c1", "Barack", [photo("obama")], location="b1-u1")  # the control room, in c1
    assert r.status_code == 201, r.text
    with stack.client("prop-2") as c:  # community 2's property company
        assert c.get("/api/v1/residents").json() == []
        assert c.get("/api/v1/residents/r-c1").status_code == 404
        assert c.get("/api/v1/residents/r-c1/sync").status_code == 404
        gone = c.delete("/api/v1/residents/r-c1")
        assert (gone.status_code, gone.json()["detail"]) == (404, "no resident 'r-c1' in your communities")
    for form in ({"location": "b1-u1"}, {}):  # another community's building, or none at all
        r = enrol(stack, "r-x", "X", [photo("biden")], user="prop-2", **form)
        assert (r.status_code, r.json()["detail"]) == (
            403, "prop-2 enrols residents of c2 only: give the building or stairwell (location) they live in there"
        )  # fmt: skip
    r = enrol(stack, "r-c2", "Joe", [photo("biden")], user="prop-2", location="b9-u1")
    assert r.status_code == 201, r.text
    # a face goes to its own community's gates only: north and south are c1's, so Joe's goes nowhere
    assert wait_until(lambda: stack.sync("r-c1") == {"north": ("put", "acked", 1), "south": ("put", "acked", 1)}, 20)
    assert stack.sync("r-c2") == {}
    puts = stack.gate.commands(CommandName.GALLERY_PUT)
    assert sorted(c.args.resident for c in puts if isinstance(c.args, GalleryPutArgs)) == ["r-c1", "r-c1"]
    with stack.client("prop-2") as c:
        assert [x["id"] for x in c.get("/api/v1/residents").json()] == ["r-c2"]
    with stack.client("prop-1") as c:  # a property company with no communities listed: the whole site
        assert [x["id"] for x in c.get("/api/v1/residents").json()] == ["r-c1", "r-c2"]
    with stack.client("op-1") as c:
        assert c.get("/api/v1/residents/r-c1").status_code == 200
    stack.gate.stop()


# --------------------------------------------------------------------------- visitor passes


def test_a_revoked_pass_is_refused_at_every_gate_it_was_valid_at_one_offline_or_refusing_included(
    stack: Stack,
) -> None:
    from edge.gate.passcheck import PassChecker
    from sc.passes import Refusal, load_public_key

    add_api_users(stack.db, {"r-home": (Role.RESIDENT, None, "b1-u1")})
    stack.tokens.update(api_tokens(stack.base, ["r-home"]))
    stack.gate.start()
    wait_online(stack, True)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    with stack.client("r-home") as c:
        r = c.post(
            "/api/v1/visitor-passes", json={"visitor_name": "Han Meimei", "valid_until": until.isoformat(), "uses": 3}
        )
        assert r.status_code == 201, r.text
        p = r.json()
    assert p["gates"] == ["north", "south"]  # by default every gate of the resident's community
    public = load_public_key(stack.media.parent / "keys" / "pass.pub.pem")  # api_settings: keys beside media
    checkers = {
        g: PassChecker(public_key=public, site="test", gate=g, ledger=stack.gate.gates[g].ledger)
        for g in ("north", "south")
    }
    assert checkers["north"].check(p["token"], datetime.now(UTC)).granted
    stack.gate.stop()  # the gateway is offline when the resident revokes
    wait_online(stack, False)
    stack.gate.refuse = {CommandName.PASS_REVOKE: {"south"}}  # and south cannot apply it the first time

    def states() -> dict[str, str]:
        with stack.client("r-home") as c:
            got = c.get(f"/api/v1/visitor-passes/{p['pass_id']}")
            assert got.status_code == 200, got.text
            return {g["gate"]: g["revocation"] for g in got.json()["gates"]}

    with stack.client("r-home") as c:
        r = c.post(f"/api/v1/visitor-passes/{p['pass_id']}/revoke")
        assert r.status_code == 200, r.text
        revoked = r.json()
    assert (revoked["revoked_by"], [g["revocation"] for g in revoked["gates"]]) == ("r-home", ["pending", "pending"])
    assert "token" not in revoked
    threading.Event().wait(1.5)  # past the ack timeout: nothing is sent to a gateway that is offline
    assert stack.gate.commands(CommandName.PASS_REVOKE) == [] and states() == {"north": "pending", "south": "pending"}
    stack.gate.start()
    assert wait_until(lambda: states() == {"north": "acked", "south": "acked"}, 15), states()
    south = stack.gate.commands(CommandName.PASS_REVOKE, "south")
    assert len(south) == 2 and south[0].id != south[1].id  # refused once: the retry is a new command
    [north] = stack.gate.commands(CommandName.PASS_REVOKE, "north")
    assert isinstance(north.args, PassRevokeArgs)
    assert (north.args.pass_id, north.args.expires) == (p["pass_id"], int(until.timestamp()) + 120)
    for g, checker in checkers.items():
        refused = checker.check(p["token"], datetime.now(UTC))
        assert (g, refused.granted, refused.reason) == (g, False, Refusal.REVOKED)
    # revoking again changes nothing and sends nothing
    with stack.client("op-1") as c:
        again = c.post(f"/api/v1/visitor-passes/{p['pass_id']}/revoke").json()
    assert (again["revoked_by"], again["revoked_at"]) == ("r-home", revoked["revoked_at"])
    threading.Event().wait(0.5)
    assert len(stack.gate.commands(CommandName.PASS_REVOKE)) == 3
    stack.gate.stop()
