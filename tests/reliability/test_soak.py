"""Fault soak: under 5xx, 429, dropped connections, timeouts and 500-after-write at once, nothing is lost,
nothing is done twice, and every write whose outcome is unknown is reported by name, never replayed.

The short soak runs in the default test command (a few seconds). The long one is marked ``soak`` and runs
only when asked for::

    SOAK_SCALE=10 .venv/bin/pytest tests/reliability -m soak

(``SOAK_SCALE`` multiplies members and records; default 10.) Both write their table to ``artifacts/``.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefinery.batch import BatchFailedError, BatchFailedNoRetryError
from airflow_provider_prefinery.operators.prefinery import PrefineryCreatePointsOperator
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID
from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import (
    MailchimpToPrefineryOperator,
    SyncFailedError,
)
from tests.reliability.conftest import write_artifact
from tests.reliability.soak import (
    CONN_IDS,
    FAULTS,
    SoakConfig,
    SoakResult,
    SyncWorkload,
    airflow_tries,
    run_soak,
)

pytestmark = pytest.mark.integration


def _assert_nothing_lost_nothing_twice(result: SoakResult) -> None:
    broken = [f"{row.workload}: {v}" for row in result.rows for v in row.violations]
    assert not broken, "\n".join(broken)
    total = result.total()
    assert total.lost == 0, result.table()
    assert total.duplicates == 0, result.table()
    # Every fault the sandbox counted hit one of the workloads, and every kind was injected.
    assert sum((row.faults for row in result.rows), Counter()) == result.sandbox_faults
    assert all(result.sandbox_faults[kind] > 0 for kind in FAULTS), result.sandbox_faults
    # The no-replay check had something to bite on: ambiguous faults met the non-idempotent writes.
    writes = [row for row in result.rows if row.workload != SyncWorkload.name]
    assert sum(row.ambiguous for row in writes) > 0
    assert all(row.unknown >= row.ambiguous for row in writes)


def _report(result: SoakResult, name: str) -> str:
    text = f"{result.summary()}\n\n{result.table()}\n"
    write_artifact(name, text)
    return text


def test_short_fault_soak_loses_nothing_and_does_nothing_twice(
    soak_sandbox: Any, soak_config: SoakConfig
) -> None:
    result = run_soak(soak_sandbox, soak_config)

    print(_report(result, "soak_short.md"))  # shown with -s, or when the test fails
    _assert_nothing_lost_nothing_twice(result)
    assert result.total().records == 300 + 4 * 60


@pytest.mark.soak
def test_long_fault_soak_loses_nothing_and_does_nothing_twice(
    soak_sandbox: Any, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if "soak" not in (request.config.getoption("markexpr") or ""):
        pytest.skip(
            "the long soak runs with -m soak (SOAK_SCALE=10 .venv/bin/pytest tests/reliability -m soak)"
        )
    config = SoakConfig(scale=int(os.environ.get("SOAK_SCALE", "10")))

    result = run_soak(soak_sandbox, config)

    text = _report(result, f"soak_scale{config.scale}.md")
    with capsys.disabled():
        print(f"\n{text}")
    _assert_nothing_lost_nothing_twice(result)


# ---------------------------------------------------------------------------------------------------
# The two halves of Airflow's retry rule, each forced
# ---------------------------------------------------------------------------------------------------
def test_a_non_idempotent_batch_that_applied_nothing_is_retried_and_then_applies_each_record_once(
    soak_sandbox: Any,
) -> None:
    control = soak_sandbox.control
    holder = control.users(status="active")[0]["email"]
    records = [{"email": holder, "quantity": 3, "reason": f"retry-safe #{i}"} for i in range(6)]
    control.set_faults("prefinery", {"503": 1.0}, target="create_points")  # refused before acting
    made: list[Any] = []

    def make() -> Any:
        if made:  # the outage is over by the time Airflow retries
            control.set_faults("prefinery", {}, target="create_points")
        made.append(
            PrefineryCreatePointsOperator(
                task_id="p", records=records, prefinery_conn_id=CONN_IDS["prefinery"]
            )
        )
        return made[-1]

    tries = airflow_tries(make, 3)

    assert len(tries) == 2
    first = tries[0]
    assert isinstance(first.error, BatchFailedError) and not isinstance(first.error, AirflowFailException)
    assert first.report["counts"]["failed"] == 6 and first.report["counts"]["outcome_unknown"] == 0
    assert tries[1].error is None and tries[1].report["counts"]["succeeded"] == 6
    applied = Counter(p["reason"] for p in control.points() if str(p["reason"]).startswith("retry-safe"))
    assert applied == Counter({r["reason"]: 1 for r in records})


def test_a_non_idempotent_batch_with_an_unknown_outcome_is_not_retried_and_names_the_record(
    soak_sandbox: Any,
) -> None:
    control = soak_sandbox.control
    holder = control.users(status="active")[0]["email"]
    records = [{"email": holder, "quantity": 3, "reason": f"ambiguous #{i}"} for i in range(4)]
    control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_points")

    tries = airflow_tries(
        lambda: PrefineryCreatePointsOperator(
            task_id="p", records=records, prefinery_conn_id=CONN_IDS["prefinery"]
        ),
        3,
    )

    assert len(tries) == 1 and isinstance(tries[0].error, BatchFailedNoRetryError)
    failed = tries[0].report["failed"]
    assert sorted(e["record"]["reason"] for e in failed) == sorted(r["reason"] for r in records)
    assert all(e["outcome_unknown"] is True for e in failed)
    # Each was applied exactly once by the sandbox and sent exactly once by the provider.
    applied = Counter(p["reason"] for p in control.points() if str(p["reason"]).startswith("ambiguous"))
    assert applied == Counter({r["reason"]: 1 for r in records})
    assert control.count(endpoint="create_points") == len(records)


def test_a_failed_sync_is_retried_by_airflow_and_the_retry_creates_no_duplicate(soak_sandbox: Any) -> None:
    control = soak_sandbox.control
    members = sorted(control.mailchimp_members(status="subscribed"), key=lambda m: m["last_changed"])[-20:]
    # Every create attempt is applied (the first) and answered 500, replays included: each member fails
    # with outcome unknown. Airflow retries the task once the outage is over.
    control.set_faults("prefinery", {"500_after_write": 1.0}, target="create_user")
    made: list[Any] = []

    def make() -> Any:
        if made:
            control.set_faults("prefinery", {}, target="create_user")
        made.append(
            MailchimpToPrefineryOperator(
                task_id="sync",
                mailchimp_conn_id=CONN_IDS["mailchimp"],
                prefinery_conn_id=CONN_IDS["prefinery"],
                since=members[0]["last_changed"],
                before="2999-01-01T00:00:00+00:00",
                status_actions={"subscribed": "user"},
                index_variable=None,
                index_rebuild="lazy",
                progress_interval=0,
            )
        )
        return made[-1]

    tries = airflow_tries(make, 3)

    assert len(tries) == 2
    assert isinstance(tries[0].error, SyncFailedError) and tries[0].airflow_retries
    reported = {e["record"]["email"].lower() for e in tries[0].report["failed"]}
    assert reported == {m["email_address"].lower() for m in members}
    assert all(e["outcome_unknown"] for e in tries[0].report["failed"])
    # The retry's creates answer "duplicate user" (2310): the users are found, not created again.
    assert tries[1].error is None and tries[1].report["counts"]["unchanged"] == len(members)
    users = Counter(u["email"].lower() for u in control.users(beta_id=DEMO_BETA_ID))
    assert all(users[email] == 1 for email in reported)
    assert max(users.values()) == 1
