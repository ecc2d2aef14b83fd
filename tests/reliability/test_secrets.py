"""No secret leaks: every example DAG, run by real Airflow against a sandbox that only accepts a distinctive
key, leaves that key in no task log, no captured output, no row of the metadata database (XComs,
rendered template fields, task instances, the DAG run, Variables, the audit log, ...), no exception text
and no URL (neither the client's full URLs with their query strings nor the sandbox's request log).

Nor in objects: a client's repr (the key, a proxy's password), an error whose server echoed the key raw,
URL-encoded or base64-encoded (its message, its body, its pickle), or an XCom failure entry whose record
carries the key a DAG author templated into it (masked through Airflow's secrets masker).

The DAG files are collected when the tests are: a new example DAG gets a row here automatically, and
fails with "no scenario" until it is given one in :data:`SCENARIOS` (its conf and sandbox preparation).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_prefinery.hooks.rest import _BUCKETS
from airflow_provider_prefinery.sandbox.testing import SandboxServer, run_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.dag]

KEY = "pfx-LEAKCANARY-7d41e9b2c05a"
DAGS = Path(__file__).resolve().parents[2] / "dags_examples"
SCALE = 100  # every rate limit (sandbox and hooks) x100, and sensors' poll floor with it


# ---------------------------------------------------------------------------------------------------
# What each example DAG needs to run to the end against the demo seed
# ---------------------------------------------------------------------------------------------------
def _sync(control: Any) -> dict[str, Any]:
    since = datetime.now(timezone.utc) - timedelta(hours=12)  # a hundred-odd members, not two thousand
    return {"since": since.isoformat()}


def _earned_reward_of_a_user(control: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    users = {u["id"]: u for u in control.users()}
    for reward in sorted(control.rewards(status="earned"), key=lambda r: r["id"]):
        user = users.get(reward["user_id"])
        if user and user["status"] in ("invited", "active"):
            return reward, user
    raise AssertionError("the demo seed has no earned reward of an invited or active user")


def _wait_and_welcome(control: Any) -> dict[str, Any]:
    _, user = _earned_reward_of_a_user(control)
    return {"email": user["email"], "min_rewards": 1}


def _event_driven(control: Any) -> dict[str, Any]:
    reward, _ = _earned_reward_of_a_user(control)
    return {"events": [{"resource": "rewards", "id": reward["id"]}]}


def _nightly_export(control: Any) -> dict[str, Any]:
    """Files and a SQLite warehouse in a fresh folder (the connection is part of the DAG's preparation)."""
    folder = Path(tempfile.mkdtemp(prefix="prefinery-secret-export-"))
    warehouse = {"conn_type": "sqlite", "host": str(folder / "warehouse.db")}
    os.environ["AIRFLOW_CONN_PREFINERY_WAREHOUSE"] = json.dumps(warehouse)
    return {"export_root": f"file://{folder}"}


SCENARIOS: dict[str, Callable[[Any], dict[str, Any] | None]] = {
    "mailchimp_to_prefinery": _sync,
    "prefinery_referral_program": lambda control: None,
    "prefinery_reward_fulfillment": lambda control: None,
    "prefinery_wait_and_welcome": _wait_and_welcome,
    "prefinery_event_driven": _event_driven,
    "prefinery_nightly_export": _nightly_export,
}


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


# ---------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secret_sandbox() -> Iterator[SandboxServer]:
    """A sandbox of its own that accepts only :data:`KEY` (for Prefinery, Mailchimp and Piggy alike)."""
    with run_sandbox(seed="demo", api_keys=[KEY]) as server:
        yield server


@pytest.fixture
def secret_env(secret_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The default connections point at the secret sandbox, every limit scaled, sensors polling fast."""
    secret_sandbox.control.reset("demo")
    secret_sandbox.control.configure(scale=SCALE)
    for name, value in secret_sandbox.connections().items():
        conn = json.loads(value)
        conn["extra"] = {**conn.get("extra", {}), "rate_limit_scale": SCALE}
        monkeypatch.setenv(name, json.dumps(conn))
    monkeypatch.setenv("PREFINERY_EXAMPLE_POKE_INTERVAL", "0.2")
    monkeypatch.setenv("PREFINERY_EXAMPLE_POLL_INTERVAL", "0.2")
    _BUCKETS.clear()
    return secret_sandbox


@pytest.fixture
def urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL any thread sends, query string included (requests' transport adapter is the one door)."""
    seen: list[str] = []
    lock = threading.Lock()
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        with lock:
            seen.append(str(request.url))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return seen


# ---------------------------------------------------------------------------------------------------
# Where a key could end up
# ---------------------------------------------------------------------------------------------------
def database_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the SQLite metadata database, as Python values."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {table: conn.execute(f'SELECT * FROM "{table}"').fetchall() for table in tables}


def log_files(home: Path) -> dict[str, str]:
    return {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in (home / "logs").rglob("*")
        if path.is_file()
    }


def holding(texts: dict[str, str], secret: str) -> list[str]:
    return [name for name, text in texts.items() if secret in text]


def run_and_search(
    dag_id: str,
    conf: dict[str, Any] | None,
    run_dag: Any,
    home: Path,
    capfd: Any,
    caplog: Any,
    urls: list[str],
    control: Any,
) -> tuple[Any, BaseException | None, dict[str, str], dict[str, list[tuple[Any, ...]]]]:
    """Run one DAG with ``dag.test()``; return the run, its error and every text a key could hide in."""
    error: BaseException | None = None
    try:
        run = run_dag(dag_id, **({"run_conf": conf} if conf else {}))
    except BaseException as exc:  # the exception text is one of the places to search
        run, error = None, exc
    out = capfd.readouterr()
    rows = database_rows(home / "airflow.db")
    texts = {
        "stdout": out.out,
        "stderr": out.err,
        "logging": caplog.text,
        "exception": f"{error!r} {error}" if error else "",
        "client URLs": "\n".join(urls),
        "sandbox request log": "\n".join(e["path"] for e in control.requests()),
        **{f"table {t}": repr(r) for t, r in rows.items()},
        **log_files(home),  # dag.test() on Airflow 3.3 logs to stdout; files are searched when present
    }
    return run, error, texts, rows


@pytest.mark.parametrize("dag_file", dag_files(), ids=lambda p: p.stem)
def test_an_example_dag_leaves_the_api_key_nowhere(
    dag_file: Path,
    secret_env: SandboxServer,
    urls: list[str],
    run_dag: Any,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dag_id = dag_file.stem
    if dag_id not in SCENARIOS:
        pytest.fail(f"no scenario for example DAG {dag_id!r}: add its conf to SCENARIOS in {__file__}")
    control = secret_env.control
    conf = SCENARIOS[dag_id](control)

    run, error, texts, rows = run_and_search(dag_id, conf, run_dag, airflow_db, capfd, caplog, urls, control)

    assert not holding(texts, KEY), f"the API key leaked into: {holding(texts, KEY)}"
    # The run really used the key, and the places searched really hold this run's traces.
    assert error is None and run is not None, error
    assert any(200 <= e["status"] < 300 for e in control.requests()), "the DAG made no successful call"
    assert urls and any(dag_id in r for r in rows.get("xcom", []))
    assert any(dag_id in r for r in rows.get("rendered_task_instance_fields", []))
    assert dag_id in texts["stdout"] + texts["stderr"] + texts["logging"]


def test_the_search_finds_a_key_that_does_leak(
    secret_env: SandboxServer,
    urls: list[str],
    run_dag: Any,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A canary: a run whose conf carries the key must be caught (in the dag_run table)."""
    dag_id = "prefinery_event_driven"
    if not (DAGS / f"{dag_id}.py").exists():
        pytest.skip(f"{dag_id} is the cheapest DAG to leak through and is not there")
    conf = {**_event_driven(secret_env.control), "canary": KEY}

    run, _, texts, _ = run_and_search(
        dag_id, conf, run_dag, airflow_db, capfd, caplog, urls, secret_env.control
    )

    assert "table dag_run" in holding(texts, KEY)
    _delete_run(run)  # the canary must not trip the DAG tests of this session that search the database
    assert not any(KEY in repr(r) for r in database_rows(airflow_db / "airflow.db").values())


def _delete_run(run: Any) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for found in session.query(DagRun).filter(DagRun.run_id == run.run_id):
            session.delete(found)


# ---------------------------------------------------------------------------------------------------
# Secrets left in objects (issue 13, 2.10): reprs, error bodies and their pickles, encoded echoes, XCom
# ---------------------------------------------------------------------------------------------------
PROXY_PASSWORD = "PXYCANARY-3e9b1f"


def encoded_forms(secret: str) -> dict[str, str]:
    """How an echo may carry a secret: URL-encoded, base64 alone and after ``user:`` (Basic auth)."""
    return {
        "raw": secret,
        "url-encoded": quote(secret, safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64 basic": base64.b64encode(f"airflow:{secret}".encode()).decode(),
        "base64 url-safe": base64.urlsafe_b64encode(f"x{secret}".encode()).decode(),
    }


def leaks(texts: dict[str, str], secret: str) -> list[str]:
    """Which texts hold the secret in any encoded form (a form's inner 16 characters suffice)."""
    found = []
    for where, text in texts.items():
        for form, value in encoded_forms(secret).items():
            core = value if form in ("raw", "url-encoded") else value[4:20]
            if core in text:
                found.append(f"{where}: {form}")
    return found


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request 422 with a Prefinery-shaped error echoing the credentials in every encoding."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        body = {
            "errors": [{"code": 2201, "message": f"rejected {auth} (query {self.path})"}],
            "request": {
                "authorization": auth,
                "echo": [{"url": quote(KEY, safe="")}, {"b64": base64.b64encode(KEY.encode()).decode()}],
                "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": KEY}}}}}}},
            },
        }
        data = json.dumps(body).encode()
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("conn_type", ["prefinery", "mailchimp", "piggy"])
def test_an_error_that_echoes_the_key_in_any_encoding_keeps_it_nowhere(
    conn_type: str, echo_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_prefinery.exceptions import PrefineryError
    from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
    from airflow_provider_prefinery.hooks.piggy import PiggyHook
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

    extra = {"beta_id": 1001, "list_id": "a1b2c3d4e5", "max_retries": 0}
    conn = {"conn_type": conn_type, "password": KEY, "host": echo_server, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_type.upper()}_ECHO", json.dumps(conn))
    hook = {"prefinery": PrefineryHook, "mailchimp": MailchimpHook, "piggy": PiggyHook}[conn_type](
        f"{conn_type}_echo"
    )
    call = {
        "prefinery": lambda: hook.get_project(),
        "mailchimp": lambda: list(hook.list_members()),
        "piggy": lambda: list(hook.list_automations()),
    }[conn_type]

    with pytest.raises(PrefineryError) as info:
        call()

    err = info.value
    texts = {
        "str": str(err),
        "repr": repr(err),
        "body": json.dumps(err.body),
        "to_dict": json.dumps(err.to_dict()),
        "pickle": pickle.dumps(err).decode("latin-1"),
        "unpickled body": json.dumps(pickle.loads(pickle.dumps(err)).body),
        "logging": caplog.text,
        "client repr": repr(hook.client),
    }
    assert err.status == 422 and "***" in json.dumps(err.body)  # the echo was there, and was masked
    assert not leaks(texts, KEY), leaks(texts, KEY)


def test_no_clients_repr_shows_the_key_or_the_proxy_password(
    secret_env: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_prefinery.hooks.mailchimp import MailchimpHook
    from airflow_provider_prefinery.hooks.piggy import PiggyHook
    from airflow_provider_prefinery.hooks.prefinery import PrefineryHook

    proxy = f"http://corp:{PROXY_PASSWORD}@127.0.0.1:3128"
    for name, value in secret_env.connections().items():
        conn = json.loads(value)
        conn["extra"] = {**conn.get("extra", {}), "proxy": proxy}
        monkeypatch.setenv(name, json.dumps(conn))

    reprs = {cls.__name__: repr(cls().client) for cls in (PrefineryHook, MailchimpHook, PiggyHook)}

    assert all("RestClient(" in text for text in reprs.values())
    assert not [n for n, text in reprs.items() if KEY in text or PROXY_PASSWORD in text], reprs


def test_a_key_templated_into_a_failing_record_is_masked_in_the_xcom(
    secret_env: SandboxServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A DAG author templates the key into a record's ``reason`` (``{{ conn.prefinery_default.password }}``
    renders it); the record fails (unknown e-mail), so its failure entry, record included, becomes the
    task's XCom. It goes through Airflow's secrets masker, which knows the key since the hook read it."""
    from airflow_provider_prefinery.operators.prefinery import PrefineryCreatePointsOperator
    from tests.reliability.soak import RecordingTI

    rendered = {"email": "nobody@example.org", "quantity": 1, "reason": f"key {KEY}"}
    operator = PrefineryCreatePointsOperator(
        task_id="points", records=[rendered], fail_on_error=False, progress_interval=0
    )
    ti = RecordingTI()

    report = operator.execute({"ti": ti})

    assert report["counts"]["failed"] == 1 and report["failed"][0]["code"] == 2803  # the server refused it
    assert report["failed"][0]["record"]["reason"] == "key ***"
    out = capfd.readouterr()
    texts = {"xcom": json.dumps(report), "pushed": repr(vars(ti)), "stdout": out.out, "stderr": out.err}
    texts["logging"] = caplog.text
    assert not holding(texts, KEY), holding(texts, KEY)
