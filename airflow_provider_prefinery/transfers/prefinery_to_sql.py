"""PrefineryToSqlOperator: one resource of one project into a table of any database Airflow connects to.

Through the common SQL provider: the connection's ``DbApiHook`` and its ``insert_rows`` with ``replace``,
which its dialect turns into an upsert by ``id`` (``ON CONFLICT (id) DO UPDATE`` on PostgreSQL, ``REPLACE
INTO`` on SQLite and MySQL, ``MERGE`` on SQL Server). Rows go in batches of ``batch_size``, one transaction
each: a failure leaves the batches before it complete and none half written, and a retry re-applies them
harmlessly (same ids, same values). The table is created when missing, from the one column table
(``export_columns``), with SQLAlchemy's types for the connection's dialect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook, Context

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.transfers.export_base import PrefineryExportOperator, templated
from airflow_provider_prefinery.transfers.export_columns import (
    KEY_COLUMN,
    Resource,
    Row,
    json_text,
    resource_of,
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
DEFAULT_TABLE = "prefinery_{resource}"


def check_table(value: Any) -> tuple[str | None, str]:
    """``table`` or ``schema.table``, plain identifiers only (they go into SQL text): (schema, name)."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise PrefineryInputError(
            "table",
            f"must be a table name or schema.table of letters, digits and _, got {value!r}",
            allowed="e.g. prefinery_users, analytics.prefinery_users",
        )
    schema, _, name = value.rpartition(".")
    return schema or None, name


def sql_table(resource: Resource, name: str, schema: str | None) -> Any:
    """The SQLAlchemy table of a resource: BIGINT, TEXT, TIMESTAMP WITH TIME ZONE; ``id`` the primary key."""
    import sqlalchemy as sa

    types = {"integer": sa.BigInteger, "text": sa.Text, "timestamp": lambda: sa.DateTime(timezone=True)}
    columns = [
        sa.Column(
            column.name,
            types.get(column.type, sa.Text)(),
            primary_key=column.name == KEY_COLUMN,
            autoincrement=False,
        )
        for column in resource.columns
    ]
    return sa.Table(name, sa.MetaData(), *columns, schema=schema)


def sql_rows(resource: Resource, rows: Sequence[Row]) -> list[Row]:
    """Rows as the database takes them: json columns as JSON text, the rest as they are."""
    json_columns = [i for i, column in enumerate(resource.columns) if column.type == "json"]
    if not json_columns:
        return list(rows)
    out = []
    for row in rows:
        values = list(row)
        for i in json_columns:
            values[i] = json_text(values[i])
        out.append(tuple(values))
    return out


class PrefineryToSqlOperator(PrefineryExportOperator):
    """Upsert one Prefinery resource into a SQL table, by ``id``, in batches of one transaction each.

    :param sql_conn_id: the database connection (any type with a ``DbApiHook``: postgres, sqlite, mysql...).
    :param table: ``table`` or ``schema.table`` (templated; default ``prefinery_<resource>``).
    :param create_table: create the table from the documented column mapping when it does not exist.
    :param sql_hook_params: extra arguments for the connection's hook (e.g. ``{"schema": "analytics"}``).
    :param batch_size: rows per transaction (default 1,000).
    :return: ``{resource, beta_id, filters, table, rows, batches, created_table, requests, retries,
        seconds}``.

    Other parameters: see :class:`~airflow_provider_prefinery.transfers.export_base.PrefineryExportOperator`.
    Records deleted in Prefinery are not removed from the table: the export merges, it does not truncate.
    """

    template_fields: Sequence[str] = (*PrefineryExportOperator.template_fields, "sql_conn_id", "table")
    default_batch_size = 1000

    def __init__(
        self,
        *,
        sql_conn_id: str,
        table: str | None = None,
        create_table: bool = True,
        sql_hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.create_table = create_table
        self.sql_hook_params = dict(sql_hook_params or {})
        if table is not None and not templated(table):
            check_table(table)

    def table_name(self) -> str:
        name = self.table if self.table is not None else DEFAULT_TABLE.format(resource=self.resource)
        check_table(name)
        return name

    @cached_property
    def sql_hook(self) -> Any:
        """The connection's ``DbApiHook`` (a clear error for a connection type without one)."""
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        conn = BaseHook.get_connection(self.sql_conn_id)
        hook = conn.get_hook(hook_params=self.sql_hook_params)
        if not isinstance(hook, DbApiHook):
            raise PrefineryInputError(
                "sql_conn_id",
                f"connection {self.sql_conn_id!r} (type {conn.conn_type!r}) has no SQL hook: "
                f"{type(hook).__name__} is not a DbApiHook",
            )
        return hook

    def execute(self, context: Context) -> dict[str, Any]:
        resource_of(self.resource)
        table = self.table_name()
        source = self.open_source()
        hook = self.sql_hook
        created = self.ensure_table(hook, source.resource, table) if self.create_table else False
        names, batches = list(source.resource.column_names), 0
        self.log.info("Exporting %s of project %s into %s", source.resource.name, source.beta_id, table)
        for batch in source.batches(self.batch_size):
            hook.insert_rows(
                table,
                sql_rows(source.resource, batch),
                target_fields=names,
                commit_every=len(batch),  # the whole batch in one transaction
                replace=True,
                replace_index=[KEY_COLUMN],
                executemany=True,
            )
            batches += 1
        summary = {**source.summary(), "table": table, "batches": batches, "created_table": created}
        self.log.info(
            "Exported %s %s into %s in %d batches with %d requests",
            f"{summary['rows']:,}", summary["resource"], table, batches, summary["requests"],
        )  # fmt: skip
        return summary

    def ensure_table(self, hook: Any, resource: Resource, table: str) -> bool:
        """Create the table when missing; check an existing one has every mapped column. True if created."""
        import sqlalchemy as sa

        schema, name = check_table(table)
        engine = hook.get_sqlalchemy_engine()
        try:
            inspector = sa.inspect(engine)
            if inspector.has_table(name, schema=schema):
                present = {column["name"] for column in inspector.get_columns(name, schema=schema)}
                missing = [column for column in resource.column_names if column not in present]
                if missing:
                    raise PrefineryInputError(
                        "table",
                        f"{table} exists but lacks the columns {', '.join(missing)} of the {resource.name} "
                        "mapping: add them, or export into a new table",
                    )
                return False
            sql_table(resource, name, schema).create(engine, checkfirst=True)
            self.log.info("Created table %s for %s", table, resource.name)
            return True
        finally:
            engine.dispose()

    def lineage_output(self) -> tuple[str, str]:
        """The table as ``(sql_conn_id, table)``; the lineage work maps the connection to a namespace."""
        return self.sql_conn_id, self.table_name()
