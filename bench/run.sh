#!/usr/bin/env bash
# bench/run.sh: the bench harness in one command. Builds atls-proxy, atlsctl and atls-bench in
# build-bench/, starts PostgreSQL, the built-in pgwire backend (atls-bench serve), four atls-proxy
# instances (mutual TLS and attested, in front of each backend) and HAProxy (bench/haproxy.cfg),
# runs every scenario against direct / atls-proxy / HAProxy in the same run plus pgbench -S
# through each, prints the ratio table, writes bench/results/*.json and PNG charts. Everything it
# starts is stopped by PID on exit.
#
#   bash bench/run.sh [--quick] [--pin split|shared] [--only LIST] [--results DIR]
#                     [--worker-priority realtime|normal] [--busy-poll US]
#                     [--order alternate|atls-first|haproxy-first]
#
#   --quick    short runs (1 s, 1,000 idle connections, 300 attested handshakes): a sanity pass
#   --pin      split (default): the proxy under test (1 worker / 1 thread) on CPU 0; load
#              generator, PostgreSQL and the built-in backend on CPU 1.
#              shared: nothing pinned; atls-proxy workers = 2 (it pins worker i to CPU i itself),
#              HAProxy nbthread 2; everything shares both cores.
#   --only     comma list of scenario groups: handshake,bulk,query,idle,storm,pgbench, and
#              storm-ab (not in the default list): the storm through the same proxy at
#              worker_priority = realtime, normal, and direct (no proxy), alternating,
#              BENCH_AB_ROUNDS rounds (4)
#   --worker-priority  [proxy] worker_priority of the atls-proxy instances (default realtime:
#              SCHED_FIFO workers while established sessions move bytes, normal priority while
#              busy or without such sessions). At realtime HAProxy runs under chrt -f 1
#              (SCHED_FIFO 1, the whole process, all the time: it has no such guard); at normal
#              it runs at normal priority, and so it does with --busy-poll (a SCHED_FIFO thread
#              that never sleeps would get its CPU taken for the kernel's RT reserve, 50 ms a
#              second) or when chrt fails. Every row records its target's priority
#              (proxy_priority). The storm adds two rows at normal priority either way.
#   --busy-poll  [proxy] busy_poll_us of the atls-proxy instances (default 0: off) and, for any
#              value above 0, HAProxy's own busy-polling: both proxies then poll instead of
#              sleeping, so whoever sends them data has no sleeping CPU to wake (in a VM, an
#              interrupt and a VM exit). Meant for --pin split, where each proxy has its own CPU.
#   --order    the order of the rows that compare targets: direct always first (it runs no proxy),
#              then atls-proxy and HAProxy; alternate (default): atls-proxy first in the first
#              group of rows (e.g. handshake srv), HAProxy first in the next, and so on, so that
#              work a row leaves behind (RocksDB compaction, a busy CPU cache) falls on either
#              proxy's row alike; atls-first / haproxy-first: always that way (every run before
#              this option was atls-first). Every row records its group's order (run_order).
#   BENCH_CERT_POOL (environment, 3072): client certificates of the mtls-distinct handshake
#              rows and of every mTLS storm's handshakes (storm and storm-ab, both proxies; the
#              probe's own connections keep client.crt), each new connection the next one in
#              turn (atls-bench --cert-pool). The
#              gateway caches verified client chains per worker (core/core_certcache.c: 256 sets
#              x 4 ways, LRU in a set); cycling through N certificates, a chain is a hit only in
#              a set that N/256 keys on average share with at most 3 others: expected hit share
#              P(Poisson(N/256) <= 3), 15% at 1,536, 4% at 2,048, 0.2% at 3,072. Each row records
#              the gateway's own count (cert_cache_hits, cert_verifications).
#   BENCH_HAP_TICKETS (environment, 0): 1 starts HAProxy with OpenSSL's defaults, which send two
#              TLS 1.3 session tickets per handshake despite no-tls-tickets; by default it gets
#              bench/haproxy-openssl.cnf (NumTickets = 0), so that, like atls-proxy, it sends none.
#              Each row records what the client received (tickets_per_handshake).
#   BENCH_STEAL_RETRIES (environment, 2): a result during which the hypervisor stole CPU (>= 40 ms
#              in a latency section, >= 5% of a throughput run) is run again up to this many
#              times, every target alike; 0: never
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

QUICK=0
PIN=split
ONLY=handshake,bulk,query,idle,storm,pgbench
RESULTS=$ROOT/bench/results
WPRIO=realtime
BUSY_POLL=0
ORDER=alternate
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --pin) PIN=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --results) RESULTS=$2; shift ;;
    --worker-priority) WPRIO=$2; shift ;;
    --busy-poll) BUSY_POLL=$2; shift ;;
    --order) ORDER=$2; shift ;;
    *) echo "usage: bash bench/run.sh [--quick] [--pin split|shared] [--only LIST] [--results DIR] [--worker-priority realtime|normal] [--busy-poll US] [--order alternate|atls-first|haproxy-first]" >&2; exit 2 ;;
    esac
    shift
done
case "$PIN" in split | shared) ;; *) echo "run.sh: --pin split|shared" >&2; exit 2 ;; esac
case "$WPRIO" in realtime | normal) ;; *) echo "run.sh: --worker-priority realtime|normal" >&2; exit 2 ;; esac
case "$ORDER" in alternate | atls-first | haproxy-first) ;; *) echo "run.sh: --order alternate|atls-first|haproxy-first" >&2; exit 2 ;; esac
[[ "$BUSY_POLL" =~ ^[0-9]+$ ]] && [ "$BUSY_POLL" -le 1000 ] ||
    { echo "run.sh: --busy-poll takes microseconds, 0..1000" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$QUICK" -eq 1 ]; then
    DUR=1; IDLE_N=1000; ATT_N=300; BULK_N=4; STORM_ATT_N=300; STORM_ATT_SRV_N=300; PGB_SCALE=1
else
    DUR=4; IDLE_N=${BENCH_IDLE_CONNS:-10000}; ATT_N=2000; BULK_N=8; STORM_ATT_N=2500; STORM_ATT_SRV_N=9000; PGB_SCALE=1
fi
HS_CONC=8      # handshakes in flight
Q_CONNS=8      # persistent connections for query / storm
STORM_CONC=8   # handshakes in flight during the storm
CERT_POOL_N=${BENCH_CERT_POOL:-3072}
[[ "$CERT_POOL_N" =~ ^[0-9]+$ ]] && [ "$CERT_POOL_N" -ge 1 ] ||
    { echo "run.sh: BENCH_CERT_POOL takes a number of certificates" >&2; exit 2; }
# storm: the measured side is a paced probe (open loop, latency from each query's scheduled time)
# in a SCHED_FIFO thread, the same for every target; a closed loop of SELECT 1 saturates the load
# core by itself, and its latency then measures that core's run queue, not the target.
PROBE_RATE=${BENCH_PROBE_RATE:-2000}
# A result during which the hypervisor stole CPU (see steal_rerun) is run again, at most this
# many times.
STEAL_RETRIES=${BENCH_STEAL_RETRIES:-2}
STEAL_RERUNS=0

# ---- tools -------------------------------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1; }
if ! need gnuplot; then
    echo "run.sh: installing gnuplot-nox for the charts"
    (apt-get install -y -q gnuplot-nox >/dev/null 2>&1 ||
        (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q gnuplot-nox >/dev/null 2>&1)) ||
        echo "run.sh: gnuplot-nox could not be installed: no charts"
fi
for t in haproxy pgbench psql openssl python3 taskset chrt curl; do
    need "$t" || { echo "run.sh: $t is missing (bash deploy/setup.sh; apt-get install haproxy)" >&2; exit 1; }
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS_PG=()
[ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
# N idle connections are 2N descriptors in HAProxy (client + backend side), N in atls-proxy (its
# backend sockets are io_uring direct descriptors). Where the hard limit cannot be raised (this
# container: 20,000, CAP_SYS_RESOURCE missing) HAProxy's idle run holds 9,900, not 10,000.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
HAP_MAXCONN=$(( ($(ulimit -n) - 200) / 2 ))
HAP_IDLE_N=$(( IDLE_N < HAP_MAXCONN ? IDLE_N : HAP_MAXCONN ))

# ---- build ---------------------------------------------------------------------------------------
BUILD=$ROOT/build-bench
echo "run.sh: building into $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if ! cmake --build "$BUILD" -j2 --target atls-proxy atlsctl atls-bench >"$BUILD/bench-build.log" 2>&1; then
    grep -E "error|Error" "$BUILD/bench-build.log" | head -20
    echo "run.sh: build failed (log: $BUILD/bench-build.log)" >&2
    exit 1
fi
BENCH=$BUILD/bench/atls-bench
PROXY=$BUILD/core/atls-proxy
ATLSCTL=$BUILD/core/atlsctl

# ---- ports, directories --------------------------------------------------------------------------
BASE=${BENCH_PORT_BASE:-27400}
PG_PORT=$BASE; SRV_PORT=$((BASE + 1))
A_PG_MTLS=$((BASE + 10)); A_PG_ATT=$((BASE + 11)); A_SRV_MTLS=$((BASE + 12)); A_SRV_ATT=$((BASE + 13))
API_PG_MTLS=$((BASE + 20)); API_PG_ATT=$((BASE + 21)); API_SRV_MTLS=$((BASE + 22)); API_SRV_ATT=$((BASE + 23))
H_PG=$((BASE + 30)); H_SRV=$((BASE + 31)); H_TCP=$((BASE + 32))
A_PG_MTLS_N=$((BASE + 14)); A_SRV_MTLS_N=$((BASE + 15)); API_PG_MTLS_N=$((BASE + 24)); API_SRV_MTLS_N=$((BASE + 25))
A_PG_ATT_N=$((BASE + 16)); API_PG_ATT_N=$((BASE + 26))
W=${BENCH_WORK_DIR:-/tmp/atls-bench-run}
MEAS=$(printf 'a%.0s' $(seq 96))

# A run killed without its cleanup (kill -9) leaves its HAProxy and gateways listening, with
# SO_REUSEPORT: a new run would share their ports with them, and their old certificates would
# fail some of its handshakes while their CPU use counted against it.
BUSY_PORTS=$(ports_in_use "$BASE" $((BASE + 32)) | tr '\n' ' ')
if [ -n "$BUSY_PORTS" ]; then
    echo "run.sh: port(s) ${BUSY_PORTS}of $BASE-$((BASE + 32)) already have a listener (left by a run that was killed? ss -ltnp); stop it or set BENCH_PORT_BASE" >&2
    exit 1
fi

if [ "$PIN" = split ]; then
    PROXY_CPU=(taskset -c 0); LOAD_CPU=(taskset -c 1); WORKERS=1; HAP_THREADS=1
else
    PROXY_CPU=(); LOAD_CPU=(); WORKERS=2; HAP_THREADS=2
fi

PIDS=()
HAP_PID=
cleanup() {
    set +e
    [ -n "$HAP_PID" ] && kill -CONT "$HAP_PID" 2>/dev/null
    bench_stop_all
    if [ -f "$W/pg/postmaster.pid" ]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -m fast -w stop >/dev/null 2>&1
    fi
    echo "run.sh: stopped everything it started"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -f "$W/pg/postmaster.pid" ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$W"
mkdir -p "$W/pg" "$RESULTS" && chmod 755 "$W"
[ "$(id -u)" -eq 0 ] && chown postgres "$W/pg"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=$RESULTS/run-$STAMP-$PIN$([ "$BUSY_POLL" -gt 0 ] && echo "-bp$BUSY_POLL" || true)$([ "$QUICK" -eq 1 ] && echo -quick || true).json
: >"$OUT"

# ---- certificates ----------------------------------------------------------------------------------
bench_certs "$W" bench 2
POOL_NOTE=""
if want handshake || want storm || want storm-ab; then
    t0=$(date +%s.%N)
    bench_cert_pool "$W" "$CERT_POOL_N" 2 bench ||
        { echo "run.sh: making $CERT_POOL_N client certificates in $W/pool failed" >&2; exit 1; }
    POOL_NOTE=$(awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$CERT_POOL_N" \
        'BEGIN{printf "%d client certificates, one CA with client.crt, made in %.1f s", n, b - a}')
    echo "run.sh: mtls-distinct handshake rows and mTLS storms: $POOL_NOTE"
fi
# The mTLS storms' handshakes take the pool's certificates in turn, for atls-proxy and HAProxy
# alike. Runs before this gave them all client.crt: the gateway then took each from its cache of
# verified chains while HAProxy verified every one, which made the storm cheap for the gateway.
POOL=(--cert-pool "$W/pool")
# The simulated AMD hierarchy (RSA-4096 keys: takes a few seconds the first time).
"$ATLSCTL" client-cert --nonce "$(printf '0%.0s' $(seq 64))" --provider simulated --sim-dir "$W/sim" \
    --out-cert "$W/warm.crt" --out-key "$W/warm.key" >/dev/null

# ---- PostgreSQL ------------------------------------------------------------------------------------
echo "run.sh: PostgreSQL on 127.0.0.1:$PG_PORT"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$W/pg" -A trust -U postgres --no-sync >/dev/null
"${AS_PG[@]}" "${LOAD_CPU[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -w -l "$W/pg/log" -o "-p $PG_PORT \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W/pg -c max_connections=300 \
    -c fsync=off -c synchronous_commit=off -c shared_buffers=256MB" start >/dev/null
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres")
"${PSQL[@]}" <<'SQL'
CREATE TABLE bench_sink (b bytea);
CREATE FUNCTION bench_discard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER bench_discard BEFORE INSERT ON bench_sink FOR EACH ROW EXECUTE FUNCTION bench_discard();
SQL
pgbench -i -q -s "$PGB_SCALE" "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" >/dev/null 2>&1

# ---- built-in backend ------------------------------------------------------------------------------
"${LOAD_CPU[@]}" "$BENCH" serve --listen 127.0.0.1:$SRV_PORT --conns 20000 >"$W/serve.out" 2>&1 &
SRV_PID=$!
PIDS+=($SRV_PID)

# ---- atls-proxy instances --------------------------------------------------------------------------
cat >"$W/policy.ini" <<INI
[policy]
version = bench-1
[measurement]
mode = strict
allow = $MEAS
[tcb]
mode = strict
min_bootloader = 3
min_tee = 0
min_snp = 8
min_microcode = 115
[guest]
mode = strict
debug_allowed = false
smt_allowed = false
min_guest_svn = 2
[nonce]
required = true
ttl_s = 300
reuse_window_s = 0
[chain]
roots = $W/sim/ark.pem
INI

# start_proxy NAME LISTEN_PORT API_PORT BACKEND_PORT attested(0|1) CONNS_MAX [PRIORITY]
#   -> sets PID_<NAME>, API_OF_PID[pid], PRIO_OF_PID[pid]
declare -A API_OF_PID PRIO_OF_PID
start_proxy() {
    local name=$1 port=$2 api=$3 be=$4 att=$5 cmax=$6 prio=${7:-$WPRIO}
    local d=$W/$name
    mkdir -p "$d"
    {
        echo "[proxy]"
        echo "node_id = bench-$name"
        echo "listen = 127.0.0.1:$port"
        echo "workers = $WORKERS"
        echo "worker_priority = $prio"
        echo "busy_poll_us = $BUSY_POLL"
        echo "conns_max = $cmax"
        echo "[tls]"
        echo "cert = $W/server.crt"
        echo "key = $W/server.key"
        [ "$att" -eq 0 ] && echo "client_ca = $W/ca.crt"
        echo "[attestation]"
        if [ "$att" -eq 1 ]; then echo "required = true"; echo "policy = $W/policy.ini"; else echo "required = false"; fi
        echo "[backend]"
        echo "servers = 127.0.0.1:$be"
        # No active health checks, like HAProxy's servers in bench/haproxy.cfg (no "check"):
        # their probe connections (a PostgreSQL fork each) would load the load core.
        echo "health_check = off"
        echo "[api]"
        echo "listen = 127.0.0.1:$api"
        echo "[audit]"
        echo "dir = $d/audit"
        echo "sync = batch"
    } >"$d/proxy.ini"
    "${PROXY_CPU[@]}" "$PROXY" --config "$d/proxy.ini" >"$d/out" 2>"$d/log" &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 100); do grep -q ready "$d/out" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$d/out" || { echo "run.sh: atls-proxy $name did not start:"; cat "$d/log"; exit 1; }
    printf -v "PID_${name//-/_}" '%s' "$pid"
    API_OF_PID[$pid]=$api
    PRIO_OF_PID[$pid]=$prio
}
echo "run.sh: atls-proxy instances (workers = $WORKERS)"
start_proxy pg-mtls $A_PG_MTLS $API_PG_MTLS $PG_PORT 0 1024
start_proxy pg-att $A_PG_ATT $API_PG_ATT $PG_PORT 1 1024
start_proxy srv-mtls $A_SRV_MTLS $API_SRV_MTLS $SRV_PORT 0 $((IDLE_N / WORKERS + 1024))
start_proxy srv-att $A_SRV_ATT $API_SRV_ATT $SRV_PORT 1 1024
# The same mTLS instances at normal priority, for the storm's comparison rows.
start_proxy pg-mtls-normal $A_PG_MTLS_N $API_PG_MTLS_N $PG_PORT 0 1024 normal
start_proxy srv-mtls-normal $A_SRV_MTLS_N $API_SRV_MTLS_N $SRV_PORT 0 1024 normal
want storm-ab && start_proxy pg-att-normal $A_PG_ATT_N $API_PG_ATT_N $PG_PORT 1 1024 normal
if [ "$WPRIO" = realtime ]; then
    for n in pg-mtls pg-att srv-mtls srv-att; do
        grep -q "worker_priority = realtime refused" "$W/$n/log" &&
            { echo "run.sh: atls-proxy $n could not run its worker SCHED_FIFO (needs CAP_SYS_NICE):"; cat "$W/$n/log"; exit 1; }
    done
fi

# ---- HAProxy -------------------------------------------------------------------------------------
echo "run.sh: HAProxy $(haproxy -v | head -1 | awk '{print $3}') (nbthread $HAP_THREADS)"
cp "$W/ca.crt" "$W/hap-ca.crt"
if [ "$BUSY_POLL" -gt 0 ]; then export HAP_BUSY_POLL=1; else unset HAP_BUSY_POLL; fi
export HAP_THREADS HAP_MAXCONN HAP_DIR=$W HAP_PG_PORT=$H_PG HAP_SRV_PORT=$H_SRV HAP_TCP_PORT=$H_TCP \
    HAP_PG_BACKEND=$PG_PORT HAP_SRV_BACKEND=$SRV_PORT
# TLS 1.3 session tickets: see BENCH_HAP_TICKETS above and bench/haproxy-openssl.cnf.
if [ "${BENCH_HAP_TICKETS:-0}" = 1 ]; then
    HAP_ENV=(env -u OPENSSL_CONF)
    HAP_TICKETS_DESC="OpenSSL's default (2 per handshake; BENCH_HAP_TICKETS=1)"
else
    HAP_ENV=(env OPENSSL_CONF="$ROOT/bench/haproxy-openssl.cnf")
    HAP_TICKETS_DESC="off (OPENSSL_CONF=bench/haproxy-openssl.cnf: NumTickets = 0)"
fi
"${HAP_ENV[@]}" haproxy -c -q -f "$ROOT/bench/haproxy.cfg"
# HAProxy's priority follows atls-proxy's (see --worker-priority): HAP_PRIO_DESC goes into every
# HAProxy row (proxy_priority) and the report's header.
HAP_PRIO=()
HAP_PRIO_DESC=normal
if [ "$WPRIO" = realtime ]; then
    if [ "$BUSY_POLL" -gt 0 ]; then
        HAP_PRIO_DESC="normal (busy-polling: not SCHED_FIFO)"
    elif chrt -f 1 true 2>/dev/null; then
        HAP_PRIO=(chrt -f 1)
        HAP_PRIO_DESC="SCHED_FIFO 1 (chrt -f 1)"
    else
        HAP_PRIO_DESC="normal (chrt -f 1 failed)"
        echo "WARNING: chrt -f 1 failed (needs CAP_SYS_NICE): HAProxy runs at normal priority"
    fi
fi
"${PROXY_CPU[@]}" "${HAP_PRIO[@]}" "${HAP_ENV[@]}" haproxy -db -f "$ROOT/bench/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
HAP_PID=$!
PIDS+=($HAP_PID)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$H_SRV) 2>/dev/null && break; sleep 0.1; done
# What its threads actually run at (ps CLS: FF = SCHED_FIFO, TS = normal).
HAP_CLS=$(ps -L -o cls= -p "$HAP_PID" | sort -u | xargs)
if [ ${#HAP_PRIO[@]} -gt 0 ] && [ "$HAP_CLS" != FF ]; then
    HAP_PRIO_DESC="not all SCHED_FIFO (threads: $HAP_CLS)"
    echo "WARNING: HAProxy under chrt -f 1 has threads of class $HAP_CLS"
fi
echo "run.sh: HAProxy priority: $HAP_PRIO_DESC (threads: $HAP_CLS)"

# ---- scenario runner ---------------------------------------------------------------------------------
# steal_rerun TRY N0: whether the result just written is to be run again because the hypervisor stole
# CPU during it (report.py's flag: >= 40 ms in a latency section, >= 5% of a throughput run; a
# whole-VM pause of 0.3-0.5 s was seen here). It marks that result superseded (kept in the JSON,
# left out of the tables) unless TRY is the last of BENCH_STEAL_RETRIES; every target alike.
# N0: the number of results in $OUT before the run (a run that wrote none is not re-run).
steal_rerun() {
    local why
    [ "$1" -lt "$STEAL_RETRIES" ] && [ "$(wc -l <"$OUT")" -gt "$2" ] || return 1
    why=$(tail -1 "$OUT" | python3 "$ROOT/bench/report.py" --steal-check) || return 1
    python3 "$ROOT/bench/report.py" --supersede "$OUT"
    echo "    (the host stole CPU during that run, $why: running it again, $(($1 + 2)) of $((STEAL_RETRIES + 1)))"
    STEAL_RERUNS=$((STEAL_RERUNS + 1))
}

# cpu_steal_ticks: "STEAL TOTAL" of the machine, in ticks (/proc/stat; atls-bench records the
# same for its own runs as steal_pct).
cpu_steal_ticks() { awk '/^cpu /{print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

# with_steal_retries CMD ARGS...: runs CMD (which appends one result to $OUT), again while
# steal_rerun says so.
with_steal_retries() {
    local try n0
    for try in $(seq 0 "$STEAL_RETRIES"); do
        n0=$(wc -l <"$OUT")
        "$@"
        steal_rerun "$try" "$n0" || break
    done
}

# hap_only_for TARGET_NAME: with --busy-poll, HAProxy runs only during its own rows. Its
# busy-polling spins without end, idle or not, on the proxies' CPU (split) or on both (shared),
# which would take CPU from every other target; atls-proxy's busy_poll_us polls only before it
# sleeps, so an idle instance costs ~0.1% of a CPU. Stopped (SIGSTOP), HAProxy keeps its state.
hap_only_for() {
    [ "$BUSY_POLL" -gt 0 ] || return 0
    if [ "$1" = haproxy ]; then kill -CONT "$HAP_PID"; else kill -STOP "$HAP_PID"; fi
}

# target_prio TARGET_NAME PID: the scheduling priority of that target, for its rows.
target_prio() {
    case "$1" in
    atls) echo "worker_priority = ${PRIO_OF_PID[$2]:-?}" ;;
    haproxy) echo "$HAP_PRIO_DESC" ;;
    *) echo "none (no proxy)" ;;
    esac
}

# bench TARGET_NAME PORT TLS PID SCENARIO ARGS... : one atls-bench run appended to $OUT.
bench() { with_steal_retries bench_once "$@"; }
# POOL_AT[PORT]: the --cert-pool certificate the next run against the proxy on PORT starts with.
# Each run continues where the last one against that proxy stopped (atls-bench's
# cert_pool_next), so a proxy sees the whole pool go round before any certificate comes again:
# started at the first each time, a run would find the certificates of the run before still in
# the gateway's cache of verified chains (seen: 100% hits on the pg-fifo storm, whose ~110
# handshakes, like the pg storm's before it, fit in the cache).
declare -A POOL_AT=()
bench_once() {
    local name=$1 port=$2 tls=$3 pid=$4 scen=$5
    shift 5
    hap_only_for "$name"
    local auth=(--cert "$W/client.crt" --key "$W/client.key")
    [ "$tls" = none ] && auth=()
    local api=()
    [ "$name" = atls ] && api=(--proxy-api "127.0.0.1:${API_OF_PID[$pid]}")
    local pool=() n0
    [[ " $* " == *" --cert-pool "* ]] && pool=(--cert-pool-start "${POOL_AT[$port]:-0}")
    n0=$(wc -l <"$OUT")
    if ! timeout 300 "${LOAD_CPU[@]}" "$BENCH" "$scen" --port "$port" --tls "$tls" "${auth[@]}" \
        --proxy-pid "$pid" --target-name "$name" --out "$OUT" "${api[@]}" \
        --proxy-priority "$(target_prio "$name" "$pid")" --run-order "$RUN_ORDER" "${pool[@]}" "$@" \
        2>>"$W/bench.err"; then
        echo "run.sh: $scen against $name reported a failure (see $OUT, $W/bench.err)"
    fi
    if [ ${#pool[@]} -gt 0 ] && [ "$(wc -l <"$OUT")" -gt "$n0" ]; then
        POOL_AT[$port]=$(tail -1 "$OUT" | python3 -c 'import json, sys
print(max(json.load(sys.stdin).get("cert_pool_next", 0), 0))')
    fi
    tail -1 "$OUT" | python3 "$ROOT/bench/report.py" --line
}
ATT=(--attest-api 127.0.0.1:$API_SRV_ATT --sim-dir "$W/sim" --measurement "$MEAS")
ATT_PG=(--attest-api 127.0.0.1:$API_PG_ATT --sim-dir "$W/sim" --measurement "$MEAS")
ATT_PG_N=(--attest-api 127.0.0.1:$API_PG_ATT_N --sim-dir "$W/sim" --measurement "$MEAS") # storm-ab

# Row order (--order): next_group sets PAIR, the order of atls-proxy and HAProxy in the next group
# of rows that compare targets, and RUN_ORDER, which each of its rows records (run_order); rows
# outside a group record "".
GROUP_N=0
RUN_ORDER=""
PAIR=(atls haproxy)
next_group() {
    GROUP_N=$((GROUP_N + 1))
    case "$ORDER" in
    atls-first) PAIR=(atls haproxy) ;;
    haproxy-first) PAIR=(haproxy atls) ;;
    *) if [ $((GROUP_N % 2)) -eq 1 ]; then PAIR=(atls haproxy); else PAIR=(haproxy atls); fi ;;
    esac
    RUN_ORDER="direct,${PAIR[0]},${PAIR[1]}"
}

# trio DIRECT_PORT ATLS_PORT ATLS_PID HAPROXY_PORT SCENARIO ARGS... [--proxies ARGS...]
#      [--haproxy-only ARGS...]: one group of rows: direct (unless DIRECT_PORT is -), then
# atls-proxy and HAProxy in the group's order, all with ARGS; the arguments after --proxies go
# to both proxies' rows only, those after --haproxy-only to HAProxy's only (atls-bench takes the
# last of an option given twice).
trio() {
    local dp=$1 ap=$2 apid=$3 hp=$4 t a dest=common
    shift 4
    local common=() prox=() hap=()
    for a in "$@"; do
        case "$a" in
        --proxies) dest=prox ;;
        --haproxy-only) dest=hap ;;
        *) if [ $dest = common ]; then common+=("$a"); elif [ $dest = prox ]; then prox+=("$a"); else hap+=("$a"); fi ;;
        esac
    done
    next_group
    [ "$dp" = - ] && RUN_ORDER=${RUN_ORDER#direct,}
    [ "$dp" = - ] || bench direct "$dp" none 0 "${common[@]}"
    for t in "${PAIR[@]}"; do
        if [ "$t" = atls ]; then
            bench atls "$ap" direct "$apid" "${common[@]}" "${prox[@]}"
        else
            bench haproxy "$hp" direct "$HAP_PID" "${common[@]}" "${prox[@]}" "${hap[@]}"
        fi
    done
    RUN_ORDER=""
}

if want handshake; then
    echo "== handshake: new connection, TLS 1.3 + client certificate, startup, SELECT 1, Terminate"
    for be in srv pg; do
        if [ $be = srv ]; then dp=$SRV_PORT; ap=$A_SRV_MTLS; apid=$PID_srv_mtls; hp=$H_SRV
        else dp=$PG_PORT; ap=$A_PG_MTLS; apid=$PID_pg_mtls; hp=$H_PG; fi
        trio $dp $ap "$apid" $hp handshake --label "$be" --conns $HS_CONC --duration $DUR
        # The rows above give every handshake client.crt, which atls-proxy verifies once and
        # then finds in its cache of verified chains (HAProxy verifies it every time): the
        # gateway's best case. These give each new connection the next of $CERT_POOL_N
        # certificates of the same CA, round robin, more than the cache holds (see
        # BENCH_CERT_POOL above); the issue's "atls >= 2x haproxy" is judged on them.
        # PostgreSQL's rows are bound by its fork per connection, so only srv gets them.
        if [ $be = srv ]; then
            trio - $ap "$apid" $hp handshake --label srv-mtls-distinct --conns $HS_CONC \
                --duration $DUR --cert-pool "$W/pool"
        fi
    done
    bench atls $A_SRV_MTLS sslrequest "$PID_srv_mtls" handshake --label srv-sslrequest --conns $HS_CONC --duration $DUR
    bench atls $A_SRV_ATT direct "$PID_srv_att" handshake --label srv-attested --conns $HS_CONC \
        --count $ATT_N --duration 120 "${ATT[@]}"
fi

if want bulk; then
    echo "== bulk: SELECT repeat('x', 1 MiB) rows (down) / COPY FROM STDIN binary of 1 MiB bytea rows (up)"
    for be in srv pg; do
        if [ $be = srv ]; then dp=$SRV_PORT; ap=$A_SRV_MTLS; apid=$PID_srv_mtls; hp=$H_SRV; ns="1 $BULK_N"
        else dp=$PG_PORT; ap=$A_PG_MTLS; apid=$PID_pg_mtls; hp=$H_PG; ns="1"; fi
        for n in $ns; do
            for dir in down up; do
                trio $dp $ap "$apid" $hp bulk --label "$be" --$dir --conns $n --duration $DUR
            done
        done
    done
fi

if want query; then
    echo "== query: SELECT 1 on $Q_CONNS persistent connections (PostgreSQL, then the built-in backend)"
    trio $PG_PORT $A_PG_MTLS "$PID_pg_mtls" $H_PG query --label pg --conns $Q_CONNS --duration $DUR
    trio $SRV_PORT $A_SRV_MTLS "$PID_srv_mtls" $H_SRV query --label srv --conns $Q_CONNS --duration $DUR
fi

if want idle; then
    echo "== idle: $IDLE_N established connections held (built-in backend), RSS of the proxy"
    trio $SRV_PORT $A_SRV_MTLS "$PID_srv_mtls" $H_SRV idle --label srv --conns $IDLE_N --hold 2 \
        --haproxy-only --conns $HAP_IDLE_N
fi

# The storm's probe (both storm groups): ST the atls-bench arguments; PF (--ready-cmd) sets the
# probe's own $Q_CONNS PostgreSQL backends SCHED_FIFO once the probe is connected, before it
# measures (the storm's backends, forked later, stay normal): see the pg-fifo rows below.
ST=(--conns $Q_CONNS --storm-conns $STORM_CONC --duration $DUR --probe-rate $PROBE_RATE --probe-sched fifo)
cat >"$W/probe-fifo.sh" <<SH
#!/bin/sh
pids=\$(psql -X -At "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" -c \
    "select pid from pg_stat_activity where application_name = 'atls-bench'") || exit 1
n=\$(echo "\$pids" | grep -c .)
[ "\$n" -eq $Q_CONNS ] || { echo "probe-fifo: \$n probe backends, want $Q_CONNS" >&2; exit 1; }
for p in \$pids; do chrt -f -p 1 "\$p" || exit 1; done
SH
PF=(--ready-cmd "sh $W/probe-fifo.sh")

if want storm; then
    echo "== storm: SELECT 1 paced at $PROBE_RATE/s on $Q_CONNS connections (probe thread SCHED_FIFO), ${DUR}s alone then ${DUR}s with a handshake storm ($STORM_CONC in flight)"
    # storm_rows LABEL DIRECT_PORT ATLS_PORT ATLS_PID HAPROXY_PORT [ARGS]: one mTLS row per target.
    storm_rows() {
        local label=$1 dp=$2 ap=$3 apid=$4 hp=$5
        shift 5
        trio "$dp" "$ap" "$apid" "$hp" storm --label "$label" "${ST[@]}" "$@" --proxies "${POOL[@]}"
    }
    storm_rows pg $PG_PORT $A_PG_MTLS "$PID_pg_mtls" $H_PG
    # Built-in backend: the storm's cost falls on the proxy alone (PostgreSQL forks a process
    # per storm connection on the load core, which the PostgreSQL rows above include). Like the
    # probe, the backend runs SCHED_FIFO for these rows, for every target: otherwise the probe's
    # query waits on the load core behind the storm's own client-side TLS, which is no target's
    # doing (bench/RESULTS.md, "Storm").
    chrt -a -f -p 1 "$SRV_PID" >/dev/null || echo "WARNING: backend not SCHED_FIFO (needs CAP_SYS_NICE)"
    storm_rows srv $SRV_PORT $A_SRV_MTLS "$PID_srv_mtls" $H_SRV
    bench atls $A_SRV_MTLS_N direct "$PID_srv_mtls_normal" storm --label srv-normal-prio "${ST[@]}" "${POOL[@]}"
    bench atls $A_SRV_ATT direct "$PID_srv_att" storm --label srv-attested "${ST[@]}" \
        --count $STORM_ATT_SRV_N "${ATT[@]}"
    chrt -a -o -p 0 "$SRV_PID" >/dev/null || true
    bench atls $A_PG_ATT direct "$PID_pg_att" storm --label pg-attested "${ST[@]}" \
        --count $STORM_ATT_N "${ATT_PG[@]}"
    # PostgreSQL again, with the probe's own $Q_CONNS PostgreSQL backends SCHED_FIFO (set once the
    # probe is connected, before it measures; the storm's backends, forked later, stay normal):
    # what the PostgreSQL rows above measure is mostly those backends waiting for the load core
    # behind the storm's forks, which direct shows as much as any proxy. With a database on its
    # own host, as in production, that wait does not exist. Every target the same way.
    storm_rows pg-fifo $PG_PORT $A_PG_MTLS "$PID_pg_mtls" $H_PG "${PF[@]}"
    bench atls $A_PG_MTLS_N direct "$PID_pg_mtls_normal" storm --label pg-fifo-normal-prio "${ST[@]}" \
        "${POOL[@]}" "${PF[@]}"
    bench atls $A_PG_ATT direct "$PID_pg_att" storm --label pg-attested-fifo "${ST[@]}" \
        --count $STORM_ATT_N "${ATT_PG[@]}" "${PF[@]}"
fi

if want storm-ab; then
    # The storm's A/B: the same rows through an instance at worker_priority = realtime and one
    # at normal, alternating, so that both arms see the same machine. Labels ab-<row>-<priority>;
    # ab-<row>-direct (no proxy) in the same rounds shows what the machine alone did meanwhile.
    ROUNDS=${BENCH_AB_ROUNDS:-4}
    [ "$WPRIO" = realtime ] || { echo "run.sh: storm-ab compares realtime with normal: leave --worker-priority at realtime" >&2; exit 2; }
    echo "== storm-ab: $ROUNDS rounds of realtime / normal worker priority, same storm as above"
    for r in $(seq "$ROUNDS"); do
        echo "-- round $r"
        chrt -a -f -p 1 "$SRV_PID" >/dev/null
        bench direct $SRV_PORT none 0 storm --label ab-srv-direct "${ST[@]}"
        bench atls $A_SRV_MTLS direct "$PID_srv_mtls" storm --label ab-srv-realtime "${ST[@]}" "${POOL[@]}"
        bench atls $A_SRV_MTLS_N direct "$PID_srv_mtls_normal" storm --label ab-srv-normal "${ST[@]}" "${POOL[@]}"
        chrt -a -o -p 0 "$SRV_PID" >/dev/null
        bench direct $PG_PORT none 0 storm --label ab-pg-fifo-direct "${ST[@]}" "${PF[@]}"
        bench atls $A_PG_MTLS direct "$PID_pg_mtls" storm --label ab-pg-fifo-realtime "${ST[@]}" "${POOL[@]}" "${PF[@]}"
        bench atls $A_PG_MTLS_N direct "$PID_pg_mtls_normal" storm --label ab-pg-fifo-normal "${ST[@]}" "${POOL[@]}" "${PF[@]}"
        bench atls $A_PG_ATT direct "$PID_pg_att" storm --label ab-pg-attested-fifo-realtime "${ST[@]}" \
            --count $STORM_ATT_N "${ATT_PG[@]}" "${PF[@]}"
        bench atls $A_PG_ATT_N direct "$PID_pg_att_normal" storm --label ab-pg-attested-fifo-normal "${ST[@]}" \
            --count $STORM_ATT_N "${ATT_PG_N[@]}" "${PF[@]}"
    done
fi

# pgbench TARGET PID CONNINFO LABEL: pgbench -S (8 clients, 2 threads) for $DUR s; CPU of PID.
pgb() { with_steal_retries pgb_once "$@"; }
pgb_once() {
    local name=$1 pid=$2 conn=$3 label=$4
    local c0 c1 s0 s1 out tps
    hap_only_for "$name"
    c0=$(awk '{print $14 + $15}' /proc/"$pid"/stat 2>/dev/null || echo 0)
    s0=$(cpu_steal_ticks)
    out=$(timeout 120 "${LOAD_CPU[@]}" pgbench -S -n -c 8 -j 2 -T $DUR "$conn" 2>&1) || true
    s1=$(cpu_steal_ticks)
    c1=$(awk '{print $14 + $15}' /proc/"$pid"/stat 2>/dev/null || echo 0)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
    [ -n "$tps" ] || { echo "run.sh: pgbench against $name failed: $out" | tail -3; tps=0; }
    local hz
    hz=$(getconf CLK_TCK)
    printf '{"scenario":"pgbench","target":"%s","label":"%s","proxy_priority":"%s","run_order":"%s","clients":8,"duration_s":%s,"tps":%s,"proxy_cpu_s":%s,"steal_pct":%s,"steal_ms":%s,"errors":0}\n' \
        "$name" "$label" "$(target_prio "$name" "$pid")" "$RUN_ORDER" "$DUR" "$tps" "$(awk -v a="$c0" -v b="$c1" -v h="$hz" -v p="$pid" 'BEGIN{ if (p == 0) print -1; else printf "%.3f", (b - a) / h }')" \
        "$(echo "$s0 $s1" | awk '{ if ($4 > $2) printf "%.1f", 100 * ($3 - $1) / ($4 - $2); else print -1 }')" \
        "$(echo "$s0 $s1" | awk -v h="$hz" '{ printf "%.0f", 1000 * ($3 - $1) / h }')" >>"$OUT"
    tail -1 "$OUT" | python3 "$ROOT/bench/report.py" --line
}
if want pgbench; then
    echo "== pgbench -S: 8 clients, ${DUR}s (libpq 15: SSLRequest to atls-proxy; no direct TLS, so HAProxy gets a plain TCP hop)"
    PGC="user=postgres dbname=postgres host=127.0.0.1"
    next_group
    pgb direct 0 "$PGC port=$PG_PORT sslmode=disable" pg
    for t in "${PAIR[@]}"; do
        if [ "$t" = atls ]; then
            pgb atls "$PID_pg_mtls" "$PGC port=$A_PG_MTLS sslmode=require sslcert=$W/client.crt sslkey=$W/client.key" pg-tls
        else
            pgb haproxy $HAP_PID "$PGC port=$H_TCP sslmode=disable" pg-tcp-hop
        fi
    done
    RUN_ORDER=""
fi

echo
{
    echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), HAProxy $(haproxy -v | head -1 | awk '{print $3}'), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
    echo "command: bash bench/run.sh $([ "$QUICK" -eq 1 ] && echo '--quick ')--pin $PIN$([ "$BUSY_POLL" -gt 0 ] && echo " --busy-poll $BUSY_POLL (both proxies poll)" || true)  ($STAMP, ${DUR}s per run)"
    echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
    # How often each real-time worker was busy enough (80% of its CPU) to go back to normal
    # priority during the run: the guard at work in the handshake and bulk scenarios.
    drops=""
    for n in pg-mtls:$API_PG_MTLS pg-att:$API_PG_ATT srv-mtls:$API_SRV_MTLS srv-att:$API_SRV_ATT; do
        v=$(curl -s "http://127.0.0.1:${n#*:}/metrics" | awk '$1 == "atls_worker_realtime_dropped_total" {print $2}')
        drops="$drops ${n%%:*}=${v:-?}"
    done
    echo "results re-run because the host stole CPU during them: $STEAL_RERUNS (BENCH_STEAL_RETRIES=$STEAL_RETRIES per result)"
    echo "atls-proxy worker_priority = $WPRIO (storm rows *-normal-prio: normal); times a busy worker left SCHED_FIFO:$drops"
    echo "row order: --order $ORDER (direct first, then atls-proxy and HAProxy$([ "$ORDER" = alternate ] && echo ', the first of the two alternating from one group of rows to the next' || true); each row's run_order)"
    echo "HAProxy TLS 1.3 session tickets: $HAP_TICKETS_DESC; atls-proxy sends none"
    echo "HAProxy priority: $HAP_PRIO_DESC$([ "$WPRIO" = realtime ] && [ ${#HAP_PRIO[@]} -gt 0 ] && echo ': the whole process, all the time (no guard like the gateway'"'"'s 80% drop)' || true)"
    [ -n "$POOL_NOTE" ] && echo "handshake rows *-mtls-distinct and the mTLS storms' handshakes: $POOL_NOTE, each new connection the next in turn (other mTLS connections: client.crt)"
    python3 "$ROOT/bench/report.py" --table "$OUT" --pin "$PIN" --charts "$RESULTS"
} | tee "${OUT%.json}.md"
echo "run.sh: results in $OUT"
