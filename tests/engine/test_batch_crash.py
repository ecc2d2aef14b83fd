"""A non-idempotent batch SIGKILLed mid-way under the real task runner, then retried by Airflow: every record
is applied exactly once or named ``outcome_unknown``, none twice, none lost (points and Piggy runs).

The sandbox's state is the truth about what was applied (each record carries a unique tag); the retry's
checkpoint (read through the REST API, as the UI shows it) says what each record ended as. The figures are
printed (``-s``) and kept in ``artifacts/engine/batch_crash.json`` for the README's reliability table.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.batch.checkpoint import decode_marks
from airflow_provider_prefinery.operators.base import CHECKPOINT_KEY
from tests.engine.deployment import Engine
from tests.engine.fixtures import ARTIFACTS, deployment, sandbox_connections

RECORDS = 600
LATENCY_MS = 100  # per write: 4 at a time, about 40 records a second, so the batch lasts ~15 s
KILL_AFTER = 200  # writes the sandbox has seen when the first try is killed
MAX_CONCURRENCY = 4  # the operators' default


@pytest.fixture(scope="module")
def engine(
    request: pytest.FixtureRequest, engine_dags: Callable[..., Path], prefinery_sandbox: Any
) -> Iterator[Engine]:
    folder = engine_dags("batch_crash.py")
    yield from deployment(request, folder, connections=sandbox_connections(prefinery_sandbox))


def _kill_mid_batch_and_retry(engine: Engine, sbx: Any, dag_id: str, task_id: str, endpoint: str,
                              records: list[dict[str, Any]]) -> tuple[list[str], str, int]:  # fmt: skip
    """Run the batch, SIGKILL its first try after KILL_AFTER writes, let Airflow retry it; return the
    states of the tries, the final checkpoint's marks and the writes seen at the kill."""
    engine.api.set_paused(dag_id, False)
    run_id = engine.trigger(dag_id, conf={"records": records})
    process = engine.task_process(dag_id, run_id, task_id, timeout=120)
    engine.wait_until(
        lambda: sbx.control.count(endpoint=endpoint) >= KILL_AFTER, what=f"{KILL_AFTER} writes", timeout=120
    )
    process.kill()  # SIGKILL: no finally, no last checkpoint, no report
    at_kill = sbx.control.count(endpoint=endpoint)
    assert at_kill < len(records), "the batch ended before the kill: nothing was proven"
    engine.wait_for_run(dag_id, run_id, expect=None, allow_retries=True, timeout=300)
    tries = [t["state"] for t in engine.api.tries(dag_id, run_id, task_id)]
    (state,) = [s for s in engine.api.task_state(dag_id, run_id, task_id) if s["key"] == CHECKPOINT_KEY]
    return tries, decode_marks(state["value"]["marks"]), at_kill


def _figures(name: str, marks: str, applied: Counter[int], requests: int, at_kill: int) -> dict[str, Any]:
    unknown = {i for i, mark in enumerate(marks) if mark == "?"}
    figures = {
        "workload": name,
        "records": len(marks),
        "writes_at_kill": at_kill,
        "applied_once": sum(1 for i in range(len(marks)) if applied[i] == 1),
        "outcome_unknown": len(unknown),
        "outcome_unknown_applied": sum(1 for i in unknown if applied[i]),
        "duplicates": sum(count - 1 for count in applied.values() if count > 1),
        "lost": sum(1 for i in range(len(marks)) if not applied[i] and i not in unknown),
        "requests": requests,
    }
    print(f"\n{json.dumps(figures)}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "batch_crash.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**kept, name: figures}, indent=2))
    return figures


def _check(figures: dict[str, Any], marks: str, applied: Counter[int], tries: list[str]) -> None:
    assert figures["duplicates"] == 0, figures
    assert figures["lost"] == 0, figures
    assert set(marks) <= {"s", "?"}, "every record is done or named outcome_unknown"
    assert all(applied[i] == 1 for i, mark in enumerate(marks) if mark == "s")
    assert figures["applied_once"] + figures["outcome_unknown"] - figures["outcome_unknown_applied"] == len(
        marks
    )
    # No fault: each request applied one record once, but the kill may cut the 4 in flight before the server
    # applied them (a dropped connection): those are among the outcome_unknown records.
    assert sum(applied.values()) <= figures["requests"] <= sum(applied.values()) + MAX_CONCURRENCY
    assert tries[0] == "failed" and len(tries) == 2  # the killed try, then Airflow's retry
    assert tries[1] == ("success" if figures["outcome_unknown"] == 0 else "failed")  # unknowns fail it


def test_a_points_batch_killed_mid_way_is_applied_once_on_the_retry(engine: Engine, sbx: Any) -> None:
    users = sbx.control.users(status="active")
    records = [
        {"email": users[i % len(users)]["email"], "quantity": 1, "reason": f"crash-{i}"}
        for i in range(RECORDS)
    ]
    sbx.control.set_latency("prefinery", LATENCY_MS, target="create_points")

    tries, marks, at_kill = _kill_mid_batch_and_retry(
        engine, sbx, "engine_points_crash", "points", "create_points", records
    )

    applied = Counter(
        int(p["reason"].split("-")[1])
        for p in sbx.control.points()
        if str(p.get("reason")).startswith("crash-")
    )
    figures = _figures("create_points", marks, applied, sbx.control.count(endpoint="create_points"), at_kill)
    _check(figures, marks, applied, tries)


def test_a_piggy_batch_killed_mid_way_is_applied_once_on_the_retry(engine: Engine, sbx: Any) -> None:
    contacts = sbx.control.piggy_contacts()
    records = [
        {"contact_uuid": contacts[i % len(contacts)]["uuid"], "data": {"n": str(i)}} for i in range(RECORDS)
    ]
    sbx.control.set_latency("piggy", LATENCY_MS, target="create_automation_run")

    tries, marks, at_kill = _kill_mid_batch_and_retry(
        engine, sbx, "engine_piggy_crash", "runs", "create_automation_run", records
    )

    applied = Counter(
        int(run["data"]["n"]) for run in sbx.control.piggy_runs() if "n" in (run.get("data") or {})
    )
    figures = _figures(
        "piggy automation runs", marks, applied, sbx.control.count(endpoint="create_automation_run"), at_kill
    )
    _check(figures, marks, applied, tries)
