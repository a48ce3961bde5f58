#!/usr/bin/env bash
# deploy/demo.sh: the README's "run it" command. Installs what is missing (deploy/setup.sh),
# builds, starts three database nodes (PostgreSQL on loopback standing in for CockroachDB, or a
# real three-node CockroachDB cluster when `cockroach` is on PATH), three attested gateways each
# with its own nonce API and audit store, and runs ten clients through them: five admitted (good
# simulated SEV-SNP evidence, real SQL that writes and reads rows) and five denied for five
# different reasons. Prints what happened and where to look, then runs until Ctrl-C, which stops
# everything it started, by PID. Re-running it works (it stops what a previous run left).
#
#   bash deploy/demo.sh          # interactive: keeps running, dashboard at http://127.0.0.1:8081/
#   bash deploy/demo.sh --ci     # start, run the clients, check the audit API, stop, check that
#                                # nothing is left running; exit status 0 only if all held
#   bash deploy/demo.sh --ci --exec CMD   # also run CMD (bash -c) before stopping, with
#                                # ATLS_DEMO_API_PORTS / ATLS_DEMO_GW_PORTS / ATLS_DEMO_DIR set
#                                # (the dashboard browser test uses it); its failure fails the run
#
# Environment: ATLS_DEMO_DIR (default /tmp/atls-demo), ATLS_BUILD_DIR (default build),
# ATLS_DEMO_JOBS (build parallelism, default nproc), ATLS_DEMO_SKIP_SETUP=1 (no apt/npm step),
# ATLS_DEMO_SKIP_BUILD=1 (use the binaries already in ATLS_BUILD_DIR),
# ATLS_DEMO_BASE_PORT (default 26257: gateways listen on BASE, BASE+10, BASE+20, their databases
# on BASE+1, BASE+11, BASE+21), ATLS_DEMO_API_PORT (default 8081: APIs on 8081, 8082, 8083).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CI_MODE=0
EXEC=""
while [ $# -gt 0 ]; do
    a=$1
    shift
    case "$a" in
    --ci) CI_MODE=1 ;;
    --exec)
        [ $# -gt 0 ] || { echo "demo: --exec needs a command" >&2; exit 2; }
        EXEC=$1
        shift
        ;;
    -h | --help)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo: unknown argument '$a' (try --help)" >&2
        exit 2
        ;;
    esac
done

DEMO=${ATLS_DEMO_DIR:-/tmp/atls-demo}
BUILD=${ATLS_BUILD_DIR:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
JOBS=${ATLS_DEMO_JOBS:-$(nproc)}
BASE_PORT=${ATLS_DEMO_BASE_PORT:-26257}
API_BASE=${ATLS_DEMO_API_PORT:-8081}
GW_PORT=() DB_PORT=() API_PORT=() GW_PID=()
for i in 1 2 3; do
    GW_PORT[$i]=$((BASE_PORT + (i - 1) * 10))
    DB_PORT[$i]=$((BASE_PORT + (i - 1) * 10 + 1))
    API_PORT[$i]=$((API_BASE + i - 1))
done
PROXY="$BUILD/core/atls-proxy"
ATLSCTL="$BUILD/core/atlsctl"

say() { printf 'demo: %s\n' "$*"; }
die() {
    printf 'demo: FAILED: %s\n' "$*" >&2
    exit 1
}

# ---- stop what a previous run left (by the PIDs it recorded, checking they are still ours) ----
# pidfile lines: "PID SIGNAL NAME"; NAME is matched against the process's command line before
# a kill, so a PID reused by an unrelated process is never signalled. SIGNAL is the one that
# stops it quickly: TERM for the gateways (SIGINT is ignored by background jobs of a script and
# the gateway takes signals through a signalfd), INT for PostgreSQL (fast shutdown).
pid_is() { # pid_is PID NAME: the process exists and its command line contains NAME
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}
stop_recorded() {
    local file=$1 pid sig name
    [ -f "$file" ] || return 0
    while read -r pid sig name; do
        pid_is "$pid" "$name" && kill -"$sig" "$pid" 2>/dev/null || true
    done <"$file"
    for _ in $(seq 150); do
        local alive=0
        while read -r pid sig name; do
            pid_is "$pid" "$name" && alive=1
        done <"$file"
        [ "$alive" -eq 0 ] && return 0
        sleep 0.1
    done
    while read -r pid sig name; do
        if pid_is "$pid" "$name"; then
            echo "demo: $name (pid $pid) did not stop in 15 s, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done <"$file"
}
stop_recorded "$DEMO/pids"
# The previous version of this script ran one PostgreSQL in $DEMO/pg.
if [ -f "$DEMO/pg/postmaster.pid" ]; then
    old=$(head -1 "$DEMO/pg/postmaster.pid")
    pid_is "$old" "$DEMO/pg" && kill -INT "$old" 2>/dev/null || true
fi

# ---- install and build ----
if [ "${ATLS_DEMO_SKIP_SETUP:-0}" != 1 ]; then
    bash deploy/setup.sh
fi
if [ "${ATLS_DEMO_SKIP_BUILD:-0}" != 1 ]; then
    say "building atls-proxy and atlsctl in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j"$JOBS" --target atls-proxy atlsctl >/dev/null
fi
[ -x "$PROXY" ] && [ -x "$ATLSCTL" ] || die "no $PROXY or $ATLSCTL (build failed?)"

for p in "${GW_PORT[@]}" "${DB_PORT[@]}" "${API_PORT[@]}"; do
    if ss -Htln "sport = :$p" | grep -q .; then
        die "port $p is in use (another demo? set ATLS_DEMO_BASE_PORT / ATLS_DEMO_API_PORT)"
    fi
done

rm -rf "$DEMO"
mkdir -p "$DEMO" && chmod 755 "$DEMO"
: >"$DEMO/pids"
PIDS=()
record() { # record PID SIGNAL NAME
    PIDS+=("$1")
    echo "$1 $2 $3" >>"$DEMO/pids"
}

COCKROACH=0
command -v cockroach >/dev/null 2>&1 && COCKROACH=1
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
AS_PG=()
[ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
DB_USER=postgres DB_NAME=postgres
[ "$COCKROACH" -eq 1 ] && DB_USER=root DB_NAME=defaultdb

STOPPED=0
cleanup() {
    set +e
    [ "$STOPPED" -eq 1 ] && return
    STOPPED=1
    stop_recorded "$DEMO/pids"
    say "stopped everything it started (PIDs ${PIDS[*]:-none})"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- three database nodes ----
if [ "$COCKROACH" -eq 1 ]; then
    say "starting a three-node CockroachDB cluster ($(cockroach version --build-tag 2>/dev/null))"
    JOIN="127.0.0.1:${DB_PORT[1]},127.0.0.1:${DB_PORT[2]},127.0.0.1:${DB_PORT[3]}"
    for i in 1 2 3; do
        mkdir -p "$DEMO/db$i"
        cockroach start --insecure --store="$DEMO/db$i" --listen-addr="127.0.0.1:${DB_PORT[$i]}" \
            --http-addr="127.0.0.1:$((API_BASE + 10 + i))" --join="$JOIN" \
            --cache=128MiB --max-sql-memory=128MiB >"$DEMO/db$i/out.log" 2>&1 &
        record $! TERM "$DEMO/db$i"
    done
    # init succeeds once, when the first node listens; "already initialized" ends the loop too.
    for _ in $(seq 150); do
        out=$(cockroach init --insecure --host="127.0.0.1:${DB_PORT[1]}" 2>&1) && break
        case "$out" in *"already been initialized"*) break ;; esac
        sleep 0.2
    done
    for i in 1 2 3; do
        for _ in $(seq 300); do
            cockroach sql --insecure --host="127.0.0.1:${DB_PORT[$i]}" -e "select 1" >/dev/null 2>&1 &&
                break
            sleep 0.2
        done
    done
else
    [ -n "$PGBIN" ] || die "PostgreSQL is not installed (deploy/setup.sh installs it)"
    say "starting three PostgreSQL nodes on 127.0.0.1:${DB_PORT[1]}, ${DB_PORT[2]}, ${DB_PORT[3]}" \
        "(standing in for CockroachDB; with a cockroach binary on PATH this is a real cluster)"
    for i in 1 2 3; do
        mkdir -p "$DEMO/db$i"
        [ "$(id -u)" -eq 0 ] && chown postgres "$DEMO/db$i"
        "${AS_PG[@]}" "$PGBIN/initdb" -D "$DEMO/db$i" -A trust -U postgres --no-sync >/dev/null
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DEMO/db$i" -w -l "$DEMO/db$i/log" -o \
            "-p ${DB_PORT[$i]} -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DEMO/db$i -c fsync=off" \
            start >/dev/null
        record "$(head -1 "$DEMO/db$i/postmaster.pid")" INT "$DEMO/db$i"
    done
fi

# ---- certificates, simulated AMD hierarchies, policy ----
say "making the gateways' TLS certificate and two simulated AMD SEV-SNP hierarchies"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$DEMO/server.key" \
    -out "$DEMO/server.crt" -days 7 -nodes -subj /CN=atls-demo \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
chmod 600 "$DEMO/server.key"
# The first certificate made with --sim-dir creates the hierarchy there: "sim" is the one the
# policy trusts, "rogue-sim" one it does not (an attacker's own signing chain).
for s in sim rogue-sim; do
    "$ATLSCTL" client-cert --nonce "$(printf '0%.0s' $(seq 64))" --provider simulated \
        --sim-dir "$DEMO/$s" --out-cert "$DEMO/$s/warm.crt" --out-key "$DEMO/$s/warm.key" >/dev/null
done
measure() { printf '%s' "$1" | openssl dgst -sha384 -r | cut -c1-96; }
M_APP_V1=$(measure "orders-service image v1.4.2")
M_APP_V2=$(measure "orders-service image v1.5.0")
M_ROGUE=$(measure "orders-service image v1.5.0 + debug shell")

cat >"$DEMO/policy.ini" <<INI
; demo policy: two releases of the orders service may connect, nothing else
[policy]
version = demo-1
[measurement]
mode = strict
allow = $M_APP_V1
allow = $M_APP_V2
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
[nonce]
required = true
ttl_s = 300
; a certificate stays usable for an hour (psql reconnects, pools), each new key needs a nonce
reuse_window_s = 3600
[chain]
roots = sim/ark.pem
INI

# ---- three gateways ----
# Each gateway's API lets the other gateways' dashboards read it (the aggregate view).
ORIGINS=""
for i in 1 2 3; do
    ORIGINS+="${ORIGINS:+, }http://127.0.0.1:${API_PORT[$i]}, http://localhost:${API_PORT[$i]}"
done
for i in 1 2 3; do
    d="$DEMO/gw$i"
    mkdir -p "$d"
    if [ "$COCKROACH" -eq 1 ]; then
        servers="127.0.0.1:${DB_PORT[1]}, 127.0.0.1:${DB_PORT[2]}, 127.0.0.1:${DB_PORT[3]}"
    else
        servers="127.0.0.1:${DB_PORT[$i]}"
    fi
    cat >"$d/atls-proxy.ini" <<INI
[proxy]
node_id = gw$i
listen = 127.0.0.1:${GW_PORT[$i]}
workers = 2
drain_timeout_ms = 2000
[tls]
cert = ../server.crt
key = ../server.key
[attestation]
required = true
policy = ../policy.ini
[backend]
servers = $servers
[api]
listen = 127.0.0.1:${API_PORT[$i]}
allow_origin = $ORIGINS
[audit]
dir = audit
sync = always
INI
    "$PROXY" --check-config "$d/atls-proxy.ini" >/dev/null || die "gw$i: config refused"
    "$PROXY" --config "$d/atls-proxy.ini" >"$d/out.log" 2>"$d/proxy.log" &
    GW_PID[$i]=$!
    record $! TERM "$d/atls-proxy.ini"
done
for i in 1 2 3; do
    for _ in $(seq 100); do
        grep -q ready "$DEMO/gw$i/out.log" 2>/dev/null && break
        kill -0 "${GW_PID[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    grep -q ready "$DEMO/gw$i/out.log" || {
        cat "$DEMO/gw$i/proxy.log" >&2
        die "gateway gw$i did not start"
    }
done
say "gateways gw1, gw2, gw3 on 127.0.0.1:${GW_PORT[1]}, ${GW_PORT[2]}, ${GW_PORT[3]}" \
    "(APIs on ${API_PORT[1]}, ${API_PORT[2]}, ${API_PORT[3]})"

# ---- ten clients ----
# cert NAME GATEWAY ARGS...: a client certificate with simulated SEV-SNP evidence; without
# --nonce in ARGS the nonce comes from the gateway's API.
cert() {
    local name=$1 gw=$2
    shift 2
    local nonce_args=(--nonce-url "http://127.0.0.1:${API_PORT[$gw]}")
    case " $* " in *" --nonce "*) nonce_args=() ;; esac
    local sim="$DEMO/sim"
    case " $* " in *" --sim-dir "*) sim="" ;; esac
    "$ATLSCTL" client-cert "${nonce_args[@]}" --provider simulated ${sim:+--sim-dir "$sim"} "$@" \
        --out-cert "$DEMO/clients/$name.crt" --out-key "$DEMO/clients/$name.key" >/dev/null
}
conninfo() { # conninfo NAME GATEWAY
    echo "host=127.0.0.1 port=${GW_PORT[$2]} sslmode=require sslcert=$DEMO/clients/$1.crt" \
        "sslkey=$DEMO/clients/$1.key user=$DB_USER dbname=$DB_NAME connect_timeout=10"
}
SQL="set client_min_messages = warning;
create table if not exists demo_orders (id serial primary key, client text not null,
  gateway text not null, at timestamptz not null default now());
insert into demo_orders (client, gateway) values (:'client', :'gw');
select 'rows written through ' || :'gw' || ': ' || count(*) from demo_orders where gateway = :'gw';"
mkdir -p "$DEMO/clients"
RESULTS=()
FAILS=0
# run_client NAME GATEWAY EXPECT WHAT: EXPECT is "admitted" or a denial code.
run_client() {
    local name=$1 gw=$2 expect=$3 what=$4 out rc got
    set +e
    out=$(printf '%s\n' "$SQL" | timeout 30 psql -X -At -v ON_ERROR_STOP=1 -v client="$name" \
        -v gw="gw$gw" "$(conninfo "$name" "$gw")" 2>&1)
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        got=admitted
    else
        got=$(printf '%s' "$out" | sed -n 's/.*attestation denied: \([A-Z_:a-z]*\):.*/\1/p' | head -1)
        [ -n "$got" ] || got="error"
    fi
    local mark=ok
    if [ "$got" != "$expect" ]; then
        mark=UNEXPECTED
        FAILS=$((FAILS + 1))
    fi
    RESULTS+=("$(printf '%-10s gw%s  %-24s %-24s %s' "$name" "$gw" "$what" "$got" "$mark")")
    printf '  %-10s -> gw%s  %s\n' "$name" "$gw" "$what"
    printf '%s\n' "$out" | sed 's/^/      /'
}

say "running ten clients (psql with client certificates carrying simulated SEV-SNP evidence):"
# app-1's nonce is fetched here rather than by atlsctl, so the replay below can reuse it.
APP1_NONCE=$("$ATLSCTL" nonce --url "http://127.0.0.1:${API_PORT[1]}" | grep -o '[0-9a-f]\{64\}' | head -1)
[ -n "$APP1_NONCE" ] || die "gw1's API gave no nonce"
cert app-1 1 --measurement "$M_APP_V1" --nonce "$APP1_NONCE"
cert app-2 1 --measurement "$M_APP_V2"
cert app-3 2 --measurement "$M_APP_V1"
cert app-4 3 --measurement "$M_APP_V1"
cert app-5 3 --measurement "$M_APP_V2"
run_client app-1 1 admitted "orders v1.4.2"
run_client app-2 1 admitted "orders v1.5.0"
run_client app-3 2 admitted "orders v1.4.2"
run_client app-4 3 admitted "orders v1.4.2"
run_client app-5 3 admitted "orders v1.5.0"

# Denied 1: an image the policy does not list (a debug shell baked in).
cert rogue 1 --measurement "$M_ROGUE"
run_client rogue 1 MEASUREMENT_NOT_ALLOWED "unknown image"
# Denied 2: a new key bound to app-1's nonce, which app-1 consumed: a replay.
cert replay 1 --measurement "$M_APP_V1" --nonce "$APP1_NONCE"
run_client replay 1 NONCE_REPLAYED "replays app-1's nonce"
# Denied 3: a nonce the gateway never issued.
cert forged 2 --measurement "$M_APP_V1" --nonce "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
run_client forged 2 NONCE_UNKNOWN "nonce never issued"
# Denied 4: a guest launched with the debug policy bit (the host can read its memory).
cert debug 2 --measurement "$M_APP_V1" --debug
run_client debug 2 DEBUG_ENABLED "guest policy DEBUG=1"
# Denied 5: evidence signed by a chain that does not end at a trusted AMD root.
cert foreign 3 --measurement "$M_APP_V1" --sim-dir "$DEMO/rogue-sim"
run_client foreign 3 CHAIN_INVALID "untrusted AMD root"

# The README's walk-through connects to gw1 with $DEMO/client.crt: app-1's certificate.
cp "$DEMO/clients/app-1.crt" "$DEMO/client.crt"
cp "$DEMO/clients/app-1.key" "$DEMO/client.key"

echo
say "summary (client, gateway, what it is, result):"
printf '  %s\n' "${RESULTS[@]}"

# ---- what the audit API recorded ----
# audit_codes: "VERDICT CODE" per decision record of the three gateways (node's JSON parser: the
# setup installs nodejs for the dashboard test).
audit_codes() {
    local i body all=""
    for i in 1 2 3; do
        body=$(curl -fsS --max-time 10 \
            "http://127.0.0.1:${API_PORT[$i]}/api/v1/attestations?format=json&limit=100") || return 1
        all+="$body"$'\n'
    done
    printf '%s' "$all" | node -e '
        const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
        for (const l of lines) {
            for (const r of (JSON.parse(l).records || [])) {
                if (r.kind !== "AUDIT_KIND_DECISION") continue;
                let code = "-";
                const m = /^(?:attestation denied:\s*)?([A-Z][A-Z0-9_]*(?::[a-z_]+)?)(?::\s|$)/.exec(r.reason || "");
                if (m) code = m[1];
                else if (r.failed_checks && r.failed_checks.length) code = r.failed_checks[0].code;
                console.log(r.node_id + " " + r.verdict + " " + code);
            }
        }'
}
echo
if AUDIT=$(audit_codes 2>"$DEMO/audit-query.err"); then
    say "decisions in the audit trail (node, verdict, code):"
    printf '%s\n' "$AUDIT" | sort | uniq -c | sed 's/^/  /'
else
    AUDIT=""
    say "the audit API did not answer: $(head -c 300 "$DEMO/audit-query.err")"
fi

if [ "$CI_MODE" -eq 1 ]; then
    admitted=$(printf '%s\n' "$AUDIT" | grep -c ' VERDICT_ALLOWED ' || true)
    denied_codes=$(printf '%s\n' "$AUDIT" | awk '$2 == "VERDICT_DENIED" { print $3 }' | sort | tr '\n' ' ')
    want_codes="CHAIN_INVALID DEBUG_ENABLED MEASUREMENT_NOT_ALLOWED NONCE_REPLAYED NONCE_UNKNOWN "
    [ "$FAILS" -eq 0 ] || die "$FAILS client(s) did not get the expected result (summary above)"
    [ "$admitted" -eq 5 ] || die "audit API: $admitted admitted decisions, want 5"
    [ "$denied_codes" = "$want_codes" ] ||
        die "audit API: denied codes '$denied_codes', want '$want_codes'"
    say "ci: 5 admitted and 5 denied with the expected reasons, in psql and in the audit API"
    if [ -n "$EXEC" ]; then
        say "ci: running: $EXEC"
        ATLS_DEMO_API_PORTS="${API_PORT[*]}" ATLS_DEMO_GW_PORTS="${GW_PORT[*]}" ATLS_DEMO_DIR="$DEMO" \
            bash -c "$EXEC" || die "--exec command failed: $EXEC"
    fi
    cleanup
    left=0
    while read -r pid sig name; do
        if pid_is "$pid" "$name"; then
            echo "demo: still running: $pid $name" >&2
            left=1
        fi
    done <"$DEMO/pids"
    for p in "${GW_PORT[@]}" "${DB_PORT[@]}" "${API_PORT[@]}"; do
        if ss -Htln "sport = :$p" | grep -q .; then
            echo "demo: port $p still listening" >&2
            left=1
        fi
    done
    [ "$left" -eq 0 ] || die "something is still running after the stop"
    say "ci: everything stopped, nothing left running"
    exit 0
fi

[ "$FAILS" -eq 0 ] || say "WARNING: $FAILS client(s) did not get the expected result"
cat <<EOF

demo: where to look
  dashboard, all three gateways: http://127.0.0.1:${API_PORT[1]}/?peers=127.0.0.1:${API_PORT[2]},127.0.0.1:${API_PORT[3]}
  one gateway's dashboard:       http://127.0.0.1:${API_PORT[1]}/  (and :${API_PORT[2]}, :${API_PORT[3]})
  audit trail as JSON:           curl 'http://127.0.0.1:${API_PORT[1]}/api/v1/attestations?format=json&limit=10'
  totals:                        curl 'http://127.0.0.1:${API_PORT[1]}/api/v1/stats/overview?format=json'
  Prometheus metrics:            curl http://127.0.0.1:${API_PORT[1]}/metrics
  gateway logs:                  $DEMO/gw1/proxy.log (gw2, gw3 alike); configs $DEMO/gw*/atls-proxy.ini
  policy:                        $DEMO/policy.ini (edit, then kill -HUP a gateway to reload it)
  audit stores (RocksDB):        $DEMO/gw*/audit

  connect as app-1 again ($DEMO/client.crt is a copy; gw1 admits it again for an hour):
    psql "host=127.0.0.1 port=${GW_PORT[1]} sslmode=require sslcert=$DEMO/client.crt sslkey=$DEMO/client.key user=$DB_USER dbname=$DB_NAME"
  make a fresh attested client certificate (a nonce from gw1's API):
    $ATLSCTL client-cert --nonce-url http://127.0.0.1:${API_PORT[1]} --provider simulated \\
        --sim-dir $DEMO/sim --measurement $M_APP_V1 \\
        --out-cert $DEMO/new.crt --out-key $DEMO/new.key

demo: running; press Ctrl-C to stop everything
EOF
while :; do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || {
            say "process $pid exited; stopping"
            exit 1
        }
    done
    sleep 1
done
