#!/usr/bin/env bash
# deploy/test.sh: the one command that runs every test on a fresh Debian 12 machine.
# 1. installs packages (deploy/setup.sh);
# 2. builds the concurrent tests with ThreadSanitizer and runs them (ctest label "tsan");
# 3. builds everything with hot asserts on and runs the whole suite (unit, e2e, fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
JOBS=$(nproc)

TSAN_DIR="${ATLS_TSAN_BUILD_DIR:-build-tsan}"
TSAN_TARGETS=(policy_nonce_race_test policy_reuse_test store_audit_test store_query_test)
echo "== ThreadSanitizer: ${TSAN_TARGETS[*]}"
cmake -S . -B "$TSAN_DIR" -DCMAKE_BUILD_TYPE=Debug -DATLS_TSAN=ON >/dev/null
cmake --build "$TSAN_DIR" -j"$JOBS" --target "${TSAN_TARGETS[@]}"
(cd "$TSAN_DIR" && TSAN_OPTIONS="halt_on_error=1" \
    ctest -L tsan --output-on-failure -j1 --timeout 900)

BUILD_DIR="${ATLS_BUILD_DIR:-build}"
echo "== full suite"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATLS_HOT_ASSERTS=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure -j"$JOBS" --timeout 900 "$@"
