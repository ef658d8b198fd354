"""Hypothesis strategies for commands: every name with arguments its model accepts (sc/contracts/commands.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import strategies as st

from sc.contracts.commands import (
    COMMAND_TTL_S,
    EMBEDDING_DIM,
    Command,
    CommandArgs,
    CommandName,
    DoorOpenArgs,
    GalleryDeleteArgs,
    GalleryDigestArgs,
    GalleryPutArgs,
    HealthArgs,
    LightsOverrideArgs,
    PassRevokeArgs,
    PingArgs,
    PollNowArgs,
    encode_embedding_b64,
)
from sc.contracts.messages import OverrideLevel

ID_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
device_ids = st.builds(lambda a, b: a + b, st.sampled_from(ID_FIRST), st.text(alphabet=ID_FIRST + "-_", max_size=20))
command_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-", min_size=8, max_size=64
)
resident_ids = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=64)
versions = st.integers(0, 2**63 - 1)
embeddings = (
    st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32),
        min_size=EMBEDDING_DIM,
        max_size=EMBEDDING_DIM,
    )
    .filter(any)
    .map(lambda v: encode_embedding_b64(np.asarray(v, dtype=np.float32)))
)
seconds = st.floats(min_value=0.001, max_value=7 * 86400, allow_nan=False, allow_infinity=False)

ARGS: dict[CommandName, st.SearchStrategy[CommandArgs]] = {
    CommandName.PING: st.just(PingArgs()),
    CommandName.POLL_NOW: st.just(PollNowArgs()),
    CommandName.HEALTH: st.just(HealthArgs()),
    CommandName.GALLERY_DIGEST: st.just(GalleryDigestArgs()),
    CommandName.GALLERY_PUT: st.builds(
        GalleryPutArgs,
        resident=resident_ids,
        name=st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=120),
        embedding=embeddings,
        version=versions,
    ),
    CommandName.GALLERY_DELETE: st.builds(
        GalleryDeleteArgs, resident=resident_ids, version=st.one_of(st.none(), versions)
    ),
    CommandName.DOOR_OPEN: st.builds(
        DoorOpenArgs,
        by=st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=120),
    ),
    CommandName.PASS_REVOKE: st.builds(
        PassRevokeArgs,
        pass_id=st.text(alphabet=ID_FIRST + "ABCXYZ-_", min_size=8, max_size=40),
        expires=st.one_of(st.none(), st.integers(0, 2**53)),
    ),
    CommandName.LIGHTS_OVERRIDE: st.builds(
        LightsOverrideArgs,
        level=st.sampled_from(list(OverrideLevel)),
        lights=st.one_of(st.none(), st.lists(device_ids, min_size=1, max_size=20)),
        for_s=st.one_of(st.none(), seconds),
    ),
}

issued = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@st.composite
def commands(draw: st.DrawFn) -> Command:
    """An unsigned command of any name, with valid arguments and a lifetime its name allows."""
    name = draw(st.sampled_from(list(CommandName)))
    ts = draw(issued)
    ttl = draw(st.floats(min_value=0.001, max_value=COMMAND_TTL_S[name], allow_nan=False))
    return Command(
        id=draw(command_ids), ts=ts, expires=ts + timedelta(seconds=ttl), site=draw(device_ids),
        gateway=draw(device_ids), device=draw(device_ids), name=name, args=draw(ARGS[name]),
    )  # fmt: skip
