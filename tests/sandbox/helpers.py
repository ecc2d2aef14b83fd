"""Small HTTP helpers for the sandbox tests: plain ``requests`` (not the provider's hooks) on purpose."""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID
from airflow_provider_prefinery.sandbox.testing import SandboxServer


class Api:
    """Calls one sandbox with a key (Bearer by default), paths relative to the server."""

    def __init__(self, sb: SandboxServer, key: str | None = None) -> None:
        self.sb = sb
        self.session = requests.Session()
        self.key = sb.api_key if key is None else key

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.key:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        return self.session.request(method, self.sb.url + path, headers=headers, **{"timeout": 10, **kwargs})

    def p(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A Prefinery call under /api/v2/betas/{DEMO_BETA_ID}."""
        return self.call(method, f"/api/v2/betas/{DEMO_BETA_ID}{path}", **kwargs)


def error_code(response: requests.Response) -> int:
    return response.json()["errors"][0]["code"]
