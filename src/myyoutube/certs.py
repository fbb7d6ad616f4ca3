"""The cluster's own certificate authority, and mutual TLS between its roles.

Theory of operation
-------------------
Every internal link (web -> master, datanode -> master, master -> datanode) is TLS 1.3
with a certificate on both ends, all issued by one private CA that belongs to the cluster
(`init_ca`). A certificate names its holder (`name`, the subject's common name) and its
**role** (master, datanode or web), carried as a URI subject-alternative-name
`myyoutube:role:<role>`. The role is what authorises: the master accepts registrations
only from datanode certificates and requests only from web certificates; datanodes take
blob writes, reads and deletes only from the master; the web and datanodes talk only to
a peer whose certificate says master. So a compromised web process (it runs FFmpeg on
untrusted files) cannot write or delete blobs, and a relay in the middle has no key.

Host names are not checked (`check_hostname` off): nodes reach each other by whatever
address they advertise, often an IP, and identity is the CA-signed certificate and its
role, not the address (etcd and CockroachDB work the same way with their node certs).

A role's `--cert-dir` holds exactly what `issue` writes: `ca.crt`, `node.crt` and
`node.key` (0600). `myyoutube-cluster` makes a CA and one directory per role on first
start; for several hosts, `myyoutube cert init DIR` and `myyoutube cert issue --role R
--name N DIR` make the files to copy.
"""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("master", "datanode", "web")
_ROLE_URI_PREFIX = "myyoutube:role:"

# A CA outlives many node certificates; ten years means nobody meets its expiry by
# surprise. Node certificates follow the CA/Browser forum's former 825-day cap, long
# enough for a small cluster's operator and short enough that a leaked key ages out.
CA_VALID_DAYS = 3650
NODE_VALID_DAYS = 825

CA_KEY, CA_CERT = "ca.key", "ca.crt"
NODE_KEY, NODE_CERT = "node.key", "node.crt"


class CertError(Exception):
    """Certificates are missing, unreadable or not what this role needs; one line."""


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def init_ca(directory: Path, name: str = "MyYoutube cluster CA") -> None:
    """Create the cluster CA in `directory` (ca.key 0600, ca.crt); refuses to overwrite."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / CA_KEY).exists():
        raise CertError(f"{directory / CA_KEY} exists already; a second CA would split the cluster")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / CA_KEY, _pem_key(key))
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue(ca_directory: Path, role: str, name: str, out_directory: Path | None = None) -> Path:
    """Issue a certificate for `name` in `role`; writes ca.crt, node.crt and node.key into
    `out_directory` (default CA_DIR/NAME) and returns it: a ready --cert-dir."""
    if role not in ROLES:
        raise CertError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not name or "/" in name or name.startswith("."):
        raise CertError(f"{name!r} is not a usable certificate name")
    try:
        ca_key = serialization.load_pem_private_key((ca_directory / CA_KEY).read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((ca_directory / CA_CERT).read_bytes())
    except (OSError, ValueError) as exc:
        raise CertError(f"cannot read the CA in {ca_directory}: {exc}") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{ca_directory / CA_KEY} is not an EC key made by `myyoutube cert init`")
    out = out_directory or ca_directory / name
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=NODE_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(_ROLE_URI_PREFIX + role)]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    for stale in (NODE_KEY, NODE_CERT):
        (out / stale).unlink(missing_ok=True)
    _write_private(out / NODE_KEY, _pem_key(key))
    (out / NODE_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / CA_CERT).write_bytes((ca_directory / CA_CERT).read_bytes())
    return out


def role_of(der_certificate: bytes | None) -> str | None:
    """The role a (CA-verified) peer certificate grants, or None if it names none."""
    if not der_certificate:
        return None
    try:
        cert = x509.load_der_x509_certificate(der_certificate)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        role = uri.removeprefix(_ROLE_URI_PREFIX)
        if uri.startswith(_ROLE_URI_PREFIX) and role in ROLES:
            return role
    return None


@dataclass(frozen=True)
class Tls:
    """A role's TLS identity: contexts for accepting and for connecting, mutual both ways."""

    role: str
    name: str
    server: ssl.SSLContext
    client: ssl.SSLContext


def _context(purpose: ssl.Purpose, cert_dir: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose, cafile=str(cert_dir / CA_CERT))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # identity is the CA-signed certificate (see module doc)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert_dir / NODE_CERT, cert_dir / NODE_KEY)
    return context


def load(cert_dir: Path, expected_role: str) -> Tls:
    """The TLS identity in `cert_dir`; CertError (one line) if it is unusable or issued for
    another role."""
    try:
        cert = x509.load_pem_x509_certificate((cert_dir / NODE_CERT).read_bytes())
        server = _context(ssl.Purpose.CLIENT_AUTH, cert_dir)
        client = _context(ssl.Purpose.SERVER_AUTH, cert_dir)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise CertError(f"cannot use the certificates in {cert_dir}: {exc}") from exc
    role = role_of(cert.public_bytes(serialization.Encoding.DER))
    if role != expected_role:
        raise CertError(
            f"{cert_dir / NODE_CERT} is a {role or 'role-less'} certificate, not a {expected_role} one"
        )
    name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return Tls(role, str(name), server, client)
