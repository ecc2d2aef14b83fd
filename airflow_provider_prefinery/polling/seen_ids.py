"""A set of ids stored compactly: what the event trigger has already fired for, kept across restarts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def compact_ids(ids: Iterable[Any]) -> dict[str, list[Any]]:
    """Store a set of ids compactly: integer runs as ``[first, last]`` pairs, other ids as strings."""
    ids = list(ids)
    numbers = sorted({int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())})
    others = sorted({str(i) for i in ids} - {str(n) for n in numbers})
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return {"runs": runs, "other": others}


def expand_ids(stored: Mapping[str, Any]) -> set[str]:
    """Inverse of :func:`compact_ids`, ids as strings (as the event trigger keys them)."""
    ids = {str(i) for i in stored.get("other", [])}
    for first, last in stored.get("runs", []):
        ids.update(str(n) for n in range(int(first), int(last) + 1))
    return ids
