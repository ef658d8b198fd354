"""The garage's lane graph: lanes as polylines in metres, joined where they meet.

The site config draws lanes as polylines on the garage plan (x, y in metres).
:class:`LaneGraph` splits them where one lane's end lies on another lane (a
junction) and where two ends meet, so every piece of lane is an :class:`Edge`
between two nodes. A place on the graph is a :class:`LanePos` (an edge and the
distance along it). Everything the garage controller and the simulator need
is a question about distances along lanes, answered here once:

* :meth:`LaneGraph.project` - the nearest place on a lane to a point of the plan;
* :meth:`LaneGraph.around` - every place within ``r`` metres (along lanes) of a place;
* :meth:`LaneGraph.ahead` - every place up to ``d`` metres ahead in a direction of travel,
  down every branch at a junction;
* :meth:`LaneGraph.distances` - lane distances from a place to every node.

Stretches of lane are :class:`Span` s; sets of them are plain lists, merged per edge by
:func:`merge`. The graph is small (tens of edges): plain Python is fast enough.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "JOIN_TOLERANCE_M",
    "Edge",
    "LaneGraph",
    "LaneGraphError",
    "LanePos",
    "Span",
    "merge",
    "span_contains",
    "spans_intersect",
]

#: Two points closer than this are the same junction.
JOIN_TOLERANCE_M = 0.5

Point = tuple[float, float]


class LaneGraphError(ValueError):
    """Lanes that do not make a usable graph (a lane of zero length, ...)."""


@dataclass(frozen=True)
class Edge:
    """A piece of one lane between two nodes."""

    index: int
    lane: str
    u: int  # node at s = 0
    v: int  # node at s = length
    points: tuple[Point, ...]
    length: float
    cum: tuple[float, ...]  # distance along the edge at each point

    def xy(self, s: float) -> Point:
        """The plan point ``s`` metres along the edge."""
        s = min(max(s, 0.0), self.length)
        for i in range(1, len(self.points)):
            if s <= self.cum[i] or i == len(self.points) - 1:
                seg = self.cum[i] - self.cum[i - 1]
                f = 0.0 if seg == 0 else (s - self.cum[i - 1]) / seg
                (x0, y0), (x1, y1) = self.points[i - 1], self.points[i]
                return (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)
        return self.points[-1]  # pragma: no cover - loop always returns


@dataclass(frozen=True)
class LanePos:
    """A place on the graph: ``s`` metres along edge ``edge`` (from its ``u`` node)."""

    edge: int
    s: float


@dataclass(frozen=True)
class Span:
    """The stretch ``a..b`` (a <= b) of edge ``edge``."""

    edge: int
    a: float
    b: float


def merge(spans: Iterable[Span]) -> list[Span]:
    """Spans merged where they touch or overlap, sorted by edge then start."""
    out: list[Span] = []
    for sp in sorted(spans, key=lambda x: (x.edge, x.a)):
        if out and out[-1].edge == sp.edge and sp.a <= out[-1].b + 1e-9:
            if sp.b > out[-1].b:
                out[-1] = Span(sp.edge, out[-1].a, sp.b)
        else:
            out.append(sp)
    return out


def span_contains(spans: Sequence[Span], pos: LanePos, tol: float = 1e-6) -> bool:
    return any(sp.edge == pos.edge and sp.a - tol <= pos.s <= sp.b + tol for sp in spans)


def spans_intersect(x: Sequence[Span], y: Sequence[Span]) -> bool:
    return any(p.edge == q.edge and p.a <= q.b and q.a <= p.b for p in x for q in y)


def _dist(p: Point, q: Point) -> float:
    return math.hypot(p[0] - q[0], p[1] - q[1])


def _project_segment(p: Point, a: Point, b: Point) -> tuple[float, float]:
    """(fraction along a->b of the nearest point, distance to it)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    seg2 = dx * dx + dy * dy
    f = 0.0 if seg2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / seg2))
    q = (a[0] + dx * f, a[1] + dy * f)
    return f, _dist(p, q)


class LaneGraph:
    """Lanes joined into a graph. ``lanes`` maps a lane id to its polyline (at least 2 points)."""

    def __init__(self, lanes: dict[str, Sequence[Point]]) -> None:
        self.lane_ids = list(lanes)
        # 1. where does each lane have to be cut? at its own ends and where another lane's end touches it
        cuts: dict[str, list[float]] = {}
        polylines: dict[str, list[Point]] = {}
        cums: dict[str, list[float]] = {}
        for lid, pts in lanes.items():
            poly = [(float(x), float(y)) for x, y in pts]
            if len(poly) < 2:
                raise LaneGraphError(f"lane {lid!r} needs at least 2 points")
            cum = [0.0]
            for i in range(1, len(poly)):
                cum.append(cum[-1] + _dist(poly[i - 1], poly[i]))
            if cum[-1] < 1.0:
                raise LaneGraphError(f"lane {lid!r} is shorter than 1 m")
            polylines[lid], cums[lid] = poly, cum
            cuts[lid] = [0.0, cum[-1]]
        for lid, poly in polylines.items():
            for end in (poly[0], poly[-1]):
                for other, opoly in polylines.items():
                    if other == lid:
                        continue
                    s, d = self._nearest_on(opoly, cums[other], end)
                    if d <= JOIN_TOLERANCE_M:
                        cuts[other].append(s)
        # 2. nodes: cut points, clustered
        self.node_xy: list[Point] = []

        def node_at(p: Point) -> int:
            for i, q in enumerate(self.node_xy):
                if _dist(p, q) <= JOIN_TOLERANCE_M:
                    return i
            self.node_xy.append(p)
            return len(self.node_xy) - 1

        self.edges: list[Edge] = []
        self.lane_edges: dict[str, list[int]] = {}
        for lid, poly in polylines.items():
            cum = cums[lid]
            marks = sorted(set(round(c, 6) for c in cuts[lid]))
            merged: list[float] = []
            for m in marks:  # cuts closer than the tolerance are one cut
                if not merged or m - merged[-1] > JOIN_TOLERANCE_M:
                    merged.append(m)
            if merged[-1] != cum[-1]:
                merged[-1] = cum[-1]
            self.lane_edges[lid] = []
            for a, b in itertools.pairwise(merged):
                pts = [self._point_at(poly, cum, a)]
                pts += [poly[i] for i in range(len(poly)) if a < cum[i] < b]
                pts.append(self._point_at(poly, cum, b))
                ecum = [0.0]
                for i in range(1, len(pts)):
                    ecum.append(ecum[-1] + _dist(pts[i - 1], pts[i]))
                edge = Edge(
                    index=len(self.edges),
                    lane=lid,
                    u=node_at(pts[0]),
                    v=node_at(pts[-1]),
                    points=tuple(pts),
                    length=ecum[-1],
                    cum=tuple(ecum),
                )
                self.edges.append(edge)
                self.lane_edges[lid].append(edge.index)
        self.adjacent: list[list[int]] = [[] for _ in self.node_xy]  # node -> edges touching it
        for e in self.edges:
            self.adjacent[e.u].append(e.index)
            if e.v != e.u:
                self.adjacent[e.v].append(e.index)
        self.total_length = sum(e.length for e in self.edges)

    # ---------------------------------------------------------------- geometry helpers

    @staticmethod
    def _nearest_on(poly: Sequence[Point], cum: Sequence[float], p: Point) -> tuple[float, float]:
        best = (0.0, math.inf)
        for i in range(1, len(poly)):
            f, d = _project_segment(p, poly[i - 1], poly[i])
            if d < best[1]:
                best = (cum[i - 1] + f * (cum[i] - cum[i - 1]), d)
        return best

    @staticmethod
    def _point_at(poly: Sequence[Point], cum: Sequence[float], s: float) -> Point:
        for i in range(1, len(poly)):
            if s <= cum[i] + 1e-9:
                seg = cum[i] - cum[i - 1]
                f = 0.0 if seg == 0 else (s - cum[i - 1]) / seg
                (x0, y0), (x1, y1) = poly[i - 1], poly[i]
                return (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)
        return poly[-1]

    def project(self, p: Point) -> tuple[LanePos, float]:
        """The nearest place on any lane to plan point ``p``, and how far away it is (m)."""
        best: tuple[LanePos, float] = (LanePos(0, 0.0), math.inf)
        for e in self.edges:
            s, d = self._nearest_on(e.points, e.cum, p)
            if d < best[1]:
                best = (LanePos(e.index, s), d)
        return best

    def xy(self, pos: LanePos) -> Point:
        return self.edges[pos.edge].xy(pos.s)

    def on_lane(self, lane: str, s: float) -> LanePos:
        """The place ``s`` metres along lane ``lane`` (from its first point)."""
        for ei in self.lane_edges[lane]:
            e = self.edges[ei]
            if s <= e.length + 1e-9 or ei == self.lane_edges[lane][-1]:
                return LanePos(ei, min(max(s, 0.0), e.length))
            s -= e.length
        raise KeyError(lane)  # pragma: no cover - lane_edges is never empty

    # ---------------------------------------------------------------- distances

    def distances(self, pos: LanePos, limit: float = math.inf) -> dict[int, float]:
        """Lane distance from ``pos`` to every node within ``limit`` (Dijkstra)."""
        e = self.edges[pos.edge]
        dist: dict[int, float] = {}
        heap: list[tuple[float, int]] = [(pos.s, e.u), (e.length - pos.s, e.v)]
        heapq.heapify(heap)
        while heap:
            d, n = heapq.heappop(heap)
            if n in dist or d > limit:
                continue
            dist[n] = d
            for ei in self.adjacent[n]:
                x = self.edges[ei]
                for m in (x.u, x.v):
                    if m not in dist:
                        heapq.heappush(heap, (d + x.length, m))
        return dist

    def distance(self, p: LanePos, q: LanePos) -> float:
        """Shortest lane distance between two places."""
        direct = abs(p.s - q.s) if p.edge == q.edge else math.inf
        dist = self.distances(p, limit=direct)
        e = self.edges[q.edge]
        via = min(dist.get(e.u, math.inf) + q.s, dist.get(e.v, math.inf) + e.length - q.s)
        return min(direct, via)

    def around(self, pos: LanePos, r: float) -> list[Span]:
        """Every place within ``r`` metres of ``pos`` along lanes."""
        e = self.edges[pos.edge]
        spans = [Span(e.index, max(0.0, pos.s - r), min(e.length, pos.s + r))]
        for n, d in self.distances(pos, limit=r).items():
            left = r - d
            for ei in self.adjacent[n]:
                x = self.edges[ei]
                if x.u == n:
                    spans.append(Span(ei, 0.0, min(x.length, left)))
                if x.v == n:
                    spans.append(Span(ei, max(0.0, x.length - left), x.length))
        return merge(spans)

    def around_spans(self, spans: Iterable[Span], r: float) -> list[Span]:
        """Every place within ``r`` of any of ``spans``."""
        out: list[Span] = []
        for sp in spans:
            out.append(sp)
            out += self.around(LanePos(sp.edge, sp.a), r)
            if sp.b > sp.a:
                out += self.around(LanePos(sp.edge, sp.b), r)
        return merge(out)

    def ahead(self, pos: LanePos, forward: bool, d: float) -> list[Span]:
        """Every place up to ``d`` metres from ``pos`` travelling towards the edge's ``v`` end
        (``forward``) or its ``u`` end, down every branch at junctions (no U-turns)."""
        e = self.edges[pos.edge]
        spans: list[Span] = []
        if forward:
            spans.append(Span(e.index, pos.s, min(e.length, pos.s + d)))
            frontier = [(e.v, d - (e.length - pos.s), e.index)]
        else:
            spans.append(Span(e.index, max(0.0, pos.s - d), pos.s))
            frontier = [(e.u, d - pos.s, e.index)]
        best: dict[tuple[int, int], float] = {}
        while frontier:
            node, left, came = frontier.pop()
            if left <= 0:
                continue
            for ei in self.adjacent[node]:
                if ei == came:
                    continue
                x = self.edges[ei]
                if x.u == node and best.get((ei, 0), -1.0) < left:
                    best[(ei, 0)] = left
                    spans.append(Span(ei, 0.0, min(x.length, left)))
                    frontier.append((x.v, left - x.length, ei))
                if x.v == node and best.get((ei, 1), -1.0) < left:
                    best[(ei, 1)] = left
                    spans.append(Span(ei, max(0.0, x.length - left), x.length))
                    frontier.append((x.u, left - x.length, ei))
        return merge(spans)

    def heading(self, frm: LanePos, to: LanePos) -> bool | None:
        """Direction of travel at ``to`` when arriving from ``frm`` by the shortest way:
        True = towards ``to``'s edge ``v`` end, False = towards ``u``, None = same place."""
        if frm.edge == to.edge:
            if abs(frm.s - to.s) < 1e-6:
                return None
            direct = abs(frm.s - to.s)
        else:
            direct = math.inf
        dist = self.distances(frm, limit=direct)
        e = self.edges[to.edge]
        via_u = dist.get(e.u, math.inf) + to.s
        via_v = dist.get(e.v, math.inf) + e.length - to.s
        if direct <= min(via_u, via_v):
            return to.s > frm.s
        return via_u <= via_v  # arrived through u: travelling towards v

    def gaps(self, covered: Sequence[Span], min_gap: float = 0.5) -> list[Span]:
        """Stretches of lane not in ``covered`` that are longer than ``min_gap``."""
        by_edge: dict[int, list[Span]] = {}
        for sp in merge(covered):
            by_edge.setdefault(sp.edge, []).append(sp)
        out: list[Span] = []
        for e in self.edges:
            at = 0.0
            for sp in by_edge.get(e.index, []):
                if sp.a - at > min_gap:
                    out.append(Span(e.index, at, sp.a))
                at = max(at, sp.b)
            if e.length - at > min_gap:
                out.append(Span(e.index, at, e.length))
        return out

    def describe_pos(self, pos: LanePos) -> str:
        """``lane main 30.0 m``."""
        e = self.edges[pos.edge]
        offset = sum(self.edges[i].length for i in self.lane_edges[e.lane] if i < e.index)
        return f"lane {e.lane} {offset + pos.s:.1f} m"

    def describe(self, sp: Span) -> str:
        """``lane main 30.0-42.5 m`` for a person reading an error."""
        e = self.edges[sp.edge]
        offset = sum(self.edges[i].length for i in self.lane_edges[e.lane] if i < e.index)
        return f"lane {e.lane} {offset + sp.a:.1f}-{offset + sp.b:.1f} m"
