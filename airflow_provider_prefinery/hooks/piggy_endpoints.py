"""Piggy's (Leat) API v3 as data: the endpoint table, its error codes, the one error parser and the
pagination rule. Light like ``prefinery_endpoints.py``: the standard library and the error classes only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_prefinery.exceptions import (
    PrefineryError,
    PrefineryNotFoundError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.hooks.endpoint import Endpoint
from airflow_provider_prefinery.hooks.error_mapping import ApiErrorInfo, json_error_parser

if TYPE_CHECKING:
    import requests

    from airflow_provider_prefinery.hooks.rest import ApiResponse

SERVICE = "Piggy"
DEFAULT_HOST = "https://api.piggy.eu"
API_PREFIX = "/api/v3/oauth/clients/"
TOKEN_PATH = "oauth/token"  # relative to the origin, not to the API prefix
PAGE_LIMIT = 100  # Piggy's maximum page size
STARTABLE_EVENT = "contact_updated"  # the only automation event Piggy starts through the API [doc]

# THE endpoint table. Paths are relative to /api/v3/oauth/clients/.
ENDPOINTS: dict[str, Endpoint] = {
    "list_automations": Endpoint("GET", "automations"),
    # Not idempotent (every call starts another run) and Piggy has no idempotency key: never replayed
    # after an ambiguous failure (the core retries a POST only on 429/503 or when it was never sent).
    "create_automation_run": Endpoint("POST", "automations/runs"),
    "find_contact": Endpoint("GET", "contacts/find-one-by"),
    # A GET that creates when missing: repeating it finds the contact the first call made.
    "find_or_create_contact": Endpoint("GET", "contacts/find-or-create"),
}

# Piggy's documented codes, mapped to the error tree (others fall back to the HTTP status).
INVALID_INPUT = 1003
CONTACT_NOT_FOUND = 55031
MODEL_NOT_FOUND = 60013
ERROR_KINDS: dict[int, tuple[type[PrefineryError], str]] = {
    INVALID_INPUT: (PrefineryValidationError, "invalid input"),
    CONTACT_NOT_FOUND: (PrefineryNotFoundError, "contact not found"),
    MODEL_NOT_FOUND: (PrefineryNotFoundError, "automation not found"),
}


def _field_messages(errors: Any) -> str:
    """Flatten Piggy's ``errors`` (``{field: [messages]}`` or a list) into ``field: message; ...``."""
    if isinstance(errors, Mapping):
        parts: list[str] = []
        for name, messages in errors.items():
            texts = messages if isinstance(messages, list) else [messages]
            parts.extend(f"{name}: {text}" for text in texts)
        return "; ".join(parts)
    if isinstance(errors, list):
        return "; ".join(str(item) for item in errors)
    return ""


@json_error_parser
def parse_piggy_error(body: Mapping[str, Any], response: requests.Response) -> ApiErrorInfo | None:
    """Read ``{status_code, code, message, errors}`` (and OAuth's ``{error, error_description}``).

    The one Piggy error parser: 1003 is a validation error carrying the field messages, 55031 (contact)
    and 60013 (automation) are not-found errors whatever the HTTP status; other codes keep the status's
    class.
    """
    code = body.get("code")
    if code is None and isinstance(body.get("error"), str):  # the OAuth token endpoint's shape
        text = body.get("error_description") or body.get("message") or body["error"]
        return ApiErrorInfo(code=body["error"], message=str(text), details=body)
    message = str(body.get("message") or response.reason or "request failed")
    fields = _field_messages(body.get("errors"))
    if fields:
        message = f"{message} ({fields})"
    try:
        known = ERROR_KINDS.get(int(code)) if code is not None else None
    except (TypeError, ValueError):
        known = None
    kind = None
    if known is not None:
        kind, what = known
        if what not in message.lower():
            message = f"{what}: {message}"
    return ApiErrorInfo(code=code, message=message, kind=kind, details=body)


def next_piggy_page(response: ApiResponse, params: dict[str, Any]) -> dict[str, Any] | None:
    """Follow ``meta.page``/``meta.last_page``; an answer without paging meta is the only page."""
    meta = response.data.get("meta") if isinstance(response.data, Mapping) else None
    if not isinstance(meta, Mapping) or "last_page" not in meta:
        return None
    page = int(meta.get("page", params.get("page", 1)))
    return {**params, "page": page + 1} if page < int(meta["last_page"]) else None
