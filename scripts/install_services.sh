#!/usr/bin/env bash
# Install the real services the tests start (tests/services: Redis and PostgreSQL), idempotently:
#   - Debian's redis-server (redis-server, redis-cli), when it is missing;
#   - Debian's postgresql (initdb, postgres, pg_isready, psql under /usr/lib/postgresql/<v>/bin), when missing.
# The tests start their own servers on 127.0.0.1 and free ports, in temp dirs; nothing the packages set up is
# used, and no daemon is started by the install (a temporary policy-rc.d refuses it when none exists).
# Usage: scripts/install_services.sh    (as root or with sudo; `apt-get update` runs once, only when needed)
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bindir() {
    # The newest /usr/lib/postgresql/<version>/bin holding initdb (Debian keeps them off PATH).
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r dir; do
        [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && echo "$dir"
    done | tail -n1
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -n "$(pg_bindir)" ] || missing+=(postgresql)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_services: redis-server and postgresql already installed"
else
    echo "install_services: installing ${missing[*]}"
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        # Debian's invoke-rc.d asks this script whether a package may start its daemon: 101 = no.
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        trap 'as_root rm -f '"$policy" EXIT
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

redis="$(command -v redis-server)"
bindir="$(pg_bindir)"
echo "install_services: ready ($("$redis" --version | cut -d' ' -f1-3); $("$bindir/postgres" --version))"
