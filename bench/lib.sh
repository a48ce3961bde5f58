# shellcheck shell=bash
# bench/lib.sh: shell functions bench/run.sh, bench/smoke.sh and bench/ab.sh share (sourced).

# bench_certs DIR NAME DAYS: in DIR, an Ed25519 CA (ca.crt, ca.key) and a server and a client
# certificate it signed (server.crt/.key, client.crt/.key), named NAME-ca, NAME-server and
# NAME-client, valid DAYS days; server.pem is the server's certificate and key for HAProxy.
bench_certs() {
    (
        cd "$1" || exit 1
        openssl req -x509 -newkey ed25519 -keyout ca.key -out ca.crt -days "$3" -nodes \
            -subj "/CN=$2-ca" 2>/dev/null
        for n in server client; do
            openssl req -newkey ed25519 -keyout $n.key -out $n.csr -nodes -subj "/CN=$2-$n" 2>/dev/null
            openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt \
                -days "$3" 2>/dev/null
        done
        cat server.crt server.key >server.pem
        chmod 600 ./*.key server.pem
    )
}

# bench_cert_pool DIR N DAYS NAME: in DIR/pool, N client certificates and keys c00000.crt/.key ...
# (Ed25519, CN NAME-pool-i, valid DAYS days), signed by DIR/ca.crt, shaped like bench_certs'
# client.crt (X.509 v1, no extensions): atls-bench --cert-pool. One openssl process per
# certificate, as many at once as there are CPUs. A pool already there for the same CA and N is
# kept (DIR/pool/.made names them).
bench_cert_pool() {
    (
        cd "$1" || exit 1
        local stamp
        stamp="$(openssl x509 -in ca.crt -noout -fingerprint -sha256) n=$2"
        [ -f pool/.made ] && [ "$(cat pool/.made)" = "$stamp" ] && exit 0
        rm -rf pool && mkdir pool || exit 1
        printf '[req]\ndistinguished_name = dn\nx509_extensions = none\n[dn]\n[none]\n' >pool/req.cnf
        seq -f '%05g' 0 $(($2 - 1)) | xargs -P "$(nproc)" -I{} openssl req -x509 -config pool/req.cnf \
            -newkey ed25519 -nodes -keyout pool/c{}.key -out pool/c{}.crt -CA ca.crt -CAkey ca.key \
            -days "$3" -subj "/CN=$4-pool-{}" 2>/dev/null || exit 1
        [ "$(find pool -name 'c*.crt' | wc -l)" -eq "$2" ] || exit 1
        chmod 600 pool/*.key
        echo "$stamp" >pool/.made
    )
}

# bench_stop_all: kill every process in the array PIDS, then reap them.
bench_stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# ports_in_use FIRST LAST: the TCP ports from FIRST to LAST that something listens on, one a line.
ports_in_use() {
    ss -Hltn 2>/dev/null |
        awk -v lo="$1" -v hi="$2" '{ n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) print p }' |
        sort -nu
}
