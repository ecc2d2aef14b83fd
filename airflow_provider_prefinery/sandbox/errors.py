"""The errors every emulated API answers with alike: the base class and the HTTP-level errors.

State raises these and each API's own (``prefinery.errors``, ``piggy.errors``); ``wire.render`` writes any
of them in the shape of the API that answers: Prefinery ``{"errors":[{"code","message"}]}``, Mailchimp
problem+json, Piggy ``{status_code, code, message, errors}``.
"""

from __future__ import annotations

from typing import ClassVar


class SandboxError(Exception):
    """Base: an HTTP status, an API code and a message; ``headers`` go out with the answer."""

    status: ClassVar[int] = 500
    code: ClassVar[int | None] = None
    title: ClassVar[str] = "Internal Server Error"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors
        self.headers = headers or {}
        if status is not None:
            if code is None and self.code in (None, self.status):
                code = status  # an HTTP-level error's code follows its status
            self.status = status  # type: ignore[misc]
        if code is not None:
            self.code = code  # type: ignore[misc]
        super().__init__(self.message)


class Unauthorized(SandboxError):
    status, code, title, default_message = 401, 401, "API Key Invalid", "missing or invalid API key"


class PaymentRequired(SandboxError):
    status, code, title, default_message = (
        402,
        402,
        "Payment Required",
        "the account's plan has no API access",
    )


class Forbidden(SandboxError):
    status, code, title, default_message = 403, 403, "Forbidden", "the API key lacks this permission"


class NotFound(SandboxError):
    status, code, title, default_message = 404, 404, "Resource Not Found", "not found"


class BadRequest(SandboxError):
    status, code, title, default_message = 400, 400, "Invalid Resource", "invalid request"


class RateLimited(SandboxError):
    """429 with ``Retry-After`` (whole seconds), for rate limits and the injected 429 fault."""

    status, code, title, default_message = 429, 429, "Too Many Requests", "rate limit exceeded"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        seconds = max(1, int(-(-retry_after // 1)))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class InjectedFault(SandboxError):
    """A 5xx the fault middleware injects (or a slow answer's late 503): nothing was applied unless said."""

    code, title, default_message = 500, "Server Error", "sandbox: injected fault"
