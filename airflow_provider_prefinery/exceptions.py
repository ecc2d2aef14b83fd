"""One error tree for the three APIs the provider speaks (Prefinery, Mailchimp, Piggy).

Callers branch on the class (or on ``code``), never on message text. Every error raised after a request
names the service, method and path; none carries the API key (the REST core redacts it before raising).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException


class PrefineryError(AirflowException):
    """Base of every error the provider raises; ``service`` says which API answered."""

    def __init__(
        self,
        message: str,
        *,
        service: str = "Prefinery",
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        code: int | str | None = None,
        body: Any = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.body = body
        # True when a non-idempotent write may have been applied although it failed (read timeout, 500
        # after sending): such a record must be reported, never silently retried.
        self.outcome_unknown = outcome_unknown
        # True when an earlier attempt of this same request may have been applied (set by the REST core),
        # so a "duplicate" answer can mean "our own first attempt worked".
        self.replayed = False
        # The server's clock minus ours (seconds), from the answer's Date header; None without an answer.
        self.clock_offset: float | None = None

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method else ""
        parts = [f"{self.service} {where}".strip()]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        head = ", ".join(parts)
        tail = " (the write may have been applied: outcome unknown)" if self.outcome_unknown else ""
        return f"{head}: {self.message}{tail}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (Airflow ships exceptions across processes).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary for XCom failure reports."""
        return {
            "error": type(self).__name__,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "outcome_unknown": self.outcome_unknown,
        }


def _rebuild(cls: type[PrefineryError], message: str, state: dict[str, Any]) -> PrefineryError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class PrefineryInputError(PrefineryError, ValueError):
    """Bad input caught before any request: names the field and, where closed, the allowed values."""

    def __init__(self, field: str, problem: str, *, allowed: Any = None, service: str = "Prefinery") -> None:
        self.field = field
        self.allowed = allowed
        msg = f"{field}: {problem}"
        if allowed is not None:
            msg += f" (allowed: {', '.join(map(str, allowed)) if not isinstance(allowed, str) else allowed})"
        super().__init__(msg, service=service)

    def __str__(self) -> str:
        return f"Invalid {self.service} input: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "field": self.field}


class PrefineryAuthError(PrefineryError):
    """401/402: the key is wrong, missing, or the account has no API access."""


class PrefineryPermissionError(PrefineryAuthError):
    """403: the key is valid but lacks a permission for this resource and action."""


class PrefineryNotFoundError(PrefineryError):
    """404 (or the API's own not-found code): the id or email is unknown."""


class PrefineryValidationError(PrefineryError):
    """422 (or the API's validation code): the API refused the input; ``code`` is the API's own code."""


class PrefineryRateLimitError(PrefineryError):
    """429 still answered after every retry; ``retry_after`` is the server's last hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PrefineryServerError(PrefineryError):
    """5xx after retries, or a 5xx on a write that must not be replayed."""


class PrefineryConnectionError(PrefineryError):
    """The request got no answer: connection refused or dropped, or a timeout."""
