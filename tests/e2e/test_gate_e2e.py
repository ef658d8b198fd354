"""The gate end to end: synthetic camera scene -> vision process -> door relay on a pty -> events over MQTT.

The real :class:`EdgeApp` runs gateway gw-b with gate ``north``: its camera is a
firmware-sim scene (played at twice real time), its door controller a Modbus
RTU simulator on a pseudo-terminal, its events go through the outbox to a real
Mosquitto where a collector (the cloud's account) reads them.
"""

from __future__ import annotations

import base64
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.app import StartupError
from edge.gate.gallery import Gallery, encode_embedding
from edge.gate.tools import enrolment_embedding
from firmware_sim.door import DoorControllerSim
from firmware_sim.faces import FACES_DIR
from firmware_sim.gatescene import DOOR_INSIDE, DOOR_LINE
from harness import DATA, Collector, EdgeThread, Site, make_site, wait_until
from sc.contracts.commands import CommandAck, CommandName
from sc.contracts.messages import (
    EntryMethod,
    Event,
    EventKind,
    EventState,
    GatePayload,
)
from sc.contracts.topics import Kind
from sc.passes import PassClaims, generate_key, load_private_key, sign_pass
from vision.faces import FaceEngine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def obama_embedding() -> bytes:
    # enrolled from *other* photos than the one the scene renders (obama.jpg): a fair match
    vec, _ = enrolment_embedding(FaceEngine(), [FACES_DIR / "obama2.jpg", FACES_DIR / "obama3.jpg"])
    return vec.tobytes()


def gate_site(tmp: Path, camera: str, *, door_port: str | None, pass_key: bool = False) -> Site:
    cfg: dict[str, Any] = yaml.safe_load((DATA / "site.yaml").read_text(encoding="utf-8"))
    gw = next(g for g in cfg["gateways"] if g["id"] == "gw-b")
    gate = next(g for g in cfg["gates"] if g["id"] == "north")
    gate["camera"] = {"source": camera, "stale_after_s": 2.0, "reconnect_max_s": 1.0}
    gate["door_line"] = {"a": list(DOOR_LINE[0]), "b": list(DOOR_LINE[1]), "inside": DOOR_INSIDE}
    gate["stranger_after_s"] = 6.0
    if door_port is not None:
        gw["buses"] = [{"id": "door-bus", "port": door_port, "baudrate": 19200, "timeout_s": 0.2}]
        gate["door"] = {"bus": "door-bus", "unit": 9, "unlock_s": 1.0, "held_open_after_s": 30, "poll_interval_s": 0.1}
    if pass_key:
        gate["pass_public_key"] = "../keys/pass.pub"
    template = tmp / "template.yaml"
    template.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return make_site(tmp, template)


@pytest.fixture
def door() -> Iterator[DoorControllerSim]:
    sim = DoorControllerSim(unit=9, auto_close_s=1.0).start(baudrate=19200)
    try:
        yield sim
    finally:
        sim.stop()


def enrol(site: Site, embedding: bytes) -> Path:
    path = site.loaded.resolve(Path("var") / "gw-b" / "north" / "gallery.db")
    g = Gallery(path)
    import numpy as np

    g.put("r-obama", "Obama", np.frombuffer(embedding, dtype=np.float32))
    g.close()
    return path


def gate_events(col: Collector, kind: EventKind) -> list[Event]:
    return [e for e in col.events() if e.kind is kind and e.device == "north"]


def payload(ev: Event) -> GatePayload:
    assert isinstance(ev.payload, GatePayload)
    return ev.payload


@contextmanager
def run_edge(site: Site) -> Iterator[tuple[EdgeThread, Collector]]:
    site.broker.start()
    col = Collector(site).start()
    edge = EdgeThread(site.loaded, "gw-b").start()
    try:
        edge.wait_ready()
        yield edge, col
    finally:
        edge.stop()
        col.stop()
        site.broker.stop()


def test_resident_is_let_in_door_released_and_entry_recorded(
    tmp_path: Path, door: DoorControllerSim, obama_embedding: bytes
) -> None:
    site = gate_site(tmp_path, "synthetic:resident_approach?speed=2", door_port=door.client_port)
    enrol(site, obama_embedding)
    with run_edge(site) as (_, col):
        assert wait_until(lambda: bool(gate_events(col, EventKind.ENTRY)), 40), [e.kind for e in col.events()]
        entry = gate_events(col, EventKind.ENTRY)[0]
        p = payload(entry)
        assert (entry.state, p.method, p.person, p.gate) == (EventState.RAISED, EntryMethod.FACE, "r-obama", "north")
        assert p.distance is not None and p.distance < 0.40
        assert p.snapshot_jpeg is not None and base64.b64decode(p.snapshot_jpeg)[:3] == b"\xff\xd8\xff"
        # the relay was switched on for the grant and off again unlock_s later
        assert wait_until(lambda: any(off is not None for _, off in door.pulses()), 10), door.pulses()
        on, off = door.pulses()[0]
        assert off is not None and 0.9 <= off - on <= 1.6
        # one person, one grant: the crossing is no tailgating
        time.sleep(3.0)
        assert gate_events(col, EventKind.TAILGATING) == []
        assert gate_events(col, EventKind.ENTRY_REFUSED) == []


def test_tailgater_raises_an_alarm_with_count_and_snapshot(
    tmp_path: Path, door: DoorControllerSim, obama_embedding: bytes
) -> None:
    site = gate_site(
        tmp_path,
        "synthetic:tailgater?speed=2&seed=1",  # seed 0: a liveness false refusal (docs/benchmarks.md)
        door_port=door.client_port,
    )
    enrol(site, obama_embedding)
    with run_edge(site) as (_, col):
        assert wait_until(lambda: bool(gate_events(col, EventKind.TAILGATING)), 45), [e.kind for e in col.events()]
        alarm = gate_events(col, EventKind.TAILGATING)[0]
        p = payload(alarm)
        assert (p.grants, p.crossings) == (1, 2)
        assert p.snapshot_jpeg is not None and base64.b64decode(p.snapshot_jpeg)[:3] == b"\xff\xd8\xff"
        assert [payload(e).person for e in gate_events(col, EventKind.ENTRY)][:1] == ["r-obama"]


def test_visitor_pass_from_the_camera_is_checked_and_used_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key(keys / "pass.key", keys / "pass.pub")
    now = int(time.time())
    claims = PassClaims(
        pid=uuid.uuid4().hex[:16], site="test", res="r-101", vis="Li Na", gates=["north"],
        nbf=now - 60, exp=now + 3600, uses=1,
    )  # fmt: skip
    token = sign_pass(claims, load_private_key(keys / "pass.key"))
    (tmp_path / "configs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / "pass.txt").write_text(token)
    site = gate_site(tmp_path, "synthetic:visitor_qr?speed=2&token_file=pass.txt", door_port=None, pass_key=True)
    with run_edge(site) as (_, col):
        assert wait_until(lambda: bool(gate_events(col, EventKind.ENTRY)), 40), [e.kind for e in col.events()]
        p = payload(gate_events(col, EventKind.ENTRY)[0])
        assert (p.method, p.person) == (EntryMethod.PASS, "visitor:Li Na")
        # the scene loops: the same pass shown again is refused (one use), with the reason
        assert wait_until(lambda: bool(gate_events(col, EventKind.ENTRY_REFUSED)), 40)
        refused = payload(gate_events(col, EventKind.ENTRY_REFUSED)[0])
        assert refused.method is EntryMethod.PASS and refused.reason.startswith("used_up")
        assert len(gate_events(col, EventKind.ENTRY)) == 1


def test_camera_offline_reported_and_recovered(tmp_path: Path) -> None:
    site = gate_site(tmp_path, "file:footage/north.avi", door_port=None)
    with run_edge(site) as (_, col):
        assert wait_until(lambda: bool(gate_events(col, EventKind.CAMERA_OFFLINE)), 30)
        off = gate_events(col, EventKind.CAMERA_OFFLINE)[0]
        assert off.state is EventState.RAISED and "does not exist" in payload(off).reason
        # the installer puts the footage in place: the camera comes back on its own
        from firmware_sim.gatescene import build_scene, write_video

        target = tmp_path / "configs" / "footage" / "north.avi"
        target.parent.mkdir(parents=True)
        tmp_video = write_video(build_scene("empty"), tmp_path / "tmp.avi")
        tmp_video.rename(target)
        assert wait_until(lambda: bool(gate_events(col, EventKind.CAMERA_ONLINE)), 30)
        assert gate_events(col, EventKind.CAMERA_ONLINE)[0].state is EventState.CLEARED
        assert len(gate_events(col, EventKind.CAMERA_OFFLINE)) == 1  # reported once, not once per retry


def test_gallery_commands_and_remote_open(tmp_path: Path, door: DoorControllerSim, obama_embedding: bytes) -> None:
    site = gate_site(tmp_path, "synthetic:empty", door_port=door.client_port)
    import numpy as np

    emb = encode_embedding(np.frombuffer(obama_embedding, dtype=np.float32))
    with run_edge(site) as (edge, col):
        cloud = paho.Client(CallbackAPIVersion.VERSION2, client_id="cloud-cmd")
        cloud.username_pw_set("observer-2", site.password("observer-2"))
        cloud.connect("127.0.0.1", site.port)
        cloud.loop_start()
        try:
            # commands reach a gateway once it has subscribed: wait for its birth (retained ONLINE status)
            assert wait_until(lambda: edge.app.conn.connected and bool(col.of_kind(Kind.STATUS)), 15)

            def send(name: CommandName, args: dict[str, Any] | None = None) -> CommandAck:
                return col.command(site.sign("gw-b", "north", name, args))

            put = send(CommandName.GALLERY_PUT, {"resident": "r-1", "name": "A", "embedding": emb, "version": 5})
            assert put.ok and put.result == {"applied": True, "residents": 1}
            old = send(CommandName.GALLERY_PUT, {"resident": "r-1", "name": "A", "embedding": emb, "version": 4})
            assert old.ok and old.result["applied"] is False
            bad = send(CommandName.GALLERY_PUT, {"resident": "r-2", "embedding": "not base64!", "version": 1})
            assert not bad.ok and "args.embedding" in bad.error, bad.error
            digest = send(CommandName.GALLERY_DIGEST)
            assert digest.result == {"residents": {"r-1": 5}}
            gone = send(CommandName.GALLERY_DELETE, {"resident": "r-1", "version": 6})
            assert gone.ok and gone.result == {"deleted": True, "residents": 0}
            assert len(edge.app.gates["north"].gallery) == 0
            unknown = site.sign("gw-b", "south-door", CommandName.GALLERY_DIGEST)
            cloud.publish(unknown.topic, unknown.payload, qos=1).wait_for_publish(5)

            opened = send(CommandName.DOOR_OPEN, {"by": "operator-1"})
            assert opened.ok
            assert wait_until(lambda: len(door.pulses()) == 1 and door.pulses()[0][1] is not None, 10)
            assert wait_until(lambda: bool(gate_events(col, EventKind.ENTRY)), 10)
            p = payload(gate_events(col, EventKind.ENTRY)[0])
            assert (p.method, p.person) == (EntryMethod.REMOTE, "operator-1")
        finally:
            cloud.loop_stop()
            cloud.disconnect()


def test_a_bad_pass_key_stops_the_gateway_at_start_with_a_clear_message(tmp_path: Path) -> None:
    site = gate_site(tmp_path, "synthetic:empty", door_port=None, pass_key=True)
    (tmp_path / "keys").mkdir(exist_ok=True)  # (make_site put the command keys there)
    (tmp_path / "keys" / "pass.pub").write_text("not a PEM key\n")
    edge = EdgeThread(site.loaded, "gw-b").start()
    with pytest.raises(StartupError, match=r"gate north: pass_public_key .*pass.pub is not usable"):
        edge.wait_ready()
    edge.join(10)


def test_a_killed_vision_process_is_restarted_and_the_camera_comes_back(tmp_path: Path) -> None:
    site = gate_site(tmp_path, "synthetic:empty", door_port=None)
    with run_edge(site) as (edge, col):
        gate = edge.app.gates["north"]
        assert wait_until(lambda: bool(gate_events(col, EventKind.CAMERA_ONLINE)), 30)
        first = gate.vision_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: gate.counters["restarts"] == 1 and gate.vision_pid not in (None, first), 30)
        assert wait_until(lambda: len(gate_events(col, EventKind.CAMERA_ONLINE)) == 2, 30)
        assert not gate.dead and edge.app.health()["healthy"]
