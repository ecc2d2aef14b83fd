"""Secret redaction on its own: the encoded forms of a key, masked in text and in parsed JSON."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_prefinery.hooks.redaction import MASK, Redactor, secret_forms

KEY = "pk_live_SECRET+7f3a/9c1d2e=="


@pytest.mark.parametrize("prefix", ["", "a", "ab", "airflow:", "user:"])
@pytest.mark.parametrize("suffix", ["", "z", "zz"])
def test_the_key_is_masked_in_base64_at_any_offset(prefix: str, suffix: str) -> None:
    """Base64 encodes 3 bytes as 4 characters: the key's encoding depends on what precedes it (Basic auth
    puts ``user:`` first) and what follows; every alignment is caught."""
    raw = (prefix + KEY + suffix).encode()
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        masked = Redactor([KEY]).text(f"Authorization: Basic {encoded}")
        assert MASK in masked
        assert base64.b64encode(KEY.encode()).decode()[4:16] not in masked


@pytest.mark.parametrize("form", [quote(KEY, safe=""), quote_plus(KEY), repr(KEY + "\n")[1:-1]])
def test_the_key_is_masked_url_encoded_and_repr_escaped(form: str) -> None:
    assert Redactor([KEY]).text(f"echo {form} end").startswith(f"echo {MASK}")


def test_json_values_are_masked_recursively_keys_included() -> None:
    body = {"errors": [{"message": f"bad {KEY}"}], KEY: {"nested": [[quote(KEY, safe="")]]}, "n": 1}

    assert Redactor([KEY]).value(body) == {
        "errors": [{"message": f"bad {MASK}"}],
        MASK: {"nested": [[MASK]]},
        "n": 1,
    }


def test_json_deeper_than_the_limit_is_replaced_not_walked() -> None:
    deep: object = KEY
    for _ in range(100):
        deep = [deep]

    masked = repr(Redactor([KEY]).value(deep))

    assert KEY not in masked and "nested deeper than" in masked


def test_short_base64_fragments_of_a_short_secret_are_not_masked() -> None:
    """A 5-character secret has no base64 core long enough to mask without hitting innocent text."""
    assert all(len(f) >= 5 for f in secret_forms("abcde"))
    assert secret_forms("") == ()
