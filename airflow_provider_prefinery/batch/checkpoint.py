"""A batch's checkpoint in Airflow's ``task_state_store``: which records are done, which may have been sent.

Why: a try that dies mid-batch (SIGKILL, OOM, a lost worker, a deploy) leaves no report, and a retry that
sends every record again issues points twice and a second invitation e-mail. With a checkpoint a retry
sends only what no earlier try may have sent, and reports the rest as the earlier try left it.

One key of the task instance's store (it survives retries and clears) holds, as JSON::

    {"v": 1, "digest": "<sha256 of the batch's input>", "total": N, "try": <the try that wrote it>,
     "marks": "<one mark per record, run-length encoded, e.g. 1200s3f2c95.>", "ok": <finished, no failure>,
     "notes": [[index, try, error, status, code, message], ...], "extra": {...}}

Marks: ``s`` succeeded, ``u`` updated, ``k`` skipped, ``a`` already done (done: never sent again, reported
with that status); ``f`` failed without being applied and ``.`` not sent (the next try sends them); ``?``
outcome unknown and ``c`` claimed, i.e. a try may have sent it (for a non-idempotent action never sent again
and reported ``outcome_unknown``; an idempotent one sends them again). A run of equal marks is an index
range, so a batch that went well is a few bytes; a long string is zlib-compressed (``z:`` + base64).

Writes are never per record. A non-idempotent batch *claims* a stretch of records before handing the first of
them to a worker, sized to what it sends in ``interval`` seconds: every record that may be in flight lies in
a written claim, so a SIGKILL costs at most one stretch reported ``outcome_unknown`` (in flight, finished
but not yet written, or not yet sent), never a duplicate. Progress is written every ``interval`` seconds and
at the end; an end by exception is written exactly (records never started are released).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_prefinery.batch.errors import CheckpointError, CheckpointMismatchError
from airflow_provider_prefinery.batch.failures import MAX_LISTED_FAILURES
from airflow_provider_prefinery.batch.progress import LineLogger

VERSION = 1
TODO, RUNNING, CLAIMED, FAILED, UNKNOWN = ".", "r", "c", "f", "?"
DONE_MARKS: dict[str, str] = {"succeeded": "s", "updated": "u", "skipped": "k", "already_done": "a"}
STATUS_OF_MARK: dict[str, str] = {mark: status for status, mark in DONE_MARKS.items()}
_MARKS = frozenset((TODO, CLAIMED, FAILED, UNKNOWN, *DONE_MARKS.values()))
COMPRESS_OVER = 2048  # characters of run-length text kept plain
MAX_NOTE = 300  # characters of an earlier failure's message kept
MAX_EXTRA = 16_384  # bytes of JSON an ``extra`` value may take (a single record's answer)


class StateStore(Protocol):
    """What a checkpoint needs of Airflow's ``TaskStateStoreAccessor`` (``context["task_state_store"]``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


def batch_digest(*parts: Any) -> str:
    """A digest of a batch's input (its action, default fields and records) as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, default=repr, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def encode_marks(marks: str) -> str:
    """Run-length text (``"1200s3f"``), compressed when long."""
    text = "".join(f"{len(list(run))}{mark}" for mark, run in itertools.groupby(marks))
    if len(text) <= COMPRESS_OVER:
        return text
    return "z:" + base64.b64encode(zlib.compress(text.encode("ascii"), 9)).decode("ascii")


_RUN = re.compile(r"(\d+)(\D)")


def decode_marks(text: str) -> str:
    """The marks back from :func:`encode_marks`; ValueError when the text is not such an encoding."""
    if text.startswith("z:"):
        text = zlib.decompress(base64.b64decode(text[2:], validate=True)).decode("ascii")
    runs = _RUN.findall(text)
    if "".join(count + mark for count, mark in runs) != text or any(m not in _MARKS for _, m in runs):
        raise ValueError("not a run-length encoding of batch marks")
    return "".join(mark * int(count) for count, mark in runs)


@dataclass
class Earlier:
    """What the checkpoint of an earlier try says (after :meth:`Checkpoint.start`).

    :param try_number: the try that wrote it (None when unknown).
    :param done: records done, by status (``succeeded``, ``updated``, ``skipped``, ``already_done``).
    :param unknown: indices whose outcome is unknown (never sent again); empty for idempotent actions.
    :param notes: ``index -> (try, error, status, code, message)`` for the first of them.
    :param extra: what the earlier try stored beside its marks (a single record's answer).
    """

    try_number: int | None
    done: dict[str, int]
    unknown: list[int]
    notes: dict[int, tuple[Any, ...]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Records this try will not send."""
        return sum(self.done.values()) + len(self.unknown)


class Checkpoint:
    """One batch's marks, kept in memory and written to the task's state store now and then.

    Threads: :meth:`started`, :meth:`unstarted` and :meth:`finished` run in the workers (each writes one
    byte of its own record); everything else runs in the thread that drives the batch.

    :param store: the task instance's state store.
    :param key: the key the checkpoint lives under.
    :param digest: :func:`batch_digest` of this try's input; a checkpoint of other input is not resumed.
    :param exclusive: the action is not idempotent: claim before sending, and never send again a record
        an earlier try may have sent.
    :param try_number: this try (written, and named in messages).
    :param label: names the batch in log lines.
    :param logger: where checkpoint lines go.
    :param interval: seconds between progress writes; a claim covers about this long.
    :param min_claim: the smallest claim (the records the engine may hand out at once).
    :param max_claim: the largest claim: the most records a killed try can leave ``outcome_unknown``.
    :param clock: the time source (monotonic).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        key: str,
        digest: str,
        exclusive: bool,
        try_number: int | None,
        label: str,
        logger: LineLogger,
        interval: float = 2.0,
        min_claim: int = 8,
        max_claim: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.key, self.digest, self.exclusive = store, key, digest, exclusive
        self.try_number, self.label, self.logger = try_number, label, logger
        self.interval, self.clock = interval, clock
        self.min_claim = max(1, min_claim)
        self.max_claim = max(self.min_claim, max_claim)
        self.marks = bytearray()
        self.notes: dict[int, tuple[Any, ...]] = {}
        self.claimed_until = 0
        self._handed = -1  # the last index handed to a worker
        self.writes = 0
        self.completed = 0
        self._started_at = self._last_write = clock()
        self._lock = threading.Lock()

    # ---- the start: resume or begin ----
    def start(self, total: int) -> Earlier | None:
        """Read the stored checkpoint; return what an earlier try did, or None when starting afresh.

        :raises CheckpointMismatchError: a non-idempotent batch finds a checkpoint of different input (or an
            unreadable one): resuming it could send a record twice or never.
        """
        self.marks = bytearray(TODO.encode() * total)
        stored = self.store.get(self.key, None)
        if stored is None:
            return None
        problem = self._mismatch(stored, total)
        if problem is None and not self.exclusive and stored.get("ok"):
            problem = "it finished without a failure (a cleared task runs again)"
        if problem is not None:
            if self.exclusive:
                raise CheckpointMismatchError(self.label, self.key, problem, describe_stored(stored))
            self.logger.info("%s: not resuming the checkpoint of an earlier try: %s", self.label, problem)
            return None
        return self._resume(stored)

    def _mismatch(self, stored: Any, total: int) -> str | None:
        if not isinstance(stored, Mapping) or stored.get("v") != VERSION:
            return "it is not a checkpoint this provider version reads"
        if stored.get("digest") != self.digest:
            then = f"digest {str(stored.get('digest'))[:12]}, {stored.get('total')} records"
            return (
                f"the records differ from those of try {stored.get('try')} ({then}; now {self.digest[:12]}, "
                f"{total} records): a template or an upstream result rendered differently"
            )
        try:
            marks = decode_marks(str(stored.get("marks", "")))
        except (ValueError, zlib.error):
            return "its marks are unreadable"
        if len(marks) != total:
            return f"it marks {len(marks)} records, not {total}"
        return None

    def _resume(self, stored: Mapping[str, Any]) -> Earlier:
        marks = decode_marks(str(stored["marks"]))
        earlier_try = stored.get("try")
        done: dict[str, int] = dict.fromkeys(DONE_MARKS, 0)
        unknown: list[int] = []
        for index, mark in enumerate(marks):
            if mark in STATUS_OF_MARK:
                done[STATUS_OF_MARK[mark]] += 1
                self.marks[index] = ord(mark)
            elif mark in (CLAIMED, UNKNOWN) and self.exclusive:
                unknown.append(index)
                self.marks[index] = ord(UNKNOWN)
        unknown_set = set(unknown)
        for note in stored.get("notes") or []:
            if isinstance(note, list) and len(note) == 6 and note[0] in unknown_set:
                self.notes[int(note[0])] = tuple(note[1:])
        for index in unknown:
            if index not in self.notes and len(self.notes) < MAX_LISTED_FAILURES and marks[index] == CLAIMED:
                self.notes[index] = (earlier_try, "OutcomeUnknown", None, None, _in_flight(earlier_try))
        extra = stored.get("extra")
        kept = dict(extra) if isinstance(extra, dict) else {}
        return Earlier(earlier_try, done, unknown, dict(self.notes), kept)

    def todo(self) -> Iterator[int]:
        """The indices this try sends: never tried, not sent, or failed without being applied."""
        return (index for index, mark in enumerate(self.marks) if mark == ord(TODO))

    # ---- as records go ----
    def claim(self, index: int) -> None:
        """Before ``index`` goes to a worker: make sure a written claim covers it (exclusive batches).

        :raises CheckpointError: the claim could not be written; nothing past the last claim is sent.
        """
        if not self.exclusive:
            return
        self._handed = index
        if index < self.claimed_until:
            return
        until = self._claim_end(index)
        self._write(self._value(claims_live=True, until=until), claim_from=index)
        self.claimed_until = until

    def _claim_end(self, index: int) -> int:
        """Where a claim from ``index`` ends: what the batch sends in ``interval`` seconds, within bounds."""
        elapsed = max(self.clock() - self._started_at, 1e-9)
        stretch = math.ceil(self.completed / elapsed * self.interval) if self.completed else 0
        end = index + min(max(self.min_claim, stretch), self.max_claim)
        return max(self.claimed_until, min(len(self.marks), end))

    def started(self, index: int) -> None:
        self.marks[index] = ord(RUNNING)

    def unstarted(self, index: int) -> None:
        self.marks[index] = ord(TODO)

    def finished(self, index: int, mark: str) -> None:
        self.marks[index] = ord(mark)

    def note(self, index: int, entry: Mapping[str, Any]) -> None:
        """Keep why a record's outcome is unknown (the first :data:`MAX_LISTED_FAILURES`), for later tries."""
        if len(self.notes) < MAX_LISTED_FAILURES:
            message = str(entry.get("message"))[:MAX_NOTE]
            error, status, code = entry.get("error"), entry.get("status"), entry.get("code")
            self.notes[index] = (self.try_number, error, status, code, message)

    def tick(self) -> None:
        """One more record finished: every ``interval`` seconds write the progress, and move the claim on to
        one interval past the records handed out (so a kill leaves about one interval of records unknown)."""
        self.completed += 1
        if self.clock() - self._last_write < self.interval:
            return
        until = self._claim_end(self._handed + 1) if self.exclusive else 0
        if self._write(self._value(claims_live=True, until=until)):
            self.claimed_until = max(self.claimed_until, until)

    def close(self, *, complete: bool, ok: bool, extra: Mapping[str, Any] | None = None) -> None:
        """The last write of this try: exact marks (a record never started is not claimed any more).

        :param complete: every record came back (False: the batch ended by an exception).
        :param ok: complete, with no failure and nothing left unsent.
        :param extra: JSON kept beside the marks (dropped, with a log line, when over 16 KB).
        """
        value = self._value(claims_live=False)
        value["ok"] = bool(complete and ok)
        if extra:
            size = len(json.dumps(extra, default=str))
            if size <= MAX_EXTRA:
                value["extra"] = dict(extra)
            else:
                self.logger.info("%s: the answer (%d bytes) is not kept in the checkpoint", self.label, size)
        self._write(value)

    # ---- writing ----
    def _value(self, *, claims_live: bool, until: int | None = None) -> dict[str, Any]:
        marks = bytes(self.marks)  # one copy: workers keep writing their bytes meanwhile
        if self.exclusive:
            marks = marks.replace(RUNNING.encode(), CLAIMED.encode())
            if claims_live:
                end = self.claimed_until if until is None else max(until, self.claimed_until)
                marks = marks[:end].replace(TODO.encode(), CLAIMED.encode()) + marks[end:]
        else:
            marks = marks.replace(RUNNING.encode(), TODO.encode())
        notes = [[index, *note] for index, note in sorted(self.notes.items())]
        return {
            "v": VERSION,
            "digest": self.digest,
            "total": len(self.marks),
            "try": self.try_number,
            "marks": encode_marks(marks.decode("ascii")),
            "ok": False,
            "notes": notes,
        }

    def _write(self, value: dict[str, Any], claim_from: int | None = None) -> bool:
        """Store ``value``; True when written. A claim that fails raises, any other write logs and goes on."""
        with self._lock:
            try:
                self.store.set(self.key, value)
            except Exception as err:
                if claim_from is not None:
                    raise CheckpointError(self.label, self.key, claim_from, err) from err
                self.logger.error("%s: could not write the checkpoint (%s); continuing", self.label, err)
                return False
            self.writes += 1
            self._last_write = self.clock()
            return True


def describe_stored(stored: Any) -> str:
    """What a stored checkpoint says, in words: its try and how many records are done or maybe sent."""
    try:
        marks = decode_marks(str(stored["marks"]))
    except (KeyError, TypeError, ValueError, zlib.error):
        return ""
    done = sum(marks.count(mark) for mark in DONE_MARKS.values())
    maybe = marks.count(CLAIMED) + marks.count(UNKNOWN)
    return (
        f"(try {stored.get('try')}) recorded {done:,} of {len(marks):,} record(s) done, {maybe:,} maybe sent"[
            :200
        ]
    )


def _in_flight(try_number: Any) -> str:
    return (
        f"may have been sent by try {try_number}, which ended before recording the answer (the task was "
        "killed or its worker lost): not sent again; check it in the API before re-sending"
    )
