"""The batch checkpoint without HTTP: what it writes, when, and what a retry makes of it.

A try "killed" at any moment is replayed from the event log (the record calls and the store writes in the
order they happened): the last write before the kill is what the retry finds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Collection
from typing import Any

import pytest

from airflow_provider_prefinery.batch import (
    BatchFailedError,
    BatchFailedNoRetryError,
    Checkpoint,
    CheckpointError,
    CheckpointMismatchError,
    Outcome,
    batch_digest,
    run_batch,
)
from airflow_provider_prefinery.batch.checkpoint import decode_marks, encode_marks
from airflow_provider_prefinery.exceptions import PrefineryConnectionError, PrefineryValidationError
from tests.batch.stores import Events, MemoryStore

log = logging.getLogger("test.checkpoint")
RECORDS = [{"email": f"u{i}@example.com", "quantity": 1} for i in range(300)]


def _checkpoint(
    store: MemoryStore, *, exclusive: bool = True, try_number: int = 1, records: Any = RECORDS, **kw: Any
) -> Checkpoint:
    options: dict[str, Any] = {"interval": 0.02, "min_claim": 8, **kw}
    return Checkpoint(
        store, key="prefinery_batch", digest=batch_digest("create_points", records), exclusive=exclusive,
        try_number=try_number, label="create_points", logger=log, **options,
    )  # fmt: skip


def _recording(events: Events, fail: Collection[int] = (), sleep: float = 0.0005) -> Any:
    def fn(record: dict[str, Any]) -> dict[str, Any]:
        index = int(record["email"][1:].split("@")[0])
        events.add("call", index)
        time.sleep(sleep * random.random())
        if index in fail:
            raise PrefineryValidationError("refused", status=422, code=2803)
        return {"id": index}

    return fn


def _marks(value: dict[str, Any]) -> str:
    return decode_marks(value["marks"])


# ---------------------------------------------------------------------------------------- encoding
def test_marks_are_index_ranges_and_long_fragmented_ones_are_compressed() -> None:
    assert encode_marks("s" * 1200 + "fff" + "cc" + "." * 95) == "1200s3f2c95."
    rng = random.Random(7)
    fragmented = "".join("f" if rng.random() < 0.1 else "s" for _ in range(100_000))  # 10 % scattered
    encoded = encode_marks(fragmented)

    assert encoded.startswith("z:") and len(encoded) < 20_000  # well under the 64 KB a value should take
    assert decode_marks(encoded) == fragmented
    with pytest.raises(ValueError):
        decode_marks("12s3x")


# ---------------------------------------------------------------------------------------- claims
def test_every_record_a_killed_try_may_have_sent_lies_in_a_claim_written_before_it() -> None:
    """The claim protocol's promise, checked at every moment of a real concurrent run."""
    events = Events()
    store = MemoryStore(events)

    run_batch(
        RECORDS, _recording(events), max_concurrency=4, progress_interval=0, checkpoint=_checkpoint(store)
    )

    last_write: dict[str, Any] | None = None
    for kind, value in events.items:
        if kind == "write":
            last_write = value
        else:  # killed just after this call began: the last write must hold it as claimed or done
            assert last_write is not None, "a record was sent before any checkpoint was written"
            assert _marks(last_write)[value] != ".", f"record {value} was sent outside a written claim"


def test_a_retry_after_a_kill_anywhere_sends_each_record_once_or_names_it_outcome_unknown() -> None:
    events = Events()
    first = MemoryStore(events)
    run_batch(
        RECORDS, _recording(events), max_concurrency=4, progress_interval=0, checkpoint=_checkpoint(first)
    )
    writes = [i for i, (kind, _) in enumerate(events.items) if kind == "write"]

    for kill_at in writes[1:-1:3]:  # killed just before this write: the one before is what survives
        survived = next(v for k, v in reversed(events.items[:kill_at]) if k == "write")
        sent_before = {v for k, v in events.items[:kill_at] if k == "call"}
        retry_events = Events()
        retry = MemoryStore(retry_events, value=survived)

        result = run_batch(
            RECORDS,
            _recording(retry_events),
            progress_interval=0,
            checkpoint=_checkpoint(retry, try_number=2),
        )

        sent_again = {v for k, v in retry_events.items if k == "call"}
        unknown = {i for i, mark in enumerate(_marks(retry.writes[-1])) if mark == "?"}
        assert not sent_before & sent_again, "a record was sent twice"
        assert sent_before | sent_again | unknown == set(range(len(RECORDS))), "a record was lost"
        assert unknown == {i for i, m in enumerate(_marks(survived)) if m == "c"}
        assert result.counts["outcome_unknown"] == len(unknown)
        assert result.counts["succeeded"] + result.counts["outcome_unknown"] == len(RECORDS)
        assert all(entry["outcome_unknown"] and "try 1" in entry["message"] for entry in result.failed)


def test_writes_are_every_interval_and_at_the_end_never_per_record() -> None:
    store = MemoryStore()
    records = [{"email": f"u{i}@example.com"} for i in range(3000)]
    checkpoint = _checkpoint(store, interval=0.05, records=records)

    result = run_batch(records, lambda r: time.sleep(0.0001), max_concurrency=4, progress_interval=0,
                       checkpoint=checkpoint)  # fmt: skip

    assert result.counts["succeeded"] == 3000
    assert 2 <= len(store.writes) <= 3000 / 20, f"{len(store.writes)} writes for 3,000 records"
    final = store.writes[-1]
    assert final["marks"] == "3000s" and final["ok"] is True and final["try"] == 1


def test_an_idempotent_batch_claims_nothing_and_a_retry_skips_only_what_is_done() -> None:
    events = Events()
    first = MemoryStore(events)
    fn = _recording(events, fail={5, 6})
    result = run_batch(RECORDS, fn, progress_interval=0, checkpoint=_checkpoint(first, exclusive=False))
    assert result.counts["failed"] == 2
    assert "c" not in first.writes[-1]["marks"]

    retry_events = Events()
    retry = MemoryStore(retry_events, value=first.writes[-1])
    again = run_batch(
        RECORDS, _recording(retry_events), progress_interval=0,
        checkpoint=_checkpoint(retry, exclusive=False, try_number=2),
    )  # fmt: skip

    assert sorted(v for k, v in retry_events.items if k == "call") == [5, 6]  # only the failed ones
    assert again.ok and again.counts["succeeded"] == len(RECORDS)
    assert again.resumed == {"from_try": 1, "done": len(RECORDS) - 2, "outcome_unknown": 0}


def test_a_finished_idempotent_batch_runs_again_when_the_task_is_cleared() -> None:
    first = MemoryStore()
    run_batch(RECORDS[:10], lambda r: r, progress_interval=0,
              checkpoint=_checkpoint(first, exclusive=False, records=RECORDS[:10]))  # fmt: skip
    calls: list[Any] = []

    retry = _checkpoint(MemoryStore(value=first.writes[-1]), exclusive=False, records=RECORDS[:10])
    run_batch(RECORDS[:10], calls.append, progress_interval=0, checkpoint=retry)

    assert len(calls) == 10


def test_a_finished_non_idempotent_batch_sends_nothing_again_and_reports_the_earlier_outcomes() -> None:
    first = MemoryStore()
    statuses = ["succeeded", "already_done", "skipped"]
    run_batch(RECORDS[:9], lambda r: Outcome(statuses[int(r["email"][1]) % 3]), progress_interval=0,
              checkpoint=_checkpoint(first, records=RECORDS[:9]))  # fmt: skip
    calls: list[Any] = []

    retry = _checkpoint(MemoryStore(value=first.writes[-1]), records=RECORDS[:9], try_number=2)
    again = run_batch(RECORDS[:9], calls.append, progress_interval=0, return_records=True, checkpoint=retry)

    assert calls == []
    assert (again.counts["succeeded"], again.counts["already_done"], again.counts["skipped"]) == (3, 3, 3)
    assert again.ok and again.results == [None] * 9  # an earlier try's answers are not kept


# ---------------------------------------------------------------------------------------- outcomes
def test_an_unknown_outcome_keeps_its_reason_and_a_retry_that_could_only_resend_nothing_is_refused() -> None:
    def fn(record: dict[str, Any]) -> Any:
        if record["email"].startswith("u3@"):
            raise PrefineryConnectionError(
                "no answer within 1 s", method="POST", path="p", outcome_unknown=True
            )
        return {}

    first = MemoryStore()
    result = run_batch(
        RECORDS[:5], fn, progress_interval=0, checkpoint=_checkpoint(first, records=RECORDS[:5])
    )
    with pytest.raises(BatchFailedNoRetryError, match="a retry would send nothing"):
        result.raise_for_failures(retry_safe=False, checkpointed=True)

    calls: list[Any] = []
    retry = _checkpoint(MemoryStore(value=first.writes[-1]), records=RECORDS[:5], try_number=2)
    again = run_batch(RECORDS[:5], calls.append, progress_interval=0, checkpoint=retry)

    assert calls == []
    (entry,) = again.failed
    assert entry["index"] == 3 and entry["outcome_unknown"] is True
    assert (
        entry["error"] == "PrefineryConnectionError"
        and "no answer within 1 s (try 1; not sent again)" in entry["message"]
    )
    assert entry["record"] == RECORDS[3]


def test_a_checkpointed_non_idempotent_batch_with_records_left_to_send_may_be_retried() -> None:
    result = run_batch(RECORDS[:6], _recording(Events(), fail={2}), progress_interval=0,
                       checkpoint=_checkpoint(MemoryStore(), records=RECORDS[:6]))  # fmt: skip

    with pytest.raises(BatchFailedError) as info:
        result.raise_for_failures(retry_safe=False, checkpointed=True)
    assert not isinstance(info.value, BatchFailedNoRetryError)  # the retry sends #2 only
    with pytest.raises(BatchFailedNoRetryError, match="no checkpoint"):  # without one: today's rule
        result.raise_for_failures(retry_safe=False, checkpointed=False)


# ---------------------------------------------------------------------------------------- refusals
def test_different_records_on_the_retry_are_refused_naming_why_and_nothing_is_sent() -> None:
    first = MemoryStore()
    run_batch(
        RECORDS[:4], lambda r: r, progress_interval=0, checkpoint=_checkpoint(first, records=RECORDS[:4])
    )
    rerendered = [*RECORDS[:4], {"email": "late@example.com", "quantity": 1}]
    calls: list[Any] = []

    with pytest.raises(CheckpointMismatchError) as info:
        retry = _checkpoint(MemoryStore(value=first.writes[-1]), records=rerendered, try_number=2)
        run_batch(rerendered, calls.append, progress_interval=0, checkpoint=retry)

    assert calls == []
    message = str(info.value)
    assert "the records differ from those of try 1" in message and "4 records; now" in message
    assert "5 records" in message and "recorded 4 of 4 record(s) done" in message
    assert "delete the task state key 'prefinery_batch'" in message


def test_different_records_for_an_idempotent_action_start_afresh() -> None:
    first = MemoryStore()
    run_batch(RECORDS[:4], lambda r: 1 / 0, progress_interval=0,
              checkpoint=_checkpoint(first, exclusive=False, records=RECORDS[:4]))  # fmt: skip
    calls: list[Any] = []

    retry = _checkpoint(MemoryStore(value=first.writes[-1]), exclusive=False, records=RECORDS[:3])
    run_batch(RECORDS[:3], calls.append, progress_interval=0, checkpoint=retry)

    assert len(calls) == 3


def test_a_claim_that_cannot_be_written_stops_the_batch_before_the_records_it_would_cover() -> None:
    events = Events()
    store = MemoryStore(events)
    store.fail_on = {3}  # claims of 4 records each, and no progress write: the third claim fails
    gate = threading.Event()

    def fn(record: dict[str, Any]) -> Any:
        events.add("call", int(record["email"][1:].split("@")[0]))
        gate.wait(0.01)
        return {}

    with pytest.raises(
        CheckpointError, match="could not write the checkpoint 'prefinery_batch' before record"
    ):
        run_batch(RECORDS, fn, max_concurrency=2, progress_interval=0,
                  checkpoint=_checkpoint(store, min_claim=4, max_claim=4, interval=60))  # fmt: skip

    sent = {v for k, v in events.items if k == "call"}
    final = _marks(store.writes[-1])  # written exactly at the end: what was sent is done, the rest is not
    assert sent == {i for i, m in enumerate(final) if m == "s"} and max(sent) < 8
    assert set(final[max(sent) + 1 :]) == {"."}
