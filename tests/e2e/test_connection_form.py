"""The Prefinery, Mailchimp and Piggy connections in Airflow's own UI, driven in headless Chromium.

A person's path: sign in, Admin > Connections, Add Connection, choose the type, fill the fields, Save, press
the row's Test button and read the message, then use the saved connection from a DAG's point of view
(``PrefineryHook`` in a fresh interpreter, reading the connection from Airflow's DB). Labels and the
success message are spelled out here on purpose: renaming a field or changing the message fails this test.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.provider_info import (
    MAILCHIMP_CONNECTION,
    PIGGY_CONNECTION,
    PREFINERY_CONNECTION,
    TRANSPORT_FIELDS,
)
from airflow_provider_prefinery.sandbox.seeds import DEMO_BETA_ID

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

AirflowUI = Any  # conftest.AirflowUI: url, user, password, env, run_python()
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "e2e"
DOCS_IMAGE = REPO / "docs" / "img" / "prefinery-connection.png"
WRONG_KEY = "sbx-wrong-key-e2e-4d4d4d4d"
TRANSPORT_LABELS = [spec["label"] for spec in TRANSPORT_FIELDS.values()]  # every form ends with them
TOAST = '[data-scope="toast"][data-part="root"]'
TOAST_TIMEOUT = 60_000  # ms: the api-server imports the hook on the first test

# What the saved connection must do when read back from Airflow's metadata DB (outside a task, the SDK's
# BaseHook.get_connection has no DB access on Airflow 3, so the core model reads it and the hook takes it).
HOOK_CHECK = """
import itertools, json, os
from airflow.models.connection import Connection
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
conn = Connection.get_connection_from_secrets(os.environ["CONN_ID"])  # the metadata DB (no env, no cache)
hook = PrefineryHook(os.environ["CONN_ID"], connection=conn)
print(json.dumps({
    "conn_type": conn.conn_type,
    "host": conn.host,
    "port": conn.port,
    "extra": conn.extra_dejson,
    "key_matches": conn.password == os.environ["EXPECTED_KEY"],
    "test": hook.test_connection(),
    "project": hook.get_project()["name"],
    "users": sum(1 for _ in itertools.islice(hook.list_users(), 30)),
}))
"""


# ------------------------------------------------------------------------------------------------ helpers
def sign_in(page: Any, ui: AirflowUI) -> None:
    """Sign in on SimpleAuthManager's login page, then open Admin > Connections from the side menu."""
    page.goto(ui.url)
    page.get_by_label("Username").fill(ui.user)
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.get_by_role("button", name="Add Connection").wait_for()


def open_add_form(page: Any, conn_id: str, type_label: str) -> Any:
    """Open the Add Connection dialog, type the id and choose the connection type; return the dialog."""
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox", name="Connection Type").fill(type_label)
    page.get_by_role("option", name=type_label, exact=True).click()
    dialog.get_by_role("button", name="Standard Fields").wait_for()
    return dialog


def open_section(dialog: Any, name: str) -> Any:
    """Expand one accordion section of the form (it shows one at a time) and return its content.

    The content is found through the header's ``aria-controls``: Airflow's "Extra Fields" region is not
    reachable by its accessible name (its id has a space, which breaks ``aria-labelledby``).
    """
    header = dialog.get_by_role("button", name=name, exact=True)
    if header.get_attribute("aria-expanded") != "true":
        header.click()
    content = dialog.locator(f'[id="{header.get_attribute("aria-controls")}"]')
    content.wait_for()
    return content


def field_labels(dialog: Any, section: str) -> list[str]:
    """The visible field labels of one section, in order."""
    labels = open_section(dialog, section).locator("label")
    return [text.strip() for text in labels.all_inner_texts() if text.strip()]


def input_of(dialog: Any, label: str) -> Any:
    """The input of the field labelled ``label``, found through its field group: Airflow's secret extra
    fields render a label that is not tied to their input, so ``get_by_label`` cannot find those."""
    label_node = dialog.page.locator("label").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return dialog.get_by_role("group").filter(has=label_node).locator("input").first


def fill_prefinery_form(page: Any, conn_id: str, url: str, key: str, beta_id: int) -> Any:
    dialog = open_add_form(page, conn_id, "Prefinery")
    open_section(dialog, "Standard Fields")
    dialog.get_by_label("API Base URL").fill(url)
    dialog.get_by_label("API Key").fill(key)
    open_section(dialog, "Extra Fields")
    dialog.get_by_label("API Beta ID").fill(str(beta_id))
    return dialog


def save(page: Any, dialog: Any, conn_id: str) -> Any:
    """Save the dialog and return the connection's row in the list."""
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")
    row = page.get_by_role("row").filter(has=page.get_by_text(conn_id, exact=True))
    row.wait_for()
    return row


def press_test(page: Any, row: Any) -> tuple[str, str]:
    """Press the row's Test Connection button; return the toast's (title, message)."""
    toasts = page.locator(TOAST).filter(has_text="Test Connection")
    before = toasts.count()
    row.get_by_role("button", name="Test Connection").click()
    toast = toasts.nth(before)
    toast.wait_for(timeout=TOAST_TIMEOUT)
    settle(toast)
    title = toast.locator('[data-part="title"]').inner_text().strip()
    message = toast.locator('[data-part="description"]').inner_text().strip()
    return title, message


def settle(target: Any) -> None:
    """Wait until the element's animations (a toast sliding in) have finished, for a clean screenshot."""
    target.evaluate("e => Promise.all(e.getAnimations({subtree: true}).map(a => a.finished))")


def section_item(dialog: Any, name: str) -> Any:
    """A whole accordion section (header and fields), for a screenshot of that section alone."""
    header = dialog.page.get_by_role("button", name=name, exact=True)  # inner locators are relative
    return dialog.locator('[data-scope="accordion"][data-part="item"]').filter(has=header)


def shoot(target: Any, name: str) -> bytes:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return target.screenshot(path=str(ARTIFACTS / name))


def stack_images(page: Any, images: list[bytes], path: str) -> None:
    """Stack screenshots vertically into one PNG, using the browser as the image tool."""
    sources = [f"data:image/png;base64,{base64.b64encode(png).decode()}" for png in images]
    tags = "".join(f'<img style="display:block;margin:0 0 12px 0" src="{src}">' for src in sources)
    page.set_content(
        '<html><body style="margin:0;background:#fff">'
        f'<div id="stack" style="display:inline-block;padding:12px">{tags}</div></body></html>'
    )
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.locator("#stack").screenshot(path=path)


# -------------------------------------------------------------------------------------------------- tests
def test_prefinery_connection_added_in_the_ui_passes_test_and_works_from_a_hook(
    page: Any, airflow_ui: AirflowUI, sandbox: Any
) -> None:
    sign_in(page, airflow_ui)
    dialog = open_add_form(page, "prefinery_ui", "Prefinery")

    # The form: own labels, hidden unused fields, placeholders, the key as a secret, the beta id apart.
    assert field_labels(dialog, "Standard Fields") == ["Description", "API Base URL", "API Key"]
    placeholders = PREFINERY_CONNECTION["ui-field-behaviour"]["placeholders"]
    assert dialog.get_by_label("API Base URL").get_attribute("placeholder") == placeholders["host"]
    assert dialog.get_by_label("API Key").get_attribute("placeholder") == placeholders["password"]
    assert input_of(dialog, "API Key").get_attribute("type") == "password"
    dialog.get_by_label("API Base URL").fill(sandbox.url)
    dialog.get_by_label("API Key").fill(sandbox.api_key)
    standard_png = shoot(dialog, "01-prefinery-form-standard-fields.png")

    assert field_labels(dialog, "Extra Fields") == ["API Beta ID", *TRANSPORT_LABELS]
    assert input_of(dialog, "Proxy URL").get_attribute("type") == "password"  # it may hold a password
    extra = open_section(dialog, "Extra Fields")
    assert "Default project id (the 'API Beta ID' on the project dashboard)" in extra.inner_text()
    dialog.get_by_label("API Beta ID").fill(str(DEMO_BETA_ID))
    shoot(dialog, "02-prefinery-form-extra-fields.png")
    extra_png = section_item(dialog, "Extra Fields").screenshot()

    row = save(page, dialog, "prefinery_ui")
    assert sandbox.api_key not in page.content()
    title, message = press_test(page, row)
    shoot(page, "03-prefinery-test-success.png")
    assert title == "Test Connection Successful"
    assert message == f"Connected to Prefinery project 'Sandbox Launch' (id {DEMO_BETA_ID})"
    assert sandbox.control.count(endpoint="get_project", status=200) == 1  # the button reached the sandbox

    # A task's view: the saved connection, read from Airflow's DB, works through PrefineryHook.
    done = airflow_ui.run_python(HOOK_CHECK, CONN_ID="prefinery_ui", EXPECTED_KEY=sandbox.api_key)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["conn_type"] == "prefinery"
    assert seen["host"] == sandbox.url
    assert seen["port"] is None
    # typed as a number, stored as one; the transport fields left empty are stored as null (unused)
    assert seen["extra"] == {"beta_id": DEMO_BETA_ID, **dict.fromkeys(TRANSPORT_FIELDS)}
    assert seen["key_matches"] is True
    assert seen["test"] == [True, message]
    assert seen["project"] == "Sandbox Launch"
    assert seen["users"] == 30

    composite = str(ARTIFACTS / "prefinery-connection.png")
    stack_images(page, [standard_png, extra_png], composite)
    if os.environ.get("PREFINERY_E2E_UPDATE_DOCS") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(composite, DOCS_IMAGE)


def test_wrong_key_fails_the_test_button_with_the_hooks_message(
    page: Any, airflow_ui: AirflowUI, sandbox: Any
) -> None:
    sign_in(page, airflow_ui)
    dialog = fill_prefinery_form(page, "prefinery_wrong_key", sandbox.url, WRONG_KEY, DEMO_BETA_ID)
    row = save(page, dialog, "prefinery_wrong_key")
    title, message = press_test(page, row)
    shoot(page, "04-prefinery-test-wrong-key.png")
    assert title == "Test Connection Failed"
    expected = (
        "Prefinery GET betas/1001.json, HTTP 401, code 401: missing or invalid API key (check the API key)"
    )
    assert message == expected
    assert WRONG_KEY not in message
    assert WRONG_KEY not in page.content()


@pytest.mark.parametrize(
    ("type_label", "declared", "standard", "extra", "secret_fields"),
    [
        (
            "Mailchimp",
            MAILCHIMP_CONNECTION,
            ["Description", "API Base URL", "API Key"],
            ["Audience ID", *TRANSPORT_LABELS],
            ["API Key", "Proxy URL"],
        ),
        (
            "Piggy",
            PIGGY_CONNECTION,
            ["Description", "API Base URL", "Personal Access Token or API Key"],
            ["OAuth Client ID", "OAuth Client Secret", *TRANSPORT_LABELS],
            ["Personal Access Token or API Key", "OAuth Client Secret", "Proxy URL"],
        ),
    ],
)
def test_mailchimp_and_piggy_forms_render_their_own_fields(
    page: Any,
    airflow_ui: AirflowUI,
    type_label: str,
    declared: dict[str, Any],
    standard: list[str],
    extra: list[str],
    secret_fields: list[str],
) -> None:
    sign_in(page, airflow_ui)
    dialog = open_add_form(page, f"{type_label.lower()}_ui", type_label)
    assert field_labels(dialog, "Standard Fields") == standard
    placeholder = declared["ui-field-behaviour"]["placeholders"]["host"]
    assert dialog.get_by_label("API Base URL").get_attribute("placeholder") == placeholder
    for label in secret_fields[:1]:
        assert input_of(dialog, label).get_attribute("type") == "password"
    assert field_labels(dialog, "Extra Fields") == extra
    for label in secret_fields[1:]:
        assert input_of(dialog, label).get_attribute("type") == "password"
    for spec in declared["conn-fields"].values():
        assert spec["description"] in open_section(dialog, "Extra Fields").inner_text()
    shoot(dialog, f"05-{type_label.lower()}-form.png")
