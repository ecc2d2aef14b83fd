"""Mailchimp's error shape: problem+json (RFC 7807) with a fresh ``instance`` id per answer.

Mailchimp's errors here are all HTTP-level (``sandbox.errors``): 401, 404, 400 and the in-flight 429.
"""

from __future__ import annotations

import uuid

from airflow_provider_prefinery.sandbox.errors import SandboxError
from airflow_provider_prefinery.sandbox.values import dumps


def render(err: SandboxError) -> tuple[bytes, str]:
    body = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": err.title,
        "status": err.status,
        "detail": err.message,
        "instance": str(uuid.uuid4()),
    }
    return dumps(body), "application/problem+json"
