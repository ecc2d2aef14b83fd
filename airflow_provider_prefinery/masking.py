"""Airflow's secrets masker, applied to what the provider hands to Airflow outside a log line.

Task logs are masked by Airflow; an XCom value is stored as pushed. A failure entry carries its record, and
a record can carry a secret a DAG author templated into it (``reason="{{ conn.prefinery_default.password }}"``
or a Variable): :func:`masked` runs a value through the masker of the installed SDK, so every secret Airflow
knows (connection passwords, ``mask_secret`` calls, sensitive Variables) leaves as ``***``.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = (
    20  # a record's values nest a few levels (entry > record > profile > value); the masker stops at 5
)


def masked(value: Any) -> Any:
    """``value`` (a JSON-like structure) with every secret known to Airflow's masker replaced by ``***``."""
    from airflow.providers.common.compat.sdk import redact

    return redact(value, max_depth=MAX_DEPTH)
