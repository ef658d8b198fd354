"""Telemetry to InfluxDB: line protocol, written in batches by one background thread.

The MQTT ingest thread calls :meth:`InfluxWriter.submit` for every telemetry
message. Readings are worth keeping but are not alarms (alarms go through the
event path and work orders), so the writer is built to never hold up ingest:

* ``submit`` only appends to a bounded in-memory buffer under a lock: it does
  no I/O, does not log and does not raise, so a slow or dead InfluxDB can never
  back-pressure the broker connection.
* Memory is bounded: at most ``max_buffer_lines`` lines are held (the batch
  being sent included). When full, the OLDEST lines are dropped and counted in
  ``dropped`` - after a long outage the newest readings are the useful ones.
* One thread sends batches of up to ``batch_size`` lines, at once when a batch
  is full and at least every ``flush_interval_s`` otherwise, so InfluxDB sees
  few large writes instead of one request per reading.
* Connection errors, timeouts, 5xx (and 401/403/404/408/429, which an operator
  or InfluxDB itself can fix) keep the batch and retry it with exponential
  backoff and jitter (``retry_min_s`` .. ``retry_max_s``), so N ingesters do not
  hammer a recovering server in step. A malformed batch (other 4xx, e.g. 400
  "unable to parse" / "partial write") is never retried: InfluxDB 1.x has
  already stored its good points, so the refused lines are counted in
  ``rejected``, logged, and the batch is dropped - one bad line must not stall
  everything behind it.
* Logging is one line per meaningful event (went down, came back with a
  backlog, backlog flushed, batch refused, buffer overflowing), never one per
  retry.

Both InfluxDB 1.x (``/write?db=``, database created on start with
``CREATE DATABASE``) and 2.x (``/api/v2/write?org=&bucket=``, with
``Authorization: Token``) are supported by plain HTTP, without
``influxdb-client``. Only the 1.x path is tested against a real server
(Debian ships InfluxDB 1.6); the 2.x path is tested against a stub for its
URL and headers only.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import threading
import time
import types
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Union, get_args, get_origin

import httpx
from pydantic import BaseModel

from sc.contracts.messages import Telemetry

__all__ = ["InfluxWriter", "WriterStats", "to_line"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Newlines end a line and cannot be escaped in line protocol; validated ids never contain them.
_MEASUREMENT_ESCAPE = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})
_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})


def _tag(value: str) -> str:
    """Escape a tag key or value (also used for field keys). Backslashes are kept as they are:
    InfluxDB 1.x does not unescape ``\\\\`` in tags, and contract ids cannot hold one anyway."""
    return value.translate(_TAG_ESCAPE)


@functools.cache
def _numeric_fields(model: type[BaseModel]) -> tuple[tuple[str, type], ...]:
    """The (name, bool | int | float) fields of a reading model, in declaration order.

    Decided from the declared type, not the value, so a field always has the same
    InfluxDB type (a conflict makes InfluxDB refuse the point).
    """
    out: list[tuple[str, type]] = []
    for name, info in model.model_fields.items():
        ann: Any = info.annotation
        if get_origin(ann) in (Union, types.UnionType):  # `float | None`: None values are skipped
            args = [a for a in get_args(ann) if a is not type(None)]
            ann = args[0] if len(args) == 1 else None
        if name != "type" and ann in (bool, int, float):
            out.append((name, ann))
    return tuple(out)


def to_line(t: Telemetry) -> str:
    """One InfluxDB line for a telemetry message.

    ``<reading type>,device=..,gateway=..,site=.. <numeric and bool fields> <ts in ns>``; tags are in
    key order (what InfluxDB sorts to anyway), ints carry the ``i`` suffix, floats are written with
    Python's shortest round-trip repr so they read back bit for bit.
    """
    reading = t.reading
    fields: list[str] = []
    for name, kind in _numeric_fields(type(reading)):
        value = getattr(reading, name)
        if value is None:
            continue
        if kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = f"{int(value)}i"
        else:
            f = float(value)
            if not math.isfinite(f):  # InfluxDB has no NaN/inf; the contract refuses them too
                continue
            text = repr(f)
        fields.append(f"{_tag(name)}={text}")
    ns = (t.ts - _EPOCH) // timedelta(microseconds=1) * 1000  # exact integer arithmetic, no float rounding
    return (
        f"{reading.type.translate(_MEASUREMENT_ESCAPE)},device={_tag(t.device)},gateway={_tag(t.gateway)},"
        f"site={_tag(t.site)} {','.join(fields)} {ns}"
    )


class WriterStats(TypedDict):
    submitted: int  # every submit() call
    written: int  # lines InfluxDB stored
    rejected: int  # lines InfluxDB refused as malformed (never retried)
    dropped: int  # oldest lines dropped because the buffer was full (or submitted after stop)
    buffered: int  # lines held now, waiting or being sent
    failed_batches: int  # write attempts that failed transiently (batch kept and retried)
    requests: int  # write requests attempted
    last_error: str | None
    last_success_ts: float | None  # time.time() of the last 2xx write


# Answers that a person or InfluxDB can fix without the data changing: keep the batch and retry.
_RETRY_STATUSES = frozenset({401, 403, 404, 408, 429})
_PARSE_FAILURE = re.compile(r"(?:^|\n)(?:partial write: )?unable to parse '")
_DROPPED = re.compile(r"dropped=(\d+)\s*$")
_OVERFLOW_LOG_EVERY_S = 60.0


def _error_text(resp: httpx.Response) -> str:
    """InfluxDB's error message: 1.x sends {"error": ..}, 2.x {"code": .., "message": ..}."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()
    if isinstance(body, dict):
        msg = body.get("error") or body.get("message")
        if isinstance(msg, str):
            return msg
    return resp.text.strip()


def _refused_lines(message: str, batch_len: int) -> int:
    """How many lines of a refused batch InfluxDB did not store.

    1.x lists every unparsable line (``unable to parse '<line>': why``) and counts points it parsed
    but could not store (``dropped=N``, e.g. a field type conflict); the rest of the batch was
    written. When the answer says neither, assume nothing was stored. (1.x reports only the
    conflict when a batch has both kinds of error, so this can undercount.)
    """
    refused = len(_PARSE_FAILURE.findall(message))
    m = _DROPPED.search(message)
    if m:
        refused += int(m.group(1))
    return min(refused, batch_len) if refused else batch_len


class InfluxWriter:
    """Buffers line-protocol lines and writes them to InfluxDB in batches from one thread.

    ``database`` selects the 1.x API (created on start if missing); ``bucket`` (with ``org`` and
    ``token``) the 2.x API. ``token`` is sent as ``Authorization: Token <token>`` (1.8+ accepts
    ``user:password`` there). Use :meth:`start`, :meth:`submit` from any thread, :meth:`stop`.
    """

    def __init__(
        self,
        *,
        url: str,
        database: str | None = None,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        max_buffer_lines: int = 200_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        timeout_s: float = 10.0,
        token: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
    ) -> None:
        if bucket is None and not database:
            raise ValueError("give a database (InfluxDB 1.x) or a bucket (InfluxDB 2.x)")
        if batch_size < 1 or max_buffer_lines < 1:
            raise ValueError("batch_size and max_buffer_lines must be at least 1")
        if flush_interval_s <= 0 or timeout_s <= 0 or not 0 < retry_min_s <= retry_max_s:
            raise ValueError("intervals must be positive and retry_min_s <= retry_max_s")
        self.url = url.rstrip("/")
        self._max = max_buffer_lines
        self._batch_size = min(batch_size, max_buffer_lines)  # a batch in flight counts against the bound
        self._flush_interval_s = flush_interval_s
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._database = None if bucket is not None else database
        if bucket is not None:
            self._write_url = f"{self.url}/api/v2/write"
            self._params = {**({"org": org} if org else {}), "bucket": bucket, "precision": "ns"}
        else:
            self._write_url = f"{self.url}/write"
            self._params = {"db": str(database), "precision": "ns"}

        self._lock = threading.Lock()  # guards the buffer and the counters below
        self._buf: deque[str] = deque()
        self._inflight = 0
        self._closed = False
        self._submitted = self._written = self._rejected = self._dropped = 0
        self._failed_batches = self._requests = 0
        self._last_error: str | None = None
        self._last_success_ts: float | None = None

        self._wake = threading.Event()  # a full batch is waiting, or stop
        self._kick = threading.Event()  # cut a retry backoff short (stop)
        self._stopping = threading.Event()
        self._stop_deadline = math.inf
        self._thread: threading.Thread | None = None
        # owned by the writer thread
        self._db_ready = self._database is None
        self._db_error: str | None = None
        self._consecutive_failures = 0
        self._down_since: float | None = None
        self._down_failures = 0
        self._down_dropped = 0
        self._backlog_written: int | None = None
        self._drops_logged = 0
        self._drops_logged_at = -math.inf

    # ------------------------------------------------------------------ public API

    def start(self) -> InfluxWriter:
        if self._thread is not None or self._stopping.is_set():
            raise RuntimeError("an InfluxWriter starts once")
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, line: str) -> None:
        """Queue one line: no I/O, no logging, never raises (call it from the ingest thread).

        With the buffer full, the oldest line not being sent right now is dropped and counted.
        """
        with self._lock:
            self._submitted += 1
            if self._closed:
                self._dropped += 1
                return
            if len(self._buf) + self._inflight >= self._max:
                self._dropped += 1
                if not self._buf:  # only the batch in flight is held: the newcomer is the one to go
                    return
                self._buf.popleft()
            self._buf.append(line)
            full = len(self._buf) >= self._batch_size
        if full and not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what can be written within ``timeout`` seconds (retrying as usual), then stop.

        A request already under way may add up to ``timeout_s``. Lines still held afterwards are
        reported in the log and in ``stats()["buffered"]``; later submits are counted as dropped.
        """
        thread = self._thread
        self._stop_deadline = time.monotonic() + max(0.0, timeout)
        self._stopping.set()
        self._kick.set()
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, timeout) + self._timeout_s + 1.0)
            if thread.is_alive():  # pragma: no cover - a request that ignores its timeout
                log.error("InfluxDB writer thread did not stop in time")
        with self._lock:
            self._closed = True
            left = len(self._buf) + self._inflight
        if left:
            log.warning("InfluxDB writer stopped with %d lines not written", left)

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                submitted=self._submitted,
                written=self._written,
                rejected=self._rejected,
                dropped=self._dropped,
                buffered=len(self._buf) + self._inflight,
                failed_batches=self._failed_batches,
                requests=self._requests,
                last_error=self._last_error,
                last_success_ts=self._last_success_ts,
            )

    def __enter__(self) -> InfluxWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        with httpx.Client(headers=self._headers, timeout=self._timeout_s) as client:
            if not self._db_ready:
                self._db_ready = self._create_database(client)
            next_tick = time.monotonic() + self._flush_interval_s
            while True:
                now = time.monotonic()
                stopping = self._stopping.is_set()
                with self._lock:
                    n = len(self._buf)
                if stopping and (n == 0 or now >= self._stop_deadline):
                    return
                tick = now >= next_tick
                if tick:
                    next_tick = now + self._flush_interval_s
                if n >= self._batch_size or (n and (tick or stopping)):
                    try:
                        sent = self._send_batch(client)
                    except Exception:  # pragma: no cover - a bug must not kill the writer
                        log.exception("InfluxDB writer: unexpected error")
                        sent = False
                    self._log_drops()
                    if not sent:
                        self._backoff()
                    continue
                self._wake.wait(next_tick - now)
                self._wake.clear()

    def _request_timeout(self) -> float:
        if self._stopping.is_set():  # do not let one request outlive stop()'s deadline by much
            return max(0.1, min(self._timeout_s, self._stop_deadline - time.monotonic()))
        return self._timeout_s

    def _create_database(self, client: httpx.Client) -> bool:
        """``CREATE DATABASE`` (a no-op when it exists). Failure is fine: the write says the rest."""
        name = str(self._database).replace("\\", "\\\\").replace('"', '\\"')
        try:
            resp = client.post(
                f"{self.url}/query", data={"q": f'CREATE DATABASE "{name}"'}, timeout=self._request_timeout()
            )
        except httpx.HTTPError as exc:
            log.debug("CREATE DATABASE %s: %s", self._database, exc)
            return False
        if resp.is_success and '"error"' not in resp.text:
            log.info("InfluxDB database %r ready at %s", self._database, self.url)
            return True
        # e.g. a user without admin rights on an existing database: try writing anyway
        error = f"HTTP {resp.status_code}: {resp.text.strip()}"
        if error != self._db_error:
            log.warning("CREATE DATABASE %s refused (%s)", self._database, error)
            self._db_error = error
        return True

    def _send_batch(self, client: httpx.Client) -> bool:
        """Send the oldest lines. True: the batch is settled (written or refused); False: retry it."""
        if not self._db_ready:
            self._db_ready = self._create_database(client)
        with self._lock:
            take = min(self._batch_size, len(self._buf))
            if take == len(self._buf):  # the usual case: hand over everything, O(1) under the lock
                batch, self._buf = list(self._buf), deque()
            else:
                batch = [self._buf.popleft() for _ in range(take)]
            self._inflight = take
            self._requests += 1
        try:
            # a lone surrogate in one raw line must not sink the whole batch
            body = "\n".join(batch).encode("utf-8", "replace")
            resp = client.post(self._write_url, params=self._params, content=body, timeout=self._request_timeout())
        except httpx.HTTPError as exc:  # refused, reset, timed out: InfluxDB is down or overloaded
            return self._keep(batch, f"{type(exc).__name__}: {exc}".rstrip(": "))
        except Exception as exc:  # not a line at all (a caller ignoring the type): retrying cannot help
            log.exception("InfluxDB writer: cannot send a batch of %d lines", take)
            self._settled(take, take, f"{type(exc).__name__}: {exc}")
            return True
        if resp.is_success:
            self._settled(take, 0, None)
            return True
        message = _error_text(resp)
        error = f"HTTP {resp.status_code}: {message}"
        if 400 <= resp.status_code < 500 and resp.status_code not in _RETRY_STATUSES:
            refused = _refused_lines(message, take)
            log.error("InfluxDB refused %d of %d lines (%s)", refused, take, error[:1000])
            self._settled(take, refused, error)
            return True
        if resp.status_code == 404 and self._database is not None:
            self._db_ready = False  # database dropped under us: create it again before the retry
        return self._keep(batch, error)

    def _keep(self, batch: list[str], error: str) -> bool:
        with self._lock:
            self._buf.extendleft(reversed(batch))  # back in front, in order; the bound still holds
            self._inflight = 0
            self._failed_batches += 1
            self._last_error = error
            buffered, dropped = len(self._buf), self._dropped
        if self._down_since is None:
            self._down_since, self._down_failures, self._down_dropped = time.monotonic(), 0, dropped
            self._backlog_written = None
            log.warning(
                "InfluxDB write failed (%s): keeping %d lines buffered (max %d) and retrying every %g..%g s",
                error,
                buffered,
                self._max,
                self._retry_min_s,
                self._retry_max_s,
            )
        self._down_failures += 1
        return False

    def _settled(self, sent: int, refused: int, error: str | None) -> None:
        with self._lock:
            self._written += sent - refused
            self._rejected += refused
            self._inflight = 0
            if error is None:
                self._last_success_ts = time.time()
            else:
                self._last_error = error
            buffered, dropped = len(self._buf), self._dropped
        self._consecutive_failures = 0
        if self._down_since is not None:
            log.info(
                "InfluxDB is back after %.1f s (%d failed attempts, %d lines dropped meanwhile): "
                "flushing a backlog of %d lines",
                time.monotonic() - self._down_since,
                self._down_failures,
                dropped - self._down_dropped,
                buffered + sent,
            )
            self._down_since = None
            self._backlog_written = 0
        if self._backlog_written is not None:
            self._backlog_written += sent - refused
            if buffered < self._batch_size:
                log.info("InfluxDB backlog flushed: %d lines written since it came back", self._backlog_written)
                self._backlog_written = None

    def _backoff(self) -> None:
        """Exponential backoff with jitter; stop() cuts it short, and it never passes stop's deadline."""
        self._consecutive_failures += 1
        delay = min(self._retry_max_s, self._retry_min_s * 2 ** min(self._consecutive_failures - 1, 30))
        delay = random.uniform(delay / 2, delay)
        if self._stopping.is_set():
            delay = min(delay, max(0.0, self._stop_deadline - time.monotonic()))
        if self._kick.wait(delay):
            self._kick.clear()

    def _log_drops(self) -> None:
        """At most one line a minute while the buffer overflows (in the writer thread, not in submit)."""
        with self._lock:
            dropped = self._dropped
        now = time.monotonic()
        if dropped > self._drops_logged and now - self._drops_logged_at >= _OVERFLOW_LOG_EVERY_S:
            log.warning(
                "InfluxDB write buffer full (%d lines): %d oldest lines dropped so far",
                self._max,
                dropped,
            )
            self._drops_logged, self._drops_logged_at = dropped, now
