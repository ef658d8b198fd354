"""sc.contracts.topics: build, print, parse, filters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sc.contracts.topics import (
    ID_PATTERN,
    PREFIX,
    SCHEMA_VERSION,
    Kind,
    Topic,
    TopicError,
    check_id,
    topic_filter,
)

FAST = settings(max_examples=150, deadline=None)

ID_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_REST = ID_FIRST + "-_"

ids = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(ID_FIRST),
    st.text(alphabet=ID_REST, max_size=63),
)
kinds = st.sampled_from(list(Kind))


# --------------------------------------------------------------------------- ids


def test_id_pattern_is_what_the_docstring_says() -> None:
    assert ID_PATTERN.pattern == r"^[a-z0-9][a-z0-9_-]{0,63}$"
    assert PREFIX == "sc"
    assert SCHEMA_VERSION == "v1"


@FAST
@given(ids)
def test_generated_ids_are_valid(value: str) -> None:
    assert ID_PATTERN.match(value)
    assert check_id(value) == value


@pytest.mark.parametrize("good", ["a", "0", "a" * 64, "gw-heping-sensors", "smoke_1", "9-_"])
def test_check_id_accepts(good: str) -> None:
    assert check_id(good, "device id") is good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a" * 65,
        "Abc",
        "aBc",
        "ABC",
        "+",
        "#",
        "a/b",
        "a+b",
        "a#",
        "$sys",
        "$SYS",
        "-abc",
        "_abc",
        "a b",
        " a",
        "a\n",
        "a.b",
        "é",
        "a\x00",
    ],
)
def test_check_id_rejects(bad: str) -> None:
    with pytest.raises(TopicError) as exc:
        check_id(bad, "device id")
    msg = str(exc.value)
    assert msg.startswith(f"invalid device id {bad!r}: ")
    assert "1-64 lower-case letters" in msg


def test_check_id_rejects_non_strings() -> None:
    for bad in (None, 1, b"abc", ["a"]):
        with pytest.raises(TopicError):
            check_id(bad)  # type: ignore[arg-type]


def test_topic_error_is_a_value_error() -> None:
    assert issubclass(TopicError, ValueError)


# --------------------------------------------------------------------------- Topic


def test_topic_str_exact() -> None:
    t = Topic("demo", "gw-1", Kind.EVENT, "smoke-1")
    assert str(t) == "sc/v1/demo/gw-1/event/smoke-1"
    assert str(Topic("s", "g", Kind.CMD_ACK, "d")) == "sc/v1/s/g/cmd-ack/d"


def test_topic_kind_given_as_string_is_coerced() -> None:
    t = Topic("s", "g", "telemetry", "d")  # type: ignore[arg-type]
    assert t.kind is Kind.TELEMETRY
    assert str(t) == "sc/v1/s/g/telemetry/d"


def test_topic_unknown_kind() -> None:
    with pytest.raises(TopicError, match="unknown topic kind 'alarm'"):
        Topic("s", "g", "alarm", "d")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["site", "gateway", "device"])
@pytest.mark.parametrize("bad", ["", "+", "#", "a/b", "UP", "$sys", "x" * 65])
def test_topic_rejects_bad_ids(field: str, bad: str) -> None:
    parts = {"site": "s", "gateway": "g", "device": "d"}
    parts[field] = bad
    with pytest.raises(TopicError, match=f"invalid {field} id"):
        Topic(parts["site"], parts["gateway"], Kind.STATUS, parts["device"])


def test_topic_is_frozen() -> None:
    t = Topic("s", "g", Kind.STATUS, "d")
    with pytest.raises(AttributeError):
        t.site = "x"  # type: ignore[misc]


@FAST
@given(ids, ids, kinds, ids)
def test_round_trip(site: str, gateway: str, kind: Kind, device: str) -> None:
    t = Topic(site, gateway, kind, device)
    s = str(t)
    assert s == f"sc/v1/{site}/{gateway}/{kind.value}/{device}"
    back = Topic.parse(s)
    assert back == t
    assert back.kind is kind
    assert str(back) == s


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("sc/v1/s/g/event", "has 5 levels, expected 6"),
        ("sc/v1/s/g/event/d/x", "has 7 levels, expected 6"),
        ("", "has 1 levels, expected 6"),
        ("sc/v1/s/g/event/d/", "has 7 levels, expected 6"),
        ("/sc/v1/s/g/event", "does not start with 'sc'"),
        ("xx/v1/s/g/event/d", "does not start with 'sc'"),
        ("SC/v1/s/g/event/d", "does not start with 'sc'"),
        ("sc/v2/s/g/event/d", "has schema version 'v2', expected 'v1'"),
        ("sc/V1/s/g/event/d", "has schema version 'V1', expected 'v1'"),
        ("sc/v1/s/g/alarm/d", "has unknown kind 'alarm'"),
        ("sc/v1/s/g/EVENT/d", "has unknown kind 'EVENT'"),
        ("sc/v1/s/g/+/d", "has unknown kind '+'"),
        ("sc/v1/+/g/event/d", "invalid site id '+'"),
        ("sc/v1/s/#/event/d", "invalid gateway id '#'"),
        ("sc/v1/s/g/event/+", "invalid device id '+'"),
        ("sc/v1//g/event/d", "invalid site id ''"),
        ("sc/v1/s/g/event/", "invalid device id ''"),
        ("sc/v1/$SYS/g/event/d", "invalid site id '$SYS'"),
        ("sc/v1/Site/g/event/d", "invalid site id 'Site'"),
        (f"sc/v1/s/{'g' * 65}/event/d", "invalid gateway id"),
    ],
)
def test_parse_errors(topic: str, message: str) -> None:
    with pytest.raises(TopicError) as exc:
        Topic.parse(topic)
    assert message in str(exc.value)


@FAST
@given(st.text(max_size=80))
def test_parse_arbitrary_text_only_raises_topic_error(text: str) -> None:
    try:
        t = Topic.parse(text)
    except TopicError:
        return
    assert str(t) == text


@FAST
@given(ids, ids, kinds, ids, st.sampled_from(["+", "#", "A", "", "$x", "a b"]), st.integers(0, 2))
def test_parse_rejects_any_bad_id_position(
    site: str, gateway: str, kind: Kind, device: str, bad: str, pos: int
) -> None:
    parts = [site, gateway, device]
    parts[pos] = bad
    with pytest.raises(TopicError):
        Topic.parse(f"sc/v1/{parts[0]}/{parts[1]}/{kind.value}/{parts[2]}")


# --------------------------------------------------------------------------- filters


def test_topic_filter_all_wildcards() -> None:
    assert topic_filter() == "sc/v1/+/+/+/+"


def test_topic_filter_exact() -> None:
    assert topic_filter(site="demo") == "sc/v1/demo/+/+/+"
    assert topic_filter(gateway="gw") == "sc/v1/+/gw/+/+"
    assert topic_filter(kind=Kind.EVENT) == "sc/v1/+/+/event/+"
    assert topic_filter(device="d1") == "sc/v1/+/+/+/d1"
    assert topic_filter(site="s", gateway="g", kind=Kind.CMD, device="d") == "sc/v1/s/g/cmd/d"
    assert topic_filter(site="s", kind=Kind.CMD_ACK) == "sc/v1/s/+/cmd-ack/+"


def test_topic_filter_kind_as_string() -> None:
    assert topic_filter(kind="status") == "sc/v1/+/+/status/+"  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["site", "gateway", "device"])
@pytest.mark.parametrize("bad", ["+", "#", "a/b", "", "X"])
def test_topic_filter_rejects_bad_ids(field: str, bad: str) -> None:
    with pytest.raises(TopicError, match=f"invalid {field} id"):
        topic_filter(**{field: bad})  # type: ignore[arg-type]


def test_topic_filter_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        topic_filter(kind="alarm")  # type: ignore[arg-type]


@FAST
@given(
    st.one_of(st.none(), ids),
    st.one_of(st.none(), ids),
    st.one_of(st.none(), kinds),
    st.one_of(st.none(), ids),
    ids,
    ids,
    kinds,
    ids,
)
def test_topic_filter_matches_topics(
    fs: str | None,
    fg: str | None,
    fk: Kind | None,
    fd: str | None,
    s: str,
    g: str,
    k: Kind,
    d: str,
) -> None:
    """A filter level is either '+' or exactly the topic's level; the filter
    matches a concrete topic iff every given part equals the topic's."""
    flt = topic_filter(site=fs, gateway=fg, kind=fk, device=fd)
    t = str(Topic(s, g, k, d))
    flevels, tlevels = flt.split("/"), t.split("/")
    assert len(flevels) == len(tlevels) == 6
    matches = all(f in ("+", x) for f, x in zip(flevels, tlevels, strict=True))
    expected = (
        (fs is None or fs == s) and (fg is None or fg == g) and (fk is None or fk == k) and (fd is None or fd == d)
    )
    assert matches == expected


@pytest.mark.parametrize("topic", ["sc/v1/s/g/event/d\n", "sc/v1/s\n/g/event/d", "sc/v1/s/g\n/event/d"])
def test_parse_rejects_trailing_newline_in_an_id(topic: str) -> None:
    """`$` in ID_PATTERN also matches before a final newline; an id must not end in one."""
    with pytest.raises(TopicError):
        Topic.parse(topic)


def test_check_id_agrees_with_pydantic_pattern() -> None:
    """The pydantic models use the same pattern (Rust regex: `$` is end of text only);
    the topic module must not accept ids the message models reject."""
    from pydantic import TypeAdapter, ValidationError

    from sc.contracts.messages import DeviceId

    adapter = TypeAdapter(DeviceId)
    for value in ("abc", "a\n", "abc\n"):
        try:
            adapter.validate_python(value)
            pydantic_ok = True
        except ValidationError:
            pydantic_ok = False
        try:
            check_id(value)
            topic_ok = True
        except TopicError:
            topic_ok = False
        assert topic_ok == pydantic_ok, value
