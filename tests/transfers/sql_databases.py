"""Real databases for the SQL export tests, each reached through an Airflow connection and its provider's
hook, as a DAG would: a SQLite file per test, and a fresh database per test on the session's PostgreSQL
(``tests.services``: Debian's server, started once on 127.0.0.1 and a free port)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CONN_ID = "export_warehouse"


@dataclass
class Database:
    """One database behind the Airflow connection ``conn_id``."""

    conn_id: str
    kind: str

    def hook(self) -> Any:
        from airflow.providers.common.compat.sdk import BaseHook

        return BaseHook.get_connection(self.conn_id).get_hook()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with closing(self.hook().get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def execute(self, sql: str) -> None:
        self.hook().run(sql, autocommit=True)

    def create(self, table: Any) -> None:
        engine = self.hook().get_sqlalchemy_engine()
        try:
            table.create(engine)
        finally:
            engine.dispose()


def sqlite_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A SQLite file of this test's own, as connection ``export_warehouse``."""
    conn = {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    yield Database(CONN_ID, "sqlite")


def postgres_database(server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A database of this test's own on the session's PostgreSQL server (dropped after), as
    ``export_warehouse``."""
    name = f"export_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {name}")
    conn = {
        "conn_type": "postgres", "host": server.host, "port": server.port,
        "login": server.user, "password": server.password, "schema": name,
    }  # fmt: skip
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    try:
        yield Database(CONN_ID, "postgres")
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
