"""Waiting for DAG runs, and failure reports that say what happened: every task's state and the failing
task's log, so a red engine test reads like the Airflow UI's grid view, not like a timeout."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.engine.rest import AirflowApi, ApiError

TERMINAL_RUN_STATES = {"success", "failed"}
FAILED_TASK_STATES = {"failed", "up_for_retry", "upstream_failed"}
LOG_TAIL_LINES = 40
TAILED_TASKS = 3  # logs of at most this many unfinished tasks go into a report


class RunFailed(AssertionError):
    """A run ended in another state than expected, a task failed a try, or the wait timed out."""


@dataclass
class RunResult:
    """A finished run: its JSON, its task instances, and every state each task was seen in while waiting."""

    dag_id: str
    run_id: str
    run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    seen: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return str(self.run["state"])

    def states(self) -> dict[tuple[str, int], str]:
        """``{(task_id, map_index): state}`` of every task instance."""
        return {(ti["task_id"], ti["map_index"]): str(ti["state"]) for ti in self.task_instances}

    def ti(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        for ti in self.task_instances:
            if ti["task_id"] == task_id and ti["map_index"] == map_index:
                return ti
        raise KeyError(f"{task_id}[{map_index}] not in run {self.run_id}: {sorted(self.states())}")

    def mapped(self, task_id: str) -> list[dict[str, Any]]:
        """The mapped instances of ``task_id``, by map index."""
        found = [ti for ti in self.task_instances if ti["task_id"] == task_id and ti["map_index"] >= 0]
        return sorted(found, key=lambda ti: ti["map_index"])


def wait_for_run(
    api: AirflowApi,
    dag_id: str,
    run_id: str,
    *,
    timeout: float = 180.0,
    expect: str | None = "success",
    allow_retries: bool = False,
    interval: float = 0.5,
) -> RunResult:
    """Poll until the run is ``success`` or ``failed``; raise :class:`RunFailed` with a report when it ends
    otherwise than ``expect`` (None: any end), times out, or, unless ``allow_retries``, a task fails a try
    (a retry against a clean sandbox is a bug to report now, not after the DAG's retry delays)."""
    seen: dict[tuple[str, int], list[str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        run = api.run(dag_id, run_id)
        tis = api.task_instances(dag_id, run_id)
        for ti in tis:
            states = seen.setdefault((ti["task_id"], ti["map_index"]), [])
            if not states or states[-1] != str(ti["state"]):
                states.append(str(ti["state"]))
        result = RunResult(dag_id, run_id, run, tis, seen)
        if run["state"] in TERMINAL_RUN_STATES:
            if expect is not None and run["state"] != expect:
                raise RunFailed(report(api, result, f"run ended {run['state']}, expected {expect}"))
            return result
        if not allow_retries and any(ti["state"] == "up_for_retry" for ti in tis):
            raise RunFailed(report(api, result, "a task failed a try (allow_retries=False)"))
        if time.monotonic() > deadline:
            raise RunFailed(report(api, result, f"still {run['state']} after {timeout:.0f} s"))
        time.sleep(interval)


def report(api: AirflowApi, result: RunResult, headline: str) -> str:
    """The run's state, each task's state and try, and the failed (else unfinished) tasks' log tails."""
    lines = [f"{result.dag_id} / {result.run_id}: {headline}", "task instances:"]
    for ti in sorted(result.task_instances, key=lambda t: (t["task_id"], t["map_index"])):
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        history = " -> ".join(result.seen.get((ti["task_id"], ti["map_index"]), []))
        lines.append(f"  {name:40} {ti['state']!s:18} try {ti['try_number']}   seen: {history}")
    failed = [ti for ti in result.task_instances if ti["state"] in FAILED_TASK_STATES - {"upstream_failed"}]
    unfinished = [ti for ti in result.task_instances if ti["state"] not in {"success", "skipped", "removed"}]
    for ti in (failed or unfinished)[:TAILED_TASKS]:
        lines.append(log_tail(api, result.dag_id, result.run_id, ti))
    return "\n".join(lines)


def log_tail(
    api: AirflowApi, dag_id: str, run_id: str, ti: dict[str, Any], lines: int = LOG_TAIL_LINES
) -> str:
    """The last ``lines`` of a task instance's latest try (through the REST API, as the UI reads it)."""
    name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
    try_number = max(int(ti.get("try_number") or 1), 1)
    try:
        content = api.log(dag_id, run_id, ti["task_id"], try_number, ti["map_index"])
    except ApiError as error:
        return f"--- no log for {name} try {try_number}: {error}"
    body = "\n".join(content[-lines:]) or "(empty)"
    return f"--- log of {name}, try {try_number} (last {lines} entries) ---\n{body}"
