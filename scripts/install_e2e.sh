#!/usr/bin/env bash
# Install what the browser tests (tests/e2e, marker e2e) need, idempotently:
#   - Debian's Chromium at /usr/bin/chromium (apt), when it is missing;
#   - Playwright's Python driver, pinned, into the project's virtualenv (pip), when it is missing or differs.
# Playwright only drives the Debian browser: never run `playwright install` (browser downloads fail here).
# Usage: scripts/install_e2e.sh            (from anywhere; PYTHON=/path/to/python to use another interpreter)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
CONSTRAINTS="requirements/constraints.txt"
# The pin: requirements/constraints.txt wins once it lists playwright; this default matches it.
PLAYWRIGHT_VERSION="1.65.2"
if [ -f "$CONSTRAINTS" ] && grep -qi '^playwright==' "$CONSTRAINTS"; then
    PLAYWRIGHT_VERSION="$(grep -i '^playwright==' "$CONSTRAINTS" | head -n1 | cut -d= -f3)"
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x /usr/bin/chromium ]; then
    echo "install_e2e: installing Debian's chromium"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "install_e2e: chromium already at /usr/bin/chromium"
fi

installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)"
if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
    echo "install_e2e: installing playwright==$PLAYWRIGHT_VERSION (found: ${installed:-none})"
    "$PYTHON" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
else
    echo "install_e2e: playwright $installed already installed"
fi

# Prove both work together: start the browser headless and render a page, as the tests will.
"$PYTHON" - <<'PY'
from playwright.sync_api import sync_playwright

args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args, timeout=60_000)
    page = browser.new_page()
    page.set_content("<p id='ok'>ok</p>")
    assert page.inner_text("#ok") == "ok"
    print(f"install_e2e: ready (Chromium {browser.version} driven by Playwright)")
    browser.close()
PY
