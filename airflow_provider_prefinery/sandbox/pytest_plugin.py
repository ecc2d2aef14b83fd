"""pytest plugin (entry point ``prefinery_sandbox``): a sandbox per session, reset before every test.

``prefinery_sandbox`` (session) starts the server with the demo seed and points the three default Airflow
connections at it through ``AIRFLOW_CONN_*`` variables. ``sandbox`` (function) resets data to the test's
seed (``@pytest.mark.sandbox_seed("empty")``, default ``demo``), behaviour to defaults and empties the
request log, then returns the same server. Light at import: no FastAPI in the test process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from airflow_provider_prefinery.sandbox.testing import SandboxServer, run_sandbox


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox_seed(name): the seed the `sandbox` fixture resets to")


@pytest.fixture(scope="session")
def prefinery_sandbox() -> Iterator[SandboxServer]:
    """One sandbox process for the session, with AIRFLOW_CONN_{PREFINERY,MAILCHIMP,PIGGY}_DEFAULT set."""
    with run_sandbox(seed="demo") as server:
        saved = {name: os.environ.get(name) for name in server.connections()}
        os.environ.update(server.connections())
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture
def sandbox(prefinery_sandbox: SandboxServer, request: pytest.FixtureRequest) -> SandboxServer:
    """The session's sandbox, reset to this test's seed with default behaviour and an empty request log."""
    marker = request.node.get_closest_marker("sandbox_seed")
    prefinery_sandbox.control.reset(marker.args[0] if marker else "demo")
    return prefinery_sandbox
