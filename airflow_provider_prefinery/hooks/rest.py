"""The one HTTP core every hook shares: send, check, retry, limit, page, redact.

It knows nothing of Prefinery: each hook hands it a base URL, an auth, an error parser and its limiters.
This module holds the client (:class:`RestClient`); its parts live beside it, each in its own module:

* ``retry_policy``: which failures are retried and how long to wait (pure functions, after stripe-python);
* ``rate_limit``: the :class:`RateLimiter` the client calls, and the in-process :class:`TokenBucket`;
* ``error_mapping``: status -> error class, and the preamble every API's error parser shares;
* ``concurrency``: :func:`bounded_map`, many calls in a few threads;
* ``transport``: how a request without an answer failed (sent or not, worth retrying or not);
* ``redaction``: the secrets and their encoded echoes, masked in text and in error bodies.

Every name of those modules is importable from here too, as before they were split out.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from airflow_provider_prefinery import __version__
from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryConnectionError,
    PrefineryError,
    PrefineryInputError,
    PrefineryPermissionError,
    PrefineryRateLimitError,
)
from airflow_provider_prefinery.hooks.concurrency import bounded_map
from airflow_provider_prefinery.hooks.error_mapping import (
    STATUS_ERRORS,
    ApiErrorInfo,
    ErrorParser,
    default_error_parser,
    error_class,
    json_error_parser,
)
from airflow_provider_prefinery.hooks.rate_limit import (
    _BUCKETS,
    RateLimiter,
    TokenBucket,
    key_fingerprint,
    shared_bucket,
)
from airflow_provider_prefinery.hooks.redaction import Redactor
from airflow_provider_prefinery.hooks.retry_policy import (
    IDEMPOTENT_METHODS,
    POST_SAFE_STATUSES,
    RETRY_STATUSES,
    RetryPolicy,
    Timeouts,
    backoff_delay,
    is_retryable,
    parse_retry_after,
)
from airflow_provider_prefinery.hooks.transport import classify

__all__ = [
    "IDEMPOTENT_METHODS",
    "POST_SAFE_STATUSES",
    "RETRY_STATUSES",
    "STATUS_ERRORS",
    "_BUCKETS",
    "ApiErrorInfo",
    "ApiResponse",
    "BearerAuth",
    "ErrorParser",
    "RateLimiter",
    "RestClient",
    "RetryPolicy",
    "Timeouts",
    "TokenBucket",
    "backoff_delay",
    "bounded_map",
    "default_error_parser",
    "error_class",
    "is_retryable",
    "json_error_parser",
    "key_fingerprint",
    "parse_retry_after",
    "quote_id",
    "shared_bucket",
    "user_agent",
]

log = logging.getLogger(__name__)


def quote_id(value: Any, field: str = "id") -> str:
    """URL-quote an id for a path segment: the one place ids enter URLs.

    An empty id and the dot segments ``.`` and ``..`` are refused: quoting leaves dots alone, and a URL
    normaliser (ours, a proxy's or the server's) would turn ``lists/../members`` into another resource.

    :raises PrefineryInputError: naming ``field``.
    """
    text = str(value)
    if text.strip() in ("", ".", ".."):
        raise PrefineryInputError(field, f"is not an id that can go into a URL path: {text!r}")
    return quote(text, safe="")


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``: keeps the key out of URLs, and out of ``repr``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


@dataclass
class ApiResponse:
    """A parsed answer: JSON body (or None) and the headers the caller may need (pagination)."""

    status: int
    data: Any
    headers: Mapping[str, str]
    # The start of a non-empty body that is not JSON (redacted), else None: a proxy's or portal's page.
    unreadable: str | None = None


class _Retryable(Exception):
    """Internal: one attempt failed in a way the policy may retry."""

    def __init__(self, error: PrefineryError, retry_after: float | None, retry: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.retry = retry


@dataclass
class RestClient:
    """A pooled session speaking JSON to one API, with retries, rate limits and typed, redacted errors."""

    service: str
    base_url: str
    auth: requests.auth.AuthBase | None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    conn_id: str | None = None
    error_parser: ErrorParser = default_error_parser
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    pool_size: int = 16
    logger: logging.Logger = log
    sleep: Callable[[float], None] = time.sleep
    # An http(s) proxy URL for every request (it may hold a password: never shown), and the TLS trust:
    # True for the public CAs requests ships (certifi), or the path of a PEM bundle (a private CA).
    proxy: str | None = field(default=None, repr=False)
    verify: bool | str = True

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/") + "/"
        self.stats: dict[str, int] = {"requests": 0, "retries": 0}
        self._stats_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """One session per client: connection pooling across calls and threads."""
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    self._session = self._new_session()
        return self._session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = self.auth
        session.trust_env = False  # no netrc credentials or proxies picked up behind the user's back
        if self.proxy:
            session.proxies = {"http": self.proxy, "https": self.proxy}
        session.verify = self.verify
        session.headers.update({"Accept": "application/json", "User-Agent": user_agent()})
        return session

    def ensure_pool(self, workers: int) -> None:
        """Give the connection pool room for ``workers`` threads: a smaller pool makes urllib3 discard
        connections and reconnect per request. Takes effect while the session is not yet built."""
        if self._session is None:
            self.pool_size = max(self.pool_size, int(workers))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # ---- redaction ----
    @property
    def redactor(self) -> Redactor:
        """The masker of this client's secrets (rebuilt when they change: Piggy adds each new token)."""
        cached = self.__dict__.get("_redactor")
        if cached is None or cached[0] != self.secrets:
            cached = self.__dict__["_redactor"] = (self.secrets, Redactor(self.secrets))
        return cached[1]

    def redact(self, text: str) -> str:
        """Remove every secret of this client from ``text``, URL-encoded and base64 echoes included."""
        return self.redactor.text(text)

    def redact_value(self, value: Any) -> Any:
        """A copy of a JSON value (an error body) with every secret removed from every string in it."""
        return self.redactor.value(value)

    # ---- one request ----
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        limiter: RateLimiter | None = None,
        replay_safe: bool = False,
    ) -> ApiResponse:
        """Send one API call, retrying what the policy allows; raise the typed error otherwise."""
        method = method.upper()
        url = self.base_url + path.lstrip("/")
        retries = self.retry.max_retries
        ambiguous = {"seen": False}

        def attempt() -> ApiResponse:
            if limiter is not None:
                limiter.acquire(self.sleep)
            with self._stats_lock:
                self.stats["requests"] += 1
            return self._send_once(method, path, url, params, json, data, limiter, replay_safe, ambiguous)

        def wait_for(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = exc.retry_after if isinstance(exc, _Retryable) else None
            return backoff_delay(state.attempt_number, self.retry, hint)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            with self._stats_lock:
                self.stats["retries"] += 1
            self.logger.warning(
                "%s %s %s failed (attempt %d of %d: %s); retrying in %.2f s",
                self.service, method, path, state.attempt_number, retries + 1,
                exc.error.message if isinstance(exc, _Retryable) else exc,
                state.next_action.sleep if state.next_action else 0.0,
            )  # fmt: skip

        retrying = Retrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait_for,
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable) and e.retry),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            exc.error.replayed = ambiguous["seen"]
            raise exc.error from None

    def _send_once(
        self,
        method: str,
        path: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Any,
        limiter: RateLimiter | None,
        replay_safe: bool,
        ambiguous: dict[str, bool],
    ) -> ApiResponse:
        try:
            resp = self.session.request(
                method, url, params=params, json=json, data=data, timeout=self.timeouts.as_tuple()
            )
        except PrefineryError:
            raise  # raised by an auth of ours (Piggy's token exchange): already typed
        except (requests.RequestException, ValueError) as exc:
            failure = classify(exc, url, self.timeouts)
            sent = failure.sent
            ambiguous["seen"] |= sent and method not in IDEMPOTENT_METHODS
            retry = not failure.permanent and is_retryable(
                method, status=None, sent=sent, replay_safe=replay_safe
            )
            error: PrefineryError
            if failure.field is not None:
                error = PrefineryInputError(failure.field, self.redact(failure.message), service=self.service)
                error.method, error.path = method, path
            else:
                error = PrefineryConnectionError(
                    self.redact(failure.message), service=self.service, method=method, path=path,
                    outcome_unknown=sent and method not in IDEMPOTENT_METHODS,
                )  # fmt: skip
            raise _Retryable(error, None, retry) from None
        if resp.status_code < 400:
            data, unreadable = _json_or_text(resp)
            return ApiResponse(
                resp.status_code, data, resp.headers, self.redact(unreadable) if unreadable else None
            )
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if resp.status_code == 429 and limiter is not None:
            limiter.pause(backoff_delay(1, self.retry, retry_after))
        error = self._error_for(resp, method, path, retry_after)
        if error.status is not None and error.status >= 500 and method not in IDEMPOTENT_METHODS:
            unknown = error.status not in POST_SAFE_STATUSES
            error.outcome_unknown = unknown
            ambiguous["seen"] |= unknown
        retry = is_retryable(method, status=resp.status_code, replay_safe=replay_safe)
        raise _Retryable(error, retry_after, retry)

    def _error_for(
        self, resp: requests.Response, method: str, path: str, retry_after: float | None
    ) -> PrefineryError:
        info = self.error_parser(resp)
        cls = info.kind or error_class(resp.status_code)
        message = self.redact(info.message or resp.reason or "request failed")
        if cls is PrefineryAuthError and resp.status_code == 401:
            message += f" (check the API key of connection {self.conn_id!r})"
        if resp.status_code == 407:
            message += (
                f" (the proxy refused the credentials in the 'proxy' extra of connection {self.conn_id!r})"
            )
        if cls is PrefineryPermissionError:
            message += (
                f" (the API key of connection {self.conn_id!r} lacks the permission for {method} {path})"
            )
        common: dict[str, Any] = {
            "service": self.service,
            "method": method,
            "path": path,
            "status": resp.status_code,
            "code": self.redact(info.code) if isinstance(info.code, str) else info.code,
            "body": self.redact_value(info.details),
        }
        if issubclass(cls, PrefineryRateLimitError):
            error: PrefineryError = cls(message, retry_after=retry_after, **common)
        else:
            error = cls(message, **common)
        error.clock_offset = _clock_offset(resp.headers.get("Date"))
        return error

    # ---- many pages ----
    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        next_params: Callable[[ApiResponse, dict[str, Any]], dict[str, Any] | None],
        items: Callable[[Any], list[Any]] = lambda data: data or [],
        limiter: RateLimiter | None = None,
    ) -> Iterator[Any]:
        """Yield items page by page, holding one page at a time; ``next_params`` says where to go next."""
        current: dict[str, Any] | None = dict(params or {})
        while current is not None:
            response = self.request("GET", path, params=current, limiter=limiter)
            if response.unreadable is not None:
                raise PrefineryError(
                    f"a page is not JSON, so the listing cannot go on: {response.unreadable!r} "
                    "(a proxy's or a login portal's page?)",
                    service=self.service, method="GET", path=path, status=response.status,
                )  # fmt: skip
            page = items(response.data)
            yield from page
            current = next_params(response, current) if page else None


def _json_or_text(resp: requests.Response) -> tuple[Any, str | None]:
    """The parsed JSON body (None when empty), and the start of a body that is not JSON (else None)."""
    if not resp.content:
        return None, None
    try:
        return resp.json(), None
    except ValueError:
        return None, resp.text[:200]


def _clock_offset(date: str | None) -> float | None:
    """The server's clock minus ours, in seconds, from an answer's ``Date`` header (1 s resolution)."""
    if not date:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time() if when.tzinfo is not None else None


def user_agent() -> str:
    """Name the provider and Airflow versions, as API owners ask integrators to."""
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return (
        f"airflow-provider-prefinery/{__version__} apache-airflow/{airflow_version} "
        f"requests/{requests.__version__}"
    )
