"""Secret redaction for the REST core: the key as typed, and the encodings a server may echo it in.

A server (or a proxy) that echoes a request can hand the key back URL-encoded (a query string, a form) or
base64-encoded (an ``Authorization: Basic`` header, where the key sits after ``user:``). :func:`secret_forms`
lists the texts to mask for one secret; :class:`Redactor` masks them in text and, recursively, in parsed
JSON (an error's ``body``). Pure standard library: no I/O, no third-party import.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_ENCODED = 8  # shorter base64 fragments would mask innocent text
MAX_DEPTH = 32  # deeper JSON is replaced, not walked (a hostile body cannot exhaust the stack)


def _base64_cores(raw: bytes) -> list[str]:
    """The base64 characters that depend on ``raw`` alone, for each of the three byte alignments.

    Base64 maps 3 bytes to 4 characters, so how ``raw`` encodes depends on its offset (mod 3) in the
    encoded data and on its neighbours at both ends. The characters computed from ``raw``'s bits only
    appear in every encoding of any data that holds ``raw`` at that alignment, whatever surrounds it.
    """
    cores = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        first = -(-8 * pad // 6)  # the first character whose 6 bits all lie in raw
        last = (8 * (pad + len(raw)) - 6) // 6  # the last such character
        core = encoded[first : last + 1]
        if len(core) >= MIN_ENCODED:
            cores.append(core)
    return cores


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every text to mask for ``secret``: as typed, URL-encoded, repr-escaped, and its base64 forms
    (standard and URL-safe alphabets), longest first so a longer form is masked before a part of it."""
    if not secret:
        return ()
    # as typed, URL-encoded, and escaped as repr() shows it (an error quoting a header value)
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), repr(secret)[1:-1]}
    forms.add(repr(secret.encode())[2:-1])
    for core in _base64_cores(secret.encode()):
        forms.update({core, core.replace("+", "-").replace("/", "_")})
    return tuple(sorted(forms, key=len, reverse=True))


class Redactor:
    """Masks a fixed set of secrets (and their encoded forms) in text and in JSON values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for secret in secrets if secret for form in secret_forms(secret)}
        self.forms = tuple(sorted(forms, key=len, reverse=True))

    def text(self, value: str) -> str:
        for form in self.forms:
            if form in value:
                value = value.replace(form, MASK)
        return value

    def value(self, value: Any, _depth: int = 0) -> Any:
        """A copy of a JSON value with every string (keys included) masked; other scalars unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (bytes, bytearray)):
            return self.text(bytes(value).decode("utf-8", "replace"))
        if not isinstance(value, (Mapping, list, tuple)):
            return value
        if _depth >= MAX_DEPTH:
            return f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels, not kept>"
        if isinstance(value, Mapping):
            return {self.value(k, _depth + 1): self.value(v, _depth + 1) for k, v in value.items()}
        return [self.value(item, _depth + 1) for item in value]
