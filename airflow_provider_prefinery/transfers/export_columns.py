"""THE column table of the exports: one per resource, shared by the file and the SQL exports.

A row is a tuple in column order, built from one API object. Column names and types are stable: a new API
field is a new row here (and a README line), never a rename. Each column has one of four types, which each
target writes its own way (README, "Exports"):

* ``integer``: a whole number (JSON number, CSV digits, Parquet int64, SQL BIGINT);
* ``text``: a string;
* ``timestamp``: UTC ISO-8601 text ``2025-01-31T09:30:00Z`` in JSON Lines and CSV, a UTC timestamp in
  Parquet and SQL (the row holds an aware ``datetime``);
* ``json``: a nested value: embedded as is in JSON Lines, JSON text everywhere else.

The user's nested ``profile`` is flattened: one ``profile_<field>`` text column per documented profile field
(``validation.PROFILE_FIELDS``), and every other profile key, if any, in ``profile_extra`` (json).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from inspect import Parameter, signature
from typing import Any, Literal, get_args

from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryInputError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.validation import PROFILE_FIELDS, one_of

ColumnType = Literal["integer", "text", "timestamp", "json"]
Row = tuple[Any, ...]
Reader = Callable[[Mapping[str, Any], int], Any]


@dataclass(frozen=True)
class Column:
    """One output column: its name, its type and how to read it from an API object (and the project id)."""

    name: str
    type: ColumnType
    read: Reader = field(compare=False, repr=False)


@dataclass(frozen=True)
class Resource:
    """One exportable resource: the hook method that lists it, and its columns (``id`` first, the key)."""

    name: str
    list_method: str
    columns: tuple[Column, ...]

    @property
    def filters(self) -> tuple[str, ...]:
        """The list method's keyword filters, read from ``PrefineryHook`` itself (one place for them)."""
        params = signature(getattr(PrefineryHook, self.list_method)).parameters.values()
        return tuple(p.name for p in params if p.kind is Parameter.KEYWORD_ONLY and p.name != "beta_id")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def row(self, record: Mapping[str, Any], beta_id: int) -> Row:
        """The record as a tuple in column order, each value checked against its column's type."""
        return tuple(
            _coerce(self.name, column, column.read(record, beta_id), record) for column in self.columns
        )

    def rows(self, records: Iterable[Mapping[str, Any]], beta_id: int) -> Iterator[Row]:
        return (self.row(record, beta_id) for record in records)


def _key(name: str) -> Reader:
    return lambda record, _beta_id: record.get(name)


def _profile_field(name: str) -> Reader:
    return lambda record, _beta_id: (record.get("profile") or {}).get(name)


def _profile_extra(record: Mapping[str, Any], _beta_id: int) -> Any:
    extra = {k: v for k, v in (record.get("profile") or {}).items() if k not in PROFILE_FIELDS}
    return extra or None


def _project(_record: Mapping[str, Any], beta_id: int) -> int:
    return beta_id


def _plain(spec: str) -> tuple[Column, ...]:
    """Columns read from the API key of the same name, from whitespace-separated ``name:type`` items."""
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        if kind not in get_args(ColumnType):
            raise ValueError(f"column {name}: unknown type {kind!r}")
        out.append(Column(name, kind, _project if name == "beta_id" else _key(name)))  # type: ignore[arg-type]
    return tuple(out)


USER_COLUMNS = _plain("""
    id:integer beta_id:integer email:text status:text invitation_code:text
    imported_at:timestamp applied_at:timestamp invited_at:timestamp joined_at:timestamp
    unsubscribed_at:timestamp share_clicks_count:integer share_signups_count:integer
    friend_invitations_allowed:integer friend_invitations_count:integer friend_invitations_remaining:integer
    referral_code:text share_link:text share_status_link:text waitlist_position:integer
    waitlist_ahead:integer waitlist_behind:integer waitlist_length:integer referred_by:integer
    groups:text created_at:timestamp updated_at:timestamp
""")
PROFILE_COLUMNS = tuple(Column(f"profile_{name}", "text", _profile_field(name)) for name in PROFILE_FIELDS)

# THE table. ``beta_id`` is the exported project (not an API field), so one SQL table may hold several.
RESOURCES: dict[str, Resource] = {
    "users": Resource(
        "users",
        "list_users",
        USER_COLUMNS
        + PROFILE_COLUMNS
        + (Column("profile_extra", "json", _profile_extra), *_plain("responses:json")),
    ),
    "rewards": Resource(
        "rewards",
        "list_rewards",
        _plain("""
            id:integer beta_id:integer user_id:integer descriptor:text name:text type:text user_role:text
            status:text earned_at:timestamp delivered_at:timestamp revoked_at:timestamp
        """),
    ),
    "points": Resource(
        "points",
        "list_points",
        _plain("""
            id:integer beta_id:integer user_id:integer quantity:integer activity:text reason:text
            created_at:timestamp
        """),
    ),
    "suppressions": Resource(
        "suppressions",
        "list_suppressions",
        _plain("id:integer beta_id:integer email:text user_id:integer reason:text suppressed_at:timestamp"),
    ),
}
KEY_COLUMN = "id"


def resource_of(name: Any) -> Resource:
    """The resource called ``name``, or an input error listing the exportable ones."""
    return RESOURCES[one_of("resource", name, RESOURCES)]


def check_filters(resource: Resource, filters: Any) -> dict[str, Any]:
    """The filters as a dict, each a keyword of the resource's list method. Values are strings (``status``:
    one or a list); the hook checks e-mails and statuses."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise PrefineryInputError(
            "filters", f"must be a mapping of filter names to values, got {type(filters).__name__}"
        )
    allowed = resource.filters
    for name, value in filters.items():
        if name not in allowed:
            raise PrefineryInputError(
                f"filters.{name}", f"is not a filter of {resource.name}", allowed=allowed or "none"
            )
        if name != "status" and value is not None and not isinstance(value, str):
            raise PrefineryInputError(f"filters.{name}", f"must be a string, got {type(value).__name__}")
    return {name: value for name, value in filters.items() if value is not None}


def parse_timestamp(value: str) -> datetime:
    """An API timestamp (``2012-10-21T16:45:10Z`` or with an offset) as an aware UTC datetime."""
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def json_text(value: Any) -> str | None:
    """A json column's value as compact JSON text (None stays None)."""
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _coerce(resource: str, column: Column, value: Any, record: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    kind = column.type
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "text":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)):
            return str(value)
        return json_text(value)
    elif kind == "timestamp":
        if value == "":
            return None
        if isinstance(value, str):
            try:
                return parse_timestamp(value)
            except ValueError:
                pass
    else:
        return value
    raise PrefineryError(
        f"export of {resource}: column {column.name!r} ({kind}) cannot hold {value!r} "
        f"(record id {record.get(KEY_COLUMN)!r}); the API's answer changed shape"
    )


def timestamp_text(moment: datetime) -> str:
    """A timestamp as the API writes it: UTC, ``Z`` (microseconds only when there are some)."""
    return moment.isoformat().replace("+00:00", "Z")
