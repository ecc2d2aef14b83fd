"""The SQLite database the three emulated APIs share: tables, seed snapshots, rows, and one door for writes.

Each service declares its :class:`Tables`; the first reset to a seed builds a snapshot (schema and seed
rows) in memory once, and every reset copies it back with SQLite's backup API, so resetting between tests
costs about a millisecond. Every write goes through :meth:`Database.insert`, :meth:`~Database.update` or
:meth:`~Database.delete`, which tell the observers what changed: that is the one place to watch the state
(a cache watches it today). The server calls the database from one event loop, so one connection serves
every request without locks.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox import seeds

WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLAC")  # the first six letters of a statement that writes
_ENCODE = json.JSONEncoder().encode  # json.dumps(value) with its defaults, minus the per-call overhead
_DECODE = json.JSONDecoder().decode  # json.loads(text), likewise


class Tables(NamedTuple):
    """What one service keeps in SQLite: its DDL, its JSON columns and the resources the control API shows."""

    schema: str
    json_columns: frozenset[str]
    dumps: Mapping[str, str]  # resource name -> SELECT of all its rows


class Change(NamedTuple):
    """One write, as it reached the database. ``where`` selects the rows (``{"rowid": n}`` for an insert);
    ``values`` are the columns written (none for a delete)."""

    table: str
    action: Literal["insert", "update", "delete"]
    where: Mapping[str, Any]
    values: Mapping[str, Any]


Observer = Callable[[Change], None]


class Database:
    """One SQLite connection (a file, or memory) holding every service's tables."""

    def __init__(self, path: str | None, tables: Sequence[Tables]) -> None:
        self.conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.schema = "\n".join(t.schema for t in tables)
        self.json_columns = frozenset().union(*(t.json_columns for t in tables))
        self.observers: list[Observer] = []
        self._snapshots: dict[str, sqlite3.Connection] = {}
        self._selects: dict[tuple[str, ...], str] = {}  # one() is on every request's path: SQL built once

    # --- seeds -----------------------------------------------------------------------------------------
    def has_tables(self) -> bool:
        """Whether the file already holds a sandbox (``--keep`` then keeps its data)."""
        return self.value("SELECT 1 FROM sqlite_master WHERE type='table'") is not None

    def restore(self, seed: str) -> None:
        """Replace every table by the snapshot of ``seed`` (built on first use). Observers are not told:
        a reset is no change of state, and each service forgets its caches in its own ``reset``."""
        snapshot = self._snapshots.get(seed)
        if snapshot is None:
            snapshot = self._snapshots[seed] = self._build_snapshot(seed)
        snapshot.backup(self.conn)

    def _build_snapshot(self, seed: str) -> sqlite3.Connection:
        data = seeds.build(seed)
        snap = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        snap.executescript(self.schema)
        snap.execute("BEGIN")
        for table in (f.name for f in dataclasses.fields(data)):
            rows = getattr(data, table)
            if rows:
                cols = list(rows[0])
                sql = f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
                snap.executemany(sql, self._cells(cols, rows))
        snap.execute("COMMIT")
        return snap

    def _cells(self, cols: list[str], rows: list[dict[str, Any]]) -> Iterator[Sequence[Any]]:
        """Rows as parameter tuples, JSON columns encoded (the seed's thousands of rows: kept lean)."""
        get = operator.itemgetter(*cols)
        encoded = [i for i, c in enumerate(cols) if c in self.json_columns]
        for row in rows:
            values = get(row)
            if encoded:
                values = list(values)
                for i in encoded:
                    if values[i] is not None:
                        values[i] = _ENCODE(values[i])
            yield values

    # --- reads -----------------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """A read (or ``BEGIN``/``COMMIT``). Writes are refused here: they would escape the observers."""
        if sql.lstrip()[:6].upper() in WRITE_VERBS:
            raise RuntimeError("write through Database.insert/update/delete, so observers see every change")
        return self.conn.execute(sql, params)

    def row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.execute(sql, params).fetchone()
        return None if found is None else self._decode([found])[0]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._decode(self.execute(sql, params).fetchall())

    def one(self, table: str, where: Mapping[str, Any], missing: str) -> dict[str, Any]:
        """The row of ``table`` whose columns equal ``where``; 404 saying ``missing`` when there is none."""
        key = (table, *where)
        sql = self._selects.get(key)
        if sql is None:
            sql = self._selects[key] = f"SELECT * FROM {table} WHERE {self._where(where)[0]}"
        found = self.conn.execute(sql, tuple(where.values())).fetchone()
        if found is None:
            raise e.NotFound(missing)
        return self._decode([found])[0]

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (a count, or 1 for "exists"), None without a row."""
        found = self.execute(sql, params).fetchone()
        return None if found is None else found[0]

    # --- writes: the one door --------------------------------------------------------------------------
    def insert(self, table: str, values: Mapping[str, Any]) -> int:
        """Insert one row; return its rowid (the ``id`` of tables with an integer key)."""
        cols = list(values)
        sql = f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        rowid = int(self.conn.execute(sql, [self._cell(values[c], c) for c in cols]).lastrowid or 0)
        self._notify(Change(table, "insert", {"rowid": rowid}, values))
        return rowid

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """Set ``values`` on the rows whose columns equal ``where``."""
        sets = ",".join(f"{c}=?" for c in values)
        cond, params = self._where(where)
        cells = [self._cell(v, c) for c, v in values.items()]
        self.conn.execute(f"UPDATE {table} SET {sets} WHERE {cond}", [*cells, *params])
        self._notify(Change(table, "update", where, values))

    def delete(self, table: str, where: Mapping[str, Any]) -> None:
        cond, params = self._where(where)
        self.conn.execute(f"DELETE FROM {table} WHERE {cond}", params)
        self._notify(Change(table, "delete", where, {}))

    def close(self) -> None:
        self.conn.close()

    # --- helpers ---------------------------------------------------------------------------------------
    def _notify(self, change: Change) -> None:
        for observer in self.observers:
            observer(change)

    @staticmethod
    def _where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
        return " AND ".join(f"{c}=?" for c in where), list(where.values())

    def _cell(self, value: Any, column: str) -> Any:
        return _ENCODE(value) if column in self.json_columns and value is not None else value

    def _decode(self, found: list[sqlite3.Row]) -> list[dict[str, Any]]:
        """Rows as dicts, JSON columns decoded (a page renders 25 users: the columns are found once)."""
        if not found:
            return []
        names = self.json_columns.intersection(found[0].keys())
        out = [dict(r) for r in found]
        for row in out:
            for name in names:
                if row[name] is not None:
                    row[name] = _DECODE(row[name])
        return out
