"""Test-session set-up shared by every suite: a throw-away Airflow home, and a migrated DB on demand.

The environment is set at import time, before anything imports Airflow, so no test touches ~/airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaling import scaled_sandbox, set_prefinery_extra

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags_examples"
_HOME = Path(tempfile.mkdtemp(prefix="prefinery-airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """Migrate a fresh SQLite metadata DB once per session (about 6 s), for tests that run DAGs."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    yield _HOME


@pytest.fixture
def run_dag(airflow_db: Path):
    """Return a runner: load a DAG from dags_examples/ with a real DagBag and run it with ``dag.test()``."""

    def _run(dag_id: str, **kwargs: object) -> object:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(str(DAGS_FOLDER))
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"{dag_id} not in {sorted(bag.dag_ids)}"
        return dag.test(**kwargs)

    return _run


@pytest.fixture
def sbx(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox, limits scaled by ``SCALE``, and ``prefinery_default`` with one quick retry.

    For sensor and trigger tests; folders with other needs (``dags``, ``transfers``) define their own.
    """
    yield from scaled_sandbox(sandbox, monkeypatch, max_retries=1, backoff_initial=0.05)


@pytest.fixture
def conn_extra(sbx: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change extras of ``prefinery_default`` for one test (e.g. ``max_retries=0``)."""

    def apply(**extra: Any) -> None:
        set_prefinery_extra(monkeypatch, **extra)

    return apply
