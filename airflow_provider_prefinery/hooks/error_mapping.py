"""How a failed answer becomes a typed error: status -> class, and each API's reading of its error body.

:func:`error_class` is the one place a status picks a class of the error tree. Each API has one error
parser; they all start alike (a body that is not JSON, or not a JSON object), so that preamble is written
once, in :func:`json_error_parser`, and a parser only reads its API's JSON object. Light on purpose: the
standard library and the error classes only (``requests`` is named in types, never imported), so the
endpoint tables that hold the parsers import cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_prefinery.exceptions import (
    PrefineryAuthError,
    PrefineryError,
    PrefineryNotFoundError,
    PrefineryPermissionError,
    PrefineryRateLimitError,
    PrefineryServerError,
    PrefineryValidationError,
)

if TYPE_CHECKING:
    import requests

MAX_MESSAGE = 500  # characters of an unreadable body kept as the message


@dataclass(frozen=True)
class ApiErrorInfo:
    """What an API's own error body says; ``kind`` overrides the class chosen from the status."""

    code: int | str | None = None
    message: str = ""
    kind: type[PrefineryError] | None = None
    details: Any = None


ErrorParser = Callable[["requests.Response"], ApiErrorInfo]
# Reads an API's JSON error object; None when the object is not in that API's shape.
ErrorReader = Callable[[Mapping[str, Any], "requests.Response"], "ApiErrorInfo | None"]

STATUS_ERRORS: dict[int, type[PrefineryError]] = {
    401: PrefineryAuthError,
    402: PrefineryAuthError,
    403: PrefineryPermissionError,
    404: PrefineryNotFoundError,
    407: PrefineryAuthError,  # a proxy's: the credentials in the connection's ``proxy`` extra
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


def json_error_parser(read: ErrorReader) -> ErrorParser:
    """Make an API's error parser from ``read``, the reader of its JSON error object.

    The preamble every parser shares: a body that is not JSON (a proxy's HTML page) becomes its text, and
    one that is not an object, or that ``read`` finds nothing in, becomes its repr, kept as ``details``.
    """

    def parse(response: requests.Response) -> ApiErrorInfo:
        try:
            body = response.json()
        except ValueError:
            return ApiErrorInfo(message=(response.text or response.reason or "")[:MAX_MESSAGE])
        info = read(body, response) if isinstance(body, Mapping) else None
        return info if info is not None else ApiErrorInfo(message=str(body)[:MAX_MESSAGE], details=body)

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(parse, name, getattr(read, name))
    return parse


@json_error_parser
def default_error_parser(body: Mapping[str, Any], response: requests.Response) -> ApiErrorInfo | None:
    """Read ``{"message"}``/``{"error"}``/``{"detail"}``/``{"title"}`` bodies."""
    for key in ("message", "error", "detail", "title"):
        if isinstance(body.get(key), str):
            return ApiErrorInfo(code=body.get("code"), message=body[key], details=body)
    return None
