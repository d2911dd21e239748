from __future__ import annotations

from pathlib import Path

from cryptography import x509

from localive.server.tls import ensure_tls


def sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in ext}


def test_ca_is_made_once_and_server_cert_follows_host_names(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    ca = first.ca_cert.read_bytes()
    assert {"localhost", "127.0.0.1", "::1"} <= sans(first.server_cert)
    leaf = first.server_cert.read_bytes()
    assert ensure_tls(tmp_path).server_cert.read_bytes() == leaf  # reused
    second = ensure_tls(tmp_path, ["myhost.lan", "10.1.2.3"])
    assert {"myhost.lan", "10.1.2.3"} <= sans(second.server_cert)
    assert second.ca_cert.read_bytes() == ca  # clients that trust the CA keep working
    assert (tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o077 == 0
