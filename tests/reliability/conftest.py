"""Reliability suites: the sandbox with the soak connections (short timeouts, fast backoff) in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.hooks.rest import _BUCKETS
from tests.reliability.soak import SoakConfig, soak_connections

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(autouse=True)
def _fresh_limiters() -> None:
    """Process-wide rate limiters start empty, so no test waits on another's tokens or 429 pause."""
    _BUCKETS.clear()


@pytest.fixture
def soak_config() -> SoakConfig:
    return SoakConfig()


@pytest.fixture
def soak_sandbox(sandbox: Any, soak_config: SoakConfig, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's sandbox (reset) with ``prefinery_soak``/``mailchimp_soak``/``piggy_soak`` pointing
    at it: read timeout 1 s, 2 retries from 0.05 s, every rate limit scaled by 100."""
    for name, value in soak_connections(sandbox, soak_config).items():
        monkeypatch.setenv(name, value)
    sandbox.control.configure(scale=soak_config.limit_scale)
    return sandbox


def write_artifact(name: str, text: str) -> Path:
    """Write ``artifacts/<name>`` (git-ignored) for the README: tables measured by the tests."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_text(text, encoding="utf-8")
    return path
