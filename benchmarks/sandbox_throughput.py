"""Sandbox throughput: 50 concurrent keep-alive clients against SHOW user and LIST users on loopback.

Run: ``.venv/bin/python benchmarks/sandbox_throughput.py [--clients 50] [--requests 20000]``. Starts the
sandbox as a subprocess (demo seed, limits scaled up so the documented 60/min does not throttle the LIST
part, no latency or faults), warms up, then prints sustained requests/s and the error count. Clients are
threads over ``http.client`` (the lightest stdlib client, so the measurement is the server's, not a client
library's); on a 2-core machine the clients and the server share the CPUs.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID, DEMO_FIRST_USER_ID, DEMO_USER_COUNT
from airflow_provider_prefinery.sandbox.testing import run_sandbox


def paths(list_every: int) -> itertools.cycle[str]:
    """Mostly SHOW user (over all ids), with a LIST users page every ``list_every`` requests."""
    out = []
    for n in range(DEMO_USER_COUNT):
        if list_every and n % list_every == 0:
            out.append(f"/api/v2/betas/{DEMO_BETA_ID}/testers.json?page={n % 13 + 1}")
        else:
            out.append(f"/api/v2/betas/{DEMO_BETA_ID}/testers/{DEMO_FIRST_USER_ID + n}.json")
    return itertools.cycle(out)


def worker(url: str, key: str, todo: list[str], statuses: Counter[int], lock: threading.Lock) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    local: Counter[int] = Counter()
    for path in todo:
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            local[response.status] += 1
        except (OSError, http.client.HTTPException):
            local[0] += 1
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.close()
    with lock:
        statuses.update(local)


def hammer(url: str, key: str, clients: int, total: int, list_every: int) -> tuple[float, Counter[int]]:
    source = paths(list_every)
    per_client = [[next(source) for _ in range(total // clients)] for _ in range(clients)]
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(url, key, todo, statuses, lock)) for todo in per_client]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--list-every", type=int, default=10, help="one LIST page per N requests (0: none)")
    args = parser.parse_args()
    with run_sandbox(extra_args=["--rate-limit-scale", "100000"]) as sb:
        hammer(sb.url, sb.api_key, args.clients, 2_000, args.list_every)  # warm-up: connections, caches
        elapsed, statuses = hammer(sb.url, sb.api_key, args.clients, args.requests, args.list_every)
    done = sum(statuses.values())
    errors = done - statuses[200]
    print(
        f"{done} requests from {args.clients} concurrent clients in {elapsed:.2f}s: "
        f"{done / elapsed:,.0f} requests/s sustained; errors: {errors} {dict(statuses)}"
    )


if __name__ == "__main__":
    main()
