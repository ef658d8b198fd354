"""Logging: one line per meaningful event, ``time level logger: message``.

A line that repeats (the same logger, level and message, word for word) is written once; its repeats in the next
60 s are counted and then summarised in one line, ``<message> (240 more in the last 60 s)``. A flood of identical
warnings (a serial port that has gone away, a broker that refuses) becomes one line a minute, and every distinct
line still gets through at once. :func:`setup_logging` installs :class:`RepeatSummary` on its handler, so this
holds for every daemon and every part.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RepeatSummary", "setup_logging"]

#: how long the repeats of a line are counted before they are summarised
WINDOW_S = 60.0
#: how often the summaries of lines that stopped repeating are written (at the latest)
FLUSH_EVERY_S = 5.0

_Key = tuple[str, int, str, str]


@dataclass
class _Window:
    """The repeats of one line since ``start`` (clock seconds): how many, and the last of them."""

    start: float
    count: int = 0
    last: logging.LogRecord | None = None


class RepeatSummary(logging.Filter):
    """A handler filter: the first of identical records passes, its repeats for ``window_s`` are counted, then
    summarised in one record handed to ``emit`` (normally the handler's own ``handle``).

    Identical means the same logger name, level, rendered message and exception (type and text), so no distinct
    line is ever swallowed, and the first of any line (an ERROR too) passes at once. Records below ``min_level``
    always pass. A summary is written when the window has passed: on the next record of any kind, or by
    :meth:`flush` (which :func:`setup_logging` calls every few seconds, and at exit with ``final=True``). After a
    summary the line keeps being counted, so a line repeated for ever costs one summary a minute; a line that
    stopped repeating is forgotten after a quiet window. Thread-safe: the summaries are emitted outside the lock.
    """

    #: set on the summary records this filter makes, so that they pass it
    MARK = "sc_repeat_summary"

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        *,
        window_s: float = WINDOW_S,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_lines: int = 10_000,
    ) -> None:
        super().__init__()
        self.emit = emit
        self.window_s = window_s
        self.min_level = min_level
        self.clock = clock
        self.max_lines = max_lines
        self._lock = threading.Lock()
        #: oldest window first (a window that starts again moves to the end)
        self._windows: OrderedDict[_Key, _Window] = OrderedDict()
        self._stopped = threading.Event()
        self._flusher: threading.Thread | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        """True to let ``record`` through; False for a repeat, counted for its summary."""
        if getattr(record, self.MARK, False):
            return True
        key = self._key(record) if record.levelno >= self.min_level else None
        with self._lock:
            now = self.clock()
            due = self._take_due(now)
            passes = True
            if key is not None:
                w = self._windows.get(key)
                if w is None:
                    self._windows[key] = _Window(start=now)
                    if len(self._windows) > self.max_lines:  # too many distinct lines: summarise the oldest now
                        _, old = self._windows.popitem(last=False)
                        if old.count:
                            due.append(self._summary(old, now))
                else:
                    w.count += 1
                    w.last = record
                    passes = False
        for summary in due:
            self.emit(summary)
        return passes

    def flush(self, *, final: bool = False) -> None:
        """Write the summaries that are due; with ``final``, those of every line with repeats not yet told."""
        with self._lock:
            now = self.clock()
            if final:
                due = [self._summary(w, now) for w in self._windows.values() if w.count]
                self._windows.clear()
            else:
                due = self._take_due(now)
        for summary in due:
            self.emit(summary)

    def start_flusher(self, every_s: float = FLUSH_EVERY_S) -> None:
        """Call :meth:`flush` every ``every_s`` seconds from a daemon thread, until :meth:`close`."""

        def loop() -> None:
            while not self._stopped.wait(every_s):
                self.flush()

        self._flusher = threading.Thread(target=loop, name="log-repeat-summary", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        """Stop the flusher thread and write every summary still owed."""
        self._stopped.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(1.0)
        self.flush(final=True)

    # ------------------------------------------------------------------ parts

    @staticmethod
    def _key(record: logging.LogRecord) -> _Key:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: let the handler report it, never count it
            message = f"{record.msg!r} % {record.args!r}"
        exc = record.exc_info[1] if record.exc_info else None
        return (record.name, record.levelno, message, "" if exc is None else f"{type(exc).__name__}: {exc}")

    def _take_due(self, now: float) -> list[logging.LogRecord]:
        """Under the lock: end the windows that have passed; a summary for each that had repeats (and count on)."""
        due: list[logging.LogRecord] = []
        while self._windows:
            key, w = next(iter(self._windows.items()))
            if now - w.start < self.window_s:
                break
            del self._windows[key]
            if w.count:
                due.append(self._summary(w, now))
                self._windows[key] = _Window(start=now)  # still repeating, maybe: count on, at the end of the order
        return due

    def _summary(self, w: _Window, now: float) -> logging.LogRecord:
        assert w.last is not None
        last = w.last
        try:
            message = last.getMessage()
        except Exception:
            message = f"{last.msg!r} % {last.args!r}"
        return logging.makeLogRecord(
            {
                "name": last.name,
                "levelno": last.levelno,
                "levelname": last.levelname,
                "pathname": last.pathname,
                "filename": last.filename,
                "module": last.module,
                "lineno": last.lineno,
                "funcName": last.funcName,
                "threadName": last.threadName,
                "msg": f"{message} ({w.count} more in the last {now - w.start:.0f} s)",
                "args": None,
                self.MARK: True,
            }
        )


_active: RepeatSummary | None = None
_atexit_registered = False


def _close_active() -> None:
    if _active is not None:
        _active.close()


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level``, with repeated identical lines (WARNING and above) summarised."""
    global _active, _atexit_registered
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    if _active is not None:  # set up again: the old handler's summaries first
        _active.close()
    _active = RepeatSummary(handler.handle)
    handler.addFilter(_active)
    _active.start_flusher()
    if not _atexit_registered:  # runs before logging's own shutdown (atexit is last in, first out)
        atexit.register(_close_active)
        _atexit_registered = True
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
