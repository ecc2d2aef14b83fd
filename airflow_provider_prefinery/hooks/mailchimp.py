"""MailchimpHook: the small part of the Mailchimp Marketing API v3 the audience sync needs.

Members changed in a window, paged lazily by offset, on the shared REST core. Mailchimp allows 10
simultaneous connections per API key (an 11th gets 429), so every request of every hook in the process on
one key goes through one semaphore keyed by the key's fingerprint: threads, several hooks and several
tasks in one worker share the 10 slots.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from airflow_provider_prefinery.exceptions import PrefineryError, PrefineryInputError, PrefineryNotFoundError
from airflow_provider_prefinery.hooks.base import ApiHook, require
from airflow_provider_prefinery.hooks.error_mapping import ApiErrorInfo, json_error_parser
from airflow_provider_prefinery.hooks.rate_limit import key_fingerprint
from airflow_provider_prefinery.hooks.rest import ApiResponse, RestClient, quote_id

SERVICE = "Mailchimp"
API_PREFIX = "/3.0/"
PAGE_SIZE = 500  # Mailchimp's documented safe page size (max 1000)
MAX_IN_FLIGHT = 10  # simultaneous connections Mailchimp allows per API key
MEMBER_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
# Mailchimp's ids (audiences are 10 hex characters) are short ASCII words: nothing that could change a path.
_MAILCHIMP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def key_slots(fingerprint: str, size: int = MAX_IN_FLIGHT) -> threading.BoundedSemaphore:
    """Return the process-wide semaphore for one key (by fingerprint): at most ``size`` requests in flight."""
    with _SLOTS_LOCK:
        slots = _SLOTS.get(fingerprint)
        if slots is None:
            slots = _SLOTS[fingerprint] = threading.BoundedSemaphore(size)
        return slots


def data_center(api_key: str) -> str | None:
    """The data center a key belongs to (``...-us6`` -> ``us6``), or None when the key has no suffix."""
    _, sep, dc = api_key.rpartition("-")
    return dc if sep and dc.isalnum() else None


def mailchimp_id(field: str, value: Any) -> str:
    """Return a Mailchimp id (letters, digits, ``_`` and ``-``, at most 64) or raise naming the field."""
    if not isinstance(value, str) or not _MAILCHIMP_ID.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise PrefineryInputError(
            field, f"is not a Mailchimp id (letters, digits, '_' and '-'): {shown}", service=SERVICE
        )
    return value


@json_error_parser
def parse_mailchimp_error(body: Mapping[str, Any], response: requests.Response) -> ApiErrorInfo | None:
    """Read Mailchimp's ``application/problem+json`` body: the one Mailchimp error parser.

    ``title`` (e.g. "Resource Not Found") becomes the code, ``detail`` the message; field errors from
    ``errors: [{field, message}]`` are appended.
    """
    title = body.get("title") if isinstance(body.get("title"), str) else None
    detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    message = detail or title or response.reason or "request failed"
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        fields = "; ".join(
            f"{e.get('field')}: {e.get('message')}" if isinstance(e, Mapping) else str(e) for e in errors
        )
        message = f"{message} ({fields})"
    return ApiErrorInfo(code=title, message=message, details=body)


def iso(value: datetime | str, field: str = "since/before") -> str:
    """Render a window bound as ISO 8601 with an offset, as Mailchimp expects (text is checked, kept)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PrefineryInputError(
                field, f"is not an ISO 8601 timestamp: {value[:60]!r}", service=SERVICE
            ) from None
        if parsed.tzinfo is None:
            raise PrefineryInputError(field, f"has no UTC offset: {value[:60]!r}", service=SERVICE)
        return value.strip()
    if not isinstance(value, datetime):
        raise PrefineryInputError(
            field, f"must be a datetime or an ISO 8601 string, got {type(value).__name__}", service=SERVICE
        )
    if value.tzinfo is None:
        raise PrefineryInputError(field, "must be timezone-aware datetimes", service=SERVICE)
    return value.isoformat()


def member_fields(value: Any) -> list[str]:
    """The ``fields`` argument: a list of member field names (a bare string would be split into letters)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise PrefineryInputError(
            "fields", f"must be a list of member field names, got {type(value).__name__}", service=SERVICE
        )
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.]{1,100}", name):
            raise PrefineryInputError("fields", f"has an invalid field name: {name!r:.60}", service=SERVICE)
    return list(value)


class MailchimpHook(ApiHook):
    """Read audiences and their members from the Mailchimp Marketing API v3.

    :param mailchimp_conn_id: the Airflow connection (type ``mailchimp``): password = API key (the data
        center is read from its ``-us6`` suffix), host = optional API origin (a proxy or the local sandbox),
        extra ``list_id`` = default audience id.
    :param page_size: members per page (default 500, Mailchimp's safe size; at most 1000).
    """

    conn_name_attr = "mailchimp_conn_id"
    default_conn_name = "mailchimp_default"
    conn_type = "mailchimp"
    hook_name = "Mailchimp"
    service = SERVICE
    default_host = ""
    api_prefix = API_PREFIX

    def __init__(
        self, mailchimp_conn_id: str = default_conn_name, *, page_size: int = PAGE_SIZE, **kwargs: Any
    ) -> None:
        super().__init__(mailchimp_conn_id, **kwargs)
        self.mailchimp_conn_id = self.conn_id
        if not 1 <= int(page_size) <= 1000:
            raise PrefineryInputError("page_size", f"must be 1..1000, got {page_size}", service=SERVICE)
        self.page_size = int(page_size)

    # ------------------------------------------------------------------ connection and plumbing
    def api_origin(self) -> str:
        """The connection's host, else the key's data center: ``...-us6`` -> ``https://us6.api.mailchimp.com``."""
        if (self.connection.host or "").strip():
            return super().api_origin()
        dc = data_center(self.secret)
        if dc is None:
            raise PrefineryInputError(
                "password",
                f"the API key of connection {self.conn_id!r} has no data center suffix "
                "(such as -us6) and no host is set",
                service=SERVICE,
            )
        return f"https://{dc}.api.mailchimp.com"

    @cached_property
    def client(self) -> RestClient:
        """The REST client: Basic auth with the key as password, origin from the host or the key's dc."""
        return self.build_client(
            auth=HTTPBasicAuth("airflow", self.secret),
            error_parser=parse_mailchimp_error,
            pool_size=MAX_IN_FLIGHT,
        )

    @cached_property
    def slots(self) -> threading.BoundedSemaphore:
        """This key's share of Mailchimp's 10 simultaneous connections, shared process-wide."""
        return key_slots(key_fingerprint(self.secret))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> ApiResponse:
        """GET one resource, holding one of the key's 10 connection slots while it runs (retries included)."""
        with self.slots:
            return self.client.request("GET", path, params=params)

    def resolve_list_id(self, list_id: str | None = None) -> str:
        """The audience id from the argument, else the connection's ``list_id`` extra."""
        chosen = list_id if list_id is not None else self.extra.get("list_id")
        if chosen is None:
            raise PrefineryInputError(
                "list_id",
                f"no audience id: pass list_id= or set 'Audience ID' on connection {self.conn_id!r}",
                service=SERVICE,
            )
        return mailchimp_id("list_id", chosen)

    # ------------------------------------------------------------------ paging
    def _offset_pages(
        self, path: str, items_key: str, params: Mapping[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield pages by offset until ``offset >= total_items``.

        When ``total_items`` shrinks between pages (members left the window while we paged), the offset
        steps back by the shrinkage, so no member is skipped; the overlap yields a few members twice,
        which callers dedupe (the sync keeps the latest ``last_changed``).
        """
        offset = 0
        total: int | None = None
        while True:
            data = self.get(path, {**params, "count": self.page_size, "offset": offset}).data
            page = list(require(data, items_key))
            now_total = int(data.get("total_items", 0))
            if total is not None and now_total < total:
                offset = max(0, offset - (total - now_total))
            total = now_total
            if page:
                yield page
            offset += len(page)
            if not page or offset >= total:
                return

    # ------------------------------------------------------------------ public API
    def list_members(
        self,
        list_id: str | None = None,
        *,
        since_last_changed: datetime | str | None = None,
        before_last_changed: datetime | str | None = None,
        status: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """List an audience's members lazily, 500 per request, one page in memory at a time.

        :param list_id: the audience id (default: the connection's ``list_id`` extra).
        :param since_last_changed: only members changed after this instant (timezone-aware or ISO 8601).
        :param before_last_changed: only members changed before this instant.
        :param status: one of subscribed, unsubscribed, cleaned, pending, transactional, archived.
        :param fields: member fields to return (e.g. ``["email_address", "status"]``): smaller pages.
        :return: a lazy iterator of member objects.
        :raises PrefineryNotFoundError: unknown audience.
        """
        if status is not None and status not in MEMBER_STATUSES:
            raise PrefineryInputError(
                "status", f"unknown value {status!r}", allowed=MEMBER_STATUSES, service=SERVICE
            )
        params: dict[str, Any] = {}
        if since_last_changed is not None:
            params["since_last_changed"] = iso(since_last_changed)
        if before_last_changed is not None:
            params["before_last_changed"] = iso(before_last_changed)
        if status is not None:
            params["status"] = status
        if fields is not None:
            names = member_fields(fields)
            params["fields"] = ",".join(["total_items", *(f"members.{name}" for name in names)])
        path = f"lists/{quote_id(self.resolve_list_id(list_id), 'list_id')}/members"
        for page in self._offset_pages(path, "members", params):
            yield from page

    def list_audiences(self) -> Iterator[dict[str, Any]]:
        """List every audience (list) the key can read, lazily.

        :return: a lazy iterator of audience objects (``id``, ``name``, ``stats``, ...).
        """
        for page in self._offset_pages("lists", "lists", {}):
            yield from page

    def test_connection(self) -> tuple[bool, str]:
        """Read the configured audience (or the first audiences): Airflow's Test button.

        Uses :meth:`quick_copy`, so a wrong host answers in seconds.
        """
        try:
            quick = self.quick_copy()
            list_id = self.extra.get("list_id")
            if list_id:
                path = f"lists/{quote_id(mailchimp_id('list_id', list_id), 'list_id')}/members"
                data = quick.get(path, {"count": 1, "fields": "total_items"}).data or {}
                total = int(data.get("total_items", 0))
                return True, f"Connected to Mailchimp audience {list_id} ({total:,} members)"
            data = quick.get("lists", {"count": 5, "fields": "lists.id,lists.name,total_items"}).data or {}
            found = data.get("lists", [])
            names = ", ".join(f"'{a.get('name')}' (id {a.get('id')})" for a in found) or "none"
            return True, f"Connected to Mailchimp; no Audience ID set. Audiences visible: {names}"
        except PrefineryNotFoundError:
            return False, f"Mailchimp audience {self.extra.get('list_id')!r} not found: check the Audience ID"
        except PrefineryError as err:
            return False, self.test_failure_message(err)
