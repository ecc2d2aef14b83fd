"""Undo what a non-native Jinja template does to an operator argument: it renders every value as text.

A templated ``profile={...}`` arrives as ``"{'first_name': 'Ada'}"`` and ``records="{{ ti.xcom_pull(...) }}"``
as the text of a list, unless the DAG sets ``render_template_as_native_obj=True``. These functions turn such
text back into the value it shows, and refuse text that shows nothing (``""``, ``"None"``: typically an
``xcom_pull`` of a task id that does not exist), naming the argument. Booleans: ``validation.bool_from_text``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_prefinery.exceptions import PrefineryInputError

# What a template renders to when it found nothing (``xcom_pull`` of a misspelled task id): never a list.
RENDERED_NOTHING = ("", "None")


def json_value(name: str, value: Any) -> Any:
    """A JSON or Python-literal argument back from its rendered text (other values unchanged; ``""``: None).

    :raises PrefineryInputError: the text is neither JSON nor a Python literal.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except RecursionError:  # "[[[[..." nested deeper than the parser's stack: not a record list either
        raise PrefineryInputError(
            name, f"rendered to text nested too deeply to read: {text[:60]!r}"
        ) from None
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # a Python repr, as Jinja renders a dict or list
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise PrefineryInputError(
            name,
            f"rendered to text that is neither JSON nor a Python literal: {text[:60]!r} (pass a "
            "dict/list, an XComArg, or set render_template_as_native_obj=True on the DAG)",
        ) from None


def records_list(value: Any, name: str = "records") -> Sequence[Any]:
    """A rendered ``records`` argument as a sequence of records (parsed when a template made text).

    :raises PrefineryInputError: it is not a list of records (including text that rendered to nothing and
        native None).
    """
    if isinstance(value, str) and value.strip() in RENDERED_NOTHING:
        raise PrefineryInputError(
            name,
            f"rendered to {value!r}, not a list of records (an xcom_pull of a task id that "
            "does not exist renders 'None'; check the template)",
        )
    records = json_value(name, value)
    if records is None:
        raise PrefineryInputError(
            name, "rendered to None, not a list of records (an xcom_pull of a task id that does not exist?)"
        )
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise PrefineryInputError(
            name, f"must be a list of mappings (one per record), got {type(records).__name__}"
        )
    return records if isinstance(records, Sequence) else list(records)
