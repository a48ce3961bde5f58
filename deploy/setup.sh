#!/usr/bin/env bash
# deploy/setup.sh: install every Debian 12 package atls-proxy needs to build, test and bench.
# Idempotent: packages already present are skipped; safe to run on every CI start.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config git ca-certificates curl
    liburing-dev android-libboringssl-dev librocksdb-dev
    libprotobuf-c-dev protobuf-c-compiler libinih-dev libmimalloc-dev
    libgtest-dev libmicrohttpd-dev
    postgresql postgresql-contrib postgresql-client haproxy
    clang libclang-rt-14-dev procps iproute2 openssl
    chromium nodejs fonts-dejavu-core
    gnuplot-nox
)
# The dashboard browser test (tests/dashboard) drives chromium with playwright-core from npm.
# Debian's nodejs ships npm separately; NodeSource's nodejs includes it and conflicts with it.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
# npm_test_deps installs the browser test's pinned node modules (package-lock.json) once.
npm_test_deps() {
    local d
    d="$(cd "$(dirname "$0")/.." && pwd)/tests/dashboard"
    if [ -f "$d/package-lock.json" ] && [ ! -d "$d/node_modules/playwright-core" ]; then
        echo "setup: npm ci in tests/dashboard"
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all ${#PKGS[@]} packages present"
    npm_test_deps
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
npm_test_deps
echo "setup: done"
