"""Who may see which part of the community: one owner of the API's scopes (see docs/security.md).

| role | scope |
| --- | --- |
| operator, admin | the whole site |
| department | its communities (a department with none listed: the whole site, e.g. the street's fire station) |
| grid worker | the micro-grids or communities the site config gives them (none: nothing) |
| resident | nothing of the devices and events (their own reports only, cloud/workorders/queries.py) |

A scope is a set of grid-tree locations: everything at or under the roots. A device is in scope when its location
is (:meth:`sc.config.schema.SiteConfig.device_locations`). Who entered a gate (``entry`` and ``entry_refused``
events) is for gate staff only, within their scope.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.orm import InstrumentedAttribute

from cloud.db.models import User
from cloud.workorders.states import Role
from sc.config.schema import SiteConfig

__all__ = ["Scopes"]


class Scopes:
    """The site's scopes, computed once from its config."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self._chain = {loc: frozenset(site.location_chain(loc)) for loc, _ in site.locations()}
        self._device_location = site.device_locations()
        self._departments = {d.id: d for d in site.departments}
        self._grids = {w.id: list(w.grids) for w in site.workers}

    def roots(self, user: User) -> list[str] | None:
        """The grid-tree roots of ``user``'s scope; None: the whole site."""
        role = Role(user.role)
        if role in (Role.OPERATOR, Role.ADMIN):
            return None
        if role is Role.DEPARTMENT:
            dept = self._departments.get(user.department or "")
            if dept is None:
                return []
            return list(dept.communities) or None
        if role is Role.GRID_WORKER:
            return self._grids.get(user.id, [])
        return []

    def locations(self, user: User) -> frozenset[str] | None:
        """Every location in ``user``'s scope; None: the whole site."""
        roots = self.roots(user)
        if roots is None:
            return None
        wanted = set(roots)
        return frozenset(loc for loc, chain in self._chain.items() if chain & wanted)

    def devices(self, user: User) -> frozenset[str] | None:
        """The devices (gateways, sensors, gates, garages and their parts) in ``user``'s scope; None: all."""
        locs = self.locations(user)
        if locs is None:
            return None
        return frozenset(d for d, loc in self._device_location.items() if loc in locs)

    def gates(self, user: User) -> frozenset[str] | None:
        """The gates in ``user``'s scope; None: all."""
        allowed = self.devices(user)
        if allowed is None:
            return None
        return frozenset(g.id for g in self.site.gates if g.id in allowed)

    def covers(self, user: User, device: str) -> bool:
        allowed = self.devices(user)
        return allowed is None or device in allowed

    def device_filter(self, user: User, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """The SQL condition: ``column`` (a device id) is in ``user``'s scope."""
        allowed = self.devices(user)
        if allowed is None:
            return true()
        return column.in_(sorted(allowed)) if allowed else false()
