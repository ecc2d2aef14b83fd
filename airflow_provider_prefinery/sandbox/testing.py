"""Run the sandbox as a subprocess on 127.0.0.1 (port 0) for tests, benchmarks and DAG authors.

``with run_sandbox() as sb:`` starts ``python -m airflow_provider_prefinery.sandbox``, waits for its ready
line, yields a :class:`SandboxServer` (``.url``, ``.api_key``, ``.control``) and stops it with SIGTERM
(SIGKILL after a grace period), so no process is left behind. A subprocess, not a thread: the server
then has its own GIL and event loop, and the test process stays free of FastAPI.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_prefinery.sandbox import READY_PREFIX
from airflow_provider_prefinery.sandbox.client import SandboxControl
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID


class SandboxStartError(RuntimeError):
    """The sandbox did not print its ready line in time (its log is in the message)."""


@dataclass
class SandboxServer:
    """A running sandbox: where it listens, the key to use and the control client."""

    url: str
    api_keys: list[str]
    process: subprocess.Popen[bytes]
    log_path: str
    control: SandboxControl = field(init=False)
    beta_id: int = DEMO_BETA_ID
    list_id: str = DEMO_LIST_ID
    ca_bundle: str | None = None  # an HTTPS sandbox: the CA file its certificate is trusted through

    def __post_init__(self) -> None:
        self.control = SandboxControl(self.url, verify=self.ca_bundle or True)

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    def connections(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` values (JSON form) for the three connection types, pointing here."""
        key, url = self.api_key, self.url
        return {
            "AIRFLOW_CONN_PREFINERY_DEFAULT": json.dumps(
                {"conn_type": "prefinery", "password": key, "host": url, "extra": {"beta_id": self.beta_id}}
            ),
            "AIRFLOW_CONN_MAILCHIMP_DEFAULT": json.dumps(
                {"conn_type": "mailchimp", "password": key, "host": url, "extra": {"list_id": self.list_id}}
            ),
            "AIRFLOW_CONN_PIGGY_DEFAULT": json.dumps({"conn_type": "piggy", "password": key, "host": url}),
        }


def sandbox_command(
    *, seed: str = "demo", api_keys: Sequence[str] = (), db: str | None = None, extra_args: Sequence[str] = ()
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_prefinery.sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--seed",
        seed,
        "--exit-with-parent",
    ]
    for key in api_keys:
        cmd += ["--api-key", key]
    if db:
        cmd += ["--db", db]
    return [*cmd, *extra_args]


@contextlib.contextmanager
def run_sandbox(
    *,
    seed: str = "demo",
    api_keys: Sequence[str] = (),
    db: str | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 15.0,
    ca_bundle: str | None = None,
) -> Iterator[SandboxServer]:
    """Start a sandbox subprocess, yield it once ready, and stop it (always).

    :param ca_bundle: with ``--tls-cert``/``--tls-key`` in ``extra_args``, the CA the control client trusts.
    """
    log = tempfile.NamedTemporaryFile(prefix="prefinery-sandbox-", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        sandbox_command(seed=seed, api_keys=api_keys, db=db, extra_args=extra_args),
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    try:
        line = _wait_ready(process, startup_timeout, log.name)
        info = json.loads(line[line.index("{") :])
        yield SandboxServer(info["url"], info["api_keys"], process, log.name, ca_bundle=ca_bundle)
    finally:
        stop(process)
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], timeout: float, log_path: str) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline().decode()
                if line.startswith(READY_PREFIX):
                    return line.strip()
                if not line and process.poll() is not None:
                    break
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        tail = fh.read()[-2000:]
    raise SandboxStartError(f"sandbox not ready after {timeout}s (exit={process.poll()}): {tail}")


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL: the process is gone when this returns."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()
