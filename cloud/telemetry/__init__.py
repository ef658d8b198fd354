"""Telemetry storage: sensor readings become InfluxDB points (see :mod:`cloud.telemetry.influx`)."""

from .influx import InfluxWriter, WriterStats, to_line

__all__ = ["InfluxWriter", "WriterStats", "to_line"]
