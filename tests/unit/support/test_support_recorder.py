import httpx
import pytest

from tests.support.recorder import RecordingServer


def test_records_form_post_and_query():
    with RecordingServer() as server, httpx.Client(trust_env=False) as client:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        response = client.post(
            server.url_for("/slo?x=1&x=2"), data={"logoutRequest": "<samlp:LogoutRequest/>"}
        )
        assert response.status_code == 200

        request = server.wait_for(lambda r: r.method == "POST", timeout=2)
        assert request.path == "/slo"
        assert request.query == {"x": ["1", "2"]}
        assert request.field("logoutRequest") == "<samlp:LogoutRequest/>"
        assert request.form == {"logoutRequest": ["<samlp:LogoutRequest/>"]}
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.body == b"logoutRequest=%3Csamlp%3ALogoutRequest%2F%3E"


def test_status_can_change_while_running():
    with RecordingServer(status=503) as server, httpx.Client(trust_env=False) as client:
        assert client.get(server.url).status_code == 503
        server.status = 404
        assert client.get(server.url).status_code == 404
        assert [r.method for r in server.requests] == ["GET", "GET"]


def test_records_chunked_body_without_form():
    def body():
        yield b'{"a": '
        yield b"1}"

    with RecordingServer() as server, httpx.Client(trust_env=False) as client:
        client.post(server.url, content=body(), headers={"Content-Type": "application/json"})
        request = server.wait_for(timeout=2)
        assert request.headers["transfer-encoding"] == "chunked"
        assert request.body == b'{"a": 1}'
        assert request.form == {}


def test_wait_for_times_out_listing_what_arrived():
    with RecordingServer() as server, httpx.Client(trust_env=False) as client:
        client.get(server.url_for("other"))
        with pytest.raises(TimeoutError, match="GET /other"):
            server.wait_for(lambda r: r.path == "/wanted", timeout=0.2)
