"""Issue 17: `serve --certfile --keyfile` serves HTTPS (TLS 1.2+) and HTTP/2, with HSTS and secure cookies; a
client that speaks HTTP/2 (httpx with h2) talks to a real node, with a certificate made here."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import run_cli
from tests.nodes import Node

pytestmark = pytest.mark.slow


def make_certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key: (certfile, keyfile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "node.crt", folder / "node.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = make_certificate(folder)
    node = Node(folder, "api-service", worker=False)
    node.start(serve_args=("--certfile", certfile, "--keyfile", keyfile))
    try:
        yield node, certfile
    finally:
        node.stop()


def client(certfile: str, **options) -> httpx.Client:
    context = ssl.create_default_context(cafile=certfile)
    return httpx.Client(verify=context, timeout=30, **options)


def test_a_node_on_tls_speaks_http2_with_hsts(tls_node):
    node, certfile = tls_node
    with client(certfile, http2=True) as http:
        response = http.get(f"https://127.0.0.1:{node.port}/api/v1/federation/info")
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        assert response.json()["type"] == "discover_response"
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        page = http.get(f"https://127.0.0.1:{node.port}/admin/login/")
        assert page.http_version == "HTTP/2"
        cookie = page.headers["set-cookie"]
        assert "csrftoken_" in cookie and "Secure" in cookie


def test_http1_clients_still_work_and_tls_is_1_2_or_later(tls_node):
    node, certfile = tls_node
    with client(certfile) as http:  # no h2: ALPN offers http/1.1 too
        response = http.get(f"https://127.0.0.1:{node.port}/health")
        assert response.status_code == 200 and response.http_version == "HTTP/1.1"
    context = ssl.create_default_context(cafile=certfile)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=context, timeout=30) as http:
        assert http.get(f"https://127.0.0.1:{node.port}/health").status_code == 200
    with pytest.raises(httpx.TransportError):  # plain HTTP is not served on the TLS port: it hangs up
        with httpx.Client(timeout=10) as http:
            http.get(f"http://127.0.0.1:{node.port}/health").raise_for_status()


def test_serve_needs_both_files(tmp_path):
    node = Node(tmp_path, "half", worker=False)
    result = run_cli("--repo", str(node.repo), "serve", "--certfile", str(tmp_path / "none.crt"))
    assert result.code == 2 and "give both --certfile and --keyfile" in result.err
