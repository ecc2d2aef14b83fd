"""PrefineryToSqlOperator against the sandbox over real HTTP, into real databases through their Airflow
providers: SQLite (a file) and PostgreSQL (Debian's server, started for the session). Every resource read
back and compared with the sandbox's own rows; upsert by id on a second run; a fault on page 8 leaves only
whole batches; a database error inside a batch rolls that batch back; bad input fails before any request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryServerError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.sandbox.seeds import DEMO_FIRST_USER_ID, DEMO_USER_COUNT
from airflow_provider_prefinery.transfers.export_columns import RESOURCES
from airflow_provider_prefinery.transfers.prefinery_to_sql import PrefineryToSqlOperator, sql_table
from tests.services.fixtures import postgres_server  # noqa: F401 - the session's PostgreSQL server
from tests.transfers.export_support import (
    assert_matches_state,
    fail_listing_at_page,
    heal,
    state_rows,
    statuses_of,
)
from tests.transfers.sql_databases import Database, postgres_database, sqlite_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    """Each test runs on both databases."""
    if request.param == "postgres":
        yield from postgres_database(request.getfixturevalue("postgres_server"), monkeypatch)
    else:
        yield from sqlite_database(tmp_path, monkeypatch)


def export(database: Database, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("resource", "users")
    op = PrefineryToSqlOperator(task_id="export", sql_conn_id=database.conn_id, progress_interval=0, **kwargs)
    return op.execute({})


def canonical(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from the database in the form the sandbox's state has: ``...Z`` timestamps, JSON."""
    out = dict(row)
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        elif isinstance(value, str) and key.endswith("_at"):
            out[key] = (
                datetime.fromisoformat(value).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
            )
        elif key in ("profile_extra", "responses") and value is not None:
            out[key] = json.loads(value)
    return out


def table_rows(database: Database, table: str) -> list[dict[str, Any]]:
    return [canonical(row) for row in database.rows(f"SELECT * FROM {table} ORDER BY id")]


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_each_resource_lands_in_its_table_as_the_sandbox_holds_it(
    sbx: Any, database: Database, resource: str
) -> None:
    summary = export(database, resource=resource, batch_size=100)

    state = state_rows(sbx, resource)
    rows = table_rows(database, f"prefinery_{resource}")
    assert_matches_state(rows, state)
    assert list(rows[0]) == list(RESOURCES[resource].column_names)
    assert summary["table"] == f"prefinery_{resource}" and summary["created_table"] is True
    assert summary["rows"] == len(state) and summary["batches"] == -(-len(state) // 100)
    assert summary["requests"] == len(statuses_of(sbx, f"list_{resource}"))


def test_a_second_run_upserts_by_id(sbx: Any, database: Database) -> None:
    export(database)
    hook = PrefineryHook()
    hook.update_user(DEMO_FIRST_USER_ID, profile={"first_name": "Renamed"})
    new = hook.create_user("late.signup@example.org", profile={"first_name": "Late"})

    summary = export(database)

    rows = {row["id"]: row for row in table_rows(database, "prefinery_users")}
    assert len(rows) == DEMO_USER_COUNT + 1 and summary["created_table"] is False
    assert rows[DEMO_FIRST_USER_ID]["profile_first_name"] == "Renamed"
    assert rows[new["id"]]["email"] == "late.signup@example.org"
    assert_matches_state(list(rows.values()), state_rows(sbx, "users"))


def test_a_fault_on_page_8_leaves_only_whole_batches_and_the_retry_completes(
    sbx: Any, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_listing_at_page(sbx, monkeypatch, "list_users", page=8)

    with pytest.raises(PrefineryServerError):
        export(database, batch_size=50)

    assert statuses_of(sbx, "list_users") == [200] * 7 + [500]  # 175 users read, then the fault
    ids = [row["id"] for row in database.rows("SELECT id FROM prefinery_users ORDER BY id")]
    assert ids == sorted(state_rows(sbx, "users"))[:150]  # three whole batches, not the 25 rows after them

    heal(sbx)
    summary = export(database, batch_size=50)  # the task's retry

    assert summary["rows"] == DEMO_USER_COUNT
    assert_matches_state(table_rows(database, "prefinery_users"), state_rows(sbx, "users"))


def test_a_database_error_inside_a_batch_rolls_that_batch_back(sbx: Any, database: Database) -> None:
    import sqlalchemy as sa

    # The table as the operator would create it, plus a rule that the 71st user breaks (in batch 2 of 50).
    table = sql_table(RESOURCES["users"], "prefinery_users", None)
    table.append_constraint(sa.CheckConstraint(f"id <> {DEMO_FIRST_USER_ID + 70}", name="no_71st"))
    database.create(table)

    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        export(database, batch_size=50)

    ids = [row["id"] for row in database.rows("SELECT id FROM prefinery_users ORDER BY id")]
    assert ids == list(range(DEMO_FIRST_USER_ID, DEMO_FIRST_USER_ID + 50))  # batch 1 whole, batch 2 none


def test_an_existing_table_without_the_mapped_columns_is_refused_before_any_request(
    sbx: Any, database: Database
) -> None:
    database.execute("CREATE TABLE prefinery_rewards (id BIGINT PRIMARY KEY, status TEXT)")

    with pytest.raises(PrefineryInputError, match="lacks the columns beta_id, user_id, descriptor") as caught:
        export(database, resource="rewards")

    assert caught.value.field == "table"
    assert sbx.control.count(api="prefinery") == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"table": "users; DROP TABLE x"}, "table"),
        ({"table": "a.b.c"}, "table"),
        ({"resource": "referrals"}, "resource"),
        ({"filters": {"email_is": "a@b.co"}}, "filters.email_is"),
    ],
)
def test_bad_input_fails_naming_the_field_before_any_request(
    sbx: Any, database: Database, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(PrefineryInputError) as caught:
        export(database, **kwargs)

    assert caught.value.field == field
    assert sbx.control.count(api="prefinery") == 0


def test_a_connection_without_a_sql_hook_is_refused_naming_sql_conn_id(sbx: Any) -> None:
    op = PrefineryToSqlOperator(task_id="export", resource="users", sql_conn_id="prefinery_default")

    with pytest.raises(PrefineryInputError, match="not a DbApiHook") as caught:
        op.execute({})

    assert caught.value.field == "sql_conn_id"
    assert sbx.control.count(api="prefinery") == 0
