"""A task state store held in memory, shaped like Airflow's ``TaskStateStoreAccessor``, for engine tests.

It keeps what a real store keeps (a JSON copy of each value: what survives a try is what was written) and
records every write in order, in one event log shared with the record functions of a test, so a test can
replay "the try was killed here" at any point of a batch.
"""

from __future__ import annotations

import json
import threading
from typing import Any


class Events:
    """An ordered log of what happened: ``("call", index)`` from record functions, ``("write", value)``."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, value: Any) -> None:
        with self._lock:
            self.items.append((kind, value))


class MemoryStore:
    """``get``/``set`` like the accessor (values round-trip through JSON); ``fail_on`` makes writes fail."""

    def __init__(self, events: Events | None = None, value: Any = None) -> None:
        self.values: dict[str, Any] = {}
        self.writes: list[Any] = []
        self.events = events or Events()
        self.fail_on: set[int] = set()  # 1-based numbers of writes that raise
        if value is not None:
            self.values["prefinery_batch"] = json.loads(json.dumps(value))

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else json.loads(json.dumps(value))

    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        if len(self.writes) + 1 in self.fail_on:
            self.writes.append(None)
            raise RuntimeError("state store unreachable")
        copied = json.loads(json.dumps(value))
        self.writes.append(copied)
        self.events.add("write", copied)
        self.values[key] = copied
