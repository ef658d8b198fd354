"""Network faults between a gateway and its broker: a cut cable and a silent dead link."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import Collector, EdgeThread, Site, TcpProxy, via_proxy, wait_until
from sc.contracts.messages import Status, StatusState, decode
from sc.contracts.topics import Kind, Topic


@pytest.fixture
def proxy(site: Site) -> Iterator[TcpProxy]:
    p = TcpProxy(site.port)
    yield p
    p.close()


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
def test_alarms_raised_while_the_network_is_down_arrive_after_it_heals(site: Site, proxy: TcpProxy, fault: str) -> None:
    col = Collector(site).start()
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=Scenario())).start()
    edge = EdgeThread(via_proxy(site.loaded, proxy.port), "gw-a").start()
    try:
        edge.wait_ready()
        assert wait_until(lambda: edge.app.conn.connected, 10)
        getattr(proxy, fault)()
        # alarms and clears while the link is down (a black hole is only noticed at keepalive)
        sim.sim.sensors["smoke-1"].set({"smoke_density": 20.0})
        sim.sim.sensors["bin-1"].set({"fill_pct": 99.0})
        assert wait_until(lambda: edge.app.counters.events >= 2, 5)
        sim.sim.sensors["smoke-1"].set({"smoke_density": 0.2})
        assert wait_until(lambda: edge.app.counters.events >= 3, 5)
        assert wait_until(lambda: not edge.app.conn.connected, 15), "the gateway must notice the dead link"
        gw_topic = str(Topic("test", "gw-a", Kind.STATUS, "gw-a"))
        # the broker tells everyone the gateway is gone (last will once the broker notices)
        assert wait_until(
            lambda: any(
                m.topic == gw_topic and decode(Status, m.payload).state is StatusState.OFFLINE for m in col.messages
            ),
            15,
        )
        proxy.heal()
        assert wait_until(lambda: edge.app.conn.connected, 20), "the gateway must reconnect"
        expected = Counter(
            {
                ("smoke-1", "smoke_alarm", "raised"): 1,
                ("smoke-1", "smoke_alarm", "cleared"): 1,
                ("bin-1", "bin_full", "raised"): 1,
                # the MQTT-native manhole's uplinks could not reach its gateway either
                ("manhole-1", "device_offline", "raised"): 1,
                ("manhole-1", "device_online", "cleared"): 1,
            }
        )

        def firsts() -> Counter[tuple[str, str, str]]:
            seen: dict[str, tuple[str, str, str]] = {}
            for e in col.events():
                seen.setdefault(e.id, (e.device, e.kind.value, e.state.value))
            return Counter(seen.values())

        assert wait_until(lambda: firsts() == expected, 15), firsts()
        smoke = [e.seq for e in col.events() if e.device == "smoke-1"]
        assert sorted(set(smoke)) == [1, 2] and smoke == sorted(smoke)
        last = [decode(Status, m.payload).state for m in col.messages if m.topic == gw_topic][-1]
        assert last is StatusState.ONLINE
        assert wait_until(lambda: edge.app.outbox.depth()["events"] == 0, 5)
    finally:
        edge.stop()
        sim.stop()
        col.stop()
