"""Print what importing the Prefinery hook adds to DAG parsing, over a bare ``import airflow.sdk``.

Two measures from fresh interpreters, interleaved so machine load hits both alike: the hook module's
cumulative time from ``python -X importtime`` (everything it newly pulls in, after ``airflow.sdk``), and
the wall-clock difference of the two commands (best of N, the least disturbed run).
Target: under 150 ms added on the reference machine (2 cores).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

RUNS = 7
MODULE = "airflow_provider_prefinery.hooks.prefinery"
BASE = "import airflow.sdk"
WITH_HOOK = f"import airflow.sdk; import {MODULE}"


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def hook_cumulative_us() -> int:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WITH_HOOK], capture_output=True, text=True
    )
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)$", line)
        if match and match.group(3) == MODULE:
            return int(match.group(2))
    raise RuntimeError("the hook module did not appear in -X importtime output")


def main() -> None:
    wall(BASE)  # warm the OS file cache
    base, hook, cumulative = [], [], []
    for _ in range(RUNS):
        base.append(wall(BASE))
        hook.append(wall(WITH_HOOK))
        cumulative.append(hook_cumulative_us())
    added_wall = (min(hook) - min(base)) * 1000
    added_import = min(cumulative) / 1000
    print(f"import airflow.sdk                      : {min(base) * 1000:7.0f} ms (best of {RUNS})")
    print(f"import airflow.sdk + the Prefinery hook : {min(hook) * 1000:7.0f} ms (best of {RUNS})")
    print(f"added, wall clock                       : {added_wall:7.0f} ms")
    print(f"added, -X importtime cumulative         : {added_import:7.0f} ms  (target < 150 ms)")
    print(f"ratio (wall)                            : {min(hook) / min(base):7.2f}x")


if __name__ == "__main__":
    main()
