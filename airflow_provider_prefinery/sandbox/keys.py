"""The API keys a sandbox accepts, shared by the three APIs: each belongs to one account, with its grants.

Only Prefinery grants permissions per key and refuses plans without API access; Mailchimp and Piggy just
need a known key (Piggy also takes the access tokens it issues, see ``piggy.state``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox import seeds

PERMISSIONS: frozenset[str] = frozenset(
    {
        "projects:read",
        "projects:delete",
        "users:create",
        "users:read",
        "users:update",
        "users:delete",
        "rewards:create",
        "rewards:read",
        "rewards:update",
        "suppressions:create",
        "suppressions:read",
        "suppressions:delete",
        "friend_invitations:create",
        "points:create",
        "points:read",
    }
)
"""Prefinery's key permissions; each route of ``prefinery.routes`` names the one it needs."""


@dataclass
class KeyInfo:
    """What a key may do: its account, its permissions (None = all) and whether the plan has API access."""

    account: str = seeds.DEFAULT_ACCOUNT
    permissions: frozenset[str] | None = None
    api_access: bool = True


class Keys:
    """The accepted keys: the start-up ones with every grant, plus those the control API sets."""

    def __init__(self, defaults: Sequence[str] = (seeds.DEFAULT_API_KEY,)) -> None:
        self.defaults = tuple(defaults) or (seeds.DEFAULT_API_KEY,)
        self.reset()

    def reset(self) -> None:
        self._keys: dict[str, KeyInfo] = {key: KeyInfo() for key in self.defaults}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: str | None) -> KeyInfo | None:
        return self._keys.get(key or "")

    def info(self, key: str | None) -> KeyInfo:
        """The key's grants; a missing or unknown key is 401."""
        info = self.get(key)
        if info is None:
            raise e.Unauthorized()
        return info

    def authorize(self, key: str | None, permission: str | None) -> KeyInfo:
        """401 unknown key, 402 plan without API access, 403 key without ``permission``."""
        info = self.info(key)
        if not info.api_access:
            raise e.PaymentRequired()
        if permission and info.permissions is not None and permission not in info.permissions:
            raise e.Forbidden(f"the API key lacks the '{permission}' permission")
        return info

    def set(
        self,
        key: str,
        *,
        permissions: Iterable[str] | None = None,
        api_access: bool = True,
        account: str = seeds.DEFAULT_ACCOUNT,
    ) -> KeyInfo:
        """Add or change a key. ``permissions`` None grants all; unknown names are refused."""
        grants = None if permissions is None else frozenset(permissions)
        unknown = sorted((grants or frozenset()) - PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions {unknown}; known: {sorted(PERMISSIONS)}")
        self._keys[key] = KeyInfo(account=account, permissions=grants, api_access=api_access)
        return self._keys[key]
