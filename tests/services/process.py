"""Process helpers the service fixtures and the engine harness share: free ports, readiness, clean stops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INSTALL_HINT = "install it with scripts/install_services.sh"


class ServiceMissing(RuntimeError):
    """A binary a service needs is not installed; the fixtures turn it into a skip (or a CI failure)."""


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the caller binds it soon; a lost race shows as a start failure)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[Any],
    *,
    what: str,
    timeout: float,
    log_path: Path,
    interval: float = 0.05,
) -> None:
    """Poll ``ready()`` until true; raise with the log's tail if ``process`` dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log_path)}")
        if ready():
            return
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{log_tail(log_path)}")


def stop_group(process: subprocess.Popen[Any], *, first: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Send ``first`` to the process group, then SIGKILL what is left: no child outlives the test.

    The process must have been started with ``start_new_session=True`` (its pid is its group's id).
    """
    for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while group_alive(process.pid) and time.monotonic() < deadline:
            process.poll()  # reap the leader, or its zombie keeps the group alive
            time.sleep(0.05)
        if not group_alive(process.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists (zombies of our own children included until reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member runs as another user: it still exists
        return True
    return True
