"""Values the three emulated APIs read and write alike: an email address, compact JSON, the write clock."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(value: Any) -> bool:
    """A string that looks like an address once stripped (each API then says why it refuses one)."""
    return isinstance(value, str) and EMAIL_RE.match(value.strip()) is not None


def dumps(body: Any) -> bytes:
    """JSON as every answer is written: compact, UTF-8."""
    return json.dumps(body, separators=(",", ":")).encode()


def utcnow() -> datetime:
    """The clock writes are stamped with (whole seconds, UTC)."""
    return datetime.now(timezone.utc).replace(microsecond=0)
