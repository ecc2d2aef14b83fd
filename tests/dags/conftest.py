"""The example DAGs run against the sandbox with every rate limit (server and hook) scaled, so a run takes
seconds; the hook keeps its default retries, as a deployed DAG would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaling import scaled_sandbox


@pytest.fixture
def sbx(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox with every rate limit (server and hook) scaled by 100."""
    yield from scaled_sandbox(sandbox, monkeypatch)
