"""PrefineryToObjectStorageOperator against the sandbox over real HTTP, writing real files through Airflow's
ObjectStoragePath (``file://``): every format read back and compared with the sandbox's own rows, a fault
on page 5 that leaves no output (and the previous file intact), a retry that then succeeds, bad input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryServerError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.sandbox.seeds import DEMO_USER_COUNT
from airflow_provider_prefinery.transfers.export_columns import RESOURCES
from airflow_provider_prefinery.transfers.prefinery_to_object_storage import (
    PrefineryToObjectStorageOperator,
    temporary_beside,
)
from tests.transfers.export_support import (
    assert_matches_state,
    fail_listing_at_page,
    heal,
    read_export,
    state_rows,
    statuses_of,
)

pytestmark = pytest.mark.integration

FORMATS = ("jsonl", "csv", "parquet")


def export(path: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("resource", "users")
    op = PrefineryToObjectStorageOperator(task_id="export", path=path, progress_interval=0, **kwargs)
    return op.execute({})


def columns_of(path: Path, file_format: str) -> list[str]:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path).names
    first = path.read_text(encoding="utf-8").splitlines()[0]
    return first.split(",") if file_format == "csv" else list(__import__("json").loads(first))


@pytest.mark.parametrize("file_format", FORMATS)
def test_each_format_holds_every_user_in_the_documented_columns(
    sbx: Any, tmp_path: Path, file_format: str
) -> None:
    target = tmp_path / "2025-01-31" / f"users.{file_format}"

    summary = export(f"file://{target}")

    rows = read_export(target, file_format)
    assert_matches_state(rows, state_rows(sbx, "users"), empty_is_null=file_format == "csv")
    assert columns_of(target, file_format) == list(RESOURCES["users"].column_names)
    pages = -(-DEMO_USER_COUNT // 25)
    assert summary == {
        "resource": "users", "beta_id": sbx.beta_id, "filters": {}, "file_format": file_format,
        "path": f"file://{target}", "rows": DEMO_USER_COUNT, "bytes": target.stat().st_size,
        "requests": pages, "retries": 0, "seconds": summary["seconds"],
    }  # fmt: skip
    assert statuses_of(sbx, "list_users") == [200] * pages
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary left


@pytest.mark.parametrize(
    ("resource", "filters", "expected"),
    [
        ("rewards", {"status": "earned"}, lambda r: r["status"] == "earned"),
        ("points", None, lambda r: True),
        ("suppressions", None, lambda r: True),
        ("users", {"status": ["active", "idle"]}, lambda r: r["status"] in ("active", "idle")),
    ],
    ids=["rewards-earned", "points", "suppressions", "users-active-idle"],
)
def test_each_resource_exports_with_its_filters(
    sbx: Any, tmp_path: Path, resource: str, filters: Any, expected: Any
) -> None:
    target = tmp_path / f"{resource}.jsonl"

    summary = export(f"file://{target}", resource=resource, filters=filters)

    wanted = {i: row for i, row in state_rows(sbx, resource).items() if expected(row)}
    rows = read_export(target, "jsonl")
    assert wanted and summary["rows"] == len(wanted) == len(rows)
    assert_matches_state(rows, wanted)
    assert list(rows[0]) == list(RESOURCES[resource].column_names)


def test_profile_keys_beyond_the_documented_fields_land_in_profile_extra(sbx: Any, tmp_path: Path) -> None:
    email = "teal.lover@example.org"
    PrefineryHook().create_user(email, profile={"first_name": "Tess", "favourite_colour": "teal"})
    target = tmp_path / "one.parquet"

    export(f"file://{target}", filters={"email": email})

    (row,) = read_export(target, "parquet")
    assert row["profile_first_name"] == "Tess"
    assert row["profile_extra"] == {"favourite_colour": "teal"}
    assert row["responses"] == []


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("previous", [False, True], ids=["no-previous-file", "previous-file-kept"])
def test_a_fault_on_page_5_leaves_no_output_and_a_retry_then_succeeds(
    sbx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str, previous: bool
) -> None:
    target = tmp_path / f"users.{file_format}"
    if previous:
        target.write_bytes(b"yesterday's complete export")
    fail_listing_at_page(sbx, monkeypatch, "list_users", page=5)

    with pytest.raises(PrefineryServerError):
        export(f"file://{target}")

    assert statuses_of(sbx, "list_users") == [200, 200, 200, 200, 500]  # it failed mid-export
    assert sorted(tmp_path.iterdir()) == ([target] if previous else [])  # no half file, no temporary
    if previous:
        assert target.read_bytes() == b"yesterday's complete export"

    heal(sbx)
    summary = export(f"file://{target}")  # the task's retry

    assert summary["rows"] == DEMO_USER_COUNT
    assert_matches_state(read_export(target, file_format), state_rows(sbx, "users"), empty_is_null=True)
    assert sorted(tmp_path.iterdir()) == [target]


def test_the_temporary_is_hidden_beside_the_target() -> None:
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath("s3://bucket/exports/2025-01-31/users.parquet")
    first, second = temporary_beside(target), temporary_beside(target)

    assert first.parent == target.parent and first != second
    assert first.name.startswith(".users.parquet.") and first.name.endswith(".tmp")


def test_the_path_is_templated_and_outlets_carry_the_summary(sbx: Any, tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors

    asset = Asset("file:///exports/users")
    op = PrefineryToObjectStorageOperator(
        task_id="export", resource="users", path=f"file://{tmp_path}/{{{{ ds }}}}/users.csv", outlets=[asset]
    )
    context: dict[str, Any] = {"ds": "2025-01-31", "outlet_events": OutletEventAccessors()}
    op.render_template_fields(context)

    summary = op.execute(context)  # type: ignore[arg-type]

    assert summary["path"] == f"file://{tmp_path}/2025-01-31/users.csv"
    assert (tmp_path / "2025-01-31" / "users.csv").is_file()
    assert context["outlet_events"][asset].extra == summary


BAD_INPUT = [
    ({"resource": "testers"}, "resource", ("users", "rewards", "points", "suppressions")),
    ({"file_format": "xlsx"}, "file_format", ("jsonl", "csv", "parquet")),
    ({"resource": "points", "filters": {"status": "earned"}}, "filters.status", ("email",)),
    ({"filters": {"referrer": "ABC"}}, "filters.referrer", ("email", "email_contains", "name")),
    ({"filters": "status=active"}, "filters", None),
    ({"filters": {"name": ["Ada", "Bram"]}}, "filters.name", None),
    ({"batch_size": 0}, "batch_size", None),
]


@pytest.mark.parametrize(("kwargs", "field", "allowed"), BAD_INPUT, ids=[c[1] for c in BAD_INPUT])
def test_bad_input_fails_at_construction_naming_the_field(
    sbx: Any, tmp_path: Path, kwargs: dict[str, Any], field: str, allowed: Any
) -> None:
    with pytest.raises(PrefineryInputError) as caught:
        export(f"file://{tmp_path}/x.csv", **kwargs)

    assert caught.value.field == field
    for value in allowed or ():
        assert value in str(caught.value)
    assert sbx.control.count(api="prefinery") == 0


RENDERED_BAD_INPUT = [
    ({"path": "exports/users.csv"}, "path"),
    ({"path": "file:///tmp/prefinery-exports/"}, "path"),
    ({"path": "file:///tmp/users.xlsx"}, "file_format"),
    ({"resource": "{{ 'testers' }}"}, "resource"),
    ({"filters": {"email": "not-an-address"}}, "email"),
    ({"filters": {"status": "gone"}}, "status"),
    ({"resource": "rewards", "filters": {"status": "pending"}}, "status"),
]


@pytest.mark.parametrize(("kwargs", "field"), RENDERED_BAD_INPUT, ids=[str(c[0]) for c in RENDERED_BAD_INPUT])
def test_bad_rendered_input_fails_in_execute_before_any_request(
    sbx: Any, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    kwargs = {"resource": "users", "path": f"file://{tmp_path}/users.csv", **kwargs}
    op = PrefineryToObjectStorageOperator(task_id="export", **kwargs)
    op.render_template_fields({})

    with pytest.raises(PrefineryInputError) as caught:
        op.execute({})

    assert caught.value.field == field
    assert sbx.control.count(api="prefinery") == 0
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_pyarrow_names_the_extra_to_install(
    sbx: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what importing finds when it is not installed

    with pytest.raises(PrefineryInputError, match=r"airflow-provider-prefinery\[parquet\]") as caught:
        export(f"file://{tmp_path}/users.parquet")  # the format read from the extension

    assert caught.value.field == "file_format"
    with pytest.raises(PrefineryInputError, match=r"\[parquet\]"):
        PrefineryToObjectStorageOperator(
            task_id="t", resource="users", path="file:///x.pq", file_format="parquet"
        )
    assert sbx.control.count(api="prefinery") == 0
