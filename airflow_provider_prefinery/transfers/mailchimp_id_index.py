"""The id index: per e-mail fingerprint, the Prefinery user id and a digest of what Prefinery holds.

Finding a member's Prefinery user id (the design)
-------------------------------------------------
Prefinery can only update a user by id, and the one way to find an id by e-mail is LIST users, limited to
60 per minute per project. One LIST per changed member would cap a sync at one member per second. So:

* **Create first.** A member the sync has never seen is created with one POST. If the e-mail already
  exists Prefinery answers 2310; only then does the sync spend one LIST to fetch the id (and updates).
* **An id index.** Per e-mail, the user id and a 32-bit digest of what Prefinery holds for the fields
  the sync owns (the mapped profile fields, or "suppressed"). A changed member costs one write (POST or
  PUT); a member whose desired state has the digest Prefinery already holds costs no request at all.
  Keys are 64-bit fingerprints of the lower-cased e-mail, so no address is stored in Airflow.
* **Where it lives: an Airflow Variable** (``prefinery_id_index_<beta_id>`` by default). Every worker of
  every executor reaches Variables through Airflow itself (the Task SDK's API on Airflow 3), it outlives
  runs (XCom is scoped to one run and is purged by ``airflow db clean``; reading the previous run's XCom
  breaks on the first run after a clear), several DAGs writing one project can share it, and an operator
  can delete it in the UI to force a rebuild. It is stored compactly: three sorted arrays (8 + 8 + 4
  bytes per user), zlib-compressed and base64-encoded, about 2 MB for 100,000 users, well inside the
  Variable column (TEXT on PostgreSQL and SQLite, MEDIUMTEXT = 16 MB on MySQL). Each run merges only
  its own changes into the value read back just before saving, so concurrent runs do not erase each other.
* **Rebuilt by one paged listing** of users and suppressions when missing, unreadable, built for another
  host or project, or older than ``index_max_age`` (default 7 days, to pick up edits made in Prefinery
  by hand). That costs ``users / 25`` LIST calls (about 1,500 users a minute at the documented limit),
  once. For very large projects ``index_rebuild="lazy"`` skips the listing and learns ids as members
  change (create-first, then one LIST per member that turns out to exist).

Every shortcut is checked by the API itself: a stale entry costs a fallback, never a wrong write (an
update of a deleted user answers 404 and the member is created; a create of an existing user answers 2310
and the user is looked up).
"""

from __future__ import annotations

import base64
import json
import sys
import time
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any, Protocol

from airflow_provider_prefinery.transfers.mailchimp_rules import (
    SUPPRESSED_DIGEST,
    SyncRules,
    email_key,
    user_digest,
)

INDEX_FORMAT = 1


class IdIndex:
    """E-mail fingerprint -> (Prefinery user id, state digest), compact and serialisable.

    The stored part is three sorted arrays (8 + 8 + 4 bytes per e-mail; about 1.5 MB zlib-compressed for
    100,000 users) searched by bisection; this run's writes sit in a small dict on top, and only they are
    merged into the stored copy at the end (so two runs writing at once lose nothing but their race).
    ``user_id`` 0 means "no user known" (e.g. only a suppression).
    """

    def __init__(
        self,
        keys: array | None = None,
        ids: array | None = None,
        digests: array | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self._keys = keys if keys is not None else array("Q")
        self._ids = ids if ids is not None else array("Q")
        self._digests = digests if digests is not None else array("I")
        self.changes: dict[int, tuple[int, int]] = {}
        self.meta: dict[str, Any] = dict(meta or {})

    # ---- reading and writing entries ----
    def get(self, key: int) -> tuple[int, int] | None:
        """Return ``(user_id, digest)`` for an e-mail fingerprint, or None."""
        if key in self.changes:
            return self.changes[key]
        pos = bisect_left(self._keys, key)
        if pos < len(self._keys) and self._keys[pos] == key:
            return self._ids[pos], self._digests[pos]
        return None

    def set(self, key: int, user_id: int | None, digest: int) -> None:
        """Record what Prefinery now holds for an e-mail; keeps a known user id when given none."""
        if not user_id:
            known = self.get(key)
            user_id = known[0] if known else 0
        self.changes[key] = (int(user_id), digest)

    def __len__(self) -> int:
        extra = sum(1 for key in self.changes if self._base_get(key) is None)
        return len(self._keys) + extra

    def _base_get(self, key: int) -> int | None:
        pos = bisect_left(self._keys, key)
        return pos if pos < len(self._keys) and self._keys[pos] == key else None

    # ---- building ----
    @classmethod
    def from_entries(
        cls, entries: Iterable[tuple[int, int, int]], meta: Mapping[str, Any] | None = None
    ) -> IdIndex:
        """Build an index from ``(key, user_id, digest)`` rows; a later row for a key wins."""
        latest: dict[int, tuple[int, int]] = {}
        for key, user_id, digest in entries:
            latest[key] = (user_id, digest)
        keys = array("Q", sorted(latest))
        ids = array("Q", (latest[k][0] for k in keys))
        digests = array("I", (latest[k][1] for k in keys))
        return cls(keys, ids, digests, meta)

    def merged(self, base: IdIndex | None = None) -> IdIndex:
        """Apply this run's changes on top of ``base`` (default: this index's own stored part)."""
        base = base if base is not None else self
        rows = list(zip(base._keys, base._ids, base._digests, strict=True))
        rows.extend((key, uid, dig) for key, (uid, dig) in self.changes.items())
        meta = {**base.meta, **self.meta}
        return IdIndex.from_entries(rows, meta)

    def for_saving(self, stored: IdIndex | None) -> IdIndex:
        """What to store: this run's changes on top of the ``stored`` copy read back just now.

        A freshly rebuilt index replaces what is stored; a stored copy of another scope (host and project)
        is dropped rather than merged.
        """
        fresh = bool(self.meta.get("rebuilt_now"))
        if stored is None or fresh or stored.meta.get("scope") != self.meta.get("scope"):
            stored = None
        merged = self.merged(stored)
        merged.meta.pop("rebuilt_now", None)
        return merged

    # ---- storage ----
    def encode(self) -> str:
        """Serialise (with this run's changes folded in) to one compact JSON string."""
        full = self.merged() if self.changes else self
        blob = b"".join(_le(a).tobytes() for a in (full._keys, full._ids, full._digests))
        payload = {
            "format": INDEX_FORMAT,
            "count": len(full._keys),
            "meta": full.meta,
            "data": base64.b64encode(zlib.compress(blob, 6)).decode("ascii"),
        }
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> IdIndex | None:
        """Read :meth:`encode`'s output; None when it is unreadable or of another format (then rebuild)."""
        try:
            payload = json.loads(text)
            if payload.get("format") != INDEX_FORMAT:
                return None
            count = int(payload["count"])
            blob = zlib.decompress(base64.b64decode(payload["data"]))
        except (ValueError, KeyError, TypeError, AttributeError, zlib.error):
            return None
        if len(blob) != count * 20:
            return None
        keys, ids, digests = array("Q"), array("Q"), array("I")
        keys.frombytes(blob[: 8 * count])
        ids.frombytes(blob[8 * count : 16 * count])
        digests.frombytes(blob[16 * count :])
        return cls(_le(keys), _le(ids), _le(digests), payload.get("meta") or {})


def _le(values: array) -> array:
    """Arrays are stored little-endian whatever the machine (byteswap is its own inverse)."""
    if sys.byteorder == "little":
        return values
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped


def index_rows_from_prefinery(
    users: Iterable[Mapping[str, Any]], suppressions: Iterable[Mapping[str, Any]], rules: SyncRules
) -> Iterator[tuple[int, int, int]]:
    """Turn a full listing of users, then suppressions, into index rows (suppressions win)."""
    known: dict[int, int] = {}
    for user in users:
        email = user.get("email")
        if isinstance(email, str) and email:
            key = email_key(email)
            known[key] = int(user.get("id") or 0)
            yield key, known[key], user_digest(rules.owned_profile(user.get("profile")))
    for item in suppressions:
        email = item.get("email")
        if isinstance(email, str) and email:
            key = email_key(email)
            yield key, known.get(key) or int(item.get("user_id") or 0), SUPPRESSED_DIGEST


def stale_reason(index: IdIndex | None, scope: str, max_age: timedelta | None) -> str | None:
    """Why ``index`` must be rebuilt before use (missing, another scope, never listed, too old), or None."""
    if index is None:
        return "missing"
    if index.meta.get("scope") != scope:
        return "built for another Prefinery host or project"
    built = index.meta.get("built_at")
    if not built:
        return "never fully listed"
    age = time.time() - float(built)
    if max_age is not None and age > max_age.total_seconds():
        return f"older than index_max_age ({age / 86400:.1f} days)"
    return None


# --------------------------------------------------------------------------------------------------
# Where the index is kept
# --------------------------------------------------------------------------------------------------
class IndexStore(Protocol):
    """Load and save an :class:`IdIndex` somewhere every worker can reach."""

    @property
    def name(self) -> str | None:
        """What to call the store in logs and reports (None: kept nowhere)."""
        ...

    def load(self) -> IdIndex | None: ...

    def save(self, index: IdIndex) -> None: ...


class VariableIndexStore:
    """The id index in one Airflow Variable (see the module docstring for why a Variable)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self) -> IdIndex | None:
        from airflow.providers.common.compat.sdk import Variable

        text = Variable.get(self.name, None)  # positional: "default" on Airflow 3, "default_var" on 2
        return IdIndex.decode(text) if text else None

    def save(self, index: IdIndex) -> None:
        """Merge this run's changes into the value stored now (another run may have saved meanwhile)."""
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(
            self.name,
            index.for_saving(self.load()).encode(),
            description="Prefinery user ids by e-mail fingerprint, kept by MailchimpToPrefineryOperator. "
            "Delete it to force a rebuild.",
        )


class MemoryIndexStore:
    """No persistence: the index lives for one run (``index_variable=None``)."""

    name = None

    def load(self) -> IdIndex | None:
        return None

    def save(self, index: IdIndex) -> None:
        return None
