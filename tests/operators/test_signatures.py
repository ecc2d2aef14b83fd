"""Every registered operator shows its fields and options: typed keyword parameters, documented, mappable.

The operators are found through the provider's own registration (``get_provider_info()["operators"]``) and
each one's expected fields come from its own ``record_fields`` declaration.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import pydoc
import re
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import BaseOperator
from airflow.sdk import DAG

from airflow_provider_prefinery import get_provider_info
from airflow_provider_prefinery.operators.base import RecordsOperator

START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def _operators() -> list[type[RecordsOperator]]:
    found = []
    modules = [name for entry in get_provider_info()["operators"] for name in entry["python-modules"]]
    for module_name in modules:
        module = importlib.import_module(module_name)
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, RecordsOperator) and obj.__module__ == module_name
            and obj.action  # a concrete operator, not a base
        ]  # fmt: skip
    return found


OPERATORS = _operators()


def test_every_registered_operator_is_found() -> None:
    assert len(OPERATORS) == 13  # the 12 Prefinery writes and the Piggy automation run


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.__name__)
def test_signature_lists_every_field_keyword_only_typed_and_documented(op: type[RecordsOperator]) -> None:
    params = inspect.signature(op).parameters
    own = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    doc = inspect.getdoc(op) or ""

    assert set(op.record_fields) <= set(own)
    for name in own:
        assert params[name].annotation is not inspect.Parameter.empty, name
        assert f":param {name}:" in doc, f"{op.__name__} does not document {name}"
    assert list(params)[-1] == "kwargs"  # the common and BaseOperator arguments
    rendered_help = pydoc.render_doc(op, renderer=pydoc.plaintext)
    shown = next(line for line in rendered_help.splitlines() if "__init__(self, *," in line)
    assert all(f"{name}: {params[name].annotation!r} = None" in shown for name in op.record_fields)


def _keyword_params(op: type[RecordsOperator]) -> dict[str, inspect.Parameter]:
    """The keyword parameters of the operator's ``__init__`` and of its bases' up to RecordsOperator."""
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(op.__mro__[: op.__mro__.index(RecordsOperator) + 1]):
        if "__init__" in vars(klass):
            sig = inspect.signature(klass).parameters
            params.update((n, p) for n, p in sig.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return params


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.__name__)
def test_options_are_set_on_the_operator_and_never_sent_in_a_record(op: type[RecordsOperator]) -> None:
    own = inspect.signature(op).parameters
    options = {n: p.default for n, p in own.items() if p.kind is p.KEYWORD_ONLY and n not in op.record_fields}
    one_object = {} if op.supports_records else {"beta_id": 1, "confirm_project_name": "Old project"}
    task = op(task_id="t", **one_object)

    assert set(task.record) == set(op.record_fields)
    assert {n: getattr(task, n) for n in options} == {n: one_object.get(n, d) for n, d in options.items()}


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.__name__)
def test_ui_color_and_templated_connection_id(op: type[RecordsOperator]) -> None:
    conn_ids = [name for name in _keyword_params(op) if name.endswith("_conn_id")]

    assert op.ui_color != BaseOperator.ui_color
    assert conn_ids and all(name in op.template_fields for name in conn_ids)


@pytest.mark.filterwarnings("ignore:Task .* was never mapped")
@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.__name__)
def test_a_mapped_operator_validates_field_names(op: type[RecordsOperator]) -> None:
    field = op.record_fields[0] if op.record_fields else "confirm_project_name"
    with DAG("t", schedule=None, start_date=START, default_args={"email": "oncall@example.com"}):
        mapped = op.partial(task_id="ok").expand(**{field: ["a", "b"]})
        with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_field'"):
            op.partial(task_id="bad").expand(no_such_field=["a"])

    assert mapped.email == "oncall@example.com"


def _readme_table() -> dict[str, tuple[set[str], set[str]]]:
    """The README's operator table: per operator, the fields and the options its second column names."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {}
    for match in re.finditer(r"^\| `(\w+Operator)` \| ((?:[^|\\]|\\.)*)\|", readme, re.M):
        fields_part, _, options_part = match.group(2).partition(";")
        items = re.split(r",| or ", fields_part)
        fields = {m.group(1) for item in items if (m := re.match(r"\s*([a-z_]+)", item))}
        rows[match.group(1)] = (fields, set(re.findall(r"`(\w+)`(?:\*| =)", options_part)))
    return rows


def test_the_readme_table_lists_each_operators_fields_and_options() -> None:
    table = _readme_table()

    for op in OPERATORS:
        own = inspect.signature(op).parameters
        options = {n for n, p in own.items() if p.kind is p.KEYWORD_ONLY and n not in op.record_fields}
        assert table[op.__name__] == (set(op.record_fields), options), op.__name__
    assert set(table) == {op.__name__ for op in OPERATORS}
