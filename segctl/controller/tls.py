"""A small PKI for OpenFlow and the REST API over TLS: one CA, a controller certificate
(for ``localhost``, 127.0.0.1 and ::1), a switch certificate (also a REST client's).

``segctl controller run --key K --cert C --ca-cert CA`` makes the controller listen
with TLS only and require switch certificates signed by ``CA``; the switches need
``ovs-vsctl set-ssl SWITCH_KEY SWITCH_CERT CA`` and ``set-controller BR ssl:HOST:PORT``.
:func:`make_pki` writes such a set of files (for labs and tests; production PKIs
come from your own CA or ``ovs-pki``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]


@dataclass(frozen=True)
class Pki:
    """Paths of the files :func:`make_pki` wrote (PEM)."""

    ca_cert: Path
    controller_key: Path
    controller_cert: Path
    switch_key: Path
    switch_cert: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    usage: x509.ObjectIdentifier | None,
    days: int,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: str | Path, *, days: int = 30) -> Pki:
    """Write a CA, a controller key/certificate and one switch key/certificate into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("segctl test CA")
    ca = _issue("segctl test CA", ca_key, ca_name, ca_key, ca=True, usage=None, days=days)
    ctl_key, sw_key = _key(), _key()
    ctl = _issue(
        "segctl controller",
        ctl_key,
        ca_name,
        ca_key,
        ca=False,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
        # clients that check the server's name (curl, Python's ssl) connect to these
        names=[
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ],
    )
    sw = _issue(
        "segctl switch", sw_key, ca_name, ca_key, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH, days=days
    )
    pki = Pki(
        ca_cert=out / "ca-cert.pem",
        controller_key=out / "controller-key.pem",
        controller_cert=out / "controller-cert.pem",
        switch_key=out / "switch-key.pem",
        switch_cert=out / "switch-cert.pem",
    )
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.controller_cert.write_bytes(ctl.public_bytes(serialization.Encoding.PEM))
    pki.switch_cert.write_bytes(sw.public_bytes(serialization.Encoding.PEM))
    _write_key(pki.controller_key, ctl_key)
    _write_key(pki.switch_key, sw_key)
    return pki
