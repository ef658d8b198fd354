"""Moves rows from the outbox to the broker and deletes them once acknowledged.

One thread. At most ``window`` rows are handed to the MQTT connection and
not yet acknowledged; the rest wait on disk. While the broker is away the
window fills and the thread simply waits: nothing is dropped and nothing is
retried by count. Events go before telemetry. Acknowledgements arrive on the
network thread and are deleted from disk in batches.

A row is deleted only after its PUBACK; if the process dies between the ack
and the delete, the row is sent again after restart with the same event id:
duplicates are possible, losses are not.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

from sc.mqtt import MqttConnection

from .outbox import Outbox, Stream

__all__ = ["Forwarder"]

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(self, outbox: Outbox, *, window: int) -> None:
        self.outbox = outbox
        self.window = window
        self.conn: MqttConnection | None = None
        self._lock = threading.Lock()
        self._inflight = 0
        self._acked: list[int] = []
        self._last_sent = {Stream.EVENT: 0, Stream.TELEMETRY: 0}
        self._room = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.acknowledged = 0
        self.errors = 0

    def attach(self, conn: MqttConnection) -> None:
        self.conn = conn

    def _on_ack(self, row_id: int) -> None:
        """Runs on the MQTT network thread when the broker acknowledged a row."""
        with self._lock:
            self._inflight -= 1
            self._acked.append(row_id)
            self._room.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._room.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._flush_acks()

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    def _flush_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            self.outbox.ack(acked)
            self.acknowledged += len(acked)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception:  # a disk or library error must not silently end forwarding
                self.errors += 1
                log.exception("forwarder: unexpected error; carrying on in 1 s")
                self._stop.wait(1.0)
        log.info("forwarder stopped: sent=%d acknowledged=%d inflight=%d", self.sent, self.acknowledged, self.inflight)

    def _loop(self) -> None:
        assert self.conn is not None, "attach() a connection before start()"
        last_flush = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_flush > 0.05 or len(self._acked) >= 256:
                self._flush_acks()
                last_flush = now
            with self._lock:
                room = self.window - self._inflight
            if room <= 0 or not self.conn.connected:
                with self._lock:
                    self._room.wait(0.05)
                continue
            seen = self.outbox.writes
            rows = self.outbox.fetch(Stream.EVENT, self._last_sent[Stream.EVENT], room)
            if len(rows) < room:
                rows += self.outbox.fetch(Stream.TELEMETRY, self._last_sent[Stream.TELEMETRY], room - len(rows))
            if not rows:
                self.outbox.wait_for_rows(0.05, seen)
                continue
            for row in rows:
                with self._lock:
                    self._inflight += 1
                try:
                    self.conn.publish(row.topic, row.payload, qos=1, on_ack=partial(self._on_ack, row.id))
                except Exception as exc:  # log, count, retry this row next round
                    with self._lock:
                        self._inflight -= 1
                    self.errors += 1
                    log.error("forwarder: publish of outbox row %d failed: %s", row.id, exc)
                    break
                self._last_sent[row.stream] = row.id
                self.sent += 1
