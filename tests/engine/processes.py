"""The OS processes of a deployment: the one running a task instance, and any left behind after a stop.

Airflow 3.3's task runner names its process ``airflow worker -- <task instance id>`` (``setproctitle``);
its parent, the supervisor, is a LocalExecutor worker (``airflow worker -- LocalExecutor: <ti id>``) that
reports the try's end to the API server. Each component leads its own session, which its workers and
tasks stay in (a task gets its own process group): that is how the leftover check finds them all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable

import psutil

TASK_TITLE = "airflow worker -- {ti_id}"


def task_process(ti_id: str) -> psutil.Process | None:
    """The process running task instance ``ti_id`` (its ``id`` in the REST API) right now, if any."""
    title = TASK_TITLE.format(ti_id=ti_id)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if cmdline and " ".join(cmdline).strip() == title:
            return process
    return None


def wait_task_process(ti_id: str, timeout: float = 60.0) -> psutil.Process:
    """Wait until a process runs task instance ``ti_id`` (the scheduler queued it; a worker forks it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = task_process(ti_id)
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no process ran task instance {ti_id} within {timeout:.0f} s")


def processes_of(home: str, sessions: Iterable[int] = ()) -> list[psutil.Process]:
    """Every live process of a deployment: members of its components' sessions (each component leads its
    own; a task runner gets its own process group but stays in the session), and any other process whose
    environment says ``AIRFLOW_HOME=home`` (``setproctitle`` overwrites that of titled processes)."""
    sessions = set(sessions)
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(process.pid) in sessions or process.environ().get("AIRFLOW_HOME") == home:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def kill_all(processes: list[psutil.Process], timeout: float = 5.0) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=timeout)


def describe(processes: list[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"  pid {process.pid}: {' '.join(process.cmdline())[:200]}")
        except psutil.Error:
            lines.append(f"  pid {process.pid}: (gone)")
    return "\n".join(lines)


_WATCHDOG = """
import os, shutil, sys, time
import psutil
parent, born, home = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
sessions = set()
def parent_alive():
    try:
        return psutil.Process(parent).create_time() == born
    except psutil.NoSuchProcess:
        return False
while os.path.isdir(home) and parent_alive():
    try:
        sessions = {int(line) for line in open(os.path.join(home, "sessions")) if line.strip()}
    except OSError:
        pass
    time.sleep(1)
if os.path.isdir(home):  # the test process died without stopping its deployment
    for p in psutil.process_iter():
        try:
            ours = os.getsid(p.pid) in sessions or p.environ().get("AIRFLOW_HOME") == home
            if ours and p.pid != os.getpid():
                p.kill()
        except (psutil.Error, OSError):
            pass
    shutil.rmtree(home, ignore_errors=True)
"""


def start_watchdog(home: str) -> subprocess.Popen[bytes]:
    """A process that kills the deployment at ``home`` if this (test) process dies before stopping it."""
    me = psutil.Process()
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(me.pid), repr(me.create_time()), home],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
