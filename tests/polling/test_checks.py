"""The sensors' argument rules, shared by the DAG-parse-time check, poke() and the trigger: no server."""

from __future__ import annotations

import pytest

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.polling.checks import CHECKS, get_check, is_literal


def test_rendered_strings_are_normalised_to_the_types_the_checks_take() -> None:
    assert CHECKS["rewards"].validate({"status": "earned", "min_count": "2"}) == {
        "status": "earned",
        "min_count": 2,
    }
    assert CHECKS["suppression"].validate({"email": "a@example.com", "suppressed": "false"}) == {
        "email": "a@example.com",
        "suppressed": False,
    }
    assert CHECKS["user"].validate({"email": "a@example.com", "status": ["active", "invited"]}) == {
        "email": "a@example.com",
        "status": frozenset({"active", "invited"}),
    }


def test_the_parse_time_check_skips_templates_but_the_run_time_check_does_not() -> None:
    criteria = {"email": "{{ params.email }}", "min_count": 0}
    with pytest.raises(PrefineryInputError, match="min_count"):
        CHECKS["rewards"].validate(criteria, literal_only=True)
    assert CHECKS["rewards"].validate({"email": "{{ params.email }}"}, literal_only=True) == {}
    with pytest.raises(PrefineryInputError, match="email"):
        CHECKS["rewards"].validate({"email": "{{ params.email }}"})


def test_an_argument_the_check_does_not_take_is_refused_naming_the_ones_it_does() -> None:
    with pytest.raises(PrefineryInputError, match=r"descriptor.*allowed: email, suppressed"):
        CHECKS["suppression"].validate({"email": "a@example.com", "descriptor": "gift"})


def test_an_unknown_check_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(PrefineryInputError, match=r"allowed: rewards, suppression, user"):
        get_check("users")


@pytest.mark.parametrize(
    ("value", "known"),
    [("a@example.com", True), ("{{ ds }}", False), ("{% if x %}", False), (["a", "{{ b }}"], False),
     (3, True), (None, True), (object(), False)],
)  # fmt: skip
def test_only_values_known_at_parse_time_count_as_literal(value: object, known: bool) -> None:
    assert is_literal(value) is known
