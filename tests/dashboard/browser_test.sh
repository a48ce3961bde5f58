#!/usr/bin/env bash
# browser_test.sh: the dashboard in a real headless browser. Runs deploy/demo.sh --ci (three
# PostgreSQL nodes, three attested gateways, five admitted and five denied clients) on free ports
# and, while it runs, dashboard_test.js drives Debian's chromium through playwright-core against
# the gateways' dashboards. Usage: browser_test.sh BUILD_DIR SOURCE_DIR ARTIFACT_DIR [demo-only]
# With demo-only, just demo.sh --ci on free ports (no browser). Exit 77 (ctest SKIP) only when
# chromium is not installed.
set -euo pipefail
BUILD=$1
SRC=$2
ART=$3
MODE=${4:-browser}
CHROMIUM=${ATLS_CHROMIUM:-/usr/bin/chromium}
if [ "$MODE" = browser ] && [ ! -x "$CHROMIUM" ]; then
    echo "SKIP: $CHROMIUM is not installed (bash deploy/setup.sh installs Debian's chromium)"
    exit 77
fi
command -v node >/dev/null || { echo "FAIL: node is not installed (deploy/setup.sh)"; exit 1; }
if [ "$MODE" = browser ] && [ ! -d "$SRC/tests/dashboard/node_modules/playwright-core" ]; then
    echo "FAIL: tests/dashboard/node_modules is missing: run bash deploy/setup.sh (npm ci there)"
    exit 1
fi
for b in atls-proxy atlsctl; do
    [ -x "$BUILD/core/$b" ] || { echo "FAIL: $BUILD/core/$b is not built"; exit 1; }
done
mkdir -p "$ART"

# Free ports: gateways on BASE, BASE+10, BASE+20 (+1 for their databases), APIs on API..API+2.
port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
pick() { # pick: a base port whose 3-gateway block and API block are all free
    local tries base api ok p
    for tries in $(seq 50); do
        base=$((20000 + (RANDOM % 900) * 10))
        api=$((11000 + (RANDOM % 2000) * 3))
        ok=1
        for p in $base $((base + 1)) $((base + 10)) $((base + 11)) $((base + 20)) $((base + 21)) \
            $api $((api + 1)) $((api + 2)); do
            port_free "$p" || ok=0
        done
        if [ "$ok" -eq 1 ]; then
            echo "$base $api"
            return 0
        fi
    done
    return 1
}
read -r BASE API < <(pick) || { echo "FAIL: no free ports"; exit 1; }
DIR=$(mktemp -d /tmp/atls-dashboard-test.XXXXXX)
chmod 755 "$DIR"
trap 'rm -rf "$DIR"' EXIT

EXEC=()
[ "$MODE" = browser ] && EXEC=(--exec "node '$SRC/tests/dashboard/dashboard_test.js' '$SRC' '$ART'")
ATLS_DEMO_DIR="$DIR/demo" ATLS_BUILD_DIR="$BUILD" ATLS_DEMO_SKIP_SETUP=1 ATLS_DEMO_SKIP_BUILD=1 \
    ATLS_DEMO_BASE_PORT=$BASE ATLS_DEMO_API_PORT=$API ATLS_CHROMIUM="$CHROMIUM" \
    bash "$SRC/deploy/demo.sh" --ci "${EXEC[@]}"
