"""Commands as a typed, signed contract: one arguments model per name, a signature over what was sent, and a
gateway that refuses what is unsigned, forged, misaddressed, too long-lived or expired (sc/contracts/commands.py,
sc/signing.py). Arbitrary bytes never get past the checks, and never raise anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from command_strategies import commands
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sc.contracts.commands import (
    ARGS_MODEL,
    COMMAND_TTL_S,
    RESULT_MODEL,
    Command,
    CommandAck,
    CommandName,
    DoorOpenArgs,
    DoorOpenResult,
    PassRevokeArgs,
    result_of,
)
from sc.contracts.messages import ContractError, decode, encode
from sc.signing import CLOCK_ALLOWANCE_S, CommandRefusal, CommandRefused, CommandSigner, CommandVerifier, sign_body

FAST = settings(max_examples=200, deadline=None)
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def signer(at: datetime = NOW, key: Ed25519PrivateKey = KEY) -> CommandSigner:
    return CommandSigner(key, site="heping", clock=lambda: at)


def verifier(at: datetime = NOW) -> CommandVerifier:
    return CommandVerifier(KEY.public_key(), site="heping", gateway="gw-north", clock=lambda: at)


def door(**kw: Any) -> Command:
    return signer(**kw).command(
        gateway="gw-north", device="north", name=CommandName.DOOR_OPEN, args=DoorOpenArgs(by="op-1")
    )


def refusal(payload: bytes, device: str = "north", at: datetime = NOW) -> CommandRefused:
    with pytest.raises(CommandRefused) as exc:
        verifier(at).verify(device, payload)
    return exc.value


def test_every_name_has_an_arguments_model_a_result_model_and_a_lifetime() -> None:
    assert set(ARGS_MODEL) == set(RESULT_MODEL) == set(COMMAND_TTL_S) == set(CommandName)
    assert COMMAND_TTL_S[CommandName.DOOR_OPEN] == 10.0  # a door opens within seconds of the ask, or never


def test_a_signed_command_verifies_and_round_trips() -> None:
    cmd = door()
    assert cmd.sig is not None and cmd.lifetime_s() == 10.0
    assert verifier().verify("north", encode(cmd)) == cmd


def test_the_signer_never_makes_a_command_live_longer_than_its_name_allows() -> None:
    short = signer().command(gateway="g", device="d", name=CommandName.DOOR_OPEN, args=DoorOpenArgs(by="x"), ttl_s=2)
    long = signer().command(gateway="g", device="d", name=CommandName.DOOR_OPEN, args=DoorOpenArgs(by="x"), ttl_s=900)
    assert (short.lifetime_s(), long.lifetime_s()) == (2.0, 10.0)


def test_a_resend_keeps_its_id_and_is_signed_anew() -> None:
    first = signer().command(gateway="g", device="d", name=CommandName.PING, command_id="delivery-1")
    later = signer(NOW + timedelta(hours=2)).command(
        gateway="g", device="d", name=CommandName.PING, command_id="delivery-1"
    )
    assert first.id == later.id == "delivery-1" and first.sig != later.sig and later.ts == NOW + timedelta(hours=2)


@pytest.mark.parametrize(
    ("mutate", "refused", "detail"),
    [
        (lambda d: d.pop("sig"), CommandRefusal.UNSIGNED, "the command carries no signature"),
        (lambda d: d.update(sig="AAAA"), CommandRefusal.FORGED, "the signature does not match the site's command key"),
        (lambda d: d.update(sig=5), CommandRefusal.FORGED, "the signature does not match the site's command key"),
        (
            lambda d: d["args"].update(by="mallory"),
            CommandRefusal.FORGED,
            "the signature does not match the site's command key",
        ),
        (
            lambda d: d.update(device="south"),
            CommandRefusal.FORGED,
            "the signature does not match the site's command key",
        ),
        (
            lambda d: d.update(expires="2027-01-01T00:00:00Z"),
            CommandRefusal.FORGED,
            "the signature does not match the site's command key",
        ),
    ],
)
def test_a_changed_or_unsigned_command_is_refused(mutate: Any, refused: CommandRefusal, detail: str) -> None:
    cmd = door()
    d = json.loads(encode(cmd))
    mutate(d)
    exc = refusal(json.dumps(d).encode())
    assert (exc.refusal, exc.detail, exc.command_id, exc.name) == (refused, detail, cmd.id, "door_open")


def test_a_command_signed_with_another_key_is_forged() -> None:
    assert refusal(encode(door(key=OTHER))).refusal is CommandRefusal.FORGED


def test_a_command_for_another_gate_gateway_or_site_is_refused_though_signed() -> None:
    exc = refusal(encode(door()), device="south")
    assert (exc.refusal, exc.detail) == (
        CommandRefusal.WRONG_TARGET,
        "addressed to heping/gw-north/north, came to heping/gw-north/south",
    )
    other = CommandSigner(KEY, site="elsewhere", clock=lambda: NOW).command(
        gateway="gw-north", device="north", name=CommandName.PING
    )
    assert refusal(encode(other)).refusal is CommandRefusal.WRONG_TARGET


def test_an_expired_command_is_refused_and_one_just_in_time_runs() -> None:
    cmd = encode(door())
    assert verifier(NOW + timedelta(seconds=10)).verify("north", cmd).id  # at its expiry: still valid
    exc = refusal(cmd, at=NOW + timedelta(seconds=10.5))
    assert (exc.refusal, exc.detail) == (CommandRefusal.EXPIRED, "expired 0.5 s ago")


def test_a_command_from_the_future_is_refused_beyond_the_clock_allowance() -> None:
    ahead = encode(door(at=NOW + timedelta(seconds=CLOCK_ALLOWANCE_S - 1)))
    assert verifier().verify("north", ahead).id
    exc = refusal(encode(door(at=NOW + timedelta(seconds=CLOCK_ALLOWANCE_S + 5))))
    assert exc.refusal is CommandRefusal.NOT_YET_VALID and "is the gateway's clock right?" in exc.detail


def test_a_signed_command_living_longer_than_its_name_allows_is_refused() -> None:
    d = json.loads(encode(door()))
    d["expires"] = "2026-12-02T09:00:00Z"
    d["sig"] = sign_body(KEY, d)
    exc = refusal(json.dumps(d).encode())
    assert (exc.refusal, exc.detail) == (CommandRefusal.TOO_LONG_LIVED, "valid for 3600 s; a door_open may live 10 s")


def test_a_signed_command_with_bad_arguments_is_refused_with_the_argument_named() -> None:
    body = json.loads(encode(signer().command(gateway="gw-north", device="north", name=CommandName.PASS_REVOKE,
                                              args=PassRevokeArgs(pass_id="p-12345678"))))  # fmt: skip
    body["args"]["expires"] = "next week"
    body["sig"] = sign_body(KEY, body)
    exc = refusal(json.dumps(body).encode())
    assert exc.refusal is CommandRefusal.MALFORMED and exc.command_id == body["id"]
    assert (
        exc.detail
        == "invalid Command: args.expires: Input should be a valid integer, unable to parse string as an integer"
    )


def test_duplicate_keys_are_refused_not_resolved() -> None:
    cmd = encode(door())
    doubled = cmd[:-1] + b',"device":"south"}'
    assert refusal(doubled).refusal is CommandRefusal.MALFORMED


def test_no_key_refuses_everything_and_says_why() -> None:
    v = CommandVerifier(None, site="heping", gateway="gw-north", clock=lambda: NOW)
    with pytest.raises(CommandRefused) as exc:
        v.verify("north", encode(door()))
    assert (exc.value.refusal, exc.value.detail) == (CommandRefusal.NO_KEY, "this gateway has no command_public_key")


def test_a_typed_result_is_read_back_and_a_wrong_one_is_a_contract_error() -> None:
    ok = CommandAck(id="c-12345678", ok=True, result={"opened": True})
    assert result_of(CommandName.DOOR_OPEN, ok) == DoorOpenResult(opened=True)
    with pytest.raises(ContractError, match="invalid door_open result: opened: Field required"):
        result_of(CommandName.DOOR_OPEN, CommandAck(id="c-12345678", ok=True, result={}))
    with pytest.raises(ContractError, match="refused: no door"):
        result_of(CommandName.DOOR_OPEN, CommandAck(id="c-12345678", ok=False, error="no door"))


@FAST
@given(cmd=commands())
def test_every_valid_command_signs_verifies_and_round_trips(cmd: Command) -> None:
    s = CommandSigner(KEY, site=cmd.site, clock=lambda: cmd.ts)
    signed = s.sign(cmd)
    v = CommandVerifier(KEY.public_key(), site=cmd.site, gateway=cmd.gateway, clock=lambda: cmd.ts)
    assert v.verify(cmd.device, encode(signed)) == signed
    assert decode(Command, encode(signed)) == signed


@FAST
@given(cmd=commands(), flip=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_one_bit_changed_in_a_signed_command_is_refused(cmd: Command, flip: int, bit: int) -> None:
    s = CommandSigner(KEY, site=cmd.site, clock=lambda: cmd.ts)
    data = bytearray(encode(s.sign(cmd)))
    data[flip % len(data)] ^= 1 << bit
    v = CommandVerifier(KEY.public_key(), site=cmd.site, gateway=cmd.gateway, clock=lambda: cmd.ts)
    try:
        out = v.verify(cmd.device, bytes(data))
    except CommandRefused:
        return
    # a few flips leave the meaning as it was (a letter's case in a hex digit of the signature's padding bits)
    assert out.model_dump(exclude={"sig"}) == cmd.model_dump(exclude={"sig"})


@FAST
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_never_raised(data: bytes) -> None:
    with pytest.raises(CommandRefused):
        verifier().verify("north", data)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@FAST
@given(
    obj=st.dictionaries(
        st.sampled_from(["v", "id", "ts", "expires", "site", "gateway", "device", "name", "args", "sig", "x"]),
        json_values,
    )
)
def test_arbitrary_json_objects_signed_with_the_right_key_are_refused_or_valid(obj: dict[str, Any]) -> None:
    """Even what the cloud's key signed (a bug, a stolen key) is checked as a command before it runs."""
    obj = {k: v for k, v in obj.items() if k != "sig"}
    obj["sig"] = sign_body(KEY, obj)
    try:
        cmd = verifier().verify("north", json.dumps(obj).encode())
    except CommandRefused as exc:
        assert exc.refusal in set(CommandRefusal)
    else:
        assert isinstance(cmd, Command) and cmd.device == "north"
