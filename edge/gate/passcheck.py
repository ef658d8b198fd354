"""The gate's decision on a scanned visitor pass: verify offline, then count the use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sc.passes import PassClaims, PassError, Refusal, verify_token

from .ledger import PassLedger

__all__ = ["PassChecker", "PassDecision"]


@dataclass(frozen=True, slots=True)
class PassDecision:
    granted: bool
    reason: Refusal | None
    detail: str
    claims: PassClaims | None = None
    uses_left: int | None = None


class PassChecker:
    def __init__(self, *, public_key: Ed25519PublicKey, site: str, gate: str, ledger: PassLedger) -> None:
        self.public_key = public_key
        self.site = site
        self.gate = gate
        self.ledger = ledger

    def check(self, token: str, now: datetime) -> PassDecision:
        claims: PassClaims | None = None
        try:
            claims = verify_token(token, public_key=self.public_key, site=self.site, gate=self.gate, now=now)
            admission = self.ledger.admit(claims, now)
        except PassError as exc:
            return PassDecision(False, exc.reason, exc.detail, claims)
        return PassDecision(
            True, None, f"visitor {claims.vis} invited by {claims.res}", claims, uses_left=admission.left
        )
