"""PiggyCreateAutomationRunOperator against the sandbox over real HTTP: contacts, automations, batches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_prefinery.batch import (
    BatchFailedNoRetryError,
    BatchValidationError,
    NoRetryError,
)
from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryNotFoundError
from airflow_provider_prefinery.operators.piggy import PiggyCreateAutomationRunOperator
from airflow_provider_prefinery.sandbox.seeds import (
    DEMO_AUTOMATION_UUID,
    DEMO_CREATED_AUTOMATION_UUID,
    PIGGY_CLIENT_ID,
    PIGGY_CLIENT_SECRET,
)

pytestmark = pytest.mark.integration

REWARD_EMAIL = "Send reward email"


class _TI:
    """Collects what the operator pushes itself (the report of a failing batch)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _run(op: Any, ti: _TI | None = None) -> Any:
    return op.execute({"ti": ti or _TI()})


def _contacts(sandbox: Any, n: int) -> list[dict[str, Any]]:
    return sandbox.control.piggy_contacts()[:n]


def _op(**kwargs: Any) -> PiggyCreateAutomationRunOperator:
    return PiggyCreateAutomationRunOperator(task_id="start_run", progress_interval=0, **kwargs)


def test_by_email_and_automation_name_starts_one_run_for_that_contact(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]

    result = _run(_op(email=contact["email"], automation_name=REWARD_EMAIL, data={"reward": "20% off"}))

    assert result == {
        "contact_uuid": contact["uuid"],
        "email": contact["email"],
        "automation_uuid": DEMO_AUTOMATION_UUID,
        "automation_name": REWARD_EMAIL,
        "data": {"reward": "20% off"},
    }
    runs = sandbox.control.piggy_runs()
    assert [(r["contact_uuid"], r["automation_uuid"], r["data"]) for r in runs] == [
        (contact["uuid"], DEMO_AUTOMATION_UUID, {"reward": "20% off"})
    ]


def test_by_contact_uuid_and_automation_uuid_needs_no_lookup_of_the_contact(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]

    _run(_op(contact_uuid=contact["uuid"], automation_uuid=DEMO_AUTOMATION_UUID))

    assert sandbox.control.count(api="piggy", endpoint="find_contact") == 0
    assert len(sandbox.control.piggy_runs(contact_uuid=contact["uuid"])) == 1


def test_unknown_email_fails_clearly_and_creates_nothing_by_default(sandbox: Any) -> None:
    op = _op(email="stranger@example.org", automation_name=REWARD_EMAIL)

    with pytest.raises(PrefineryNotFoundError) as info:
        _run(op)

    assert info.value.code == 55031
    assert "no contact with e-mail stranger@example.org" in str(info.value)
    assert "create_contact_if_missing=True" in str(info.value)
    assert sandbox.control.piggy_contacts(email="stranger@example.org") == []
    assert sandbox.control.piggy_runs() == []


def test_create_contact_if_missing_creates_the_contact_then_starts_the_run(sandbox: Any) -> None:
    result = _run(
        _op(email="stranger@example.org", automation_name=REWARD_EMAIL, create_contact_if_missing=True)
    )

    created = sandbox.control.piggy_contacts(email="stranger@example.org")
    assert [c["uuid"] for c in created] == [result["contact_uuid"]]
    assert len(sandbox.control.piggy_runs(contact_uuid=result["contact_uuid"])) == 1


def test_an_automation_with_another_event_fails_naming_it_before_any_run(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]
    op = _op(records=[{"email": contact["email"]}], automation_name="Welcome new contact")

    with pytest.raises(PrefineryInputError) as info:
        _run(op)

    message = str(info.value)
    assert "'Welcome new contact'" in message and "event 'contact_created'" in message
    assert "only automations with event 'contact_updated'" in message
    assert sandbox.control.count(api="piggy", endpoint="create_automation_run") == 0
    assert sandbox.control.count(api="piggy", endpoint="find_contact") == 0


def test_the_same_check_applies_to_an_automation_given_by_uuid(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]

    with pytest.raises(PrefineryInputError, match="event 'contact_created'"):
        _run(_op(contact_uuid=contact["uuid"], automation_uuid=DEMO_CREATED_AUTOMATION_UUID))

    assert sandbox.control.piggy_runs() == []


def test_an_unknown_automation_name_lists_the_known_ones(sandbox: Any) -> None:
    with pytest.raises(PrefineryNotFoundError) as info:
        _run(_op(email=_contacts(sandbox, 1)[0]["email"], automation_name="Send reward mail"))

    assert "no automation named 'Send reward mail'" in str(info.value)
    assert "'Send reward email'" in str(info.value)


def test_a_batch_lists_automations_once_and_reports_the_rejected_contact(sandbox: Any) -> None:
    contacts = _contacts(sandbox, 5)
    rejected = contacts[2]
    sandbox.control.piggy_reject(contact_uuid=rejected["uuid"])
    records = [{"email": c["email"], "data": {"n": i}} for i, c in enumerate(contacts)]
    ti = _TI()
    op = _op(records=records, automation_name=REWARD_EMAIL, return_records=True)

    with pytest.raises(
        BatchFailedNoRetryError
    ) as info:  # runs were started: an Airflow retry would repeat them
        _run(op, ti)

    report = ti.pushed["return_value"]
    assert report["counts"]["succeeded"] == 4 and report["counts"]["failed"] == 1
    [failure] = report["failed"]
    assert (failure["index"], failure["code"], failure["error"]) == (2, 60015, "PrefineryValidationError")
    assert failure["record"]["email"] == rejected["email"]
    assert [r is None for r in report["records"]] == [False, False, True, False, False]
    assert "1 of 5" in str(info.value)
    started = {r["contact_uuid"] for r in sandbox.control.piggy_runs()}
    assert started == {c["uuid"] for c in contacts} - {rejected["uuid"]}
    assert sandbox.control.count(api="piggy", endpoint="list_automations") == 1


def test_records_may_each_name_their_automation(sandbox: Any) -> None:
    a, b = _contacts(sandbox, 2)
    records = [
        {"email": a["email"], "automation_name": REWARD_EMAIL},
        {"email": b["email"], "automation_name": "Grant 100 credits"},
    ]

    result = _run(_op(records=records))

    assert result["counts"]["succeeded"] == 2
    by_contact = {r["contact_uuid"]: r["automation_uuid"] for r in sandbox.control.piggy_runs()}
    assert by_contact[a["uuid"]] == DEMO_AUTOMATION_UUID
    assert by_contact[b["uuid"]] != DEMO_AUTOMATION_UUID
    assert sandbox.control.count(api="piggy", endpoint="list_automations") == 1


def test_a_batch_validates_each_record_once(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[dict[str, Any]] = []
    check = PiggyCreateAutomationRunOperator.check_record

    def counting(self: PiggyCreateAutomationRunOperator, fields: dict[str, Any]) -> None:
        checked.append(fields)
        check(self, fields)

    monkeypatch.setattr(PiggyCreateAutomationRunOperator, "check_record", counting)
    contacts = _contacts(sandbox, 3)

    result = _run(_op(records=[{"contact_uuid": c["uuid"]} for c in contacts], automation_name=REWARD_EMAIL))

    assert result["counts"]["succeeded"] == 3
    assert [fields["contact_uuid"] for fields in checked] == [c["uuid"] for c in contacts]


def test_invalid_records_are_all_reported_before_any_request(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]
    records = [
        {"email": contact["email"]},
        {"email": contact["email"], "contact_uuid": contact["uuid"]},
        {"contact_uuid": "not-a-uuid"},
        {"email": contact["email"], "data": ["not", "a", "mapping"]},
    ]

    with pytest.raises(BatchValidationError) as info:
        _run(_op(records=records, automation_uuid=DEMO_AUTOMATION_UUID))

    assert [e["index"] for e in info.value.errors] == [1, 2, 3]
    assert [e["field"] for e in info.value.errors] == ["contact_uuid/email", "contact_uuid", "data"]
    assert sandbox.control.count(api="piggy", endpoint="create_automation_run") == 0


def test_data_rendered_as_json_text_is_sent_as_a_mapping(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]

    _run(_op(email=contact["email"], automation_name=REWARD_EMAIL, data=json.dumps({"reward_id": 12})))

    assert sandbox.control.piggy_runs()[0]["data"] == {"reward_id": 12}


def test_an_unknown_outcome_is_never_replayed_and_fails_without_an_airflow_retry(sandbox: Any) -> None:
    contact = _contacts(sandbox, 1)[0]
    sandbox.control.set_faults("piggy", {"500_after_write": 1.0}, target="create_automation_run")

    with pytest.raises(NoRetryError, match="not idempotent"):
        _run(_op(contact_uuid=contact["uuid"], automation_uuid=DEMO_AUTOMATION_UUID))

    assert sandbox.control.count(api="piggy", endpoint="create_automation_run") == 1
    assert len(sandbox.control.piggy_runs()) == 1  # it was applied: a replay would have started a second


def test_an_oauth_connection_exchanges_one_token_for_the_whole_batch(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {
        "conn_type": "piggy",
        "host": sandbox.url,
        "extra": {"client_id": PIGGY_CLIENT_ID, "client_secret": PIGGY_CLIENT_SECRET},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PIGGY_OAUTH", json.dumps(conn))
    records = [{"email": c["email"]} for c in _contacts(sandbox, 8)]

    result = _run(
        _op(records=records, automation_name=REWARD_EMAIL, piggy_conn_id="piggy_oauth", max_concurrency=4)
    )

    assert result["counts"]["succeeded"] == 8
    assert len(sandbox.control.token_exchanges()) == 1
    assert len(sandbox.control.piggy_runs()) == 8


def test_create_contact_if_missing_must_be_a_boolean() -> None:
    with pytest.raises(PrefineryInputError, match="create_contact_if_missing"):
        _op(email="a@example.org", automation_name=REWARD_EMAIL, create_contact_if_missing="yes")
