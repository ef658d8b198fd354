"""edge.outbox: the on-disk outbox (SQLite in a temp folder)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge.outbox as outbox_mod
from edge.outbox import DEAD_LETTER_KEEP, DEAD_LETTER_PAYLOAD_BYTES, Outbox, OutboxFullError, OutboxRow, Stream


class _SteppingClock:
    """``time`` for edge.outbox whose monotonic clock moves 1 s per reading, so a
    rate-limited budget check is always due: the budget tests are exact, not timing-bound."""

    def __init__(self) -> None:
        self._now = time.monotonic()

    def monotonic(self) -> float:
        self._now += 1.0
        return self._now

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


@pytest.fixture(autouse=True)
def stepping_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "time", _SteppingClock())


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Outbox]]:
    opened: list[Outbox] = []

    def _make(name: str = "outbox.db", **kw: object) -> Outbox:
        kw.setdefault("synchronous", "normal")
        ob = Outbox(tmp_path / name, **kw)  # type: ignore[arg-type]
        opened.append(ob)
        return ob

    yield _make
    for ob in opened:
        try:
            ob.close()
        except sqlite3.ProgrammingError:
            pass


def builder(device: str, seen: list[int] | None = None) -> Callable[[int], tuple[str, bytes]]:
    def build(seq: int) -> tuple[str, bytes]:
        if seen is not None:
            seen.append(seq)
        return f"sc/v1/s/g/event/{device}", f"{device}:{seq}".encode()

    return build


def put(ob: Outbox, device: str) -> int:
    return ob.put_event(device, builder(device))


def all_rows(ob: Outbox, stream: Stream) -> list[OutboxRow]:
    return ob.fetch(stream, 0, 1_000_000)


# --------------------------------------------------------------------------- basics


def test_new_outbox_is_empty(make: Callable[..., Outbox], tmp_path: Path) -> None:
    ob = make("sub/dir/outbox.db")
    assert (tmp_path / "sub/dir/outbox.db").exists()
    assert ob.depth() == {"events": 0, "telemetry": 0}
    assert ob.fetch(Stream.EVENT, 0, 10) == []
    assert ob.last_seq("anything") == 0
    assert ob.shed_telemetry == 0
    assert ob.near_full is False
    assert ob.used_bytes() > 0
    assert ob.dead_letters() == []
    assert ob.ack([]) == 0


def test_wal_mode(make: Callable[..., Outbox], tmp_path: Path) -> None:
    make()
    db = sqlite3.connect(str(tmp_path / "outbox.db"))
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_seq_per_device(make: Callable[..., Outbox]) -> None:
    ob = make()
    assert [put(ob, "a") for _ in range(3)] == [1, 2, 3]
    assert [put(ob, "b") for _ in range(2)] == [1, 2]
    assert put(ob, "a") == 4
    assert put(ob, "c") == 1
    assert (ob.last_seq("a"), ob.last_seq("b"), ob.last_seq("c"), ob.last_seq("d")) == (4, 2, 1, 0)
    rows = all_rows(ob, Stream.EVENT)
    assert [r.payload for r in rows] == [b"a:1", b"a:2", b"a:3", b"b:1", b"b:2", b"a:4", b"c:1"]
    assert [r.topic for r in rows][:1] == ["sc/v1/s/g/event/a"]
    assert all(r.stream is Stream.EVENT for r in rows)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert ob.depth() == {"events": 7, "telemetry": 0}


def test_build_receives_the_seq(make: Callable[..., Outbox]) -> None:
    ob = make()
    seen: list[int] = []
    for _ in range(3):
        ob.put_event("a", builder("a", seen))
    assert seen == [1, 2, 3]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["a", "b", "c", "dev-1"]), max_size=40))
def test_seq_property(make: Callable[..., Outbox], devices: list[str]) -> None:
    ob = make(f"p{time.monotonic_ns()}.db")
    expected: dict[str, int] = {}
    for d in devices:
        expected[d] = expected.get(d, 0) + 1
        assert put(ob, d) == expected[d]
    rows = all_rows(ob, Stream.EVENT)
    assert [r.payload.decode() for r in rows] == [f"{d}:{n}" for d, n in _running(devices)]
    for d, n in expected.items():
        assert ob.last_seq(d) == n
    ob.close()


def _running(devices: list[str]) -> list[tuple[str, int]]:
    count: dict[str, int] = {}
    out = []
    for d in devices:
        count[d] = count.get(d, 0) + 1
        out.append((d, count[d]))
    return out


def test_streams_are_separate(make: Callable[..., Outbox]) -> None:
    ob = make()
    before = time.time()
    ob.put_telemetry("t/1", b"t1")
    put(ob, "a")
    ob.put_telemetry("t/2", b"t2")
    put(ob, "a")
    ev = all_rows(ob, Stream.EVENT)
    tm = all_rows(ob, Stream.TELEMETRY)
    assert [r.payload for r in ev] == [b"a:1", b"a:2"]
    assert [(r.topic, r.payload, r.stream) for r in tm] == [
        ("t/1", b"t1", Stream.TELEMETRY),
        ("t/2", b"t2", Stream.TELEMETRY),
    ]
    # ids are shared (one table) but each stream is in id order
    ids = sorted(r.id for r in ev + tm)
    assert ids == list(range(ids[0], ids[0] + 4))
    assert ob.depth() == {"events": 2, "telemetry": 2}
    assert all(isinstance(r.payload, bytes) for r in ev + tm)
    assert all(before <= r.created <= time.time() for r in ev + tm)  # stamped with the wall clock when written


def test_fetch_after_id_and_limit(make: Callable[..., Outbox]) -> None:
    ob = make()
    for _ in range(10):
        put(ob, "a")
    rows = all_rows(ob, Stream.EVENT)
    ids = [r.id for r in rows]
    assert [r.id for r in ob.fetch(Stream.EVENT, 0, 3)] == ids[:3]
    assert [r.id for r in ob.fetch(Stream.EVENT, ids[2], 3)] == ids[3:6]
    assert [r.id for r in ob.fetch(Stream.EVENT, ids[7], 100)] == ids[8:]
    assert ob.fetch(Stream.EVENT, ids[-1], 100) == []
    assert ob.fetch(Stream.EVENT, 0, 0) == []
    # paging through gives everything once
    seen: list[int] = []
    after = 0
    while batch := ob.fetch(Stream.EVENT, after, 4):
        seen += [r.id for r in batch]
        after = batch[-1].id
    assert seen == ids


def test_ack_deletes_exactly_those_ids(make: Callable[..., Outbox]) -> None:
    ob = make()
    for _ in range(5):
        put(ob, "a")
    ob.put_telemetry("t", b"x")
    rows = all_rows(ob, Stream.EVENT)
    tel = all_rows(ob, Stream.TELEMETRY)
    assert ob.ack([rows[1].id, rows[3].id, tel[0].id]) == 3
    assert [r.payload for r in all_rows(ob, Stream.EVENT)] == [b"a:1", b"a:3", b"a:5"]
    assert all_rows(ob, Stream.TELEMETRY) == []
    # acking twice or unknown ids is harmless; the count is of ids given
    assert ob.ack([rows[1].id, 999_999]) == 2
    assert ob.depth() == {"events": 3, "telemetry": 0}
    assert ob.ack(r.id for r in rows) == 5  # any iterable
    assert ob.depth() == {"events": 0, "telemetry": 0}
    # seq numbering is not affected by acks
    assert put(ob, "a") == 6


def test_reopen_keeps_unacked_rows_and_seq(make: Callable[..., Outbox], tmp_path: Path) -> None:
    ob = make()
    for _ in range(3):
        put(ob, "a")
    put(ob, "b")
    ob.put_telemetry("t", b"tel")
    first = all_rows(ob, Stream.EVENT)
    ob.ack([first[0].id])
    ob.close()

    ob2 = make()
    assert [r.payload for r in all_rows(ob2, Stream.EVENT)] == [b"a:2", b"a:3", b"b:1"]
    assert [r.id for r in all_rows(ob2, Stream.EVENT)] == [r.id for r in first[1:]]
    assert [r.payload for r in all_rows(ob2, Stream.TELEMETRY)] == [b"tel"]
    assert ob2.last_seq("a") == 3
    assert put(ob2, "a") == 4
    assert put(ob2, "b") == 2
    # ids keep growing after reopen (AUTOINCREMENT): a sender's after_id stays valid
    assert all_rows(ob2, Stream.EVENT)[-1].id > max(r.id for r in first)


def test_reopen_after_acking_everything_never_reuses_ids(make: Callable[..., Outbox]) -> None:
    ob = make()
    put(ob, "a")
    put(ob, "a")
    rows = all_rows(ob, Stream.EVENT)
    ob.ack(r.id for r in rows)
    ob.close()
    ob2 = make()
    put(ob2, "a")
    (row,) = all_rows(ob2, Stream.EVENT)
    assert row.id > rows[-1].id
    assert row.payload == b"a:3"


def test_failing_build_leaves_nothing(make: Callable[..., Outbox]) -> None:
    ob = make()
    assert put(ob, "a") == 1

    def boom(seq: int) -> tuple[str, bytes]:
        assert seq == 2
        raise RuntimeError("cannot encode")

    with pytest.raises(RuntimeError, match="cannot encode"):
        ob.put_event("a", boom)
    assert ob.last_seq("a") == 1
    assert ob.depth() == {"events": 1, "telemetry": 0}
    assert put(ob, "a") == 2
    assert [r.payload for r in all_rows(ob, Stream.EVENT)] == [b"a:1", b"a:2"]


def test_failing_build_for_a_new_device_leaves_no_seq(make: Callable[..., Outbox], tmp_path: Path) -> None:
    ob = make()

    def boom(seq: int) -> tuple[str, bytes]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        ob.put_event("new", boom)
    assert ob.last_seq("new") == 0
    assert put(ob, "new") == 1
    ob.close()
    ob2 = make()
    assert ob2.last_seq("new") == 1


def test_keyboard_interrupt_in_build_rolls_back(make: Callable[..., Outbox]) -> None:
    ob = make()

    def interrupt(seq: int) -> tuple[str, bytes]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ob.put_event("a", interrupt)
    assert ob.last_seq("a") == 0
    assert put(ob, "a") == 1


def test_bad_payload_type_is_outbox_error_and_rolls_back(make: Callable[..., Outbox]) -> None:
    ob = make()
    with pytest.raises(OutboxFullError, match="outbox write failed: "):
        ob.put_event("a", lambda seq: ("t", object()))  # type: ignore[arg-type, return-value]
    assert ob.last_seq("a") == 0
    assert ob.depth() == {"events": 0, "telemetry": 0}
    assert put(ob, "a") == 1


def test_writes_counts_stored_rows_only(make: Callable[..., Outbox]) -> None:
    ob = make()
    assert ob.writes == 0
    put(ob, "a")
    ob.put_telemetry("t", b"x")
    assert ob.writes == 2

    def boom(seq: int) -> tuple[str, bytes]:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        ob.put_event("a", boom)
    ob.dead_letter("t", b"", "r")
    ob.ack(r.id for r in all_rows(ob, Stream.EVENT))
    assert ob.writes == 2


def test_wait_for_rows_times_out_when_nothing_is_written(make: Callable[..., Outbox]) -> None:
    ob = make()
    seen = ob.writes
    ob.wait_for_rows(0.05, seen)  # comes back after its timeout, with nothing written
    assert ob.writes == seen and ob.depth() == {"events": 0, "telemetry": 0}


def test_wait_for_rows_returns_at_once_if_written_since_seen(make: Callable[..., Outbox]) -> None:
    """No lost wake-up: a write between the reader's fetch and its wait ends the wait."""
    ob = make()
    seen = ob.writes
    ob.put_telemetry("t", b"x")
    waiter = threading.Thread(target=ob.wait_for_rows, args=(3600, seen), daemon=True)
    waiter.start()
    waiter.join(60)
    assert not waiter.is_alive(), "wait_for_rows kept waiting for a row that was written before it was called"


def test_wait_for_rows_wakes_on_put(make: Callable[..., Outbox]) -> None:
    ob = make()
    woke = threading.Event()
    seen = ob.writes

    def waiter() -> None:
        ob.wait_for_rows(30, seen)
        woke.set()

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.05)
    assert not woke.is_set()
    put(ob, "a")
    th.join(5)
    assert woke.is_set()


# --------------------------------------------------------------------------- budget


def test_telemetry_shed_oldest_first_events_never(make: Callable[..., Outbox]) -> None:
    ob = make(max_bytes=200_000)
    n_tel = 0
    n_ev = 0
    for i in range(300):
        ob.put_telemetry("t", f"{i:05d}".encode() + b"x" * 2000)
        n_tel += 1
        if i % 10 == 0:
            put(ob, "a")
            n_ev += 1
    assert ob.shed_telemetry > 0
    tel = all_rows(ob, Stream.TELEMETRY)
    assert len(tel) == n_tel - ob.shed_telemetry
    # what is left is the newest, contiguous run
    idx = [int(r.payload[:5]) for r in tel]
    assert idx == list(range(n_tel - len(tel), n_tel))
    # events are all there, in order
    ev = all_rows(ob, Stream.EVENT)
    assert [r.payload for r in ev] == [f"a:{k}".encode() for k in range(1, n_ev + 1)]
    assert ob.used_bytes() < 200_000 + 3 * 4096 * 2


def test_shed_amount_is_ten_percent(make: Callable[..., Outbox]) -> None:
    ob = make(max_bytes=200_000)
    while ob.used_bytes() < 200_000:
        ob.put_telemetry("t", b"x" * 3000)
        if ob.shed_telemetry:
            break
    ob.put_telemetry("t", b"x" * 3000)  # ensure the check ran over budget
    before = ob.depth()["telemetry"]
    shed_before = ob.shed_telemetry
    # force an over-budget check with a known row count
    ob.max_bytes = 1
    ob.put_telemetry("t", b"y")
    assert ob.shed_telemetry - shed_before == max(1, before // 10)
    assert ob.depth()["telemetry"] == before - max(1, before // 10) + 1


def test_events_over_budget_are_kept_and_telemetry_refused(
    make: Callable[..., Outbox], caplog: pytest.LogCaptureFixture
) -> None:
    ob = make(max_bytes=100_000)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        for _ in range(80):
            ob.put_event("a", lambda seq: ("t", f"{seq}".encode() + b"e" * 2000))
    assert ob.used_bytes() >= 100_000
    assert ob.depth() == {"events": 80, "telemetry": 0}
    assert ob.last_seq("a") == 80
    assert any("unsent EVENTS" in r.getMessage() for r in caplog.records)
    shed = ob.shed_telemetry
    with pytest.raises(OutboxFullError, match="outbox is full of events; telemetry refused"):
        ob.put_telemetry("t", b"x")
    assert ob.shed_telemetry == shed + 1
    assert ob.depth() == {"events": 80, "telemetry": 0}
    # events still go in
    assert put(ob, "a") == 81


def test_budget_recovers_after_ack(make: Callable[..., Outbox]) -> None:
    ob = make(max_bytes=100_000)
    for _ in range(60):
        ob.put_event("a", lambda seq: ("t", b"e" * 2000))
    with pytest.raises(OutboxFullError):
        ob.put_telemetry("t", b"x")
    ob.ack(r.id for r in all_rows(ob, Stream.EVENT))
    ob.put_telemetry("t", b"x")  # room again
    assert ob.depth() == {"events": 0, "telemetry": 1}


def test_near_full_flips(make: Callable[..., Outbox], caplog: pytest.LogCaptureFixture) -> None:
    ob = make(max_bytes=1_000_000, warn_pct=10)
    assert ob.warn_bytes == 100_000
    with caplog.at_level(logging.INFO, logger="edge.outbox"):
        # used_bytes() is what the last write's check saw; the flag follows it exactly
        while ob.used_bytes() < 100_000:
            assert ob.near_full is False
            ob.put_telemetry("t", b"x" * 2000)
        assert ob.near_full is True
        assert sum("NEAR FULL" in r.getMessage() for r in caplog.records) == 1
        ob.put_telemetry("t", b"x" * 2000)
        assert sum("NEAR FULL" in r.getMessage() for r in caplog.records) == 1  # logged once
        ob.ack(r.id for r in all_rows(ob, Stream.TELEMETRY))
        ob.put_telemetry("t", b"x")
        assert ob.near_full is False
        assert any("back below its warning level" in r.getMessage() for r in caplog.records)
    assert ob.shed_telemetry == 0


def test_near_full_has_hysteresis(make: Callable[..., Outbox]) -> None:
    ob = make(max_bytes=1_000_000, warn_pct=10)
    while not ob.near_full:
        ob.put_telemetry("t", b"x" * 2000)
    rows = all_rows(ob, Stream.TELEMETRY)
    # drop just a little: still above 90 % of the warning level
    ob.ack([rows[-1].id])
    ob.put_telemetry("t", b"x")
    assert ob.used_bytes() >= 0.9 * ob.warn_bytes
    assert ob.near_full is True


# --------------------------------------------------------------------------- dead letters


def test_dead_letters_keep_reason_topic_payload(make: Callable[..., Outbox]) -> None:
    ob = make()
    ob.dead_letter("sc/v1/s/g/event/d", b"\x00\xffnot json", "invalid Event: (message): Invalid JSON")
    ob.dead_letter("bad/topic", b"", "topic has 2 levels")
    assert ob.dead_letters() == [
        ("bad/topic", "topic has 2 levels", b""),
        ("sc/v1/s/g/event/d", "invalid Event: (message): Invalid JSON", b"\x00\xffnot json"),
    ]
    assert ob.dead_letters(limit=1) == [("bad/topic", "topic has 2 levels", b"")]
    # dead letters are not in the outbox streams
    assert ob.depth() == {"events": 0, "telemetry": 0}


def test_dead_letter_payload_is_truncated_and_its_size_kept(make: Callable[..., Outbox]) -> None:
    ob = make()
    ob.dead_letter("t", bytes(range(256)) * 400, "oversized")  # 102,400 bytes
    ob.dead_letter("t", b"small", "bad")
    ((_, _, payload), _) = ob.dead_letters()[::-1]
    assert payload == (bytes(range(256)) * 16)[:DEAD_LETTER_PAYLOAD_BYTES] and DEAD_LETTER_PAYLOAD_BYTES == 4096
    small, big = ob.dead_letter_rows()
    assert (big.topic, big.reason, big.payload, big.size) == ("t", "oversized", payload, 102_400)
    assert (small.payload, small.size) == (b"small", 5)
    assert isinstance(big.received, float)  # time.time() when it came


def test_an_outbox_from_before_dead_letter_sizes_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL,"
        " topic TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB NOT NULL)"
    )
    db.execute("INSERT INTO dead_letter(received, topic, reason, payload) VALUES (1.0, 't', 'old', x'00ff00')")
    db.commit()
    db.close()
    ob = Outbox(path)
    try:
        ob.dead_letter("t", b"z" * 5000, "new")
        assert [(d.reason, d.payload[:3], d.size) for d in ob.dead_letter_rows()] == [
            ("new", b"zzz", 5000),
            ("old", b"\x00\xff\x00", 3),  # its size is what it kept (everything, then)
        ]
    finally:
        ob.close()


def test_dead_letters_keep_only_the_newest(make: Callable[..., Outbox], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "DEAD_LETTER_KEEP", 5)
    ob = make()
    for i in range(12):
        ob.dead_letter("t", f"{i}".encode(), f"r{i}")
    assert ob.dead_letters(limit=100) == [("t", f"r{i}", f"{i}".encode()) for i in range(11, 6, -1)]


def test_dead_letters_keep_real_limit(make: Callable[..., Outbox]) -> None:
    assert DEAD_LETTER_KEEP == 1000
    ob = make()
    for i in range(DEAD_LETTER_KEEP + 25):
        ob.dead_letter("t", b"", f"r{i}")
    got = ob.dead_letters(limit=5000)
    assert len(got) == DEAD_LETTER_KEEP
    assert got[0][1] == f"r{DEAD_LETTER_KEEP + 24}"
    assert got[-1][1] == "r25"


def test_dead_letters_survive_reopen(make: Callable[..., Outbox]) -> None:
    ob = make()
    ob.dead_letter("t", b"p", "why")
    ob.close()
    assert make().dead_letters() == [("t", "why", b"p")]


def test_real_clock_every_write_is_checked_once_near_full(
    make: Callable[..., Outbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real clock the size is sampled at most every 0.25 s below the warning
    level, but at every write above it: a burst cannot blow through the budget."""
    monkeypatch.setattr(outbox_mod, "time", time)
    ob = make(max_bytes=200_000, warn_pct=20)
    for _ in range(30):
        ob.put_telemetry("t", b"x" * 2000)
    deadline = time.monotonic() + 5
    while not ob.near_full and time.monotonic() < deadline:
        time.sleep(0.05)
        ob.put_telemetry("t", b"x" * 2000)
    assert ob.near_full
    for _ in range(300):
        ob.put_telemetry("t", b"x" * 2000)
    assert ob.shed_telemetry > 0
    assert ob.used_bytes() < 200_000 + 2 * 4096 * 2
