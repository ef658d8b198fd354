"""Dead letters in the cloud on SQLite and PostgreSQL: the first 4 KiB of each message and its size, the newest
DEAD_LETTERS_KEEP of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import cloud.workorders.store as store
from cloud.db.engine import make_sessions
from cloud.db.models import DeadLetter
from cloud.workorders.store import DEAD_LETTER_PAYLOAD_BYTES, DEAD_LETTERS_KEEP, add_dead_letters

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def rows(engine: Engine) -> list[tuple[str, bytes, int]]:
    with Session(engine) as s:
        return [(d.reason, d.payload, d.size) for d in s.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars()]


def test_a_dead_letter_keeps_the_first_4_kib_and_the_size(engine: Engine) -> None:
    big = bytes(range(256)) * 400  # 102,400 bytes, every byte value
    with make_sessions(engine).begin() as s:
        add_dead_letters(s, items=[("t", "big", big), ("t", "small", b"{not json"), ("t", "empty", b"")], now=T0)
        add_dead_letters(s, items=[], now=T0)
    assert DEAD_LETTER_PAYLOAD_BYTES == 4096 and DEAD_LETTERS_KEEP == 10_000
    assert rows(engine) == [("big", big[:4096], 102_400), ("small", b"{not json", 9), ("empty", b"", 0)]


def test_only_the_newest_dead_letters_are_kept(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "DEAD_LETTERS_KEEP", 5)
    sessions = make_sessions(engine)
    for batch in range(4):  # 12 in batches of 3, as an ingester adds them
        with sessions.begin() as s:
            add_dead_letters(s, items=[("t", f"r{3 * batch + i}", b"x") for i in range(3)], now=T0)
    assert [r for r, _, _ in rows(engine)] == [f"r{i}" for i in range(7, 12)]
    with sessions.begin() as s:  # a batch larger than what is kept keeps its newest
        add_dead_letters(s, items=[("t", f"n{i}", b"x") for i in range(8)], now=T0)
    assert [r for r, _, _ in rows(engine)] == [f"n{i}" for i in range(3, 8)]
