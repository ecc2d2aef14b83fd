"""What Airflow's Test button says for each hook, against the sandbox over real HTTP.

Every failure a user can cause from the connection form (a wrong key, an unknown project or audience,
a host that does not answer, a key without read permission, no API access, no key at all) must come
back as ``(False, message)`` naming what to fix, quickly, and never showing the key.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from airflow_provider_prefinery.hooks.base import ApiHook
from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
from airflow_provider_prefinery.hooks.piggy import PiggyHook
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.hooks.rest import _BUCKETS
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID, DEMO_MEMBER_COUNT

pytestmark = pytest.mark.integration

WRONG_KEY = "sbx-wrong-key-5e5e5e5e5e"
NO_READ_KEY = "sbx-no-read-key-7a7a7a7a"
USERS_ONLY_KEY = "sbx-users-only-key-8b8b8b"
NO_ACCESS_KEY = "sbx-no-api-access-9c9c9c"

ConnFactory = Callable[..., str]


@pytest.fixture
def conn(sandbox, monkeypatch: pytest.MonkeyPatch) -> ConnFactory:
    """Return a factory: set ``AIRFLOW_CONN_<ID>`` for a connection of ``conn_type`` to the sandbox."""
    _BUCKETS.clear()

    def _make(
        conn_type: str, *, key: str | None = "default", host: str | None = None, **extra: object
    ) -> str:
        conn_id = f"tc_{conn_type}"
        body: dict[str, object] = {"conn_type": conn_type, "host": host or sandbox.url, "extra": extra}
        if key is not None:
            body["password"] = sandbox.api_key if key == "default" else key
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
        return conn_id

    return _make


@pytest.fixture
def dead_origin() -> str:
    """An http origin on loopback where nothing listens (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _test(hook: ApiHook) -> tuple[bool, str, float]:
    started = time.monotonic()
    ok, message = hook.test_connection()
    return ok, message, time.monotonic() - started


# ---------------------------------------------------------------------------------------------- Prefinery
def test_prefinery_success_names_the_project(conn) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery", beta_id=DEMO_BETA_ID)))
    assert (ok, message) == (True, f"Connected to Prefinery project 'Sandbox Launch' (id {DEMO_BETA_ID})")


def test_prefinery_success_without_beta_id_lists_the_projects_to_choose_from(conn) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery")))
    assert ok is True
    assert message.startswith("Connected to Prefinery; no API Beta ID set. Projects visible: ")
    assert f"'Sandbox Launch' (id {DEMO_BETA_ID})" in message


def test_prefinery_beta_id_typed_as_text_in_the_form_still_works(conn) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery", beta_id=str(DEMO_BETA_ID))))
    assert ok is True, message


def test_prefinery_wrong_key_says_the_key_is_invalid(conn) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery", key=WRONG_KEY, beta_id=DEMO_BETA_ID)))
    assert (ok, message) == (
        False,
        "Prefinery GET betas/1001.json, HTTP 401, code 401: missing or invalid API key (check the API key)",
    )


def test_prefinery_unknown_project_points_at_the_beta_id(conn) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery", beta_id=987654)))
    assert (ok, message) == (
        False,
        "Prefinery project 987654 not found: check the API Beta ID",
    )


def test_prefinery_unreachable_host_names_the_url_and_answers_within_seconds(conn, dead_origin) -> None:
    ok, message, took = _test(PrefineryHook(conn("prefinery", host=dead_origin, beta_id=DEMO_BETA_ID)))
    assert ok is False
    assert message.startswith(f"Cannot reach Prefinery at {dead_origin}: could not connect")
    assert message.endswith(". Check the API Base URL.")
    assert took < 5.0


def test_prefinery_key_without_read_permission_names_the_missing_permission(conn, sandbox) -> None:
    sandbox.control.set_key(NO_READ_KEY, permissions=[])
    ok, message, _ = _test(PrefineryHook(conn("prefinery", key=NO_READ_KEY, beta_id=DEMO_BETA_ID)))
    assert ok is False
    assert "HTTP 403" in message
    assert "lacks the 'projects:read' permission" in message
    assert NO_READ_KEY not in message


def test_prefinery_key_that_reads_users_but_not_projects_is_reported_not_passed(conn, sandbox) -> None:
    sandbox.control.set_key(USERS_ONLY_KEY, permissions=["users:read"])
    ok, message, _ = _test(PrefineryHook(conn("prefinery", key=USERS_ONLY_KEY, beta_id=DEMO_BETA_ID)))
    assert ok is False
    assert "'projects:read'" in message


def test_prefinery_account_without_api_access_says_so(conn, sandbox) -> None:
    sandbox.control.set_key(NO_ACCESS_KEY, api_access=False)
    ok, message, _ = _test(PrefineryHook(conn("prefinery", key=NO_ACCESS_KEY, beta_id=DEMO_BETA_ID)))
    assert ok is False
    assert "HTTP 402" in message
    assert "no API access" in message


def test_prefinery_empty_key_fails_before_any_request(conn, sandbox) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery", key=None, beta_id=DEMO_BETA_ID)))
    assert (ok, message) == (
        False,
        "Invalid Prefinery input: password: the connection has no API key",
    )
    assert sandbox.control.count(api="prefinery") == 0


def test_prefinery_malformed_base_url_names_the_field(conn) -> None:
    ok, message, _ = _test(PrefineryHook(conn("prefinery", host="not a url", beta_id=DEMO_BETA_ID)))
    assert ok is False
    assert message.startswith("Invalid Prefinery input: host: is not an http(s) URL")


# ---------------------------------------------------------------------------------------------- Mailchimp
def test_mailchimp_success_counts_the_audience(conn) -> None:
    ok, message, _ = _test(MailchimpHook(conn("mailchimp", list_id=DEMO_LIST_ID)))
    expected = f"Connected to Mailchimp audience {DEMO_LIST_ID} ({DEMO_MEMBER_COUNT:,} members)"
    assert (ok, message) == (True, expected)


def test_mailchimp_success_without_audience_lists_the_audiences(conn) -> None:
    ok, message, _ = _test(MailchimpHook(conn("mailchimp")))
    expected = (
        "Connected to Mailchimp; no Audience ID set. "
        f"Audiences visible: 'Sandbox Newsletter' (id {DEMO_LIST_ID})"
    )
    assert (ok, message) == (True, expected)


def test_mailchimp_wrong_key_says_the_key_is_invalid(conn) -> None:
    ok, message, _ = _test(MailchimpHook(conn("mailchimp", key=WRONG_KEY, list_id=DEMO_LIST_ID)))
    assert ok is False
    assert "HTTP 401" in message
    assert message.endswith("(check the API key)")
    assert WRONG_KEY not in message


def test_mailchimp_unknown_audience_points_at_the_audience_id(conn) -> None:
    ok, message, _ = _test(MailchimpHook(conn("mailchimp", list_id="0000000000")))
    assert (ok, message) == (False, "Mailchimp audience '0000000000' not found: check the Audience ID")


def test_mailchimp_unreachable_host_names_the_url(conn, dead_origin) -> None:
    ok, message, took = _test(MailchimpHook(conn("mailchimp", host=dead_origin, list_id=DEMO_LIST_ID)))
    assert ok is False
    assert message.startswith(f"Cannot reach Mailchimp at {dead_origin}: could not connect")
    assert took < 5.0


# -------------------------------------------------------------------------------------------------- Piggy
def test_piggy_success_counts_the_startable_automations(conn) -> None:
    ok, message, _ = _test(PiggyHook(conn("piggy")))
    assert (ok, message) == (
        True,
        "Connected to Piggy with a token: 4 automation(s), 3 with event 'contact_updated' "
        "(the only ones the API can start)",
    )


def test_piggy_wrong_token_is_refused(conn) -> None:
    ok, message, _ = _test(PiggyHook(conn("piggy", key=WRONG_KEY)))
    assert ok is False
    assert "HTTP 401" in message
    assert WRONG_KEY not in message


def test_piggy_unreachable_host_names_the_url(conn, dead_origin) -> None:
    ok, message, took = _test(PiggyHook(conn("piggy", host=dead_origin)))
    assert ok is False
    assert message.startswith(f"Cannot reach Piggy at {dead_origin}: could not connect")
    assert took < 5.0


def test_piggy_no_token_and_no_client_says_what_to_fill(conn) -> None:
    ok, message, _ = _test(PiggyHook(conn("piggy", key=None)))
    assert ok is False
    assert "no token (password) and no OAuth client_id/client_secret" in message


# ----------------------------------------------------------------------------------------------- all three
@pytest.mark.parametrize(
    ("hook_cls", "conn_type"),
    [(PrefineryHook, "prefinery"), (MailchimpHook, "mailchimp"), (PiggyHook, "piggy")],
)
def test_failure_messages_show_neither_the_key_nor_the_connection_id(
    conn, sandbox, dead_origin, hook_cls, conn_type
) -> None:
    """Airflow's Test button tests a copy under a random id, so naming the id would only mislead."""
    sandbox.control.set_key(NO_READ_KEY, permissions=[])
    cases = ((WRONG_KEY, None), (NO_READ_KEY, None), (WRONG_KEY, dead_origin), (None, None))
    results = [
        _test(hook_cls(conn(conn_type, key=key, host=host, beta_id=DEMO_BETA_ID, list_id="0000000000")))
        for key, host in cases
    ]
    assert [ok for ok, _, _ in results].count(False) >= 3  # Piggy's sandbox ignores Prefinery key rights
    for _, message, _ in results:
        assert WRONG_KEY not in message
        assert NO_READ_KEY not in message
        assert f"tc_{conn_type}" not in message
