"""The engine harness: tests against a real Airflow 3.3 deployment, as users run it.

``Engine`` (``tests.engine.deployment``) starts ``airflow api-server``, ``scheduler`` (LocalExecutor),
``dag-processor`` and ``triggerer`` as separate processes from a throw-away ``AIRFLOW_HOME`` with a SQLite
metadata DB, everything on 127.0.0.1 and free ports, and stops them all (no process left, even when the
test process dies: a watchdog kills the deployment). A test drives it as a user would:

    with Engine(dags_folder, connections=sandbox_connections(sandbox)) as engine:   # ~10-20 s
        engine.unpause("my_dag")
        run_id = engine.trigger("my_dag", conf={...})          # REST API, no logical date
        result = engine.wait_for_run("my_dag", run_id)         # RunFailed says which task failed and why
        engine.api.xcom("my_dag", run_id, "my_task")           # and task_instances, asset_events, log ...

Also: ``engine.trigger_cli`` (``airflow dags trigger``), ``engine.cli(...)``, ``engine.api.clear_tasks``
and ``clear_run`` (retry by hand), ``engine.task_process`` (the OS process running a task instance, to
kill it), ``engine.restart("api-server")``, ``engine.wait_idle`` (after unpausing a scheduled DAG).
The fixtures in ``tests/engine/conftest.py``: ``examples_engine`` (``dags_examples/`` against the
sandbox, one deployment per module), ``engine_dags`` (a temp folder of test DAGs from ``dag_files/``),
``sbx`` (the sandbox reset and scaled like the connections). For a module's own deployment use
``tests.engine.fixtures.deployment`` (it keeps every log in ``artifacts/engine/`` when a test failed) and
``sandbox_connections``. Every test under ``tests/engine`` is marked ``engine``: ``make test-engine``.

Known Airflow 3.3.2 race: a deferrable task whose trigger fires before the scheduler has taken the
deferring try's exit can be marked failed (apache/airflow#67287, #72716); tests that make a trigger fire
at once wait for that exit first (see the wait-and-welcome test).
"""

from tests.engine.deployment import Engine, EngineError, WaitTimeout
from tests.engine.rest import AirflowApi, ApiError
from tests.engine.runs import RunFailed, RunResult

__all__ = ["AirflowApi", "ApiError", "Engine", "EngineError", "RunFailed", "RunResult", "WaitTimeout"]
