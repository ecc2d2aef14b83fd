"""How a request that got no HTTP answer failed: was it sent, may it be retried, what to tell the user.

One pure function, :func:`classify`, reads a ``requests`` exception. Three kinds:

* **never sent, transient** (connection refused, DNS, connect timeout): nothing reached the server, so
  any method may be retried;
* **never sent, permanent** (a TLS certificate or handshake failure; a request ``requests`` could not build:
  a body that is not JSON, a header or URL it refuses): retrying cannot help and nothing was applied;
* **maybe sent** (read timeout, connection dropped mid-answer): a non-idempotent write may have been applied.

The messages name the host, never the URL's query, the proxy or a credential.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from airflow_provider_prefinery.hooks.retry_policy import Timeouts

# requests refuses these while preparing the request: nothing left the process.
UNBUILDABLE: tuple[type[requests.RequestException], ...] = (
    requests.exceptions.InvalidJSONError,
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)
# The part of the request ``requests`` refused, by exception: named as the error's field.
UNBUILDABLE_FIELDS: dict[type[requests.RequestException], str] = {
    requests.exceptions.InvalidJSONError: "body",
    requests.exceptions.InvalidHeader: "headers",
}
# TLS errors that can also end a connection after the request went out (a peer closing mid-answer).
_TLS_MAYBE_SENT = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


@dataclass(frozen=True)
class Failure:
    """What a failed attempt means: ``sent`` False when the server cannot have seen the request,
    ``permanent`` True when repeating it cannot succeed; ``field`` names the refused part of an
    unbuildable request (None for transport failures)."""

    message: str
    sent: bool
    permanent: bool = False
    field: str | None = None


def classify(exc: requests.RequestException | ValueError, url: str, timeouts: Timeouts) -> Failure:
    """Read one exception of an attempt on ``url``: a ``requests`` error, or the ``ValueError`` urllib3
    or ``http.client`` raise for a URL or a header they refuse before writing the request."""
    host = urlsplit(url).hostname or "the server"
    if not isinstance(exc, requests.RequestException):
        field = "headers" if "header" in str(exc).lower() else "url"
        return Failure(f"the request could not be built ({type(exc).__name__}: {exc})", False, True, field)
    if isinstance(exc, UNBUILDABLE):
        field = next((f for cls, f in UNBUILDABLE_FIELDS.items() if isinstance(exc, cls)), "url")
        return Failure(f"the request could not be built ({type(exc).__name__}: {exc})", False, True, field)
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_failure(exc, host)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Failure(f"could not connect to {host} within {timeouts.connect:g} s", sent=False)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Failure(f"no answer within the read timeout of {timeouts.read:g} s", sent=True)
    if isinstance(exc, requests.exceptions.ProxyError):
        return _proxy_failure(exc)
    if isinstance(exc, requests.exceptions.ConnectionError) and _not_connected(exc):
        return Failure(f"could not connect to {host} (connection refused or host unreachable)", sent=False)
    return Failure(f"connection dropped before an answer ({type(exc).__name__})", sent=True)


def _tls_failure(exc: requests.exceptions.SSLError, host: str) -> Failure:
    inner = _innermost(exc)
    if isinstance(inner, ssl.SSLCertVerificationError):
        reason = inner.verify_message or inner.reason or str(inner)
        return Failure(
            f"certificate verification failed for {host}: {reason} (a private CA? set the connection "
            "extra 'ca_bundle' to its PEM file)",
            sent=False,
            permanent=True,
        )
    if isinstance(inner, _TLS_MAYBE_SENT):
        return Failure(f"the TLS connection to {host} closed before an answer ({type(inner).__name__})", True)
    reason = getattr(inner, "reason", None) or type(inner).__name__
    return Failure(f"TLS handshake with {host} failed ({reason})", sent=False, permanent=True)


def _proxy_failure(exc: requests.exceptions.ProxyError) -> Failure:
    """A proxy that could not be reached, or that refused the tunnel (407 and the like): never sent."""
    inner = _innermost(exc)
    text = str(inner)
    if "407" in text:
        return Failure("the proxy refused the credentials (HTTP 407)", sent=False, permanent=True)
    if "Tunnel connection failed" in text:
        return Failure(f"the proxy refused the tunnel ({text[:80]})", sent=False, permanent=True)
    return Failure(f"could not connect to the proxy ({type(inner).__name__})", sent=False)


def _innermost(exc: BaseException) -> BaseException:
    """The root cause of a requests error: requests wraps urllib3's MaxRetryError, which wraps a reason
    (which may wrap an ``OSError`` of its own, as ``ProxyError('...', OSError(...))`` does)."""
    current: BaseException = exc
    for _ in range(10):
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in reversed(current.args) if isinstance(a, BaseException)), None)
        if nxt is None:
            return current
        current = nxt
    return current


def _not_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never established (refused, unreachable, DNS, connect timeout)."""
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", None)
    text = f"{type(inner).__name__} {inner}" if inner is not None else ""
    return "NewConnectionError" in text or "ConnectTimeoutError" in text or "NameResolutionError" in text
