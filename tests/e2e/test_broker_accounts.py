"""Issue 12, finding 4, against the real Mosquitto with the generated config: a client id is bound to its account
(``use_username_as_clientid``), so a stolen password cannot take another client's place; and each cloud role may
only do what it is for (the monitor and the ingester cannot send a command)."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from harness import Collector, EdgeThread, Site, wait_until
from sc.broker import accounts
from sc.config.schema import CloudRole
from sc.contracts.commands import CommandName
from sc.contracts.messages import Status, StatusState, decode
from sc.contracts.topics import Kind, Topic

LIMIT = 30


class Client:
    """A raw MQTT 3.1.1 client that records its connections and losses."""

    def __init__(self, site: Site, user: str, client_id: str) -> None:
        self.results: list[str] = []
        self.losses: list[str] = []
        self._lock = threading.Lock()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311)
        c.username_pw_set(user, site.password(user))
        c.reconnect_delay_set(1, 2)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.connect("127.0.0.1", site.port, keepalive=5)
        c.loop_start()
        self.client = c
        assert wait_until(lambda: bool(self.results), LIMIT), f"{user} got no answer to its CONNECT"

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._lock:
            self.results.append(str(rc))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._lock:
            self.losses.append(str(rc))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def statuses(col: Collector, gateway: str) -> list[StatusState]:
    return [
        decode(Status, m.payload).state
        for m in col.of_kind(Kind.STATUS)
        if Topic.parse(m.topic).device == gateway and m.payload
    ]


def test_a_stolen_password_cannot_take_a_gateways_client_id(site: Site) -> None:
    col = Collector(site).start()
    edge = EdgeThread(site.loaded, "gw-a").start()
    thieves: list[Client] = []
    try:
        edge.wait_ready()
        assert wait_until(lambda: edge.app.conn.connected and statuses(col, "gw-a")[-1:] == [StatusState.ONLINE], LIMIT)
        # a manhole sensor's password, and another gateway's, both asking for gw-a's client id
        thieves = [Client(site, "manhole-1", "gw-a"), Client(site, "gw-b", "gw-a")]
        assert [t.results for t in thieves] == [["Success"], ["Success"]]
        log = site.broker.log_path.read_text()
        assert " as manhole-1 (" in log and " as gw-b (" in log  # each got its own account's name as its id
        # the real gateway was not dropped: it still answers, never lost its connection, its will never fired
        ping = col.command(site.sign("gw-a", "gw-a", CommandName.PING))
        assert ping.ok
        assert edge.app.conn.disconnects == 0 and edge.app.conn.connects == 1
        assert StatusState.OFFLINE not in statuses(col, "gw-a")
        assert [t.losses for t in thieves] == [[], []]
    finally:
        for t in thieves:
            t.stop()
        edge.stop()
        col.stop()


def test_a_second_connection_of_one_account_replaces_the_first_not_another_account(site: Site) -> None:
    first = Client(site, "observer-2", "one")
    try:
        second = Client(site, "observer-2", "two")  # the same account: the same client id, so it takes over
        try:
            assert wait_until(lambda: bool(first.losses), LIMIT), "the first connection of the account was kept"
            assert second.losses == []
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.mark.parametrize(
    ("role", "writes_cmd"), [(CloudRole.INGEST, False), (CloudRole.MONITOR, False), (CloudRole.COMMANDS, True)]
)
def test_only_the_commands_role_may_send_a_command(site: Site, role: CloudRole, writes_cmd: bool) -> None:
    by_name = {a.username: a for a in accounts(site.loaded)}
    cloud = site.loaded.site.cloud_account(role, "1" if role is not CloudRole.MONITOR else None)
    acl = by_name[cloud.username]
    assert ("sc/v1/test/+/cmd/#" in acl.write) is writes_cmd
    assert (acl.write == ()) is not writes_cmd
    col = Collector(site, username="observer-3").start()
    sender = Client(site, cloud.username, "whatever")
    try:
        topic = str(Topic("test", "gw-a", Kind.CMD, "gw-a"))
        sender.client.publish(topic, b'{"name":"ping"}', qos=1).wait_for_publish(LIMIT)
        marker = str(Topic("test", "gw-a", Kind.CMD, "smoke-1"))  # sent after it by an account that may
        col.client.publish(marker, b"{}", qos=1).wait_for_publish(LIMIT)
        assert wait_until(lambda: any(m.topic == marker for m in col.messages), LIMIT)
        assert any(m.topic == topic for m in col.messages) is writes_cmd
        if not writes_cmd:
            assert (
                f"Denied PUBLISH from {cloud.username} (d0, q1, r0, m1, '{topic}'" in site.broker.log_path.read_text()
            )
    finally:
        sender.stop()
        col.stop()
