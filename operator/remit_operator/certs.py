"""A self-signed serving certificate for the admission webhook when the chart gives none.

kopf can self-sign too, but only through ``certbuilder``/``oscrypto``, which cannot load modern
OpenSSL; ``cryptography`` (already required by joserfc) does it here. The certificate is its own
CA: it is the ``caBundle`` the webhook configuration carries. It is valid for every name the API
server may use (the Service DNS names) and for loopback (tests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def service_names(service: str | None) -> list[str]:
    """DNS names of ``namespace/name`` as a Service, in every form the API server may use."""
    if not service:
        return []
    namespace, name = service.split("/", 1)
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.cluster.local",
    ]


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed(names: Iterable[str], days: int = 365) -> tuple[bytes, bytes]:
    """A P-256 certificate and key (PEM) valid for ``names`` (DNS names or IP addresses)."""
    unique = list(dict.fromkeys(n for n in names if n))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique[0] if unique else "remit")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in unique]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def write_self_signed(directory: Path, names: Iterable[str]) -> tuple[Path, Path]:
    """Write a self-signed certificate and key into ``directory``; return both paths."""
    cert_pem, key_pem = self_signed(names)
    cert, key = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return cert, key
