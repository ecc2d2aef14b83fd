"""Benchmark the Mailchimp -> Prefinery sync against the sandbox, in one run (about 3-4 minutes).

    .venv/bin/python benchmarks/mailchimp_sync.py [--scale 2] [--changed 3000] [--naive 200]

Setting (``reference/*.md``): 150 ms latency on every Prefinery and Mailchimp call, Prefinery writes
limited to 50/s, LIST users to 60/min per project (documented), Mailchimp to 10 connections per key. To keep
the run short every limit is multiplied by ``--scale`` on both sides (server and client); the figures
printed are ratios to the scaled limits, which do not depend on the factor.

1. Cold start: 3,000 changed members while Prefinery already holds 1,600 users and the id index is
   missing: the index is rebuilt by one paged listing (its cost printed), then the writes.
2. Steady state, the next window: 3,000 changed members (1,000 new, 1,000 profile edits, 500
   unsubscribed, 500 cleaned) plus 500 members re-saved without a change: writes/s against the write
   limit, Prefinery requests per changed member, requests for the unchanged ones.
3. Naive: a sample of members synced the obvious way (one LIST by e-mail, then one write, sequentially),
   measured in the same run against the same limits: the speed ratio.
4. Memory: peak RSS of a dry run planning 10,000 and 100,000 members, each in a fresh subprocess.
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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="prefinery-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

LATENCY_MS = 150
WRITE_LIMIT = 50  # per second, before scaling
CLIENT_SHARE = 0.97  # the client is configured a little under the server limit, a margin for timer jitter
LIST_USERS_LIMIT = 60  # per minute (documented), before scaling
BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
W0, W1, W2, W3 = (BASE + timedelta(days=d) for d in (0, 1, 2, 3))
W4 = BASE + timedelta(days=4)


def stamp(moment: datetime, offset: int = 0) -> str:
    return (moment + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


# --------------------------------------------------------------------------------------------------
# Data (written straight into a sandbox state file before the server starts)
# --------------------------------------------------------------------------------------------------
def build_state(path: str, key: str, changed: int, naive: int) -> dict[str, int]:
    """Prefinery users and Mailchimp members for the cold window W1 and the naive window W3.

    With the default 3,000: Prefinery holds 1,600 users, all also subscribed in Mailchimp (in sync, in W0).
    W1 changes 3,000 members: 1,000 users' names, 500 users unsubscribe, 1,000 new subscribers, 500 new
    addresses cleaned. W3 (the naive sample): 100 name edits and 100 new subscribers.
    """
    from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID
    from airflow_provider_prefinery.sandbox.state import Store

    third, sixth = changed // 3, changed // 6  # 1,000 and 500 for 3,000
    half = naive // 2
    users = third + sixth + half
    store = Store(path, [key], "empty")
    store.db.execute("BEGIN")
    members: list[tuple[str, str | None, dict[str, str] | None, str]] = []
    for i in range(users):  # everyone already in sync, long ago
        profile = {"first_name": f"F{i}", "last_name": f"L{i}"}
        store.prefinery.users.create(DEMO_BETA_ID, {"email": f"user{i}@bench.example", "profile": profile})
        members.append(
            (f"user{i}@bench.example", "subscribed", {"FNAME": f"F{i}", "LNAME": f"L{i}"}, stamp(W0, i))
        )
    for i in range(third):
        members.append((f"user{i}@bench.example", None, {"LNAME": f"Edited{i}"}, stamp(W1, i)))
    for i in range(third, third + sixth):
        members.append((f"user{i}@bench.example", "unsubscribed", None, stamp(W1, i)))
    for n in range(third):
        members.append(
            (
                f"new{n}@w1.bench.example",
                "subscribed",
                {"FNAME": f"N{n}", "LNAME": "w1"},
                stamp(W1, 2 * third + n),
            )
        )
    for n in range(changed - 2 * third - sixth):
        members.append((f"bounced{n}@w1.bench.example", "cleaned", None, stamp(W1, 3 * third + n)))
    for n, i in enumerate(range(third + sixth, users)):
        members.append((f"user{i}@bench.example", None, {"LNAME": f"Naive{i}"}, stamp(W3, n)))
    for n in range(naive - half):
        members.append(
            (f"new{n}@w3.bench.example", "subscribed", {"FNAME": "N", "LNAME": "w3"}, stamp(W3, naive + n))
        )
    for email, status, merge, changed_at in members:
        store.mailchimp.upsert_member(
            DEMO_LIST_ID, email, status=status, merge_fields=merge, last_changed=changed_at
        )
    store.db.execute("COMMIT")
    store.db.close()
    return {"users": users, "unchanged": sixth}


def change_for_steady_state(control: Any, changed: int) -> None:
    """W2, through the control API: members the cold run synced change again, others are new.

    1,000 of W1's new subscribers edit their names, 500 of W1's edited users unsubscribe, 1,000 new
    subscribers, 500 new addresses cleaned, and 500 in-sync members are re-saved with no change.
    """
    third, sixth = changed // 3, changed // 6
    for n in range(third):
        control.mailchimp_member(
            f"new{n}@w1.bench.example", merge_fields={"LNAME": "w2"}, last_changed=stamp(W2, n)
        )
    for i in range(sixth):
        control.mailchimp_member(
            f"user{i}@bench.example", status="unsubscribed", last_changed=stamp(W2, third + i)
        )
    for n in range(third):
        merge = {"FNAME": f"M{n}", "LNAME": "w2"}
        control.mailchimp_member(
            f"new{n}@w2.bench.example", merge_fields=merge, last_changed=stamp(W2, changed + n)
        )
    for n in range(changed - 2 * third - sixth):
        control.mailchimp_member(
            f"bounced{n}@w2.bench.example", status="cleaned", last_changed=stamp(W2, 2 * changed + n)
        )
    for i in range(sixth, 2 * sixth):  # edited in W1 and synced since: re-saved, nothing new
        control.mailchimp_member(f"user{i}@bench.example", last_changed=stamp(W2, 3 * changed + i))


def build_members_only(path: str, key: str, count: int) -> None:
    """An audience of ``count`` subscribed members, one second apart from W0, and an empty project."""
    from airflow_provider_prefinery.sandbox.seeds import DEMO_LIST_ID
    from airflow_provider_prefinery.sandbox.state import Store

    store = Store(path, [key], "empty")
    store.db.execute("BEGIN")
    for i in range(count):
        merge = {"FNAME": f"First{i}", "LNAME": f"Last{i}"}
        email = f"member{i}@big.bench.example"
        store.mailchimp.upsert_member(
            DEMO_LIST_ID, email, status="subscribed", merge_fields=merge, last_changed=stamp(W0, i)
        )
    store.db.execute("COMMIT")
    store.db.close()


# --------------------------------------------------------------------------------------------------
# Running the sync
# --------------------------------------------------------------------------------------------------
def connect(url: str, key: str, scale: float) -> None:
    """Point the default connections at the sandbox, with the client-side limits scaled like the server's."""
    from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_LIST_ID

    extra = {
        "beta_id": DEMO_BETA_ID,
        "write_rate_limit": WRITE_LIMIT * CLIENT_SHARE,
        "rate_limit_scale": scale,
    }
    os.environ["AIRFLOW_CONN_PREFINERY_DEFAULT"] = json.dumps(
        {"conn_type": "prefinery", "password": key, "host": url, "extra": extra}
    )
    os.environ["AIRFLOW_CONN_MAILCHIMP_DEFAULT"] = json.dumps(
        {"conn_type": "mailchimp", "password": key, "host": url, "extra": {"list_id": DEMO_LIST_ID}}
    )


class MemoryStore:
    """The id index kept between the benchmark's runs (in a DAG it is an Airflow Variable)."""

    name = "benchmark"
    text: str | None = None

    def load(self) -> Any:
        from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex

        return IdIndex.decode(self.text) if self.text else None

    def save(self, index: Any) -> None:
        self.text = index.for_saving(self.load()).encode()


def sync(store: MemoryStore | None, since: datetime, before: datetime, **kwargs: Any) -> dict[str, Any]:
    """Run the operator for one window (outside a DAG: ``execute`` with the window given)."""
    from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import MailchimpToPrefineryOperator

    class Operator(MailchimpToPrefineryOperator):
        def index_store(self, beta_id: int) -> Any:
            return store if store is not None else super().index_store(beta_id)

    index_variable = None if store is None else "unused"
    op = Operator(task_id="bench", since=since.isoformat(), before=before.isoformat(), progress_interval=0,
                  index_variable=index_variable, **kwargs)  # fmt: skip
    return op.execute({})


def naive_sync(since: datetime, before: datetime) -> dict[str, Any]:
    """The obvious way: for each member, one LIST by e-mail to find the user, then one write; sequential."""
    from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

    prefinery, mailchimp = PrefineryHook(), MailchimpHook()
    started = time.monotonic()
    members = 0
    for member in mailchimp.list_members(since_last_changed=since, before_last_changed=before):
        members += 1
        email, merge = member["email_address"], member["merge_fields"]
        profile = {"first_name": merge.get("FNAME", ""), "last_name": merge.get("LNAME", "")}
        user = prefinery.find_user(email)
        if member["status"] != "subscribed":
            prefinery.create_suppression(email, reason="Unsubscribe")
        elif user is None:
            prefinery.create_user(email, profile=profile)
        else:
            prefinery.update_user(user["id"], profile=profile)
    return {
        "members": members,
        "seconds": time.monotonic() - started,
        "requests": prefinery.stats["requests"],
    }


@contextlib.contextmanager
def logged_to(path: Path) -> Iterator[None]:
    """Send everything written to stdout/stderr (Airflow's task log included) to ``path`` meanwhile."""
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
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def rss_child(count: int) -> dict[str, Any]:
    """(In a fresh subprocess) plan ``count`` members in a dry run; return peak RSS and timings."""
    started = time.monotonic()
    report = sync(None, W0, W0 + timedelta(seconds=count), dry_run=True)
    return {
        "planned": report["counts"]["created"],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": time.monotonic() - started,
    }


def measure_rss(url: str, key: str, count: int, log: Path) -> dict[str, Any]:
    env = {**os.environ, "BENCH_URL": url, "BENCH_KEY": key, "BENCH_LOG": str(log)}
    command = [sys.executable, __file__, "--rss-child", str(count)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def changed_of(result: dict[str, Any]) -> int:
    return sum(result["counts"][k] for k in ("created", "updated", "suppressed"))


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
def run_sync_phases(tmp: Path, log: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Cold start, steady state and the naive sample against one sandbox with latency and limits."""
    from airflow_provider_prefinery.sandbox.seeds import DEFAULT_API_KEY
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    started = time.monotonic()
    sizes = build_state(str(tmp / "sync.db"), DEFAULT_API_KEY, args.changed, args.naive)
    print(f"  (state prepared in {time.monotonic() - started:.0f} s: Prefinery {sizes['users']:,} users)")
    write_limit = WRITE_LIMIT * args.scale
    with run_sandbox(seed="empty", db=str(tmp / "sync.db"), extra_args=["--keep"]) as sb:
        sb.control.configure(scale=args.scale)
        sb.control.set_latency("prefinery", LATENCY_MS)
        sb.control.set_latency("mailchimp", LATENCY_MS)
        sb.control.set_rate_limit("prefinery", "write", WRITE_LIMIT)
        connect(sb.url, DEFAULT_API_KEY, args.scale)
        store = MemoryStore()
        # Workers: the limit x latency (what must be in flight) x 1.4. More only add threads that wake on
        # every token and lose it (the pacing then runs late); fewer cannot keep the limit busy.
        concurrency = max(10, round(write_limit * LATENCY_MS / 1000 * 1.4))
        with logged_to(log):
            cold = sync(store, W1, W2, max_concurrency=concurrency)
        change_for_steady_state(sb.control, args.changed)
        with logged_to(log):
            steady = sync(store, W2, W3, max_concurrency=concurrency)
            naive = naive_sync(W3, W4)
        return {"sizes": sizes, "cold": cold, "steady": steady, "naive": naive, "stats": sb.control.stats()}


def run_memory_phase(tmp: Path, log: Path, small_n: int, large_n: int) -> dict[str, Any]:
    from airflow_provider_prefinery.sandbox.seeds import DEFAULT_API_KEY
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    build_members_only(str(tmp / "big.db"), DEFAULT_API_KEY, large_n)
    with run_sandbox(seed="empty", db=str(tmp / "big.db"), extra_args=["--keep"]) as big:
        small = measure_rss(big.url, DEFAULT_API_KEY, small_n, log)
        large = measure_rss(big.url, DEFAULT_API_KEY, large_n, log)
    return {"small": small, "large": large, "ratio": large["rss_mb"] / small["rss_mb"]}


def print_sync(r: dict[str, Any], write_limit: float) -> dict[str, float]:
    """Print the figures as ratios to the (scaled) limits, so the scale factor drops out."""
    cold, steady, naive, users = r["cold"], r["steady"], r["naive"], r["sizes"]["users"]
    index, cold_changed = cold["index"], changed_of(cold)
    pages, cold_writes_s = index["rebuild_requests"], cold["seconds"] - index["rebuild_seconds"]
    print(f"\n1. Cold start: {cold_changed:,} changed members; no id index; Prefinery holds {users:,} users")
    print(
        f"   index rebuilt from {pages} LIST requests ({index['entries']:,} e-mails) in "
        f"{index['rebuild_seconds']:.1f} s; at the documented 60/min: {pages / 60:.1f} min, once"
    )
    print(
        f"   then {cold_changed:,} writes in {cold_writes_s:.1f} s ({cold_changed / cold_writes_s:.1f}/s); "
        f"{cold['requests']['prefinery'] / cold_changed:.3f} requests per changed member, listing included"
    )

    changed = changed_of(steady)
    rate, per_member = changed / steady["seconds"], steady["requests"]["prefinery"] / changed
    unchanged = steady["counts"]["unchanged"]
    print(f"\n2. Steady state: {changed:,} changed members, {unchanged:,} re-saved as they were")
    print(
        f"   {steady['requests']['prefinery']:,} Prefinery requests in {steady['seconds']:.1f} s (the task): "
        f"{rate:.1f} writes/s = {100 * rate / write_limit:.1f} % of the write limit (target >= 90 %)"
    )
    print(
        f"   {per_member:.3f} Prefinery requests per changed member (target <= 1.1), none for unchanged ones"
    )
    print(f"   by kind: {steady['requests']['by_kind']}")

    naive_rate, naive_per = naive["members"] / naive["seconds"], naive["requests"] / naive["members"]
    print(
        f"\n3. Naive (one LIST by e-mail, then one write, sequential), {naive['members']} members: "
        f"{naive['seconds']:.1f} s = {naive_rate:.2f} members/s, {naive_per:.2f} requests per member"
    )
    print(
        f"   the sync is {rate / naive_rate:.0f}x faster ({rate:.1f} vs {naive_rate:.2f} members/s) "
        f"with {naive_per / per_member:.1f}x fewer requests per member"
    )
    stats = r["stats"]
    print(
        f"   sandbox: {stats['rate_limited']} requests over a limit (429), "
        f"{stats['in_flight_rejected']} over Mailchimp's 10 connections"
    )
    return {"rate": rate / write_limit, "per_member": per_member}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=2.0, help="multiply every limit (default 2)")
    parser.add_argument(
        "--changed", type=int, default=3000, help="changed members per window (default 3,000)"
    )
    parser.add_argument("--naive", type=int, default=160, help="members in the naive sample (default 160)")
    parser.add_argument("--rss", type=int, nargs=2, default=(10_000, 100_000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        connect(os.environ["BENCH_URL"], os.environ["BENCH_KEY"], 1.0)
        with logged_to(Path(os.environ["BENCH_LOG"])):
            result = rss_child(args.rss_child)
        print(json.dumps(result))
        return 0

    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="prefinery-bench-"))
    log = tmp / "benchmark.log"
    write_limit = WRITE_LIMIT * args.scale
    print(
        f"Mailchimp -> Prefinery sync benchmark. Limits x{args.scale:g}: Prefinery writes {write_limit:g}/s, "
        f"LIST users {LIST_USERS_LIMIT * args.scale:g}/min; latency {LATENCY_MS} ms on every call."
    )
    figures = print_sync(run_sync_phases(tmp, log, args), write_limit)

    memory = run_memory_phase(tmp, log, *args.rss)
    small, large = memory["small"], memory["large"]
    print("\n4. Memory, dry run (planning only), each in a fresh process:")
    print(
        f"   {small['planned']:,} members: peak RSS {small['rss_mb']:.0f} MB ({small['seconds']:.1f} s); "
        f"{large['planned']:,} members: {large['rss_mb']:.0f} MB ({large['seconds']:.1f} s); "
        f"ratio {memory['ratio']:.2f} (target <= 1.5)"
    )
    print(f"\nDone in {time.monotonic() - began:.0f} s. Task logs: {log}")
    met = figures["rate"] >= 0.9 and figures["per_member"] <= 1.1 and memory["ratio"] <= 1.5
    print("All targets met." if met else "TARGET MISSED (see above).")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
