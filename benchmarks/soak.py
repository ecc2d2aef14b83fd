"""Fault soak printer: the sync and every non-idempotent write at once, against the sandbox under faults.

Run: ``.venv/bin/python benchmarks/soak.py [--scale 10] [--seed N]``. Starts its own sandbox (demo seed),
runs ``tests/reliability/soak.py`` (the same code the test suite asserts on) and prints the Markdown table:
operations, faults injected by kind (the sandbox's counters), retries (the hooks' counters), records failed
and reported, lost and duplicated. Exits 1 when anything was lost or duplicated or a promise was broken.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airflow_provider_prefinery.sandbox.testing import run_sandbox  # noqa: E402
from tests.reliability.soak import SoakConfig, run_soak, soak_connections  # noqa: E402


def quiet() -> None:
    """Every retry and every reported record is logged: far too many lines for a printer."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    logging.disable(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SOAK_SCALE", "1")))
    parser.add_argument("--seed", type=int, default=SoakConfig.fault_seed)
    args = parser.parse_args(argv)
    quiet()
    config = SoakConfig(scale=args.scale, fault_seed=args.seed)
    with run_sandbox(seed="demo") as server:
        os.environ.update(soak_connections(server, config))
        result = run_soak(server, config)
    print(result.summary())
    print()
    print(result.table())
    broken = [f"{row.workload}: {v}" for row in result.rows for v in row.violations]
    for line in broken:
        print(f"BROKEN: {line}")
    total = result.total()
    return 1 if broken or total.lost or total.duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
