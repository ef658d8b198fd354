"""sc.lanes: lanes split at junctions, places on them, distances, zones and what lies ahead."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.garagelayout import EXAMPLE_LANES
from sc.lanes import JOIN_TOLERANCE_M, LaneGraph, LaneGraphError, LanePos, Span, merge, span_contains, spans_intersect

Point = tuple[float, float]


def example_graph() -> LaneGraph:
    return LaneGraph({lane["id"]: [(float(x), float(y)) for x, y in lane["points"]] for lane in EXAMPLE_LANES})


EX = example_graph()


def node(graph: LaneGraph, xy: Point) -> int:
    hits = [i for i, p in enumerate(graph.node_xy) if math.dist(p, xy) < 1e-9]
    assert len(hits) == 1, f"no single node at {xy}: {graph.node_xy}"
    return hits[0]


# --------------------------------------------------------------------------- building the graph


def test_example_garage_is_split_at_every_junction() -> None:
    assert len(EX.edges) == 11
    # main is cut where aisle-a, aisle-b and aisle-c end on it; back where aisle-b ends on it
    assert EX.lane_edges == {
        "ramp": [0],
        "main": [1, 2, 3, 4],
        "aisle-a": [5],
        "aisle-b": [6],
        "aisle-c": [7],
        "back": [8, 9],
        "walk": [10],
    }
    assert [EX.edges[i].length for i in EX.lane_edges["main"]] == [12.0, 22.0, 22.0, 4.0]
    assert [EX.edges[i].length for i in EX.lane_edges["back"]] == [22.0, 22.0]
    assert EX.node_xy == [
        (0.0, -24.0),
        (0.0, 0.0),
        (12.0, 0.0),
        (34.0, 0.0),
        (56.0, 0.0),
        (60.0, 0.0),
        (12.0, 42.0),
        (34.0, 42.0),
        (56.0, 42.0),
        (60.0, 10.0),
    ]
    assert EX.total_length == 264.0
    # how many edges meet at each node: the ramp's foot and the lobby are dead ends, T-junctions have 3
    assert [len(a) for a in EX.adjacent] == [1, 2, 3, 3, 3, 2, 2, 3, 2, 1]
    # an edge runs from its u node to its v node in the lane's drawing direction
    aisle_a = EX.edges[5]
    assert (aisle_a.lane, aisle_a.u, aisle_a.v) == ("aisle-a", node(EX, (12, 0)), node(EX, (12, 42)))
    assert aisle_a.points == ((12.0, 0.0), (12.0, 42.0))


def test_t_junction_splits_the_through_lane() -> None:
    g = LaneGraph({"through": [(0, 0), (20, 0)], "stem": [(10, 0), (10, 5)]})
    assert [(e.lane, e.points, e.length) for e in g.edges] == [
        ("through", ((0.0, 0.0), (10.0, 0.0)), 10.0),
        ("through", ((10.0, 0.0), (20.0, 0.0)), 10.0),
        ("stem", ((10.0, 0.0), (10.0, 5.0)), 5.0),
    ]
    mid = node(g, (10, 0))
    assert sorted(g.adjacent[mid]) == [0, 1, 2]
    assert (g.edges[0].v, g.edges[1].u, g.edges[2].u) == (mid, mid, mid)


def test_a_lane_end_within_the_tolerance_joins_and_one_beyond_it_does_not() -> None:
    near = LaneGraph({"through": [(0, 0), (20, 0)], "stem": [(10, JOIN_TOLERANCE_M - 0.1), (10, 5)]})
    assert len(near.edges) == 3
    assert near.distance(LanePos(0, 5.0), LanePos(2, 3.0)) == pytest.approx(5.0 + 3.0)
    far = LaneGraph({"through": [(0, 0), (20, 0)], "stem": [(10, JOIN_TOLERANCE_M + 0.1), (10, 5)]})
    assert len(far.edges) == 2
    assert far.distance(LanePos(0, 5.0), LanePos(1, 3.0)) == math.inf
    assert far.around(LanePos(1, 0.0), 3.0) == [Span(1, 0.0, 3.0)]


def test_two_lane_ends_meeting_join_without_splitting() -> None:
    g = LaneGraph({"a": [(0, 0), (10, 0)], "b": [(10, 0), (10, 10)]})
    assert len(g.edges) == 2
    assert g.edges[0].v == g.edges[1].u
    assert g.distance(LanePos(0, 0.0), LanePos(1, 10.0)) == 20.0


def test_a_polyline_keeps_its_corner_points() -> None:
    g = LaneGraph({"l": [(0, 0), (10, 0), (10, 10)]})
    (e,) = g.edges
    assert e.points == ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0))
    assert e.cum == (0.0, 10.0, 20.0)
    assert e.xy(15.0) == (10.0, 5.0)
    assert e.xy(-3.0) == (0.0, 0.0)  # clamped to the edge
    assert e.xy(99.0) == (10.0, 10.0)


def test_a_junction_on_a_polyline_cuts_it_between_its_points() -> None:
    # the stem ends on the second segment of the L: the L is cut at (10, 4)
    g = LaneGraph({"l": [(0, 0), (10, 0), (10, 10)], "stem": [(10, 4), (20, 4)]})
    first, second = (g.edges[i] for i in g.lane_edges["l"])
    assert first.points == ((0.0, 0.0), (10.0, 0.0), (10.0, 4.0))
    assert (first.length, second.length) == (14.0, 6.0)
    assert second.points == ((10.0, 4.0), (10.0, 10.0))


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        ({"x": [(0.0, 0.0)]}, "lane 'x' needs at least 2 points"),
        ({"x": []}, "lane 'x' needs at least 2 points"),
        ({"x": [(0.0, 0.0), (0.5, 0.0)]}, "lane 'x' is shorter than 1 m"),
        ({"ok": [(0.0, 0.0), (10.0, 0.0)], "x": [(3.0, 3.0), (3.0, 3.0), (3.5, 3.5)]}, "lane 'x' is shorter than 1 m"),
    ],
)
def test_unusable_lanes(lanes: dict[str, Sequence[Point]], message: str) -> None:
    with pytest.raises(LaneGraphError) as exc:
        LaneGraph(lanes)
    assert str(exc.value) == message
    assert isinstance(exc.value, ValueError)


# --------------------------------------------------------------------------- places


@pytest.mark.parametrize(
    ("xy", "pos", "off"),
    [
        ((5.0, 3.0), LanePos(1, 5.0), 3.0),  # above main, before aisle-a
        ((30.0, -2.0), LanePos(2, 18.0), 2.0),  # below main, between aisle-a and aisle-b
        ((70.0, 0.0), LanePos(4, 4.0), 10.0),  # past main's end: its last metre
        ((0.0, -30.0), LanePos(0, 0.0), 6.0),  # before the ramp's foot
        ((34.0, 20.0), LanePos(6, 20.0), 0.0),  # on aisle-b
        ((45.0, 41.0), LanePos(9, 11.0), 1.0),  # by the second half of back
    ],
)
def test_project(xy: Point, pos: LanePos, off: float) -> None:
    got, d = EX.project(xy)
    assert got == pos
    assert d == pytest.approx(off)


def test_on_lane_counts_from_the_lanes_first_point_across_its_edges() -> None:
    assert EX.on_lane("main", 0.0) == LanePos(1, 0.0)
    assert EX.on_lane("main", 12.0) == LanePos(1, 12.0)
    assert EX.on_lane("main", 20.0) == LanePos(2, 8.0)
    assert EX.on_lane("main", 59.0) == LanePos(4, 3.0)
    assert EX.on_lane("main", 80.0) == LanePos(4, 4.0)  # clamped to the lane's end
    assert EX.on_lane("back", 30.0) == LanePos(9, 8.0)
    assert EX.xy(EX.on_lane("back", 30.0)) == (42.0, 42.0)


# --------------------------------------------------------------------------- distances


def test_distance_along_a_lane_round_a_corner_is_longer_than_the_straight_line() -> None:
    g = LaneGraph({"l": [(0, 0), (10, 0), (10, 10)]})
    a, b = g.project((5, 0))[0], g.project((10, 5))[0]
    assert (a, b) == (LanePos(0, 5.0), LanePos(0, 15.0))
    assert g.distance(a, b) == 10.0
    assert math.dist(g.xy(a), g.xy(b)) == pytest.approx(math.sqrt(50))


@pytest.mark.parametrize(
    ("p", "q", "d"),
    [
        (LanePos(1, 5.0), LanePos(1, 5.0), 0.0),
        (LanePos(1, 2.0), LanePos(1, 9.5), 7.5),
        (LanePos(0, 0.0), LanePos(7, 10.0), 24.0 + 56.0 + 10.0),  # ramp foot to aisle-c
        (LanePos(5, 40.0), LanePos(6, 40.0), 2.0 + 22.0 + 2.0),  # aisle-a to aisle-b: along the back lane
        (LanePos(5, 10.0), LanePos(6, 10.0), 10.0 + 22.0 + 10.0),  # ...and near main: along main
        (LanePos(10, 10.0), LanePos(0, 0.0), 10.0 + 60.0 + 24.0),  # the lobby to the ramp's foot
        (LanePos(8, 0.0), LanePos(5, 42.0), 0.0),  # the same node seen from two edges
    ],
)
def test_distance_examples(p: LanePos, q: LanePos, d: float) -> None:
    assert EX.distance(p, q) == pytest.approx(d)
    assert EX.distance(q, p) == pytest.approx(d)


def test_distances_to_nodes_with_a_limit() -> None:
    start = LanePos(1, 6.0)  # main, 6 m in
    assert EX.distances(start) == {
        node(EX, (0, 0)): 6.0,
        node(EX, (12, 0)): 6.0,
        node(EX, (34, 0)): 28.0,
        node(EX, (0, -24)): 30.0,
        node(EX, (12, 42)): 48.0,
        node(EX, (56, 0)): 50.0,
        node(EX, (60, 0)): 54.0,
        node(EX, (60, 10)): 64.0,
        node(EX, (34, 42)): 70.0,
        node(EX, (56, 42)): 92.0,
    }
    assert EX.distances(start, limit=28.0) == {node(EX, (0, 0)): 6.0, node(EX, (12, 0)): 6.0, node(EX, (34, 0)): 28.0}


# --------------------------------------------------------------------------- around / ahead


def test_around_gives_the_exact_spans_across_a_junction() -> None:
    # main 6 m in, 10 m either way: back 4 m up the ramp, forward past aisle-a's mouth by 4 m both ways
    assert EX.around(LanePos(1, 6.0), 10.0) == [
        Span(0, 20.0, 24.0),
        Span(1, 0.0, 12.0),
        Span(2, 0.0, 4.0),
        Span(5, 0.0, 4.0),
    ]


def test_around_within_one_edge_and_at_a_dead_end() -> None:
    assert EX.around(LanePos(5, 21.0), 5.0) == [Span(5, 16.0, 26.0)]
    assert EX.around(LanePos(0, 2.0), 5.0) == [Span(0, 0.0, 7.0)]
    assert EX.around(LanePos(0, 2.0), 0.0) == [Span(0, 2.0, 2.0)]


def test_around_goes_round_the_loop_both_ways() -> None:
    # aisle-b's top: 10 m along back both ways and down aisle-b; nothing of aisle-a or aisle-c
    assert EX.around(LanePos(6, 42.0), 10.0) == [Span(6, 32.0, 42.0), Span(8, 12.0, 22.0), Span(9, 0.0, 10.0)]


def test_around_spans() -> None:
    got = EX.around_spans([Span(2, 5.0, 10.0)], 3.0)
    assert got == [Span(2, 2.0, 13.0)]
    got = EX.around_spans([Span(1, 10.0, 12.0)], 3.0)
    assert got == [Span(1, 7.0, 12.0), Span(2, 0.0, 3.0), Span(5, 0.0, 3.0)]


def test_ahead_branches_at_a_junction() -> None:
    # on main 6 m in, heading for aisle-a's mouth: 6 m to it, then 9 m down main and 9 m up aisle-a
    assert EX.ahead(LanePos(1, 6.0), True, 15.0) == [Span(1, 6.0, 12.0), Span(2, 0.0, 9.0), Span(5, 0.0, 9.0)]


def test_ahead_does_not_turn_round() -> None:
    # the same place heading for the ramp: nothing of main beyond it, nor aisle-a
    assert EX.ahead(LanePos(1, 6.0), False, 15.0) == [Span(0, 15.0, 24.0), Span(1, 0.0, 6.0)]
    # coming down the ramp: straight on into main, never back up the ramp past the car
    assert EX.ahead(LanePos(0, 20.0), True, 15.0) == [Span(0, 20.0, 24.0), Span(1, 0.0, 11.0)]


def test_ahead_stops_at_a_dead_end() -> None:
    assert EX.ahead(LanePos(10, 5.0), True, 15.0) == [Span(10, 5.0, 10.0)]
    assert EX.ahead(LanePos(0, 5.0), False, 15.0) == [Span(0, 0.0, 5.0)]


def test_ahead_from_a_junction_into_a_t() -> None:
    # down aisle-b towards main: at the T it goes both ways along main, not back up aisle-b
    assert EX.ahead(LanePos(6, 5.0), False, 15.0) == [Span(2, 12.0, 22.0), Span(3, 0.0, 10.0), Span(6, 0.0, 5.0)]


def test_ahead_is_part_of_around() -> None:
    for pos in (LanePos(1, 6.0), LanePos(6, 5.0), LanePos(9, 21.0), LanePos(4, 2.0)):
        for forward in (True, False):
            zone = EX.around(pos, 20.0)
            for sp in EX.ahead(pos, forward, 20.0):
                assert span_contains(zone, LanePos(sp.edge, sp.a))
                assert span_contains(zone, LanePos(sp.edge, sp.b))


# --------------------------------------------------------------------------- heading


@pytest.mark.parametrize(
    ("frm", "to", "heading"),
    [
        (LanePos(1, 5.0), LanePos(1, 10.0), True),  # along main, with its drawing
        (LanePos(1, 5.0), LanePos(1, 2.0), False),  # along main, against it
        (LanePos(1, 5.0), LanePos(1, 5.0), None),  # not moved
        (LanePos(0, 10.0), LanePos(5, 5.0), True),  # ramp -> up aisle-a (enters at its u end)
        (LanePos(7, 40.0), LanePos(9, 20.0), False),  # top of aisle-c -> along back towards aisle-b
        (LanePos(5, 40.0), LanePos(9, 20.0), True),  # top of aisle-a -> along back towards aisle-c
        (LanePos(6, 30.0), LanePos(2, 10.0), False),  # down aisle-b, turning towards the ramp
        (LanePos(6, 30.0), LanePos(3, 10.0), True),  # down aisle-b, turning towards the lobby
    ],
)
def test_heading(frm: LanePos, to: LanePos, heading: bool | None) -> None:
    assert EX.heading(frm, to) is heading


# --------------------------------------------------------------------------- gaps, describe, spans


def test_gaps() -> None:
    g = LaneGraph({"through": [(0, 0), (20, 0)], "stem": [(10, 0), (10, 5)]})
    assert g.gaps([]) == [Span(0, 0.0, 10.0), Span(1, 0.0, 10.0), Span(2, 0.0, 5.0)]
    covered = [Span(0, 0.0, 4.0), Span(0, 4.3, 10.0), Span(1, 2.0, 9.0), Span(2, 0.0, 5.0)]
    # 0.3 m between two spans is not a gap; 2 m at the start and 1 m at the end of edge 1 are
    assert g.gaps(covered) == [Span(1, 0.0, 2.0), Span(1, 9.0, 10.0)]
    assert g.gaps(covered, min_gap=1.5) == [Span(1, 0.0, 2.0)]
    assert g.gaps([Span(0, 0.0, 10.0), Span(1, 0.0, 10.0), Span(2, 0.0, 5.0)]) == []


def test_describe_counts_metres_from_the_start_of_the_lane() -> None:
    assert EX.describe(Span(3, 1.0, 5.0)) == "lane main 35.0-39.0 m"
    assert EX.describe(Span(1, 0.0, 12.0)) == "lane main 0.0-12.0 m"
    assert EX.describe(Span(9, 2.0, 3.5)) == "lane back 24.0-25.5 m"
    assert EX.describe(Span(10, 10.0, 10.0)) == "lane walk 10.0-10.0 m"


def test_describe_pos() -> None:
    assert EX.describe_pos(LanePos(3, 1.0)) == "lane main 35.0 m"
    assert EX.describe_pos(LanePos(0, 0.0)) == "lane ramp 0.0 m"
    assert EX.describe_pos(LanePos(9, 22.0)) == "lane back 44.0 m"


def test_merge() -> None:
    assert merge([]) == []
    assert merge([Span(2, 5.0, 6.0), Span(1, 3.0, 4.0), Span(1, 0.0, 3.0), Span(1, 1.0, 2.0), Span(2, 7.0, 8.0)]) == [
        Span(1, 0.0, 4.0),
        Span(2, 5.0, 6.0),
        Span(2, 7.0, 8.0),
    ]


def test_span_contains_and_intersect() -> None:
    spans = [Span(1, 2.0, 5.0)]
    assert span_contains(spans, LanePos(1, 2.0))
    assert span_contains(spans, LanePos(1, 5.0))
    assert not span_contains(spans, LanePos(1, 5.1))
    assert not span_contains(spans, LanePos(2, 3.0))
    assert spans_intersect(spans, [Span(1, 5.0, 9.0)])
    assert not spans_intersect(spans, [Span(1, 5.5, 9.0)])
    assert not spans_intersect(spans, [Span(0, 2.0, 5.0)])


# --------------------------------------------------------------------------- properties


@st.composite
def places(draw: st.DrawFn) -> LanePos:
    e = draw(st.integers(min_value=0, max_value=len(EX.edges) - 1))
    f = draw(st.floats(min_value=0.0, max_value=1.0))
    return LanePos(e, f * EX.edges[e].length)


@settings(max_examples=150, deadline=None)
@given(places(), places(), places())
def test_distance_is_a_metric_on_the_example_garage(p: LanePos, q: LanePos, r: LanePos) -> None:
    d_pq = EX.distance(p, q)
    assert d_pq == pytest.approx(EX.distance(q, p), abs=1e-9)
    assert EX.distance(p, p) == 0.0
    assert d_pq <= EX.distance(p, r) + EX.distance(r, q) + 1e-9
    # never shorter than the straight line on the plan, never longer than every lane put together
    assert d_pq >= math.dist(EX.xy(p), EX.xy(q)) - 1e-9
    assert d_pq <= EX.total_length


@settings(max_examples=150, deadline=None)
@given(places(), places(), st.floats(min_value=0.0, max_value=60.0))
def test_around_is_exactly_the_places_within_r(p: LanePos, q: LanePos, r: float) -> None:
    d = EX.distance(p, q)
    inside = span_contains(EX.around(p, r), q)
    if d < r - 1e-6:
        assert inside
    elif d > r + 1e-6:
        assert not inside


@settings(max_examples=100, deadline=None)
@given(places(), places())
def test_heading_points_along_the_way_travelled(p: LanePos, q: LanePos) -> None:
    """Arriving at ``q`` from ``p``: a step back against the heading is nearer ``p`` than ``q`` is."""
    h = EX.heading(p, q)
    d = EX.distance(p, q)
    if d < 0.02:
        return
    assert h is not None
    e = EX.edges[q.edge]
    back = LanePos(q.edge, q.s - 0.01 if h else q.s + 0.01)
    if 0.0 <= back.s <= e.length:
        assert EX.distance(p, back) == pytest.approx(d - 0.01, abs=1e-6)
