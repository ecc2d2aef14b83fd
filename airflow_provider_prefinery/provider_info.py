"""The provider's registration with Airflow: modules, integrations and connection forms.

Connection forms are declared once here, as data (Airflow >= 3.2 renders ``ui-field-behaviour`` and
``conn-fields``); the Airflow 2 hook methods derive their wtforms widgets from the same data.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_prefinery import __version__

PACKAGE = "airflow_provider_prefinery"

# The form fields every connection type shares: how to reach the API from a corporate network.
TRANSPORT_FIELDS: dict[str, Any] = {
    "proxy": {
        "label": "Proxy URL",
        "description": "Optional http(s) proxy for every request, e.g. http://user:password@proxy:3128 "
        "(the environment's HTTPS_PROXY is never used).",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "ca_bundle": {
        "label": "CA Bundle Path",
        "description": "Optional path of a PEM file of the CA certificates to trust (a private CA or a "
        "TLS-inspecting proxy) instead of the public ones (REQUESTS_CA_BUNDLE is never used).",
        "schema": {"type": ["string", "null"]},
    },
}

PREFINERY_CONNECTION: dict[str, Any] = {
    "connection-type": "prefinery",
    "hook-name": "Prefinery",
    "hook-class-name": f"{PACKAGE}.hooks.prefinery.PrefineryHook",
    "ui-field-behaviour": {
        "hidden-fields": ["login", "schema", "port"],
        "relabeling": {"password": "API Key", "host": "API Base URL"},
        "placeholders": {
            "password": "your Prefinery API key (Account > API)",
            "host": "https://api.prefinery.com",
            "extra": '{"write_rate_limit": 10}',
        },
    },
    "conn-fields": {
        "beta_id": {
            "label": "API Beta ID",
            "description": "Default project id (the 'API Beta ID' on the project dashboard); "
            "operators may pass beta_id instead.",
            "schema": {"type": ["integer", "null"], "minimum": 1},
        },
        **TRANSPORT_FIELDS,
    },
}

MAILCHIMP_CONNECTION: dict[str, Any] = {
    "connection-type": "mailchimp",
    "hook-name": "Mailchimp",
    "hook-class-name": f"{PACKAGE}.hooks.mailchimp.MailchimpHook",
    "ui-field-behaviour": {
        "hidden-fields": ["login", "schema", "port"],
        "relabeling": {"password": "API Key", "host": "API Base URL"},
        "placeholders": {
            "password": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-us6",
            "host": "optional: https://<dc>.api.mailchimp.com (the data center is read from the key)",
        },
    },
    "conn-fields": {
        "list_id": {
            "label": "Audience ID",
            "description": "Default audience (list) id; operators may pass list_id instead.",
            "schema": {"type": ["string", "null"]},
        },
        **TRANSPORT_FIELDS,
    },
}

PIGGY_CONNECTION: dict[str, Any] = {
    "connection-type": "piggy",
    "hook-name": "Piggy",
    "hook-class-name": f"{PACKAGE}.hooks.piggy.PiggyHook",
    "ui-field-behaviour": {
        "hidden-fields": ["login", "schema", "port"],
        "relabeling": {"password": "Personal Access Token or API Key", "host": "API Base URL"},
        "placeholders": {
            "password": "a Piggy Personal Access Token (or leave empty and fill the OAuth client below)",
            "host": "https://api.piggy.eu",
        },
    },
    "conn-fields": {
        "client_id": {
            "label": "OAuth Client ID",
            "description": "Optional: client credentials exchanged at /oauth/token instead of a token.",
            "schema": {"type": ["string", "null"]},
        },
        "client_secret": {
            "label": "OAuth Client Secret",
            "description": "Optional: the OAuth client's secret.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        **TRANSPORT_FIELDS,
    },
}

CONNECTION_TYPES: list[dict[str, Any]] = [PREFINERY_CONNECTION, MAILCHIMP_CONNECTION, PIGGY_CONNECTION]

INTEGRATIONS = [
    {
        "integration-name": "Prefinery",
        "external-doc-url": "https://www.prefinery.com/api",
        "tags": ["service"],
    },
    {
        "integration-name": "Mailchimp",
        "external-doc-url": "https://mailchimp.com/developer/marketing/api/list-members/",
        "tags": ["service"],
    },
    {"integration-name": "Piggy", "external-doc-url": "https://docs.piggy.eu/", "tags": ["service"]},
]

# Module lists, by kind; each module must import (a test imports every one).
MODULES: dict[str, list[str]] = {
    "hooks": [f"{PACKAGE}.hooks.prefinery", f"{PACKAGE}.hooks.mailchimp", f"{PACKAGE}.hooks.piggy"],
    "operators": [f"{PACKAGE}.operators.prefinery", f"{PACKAGE}.operators.piggy"],
    "sensors": [f"{PACKAGE}.sensors.prefinery"],
    "triggers": [f"{PACKAGE}.triggers.prefinery"],
}
TRANSFERS = [
    {
        "source-integration-name": "Mailchimp",
        "target-integration-name": "Prefinery",
        "python-module": f"{PACKAGE}.transfers.mailchimp_to_prefinery",
        "how-to-guide": "",
    },
    # The exports: targets named as the common providers name their integrations.
    {
        "source-integration-name": "Prefinery",
        "target-integration-name": "Common IO",
        "python-module": f"{PACKAGE}.transfers.prefinery_to_object_storage",
        "how-to-guide": "",
    },
    {
        "source-integration-name": "Prefinery",
        "target-integration-name": "Common SQL",
        "python-module": f"{PACKAGE}.transfers.prefinery_to_sql",
        "how-to-guide": "",
    },
]


def provider_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "package-name": "airflow-provider-prefinery",
        "name": "Prefinery",
        "description": "Prefinery (waitlists, referral programs, rewards) for Apache Airflow, "
        "with Mailchimp and Piggy hooks and a local sandbox.",
        "versions": [__version__],
        "integrations": INTEGRATIONS,
        "connection-types": CONNECTION_TYPES,
    }
    for kind, modules in MODULES.items():
        info[kind] = [{"integration-name": _integration_of(m), "python-modules": [m]} for m in modules]
    info["transfers"] = [{k: v for k, v in t.items() if v} for t in TRANSFERS]
    return info


def _integration_of(module: str) -> str:
    for name in ("mailchimp", "piggy"):
        if name in module.rsplit(".", 1)[-1]:
            return name.capitalize()
    return "Prefinery"


def connection_type(conn_type: str) -> dict[str, Any]:
    for item in CONNECTION_TYPES:
        if item["connection-type"] == conn_type:
            return item
    raise KeyError(conn_type)


def legacy_field_specs(conn_type: str) -> dict[str, dict[str, Any]]:
    """The Airflow 2 form's extra fields, read from ``conn-fields``: name -> kind, label, description."""
    specs: dict[str, dict[str, Any]] = {}
    for name, spec in connection_type(conn_type)["conn-fields"].items():
        schema = spec["schema"]
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        kind = (
            "integer"
            if "integer" in types
            else "password"
            if schema.get("format") == "password"
            else "string"
        )
        specs[name] = {
            "kind": kind,
            "label": spec["label"],
            "description": spec["description"],
            "optional": "null" in types,
            "minimum": schema.get("minimum"),
        }
    return specs


def legacy_widgets(conn_type: str) -> dict[str, Any]:
    """Airflow 2 form widgets (wtforms and FAB exist only on Airflow 2's webserver: imported here)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import NumberRange, Optional

    widgets: dict[str, Any] = {}
    for name, spec in legacy_field_specs(conn_type).items():
        label = lazy_gettext(spec["label"])
        validators = [Optional()] if spec["optional"] else []
        if spec["kind"] == "integer":
            if spec["minimum"] is not None:
                validators.append(NumberRange(min=spec["minimum"]))
            widgets[name] = IntegerField(
                label, widget=BS3TextFieldWidget(), description=spec["description"], validators=validators
            )
        elif spec["kind"] == "password":
            widgets[name] = PasswordField(
                label, widget=BS3PasswordFieldWidget(), description=spec["description"], validators=validators
            )
        else:
            widgets[name] = StringField(
                label, widget=BS3TextFieldWidget(), description=spec["description"], validators=validators
            )
    return widgets
