"""Browser tests: a real Airflow api-server on loopback, the sandbox, and headless Debian Chromium.

The server runs from a throw-away ``AIRFLOW_HOME`` with its own SQLite DB, the Test button enabled and one
SimpleAuthManager admin whose password is written to a file first, so the test logs in like a person.
Chromium is Debian's (``/usr/bin/chromium``, never a downloaded build) driven by Playwright's Python
package. Without either, the tests skip with the reason; under CI (``CI=true``) or with
``PREFINERY_E2E_REQUIRED=1`` they fail instead, so a missing install step cannot pass as green.
Every process started here is stopped by process group when the module ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "e2e"
LAUNCHER = Path(__file__).with_name("api_server.py")
CHROMIUM = Path(os.environ.get("PREFINERY_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-password"
SERVER_START_TIMEOUT = 150.0  # seconds: 6-10 s when idle, 20-40 s on a busy 2-core machine
INSTALL_HINT = "install them with scripts/install_e2e.sh"


def _missing(reason: str) -> None:
    """Skip for a developer without the browser tools; fail where the tools must be (CI)."""
    required = os.environ.get("CI", "").lower() == "true" or os.environ.get("PREFINERY_E2E_REQUIRED") == "1"
    if required:
        pytest.fail(f"{reason}; {INSTALL_HINT} (required under CI / PREFINERY_E2E_REQUIRED=1)")
    pytest.skip(f"{reason}; {INSTALL_HINT}")


@pytest.fixture(scope="session")
def e2e_tools() -> None:
    """Check for Debian's Chromium and Playwright's Python driver before starting anything."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Playwright Python package is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("FAILED-*.png"):
        stale.unlink()


@dataclass(frozen=True)
class AirflowUI:
    """A running api-server: where it listens, how to log in, and the environment its DB answers to."""

    url: str
    user: str
    password: str
    env: dict[str, str]
    log_path: Path

    def run_python(self, code: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh interpreter against this server's Airflow DB (connections included)."""
        return subprocess.run(
            [sys.executable, "-c", code],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path) -> dict[str, str]:
    """The test process's environment, minus connections it holds, pointed at a private Airflow home."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN_USER}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_healthy(url: str, process: subprocess.Popen[Any], log_path: Path, timeout: float) -> None:
    """Poll the health endpoint until it answers 200; fail early (with the log) if the server dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"api-server not healthy after {timeout:.0f} s (exit={process.poll()}):\n{tail}")


def stop_group(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left: nothing survives the test."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            os.killpg(process.pid, 0)  # raises once every member of the group is gone
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def airflow_ui(e2e_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    """Migrate a fresh SQLite DB and serve Airflow's UI on a free loopback port for this module."""
    home = tmp_path_factory.mktemp("airflow-ui-home")
    (home / "dags").mkdir()
    (home / "passwords.json").write_text(f'{{"{ADMIN_USER}": "{ADMIN_PASSWORD}"}}')
    env = server_env(home)
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    migrated = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=180)
    if migrated.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({migrated.returncode}):\n{migrated.stderr[-3000:]}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "api-server.log"
    command = [sys.executable, str(LAUNCHER), "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--workers", "1", "--apps", "core"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(url, process, log_path, SERVER_START_TIMEOUT)
        yield AirflowUI(url, ADMIN_USER, ADMIN_PASSWORD, env, log_path)
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def browser(e2e_tools: None) -> Iterator[Any]:
    """Debian's Chromium, headless, started by Playwright (which downloads nothing here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context per test; a screenshot lands in artifacts/e2e/ when the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(45_000)  # ms: generous, the machine may be busy
    try:
        yield tab
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
        context.close()
