"""All state of one sandbox process: the database and keys the three APIs share, and each API's state.

``Store`` is what the CLI builds and the app serves: ``store.prefinery``, ``store.mailchimp`` and
``store.piggy`` hold each emulated API's rules (``<api>.state``), over one :class:`~db.Database` (every
write passes through it, see ``db.py``) and one set of :class:`~keys.Keys`. ``reset(seed)`` restores a
snapshot taken right after seeding, so resetting between tests costs milliseconds. No web framework here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.db import Database, Tables
from airflow_provider_prefinery.sandbox.keys import Keys
from airflow_provider_prefinery.sandbox.mailchimp.state import MailchimpState
from airflow_provider_prefinery.sandbox.piggy.state import PiggyState
from airflow_provider_prefinery.sandbox.prefinery.state import PrefineryState


class ServiceState(Protocol):
    """What the store asks of each API's state: its tables, and to forget what it keeps in memory."""

    TABLES: Tables

    def reset(self) -> None: ...


class Store:
    """The sandbox's state. ``db_path`` None keeps it in memory; ``keep_existing`` keeps a file's data."""

    def __init__(
        self,
        db_path: str | None = None,
        api_keys: Sequence[str] = (seeds.DEFAULT_API_KEY,),
        seed: str = "demo",
        *,
        keep_existing: bool = False,
    ) -> None:
        self.db = Database(db_path, [PrefineryState.TABLES, MailchimpState.TABLES, PiggyState.TABLES])
        self.keys = Keys(api_keys)
        self.prefinery = PrefineryState(self.db)
        self.mailchimp = MailchimpState(self.db)
        self.piggy = PiggyState(self.db, self.keys)
        self.services: dict[str, ServiceState] = {
            "prefinery": self.prefinery,
            "mailchimp": self.mailchimp,
            "piggy": self.piggy,
        }
        self.seed_name = seed
        if keep_existing and self.db.has_tables():
            self._forget()
        else:
            self.reset(seed)

    def reset(self, seed: str = "demo") -> None:
        """Forget everything and load ``seed``: tables from a snapshot, keys and memory to defaults."""
        self.db.restore(seed)
        self.seed_name = seed
        self._forget()

    def _forget(self) -> None:
        self.keys.reset()
        for service in self.services.values():
            service.reset()

    def resources(self) -> dict[str, Callable[[], list[dict[str, Any]]]]:
        """What the control API can show: every service's tables, and Piggy's token exchanges (in memory)."""
        found: dict[str, Callable[[], list[dict[str, Any]]]] = {
            name: partial(self.db.rows, sql)
            for service in self.services.values()
            for name, sql in service.TABLES.dumps.items()
        }
        found["token_exchanges"] = lambda: list(self.piggy.token_exchanges)
        return found

    def dump(self, resource: str, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of ``resource`` (control API), optionally filtered by equal column values."""
        resources = self.resources()
        if resource not in resources:
            raise ValueError(f"unknown resource {resource!r}; known: {sorted(resources)}")
        rows = resources[resource]()
        for name, value in (filters or {}).items():
            rows = [r for r in rows if str(r.get(name)).lower() == str(value).lower()]
        return rows
