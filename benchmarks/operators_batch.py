"""Benchmark: one batch operator vs a sequential loop vs one mapped task per record, and batch memory.

Run in one process (it starts the sandbox and its own subprocesses), prints a short table:

    .venv/bin/python benchmarks/operators_batch.py            # about 2-3 minutes

Setting: ``create_user`` records against the sandbox with 100 ms added latency on every write and a write
limit of 20 requests/s enforced by the server (a sliding 1-s window, 429 + Retry-After beyond it). The
hook's ``write_rate_limit`` is set 3 % under it (``--hook-limit-ratio``): the server counts arrivals, which
jitter, and one 429 pauses every worker for a whole second. Every limit, server's and hook's, is multiplied
by one common factor (``--scale``, default 4: 80 requests/s) to keep the run short.

* batch: ``PrefineryCreateUserOperator(records=[...])`` over ``--records`` records; throughput is compared
  with the (scaled) limit: the goal is at least 90 %.
* sequential: the same hook call in a plain loop over ``--sequential`` records, extrapolated.
* mapped: ``PrefineryCreateUserOperator.partial(...).expand(email=[...])`` under ``dag.test()`` in a fresh
  Airflow home (SQLite), two sizes timed to separate start-up from per-task cost, extrapolated.
* memory: peak RSS of a ``--memory-large`` batch over that of a ``--memory-small`` one, each in a fresh
  subprocess (a profile sync with ``update_user``, no latency, no limit: memory, not time, is measured);
  the goal is at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MAPPED_DAG = """
import datetime, os
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_prefinery.operators.prefinery import PrefineryCreateUserOperator

for name, size_of in (("warmup", "small"), ("small", "small"), ("large", "large")):
    size, prefix = int(os.environ[f"BENCH_{size_of.upper()}"]), os.environ["BENCH_PREFIX"] + name
    with DAG(f"bench_mapped_{name}", schedule=None, catchup=False,
             start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) as dag:
        PrefineryCreateUserOperator.partial(task_id="create_user").expand(
            email=[f"{prefix}.{i}@example.org" for i in range(size)]
        )
    globals()[f"dag_{name}"] = dag
"""


# ----------------------------------------------------------------------------------------------- helpers
def connection(url: str, key: str, *, limit: float | None, scale: float) -> str:
    extra: dict[str, Any] = {"beta_id": 1001, "rate_limit_scale": scale}
    if limit:
        extra["write_rate_limit"] = limit
    return json.dumps({"conn_type": "prefinery", "password": key, "host": url, "extra": extra})


def records(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"email": f"{prefix}.{i}@example.org", "status": "applied", "profile": {"first_name": f"U{i}"}}
        for i in range(count)
    ]


def run_batch_operator(prefix: str, count: int, concurrency: int) -> dict[str, Any]:
    from airflow_provider_prefinery.operators.prefinery import PrefineryCreateUserOperator

    op = PrefineryCreateUserOperator(
        task_id="bench", records=records(prefix, count), max_concurrency=concurrency
    )
    start = time.perf_counter()
    report = op.execute({})
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "counts": report["counts"], "requests": op.hook.stats["requests"]}


# ----------------------------------------------------------------------------------------------- workers
def worker_memory(count: int, concurrency: int) -> None:
    """Run one batch and print its peak RSS (a fresh process per size, so the two compare fairly).

    A profile sync (``update_user`` over the demo seed's users): the same batch path as create_user, at a
    constant cost per request on the sandbox (creating 20,000 users there slows down as the table grows).
    """
    from airflow_provider_prefinery.operators.prefinery import PrefineryUpdateUserOperator
    from airflow_provider_prefinery.sandbox.seeds import DEMO_FIRST_USER_ID, DEMO_USER_COUNT

    updates = [
        {"user_id": DEMO_FIRST_USER_ID + i % DEMO_USER_COUNT, "profile": {"custom_var2": f"sync-{i}"}}
        for i in range(count)
    ]
    op = PrefineryUpdateUserOperator(task_id="bench", records=updates, max_concurrency=concurrency)
    start = time.perf_counter()
    report = op.execute({})
    elapsed = time.perf_counter() - start
    assert report["counts"]["succeeded"] == count, report["counts"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mb": peak_kb / 1024, "elapsed": elapsed}))


def worker_mapped() -> None:
    """Time ``dag.test()`` of the small and the large mapped DAG (Airflow env set by the parent)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    times = {}
    for name in ("warmup", "small", "large"):  # the first run pays one-off start-up costs: discarded
        dag = bag.get_dag(f"bench_mapped_{name}")
        start = time.perf_counter()
        run = dag.test()
        times[name] = time.perf_counter() - start
        assert run.state == "success", run.state
    print(json.dumps(times))


# ----------------------------------------------------------------------------------------------- phases
def phase_mapped(env: dict[str, str], small: int, large: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="prefinery-bench-home-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "bench_mapped.py").write_text(textwrap.dedent(MAPPED_DAG))
    env = {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BENCH_SMALL": str(small),
        "BENCH_LARGE": str(large),
        "BENCH_PREFIX": f"mapped{int(time.time())}",
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    done = subprocess.run(
        [sys.executable, __file__, "--worker", "mapped"], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"the mapped-task run failed:\n{done.stderr[-3000:]}\n{done.stdout[-3000:]}")
    out = done.stdout
    times = json.loads(out.strip().splitlines()[-1])
    per_task = (times["large"] - times["small"]) / (large - small)
    return {"small_s": times["small"], "large_s": times["large"], "per_task_s": per_task}


def phase_memory(env: dict[str, str], count: int, concurrency: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", "memory", "--records", str(count),
         "--concurrency", str(concurrency)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.worker == "memory":
        return worker_memory(args.records, args.concurrency)
    if args.worker == "mapped":
        return worker_mapped()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="prefinery-bench-home-"))
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    limit = args.limit * args.scale
    began = time.perf_counter()
    with run_sandbox(seed="empty") as sb:
        control = sb.control

        def setting(latency_ms: float, server_limit: float | None, seed: str = "empty") -> None:
            control.reset(seed)
            control.configure(scale=args.scale)
            rule = {"limit": server_limit, "per_seconds": 1} if server_limit else None
            control.set_behaviour("prefinery", "write", latency_ms=latency_ms, rate_limit=rule)

        hook_limit = args.limit * args.hook_limit_ratio  # headroom for arrival jitter at the server
        limited = connection(sb.url, sb.api_key, limit=hook_limit, scale=args.scale)
        os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"] = limited

        # batch
        setting(args.latency_ms, args.limit)
        batch = run_batch_operator("batch", args.records, args.concurrency)
        batch_rate = args.records / batch["elapsed"]
        server = control.stats()
        assert batch["counts"]["succeeded"] == args.records, batch["counts"]
        assert len(control.users()) == args.records
        if args.batch_only:
            share, too_many = batch_rate / limit, server["rate_limited"]
            print(f"batch: {batch_rate:.1f} records/s = {share:.1%}, 429s: {too_many}")
            return

        # sequential loop of the same hook calls
        hook = PrefineryHook(write_rate_limit=hook_limit, rate_limit_scale=args.scale)
        start = time.perf_counter()
        for record in records("seq", args.sequential):
            hook.create_user(**record)
        seq_rate = args.sequential / (time.perf_counter() - start)

        # one mapped task per record under dag.test()
        mapped = phase_mapped(
            {**os.environ, "AIRFLOW_CONN_PREFINERY_DEFAULT": limited}, args.mapped_small, args.mapped
        )
        mapped_total = mapped["small_s"] + (args.records - args.mapped_small) * mapped["per_task_s"]

        # memory: fresh subprocess per size, no latency or limit
        setting(0, None, "demo")
        unlimited = {
            **os.environ,
            "AIRFLOW_CONN_PREFINERY_DEFAULT": connection(sb.url, sb.api_key, limit=None, scale=args.scale),
        }
        small = phase_memory(unlimited, args.memory_small, args.concurrency)
        setting(0, None, "demo")
        large = phase_memory(unlimited, args.memory_large, args.concurrency)

    batch_s = batch["elapsed"]
    setting_text = (
        f"{args.records:,} create_user, +{args.latency_ms:g} ms/write, "
        f"limit {args.limit:g}/s x {args.scale:g} = {limit:g}/s"
    )
    batch_text = (
        f"{batch_s:.1f} s, {batch_rate:.1f} records/s = {batch_rate / limit:.1%} of the limit "
        f"(max_concurrency={args.concurrency}; {batch['requests']:,} requests, "
        f"{server['rate_limited']} answered 429)"
    )
    seq_text = (
        f"{seq_rate:.1f} records/s over {args.sequential}: {args.records / seq_rate:.0f} s "
        f"for {args.records:,} -> batch is {batch_rate / seq_rate:.1f}x faster"
    )
    mapped_text = (
        f"dag.test(): {mapped['small_s']:.1f} s for {args.mapped_small}, {mapped['large_s']:.1f} s "
        f"for {args.mapped} ({mapped['per_task_s']:.2f} s/task): ~{mapped_total:.0f} s for "
        f"{args.records:,} -> batch is {mapped_total / batch_s:.0f}x faster"
    )
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    rss_text = (
        f"{small['peak_rss_mb']:.0f} MB for {args.memory_small:,} update_user, "
        f"{large['peak_rss_mb']:.0f} MB for {args.memory_large:,} update_user -> ratio {ratio:.2f} "
        f"({args.memory_large / large['elapsed']:.0f} records/s unthrottled)"
    )
    rows = [
        ("setting", setting_text),
        ("batch operator", batch_text),
        ("sequential loop", seq_text),
        ("mapped tasks", mapped_text),
        ("peak RSS", rss_text),
        ("total run time", f"{time.perf_counter() - began:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    ok = batch_rate / limit >= 0.9 and ratio <= 1.5
    print(f"{'goals':<{width}}  {'met' if ok else 'NOT met'} (throughput >= 90 % of limit, RSS ratio <= 1.5)")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--limit", type=float, default=20.0, help="write limit, requests/s (before --scale)")
    p.add_argument("--scale", type=float, default=4.0, help="one factor on every limit (server and hook)")
    p.add_argument(
        "--hook-limit-ratio",
        type=float,
        default=0.97,
        help="the hook's write_rate_limit as a share of the server's limit (headroom for arrival jitter)",
    )
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--batch-only", action="store_true", help="run the batch phase only")
    p.add_argument("--concurrency", type=int, default=16, help="max_concurrency of the batch operator")
    p.add_argument("--sequential", type=int, default=150, help="records timed in the sequential loop")
    p.add_argument("--mapped", type=int, default=120, help="mapped tasks in the large dag.test() run")
    p.add_argument("--mapped-small", type=int, default=20, help="mapped tasks in the small dag.test() run")
    p.add_argument("--memory-small", type=int, default=2000)
    p.add_argument("--memory-large", type=int, default=20000)
    p.add_argument("--worker", choices=("memory", "mapped"), help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    main()
