"""Four tasks that can only finish together: each waits at a file barrier for the other three.

Run serially, the first task would wait for the others until its deadline and fail, so a success proves
four tasks ran at once in four processes. ``conf``: ``barrier`` (a directory), ``deadline`` (seconds).
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

WIDTH = 4

with DAG(
    dag_id="engine_four_in_parallel",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_tasks=WIDTH,
) as dag:

    @task
    def meet(index: int, dag_run: Any = None) -> dict[str, Any]:
        barrier = Path(dag_run.conf["barrier"])
        started = time.time()
        (barrier / f"{index}.arrived").write_text(str(os.getpid()))
        deadline = started + float(dag_run.conf.get("deadline", 120))
        while len(list(barrier.glob("*.arrived"))) < WIDTH:
            if time.time() > deadline:
                raise RuntimeError(f"only {len(list(barrier.glob('*.arrived')))} of {WIDTH} tasks arrived")
            time.sleep(0.05)
        return {"pid": os.getpid(), "ppid": os.getppid(), "started": started, "met": time.time()}

    meet.expand(index=list(range(WIDTH)))
