"""The network's PKI for MLLP over TLS with mutual authentication (IHE ATNA secure node).

One folder (``rhin up`` puts it at ``DATA/pki``) holds a network CA, the hub's server certificate and one
client certificate per facility, with deterministic names::

    ca.pem  ca.key                      the network CA (self-signed)
    hub.pem hub.key                     the hub: SAN IP 127.0.0.1 and DNS localhost (plus any host asked for)
    facilities/<code>.pem, <code>.key   one client certificate per facility

Private keys are written with mode 0600 (the folders 0700). Creation is idempotent: what exists is reused on
restart, only missing facility certificates are issued (by the existing CA), so a hub restarted on the same
data keeps trusting the same clients.

**Which facility a certificate speaks for** (rhin's choice, what the hub checks): the subject's common name
(CN) is the facility code (e.g. ``1712345678``), OU ``facility``. The hub takes the facility from the CN of a
certificate that chains to its CA (:func:`facility_of`) and nothing else; a vendor's CA must issue the same.

Keys are ECDSA P-256 (issuing 532 facilities takes well under a second); certificates are valid from a day
before creation for ten years — a test network, not a production PKI: no revocation lists.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "FACILITY_OU",
    "ClientTls",
    "Pki",
    "PkiError",
    "client_context",
    "ensure_pki",
    "facility_of",
    "server_context",
    "world_facility_codes",
]

FACILITY_OU: Final = "facility"
_VALIDITY: Final = dt.timedelta(days=3650)
_DEFAULT_HOSTS: Final = ("127.0.0.1", "localhost")


class PkiError(Exception):
    """A certificate or key is missing or unusable (the message names the file)."""


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable by its owner only (0600 from creation: no window)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rhin test network"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
    )


@dataclass
class Pki:
    """A PKI folder (see the module docstring): its files, and TLS contexts built from them."""

    folder: Path
    _ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = field(default=None, repr=False)

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def hub_cert(self) -> Path:
        return self.folder / "hub.pem"

    @property
    def hub_key(self) -> Path:
        return self.folder / "hub.key"

    @property
    def facilities(self) -> Path:
        return self.folder / "facilities"

    def facility_files(self, code: str) -> tuple[Path, Path]:
        """(certificate, key) of facility ``code``."""
        return self.facilities / f"{code}.pem", self.facilities / f"{code}.key"

    def server_context(self) -> ssl.SSLContext:
        """The hub's side: its certificate, client certificates required and checked against the CA."""
        return server_context(self.hub_cert, self.hub_key, self.ca_file)

    def client_tls(self) -> ClientTls:
        """What a client of this network needs: the CA and the facilities' folder."""
        return ClientTls(self.ca_file, self.facilities)

    # ----------------------------------------------------------------------------------- issuing

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._ca is None:
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key((self.folder / "ca.key").read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{self.folder / 'ca.key'} is not an EC key")
            self._ca = cert, key
        return self._ca

    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("rhin network CA", "ca")
        cert = (
            _builder(name, name, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.folder / "ca.key", _key_pem(key))
        _write_public(self.ca_file, cert.public_bytes(serialization.Encoding.PEM))
        self._ca = cert, key

    def _issue(
        self,
        cert_path: Path,
        key_path: Path,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[Any],
    ) -> None:
        ca_cert, ca_key = self._load_ca()
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(subject, ca_cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_private(key_path, _key_pem(key))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))

    def ensure(self, facilities: Iterable[str], hosts: Iterable[str] = _DEFAULT_HOSTS) -> Pki:
        """Create what is missing: the CA, the hub's certificate, each facility's; reuse what exists."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.facilities.mkdir(exist_ok=True, mode=0o700)
        if not (self.ca_file.is_file() and (self.folder / "ca.key").is_file()):
            self._make_ca()
        if not (self.hub_cert.is_file() and self.hub_key.is_file()):
            sans: list[Any] = []
            for host in dict.fromkeys([*_DEFAULT_HOSTS, *hosts]):
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    sans.append(x509.DNSName(host))
            self._issue(
                self.hub_cert, self.hub_key, _name("rhin-hub", "hub"), ExtendedKeyUsageOID.SERVER_AUTH, sans
            )
        for code in facilities:
            cert, key = self.facility_files(code)
            if not (cert.is_file() and key.is_file()):
                self._issue(cert, key, _name(code, FACILITY_OU), ExtendedKeyUsageOID.CLIENT_AUTH, [])
        return self


def ensure_pki(folder: Path, facilities: Iterable[str], hosts: Iterable[str] = _DEFAULT_HOSTS) -> Pki:
    """The PKI in ``folder`` for these facility codes, created or completed (idempotent)."""
    return Pki(folder).ensure(facilities, hosts)


def world_facility_codes(world: Mapping[str, Any]) -> list[str]:
    """Every facility code of a ``world.json`` document."""
    return [str(f["code"]) for f in world["facilities"]]


# ------------------------------------------------------------------------------------------- contexts


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context that requires a client certificate signed by ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"cannot load the hub's TLS files ({cert}, {key}, {ca}): {exc}") from exc
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS ≥ 1.2 client context trusting ``ca`` for the server, presenting ``cert`` if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=ca)
        if cert is not None:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"cannot load TLS files ({ca}, {cert}, {key}): {exc}") from exc
    return ctx


def facility_of(peercert: Mapping[str, Any] | None) -> str | None:
    """The facility a verified peer certificate speaks for: its subject CN (see the module docstring)."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


@dataclass
class ClientTls:
    """A client's TLS material: the CA that signed the hub, and a folder of ``<code>.pem``/``<code>.key``.

    :meth:`context` gives one cached context per facility (``None``: no client certificate, the anonymous
    client the hub must refuse). A vendor's target file names its own CA and folder the same way.
    """

    ca_file: Path
    certs: Path
    _contexts: dict[str | None, ssl.SSLContext] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def files(self, facility: str) -> tuple[Path, Path]:
        return self.certs / f"{facility}.pem", self.certs / f"{facility}.key"

    def has(self, facility: str) -> bool:
        return all(p.is_file() for p in self.files(facility))

    def context(self, facility: str | None) -> ssl.SSLContext:
        """The client context presenting ``facility``'s certificate (None: none); PkiError if it has none."""
        with self._lock:
            ctx = self._contexts.get(facility)
            if ctx is None:
                if facility is None:
                    ctx = client_context(self.ca_file)
                else:
                    cert, key = self.files(facility)
                    if not (cert.is_file() and key.is_file()):
                        raise PkiError(f"no client certificate for facility {facility} in {self.certs}")
                    ctx = client_context(self.ca_file, cert, key)
                self._contexts[facility] = ctx
            return ctx
