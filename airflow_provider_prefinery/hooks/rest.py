"""The one HTTP core every hook shares: send, check, retry, limit, page, redact.

It knows nothing of Prefinery: each hook hands it a base URL, an auth, an error parser and its limits.
The retry decision and the backoff are pure module-level functions (after stripe-python), so sync code,
triggers and tests share them instead of copies.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from airflow_provider_prefinery import __version__
from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryConnectionError,
    PrefineryError,
    PrefineryNotFoundError,
    PrefineryPermissionError,
    PrefineryRateLimitError,
    PrefineryServerError,
    PrefineryValidationError,
)

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
# Statuses after which a POST cannot have been applied: the server refused it before acting.
POST_SAFE_STATUSES = frozenset({429, 503})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------------------------------
# Policy: pure functions and small value objects
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; one per hook, overridable per connection or argument."""

    max_retries: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    jitter: float = 0.25  # +/- this fraction of the computed delay


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts in seconds: no request is ever sent without both."""

    connect: float = 10.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header given as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_retryable(
    method: str, *, status: int | None = None, sent: bool = True, replay_safe: bool = False
) -> bool:
    """Decide whether a failed attempt may be repeated.

    ``status`` is the HTTP status (None when no answer came); ``sent`` is False only when the connection
    was never established. Idempotent methods retry on any connection failure, 429 and 5xx. A POST retries
    only when it cannot have been applied (not sent, 429, 503), unless the endpoint is ``replay_safe``
    (the API reports a replayed create as a duplicate, which the hook treats as already done).
    """
    if status is not None and status not in RETRY_STATUSES:
        return False
    if method.upper() in IDEMPOTENT_METHODS or replay_safe:
        return True
    if status is None:
        return not sent
    return status in POST_SAFE_STATUSES


def backoff_delay(
    attempt: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): the server's hint, else capped doubling."""
    if retry_after is not None:
        return min(retry_after, policy.retry_after_max)
    base = min(policy.backoff_initial * (2 ** (attempt - 1)), policy.backoff_max)
    return max(0.0, base * (1 + policy.jitter * (2 * rand() - 1)))


def quote_id(value: Any) -> str:
    """URL-quote an id for a path segment: the one place ids enter URLs."""
    return quote(str(value), safe="")


def key_fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a key, to scope shared rate limiters without holding the key."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``: keeps the key out of URLs, and out of ``repr``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


# --------------------------------------------------------------------------------------------------
# Client-side rate limiting
# --------------------------------------------------------------------------------------------------
class TokenBucket:
    """A thread-safe rate limiter that never lets more than ``limit`` requests into any ``period``.

    A burst of ``capacity`` is allowed, and the refill rate is lowered by that burst, so even a server
    counting in a sliding window never sees more than ``limit``. Each caller reserves its own slot
    (virtual scheduling, as in GCRA) and sleeps once until it, so waiters never race for the same token.
    ``pause()`` lets a 429 hold every thread, including those already asleep on a reservation.
    """

    def __init__(
        self,
        limit: float,
        period: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit <= 0 or period <= 0:
            raise ValueError("a rate limit needs a positive limit and period")
        self.limit = limit
        self.period = period
        # ``burst=1`` paces evenly at (limit - 1) per period: the most a batch can sustain.
        default = max(1.0, min(float(limit) / 10, 10.0)) if limit >= 2 else 1.0
        self.capacity = default if burst is None else max(1.0, min(float(burst), float(limit)))
        self.rate = max(limit - self.capacity, limit / 2) / period
        self._interval = 1.0 / self.rate
        self._clock = clock
        self._tat = clock()  # theoretical arrival time of the next request at full pace
        self._paused_until = 0.0
        self._epoch = 0  # bumped by pause(): reservations made before it are void
        self._lock = threading.Lock()

    def _reserve(self) -> tuple[float, int]:
        """Reserve the earliest free slot; return how long to wait for it and the reservation's epoch."""
        with self._lock:
            now = self._clock()
            start = max(now, self._paused_until, self._tat - (self.capacity - 1) * self._interval)
            self._tat = max(self._tat, start) + self._interval
            return start - now, self._epoch

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until this caller's slot comes; return the seconds waited."""
        waited = 0.0
        while True:
            delay, epoch = self._reserve()
            if delay <= 0:
                return waited
            sleep(delay)
            waited += delay
            with self._lock:
                if epoch == self._epoch:
                    return waited

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (a 429's Retry-After) and drop the saved burst."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tat = self._paused_until + self.capacity * self._interval
            self._epoch += 1


_BUCKETS: dict[tuple[Any, ...], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def shared_bucket(
    scope: tuple[Any, ...], limit: float, period: float, *, burst: float | None = None
) -> TokenBucket:
    """Return the process-wide bucket for ``scope``, so every hook on one key and project shares it."""
    key = (*scope, float(limit), float(period), burst)
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = TokenBucket(limit, period, burst=burst)
        return bucket


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiErrorInfo:
    """What an API's own error body says; ``kind`` overrides the class chosen from the status."""

    code: int | str | None = None
    message: str = ""
    kind: type[PrefineryError] | None = None
    details: Any = None


ErrorParser = Callable[[requests.Response], ApiErrorInfo]

STATUS_ERRORS: dict[int, type[PrefineryError]] = {
    401: PrefineryAuthError,
    402: PrefineryAuthError,
    403: PrefineryPermissionError,
    404: PrefineryNotFoundError,
    409: PrefineryValidationError,
    422: PrefineryValidationError,
    400: PrefineryValidationError,
    429: PrefineryRateLimitError,
}


def error_class(status: int) -> type[PrefineryError]:
    """Map an HTTP status to the error tree: the one place that does it."""
    if status >= 500:
        return PrefineryServerError
    return STATUS_ERRORS.get(status, PrefineryError)


def default_error_parser(response: requests.Response) -> ApiErrorInfo:
    """Read ``{"message"}``/``{"error"}``/``{"detail"}`` bodies; fall back to the status text."""
    try:
        body = response.json()
    except ValueError:
        return ApiErrorInfo(message=(response.text or response.reason or "")[:500])
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail", "title"):
            if isinstance(body.get(key), str):
                return ApiErrorInfo(code=body.get("code"), message=body[key], details=body)
    return ApiErrorInfo(message=str(body)[:500], details=body)


@dataclass
class ApiResponse:
    """A parsed answer: JSON body (or None) and the headers the caller may need (pagination)."""

    status: int
    data: Any
    headers: Mapping[str, str]
    attempts: int = 1


class _Retryable(Exception):
    """Internal: one attempt failed in a way the policy may retry."""

    def __init__(self, error: PrefineryError, retry_after: float | None, retry: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.retry = retry


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------
@dataclass
class RestClient:
    """A pooled session speaking JSON to one API, with retries, rate limits and typed, redacted errors."""

    service: str
    base_url: str
    auth: requests.auth.AuthBase | None
    secrets: tuple[str, ...] = ()
    conn_id: str | None = None
    error_parser: ErrorParser = default_error_parser
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    pool_size: int = 16
    logger: logging.Logger = log
    sleep: Callable[[float], None] = time.sleep
    extra_headers: Mapping[str, str] = field(default_factory=dict)

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
        session.headers.update(
            {"Accept": "application/json", "User-Agent": user_agent(), **dict(self.extra_headers)}
        )
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
    def redact(self, text: str) -> str:
        """Remove every secret of this client from ``text``."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # ---- one request ----
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        bucket: TokenBucket | None = None,
        replay_safe: bool = False,
        max_retries: int | None = None,
    ) -> ApiResponse:
        """Send one API call, retrying what the policy allows; raise the typed error otherwise."""
        method = method.upper()
        url = self.base_url + path.lstrip("/")
        retries = self.retry.max_retries if max_retries is None else max_retries
        ambiguous = {"seen": False}

        def attempt() -> ApiResponse:
            if bucket is not None:
                bucket.acquire(self.sleep)
            with self._stats_lock:
                self.stats["requests"] += 1
            return self._send_once(method, path, url, params, json, data, bucket, replay_safe, ambiguous)

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
            response = retrying(attempt)
        except _Retryable as exc:
            exc.error.replayed = ambiguous["seen"]
            raise exc.error from None
        response.attempts = retrying.statistics.get("attempt_number", 1)
        return response

    def _send_once(
        self,
        method: str,
        path: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Any,
        bucket: TokenBucket | None,
        replay_safe: bool,
        ambiguous: dict[str, bool],
    ) -> ApiResponse:
        try:
            resp = self.session.request(
                method, url, params=params, json=json, data=data, timeout=self.timeouts.as_tuple()
            )
        except requests.RequestException as exc:
            sent = not _never_sent(exc)
            ambiguous["seen"] |= sent and method not in IDEMPOTENT_METHODS
            retry = is_retryable(method, status=None, sent=sent, replay_safe=replay_safe)
            error = PrefineryConnectionError(
                self.redact(_describe_connection_error(exc, self.timeouts)),
                service=self.service, method=method, path=path,
                outcome_unknown=sent and method not in IDEMPOTENT_METHODS,
            )  # fmt: skip
            raise _Retryable(error, None, retry) from None
        if resp.status_code < 400:
            return ApiResponse(resp.status_code, _json_or_none(resp), resp.headers)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if resp.status_code == 429 and bucket is not None:
            bucket.pause(backoff_delay(1, self.retry, retry_after))
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
        if cls is PrefineryPermissionError:
            message += (
                f" (the API key of connection {self.conn_id!r} lacks the permission for {method} {path})"
            )
        common: dict[str, Any] = {
            "service": self.service,
            "method": method,
            "path": path,
            "status": resp.status_code,
            "code": info.code,
            "body": info.details,
        }
        if issubclass(cls, PrefineryRateLimitError):
            return cls(message, retry_after=retry_after, **common)
        return cls(message, **common)

    # ---- many pages ----
    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        next_params: Callable[[ApiResponse, dict[str, Any]], dict[str, Any] | None],
        items: Callable[[Any], list[Any]] = lambda data: data or [],
        bucket: TokenBucket | None = None,
    ) -> Iterator[Any]:
        """Yield items page by page, holding one page at a time; ``next_params`` says where to go next."""
        current: dict[str, Any] | None = dict(params or {})
        while current is not None:
            response = self.request("GET", path, params=current, bucket=bucket)
            page = items(response.data)
            yield from page
            current = next_params(response, current) if page else None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection was never established, so the server cannot have seen the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", None)
        text = f"{type(inner).__name__} {inner}" if inner is not None else ""
        return "NewConnectionError" in text or "ConnectTimeoutError" in text or "NameResolutionError" in text
    return isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema))


def _describe_connection_error(exc: requests.RequestException, timeouts: Timeouts) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"could not connect within {timeouts.connect:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within the read timeout of {timeouts.read:g} s"
    if _never_sent(exc):
        return "could not connect (connection refused or host unreachable)"
    return f"connection dropped before an answer ({type(exc).__name__})"


def _json_or_none(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


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


# --------------------------------------------------------------------------------------------------
# Bounded concurrency
# --------------------------------------------------------------------------------------------------
def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, max_workers: int = 4
) -> Iterator[tuple[int, T, R | None, BaseException | None]]:
    """Run ``fn`` over ``items`` in threads, at most ``max_workers`` at once; yield as each finishes.

    Items are pulled lazily, so a 100,000-record input never has more than ``2 * max_workers`` futures
    alive. Each result is ``(index, item, value, error)``; one failing item never stops the others.
    """
    max_workers = max(1, int(max_workers))
    source = enumerate(items)
    window = 2 * max_workers
    pending: dict[Future[R], tuple[int, T]] = {}
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="prefinery") as pool:
        queue: deque[tuple[int, T]] = deque()

        def fill() -> None:
            while len(pending) < window:
                if queue:
                    idx, item = queue.popleft()
                else:
                    nxt = next(source, None)
                    if nxt is None:
                        return
                    idx, item = nxt
                pending[pool.submit(fn, item)] = (idx, item)

        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                idx, item = pending.pop(fut)
                exc = fut.exception()
                yield idx, item, (None if exc else fut.result()), exc
            fill()
