"""The export column table (no server): rows from API objects, the filters read from the hook, type checks."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryInputError
from airflow_provider_prefinery.transfers.export_columns import RESOURCES, check_filters, resource_of
from airflow_provider_prefinery.validation import PROFILE_FIELDS
from tests.transfers.export_support import USER


def as_dict(resource: str, record: dict[str, Any], beta_id: int = 1001) -> dict[str, Any]:
    spec = RESOURCES[resource]
    return dict(zip(spec.column_names, spec.row(record, beta_id), strict=True))


def test_a_user_row_flattens_the_profile_and_keeps_the_rest_as_json() -> None:
    row = as_dict("users", USER)

    assert row["id"] == 5001 and row["beta_id"] == 1001 and row["referred_by"] == 4999
    assert row["share_clicks_count"] == 12  # digits from the API become an integer
    assert row["profile_first_name"] == "Ada" and row["profile_country"] == "NL"
    assert row["profile_last_name"] is None  # a documented field the user has not filled
    assert row["profile_extra"] == {"favourite": "teal", "score": 3}
    assert row["responses"] == [{"question_id": 7, "answer": "yes"}]
    assert row["applied_at"] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert row["invited_at"] == datetime(2025, 1, 2, 23, 0, tzinfo=timezone.utc)  # normalised to UTC
    assert row["joined_at"] is None  # an empty timestamp is no timestamp
    assert row["friend_invitations_remaining"] is None  # absent from the answer


def test_every_documented_profile_field_has_its_column() -> None:
    names = RESOURCES["users"].column_names
    assert [n for n in names if n.startswith("profile_") and n != "profile_extra"] == [
        f"profile_{f}" for f in PROFILE_FIELDS
    ]
    assert all(spec.columns[0].name == "id" for spec in RESOURCES.values())
    assert all(len(set(spec.column_names)) == len(spec.column_names) for spec in RESOURCES.values())


def test_filters_are_the_hooks_list_keywords() -> None:
    assert RESOURCES["users"].filters == (
        "email",
        "email_contains",
        "name",
        "referral_code",
        "custom_vars",
        "status",
    )
    assert RESOURCES["rewards"].filters == ("email", "status")
    assert RESOURCES["points"].filters == ("email",)
    assert RESOURCES["suppressions"].filters == ("email",)


@pytest.mark.parametrize(
    ("record", "column"),
    [({"id": 1, "quantity": "many"}, "quantity"), ({"id": 2, "created_at": "yesterday"}, "created_at")],
)
def test_a_value_that_does_not_fit_its_column_fails_naming_it(record: dict[str, Any], column: str) -> None:
    with pytest.raises(PrefineryError, match=rf"column '{column}'.*record id {record['id']}"):
        RESOURCES["points"].row(record, 1001)


def test_unknown_resource_and_filters_name_the_field_and_the_allowed_values() -> None:
    with pytest.raises(PrefineryInputError, match="allowed: users, rewards, points, suppressions") as caught:
        resource_of("testers")
    assert caught.value.field == "resource"
    with pytest.raises(PrefineryInputError, match=r"allowed: email, status") as caught:
        check_filters(RESOURCES["rewards"], {"status": "earned", "user_id": 3})
    assert caught.value.field == "filters.user_id"
    assert check_filters(RESOURCES["rewards"], {"status": "earned", "email": None}) == {"status": "earned"}


def test_the_readme_lists_every_column_in_order_with_its_type() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Exports", 1)[1].split("\n## ", 1)[0]
    short = {"integer": "int", "text": "text", "timestamp": "ts", "json": "json"}
    for name, spec in RESOURCES.items():
        (line,) = [row for row in section.splitlines() if row.startswith(f"| {name} |")]
        listed = re.findall(r"`(\w+)` (int|text|ts|json)", line)
        documented = [(c.name, short[c.type]) for c in spec.columns if not c.name.startswith("profile_")]
        assert [item for item in listed if not item[0].startswith("profile_")] == documented, name
        if name == "users":
            assert ("profile_extra", "json") in listed and "validation.PROFILE_FIELDS" in line
