"""Routing from the site config: which department and person get an order,
where it sits in the grid tree, its deadlines, and where it escalates to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sc.config.schema import Routing, SiteConfig
from sc.contracts.messages import EventKind, Severity

from .catalogue import category_for

__all__ = ["RouteDecision", "Router", "RoutingError"]


class RoutingError(ValueError):
    pass


@dataclass(frozen=True)
class RouteDecision:
    category: str
    subcategory: str
    department: str
    assignee: str | None
    location: str
    chain: tuple[str, ...]  # street, community, micro-grid, ... location
    respond_by: datetime
    resolve_by: datetime

    @property
    def street(self) -> str:
        return self.chain[0]

    @property
    def community(self) -> str | None:
        return self.chain[1] if len(self.chain) > 1 else None

    @property
    def grid(self) -> str | None:
        return self.chain[2] if len(self.chain) > 2 else None


class Router:
    def __init__(self, site: SiteConfig) -> None:
        if site.routing is None:
            raise RoutingError("the site config has no `routing` section: the cloud cannot route work orders")
        self.site = site
        self.routing: Routing = site.routing
        self._chains: dict[str, tuple[str, ...]] = {loc: tuple(site.location_chain(loc)) for loc, _ in site.locations()}

    def chain(self, location: str) -> tuple[str, ...]:
        try:
            return self._chains[location]
        except KeyError as exc:
            raise RoutingError(f"location {location!r} is not in the grid tree") from exc

    def route(
        self,
        *,
        category: str,
        subcategory: str,
        severity: Severity,
        location: str,
        now: datetime,
        kind: EventKind | None = None,
    ) -> RouteDecision:
        chain = self.chain(location)
        department = self.routing.default_department
        for rule in self.routing.rules:
            if rule.categories and category not in rule.categories:
                continue
            if rule.kinds and (kind is None or kind not in rule.kinds):
                continue
            if rule.severities and severity not in rule.severities:
                continue
            if rule.within is not None and rule.within not in chain:
                continue
            department = rule.department
            break
        sla = self.routing.sla[severity]
        return RouteDecision(
            category=category,
            subcategory=subcategory,
            department=department,
            assignee=self.assignee(department, chain),
            location=location,
            chain=chain,
            respond_by=now + timedelta(minutes=sla.respond_min),
            resolve_by=now + timedelta(minutes=sla.resolve_min),
        )

    def route_event(self, *, kind: EventKind, severity: Severity, location: str, now: datetime) -> RouteDecision:
        category, subcategory = category_for(kind)
        return self.route(
            category=category, subcategory=subcategory, severity=severity, location=location, now=now, kind=kind
        )

    def assignee(self, department: str, chain: tuple[str, ...]) -> str | None:
        """The department's worker whose grids cover the location most closely."""
        best: tuple[int, str] | None = None
        for w in self.site.workers:
            if w.department != department:
                continue
            depth = max((chain.index(g) for g in w.grids if g in chain), default=-1)
            if depth >= 0 and (best is None or depth > best[0]):
                best = (depth, w.id)
        return best[1] if best else None

    def escalation_target(self, chain: tuple[str, ...], level: int) -> str:
        """The grid-tree node that supervises an order escalated ``level`` times.

        Level 0 is the micro-grid (or the deepest node above the location),
        each level one step up, never above the street.
        """
        base = min(2, len(chain) - 1)  # index of the micro-grid in the chain
        return chain[max(0, base - level)]

    def sla_minutes(self, severity: Severity) -> tuple[float, float]:
        s = self.routing.sla[severity]
        return s.respond_min, s.resolve_min
