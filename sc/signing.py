"""Signed commands: the cloud signs every command it sends, a gateway runs only what verifies.

The signature is Ed25519 (the cloud's command key, a pair of its own beside
the visitor-pass key; the gateways hold the public half, ``command_public_key``
in the site config) over the command's *signing bytes*: its JSON object
without ``sig``, keys sorted, no spaces, ASCII only::

    json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

A gateway computes them from the JSON it received, not from its own model of
it, so a cloud and a gateway of different versions still agree on the bytes.

:class:`CommandVerifier` refuses (:class:`CommandRefused`, with a
:class:`CommandRefusal`) in this order: not a JSON object or too large
(``malformed``); no signature (``unsigned``); a signature that does not verify
with the site's key (``forged``); a signed command that is not a valid
command (``malformed``: bad arguments); for another site, gateway or device
than the topic's (``wrong_target``); issued in the future beyond the clock
allowance (``not_yet_valid``); living longer than its name allows
(``too_long_lived``); past its ``expires`` (``expired``). What it has seen
before is the gateway's own memory (``edge/commands.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sc.contracts.commands import (
    ARGS_MODEL,
    COMMAND_TTL_S,
    Command,
    CommandArgs,
    CommandName,
)
from sc.contracts.messages import MAX_PAYLOAD_BYTES, ContractError, decode, new_id, utcnow
from sc.passes import load_private_key, load_public_key

__all__ = [
    "CLOCK_ALLOWANCE_S",
    "CommandRefusal",
    "CommandRefused",
    "CommandSigner",
    "CommandVerifier",
    "load_signer",
    "load_verifier",
    "sign_body",
    "signing_bytes",
]

#: How far in the future a command's ``ts`` may be by the gateway's clock (the two clocks differ a little).
CLOCK_ALLOWANCE_S = 30.0


class CommandRefusal(StrEnum):
    """Why a gateway would not run a command: in its refused answer, its log and its ``command_refused`` event."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    FORGED = "forged"
    WRONG_TARGET = "wrong_target"
    NOT_YET_VALID = "not_yet_valid"
    TOO_LONG_LIVED = "too_long_lived"
    EXPIRED = "expired"
    NO_KEY = "no_key"  # the gateway has no command key: it runs nothing


class CommandRefused(ContractError):
    """A command the gateway will not run; ``command_id`` and ``name`` as far as they could be read."""

    def __init__(self, refusal: CommandRefusal, detail: str, *, command_id: str = "", name: str = "") -> None:
        super().__init__(f"{refusal.value}: {detail}")
        self.refusal = refusal
        self.detail = detail
        self.command_id = command_id
        self.name = name


def signing_bytes(body: dict[str, Any]) -> bytes:
    """The bytes a command's signature covers: its JSON object without ``sig``, canonically written."""
    return json.dumps(
        {k: v for k, v in body.items() if k != "sig"}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def sign_body(key: Ed25519PrivateKey, body: dict[str, Any]) -> str:
    """The ``sig`` of a command's JSON object (base64url, no padding)."""
    return _b64(key.sign(signing_bytes(body)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class CommandSigner:
    """Builds and signs the cloud's commands for one site."""

    key: Ed25519PrivateKey
    site: str
    clock: Callable[[], datetime] = utcnow

    def command(
        self,
        *,
        gateway: str,
        device: str,
        name: CommandName,
        args: CommandArgs | None = None,
        command_id: str | None = None,
        ttl_s: float | None = None,
    ) -> Command:
        """A signed ``name`` command for ``device`` of ``gateway``, valid from now for ``ttl_s`` (default: the
        name's whole COMMAND_TTL_S). Give ``command_id`` to send a command again (a resend keeps its id)."""
        now = self.clock()
        ttl = COMMAND_TTL_S[name] if ttl_s is None else min(ttl_s, COMMAND_TTL_S[name])
        unsigned = Command(
            id=command_id or new_id(),
            ts=now,
            expires=now + timedelta(seconds=ttl),
            site=self.site,
            gateway=gateway,
            device=device,
            name=name,
            args=args if args is not None else ARGS_MODEL[name](),
        )
        return self.sign(unsigned)

    def sign(self, cmd: Command) -> Command:
        body = cmd.model_dump(mode="json", exclude_none=True, exclude={"sig"})
        return cmd.model_copy(update={"sig": sign_body(self.key, body)})


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key {k!r} appears twice")
        out[k] = v
    return out


def _short(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


@dataclass
class CommandVerifier:
    """Checks the commands on one gateway's topics (see the module's docstring for the order of the checks)."""

    key: Ed25519PublicKey | None
    site: str
    gateway: str
    clock: Callable[[], datetime] = utcnow
    allowance_s: float = CLOCK_ALLOWANCE_S

    def verify(self, device: str, payload: bytes) -> Command:
        """The command on ``device``'s command topic, if this gateway may run it now; else :class:`CommandRefused`
        (``command_id`` and ``name`` filled in as far as they could be read, for the refused answer)."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise CommandRefused(CommandRefusal.MALFORMED, f"{len(payload)} bytes, over the {MAX_PAYLOAD_BYTES} limit")
        try:
            raw = json.loads(payload, object_pairs_hook=_no_duplicate_keys)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise CommandRefused(CommandRefusal.MALFORMED, f"not JSON: {str(exc)[:120]}") from exc
        if not isinstance(raw, dict):
            raise CommandRefused(CommandRefusal.MALFORMED, "not a JSON object")
        cid, name = _short(raw.get("id"), 64), _short(raw.get("name"), 40)
        sig = raw.get("sig")
        if sig is None:
            raise CommandRefused(CommandRefusal.UNSIGNED, "the command carries no signature", command_id=cid, name=name)
        if self.key is None:
            raise CommandRefused(
                CommandRefusal.NO_KEY, "this gateway has no command_public_key", command_id=cid, name=name
            )
        try:
            if not isinstance(sig, str) or len(sig) > 128:
                raise ValueError("not a signature")
            self.key.verify(_unb64(sig), signing_bytes(raw))
        except (InvalidSignature, ValueError, binascii.Error, TypeError) as exc:
            raise CommandRefused(
                CommandRefusal.FORGED, "the signature does not match the site's command key", command_id=cid, name=name
            ) from exc
        try:
            cmd = decode(Command, payload)
        except ContractError as exc:
            raise CommandRefused(CommandRefusal.MALFORMED, str(exc), command_id=cid, name=name) from exc
        return self.check(device, cmd)

    def check(self, device: str, cmd: Command) -> Command:
        """The checks of a signed, well-formed command that depend on where it came and when."""

        def refuse(refusal: CommandRefusal, detail: str) -> CommandRefused:
            return CommandRefused(refusal, detail, command_id=cmd.id, name=cmd.name.value)

        target, here = (cmd.site, cmd.gateway, cmd.device), (self.site, self.gateway, device)
        if target != here:
            raise refuse(CommandRefusal.WRONG_TARGET, f"addressed to {'/'.join(target)}, came to {'/'.join(here)}")
        now = self.clock()
        ahead = (cmd.ts - now).total_seconds()
        if ahead > self.allowance_s:
            raise refuse(
                CommandRefusal.NOT_YET_VALID,
                f"issued {ahead:.0f} s in this gateway's future (is the gateway's clock right?)",
            )
        if cmd.lifetime_s() > COMMAND_TTL_S[cmd.name] + 1:
            raise refuse(
                CommandRefusal.TOO_LONG_LIVED,
                f"valid for {cmd.lifetime_s():.0f} s; a {cmd.name.value} may live {COMMAND_TTL_S[cmd.name]:.0f} s",
            )
        if not cmd.valid_at(now):
            late = (now - cmd.expires).total_seconds()
            raise refuse(CommandRefusal.EXPIRED, f"expired {late:.1f} s ago")
        return cmd


def load_signer(path: Path, *, site: str, clock: Callable[[], datetime] = utcnow) -> CommandSigner:
    """The cloud's signer from its private key file (OSError / ValueError if it cannot be read)."""
    return CommandSigner(load_private_key(path), site=site, clock=clock)


def load_verifier(
    path: Path | None, *, site: str, gateway: str, clock: Callable[[], datetime] = utcnow
) -> CommandVerifier:
    """A gateway's verifier from the cloud's public command key (none: every command is refused)."""
    return CommandVerifier(None if path is None else load_public_key(path), site=site, gateway=gateway, clock=clock)
