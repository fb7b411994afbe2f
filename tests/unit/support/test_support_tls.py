import ssl

import httpx
import pytest
from cryptography import x509

from tests.support.recorder import RecordingServer
from tests.support.tls import TestPki, make_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _client(cafile) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(cafile)), trust_env=False)


def test_server_certificate_names_loopback(pki: TestPki):
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert pki.server_key.stat().st_mode & 0o077 == 0


def test_client_trusting_the_ca_accepts_the_server(pki: TestPki):
    with RecordingServer(pki.server_cert, pki.server_key) as server:
        assert server.url.startswith("https://127.0.0.1:")
        with _client(pki.ca_cert) as client:
            assert client.get(server.url_for("/cb?pgtId=PGT-1")).status_code == 200
            # The certificate also names localhost.
            assert client.get(f"https://localhost:{server.port}/").status_code == 200
        assert server.requests[0].arg("pgtId") == "PGT-1"


def test_client_trusting_another_ca_refuses_the_server(pki: TestPki):
    with RecordingServer(pki.server_cert, pki.server_key) as server:
        with _client(pki.other_ca_cert) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                client.get(server.url)
        assert server.requests == []
