"""The README stays true to the code: its endpoint table and its two commands."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_prefinery.hooks.prefinery import ENDPOINTS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
MAKEFILE = (Path(__file__).resolve().parents[1] / "Makefile").read_text()


def test_readme_endpoint_table_matches_the_hooks_table() -> None:
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| `([A-Z]+ [^`]+)` \|", README, re.M)}
    assert rows == {name: f"{e.method} {e.path}" for name, e in ENDPOINTS.items()}


def test_readme_marks_every_assumed_endpoint() -> None:
    for name, endpoint in ENDPOINTS.items():
        row = next(line for line in README.splitlines() if line.startswith(f"| `{name}` |"))
        assert row.rstrip(" |").endswith(endpoint.shape), name


def test_readme_opens_with_the_two_make_targets_that_exist() -> None:
    block = README.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    assert re.search(r"^demo:", MAKEFILE, re.M)
    assert re.search(r"^test:", MAKEFILE, re.M)
