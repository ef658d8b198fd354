"""The supervisor (sc/supervise.py, edge/supervise.py): a part that crashes is logged, restarted with a growing
pause, counted and shown degraded by name until it has run cleanly; one that crashes too often stays down."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edge.supervise import supervise
from sc.supervise import Parts, restart_pause, supervised_thread


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pause_doubles_up_to_its_limit() -> None:
    assert [restart_pause(n, backoff_s=1.0, max_backoff_s=10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_a_part_is_degraded_until_it_ran_cleanly_for_clean_s() -> None:
    clock = Clock()
    parts = Parts(clean_s=60.0, clock=clock)
    assert parts.degraded() == [] and parts.health() == {}
    parts.crashed("gate-link", OSError("disk I/O error"))
    assert parts.degraded() == ["gate-link"]
    clock.now += 59.9
    assert parts.degraded() == ["gate-link"]
    clock.now += 0.2
    assert parts.degraded() == []
    assert parts.health() == {
        "gate-link": {"crashes": 1, "last_error": "OSError: disk I/O error", "down": False, "degraded": False}
    }
    parts.gave_up("gate-link")
    clock.now += 3600
    assert parts.degraded() == ["gate-link"]  # down for good


def test_a_crashing_thread_is_restarted_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    parts = Parts()
    stop = threading.Event()
    runs: list[int] = []

    def run() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"bug {len(runs)}")

    t = threading.Thread(target=supervised_thread("worker", run, stop, parts=parts, backoff_s=0.01))
    t.start()
    t.join(30)
    assert not t.is_alive() and runs == [0, 1, 2]  # two crashes, then it returned
    assert parts.health()["worker"] == {
        "crashes": 2,
        "last_error": "RuntimeError: bug 2",
        "down": False,
        "degraded": True,
    }
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "worker worker crashed (1 of 5 restarts used)",
        "worker worker crashed (2 of 5 restarts used)",
    ]


def test_a_thread_that_crashes_too_often_stays_down() -> None:
    parts = Parts()
    gave_up: list[str] = []

    def run() -> None:
        raise ValueError("always")

    target = supervised_thread(
        "w", run, threading.Event(), parts=parts, max_restarts=2, backoff_s=0.001, on_give_up=gave_up.append
    )
    target()
    assert gave_up == ["w"] and parts.health()["w"]["crashes"] == 3 and parts.health()["w"]["down"] is True


def test_a_stopped_thread_is_not_restarted() -> None:
    stop = threading.Event()
    runs: list[int] = []

    def run() -> None:
        runs.append(1)
        stop.set()
        raise RuntimeError("while stopping")

    supervised_thread("w", run, stop, backoff_s=0.001)()
    assert runs == [1]


def test_a_crashing_task_is_restarted_under_the_same_parts() -> None:
    parts = Parts()
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise KeyError("first")

    async def main() -> None:
        await supervise("commands", work, asyncio.Event(), parts=parts, backoff_s=0.001)

    asyncio.run(main())
    assert runs == [1, 1] and parts.degraded() == ["commands"]
    assert parts.health()["commands"]["last_error"] == "KeyError: 'first'"
