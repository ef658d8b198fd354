"""The worker supervisor restarts crashed workers a bounded number of times."""

from __future__ import annotations

import asyncio

import pytest

from edge.supervise import supervise


def test_a_crashing_worker_is_restarted_until_it_finishes(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def worker() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")

    given_up: list[str] = []
    asyncio.run(supervise("w", worker, asyncio.Event(), backoff_s=0.001, on_give_up=given_up.append))
    assert runs == [0, 1, 2]
    assert given_up == []
    assert [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()] == [
        "worker w crashed (1 of 5 restarts used)",
        "worker w crashed (2 of 5 restarts used)",
    ]


def test_a_worker_that_keeps_crashing_stays_down_and_is_reported() -> None:
    runs = 0

    async def worker() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("always")

    given_up: list[str] = []
    asyncio.run(
        supervise("bus-1", worker, asyncio.Event(), max_restarts=2, backoff_s=0.001, on_give_up=given_up.append)
    )
    assert runs == 3
    assert given_up == ["bus-1"]


def test_stop_ends_supervision_during_the_backoff() -> None:
    runs = 0

    async def main() -> None:
        stop = asyncio.Event()

        async def worker() -> None:
            nonlocal runs
            runs += 1
            stop.set()
            raise ValueError("crash, then stop")

        await asyncio.wait_for(supervise("w", worker, stop, backoff_s=60), timeout=2)

    asyncio.run(main())
    assert runs == 1
