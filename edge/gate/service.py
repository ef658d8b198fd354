"""One gate in the gateway daemon: its vision process, its door, its events and commands.

The vision process (:mod:`.worker`) decides; this side acts: a granted entry
releases the door lock, every decision and alarm becomes an event in the
outbox (so it reaches the cloud even after a network cut), and the cloud's
commands (gallery changes, remote open, pass revocation) are carried out here.
The vision process is restarted if it dies, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import multiprocessing as mp
import queue
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from devices.modbus import ModbusBus
from sc.config.schema import Gate
from sc.contracts.commands import GalleryDeleteArgs, GalleryDeleteResult, GalleryPutArgs, GalleryPutResult
from sc.contracts.messages import EntryMethod, EventKind, EventState, GatePayload
from vision.engines import check_installed
from vision.models import DEFAULT_DIR as DEFAULT_MODELS_DIR
from vision.openset import stranger_risk

from ..sensors.detect import Transition
from .door import DoorController, DoorEvent
from .gallery import Gallery, decode_embedding
from .ledger import PassLedger
from .pipeline import GateOutcome
from .worker import VisionSpec, vision_main

__all__ = ["DoorActuator", "GateService"]

log = logging.getLogger(__name__)

#: A stranger's chance per visit (by the model's impostor fit) past which the gate warns, once per level.
OPEN_SET_WARN = (0.01, 0.1, 0.5)


class DoorActuator(Protocol):
    async def unlock(self, now: float) -> None: ...


class GateService:
    def __init__(
        self,
        *,
        gate: Gate,
        site: str,
        base_dir: Path,
        var_dir: Path,
        emit: Callable[[str, Transition, datetime], Any],
        door: DoorActuator | None = None,
        bus_for: Callable[[str], ModbusBus | None] | None = None,
        max_restarts: int = 5,
        models_dir: Path = DEFAULT_MODELS_DIR,
    ) -> None:
        self.gate = gate
        self.models_dir = models_dir
        self.site = site
        self.base_dir = base_dir
        self.emit = emit  # EventSink.event (blocking: runs in a thread)
        self.door = door
        self._bus_for = bus_for
        self.door_controller: DoorController | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.max_restarts = max_restarts
        self.gallery_path = gate.gallery or var_dir / gate.id / "gallery.db"
        self.ledger_path = var_dir / gate.id / "passes.db"
        check_installed(gate.face_model, models_dir)  # a missing or changed model file: a clear start-up error
        self.gallery = Gallery(self.gallery_path, model=gate.face_model)
        self._risk_level = 0  # how many of OPEN_SET_WARN the stranger risk has passed (logged once each)
        self._check_open_set()
        self.ledger = PassLedger(self.ledger_path)
        self.counters: dict[str, int] = {"entries": 0, "refusals": 0, "alarms": 0, "crossings": 0, "restarts": 0}
        self.stats: dict[str, Any] = {}
        self.camera_online: bool | None = None
        self.dead = False
        self.vision_pid: int | None = None  # the running vision process (health, tests)
        self._ctx = mp.get_context("spawn")
        self._in_q: mp.Queue[Any] = self._ctx.Queue(maxsize=100)
        self._out_q: mp.Queue[Any] = self._ctx.Queue(maxsize=1000)

    def spec(self) -> VisionSpec:
        return VisionSpec(
            gate=self.gate,
            base_dir=self.base_dir,
            gallery_path=self.gallery_path,
            ledger_path=self.ledger_path,
            site=self.site,
            pass_key=self.gate.pass_public_key,
            log_level=logging.getLogger().level or logging.INFO,
            models_dir=self.models_dir,
        )

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        door_task: asyncio.Task[None] | None = None
        if self.gate.door is not None and self._bus_for is not None and self.door is None:
            bus = self._bus_for(self.gate.door.bus)
            if bus is None:
                log.error("gate=%s: door bus %s is not open; the door is not driven", self.gate.id, self.gate.door.bus)
            else:
                self.door_controller = DoorController(
                    bus,
                    self.gate.door,
                    gate=self.gate.id,
                    on_event=self._door_event,
                    on_contact=lambda t, is_open: self.door_changed(t, open=is_open),
                )
                self.door = self.door_controller
                door_task = asyncio.create_task(self.door_controller.run(stop), name=f"door-{self.gate.id}")
        try:
            await self._run_vision(stop)
        finally:
            if door_task is not None:
                await asyncio.gather(door_task, return_exceptions=True)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _door_event(self, ev: DoorEvent) -> None:
        state = EventState.CLEARED if ev.kind in (EventKind.DOOR_CLOSED, EventKind.DEVICE_ONLINE) else EventState.RAISED
        payload = GatePayload(gate=self.gate.id, reason=ev.reason[:500], seconds=ev.seconds)
        if ev.kind not in (EventKind.DOOR_CLOSED, EventKind.DEVICE_ONLINE):
            self.counters["alarms"] += 1
        task = asyncio.get_running_loop().create_task(self._emit(ev.kind, state, payload, time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_vision(self, stop: asyncio.Event) -> None:
        if self.gate.camera is None:
            log.info("gate=%s has no camera: passes and remote opens only", self.gate.id)
            await stop.wait()
            return
        restarts = 0
        while not stop.is_set():
            proc_stop = self._ctx.Event()
            proc = self._ctx.Process(
                target=vision_main,
                args=(self.spec(), self._out_q, self._in_q, proc_stop),
                name=f"vision-{self.gate.id}",
                daemon=True,
            )
            proc.start()
            self.vision_pid = proc.pid
            log.info("gate=%s vision process pid=%s started", self.gate.id, proc.pid)
            try:
                while not stop.is_set() and proc.is_alive():
                    await self._pump(timeout=0.2)
            finally:
                proc_stop.set()
                await asyncio.to_thread(proc.join, 5.0)
                if proc.is_alive():
                    proc.kill()
                await self._pump(timeout=0.0)
            if stop.is_set():
                break
            restarts += 1
            self.counters["restarts"] = restarts
            log.error(
                "gate=%s vision process died (exit %s); restart %d of %d",
                self.gate.id,
                proc.exitcode,
                restarts,
                self.max_restarts,
            )
            if restarts > self.max_restarts:
                self.dead = True
                log.error("gate=%s vision process died too often: it stays down", self.gate.id)
                await stop.wait()
                return
            await asyncio.sleep(min(30.0, 0.5 * 2**restarts))

    async def _pump(self, timeout: float) -> None:
        """Handle whatever the vision process sent (waiting at most ``timeout`` for the first)."""
        first = True
        while True:
            try:
                if first and timeout > 0:
                    msg = await asyncio.to_thread(self._out_q.get, True, timeout)
                else:
                    msg = self._out_q.get_nowait()
            except queue.Empty:
                return
            first = False
            await self._handle(msg)

    async def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "outcome":
            await self.on_outcome(msg[1])
        elif kind == "camera":
            _, online, reason, t = msg
            self.camera_online = online
            ev = EventKind.CAMERA_ONLINE if online else EventKind.CAMERA_OFFLINE
            state = EventState.CLEARED if online else EventState.RAISED
            await self._emit(ev, state, GatePayload(gate=self.gate.id, reason=reason[:500]), t)
        elif kind == "stats":
            self.stats = msg[1]

    async def on_outcome(self, o: GateOutcome) -> None:
        if o.what == "unknown":
            log.info("gate=%s unknown face track=%s distance=%s: no entry", self.gate.id, o.track, o.distance)
            return
        if o.what == "crossing":
            self.counters["crossings"] += o.people or 1
            log.info("gate=%s crossing track=%s direction=%s people=%s", self.gate.id, o.track, o.direction, o.people)
            return
        if o.what == "entry":
            self.counters["entries"] += 1
            if self.door is not None:
                try:
                    await self.door.unlock(time.monotonic())
                except Exception as exc:  # the door controller logs and reports its own faults
                    log.error("gate=%s could not release the door for %s: %s", self.gate.id, o.person, exc)
        elif o.what == "refused":
            self.counters["refusals"] += 1
        else:
            self.counters["alarms"] += 1
        kind = o.event_kind
        assert kind is not None
        payload = GatePayload(
            gate=self.gate.id,
            reason=o.reason[:500],
            method=o.method,
            person=o.person,
            distance=round(o.distance, 4) if o.distance is not None else None,
            track=o.track,
            grants=o.grants,
            crossings=o.crossings,
            snapshot_jpeg=base64.b64encode(o.snapshot).decode() if o.snapshot else None,
        )
        log.info(
            "gate=%s %s person=%s method=%s distance=%s %s",
            self.gate.id, o.what, o.person, o.method, None if o.distance is None else f"{o.distance:.3f}", o.reason,
        )  # fmt: skip
        await self._emit(kind, EventState.RAISED, payload, o.t)

    async def _emit(self, kind: EventKind, state: EventState, payload: GatePayload, t: float) -> None:
        ts = datetime.fromtimestamp(t, UTC)
        await asyncio.to_thread(self.emit, self.gate.id, Transition(kind, state, payload), ts)

    # ------------------------------------------------------------------ from the outside

    async def remote_open(self, by: str) -> None:
        now = time.time()
        self._send(("grant", now, EntryMethod.REMOTE.value))
        if self.door is not None:
            await self.door.unlock(time.monotonic())
        self.counters["entries"] += 1
        payload = GatePayload(gate=self.gate.id, method=EntryMethod.REMOTE, person=by[:120], reason="remote open")
        await self._emit(EventKind.ENTRY, EventState.RAISED, payload, now)

    def door_changed(self, t: float, *, open: bool) -> None:
        self._send(("door", t, open))

    def gallery_put(self, args: GalleryPutArgs) -> GalleryPutResult:
        emb = decode_embedding(args.embedding, args.model)
        applied = self.gallery.put(args.resident, args.name, emb, version=args.version, model=args.model)
        log.info(
            "gate=%s gallery put resident=%s version=%d applied=%s", self.gate.id, args.resident, args.version, applied
        )
        self._check_open_set()
        return GalleryPutResult(applied=applied, residents=len(self.gallery))

    def open_set(self) -> dict[str, Any]:
        """The gallery's size and what it means for a stranger at this gate's threshold (vision.openset)."""
        n = len(self.gallery)
        risk = stranger_risk(self.gate.face_model, self.gate.match_threshold, n)
        return {"residents": n, "threshold": self.gate.match_threshold, "stranger_risk": float(f"{risk:.3g}")}

    def _check_open_set(self) -> None:
        """Warn, once per level of OPEN_SET_WARN passed, when the gallery has grown past what the model holds at
        this threshold: every resident is one more chance for a stranger to match someone."""
        o = self.open_set()
        level = sum(o["stranger_risk"] >= w for w in OPEN_SET_WARN)
        if level > self._risk_level:
            log.warning(
                "gate=%s: %d residents at threshold %.2f (%s): by the model's measured impostor distances a "
                "stranger is let in about %.1f%% of visits; `sc gate report photos/ --residents %d` proposes a "
                "threshold, and faceplugin-fr-feature holds far more residents (docs/face-models.md)",
                self.gate.id, o["residents"], o["threshold"], self.gate.face_model.value,
                100 * o["stranger_risk"], o["residents"],
            )  # fmt: skip
        self._risk_level = level

    def gallery_delete(self, args: GalleryDeleteArgs) -> GalleryDeleteResult:
        existed = self.gallery.delete(args.resident, version=args.version)
        log.info("gate=%s gallery delete resident=%s existed=%s", self.gate.id, args.resident, existed)
        return GalleryDeleteResult(deleted=existed, residents=len(self.gallery))

    def revoke_pass(self, pid: str, expires: int) -> None:
        self.ledger.revoke(pid, expires)

    def _send(self, msg: tuple[Any, ...]) -> None:
        """Tell the vision process (grants, the door): a gate without a camera has none to tell."""
        if self.gate.camera is None:
            return
        try:
            self._in_q.put_nowait(msg)
        except queue.Full:
            log.error("gate=%s vision input queue full: dropped %s", self.gate.id, msg[0])

    def health(self) -> dict[str, Any]:
        dc = self.door_controller
        return {
            "door": None if dc is None else {"online": dc.online, "open": dc.monitor.is_open, **vars(dc.counters)},
            "camera_online": self.camera_online,
            "vision_dead": self.dead,
            "residents": len(self.gallery),
            "open_set": self.open_set(),
            "counters": dict(self.counters),
            "vision": self.stats,
        }

    def close(self) -> None:
        self.gallery.close()
        self.ledger.close()
