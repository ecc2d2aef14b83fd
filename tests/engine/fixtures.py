"""What the engine fixtures build deployments with, importable by test modules that build their own:
the sandbox's connections for a deployment, and a deployment that keeps its logs when a test failed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.deployment import Engine
from tests.scaling import SCALE

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "engine"
# The example DAGs read their poll intervals at parse time, in the dag-processor and in every task.
EXAMPLE_ENV = {"PREFINERY_EXAMPLE_POKE_INTERVAL": "1", "PREFINERY_EXAMPLE_POLL_INTERVAL": "1"}


def sandbox_connections(server: Any, scale: float = SCALE) -> dict[str, str]:
    """The sandbox's three default connections, the Prefinery one with its limits scaled like the server's
    (the ``sbx`` fixture of ``conftest.py`` scales the server per test)."""
    connections = dict(server.connections())
    prefinery = json.loads(connections["AIRFLOW_CONN_PREFINERY_DEFAULT"])
    prefinery["extra"] = {**prefinery.get("extra", {}), "rate_limit_scale": scale}
    connections["AIRFLOW_CONN_PREFINERY_DEFAULT"] = json.dumps(prefinery)
    return connections


def deployment(request: pytest.FixtureRequest, dags_folder: Path, **options: Any) -> Iterator[Engine]:
    """Run an :class:`Engine` for a fixture; when a test failed meanwhile, keep the logs of every
    component and task in ``artifacts/engine/<module>-<time>/`` (the home itself is deleted)."""
    failed = request.session.testsfailed
    with Engine(dags_folder, **options) as engine:
        yield engine
        if request.session.testsfailed > failed:
            engine.keep_logs = ARTIFACTS / f"{request.module.__name__.rsplit('.', 1)[-1]}-{int(time.time())}"
            print(f"\nengine logs kept in {engine.keep_logs}")
