"""Fixtures of the engine harness (see ``tests/engine/__init__.py``), and the ``engine`` marker for every
test in this folder. The start-up and stop times of each deployment are printed in the summary."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.deployment import EXAMPLES, Engine
from tests.engine.fixtures import EXAMPLE_ENV, deployment, sandbox_connections
from tests.engine.processes import describe
from tests.scaling import SCALE
from tests.services.fixtures import postgres_server, redis_server  # noqa: F401  (for engine tests)

DAG_FILES = Path(__file__).with_name("dag_files")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="module")
def examples_engine(prefinery_sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """``dags_examples/`` on a real deployment whose connections point at the session's sandbox."""
    connections = sandbox_connections(prefinery_sandbox)
    yield from deployment(request, EXAMPLES, connections=connections, env=EXAMPLE_ENV)


@pytest.fixture
def sbx(sandbox: Any) -> Any:
    """The sandbox, reset to its seed for this test, with every rate limit scaled like the connection's."""
    sandbox.control.configure(scale=SCALE)
    return sandbox


@pytest.fixture(scope="module")
def engine_dags(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make a DAGs folder holding some of ``dag_files/`` (by file name) for a module's own deployment."""

    def make(*names: str) -> Path:
        folder = tmp_path_factory.mktemp("engine-dags")
        for name in names:
            shutil.copy(DAG_FILES / name, folder / name)
        return folder

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long each deployment took to start and stop, and whether any process outlived its stop."""
    if not Engine.started:
        return
    terminalreporter.section("engine deployments")
    for engine in Engine.started:
        figures = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in engine.timings.items())
        terminalreporter.write_line(f"{engine.dags_folder.name}: {figures}")
    left = [p for engine in Engine.started for p in engine.leftovers()]
    terminalreporter.write_line(
        f"processes left behind: {len(left)}" + (f"\n{describe(left)}" if left else "")
    )
