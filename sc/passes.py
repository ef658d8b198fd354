"""Visitor passes: the one owner of their format, signing and checking.

A resident asks the cloud for a pass; the cloud signs it with the site's
Ed25519 key and hands out a QR code of the token; a gate checks it offline
with the public key alone. The token is short enough for a QR code a phone
screen shows well:

    SC1.<base64url(JSON claims)>.<base64url(Ed25519 signature over "SC1.<claims>")>

Claims: ``pid`` (pass id), ``site``, ``res`` (the resident who invited),
``vis`` (visitor's name), ``gates`` (gate ids), ``nbf``/``exp`` (valid from /
until, Unix seconds), ``uses`` (how many entries it allows).

:func:`verify_token` checks everything that needs no memory: format,
signature, site, gate and time window. How often a pass was used is the
gate's own ledger (``edge/gate/ledger.py``): a pass cannot be replayed past
its ``uses`` at a gate, even offline.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sc.contracts.topics import ID_PATTERN

__all__ = [
    "PREFIX",
    "PassClaims",
    "PassError",
    "Refusal",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "sign_pass",
    "verify_token",
]

PREFIX = "SC1"
MAX_TOKEN_CHARS = 1024


class Refusal(StrEnum):
    """Why a gate refuses a pass: said to the visitor, logged, and sent as an event."""

    MALFORMED = "malformed"
    FORGED = "forged"  # signature does not verify
    WRONG_SITE = "wrong_site"
    WRONG_GATE = "wrong_gate"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    USED_UP = "used_up"  # replayed past its uses (the gate ledger decides)
    REVOKED = "revoked"


class PassError(ValueError):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class PassClaims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: str = Field(min_length=8, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    site: str = Field(pattern=ID_PATTERN.pattern)
    res: str = Field(min_length=1, max_length=64, description="the inviting resident's user id")
    vis: str = Field(min_length=1, max_length=64, description="the visitor's name")
    gates: list[str] = Field(min_length=1, max_length=16)
    nbf: int = Field(ge=0, description="valid from, Unix seconds")
    exp: int = Field(ge=0, description="valid until, Unix seconds")
    uses: int = Field(ge=1, le=100)

    def valid_from(self) -> datetime:
        return datetime.fromtimestamp(self.nbf, UTC)

    def valid_until(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_pass(claims: PassClaims, key: Ed25519PrivateKey) -> str:
    if claims.exp <= claims.nbf:
        raise ValueError("a pass must end after it starts")
    body = f"{PREFIX}.{_b64(claims.model_dump_json().encode())}"
    return f"{body}.{_b64(key.sign(body.encode()))}"


def verify_token(
    token: str, *, public_key: Ed25519PublicKey, site: str, gate: str, now: datetime, leeway_s: int = 60
) -> PassClaims:
    """The pass's claims if it may open ``gate`` at ``now`` (uses aside); else :class:`PassError`."""
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise PassError(Refusal.MALFORMED, "too long to be a pass")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise PassError(Refusal.MALFORMED, f"not a {PREFIX} pass")
    try:
        signature = _unb64(parts[2])
        raw = _unb64(parts[1])
    except (ValueError, TypeError) as exc:
        raise PassError(Refusal.MALFORMED, "bad encoding") from exc
    try:
        public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode())
    except InvalidSignature as exc:
        raise PassError(Refusal.FORGED, "the signature does not match this site's key") from exc
    try:
        claims = PassClaims.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:  # signed but unreadable: a key misuse, refuse all the same
        raise PassError(Refusal.MALFORMED, "unreadable claims") from exc
    if claims.site != site:
        raise PassError(Refusal.WRONG_SITE, f"issued for site {claims.site!r}")
    if gate not in claims.gates:
        raise PassError(Refusal.WRONG_GATE, f"valid at {', '.join(claims.gates)}, not {gate}")
    t = now.timestamp()
    if t + leeway_s < claims.nbf:
        raise PassError(Refusal.NOT_YET_VALID, f"valid from {claims.valid_from():%Y-%m-%d %H:%M} UTC")
    if t - leeway_s > claims.exp:
        raise PassError(Refusal.EXPIRED, f"expired {claims.valid_until():%Y-%m-%d %H:%M} UTC")
    return claims


# --------------------------------------------------------------------------- keys


def generate_key(private_path: Path, public_path: Path) -> None:
    """A new site key pair: the private key stays with the cloud (0600), the public one goes to gates."""
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.touch(mode=0o600, exist_ok=False)
    private_path.write_bytes(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key
