"""The declared floors of two dependencies are real: read from the released files, not from memory.

* ``requests``: 2.32.4 is the first release without the ``.netrc`` credential leak (CVE-2024-47081);
  the floor must not admit an older one.
* ``apache-airflow-providers-common-compat``: the floor release must define every name the package (and
  the example DAGs) import from it, and the release before it must lack one (so it is the first). The
  releases' wheels are fetched with ``pip download`` (skipped when no package index answers).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
COMPAT = "apache-airflow-providers-common-compat"
COMPAT_PACKAGE = "airflow.providers.common.compat"


def floors() -> dict[str, Requirement]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {req.name: req for req in map(Requirement, deps)}


def floor_version(req: Requirement) -> Version:
    lower = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
    assert lower, f"{req} declares no lower bound"
    return Version(lower[0])


def compat_imports() -> dict[str, set[str]]:
    """Module (below ``airflow.providers.common.compat``) -> names imported from it, anywhere in the code."""
    found: dict[str, set[str]] = defaultdict(set)
    for folder in ("airflow_provider_prefinery", "dags_examples"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(COMPAT_PACKAGE + "."):
                    found[node.module.removeprefix(COMPAT_PACKAGE + ".")] |= {a.name for a in node.names}
    return dict(found)


def download(version: Version, folder: Path) -> Path:
    """The wheel of one common-compat release (pip's own client and cache)."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:"]
    cmd += ["--python-version", "3.12", "-d", str(folder), f"{COMPAT}=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        pytest.skip(f"no package index answered for {COMPAT}=={version}: {done.stderr[-300:]}")
    wheels = folder.glob("apache_airflow_providers_common_compat-*.whl")
    return next(w for w in wheels if Version(w.name.split("-")[1]) == version)


def defined_names(wheel: Path, module: str) -> set[str] | None:
    """Names a release's module offers (its lazy-import table's keys included); None without the module."""
    base = "airflow/providers/common/compat/" + module.replace(".", "/")
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        source = next(
            (archive.read(p).decode() for p in (f"{base}.py", f"{base}/__init__.py") if p in members), None
        )
    if source is None:
        return None
    names = set(re.findall(r"""["'](\w+)["']\s*:""", source))  # "Name": ("module", ...) tables
    names |= set(re.findall(r"\bas (\w+)\b", source))  # from x import Name as Name
    names |= set(re.findall(r"^(?:async def|def|class) (\w+)", source, re.M))
    names |= set(re.findall(r"^(\w+)\s*[:=]", source, re.M))
    return names


def missing(wheel: Path, wanted: dict[str, set[str]]) -> dict[str, set[str]]:
    gaps = {}
    for module, names in wanted.items():
        offered = defined_names(wheel, module)
        lacking = names if offered is None else names - offered
        if lacking:
            gaps[module] = lacking
    return gaps


def test_requests_floor_excludes_the_netrc_leak() -> None:
    spec = floors()["requests"].specifier

    assert not spec.contains("2.32.3") and spec.contains("2.32.4")


def test_the_common_compat_floor_is_the_first_release_with_everything_the_package_imports(
    tmp_path: Path,
) -> None:
    wanted = compat_imports()
    assert "sdk" in wanted and "mask_secret" in wanted["sdk"]  # the scan sees the imports
    floor = floor_version(floors()[COMPAT])

    assert missing(download(floor, tmp_path), wanted) == {}

    listed = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", COMPAT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    versions = [Version(v) for v in re.findall(r"[\d.]+", listed.stdout.partition("Available versions:")[2])]
    older = [v for v in versions if v < floor]
    if not older:
        pytest.skip("no release listed below the floor")
    assert missing(download(max(older), tmp_path), wanted), (
        f"{max(older)} already has every name: lower the floor"
    )
