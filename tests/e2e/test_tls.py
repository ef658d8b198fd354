"""TLS to the broker when certificates are configured."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import DATA, Collector, EdgeThread, make_site, wait_until
from sc.broker import ServerTls
from sc.certs import make_certs as sc_make_certs
from sc.config.loader import ConfigError, load_site_config
from sc.mosquitto import MosquittoProcess


def make_certs(d: Path) -> ServerTls:
    """The site's CA and a broker certificate for 127.0.0.1, as ``sc broker certs --host 127.0.0.1`` makes them."""
    files = sc_make_certs(d, ["127.0.0.1", "localhost"], site="test", days=2)
    assert oct(files.key_file.stat().st_mode & 0o777) == "0o600" and oct(files.ca_key.stat().st_mode & 0o777) == "0o600"
    again = sc_make_certs(d, ["127.0.0.1"], site="test")  # a second run keeps what is there
    assert again == files and files.ca_file.read_bytes() == again.ca_file.read_bytes()
    return ServerTls(files.ca_file, files.cert_file, files.key_file)


def test_gateway_talks_to_the_broker_over_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    template = tmp_path / "template.yaml"
    template.write_text(
        (DATA / "site.yaml").read_text().replace("keepalive_s: 5}", "keepalive_s: 5, tls: {ca_file: ../certs/ca.pem}}")
    )
    plain = make_site(tmp_path, template)  # provisions accounts; replaced by a TLS broker below
    broker = MosquittoProcess(plain.loaded, tmp_path / "broker", port=plain.port, tls=certs).start()
    assert f"certfile {certs.cert_file}" in broker.files.conf.read_text()
    site = plain
    site.broker = broker
    assert site.loaded.site.broker.tls is not None
    assert site.loaded.site.broker.tls.ca_file.resolve() == (tmp_path / "certs" / "ca.pem").resolve()
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=Scenario())).start()
    edge = EdgeThread(site.loaded, "gw-a").start()
    col = Collector(site)
    col.client.tls_set(ca_certs=str(certs.ca_file))
    col.start()
    try:
        edge.wait_ready()
        assert wait_until(lambda: edge.app.conn.connected, 10)
        sim.sim.sensors["smoke-1"].set({"smoke_density": 15.0})
        want = Counter({("smoke-1", "smoke_alarm", "raised"): 1})
        assert wait_until(lambda: Counter((e.device, e.kind.value, e.state.value) for e in col.events()) == want, 10)
        # the broker speaks only TLS on that port
        log = broker.log_path.read_text()
        assert "New client connected" in log and "gw-a" in log
    finally:
        col.stop()
        edge.stop()
        sim.stop()
        broker.stop()


def test_missing_tls_files_fail_at_load(tmp_path: Path) -> None:
    cfg = tmp_path / "configs" / "site.yaml"
    cfg.parent.mkdir()
    text = (DATA / "site.yaml").read_text().replace("keepalive_s: 5}", "keepalive_s: 5, tls: {ca_file: nope.pem}}")
    cfg.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("broker:"))
    with pytest.raises(ConfigError) as exc:
        load_site_config(cfg)
    assert str(exc.value) == f"{cfg}:{line}: broker.tls: no such file {tmp_path / 'configs' / 'nope.pem'}"
