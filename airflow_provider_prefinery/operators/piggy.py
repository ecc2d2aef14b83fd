"""PiggyCreateAutomationRunOperator: start a Piggy automation for one contact, or for many records.

Built on :class:`~airflow_provider_prefinery.operators.base.RecordsOperator`, so it takes one record as
arguments or ``records=[...]``, validates every record (once) before the first request, runs them under
bounded concurrency and reports failures like the Prefinery operators.

An automation run is NOT idempotent (each run sends another e-mail, credit or gift card) and Piggy has no
idempotency key: an attempt whose outcome is unknown (read timeout, 500 after sending) is never replayed and
the record is reported with ``outcome_unknown: true``: check such records in Piggy before sending them again.
The batch's checkpoint (``operators.base``) lets Airflow retry it without starting a run twice; without a task
state store, a batch that started runs fails without an Airflow retry.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Context

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryInputError, PrefineryNotFoundError
from airflow_provider_prefinery.hooks.piggy import (
    CONTACT_NOT_FOUND,
    MODEL_NOT_FOUND,
    SERVICE,
    PiggyHook,
    check_run_data,
    check_uuid,
    pick_automation,
)
from airflow_provider_prefinery.operators.base import RecordsOperator

if TYPE_CHECKING:
    from airflow.sdk import XComArg


def _exactly_one(fields: dict[str, Any], first: str, second: str) -> str:
    """Return which of two alternative fields the record sets, or raise naming both."""
    given = [name for name in (first, second) if fields.get(name) is not None]
    if len(given) != 1:
        problem = "both are set" if given else "neither is set"
        raise PrefineryInputError(f"{first}/{second}", f"set exactly one ({problem})", service=SERVICE)
    return given[0]


class PiggyCreateAutomationRunOperator(RecordsOperator):
    """Start a Piggy automation for contacts. NOT idempotent: every run is another delivery.

    The contact is given by ``contact_uuid`` or by ``email`` (looked up; created first only with
    ``create_contact_if_missing=True``). The automation is given by ``automation_uuid`` or by
    ``automation_name``; the automation list is read once per task, and an automation whose event is not
    ``contact_updated`` fails with an error naming its event (Piggy starts only those through the API).
    When the automation is an argument of the operator it is checked before any record runs.

    :param contact_uuid: the contact's UUID.
    :param email: the contact's e-mail address (instead of ``contact_uuid``).
    :param automation_uuid: the automation's UUID.
    :param automation_name: the automation's exact name (instead of ``automation_uuid``).
    :param data: key-value pairs the automation can use, e.g. ``{"reward": "20% off"}`` (templated).
    :param create_contact_if_missing: with ``email``, create the contact when Piggy has none (default
        False: the record fails with "contact not found").
    :param piggy_conn_id: the Piggy connection (default ``piggy_default``; templated).

    Plus ``records``, ``max_concurrency``, ``fail_on_error``, ``return_records``, ``progress_interval`` and
    ``if_empty``: see :class:`~airflow_provider_prefinery.operators.base.RecordsOperator`.

    :return: one record: ``{"contact_uuid", "automation_uuid", "automation_name", "email", "data"}`` of
        the started run; ``records=``: ``{"counts", "failed"}`` (and ``"records"``, in input order, with
        ``return_records=True``).
    """

    action = "create_automation_run"
    record_fields = ("contact_uuid", "email", "automation_uuid", "automation_name", "data")
    json_fields = ("data",)
    idempotent = False
    template_fields: Sequence[str] = (*RecordsOperator.template_fields, "piggy_conn_id")
    ui_color = "#fde8ef"

    def __init__(
        self,
        *,
        contact_uuid: str | XComArg | None = None,
        email: str | XComArg | None = None,
        automation_uuid: str | XComArg | None = None,
        automation_name: str | XComArg | None = None,
        data: Mapping[str, Any] | str | XComArg | None = None,
        create_contact_if_missing: bool = False,
        piggy_conn_id: str = "piggy_default",
        **kwargs: Any,
    ) -> None:
        fields = {
            "contact_uuid": contact_uuid,
            "email": email,
            "automation_uuid": automation_uuid,
            "automation_name": automation_name,
            "data": data,
        }
        super().__init__(fields=fields, **kwargs)
        if not isinstance(create_contact_if_missing, bool):
            raise PrefineryInputError(
                "create_contact_if_missing",
                f"must be True or False, got {create_contact_if_missing!r}",
                service=SERVICE,
            )
        self.create_contact_if_missing = create_contact_if_missing
        self.piggy_conn_id = piggy_conn_id

    @cached_property
    def hook(self) -> PiggyHook:
        return PiggyHook(self.piggy_conn_id)

    def request_count(self) -> int | None:
        return self.hook.stats["requests"]

    # ---- checks: no request ----
    def check_record(self, fields: dict[str, Any]) -> None:
        if _exactly_one(fields, "contact_uuid", "email") == "email":
            try:
                v.email("email", fields["email"])
            except PrefineryInputError as err:
                err.service = SERVICE
                raise
        else:
            check_uuid("contact_uuid", fields["contact_uuid"])
        if _exactly_one(fields, "automation_uuid", "automation_name") == "automation_uuid":
            check_uuid("automation_uuid", fields["automation_uuid"])
        elif not isinstance(fields["automation_name"], str) or not fields["automation_name"].strip():
            raise PrefineryInputError("automation_name", "must be a non-empty string", service=SERVICE)
        check_run_data(fields.get("data"))

    # ---- once per task ----
    def prepare(self, context: Context) -> None:
        """Build the client once (one OAuth exchange for every thread), before the worker threads start."""
        self._catalogue: list[dict[str, Any]] | None = None
        self._catalogue_lock = threading.Lock()
        self.hook.client  # noqa: B018 - built here, single-threaded

    def before_first_record(self) -> None:
        """Check the operator's own automation once the input is known valid (the automation listing is
        the task's first request) and before any record, so a wrong one starts not a single run."""
        name, auuid = self.record.get("automation_name"), self.record.get("automation_uuid")
        if (name is None) != (auuid is None):
            automation = self.automation({"automation_name": name, "automation_uuid": auuid})
            shown = [automation.get(key) for key in ("name", "uuid", "event", "status")]
            self.log.info("Piggy automation %r (%s), event %s, status %s", *shown)

    def catalogue(self) -> list[dict[str, Any]]:
        """Every automation, listed once per task (the first record to need it lists; the rest wait)."""
        with self._catalogue_lock:
            if self._catalogue is None:
                self._catalogue = list(self.hook.list_automations())
            return self._catalogue

    def automation(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The record's automation from the listing, checked to be startable.

        A UUID that is not in the listing is passed on as is: Piggy then answers 60013 if it is unknown.

        :raises PrefineryNotFoundError: no automation has the record's name.
        :raises PrefineryInputError: its event is not ``contact_updated``, or the name is ambiguous.
        """
        name = fields.get("automation_name")
        found = pick_automation(self.catalogue(), name=name, uuid=fields.get("automation_uuid"))
        if found is not None:
            if found.get("status") not in (None, "active"):
                self.log.warning(
                    "Piggy automation %r is %s: it may not run", found.get("name"), found["status"]
                )
            return found
        if name is None:
            return {"uuid": check_uuid("automation_uuid", fields["automation_uuid"]), "name": None}
        names = ", ".join(repr(a.get("name")) for a in self.catalogue()) or "none"
        raise PrefineryNotFoundError(
            f"no automation named {name!r} (automations: {names})", service=SERVICE, code=MODEL_NOT_FOUND
        )

    # ---- per record ----
    def contact_uuid(self, fields: dict[str, Any]) -> str:
        """The record's contact UUID: given, or looked up (and created, if allowed) by e-mail.

        :raises PrefineryNotFoundError: no contact has this e-mail and ``create_contact_if_missing`` is off.
        """
        if fields.get("contact_uuid") is not None:
            return check_uuid("contact_uuid", fields["contact_uuid"])
        email = fields["email"]
        if self.create_contact_if_missing:
            return str(self.hook.find_or_create_contact(email)["uuid"])
        contact = self.hook.find_contact(email)
        if contact is None:
            raise PrefineryNotFoundError(
                f"no contact with e-mail {email} (create_contact_if_missing=True creates it)",
                service=SERVICE,
                code=CONTACT_NOT_FOUND,
            )
        return str(contact["uuid"])

    def run_record(self, fields: dict[str, Any]) -> Any:
        automation = self.automation(fields)
        contact = self.contact_uuid(fields)
        data = check_run_data(fields.get("data"))
        self.hook.create_automation_run(contact, str(automation["uuid"]), data)
        return {
            "contact_uuid": contact,
            "email": fields.get("email"),
            "automation_uuid": str(automation["uuid"]),
            "automation_name": automation.get("name"),
            "data": data,
        }
