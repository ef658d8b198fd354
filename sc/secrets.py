"""Reading account passwords from their files (never from the YAML itself)."""

from __future__ import annotations

from sc.config.loader import LoadedConfig
from sc.config.schema import MqttAccount

__all__ = ["SecretError", "read_password"]


class SecretError(Exception):
    """A password file that is missing, unreadable or empty; the message says what to do."""


def read_password(loaded: LoadedConfig, account: MqttAccount) -> str:
    path = loaded.resolve(account.password_file)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise SecretError(
            f"password file {path} for account {account.username!r} does not exist; "
            f"create it with: sc broker provision --config {loaded.path}"
        ) from exc
    except OSError as exc:
        raise SecretError(f"cannot read password file {path}: {exc}") from exc
    if not password:
        raise SecretError(f"password file {path} is empty")
    return password
