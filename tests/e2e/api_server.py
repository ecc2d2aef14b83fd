"""Run ``airflow api-server`` for the browser test, with one upstream fix where installed Airflow lacks it.

Airflow 3.3.0-3.3.2 answer the connection list's Test button with 400 "The host or port to test differs
from the stored connection" for EVERY connection without a port: the UI posts ``port: Number(null)``,
i.e. 0, and the API compares 0 with the stored NULL (apache/airflow#73298, fixed upstream by treating 0
as blank). Prefinery connections have no port (the API Base URL carries it), so on those releases the
button cannot reach our hook at all. This launcher applies that same one-line normalisation before the
server starts, and only when the installed Airflow still has the bug, so the test exercises the form,
the button and the hook's message as they behave on a fixed Airflow. Everything else is stock Airflow.

Usage: ``python tests/e2e/api_server.py --host 127.0.0.1 --port N`` (the api-server's own arguments).
"""

from __future__ import annotations

import sys

PATCHED_MARKER = "prefinery-e2e: applied apache/airflow#73298 (Test button for connections without a port)"


def backport_portless_test_fix() -> bool:
    """Treat port 0 like a blank port when the Test route compares with the stored connection.

    :return: True when the installed Airflow needed the fix (and got it).
    """
    from airflow.api_fastapi.core_api.routes.public import connections as routes

    if routes._same_endpoint(0, None):
        return False

    def _same_endpoint(requested: str | int | None, stored: str | int | None) -> bool:
        def norm(value: str | int | None) -> str | int | None:
            return None if value is None or value == "" or value == 0 else value

        return norm(requested) == norm(stored)

    routes._same_endpoint = _same_endpoint
    return True


def main() -> None:
    if backport_portless_test_fix():
        print(PATCHED_MARKER, flush=True)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "api-server", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
