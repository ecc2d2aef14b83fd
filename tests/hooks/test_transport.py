"""The REST core's transport, for real: TLS against an HTTPS sandbox with a throw-away private CA, the
``ca_bundle`` and ``proxy`` extras through a forward/CONNECT proxy on loopback, and requests that
``requests`` cannot build. Which failures were sent, which are retried, and what the message says."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryConnectionError,
    PrefineryInputError,
)
from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
from airflow_provider_prefinery.hooks.piggy import PiggyHook
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.hooks.rest import _BUCKETS, BearerAuth, RestClient, RetryPolicy
from airflow_provider_prefinery.provider_info import connection_type
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID
from airflow_provider_prefinery.sandbox.testing import SandboxServer, run_sandbox
from tests.proxy import ForwardProxy
from tests.tls import TlsFiles, private_ca

pytestmark = pytest.mark.integration

PROXY_USER, PROXY_PASSWORD = "corp", "pr0xy-P@ss-4f1c9e"
RETRIES = 2  # every test connection retries twice: a retried failure shows as 3 requests


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return private_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_sandbox(tls: TlsFiles) -> Iterator[SandboxServer]:
    """The sandbox serving HTTPS with a certificate the private CA signed."""
    args = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    with run_sandbox(extra_args=args, ca_bundle=str(tls.ca)) as server:
        yield server


@pytest.fixture
def https(https_sandbox: SandboxServer) -> SandboxServer:
    https_sandbox.control.reset("demo")
    _BUCKETS.clear()
    return https_sandbox


@pytest.fixture
def http(prefinery_sandbox: SandboxServer) -> SandboxServer:
    prefinery_sandbox.control.reset("demo")
    _BUCKETS.clear()
    return prefinery_sandbox


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Define ``prefinery_t`` on a sandbox with these extras; return a fresh hook on it."""

    def make(server: SandboxServer, conn_type: str = "prefinery", **extra: Any) -> Any:
        base = {"max_retries": RETRIES, "backoff_initial": 0.01, "backoff_max": 0.02, **extra}
        conn = {"conn_type": conn_type, "password": server.api_key, "host": server.url, "extra": base}
        if conn_type == "prefinery":
            conn["extra"] = {"beta_id": DEMO_BETA_ID, **base}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_type.upper()}_T", json.dumps(conn))
        cls = {"prefinery": PrefineryHook, "mailchimp": MailchimpHook, "piggy": PiggyHook}[conn_type]
        return cls(f"{conn_type}_t")

    return make


def proxied(proxy: ForwardProxy, password: str = PROXY_PASSWORD) -> str:
    """The proxy's URL with credentials, the password percent-encoded as a URL needs (``@`` is ``%40``)."""
    return proxy.url.replace("http://", f"http://{PROXY_USER}:{quote(password, safe='')}@")


# ---------------------------------------------------------------------------------------------- TLS
def test_an_untrusted_certificate_fails_at_once_naming_the_host_never_sent(https, connect) -> None:
    hook = connect(https)  # no ca_bundle: the system's CAs do not know the private CA

    with pytest.raises(PrefineryConnectionError) as info:
        hook.get_project()

    assert "certificate verification failed for 127.0.0.1" in str(info.value)
    assert "ca_bundle" in str(info.value)  # the way out is in the message
    assert not info.value.outcome_unknown
    assert hook.stats == {"requests": 1, "retries": 0}  # not retried: the next try would fail alike
    assert https.control.count() == 0  # no request reached the server


def test_a_points_write_refused_by_tls_is_reported_not_applied_not_unknown(https, connect) -> None:
    hook = connect(https)
    email = https.control.users()[0]["email"]

    with pytest.raises(PrefineryConnectionError) as info:
        hook.create_points(email, 5, reason="refused by TLS")

    assert not info.value.outcome_unknown and "outcome unknown" not in str(info.value)
    assert hook.stats["requests"] == 1
    assert https.control.points(reason="refused by TLS") == []


def test_ca_bundle_trusts_a_private_ca(https, connect, tls: TlsFiles) -> None:
    hook = connect(https, ca_bundle=str(tls.ca))

    assert hook.get_project()["id"] == DEMO_BETA_ID
    assert https.control.count(endpoint="get_project") == 1


@pytest.mark.parametrize("conn_type", ["mailchimp", "piggy"])
def test_ca_bundle_works_for_every_connection_type(https, connect, tls: TlsFiles, conn_type: str) -> None:
    hook = connect(https, conn_type, ca_bundle=str(tls.ca))

    ok, message = hook.test_connection()

    assert ok, message


def test_a_missing_ca_bundle_is_refused_before_any_request(https, connect, tmp_path: Path) -> None:
    hook = connect(https, ca_bundle=str(tmp_path / "nope.pem"))

    with pytest.raises(PrefineryInputError) as info:
        hook.get_project()

    assert info.value.field == "ca_bundle" and "no such file" in str(info.value)
    assert https.control.count() == 0


def test_the_test_button_reports_an_untrusted_certificate(https, connect) -> None:
    ok, message = connect(https).test_connection()

    assert not ok
    assert "certificate verification failed" in message


# ------------------------------------------------------------------------ requests that cannot be built
def test_a_body_requests_cannot_serialise_is_never_sent_nor_retried(http, connect) -> None:
    client = connect(http).client

    with pytest.raises(PrefineryInputError) as info:
        client.request("POST", f"betas/{DEMO_BETA_ID}/points.json", json={"quantity": float("nan")})

    assert info.value.field == "body" and not info.value.outcome_unknown
    assert client.stats == {"requests": 1, "retries": 0}
    assert http.control.count() == 0


@pytest.mark.parametrize("key", ["sbx-dev-0123456789abcdef\nX-Injected: 1", "sbx-dev-0123456789abcdef\n"])
def test_a_key_that_is_no_header_value_is_refused_without_showing_it(http, monkeypatch, key: str) -> None:
    conn = {"conn_type": "prefinery", "password": key, "host": http.url, "extra": {"beta_id": DEMO_BETA_ID}}
    monkeypatch.setenv("AIRFLOW_CONN_PREFINERY_NL", json.dumps(conn))
    hook = PrefineryHook("prefinery_nl", retry=RetryPolicy(max_retries=RETRIES))

    with pytest.raises(PrefineryInputError) as info:
        hook.get_project()

    assert info.value.field == "password" and "line break" in str(info.value)
    assert "0123456789abcdef" not in str(info.value)
    assert http.control.count() == 0


def test_a_header_http_client_refuses_is_never_sent_and_never_shown(http) -> None:
    """The core's own net under the hook's check: ``http.client`` refuses the header with a ValueError
    that quotes it; the client turns that into an input error with the secret redacted."""
    secret = "sbx-dev-0123456789abcdef\nX-Injected: 1"
    client = RestClient(
        "Test", http.url, BearerAuth(secret), (secret,), retry=RetryPolicy(max_retries=RETRIES)
    )

    with pytest.raises(PrefineryInputError) as info:
        client.request("GET", "/api/v2/betas.json")

    assert info.value.field == "headers"
    assert "0123456789abcdef" not in str(info.value)
    assert client.stats == {"requests": 1, "retries": 0}
    assert http.control.count() == 0


def test_a_url_requests_refuses_is_never_retried() -> None:
    client = RestClient(
        "Test", "http://" + "a" * 64 + ".example", None, retry=RetryPolicy(max_retries=RETRIES)
    )

    with pytest.raises(PrefineryInputError) as info:
        client.request("GET", "things")

    assert info.value.field == "url"
    assert client.stats == {"requests": 1, "retries": 0}


# ---------------------------------------------------------------------------------------------- proxy
def test_requests_go_through_the_proxy_extra_with_its_credentials(http, connect) -> None:
    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        hook = connect(http, proxy=proxied(proxy))
        users = list(hook.list_users(email="kim.okafor0@example.com"))

    assert [u["email"] for u in users] == ["kim.okafor0@example.com"]
    assert proxy.seen and all(authorised for _, _, authorised in proxy.seen)
    assert proxy.seen[0][0] == "GET" and proxy.seen[0][1].startswith(f"{http.url}/api/v2/")
    assert http.control.count(endpoint="list_users") == len(proxy.seen)


def test_https_through_a_connect_tunnel_trusting_the_private_ca(https, connect, tls: TlsFiles) -> None:
    email = https.control.users()[0]["email"]
    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        hook = connect(https, proxy=proxied(proxy), ca_bundle=str(tls.ca))
        created = hook.create_points(email, 5, reason="through the tunnel")

    assert created["quantity"] == 5
    host = https.url.removeprefix("https://")
    assert ("CONNECT", host, True) in proxy.seen
    assert len(https.control.points(reason="through the tunnel", user_id=created["user_id"])) == 1


def test_a_wrong_proxy_password_fails_once_and_is_never_shown(https, connect, tls: TlsFiles, caplog) -> None:
    wrong = "wr0ng-Pr0xy-9d8e7f"
    caplog.set_level(logging.DEBUG)
    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        hook = connect(https, proxy=proxied(proxy, wrong), ca_bundle=str(tls.ca))
        with pytest.raises(PrefineryConnectionError) as info:
            hook.create_points(https.control.users()[0]["email"], 5)

    err = info.value
    assert "proxy refused the credentials" in str(err) and not err.outcome_unknown
    assert hook.stats["requests"] == 1
    texts = [str(err), repr(err), pickle.dumps(err).decode("latin-1"), caplog.text, repr(hook.client)]
    assert not [t for t in texts if wrong in t]
    assert https.control.count() == 0


def test_a_plain_http_proxy_answering_407_names_the_proxy_extra(http, connect) -> None:
    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        hook = connect(http, proxy=proxied(proxy, "wr0ng-Pr0xy-9d8e7f"))
        with pytest.raises(PrefineryAuthError) as info:
            hook.get_project()

    assert info.value.status == 407 and "'proxy' extra" in str(info.value)
    assert "wr0ng-Pr0xy" not in str(info.value)


def test_the_environments_proxy_is_never_used(http, connect, monkeypatch) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        assert connect(http).get_project()["id"] == DEMO_BETA_ID

    assert proxy.seen == []


@pytest.mark.parametrize(
    "value",
    ["socks5://corp:pr0xy-P@ss-4f1c9e@127.0.0.1:1080", "corp:pr0xy-P@ss-4f1c9e@proxy", 3128],
    ids=["socks", "no-scheme", "not-text"],
)
def test_a_proxy_that_is_not_an_http_url_is_refused_with_its_password_masked(http, connect, value) -> None:
    with pytest.raises(PrefineryInputError) as info:
        connect(http, proxy=value).get_project()

    assert info.value.field == "proxy"
    assert PROXY_PASSWORD not in str(info.value)
    assert http.control.count() == 0


def test_the_proxy_password_is_masked_in_task_logs(http, connect) -> None:
    from airflow.providers.common.compat.sdk import redact

    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        hook = connect(http, proxy=proxied(proxy))
        hook.get_project()

    assert redact(f"via {PROXY_PASSWORD}") == "via ***"
    assert PROXY_PASSWORD not in repr(hook.client)


@pytest.mark.parametrize("conn_type", ["prefinery", "mailchimp", "piggy"])
def test_every_connection_form_offers_the_proxy_masked_and_the_ca_bundle(conn_type: str) -> None:
    fields = connection_type(conn_type)["conn-fields"]

    assert fields["proxy"]["schema"]["format"] == "password"
    assert "format" not in fields["ca_bundle"]["schema"]
