#!/usr/bin/env bash
# deploy/test.sh: the one command that runs every test on a fresh Debian 12 machine.
# Installs packages (deploy/setup.sh), builds with hot asserts on, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
BUILD_DIR="${ATLS_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATLS_HOT_ASSERTS=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@"
