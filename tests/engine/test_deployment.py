"""The harness's own deployment, proven with tiny DAGs of ``dag_files/``: tasks run in parallel in their
own processes, runs start through the REST API and the CLI, a killed task is found and retried, a failure
report shows the failing task's log, and the api-server restarts under a running deployment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest

from tests.engine.deployment import Engine
from tests.engine.fixtures import deployment
from tests.engine.runs import RunFailed

PARALLEL = "engine_four_in_parallel"
HELD = "engine_held_task"
ECHO = "engine_echo_run"
FAILS = "engine_fails_at_once"


@pytest.fixture(scope="module")
def engine(engine_dags: Callable[..., Path], request: pytest.FixtureRequest) -> Iterator[Engine]:
    folder = engine_dags("four_in_parallel.py", "held_task.py", "echo_run.py", "fails_at_once.py")
    for running in deployment(request, folder, parallelism=4):
        for dag_id in (PARALLEL, HELD, ECHO, FAILS):
            running.api.set_paused(dag_id, False)
        yield running


def test_four_tasks_run_at_once_in_four_processes(engine: Engine, tmp_path: Path) -> None:
    run_id = engine.trigger(PARALLEL, conf={"barrier": str(tmp_path), "deadline": 120})

    result = engine.wait_for_run(PARALLEL, run_id, timeout=240)

    tis = result.mapped("meet")
    assert [ti["state"] for ti in tis] == ["success"] * 4
    met = [engine.api.xcom(PARALLEL, run_id, "meet", map_index=ti["map_index"]) for ti in tis]
    assert len({m["pid"] for m in met}) == 4  # four task processes ...
    assert len({m["ppid"] for m in met}) == 4  # ... under four supervisors (LocalExecutor workers)
    assert [m["pid"] for m in met] == [ti["pid"] for ti in tis]  # the API's pid is the task's process
    assert max(m["started"] for m in met) < min(m["met"] for m in met)  # all four were running at once


def test_every_component_listens_on_loopback_only(engine: Engine) -> None:
    listening = []
    for process in engine.leftovers():  # while it runs: every process of the deployment
        for conn in process.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                listening.append((process.pid, conn.laddr.ip, conn.laddr.port))
    assert listening, "the api-server at least must listen"
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening
    assert engine.port in {port for _, _, port in listening}


def test_a_run_through_the_api_without_a_logical_date_gets_none_and_its_conf(engine: Engine) -> None:
    run_id = engine.trigger(ECHO, conf={"since": "1970-01-01T00:00:00Z"})

    engine.wait_for_run(ECHO, run_id)

    echoed = engine.api.xcom(ECHO, run_id, "echo")
    assert echoed == {"conf": {"since": "1970-01-01T00:00:00Z"}, "run_type": "manual", "logical_date": None}
    assert engine.api.run(ECHO, run_id)["data_interval_end"] is None


def test_a_run_through_the_api_with_a_logical_date_gets_it(engine: Engine) -> None:
    logical_date = datetime(2025, 3, 4, 5, 0, tzinfo=timezone.utc)

    run_id = engine.trigger(ECHO, logical_date=logical_date)
    engine.wait_for_run(ECHO, run_id)

    echoed = engine.api.xcom(ECHO, run_id, "echo")
    assert echoed["logical_date"] == logical_date.isoformat()
    assert echoed["conf"] == {}


def test_a_run_through_the_cli_gets_its_conf(engine: Engine) -> None:
    run_id = engine.trigger_cli(ECHO, conf={"list_id": "a1b2c3d4e5"})

    engine.wait_for_run(ECHO, run_id)

    assert engine.api.xcom(ECHO, run_id, "echo")["conf"] == {"list_id": "a1b2c3d4e5"}
    assert engine.api.run(ECHO, run_id)["triggered_by"] == "cli"


def test_a_cleared_task_runs_again(engine: Engine) -> None:
    run_id = engine.trigger(ECHO)
    engine.wait_for_run(ECHO, run_id)

    cleared = engine.api.clear_tasks(ECHO, run_id, ["echo"])
    result = engine.wait_for_run(ECHO, run_id)

    assert [ti["task_id"] for ti in cleared] == ["echo"]
    assert result.ti("echo")["try_number"] == 2
    assert [t["state"] for t in engine.api.tries(ECHO, run_id, "echo")] == ["success", "success"]


def test_the_process_of_a_task_is_found_and_a_sigkilled_try_is_retried(
    engine: Engine, tmp_path: Path
) -> None:
    run_id = engine.trigger(HELD, conf={"workdir": str(tmp_path)})
    process = engine.task_process(HELD, run_id, "hold", timeout=120)
    pid_file = tmp_path / "pid.1"
    engine.wait_until(pid_file.exists, what="the first try's pid file", timeout=60)
    assert process.pid == int(pid_file.read_text())
    supervisor = " ".join(process.parent().cmdline())
    assert supervisor.startswith("airflow worker -- LocalExecutor:"), supervisor

    process.kill()  # SIGKILL, mid-task: the supervisor reports the try failed, Airflow retries it
    engine.wait_until((tmp_path / "pid.2").exists, what="the retry's pid file", timeout=120)
    (tmp_path / "release").touch()
    result = engine.wait_for_run(HELD, run_id, allow_retries=True)

    assert result.ti("hold")["try_number"] == 2
    assert [t["state"] for t in engine.api.tries(HELD, run_id, "hold")] == ["failed", "success"]
    retry = engine.api.xcom(HELD, run_id, "hold")
    assert retry == {"pid": int((tmp_path / "pid.2").read_text()), "try_number": 2, "earlier_tries": [1]}
    (state,) = engine.api.task_state(HELD, run_id, "hold")  # the killed try's entry survived it
    assert (state["key"], state["value"]) == ("tries", [1, 2])
    assert not psutil.pid_exists(process.pid)


def test_a_failed_run_is_reported_with_the_failing_tasks_log(engine: Engine) -> None:
    run_id = engine.trigger(FAILS)

    with pytest.raises(RunFailed) as failure:
        engine.wait_for_run(FAILS, run_id)

    report = str(failure.value)
    assert "run ended failed, expected success" in report
    assert "break_down" in report and "failed" in report
    assert "ValueError" in report and "deliberate failure 4711" in report  # from the task's log


def test_the_api_server_restarts_and_the_deployment_runs_on(engine: Engine) -> None:
    token = engine.api.token()
    old = engine.processes["api-server"].pid

    seconds = engine.restart("api-server")

    assert engine.processes["api-server"].pid != old and not psutil.pid_exists(old)
    assert engine.api.call("GET", "version")["version"] == "3.3.2"  # the token outlives the restart
    assert engine.api._token == token
    run_id = engine.trigger(ECHO)
    engine.wait_for_run(ECHO, run_id)
    assert seconds < 120, f"api-server restart took {seconds:.1f} s"


def test_stopping_the_deployment_kills_a_task_still_running(
    engine_dags: Callable[..., Path], tmp_path: Path
) -> None:
    """A task runner has its own process group (not the scheduler's): the stop must still end it."""
    with Engine(engine_dags("held_task.py")) as deployment:
        deployment.api.set_paused(HELD, False)
        run_id = deployment.trigger(HELD, conf={"workdir": str(tmp_path)})  # never released
        task = deployment.task_process(HELD, run_id, "hold", timeout=120)
        assert os.getpgid(task.pid) != os.getpgid(deployment.processes["scheduler"].pid)

    assert not psutil.pid_exists(task.pid) or task.status() == psutil.STATUS_ZOMBIE
    assert deployment.leftovers() == []
    assert not deployment.home.exists()
