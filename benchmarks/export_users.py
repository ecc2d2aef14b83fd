"""Benchmark the users export against the sandbox's ``bulk`` seed (100,000 users), in one run (~6 min).

    .venv/bin/python benchmarks/export_users.py [--scale 25] [--format parquet]

Setting (``reference/prefinery-api.md``): LIST users is limited to 60/min per project, on the server (the
sandbox's documented default, answering 429 past it) and on the client (the hook's limiter). To keep the run
short both are multiplied by ``--scale``, one common factor, as the other benchmarks do through the
connection's ``rate_limit_scale`` and the sandbox's ``configure(scale=...)``; the figures printed are ratios
to the scaled limit, and the unscaled time is printed beside them. No latency is added: at the real limit a
page is asked for once a second, far slower than any answer comes.

1. ``PrefineryToObjectStorageOperator`` exports the 100,000 users of project 1001 to a file, in a fresh
   subprocess: request rate as a share of the limit (the limit is the floor of the export's time), the
   unscaled time, peak RSS, and the file's rows and distinct ids against the sandbox's own count.
2. The same for the 10,000 users of project 1003, in its own subprocess: the peak RSS ratio.
3. A hand-written loop over ``PrefineryHook.list_users`` writing the same format (rows collected, then one
   write: how a ``@task`` usually does it), in its own subprocess, against the same limits: its time and RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="prefinery-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

LIST_USERS_LIMIT = 60  # per minute and project, documented; before scaling
PER_PAGE = 25  # Prefinery's page size (X-Pagination per_page)
RSS_RATIO_TARGET = 1.3
RATE_TARGET = 0.95


@contextlib.contextmanager
def logged_to(path: Path) -> Iterator[None]:
    """Send stdout/stderr (Airflow's task log included) to ``path`` meanwhile: the child prints one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def connect(url: str, key: str, beta_id: int, scale: float) -> None:
    extra = {"beta_id": beta_id, "rate_limit_scale": scale}
    os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"] = json.dumps(
        {"conn_type": "prefinery", "password": key, "host": url, "extra": extra}
    )


# --------------------------------------------------------------------------------------------------
# The children: one export each, in a fresh process
# --------------------------------------------------------------------------------------------------
def operator_child(path: str) -> dict[str, Any]:
    from airflow_provider_prefinery.transfers.prefinery_to_object_storage import (
        PrefineryToObjectStorageOperator,
    )

    op = PrefineryToObjectStorageOperator(task_id="bench", resource="users", path=f"file://{path}")
    return op.execute({})


def hand_loop_child(path: str, file_format: str) -> dict[str, Any]:
    """What a user writes without the operator: page through ``list_users``, then write the file."""
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

    hook = PrefineryHook()
    started = time.monotonic()
    users = list(hook.list_users())
    if file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(users), path)
    elif file_format == "csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(users[0]))
            writer.writeheader()
            writer.writerows(users)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(user) + "\n" for user in users)
    return {"rows": len(users), "requests": hook.stats["requests"], "seconds": time.monotonic() - started}


def run_child(
    kind: str, path: Path, beta_id: int, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--path", str(path), "--beta-id", str(beta_id),
               "--scale", str(args.scale), "--format", args.format]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def file_rows(path: Path, file_format: str) -> tuple[int, int]:
    """Rows in the file and distinct ids among them."""
    if file_format == "parquet":
        import pyarrow.parquet as pq

        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    elif file_format == "csv":
        import csv

        with path.open(newline="", encoding="utf-8") as fh:
            ids = [row["id"] for row in csv.DictReader(fh)]
    else:
        with path.open(encoding="utf-8") as fh:
            ids = [json.loads(line)["id"] for line in fh]
    return len(ids), len(set(ids))


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=25.0, help="multiply the LIST limit (default 25)")
    parser.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet")
    parser.add_argument("--child", choices=("operator", "hand"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--beta-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        connect(os.environ["BENCH_URL"], os.environ["BENCH_KEY"], args.beta_id, args.scale)
        with logged_to(Path(os.environ["BENCH_LOG"])):
            started = time.monotonic()
            if args.child == "operator":
                result = operator_child(args.path)
            else:
                result = hand_loop_child(args.path, args.format)
            result["wall"] = time.monotonic() - started
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    return run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> int:
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
    from airflow_provider_prefinery.hooks.rest import TokenBucket
    from airflow_provider_prefinery.sandbox import seeds
    from airflow_provider_prefinery.sandbox.state import Store
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="prefinery-bench-export-"))
    log = tmp / "benchmark.log"
    limit_per_s = LIST_USERS_LIMIT * args.scale / 60
    print(
        f"Users export benchmark ({args.format}). LIST users limited to {LIST_USERS_LIMIT}/min per project "
        f"x{args.scale:g} = {limit_per_s:g}/s on the sandbox and in the hook; no added latency."
    )
    started = time.monotonic()
    Store(None, seed="bulk").db.close()
    print(f"  seed 'bulk' ({seeds.BULK_USER_COUNT + seeds.BULK_SMALL_USER_COUNT:,} users) built and loaded "
          f"in {time.monotonic() - started:.1f} s")  # fmt: skip

    with run_sandbox(seed="bulk", startup_timeout=60) as sb:
        sb.control.configure(scale=args.scale)
        env = {**os.environ, "BENCH_URL": sb.url, "BENCH_KEY": sb.api_key, "BENCH_LOG": str(log)}
        connect(sb.url, sb.api_key, seeds.DEMO_BETA_ID, args.scale)
        counts = {
            beta: PrefineryHook().get_project(beta)["testers_count"]
            for beta in (seeds.DEMO_BETA_ID, seeds.BULK_SMALL_BETA_ID)
        }

        def export(kind: str, beta_id: int) -> tuple[dict[str, Any], Path]:
            sb.control.configure(scale=args.scale)  # each run starts with an empty server-side window
            path = tmp / f"{kind}-{beta_id}.{args.format}"
            result = run_child(kind, path, beta_id, args, env)
            return result, path

        small, small_path = export("operator", seeds.BULK_SMALL_BETA_ID)
        large, large_path = export("operator", seeds.DEMO_BETA_ID)
        hand, hand_path = export("hand", seeds.DEMO_BETA_ID)
        stats = sb.control.stats()

    pages = -(-counts[seeds.DEMO_BETA_ID] // PER_PAGE)
    rate = large["requests"] / large["seconds"]
    share = rate / limit_per_s
    rows, distinct = file_rows(large_path, args.format)
    small_rows, _ = file_rows(small_path, args.format)
    hand_rows, _ = file_rows(hand_path, args.format)
    floor = large["requests"] / limit_per_s
    unscaled = large["seconds"] * args.scale
    paced = TokenBucket(LIST_USERS_LIMIT, 60)  # the hook's limiter at scale 1
    paced_per_min = paced.rate * 60
    at_scale_one = (large["requests"] - paced.capacity) / paced.rate

    print(
        f"\n1. Operator, {counts[seeds.DEMO_BETA_ID]:,} users (project {seeds.DEMO_BETA_ID}), fresh process:"
    )
    print(
        f"   {large['requests']:,} requests (pages: {pages:,}) in {large['seconds']:.1f} s = {rate:.2f}/s = "
        f"{100 * share:.1f} % of the limit (target >= {100 * RATE_TARGET:.0f} %); the floor at the limit is "
        f"{floor:.1f} s"
    )
    print(
        f"   unscaled: {unscaled / 60:.1f} min (measured x{args.scale:g}; the floor at 60/min is "
        f"{large['requests'] / LIST_USERS_LIMIT:.1f} min). At scale 1 the hook paces LIST users at "
        f"{paced_per_min:.0f}/min (its burst of {paced.capacity:g} comes off the refill), so these requests "
        f"would take {at_scale_one / 60:.1f} min = {100 * paced_per_min / LIST_USERS_LIMIT:.0f} % of the "
        "limit"
    )
    same = rows == distinct == counts[seeds.DEMO_BETA_ID]
    print(
        f"   file: {rows:,} rows, {distinct:,} distinct ids, {large['bytes'] / 1e6:.1f} MB; "
        f"the sandbox holds {counts[seeds.DEMO_BETA_ID]:,} -> {'equal' if same else 'DIFFERENT'}"
    )
    ratio = large["rss_mb"] / small["rss_mb"]
    print(f"\n2. Peak RSS, each export in its own process (operator, {args.format}):")
    print(
        f"   {small_rows:,} users: {small['rss_mb']:.0f} MB ({small['seconds']:.1f} s); "
        f"{rows:,} users: {large['rss_mb']:.0f} MB; ratio {ratio:.2f} (target <= {RSS_RATIO_TARGET})"
    )
    print(f"\n3. Hand-written list_users loop writing the same {args.format} file, same limits:")
    print(
        f"   {hand_rows:,} rows, {hand['requests']:,} requests in {hand['seconds']:.1f} s "
        f"(operator {large['seconds']:.1f} s: {large['seconds'] / hand['seconds']:.2f}x its time); "
        f"peak RSS {hand['rss_mb']:.0f} MB (operator {large['rss_mb']:.0f} MB)"
    )
    print(f"   sandbox: {stats['requests']:,} requests logged, {stats['rate_limited']} answered 429")
    print(f"\nDone in {time.monotonic() - began:.0f} s. Task logs: {log}")
    met = (
        share >= RATE_TARGET
        and ratio <= RSS_RATIO_TARGET
        and same
        and small_rows == counts[seeds.BULK_SMALL_BETA_ID]
    )
    print("All targets met." if met else "TARGET MISSED (see above).")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
