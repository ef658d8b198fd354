#!/usr/bin/env python3
"""Control-room latency: from a gateway's alarm to the alarm on the operator's screen, the page's live feed
side by side with a page that polls the API every 5 s (the usual "auto-refresh" dashboard), in one run.

    .venv/bin/python bench/control_room_latency.py [--alarms 40] [--poll-s 5]

Everything runs on this machine: a private Mosquitto provisioned from a copy of configs/site.example.yaml,
the cloud (``CloudApp``: ingester, API and the page; SQLite, as in the demo), and Debian's chromium driven by
Playwright with two tabs signed in as the operator:

* ``ours``      the alarm wall (``/ui/wall``): Server-Sent Events from ``/api/v1/live``; a MutationObserver
                in the page stamps the moment each alarm's card is added to the page;
* ``baseline``  a script in a second tab that fetches ``/api/v1/work-orders`` every ``--poll-s`` seconds and
                stamps the moment it first sees each order (what a page that refreshes itself would show).

One alarm at a time: this process publishes a ``smoke_alarm`` as gateway ``gw-heping-sensors`` (QoS 1), waits
until both tabs have it, closes the order through the API (so the next alarm of the device opens a new
order) and waits a random 0 to ``--poll-s`` s, so the alarms fall at random points of the baseline's poll
period (its expected delay is half the period plus a request).
Latency = the browser's stamp (``performance.timeOrigin + performance.now()``) - the time just before the
publish (same machine, same clock). The order's ``created_at`` splits ours into ingest (publish -> order
committed) and page (order -> card on screen). Writes docs/control_room_latency.png.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloud.app import CloudApp  # noqa: E402
from cloud.db.engine import make_engine, make_sessions, migrate  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402
from cloud.users import create_user  # noqa: E402
from cloud.workorders.states import Role  # noqa: E402
from sc.config.loader import LoadedConfig, load_site_config  # noqa: E402
from sc.contracts.messages import AlarmPayload, Event, EventKind, EventState, Severity, SmokeReading, encode  # noqa: E402
from sc.contracts.topics import Kind, Topic  # noqa: E402
from sc.mosquitto import MosquittoProcess, free_port  # noqa: E402

GATEWAY = "gw-heping-sensors"
DEVICES = ("smoke-hp-b1-u1", "smoke-hp-b1-u2", "smoke-hp-b2-u1", "smoke-hp-bike-1")
PASSWORD = "bench-password-1"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

OBSERVER_JS = """() => {
  window.seen = {};
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const r of records) for (const n of r.addedNodes)
      if (n.id && n.id.startsWith("alarm-") && !(n.id.slice(6) in window.seen)) window.seen[n.id.slice(6)] = now;
  }).observe(document.getElementById("alarms"), { childList: true });
}"""

POLLER_JS = """(pollMs) => {
  window.seen = {};
  const token = localStorage.getItem("sc_token");
  const poll = async () => {
    const resp = await fetch("/api/v1/work-orders?status=open&status=dispatched&limit=500",
                             { headers: { Authorization: "Bearer " + token } });
    const now = performance.timeOrigin + performance.now();
    for (const o of await resp.json()) if (!(o.id in window.seen)) window.seen[o.id] = now;
  };
  poll();
  setInterval(poll, pollMs);
}"""


def make_site(tmp: Path) -> tuple[LoadedConfig, int]:
    port = free_port()
    text = (REPO / "configs" / "site.example.yaml").read_text(encoding="utf-8")
    if "port: 1883" not in text:
        sys.exit("configs/site.example.yaml no longer contains 'port: 1883'; update the benchmark")
    (tmp / "configs").mkdir(parents=True)
    cfg = tmp / "configs" / "site.yaml"
    cfg.write_text(text.replace("port: 1883", f"port: {port}"), encoding="utf-8")
    return load_site_config(cfg), port


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50": pct(xs, 50), "p95": pct(xs, 95), "max": max(xs), "mean": statistics.fmean(xs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alarms", type=int, default=40)
    ap.add_argument("--poll-s", type=float, default=5.0)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "control_room_latency.png")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="sc-bench-cr-") as tmp_s:
        tmp = Path(tmp_s)
        loaded, _ = make_site(tmp)
        broker = MosquittoProcess(loaded, tmp / "broker", port=loaded.site.broker.port).start()
        db_url = f"sqlite:///{tmp / 'cloud.db'}"
        engine = make_engine(db_url)
        migrate(engine)
        with make_sessions(engine).begin() as s:
            create_user(s, user_id="operator", name="Operator", role=Role.OPERATOR, password=PASSWORD,
                        now=datetime.now(UTC))  # fmt: skip
        cloud = CloudApp(loaded, CloudSettings(database_url=db_url, api_port=0, media_dir=str(tmp / "media")))
        cloud.start()
        base = f"http://127.0.0.1:{cloud.api_port}"
        gw_password = next(a for a in broker.files.accounts if a.username == GATEWAY).password_file.read_text().strip()
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{GATEWAY}-bench")
        pub.username_pw_set(GATEWAY, gw_password)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        api = httpx.Client(base_url=base, timeout=10)
        token = api.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}).json()
        api.headers["Authorization"] = f"Bearer {token['access_token']}"
        ours: list[float] = []
        baseline: list[float] = []
        ingest: list[float] = []
        page_part: list[float] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                ctx = browser.new_context(viewport={"width": 1366, "height": 768})
                wall = ctx.new_page()
                wall.goto(f"{base}/ui/login")
                wall.fill("input[name=username]", "operator")
                wall.fill("input[name=password]", PASSWORD)
                wall.click("button[type=submit]")
                wall.wait_for_url(lambda url: url.endswith("/ui/wall"))
                wall.wait_for_selector("#live.on")
                wall.evaluate(OBSERVER_JS)
                poller = ctx.new_page()
                poller.goto(f"{base}/ui/login")  # same origin: the token is in local storage
                poller.evaluate(POLLER_JS, args.poll_s * 1000)
                seqs = dict.fromkeys(DEVICES, 0)
                for i in range(args.alarms):
                    device = DEVICES[i % len(DEVICES)]
                    seqs[device] += 1
                    reading = SmokeReading(smoke_density=15, temperature_c=30, battery_pct=80, alarm=True, fault=False)
                    ev = Event(
                        site=loaded.site.site.id, gateway=GATEWAY, device=device, ts=datetime.now(UTC),
                        seq=seqs[device] + 1000, kind=EventKind.SMOKE_ALARM, state=EventState.RAISED,
                        severity=Severity.CRITICAL,
                        payload=AlarmPayload(rule="smoke_density >= 8", value=15, threshold=8, reading=reading),
                    )  # fmt: skip
                    payload = encode(ev)
                    sent = time.time() * 1000
                    pub.publish(str(Topic(loaded.site.site.id, GATEWAY, Kind.EVENT, device)), payload, qos=1)
                    deadline = time.monotonic() + args.poll_s + 15
                    order: dict[str, Any] | None = None
                    while time.monotonic() < deadline:
                        if order is None:
                            rows = api.get("/api/v1/events", params={"device": device, "limit": 1}).json()
                            if rows and rows[0]["id"] == ev.id and rows[0]["work_order_id"] is not None:
                                order = api.get(f"/api/v1/work-orders/{rows[0]['work_order_id']}").json()
                        if order is not None:
                            oid = str(order["id"])
                            w = wall.evaluate("(id) => window.seen[id] ?? null", oid)
                            b = poller.evaluate("(id) => window.seen[id] ?? null", oid)
                            if w is not None and b is not None:
                                break
                        time.sleep(0.05)
                    else:
                        print(f"alarm {i}: not seen by both tabs within {args.poll_s + 15:.0f} s", file=sys.stderr)
                        return 1
                    created = datetime.fromisoformat(order["created_at"]).timestamp() * 1000
                    ours.append(w - sent)
                    baseline.append(b - sent)
                    ingest.append(created - sent)
                    page_part.append(w - created)
                    for action in ("accept", "resolve", "close"):
                        r = api.post(f"/api/v1/work-orders/{oid}/actions", json={"action": action})
                        if r.status_code != 200:
                            print(f"closing order {oid}: {r.status_code} {r.text}", file=sys.stderr)
                            return 1
                    print(
                        f"alarm {i + 1}/{args.alarms}: ours {w - sent:7.0f} ms, baseline {b - sent:7.0f} ms", flush=True
                    )
                    time.sleep(rng.uniform(0, args.poll_s))
                browser.close()
        finally:
            pub.loop_stop()
            pub.disconnect()
            api.close()
            cloud.stop()
            broker.stop()
    o, b_, ing, pg = summary(ours), summary(baseline), summary(ingest), summary(page_part)
    print(f"\n{args.alarms} alarms, one at a time; ms from publish to the alarm on screen")
    print("| page | p50 | p95 | max | mean |")
    print("|---|---:|---:|---:|---:|")
    rows = [
        (f"baseline (poll every {args.poll_s:g} s)", b_),
        ("ours (live feed)", o),
        ("  ours: publish -> order created (its created_at)", ing),
        ("  ours: order -> card on screen", pg),
    ]
    for name, row in rows:
        print(f"| {name} | {row['p50']:.0f} | {row['p95']:.0f} | {row['max']:.0f} | {row['mean']:.0f} |")
    print(f"\nbaseline / ours: p50 {b_['p50'] / o['p50']:.1f}x, p95 {b_['p95'] / o['p95']:.1f}x")
    print(f"ours under 1 s: {sum(x < 1000 for x in ours)}/{len(ours)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    bins = [x * 100 for x in range(0, int(max(max(baseline), max(ours)) / 100) + 2)]
    ax.hist(baseline, bins=bins, alpha=0.6, label=f"baseline: poll every {args.poll_s:g} s")
    ax.hist(ours, bins=bins, alpha=0.8, label="ours: live feed (SSE)")
    ax.set_xlabel("ms from the gateway's publish to the alarm on the operator's screen")
    ax.set_ylabel("alarms")
    ax.axvline(1000, color="k", ls=":", lw=1)
    ax.legend()
    ax.set_title(f"Alarm to the control room's wall, {args.alarms} alarms")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
