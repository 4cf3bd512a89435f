"""Throwaway PKI for the test control plane: a CA, the API server's serving cert, client certs, SA keys.

Called by tests/harness/controlplane.py when it prepares a state directory. Everything is valid for
loopback only and lives as long as the state directory; keys are EC P-256 because they are fast to make.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)
# The in-cluster names kube-apiserver expects on its cert, plus loopback for the tests themselves.
_SERVER_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
_SERVER_IPS = ("127.0.0.1", "198.19.255.1")  # the first address of components.SERVICE_CIDR
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Paths of every credential file the control plane components are started with."""

    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    front_proxy_ca: CertPair
    front_proxy_client: CertPair
    sa_private: Path
    sa_public: Path
    # More client certs by name (the sealed node's kubelet, scheduler, kube-proxy, ...).
    clients: Mapping[str, CertPair] = field(default_factory=dict)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


class _Authority:
    """A CA kept in memory while the leaf certs are signed."""

    def __init__(self, directory: Path, stem: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(f"actormesh-test-{stem}")
        cert = (
            _builder(self.name, self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .sign(self.key, hashes.SHA256())
        )
        self.pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
        self.pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.key, self.pair.key)

    def issue(
        self,
        directory: Path,
        stem: str,
        subject: x509.Name,
        *,
        server: bool,
        server_ips: Sequence[str] = _SERVER_IPS,
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(subject, self.name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            sans: list[x509.GeneralName] = [x509.DNSName(n) for n in _SERVER_DNS]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair


def _service_account_keys(directory: Path) -> tuple[Path, Path]:
    # RSA because kube-controller-manager's legacy token signer and every JWT verifier accept it.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "sa.key", directory / "sa.pub"
    _write_key(key, private)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def generate_pki(
    directory: Path,
    *,
    server_ips: Sequence[str] = _SERVER_IPS,
    clients: Mapping[str, tuple[str, str | None]] | None = None,
) -> Pki:
    """Create every credential under `directory` (created if missing) and return their paths.

    `server_ips` go on the API server's cert; `clients` maps a file stem to (common name,
    organization) for additional client certs, returned in `Pki.clients`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = _Authority(directory, "ca")
    # A CA of its own, as kubeadm does: trusting it only lets a proxy assert a user via headers.
    front_proxy = _Authority(directory, "front-proxy-ca")
    sa_private, sa_public = _service_account_keys(directory)
    return Pki(
        ca=ca.pair,
        apiserver=ca.issue(
            directory, "apiserver", _name("kube-apiserver"), server=True, server_ips=server_ips
        ),
        # system:masters bypasses RBAC: the admin credential tests and `make k8s-up` users get.
        admin=ca.issue(directory, "admin", _name("actormesh-admin", "system:masters"), server=False),
        # The bootstrap RBAC policy grants this user exactly what the controller manager needs.
        controller_manager=ca.issue(
            directory, "controller-manager", _name("system:kube-controller-manager"), server=False
        ),
        front_proxy_ca=front_proxy.pair,
        front_proxy_client=front_proxy.issue(
            directory, "front-proxy-client", _name(FRONT_PROXY_CLIENT), server=False
        ),
        sa_private=sa_private,
        sa_public=sa_public,
        clients={
            stem: ca.issue(directory, stem, _name(cn, org), server=False)
            for stem, (cn, org) in (clients or {}).items()
        },
    )
