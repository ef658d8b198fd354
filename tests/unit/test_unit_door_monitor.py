"""The door monitor's rules on scripted and random timelines: forced door, held open, closed again."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.gate.door import DoorEvent, DoorMonitor
from sc.contracts.messages import EventKind

FORCED, HELD, CLOSED = EventKind.DOOR_FORCED, EventKind.DOOR_HELD_OPEN, EventKind.DOOR_CLOSED

Sample = tuple[float, bool, bool]  # (t, open, unlocked)


def play(timeline: list[Sample], *, held_open_after_s: float = 10.0, grace_s: float = 0.5) -> list[DoorEvent]:
    m = DoorMonitor(held_open_after_s=held_open_after_s, grace_s=grace_s)
    out: list[DoorEvent] = []
    for t, is_open, unlocked in timeline:
        out += m.feed(t, open=is_open, unlocked=unlocked)
    return out


def kinds(events: list[DoorEvent]) -> list[tuple[EventKind, float, float | None]]:
    return [(e.kind, e.at, e.seconds) for e in events]


def test_a_granted_opening_that_closes_in_time_says_nothing() -> None:
    m = DoorMonitor(held_open_after_s=10.0)
    assert m.feed(0.0, open=False, unlocked=True) == []
    assert m.feed(1.0, open=True, unlocked=True) == []
    assert (m.is_open, m.opened_at, m.openings) == (True, 1.0, 1)
    assert m.feed(2.0, open=True, unlocked=False) == []
    assert m.feed(4.0, open=False, unlocked=False) == []
    assert (m.is_open, m.opened_at, m.openings, m.forced_openings) == (False, None, 1, 0)


def test_opening_while_locked_is_forced_once_per_opening() -> None:
    events = play(
        [(0.0, False, False), (1.0, True, False), (1.1, True, False), (2.0, False, False), (3.0, True, False)]
    )
    assert kinds(events) == [(FORCED, 1.0, None), (FORCED, 3.0, None)]
    assert events[0].reason == "the door opened while locked"


def test_the_grace_after_a_release_is_not_forced_and_ends() -> None:
    # released until 0.9 (last sample unlocked at 0.9); open at 1.3 is within 0.5 s: not forced
    assert play([(0.5, False, True), (0.9, False, True), (1.3, True, False)]) == []
    # open at 1.5, 0.6 s after the last release: forced
    assert kinds(play([(0.5, False, True), (0.9, False, True), (1.5, True, False)])) == [(FORCED, 1.5, None)]
    # never released at all
    assert kinds(play([(0.0, True, False)])) == [(FORCED, 0.0, None)]
    # released in the same sample the door is seen open
    assert play([(0.0, False, False), (0.1, True, True)]) == []


def test_held_open_once_then_closed_with_the_seconds_open() -> None:
    timeline: list[Sample] = [(0.0, False, True), (1.0, True, True)]
    timeline += [(1.0 + i, True, False) for i in range(1, 15)]  # open until 15.0
    timeline += [(16.0, False, False), (17.0, True, True), (18.0, False, False)]
    events = play(timeline, held_open_after_s=10.0)
    assert kinds(events) == [(HELD, 11.0, 10.0), (CLOSED, 16.0, 15.0)]
    assert events[0].reason == "the door has been open for 10.0 s (limit 10 s)"
    assert events[1].reason == "the door closed after 15.0 s open"


def test_a_forced_door_left_open_is_forced_then_held_then_closed() -> None:
    events = play([(0.0, True, False), (5.0, True, False), (6.0, True, True), (7.0, False, False)], held_open_after_s=5)
    assert kinds(events) == [(FORCED, 0.0, None), (HELD, 5.0, 5.0), (CLOSED, 7.0, 7.0)]


def test_closed_only_follows_held_open() -> None:
    assert play([(0.0, True, True), (3.0, False, False)], held_open_after_s=5.0) == []


def test_time_must_not_go_back() -> None:
    m = DoorMonitor(held_open_after_s=1.0)
    m.feed(2.0, open=False, unlocked=False)
    with pytest.raises(ValueError, match="time went back"):
        m.feed(1.0, open=False, unlocked=False)
    with pytest.raises(ValueError):
        DoorMonitor(held_open_after_s=0)


def test_open_for_measures_the_current_opening() -> None:
    m = DoorMonitor(held_open_after_s=1.0)
    assert m.open_for(5.0) == 0.0
    m.feed(2.0, open=True, unlocked=True)
    assert m.open_for(5.0) == 3.0


samples = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=3.0), st.booleans(), st.booleans()),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps=samples, held=st.floats(min_value=0.1, max_value=5.0), grace=st.sampled_from([0.0, 0.5, 1.0]))
def test_invariants_on_random_timelines(steps: list[tuple[float, bool, bool]], held: float, grace: float) -> None:
    m = DoorMonitor(held_open_after_s=held, grace_s=grace)
    t = 0.0
    was_open = False
    last_unlocked: float | None = None
    opened_at: float | None = None
    held_raised = False
    openings = 0
    for dt, is_open, unlocked in steps:
        t += dt
        events = m.feed(t, open=is_open, unlocked=unlocked)
        if unlocked:
            last_unlocked = t
        opening = is_open and not was_open
        if opening:
            openings += 1
            opened_at = t
        for ev in events:
            assert ev.at == t
            if ev.kind is FORCED:
                # only when this sample opened the door, with the lock not released within the grace
                assert opening and not unlocked
                assert last_unlocked is None or t - last_unlocked > grace
            elif ev.kind is HELD:
                assert not held_raised, "two door_held_open without a door_closed between"
                assert is_open and opened_at is not None and ev.seconds == pytest.approx(t - opened_at)
                assert ev.seconds is not None and ev.seconds >= held
                held_raised = True
            elif ev.kind is CLOSED:
                assert held_raised and not is_open and was_open
                assert opened_at is not None and ev.seconds == pytest.approx(t - opened_at)
                held_raised = False
            else:
                pytest.fail(f"unexpected {ev.kind}")
        # a forced opening is always reported: opened while locked, outside the grace
        if opening and not unlocked and (last_unlocked is None or t - last_unlocked > grace):
            assert [e.kind for e in events][:1] == [FORCED]
        # held open is reported as soon as it is due
        if is_open and opened_at is not None and t - opened_at >= held:
            assert held_raised
        if not is_open:
            assert not held_raised, "a door held open closed without a door_closed"
            opened_at = None
        was_open = is_open
        assert m.is_open is is_open and m.openings == openings
        assert m.opened_at == (opened_at if is_open else None)
        assert m.held_open is held_raised
