"""PiggyHook: wire details through `responses`, then every method and error code against the sandbox.

The first half pins what a mock can pin exactly (paths, headers, the token form, renewal timing, retry
decisions, redaction); the second half proves the same calls over real HTTP against the sandbox's Piggy
emulation, which counts token exchanges and records automation runs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers

from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryConnectionError,
    PrefineryInputError,
    PrefineryNotFoundError,
    PrefineryServerError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.piggy import (
    ENDPOINTS,
    ClientCredentialsAuth,
    PiggyHook,
    parse_piggy_error,
    pick_automation,
)
from airflow_provider_prefinery.hooks.rest import RetryPolicy

ORIGIN = "https://piggy.test"
API = f"{ORIGIN}/api/v3/oauth/clients"
TOKEN = "pat_SECRET_5d1e2f3a4b"
CLIENT_ID = "client-42"
CLIENT_SECRET = "cs_SECRET_9a8b7c6d"
CONTACT = "0b6f7c1e-1111-4a2b-9c3d-000000000001"
STARTABLE = "6a1f0c3e-5b7d-4e2a-9c11-0a0000000001"
WELCOME = "6a1f0c3e-5b7d-4e2a-9c11-0a0000000004"
AUTOMATIONS = [
    {"uuid": STARTABLE, "event": "contact_updated", "name": "Send reward email", "status": "active"},
    {"uuid": WELCOME, "event": "contact_created", "name": "Welcome new contact", "status": "active"},
]


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "piggy", **fields}))
    return conn_id


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> Iterator[PiggyHook]:
    """A token-authenticated hook on a fake origin; waits are recorded instead of slept."""
    h = PiggyHook(_conn(monkeypatch, "piggy_wire", password=TOKEN, host=ORIGIN))
    h.client.sleep = sleeps.append
    yield h
    h.close()


@pytest.fixture
def oauth_hook(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> Iterator[PiggyHook]:
    extra = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    h = PiggyHook(_conn(monkeypatch, "piggy_oauth_wire", host=ORIGIN, extra=extra))
    h.client.sleep = sleeps.append
    h.token_client.sleep = sleeps.append
    yield h
    h.close()


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _token_answer(api: responses.RequestsMock, *tokens: str, expires_in: int = 3600) -> None:
    for token in tokens:
        api.post(
            f"{ORIGIN}/oauth/token",
            json={"token_type": "Bearer", "expires_in": expires_in, "access_token": token},
        )


# ---------------------------------------------------------------------------------------- wire details
def test_requests_carry_the_token_as_bearer_and_accept_json_never_in_the_url(hook, api) -> None:
    api.get(f"{API}/automations", json={"data": AUTOMATIONS, "meta": []})
    assert [a["name"] for a in hook.list_automations()] == ["Send reward email", "Welcome new contact"]
    sent = api.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    assert TOKEN not in sent.url


def test_create_automation_run_posts_both_uuids_and_data_as_json(hook, api) -> None:
    api.post(f"{API}/automations/runs", json={"data": [], "meta": []})
    assert hook.create_automation_run(CONTACT, STARTABLE, {"reward": "20% off", "points": 5}) == []
    sent = api.calls[0].request
    assert json.loads(sent.body) == {
        "contact_uuid": CONTACT,
        "automation_uuid": STARTABLE,
        "data": {"reward": "20% off", "points": 5},
    }


def test_contacts_are_looked_up_by_email_in_the_query(hook, api) -> None:
    contact = {"uuid": CONTACT, "email": "ada@example.com"}
    api.get(
        f"{API}/contacts/find-one-by",
        json={"data": contact, "meta": []},
        match=[matchers.query_param_matcher({"email": "ada@example.com"})],
    )
    api.get(f"{API}/contacts/find-or-create", json={"data": contact, "meta": []})
    assert hook.find_contact("ada@example.com") == contact
    assert hook.find_or_create_contact("ada@example.com") == contact
    assert api.calls[1].request.url == f"{API}/contacts/find-or-create?email=ada%40example.com"


def test_list_automations_follows_meta_last_page(hook, api) -> None:
    for page, item in enumerate(AUTOMATIONS, start=1):
        api.get(
            f"{API}/automations",
            json={"data": [item], "meta": {"page": page, "limit": 1, "last_page": 2, "total": 2}},
            match=[matchers.query_param_matcher({"page": str(page)} if page > 1 else {}, strict_match=False)],
        )
    assert [a["uuid"] for a in hook.list_automations()] == [STARTABLE, WELCOME]
    assert len(api.calls) == 2


def test_client_credentials_are_exchanged_once_as_a_form_at_the_origin(oauth_hook, api) -> None:
    _token_answer(api, "at_FIRST_token_111")
    api.get(f"{API}/automations", json={"data": AUTOMATIONS, "meta": []})
    for _ in range(3):
        list(oauth_hook.list_automations())
    token_call = api.calls[0].request
    assert token_call.url == f"{ORIGIN}/oauth/token"
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_call.body) == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }
    assert "Authorization" not in token_call.headers
    assert [c.request.headers["Authorization"] for c in api.calls[1:]] == ["Bearer at_FIRST_token_111"] * 3
    assert oauth_hook.stats["token_exchanges"] == 1


def test_sixteen_threads_asking_first_share_one_client_and_one_token_exchange(monkeypatch, api) -> None:
    extra = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    hook = PiggyHook(_conn(monkeypatch, "piggy_threads", host=ORIGIN, extra=extra))  # nothing built yet
    _token_answer(api, "at_SHARED_token")
    api.get(f"{API}/automations", json={"data": AUTOMATIONS, "meta": []})
    barrier = threading.Barrier(16)
    clients = []

    def work() -> None:
        barrier.wait()
        list(hook.list_automations())
        clients.append(hook.client)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in clients}) == 1
    assert sum(1 for c in api.calls if c.request.url.endswith("/oauth/token")) == 1
    assert hook.stats["token_exchanges"] == 1
    assert len(api.calls) == 17


def test_token_is_renewed_shortly_before_it_expires() -> None:
    now = [0.0]
    issued = iter(["t1", "t2"])
    auth = ClientCredentialsAuth(lambda: (next(issued), 600), clock=lambda: now[0])
    assert auth.token() == "t1"
    now[0] = 539.0  # 61 s left: still good
    assert auth.token() == "t1"
    now[0] = 541.0  # inside the last minute: renewed
    assert auth.token() == "t2"
    assert auth.exchanges == 2


def test_short_lived_token_is_renewed_after_nine_tenths_of_its_life() -> None:
    now = [0.0]
    issued = iter(["t1", "t2"])
    auth = ClientCredentialsAuth(lambda: (next(issued), 100), clock=lambda: now[0])
    auth.token()
    now[0] = 89.0
    assert auth.token() == "t1"
    now[0] = 90.5
    assert auth.token() == "t2"


def test_a_refused_access_token_is_exchanged_again_and_the_call_sent_once_more(oauth_hook, api) -> None:
    _token_answer(api, "at_REVOKED", "at_FRESH")
    api.get(
        f"{API}/automations",
        json={"status_code": 401, "code": 401, "message": "Unauthenticated."},
        status=401,
    )
    api.get(f"{API}/automations", json={"data": AUTOMATIONS, "meta": []})
    assert len(list(oauth_hook.list_automations())) == 2
    auths = [c.request.headers.get("Authorization") for c in api.calls if "/automations" in c.request.url]
    assert auths == ["Bearer at_REVOKED", "Bearer at_FRESH"]
    assert oauth_hook.stats["token_exchanges"] == 2


def test_a_refused_personal_token_is_an_auth_error_without_a_second_attempt(hook, api) -> None:
    api.get(
        f"{API}/automations",
        json={"status_code": 401, "code": 401, "message": "Unauthenticated."},
        status=401,
    )
    with pytest.raises(PrefineryAuthError) as info:
        list(hook.list_automations())
    assert info.value.service == "Piggy"
    assert "piggy_wire" in str(info.value)
    assert len(api.calls) == 1


def test_invalid_client_credentials_say_so(oauth_hook, api) -> None:
    api.post(
        f"{ORIGIN}/oauth/token",
        json={"error": "invalid_client", "error_description": "Client authentication failed"},
        status=401,
    )
    with pytest.raises(PrefineryAuthError) as info:
        list(oauth_hook.list_automations())
    assert info.value.code == "invalid_client"
    assert "Client authentication failed" in str(info.value)
    assert CLIENT_SECRET not in str(info.value)


def test_maintenance_503_on_a_run_is_retried_because_piggy_did_not_act(hook, api, sleeps) -> None:
    body = {"status_code": 503, "code": 503, "message": "Down for maintenance"}
    api.post(f"{API}/automations/runs", json=body, status=503)
    api.post(f"{API}/automations/runs", json={"data": [], "meta": []})
    hook.create_automation_run(CONTACT, STARTABLE)
    assert len(api.calls) == 2
    assert len(sleeps) == 1


def test_429_on_a_run_waits_retry_after_then_succeeds(hook, api, sleeps) -> None:
    api.post(
        f"{API}/automations/runs",
        json={"message": "Too Many Requests"},
        status=429,
        headers={"Retry-After": "3"},
    )
    api.post(f"{API}/automations/runs", json={"data": [], "meta": []})
    hook.create_automation_run(CONTACT, STARTABLE)
    assert sleeps == [3.0]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_an_ambiguous_5xx_on_a_run_is_never_replayed(hook, api, status) -> None:
    api.post(
        f"{API}/automations/runs",
        json={"status_code": status, "code": status, "message": "oops"},
        status=status,
    )
    with pytest.raises(PrefineryServerError) as info:
        hook.create_automation_run(CONTACT, STARTABLE)
    assert len(api.calls) == 1
    assert info.value.outcome_unknown is True


def test_a_read_timeout_on_a_run_is_not_replayed_and_marked_outcome_unknown(hook, api) -> None:
    api.post(f"{API}/automations/runs", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(PrefineryConnectionError) as info:
        hook.create_automation_run(CONTACT, STARTABLE)
    assert len(api.calls) == 1
    assert info.value.outcome_unknown is True


def test_lookups_are_retried_after_a_dropped_connection(hook, api, sleeps) -> None:
    api.get(f"{API}/contacts/find-or-create", body=requests.exceptions.ConnectionError("reset"))
    api.get(f"{API}/contacts/find-or-create", json={"data": {"uuid": CONTACT}, "meta": []})
    assert hook.find_or_create_contact("ada@example.com")["uuid"] == CONTACT
    assert len(api.calls) == 2


def _response(status: int, body: object) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode()
    return resp


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "text"),
    [
        (
            422,
            {
                "status_code": 422,
                "code": 1003,
                "message": "The given data was invalid.",
                "errors": {"contact_uuid": ["The contact uuid field is required."]},
            },
            PrefineryValidationError,
            1003,
            "contact_uuid: The contact uuid field is required.",
        ),
        (
            400,
            {"status_code": 400, "code": 55031, "message": "Contact not found."},
            PrefineryNotFoundError,
            55031,
            "contact not found",
        ),
        (
            400,
            {"status_code": 400, "code": 60013, "message": "No query results."},
            PrefineryNotFoundError,
            60013,
            "automation not found",
        ),
        (422, {"status_code": 422, "code": 60015, "message": "Run rejected."}, None, 60015, "Run rejected."),
        (
            401,
            {"error": "invalid_client", "error_description": "bad client"},
            None,
            "invalid_client",
            "bad client",
        ),
    ],
)
def test_one_parser_maps_piggy_codes_whatever_the_http_status(status, body, kind, code, text) -> None:
    info = parse_piggy_error(_response(status, body))
    assert info.kind is kind
    assert info.code == code
    assert text.lower() in info.message.lower()


def test_an_unreadable_error_body_keeps_its_text() -> None:
    resp = requests.Response()
    resp.status_code, resp._content = 502, b"<html>Bad gateway</html>"
    assert parse_piggy_error(resp).message == "<html>Bad gateway</html>"


def test_error_codes_reach_callers_as_typed_errors_naming_piggy(hook, api) -> None:
    api.post(
        f"{API}/automations/runs",
        json={"status_code": 400, "code": 60013, "message": "No query results for model."},
        status=400,
    )
    with pytest.raises(PrefineryNotFoundError) as info:
        hook.create_automation_run(CONTACT, STARTABLE)
    err = info.value
    assert (err.service, err.method, err.path, err.status, err.code) == (
        "Piggy", "POST", "automations/runs", 400, 60013,
    )  # fmt: skip
    assert str(err).startswith("Piggy POST automations/runs, HTTP 400, code 60013: automation not found")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda h: h.create_automation_run("not-a-uuid", STARTABLE), "contact_uuid"),
        (lambda h: h.create_automation_run(CONTACT, "Send reward email"), "automation_uuid"),
        (lambda h: h.create_automation_run(CONTACT, STARTABLE, data=["a"]), "data"),
        (lambda h: h.create_automation_run(CONTACT, STARTABLE, data={"x": object()}), "data"),
        (lambda h: h.find_contact("not an email"), "email"),
        (lambda h: h.find_or_create_contact(""), "email"),
    ],
)
def test_bad_input_is_refused_before_any_request_naming_the_field(hook, api, call, field) -> None:
    with pytest.raises(PrefineryInputError) as info:
        call(hook)
    assert info.value.field == field
    assert info.value.service == "Piggy"
    assert not api.calls


def test_secrets_never_reach_logs_or_errors(oauth_hook, api, caplog) -> None:
    _token_answer(api, "at_VERY_SECRET_access")
    api.post(
        f"{API}/automations/runs",
        json={
            "status_code": 422,
            "code": 1003,
            "message": "bad token at_VERY_SECRET_access or cs_SECRET_9a8b7c6d",
        },
        status=422,
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PrefineryValidationError) as info:
        oauth_hook.create_automation_run(CONTACT, STARTABLE)
    text = str(info.value) + repr(info.value.to_dict()) + caplog.text + repr(oauth_hook.client.auth)
    for secret in ("at_VERY_SECRET_access", CLIENT_SECRET):
        assert secret not in text


def test_a_connection_without_token_or_complete_client_is_an_input_error(monkeypatch) -> None:
    half = PiggyHook(_conn(monkeypatch, "piggy_half", host=ORIGIN, extra={"client_id": CLIENT_ID}))
    with pytest.raises(PrefineryInputError, match="without its client_secret"):
        half.client  # noqa: B018
    empty = PiggyHook(_conn(monkeypatch, "piggy_empty", host=ORIGIN))
    with pytest.raises(PrefineryInputError, match="no token"):
        empty.client  # noqa: B018


def test_a_token_in_the_password_wins_over_an_oauth_client(monkeypatch, api) -> None:
    extra = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    hook = PiggyHook(_conn(monkeypatch, "piggy_both", password=TOKEN, host=ORIGIN, extra=extra))
    api.get(f"{API}/automations", json={"data": [], "meta": []})
    list(hook.list_automations())
    assert [c.request.url for c in api.calls] == [f"{API}/automations?limit=100"]
    assert api.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_legacy_extra_spelling_of_the_oauth_client_is_read(monkeypatch, api) -> None:
    extra = {"extra__piggy__client_id": CLIENT_ID, "extra__piggy__client_secret": CLIENT_SECRET}
    hook = PiggyHook(_conn(monkeypatch, "piggy_legacy", host=ORIGIN, extra=extra))
    assert hook.oauth_client == (CLIENT_ID, CLIENT_SECRET)


def test_default_host_is_piggys_api(monkeypatch) -> None:
    hook = PiggyHook(_conn(monkeypatch, "piggy_default_host", password=TOKEN))
    assert hook.client.base_url == "https://api.piggy.eu/api/v3/oauth/clients/"


def test_pick_automation_names_the_wrong_event_and_the_startable_ones() -> None:
    with pytest.raises(PrefineryInputError) as info:
        pick_automation(AUTOMATIONS, name="Welcome new contact")
    message = str(info.value)
    assert "event 'contact_created'" in message
    assert "only automations with event 'contact_updated'" in message
    assert "'Send reward email' (event contact_updated)" in message
    assert info.value.field == "automation_name"


def test_pick_automation_refuses_an_ambiguous_name_and_finds_by_uuid() -> None:
    twins = [*AUTOMATIONS, {**AUTOMATIONS[0], "uuid": "6a1f0c3e-5b7d-4e2a-9c11-0a00000000ff"}]
    with pytest.raises(PrefineryInputError, match="2 automations are named"):
        pick_automation(twins, name="Send reward email")
    assert pick_automation(AUTOMATIONS, uuid=STARTABLE.upper())["name"] == "Send reward email"
    assert pick_automation(AUTOMATIONS, name="Nope") is None


def test_endpoint_table_holds_every_path_and_only_lookups_are_gets() -> None:
    assert {name: (e.method, e.path) for name, e in ENDPOINTS.items()} == {
        "list_automations": ("GET", "automations"),
        "create_automation_run": ("POST", "automations/runs"),
        "find_contact": ("GET", "contacts/find-one-by"),
        "find_or_create_contact": ("GET", "contacts/find-or-create"),
    }


def test_legacy_form_behaviour_is_the_declared_one() -> None:
    from airflow_provider_prefinery.provider_info import PIGGY_CONNECTION, legacy_field_specs

    assert PiggyHook.get_ui_field_behaviour() == PIGGY_CONNECTION["ui-field-behaviour"]
    specs = legacy_field_specs("piggy")
    assert specs["client_secret"]["kind"] == "password"
    assert specs["client_id"]["kind"] == "string"
    assert PiggyHook.conn_type == PIGGY_CONNECTION["connection-type"]


def test_test_connection_reports_a_wrong_host_quickly(monkeypatch) -> None:
    hook = PiggyHook(_conn(monkeypatch, "piggy_nowhere", password=TOKEN, host="http://127.0.0.1:9"))
    ok, message = hook.test_connection()
    assert ok is False
    assert "could not connect" in message
    assert TOKEN not in message


# ---------------------------------------------------------------------------------------- against the sandbox
@pytest.fixture
def sandbox_hook(sandbox) -> Iterator[PiggyHook]:
    """``piggy_default`` (the sandbox's key); retries recorded instead of slept."""
    h = PiggyHook()
    h.client.sleep = lambda _seconds: None
    yield h
    h.close()


@pytest.fixture
def sandbox_oauth_hook(sandbox, monkeypatch) -> Iterator[PiggyHook]:
    """An OAuth-client connection to the sandbox (its seeded client credentials)."""
    from airflow_provider_prefinery.sandbox.seeds import PIGGY_CLIENT_ID, PIGGY_CLIENT_SECRET

    extra = {"client_id": PIGGY_CLIENT_ID, "client_secret": PIGGY_CLIENT_SECRET}
    h = PiggyHook(_conn(monkeypatch, "piggy_sandbox_oauth", host=sandbox.url, extra=extra))
    yield h
    h.close()


def _known_contact(sandbox) -> dict:
    return sandbox.control.piggy_contacts()[0]


@pytest.mark.integration
def test_sandbox_run_is_recorded_with_its_contact_automation_and_data(sandbox, sandbox_hook) -> None:
    from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

    contact = sandbox_hook.find_contact(_known_contact(sandbox)["email"])
    sandbox_hook.create_automation_run(contact["uuid"], DEMO_AUTOMATION_UUID, {"reward_id": 7})
    runs = sandbox.control.piggy_runs()
    assert [(r["contact_uuid"], r["automation_uuid"]) for r in runs] == [
        (contact["uuid"], DEMO_AUTOMATION_UUID)
    ]
    assert runs[0]["data"] == {"reward_id": 7}


@pytest.mark.integration
def test_sandbox_find_contact_is_none_for_an_unknown_email_and_find_or_create_makes_it(
    sandbox, sandbox_hook
) -> None:
    assert sandbox_hook.find_contact("new.person@example.com") is None
    created = sandbox_hook.find_or_create_contact("new.person@example.com")
    again = sandbox_hook.find_or_create_contact("New.Person@example.com")
    assert created["uuid"] == again["uuid"]
    assert sandbox_hook.find_contact("new.person@example.com")["uuid"] == created["uuid"]
    assert len(sandbox.control.piggy_contacts(email="new.person@example.com")) == 1


@pytest.mark.integration
def test_sandbox_unknown_contact_is_not_found_code_55031(sandbox, sandbox_hook) -> None:
    from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

    with pytest.raises(PrefineryNotFoundError) as info:
        sandbox_hook.create_automation_run("00000000-0000-4000-8000-000000000000", DEMO_AUTOMATION_UUID)
    assert (info.value.code, info.value.service) == (55031, "Piggy")
    assert "contact not found" in str(info.value).lower()
    assert sandbox.control.piggy_runs() == []


@pytest.mark.integration
def test_sandbox_unknown_automation_is_not_found_code_60013(sandbox, sandbox_hook) -> None:
    contact = _known_contact(sandbox)
    with pytest.raises(PrefineryNotFoundError) as info:
        sandbox_hook.create_automation_run(contact["uuid"], "00000000-0000-4000-8000-000000000000")
    assert info.value.code == 60013
    assert "automation not found" in str(info.value).lower()


@pytest.mark.integration
def test_sandbox_invalid_input_is_a_validation_error_with_the_field_messages(sandbox_hook) -> None:
    # The hook checks UUIDs before sending, so send the raw table row to reach Piggy's own 1003.
    with pytest.raises(PrefineryValidationError) as info:
        sandbox_hook.call("create_automation_run", body={"contact_uuid": CONTACT})
    assert info.value.code == 1003
    assert "automation_uuid: The automation uuid field is required." in str(info.value)


@pytest.mark.integration
def test_sandbox_rejects_a_non_contact_updated_automation_naming_its_event(sandbox, sandbox_hook) -> None:
    from airflow_provider_prefinery.sandbox.seeds import DEMO_CREATED_AUTOMATION_UUID

    with pytest.raises(PrefineryInputError, match="event 'contact_created'"):
        sandbox_hook.resolve_automation(uuid=DEMO_CREATED_AUTOMATION_UUID)
    assert sandbox_hook.resolve_automation(name="Send reward email")["event"] == "contact_updated"
    with pytest.raises(PrefineryNotFoundError, match="no automation named 'Nope'"):
        sandbox_hook.resolve_automation(name="Nope")


@pytest.mark.integration
def test_sandbox_maintenance_503_is_retried_then_reported_without_a_run(sandbox, monkeypatch) -> None:
    from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

    hook = PiggyHook(retry=RetryPolicy(max_retries=2, backoff_initial=0.01, backoff_max=0.01))
    contact = _known_contact(sandbox)
    sandbox.control.set_faults("piggy", {"503": 1.0}, target="create_automation_run")
    with pytest.raises(PrefineryServerError) as info:
        hook.create_automation_run(contact["uuid"], DEMO_AUTOMATION_UUID)
    assert info.value.outcome_unknown is False  # a 503 is refused before acting: nothing to check by hand
    assert sandbox.control.count(api="piggy", endpoint="create_automation_run") == 3
    assert sandbox.control.piggy_runs() == []


@pytest.mark.integration
def test_sandbox_429_is_waited_out_and_the_run_starts_once(sandbox) -> None:
    from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

    hook = PiggyHook()
    contact = _known_contact(sandbox)
    sandbox.control.set_rate_limit("piggy", "create_automation_run", 1, per_seconds=1)
    hook.create_automation_run(contact["uuid"], DEMO_AUTOMATION_UUID)
    hook.create_automation_run(contact["uuid"], DEMO_AUTOMATION_UUID)  # 429, Retry-After: 1, then 200
    statuses = [r["status"] for r in sandbox.control.requests(api="piggy", endpoint="create_automation_run")]
    assert statuses == [200, 429, 200]
    assert len(sandbox.control.piggy_runs()) == 2
    assert hook.stats["retries"] == 1


@pytest.mark.integration
def test_sandbox_oauth_token_is_exchanged_once_and_reused_across_calls_and_threads(
    sandbox, sandbox_oauth_hook
) -> None:
    from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

    hook = sandbox_oauth_hook
    contacts = sandbox.control.piggy_contacts()[:8]
    threads = [
        threading.Thread(target=hook.create_automation_run, args=(c["uuid"], DEMO_AUTOMATION_UUID))
        for c in contacts
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    list(hook.list_automations())
    exchanges = sandbox.control.token_exchanges()
    assert [(e["client_id"], e["granted"]) for e in exchanges] == [("sandbox-client", True)]
    assert len(sandbox.control.piggy_runs()) == 8
    assert hook.stats["token_exchanges"] == 1


@pytest.mark.integration
def test_sandbox_oauth_token_refused_after_a_reset_is_exchanged_again(sandbox, sandbox_oauth_hook) -> None:
    list(sandbox_oauth_hook.list_automations())
    sandbox.control.reset("demo")  # forgets every issued token: the next call gets a 401
    assert len(list(sandbox_oauth_hook.list_automations())) == 4
    assert len(sandbox.control.token_exchanges()) == 1  # counted since the reset
    assert sandbox_oauth_hook.stats["token_exchanges"] == 2


@pytest.mark.integration
def test_sandbox_wrong_client_secret_fails_test_connection_without_leaking_it(sandbox, monkeypatch) -> None:
    extra = {"client_id": "sandbox-client", "client_secret": "wrong-SECRET-value"}
    hook = PiggyHook(_conn(monkeypatch, "piggy_sandbox_bad", host=sandbox.url, extra=extra))
    ok, message = hook.test_connection()
    assert ok is False
    assert "Client authentication failed" in message
    assert "wrong-SECRET-value" not in message
    assert [e["granted"] for e in sandbox.control.token_exchanges()] == [False]


@pytest.mark.integration
def test_sandbox_test_connection_counts_the_startable_automations(sandbox, sandbox_oauth_hook) -> None:
    ok, message = sandbox_oauth_hook.test_connection()
    assert ok is True
    assert "as OAuth client 'sandbox-client'" in message
    assert "4 automation(s), 3 with event 'contact_updated'" in message
