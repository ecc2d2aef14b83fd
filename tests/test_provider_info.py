"""The provider's registration: valid for Airflow's own schema, found through the real entry point."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_prefinery import get_provider_info
from airflow_provider_prefinery.provider_info import CONNECTION_TYPES, legacy_field_specs

SCHEMA = Path(airflow.__file__).parent / "provider_info.schema.json"


def test_provider_info_validates_against_airflows_schema() -> None:
    jsonschema.validate(get_provider_info(), json.loads(SCHEMA.read_text()))


def test_entry_point_is_registered_and_returns_the_same_info() -> None:
    (ep,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider")
    ]
    assert ep.name == "provider_info"
    assert ep.load()() == get_provider_info()


def test_every_module_named_imports() -> None:
    info = get_provider_info()
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for item in info[kind]
        for m in item["python-modules"]
    ]
    modules += [t["python-module"] for t in info["transfers"]]
    for name in modules:
        importlib.import_module(name)


@pytest.mark.parametrize("conn", CONNECTION_TYPES, ids=lambda c: c["connection-type"])
def test_each_connection_type_names_a_hook_of_that_type(conn: dict) -> None:
    module, _, cls_name = conn["hook-class-name"].rpartition(".")
    hook_cls = getattr(importlib.import_module(module), cls_name)
    assert hook_cls.conn_type == conn["connection-type"]
    assert set(conn["ui-field-behaviour"]["hidden-fields"]) == {"login", "schema", "port"}
    assert conn["ui-field-behaviour"]["relabeling"]["host"] == "API Base URL"


@pytest.mark.parametrize("conn", CONNECTION_TYPES, ids=lambda c: c["connection-type"])
def test_legacy_airflow2_form_describes_the_same_fields(conn: dict) -> None:
    module, _, cls_name = conn["hook-class-name"].rpartition(".")
    hook_cls = getattr(importlib.import_module(module), cls_name)
    assert hook_cls.get_ui_field_behaviour() == conn["ui-field-behaviour"]
    specs = legacy_field_specs(conn["connection-type"])
    assert set(specs) == set(conn["conn-fields"])
    for name, spec in specs.items():
        assert spec["label"] == conn["conn-fields"][name]["label"]
        assert spec["optional"] is ("null" in conn["conn-fields"][name]["schema"]["type"])


def test_prefinery_form_has_api_key_base_url_and_beta_id() -> None:
    conn = CONNECTION_TYPES[0]
    assert conn["connection-type"] == "prefinery"
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API Key"
    assert conn["ui-field-behaviour"]["placeholders"]["host"] == "https://api.prefinery.com"
    assert conn["conn-fields"]["beta_id"]["label"] == "API Beta ID"
    assert conn["conn-fields"]["beta_id"]["schema"]["type"] == ["integer", "null"]


def test_airflow_lists_the_installed_provider() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    names = [p["package_name"] for p in json.loads(out.stdout[out.stdout.index("[") :])]
    assert "airflow-provider-prefinery" in names
