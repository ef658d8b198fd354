"""schemathesis against the API's own OpenAPI schema on the real stack (PostgreSQL, Mosquitto): no generated
input, valid or not, gets a server error.

Every operation is called with generated path, query, header and body values as the admin (who reaches the most
code) and as a resident (whose routes check the most about who they are). A 503 (a part this stack does not run:
InfluxDB for readings) and a 504 (a gate that is not online) are answers, not errors. Sign-outs (they would end
the token the run uses) and the live feed (a stream that does not end) are left out: tests/e2e/test_sign_in.py
and tests/e2e/test_live_feed.py cover them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine

from cloud.app import CloudApp
from cloud.workorders.states import Role
from harness import Site, add_api_users, api_settings, api_tokens

USERS: dict[str, tuple[Any, str | None, str | None]] = {
    "admin-1": (Role.ADMIN, None, None),
    "r-1": (Role.RESIDENT, None, "b1-u1"),
}
LEFT_OUT = r"/auth/signout|/api/v1/live$"
EXAMPLES = 20  # per operation and user: about 1,400 requests in all


@pytest.fixture
def api(site: Site, db: Engine, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    add_api_users(db, USERS)
    app = CloudApp(site.loaded, api_settings(db, tmp_path, door_open_timeout_s=0.2))
    app.start()
    base = f"http://127.0.0.1:{app.api_port}"
    try:
        yield base, api_tokens(base, USERS)
    finally:
        app.stop()


def fuzz(op: Any, *, base: str, user: str, token: str, errors: list[str]) -> None:
    """Call ``op`` with EXAMPLES generated requests as ``user``; each server error goes to ``errors``."""

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if response.status_code >= 500 and response.status_code not in (503, 504):
            errors.append(
                f"{op.label} as {user}: {response.status_code} for {case.path_parameters} {case.query} "
                f"{str(case.body)[:200]}: {response.text[:300]}"
            )

    run()


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(api: tuple[str, dict[str, str]]) -> None:
    base, tokens = api
    spec = httpx.get(f"{base}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec).exclude(path_regex=LEFT_OUT)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 30
    errors: list[str] = []
    for op in operations:
        for user, token in tokens.items():
            fuzz(op, base=base, user=user, token=token, errors=errors)
    assert errors == [], "\n".join(errors[:40])
