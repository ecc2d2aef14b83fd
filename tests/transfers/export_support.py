"""Helpers of the export tests: read an export back, the sandbox's own rows to compare it with, and a fault
on the Nth page of a listing."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID
from tests.scaling import set_prefinery_extra

# The state columns that are not output columns (the sandbox's own bookkeeping) or are renamed.
STATE_ONLY = {"profile", "responses"}
FAULT_PROBABILITY = 0.2
# A user as the API answers it, with the odd values the column table must handle.
USER: dict[str, Any] = {
    "id": 5001, "email": "ada@example.com", "status": "active", "invitation_code": None,
    "imported_at": None, "applied_at": "2025-01-02T03:04:05Z", "invited_at": "2025-01-03T00:00:00+01:00",
    "joined_at": "", "share_clicks_count": "12", "waitlist_position": None, "referred_by": 4999,
    "groups": "beta,vip", "created_at": "2025-01-01T00:00:00Z",
    "profile": {"first_name": "Ada", "country": "NL", "favourite": "teal", "score": 3},
    "responses": [{"question_id": 7, "answer": "yes"}],
}  # fmt: skip


def read_export(path: Path, file_format: str) -> list[dict[str, Any]]:
    """The rows of an export file, each as a dict, values in one canonical form: ints, text, None, and
    timestamps as the API's ``...Z`` text (CSV cells are typed back with the documented column types)."""
    if file_format == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if file_format == "csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return [_typed_csv_row(row) for row in csv.DictReader(fh)]
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    for row in rows:
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat().replace("+00:00", "Z")
            elif key in ("profile_extra", "responses") and value is not None:
                row[key] = json.loads(value)
    return rows


def _typed_csv_row(row: dict[str, str]) -> dict[str, Any]:
    from airflow_provider_prefinery.transfers.export_columns import RESOURCES

    types = {c.name: c.type for resource in RESOURCES.values() for c in resource.columns}
    out: dict[str, Any] = {}
    for key, text in row.items():
        kind = types[key]
        if text == "":
            out[key] = None
        elif kind == "integer":
            out[key] = int(text)
        elif kind == "json":
            out[key] = json.loads(text)
        else:
            out[key] = text
    return out


def state_rows(sbx: Any, resource: str, beta_id: int = DEMO_BETA_ID) -> dict[int, dict[str, Any]]:
    """The sandbox's own rows of ``resource`` in ``beta_id``, by id."""
    return {row["id"]: row for row in sbx.control.state(resource, beta_id=beta_id)}


def assert_matches_state(
    exported: list[dict[str, Any]], state: dict[int, dict[str, Any]], *, empty_is_null: bool = False
) -> None:
    """Every state row exported once, every shared field equal, each profile field in its column.

    ``empty_is_null``: CSV writes None and "" alike, as an empty cell.
    """
    assert sorted(row["id"] for row in exported) == sorted(state)

    def same(got: Any, want: Any) -> bool:
        return (got or None) == (want or None) if empty_is_null and want in ("", None) else got == want

    for row in exported:
        expected = state[row["id"]]
        for key, value in expected.items():
            if key not in STATE_ONLY:
                assert same(row[key], value), (row["id"], key, row[key], value)
        if "profile" in expected:
            for key, value in expected["profile"].items():
                assert same(row[f"profile_{key}"], value), (row["id"], key)
            assert row["responses"] == expected["responses"]


def seed_failing_at(page: int, probability: float = FAULT_PROBABILITY) -> int:
    """A fault seed whose draws spare pages 1..page-1 and hit ``page``: the sandbox draws one uniform
    number per request of a faulty endpoint and injects the fault when it is below ``probability``."""
    for seed in range(10_000):
        rng = random.Random(seed)
        draws = [rng.random() for _ in range(page)]
        if all(d >= probability for d in draws[:-1]) and draws[-1] < probability:
            return seed
    raise AssertionError(f"no seed fails first at page {page}")


def fail_listing_at_page(sbx: Any, monkeypatch: pytest.MonkeyPatch, endpoint: str, page: int) -> None:
    """Make the ``page``-th request of ``endpoint`` answer 500 with no retry left (pages before it pass)."""
    set_prefinery_extra(monkeypatch, max_retries=0)
    sbx.control.configure(fault_seed=seed_failing_at(page))
    sbx.control.set_faults("prefinery", {"500": FAULT_PROBABILITY}, target=endpoint)


def heal(sbx: Any) -> None:
    """No more faults (the scale and limits stay)."""
    sbx.control.set_faults("prefinery", {"500": 0.0}, target="*")
    for endpoint in ("list_users", "list_rewards", "list_points", "list_suppressions"):
        sbx.control.set_faults("prefinery", {"500": 0.0}, target=endpoint)


def statuses_of(sbx: Any, endpoint: str) -> list[int]:
    return [r["status"] for r in sbx.control.requests(api="prefinery", endpoint=endpoint)]
