"""The API's scopes on the example site (two communities, Heping and Anle): cloud/api/scope.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.api.scope import Scopes
from cloud.db.models import User
from cloud.workorders.states import Role
from sc.config.loader import load_site_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "site.example.yaml"


@pytest.fixture(scope="module")
def scopes() -> Scopes:
    return Scopes(load_site_config(EXAMPLE).site)


def user(uid: str, role: Role, department: str | None = None) -> User:
    return User(id=uid, name=uid, role=role.value, department=department, active=True)


def test_the_control_room_sees_the_whole_site(scopes: Scopes) -> None:
    for role in (Role.OPERATOR, Role.ADMIN):
        assert scopes.devices(user("x", role)) is None and scopes.covers(user("x", role), "anything")


def test_a_property_department_sees_its_community_only(scopes: Scopes) -> None:
    anju = scopes.devices(user("d", Role.DEPARTMENT, "anju-property"))
    assert anju is not None
    assert {"smoke-hp-b1-u1", "heping-north", "gw-heping-north-gate", "heping-garage"} <= anju
    assert not any(d.startswith(("bin-al", "smoke-al", "gw-anle")) for d in anju)
    assert "l-001" in anju  # a garage's lights are where the garage is
    anle = scopes.devices(user("d", Role.DEPARTMENT, "anle-property"))
    assert anle is not None and not (anju & anle)


def test_a_street_service_with_no_communities_sees_the_site_and_an_unknown_department_nothing(scopes: Scopes) -> None:
    assert scopes.devices(user("d", Role.DEPARTMENT, "street-fire")) is None
    assert scopes.devices(user("d", Role.DEPARTMENT, "no-such-department")) == frozenset()
    assert scopes.devices(user("d", Role.DEPARTMENT, None)) == frozenset()


def test_a_grid_worker_sees_their_grids(scopes: Scopes) -> None:
    zhang = scopes.locations(user("w-zhang", Role.GRID_WORKER))
    assert zhang is not None and "heping-g1" in zhang and "heping-g2" not in zhang and "anle-g1" not in zhang
    liu = scopes.devices(user("w-liu", Role.GRID_WORKER))  # the whole street
    assert liu is not None and {"smoke-hp-b1-u1", "heping-north"} <= liu
    assert scopes.devices(user("w-nobody", Role.GRID_WORKER)) == frozenset()  # not in the config: nothing


def test_a_resident_sees_no_devices(scopes: Scopes) -> None:
    assert scopes.devices(user("r", Role.RESIDENT)) == frozenset()


def test_a_face_goes_to_its_own_communitys_gates() -> None:
    from cloud.gates.store import community_gates

    site = load_site_config(EXAMPLE).site
    serves = community_gates(site)
    gates = {g.id: g for g in site.gates}
    heping = [g for g in gates if serves(gates[g], "hp-b1-u1")]
    anle = [g for g in gates if serves(gates[g], "al-b1-u1")]
    assert heping == ["heping-north", "heping-south"] and anle == []
    assert [g for g in gates if serves(gates[g], None)] == ["heping-north", "heping-south"]  # no location: all
    assert [g for g in gates if serves(gates[g], "xinhua")] == ["heping-north", "heping-south"]  # the street
