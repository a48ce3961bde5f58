#!/usr/bin/env bash
# bench/smoke.sh: ctest "bench_smoke" (label bench). Runs every atls-bench scenario for a fraction
# of a second against its own built-in pgwire backend, directly and through its own atls-proxy
# (mutual TLS and attested), and checks that each run completed and printed valid, sane JSON
# (non-zero counts, ordered percentiles, no errors), then that report.py tables it and applies the
# steal rule run.sh re-runs results by, and run.sh's re-run loop itself. Not a speed test. Needs
# ATLS_BUILD_DIR.
set -euo pipefail
B=${ATLS_BUILD_DIR:?ATLS_BUILD_DIR is the build directory}
REPORT=$(cd "$(dirname "$0")" && pwd)/report.py
# shellcheck source=bench/lib.sh
. "$(dirname "$REPORT")/lib.sh"
BENCH=$B/bench/atls-bench
PROXY=$B/core/atls-proxy
ATLSCTL=$B/core/atlsctl
W=$(mktemp -d /tmp/atls-bench-smoke.XXXXXX)
PIDS=()
cleanup() {
    bench_stop_all
    rm -rf "$W"
}
trap cleanup EXIT

# free_port sets REPLY to a loopback port for a listener started later, as the e2e harness's
# FreePort does: from 20000-27399 (below the kernel's ephemeral range, so no outgoing connection
# of a test running alongside takes it first, and below run.sh's ports), locked for this script's
# lifetime (flock on /tmp/atls-e2e-ports/PORT, which the e2e tests honour too) and bindable now.
free_port() {
    local p fd
    mkdir -p -m 1777 /tmp/atls-e2e-ports
    for _ in $(seq 500); do
        p=$((20000 + RANDOM % 7400))
        [ -e "/tmp/atls-e2e-ports/$p" ] || : >"/tmp/atls-e2e-ports/$p" 2>/dev/null || continue
        exec {fd}<"/tmp/atls-e2e-ports/$p" || continue
        if flock -n "$fd" && python3 -c "import socket; socket.socket().bind(('127.0.0.1', $p))" 2>/dev/null; then
            REPLY=$p
            return 0
        fi
        exec {fd}>&-
    done
    echo "smoke: no free port in 20000-27399" >&2
    exit 1
}
free_port; SRV=$REPLY; free_port; P1=$REPLY; free_port; P2=$REPLY
free_port; API1=$REPLY; free_port; API2=$REPLY
MEAS=$(printf 'a%.0s' $(seq 96))

cd "$W"
bench_certs "$W" smoke 1
"$ATLSCTL" client-cert --nonce "$(printf '0%.0s' $(seq 64))" --provider simulated --sim-dir "$W/sim" \
    --out-cert warm.crt --out-key warm.key >/dev/null
cat >policy.ini <<INI
[policy]
version = smoke-1
[measurement]
allow = $MEAS
[tcb]
min_bootloader = 3
min_snp = 8
min_microcode = 115
[guest]
min_guest_svn = 2
[nonce]
ttl_s = 300
[chain]
roots = $W/sim/ark.pem
INI
proxy_ini() { # port api attested
    printf '[proxy]\nlisten = 127.0.0.1:%s\nworkers = 1\nconns_max = 512\n[tls]\ncert = server.crt\nkey = server.key\n' "$1"
    if [ "$3" -eq 1 ]; then printf '[attestation]\nrequired = true\npolicy = policy.ini\n'
    else printf 'client_ca = ca.crt\n[attestation]\nrequired = false\n'; fi
    printf '[backend]\nservers = 127.0.0.1:%s\n[api]\nlisten = 127.0.0.1:%s\n[audit]\ndir = %s\nsync = batch\n' \
        "$SRV" "$2" "$W/audit-$1"
}
proxy_ini "$P1" "$API1" 0 >p1.ini
proxy_ini "$P2" "$API2" 1 >p2.ini

"$BENCH" serve --listen 127.0.0.1:$SRV >serve.out 2>&1 &
PIDS+=($!)
"$PROXY" --config p1.ini >p1.out 2>p1.log &
PP1=$!
PIDS+=($PP1)
"$PROXY" --config p2.ini >p2.out 2>p2.log &
PP2=$!
PIDS+=($PP2)
for _ in $(seq 100); do
    grep -q ready serve.out p1.out p2.out 2>/dev/null && [ "$(cat serve.out p1.out p2.out | grep -c ready)" -eq 3 ] && break
    sleep 0.1
done
[ "$(cat serve.out p1.out p2.out | grep -c ready)" -eq 3 ] || { cat p1.log p2.log serve.out; exit 1; }

OUT=$W/out.json
D=(--port "$SRV" --tls none --target-name direct --out "$OUT")
M=(--port "$P1" --tls direct --cert client.crt --key client.key --target-name atls --out "$OUT" --proxy-pid "$PP1")
A=(--port "$P2" --tls direct --target-name atls --out "$OUT" --proxy-pid "$PP2" --attest-api 127.0.0.1:$API2 --sim-dir "$W/sim" --measurement "$MEAS")
for t in D M; do
    declare -n args=$t
    "$BENCH" handshake "${args[@]}" --conns 4 --duration 0.5
    "$BENCH" bulk --down "${args[@]}" --conns 2 --duration 0.5 --query-bytes 8388608
    "$BENCH" bulk --up "${args[@]}" --conns 2 --duration 0.5 --query-bytes 8388608
    "$BENCH" query "${args[@]}" --conns 4 --duration 0.5
    "$BENCH" idle "${args[@]}" --conns 300 --hold 0.2
    "$BENCH" storm "${args[@]}" --conns 4 --storm-conns 4 --duration 0.5
done
unset -n args # a nameref still: ab.sh's "for args in" below would assign through it
"$BENCH" handshake "${A[@]}" --label attested --conns 4 --count 20 --duration 30 --pool-threads 1
"$BENCH" handshake "${M[@]}" --label sslrequest --tls sslrequest --conns 2 --duration 0.3
"$BENCH" storm "${A[@]}" --label attested --conns 2 --storm-conns 2 --count 10 --duration 0.5 --pool-threads 1
# The paced probe run.sh uses: 400 queries/s in all, 0.5 s alone then 0.5 s with the storm.
# With --ready-cmd, run once the probe's connections are open (run.sh's pg-fifo rows).
"$BENCH" storm "${M[@]}" --label paced --conns 4 --storm-conns 4 --duration 0.5 --probe-rate 400 --probe-sched fifo \
    --ready-cmd "echo ran >>$W/ready.txt"
[ "$(cat "$W/ready.txt")" = ran ] || { echo "bench smoke: --ready-cmd did not run exactly once"; exit 1; }
# --cert-pool (run.sh's mtls-distinct rows): 6 client certificates of the same CA, each new
# connection the next in turn; --proxy-api reads the gateway's client-chain counters around it.
bench_cert_pool "$W" 6 1 smoke
"$BENCH" handshake "${M[@]}" --label pool --cert-pool "$W/pool" --cert-pool-start 10 \
    --proxy-api 127.0.0.1:$API1 --proxy-priority "smoke prio" --conns 2 --duration 0.5
"$BENCH" storm "${M[@]}" --label pool --cert-pool "$W/pool" --proxy-api 127.0.0.1:$API1 \
    --conns 2 --storm-conns 2 --duration 0.5
if "$BENCH" query "${M[@]}" --out "$W/pool-query.json" --cert-pool "$W/pool" --conns 2 --duration 0.3 2>/dev/null; then
    echo "bench smoke: --cert-pool was taken by a query run"; exit 1
fi
# A --ready-cmd that fails fails the run.
if "$BENCH" query "${M[@]}" --out "$W/ready-fail.json" --conns 2 --duration 0.3 --ready-cmd false 2>"$W/ready-fail.err"; then
    echo "bench smoke: a failing --ready-cmd did not fail the run"; exit 1
fi
grep -q "ready-cmd exited with status" "$W/ready-fail.err" || { cat "$W/ready-fail.err"; exit 1; }

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(rows) == 18, f"expected 18 results, got {len(rows)}"
def hist_ok(h):
    assert h["count"] > 0, h
    assert h["min_us"] <= h["p50_us"] <= h["p90_us"] <= h["p99_us"] <= h["p999_us"] <= h["max_us"], h
for r in rows:
    name = f"{r['scenario']}/{r['target']}/{r.get('label')}"
    assert r["errors"] == 0, (name, r["first_error"])
    assert r["run_order"] == "", (name, r["run_order"])  # run.sh's --run-order, not given here
    s = r["scenario"]
    if r["tls"] != "none":
        assert r["tls_version"] == "TLSv1.3" and r["alpn"] == "postgresql", name
        # Every connection's handshake is counted, and the session tickets the target sent:
        # atls-proxy sends none (RESULTS.md relies on it).
        assert r["tls_handshakes"] > 0 and r["tickets_received"] == 0, (name, r["tls_handshakes"])
        assert r["tickets_per_handshake"] == 0, name
    else:
        assert r["tls_handshakes"] == 0 and r["tickets_per_handshake"] == -1, name
    if s == "handshake":
        assert r["tls_handshakes"] >= (r["handshakes"] if r["tls"] != "none" else 0), name
    if s == "storm":
        hs = r["storm_tls_handshakes"]
        assert r["storm_tickets_received"] == 0, name
        assert (hs >= r["storm_handshakes"]) if r["tls"] != "none" else hs == 0, (name, hs)
    if s == "handshake":
        assert r["handshakes"] > 0 and r["rate_per_s"] > 0, name
        hist_ok(r["latency"])
    elif s == "bulk":
        assert r["bytes"] > 0 and r["bytes_per_s"] > 0, name
        # Upload: whole COPYs of 8 MiB of row payload, in CopyData messages of one TLS record.
        up = r["direction"] == "up"
        assert r["copy_msg_bytes"] == (16384 if up else 0), (name, r["copy_msg_bytes"])
        assert not up or r["bytes"] == r["queries"] * 8388608, (name, r["bytes"], r["queries"])
    elif s == "query":
        hist_ok(r["latency"])
    elif s == "idle":
        assert r["held"] == r["requested"], name
        if r["target"] == "atls":
            assert r["rss_after_kb"] > 0 and r["rss_per_conn_kb"] > 0, (name, r["rss_per_conn_kb"])
    elif s == "storm":
        hist_ok(r["latency"]); hist_ok(r["latency_storm"])
        assert r["storm_handshakes"] > 0, name
        if r.get("label") == "paced":
            # Paced, not closed loop: about rate x time queries in each half (the first 10 %
            # of the run is warm-up), where a closed loop would run thousands.
            assert r["probe_rate"] == 400 and r["probe_sched"] in ("fifo", "normal"), r
            assert r["ready_cmd"] is True, r
            for h, secs in (("latency", 0.4), ("latency_storm", 0.5)):
                want = 400 * secs
                assert 0.5 * want <= r[h]["count"] <= 1.1 * want + 4, (name, h, r[h]["count"])
    # Every atls row has --proxy-pid: its proxy CPU fields (all but idle's) are measured.
    if r["target"] == "atls":
        cpu = {k: v for k, v in r.items() if k.startswith("proxy_cpu")}
        assert (cpu or s == "idle") and all(v >= 0 for v in cpu.values()), (name, cpu)
    if r.get("label") == "pool":
        # 6 certificates in turn: the gateway verifies each once (its cache holds 6) and then
        # finds it there; the storm's run comes after, so it verifies none (its probe keeps
        # client.crt, which earlier rows verified). The storm also counts handshakes that were
        # still in flight at its end.
        assert r["cert_pool"] == 6 and r["auth"] == "mtls", (name, r["cert_pool"])
        ver, hits = r["cert_verifications"], r["cert_cache_hits"]
        # --cert-pool-start 10 begins at certificate 10 mod 6; cert_pool_next is where the
        # next run would begin (run.sh passes it on).
        if s == "handshake":
            assert ver == 6 and ver + hits == r["handshakes"], (name, ver, hits, r["handshakes"])
            assert r["proxy_priority"] == "smoke prio", (name, r["proxy_priority"])
            assert r["cert_pool_start"] == 4, (name, r["cert_pool_start"])
            assert r["cert_pool_next"] == (4 + r["handshakes"]) % 6, (name, r["cert_pool_next"])
        else:
            assert ver == 0 and hits >= r["storm_handshakes"] + r["connections"], (name, ver, hits)
            assert r["cert_pool_start"] == 0 and 0 <= r["cert_pool_next"] < 6, name
    elif s in ("handshake", "storm"):
        assert r["cert_pool_start"] == -1 and r["cert_pool_next"] == -1, name
    else:
        assert r["cert_pool"] == 0 and r["proxy_priority"] == "", (name, r["cert_pool"])
        assert r.get("cert_verifications", -1) == -1, (name, r.get("cert_verifications"))
    # CPU steal over each timed section (/proc/stat is readable here, so never -1).
    if s in ("handshake", "bulk", "query", "storm"):
        keys = ["steal_pct", "steal_ms"]
        if s == "storm":
            keys += ["steal_pct_alone", "steal_pct_storm", "steal_ms_alone", "steal_ms_storm"]
        for k in keys:
            assert 0 <= r[k] <= (100 if k.startswith("steal_pct") else 60000), (name, k, r.get(k))
    # Throughput runs: how busy each CPU was, and the one CPU the load generator is pinned to
    # (-1 unless this test itself runs pinned to one CPU).
    if s in ("handshake", "bulk"):
        import os
        busy = r["cpu_busy_pct"]
        assert len(busy) == min(os.cpu_count(), 16) and all(0 <= v <= 100 for v in busy), (name, busy)
        aff = os.sched_getaffinity(0)
        assert r["bench_cpu"] == (min(aff) if len(aff) == 1 else -1), (name, r["bench_cpu"])
        # The CPU-speed calibration before and after: a positive time for every CPU.
        for k in ("calib_ns_per_m", "calib_chase_ns"):
            cal = r[k]
            assert len(cal["before"]) == len(cal["after"]) == len(busy), (name, k, cal)
            assert all(v > 0 for v in cal["before"] + cal["after"]), (name, k, cal)
    print("ok", name)
print(f"bench smoke: {len(rows)} scenario runs produced valid JSON")
PY

# report.py: the table of this run, and the steal rule run.sh re-runs results by.
python3 "$REPORT" --table "$OUT" --pin smoke >"$W/table.md" && grep -q "^pinning: smoke" "$W/table.md" || { echo "bench smoke: report.py --table failed"; cat "$W/table.md"; exit 1; }
check() { # EXPECTED_EXIT JSON
    local rc=0
    echo "$2" | python3 "$REPORT" --steal-check >/dev/null || rc=$?
    [ "$rc" -eq "$1" ] || { echo "bench smoke: --steal-check gave $rc, want $1, for $2"; exit 1; }
}
check 0 '{"scenario":"storm","steal_ms_alone":50,"steal_ms_storm":0}'
check 1 '{"scenario":"storm","steal_ms_alone":30,"steal_ms_storm":30,"steal_ms":60}'
check 0 '{"scenario":"handshake","steal_pct":6.0,"steal_ms":480}'
check 1 '{"scenario":"handshake","steal_pct":1.0,"steal_ms":80}'
check 1 '{"scenario":"idle"}'
n=$(wc -l <"$OUT")
python3 "$REPORT" --supersede "$OUT"
# (grep reads files, not pipes: grep -q leaving early would fail the writer under pipefail)
tail -1 "$OUT" >"$W/last.json"
[ "$(wc -l <"$OUT")" -eq "$n" ] && grep -q '"superseded":"steal"' "$W/last.json" ||
    { echo "bench smoke: --supersede did not mark the last result"; exit 1; }
python3 "$REPORT" --table "$OUT" >"$W/table.md"
grep -q "re-run because the host stole CPU during them: 1 results" "$W/table.md" ||
    { echo "bench smoke: the table does not count the superseded result"; exit 1; }
echo "bench smoke: report.py table and steal rule ok"

# run.sh's re-run rule itself (its two functions, taken from run.sh as they are): a result the
# host stole from is run again, at most BENCH_STEAL_RETRIES times, earlier attempts superseded.
sed -n '/^steal_rerun() {/,/^}/p;/^with_steal_retries() {/,/^}/p' "$(dirname "$REPORT")/run.sh" >"$W/retry.sh"
grep -q '^with_steal_retries() {' "$W/retry.sh" || { echo "bench smoke: run.sh has no with_steal_retries"; exit 1; }
(
    ROOT=$(dirname "$(dirname "$REPORT")") OUT=$W/retry.json STEAL_RETRIES=2 STEAL_RERUNS=0
    # shellcheck source=/dev/null
    source "$W/retry.sh"
    stolen='{"scenario":"storm","steal_ms_alone":90,"steal_ms_storm":0}'
    clean='{"scenario":"storm","steal_ms_alone":0,"steal_ms_storm":10}'
    runs=0
    once_stolen() { runs=$((runs + 1)); if [ $runs -eq 1 ]; then echo "$stolen"; else echo "$clean"; fi >>"$OUT"; }
    : >"$OUT"
    with_steal_retries once_stolen >/dev/null
    [ $runs -eq 2 ] && [ $STEAL_RERUNS -eq 1 ] && [ "$(grep -c '"superseded":"steal"' "$OUT")" -eq 1 ] &&
        [ "$(wc -l <"$OUT")" -eq 2 ] || { echo "bench smoke: a stolen result was not run again once"; exit 1; }
    always_stolen() { runs=$((runs + 1)); echo "$stolen" >>"$OUT"; }
    : >"$OUT"; runs=0; STEAL_RERUNS=0
    with_steal_retries always_stolen >/dev/null
    [ $runs -eq 3 ] && [ "$(grep -c '"superseded":"steal"' "$OUT")" -eq 2 ] ||
        { echo "bench smoke: the re-runs are not bounded by BENCH_STEAL_RETRIES"; exit 1; }
    writes_nothing() { runs=$((runs + 1)); }
    echo "$stolen" >"$OUT"; runs=0
    with_steal_retries writes_nothing >/dev/null
    [ $runs -eq 1 ] && ! grep -q superseded "$OUT" ||
        { echo "bench smoke: a run that wrote no result re-ran or marked an earlier one"; exit 1; }
)
echo "bench smoke: run.sh re-runs a stolen result, bounded"

# The check run.sh and ab.sh make for listeners left on their ports (lib.sh's ports_in_use).
(
    python3 -c 'import socket,time,sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(30)' >"$W/listener.port" &
lpid=$!
for _ in $(seq 50); do [ -s "$W/listener.port" ] && break; sleep 0.1; done
p=$(cat "$W/listener.port")
found=$(ports_in_use $((p - 1)) $((p + 1)) | grep -cx "$p" || true)
none=$(ports_in_use "$p" $((p - 1)) | wc -l) # an empty range
# ab.sh with its port range (BENCH_PORT_BASE+40 ..) starting at the listener refuses to start.
ab=$(ATLS_BUILD_DIR=$B BENCH_PORT_BASE=$((p - 40)) bash "$(dirname "$REPORT")/ab.sh" "$PROXY" "$PROXY" 2>&1) &&
    abrc=0 || abrc=$?
kill "$lpid"
[ "$found" -eq 1 ] && [ "$none" -eq 0 ] ||
    { echo "bench smoke: ports_in_use did not report the listener on $p ($found) or listed an empty range ($none)"; exit 1; }
[ "$abrc" -eq 1 ] && [[ "$ab" == *"port(s) $p of"*"already have a listener"* ]] ||
    { echo "bench smoke: ab.sh started beside a listener on its port $p ($abrc): $ab"; exit 1; }
)
echo "bench smoke: run.sh and ab.sh find a listener left on their ports"

# run.sh --busy-poll: a bad value is refused before anything is built or started, and
# hap_only_for (its function, taken from run.sh as it is) keeps HAProxy stopped outside its own
# rows, on a stand-in process.
for bad in 1001 -1 abc ""; do
    out=$(bash "$(dirname "$REPORT")/run.sh" --busy-poll "$bad" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 2 ] && [[ "$out" == *"--busy-poll takes microseconds, 0..1000"* ]] ||
        { echo "bench smoke: run.sh --busy-poll '$bad' was not refused ($rc): $out"; exit 1; }
done
sed -n '/^hap_only_for() {/,/^}/p' "$(dirname "$REPORT")/run.sh" >"$W/hap.sh"
grep -q '^hap_only_for() {' "$W/hap.sh" || { echo "bench smoke: run.sh has no hap_only_for"; exit 1; }
(
    # shellcheck source=/dev/null
    source "$W/hap.sh"
    sleep 30 &
    HAP_PID=$!
    state() { awk '{print $3}' "/proc/$HAP_PID/stat"; }
    BUSY_POLL=50
    hap_only_for atls
    sleep 0.2
    stopped=$(state)
    hap_only_for haproxy
    sleep 0.2
    running=$(state)
    BUSY_POLL=0
    kill -STOP "$HAP_PID"
    hap_only_for haproxy # without --busy-poll it leaves HAProxy alone
    sleep 0.2
    untouched=$(state)
    kill -CONT "$HAP_PID"
    kill "$HAP_PID"
    [ "$stopped" = T ] && [ "$running" = S ] && [ "$untouched" = T ] ||
        { echo "bench smoke: hap_only_for left HAProxy '$stopped' / '$running' / '$untouched' (want T / S / T)"; exit 1; }
)
echo "bench smoke: run.sh --busy-poll refuses bad values and stops HAProxy outside its rows"

# run.sh --order: trio and next_group (taken from run.sh as they are) run direct first, then
# the proxies in the group's order, alternating by default, each row with its run_order; a bad
# --order is refused before anything starts.
out=$(bash "$(dirname "$REPORT")/run.sh" --order sideways 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 2 ] && [[ "$out" == *"--order alternate|atls-first|haproxy-first"* ]] ||
    { echo "bench smoke: run.sh --order sideways was not refused ($rc): $out"; exit 1; }
sed -n '/^next_group() {/,/^}/p;/^trio() {/,/^}/p' "$(dirname "$REPORT")/run.sh" >"$W/order.sh"
[ "$(grep -c -e '^next_group() {' -e '^trio() {' "$W/order.sh")" -eq 2 ] ||
    { echo "bench smoke: run.sh has no next_group or trio"; exit 1; }
(
    # shellcheck source=/dev/null
    source "$W/order.sh"
    bench() { echo "$1 $2 [$RUN_ORDER] ${*:5}" >>"$W/order.out"; }
    HAP_PID=7 GROUP_N=0 RUN_ORDER="" ORDER=alternate
    : >"$W/order.out"
    trio 1 2 3 4 handshake --label a
    trio - 2 3 4 handshake --label b --proxies --cert-pool p
    trio 1 2 3 4 idle --conns 10 --haproxy-only --conns 9
    ORDER=atls-first
    trio 1 2 3 4 query
    got=$(cat "$W/order.out")
    want="direct 1 [direct,atls,haproxy] handshake --label a
atls 2 [direct,atls,haproxy] handshake --label a
haproxy 4 [direct,atls,haproxy] handshake --label a
haproxy 4 [haproxy,atls] handshake --label b --cert-pool p
atls 2 [haproxy,atls] handshake --label b --cert-pool p
direct 1 [direct,atls,haproxy] idle --conns 10
atls 2 [direct,atls,haproxy] idle --conns 10
haproxy 4 [direct,atls,haproxy] idle --conns 10 --conns 9
direct 1 [direct,atls,haproxy] query
atls 2 [direct,atls,haproxy] query
haproxy 4 [direct,atls,haproxy] query"
    [ "$got" = "$want" ] && [ -z "$RUN_ORDER" ] ||
        { echo "bench smoke: run.sh's row order is not as --order says:"; echo "$got"; exit 1; }
)
echo "bench smoke: run.sh --order alternates atls-proxy and HAProxy by group and records it"

# ab.sh: bad arguments are refused before anything starts; one short round with the same
# gateway as A and B runs its six rows (A, B, HAProxy; down and up) and prints both summaries.
AB=$(dirname "$REPORT")/ab.sh
for args in "--rounds 0 $PROXY $PROXY" "--duration x $PROXY $PROXY" "$PROXY" "$PROXY $W/none"; do
    # shellcheck disable=SC2086 # the arguments are meant to split
    out=$(bash "$AB" $args 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 2 ] || { echo "bench smoke: ab.sh $args was not refused ($rc): $out"; exit 1; }
done
if command -v haproxy >/dev/null; then
    out=$(ATLS_BUILD_DIR=$B BENCH_AB_OUT=$W/ab.json bash "$AB" --rounds 1 --duration 1 "$PROXY" "$PROXY" 2>&1) ||
        { echo "bench smoke: ab.sh failed: $out"; exit 1; }
    [ "$(grep -c . "$W/ab.json")" -eq 6 ] || { echo "bench smoke: ab.sh wrote $(grep -c . "$W/ab.json") rows, not 6: $out"; exit 1; }
    python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["target"] for r in rows] == ["A", "B", "haproxy"] * 2, rows
assert all(r["gbit_per_s"] > 0 and r["proxy_cpu_s_per_gb"] > 0 and r.get("errors", 0) == 0 for r in rows), rows
# HAProxy runs with bench/haproxy-openssl.cnf: no session tickets, like the gateway.
assert all(r["tls_handshakes"] > 0 and r["tickets_received"] == 0 for r in rows), \
    [(r["target"], r["tickets_received"]) for r in rows]
# Priorities as run.sh: the gateways realtime, HAProxy SCHED_FIFO 1 when chrt may set it.
import subprocess
fifo = subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode == 0
for r in rows:
    p = r["proxy_priority"]
    if r["target"] == "haproxy":
        assert p == ("SCHED_FIFO 1 (chrt -f 1)" if fifo else "normal (chrt -f 1 failed)"), p
    else:
        assert p.startswith("worker_priority = realtime"), p
' "$W/ab.json" || { echo "bench smoke: ab.sh rows are not sane: $out"; exit 1; }
    for d in down up; do
        grep -q "^$d: B/A rate" <<<"$out" || { echo "bench smoke: ab.sh printed no $d summary: $out"; exit 1; }
    done
    [ "$(grep -c 'B faster in [01] of 1 pairs' <<<"$out")" -eq 2 ] || { echo "bench smoke: ab.sh summaries: $out"; exit 1; }
    echo "bench smoke: ab.sh refuses bad arguments and runs a round"
else
    echo "bench smoke: ab.sh round skipped: haproxy is not installed"
fi

# report.py's notes beside a verdict: a saturated load CPU, and CPU-speed drift (integer loop
# only, 15%), on rows made up for the purpose.
python3 - "$REPORT" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("report", sys.argv[1])
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)
assert report.load_bound({"bench_cpu": 1, "cpu_busy_pct": [40.0, 97.0]}) == 97.0
assert report.load_bound({"bench_cpu": 1, "cpu_busy_pct": [99.0, 90.0]}) is None
assert report.load_bound({"bench_cpu": -1, "cpu_busy_pct": [99.0, 99.0]}) is None
steady = {"calib_ns_per_m": {"before": [100, 100], "after": [104, 100]}}
moved = {"calib_ns_per_m": {"before": [100, 100], "after": [100, 130]}}
other = {"calib_ns_per_m": {"before": [120, 100], "after": [120, 100]}}
assert abs(report.calib_drift([steady]) - 4.0) < 1e-9
assert abs(report.calib_drift([moved]) - 30.0) < 1e-9
flat = {"calib_ns_per_m": {"before": [100, 100], "after": [100, 100]}}
assert abs(report.calib_drift([flat, other]) - 20.0) < 1e-9
assert report.calib_drift([{}, None]) is None
base = {"scenario": "handshake", "target": "atls", "label": "srv", "rate_per_s": 2000.0,
        "proxy_cpu_ms_per_handshake": 0.4, "errors": 0}
hap = dict(base, target="haproxy", rate_per_s=800.0, proxy_cpu_ms_per_handshake=1.0)
rows = [dict(base, bench_cpu=1, cpu_busy_pct=[90.0, 99.0], **moved), dict(hap, **flat)]
line = next(l for l in report.table(rows, "t").split("\n") if l.startswith("| handshakes/s, mTLS same cert (built"))
assert "met (load CPU 99% busy under atls) (CPU speed moved 30%)" in line, line
assert "no distinct-cert row: judged on the cache's best case" in line, line
# With the distinct-cert rows (run.sh's srv-mtls-distinct) the target is judged there, and the
# same-cert row (the gateway's cache best case) is shown but not judged; the table shows the
# gateway's cache hits for each.
dist = [dict(base, label="srv-mtls-distinct", rate_per_s=1500.0, cert_pool=3072,
             cert_verifications=6000, cert_cache_hits=12),
        dict(hap, label="srv-mtls-distinct", cert_pool=3072)]
rows = [dict(base, cert_verifications=0, cert_cache_hits=8000), hap] + dist
t = report.table(rows, "t").split("\n")
same = next(l for l in t if l.startswith("| handshakes/s, mTLS same cert (built"))
distinct = next(l for l in t if l.startswith("| handshakes/s, mTLS distinct certs, 3,072 in turn (built"))
assert "not judged" in same and "met" not in same, same
assert "judged on distinct certs" in distinct and "| 1.88 |" in distinct and "**missed**" in distinct, distinct
hits = [l for l in t if l.startswith("|   gateway client-chain cache hits")]
assert len(hits) == 2 and "100.0% of 8,000" in hits[0] and "0.2% of 6,012" in hits[1], hits
# A row that counted errors leaves its verdict unjudged (and out of --spread's count), however
# good its ratio.
bad = [dict(dist[0], rate_per_s=3000.0, errors=5, first_error="TLS handshake failed"), dist[1]]
raw = []
t = report.table([base, hap] + bad, "t", raw).split("\n")
distinct = next(l for l in t if l.startswith("| handshakes/s, mTLS distinct certs"))
assert "not judged: errors in atls (5)" in distinct and "met" not in distinct, distinct
assert next(ok for m, _, _, ok in raw if m.startswith("handshakes/s, mTLS distinct")) is None, raw
# pgbench: HAProxy's row is a plain TCP hop, and its cell says so.
pgb = [{"scenario": "pgbench", "target": t, "label": l, "tps": v, "errors": 0}
       for t, l, v in (("direct", "pg", 10000.0), ("atls", "pg-tls", 8500.0),
                       ("haproxy", "pg-tcp-hop", 9000.0))]
line = next(l for l in report.table(pgb, "t").split("\n") if l.startswith("| pgbench"))
assert "| 0.94 (TLS vs HAProxy's plain TCP hop, not TLS) |" in line and "| met |" in line, line
print("bench smoke: report.py load and drift notes ok")
PY
