"""The sandbox as a server on a developer's machine: Host header (DNS rebinding), body cap, and 400/404
instead of 500 for input no handler should see (a 500 tells a client "the write may have been applied")."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_prefinery.sandbox.cli import non_loopback_warning
from airflow_provider_prefinery.sandbox.guard import MAX_BODY_BYTES, host_name, is_loopback
from airflow_provider_prefinery.sandbox.testing import SandboxServer, run_sandbox
from tests.sandbox.helpers import Api

pytestmark = pytest.mark.integration


@pytest.fixture
def sb(prefinery_sandbox: SandboxServer) -> SandboxServer:
    prefinery_sandbox.control.reset("demo")
    return prefinery_sandbox


@pytest.fixture
def api(sb: SandboxServer) -> Api:
    return Api(sb)


def port(sb: SandboxServer) -> int:
    return int(urlsplit(sb.url).port or 0)


# ------------------------------------------------------------------------------------------- Host header
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example", "10.0.0.7"]
)
def test_a_foreign_host_header_is_refused_before_any_route(api: Api, sb: SandboxServer, host: str) -> None:
    """A page the developer visits rebinds its own name to 127.0.0.1: its requests carry that name."""
    response = api.p("GET", "/testers.json", headers={"Host": host.format(port=port(sb))})

    assert response.status_code == 400
    assert "invalid host header" in response.json()["errors"][0]["message"]
    assert sb.control.count() == 0


def test_the_control_api_refuses_a_foreign_host_too(sb: SandboxServer) -> None:
    response = requests.post(
        f"{sb.url}/_sandbox/reset", json={}, headers={"Host": "evil.example"}, timeout=10
    )

    assert response.status_code == 400 and "invalid host header" in response.json()["detail"]


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "app.localhost:{port}"]
)
def test_loopback_names_are_served(api: Api, sb: SandboxServer, host: str) -> None:
    assert api.p("GET", "/testers.json", headers={"Host": host.format(port=port(sb))}).status_code == 200


def test_a_host_named_with_allow_host_is_served() -> None:
    with run_sandbox(extra_args=["--allow-host", "sandbox.internal"]) as server:
        answer = Api(server).p("GET", "/testers.json", headers={"Host": f"sandbox.internal:{port(server)}"})
        other = Api(server).p("GET", "/testers.json", headers={"Host": "other.internal"})

    assert answer.status_code == 200 and other.status_code == 400


def test_host_names_are_read_without_their_port() -> None:
    assert [host_name(h) for h in ("[::1]:8765", "127.0.0.1:80", "LocalHost", "a.example:1")] == [
        "::1",
        "127.0.0.1",
        "localhost",
        "a.example",
    ]
    assert is_loopback("127.8.9.10") and is_loopback("api.localhost") and not is_loopback("localhost.evil")


# --------------------------------------------------------------------------------------------- body cap
def test_a_body_over_the_cap_is_refused_with_413(api: Api, sb: SandboxServer) -> None:
    body = b'{"email": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'

    response = api.p("POST", "/points.json", data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert sb.control.count() == 0


def test_a_chunked_body_over_the_cap_is_refused_with_413(api: Api, sb: SandboxServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = api.p("POST", "/points.json", data=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert sb.control.count() == 0


def test_a_chunked_body_under_the_cap_still_arrives(api: Api, sb: SandboxServer) -> None:
    email = sb.control.users()[0]["email"]
    body = json.dumps({"email": email, "quantity": 3, "reason": "chunked"}).encode()

    response = api.p("POST", "/points.json", data=iter([body[:10], body[10:]]))

    assert response.status_code == 201, response.text
    assert len(sb.control.points(reason="chunked")) == 1


# ------------------------------------------------------------------------------- 400/404, never 500
def test_a_form_body_that_is_not_utf8_is_a_400(sb: SandboxServer) -> None:
    response = requests.post(
        f"{sb.url}/oauth/token",
        data=b"grant_type=client_credentials&client_id=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )

    assert response.status_code == 400, response.text


@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 50_000 + b"]" * 50_000, b'{"email": "\xff"}'])
def test_json_nested_too_deeply_or_not_utf8_is_a_400(api: Api, body: bytes) -> None:
    response = api.p("POST", "/points.json", data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text


@pytest.mark.parametrize("digits", [19, 25, 5000])
def test_an_id_of_more_digits_than_any_id_is_a_404(api: Api, sb: SandboxServer, digits: int) -> None:
    response = api.p("GET", f"/testers/{'9' * digits}.json")

    assert response.status_code == 404
    assert api.call("GET", f"/api/v2/betas/{'9' * digits}.json").status_code == 404


@pytest.mark.parametrize("page", [str(10**30), "1" * 5000, "10000000001"])
def test_a_page_beyond_any_store_is_a_400(api: Api, page: str) -> None:
    response = api.p("GET", "/testers.json", params={"page": page})

    assert response.status_code == 400
    assert "page" in response.json()["errors"][0]["message"]


def test_a_page_in_another_digit_script_reads_as_the_first_page(api: Api) -> None:
    assert api.p("GET", "/testers.json", params={"page": "²"}).status_code == 200


def test_a_mailchimp_count_in_another_digit_script_is_a_400(api: Api, sb: SandboxServer) -> None:
    response = api.call("GET", f"/3.0/lists/{sb.list_id}/members", params={"count": "²"})

    assert response.status_code == 400


def test_a_number_too_large_for_the_store_is_a_400(api: Api, sb: SandboxServer) -> None:
    email = sb.control.users()[0]["email"]

    response = api.p("POST", "/points.json", json={"email": email, "quantity": 10**30})

    assert response.status_code in (400, 422), response.text


# ------------------------------------------------------------------------------------------ request log
def test_the_request_log_keeps_the_raw_path_as_sent(sb: SandboxServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port(sb), timeout=10)
    try:
        conn.request("GET", "/3.0/lists/%2E%2E/members", headers={"Authorization": f"Bearer {sb.api_key}"})
        conn.getresponse().read()
    finally:
        conn.close()

    entry = sb.control.requests()[-1]
    assert entry["raw_path"] == "/3.0/lists/%2E%2E/members"
    assert entry["path"] == "/3.0/lists/../members"


# ------------------------------------------------------------------------------------------- binding
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "sandbox.internal"])
def test_binding_beyond_loopback_warns(host: str) -> None:
    warning = non_loopback_warning(host)

    assert warning is not None and host in warning and "--allow-host" in warning


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_binding_to_loopback_does_not_warn(host: str) -> None:
    assert non_loopback_warning(host) is None
