"""Visitor passes: signed by the cloud, checked offline at the gate, never replayed past their uses."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.gate.ledger import PassLedger
from edge.gate.passcheck import PassChecker
from sc.passes import (
    PassClaims,
    PassError,
    Refusal,
    generate_key,
    load_private_key,
    load_public_key,
    sign_pass,
    verify_token,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def claims(**kw: object) -> PassClaims:
    base: dict[str, object] = {
        "pid": "p-0001-abcd", "site": "demo", "res": "r-1", "vis": "Wang Fang", "gates": ["north"],
        "nbf": int(NOW.timestamp()), "exp": int((NOW + timedelta(hours=4)).timestamp()), "uses": 2,
    }  # fmt: skip
    return PassClaims.model_validate({**base, **kw})


def check(token: str, *, gate: str = "north", now: datetime = NOW) -> PassClaims:
    return verify_token(token, public_key=KEY.public_key(), site="demo", gate=gate, now=now)


def refusal(token: str, **kw: object) -> Refusal:
    with pytest.raises(PassError) as exc:
        check(token, **kw)  # type: ignore[arg-type]
    return exc.value.reason


def test_a_signed_pass_verifies_offline() -> None:
    token = sign_pass(claims(), KEY)
    assert token.startswith("SC1.") and len(token) < 400  # fits a QR code a phone shows well
    assert check(token) == claims()


def test_forged_tampered_wrong_gate_expired_and_early_passes_are_refused_with_a_reason() -> None:
    token = sign_pass(claims(), KEY)
    assert refusal(sign_pass(claims(), Ed25519PrivateKey.generate())) is Refusal.FORGED
    head, _body, sig = token.split(".")
    other_body = sign_pass(claims(uses=50), KEY).split(".")[1]
    assert refusal(f"{head}.{other_body}.{sig}") is Refusal.FORGED  # more uses, same signature
    assert refusal(token, gate="south") is Refusal.WRONG_GATE
    assert refusal(token, now=NOW + timedelta(hours=5)) is Refusal.EXPIRED
    assert refusal(token, now=NOW - timedelta(hours=1)) is Refusal.NOT_YET_VALID
    assert refusal(sign_pass(claims(site="elsewhere"), KEY)) is Refusal.WRONG_SITE
    for junk in ("", "hello", "SC1.x", "SC1.!!.??", "SC2." + token[4:], token[:-3], "A" * 5000):
        assert refusal(junk) in (Refusal.MALFORMED, Refusal.FORGED)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600))
def test_any_text_is_refused_cleanly(text: str) -> None:
    with pytest.raises(PassError) as exc:
        check(text)
    assert exc.value.reason in (Refusal.MALFORMED, Refusal.FORGED)


def test_a_pass_cannot_be_replayed_past_its_uses_even_across_restarts(tmp_path: Path) -> None:
    ledger = PassLedger(tmp_path / "ledger.db")
    gate = PassChecker(public_key=KEY.public_key(), site="demo", gate="north", ledger=ledger)
    token = sign_pass(claims(uses=2), KEY)
    first, second = gate.check(token, NOW), gate.check(token, NOW)
    assert (first.granted, first.uses_left, second.granted, second.uses_left) == (True, 1, True, 0)
    ledger.close()
    gate.ledger = PassLedger(tmp_path / "ledger.db")  # the gate restarts: the count stays
    third = gate.check(token, NOW)
    assert (third.granted, third.reason, third.detail) == (False, Refusal.USED_UP, "all 2 uses taken")
    other = gate.check(sign_pass(claims(pid="p-0002-abcd"), KEY), NOW)
    assert other.granted and other.detail == "visitor Wang Fang invited by r-1"


def test_two_readers_cannot_both_take_the_last_use(tmp_path: Path) -> None:
    ledger = PassLedger(tmp_path / "ledger.db")
    gate = PassChecker(public_key=KEY.public_key(), site="demo", gate="north", ledger=ledger)
    token = sign_pass(claims(uses=3), KEY)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def scan() -> None:
        barrier.wait()
        results.append(gate.check(token, NOW).granted)

    threads = [threading.Thread(target=scan) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True] * 3
    assert ledger.used("p-0001-abcd") == 3


def test_a_revoked_pass_is_refused_and_old_records_are_pruned(tmp_path: Path) -> None:
    ledger = PassLedger(tmp_path / "ledger.db")
    gate = PassChecker(public_key=KEY.public_key(), site="demo", gate="north", ledger=ledger)
    c = claims(uses=5)
    token = sign_pass(c, KEY)
    assert gate.check(token, NOW).granted
    ledger.revoke(c.pid, c.exp)
    d = gate.check(token, NOW)
    assert (d.granted, d.reason) == (False, Refusal.REVOKED)
    assert ledger.prune(NOW + timedelta(days=3)) == 2
    assert ledger.used(c.pid) == 0


def test_key_files_round_trip(tmp_path: Path) -> None:
    generate_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    token = sign_pass(claims(), load_private_key(tmp_path / "k.pem"))
    pub = load_public_key(tmp_path / "k.pub.pem")
    assert verify_token(token, public_key=pub, site="demo", gate="north", now=NOW).vis == "Wang Fang"
    with pytest.raises(ValueError, match="a pass must end after it starts"):
        sign_pass(claims(exp=int(NOW.timestamp()) - 1), KEY)
