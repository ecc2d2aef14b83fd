"""A local server speaking the Prefinery v2, Mailchimp list-members and Piggy automations APIs.

Start it with ``prefinery-sandbox`` (or ``python -m airflow_provider_prefinery.sandbox``); from tests, use
``testing.run_sandbox()`` or the ``prefinery_sandbox``/``sandbox`` pytest fixtures. Importing this package
stays light (no FastAPI): the server runs in its own process.
"""

from __future__ import annotations

from airflow_provider_prefinery.sandbox.seeds import (
    DEFAULT_API_KEY,
    DEMO_AUTOMATION_UUID,
    DEMO_BETA_ID,
    DEMO_LIST_ID,
)

READY_PREFIX = "prefinery-sandbox ready"
"""How the server's one ready line starts (``cli`` prints it once it accepts connections, ``testing``
waits for it)."""

__all__ = ["DEFAULT_API_KEY", "DEMO_AUTOMATION_UUID", "DEMO_BETA_ID", "DEMO_LIST_ID", "READY_PREFIX"]
