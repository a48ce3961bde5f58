#!/usr/bin/env bash
# deploy/test.sh: the one command that runs every test on a fresh Debian 12 machine.
# 1. installs packages (deploy/setup.sh);
# 2. ThreadSanitizer: builds the concurrent tests and runs them (ctest label "tsan"), then the
#    gateway's SQL and fault e2e suites against a TSan-built atls-proxy;
# 3. AddressSanitizer + UndefinedBehaviorSanitizer: builds everything with ATLS_SANITIZE and runs
#    the whole suite except the fuzz targets (they build their own ASan+UBSan binaries with
#    clang and run in stage 4);
# 4. builds everything with hot asserts on and runs the whole suite (unit, e2e, fuzz).
# Each stage prints its wall time; the summary at the end is what CI keeps under 20 minutes on
# 2 cores (measured before the last trims: setup 2 s, tsan build 70 s, tsan run 184 s, asan
# build 152 s, asan run 347 s, full build 145 s, full run 324 s = 20.4 min; the TSan nonce flood
# and the ASan bench smoke were then left out, ~1.5 min). Arguments are passed to the last ctest
# (e.g. -R Fault).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc)
TIMES=()

# stage NAME CMD...: runs CMD, records its wall time under NAME.
stage() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name"
    "$@"
    TIMES+=("$(printf '%-28s %4ds' "$name" $((SECONDS - t0)))")
    echo "== $name: $((SECONDS - t0)) s"
}

summary() {
    echo "== stage times"
    printf '   %s\n' "${TIMES[@]}"
}
trap summary EXIT

stage "setup" bash deploy/setup.sh

# ---- ThreadSanitizer: the lock-free nonce table, the reuse cache, the audit rings and store
# (ctest label tsan), then the gateway itself: the TSan-built atls-proxy (workers, control/API
# thread, store thread, cross-worker cancel, reloads) under the SQL, fault and mTLS-cache e2e
# suites (~1.5 minutes; the cache suite reloads the client CA under a live worker, ~10 s).
# Reports inside the proxy kill it (halt_on_error) and fail the test. FaultNonce is left out
# here: 65,536 API requests take ~80 s under TSan, and the nonce table's concurrency is what
# policy_nonce_race_test checks; the flood runs in stages 3 and 4.
# These e2e suites run with every TLS handshake step on the workers' handshake threads
# (ATLS_E2E_HANDSHAKE_THREAD=always, see tests/e2e/harness.cc): the steps, the SSL and the
# attestation state cross threads there, and reloads wait for the steps in flight.
# WARNING: Debian's librocksdb is not TSan-instrumented; interceptor calls made from inside it
# are suppressed, as in tests/store/tsan_rocksdb.cc. Our own code stays fully checked.
TSAN_DIR="${ATLS_TSAN_BUILD_DIR:-build-tsan}"
TSAN_TARGETS=(policy_nonce_race_test policy_reuse_test store_audit_test store_query_test
    atls-proxy atlsctl e2e_sql_test e2e_fault_test e2e_mtls_cache_test e2e_hsthread_test)
tsan_build() {
    cmake -S . -B "$TSAN_DIR" -DCMAKE_BUILD_TYPE=Debug -DATLS_TSAN=ON >/dev/null
    cmake --build "$TSAN_DIR" -j"$JOBS" --target "${TSAN_TARGETS[@]}"
    printf 'called_from_lib:librocksdb.so\n' >"$TSAN_DIR/tsan.supp"
}
tsan_run() {
    (cd "$TSAN_DIR" &&
        TSAN_OPTIONS="halt_on_error=1:suppressions=$(pwd)/tsan.supp" \
            ctest -L tsan --output-on-failure -j1 --timeout 900 &&
        ATLS_E2E_HANDSHAKE_THREAD=always \
        TSAN_OPTIONS="halt_on_error=1:suppressions=$(pwd)/tsan.supp" \
            ctest -R '^(SqlTest|Fault[A-Za-z]*|MtlsCache|HandshakeThread)\.' -E '^FaultNonce\.' \
                --output-on-failure -j"$JOBS" --timeout 900)
}
stage "tsan build" tsan_build
stage "tsan run" tsan_run

# ---- AddressSanitizer + UndefinedBehaviorSanitizer over the whole suite.
# ATLS_SANITIZE compiles every target with -fsanitize=address,undefined
# -fno-sanitize-recover=all: the first UB report aborts like an ASan error. The e2e tests start
# the sanitized atls-proxy, so the gateway's own data path runs instrumented; its reports go to
# the proxy's log and the test fails on the dead process or its exit status (abort_on_error:
# a leak found by LeakSanitizer at shutdown turns exit 0 into an abort). The e2e suites run
# here with every TLS handshake step on the handshake threads (ATLS_E2E_HANDSHAKE_THREAD=
# always), and in stage 4 with the default (auto), so both paths run every suite.
# Excluded, and why:
#  - label fuzz: run_fuzz.sh builds its own clang -fsanitize=fuzzer,address,undefined binaries;
#    running them here again would only repeat stage 4.
#  - label browser: chromium + node drive the dashboard; it adds no C code over demo_ci_test,
#    which does run here.
#  - label bench: the atls-bench smoke run (a load generator, not the gateway) costs ~25 s
#    under ASan and measures nothing there; it runs in stage 4.
#  Known bugs excluded here: none (add `-E '^(Suite\.Test)$'` with the reason when one is
#  found, and remove it once fixed).
ASAN_DIR="${ATLS_ASAN_BUILD_DIR:-build-asan}"
asan_build() {
    cmake -S . -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=Debug -DATLS_SANITIZE=ON >/dev/null
    cmake --build "$ASAN_DIR" -j"$JOBS"
}
asan_run() {
    (cd "$ASAN_DIR" &&
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        ATLS_E2E_HANDSHAKE_THREAD=always \
        ctest -LE '^(fuzz|browser|bench)$' --output-on-failure -j"$JOBS" \
            --timeout 900)
}
stage "asan+ubsan build" asan_build
stage "asan+ubsan run" asan_run

# ---- The whole suite, optimized, hot asserts on (unit, e2e, fuzz ~15 s per target).
BUILD_DIR="${ATLS_BUILD_DIR:-build}"
full_build() {
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATLS_HOT_ASSERTS=ON >/dev/null
    cmake --build "$BUILD_DIR" -j"$JOBS"
}
full_run() {
    (cd "$BUILD_DIR" && ctest --output-on-failure -j"$JOBS" --timeout 900 "$@")
}
stage "full build" full_build
stage "full run" full_run "$@"
cd "$ROOT"
