"""One operator per Prefinery write action, each a few lines over :class:`PrefineryBaseOperator`.

Every operator takes its action's fields for one record, or ``records=[{...}, ...]`` with the same keys;
plus ``prefinery_conn_id``, ``beta_id``, ``max_concurrency`` (4), ``fail_on_error`` (True),
``return_records`` (False), ``progress_interval`` (10 s) and ``if_empty`` ("skip") — see
:class:`~airflow_provider_prefinery.operators.base.RecordsOperator`. Every field is templated (together,
as ``record``; ``records`` too). One record returns the API's object (None where the API answers nothing);
a batch returns ``{"counts": {...}, "failed": [...]}`` (plus ``"records"`` with ``return_records=True``).

Re-runs are safe where the API allows: existing users (2310, ``if_exists``), existing suppressions
(2702), already deleted users and suppressions (404) and rewards already in the target status count as
done. Points, friend invitations, reward triggers and reward creation are not idempotent: an unanswered
attempt is never replayed (the REST core refuses) and the record is reported with ``outcome_unknown: true``.
A batch's checkpoint (``operators.base``) lets Airflow retry it without sending a record twice; without a task
state store, a batch that applied writes fails without an Airflow retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from airflow_provider_prefinery.batch import Outcome
from airflow_provider_prefinery.exceptions import (
    PrefineryError,
    PrefineryInputError,
    PrefineryNotFoundError,
    PrefineryValidationError,
)
from airflow_provider_prefinery.operators.base import PrefineryBaseOperator, already_gone
from airflow_provider_prefinery.validation import one_of

if TYPE_CHECKING:
    from airflow.sdk import XComArg

IfExists = Literal["fail", "skip", "update"]
_USER_UPDATABLE = ("status", "profile", "invitation_code", "responses")
# A profile or survey answers: a mapping/list, or the text a template rendered it to.
Profile = Mapping[str, Any] | str
Responses = Sequence[Mapping[str, Any]] | str


# ------------------------------------------------------------------------------------------ users
class PrefineryCreateUserOperator(PrefineryBaseOperator):
    """Create users (status ``invited`` sends the invitation e-mail).

    :param email: the user's e-mail address (required).
    :param status: imported, unconfirmed, applied, rejected, invited, active, idle or suspended.
    :param profile: profile fields, e.g. ``{"first_name": "Ada", "country": "NL"}``.
    :param referrer_code: the referrer's referral code (credits the referral).
    :param invitation_code: only with ``status="active"``.
    :param responses: survey answers, ``[{"question_id": 1, "answer": "..."}]``.
    :param if_exists: when the e-mail exists (2310): ``fail`` (default) fails the record, ``skip`` returns
        the existing user, ``update`` updates its status/profile/invitation_code/responses (its referrer
        cannot change). Each existing user costs one LIST users call (rate-limited by Prefinery).
    :return: the created (or existing/updated) user.
    """

    action = "create_user"
    record_fields = ("email", "status", "profile", "referrer_code", "invitation_code", "responses")
    json_fields = ("profile", "responses")

    def __init__(
        self,
        *,
        email: str | XComArg | None = None,
        status: str | XComArg | None = None,
        profile: Profile | XComArg | None = None,
        referrer_code: str | XComArg | None = None,
        invitation_code: str | XComArg | None = None,
        responses: Responses | XComArg | None = None,
        if_exists: IfExists = "fail",
        **kwargs: Any,
    ) -> None:
        fields = {
            "email": email,
            "status": status,
            "profile": profile,
            "referrer_code": referrer_code,
            "invitation_code": invitation_code,
            "responses": responses,
        }
        super().__init__(fields=fields, **kwargs)
        self.if_exists = cast(IfExists, one_of("if_exists", if_exists, get_args(IfExists)))

    def run_record(self, fields: dict[str, Any]) -> Any:
        from airflow_provider_prefinery.hooks.prefinery_endpoints import DUPLICATE_USER

        try:
            return self.call(fields)
        except PrefineryValidationError as err:
            if err.code != DUPLICATE_USER or self.if_exists == "fail":
                raise
            existing = self.hook.find_user(fields["email"], beta_id=self.project_id)
            if existing is None:
                raise
        changes = {key: fields[key] for key in _USER_UPDATABLE if key in fields}
        if self.if_exists == "skip" or not changes:
            return Outcome("skipped", existing, f"user {fields['email']} exists (id {existing.get('id')})")
        updated = self.call({"user_id": existing["id"], **changes}, "update_user")
        return Outcome("updated", updated, f"user {fields['email']} existed: updated {', '.join(changes)}")


class PrefineryUpdateUserOperator(PrefineryBaseOperator):
    """Update users' fields (status ``rejected`` sends the rejection e-mail). Idempotent.

    :param user_id: the user's id (required).
    :param email: a new e-mail address.
    :param status: a new status (Prefinery refuses transitions it does not allow).
    :param profile: profile fields to set.
    :param invitation_code: a new invitation code.
    :param responses: survey answers to set.
    :return: the updated user.
    """

    action = "update_user"
    record_fields = ("user_id", "email", "status", "profile", "invitation_code", "responses")
    json_fields = ("profile", "responses")

    def __init__(
        self,
        *,
        user_id: int | str | XComArg | None = None,
        email: str | XComArg | None = None,
        status: str | XComArg | None = None,
        profile: Profile | XComArg | None = None,
        invitation_code: str | XComArg | None = None,
        responses: Responses | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {
            "user_id": user_id,
            "email": email,
            "status": status,
            "profile": profile,
            "invitation_code": invitation_code,
            "responses": responses,
        }
        super().__init__(fields=fields, **kwargs)


class PrefineryDeleteUserOperator(PrefineryBaseOperator):
    """Delete users. A user that is already gone (404) counts as done (``already_done``), with a log line.

    :param user_id: the user's id (required).
    :return: None (the API's answer, if any).
    """

    action = "delete_user"
    record_fields = ("user_id",)
    gone_when_missing = "user {user_id}"

    def __init__(self, *, user_id: int | str | XComArg | None = None, **kwargs: Any) -> None:
        super().__init__(fields={"user_id": user_id}, **kwargs)


class PrefineryCheckinUserOperator(PrefineryBaseOperator):
    """Record a check-in (activity) for users, by id or by e-mail (exactly one per record). Repeatable.

    :param user_id: the user's id.
    :param email: the user's e-mail address.
    :return: the API's answer (usually None: Prefinery answers 202 with no body).
    """

    action = "checkin_user"
    record_fields = ("user_id", "email")

    def __init__(
        self,
        *,
        user_id: int | str | XComArg | None = None,
        email: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fields={"user_id": user_id, "email": email}, **kwargs)


# ------------------------------------------------------------------------------------------ rewards
class PrefineryCreateRewardOperator(PrefineryBaseOperator):
    """Issue a reward, by its descriptor, to users. NOT idempotent: every call issues another reward.

    An unanswered attempt is never replayed; the record is reported with ``outcome_unknown: true``.

    :param email: the user's e-mail address (required).
    :param descriptor: the reward's descriptor in Prefinery (required).
    :param skip_quantity_check: issue even when the reward's quantity is used up (default False).
    :return: the reward.
    """

    action = "create_reward"
    record_fields = ("email", "descriptor", "skip_quantity_check")
    bool_fields = ("skip_quantity_check",)
    idempotent = False

    def __init__(
        self,
        *,
        email: str | XComArg | None = None,
        descriptor: str | XComArg | None = None,
        skip_quantity_check: bool | str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {"email": email, "descriptor": descriptor, "skip_quantity_check": skip_quantity_check}
        super().__init__(fields=fields, **kwargs)


class PrefineryTriggerRewardsOperator(PrefineryBaseOperator):
    """Fire a custom reward event for referred users; Prefinery's rules decide what to issue.

    NOT idempotent: each call may issue rewards again. An unanswered attempt is never replayed; the
    record is reported with ``outcome_unknown: true``.

    :param email: the referred user's e-mail address (required).
    :param event: the custom event name configured in Prefinery (required).
    :return: the API's answer (None when it sends no body).
    """

    action = "trigger_rewards"
    record_fields = ("email", "event")
    idempotent = False

    def __init__(
        self,
        *,
        email: str | XComArg | None = None,
        event: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fields={"email": email, "event": event}, **kwargs)


class PrefineryUpdateRewardStatusOperator(PrefineryBaseOperator):
    """Mark earned rewards ``delivered`` or ``revoked``.

    Re-runs are safe: Prefinery refuses (422) to change a reward that is not ``earned``, so on a 422 the
    reward is read back, and one already in the target status counts as done.

    :param reward_id: the reward's id (required).
    :param status: ``delivered`` or ``revoked`` (required).
    :return: the reward.
    """

    action = "update_reward_status"
    record_fields = ("reward_id", "status")

    def __init__(
        self,
        *,
        reward_id: int | str | XComArg | None = None,
        status: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fields={"reward_id": reward_id, "status": status}, **kwargs)

    def run_record(self, fields: dict[str, Any]) -> Any:
        try:
            return self.call(fields)
        except PrefineryValidationError as err:
            try:
                reward = self.hook.get_reward(fields["reward_id"], beta_id=self.project_id)
            except PrefineryError:
                raise err from None
            current = reward.get("status")
            if current == fields["status"]:
                return Outcome("already_done", reward, f"reward {fields['reward_id']} is already {current}")
            err.message = f"{err.message} (its current status: {current!r})"
            raise


# ------------------------------------------------------------------------------------------ suppressions
class PrefineryCreateSuppressionOperator(PrefineryBaseOperator):
    """Suppress e-mail addresses; one already suppressed (2702) counts as done, its suppression returned.

    :param email: the e-mail address (required).
    :param reason: ``Manual`` (default) or ``Unsubscribe`` (also unsubscribes the user).
    :return: the suppression (the existing one when it was already there).
    """

    action = "create_suppression"
    record_fields = ("email", "reason")

    def __init__(
        self,
        *,
        email: str | XComArg | None = None,
        reason: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fields={"email": email, "reason": reason}, **kwargs)

    def run_record(self, fields: dict[str, Any]) -> Any:
        from airflow_provider_prefinery.hooks.prefinery_endpoints import DUPLICATE_SUPPRESSION

        try:
            return self.call(fields)
        except PrefineryValidationError as err:
            if err.code != DUPLICATE_SUPPRESSION:
                raise
        existing = None
        if not self.is_batch or self.return_records:  # the object is wanted: one extra lookup
            existing = self.hook.find_suppression(fields["email"], beta_id=self.project_id)
        return Outcome("already_done", existing, f"{fields['email']} is already suppressed (2702)")


class PrefineryDeleteSuppressionOperator(PrefineryBaseOperator):
    """Lift suppressions (only Manual and HardBounce ones). One already gone (404) counts as done.

    :param suppression_id: the suppression's id (required).
    :return: None (the API's answer, if any).
    """

    action = "delete_suppression"
    record_fields = ("suppression_id",)
    gone_when_missing = "suppression {suppression_id}"

    def __init__(self, *, suppression_id: int | str | XComArg | None = None, **kwargs: Any) -> None:
        super().__init__(fields={"suppression_id": suppression_id}, **kwargs)


# -------------------------------------------------------------------------------- invitations, points
class PrefineryCreateFriendInvitationOperator(PrefineryBaseOperator):
    """Send friend invitations from invited, active or idle users. NOT idempotent: one e-mail per call.

    An unanswered attempt is never replayed; the record is reported with ``outcome_unknown: true``.

    :param sender_email: the inviting user's e-mail address (required).
    :param recipient_email: the friend's e-mail address (required).
    :param message: a personal message.
    :return: the friend invitation.
    """

    action = "create_friend_invitation"
    record_fields = ("sender_email", "recipient_email", "message")
    idempotent = False

    def __init__(
        self,
        *,
        sender_email: str | XComArg | None = None,
        recipient_email: str | XComArg | None = None,
        message: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {"sender_email": sender_email, "recipient_email": recipient_email, "message": message}
        super().__init__(fields=fields, **kwargs)


class PrefineryCreatePointsOperator(PrefineryBaseOperator):
    """Award points to users. NOT idempotent: every call adds points.

    An unanswered attempt is never replayed; the record is reported with ``outcome_unknown: true``.
    Prefinery accepts points only when the project's leaderboard orders by points.

    :param email: the user's e-mail address (required).
    :param quantity: a positive number of points (required).
    :param reason: why, shown to the user.
    :return: the points entry.
    """

    action = "create_points"
    record_fields = ("email", "quantity", "reason")
    idempotent = False

    def __init__(
        self,
        *,
        email: str | XComArg | None = None,
        quantity: int | str | XComArg | None = None,
        reason: str | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fields={"email": email, "quantity": quantity, "reason": reason}, **kwargs)


# ------------------------------------------------------------------------------------------ projects
class PrefineryDeleteProjectOperator(PrefineryBaseOperator):
    """Delete a project and everything in it, after checking its name: one project, never a batch.

    ``beta_id`` must be given (the connection's default is not used), and the project's current name must
    equal ``confirm_project_name``, or nothing is deleted. A project already gone (404) counts as done.

    :param beta_id: the project to delete (required).
    :param confirm_project_name: the project's exact name (required, templated).
    :return: None (the API's answer, if any).
    """

    action = "delete_project"
    record_fields = ()
    supports_records = False
    template_fields = (*PrefineryBaseOperator.template_fields, "confirm_project_name")

    def __init__(self, *, confirm_project_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(fields={}, **kwargs)
        self.confirm_project_name = confirm_project_name
        self._check_arguments()

    def _check_arguments(self) -> None:
        if self.beta_id in (None, ""):
            raise PrefineryInputError("beta_id", "deleting a project needs beta_id spelled out")
        if not isinstance(self.confirm_project_name, str) or not self.confirm_project_name.strip():
            raise PrefineryInputError(
                "confirm_project_name", "is required: the name of the project to delete"
            )

    def check_record(self, fields: dict[str, Any]) -> None:
        self._check_arguments()  # again, after rendering
        super().check_record({"beta_id": self.project_id})

    def run_record(self, fields: dict[str, Any]) -> Any:
        try:
            name = self.hook.get_project(self.project_id).get("name")
        except PrefineryNotFoundError:
            return already_gone(f"project {self.project_id}")
        if name != self.confirm_project_name:
            raise PrefineryInputError(
                "confirm_project_name",
                f"is {self.confirm_project_name!r} but project {self.project_id} is named {name!r}: "
                "nothing was deleted",
            )
        try:
            return self.hook.delete_project(self.project_id)
        except PrefineryNotFoundError:
            return already_gone(f"project {self.project_id}")


__all__ = [
    "PrefineryCheckinUserOperator",
    "PrefineryCreateFriendInvitationOperator",
    "PrefineryCreatePointsOperator",
    "PrefineryCreateRewardOperator",
    "PrefineryCreateSuppressionOperator",
    "PrefineryCreateUserOperator",
    "PrefineryDeleteProjectOperator",
    "PrefineryDeleteSuppressionOperator",
    "PrefineryDeleteUserOperator",
    "PrefineryTriggerRewardsOperator",
    "PrefineryUpdateRewardStatusOperator",
    "PrefineryUpdateUserOperator",
]
