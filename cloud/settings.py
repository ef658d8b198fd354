"""Runtime settings of the cloud services, built once at start and passed down.

Read from the command line, else from ``SC_CLOUD_*`` environment variables,
else these defaults (which suit the demo on one machine). The site config
(grid tree, routing, accounts) is separate: it is the same for every process.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CloudSettings"]


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SC_CLOUD_", extra="forbid", frozen=True)

    database_url: str = Field(
        default="sqlite:///run/cloud.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql://user:pass@host/db",
    )
    influx_url: str | None = Field(default=None, description="InfluxDB base URL; unset: telemetry is not stored")
    influx_database: str = Field(default="sc", description="InfluxDB 1.x database")
    influx_token: str | None = Field(default=None, description="InfluxDB 2.x token")
    influx_org: str | None = None
    influx_bucket: str | None = Field(default=None, description="InfluxDB 2.x bucket (switches to /api/v2/write)")
    instance: str = Field(
        default="1",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="this ingester's name: its MQTT session survives restarts",
    )
    share_group: str = Field(default="ingest", pattern=r"^[a-z0-9_-]{1,32}$")
    session_expiry_s: int = Field(
        default=24 * 3600,
        ge=60,
        description="how long the broker keeps a crashed ingester's share of messages for its return",
    )
    batch_max: int = Field(default=500, ge=1, le=10_000, description="messages per database transaction")
    queue_max: int = Field(default=20_000, ge=100, description="messages buffered between MQTT and the database")
    escalation_interval_s: float = Field(default=10.0, gt=0, description="how often deadlines are checked")
    privacy_check_s: float = Field(
        default=60.0, gt=0, description="how often gates' unconfirmed removals are checked (privacy.deletion_alarm_min)"
    )
    retention_interval_h: float = Field(
        default=24.0, gt=0, description="how often the retention job runs (at start, then this often)"
    )
    device_flush_s: float = Field(default=1.0, gt=0, description="how often device state is written")
    health_port: int | None = Field(default=None, ge=0, le=65535)
    api_port: int | None = Field(default=None, ge=0, le=65535, description="serve the HTTP API here (0: any free port)")
    api_host: str = Field(default="127.0.0.1", description="address the API listens on")
    token_ttl_h: float = Field(default=12.0, gt=0, description="how long a sign-in lasts")
    media_dir: str = Field(
        default="run/media", description="where photos attached to reports and gate snapshots (snapshots/) are kept"
    )
    gate_sync_interval_s: float = Field(default=2.0, gt=0, description="how often gallery deliveries are checked")
    gate_ack_timeout_s: float = Field(
        default=30.0, gt=0, description="a gallery command unanswered this long is sent again (doubling per attempt)"
    )
    gate_retry_max_s: float = Field(default=600.0, gt=0, description="the longest wait between two resends")
    door_open_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="how long a remote open waits for the gate"
    )
    password_scrypt_n: int = Field(
        default=2**17,
        ge=2**10,
        le=2**20,
        description="scrypt's N for password hashes (a power of two; 2**17 is OWASP's; older hashes are made anew "
        "at the next sign-in)",
    )

    @field_validator("password_scrypt_n")
    @classmethod
    def _power_of_two(cls, n: int) -> int:
        if n & (n - 1):
            raise ValueError(f"scrypt's N must be a power of two (got {n})")
        return n

    signin_failures: int = Field(
        default=5, ge=1, description="wrong passwords per account in signin_window_s before it must wait (429)"
    )
    signin_attempts: int = Field(default=60, ge=1, description="sign-ins per client address in signin_window_s")
    signin_window_s: float = Field(default=300.0, gt=0, description="the sign-in limits' window, seconds")
    live_streams_per_user: int = Field(default=3, ge=1, le=100, description="live feeds one user may hold open")
    live_streams_max: int = Field(default=100, ge=1, description="live feeds one API process holds open at most")
    live_replay_max: int = Field(
        default=1000, ge=0, description="order changes a reconnecting live feed is replayed at most"
    )
    command_key_file: str = Field(
        default="run/keys/commands.pem",
        description="Ed25519 key that signs every command to the gateways; made at first start with its .pub.pem "
        "(the site config's command_public_key)",
    )
    pass_key_file: str = Field(
        default="run/keys/visitor-pass.pem",
        description="Ed25519 key that signs visitor passes; made at first start with its .pub.pem for the gates",
    )
