"""The pieces of ``make demo`` (the whole demo takes about a minute: set PREFINERY_DEMO_SMOKE=1 to run it)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_prefinery import demo

REPORT = {
    "counts": {"created": 5, "updated": 2, "suppressed": 3, "unchanged": 1, "skipped": 0, "failed": 0},
    "requests": {"prefinery": 10, "mailchimp": 1,
                 "by_kind": {"create_user": 5, "update_user": 2, "create_suppression": 3, "list_members": 1}},
    "window": {"since": "2026-01-05T04:00:00+00:00", "before": "2026-01-05T05:00:00+00:00"},
    "seconds": 0.12,
}  # fmt: skip


def test_demo_finds_the_example_dag_and_gives_airflow_a_home_with_only_that_dag(tmp_path: Path) -> None:
    dag_file = demo.find_dag_file()
    assert dag_file.name == "mailchimp_to_prefinery.py" and dag_file.parent.name == "dags_examples"
    home, dags = demo.prepare_home(tmp_path, dag_file)
    assert home.is_dir()
    assert [p.name for p in dags.iterdir()] == ["mailchimp_to_prefinery.py"]


def test_missing_example_dag_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(demo.DemoError, match="run the demo from a clone"):
        demo.find_dag_file(tmp_path / "x" / "demo.py")


def test_airflow_env_is_throw_away_and_carries_the_sandbox_connections(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")  # the user's own settings stay out
    env = demo.airflow_env(tmp_path / "home", tmp_path / "dags", {"AIRFLOW_CONN_X": "{}"})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'home' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_CONN_X"] == "{}"
    assert "AIRFLOW__CORE__EXECUTOR" not in env


def test_the_report_is_read_from_airflows_xcom_table(tmp_path: Path) -> None:
    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE xcom (dag_id, task_id, key, value, timestamp)")
        rows = [({"counts": {"created": 1}}, "2026-01-01"), (REPORT, "2026-01-02")]
        for value, stamp in rows:
            conn.execute("INSERT INTO xcom VALUES (?, ?, 'return_value', ?, ?)",
                         (demo.DAG_ID, demo.TASK_ID, json.dumps(json.dumps(value)), stamp))  # fmt: skip
    assert demo.latest_report(db) == REPORT
    with pytest.raises(demo.DemoError, match="no report"):
        demo.latest_report(db, dag_id="other")


def test_summary_is_short_and_says_what_changed_and_what_it_cost() -> None:
    lines = demo.format_summary("Run 2: the next hour", REPORT, 13.4)
    assert lines == [
        "Run 2: the next hour  [2026-01-05 04:00 UTC -> 2026-01-05 05:00 UTC)",
        "  created 5, updated 2, suppressed 3, unchanged 1, skipped 0",
        "  requests: Prefinery 10 (10 writes; 1.00 per changed member), Mailchimp 1",
        "  time: 0.1 s in the task, 13 s with Airflow's start-up",
    ]


def test_summary_names_the_index_build_and_failures() -> None:
    report = json.loads(json.dumps(REPORT))
    report["counts"]["failed"] = 2
    report["requests"]["by_kind"]["index_listing"] = 15
    report["requests"]["prefinery"] = 25
    report["window"]["since"] = "1970-01-01T00:00:00+00:00"
    lines = demo.format_summary("Run 1", report, 20)
    assert lines[0].startswith("Run 1  [the beginning -> ")
    assert lines[1].endswith(", FAILED 2")
    assert "10 writes + 15 to build the id index; 2.50 per changed member" in lines[2]


@pytest.mark.integration
def test_audience_activity_lands_in_the_sandbox_at_the_given_time(sandbox) -> None:
    at = datetime(2030, 1, 1, 12, 30, tzinfo=timezone.utc)
    done = demo.change_audience(sandbox.control, at)
    changed = sandbox.control.mailchimp_members(last_changed="2030-01-01T12:30:00+00:00")
    assert len(changed) == sum(done.values()) == 10
    statuses = sorted(m["status"] for m in changed)
    assert statuses.count("unsubscribed") == 2 and statuses.count("cleaned") == 1
    assert statuses.count("subscribed") == 7


@pytest.mark.skipif(
    not os.environ.get("PREFINERY_DEMO_SMOKE"), reason="about a minute: PREFINERY_DEMO_SMOKE=1"
)
def test_the_demo_runs_end_to_end_and_leaves_nothing_running() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_prefinery.demo"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Run 3: the same hour again" in out and "requests: Prefinery 0 (0 writes)" in out
    assert "Sandbox stopped." in out
