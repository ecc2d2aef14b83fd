"""The bad-input catalogue: every row is refused with an error naming the field, before any request.

ONE table (:data:`CATALOGUE`), run row by row through the real entry point a DAG author meets (an
operator's ``execute``, a sensor's ``poke``, the transfer's ``execute``, a hook method), against the
session's sandbox: after each row the sandbox's request log must still be empty.
``test_the_catalogue_renders_as_markdown`` runs the table once more and writes ``artifacts/bad_input.md``
(case, where, input, the error actually raised) for the README.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
from airflow_provider_prefinery.hooks.piggy import PiggyHook
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.operators.piggy import PiggyCreateAutomationRunOperator
from airflow_provider_prefinery.operators.prefinery import (
    PrefineryCheckinUserOperator,
    PrefineryCreateFriendInvitationOperator,
    PrefineryCreatePointsOperator,
    PrefineryCreateRewardOperator,
    PrefineryCreateSuppressionOperator,
    PrefineryCreateUserOperator,
    PrefineryDeleteProjectOperator,
    PrefineryDeleteSuppressionOperator,
    PrefineryDeleteUserOperator,
    PrefineryUpdateRewardStatusOperator,
    PrefineryUpdateUserOperator,
)
from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID, DEMO_SPARE_BETA_ID
from airflow_provider_prefinery.sensors.prefinery import (
    PrefineryRewardSensor,
    PrefinerySuppressionSensor,
    PrefineryUserSensor,
)
from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import MailchimpToPrefineryOperator
from tests.reliability.conftest import write_artifact
from tests.reliability.soak import RecordingTI

pytestmark = pytest.mark.integration

ADA = "ada@example.org"
UUID = "5bb2e58e-e438-40f2-bee3-7ce5aafaedb0"


@dataclass(frozen=True)
class Case:
    """One row: what is wrong, where it is given, the input as a DAG author writes it, and the field (and
    a fragment of the message) the error must name. ``field=None``: the message names it instead."""

    case: str
    where: str
    shown: str
    run: Callable[[], Any]
    field: str | None
    message: str
    error: type[BaseException] = PrefineryInputError


def op(cls: type, **kwargs: Any) -> Callable[[], Any]:
    """Build the operator and run it as a task would (construction errors count: DAG parse time)."""
    return lambda: cls(task_id="t", progress_interval=0, **kwargs).execute({"ti": RecordingTI()})


def poke(cls: type, **kwargs: Any) -> Callable[[], Any]:
    return lambda: cls(task_id="s", poke_interval=10, **kwargs).poke({})


def sync(**kwargs: Any) -> Callable[[], Any]:
    window = {"since": "2024-01-01T00:00:00+00:00", "before": "2024-01-02T00:00:00+00:00"}
    return op(MailchimpToPrefineryOperator, **{**window, "index_variable": None, **kwargs})


P = "PrefineryCreatePointsOperator"
U = "PrefineryCreateUserOperator"
S = "MailchimpToPrefineryOperator"
POINTS = {"email": ADA, "quantity": 5}
PROXY_PASSWORD = "pr0xy-pw"  # in the proxy extra of prefinery_socks: never in an error

CATALOGUE: list[Case] = [
    # --- e-mail addresses -------------------------------------------------------------------------
    Case(
        "malformed e-mail",
        U,
        "email='ada.example.org'",
        op(PrefineryCreateUserOperator, email="ada.example.org"),
        "email",
        "is not a valid e-mail address",
    ),
    Case(
        "e-mail with surrounding whitespace",
        U,
        "email=' ada@example.org'",
        op(PrefineryCreateUserOperator, email=" ada@example.org"),
        "email",
        "must not contain whitespace",
    ),
    Case(
        "e-mail with inner whitespace",
        P,
        "email='ada @example.org'",
        op(PrefineryCreatePointsOperator, email="ada @example.org", quantity=1),
        "email",
        "whitespace",
    ),
    Case(
        "unicode e-mail",
        U,
        "email='zoë@example.org'",
        op(PrefineryCreateUserOperator, email="zoë@example.org"),
        "email",
        "must be an ASCII e-mail",
    ),
    Case(
        "e-mail of the wrong type",
        U,
        "email=['ada@example.org']",
        op(PrefineryCreateUserOperator, email=[ADA]),
        "email",
        "must be an e-mail address string, got list",
    ),
    Case(
        "missing recipient",
        "PrefineryCreateFriendInvitationOperator",
        "sender_email=..., no recipient",
        op(PrefineryCreateFriendInvitationOperator, sender_email=ADA),
        "recipient_email",
        "is required",
    ),
    # --- closed sets --------------------------------------------------------------------------------
    Case(
        "unknown user status",
        U,
        "status='vip'",
        op(PrefineryCreateUserOperator, email=ADA, status="vip"),
        "status",
        "unknown value 'vip'",
    ),
    Case(
        "unknown suppression reason",
        "PrefineryCreateSuppressionOperator",
        "reason='Spam'",
        op(PrefineryCreateSuppressionOperator, email=ADA, reason="Spam"),
        "reason",
        "allowed: Manual, Unsubscribe",
    ),
    Case(
        "reason only Prefinery may set",
        "PrefineryCreateSuppressionOperator",
        "reason='HardBounce'",
        op(PrefineryCreateSuppressionOperator, email=ADA, reason="HardBounce"),
        "reason",
        "unknown value",
    ),
    Case(
        "unknown reward status",
        "PrefineryUpdateRewardStatusOperator",
        "status='pending'",
        op(PrefineryUpdateRewardStatusOperator, reward_id=1, status="pending"),
        "status",
        "allowed: delivered, revoked",
    ),
    Case(
        "unknown if_exists",
        U,
        "if_exists='merge'",
        op(PrefineryCreateUserOperator, email=ADA, if_exists="merge"),
        "if_exists",
        "allowed: fail, skip, update",
    ),
    # --- types, sizes, numbers -------------------------------------------------------------------------
    Case(
        "negative quantity",
        P,
        "quantity=-5",
        op(PrefineryCreatePointsOperator, email=ADA, quantity=-5),
        "quantity",
        "must be a positive integer",
    ),
    Case(
        "fractional quantity",
        P,
        "quantity=2.5",
        op(PrefineryCreatePointsOperator, email=ADA, quantity=2.5),
        "quantity",
        "must be a positive integer",
    ),
    Case(
        "quantity rendered to words",
        P,
        "quantity='{{ params.n }}' -> 'ten'",
        op(PrefineryCreatePointsOperator, email=ADA, quantity="ten"),
        "quantity",
        "got 'ten'",
    ),
    Case(
        "boolean quantity",
        P,
        "quantity=True",
        op(PrefineryCreatePointsOperator, email=ADA, quantity=True),
        "quantity",
        "got True",
    ),
    Case(
        "2 MB profile",
        U,
        "profile={'custom_var1': 'x' * 2_000_000}",
        op(PrefineryCreateUserOperator, email=ADA, profile={"custom_var1": "x" * 2_000_000}),
        "profile",
        "is too large",
    ),
    Case(
        "profile not a mapping",
        U,
        "profile=['Ada']",
        op(PrefineryCreateUserOperator, email=ADA, profile=["Ada"]),
        "profile",
        "must be a mapping",
    ),
    Case(
        "profile value not a scalar",
        U,
        "profile={'first_name': {'x': 1}}",
        op(PrefineryCreateUserOperator, email=ADA, profile={"first_name": {"x": 1}}),
        "profile.first_name",
        "must be a string, number or null",
    ),
    Case(
        "profile template rendered to text",
        U,
        "profile='first_name=Ada'",
        op(PrefineryCreateUserOperator, email=ADA, profile="first_name=Ada"),
        "profile",
        "neither JSON nor a Python literal",
    ),
    Case(
        "flag rendered to 'yes'",
        "PrefineryCreateRewardOperator",
        "skip_quantity_check='yes'",
        op(PrefineryCreateRewardOperator, email=ADA, descriptor="vip", skip_quantity_check="yes"),
        "skip_quantity_check",
        "must be true or false",
    ),
    Case(
        "blank descriptor",
        "PrefineryCreateRewardOperator",
        "descriptor='  '",
        op(PrefineryCreateRewardOperator, email=ADA, descriptor="  "),
        "descriptor",
        "must not be empty",
    ),
    Case(
        "invitation code without active",
        U,
        "invitation_code='X1', status='applied'",
        op(PrefineryCreateUserOperator, email=ADA, status="applied", invitation_code="X1"),
        "invitation_code",
        "only accepted with status='active'",
    ),
    Case(
        "nothing to update",
        "PrefineryUpdateUserOperator",
        "user_id=5001 only",
        op(PrefineryUpdateUserOperator, user_id=5001),
        "update_user",
        "nothing to update",
    ),
    Case(
        "check-in by id and e-mail",
        "PrefineryCheckinUserOperator",
        "user_id=5001, email=...",
        op(PrefineryCheckinUserOperator, user_id=5001, email=ADA),
        "user_id/email",
        "exactly one",
    ),
    Case(
        "id that is not an id",
        "PrefineryDeleteUserOperator",
        "user_id='12; DROP TABLE'",
        op(PrefineryDeleteUserOperator, user_id="12; DROP TABLE"),
        "user_id",
        "must be a positive integer",
    ),
    Case(
        "max_concurrency 0",
        P,
        "max_concurrency=0",
        op(PrefineryCreatePointsOperator, **POINTS, max_concurrency=0),
        "max_concurrency",
        "at least 1",
    ),
    Case(
        "project delete without its name",
        "PrefineryDeleteProjectOperator",
        "beta_id=1002 only",
        op(PrefineryDeleteProjectOperator, beta_id=DEMO_SPARE_BETA_ID),
        "confirm_project_name",
        "is required",
    ),
    # --- records ------------------------------------------------------------------------------------------
    Case(
        "records not a list",
        U,
        "records={'email': ...}",
        op(PrefineryCreateUserOperator, records={"email": ADA}),
        "records",
        "must be a list of mappings",
    ),
    Case(
        "records rendered to broken text",
        U,
        "records=\"[{'email': 'ada@example.org'\"",
        op(PrefineryCreateUserOperator, records="[{'email': 'ada@example.org'"),
        "records",
        "neither JSON nor a Python literal",
    ),
    Case(
        "records rendered to a number",
        P,
        "records='{{ 42 }}' -> '42'",
        op(PrefineryCreatePointsOperator, records="42"),
        "records",
        "got int",
    ),
    Case(
        "empty records with if_empty='fail'",
        U,
        "records=[], if_empty='fail'",
        op(PrefineryCreateUserOperator, records=[], if_empty="fail"),
        "records",
        "is an empty list and if_empty='fail'",
    ),
    Case(
        "records rendered to an empty string",
        U,
        "records='{{ ... }}' -> ''",
        op(PrefineryCreateUserOperator, records=""),
        "records",
        "rendered to '', not a list of records",
    ),
    Case(
        "records rendered to 'None' (xcom_pull of a misspelled task id)",
        "PiggyCreateAutomationRunOperator",
        "records=\"{{ ti.xcom_pull('typo') }}\" -> 'None'",
        op(PiggyCreateAutomationRunOperator, records="None", automation_uuid=DEMO_AUTOMATION_UUID),
        "records",
        "rendered to 'None', not a list of records",
    ),
    Case(
        "a record that is not a mapping",
        U,
        "records=['ada@example.org']",
        op(PrefineryCreateUserOperator, records=[ADA]),
        "record",
        "must be a mapping of fields",
    ),
    Case(
        "a record with an unknown field",
        U,
        "records=[{'emial': ...}]",
        op(PrefineryCreateUserOperator, records=[{"emial": ADA}]),
        "emial",
        "is not a field of create_user",
    ),
    Case(
        "one bad record among good ones",
        P,
        "records=[ok, {'email': 'bad'}, ok]",
        op(PrefineryCreatePointsOperator, records=[POINTS, {"email": "bad", "quantity": 1}, POINTS]),
        "email",
        "nothing was sent",
    ),
    # --- project and connection ---------------------------------------------------------------------
    Case(
        "missing beta id",
        P,
        "connection without 'API Beta ID', no beta_id=",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_nobeta"),
        "beta_id",
        "no project id",
    ),
    Case(
        "beta id not a number",
        P,
        "beta_id='launch'",
        op(PrefineryCreatePointsOperator, **POINTS, beta_id="launch"),
        "beta_id",
        "must be a positive integer",
    ),
    Case(
        "missing connection",
        P,
        "prefinery_conn_id='prefinery_missing'",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_missing"),
        None,
        "prefinery_missing",
        AirflowNotFoundException,
    ),
    Case(
        "host that is not a URL",
        P,
        "connection host 'api prefinery com'",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_badhost"),
        "host",
        "is not an http(s) URL",
    ),
    Case(
        "host with a bad scheme",
        P,
        "connection host 'ftp://api.prefinery.com'",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_ftp"),
        "host",
        "is not an http(s) URL",
    ),
    Case(
        "connection without a key",
        P,
        "connection with no password",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_nokey"),
        "password",
        "has no API key",
    ),
    # --- sensors ------------------------------------------------------------------------------------
    Case(
        "sensor: malformed e-mail",
        "PrefineryUserSensor",
        "email='ada@'",
        poke(PrefineryUserSensor, email="ada@"),
        "email",
        "is not a valid e-mail address",
    ),
    Case(
        "sensor: unknown status",
        "PrefineryUserSensor",
        "status=['active', 'waiting']",
        poke(PrefineryUserSensor, email=ADA, status=["active", "waiting"]),
        "status",
        "unknown value 'waiting'",
    ),
    Case(
        "sensor: min_count 0",
        "PrefineryRewardSensor",
        "min_count=0",
        poke(PrefineryRewardSensor, min_count=0),
        "min_count",
        "must be a positive integer",
    ),
    Case(
        "sensor: min_count rendered to words",
        "PrefineryRewardSensor",
        "min_count='many'",
        poke(PrefineryRewardSensor, min_count="many"),
        "min_count",
        "got 'many'",
    ),
    Case(
        "sensor: unknown reward status",
        "PrefineryRewardSensor",
        "status='pending'",
        poke(PrefineryRewardSensor, status="pending"),
        "status",
        "allowed: earned, delivered, revoked",
    ),
    Case(
        "sensor: flag rendered to 'maybe'",
        "PrefinerySuppressionSensor",
        "suppressed='maybe'",
        poke(PrefinerySuppressionSensor, email=ADA, suppressed="maybe"),
        "suppressed",
        "must be true or false",
    ),
    # --- the transfer -------------------------------------------------------------------------------
    Case(
        "window start not a time",
        S,
        "since='yesterday'",
        sync(since="yesterday"),
        "since",
        "is not an ISO 8601 timestamp",
    ),
    Case(
        "empty window",
        S,
        "since=before='2024-01-02T00:00:00Z'",
        sync(since="2024-01-02T00:00:00Z", before="2024-01-02T00:00:00Z"),
        "since/before",
        "empty window",
    ),
    Case(
        "unknown status mapping",
        S,
        "status_actions={'subscribed': 'member'}",
        sync(status_actions={"subscribed": "member"}),
        "status_actions['subscribed']",
        "unknown value 'member'",
    ),
    Case(
        "unknown profile field",
        S,
        "merge_fields={'FNAME': 'nickname'}",
        sync(merge_fields={"FNAME": "nickname"}),
        "merge_fields['FNAME']",
        "unknown value 'nickname'",
    ),
    Case(
        "unknown create status",
        S,
        "create_status='vip'",
        sync(create_status="vip"),
        "create_status",
        "unknown value 'vip'",
    ),
    Case(
        "unknown index_rebuild",
        S,
        "index_rebuild='eager'",
        sync(index_rebuild="eager"),
        "index_rebuild",
        "allowed: listing, lazy",
    ),
    Case(
        "no audience id",
        S,
        "Mailchimp connection without list_id, no list_id=",
        sync(mailchimp_conn_id="mailchimp_nolist"),
        "list_id",
        "no audience id",
    ),
    Case(
        "Mailchimp key without data center",
        S,
        "key 'abc123' and no host",
        sync(mailchimp_conn_id="mailchimp_nodc"),
        "password",
        "no data center suffix",
    ),
    # --- ids, numbers and JSON the wire cannot carry (issue 13) ------------------------------------
    Case(
        "blank id (a template rendered '')",
        "PrefineryDeleteUserOperator",
        "user_id='{{ ... }}' -> ''",
        op(PrefineryDeleteUserOperator, user_id=""),
        "user_id",
        "must be a positive integer",
    ),
    Case(
        "id of spaces",
        "PrefineryDeleteUserOperator",
        "user_id='   '",
        op(PrefineryDeleteUserOperator, user_id="   "),
        "user_id",
        "must be a positive integer",
    ),
    Case(
        "padded id",
        "PrefineryUpdateUserOperator",
        "user_id=' 12', status='active'",
        op(PrefineryUpdateUserOperator, user_id=" 12", status="active"),
        "user_id",
        "must be a positive integer",
    ),
    Case(
        "id ending in a line break",
        "PrefineryUpdateRewardStatusOperator",
        "reward_id='12\\n', status='delivered'",
        op(PrefineryUpdateRewardStatusOperator, reward_id="12\n", status="delivered"),
        "reward_id",
        "must be a positive integer",
    ),
    Case(
        "id '-'",
        "PrefineryDeleteSuppressionOperator",
        "suppression_id='-'",
        op(PrefineryDeleteSuppressionOperator, suppression_id="-"),
        "suppression_id",
        "must be a positive integer",
    ),
    Case(
        "id in superscript digits",
        "PrefineryCheckinUserOperator",
        "user_id='²'",
        op(PrefineryCheckinUserOperator, user_id="²"),
        "user_id",
        "must be a positive integer",
    ),
    Case(
        "5,000-digit id",
        "PrefineryHook.get_user",
        "get_user('1' * 5000)",
        lambda: PrefineryHook().get_user("1" * 5000),
        "user_id",
        "(5,000 characters)",
    ),
    Case(
        "id beyond 64 bits",
        "PrefineryHook.get_reward",
        "get_reward(2**64)",
        lambda: PrefineryHook().get_reward(2**64),
        "reward_id",
        "must be at most",
    ),
    Case(
        "quantity beyond 32 bits",
        P,
        "quantity=10**30",
        op(PrefineryCreatePointsOperator, email=ADA, quantity=10**30),
        "quantity",
        "must be at most 2,147,483,647",
    ),
    Case(
        "quantity Infinity",
        P,
        "quantity=float('inf')",
        op(PrefineryCreatePointsOperator, email=ADA, quantity=float("inf")),
        "quantity",
        "got inf",
    ),
    Case(
        "NaN in a profile",
        U,
        "profile={'custom_var1': float('nan')}",
        op(PrefineryCreateUserOperator, email=ADA, profile={"custom_var1": float("nan")}),
        "profile.custom_var1",
        "must be a finite number",
    ),
    Case(
        "Infinity in survey answers",
        "PrefineryUpdateUserOperator",
        "responses=[{'question_id': 1, 'answer': float('inf')}]",
        op(PrefineryUpdateUserOperator, user_id=5001, responses=[{"question_id": 1, "answer": float("inf")}]),
        "responses",
        "NaN and Infinity have no JSON form",
    ),
    Case(
        "Piggy: NaN in the run's data",
        "PiggyCreateAutomationRunOperator",
        "data={'amount': float('nan')}",
        op(
            PiggyCreateAutomationRunOperator,
            contact_uuid=UUID,
            automation_uuid=DEMO_AUTOMATION_UUID,
            data={"amount": float("nan")},
        ),
        "data",
        "is not JSON-serialisable",
    ),
    Case(
        "records rendered to 100,000 open brackets",
        U,
        "records='[' * 100_000",
        op(PrefineryCreateUserOperator, records="[" * 100_000),
        "records",
        "nested too deeply",
    ),
    # --- filters and look-ups ---------------------------------------------------------------------------
    Case(
        "hook: filter that is a mapping",
        "PrefineryHook.list_users",
        "list_users(email_contains={'$ne': ''})",
        lambda: PrefineryHook().list_users(email_contains={"$ne": ""}),
        "email_contains",
        "must be a string, got dict",
    ),
    Case(
        "hook: find_user by a number",
        "PrefineryHook.find_user",
        "find_user(123)",
        lambda: PrefineryHook().find_user(123),  # type: ignore[arg-type]
        "email",
        "must be an e-mail address string, got int",
    ),
    Case(
        "hook: find_user without an e-mail",
        "PrefineryHook.find_user",
        "find_user(None)",
        lambda: PrefineryHook().find_user(None),  # type: ignore[arg-type]
        "email",
        "got NoneType",
    ),
    Case(
        "hook: Mailchimp audience '..'",
        "MailchimpHook.list_members",
        "list_members('..')",
        lambda: next(MailchimpHook().list_members("..")),
        "list_id",
        "is not a Mailchimp id",
    ),
    Case(
        "audience id that walks the path",
        S,
        "list_id='.'",
        sync(list_id="."),
        "list_id",
        "is not a Mailchimp id",
    ),
    Case(
        "hook: member fields as one string",
        "MailchimpHook.list_members",
        "fields='email_address'",
        lambda: next(MailchimpHook().list_members(fields="email_address")),  # type: ignore[arg-type]
        "fields",
        "must be a list of member field names",
    ),
    Case(
        "hook: window bound in words",
        "MailchimpHook.list_members",
        "since_last_changed='yesterday'",
        lambda: next(MailchimpHook().list_members(since_last_changed="yesterday")),
        "since/before",
        "is not an ISO 8601 timestamp",
    ),
    # --- transport extras -------------------------------------------------------------------------------
    Case(
        "proxy that is not an http(s) URL",
        P,
        "extra proxy='socks5://corp:***@127.0.0.1:1080'",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_socks"),
        "proxy",
        "is not an http(s) proxy URL: 'socks5://corp:***@127.0.0.1:1080'",
    ),
    Case(
        "CA bundle that does not exist",
        P,
        "extra ca_bundle='/nonexistent/ca.pem'",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_nocafile"),
        "ca_bundle",
        "no such file",
    ),
    Case(
        "API key pasted with a line break",
        P,
        "connection password 'sbx-...\\n'",
        op(PrefineryCreatePointsOperator, **POINTS, prefinery_conn_id="prefinery_newline"),
        "password",
        "a line break",
    ),
    # --- hooks --------------------------------------------------------------------------------------
    Case(
        "hook: zero points",
        "PrefineryHook.create_points",
        "create_points(email, 0)",
        lambda: PrefineryHook().create_points(ADA, 0),
        "quantity",
        "must be a positive integer, got 0",
    ),
    Case(
        "hook: unknown status filter",
        "PrefineryHook.list_users",
        "list_users(status='gone')",
        lambda: PrefineryHook().list_users(status="gone"),
        "status",
        "unknown value 'gone'",
    ),
    Case(
        "hook: unknown member status",
        "MailchimpHook.list_members",
        "list_members(status='gone')",
        lambda: next(MailchimpHook().list_members(status="gone")),
        "status",
        "unknown value 'gone'",
    ),
    Case(
        "hook: naive window bound",
        "MailchimpHook.list_members",
        "since_last_changed=datetime(2024, 1, 1)",
        lambda: next(MailchimpHook().list_members(since_last_changed=datetime(2024, 1, 1))),
        "since/before",
        "timezone-aware",
    ),
    Case(
        "hook: page size too large",
        "MailchimpHook",
        "page_size=5000",
        lambda: MailchimpHook(page_size=5000),
        "page_size",
        "must be 1..1000",
    ),
    Case(
        "hook: contact id not a UUID",
        "PiggyHook.create_automation_run",
        "contact_uuid='42'",
        lambda: PiggyHook().create_automation_run("42", DEMO_AUTOMATION_UUID),
        "contact_uuid",
        "is not a UUID",
    ),
    Case(
        "Piggy: contact twice",
        "PiggyCreateAutomationRunOperator",
        "contact_uuid=... and email=...",
        op(
            PiggyCreateAutomationRunOperator,
            contact_uuid=UUID,
            email=ADA,
            automation_uuid=DEMO_AUTOMATION_UUID,
        ),
        "contact_uuid/email",
        "both are set",
    ),
    Case(
        "Piggy: data not a mapping",
        "PiggyCreateAutomationRunOperator",
        "data=['gift']",
        op(
            PiggyCreateAutomationRunOperator,
            contact_uuid=UUID,
            automation_uuid=DEMO_AUTOMATION_UUID,
            data=["gift"],
        ),
        "data",
        "mapping",
    ),
    Case(
        "Piggy: connection without credentials",
        "PiggyHook",
        "no password, no client_id/secret",
        lambda: list(PiggyHook("piggy_nokey").list_automations()),
        "password",
        "no token",
    ),
]


@pytest.fixture
def bad_connections(prefinery_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Connections with one thing wrong each, all pointing at the session's sandbox."""
    url, key = prefinery_sandbox.url, prefinery_sandbox.api_key
    conns = {
        "prefinery_nobeta": {"conn_type": "prefinery", "password": key, "host": url},
        "prefinery_badhost": {
            "conn_type": "prefinery",
            "password": key,
            "host": "api prefinery com",
            "extra": {"beta_id": 1001},
        },
        "prefinery_ftp": {
            "conn_type": "prefinery",
            "password": key,
            "host": "ftp://api.prefinery.com",
            "extra": {"beta_id": 1001},
        },
        "prefinery_nokey": {"conn_type": "prefinery", "host": url, "extra": {"beta_id": 1001}},
        "mailchimp_nolist": {"conn_type": "mailchimp", "password": key, "host": url},
        "mailchimp_nodc": {
            "conn_type": "mailchimp",
            "password": "abc123",
            "extra": {"list_id": "a1b2c3d4e5"},
        },
        "piggy_nokey": {"conn_type": "piggy", "host": url},
        "prefinery_socks": {
            "conn_type": "prefinery",
            "password": key,
            "host": url,
            "extra": {"beta_id": 1001, "proxy": f"socks5://corp:{PROXY_PASSWORD}@127.0.0.1:1080"},
        },
        "prefinery_nocafile": {
            "conn_type": "prefinery",
            "password": key,
            "host": url,
            "extra": {"beta_id": 1001, "ca_bundle": "/nonexistent/ca.pem"},
        },
        "prefinery_newline": {
            "conn_type": "prefinery",
            "password": key + "\n",
            "host": url,
            "extra": {"beta_id": 1001},
        },
    }
    for conn_id, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.delenv("AIRFLOW_CONN_PREFINERY_MISSING", raising=False)
    prefinery_sandbox.control.clear_requests()
    return prefinery_sandbox


def run_case(case: Case) -> BaseException:
    """Run one row; return the error it raised (fails the test when it raised none or another kind)."""
    with pytest.raises(case.error) as info:
        case.run()
    return info.value


def fields_named(error: BaseException) -> set[str]:
    """The field of an input error, and of each record of a batch refused as a whole."""
    named = {getattr(error, "field", None)}
    named |= {entry.get("field") for entry in getattr(error, "errors", [])}
    return {name for name in named if name}


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.case for c in CATALOGUE])
def test_bad_input_is_refused_naming_the_field_before_any_request(case: Case, bad_connections: Any) -> None:
    error = run_case(case)

    if case.field is not None:
        assert case.field in fields_named(error), f"{error!r} names {fields_named(error)}"
    assert case.message in str(error)
    assert bad_connections.control.count() == 0, bad_connections.control.requests()
    assert bad_connections.api_key not in str(error) and PROXY_PASSWORD not in str(error)


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (PrefineryCreateUserOperator, {}),
        (PiggyCreateAutomationRunOperator, {"automation_uuid": DEMO_AUTOMATION_UUID}),
    ],
    ids=["prefinery", "piggy"],
)
def test_empty_records_skip_by_default_with_an_empty_report_and_no_request(
    cls: type, fields: dict[str, Any], bad_connections: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = cls(task_id="t", records=[], progress_interval=0, **fields)

    report = operator.execute({"ti": RecordingTI()})

    assert operator.if_empty == "skip"
    assert report["counts"]["total"] == 0 and report["failed"] == []
    assert "no records: nothing to do" in capsys.readouterr().out  # the task log
    assert bad_connections.control.count() == 0, bad_connections.control.requests()


def test_the_catalogue_has_thirty_cases_across_every_kind_of_entry_point() -> None:
    places = {c.where.split(".")[0] for c in CATALOGUE}
    assert len(CATALOGUE) >= 30
    assert {"PrefineryUserSensor", S, "PrefineryHook", "MailchimpHook", "PiggyHook", U} <= places


def test_the_catalogue_renders_as_markdown(bad_connections: Any) -> None:
    rows = []
    for case in CATALOGUE:
        error = run_case(case)
        message = " ".join(str(error).split())
        shown = message if len(message) <= 150 else message[:147] + "..."
        rows.append([case.case, f"`{case.where}`", f"`{case.shown}`", f"{type(error).__name__}: {shown}"])
    header = ["case", "where", "input", "error raised (before any request)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]

    path = write_artifact("bad_input.md", "\n".join(lines) + "\n")

    assert path.read_text().count("\n") == len(CATALOGUE) + 2
    assert bad_connections.control.count() == 0
