"""Prefinery's REST API v2 as data: THE endpoint table, its rate limits and error codes, the one error
parser and the pagination rule.

Every path, method and body wrapper lives in :data:`ENDPOINTS`; where the reference marks a shape as
assumed, the row says so, and correcting it is a one-line change. Light on purpose (the standard library
and the error classes only), so operators and sensors can read these facts without importing the hook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_prefinery.hooks.endpoint import Endpoint
from airflow_provider_prefinery.hooks.error_mapping import ApiErrorInfo, json_error_parser

if TYPE_CHECKING:
    import requests

    from airflow_provider_prefinery.hooks.rest import ApiResponse

DEFAULT_HOST = "https://api.prefinery.com"
API_PREFIX = "/api/v2/"

# THE endpoint table. Paths are relative to /api/v2/; {beta_id} and {id} are URL-quoted when filled.
ENDPOINTS: dict[str, Endpoint] = {
    "list_projects": Endpoint("GET", "betas.json", limit="projects"),
    "get_project": Endpoint("GET", "betas/{beta_id}.json", limit="projects"),
    "delete_project": Endpoint("DELETE", "betas/{beta_id}.json", limit="write"),
    "list_users": Endpoint("GET", "betas/{beta_id}/testers.json", limit="list_users"),
    "get_user": Endpoint("GET", "betas/{beta_id}/testers/{id}.json"),
    "create_user": Endpoint(
        "POST", "betas/{beta_id}/testers.json", "tester", "write", True, 2310, shape="client"
    ),
    "update_user": Endpoint("PUT", "betas/{beta_id}/testers/{id}.json", "tester", "write", shape="client"),
    "delete_user": Endpoint("DELETE", "betas/{beta_id}/testers/{id}.json", limit="write", shape="assumed"),
    "checkin_user_by_id": Endpoint(
        "POST", "betas/{beta_id}/testers/{id}/checkin.json", limit="write", replay_safe=True, shape="client"
    ),
    "checkin_user_by_email": Endpoint(
        "POST", "betas/{beta_id}/checkins.json", "checkin", "write", replay_safe=True
    ),
    "list_rewards": Endpoint("GET", "betas/{beta_id}/rewards.json", limit="list_rewards"),
    "get_reward": Endpoint("GET", "betas/{beta_id}/rewards/{id}.json", shape="assumed"),
    "create_reward": Endpoint("POST", "betas/{beta_id}/rewards.json", limit="write", shape="assumed"),
    "trigger_rewards": Endpoint(
        "POST", "betas/{beta_id}/rewards/trigger.json", limit="write", shape="assumed"
    ),
    "update_reward_status": Endpoint(
        "PATCH", "betas/{beta_id}/rewards/{id}.json", limit="write", shape="assumed"
    ),
    "list_suppressions": Endpoint("GET", "betas/{beta_id}/suppressions.json"),
    "get_suppression": Endpoint("GET", "betas/{beta_id}/suppressions/{id}.json", shape="assumed"),
    "create_suppression": Endpoint(
        "POST", "betas/{beta_id}/suppressions.json", limit="write", replay_safe=True, duplicate_code=2702
    ),
    "delete_suppression": Endpoint(
        "DELETE", "betas/{beta_id}/suppressions/{id}.json", limit="write", shape="assumed"
    ),
    "create_friend_invitation": Endpoint(
        "POST", "betas/{beta_id}/friend_invitations.json", "friend_invitation", "write"
    ),
    "list_points": Endpoint("GET", "betas/{beta_id}/points.json", limit="list_points"),
    "create_points": Endpoint("POST", "betas/{beta_id}/points.json", limit="write"),
}

# Documented client limits: (requests, seconds). LIST users counts per project; the rest per key.
RATE_LIMITS: dict[str, tuple[float, float]] = {
    "projects": (90, 15 * 60),
    "list_users": (60, 60),
    "list_rewards": (60, 60),
    "list_points": (60, 60),
}
PER_PROJECT_LIMITS = frozenset({"list_users"})

# Error codes the reference documents, for messages and for callers that branch on them.
ERROR_CODES: dict[int, str] = {
    2201: "project general error",
    2204: "unable to delete project",
    2301: "invalid email",
    2310: "duplicate user",
    2701: "suppression general error",
    2702: "suppression email already exists",
    2703: "suppression email required",
    2801: "points general error",
    2802: "points email required",
    2803: "points email not found",
    2804: "points quantity required",
}


def _duplicate_code(action: str) -> int:
    code = ENDPOINTS[action].duplicate_code
    if code is None:
        raise LookupError(f"endpoint {action!r} has no duplicate code")
    return code


# The duplicate codes, read from the table: import these rather than spelling the numbers again.
DUPLICATE_USER: int = _duplicate_code("create_user")
DUPLICATE_SUPPRESSION: int = _duplicate_code("create_suppression")


@json_error_parser
def parse_prefinery_error(body: Mapping[str, Any], response: requests.Response) -> ApiErrorInfo | None:
    """Read ``{"errors":[{"code","message"}]}`` or ``{"error": "..."}``: the one Prefinery error parser."""
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0] if isinstance(errors[0], Mapping) else {"message": str(errors[0])}
        messages = "; ".join(str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors)
        return ApiErrorInfo(code=first.get("code"), message=messages, details=body)
    if isinstance(body.get("error"), str):
        return ApiErrorInfo(code=body.get("code"), message=body["error"], details=body)
    return None


def next_prefinery_page(response: ApiResponse, params: dict[str, Any]) -> dict[str, Any] | None:
    """Follow ``X-Pagination.next_page``; without the header, ask for the next page until one is empty."""
    raw = response.headers.get("X-Pagination")
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            meta = None
        if isinstance(meta, Mapping):
            nxt = meta.get("next_page")
            return {**params, "page": int(nxt)} if nxt else None
    return {**params, "page": int(params.get("page", 1)) + 1}
