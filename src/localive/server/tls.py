"""The local certificate authority and server certificate (made with `cryptography`).

On first run localive creates a CA (10 years) and a server certificate signed by it for localhost, 127.0.0.1,
::1 and any other host it is told to serve. Both live in ``<data dir>/tls``. The server certificate is reissued
from the same CA when the set of names changes or it nears expiry, so clients that trust the CA keep working.

The data directory also holds the session database (system instructions, conversations, resumption handles), so
it is private to its owner: created 0700, and tightened, with a warning, if it was more open (security finding
F19).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("localive.server")

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    bundle: Path  # the usual CAs plus localive's, for SSL_CERT_FILE


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _make_ca(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "localive"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"localive local CA ({socket.gethostname()})")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1))
        .not_valid_after(_now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / "ca-key.pem", _key_pem(key))
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _san(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _needs_new_leaf(path: Path, names: list[str]) -> bool:
    if not path.is_file():
        return True
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    if cert.not_valid_after_utc - _now() < dt.timedelta(days=30):
        return True
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return not set(_san(names)) <= set(san)


def _make_leaf(directory: Path, names: list[str]) -> None:
    ca_key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1))
        .not_valid_after(_now() + dt.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]  # EC key
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]  # our CA key is EC
    )
    _write_private(directory / "server-key.pem", _key_pem(key))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` 0700, or take group and other access away from an existing one. A directory that is
    not only localive's (the file-system root, the home directory, a shared sticky one such as /tmp) is left as
    it is, with a warning, as is one this user may not change."""
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    mode = stat.S_IMODE(directory.stat().st_mode)
    if not mode & 0o077:
        return
    resolved = directory.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or mode & stat.S_ISVTX:
        log.warning("data directory %s is readable by other users (mode %04o); give localive a directory of its "
                    "own (--data-dir or LOCALIVE_HOME)", directory, mode)
        return
    try:
        os.chmod(directory, mode & 0o700)
    except OSError as exc:
        log.warning("data directory %s is readable by other users (mode %04o) and cannot be changed: %s",
                    directory, mode, exc)
        return
    log.warning("data directory %s was readable by other users (mode %04o): changed to %04o", directory, mode,
                mode & 0o700)


def ensure_tls(data_dir: Path, extra_names: list[str] | tuple[str, ...] = ()) -> TlsFiles:
    """Create (once) the CA, (re)issue the server certificate if needed, and rewrite the CA bundle."""
    ensure_private_dir(data_dir)
    directory = data_dir / "tls"
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if not (directory / "ca.pem").is_file() or not (directory / "ca-key.pem").is_file():
        _make_ca(directory)
    names = list(dict.fromkeys([*DEFAULT_NAMES, *[n for n in extra_names if n not in ("0.0.0.0", "::", "")]]))
    if _needs_new_leaf(directory / "server.pem", names):
        _make_leaf(directory, names)
    ca_pem = (directory / "ca.pem").read_bytes()
    bundle = directory / "bundle.pem"
    system = Path(certifi.where()).read_bytes()
    wanted = system.rstrip(b"\n") + b"\n\n# localive local CA\n" + ca_pem
    if not bundle.is_file() or bundle.read_bytes() != wanted:
        bundle.write_bytes(wanted)
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem", bundle)
