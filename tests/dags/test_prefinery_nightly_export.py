"""The nightly export DAG, run by real Airflow (``dag.test()`` on SQLite) against the sandbox: the Parquet
files of the night hold every user and reward, the warehouse tables are loaded, and the leaderboard the SQL
step computes is the one the sandbox's own data gives."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.dag]

DAG_ID = "prefinery_nightly_export"
NIGHT = datetime(2025, 1, 31, 2, 0, tzinfo=timezone.utc)
PLACES = 5


def expected_leaderboard(control: Any, places: int) -> list[tuple[Any, ...]]:
    """Top referrers per project with SQL's RANK (ties share a place), from the sandbox's state."""
    users = {u["id"]: u for u in control.users()}
    referrals = Counter(u["referred_by"] for u in users.values() if u["referred_by"] is not None)
    held = Counter(r["user_id"] for r in control.rewards() if r["status"] in ("earned", "delivered"))
    rows = []
    for uid, count in referrals.items():
        beta_id = users[uid]["beta_id"]
        place = 1 + sum(
            1 for other, n in referrals.items() if n > count and users[other]["beta_id"] == beta_id
        )
        if place <= places:
            rows.append(("2025-01-31", beta_id, place, uid, users[uid]["email"], count, held[uid]))
    return sorted(rows)


def asset_event_extras(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
        ).all()
        return [dict(event.extra) for event in events]


def test_nightly_export_writes_the_files_loads_the_warehouse_and_ranks_the_referrers(
    sbx: Any, run_dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    warehouse = tmp_path / "warehouse.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_PREFINERY_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)})
    )
    root = tmp_path / "exports"
    conf = {"export_root": f"file://{root}", "leaderboard_size": PLACES}

    run = run_dag(DAG_ID, logical_date=NIGHT, run_conf=conf)

    assert run.state == "success"
    control = sbx.control
    users, rewards = control.users(), control.rewards()
    night = root / "2025-01-31"
    assert sorted(p.name for p in night.iterdir()) == ["rewards.parquet", "users.parquet"]
    assert sorted(pq.read_table(night / "users.parquet").column("id").to_pylist()) == sorted(
        u["id"] for u in users
    )
    assert pq.read_table(night / "rewards.parquet").num_rows == len(rewards)
    (users_event,) = asset_event_extras("x-prefinery-export://users/parquet")
    assert users_event["path"] == f"file://{night}/users.parquet" and users_event["rows"] == len(users)

    with sqlite3.connect(warehouse) as db:
        assert db.execute("SELECT COUNT(*) FROM prefinery_users").fetchone()[0] == len(users)
        assert db.execute("SELECT COUNT(*) FROM prefinery_rewards").fetchone()[0] == len(rewards)
        board = db.execute(
            "SELECT snapshot_date, beta_id, place, user_id, email, referrals, rewards"
            " FROM prefinery_referral_leaderboard ORDER BY beta_id, place, user_id"
        ).fetchall()
    expected = expected_leaderboard(control, PLACES)
    assert expected and sorted(board) == expected
    assert any(row[6] > 0 for row in expected)  # the rewards join has something to count
