"""What both Prefinery triggers share: the hook built without blocking the loop, error summaries, serialising.

Triggers load the connection asynchronously and run the hook's blocking calls in a worker thread
(``asyncio.to_thread``): the event loop never blocks on I/O.
"""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger

from airflow_provider_prefinery.exceptions import PrefineryError
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

PUBLIC_MODULE = "airflow_provider_prefinery.triggers.prefinery"
"""The module every trigger is serialised under: users and the triggers stored in Airflow's DB name it."""


def serialized(trigger: BaseTrigger, *fields: str) -> tuple[str, dict[str, Any]]:
    """A trigger's ``serialize()``: its public class path, and the named attributes as its kwargs."""
    return f"{PUBLIC_MODULE}.{type(trigger).__name__}", {name: getattr(trigger, name) for name in fields}


async def load_hook(prefinery_conn_id: str, beta_id: int | str | None) -> PrefineryHook:
    """Build a hook on a connection loaded without blocking the event loop."""
    try:
        from airflow.providers.common.compat.connection import get_async_connection
    except ImportError:  # pragma: no cover - older common-compat
        from asgiref.sync import sync_to_async

        conn = await sync_to_async(PrefineryHook.get_connection)(prefinery_conn_id)
    else:
        conn = await get_async_connection(prefinery_conn_id, hook=PrefineryHook)
    return PrefineryHook(prefinery_conn_id, beta_id=beta_id, connection=conn)


def error_summary(hook: PrefineryHook | None, error: BaseException) -> dict[str, Any]:
    """A JSON summary of an error for an event or a log line, with the hook's secrets redacted."""
    message = str(error)
    if hook is not None and "client" in hook.__dict__:
        message = hook.client.redact(message)
    if isinstance(error, PrefineryError):
        return {**error.to_dict(), "message": message}
    return {"error": type(error).__name__, "message": message}


def close_hook(hook: PrefineryHook | None) -> None:
    """Release the hook's session, if one was built."""
    if hook is not None:
        hook.close()
