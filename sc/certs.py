"""Certificates for the broker's TLS listener: a private CA of the site and a broker certificate it signs.

``sc broker certs --out run/certs --host mosquitto --host broker.example.com`` writes

* ``ca.pem`` (give it to every gateway and cloud process: ``broker.tls.ca_file``) and ``ca.key`` (0600; keep it
  off the broker, it only signs),
* ``broker.pem`` and ``broker.key`` (0600) for Mosquitto (``sc broker provision --tls-ca --tls-cert --tls-key``),
  valid for every ``--host`` (DNS names and IP addresses) the clients use to reach it.

Existing files are kept (a second run changes nothing), so the CA the gateways trust stays the same; delete the
broker's pair to make a new one signed by the same CA (before it expires, say).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["SiteCerts", "make_certs"]


@dataclass(frozen=True)
class SiteCerts:
    ca_file: Path
    ca_key: Path
    cert_file: Path
    key_file: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_certs(out: Path, hosts: list[str], *, site: str, days: int = 825, now: datetime | None = None) -> SiteCerts:
    """Write (what is missing of) the site's CA and a broker certificate for ``hosts`` into ``out``."""
    if not hosts:
        raise ValueError("name at least one host the clients reach the broker by (--host)")
    out.mkdir(parents=True, exist_ok=True)
    files = SiteCerts(out / "ca.pem", out / "ca.key", out / "broker.pem", out / "broker.key")
    now = now or datetime.now(UTC)
    if files.ca_file.exists() and files.ca_key.exists():
        ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{files.ca_key} is not the EC key this tool makes")
        ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{site} broker CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=10 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(files.ca_key, ca_key)
        files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    if not (files.cert_file.exists() and files.key_file.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        files.key_file.unlink(missing_ok=True)
        _write_key(files.key_file, key)
        files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files
