"""The pure planner, case by case: each status, case-only e-mail differences, merge fields, duplicates,
the window, and the id index (lookups, storage, merging). No I/O."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.transfers.mailchimp_id_index import IdIndex, index_rows_from_prefinery
from airflow_provider_prefinery.transfers.mailchimp_plan import Planner, collapse
from airflow_provider_prefinery.transfers.mailchimp_rules import (
    SUPPRESSED_DIGEST,
    SyncRules,
    email_key,
    user_digest,
)

T0 = "2025-03-01T10:00:00+00:00"
T1 = "2025-03-01T10:30:00+00:00"


def member(email: str, status: str = "subscribed", changed: str = T0, **merge: Any) -> dict[str, Any]:
    fields = {"FNAME": "Ada", "LNAME": "Lovelace", **merge}
    return {"email_address": email, "status": status, "merge_fields": fields, "last_changed": changed}


def plan(members: list[dict[str, Any]], index: IdIndex | None = None, **rules: Any) -> list[Any]:
    return list(Planner(SyncRules(**rules), index or IdIndex()).plan(members))


def known(email: str, user_id: int, digest: int) -> IdIndex:
    return IdIndex.from_entries([(email_key(email), user_id, digest)])


ADA = {"first_name": "Ada", "last_name": "Lovelace"}


# ---- statuses ----------------------------------------------------------------------------------------
def test_new_subscribed_member_is_created_with_its_mapped_profile() -> None:
    [action] = plan([member("ada@example.com")])
    assert action.kind == "create"
    assert action.profile == ADA
    assert action.user_id is None


def test_known_subscribed_member_with_a_changed_profile_is_updated_by_id() -> None:
    index = known("ada@example.com", 77, user_digest({"first_name": "Old", "last_name": "Lovelace"}))
    [action] = plan([member("ada@example.com")], index)
    assert (action.kind, action.user_id, action.profile) == ("update", 77, ADA)


def test_known_subscribed_member_already_matching_needs_nothing() -> None:
    [action] = plan([member("ada@example.com")], known("ada@example.com", 77, user_digest(ADA)))
    assert action.kind == "unchanged"


def test_unsubscribed_member_becomes_an_unsubscribe_suppression() -> None:
    [action] = plan([member("bo@example.com", "unsubscribed")])
    assert (action.kind, action.reason) == ("suppress", "Unsubscribe")


def test_cleaned_member_becomes_a_manual_suppression() -> None:
    [action] = plan([member("bo@example.com", "cleaned")])
    assert (action.kind, action.reason) == ("suppress", "Manual")


def test_already_suppressed_member_needs_nothing_whatever_the_reason() -> None:
    index = known("bo@example.com", 0, SUPPRESSED_DIGEST)
    assert [a.kind for a in plan([member("bo@example.com", "cleaned")], index)] == ["unchanged"]
    assert [a.kind for a in plan([member("bo@example.com", "unsubscribed")], index)] == ["unchanged"]


def test_suppression_keeps_the_known_user_id() -> None:
    [action] = plan(
        [member("ada@example.com", "unsubscribed")], known("ada@example.com", 77, user_digest(ADA))
    )
    assert (action.kind, action.user_id) == ("suppress", 77)


def test_resubscribed_member_updates_the_user_behind_its_suppression() -> None:
    [action] = plan([member("ada@example.com")], known("ada@example.com", 77, SUPPRESSED_DIGEST))
    assert (action.kind, action.user_id) == ("update", 77)


def test_suppressed_email_without_a_user_is_created_when_it_subscribes() -> None:
    [action] = plan([member("ada@example.com")], known("ada@example.com", 0, SUPPRESSED_DIGEST))
    assert action.kind == "create"


@pytest.mark.parametrize("status", ["pending", "transactional", "archived"])
def test_pending_transactional_and_archived_members_change_nothing(status: str) -> None:
    [action] = plan([member("ada@example.com", status)])
    assert action.kind == "skip"
    assert status in action.reason


def test_unknown_status_is_skipped_with_its_name() -> None:
    [action] = plan([member("ada@example.com", "frozen")])
    assert action.kind == "skip"
    assert action.reason == "unknown status: frozen"


def test_mapping_is_configurable_per_status() -> None:
    actions = {
        "subscribed": "user",
        "unsubscribed": None,
        "cleaned": "suppression:Unsubscribe",
        "pending": "user",
    }
    kinds = [
        (a.kind, a.reason)
        for a in plan(
            [
                member("a@example.com", "unsubscribed"),
                member("b@example.com", "cleaned"),
                member("c@example.com", "pending"),
            ],
            status_actions=actions,
        )
    ]
    assert kinds == [
        ("skip", "status maps to no change: unsubscribed"),
        ("suppress", "Unsubscribe"),
        ("create", None),
    ]


def test_bad_mapping_is_refused_naming_the_status_and_the_choices() -> None:
    with pytest.raises(PrefineryInputError, match=r"status_actions\['subscribed'\].*allowed: user"):
        SyncRules(status_actions={"subscribed": "invite"})
    with pytest.raises(PrefineryInputError, match="merge_fields"):
        SyncRules(merge_fields={"FNAME": "favourite_colour"})
    with pytest.raises(PrefineryInputError, match="same profile field"):
        SyncRules(merge_fields={"FNAME": "first_name", "NICK": "first_name"})


# ---- e-mails -----------------------------------------------------------------------------------------
def test_emails_differing_only_in_case_are_the_same_person() -> None:
    index = known("ada@example.com", 77, user_digest(ADA))
    [action] = plan([member("ADA@Example.COM")], index)
    assert action.kind == "unchanged"
    assert email_key("ADA@Example.COM") == email_key(" ada@example.com ")


def test_email_prefinery_would_refuse_is_reported_invalid_not_dropped() -> None:
    [action] = plan([member("zoë@example.com")])
    assert action.kind == "invalid"
    assert "ASCII" in action.reason


def test_member_without_email_is_reported_invalid() -> None:
    [action] = plan([{"status": "subscribed", "last_changed": T0}])
    assert (action.kind, action.reason) == ("invalid", "member has no email_address")


# ---- merge fields ------------------------------------------------------------------------------------
def test_default_merge_fields_are_first_and_last_name_only() -> None:
    [action] = plan([member("ada@example.com", PHONE="555")])
    assert action.profile == ADA


def test_custom_merge_fields_read_nested_values_and_blank_missing_ones() -> None:
    merge = {"FNAME": "first_name", "ADDRESS.city": "city", "COMPANY": "employer"}
    [action] = plan([member("ada@example.com", ADDRESS={"city": "London"})], merge_fields=merge)
    assert action.profile == {"first_name": "Ada", "city": "London", "employer": ""}


def test_profile_digest_ignores_fields_the_sync_does_not_own() -> None:
    rules = SyncRules()
    prefinery_profile = {"first_name": "Ada", "last_name": "Lovelace", "country": "GB", "custom_var1": "x"}
    assert user_digest(rules.owned_profile(prefinery_profile)) == user_digest(
        rules.profile(member("a@b.co")["merge_fields"])
    )


def test_null_and_missing_values_compare_equal_to_empty_text() -> None:
    rules = SyncRules()
    assert rules.owned_profile({"first_name": None}) == rules.profile({"FNAME": "", "LNAME": None})


# ---- duplicates and the window -----------------------------------------------------------------------
def test_duplicate_with_an_older_or_equal_last_changed_is_dropped() -> None:
    planner = Planner(SyncRules(), IdIndex())
    actions = list(planner.plan([member("ada@example.com", changed=T1), member("ADA@example.com", changed=T0),
                                 member("ada@example.com", changed=T1)]))  # fmt: skip
    assert [a.last_changed for a in actions] == [T1]
    assert planner.stats.duplicates == 2


def test_newer_duplicate_supersedes_and_the_effective_plan_keeps_the_latest() -> None:
    actions = plan(
        [member("ada@example.com", changed=T0, FNAME="Old"), member("Ada@example.com", changed=T1)]
    )
    assert [a.supersedes for a in actions] == [False, True]
    [final] = collapse(actions)
    assert (final.last_changed, final.profile["first_name"]) == (T1, "Ada")


def test_window_is_half_open_since_inclusive_before_exclusive() -> None:
    since = datetime(2025, 3, 1, 10, tzinfo=timezone.utc)
    before = datetime(2025, 3, 1, 11, tzinfo=timezone.utc)
    planner = Planner(SyncRules(), IdIndex(), since=since, before=before)
    stamps = {"a": "2025-03-01T09:59:59+00:00", "b": "2025-03-01T10:00:00Z", "c": "2025-03-01T10:59:59+00:00",
              "d": "2025-03-01T11:00:00+00:00"}  # fmt: skip
    edges = [member(f"{name}@example.com", changed=stamp) for name, stamp in stamps.items()]
    assert [a.email for a in planner.plan(edges)] == ["b@example.com", "c@example.com"]
    assert planner.stats.outside_window == 2


def test_planning_is_lazy() -> None:
    def endless():
        n = 0
        while True:
            n += 1
            yield member(f"user{n}@example.com")

    stream = Planner(SyncRules(), IdIndex()).plan(endless())
    assert [next(stream).email for _ in range(3)] == [
        "user1@example.com",
        "user2@example.com",
        "user3@example.com",
    ]


# ---- the id index ------------------------------------------------------------------------------------
def test_index_round_trips_through_its_compact_text_form() -> None:
    rows = [(email_key(f"u{i}@example.com"), 5000 + i, i * 7919) for i in range(1000)]
    index = IdIndex.from_entries(rows, {"scope": "s", "built_at": 1.5})
    text = index.encode()
    back = IdIndex.decode(text)
    assert back is not None and len(back) == 1000 and back.meta == {"scope": "s", "built_at": 1.5}
    assert back.get(email_key("u123@example.com")) == (5123, 123 * 7919)
    assert back.get(email_key("nobody@example.com")) is None
    assert "example.com" not in text  # fingerprints only: no address in Airflow's database
    assert len(text) < 1000 * 28


def test_unreadable_or_foreign_index_text_decodes_to_none() -> None:
    assert IdIndex.decode("not json") is None
    assert IdIndex.decode('{"format": 99, "count": 0, "data": ""}') is None
    assert IdIndex.decode('{"format": 1, "count": 5, "data": "eJwDAAAAAAE="}') is None


def test_run_changes_override_and_merge_into_the_stored_copy() -> None:
    a, b, c = (email_key(x) for x in ("a@x.io", "b@x.io", "c@x.io"))
    mine = IdIndex.from_entries([(a, 1, 10), (b, 2, 20)])
    mine.set(b, 22, 21)
    mine.set(c, 0, SUPPRESSED_DIGEST)
    assert mine.get(b) == (22, 21) and len(mine) == 3
    theirs = IdIndex.from_entries([(a, 1, 11), (c, 30, 31)])  # saved meanwhile by another run
    merged = mine.merged(theirs)
    assert merged.get(a) == (1, 11)  # theirs, untouched by this run
    assert merged.get(b) == (22, 21)
    assert merged.get(c) == (0, SUPPRESSED_DIGEST)


def test_setting_without_an_id_keeps_the_known_one() -> None:
    key = email_key("a@x.io")
    index = IdIndex.from_entries([(key, 9, 1)])
    index.set(key, None, SUPPRESSED_DIGEST)
    assert index.get(key) == (9, SUPPRESSED_DIGEST)


def test_index_rows_from_a_listing_give_users_their_digest_and_suppressions_win() -> None:
    users = [
        {"id": 5, "email": "Ada@Example.com", "profile": {**ADA, "country": "GB"}},
        {"id": 6, "email": "bo@x.io"},
    ]
    suppressions = [
        {"email": "bo@x.io", "user_id": None, "reason": "Manual"},
        {"email": "cy@x.io", "user_id": None},
    ]
    index = IdIndex.from_entries(index_rows_from_prefinery(users, suppressions, SyncRules()))
    assert index.get(email_key("ada@example.com")) == (5, user_digest(ADA))
    assert index.get(email_key("bo@x.io")) == (6, SUPPRESSED_DIGEST)
    assert index.get(email_key("cy@x.io")) == (0, SUPPRESSED_DIGEST)


def test_saving_merges_into_the_stored_copy_unless_rebuilt_or_of_another_project() -> None:
    a, b = email_key("a@x.io"), email_key("b@x.io")
    stored = IdIndex.from_entries([(a, 1, 10)], {"scope": "p1", "built_at": 1.0})
    mine = IdIndex(meta={"scope": "p1", "built_at": 1.0})
    mine.set(b, 2, 20)
    kept = mine.for_saving(stored)
    assert (kept.get(a), kept.get(b)) == ((1, 10), (2, 20))
    other_project = IdIndex.from_entries([(a, 1, 10)], {"scope": "p2"})
    assert mine.for_saving(other_project).get(a) is None
    rebuilt = IdIndex.from_entries([(b, 2, 20)], {"scope": "p1", "built_at": 2.0, "rebuilt_now": True})
    saved = rebuilt.for_saving(stored)
    assert saved.get(a) is None and saved.get(b) == (2, 20)
    assert saved.meta == {"scope": "p1", "built_at": 2.0}
