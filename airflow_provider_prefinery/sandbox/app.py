"""Build the ASGI app: the three APIs' route tables (``<api>/routes.py``), the control router, and the
fault middleware outside.

Emulated endpoints are plain Starlette routes inside the FastAPI app (no pydantic per request: the
handlers parse what the vendor accepts, and this keeps the hot path fast); the control API is FastAPI
proper, with models and ``/docs``. The fault middleware wraps the whole app so it sees uvicorn's own
``send`` (which is how it can drop a connection); the guard (``guard.py``: Host header, body size, impossible
ids) sits outside it, so what it refuses never reaches a handler, a rate limit or the request log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from airflow_provider_prefinery.sandbox import control
from airflow_provider_prefinery.sandbox.errors import NotFound
from airflow_provider_prefinery.sandbox.faults import Behaviour, FaultMiddleware, api_of
from airflow_provider_prefinery.sandbox.guard import GuardMiddleware
from airflow_provider_prefinery.sandbox.mailchimp import routes as mailchimp
from airflow_provider_prefinery.sandbox.piggy import routes as piggy
from airflow_provider_prefinery.sandbox.prefinery import routes as prefinery
from airflow_provider_prefinery.sandbox.spec import Endpoint
from airflow_provider_prefinery.sandbox.state import Store
from airflow_provider_prefinery.sandbox.wire import error_response, route

API_MODULES = (prefinery, mailchimp, piggy)  # each API's routes: ENDPOINTS and authorize


def endpoints() -> list[Endpoint]:
    return [spec for module in API_MODULES for spec in module.ENDPOINTS]


def create_app(store: Store, behaviour: Behaviour | None = None, *, allowed_hosts: Iterable[str] = ()) -> Any:
    """Return the ASGI app serving ``store`` (``app.state.store``/``.behaviour`` hold the two).

    :param allowed_hosts: ``Host`` names accepted besides the loopback ones (the name the server is bound
        to, or ``--allow-host``).
    """
    behaviour = behaviour or Behaviour()
    app = FastAPI(
        title="Prefinery sandbox",
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.store, app.state.behaviour = store, behaviour
    for module in API_MODULES:
        for spec in module.ENDPOINTS:
            app.add_route(
                spec.path,
                route(spec, store, module.authorize),
                methods=[spec.method],
                name=f"{spec.api}.{spec.name}",
                include_in_schema=False,
            )
    app.include_router(control.build_router(store, behaviour))

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Any:
        """Unknown paths answer in the shape of the API their prefix belongs to."""
        if request.url.path.startswith("/_sandbox"):
            return JSONResponse({"detail": "Not Found"}, 404)
        return error_response(api_of(request.url.path), NotFound())

    wrapped = GuardMiddleware(FaultMiddleware(app, behaviour, endpoints()), allowed_hosts=allowed_hosts)
    wrapped.state = app.state  # type: ignore[attr-defined]
    return wrapped
