#!/usr/bin/env bash
# Install the Debian packages the database tests need: a real PostgreSQL and a real MariaDB
# server (tests/dbservers.py starts private instances of them on loopback; the system services
# are never used), and the Rust crates the native engine builds from offline (native/,
# .cargo/config.toml: they land in /usr/share/cargo/registry). Idempotent and quiet; does nothing (with a message) without root or apt.
# Called by scripts/setup.sh; safe to run again.
set -euo pipefail

PACKAGES=(postgresql mariadb-server mariadb-client
    librust-pyo3-dev librust-regex-dev librust-aho-corasick-dev librust-memchr-dev)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: not root: skipping the database servers (${PACKAGES[*]});" \
        "the database tests will be skipped and the native engine not built unless they are installed" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get: install ${PACKAGES[*]} by hand to run the database tests" \
        "and build the native engine" >&2
    exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# The packages' own services are not wanted (the tests start private instances): tell
# invoke-rc.d not to start them while installing, and remove the override afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT

echo "install-test-deps: installing ${missing[*]}" >&2
log="$(mktemp)"
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-test-deps: apt-get failed (output above)" >&2
    exit 1
fi
rm -f "$log"
