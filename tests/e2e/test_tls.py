"""TLS to the broker when certificates are configured."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import DATA, Collector, EdgeThread, make_site, wait_until
from sc.broker import ServerTls
from sc.config.loader import ConfigError, load_site_config
from sc.mosquitto import MosquittoProcess


def make_certs(d: Path) -> ServerTls:
    """A throwaway CA and a broker certificate for 127.0.0.1 (openssl)."""
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key", "-out", "broker.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "broker.pem")  # fmt: skip
    return ServerTls(d / "ca.pem", d / "broker.pem", d / "broker.key")


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
