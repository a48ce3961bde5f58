#!/usr/bin/env bash
# deploy/demo.sh: the README's "run it" command. Installs what is missing, builds, starts a local
# PostgreSQL (standing in for CockroachDB) and atls-proxy in front of it, runs real psql and
# pgbench through the gateway, shows a client certificate carrying simulated SEV-SNP evidence,
# then keeps running until Ctrl-C (or exits at once with --ci). Everything it starts it stops, by
# PID. Re-running it works.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CI_MODE=0
[ "${1:-}" = "--ci" ] && CI_MODE=1

bash deploy/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target atls-proxy atlsctl >/dev/null

DEMO=${ATLS_DEMO_DIR:-/tmp/atls-demo}
PG_PORT=${ATLS_DEMO_PG_PORT:-26258}
PROXY_PORT=${ATLS_DEMO_PORT:-26257}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS_PG=()
[ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)

PIDS=()
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ -f "$DEMO/pg/postmaster.pid" ]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DEMO/pg" -m fast -w stop >/dev/null 2>&1
    fi
    echo "demo: stopped everything it started"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Stop what a previous run may have left behind, then start clean.
if [ -f "$DEMO/pg/postmaster.pid" ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DEMO/pg" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$DEMO"
mkdir -p "$DEMO/pg" && chmod 755 "$DEMO"
[ "$(id -u)" -eq 0 ] && chown postgres "$DEMO/pg"

echo "demo: starting PostgreSQL on 127.0.0.1:$PG_PORT"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$DEMO/pg" -A trust -U postgres --no-sync >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DEMO/pg" -w -l "$DEMO/pg/log" \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DEMO/pg" start >/dev/null

echo "demo: making a test CA, a server certificate and a client certificate (Ed25519)"
(
    cd "$DEMO"
    openssl req -x509 -newkey ed25519 -keyout ca.key -out ca.crt -days 7 -nodes -subj /CN=demo-ca 2>/dev/null
    for n in server client; do
        openssl req -newkey ed25519 -keyout $n.key -out $n.csr -nodes -subj /CN=demo-$n 2>/dev/null
        openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 7 2>/dev/null
    done
    chmod 600 ./*.key
)

cat > "$DEMO/proxy.ini" <<INI
[proxy]
node_id = demo-1
listen = 127.0.0.1:$PROXY_PORT
workers = auto
[tls]
cert = server.crt
key = server.key
client_ca = ca.crt
[attestation]
required = false
[backend]
servers = 127.0.0.1:$PG_PORT
INI

echo "demo: starting atls-proxy on 127.0.0.1:$PROXY_PORT"
"$ROOT/build/core/atls-proxy" --config "$DEMO/proxy.ini" >"$DEMO/proxy.out" 2>"$DEMO/proxy.log" &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$DEMO/proxy.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DEMO/proxy.out" || { cat "$DEMO/proxy.log"; exit 1; }

CONN="host=127.0.0.1 port=$PROXY_PORT sslmode=require sslcert=$DEMO/client.crt sslkey=$DEMO/client.key user=postgres dbname=postgres"
echo
echo "demo: psql through the gateway:"
psql -X "$CONN" -c "select 'hello through atls-proxy' as greeting, ssl as backend_leg_ssl from pg_stat_ssl where pid = pg_backend_pid()"
echo "demo: a client without a certificate is refused:"
psql -X "host=127.0.0.1 port=$PROXY_PORT sslmode=require user=postgres dbname=postgres" -c "select 1" 2>&1 | sed 's/^/    /' || true
echo "demo: a plaintext client is refused:"
psql -X "host=127.0.0.1 port=$PROXY_PORT sslmode=disable user=postgres dbname=postgres" -c "select 1" 2>&1 | sed 's/^/    /' || true
echo "demo: pgbench (8 clients, 3 s) through the gateway:"
pgbench -i -s 1 -q "$CONN" >/dev/null 2>&1
pgbench -c 8 -j 2 -T 3 "$CONN" 2>&1 | grep -E "tps|failed"

echo
echo "demo: a client certificate carrying simulated SEV-SNP evidence (atlsctl):"
NONCE=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$ROOT/build/core/atlsctl" client-cert --nonce "$NONCE" --provider simulated --sim-dir "$DEMO/sim" \
    --out-cert "$DEMO/attested.crt" --out-key "$DEMO/attested.key"
"$ROOT/build/core/atlsctl" report verify "$DEMO/attested.crt" --roots "$DEMO/sim/ark.pem" --nonce "$NONCE" | head -5

echo
echo "demo: running. Connect with:"
echo "    psql \"$CONN\""
echo "    logs: $DEMO/proxy.log"
if [ "$CI_MODE" -eq 1 ]; then
    exit 0
fi
echo "demo: press Ctrl-C to stop"
while kill -0 "${PIDS[0]}" 2>/dev/null; do sleep 1; done
