"""The cluster's own certificate authority, and the role certificates it issues.

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

A role's `--cert-dir` holds exactly what `issue` writes: `ca.crt`, `node.crt` and
`node.key` (0600). `myyoutube-cluster` makes a CA and one directory per role on first
start; for several hosts, `myyoutube cert init DIR` and `myyoutube cert issue --role R
--name N DIR` make the files to copy.

Revocation: `revoked.txt` in the same directory lists revoked certificates by serial
number (hexadecimal, first word of a line; `#` starts a comment), as `myyoutube cert
revoke` writes it.

How a role uses its --cert-dir (its TLS contexts, read again on renewal, revoked peers
refused) is tls_contexts.py.
"""

from __future__ import annotations

import datetime
import os
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
REVOKED = "revoked.txt"


class CertError(Exception):
    """Certificates are missing, unreadable or not what this role needs; one line."""


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _replace(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all (a temporary file renamed over it): a role reading
    its directory at that moment sees the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def init_ca(directory: Path, name: str = "MyYoutube cluster CA") -> None:
    """Create the cluster CA in `directory` (ca.key 0600, ca.crt); refuses to overwrite."""
    if directory.exists() and not directory.is_dir():
        raise CertError(f"{directory} is a file; name a folder for the CA")  # not "[Errno 17] File exists"
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
    except FileNotFoundError as exc:  # a mistyped DIR: not "[Errno 2] No such file ...: 'DIR/ca.key'"
        raise CertError(
            f"cannot read the CA in {ca_directory}: {exc.filename} does not exist "
            f"(`myyoutube cert init {ca_directory}` creates a CA there)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise CertError(f"cannot read the CA in {ca_directory}: {exc}") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{ca_directory / CA_KEY} is not an EC key made by `myyoutube cert init`")
    out = out_directory or ca_directory / name
    _refuse_another_roles_directory(out, role)
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
    # Into a live --cert-dir too (a renewal): each file is replaced whole, and a role that
    # reads the new key before the new certificate keeps its identity until both are in.
    _replace(out / CA_CERT, (ca_directory / CA_CERT).read_bytes())
    _replace(out / NODE_KEY, _pem_key(key), 0o600)
    _replace(out / NODE_CERT, cert.public_bytes(serialization.Encoding.PEM))
    if (ca_directory / REVOKED).exists() and out != ca_directory:
        _replace(out / REVOKED, (ca_directory / REVOKED).read_bytes())
    return out


def _refuse_another_roles_directory(out: Path, role: str) -> None:
    """Issuing again renews a certificate of the same role; over another role's (`--role
    web --name master` where ./ca/master holds the master's) it replaced that role's key
    and certificate without a word, and the master could not start again."""
    if not (out / NODE_CERT).is_file():
        return
    try:
        held = read_certificate(out / NODE_CERT)
    except CertError:
        return  # no usable certificate there to lose
    if held.role != role:
        raise CertError(
            f"{out} holds the {held.role or 'role-less'} certificate of {held.name}; a {role} "
            "certificate there would replace it and its key: choose another --name (or --out)"
        )


@dataclass(frozen=True)
class Peer:
    """What a (CA-verified) certificate says about its holder."""

    role: str | None  # None if it names no role of ours
    name: str
    serial: int


def peer_of(der_certificate: bytes | None) -> Peer | None:
    """The holder of a DER certificate, or None if there is none or it cannot be read."""
    if not der_certificate:
        return None
    try:
        cert = x509.load_der_x509_certificate(der_certificate)
    except ValueError:
        return None
    return peer_of_certificate(cert)


def peer_of_certificate(cert: x509.Certificate) -> Peer:
    """The holder a (loaded) certificate names."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Peer(_role_in(cert), str(names[0].value) if names else "", cert.serial_number)


def _role_in(cert: x509.Certificate) -> str | None:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        role = uri.removeprefix(_ROLE_URI_PREFIX)
        if uri.startswith(_ROLE_URI_PREFIX) and role in ROLES:
            return role
    return None


def role_of(der_certificate: bytes | None) -> str | None:
    """The role a (CA-verified) peer certificate grants, or None if it names none."""
    peer = peer_of(der_certificate)
    return peer.role if peer else None


def read_certificate(path: Path) -> Peer:
    """The holder of a PEM certificate file; CertError (one line) if it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:  # in words, not "[Errno 2] No such file or directory: 'PATH'"
        raise CertError(f"cannot read a certificate from {path}: {exc.strerror or exc}") from exc
    try:
        return peer_of_certificate(x509.load_pem_x509_certificate(data))
    except ValueError as exc:  # cryptography's text sends the reader to its FAQ
        raise CertError(
            f"cannot read a certificate from {path}: it is not a PEM certificate (node.crt, ca.crt)"
        ) from exc


# --- revocation list ----------------------------------------------------------------------


def parse_serial(text: str) -> int:
    """A serial number as people copy it: hexadecimal, with or without 0x and colons."""
    try:
        serial = int(text.strip().lower().removeprefix("0x").replace(":", ""), 16)
    except ValueError:
        raise CertError(f"{text!r} is not a hexadecimal serial number") from None
    if serial <= 0:  # RFC 5280 §4.1.2.2: a positive integer; int() took a minus sign
        raise CertError(f"{text!r} is not a certificate serial number (they are positive)")
    return serial


def parse_revoked(text: str) -> frozenset[int]:
    """The serials a revocation list names: the first word of each line, `#` comments."""
    serials = set()
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if words:
            try:
                serials.add(parse_serial(words[0]))
            except CertError as exc:
                raise CertError(f"{REVOKED} line {number}: {exc}") from None
    return frozenset(serials)


def revocation_line(serial: int, note: str, when: datetime.datetime) -> str:
    """One line of revoked.txt: the serial, then what it was, as a comment."""
    return f"{serial:x}  # {note} revoked {when:%Y-%m-%dT%H:%M:%SZ}".rstrip() + "\n"


def revoke(directory: Path, serials: dict[int, str], now: datetime.datetime) -> list[int]:
    """Add `serials` (serial -> a note such as 'datanode dn-3') to DIRECTORY/revoked.txt,
    replaced whole; returns those that were not listed yet."""
    path = directory / REVOKED
    try:
        text = path.read_text() if path.exists() else ""
        listed = parse_revoked(text)
    except (OSError, UnicodeError) as exc:
        raise CertError(f"cannot read {path}: {exc}") from exc
    added = [serial for serial in serials if serial not in listed]
    if added:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(revocation_line(serial, serials[serial], now) for serial in added)
        try:
            _replace(path, text.encode())
        except OSError as exc:
            raise CertError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return added
