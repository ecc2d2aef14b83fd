"""A real Airflow 3.3 deployment on one machine: api-server, scheduler, dag-processor and triggerer as
separate processes, LocalExecutor, a SQLite metadata DB (WAL), all on 127.0.0.1 and free ports.

``with Engine(dags_folder=..., connections=...) as engine:`` builds a throw-away ``AIRFLOW_HOME``, copies
a metadata DB migrated once per test session (``airflow db migrate`` costs ~6 s; a copy, milliseconds),
starts the four components in their own process groups, and waits until each reports healthy and every
DAG file of the folder is parsed (an import error fails the start with its traceback). On exit every
process group is stopped (SIGTERM, then SIGKILL) and any process still carrying the deployment's
``AIRFLOW_HOME`` is killed; a watchdog process does the same if the test process itself dies.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import psutil

from tests.engine import processes
from tests.engine.rest import AirflowApi
from tests.engine.runs import RunResult, wait_for_run
from tests.services.process import free_port, log_tail, stop_group

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "dags_examples"
ADMIN = "admin"
# Each component and its arguments; the scheduler and triggerer would serve logs on 0.0.0.0 otherwise.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
START_TIMEOUT = 180.0  # seconds; ~10-15 s on a quiet 2-core machine, several times that under load
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL: the deployment is thrown away anyway
_TEMPLATE: dict[str, Path] = {}


class EngineError(RuntimeError):
    """A component died, or the deployment could not start (the message has the logs' tails)."""


class WaitTimeout(AssertionError):
    """Something a test waited for did not happen in time (the message has the components' log tails)."""


class Engine:
    """One deployment. Start it with ``with`` (or :meth:`start` / :meth:`stop`); talk to it like a user.

    :param dags_folder: ``[core] dags_folder``: the repo's ``dags_examples/`` or a test's own folder.
    :param connections: ``AIRFLOW_CONN_<ID>`` variables (name -> URI or JSON) every component sees.
    :param env: more environment for every component (and so every task), e.g. poll intervals.
    :param config: Airflow options, ``{"section": {"option": value}}``, as ``AIRFLOW__SECTION__OPTION``.
    :param parallelism: ``[core] parallelism``: how many tasks LocalExecutor runs at once.
    """

    started: ClassVar[list[Engine]] = []  # every deployment started in this process (for the summary)

    def __init__(
        self,
        dags_folder: Path = EXAMPLES,
        *,
        connections: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        config: Mapping[str, Mapping[str, object]] | None = None,
        parallelism: int = 4,
    ) -> None:
        self.dags_folder = Path(dags_folder).resolve()
        self.home = Path(tempfile.mkdtemp(prefix="prefinery-engine-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._password = secrets.token_urlsafe(16)
        self.api = AirflowApi(self.url, ADMIN, self._password)
        self.env = self._environment(connections or {}, env or {}, config or {}, parallelism)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.timings: dict[str, float] = {}
        self.strays: list[str] = []  # processes the stop had to kill after the components' groups
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.sessions: set[int] = set()  # one per component start: its leader's pid
        self.keep_logs: Path | None = None  # set it to copy the logs there when the deployment stops

    def __repr__(self) -> str:
        return f"Engine({self.url}, home={self.home}, dags={self.dags_folder})"

    def __enter__(self) -> Engine:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- set-up ----------------------------------------------------------------------------------------
    def _environment(
        self,
        connections: Mapping[str, str],
        extra: Mapping[str, str],
        config: Mapping[str, Mapping[str, object]],
        parallelism: int,
    ) -> dict[str, str]:
        """The test process's environment without any Airflow setting of its own, plus the deployment's."""
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        settings: dict[str, object] = {
            "core": {
                "dags_folder": self.dags_folder,
                "load_examples": False,
                "executor": "LocalExecutor",
                "parallelism": parallelism,
                "execution_api_server_url": f"{self.url}/execution/",
                "fernet_key": Fernet.generate_key().decode(),
                "simple_auth_manager_users": f"{ADMIN}:admin",
                "simple_auth_manager_passwords_file": self.home / "passwords.json",
                "dags_are_paused_at_creation": True,
            },
            "database": {"sql_alchemy_conn": f"sqlite:///{self.home / 'airflow.db'}"},
            "api": {"host": "127.0.0.1", "port": self.port, "base_url": self.url, "workers": 1},
            "api_auth": {"jwt_secret": secrets.token_urlsafe(48)},  # 64 characters: 32+ required
            "scheduler": {"enable_health_check": False},  # its health server would listen on 0.0.0.0
            "dag_processor": {"refresh_interval": 5},  # new DAG files show up within seconds
            "logging": {"colored_console_log": False, "base_log_folder": self.home / "logs"},
        }
        for section, options in config.items():
            settings[section] = {**settings.get(section, {}), **options}  # type: ignore[dict-item]
        for section, options in settings.items():
            for option, value in options.items():  # type: ignore[attr-defined]
                env[f"AIRFLOW__{section.upper()}__{option.upper()}"] = str(value)
        env.update(AIRFLOW_HOME=str(self.home), PYTHONUNBUFFERED="1", **connections, **extra)
        env["AIRFLOW__API__SECRET_KEY"] = secrets.token_urlsafe(32)
        return env

    def start(self) -> None:
        """Prepare the home and DB, start every component, wait until the deployment is ready."""
        began = time.monotonic()
        (self.home / "logs").mkdir()
        (self.home / "passwords.json").write_text(json.dumps({ADMIN: self._password}))
        _copy_migrated_db(self.home / "airflow.db")
        self.timings["db"] = time.monotonic() - began
        self._watchdog = processes.start_watchdog(str(self.home))
        for name in COMPONENTS:
            self._launch(name)
        self._wait_ready(began)
        self.timings["start"] = time.monotonic() - began
        Engine.started.append(self)

    def _launch(self, name: str) -> None:
        args = [arg.format(port=self.port) for arg in COMPONENTS[name]]
        with (self.home / "logs" / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and group: stopped as one, LocalExecutor workers too
            )
        self.sessions.add(self.processes[name].pid)
        (self.home / "sessions").write_text("".join(f"{sid}\n" for sid in sorted(self.sessions)))

    def _wait_ready(self, began: float, components: Sequence[str] = tuple(COMPONENTS)) -> None:
        """Wait for the API's health answer to list each component healthy since ``began``, then parse."""
        since = datetime.now().astimezone().timestamp() - (time.monotonic() - began)
        self.wait_until(
            lambda: self._healthy(components, since), what="healthy components", timeout=START_TIMEOUT
        )
        self.timings["healthy"] = time.monotonic() - began
        if "dag-processor" in components:
            self.wait_until(self._parsed, what="every DAG file parsed", timeout=START_TIMEOUT)

    def _healthy(self, components: Sequence[str], since: float) -> bool:
        try:
            health = self.api.health()
        except Exception:
            return False
        for name in components:
            key = HEALTH_KEYS.get(name)
            if key is None:
                continue  # the api-server: it answered
            status = health.get(key, {})
            beat = status.get(f"latest_{key}_heartbeat")
            if (
                status.get("status") != "healthy"
                or not beat
                or datetime.fromisoformat(beat).timestamp() < since
            ):
                return False
        return True

    def _parsed(self) -> bool:
        """True once each DAG file of the folder is a DAG in the API; an import error fails the start."""
        errors = self.api.import_errors()
        if errors:
            details = "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)
            raise EngineError(f"import errors in {self.dags_folder}:\n{details}")
        parsed = {dag["relative_fileloc"] for dag in self.api.dags()}
        return dag_files(self.dags_folder) <= parsed

    def wait_until(
        self, ready: Callable[[], object], *, what: str, timeout: float = 60.0, interval: float = 0.25
    ) -> Any:
        """Poll ``ready()`` until it returns something truthy (returned); fail with the logs if a component
        dies or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise EngineError(f"{name} exited with {process.returncode}:\n{self.log(name)}")
            value = ready()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name} ---\n{self.log(name, 1200)}" for name in self.processes)
                raise WaitTimeout(f"not {what} after {timeout:.0f} s; the components' last lines:\n{logs}")
            time.sleep(interval)

    def log(self, component: str, chars: int | None = 4000) -> str:
        """The tail of a component's own log (stdout and stderr); all of it with ``chars=None``."""
        path = self.home / "logs" / f"{component}.log"
        return path.read_text(errors="replace") if chars is None else log_tail(path, chars)

    # --- stop and restart ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every component at once (SIGTERM, SIGKILL after the grace), kill any straggler of the
        deployment, copy its logs to ``keep_logs`` if set, and delete the home. Safe to call twice."""
        began = time.monotonic()
        _stop(list(self.processes.values()))
        self.processes.clear()
        self.timings["stop"] = time.monotonic() - began
        left = self.leftovers()
        self.strays = [processes.describe([p]) for p in left]
        processes.kill_all(left)
        survivors = self.leftovers()
        if survivors:
            raise RuntimeError(f"processes of {self.home} survived SIGKILL:\n{processes.describe(survivors)}")
        if self._watchdog is not None:
            stop_group(self._watchdog, grace=2.0)
            self._watchdog = None
        if self.keep_logs is not None and (self.home / "logs").is_dir():
            shutil.copytree(self.home / "logs", self.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def leftovers(self) -> list[psutil.Process]:
        """The deployment's processes still alive (after :meth:`stop`: none), the watchdog aside."""
        found = processes.processes_of(str(self.home), self.sessions)
        return [p for p in found if p.pid != getattr(self._watchdog, "pid", None)]

    def restart(self, component: str) -> float:
        """Stop one component and start it again on the same port and settings; return the seconds it took
        until it answered (the api-server) or reported a fresh heartbeat (the others)."""
        began = time.monotonic()
        _stop([self.processes.pop(component)])
        self._launch(component)
        self._wait_ready(began, (component,))
        return time.monotonic() - began

    # --- what a user does ------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` against this deployment, as a user in a shell on the machine would."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} -> {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def trigger_cli(
        self, dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """``airflow dags trigger <dag_id> [-c conf] [-l date] -o json``; returns the new run's id."""
        args = ["dags", "trigger", dag_id, "-o", "json"]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        if logical_date is not None:
            args += ["-l", logical_date]
        out = self.cli(*args).stdout  # log lines first, then the JSON list on a line of its own
        (run,) = json.loads([line for line in out.splitlines() if line.startswith("[{")][-1])
        return str(run["dag_run_id"])

    def trigger(
        self, dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: datetime | str | None = None
    ) -> str:
        """Trigger through the REST API (no logical date unless given); returns the run id."""
        return str(self.api.trigger(dag_id, conf=conf, logical_date=logical_date)["dag_run_id"])

    def unpause(self, dag_id: str) -> None:
        """Unpause, then have the DAG file parsed again: an AssetWatcher's trigger registers only when its
        DAG is parsed while active (the dag-processor's next pass would take up to 30 s)."""
        self.api.set_paused(dag_id, False)
        self.api.reparse(dag_id)

    def pause(self, dag_id: str) -> None:
        self.api.set_paused(dag_id, True)
        self.api.reparse(dag_id)

    def wait_for_run(self, dag_id: str, run_id: str, **kwargs: Any) -> RunResult:
        """See :func:`tests.engine.runs.wait_for_run`: success expected, a failed try fails at once."""
        return wait_for_run(self.api, dag_id, run_id, **kwargs)

    def wait_idle(self, dag_id: str, timeout: float = 180.0) -> list[dict[str, Any]]:
        """Wait until the scheduler created every run due now (the DAG's next run is in the future) and no
        run is queued or running; return the DAG's runs. For scheduled DAGs right after :meth:`unpause`."""

        def idle() -> list[dict[str, Any]] | None:
            dag = self.api.dag(dag_id)
            due = dag.get("next_dagrun_run_after")
            if due and datetime.fromisoformat(due.replace("Z", "+00:00")).timestamp() <= time.time():
                return None
            runs = self.api.runs(dag_id)
            return None if any(r["state"] in {"queued", "running"} for r in runs) else runs or [{}]

        return [r for r in self.wait_until(idle, what=f"{dag_id} idle", timeout=timeout) if r]

    def finish_active_runs(self, dag_id: str, state: str = "failed") -> list[str]:
        """Mark every queued or running run of the DAG ``state`` (test teardown: nothing blocks the next)."""
        ids = [r["dag_run_id"] for r in self.api.runs(dag_id) if r["state"] in {"queued", "running"}]
        for run_id in ids:
            self.api.set_run_state(dag_id, run_id, state)
        return ids

    def task_process(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, timeout: float = 60.0
    ) -> psutil.Process:
        """The OS process running a task instance (its task runner; ``.parent()`` is the supervisor),
        waiting until the scheduler has started it. For tests that kill a task mid-way."""
        ti_id = self.api.task_instance(dag_id, run_id, task_id, map_index)["id"]
        return processes.wait_task_process(ti_id, timeout)


def dag_files(folder: Path) -> set[str]:
    """Files of the folder Airflow's default heuristic parses (Python, mentioning "airflow" and "dag")."""
    found = set()
    for path in folder.rglob("*.py"):
        text = path.read_bytes().lower()
        if b"airflow" in text and b"dag" in text and "__pycache__" not in path.parts:
            found.add(str(path.relative_to(folder)))
    return found


def _stop(group: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each leader (Airflow shuts down cleanly), then SIGKILL each whole process group still there
    after the grace. All at once: the scheduler alone can spend the grace waiting for its executor."""
    for process in group:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in group:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
        stop_group(process, first=signal.SIGKILL, grace=5.0)


def _copy_migrated_db(target: Path) -> None:
    """Copy this session's migrated SQLite DB to ``target`` (migrating it first), in WAL mode."""
    if "db" not in _TEMPLATE:
        home = Path(tempfile.mkdtemp(prefix="prefinery-engine-template-"))
        atexit.register(shutil.rmtree, home, True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
        )
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise EngineError(f"airflow db migrate failed ({done.returncode}):\n{done.stderr[-3000:]}")
        _TEMPLATE["db"] = home / "airflow.db"
    shutil.copyfile(_TEMPLATE["db"], target)
    with sqlite3.connect(target) as db:  # WAL: readers do not wait for the writers, writers wait less
        db.execute("PRAGMA journal_mode=WAL")
