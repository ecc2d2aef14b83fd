"""Piggy's errors (codes 1003, 55031, 60013 documented; 60014, 60015 assumed) and its error shape.

Piggy answers ``{status_code, code, message, errors}``; its OAuth endpoint answers the OAuth shape.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery.sandbox.errors import SandboxError
from airflow_provider_prefinery.sandbox.values import dumps


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


def render(err: SandboxError) -> tuple[bytes, str]:
    body: dict[str, Any] = {"status_code": err.status, "code": err.code, "message": err.message}
    if err.errors is not None:
        body["errors"] = err.errors
    if isinstance(err, OAuthInvalidClient):
        body = {"error": "invalid_client", "error_description": err.message, "message": err.message}
    return dumps(body), "application/json"
