"""The fault soak: the audience sync and every non-idempotent write, run at once under injected faults.

Importable without pytest (``benchmarks/soak.py`` prints the same table): :func:`run_soak` takes a running
sandbox and a :class:`SoakConfig`, and returns one :class:`Row` per workload plus the sandbox's own fault
counts. The test module asserts on the rows; this module only runs and measures.

What the words mean here
------------------------
* An **operation** is one HTTP request the sandbox logged (answered, failed or cut off).
* A task **try** is one ``execute()`` of a fresh operator with the same input, as Airflow runs a task
  retry; a try that raises ``AirflowFailException`` is not retried (Airflow would not), any other
  ``AirflowException`` is, up to ``task_tries``.
* A record is **reported** when the final try names it in its failure list (``failed``); it is
  **outcome unknown** when that entry says ``outcome_unknown: true``.
* A record is **lost** when it is neither in the target state nor reported: the user was told nothing.
* A **duplicate** is any effect beyond the first: a second user for one e-mail, a second points entry,
  invitation, reward trigger or Piggy run for one record.
* **Misreported**: reported as failed *without* ``outcome_unknown`` although its write was applied.
* For a non-idempotent POST, an **ambiguous** fault is one after which the client cannot know whether the
  write happened (500, 502, dropped connection, no answer within the read timeout, 500 after applying).
  The provider must report every such record as outcome unknown and never send it again, so the number of
  ambiguous faults a non-idempotent endpoint met can never exceed the number of records reported unknown:
  a single replay makes it larger (or, for 500-after-write, makes a duplicate).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_prefinery.hooks.rest import _BUCKETS
from airflow_provider_prefinery.sandbox.seeds import DEMO_AUTOMATION_UUID

# The rates, all at once: 10 % 5xx (spread over 500/502/503), 5 % 429 with Retry-After, 2 % dropped
# connections, 2 % answers slower than the read timeout, 1 % "500 after the write was applied".
FAULTS: dict[str, float] = {
    "500": 0.04,
    "502": 0.03,
    "503": 0.03,
    "429": 0.05,
    "drop": 0.02,
    "slow": 0.02,
    "500_after_write": 0.01,
}
AMBIGUOUS: frozenset[str] = frozenset({"500", "502", "drop", "slow", "500_after_write"})
FAULT_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("5xx", ("500", "502", "503")),
    ("429", ("429",)),
    ("drop", ("drop",)),
    ("slow", ("slow",)),
    ("500 after write", ("500_after_write",)),
)
CONN_IDS = {"prefinery": "prefinery_soak", "mailchimp": "mailchimp_soak", "piggy": "piggy_soak"}
USER_TARGET = "user"


@dataclass(frozen=True)
class SoakConfig:
    """Sizes, fault rates and the retry/timeout policy every soak connection carries in its extra.

    :param scale: multiplies the members synced and the records per write batch (``SOAK_SCALE``).
    :param read_timeout: seconds; a ``slow`` fault answers after ``slow_seconds``, past this.
    :param max_retries: the REST core's retries per request; low, so some requests run out of retries
        and the tasks' own retries (the Airflow re-runs) get exercised too.
    :param task_tries: Airflow tries per task (``retries=2`` in the example DAGs: 3 tries).
    :param limit_scale: multiplies every rate limit, the sandbox's and the hooks', so the run takes seconds.
    """

    scale: int = 1
    members_per_scale: int = 300
    records_per_scale: int = 60
    faults: Mapping[str, float] = field(default_factory=lambda: dict(FAULTS))
    read_timeout: float = 1.0
    connect_timeout: float = 2.0
    slow_seconds: float = 1.5
    max_retries: int = 3
    backoff_initial: float = 0.05
    backoff_max: float = 1.0
    task_tries: int = 3
    limit_scale: float = 100.0
    fault_seed: int = 20240601
    concurrency: int = 4

    @property
    def members(self) -> int:
        return self.members_per_scale * self.scale

    @property
    def records(self) -> int:
        return self.records_per_scale * self.scale

    def policy(self) -> dict[str, Any]:
        """The connection extra that sets the REST core's retry policy and timeouts."""
        return {
            "read_timeout": self.read_timeout,
            "connect_timeout": self.connect_timeout,
            "max_retries": self.max_retries,
            "backoff_initial": self.backoff_initial,
            "backoff_max": self.backoff_max,
        }


def soak_connections(server: Any, config: SoakConfig) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values for the three soak connections: the sandbox, short timeouts, fast backoff."""
    policy = config.policy()
    base = {"password": server.api_key, "host": server.url}
    return {
        "AIRFLOW_CONN_PREFINERY_SOAK": json.dumps(
            {
                "conn_type": "prefinery",
                **base,
                "extra": {"beta_id": server.beta_id, "rate_limit_scale": config.limit_scale, **policy},
            }
        ),
        "AIRFLOW_CONN_MAILCHIMP_SOAK": json.dumps(
            {"conn_type": "mailchimp", **base, "extra": {"list_id": server.list_id, **policy}}
        ),
        "AIRFLOW_CONN_PIGGY_SOAK": json.dumps({"conn_type": "piggy", **base, "extra": policy}),
    }


# --------------------------------------------------------------------------------------------------
# What Airflow keeps between tries
# --------------------------------------------------------------------------------------------------
class SharedVariables:
    """Airflow Variables as the sync's id index sees them: one value per key that outlives a task try.

    Airflow 3's ``Variable`` talks to the task runner's supervisor, which a soak calling ``execute()``
    directly has not; this keeps the operator's own store (``VariableIndexStore``: encode, merge, decode)
    in play, so a retry finds the index its failed try saved, as it would in Airflow.
    """

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self.values.get(key, default)

    def set(self, key: str, value: str, description: str | None = None, serialize_json: bool = False) -> None:
        with self._lock:
            self.values[key] = value


@contextlib.contextmanager
def shared_variables() -> Iterator[SharedVariables]:
    """Stand :class:`SharedVariables` in for ``Variable`` where the provider imports it from."""
    from airflow.providers.common.compat import sdk

    store = SharedVariables()
    saved = sdk.__dict__.get("Variable")
    sdk.Variable = store  # type: ignore[attr-defined]
    try:
        yield store
    finally:
        if saved is None:
            del sdk.Variable
        else:
            sdk.Variable = saved


# --------------------------------------------------------------------------------------------------
# Airflow's retry rule, applied by hand
# --------------------------------------------------------------------------------------------------
class RecordingTI:
    """Stands in for the task instance: keeps what the operator pushes itself (a failing batch's report)."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@dataclass
class Try:
    """One ``execute()``: its report (returned, or pushed before failing) and the error, if any."""

    operator: Any
    report: dict[str, Any] | None
    error: BaseException | None = None

    @property
    def airflow_retries(self) -> bool:
        """Airflow retries a failed try unless the error is an ``AirflowFailException``."""
        return self.error is not None and not isinstance(self.error, AirflowFailException)


def airflow_tries(make: Callable[[], Any], tries: int) -> list[Try]:
    """Run fresh operators with the same input until one succeeds, fails for good, or tries run out."""
    done: list[Try] = []
    for _ in range(tries):
        op, ti = make(), RecordingTI()
        try:
            value = op.execute({"ti": ti})
        except AirflowException as err:
            report = getattr(err, "report", None) or ti.xcom.get("return_value")
            done.append(Try(op, report, err))
            if not done[-1].airflow_retries:
                break
            continue
        done.append(Try(op, value))
        break
    return done


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One workload's figures (the soak table's row) and any broken promise, in words."""

    workload: str
    records: int
    endpoints: frozenset[str]
    tries: int = 0
    operations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    failed: int = 0
    unknown: int = 0
    lost: int = 0
    duplicates: int = 0
    misreported: int = 0
    ambiguous: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        faults = [str(sum(self.faults[k] for k in kinds)) for _, kinds in FAULT_COLUMNS]
        return [
            self.workload,
            str(self.records),
            str(self.tries),
            str(self.operations),
            *faults,
            str(self.retries),
            f"{self.failed} ({self.unknown} unknown)",
            str(self.lost),
            str(self.duplicates),
        ]


HEADER = [
    "workload",
    "records",
    "task tries",
    "operations",
    *(f"{name} injected" for name, _ in FAULT_COLUMNS),
    "retries (hook)",
    "failed & reported",
    "lost",
    "duplicates",
]


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------------
class Workload:
    """Runs its task tries (:meth:`run`), then judges the sandbox's final state (:meth:`evaluate`)."""

    name = ""
    endpoints: frozenset[str] = frozenset()

    def __init__(self, server: Any, config: SoakConfig) -> None:
        self.server = server
        self.control = server.control
        self.config = config
        self.tries: list[Try] = []
        self.seconds = 0.0

    def setup(self) -> None:
        """Read what the run needs from the sandbox (before faults are switched on)."""

    def make(self) -> Any:
        raise NotImplementedError

    def run(self) -> None:
        started = time.monotonic()
        self.tries = airflow_tries(self.make, self.config.task_tries)
        self.seconds = time.monotonic() - started

    def row(self, records: int, log: list[dict[str, Any]]) -> Row:
        mine = [e for e in log if e.get("endpoint") in self.endpoints]
        row = Row(self.name, records, self.endpoints, tries=len(self.tries), seconds=self.seconds)
        row.operations = len(mine)
        row.faults = Counter(e["fault"] for e in mine if e.get("fault"))
        row.retries = sum(self.retries_of(t.operator) for t in self.tries)
        return row

    def retries_of(self, operator: Any) -> int:
        return int(operator.hook.stats["retries"])

    def evaluate(self, log: list[dict[str, Any]]) -> Row:
        raise NotImplementedError


class NonIdempotentWrites(Workload):
    """A batch of one non-idempotent write: each record names its own effect in the sandbox's state."""

    write_endpoint = ""

    def __init__(self, server: Any, config: SoakConfig) -> None:
        super().__init__(server, config)
        self.tag = f"soak{int(time.time())}"
        self.records: list[dict[str, Any]] = []

    # The operator under test, imported late ("module:Class" under airflow_provider_prefinery.operators),
    # its connection argument, and any fixed arguments beside the records.
    operator = ""
    conn: tuple[str, str] = ("prefinery_conn_id", "prefinery")
    task_kwargs: ClassVar[dict[str, Any]] = {}

    def make(self) -> Any:
        module, _, cls_name = self.operator.partition(":")
        cls = getattr(importlib.import_module(f"airflow_provider_prefinery.operators.{module}"), cls_name)
        argument, api = self.conn
        return cls(
            task_id=self.name.replace(" ", "_"),
            records=self.records,
            max_concurrency=self.config.concurrency,
            progress_interval=0,
            **{argument: CONN_IDS[api]},
            **self.task_kwargs,
        )

    def key(self, record: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def applied(self) -> Counter[str]:
        """How many times each record key took effect, read from the sandbox's state."""
        raise NotImplementedError

    def evaluate(self, log: list[dict[str, Any]]) -> Row:
        row = self.row(len(self.records), log)
        row.ambiguous = sum(
            1 for e in log if e.get("endpoint") == self.write_endpoint and e.get("fault") in AMBIGUOUS
        )
        self._check_tries(row)
        final = self.tries[-1]
        failed = {e["index"]: e for e in (final.report or {}).get("failed", [])}
        applied = self.applied()
        for index, record in enumerate(self.records):
            times = applied.get(self.key(record), 0)
            row.duplicates += max(0, times - 1)
            entry = failed.get(index)
            if entry is None:
                row.lost += int(times == 0)
                continue
            row.failed += 1
            if entry.get("record") != record:
                row.violations.append(f"failure #{index} does not name its record: {entry.get('record')!r}")
            if entry.get("outcome_unknown"):
                row.unknown += 1
            elif times:
                row.misreported += 1
        if row.ambiguous > row.unknown:
            row.violations.append(
                f"{row.ambiguous} ambiguous faults on {self.write_endpoint} but only {row.unknown} records "
                "reported outcome_unknown: an ambiguous POST was sent again"
            )
        if row.misreported:
            row.violations.append(f"{row.misreported} records reported as not applied were applied")
        return row

    def _check_tries(self, row: Row) -> None:
        """The design: a try that applied (or may have applied) writes fails with no Airflow retry."""
        for number, attempt in enumerate(self.tries, start=1):
            counts = (attempt.report or {}).get("counts", {})
            applied = counts.get("succeeded", 0) + counts.get("outcome_unknown", 0)
            if attempt.airflow_retries and applied:
                row.violations.append(
                    f"try {number} applied {applied} writes yet Airflow would retry it ({attempt.error!r})"
                )
            if attempt.error is not None and attempt.report is None:
                row.violations.append(f"try {number} failed without a report: {attempt.error!r}")


class PointsWorkload(NonIdempotentWrites):
    name = "create_points"
    endpoints = frozenset({"create_points"})
    write_endpoint = "create_points"
    operator = "prefinery:PrefineryCreatePointsOperator"

    def setup(self) -> None:
        holders = [u for u in self.control.users() if u["status"] in ("invited", "active", "idle")]
        self.records = [
            {"email": holders[i % len(holders)]["email"], "quantity": 5, "reason": f"{self.tag} #{i}"}
            for i in range(self.config.records)
        ]

    def key(self, record: Mapping[str, Any]) -> str:
        return record["reason"]

    def applied(self) -> Counter[str]:
        return Counter(
            p["reason"] for p in self.control.points() if str(p.get("reason")).startswith(self.tag)
        )


class InvitationsWorkload(NonIdempotentWrites):
    name = "create_friend_invitation"
    endpoints = frozenset({"create_friend_invitation"})
    write_endpoint = "create_friend_invitation"
    operator = "prefinery:PrefineryCreateFriendInvitationOperator"
    task_kwargs: ClassVar[dict[str, Any]] = {"message": "Join me on the beta"}

    def setup(self) -> None:
        senders = [u for u in self.control.users() if u["status"] in ("invited", "active", "idle")]
        self.records = [
            {
                "sender_email": senders[i % len(senders)]["email"],
                "recipient_email": f"{self.tag}.friend{i}@friends.example.net",
            }
            for i in range(self.config.records)
        ]
        allowance = sum(u["friend_invitations_allowed"] - u["friend_invitations_count"] for u in senders)
        assert allowance >= len(self.records), "not enough friend invitations left in the seed"

    def key(self, record: Mapping[str, Any]) -> str:
        return record["recipient_email"]

    def applied(self) -> Counter[str]:
        return Counter(
            i["recipient_email"]
            for i in self.control.friend_invitations()
            if i["recipient_email"].startswith(self.tag)
        )


class TriggerRewardsWorkload(NonIdempotentWrites):
    name = "trigger_rewards"
    endpoints = frozenset({"trigger_rewards"})
    write_endpoint = "trigger_rewards"
    operator = "prefinery:PrefineryTriggerRewardsOperator"

    def setup(self) -> None:
        users = self.control.users()
        self.records = [
            {"email": users[i % len(users)]["email"], "event": f"{self.tag}-{i}"}
            for i in range(self.config.records)
        ]

    def key(self, record: Mapping[str, Any]) -> str:
        return record["event"]

    def applied(self) -> Counter[str]:
        return Counter(t["event"] for t in self.control.reward_triggers() if t["event"].startswith(self.tag))


class PiggyRunsWorkload(NonIdempotentWrites):
    name = "piggy automation runs"
    endpoints = frozenset({"create_automation_run", "list_automations"})
    write_endpoint = "create_automation_run"
    operator = "piggy:PiggyCreateAutomationRunOperator"
    conn = ("piggy_conn_id", "piggy")
    task_kwargs: ClassVar[dict[str, Any]] = {"automation_uuid": DEMO_AUTOMATION_UUID}

    def setup(self) -> None:
        contacts = self.control.piggy_contacts()
        self.records = [
            {"contact_uuid": contacts[i % len(contacts)]["uuid"], "data": {"soak": f"{self.tag}-{i}"}}
            for i in range(self.config.records)
        ]

    def key(self, record: Mapping[str, Any]) -> str:
        return record["data"]["soak"]

    def applied(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for run in self.control.piggy_runs():
            data = run.get("data")
            if isinstance(data, Mapping) and str(data.get("soak", "")).startswith(self.tag):
                found[data["soak"]] += 1
        return found


class SyncWorkload(Workload):
    """The Mailchimp -> Prefinery sync of the newest ``config.members`` members (idempotent: retried)."""

    name = "mailchimp -> prefinery sync"
    endpoints = frozenset(
        {
            "list_members",
            "list_users",
            "create_user",
            "update_user",
            "list_suppressions",
            "create_suppression",
        }
    )

    def setup(self) -> None:
        self._add_members()
        members = sorted(
            self.control.mailchimp_members(list_id=self.server.list_id),
            key=lambda m: m["last_changed"],
            reverse=True,
        )
        self.since = members[min(self.config.members, len(members)) - 1]["last_changed"]
        self.before = (datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat()
        # Fixed-width "+00:00" timestamps sort as text.
        self.window = [m for m in members if m["last_changed"] >= self.since]
        self.users_before = Counter(
            u["email"].lower() for u in self.control.users(beta_id=self.server.beta_id)
        )

    def _add_members(self) -> None:
        """Subscribe (and unsubscribe, clean) extra members when the seed's 2,000 are fewer than asked."""
        missing = self.config.members - len(self.control.mailchimp_members(list_id=self.server.list_id))
        statuses = ("subscribed", "subscribed", "subscribed", "unsubscribed", "cleaned", "pending")
        for i in range(max(0, missing)):
            self.control.mailchimp_member(
                f"soak.member{i}@mail.example.org",
                status=statuses[i % len(statuses)],
                merge_fields={"FNAME": f"Soak{i}", "LNAME": "Member"},
                list_id=self.server.list_id,
            )

    def make(self) -> Any:
        from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import MailchimpToPrefineryOperator

        return MailchimpToPrefineryOperator(
            task_id="sync_audience",
            mailchimp_conn_id=CONN_IDS["mailchimp"],
            prefinery_conn_id=CONN_IDS["prefinery"],
            since=self.since,
            before=self.before,
            max_concurrency=10,
            progress_interval=0,
        )

    def retries_of(self, operator: Any) -> int:
        return int(operator.prefinery.stats["retries"]) + int(operator.mailchimp.stats["retries"])

    def evaluate(self, log: list[dict[str, Any]]) -> Row:
        from airflow_provider_prefinery.transfers.mailchimp_rules import DEFAULT_MERGE_FIELDS, SyncRules

        row = self.row(len(self.window), log)
        rules = SyncRules()
        final = self.tries[-1].report or {}
        failed = {
            str(e["record"].get("email", "")).lower(): e
            for e in final.get("failed", [])
            if isinstance(e.get("record"), Mapping)
        }
        if final.get("counts", {}).get("failed", 0) > len(failed):
            row.violations.append("the sync's report names fewer failures than it counts")
        users: dict[str, list[dict[str, Any]]] = {}
        for user in self.control.users(beta_id=self.server.beta_id):
            users.setdefault(user["email"].lower(), []).append(user)
        suppressed = Counter(
            s["email"].lower() for s in self.control.suppressions(beta_id=self.server.beta_id)
        )
        row.duplicates = sum(len(found) - 1 for found in users.values() if len(found) > 1)
        for member in self.window:
            email = member["email_address"].lower()
            target = rules.target(member["status"])
            if target == USER_TARGET:
                found = users.get(email, [])
                wanted = {
                    profile_field: str(member["merge_fields"].get(merge, "")).strip()
                    for merge, profile_field in DEFAULT_MERGE_FIELDS.items()
                }
                ok = len(found) >= 1 and all(
                    (found[0].get("profile") or {}).get(k, "") == v for k, v in wanted.items() if v
                )
            elif target is not None:
                ok = suppressed[email] >= 1
            else:
                ok = len(users.get(email, [])) == self.users_before[email]
                if not ok:
                    row.violations.append(f"{email} ({member['status']}) maps to no change but was written")
            entry = failed.get(email)
            if entry is not None:
                row.failed += 1
                row.unknown += int(bool(entry.get("outcome_unknown")))
            elif not ok:
                row.lost += 1
        for number, attempt in enumerate(self.tries, start=1):
            if attempt.error is not None and not attempt.airflow_retries:
                row.violations.append(
                    f"try {number} of the idempotent sync refused a retry: {attempt.error!r}"
                )
        last = self.tries[-1]
        if last.error is not None and last.report is None:
            row.violations.append(
                f"the sync failed {len(self.tries)} tries without naming members: {last.error}"
            )
        return row


WORKLOADS: tuple[type[Workload], ...] = (
    SyncWorkload,
    PointsWorkload,
    InvitationsWorkload,
    TriggerRewardsWorkload,
    PiggyRunsWorkload,
)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
@dataclass
class SoakResult:
    """Every workload's row, the sandbox's own fault counters for the run, and the wall time."""

    rows: list[Row]
    sandbox_faults: Counter[str]
    sandbox_requests: int
    seconds: float
    config: SoakConfig

    def total(self) -> Row:
        total = Row("all", sum(r.records for r in self.rows), frozenset())
        for row in self.rows:
            total.tries += row.tries
            total.operations += row.operations
            total.retries += row.retries
            total.failed += row.failed
            total.unknown += row.unknown
            total.lost += row.lost
            total.duplicates += row.duplicates
        total.faults = Counter(self.sandbox_faults)
        return total

    def table(self) -> str:
        return markdown_table(HEADER, [r.cells() for r in [*self.rows, self.total()]])

    def summary(self) -> str:
        rates = ", ".join(f"{k} {v:.0%}" for k, v in self.config.faults.items())
        return (
            f"Fault soak, scale {self.config.scale}: {self.seconds:.1f} s wall; faults per request: {rates}; "
            f"read timeout {self.config.read_timeout:g} s, max_retries {self.config.max_retries}, "
            f"{self.config.task_tries} Airflow tries per task."
        )


def prepare_sandbox(control: Any, config: SoakConfig) -> None:
    """Demo data, every limit scaled, the fault dice seeded: then :func:`inject_faults` switches them on."""
    control.reset("demo")
    control.configure(scale=config.limit_scale, fault_seed=config.fault_seed)
    _BUCKETS.clear()


def inject_faults(control: Any, config: SoakConfig) -> None:
    for api in ("prefinery", "mailchimp", "piggy"):
        control.set_faults(api, dict(config.faults), slow_seconds=config.slow_seconds, retry_after=1)


def run_soak(server: Any, config: SoakConfig) -> SoakResult:
    """Run every workload at once against ``server`` (reset first) under ``config.faults``; judge each.

    The soak connections (:func:`soak_connections`) must be set in the environment.
    """
    control = server.control
    prepare_sandbox(control, config)
    workloads = [cls(server, config) for cls in WORKLOADS]
    for workload in workloads:
        workload.setup()
    inject_faults(control, config)
    control.clear_requests()
    before = control.stats()["faults"]
    started = time.monotonic()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(workload: Workload) -> None:
        try:
            workload.run()
        except BaseException as exc:  # a bug, not a fault: surface it after the others finish
            with lock:
                errors.append(exc)

    with shared_variables(), ThreadPoolExecutor(len(workloads), thread_name_prefix="soak") as pool:
        list(pool.map(run, workloads))
    seconds = time.monotonic() - started
    time.sleep(config.slow_seconds + 0.3)  # requests the client gave up on finish (and are logged) now
    log = control.requests()
    after = control.stats()["faults"]
    control.reset_behaviour()
    if errors:
        raise errors[0]
    faults = Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)})
    rows = [w.evaluate(log) for w in workloads]
    return SoakResult(rows, faults, len(log), seconds, config)
