"""The deadline scheduler: every few seconds, escalate orders whose deadline passed.

Safe to run in every cloud process at once: ``escalate_due`` locks the rows
it escalates (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two schedulers
never escalate one order twice for one missed deadline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.workorders.routing import Router
from cloud.workorders.store import escalate_due
from sc.supervise import Parts, supervised_thread

__all__ = ["EscalationScheduler"]

log = logging.getLogger(__name__)


class EscalationScheduler:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        router: Router,
        interval_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parts: Parts | None = None,
    ) -> None:
        self.sessions = sessions
        self.router = router
        self.interval_s = interval_s
        self.clock = clock
        self.escalated = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=supervised_thread("escalation", self._run, self._stop, parts=parts), name="escalation", daemon=True
        )

    def tick(self) -> list[int]:
        with self.sessions.begin() as s:
            ids = escalate_due(s, router=self.router, now=self.clock())
        if ids:
            self.escalated += len(ids)
            log.warning("escalated %d work orders past their deadline: %s", len(ids), ids)
        return ids

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except SQLAlchemyError as exc:
                self.errors += 1
                log.error("escalation check failed (will retry): %s", str(exc).splitlines()[0])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
