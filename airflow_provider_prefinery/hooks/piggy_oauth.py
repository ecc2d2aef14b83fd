"""OAuth client credentials for Piggy: an access token exchanged once, shared by every thread, renewed
shortly before it expires or when the API refuses it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import requests

# Renew an OAuth access token this long before it expires (at most a tenth of its lifetime).
TOKEN_RENEW_MARGIN = 60.0
DEFAULT_TOKEN_TTL = 300.0  # when the token answer has no expires_in


class ClientCredentialsAuth(requests.auth.AuthBase):
    """Bearer auth with an OAuth client-credentials token: exchanged on first use, reused by every
    thread, exchanged again shortly before it expires (Piggy issues no refresh tokens) or when the API
    refuses it (401: revoked, or expired early), in which case the request is sent once more.

    :param exchange: returns ``(access_token, expires_in_seconds)``; called under the lock, so one
        exchange serves every thread waiting for a token.
    :param on_token: told of each new token (the hook adds it to redaction and Airflow's log masking).
    """

    def __init__(
        self,
        exchange: Callable[[], tuple[str, float]],
        *,
        on_token: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange = exchange
        self._on_token = on_token
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.exchanges = 0

    def token(self) -> str:
        """The current access token, exchanging the client credentials when none is fresh enough."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._renew_at:
                token, ttl = self._exchange()
                self.exchanges += 1
                if self._on_token is not None:
                    self._on_token(token)
                ttl = max(float(ttl), 0.0)
                self._token = token
                self._renew_at = now + ttl - min(TOKEN_RENEW_MARGIN, ttl / 10)
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop ``token`` from the cache if it is still the current one (the server refused it)."""
        with self._lock:
            if self._token == token:
                self._token = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        request.register_hook("response", partial(self._resend_on_401, token=token))
        return request

    def _resend_on_401(self, response: requests.Response, *, token: str, **kwargs: Any) -> requests.Response:
        """A 401 means the token was revoked or expired early: exchange a new one and send once more.

        Safe for every method, a run included: a refused request was not applied. Like requests' own
        digest auth, the retry goes through the same connection adapter, so the REST core sees one answer.
        """
        if response.status_code != 401 or response.request is None:
            return response
        self.invalidate(token)
        response.content  # noqa: B018 - drain the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        retry.hooks = {"response": []}  # no second resend
        retry.headers["Authorization"] = f"Bearer {self.token()}"
        resent = response.connection.send(retry, **kwargs)
        resent.history.append(response)
        resent.request = retry
        return resent

    def __repr__(self) -> str:
        return "ClientCredentialsAuth(***)"
