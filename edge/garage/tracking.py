"""Follow cars and people through the garage from presence-sensor edges.

A presence sensor only says "something moves within ``range_m`` of me". A
:class:`Track` is one moving thing: the sensor that saw it last, the direction
it travels along the lanes (once two sensors have seen it in turn), its speed
(lane distance between the two sensors over the time between their rising
edges) and a class (a car, a person on foot, or not known yet).

On each update the sensors that have just turned on (rising edges) are given
to the track that explains them best: the one whose sensor is next to it in its
direction of travel at a plausible speed. A rising edge that no track explains
starts a new track; one that only a track going the other way could explain
(a car reversing, or another car behind it) leaves that track without a known
direction, so it is lit both ways until a next sensor says which way it goes.
When no sensor has seen a track for ``lost_after_s`` (a car that parked, a
person standing still, a sensor that missed them) it becomes a :class:`Ghost`:
its zone stays lit for ``lost_hold_s``. A track last seen leaving by an
entrance or going into a lift lobby is simply gone.

Everything here is pure logic on a clock the caller passes in: the controller,
the simulator and the benches drive the same code.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum

from sc.lanes import LanePos, Span, spans_intersect

from .model import GarageModel

__all__ = [
    "RETRIGGER_S",
    "VEHICLE_SPEED",
    "V_ASSUMED",
    "V_MAX",
    "Ghost",
    "Track",
    "TrackClass",
    "Tracker",
]

#: Nothing in a garage moves faster (m/s, about 30 km/h).
V_MAX = 8.0
#: Speed assumed for lighting ahead before it is measured (m/s, 18 km/h).
V_ASSUMED = 5.0
#: Faster than this is a car (m/s); people walk at 1-2 m/s.
VEHICLE_SPEED = 2.6
#: Faster than this is not (only) a person walking (m/s).
WALK_SPEED = 2.0
#: A person on foot is not expected to go faster than this while unseen (m/s).
V_WALK_MAX = 3.0
#: A sensor that comes back on later than this after going off may see something else (or a reversal).
RETRIGGER_S = 1.0
#: Slack on the "could it have got there" test (m).
SLACK_M = 1.0
#: Two candidate tracks whose costs differ by less than this make an association ambiguous.
AMBIGUOUS_COST = 1.0
#: A sensor between two others is expected to have been on at most this long before the mover left the first.
SENSOR_SLACK_S = 2.0
#: More tracks than this means the sensors talk nonsense: the oldest become ghosts.
MAX_TRACKS = 200


class TrackClass(StrEnum):
    VEHICLE = "vehicle"
    PEDESTRIAN = "pedestrian"
    UNKNOWN = "unknown"


@dataclass
class Track:
    id: int
    cls: TrackClass
    sensor: int  # index of the sensor that saw it last
    t_hit: float  # when that sensor's rising edge was given to it
    t_seen: float  # the last time that sensor was on for it
    heading: bool | None  # at the sensor's position: True = towards the edge's v end; None = not known
    speed: float = 0.0  # m/s, 0 = not measured yet
    hits: int = 1
    born: float = 0.0
    top_speed: float = 0.0
    prev_sensor: int | None = None  # the sensor it was at before (its output is still on for a moment)

    def vmax(self) -> float:
        """The fastest it could be going now (for how far it may have got while unseen)."""
        if self.cls is TrackClass.PEDESTRIAN:
            return V_WALK_MAX
        if self.speed <= 0:
            return V_MAX
        return min(V_MAX, max(1.5 * self.speed, self.speed + 1.5))


@dataclass
class Ghost:
    """Where a lost track was last seen: lit for a while (a parked car's driver is about to get out)."""

    spans: list[Span]
    until: float
    sensor: int
    track: int


@dataclass
class TrackerStats:
    tracks_started: int = 0
    tracks_lost: int = 0
    tracks_gone: int = 0
    ambiguous: int = 0
    dropped: int = 0


@dataclass
class Tracker:
    model: GarageModel
    lost_after_s: float
    lost_hold_s: float
    tracks: list[Track] = field(default_factory=list)
    ghosts: list[Ghost] = field(default_factory=list)
    stats: TrackerStats = field(default_factory=TrackerStats)
    _prev_on: set[int] = field(default_factory=set)
    #: movers that went past a sensor (from the sensor before it to the one after it) while it stayed off
    misses: dict[int, int] = field(default_factory=dict)
    _last_on: dict[int, float] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        g, sensors = self.model.graph, self.model.sensors
        n = len(sensors)
        # toward[a][b]: the direction at sensor a that leads to sensor b; arrive[a][b]: direction at b coming from a
        self.arrive: list[list[bool | None]] = [
            [g.heading(sensors[a].pos, sensors[b].pos) for b in range(n)] for a in range(n)
        ]
        self.toward: list[list[bool | None]] = [
            [None if (h := self.arrive[b][a]) is None else not h for b in range(n)] for a in range(n)
        ]
        # a track whose sensor went quiet can only have moved on unseen where no sensor covers the lane: next to a
        # gap in the coverage its region grows with time, elsewhere it stopped (or the next sensor will rise)
        gaps = g.gaps([sp for s in sensors for sp in s.coverage])
        self.borders_gap = [spans_intersect(g.around(s.pos, s.range_m + 1.5), gaps) for s in sensors]
        junctions = {i for i, adj in enumerate(g.adjacent) if len(adj) >= 3}
        self.near_junction = [
            any(g.distances(s.pos, limit=s.range_m + 1.0).get(j, 1e9) <= s.range_m + 1.0 for j in junctions)
            for s in sensors
        ]
        self.exits: list[list[bool | None]] = [
            [None if (h := g.heading(e, s.pos)) is None else not h for e in self.model.entrances] for s in sensors
        ]
        self.to_lobby: list[list[bool | None]] = [
            [None if (h := g.heading(lb, s.pos)) is None else not h for lb in self.model.lobbies] for s in sensors
        ]

    # ---------------------------------------------------------------- updates

    def update(self, t: float, on: set[int], known: set[int]) -> None:
        """Sensors ``on`` are on at ``t``; only sensors in ``known`` are trusted (module up, not stuck)."""
        on = on & known
        for i in on:
            self._last_on[i] = t
            self.misses.pop(i, None)
        rising = sorted(on - self._prev_on)
        self._prev_on = on | (self._prev_on - known)
        for tr in self.tracks:
            if tr.sensor in on:
                tr.t_seen = t
        claimed: set[int] = set()
        for s in rising:
            fits: list[tuple[float, int, Track, bool]] = []
            for tr in self.tracks:
                if tr.id in claimed:
                    continue
                fit = self._fit(tr, s, t, on)
                if fit is not None:
                    fits.append((fit[0], tr.id, tr, fit[1]))
            if not fits:
                self._start(s, t)
                continue
            fits.sort(key=lambda f: (f[0], f[1]))
            cost, _, tr, ambiguous = fits[0]
            behind = ambiguous
            # two tracks that could both have caused it (two cars meeting): which is which is not known,
            # so the one that takes it is lit both ways until its next sensor says where it goes
            if len(fits) > 1 and not fits[1][3] and fits[1][0] < cost + AMBIGUOUS_COST:
                ambiguous = True
            claimed.add(tr.id)
            self._move(tr, s, t, ambiguous=ambiguous, behind=behind)
        self._expire(t, on)

    def _fit(self, tr: Track, s: int, t: float, on: set[int]) -> tuple[float, bool] | None:
        """(cost, ambiguous) if ``tr`` could have caused sensor ``s`` to rise at ``t``, else None."""
        a = tr.sensor
        sa, ss = self.model.sensors[a], self.model.sensors[s]
        dt = max(0.0, t - tr.t_seen)
        if a == s:
            return (0.05 * dt, dt > RETRIGGER_S)  # back on: after a pause it may have turned round
        gap = max(0.0, self.model.sensor_distance[a][s] - sa.range_m - ss.range_m)
        if gap > tr.vmax() * dt + SLACK_M:
            return None
        direction = self.toward[a][s]
        behind = tr.heading is not None and direction is not None and direction is not tr.heading
        if behind and a in on:
            return None  # it is still at its sensor: whatever rose behind it is something else
        elapsed = max(0.2, t - tr.t_hit)
        v = self.model.sensor_distance[a][s] / elapsed
        cost = abs(v - tr.speed) / max(1.0, tr.speed) if tr.speed > 0 else 0.5
        cost += 0.1 * dt
        if behind:
            cost += 2.0
        return (cost, behind)

    def _start(self, s: int, t: float) -> None:
        site = self.model.sensors[s]
        cls = TrackClass.VEHICLE if site.entrance else TrackClass.PEDESTRIAN if site.lobby else TrackClass.UNKNOWN
        self.tracks.append(Track(next(self._ids), cls, s, t, t, None, born=t))
        self.stats.tracks_started += 1
        # a ghost this rising edge falls in is explained now: its track is back
        self.ghosts = [gh for gh in self.ghosts if gh.sensor != s]
        if len(self.tracks) > MAX_TRACKS:
            oldest = min(self.tracks, key=lambda x: x.t_seen)
            self._lose(oldest, t)
            self.stats.dropped += 1

    def _move(self, tr: Track, s: int, t: float, *, ambiguous: bool, behind: bool = False) -> None:
        a = tr.sensor
        if ambiguous:
            self.stats.ambiguous += 1
        if a == s:
            tr.t_seen = t
            if ambiguous:  # it stopped, and now moves again: which way is not known, nor whether it got into a car
                tr.heading, tr.speed, tr.t_hit = None, 0.0, t
                if tr.cls is TrackClass.PEDESTRIAN and not self.model.sensors[s].lobby:
                    tr.cls = TrackClass.UNKNOWN
            return
        if a not in self._prev_on and t - tr.t_seen > RETRIGGER_S:
            # it had stopped being seen and now something rises elsewhere: if that is someone else, what this
            # track followed may still be standing where it was (a parked car, its driver about to get out);
            # and which way the mover goes is not known from one sensor
            self._ghost(tr, t)
            ambiguous = True
        d = self.model.sensor_distance[a][s]
        if not behind:
            self._passed(a, s, since=tr.t_hit)
        v = min(V_MAX, d / max(0.2, t - tr.t_hit))
        tr.speed = v if tr.speed <= 0 else 0.5 * (tr.speed + v)
        tr.top_speed = max(tr.top_speed, tr.speed)
        if ambiguous:
            tr.heading = None
        else:
            tr.heading = self.arrive[a][s]
        tr.prev_sensor, tr.sensor, tr.t_hit, tr.t_seen = a, s, t, t
        tr.hits += 1
        if tr.top_speed > VEHICLE_SPEED:
            tr.cls = TrackClass.VEHICLE
        elif tr.cls is TrackClass.PEDESTRIAN and (tr.speed > WALK_SPEED or ambiguous):
            tr.cls = TrackClass.UNKNOWN

    def _passed(self, a: int, s: int, *, since: float) -> None:
        """A mover went from sensor ``a`` to ``s``: every sensor on the way between them should have seen it."""
        dist = self.model.sensor_distance
        for b in range(len(self.model.sensors)):
            if b in (a, s) or dist[a][b] + dist[b][s] > dist[a][s] + 0.5:
                continue
            if self._last_on.get(b, -1e9) < since - SENSOR_SLACK_S:
                self.misses[b] = self.misses.get(b, 0) + 1

    def _expire(self, t: float, on: set[int]) -> None:
        keep: list[Track] = []
        for tr in self.tracks:
            if tr.sensor not in on and t - tr.t_seen > self.lost_after_s:
                self._lose(tr, t)
            else:
                keep.append(tr)
        self.tracks = keep
        self.ghosts = [gh for gh in self.ghosts if gh.until > t]

    def _lose(self, tr: Track, t: float) -> None:
        if tr in self.tracks:
            self.tracks.remove(tr)
        if self._gone(tr):
            self.stats.tracks_gone += 1
            return
        self.stats.tracks_lost += 1
        self._ghost(tr, t)

    def _ghost(self, tr: Track, t: float) -> None:
        site = self.model.sensors[tr.sensor]
        spans = self.model.graph.around(site.pos, site.range_m + self.model.garage.ahead_m)
        self.ghosts.append(Ghost(spans, t + self.lost_hold_s, tr.sensor, tr.id))

    def _gone(self, tr: Track) -> bool:
        """Last seen leaving by an entrance, or walking into a lift lobby."""
        site = self.model.sensors[tr.sensor]
        if site.entrance and tr.heading is not None and tr.cls is not TrackClass.PEDESTRIAN:
            return any(h is None or h is tr.heading for h in self.exits[tr.sensor])
        if site.lobby and tr.cls is TrackClass.PEDESTRIAN:
            return tr.heading is None or any(h is None or h is tr.heading for h in self.to_lobby[tr.sensor])
        return False

    # ---------------------------------------------------------------- what to light

    def region(self, tr: Track, t: float, latency_s: float) -> list[Span]:
        """Where the light must be full for this track now."""
        g = self.model.garage
        site = self.model.sensors[tr.sensor]
        quiet = tr.sensor not in self._prev_on and self.borders_gap[tr.sensor]
        unseen = max(0.0, t - tr.t_seen) if quiet else 0.0
        grow = tr.vmax() * unseen
        graph = self.model.graph
        if tr.cls is TrackClass.PEDESTRIAN:
            # a presence sensor cannot tell a person from a car in its range: the car beside the person who took
            # its sensor's rising edge must still be lit ahead_m ahead, so people are lit at least that far round
            return graph.around(site.pos, site.range_m + grow + max(g.pedestrian_m, g.ahead_m))
        v = tr.speed if tr.speed > 0 else V_ASSUMED
        lead = max(g.ahead_m, v * g.ahead_s) + tr.vmax() * latency_s
        reach = site.range_m + grow + lead
        # only a car known to be a car is lit one way: anything slower may be about to turn round (a driver
        # walking back, a car that was a person a moment ago)
        if tr.heading is None or tr.cls is not TrackClass.VEHICLE or self.near_junction[tr.sensor]:
            return graph.around(site.pos, reach)
        return [
            *graph.around(site.pos, site.range_m + g.behind_m),
            *graph.ahead(site.pos, tr.heading, reach),
        ]

    def position(self, tr: Track) -> LanePos:
        return self.model.sensors[tr.sensor].pos
