"""Seen ids stored as integer runs: pure functions, no server."""

from __future__ import annotations

from airflow_provider_prefinery.polling.seen_ids import compact_ids, expand_ids


def test_seen_ids_are_stored_as_runs_and_read_back_unchanged() -> None:
    ids = {1, 2, 3, 7, 9, 10, "abc", "12"}
    stored = compact_ids(ids)
    assert stored == {"runs": [[1, 3], [7, 7], [9, 10], [12, 12]], "other": ["abc"]}
    assert expand_ids(stored) == {str(i) for i in ids}


def test_ids_from_a_one_pass_iterator_are_all_kept() -> None:
    stored = compact_ids(str(i) for i in (5, 6, "x"))
    assert expand_ids(stored) == {"5", "6", "x"}
