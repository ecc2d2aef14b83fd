"""Input rules for every Prefinery write, checked before any request goes out.

Each ``check_<action>`` takes the same keyword arguments as the hook method of that name (without
``beta_id``) and returns the request body the endpoint table wraps. The hook calls them before sending;
the operators call them on every record before the first request, so both enforce one set of rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from airflow_provider_prefinery.exceptions import PrefineryInputError

USER_STATUSES = ("imported", "unconfirmed", "applied", "rejected", "invited", "active", "idle", "suspended")
REWARD_STATUSES = ("earned", "delivered", "revoked")
REWARD_STATUS_UPDATES = ("delivered", "revoked")
SUPPRESSION_REASONS = ("Manual", "Unsubscribe")
PROFILE_FIELDS = (
    "first_name", "last_name", "country", "telephone", "http_referrer", "employer",
    "custom_var1", "custom_var2", "custom_var3", "ip", "user_agent", "address_line1", "address_line2",
    "city", "state", "postal_code", "jobtitle",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
)  # fmt: skip
MAX_BODY_BYTES = 64 * 1024
MAX_TEXT = 5000
# Integer bounds. [assumed] Prefinery publishes none: ids are taken to be 64-bit and a points quantity a
# 32-bit integer (what Rails' default id and integer columns hold); larger values are refused here.
MAX_ID = 2**63 - 1
MAX_QUANTITY = 2**31 - 1
MAX_INT = MAX_ID  # any other positive integer (a project id, a count)
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() accepts '²' and '٣'

# Practical address syntax: ASCII local part and domain with a dot-separated TLD. Stricter than RFC 5322
# on purpose: Prefinery refuses what it cannot mail (2301), and we say so before the request.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # repr() of a huge int is slow, and refused beyond 4,300 digits
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57]) + f"... ({len(value):,} characters)"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def email(field: str, value: Any) -> str:
    """Return a syntactically valid e-mail address or raise naming the field."""
    if not isinstance(value, str):
        raise PrefineryInputError(field, f"must be an e-mail address string, got {type(value).__name__}")
    if not value:
        raise PrefineryInputError(field, "is required and must not be empty")
    if value != value.strip() or any(ch.isspace() for ch in value):
        raise PrefineryInputError(field, f"must not contain whitespace: {_show(value)}")
    if not value.isascii():
        raise PrefineryInputError(field, f"must be an ASCII e-mail address: {_show(value)}")
    if len(value) > 254 or not _EMAIL.match(value) or ".." in value:
        raise PrefineryInputError(field, f"is not a valid e-mail address: {_show(value)}")
    return value


def one_of(field: str, value: Any, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise PrefineryInputError(field, f"unknown value {_show(value)}", allowed=allowed)
    return value


def text(field: str, value: Any, *, required: bool = True, max_len: int = MAX_TEXT) -> str:
    """A string, non-blank when ``required``, at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise PrefineryInputError(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise PrefineryInputError(field, "is required and must not be empty")
    if len(value) > max_len:
        raise PrefineryInputError(field, f"is too long ({len(value)} characters; at most {max_len})")
    return value


def positive_int(field: str, value: Any, *, maximum: int = MAX_INT) -> int:
    """Accept a positive integer up to ``maximum``, or its ASCII digits as a template renders them
    (exactly: no sign, no spaces, no other digit scripts)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PrefineryInputError(field, f"must be a positive integer, got {_show(value)}")
    if value <= 0:
        raise PrefineryInputError(field, f"must be a positive integer, got {value}")
    if value > maximum:
        raise PrefineryInputError(field, f"must be at most {maximum:,}, got {_show(value)}")
    return value


def record_id(field: str, value: Any) -> int:
    """An object id, as it goes into the URL path: a positive integer (or exactly its ASCII digits).

    ``""``, ``"   "``, ``" 12"``, ``"12\n"`` and ``"-"`` are refused: a blank id would make
    ``DELETE testers/.json``, and a padded one another path than the id it shows.
    """
    return positive_int(field, value, maximum=MAX_ID)


def optional_text(field: str, value: Any, *, max_len: int = 255) -> str | None:
    """A list filter: None, or a non-blank string (not a mapping or a number that would reach the wire)."""
    return None if value is None else text(field, value, max_len=max_len)


def bool_from_text(value: Any) -> Any:
    """Undo a non-native template's rendering of a boolean (``"True"``, ``" false "``); else unchanged."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PrefineryInputError(field, f"must be true or false, got {_show(value)}")
    return value


def profile(field: str, value: Any) -> dict[str, Any]:
    """A flat mapping of profile fields to scalar values, within a sane size."""
    if not isinstance(value, Mapping):
        raise PrefineryInputError(field, f"must be a mapping of profile fields, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise PrefineryInputError(field, f"has a key that is not a non-empty string: {_show(key)}")
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise PrefineryInputError(
                f"{field}.{key}", f"must be a string, number or null, got {type(item).__name__}"
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise PrefineryInputError(f"{field}.{key}", f"must be a finite number, got {item!r}")
    _size(field, value)
    return dict(value)


def responses(field: str, value: Any) -> list[dict[str, Any]]:
    """A list of ``{question_id, answer}`` objects."""
    if not isinstance(value, list):
        raise PrefineryInputError(
            field, f"must be a list of {{question_id, answer}}, got {type(value).__name__}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or "question_id" not in item or "answer" not in item:
            raise PrefineryInputError(f"{field}[{i}]", "must be a mapping with question_id and answer")
    _size(field, value)
    return [dict(item) for item in value]


def _size(field: str, value: Any) -> None:
    """Refuse a value too large for a request body, or one JSON cannot carry (NaN, Infinity)."""
    try:
        size = len(json.dumps(value, default=str, allow_nan=False))
    except ValueError as exc:  # NaN/Infinity: requests would refuse to send the body
        raise PrefineryInputError(
            field, f"is not valid JSON: {exc} (NaN and Infinity have no JSON form)"
        ) from None
    except RecursionError:
        raise PrefineryInputError(field, "is nested too deeply to send as JSON") from None
    if size > MAX_BODY_BYTES:
        raise PrefineryInputError(field, f"is too large ({size:,} bytes as JSON; at most {MAX_BODY_BYTES:,})")


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def statuses(field: str, value: Any, allowed: Iterable[str]) -> frozenset[str] | None:
    """A status filter: None, one status, or a list of them."""
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise PrefineryInputError(field, f"must be a status or a non-empty list of them, got {_show(value)}")
    return frozenset(one_of(field, item, allowed) for item in values)


# ----------------------------------------------------------------------------------------------------
# One check per write action: same keywords as the hook method, returns the body to send.
# ----------------------------------------------------------------------------------------------------
def check_create_user(
    email: Any = None,
    *,
    status: Any = None,
    profile: Any = None,
    referrer_code: Any = None,
    invitation_code: Any = None,
    responses: Any = None,
) -> dict[str, Any]:
    body = {"email": _email("email", email)}
    if status is not None:
        body["status"] = one_of("status", status, USER_STATUSES)
    if invitation_code is not None:
        if status != "active":
            raise PrefineryInputError("invitation_code", "is only accepted with status='active'")
        body["invitation_code"] = text("invitation_code", invitation_code, max_len=255)
    if referrer_code is not None:
        body["referrer_id"] = text("referrer_code", referrer_code, max_len=255)
    return _with_profile(body, profile, responses)


def check_update_user(
    user_id: Any = None,
    *,
    email: Any = None,
    status: Any = None,
    profile: Any = None,
    invitation_code: Any = None,
    responses: Any = None,
) -> dict[str, Any]:
    record_id("user_id", user_id)
    body: dict[str, Any] = {}
    if email is not None:
        body["email"] = _email("email", email)
    if status is not None:
        body["status"] = one_of("status", status, USER_STATUSES)
    if invitation_code is not None:
        body["invitation_code"] = text("invitation_code", invitation_code, max_len=255)
    body = _with_profile(body, profile, responses)
    if not body:
        raise PrefineryInputError(
            "update_user",
            "nothing to update",
            allowed=("email", "status", "profile", "invitation_code", "responses"),
        )
    return body


def check_checkin_user(*, user_id: Any = None, email: Any = None) -> dict[str, Any]:
    if (user_id is None) == (email is None):
        raise PrefineryInputError("user_id/email", "give exactly one of user_id or email")
    if user_id is not None:
        return {"user_id": record_id("user_id", user_id)}
    return {"email": _email("email", email)}


def check_create_reward(
    email: Any = None, descriptor: Any = None, *, skip_quantity_check: Any = False
) -> dict[str, Any]:
    return {
        "email": _email("email", email),
        "descriptor": text("descriptor", descriptor, max_len=255),
        "skip_quantity_check": boolean("skip_quantity_check", skip_quantity_check),
    }


def check_trigger_rewards(email: Any = None, event: Any = None) -> dict[str, Any]:
    return {"email": _email("email", email), "event": text("event", event, max_len=255)}


def check_update_reward_status(reward_id: Any = None, status: Any = None) -> dict[str, Any]:
    record_id("reward_id", reward_id)
    return {"status": one_of("status", status, REWARD_STATUS_UPDATES)}


def check_create_suppression(email: Any = None, *, reason: Any = "Manual") -> dict[str, Any]:
    return {"email": _email("email", email), "reason": one_of("reason", reason, SUPPRESSION_REASONS)}


def check_create_friend_invitation(
    sender_email: Any = None, recipient_email: Any = None, *, message: Any = None
) -> dict[str, Any]:
    body = {
        "sender_email": _email("sender_email", sender_email),
        "recipient_email": _email("recipient_email", recipient_email),
    }
    if message is not None:
        body["message"] = text("message", message, required=False)
    return body


def check_create_points(email: Any = None, quantity: Any = None, *, reason: Any = None) -> dict[str, Any]:
    body = {
        "email": _email("email", email),
        "quantity": positive_int("quantity", quantity, maximum=MAX_QUANTITY),
    }
    if reason is not None:
        body["reason"] = text("reason", reason, max_len=255)
    return body


def check_delete_user(user_id: Any = None) -> dict[str, Any]:
    return {"user_id": record_id("user_id", user_id)}


def check_delete_suppression(suppression_id: Any = None) -> dict[str, Any]:
    return {"suppression_id": record_id("suppression_id", suppression_id)}


def check_delete_project(beta_id: Any = None) -> dict[str, Any]:
    return {"beta_id": positive_int("beta_id", beta_id)}


def _email(field: str, value: Any) -> str:
    if value is None:
        raise PrefineryInputError(field, "is required")
    return email(field, value)


def _with_profile(body: dict[str, Any], profile_value: Any, responses_value: Any) -> dict[str, Any]:
    if profile_value is not None:
        body["profile"] = profile("profile", profile_value)
    if responses_value is not None:
        body["responses"] = responses("responses", responses_value)
    return body


# The rules of each write action, by the hook method's name: the operators check every record with these.
WRITE_RULES: dict[str, Callable[..., dict[str, Any]]] = {
    "create_user": check_create_user,
    "update_user": check_update_user,
    "delete_user": check_delete_user,
    "checkin_user": check_checkin_user,
    "create_reward": check_create_reward,
    "trigger_rewards": check_trigger_rewards,
    "update_reward_status": check_update_reward_status,
    "create_suppression": check_create_suppression,
    "delete_suppression": check_delete_suppression,
    "create_friend_invitation": check_create_friend_invitation,
    "create_points": check_create_points,
    "delete_project": check_delete_project,
}
