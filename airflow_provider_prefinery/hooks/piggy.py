"""PiggyHook: the part of the Piggy (Leat) API v3 that delivers rewards: automations, contacts, runs.

Every path lives in :data:`ENDPOINTS` (``piggy_endpoints.py``, rows of the same type as PrefineryHook's
table). Requests go through the shared REST core (retries on 429 and 503 maintenance, timeouts,
redaction); Piggy's error body ``{status_code, code, message, errors}`` is read by ONE parser,
:func:`parse_piggy_error`, which maps Piggy's own codes onto the provider's error tree (Piggy asks
integrators to branch on ``code``, not on the HTTP status).

Authentication: a Personal Access Token or API key in the connection's password, or OAuth client
credentials (extra ``client_id`` and ``client_secret``) exchanged at ``/oauth/token`` for an access token
that is cached, thread-safely, until shortly before it expires (``piggy_oauth.py``).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import mask_secret

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import (
    PrefineryError,
    PrefineryInputError,
    PrefineryNotFoundError,
)
from airflow_provider_prefinery.hooks.base import ApiHook, base_url, require
from airflow_provider_prefinery.hooks.piggy_endpoints import (
    API_PREFIX,
    CONTACT_NOT_FOUND,
    DEFAULT_HOST,
    ENDPOINTS,
    ERROR_KINDS,
    INVALID_INPUT,
    MODEL_NOT_FOUND,
    PAGE_LIMIT,
    SERVICE,
    STARTABLE_EVENT,
    TOKEN_PATH,
    next_piggy_page,
    parse_piggy_error,
)
from airflow_provider_prefinery.hooks.piggy_oauth import DEFAULT_TOKEN_TTL, ClientCredentialsAuth
from airflow_provider_prefinery.hooks.rest import BearerAuth, RestClient

__all__ = [
    "API_PREFIX",
    "CONTACT_NOT_FOUND",
    "DEFAULT_HOST",
    "ENDPOINTS",
    "ERROR_KINDS",
    "INVALID_INPUT",
    "MODEL_NOT_FOUND",
    "PAGE_LIMIT",
    "SERVICE",
    "STARTABLE_EVENT",
    "TOKEN_PATH",
    "ClientCredentialsAuth",
    "PiggyHook",
    "check_run_data",
    "check_uuid",
    "is_startable",
    "parse_piggy_error",
    "pick_automation",
]


def _data(body: Any) -> Any:
    """Unwrap Piggy's ``{"data": ..., "meta": ...}`` envelope."""
    return require(body, "data")


def _piggy_input(check: Callable[..., Any], *args: Any) -> Any:
    """Run a shared input rule, relabelling its error as Piggy's."""
    try:
        return check(*args)
    except PrefineryInputError as err:
        err.service = SERVICE
        raise


def check_uuid(field: str, value: Any) -> str:
    """Return ``value`` as a canonical UUID string, or raise naming the field (before any request)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise PrefineryInputError(field, f"must be a UUID string, got {value!r}", service=SERVICE)
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise PrefineryInputError(field, f"is not a UUID: {value[:60]!r}", service=SERVICE) from None


def check_run_data(value: Any) -> dict[str, Any] | None:
    """The run's ``data``: None, or a mapping of string keys to JSON values within the body limit."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PrefineryInputError(
            "data", f"must be a mapping of key-value pairs, got {type(value).__name__}", service=SERVICE
        )
    for key in value:
        if not isinstance(key, str) or not key:
            raise PrefineryInputError(
                "data", f"has a key that is not a non-empty string: {key!r}", service=SERVICE
            )
    try:
        size = len(json.dumps(value, allow_nan=False))  # NaN/Infinity: requests would refuse the body
    except (TypeError, ValueError, RecursionError) as exc:
        raise PrefineryInputError("data", f"is not JSON-serialisable ({exc})", service=SERVICE) from None
    if size > v.MAX_BODY_BYTES:
        raise PrefineryInputError(
            "data", f"is too large ({size:,} bytes as JSON; at most {v.MAX_BODY_BYTES:,})", service=SERVICE
        )
    return dict(value)


def is_startable(automation: Mapping[str, Any]) -> bool:
    """True when Piggy starts this automation through the API (its event is ``contact_updated``)."""
    return automation.get("event") == STARTABLE_EVENT


def _describe(automations: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(f"{a.get('name')!r} (event {a.get('event')})" for a in automations) or "none"


def pick_automation(
    automations: Sequence[Mapping[str, Any]], *, name: str | None = None, uuid: str | None = None
) -> dict[str, Any] | None:
    """Find one automation in a listing by exact name or UUID; None when absent. Pure: no request.

    :raises PrefineryInputError: not exactly one of ``name``/``uuid``; several automations share the
        name; or the automation's event is not ``contact_updated`` (Piggy starts only those through the
        API): the error names the event and the automations that can be started.
    """
    if (name is None) == (uuid is None):
        raise PrefineryInputError(
            "automation", "pass exactly one of automation_name and automation_uuid", service=SERVICE
        )
    if name is not None:
        field, found = "automation_name", [a for a in automations if a.get("name") == name]
    else:
        wanted = check_uuid("automation_uuid", uuid)
        field, found = "automation_uuid", [a for a in automations if str(a.get("uuid")) == wanted]
    if len(found) > 1:
        uuids = ", ".join(str(a.get("uuid")) for a in found)
        problem = f"{len(found)} automations are named {name!r} ({uuids}): pass automation_uuid instead"
        raise PrefineryInputError(field, problem, service=SERVICE)
    if not found:
        return None
    automation = dict(found[0])
    if not is_startable(automation):
        startable = _describe(a for a in automations if is_startable(a))
        problem = (
            f"automation {automation.get('name')!r} ({automation.get('uuid')}) has event "
            f"{automation.get('event')!r}, but Piggy starts only automations with event '{STARTABLE_EVENT}' "
            f"through the API. Startable automations: {startable}"
        )
        raise PrefineryInputError(field, problem, service=SERVICE)
    return automation


# --------------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------------
class PiggyHook(ApiHook):
    """Start Piggy automations for contacts: list automations, find or create contacts, start runs.

    :param piggy_conn_id: the Airflow connection (type ``piggy``): password = Personal Access Token or API
        key; host = API origin (default ``https://api.piggy.eu``); or, with the password empty, extra
        ``client_id`` and ``client_secret`` = an OAuth client whose access token the hook obtains and
        renews. Extra may also hold ``max_retries``, ``connect_timeout`` and ``read_timeout``.
    """

    conn_name_attr = "piggy_conn_id"
    default_conn_name = "piggy_default"
    conn_type = "piggy"
    hook_name = "Piggy"
    service = SERVICE
    default_host = DEFAULT_HOST
    api_prefix = API_PREFIX

    def __init__(self, piggy_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(piggy_conn_id, **kwargs)
        self.piggy_conn_id = self.conn_id
        self._client: RestClient | None = None
        self._oauth: ClientCredentialsAuth | None = None
        self._build_lock = threading.Lock()

    # ------------------------------------------------------------------ connection and plumbing
    @cached_property
    def oauth_client(self) -> tuple[str, str] | None:
        """``(client_id, client_secret)`` when the connection authenticates as an OAuth client, else None.

        A token in the password wins (Piggy recommends Personal Access Tokens); the client is used only
        when the password is empty.

        :raises PrefineryInputError: neither a token nor a complete client is configured.
        """
        if self.connection.password:
            return None
        client_id, client_secret = self.extra.get("client_id"), self.extra.get("client_secret")
        if client_id and client_secret:
            mask_secret(str(client_secret))
            return str(client_id), str(client_secret)
        missing = "client_secret" if client_id else "client_id" if client_secret else None
        problem = (
            f"connection {self.conn_id!r} has an OAuth client without its {missing}"
            if missing
            else f"connection {self.conn_id!r} has no token (password) and no OAuth client_id/client_secret"
        )
        raise PrefineryInputError("password", problem, service=SERVICE)

    @cached_property
    def secret(self) -> str:
        """The credential to redact and fingerprint: the token, or the OAuth client's secret."""
        client = self.oauth_client
        if client is None:
            return super().secret
        return client[1]

    @cached_property
    def origin(self) -> str:
        return base_url(self.connection.host, self.connection.port, self.default_host, service=SERVICE)

    @cached_property
    def token_client(self) -> RestClient:
        """A client on the origin (no API prefix, no auth) for the token exchange only."""
        return self.build_client(base_url=self.origin, error_parser=parse_piggy_error)

    def _exchange_token(self) -> tuple[str, float]:
        """Trade the client credentials for an access token: ``(access_token, expires_in)``."""
        client_id, client_secret = self.oauth_client or ("", "")
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        # Replaying an exchange only issues another token: safe to retry after any failure.
        answer = self.token_client.request("POST", TOKEN_PATH, data=form, replay_safe=True).data
        token = str(require(answer, "access_token"))
        ttl = answer.get("expires_in") if isinstance(answer, Mapping) else None
        self.log.info("Piggy: obtained an OAuth access token for client %r", client_id)
        return token, float(ttl) if ttl is not None else DEFAULT_TOKEN_TTL

    def _remember_token(self, token: str) -> None:
        mask_secret(token)
        self.client.secrets = (*self.client.secrets, token)

    @property
    def client(self) -> RestClient:
        """The REST client, built once per hook even when several threads ask at once (so they share
        one OAuth token cache and one connection pool)."""
        with self._build_lock:
            if self._client is None:
                if self.oauth_client is not None:
                    self._oauth = ClientCredentialsAuth(self._exchange_token, on_token=self._remember_token)
                auth = self._oauth if self._oauth is not None else BearerAuth(self.secret)
                self._client = self.build_client(auth=auth, error_parser=parse_piggy_error)
            return self._client

    @property
    def oauth(self) -> ClientCredentialsAuth | None:
        """The OAuth token cache of this hook, or None when a token is configured."""
        self.client  # noqa: B018 - built with the client
        return self._oauth

    def close(self) -> None:
        with self._build_lock:
            for client in (self._client, self.__dict__.get("token_client")):
                if client is not None:
                    client.close()
            self._client = None

    @property
    def stats(self) -> dict[str, int]:
        """Requests and retries this hook made (token exchanges included), and the token exchanges."""
        stats = dict(self.client.stats)
        if "token_client" in self.__dict__:
            for key, value in self.token_client.stats.items():
                stats[key] += value
        stats["token_exchanges"] = self.oauth.exchanges if self.oauth is not None else 0
        return stats

    def call(self, action: str, *, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """Send one row of the endpoint table and return the answer's ``data``."""
        endpoint = ENDPOINTS[action]
        response = self.client.request(
            endpoint.method, endpoint.path, params=params, json=body, replay_safe=endpoint.replay_safe
        )
        return _data(response.data)

    # ------------------------------------------------------------------ automations
    def list_automations(self) -> Iterator[dict[str, Any]]:
        """List every automation (``uuid, event, name, status, ...``), lazily.

        Only those whose ``event`` is ``contact_updated`` can be started through the API.

        :return: a lazy iterator of automation objects.
        """
        endpoint = ENDPOINTS["list_automations"]
        return self.client.paginate(
            endpoint.path, params={"limit": PAGE_LIMIT}, next_params=next_piggy_page, items=_data
        )

    def resolve_automation(self, *, name: str | None = None, uuid: str | None = None) -> dict[str, Any]:
        """Return the startable automation with this exact name (or UUID): one listing.

        :raises PrefineryNotFoundError: no automation has this name (or UUID).
        :raises PrefineryInputError: its event is not ``contact_updated`` (the error names the event),
            several automations share the name, or not exactly one of ``name``/``uuid`` was given.
        """
        automation = pick_automation(list(self.list_automations()), name=name, uuid=uuid)
        if automation is None:
            what = f"named {name!r}" if name is not None else f"with UUID {uuid}"
            raise PrefineryNotFoundError(f"no automation {what}", service=SERVICE, code=MODEL_NOT_FOUND)
        return automation

    # ------------------------------------------------------------------ contacts
    def find_contact(self, email: str) -> dict[str, Any] | None:
        """Return the contact with this e-mail, or None when Piggy has none (code 55031).

        :param email: the contact's e-mail address.
        :return: the contact object (``uuid``, ``email``, ...) or None.
        """
        checked = _piggy_input(v.email, "email", email)
        try:
            return self.call("find_contact", params={"email": checked})
        except PrefineryNotFoundError as err:
            if str(err.code) == str(CONTACT_NOT_FOUND):
                return None
            raise

    def find_or_create_contact(self, email: str) -> dict[str, Any]:
        """Return the contact with this e-mail, creating it when missing. Safe to repeat.

        :param email: the contact's e-mail address.
        :return: the contact object (``uuid``, ``email``, ...).
        """
        checked = _piggy_input(v.email, "email", email)
        return self.call("find_or_create_contact", params={"email": checked})

    # ------------------------------------------------------------------ runs
    def create_automation_run(
        self, contact_uuid: str, automation_uuid: str, data: Mapping[str, Any] | None = None
    ) -> Any:
        """Start one run of an automation for one contact.

        Not idempotent: each call starts another run (another e-mail, credit or gift card), and Piggy has
        no idempotency key, so an attempt whose outcome is unknown (read timeout, 500 after sending) is
        reported with ``outcome_unknown`` and never replayed. 429 and 503 (maintenance) are retried: Piggy
        refused those before acting.

        :param contact_uuid: the contact's UUID.
        :param automation_uuid: the automation's UUID; its event must be ``contact_updated``.
        :param data: optional key-value pairs the automation can use.
        :return: the answer's ``data`` (Piggy documents an empty list).
        :raises PrefineryValidationError: code 1003 (with the field messages), or Piggy refused the run.
        :raises PrefineryNotFoundError: code 55031 (contact) or 60013 (automation).
        """
        body: dict[str, Any] = {
            "contact_uuid": check_uuid("contact_uuid", contact_uuid),
            "automation_uuid": check_uuid("automation_uuid", automation_uuid),
        }
        run_data = check_run_data(data)
        if run_data is not None:
            body["data"] = run_data
        return self.call("create_automation_run", body=body)

    # ------------------------------------------------------------------ connection test
    def test_connection(self) -> tuple[bool, str]:
        """List the automations (exchanging the OAuth client first, if configured): Airflow's Test button.

        Uses :meth:`quick_copy`, so a wrong host answers in seconds.
        """
        try:
            quick = self.quick_copy()
            automations = list(quick.list_automations())
        except PrefineryError as err:
            return False, self.test_failure_message(err)
        startable = sum(1 for item in automations if is_startable(item))
        how = f"as OAuth client {self.oauth_client[0]!r}" if self.oauth_client else "with a token"
        return True, (
            f"Connected to Piggy {how}: {len(automations)} automation(s), {startable} with event "
            f"'{STARTABLE_EVENT}' (the only ones the API can start)"
        )
