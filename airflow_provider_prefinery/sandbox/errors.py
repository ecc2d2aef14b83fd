"""Every error the sandbox answers with: one class per API error (status and code), one renderer per API.

State raises these; the API modules and the fault middleware render them in the API's real shape:
Prefinery ``{"errors":[{"code","message"}]}``, Mailchimp problem+json, Piggy ``{status_code, code, message,
errors}``. Codes marked *assumed* are not published by the vendor; the sandbox picks one so tests can branch.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar


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


# --- HTTP-level errors shared by the three APIs (the renderer gives them each API's shape) ---------------
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


# --- Prefinery 422s (documented codes unless marked assumed) ---------------------------------------------
class PrefineryValidation(SandboxError):
    status, code, title, default_message = 422, 2201, "Unprocessable Entity", "validation failed"


class ProjectNotDeletable(PrefineryValidation):
    code, default_message = 2204, "unable to delete project: it has active users"


class InvalidEmail(PrefineryValidation):
    code, default_message = 2301, "email is invalid"


class InvalidUserStatus(PrefineryValidation):
    code, default_message = 2302, "status is invalid or the transition is not allowed"  # assumed code


class DuplicateUser(PrefineryValidation):
    code, default_message = 2310, "a user with this email already exists"


class FriendInvitationError(PrefineryValidation):
    code, default_message = 2501, "friend invitation could not be sent"  # assumed code


class RewardError(PrefineryValidation):
    code, default_message = 2601, "reward could not be created"  # assumed code


class RewardStatusError(PrefineryValidation):
    code, default_message = 2602, "only an earned reward may change status"  # assumed code


class RewardQuantityExceeded(PrefineryValidation):
    code, default_message = 2603, "the user already has this reward (skip_quantity_check to force)"  # assumed


class SuppressionError(PrefineryValidation):
    code, default_message = 2701, "suppression general error"


class SuppressionExists(PrefineryValidation):
    code, default_message = 2702, "suppression email already exists"


class SuppressionEmailRequired(PrefineryValidation):
    code, default_message = 2703, "suppression email required"


class PointsError(PrefineryValidation):
    code, default_message = 2801, "points general error"


class PointsEmailRequired(PrefineryValidation):
    code, default_message = 2802, "points email required"


class PointsEmailNotFound(PrefineryValidation):
    code, default_message = 2803, "points email not found"


class PointsQuantityRequired(PrefineryValidation):
    code, default_message = 2804, "points quantity required (an integer)"


# --- Piggy -----------------------------------------------------------------------------------------------
class PiggyInvalidInput(SandboxError):
    status, code, title, default_message = 422, 1003, "Invalid input", "The given data was invalid."


class PiggyContactNotFound(SandboxError):
    status, code, title, default_message = 404, 55031, "Contact not found", "Contact not found."


class PiggyModelNotFound(SandboxError):
    status, code, title, default_message = 404, 60013, "Model not found", "Automation not found."


class PiggyAutomationNotStartable(SandboxError):
    """Only ``contact_updated`` automations may be started through the API [doc]; the code is assumed."""

    status, code, title = 422, 60014, "Automation cannot be started"
    default_message = "Only automations with event 'contact_updated' can be started through the API."


class PiggyRunRejected(SandboxError):
    """A contact the test marked as rejected (control API); status and code may be overridden there."""

    status, code, title, default_message = (
        422,
        60015,
        "Run rejected",
        "Automation run rejected for this contact.",
    )


class OAuthInvalidClient(SandboxError):
    status, code, title, default_message = 401, 401, "invalid_client", "Client authentication failed"


# --- renderers -------------------------------------------------------------------------------------------
def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def render_prefinery(err: SandboxError) -> tuple[bytes, str]:
    return _dumps({"errors": [{"code": err.code, "message": err.message}]}), "application/json"


def render_mailchimp(err: SandboxError) -> tuple[bytes, str]:
    body = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": err.title,
        "status": err.status,
        "detail": err.message,
        "instance": str(uuid.uuid4()),
    }
    return _dumps(body), "application/problem+json"


def render_piggy(err: SandboxError) -> tuple[bytes, str]:
    body: dict[str, Any] = {"status_code": err.status, "code": err.code, "message": err.message}
    if err.errors is not None:
        body["errors"] = err.errors
    if isinstance(err, OAuthInvalidClient):
        body = {"error": "invalid_client", "error_description": err.message, "message": err.message}
    return _dumps(body), "application/json"


RENDERERS = {"prefinery": render_prefinery, "mailchimp": render_mailchimp, "piggy": render_piggy}


def render(api: str, err: SandboxError) -> tuple[int, bytes, str, dict[str, str]]:
    """Return (status, body, content type, extra headers) for ``err`` in ``api``'s shape."""
    body, content_type = RENDERERS.get(api, render_prefinery)(err)
    return err.status, body, content_type, err.headers
