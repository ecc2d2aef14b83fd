"""The ``prefinery-sandbox`` command: quick start-up, one ready line, clean stop, state in a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests

from airflow_provider_prefinery.sandbox.testing import READY_PREFIX, run_sandbox, sandbox_command


def test_cli_prints_its_url_within_3_seconds_and_exits_0_on_sigterm():
    started = time.monotonic()
    cmd = sandbox_command(api_keys=["k1", "k2"])
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        elapsed = time.monotonic() - started
        assert line.startswith(READY_PREFIX) and "keys=k1,k2" in line
        assert elapsed < 3.0, elapsed
        url = json.loads(line[line.index("{") :])["url"]
        assert requests.get(f"{url}/api/v2/betas.json", auth=("k2", ""), timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
        assert process.stdout.read() == ""  # one line only
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not _alive(process.pid)


def test_module_entry_point_answers_help():
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_prefinery.sandbox", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--rate-limit-scale" in out and "--api-key" in out


def test_run_sandbox_leaves_no_process_and_a_db_file_keeps_state(tmp_path):
    db = str(tmp_path / "sandbox.db")
    with run_sandbox(seed="empty", db=db) as sb:
        key = {"Authorization": f"Bearer {sb.api_key}"}
        created = requests.post(
            f"{sb.url}/api/v2/betas/{sb.beta_id}/testers.json",
            headers=key,
            json={"tester": {"email": "kept@example.com"}},
            timeout=5,
        )
        assert created.status_code == 201
        pid = sb.process.pid
    assert not _alive(pid)
    with run_sandbox(db=db, extra_args=["--keep"]) as sb:
        assert [u["email"] for u in sb.control.users()] == ["kept@example.com"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is not a running process
        return fh.read().split()[2] != "Z"
