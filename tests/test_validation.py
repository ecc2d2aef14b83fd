"""The input rules on their own (no HTTP): ids, integers, NaN and Infinity, sizes and nesting, rendered text.

Each rule raises a ``PrefineryInputError`` naming the field: never a bare ``ValueError``,
``RecursionError`` or ``AttributeError``, and never a value the wire would carry malformed.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_provider_prefinery import rendered
from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.hooks.piggy import check_run_data

ADA = "ada@example.org"


@pytest.mark.parametrize(
    "value", ["", "   ", " 12", "12 ", "12\n", "\t12", "-", "-12", "+12", "²", "١٢", "12a", "1_000", "0x1f"]
)
def test_record_id_refuses_blank_padded_signed_and_non_ascii_digits(value: str) -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.record_id("user_id", value)

    assert info.value.field == "user_id"


@pytest.mark.parametrize(
    "value",
    ["1" * 5000, 10**5000, "9" * 20, 2**63],
    ids=["5000-digit-text", "5000-digit-int", "20-digits", "2**63"],
)
def test_record_id_refuses_ids_beyond_64_bits_with_a_readable_message(value: Any) -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.record_id("reward_id", value)

    assert info.value.field == "reward_id"
    assert len(str(info.value)) < 300  # the 5,000 digits are not repeated back


@pytest.mark.parametrize(("value", "expected"), [(12, 12), ("12", 12), ("0012", 12), (2**63 - 1, 2**63 - 1)])
def test_record_id_returns_the_integer_that_goes_into_the_path(value: Any, expected: int) -> None:
    assert v.record_id("user_id", value) == expected
    assert type(v.record_id("user_id", value)) is int


@pytest.mark.parametrize("value", ["²", "٣", " 5", 10**30, 2**31])
def test_a_quantity_is_ascii_digits_within_a_32_bit_integer(value: Any) -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.check_create_points(ADA, value)

    assert info.value.field == "quantity"


def test_the_largest_quantity_is_accepted() -> None:
    assert v.check_create_points(ADA, 2**31 - 1)["quantity"] == 2**31 - 1


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinity_in_a_profile_name_the_profile_field(number: float) -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.check_create_user(ADA, profile={"first_name": "Ada", "custom_var1": number})

    assert info.value.field == "profile.custom_var1"


@pytest.mark.parametrize("number", [math.nan, math.inf], ids=["nan", "inf"])
def test_nan_and_infinity_in_responses_and_piggy_data_are_refused(number: float) -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.check_update_user(5001, responses=[{"question_id": 1, "answer": number}])
    assert info.value.field == "responses"

    with pytest.raises(PrefineryInputError) as info:
        check_run_data({"amount": number})
    assert info.value.field == "data"


def test_responses_nested_deeper_than_json_can_carry_are_refused() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]

    with pytest.raises(PrefineryInputError) as info:
        v.check_update_user(5001, responses=[{"question_id": 1, "answer": deep}])

    assert info.value.field == "responses"


@pytest.mark.parametrize("text", ["[" * 100_000, "{" * 100_000, "[" * 50_000 + "]" * 50_000])
def test_records_rendered_to_text_nested_beyond_any_parser_are_an_input_error(text: str) -> None:
    with pytest.raises(PrefineryInputError) as info:
        rendered.records_list(text)

    assert info.value.field == "records"


@pytest.mark.parametrize(
    ("field", "value"), [("name", {"a": 1}), ("name", 5), ("name", "  "), ("name", "x" * 256)]
)
def test_a_text_filter_is_a_non_blank_string(field: str, value: Any) -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.optional_text(field, value)

    assert info.value.field == field


def test_a_huge_integer_is_shown_by_its_size() -> None:
    with pytest.raises(PrefineryInputError) as info:
        v.positive_int("count", 10**10000)

    assert "about 10,001 digits" in str(info.value)
