"""Readings history: telemetry read back from InfluxDB 1.x for the control room's per-device charts.

:class:`TelemetryHistory` asks InfluxDB (``GET /query?db=&q=&epoch=ms``, plain HTTP like the
writer in :mod:`cloud.telemetry.influx`) for one device's readings in ``[since, until)``,
downsampled on the server so that a chart gets at most ``points`` points per field:

* The range is cut into buckets of ``bucket_s = ceil(span / points)`` whole seconds, aligned to
  ``since`` (``GROUP BY time(<bucket>s, <offset>)``), so there are at most ``points`` buckets.
  A point's timestamp is its bucket's start (to the millisecond); an empty bucket has ``None``
  (``fill(null)``), so a chart shows a gap where the device said nothing.
* Numeric fields (floats, ints such as ``battery_pct``) are averaged: ``mean()``.
* Flag fields (``alarm``, ``fault``, ``lid_open``) use ``max()``: 1.0 when the flag was set at any
  time in the bucket, 0.0 when it was never set. An averaged alarm that lasted a few seconds of an
  hour-long bucket would all but vanish from the chart; the peak is what an operator looks for.

Which measurements and fields exist is taken from the reading models of the contract (the same
source :func:`cloud.telemetry.influx.to_line` writes from). A device InfluxDB has no points for
in the range gives no series; a field that has no value in the range is left out.

Only InfluxDB 1.x is read. The 2.x API (bucket, org) has no InfluxQL ``/query`` without a
DBRP mapping set up by hand, so a reader configured for 2.x refuses to be built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import httpx

from sc.contracts.messages import Reading

from .influx import _error_text, _numeric_fields

__all__ = [
    "DeviceHistory",
    "FieldSeries",
    "HistoryError",
    "HistoryUnavailable",
    "TelemetryHistory",
    "reading_fields",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Aggregate = Literal["mean", "max"]


class HistoryError(Exception):
    """InfluxDB answered the query with an error (the message says what it said)."""


class HistoryUnavailable(HistoryError):
    """InfluxDB could not be reached (refused, reset, timed out)."""


@dataclass(frozen=True)
class FieldSeries:
    field: str
    aggregate: Aggregate  # mean for numbers, max for flags (1.0: set at some time in the bucket)
    points: list[tuple[datetime, float | None]]  # (bucket start, value); None: nothing in that bucket


@dataclass(frozen=True)
class DeviceHistory:
    device: str
    since: datetime
    until: datetime
    bucket_s: int
    series: list[FieldSeries]


def reading_fields() -> dict[str, Aggregate]:
    """Every field a reading can have, in contract order, with the aggregate used for it."""
    out: dict[str, Aggregate] = {}
    for model in get_args(get_args(Reading)[0]):
        for name, kind in _numeric_fields(model):
            out.setdefault(name, "max" if kind is bool else "mean")
    return out


def _measurements() -> list[str]:
    return [model.model_fields["type"].default for model in get_args(get_args(Reading)[0])]


def _ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: str) -> str:
    """An InfluxQL string literal, single-quoted."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _ns(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1) * 1000


class TelemetryHistory:
    """Reads one device's downsampled readings from InfluxDB 1.x. Safe to use from many threads.

    Built from the writer's settings: ``token`` is sent as ``Authorization: Token <token>``
    (1.8+ accepts ``user:password`` there); ``org`` is ignored, as the writer ignores it without a
    bucket; ``bucket`` (2.x) is refused with :class:`ValueError`.
    """

    def __init__(
        self,
        *,
        url: str,
        database: str | None = None,
        token: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if bucket is not None:  # what switches the writer to 2.x
            raise ValueError(
                "reading telemetry back is supported for InfluxDB 1.x only (a database), "
                "not for InfluxDB 2.x (org/bucket)"
            )
        if not database:
            raise ValueError("give the InfluxDB 1.x database to read from")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.url = url.rstrip("/")
        self.database = database
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._timeout_s = timeout_s
        self._fields = reading_fields()

    def query(
        self,
        *,
        device: str,
        since: datetime,
        until: datetime,
        points: int = 300,
        fields: list[str] | None = None,
    ) -> DeviceHistory:
        """``device``'s readings in ``[since, until)`` (aware datetimes), at most ``points`` per field.

        ``fields`` picks fields by name (all when None); an unknown name is a :class:`ValueError`.
        Raises :class:`HistoryUnavailable` when InfluxDB cannot be reached and :class:`HistoryError`
        when it answers with an error.
        """
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("since and until need a time zone")
        if since >= until:
            raise ValueError("since must be before until")
        if points < 1:
            raise ValueError("points must be at least 1")
        wanted = list(self._fields) if fields is None else list(dict.fromkeys(fields))
        unknown = [f for f in wanted if f not in self._fields]
        if unknown:
            raise ValueError(f"unknown fields {unknown}; readings have {list(self._fields)}")
        start, end = _ns(since), _ns(until)
        bucket_s = max(1, math.ceil((end - start) / 1e9 / points))
        bucket_us = bucket_s * 1_000_000
        offset_us = (start // 1000) % bucket_us
        select = ", ".join(f"{self._fields[f]}({_ident(f)}) AS {_ident(f)}" for f in wanted)
        q = (
            f"SELECT {select} FROM {', '.join(_ident(m) for m in _measurements())} "
            f"WHERE {_ident('device')} = {_string(device)} AND time >= {start} AND time < {end} "
            f"GROUP BY time({bucket_s}s, {offset_us}u) fill(null)"
        )
        series = self._series(self._get(q), wanted)
        return DeviceHistory(device=device, since=since, until=until, bucket_s=bucket_s, series=series)

    def _get(self, q: str) -> dict[str, Any]:
        params = {"db": self.database, "q": q, "epoch": "ms"}
        try:
            resp = httpx.get(f"{self.url}/query", params=params, headers=self._headers, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise HistoryUnavailable(f"InfluxDB at {self.url} cannot be reached ({reason})") from exc
        if not resp.is_success:
            raise HistoryError(f"InfluxDB at {self.url} answered HTTP {resp.status_code}: {_error_text(resp)}")
        try:
            body = resp.json()
            result: dict[str, Any] = body["results"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise HistoryError(f"InfluxDB at {self.url} sent an answer that is not a query result") from exc
        if "error" in result:
            raise HistoryError(f"InfluxDB at {self.url} refused the query: {result['error']}")
        return result

    def _series(self, result: dict[str, Any], wanted: list[str]) -> list[FieldSeries]:
        found: dict[str, FieldSeries] = {}
        for s in result.get("series", []):
            columns: list[str] = s["columns"]
            rows: list[list[Any]] = s["values"]
            times = [_EPOCH + timedelta(milliseconds=r[0]) for r in rows]
            for i, name in enumerate(columns[1:], start=1):
                if name in found or all(r[i] is None for r in rows):
                    continue  # not a field of this measurement, or no value in the range
                values = [None if r[i] is None else float(r[i]) for r in rows]
                found[name] = FieldSeries(name, self._fields[name], list(zip(times, values, strict=True)))
        return [found[f] for f in wanted if f in found]
