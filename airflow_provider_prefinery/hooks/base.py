"""What the three API hooks share on top of the REST core: reading the connection into a client."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_prefinery.exceptions import (
    PrefineryConnectionError,
    PrefineryError,
    PrefineryInputError,
)
from airflow_provider_prefinery.hooks.rest import RestClient, RetryPolicy, Timeouts

H = TypeVar("H", bound="ApiHook")


def connection_extra(conn: Any, conn_type: str) -> dict[str, Any]:
    """Read a connection's extra, accepting both ``key`` and the legacy ``extra__<type>__key`` spellings."""
    extra = conn.extra_dejson if conn is not None else {}
    prefix = f"extra__{conn_type}__"
    merged = {key[len(prefix) :]: value for key, value in extra.items() if key.startswith(prefix)}
    merged.update({key: value for key, value in extra.items() if not key.startswith(prefix)})
    return {key: value for key, value in merged.items() if value not in (None, "")}


def base_url(host: str | None, port: int | None, default: str, *, service: str) -> str:
    """Turn the connection's host (an origin, a bare host name or empty) into an origin URL."""
    raw = (host or "").strip() or default
    if "://" not in raw:
        raw = f"https://{raw}"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise PrefineryInputError("host", f"is not a URL: {raw!r} ({exc})", service=service) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in raw:
        raise PrefineryInputError(
            "host", f"is not an http(s) URL: {raw!r}", allowed="e.g. https://api.example.com", service=service
        )
    netloc = parts.netloc
    if port and not parts.port:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def proxy_url(value: Any, *, service: str) -> tuple[str, tuple[str, ...]]:
    """Check the ``proxy`` extra: an http(s) URL, optionally with ``user:password@``.

    :return: the URL, and the secrets it holds (the password as typed and percent-decoded).
    :raises PrefineryInputError: not such a URL (the error shows it with the password masked).
    """
    allowed = "e.g. http://proxy.example.com:3128 or http://user:password@proxy.example.com:3128"
    if not isinstance(value, str):
        raise PrefineryInputError(
            "proxy", f"must be a URL string, got {type(value).__name__}", service=service
        )
    parts = urlsplit(value.strip())
    shown = masked_url(value.strip())
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise PrefineryInputError("proxy", f"has a malformed port: {shown!r}", service=service) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value.strip():
        raise PrefineryInputError(
            "proxy", f"is not an http(s) proxy URL: {shown!r}", allowed=allowed, service=service
        )
    secrets = tuple({parts.password, unquote(parts.password)}) if parts.password else ()
    return value.strip(), secrets


def masked_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***``: safe to show, even malformed."""
    head, at, host = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, userinfo = head.rpartition("//")
    return f"{scheme}{slashes}{userinfo.split(':', 1)[0]}:***@{host}"


def ca_bundle_path(value: Any, *, service: str) -> str:
    """Check the ``ca_bundle`` extra: the path of a readable PEM file of CA certificates.

    :raises PrefineryInputError: not a string, or no such file.
    """
    if not isinstance(value, str) or not value.strip():
        raise PrefineryInputError("ca_bundle", f"must be a file path, got {value!r}", service=service)
    path = os.path.expanduser(value.strip())
    if not os.path.isfile(path):
        raise PrefineryInputError("ca_bundle", f"no such file: {path!r}", service=service)
    return path


class ApiHook(BaseHook):
    """A hook whose calls all go through one :class:`RestClient` built from its connection.

    ``connection`` may be passed in (triggers load it asynchronously first, so the event loop never
    blocks on ``get_connection``).
    """

    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""
    service = ""
    default_host = ""
    api_prefix = ""

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        connection: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        self._retry = retry
        self._timeouts = timeouts
        self._connection = connection

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Airflow 2 form behaviour (Airflow >= 3.2 reads ``get_provider_info()`` instead).

        :return: the ``ui-field-behaviour`` declared for :attr:`conn_type` in ``provider_info``.
        """
        from airflow_provider_prefinery.provider_info import connection_type

        return connection_type(cls.conn_type)["ui-field-behaviour"]

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Airflow 2 extra form fields; wtforms is imported only then because Airflow 3 lacks it.

        :return: field name -> wtforms field, built from the ``conn-fields`` of :attr:`conn_type`.
        """
        from airflow_provider_prefinery.provider_info import legacy_widgets

        return legacy_widgets(cls.conn_type)

    @cached_property
    def connection(self) -> Any:
        return self._connection if self._connection is not None else self.get_connection(self.conn_id)

    @cached_property
    def extra(self) -> dict[str, Any]:
        return connection_extra(self.connection, self.conn_type)

    @cached_property
    def secret(self) -> str:
        key = self.connection.password or ""
        if not key:
            raise PrefineryInputError(
                "password", f"connection {self.conn_id!r} has no API key", service=self.service
            )
        mask_secret(key)
        if not key.isprintable() or key != key.strip() or " " in key:
            raise PrefineryInputError(
                "password",
                f"the API key of connection {self.conn_id!r} contains a space, a line break or a control "
                "character (pasted with one?): it cannot go into an HTTP header",
                service=self.service,
            )
        return key

    def _policy(self) -> tuple[RetryPolicy, Timeouts]:
        extra = self.extra
        retry = self._retry or RetryPolicy(
            max_retries=int(extra.get("max_retries", RetryPolicy.max_retries)),
            backoff_initial=float(extra.get("backoff_initial", RetryPolicy.backoff_initial)),
            backoff_max=float(extra.get("backoff_max", RetryPolicy.backoff_max)),
        )
        timeouts = self._timeouts or Timeouts(
            connect=float(extra.get("connect_timeout", Timeouts.connect)),
            read=float(extra.get("read_timeout", extra.get("timeout", Timeouts.read))),
        )
        return retry, timeouts

    def api_origin(self) -> str:
        """The API origin requests go to: the connection's host, else :attr:`default_host`."""
        return base_url(self.connection.host, self.connection.port, self.default_host, service=self.service)

    @cached_property
    def transport(self) -> dict[str, Any]:
        """The client options the ``proxy`` and ``ca_bundle`` extras set: ``proxy``, ``verify`` and the
        proxy's secrets. By default no proxy and the public CAs ``requests`` ships (certifi); never the
        environment's ``HTTPS_PROXY`` or ``REQUESTS_CA_BUNDLE``. The proxy's password is masked in task
        logs, like the key."""
        options: dict[str, Any] = {"proxy": None, "verify": True, "secrets": ()}
        if self.extra.get("proxy") is not None:
            options["proxy"], options["secrets"] = proxy_url(self.extra["proxy"], service=self.service)
            for secret in options["secrets"]:
                mask_secret(secret)
        if self.extra.get("ca_bundle") is not None:
            options["verify"] = ca_bundle_path(self.extra["ca_bundle"], service=self.service)
        return options

    def build_client(self, **overrides: Any) -> RestClient:
        """Build the REST client for this connection; subclasses supply auth and the error parser."""
        retry, timeouts = self._policy()
        transport = self.transport
        options: dict[str, Any] = {
            "service": self.service,
            "base_url": self.api_origin() + self.api_prefix,
            "auth": None,
            "secrets": (self.secret, *transport["secrets"]),
            "conn_id": self.conn_id,
            "retry": retry,
            "timeouts": timeouts,
            "logger": self.log,
            "proxy": transport["proxy"],
            "verify": transport["verify"],
        }
        options.update(overrides)
        return RestClient(**options)

    def quick_copy(self: H, **kwargs: Any) -> H:
        """The same hook with one short retry and short timeouts: the Test button answers in seconds,
        not after the full backoff a task would wait."""
        return type(self)(
            self.conn_id,
            retry=RetryPolicy(max_retries=1, backoff_max=2.0),
            timeouts=Timeouts(connect=5.0, read=15.0),
            connection=self.connection,
            **kwargs,
        )

    @cached_property
    def client(self) -> RestClient:
        return self.build_client()

    def test_failure_message(self, err: PrefineryError) -> str:
        """The Test button's message for a failed check, phrased for the form being tested.

        It names no connection id: Airflow's Test button hands the hook a random transient id, not the one
        on screen. An unreachable host names the origin tried (without user info); other errors read as
        raised (they never hold the key).

        :param err: what the check raised.
        :return: one line for the user.
        """
        if isinstance(err, PrefineryConnectionError):
            try:
                origin = self.api_origin()
            except PrefineryInputError:
                return f"Cannot reach {self.service}: {err.message}. Check the API Base URL."
            parts = urlsplit(origin)
            host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
            where = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
            return f"Cannot reach {self.service} at {where}: {err.message}. Check the API Base URL."
        named = f"connection {self.conn_id!r}"
        return str(err).replace(f" of {named}", "").replace(named, "the connection")

    @property
    def stats(self) -> dict[str, int]:
        """Requests and retries this hook made: for progress logs, reports and benchmarks."""
        return dict(self.client.stats)

    def get_conn(self) -> RestClient:
        return self.client

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()


def require(mapping: Mapping[str, Any] | None, key: str) -> Any:
    """Fetch ``key`` from an API answer or fail with the answer's keys (a changed API shape)."""
    if not isinstance(mapping, Mapping) or key not in mapping:
        keys = sorted(mapping) if isinstance(mapping, Mapping) else type(mapping).__name__
        raise KeyError(f"expected {key!r} in the API's answer, got {keys}")
    return mapping[key]
