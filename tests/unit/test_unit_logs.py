"""sc.logs.RepeatSummary: a repeated line is written once, then summarised; nothing distinct is ever held back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from sc.logs import RepeatSummary, setup_logging

PORT_GONE = "bus=%s port=%s could not be opened"


class Clock:
    """The filter's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Keeps each record it handles as ``LEVEL logger: message``."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines(clock: Clock) -> Iterator[Lines]:
    """A handler with the filter on it, the way setup_logging installs it, and the loggers ``t.a`` / ``t.b``."""
    handler = Lines()
    handler.addFilter(RepeatSummary(handler.handle, window_s=60.0, clock=clock))
    loggers = [logging.getLogger(n) for n in ("t.a", "t.b")]
    for lg in loggers:
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg in loggers:
            lg.handlers[:] = []
            lg.propagate = True


def repeats(handler: Lines) -> RepeatSummary:
    f = handler.filters[0]
    assert isinstance(f, RepeatSummary)
    return f


def test_a_repeated_warning_is_written_once_then_summarised(lines: Lines, clock: Clock) -> None:
    a = logging.getLogger("t.a")
    for _ in range(241):  # 25 a second, as the demo's vanished serial port did
        a.warning(PORT_GONE, "rs485-1", "/dev/ttyS0")
        clock.now += 0.04
    assert lines.lines == ["WARNING t.a: bus=rs485-1 port=/dev/ttyS0 could not be opened"]
    clock.now = 1060.0  # the window has passed: the next one brings the summary, and is itself counted
    a.warning(PORT_GONE, "rs485-1", "/dev/ttyS0")
    assert lines.lines[1:] == [
        "WARNING t.a: bus=rs485-1 port=/dev/ttyS0 could not be opened (240 more in the last 60 s)"
    ]
    # still repeating: one line a minute, never the flood
    for _ in range(99):
        clock.now += 0.5
        a.warning(PORT_GONE, "rs485-1", "/dev/ttyS0")
    clock.now = 1120.0
    repeats(lines).flush()
    assert lines.lines[2:] == [
        "WARNING t.a: bus=rs485-1 port=/dev/ttyS0 could not be opened (100 more in the last 60 s)"
    ]
    # it stopped: a quiet window says nothing and forgets it; the next time it is a first again
    clock.now = 1180.0
    repeats(lines).flush()
    assert len(lines.lines) == 3
    a.warning(PORT_GONE, "rs485-1", "/dev/ttyS0")
    assert lines.lines[3:] == ["WARNING t.a: bus=rs485-1 port=/dev/ttyS0 could not be opened"]


def test_distinct_lines_all_pass(lines: Lines, clock: Clock) -> None:
    a, b = logging.getLogger("t.a"), logging.getLogger("t.b")
    a.warning(PORT_GONE, "rs485-1", "/dev/ttyS0")
    a.warning(PORT_GONE, "rs485-2", "/dev/ttyS1")  # other arguments
    b.warning(PORT_GONE, "rs485-1", "/dev/ttyS0")  # another logger
    a.error(PORT_GONE, "rs485-1", "/dev/ttyS0")  # another level
    a.warning("bus=rs485-1 port=/dev/ttyS0 could not be opened")  # the same text without a template: a repeat
    assert lines.lines == [
        "WARNING t.a: bus=rs485-1 port=/dev/ttyS0 could not be opened",
        "WARNING t.a: bus=rs485-2 port=/dev/ttyS1 could not be opened",
        "WARNING t.b: bus=rs485-1 port=/dev/ttyS0 could not be opened",
        "ERROR t.a: bus=rs485-1 port=/dev/ttyS0 could not be opened",
    ]


def test_the_same_message_with_another_exception_is_distinct(lines: Lines) -> None:
    a = logging.getLogger("t.a")
    for exc in (ValueError("bad"), ValueError("bad"), ValueError("worse"), KeyError("bad")):
        try:
            raise exc
        except Exception:
            a.exception("worker crashed")
    # the first and last line of each: the message, and the exception under its traceback
    assert [(ln.splitlines()[0], ln.splitlines()[-1]) for ln in lines.lines] == [
        ("ERROR t.a: worker crashed", "ValueError: bad"),
        ("ERROR t.a: worker crashed", "ValueError: worse"),
        ("ERROR t.a: worker crashed", "KeyError: 'bad'"),
    ]


def test_errors_pass_at_once_and_lines_below_warning_are_never_held(lines: Lines, clock: Clock) -> None:
    a = logging.getLogger("t.a")
    a.error("gate=%s could not release the door", "heping-north")
    assert lines.lines == ["ERROR t.a: gate=heping-north could not release the door"]
    a.error("gate=%s could not release the door", "heping-north")
    for _ in range(3):
        a.info("heartbeat")
        a.debug("poll")
    assert lines.lines[1:] == ["INFO t.a: heartbeat", "DEBUG t.a: poll"] * 3
    clock.now += 61
    repeats(lines).flush()
    assert lines.lines[-1] == "ERROR t.a: gate=heping-north could not release the door (1 more in the last 61 s)"


def test_a_burst_then_silence_is_summarised_by_the_next_line_of_any_kind(lines: Lines, clock: Clock) -> None:
    a, b = logging.getLogger("t.a"), logging.getLogger("t.b")
    for _ in range(5):
        a.warning("uplink device=%s malformed", "manhole-2")
    clock.now += 30
    b.warning("something else")
    clock.now += 30
    b.info("later")  # the burst's window has passed: its summary comes first
    assert lines.lines == [
        "WARNING t.a: uplink device=manhole-2 malformed",
        "WARNING t.b: something else",
        "WARNING t.a: uplink device=manhole-2 malformed (4 more in the last 60 s)",
        "INFO t.b: later",
    ]


def test_a_final_flush_tells_what_is_owed(lines: Lines, clock: Clock) -> None:
    a = logging.getLogger("t.a")
    a.warning("once")
    for _ in range(3):
        a.warning("thrice and one")
    clock.now += 12
    repeats(lines).close()
    assert lines.lines == [
        "WARNING t.a: once",
        "WARNING t.a: thrice and one",
        "WARNING t.a: thrice and one (2 more in the last 12 s)",
    ]


def test_threads_lose_no_count_and_no_distinct_line(lines: Lines, clock: Clock) -> None:
    a = logging.getLogger("t.a")
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(500):
            a.warning("same from all")
            if i % 100 == 0:
                a.warning("thread %d step %d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    clock.now += 60
    repeats(lines).flush()
    assert lines.lines.count("WARNING t.a: same from all") == 1
    assert sorted(ln for ln in lines.lines if "step" in ln) == sorted(
        f"WARNING t.a: thread {n} step {i}" for n in range(8) for i in range(0, 500, 100)
    )
    assert lines.lines[-1] == "WARNING t.a: same from all (3999 more in the last 60 s)"
    assert len(lines.lines) == 1 + 40 + 1


def test_many_distinct_lines_are_bounded(clock: Clock) -> None:
    handler = Lines()
    f = RepeatSummary(handler.handle, clock=clock, max_lines=2)
    handler.addFilter(f)
    for text in ("a", "a", "b", "c", "d"):
        handler.handle(
            logging.makeLogRecord({"name": "t", "levelno": logging.WARNING, "levelname": "WARNING", "msg": text})
        )
    # a third line: "a" is summarised early (it had a repeat); a fourth: "b" is forgotten quietly (it had none)
    assert [ln.split(": ", 1)[1] for ln in handler.lines] == ["a", "b", "a (1 more in the last 0 s)", "c", "d"]


def test_setup_logging_installs_it_on_the_handler() -> None:
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    try:
        setup_logging("WARNING")
        (handler,) = root.handlers
        (f,) = [f for f in handler.filters if isinstance(f, RepeatSummary)]
        assert f.window_s == 60.0 and f.min_level == logging.WARNING
        setup_logging("INFO")  # again: a fresh filter, the old one closed
        assert f._stopped.is_set()
    finally:
        for h in root.handlers:
            for g in h.filters:
                if isinstance(g, RepeatSummary):
                    g.close()
        root.handlers[:] = before
        root.setLevel(level)
