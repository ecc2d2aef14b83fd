"""Prefinery's errors: its 422 validation codes, and the renderer of every error in Prefinery's shape.

Codes are the documented ones unless marked *assumed* (the reference does not publish them; the sandbox
picks one so tests can branch on it).
"""

from __future__ import annotations

from airflow_provider_prefinery.sandbox.errors import SandboxError
from airflow_provider_prefinery.sandbox.values import dumps


class PrefineryValidation(SandboxError):
    status, code, title, default_message = 422, 2201, "Unprocessable Entity", "validation failed"


class ProjectNotDeletable(PrefineryValidation):
    code, default_message = 2204, "unable to delete project: it has active users"


class InvalidEmail(PrefineryValidation):
    code, default_message = 2301, "email is invalid"


class InvalidUserStatus(PrefineryValidation):
    code, default_message = 2302, "status is invalid or the transition is not allowed"  # assumed code


class DuplicateUser(PrefineryValidation):
    code, default_message = 2310, "a user with this email already exists"


class FriendInvitationError(PrefineryValidation):
    code, default_message = 2501, "friend invitation could not be sent"  # assumed code


class RewardError(PrefineryValidation):
    code, default_message = 2601, "reward could not be created"  # assumed code


class RewardStatusError(PrefineryValidation):
    code, default_message = 2602, "only an earned reward may change status"  # assumed code


class RewardQuantityExceeded(PrefineryValidation):
    code, default_message = 2603, "the user already has this reward (skip_quantity_check to force)"  # assumed


class SuppressionError(PrefineryValidation):
    code, default_message = 2701, "suppression general error"


class SuppressionExists(PrefineryValidation):
    code, default_message = 2702, "suppression email already exists"


class SuppressionEmailRequired(PrefineryValidation):
    code, default_message = 2703, "suppression email required"


class PointsEmailRequired(PrefineryValidation):
    code, default_message = 2802, "points email required"


class PointsEmailNotFound(PrefineryValidation):
    code, default_message = 2803, "points email not found"


class PointsQuantityRequired(PrefineryValidation):
    code, default_message = 2804, "points quantity required (an integer)"


def render(err: SandboxError) -> tuple[bytes, str]:
    """``{"errors": [{"code", "message"}]}``, for Prefinery's own errors and the HTTP-level ones alike."""
    return dumps({"errors": [{"code": err.code, "message": err.message}]}), "application/json"
