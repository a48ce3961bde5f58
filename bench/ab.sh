#!/usr/bin/env bash
# bench/ab.sh: A/B two atls-proxy binaries on the 1-connection bulk rows, in the same host
# minutes, with HAProxy alongside as the reference. Each round runs, for each direction (down,
# up), one row through A, one through B and one through HAProxy, so a slow host minute hits all
# three. Pinning as run.sh's split mode: the gateways and HAProxy on CPU 0, the load generator and
# atls-bench's built-in backend on CPU 1. Mutual TLS, the same certificates for every target.
# Priorities as run.sh's default: the gateways at worker_priority = realtime, HAProxy under
# chrt -f 1 (normal if chrt fails); every row records its target's (proxy_priority).
#
#   bash bench/ab.sh [--rounds N] [--duration S] [--conns N] PROXY_A PROXY_B
#
# Prints every row, then per direction the pairs (B / A rate, B / A CPU per GB, each against
# HAProxy) and in how many pairs B was faster and cheaper. Writes the rows as JSON lines to
# $BENCH_AB_OUT (default /tmp/atls-bench-ab.json). Needs atls-bench built (ATLS_BUILD_DIR, default
# build-bench) and haproxy. Ports BENCH_PORT_BASE+40 .. +52 (default 27440-27452).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ROUNDS=4 DUR=4 CONNS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    -h | --help) sed -n 2,15p "$0"; exit 0 ;;
    -*) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
if [ $# -ne 2 ]; then
    echo "usage: bash bench/ab.sh [--rounds N] [--duration S] [--conns N] PROXY_A PROXY_B" >&2
    exit 2
fi
for v in "$ROUNDS" "$DUR" "$CONNS"; do
    if ! [[ "$v" =~ ^[1-9][0-9]{0,3}$ ]]; then
        echo "ab.sh: --rounds, --duration and --conns take 1..9999" >&2
        exit 2
    fi
done
A=$(realpath "$1") B=$(realpath "$2")
for p in "$A" "$B"; do
    [ -x "$p" ] || { echo "ab.sh: $p is not an executable" >&2; exit 2; }
done
BENCH=${ATLS_BUILD_DIR:-$ROOT/build-bench}/bench/atls-bench
[ -x "$BENCH" ] || { echo "ab.sh: no atls-bench at $BENCH (build it, or set ATLS_BUILD_DIR)" >&2; exit 2; }
command -v haproxy >/dev/null || { echo "ab.sh: haproxy is not installed" >&2; exit 2; }
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then PROXY_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1); else PROXY_CPU=() LOAD_CPU=(); fi

BASE=$(( ${BENCH_PORT_BASE:-27400} + 40 ))
SRV=$BASE P_A=$((BASE + 1)) P_B=$((BASE + 2)) API_A=$((BASE + 3)) API_B=$((BASE + 4))
H_SRV=$((BASE + 11)) H_PG=$((BASE + 10)) H_TCP=$((BASE + 12))
busy=$(ports_in_use "$BASE" $((BASE + 12)) | tr '\n' ' ')
if [ -n "$busy" ]; then
    echo "ab.sh: port(s) ${busy}of $BASE-$((BASE + 12)) already have a listener; stop it or set BENCH_PORT_BASE" >&2
    exit 1
fi

W=$(mktemp -d /tmp/atls-bench-ab.XXXXXX)
OUT=${BENCH_AB_OUT:-/tmp/atls-bench-ab.json}
: >"$OUT"
PIDS=()
declare -A GW_PID=()
cleanup() {
    bench_stop_all
    rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
bench_certs "$W" ab 1

"${LOAD_CPU[@]}" "$BENCH" serve --listen 127.0.0.1:$SRV --conns 100 >serve.out 2>&1 &
PIDS+=($!)

# start_gateway NAME BINARY PORT API_PORT: one worker, real-time priority, as run.sh's split mode.
start_gateway() {
    mkdir -p "$W/$1"
    cat >"$W/$1/p.ini" <<EOF
[proxy]
node_id = $1
listen = 127.0.0.1:$3
workers = 1
worker_priority = realtime
conns_max = 256
[tls]
cert = $W/server.crt
key = $W/server.key
client_ca = $W/ca.crt
[attestation]
required = false
[backend]
servers = 127.0.0.1:$SRV
health_check = off
[api]
listen = 127.0.0.1:$4
[audit]
dir = $W/$1/audit
sync = batch
EOF
    "${PROXY_CPU[@]}" "$2" --config "$W/$1/p.ini" >"$W/$1/out" 2>"$W/$1/log" &
    PIDS+=($!)
    GW_PID[$1]=$!
    for _ in $(seq 100); do
        grep -q ready "$W/$1/out" && return 0
        sleep 0.1
    done
    echo "ab.sh: gateway $1 ($2) did not start:" >&2
    tail -5 "$W/$1/log" >&2
    exit 1
}
start_gateway a "$A" $P_A $API_A
start_gateway b "$B" $P_B $API_B
declare -A GW_PRIO=()
for g in a b; do
    GW_PRIO[$g]="worker_priority = realtime"
    if grep -q "worker_priority = realtime refused" "$W/$g/log"; then
        GW_PRIO[$g]="worker_priority = realtime refused (normal)"
        echo "WARNING: gateway $g could not run its worker SCHED_FIFO (needs CAP_SYS_NICE)" >&2
    fi
done
# HAProxy's priority follows the gateways', as in run.sh: SCHED_FIFO 1 for the whole process
# (it has no guard like the gateway's drop to normal above 80% CPU).
HAP_PRIO=()
HAP_PRIO_DESC="normal (chrt -f 1 failed)"
if chrt -f 1 true 2>/dev/null; then
    HAP_PRIO=(chrt -f 1)
    HAP_PRIO_DESC="SCHED_FIFO 1 (chrt -f 1)"
else
    echo "WARNING: chrt -f 1 failed (needs CAP_SYS_NICE): HAProxy runs at normal priority" >&2
fi
export HAP_THREADS=1 HAP_MAXCONN=1000 HAP_DIR=$W HAP_PG_PORT=$H_PG HAP_SRV_PORT=$H_SRV \
    HAP_TCP_PORT=$H_TCP HAP_PG_BACKEND=$SRV HAP_SRV_BACKEND=$SRV
# No TLS 1.3 session tickets, as run.sh (bench/haproxy-openssl.cnf).
"${PROXY_CPU[@]}" "${HAP_PRIO[@]}" env OPENSSL_CONF="$ROOT/bench/haproxy-openssl.cnf" haproxy -db \
    -f "$ROOT/bench/haproxy.cfg" >hap.log 2>&1 &
HAP=$!
PIDS+=("$HAP")
for _ in $(seq 50); do
    ss -Hltn | grep -q ":$H_SRV " && break
    sleep 0.1
done
# What its threads actually run at (ps CLS: FF = SCHED_FIFO, TS = normal).
HAP_CLS=$(ps -L -o cls= -p "$HAP" | sort -u | xargs)
if [ ${#HAP_PRIO[@]} -gt 0 ] && [ "$HAP_CLS" != FF ]; then
    HAP_PRIO_DESC="not all SCHED_FIFO (threads: $HAP_CLS)"
    echo "WARNING: HAProxy under chrt -f 1 has threads of class $HAP_CLS" >&2
fi

# row TARGET PORT PID DIRECTION PRIORITY
row() {
    if ! "${LOAD_CPU[@]}" "$BENCH" bulk --port "$2" --tls direct --cert "$W/client.crt" \
        --key "$W/client.key" --proxy-pid "$3" --target-name "$1" --out "$OUT" --label srv \
        --proxy-priority "$5" --"$4" --conns "$CONNS" --duration "$DUR" 2>>"$W/err"; then
        echo "ab.sh: row $1 $4 failed:" >&2
        tail -3 "$W/err" >&2
        exit 1
    fi
}
echo "ab.sh: A=$A"
echo "ab.sh: B=$B"
echo "ab.sh: $ROUNDS rounds, $DUR s rows, $CONNS connection(s)"
echo "ab.sh: priority: A ${GW_PRIO[a]}, B ${GW_PRIO[b]}, HAProxy $HAP_PRIO_DESC (threads: $HAP_CLS)"
for _ in $(seq "$ROUNDS"); do
    for dir in down up; do
        row A $P_A "${GW_PID[a]}" $dir "${GW_PRIO[a]}"
        row B $P_B "${GW_PID[b]}" $dir "${GW_PRIO[b]}"
        row haproxy $H_SRV $HAP $dir "$HAP_PRIO_DESC"
    done
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    print('%-8s %-5s %7.2f Gbit/s %6.3f CPU-s/GB  busy %s' % (
        r['target'], r['direction'], r['gbit_per_s'], r['proxy_cpu_s_per_gb'], r.get('cpu_busy_pct')))
for d in ('down', 'up'):
    rs = [r for r in rows if r['direction'] == d]
    trip = [rs[i:i + 3] for i in range(0, len(rs) - 2, 3)]
    faster = cheaper = 0
    print('\n%s: B/A rate, B/A CPU per GB; A and B against HAProxy (rate, CPU per GB)' % d)
    for a, b, h in trip:
        ra, rb = b['gbit_per_s'] / a['gbit_per_s'], b['proxy_cpu_s_per_gb'] / a['proxy_cpu_s_per_gb']
        faster += ra > 1
        cheaper += rb < 1
        print('  %.3f  %.3f   A %.2fx at %.2fx   B %.2fx at %.2fx' % (
            ra, rb, a['gbit_per_s'] / h['gbit_per_s'], a['proxy_cpu_s_per_gb'] / h['proxy_cpu_s_per_gb'],
            b['gbit_per_s'] / h['gbit_per_s'], b['proxy_cpu_s_per_gb'] / h['proxy_cpu_s_per_gb']))
    print('  B faster in %d of %d pairs, cheaper per GB in %d of %d' % (faster, len(trip), cheaper, len(trip)))
PY
