"""The command line explains itself and fails with actionable messages."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import REPO, sc_command

EXAMPLE = REPO / "configs" / "site.example.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sc_command(*args), capture_output=True, text=True, cwd=REPO, timeout=60)


def test_help_lists_every_daemon() -> None:
    r = run("--help")
    assert r.returncode == 0
    for word in ("edge", "sim", "broker", "monitor", "demo", "validate-config"):
        assert word in r.stdout
    r = run("edge", "run", "--help")
    assert r.returncode == 0 and "--gateway" in r.stdout and "--config" in r.stdout


def test_validate_config_accepts_the_example() -> None:
    r = run("validate-config", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        f"{EXAMPLE}: OK - site 'demo': 2 communities, 5 gateways, 10 devices, 2 gates, 1 garages"
    )


def test_validate_config_points_at_the_line(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("unit: 2, poll_interval_s: 2}", "unit: 1, poll_interval_s: 2}")
    bad = tmp_path / "site.yaml"
    bad.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "smoke-hp-b1-u2" in ln and "unit: 1" in ln)
    r = run("validate-config", str(bad))
    assert r.returncode == 2
    assert f"{bad}:{line}: gateways[0].devices[1].unit: bus 'rs485-1' unit 1 is already 'smoke-hp-b1-u1'" in r.stderr


def test_edge_run_with_an_unknown_gateway_says_which_exist() -> None:
    r = run("edge", "run", "--config", str(EXAMPLE), "--gateway", "gw-nope")
    assert r.returncode == 3
    assert "no gateway 'gw-nope' in the site config (known: gw-heping-sensors," in r.stderr


def test_broker_provision_writes_accounts_and_acl(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    cfg = cfg_dir / "site.yaml"
    cfg.write_text(EXAMPLE.read_text())
    r = run("broker", "provision", "--config", str(cfg), "--out", str(tmp_path / "broker"), "--port", "18830")
    assert r.returncode == 0, r.stderr
    secret = tmp_path / "run" / "secrets" / "gw-heping-sensors.secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    acl = (tmp_path / "broker" / "acl").read_text()
    assert "user gw-heping-sensors\ntopic write sc/v1/demo/gw-heping-sensors/status/#\n" in acl
    assert "user manhole-hp-road-1\ntopic write sc/v1/demo/gw-heping-sensors/uplink/manhole-hp-road-1\n" in acl
    passwd = (tmp_path / "broker" / "passwd").read_text().splitlines()
    assert len(passwd) == 12 and all(":$7$101$" in ln for ln in passwd)
    # each cloud role as much as it needs: only the gate link writes commands, the monitor only reads
    assert "user cloud-ingest-1\ntopic read sc/v1/demo/#\ntopic read $SYS/#\n\n" in acl
    assert (
        "user cloud-commands-1\ntopic write sc/v1/demo/+/cmd/#\ntopic read sc/v1/demo/+/cmd-ack/#\n"
        "topic read sc/v1/demo/+/status/#\ntopic read sc/v1/demo/+/state/#\n\n"
    ) in acl
    assert "user cloud-monitor\ntopic read sc/v1/demo/#\ntopic read $SYS/#\n" in acl
    conf = (tmp_path / "broker" / "mosquitto.conf").read_text()
    assert "listener 18830 127.0.0.1" in conf and "allow_anonymous false" in conf
    # as good as no queue limit (not 0: see sc/broker.py), and nothing larger than the contracts allow
    assert "max_queued_messages 10000000\n" in conf and "message_size_limit 65536\n" in conf
    assert "use_username_as_clientid true\n" in conf  # no account can take another's client id
    # a second run keeps the passwords
    before = secret.read_text()
    assert run("broker", "provision", "--config", str(cfg), "--out", str(tmp_path / "broker")).returncode == 0
    assert secret.read_text() == before


def test_sim_run_plays_a_scenario_and_ends(tmp_path: Path) -> None:
    cfg = tmp_path / "configs" / "site.yaml"
    cfg.parent.mkdir()
    cfg.write_text(EXAMPLE.read_text())
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: short\nduration_s: 1\nsteps:\n  - {at: 0.2, device: smoke-al-b1-u1, set: {smoke_density: 9}}\n"
    )
    r = run("sim", "run", "--config", str(cfg), "--gateway", "gw-anle-sensors", "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    assert "sim t=0.2 device=smoke-al-b1-u1 {'set': {'smoke_density': 9.0}}" in r.stderr
    assert "sim scenario 'short' finished" in r.stderr
    assert not (tmp_path / "run" / "tty" / "gw-anle-sensors.rs485-1").exists(), "the serial link is removed at exit"
    # a device the chosen gateway does not have, or a field its type does not have: refused, with the step
    scenario.write_text("steps:\n  - {at: 0.2, device: smoke-hp-b1-u1, set: {smoke_density: 9}}\n")
    r = run("sim", "run", "--config", str(cfg), "--gateway", "gw-anle-sensors", "--scenario", str(scenario))
    assert r.returncode == 2
    assert "steps.0: scenario names device 'smoke-hp-b1-u1', which the simulated gateways (gw-anle-sensors)" in r.stderr
    scenario.write_text("steps:\n  - {at: 0.2, device: smoke-al-b1-u1, set: {fill_pct: 9}}\n")
    r = run("sim", "run", "--config", str(cfg), "--gateway", "gw-anle-sensors", "--scenario", str(scenario))
    assert r.returncode == 2
    assert "steps.0: a smoke has no field fill_pct" in r.stderr


def test_sim_run_refuses_a_bad_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("steps:\n  - {at: 1, device: smoke-1, set: {smoke_density: 9}, fault: silent}\n")
    r = run("sim", "run", "--config", str(EXAMPLE), "--scenario", str(scenario))
    assert r.returncode == 2
    assert (
        f"scenario error: {scenario}: steps.0: Value error, each step does exactly one of: set, ramp, fault, raw"
        in r.stderr
    )


def test_demo_says_so_when_its_api_port_is_taken() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("demo", "--api-port", str(port), "--duration", "5")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (
        f"demo: the cloud cannot start: the API did not start on 127.0.0.1:{port}: the port is taken or cannot be "
        "bound (--api-port 0 takes any free port)"
    )


def test_broker_certs_and_a_tls_listener_for_a_container(tmp_path: Path) -> None:
    from cryptography import x509

    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    cfg = cfg_dir / "site.yaml"
    cfg.write_text(EXAMPLE.read_text())
    certs = tmp_path / "certs"
    hosts = ["--host", "mosquitto", "--host", "10.0.0.5"]
    r = run("broker", "certs", "--config", str(cfg), "--out", str(certs), *hosts)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in certs.iterdir()) == ["broker.key", "broker.pem", "ca.key", "ca.pem"]
    assert (certs / "ca.key").stat().st_mode & 0o777 == 0o600 and (certs / "broker.key").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((certs / "broker.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == ["mosquitto", "10.0.0.5"]
    r = run("broker", "certs", "--config", str(cfg), "--out", str(certs))  # no host: a clear error
    assert r.returncode == 2 and "--host" in r.stderr
    out = tmp_path / "broker"
    tls = ["--tls-ca", str(certs / "ca.pem"), "--tls-cert", str(certs / "broker.pem")]
    tls += ["--tls-key", str(certs / "broker.key")]
    r = run("broker", "provision", "--config", str(cfg), "--out", str(out), "--port", "8883", "--bind", "0.0.0.0", *tls)
    assert r.returncode == 0, r.stderr
    conf = (out / "mosquitto.conf").read_text()
    assert f"listener 8883 0.0.0.0\ncafile {certs / 'ca.pem'}\ncertfile {certs / 'broker.pem'}\n" in conf
