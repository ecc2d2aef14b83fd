"""``make demo``: the Mailchimp -> Prefinery sync, end to end, in real Airflow against the local sandbox.

No account and no network: the sandbox (demo seed: 2,000 Mailchimp members, 322 Prefinery users) runs as a
subprocess on a free loopback port; Airflow runs from a throw-away ``AIRFLOW_HOME`` on SQLite with the
connections given as ``AIRFLOW_CONN_*`` variables. The demo runs the example DAG ``mailchimp_to_prefinery``
with ``airflow dags test`` three times: a first sync of the whole history, the next hour after some
audience activity (new subscribers, profile edits, unsubscribes, a cleaned address), and that hour again.
After each run it prints a short summary read from the task's XCom; Airflow's own log goes to a file.
The sandbox is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

DAG_ID = "mailchimp_to_prefinery"
TASK_ID = "sync_audience"
DAG_FILE = f"{DAG_ID}.py"
EPOCH = "1970-01-01T00:00:00Z"


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


# --------------------------------------------------------------------------------------------------
# Pieces (each usable and tested on its own)
# --------------------------------------------------------------------------------------------------
def find_dag_file(start: Path | None = None) -> Path:
    """The example DAG in the repository's ``dags_examples/`` (the demo runs from a clone)."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / "dags_examples" / DAG_FILE
        if candidate.is_file():
            return candidate
    raise DemoError(f"dags_examples/{DAG_FILE} not found above {here}: run the demo from a clone of the repo")


def prepare_home(root: Path, dag_file: Path) -> tuple[Path, Path]:
    """Create ``root/airflow`` (AIRFLOW_HOME) and ``root/dags`` holding only the sync DAG (fast parsing)."""
    home, dags = root / "airflow", root / "dags"
    home.mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    shutil.copy(dag_file, dags / DAG_FILE)
    return home, dags


def airflow_env(home: Path, dags: Path, connections: Mapping[str, str]) -> dict[str, str]:
    """The environment of every Airflow command: throw-away home on SQLite, the sandbox's connections."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        PYTHONUNBUFFERED="1",
        **connections,
    )
    return env


def run_airflow(args: Sequence[str], env: Mapping[str, str], log: TextIO, *, timeout: float = 600) -> float:
    """Run ``airflow <args>`` with its output appended to ``log``; return seconds; raise on failure."""
    log.write(f"\n===== airflow {' '.join(args)} =====\n")
    log.flush()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); see {log.name}")
    return time.monotonic() - started


def latest_report(db_path: Path, dag_id: str = DAG_ID, task_id: str = TASK_ID) -> dict[str, Any]:
    """The sync's report (its XCom return value) of the latest run, read from Airflow's SQLite database."""
    with sqlite3.connect(db_path) as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id=? AND task_id=? AND key='return_value' "
            "ORDER BY timestamp DESC LIMIT 1",
            (dag_id, task_id),
        ).fetchone()
    if row is None:
        raise DemoError(f"no report of {dag_id}.{task_id} in {db_path}")
    value: Any = row[0]
    while isinstance(value, (str, bytes)):  # JSON column: one or two layers of encoding
        value = json.loads(value)
    return value


def change_audience(control: Any, at: datetime) -> dict[str, int]:
    """Simulate an hour of audience activity through the sandbox's control API; return what was done."""
    stamp = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    members = control.mailchimp_members()
    subscribed = [m for m in members if m["status"] == "subscribed" and "@mail." in m["email_address"]]
    pending = [m for m in members if m["status"] == "pending"]
    new = [
        ("mila.verhoeven@example.net", "Mila", "Verhoeven"),
        ("joris.kuipers@example.net", "Joris", "Kuipers"),
        ("Lina.Haddad@Example.net", "Lina", "Haddad"),  # case differs from any later edit on purpose
    ]
    for email, first, last in new:
        control.mailchimp_member(email, merge_fields={"FNAME": first, "LNAME": last}, last_changed=stamp)
    control.mailchimp_member(pending[0]["email_address"], status="subscribed", last_changed=stamp)
    for member, last in zip(subscribed[:2], ("Janssen-Smit", "Okafor-Bos"), strict=True):
        control.mailchimp_member(member["email_address"], merge_fields={"LNAME": last}, last_changed=stamp)
    for member in subscribed[2:4]:
        control.mailchimp_member(member["email_address"], status="unsubscribed", last_changed=stamp)
    control.mailchimp_member(subscribed[4]["email_address"], status="cleaned", last_changed=stamp)
    control.mailchimp_member(subscribed[5]["email_address"], last_changed=stamp)  # re-saved, nothing new
    return {
        "new subscribers": 4,
        "profile edits": 2,
        "unsubscribes": 2,
        "cleaned": 1,
        "re-saved unchanged": 1,
    }


def _n(value: int) -> str:
    return f"{value:,}"


def format_window(report: Mapping[str, Any]) -> str:
    """``[since -> before)`` in short UTC form."""

    def short(value: str | None) -> str:
        if not value:
            return "..."
        moment = datetime.fromisoformat(value)
        return "the beginning" if moment.year <= 1970 else moment.strftime("%Y-%m-%d %H:%M UTC")

    window = report.get("window", {})
    return f"[{short(window.get('since'))} -> {short(window.get('before'))})"


def format_summary(title: str, report: Mapping[str, Any], wall_seconds: float) -> list[str]:
    """Three short lines for one run: what changed, what it cost, how long it took."""
    counts, requests = report["counts"], report["requests"]
    by_kind = requests.get("by_kind", {})
    writes = sum(by_kind.get(k, 0) for k in ("create_user", "update_user", "create_suppression"))
    lookups = by_kind.get("find_user", 0)
    listing = by_kind.get("index_listing", 0)
    changed = counts["created"] + counts["updated"] + counts["suppressed"]
    cost = f"{_n(writes)} writes"
    if listing:
        cost += f" + {_n(listing)} to build the id index"
    if lookups:
        cost += f" + {_n(lookups)} id lookups"
    per_member = f"; {requests['prefinery'] / changed:.2f} per changed member" if changed else ""
    outcome = ", ".join(
        f"{k} {_n(counts[k])}" for k in ("created", "updated", "suppressed", "unchanged", "skipped")
    )
    if counts["failed"]:
        outcome += f", FAILED {_n(counts['failed'])}"
    return [
        f"{title}  {format_window(report)}",
        f"  {outcome}",
        f"  requests: Prefinery {_n(requests['prefinery'])} ({cost}{per_member}), "
        f"Mailchimp {_n(requests['mailchimp'])}",
        f"  time: {report['seconds']:.1f} s in the task, {wall_seconds:.0f} s with Airflow's start-up",
    ]


# --------------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------------
def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same clean-up path as Ctrl-C


def run(out: TextIO = sys.stdout) -> int:
    """Run the demo, printing to ``out``; return the exit code."""
    from airflow_provider_prefinery.sandbox.testing import run_sandbox

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="prefinery-demo-"))
    home, dags = prepare_home(root, find_dag_file())
    log_path = home / "airflow-demo.log"

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    say("Mailchimp -> Prefinery sync: the example DAG in real Airflow, against the local sandbox")
    with run_sandbox(seed="demo") as sandbox, open(log_path, "w", encoding="utf-8") as log:
        control = sandbox.control
        say(f"  sandbox  {sandbox.url}  ({_n(len(control.mailchimp_members()))} Mailchimp members, "
            f"{_n(len(control.users()))} Prefinery users)")  # fmt: skip
        env = airflow_env(home, dags, sandbox.connections())
        seconds = run_airflow(["db", "migrate"], env, log)
        say(f"  airflow  {home} (SQLite, migrated in {seconds:.0f} s)")
        say()

        hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        first = hour.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        wall = run_airflow(["dags", "test", DAG_ID, first, "-c", json.dumps({"since": EPOCH})], env, log)
        for line in format_summary(
            "Run 1: first sync, the whole history", latest_report(home / "airflow.db"), wall
        ):
            say(line)
        say()

        at = min(datetime.now(timezone.utc), hour + timedelta(minutes=59, seconds=59))
        done = change_audience(control, at)
        say("Next hour's audience activity (sandbox control API): "
            + ", ".join(f"{count} {what}" for what, count in done.items()))  # fmt: skip
        say()

        second = (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        wall = run_airflow(["dags", "test", DAG_ID, second], env, log)
        for line in format_summary("Run 2: the next hour", latest_report(home / "airflow.db"), wall):
            say(line)
        say()

        wall = run_airflow(["dags", "test", DAG_ID, second], env, log)
        for line in format_summary(
            "Run 3: the same hour again (a re-run)", latest_report(home / "airflow.db"), wall
        ):
            say(line)
        say()
        users, suppressions = len(control.users()), len(control.suppressions())
    say(f"Prefinery now holds {_n(users)} users and {_n(suppressions)} suppressions. Sandbox stopped.")
    say(f"Airflow's full log: {log_path}")
    say(f"Done in {time.monotonic() - started:.0f} s.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_prefinery.demo", description=__doc__.split("\n")[0]
    )
    parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run()
    except KeyboardInterrupt:
        print(
            "\nInterrupted: the sandbox and Airflow were stopped; nothing is left running.", file=sys.stderr
        )
        return 130
    except DemoError as err:
        print(f"\nDemo failed: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
