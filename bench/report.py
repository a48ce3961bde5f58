#!/usr/bin/env python3
"""bench/report.py: turns atls-bench JSON lines (one run of bench/run.sh) into the ratio table
(atls-proxy / HAProxy, atls-proxy / direct, CPU per GB and per handshake, targets met or not) and
PNG charts drawn with gnuplot.

  report.py --line < one.json                 one-line summary of a result (run.sh prints it)
  report.py --table run.json [--pin P] [--charts DIR]
  report.py --spread run1.json run2.json ...  ratios of every run side by side
  report.py --ab run.json                      the storm A/B of run.sh --only storm-ab
  report.py --steal-check < one.json          exit 0 (and say why) if the host stole enough CPU
                                              during that result to flag it, else 1
  report.py --supersede run.json               mark the file's last result as re-run because of
                                              steal (kept in the file; tables leave it out)
"""
import json
import os
import shutil
import subprocess
import sys


def load(path, superseded=False):
    """Result rows of a run; without `superseded`, not those run.sh re-ran because of steal."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                if superseded or not r.get("superseded"):
                    rows.append(r)
    return rows


# CPU steal (/proc/stat: time the hypervisor ran something else while our vCPUs wanted to run)
# during a timed section is flagged wherever the row's numbers are shown, since such stalls are
# nobody's doing. Throughput rows: a share of the machine's CPU time. Latency rows (query,
# storm): milliseconds in any one section, because a single stall sets a percentile: at the
# storm probe's 2,000 queries/s one 40 ms stall delays 80 queries, 1% of a 4 s half.
STEAL_FLAG_PCT = 5.0
STEAL_FLAG_MS = 40.0


def _num(r, k):
    v = r.get(k)
    return v if isinstance(v, (int, float)) and v >= 0 else None


def steal_flag(r):
    """(how far over its flag, ' (steal ...)') when the row's steal crosses its flag, else None."""
    if r["scenario"] in ("query", "storm"):
        keys = ("steal_ms_alone", "steal_ms_storm") if r["scenario"] == "storm" else ("steal_ms",)
        ms = [v for v in (_num(r, k) for k in keys) if v is not None]
        worst = max(ms, default=None)
        if worst is not None and worst >= STEAL_FLAG_MS:
            return worst / STEAL_FLAG_MS, f" (steal {worst:.0f} ms)"
        return None
    pct = _num(r, "steal_pct")
    if pct is not None and pct >= STEAL_FLAG_PCT:
        return pct / STEAL_FLAG_PCT, f" (steal {pct:.0f}%)"
    return None


def steal_note(r):
    f = steal_flag(r)
    return f[1] if f else ""


# A throughput run whose load generator was pinned to one CPU and kept it this busy measured the
# load generator (and whatever shares its CPU) as much as the target: its ratio is a lower bound.
LOAD_BOUND_PCT = 95.0


def load_bound(r):
    """Busy % of the load generator's own CPU when at least LOAD_BOUND_PCT, else None."""
    cpu, busy = r.get("bench_cpu"), r.get("cpu_busy_pct")
    if not isinstance(cpu, int) or cpu < 0 or not isinstance(busy, list) or cpu >= len(busy):
        return None
    return busy[cpu] if busy[cpu] >= LOAD_BOUND_PCT else None


# The calibration (atls-bench: ns per million steps of a fixed integer loop on each CPU, before
# and after a throughput run) differing by more than this between the two targets a ratio
# compares, or within one run, is noted beside the verdict: the machine, not the target, moved.
# The second calibration, a pointer chase through 256 KiB, is shown but not judged: on this host
# it moved 4.5-10.7 ns per load between readings seconds apart, so it would flag every line, and
# whether it predicts a target's cost was not established.
CALIB_DRIFT_PCT = 15.0


def calib(r, key="calib_ns_per_m"):
    """Per CPU, the mean of the before and after calibration `key`, or None."""
    c = r.get(key) if r is not None else None
    if not isinstance(c, dict) or not c.get("before") or len(c["before"]) != len(c.get("after", [])):
        return None
    if any(v <= 0 for v in c["before"] + c["after"]):
        return None
    return [(b + a) / 2 for b, a in zip(c["before"], c["after"])]


def calib_drift(rows):
    """Largest change in % of any CPU's integer-loop calibration within a row or between the
    rows, or None."""
    pairs, means = [], []
    for r in rows:
        m = calib(r)
        if m is None:
            continue
        pairs += zip(r["calib_ns_per_m"]["before"], r["calib_ns_per_m"]["after"])
        pairs += ((x, y) for prev in means for x, y in zip(prev, m))
        means.append(m)
    return max((abs(x - y) * 100 / min(x, y) for x, y in pairs), default=None)


def calib_cell(r):
    c, ch = calib(r), calib(r, "calib_chase_ns")
    if c is None:
        return None
    cell = " / ".join(f"{v / 1e6:.2f}" for v in c)
    return cell if ch is None else cell + "; " + " / ".join(f"{v:.1f}" for v in ch)


def busy_cell(r):
    if r is None or not isinstance(r.get("cpu_busy_pct"), list):
        return None
    return " / ".join(f"{v:.0f}" for v in r["cpu_busy_pct"])


def cache_cell(r):
    """atls-proxy's verified-client-chain cache over the row (atls-bench --proxy-api): hits of
    hits + full verifications in %, or None."""
    if r is None:
        return None
    hit, ver = r.get("cert_cache_hits"), r.get("cert_verifications")
    if not isinstance(hit, int) or not isinstance(ver, int) or hit < 0 or ver < 0 or hit + ver == 0:
        return None
    return f"{100.0 * hit / (hit + ver):.1f}% of {hit + ver:,}"


def summary(r):
    s = r["scenario"]
    head = f"  {r.get('target', '?'):8} {r.get('label', ''):16}"
    err = f"  errors={r['errors']} ({r.get('first_error', '')})" if r.get("errors") else ""
    if r.get("steal_ms_storm") is not None:
        err = f"  steal {r['steal_ms_alone']:.0f} / {r['steal_ms_storm']:.0f} ms" + err
    elif r.get("steal_ms") is not None:
        err = f"  steal {r['steal_pct']:.1f}% ({r['steal_ms']:.0f} ms)" + err
    if s == "handshake":
        pool = f"  {r['cert_pool']} client certs in turn" if r.get("cert_pool") else ""
        hits = cache_cell(r)
        hits = f"  gateway chain cache hits {hits}" if hits else ""
        tix = r.get("tickets_per_handshake")
        tix = f"  {tix:.2f} session tickets/handshake" if isinstance(tix, (int, float)) and tix >= 0 else ""
        return (f"{head} {r['rate_per_s']:9.1f} conn/s  p50 {r['latency']['p50_us']:.0f} us"
                f"  p99 {r['latency']['p99_us']:.0f} us  proxy {r['proxy_cpu_ms_per_handshake']:.3f}"
                f" ms CPU/handshake  [{r.get('cipher', '')} {r.get('group', '')}]{pool}{hits}{tix}{err}")
    if s == "bulk":
        return (f"{head} {r['direction']:4} x{r['connections']:<2} {r['gbit_per_s']:7.2f} Gbit/s"
                f"  proxy {r['proxy_cpu_s_per_gb']:.3f} CPU-s/GB  client {r['client_cpu_s']:.2f} s{err}")
    if s == "query":
        lat = r["latency"]
        return (f"{head} {r['qps']:9.0f} q/s  p50 {lat['p50_us']:.0f} p99 {lat['p99_us']:.0f}"
                f" p99.9 {lat['p999_us']:.0f} us{err}")
    if s == "idle":
        return (f"{head} held {r['held']}/{r['requested']}  RSS {r['rss_before_kb']} -> "
                f"{r['rss_after_kb']} KiB  = {r['rss_per_conn_kb']:.2f} KiB/conn{err}")
    if s == "storm":
        a, b = r["latency"], r["latency_storm"]
        return (f"{head} p99 alone {a['p99_us']:.0f} us, storm {b['p99_us']:.0f} us"
                f" (x{r['p99_ratio']:.2f})  storm {r['storm_rate_per_s']:.0f} conn/s"
                f" (failed {r['storm_failed']}){err}")
    if s == "pgbench":
        return f"{head} {r['tps']:9.0f} tps  proxy CPU {r['proxy_cpu_s']} s{err}"
    return json.dumps(r)


def pick(rows, scenario, target, label, **kw):
    for r in rows:
        if r["scenario"] != scenario or r["target"] != target or r.get("label") != label:
            continue
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b <= 0 or a < 0:
        return None
    return a / b


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def get(r, key):
    """Field `key` (dotted path) of row `r` as a float, None when absent or negative."""
    if r is None:
        return None
    v = r
    for k in key.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    return None if v is None or (isinstance(v, (int, float)) and v < 0) else float(v)


def table(rows, pin, raw=None, all_rows=None):
    out = []
    lines = []  # (metric, direct, atls, haproxy, atls/haproxy, atls/direct, target, verdict)

    flagged = [r for r in rows if steal_note(r)]

    def add(metric, d, a, h, target="", ok=None, src=(), ah_note=""):
        # src: the rows behind a judged line; steal in any of them is noted beside the verdict,
        # and a row that counted errors (failed connections or queries) leaves the line unjudged:
        # its rate or latency is not that of the work the target was asked to do.
        # ah_note: said after the atls/HAProxy ratio (what HAProxy's row measured, if not the
        # same as atls-proxy's).
        src = [r for r in src if r is not None]
        errs = [r for r in src if isinstance(r.get("errors"), int) and r["errors"] > 0]
        if ok is not None and errs:
            ok = None
            verdict = "not judged: errors in " + ", ".join(
                f"{r['target']} ({r['errors']:,})" for r in errs)
        else:
            verdict = "" if ok is None else ("met" if ok else "**missed**")
        if raw is not None:
            raw.append((metric, ratio(a, h), ratio(a, d), ok))
        flags = [f for f in map(steal_flag, src) if f]
        if verdict and flags:
            verdict += max(flags)[1]  # the worst row behind the verdict
        lb = [(v, r["target"]) for r in src if (v := load_bound(r))]
        if verdict and lb:
            verdict += "".join(f" (load CPU {v:.0f}% busy under {t})" for v, t in lb)
        drift = calib_drift(src)
        if verdict and drift is not None and drift > CALIB_DRIFT_PCT:
            verdict += f" (CPU speed moved {drift:.0f}%)"
        ah = fmt(ratio(a, h))
        ah = ah + ah_note if ah_note and ah != "-" else ah
        lines.append((metric, fmt(d), fmt(a), fmt(h), ah, fmt(ratio(a, d)), target, verdict))

    # handshakes. "srv"/"pg": client.crt on every connection, which atls-proxy verifies once and
    # then finds in its per-worker cache of verified chains (HAProxy verifies every time): the
    # gateway's best case, shown but not judged. "srv-mtls-distinct": each new connection the
    # next of a pool of client certificates larger than that cache (run.sh BENCH_CERT_POOL);
    # the target is judged there. A run without that row (older JSON) judges the same-cert row
    # and says so.
    distinct = {t: pick(rows, "handshake", t, "srv-mtls-distinct") for t in ("atls", "haproxy")}
    have_distinct = distinct["atls"] is not None and distinct["haproxy"] is not None
    variants = [("srv", "built-in backend", "same cert"),
                ("srv-mtls-distinct", "built-in backend", "distinct certs"),
                ("pg", "PostgreSQL", "same cert")]
    for label, name, how in variants:
        d, a, h = (pick(rows, "handshake", t, label) for t in ("direct", "atls", "haproxy"))
        if label == "srv-mtls-distinct":
            if a is None and h is None:
                continue
            d = pick(rows, "handshake", "direct", "srv")  # no TLS: no certificate to vary
            n = (a or h).get("cert_pool") or "?"
            how = f"distinct certs, {n:,} in turn" if isinstance(n, int) else how
        ra = ratio(get(a, "rate_per_s"), get(h, "rate_per_s"))
        judged = label == ("srv-mtls-distinct" if have_distinct else "srv")
        if judged:
            tgt = ("atls >= 2x haproxy (judged on distinct certs)" if have_distinct else
                   "atls >= 2x haproxy (no distinct-cert row: judged on the cache's best case)")
        elif label == "srv":
            tgt = "(gateway cache best case: not judged)"
        else:
            tgt = ""
        add(f"handshakes/s, mTLS {how} ({name})", get(d, "rate_per_s"), get(a, "rate_per_s"),
            get(h, "rate_per_s"), tgt, (ra >= 2.0) if (judged and ra is not None) else None, (a, h))
        add(f"  proxy CPU ms/handshake ({name}, {how})", None, get(a, "proxy_cpu_ms_per_handshake"),
            get(h, "proxy_cpu_ms_per_handshake"))
        if cache_cell(a) is not None:
            add(f"  gateway client-chain cache hits", None, cache_cell(a), None)
        # TLS 1.3 NewSessionTickets the proxy sent per handshake (atls-bench reads and drops
        # them): work a proxy does per handshake that this client never uses. run.sh turns
        # HAProxy's off (bench/haproxy-openssl.cnf) unless BENCH_HAP_TICKETS=1; older JSON has
        # no count.
        add(f"  session tickets sent per handshake", None, get(a, "tickets_per_handshake"),
            get(h, "tickets_per_handshake"))
        add(f"  CPU busy % (CPU 0 / CPU 1 ...)", busy_cell(d), busy_cell(a), busy_cell(h))
        add(f"  calibration: ms per 1M steps; ns per load (CPU 0 / 1 ...)", calib_cell(d), calib_cell(a),
            calib_cell(h))
    att = pick(rows, "handshake", "atls", "srv-attested")
    h = pick(rows, "handshake", "haproxy", "srv")
    ra = ratio(get(att, "rate_per_s"), get(h, "rate_per_s"))
    add("handshakes/s, attested (atls) vs mTLS (haproxy)", None, get(att, "rate_per_s"),
        get(h, "rate_per_s"), "atls >= 1.5x haproxy mTLS", None if ra is None else ra >= 1.5,
        (att, h))
    add("  proxy CPU ms/handshake, attested", None, get(att, "proxy_cpu_ms_per_handshake"), None)
    add(f"  CPU busy % (CPU 0 / CPU 1 ...)", None, busy_cell(att), None)
    add(f"  calibration: ms per 1M steps; ns per load (CPU 0 / 1 ...)", None, calib_cell(att), calib_cell(h))
    sr = pick(rows, "handshake", "atls", "srv-sslrequest")
    add("handshakes/s, mTLS via SSLRequest (atls only)", None, get(sr, "rate_per_s"), None)
    # bulk
    for label in ("srv", "pg"):
        for n in sorted({r["connections"] for r in rows if r["scenario"] == "bulk"
                         and r.get("label") == label}):
            for direction in ("down", "up"):
                d, a, h = (pick(rows, "bulk", t, label, connections=n, direction=direction)
                           for t in ("direct", "atls", "haproxy"))
                if a is None and h is None:
                    continue
                tgt = "atls >= 1.3x haproxy" if (label == "srv" and n == 1) else ""
                rt = ratio(get(a, "gbit_per_s"), get(h, "gbit_per_s"))
                add(f"bulk {direction} x{n} Gbit/s ({label})", get(d, "gbit_per_s"),
                    get(a, "gbit_per_s"), get(h, "gbit_per_s"), tgt,
                    (rt >= 1.3) if (tgt and rt is not None) else None, (a, h))
                rc = ratio(get(a, "proxy_cpu_s_per_gb"), get(h, "proxy_cpu_s_per_gb"))
                tgt = "atls <= 0.8x haproxy" if (label == "srv" and n == 1) else ""
                add(f"  proxy CPU-s/GB", None, get(a, "proxy_cpu_s_per_gb"),
                    get(h, "proxy_cpu_s_per_gb"), tgt,
                    (rc <= 0.8) if (tgt and rc is not None) else None, (a, h))
                add(f"  CPU busy % (CPU 0 / CPU 1 ...)", busy_cell(d), busy_cell(a), busy_cell(h))
                add(f"  calibration: ms per 1M steps; ns per load (CPU 0 / 1 ...)", calib_cell(d),
                    calib_cell(a), calib_cell(h))
    # query
    for label in ("pg", "srv"):
        d, a, h = (pick(rows, "query", t, label) for t in ("direct", "atls", "haproxy"))
        if a is None and d is None:
            continue
        add(f"query SELECT 1, q/s (8 conns, {label})", get(d, "qps"), get(a, "qps"), get(h, "qps"))
        for p in ("p50", "p99", "p999"):
            add(f"  latency {p} us", get(d, f"latency.{p}_us"), get(a, f"latency.{p}_us"),
                get(h, f"latency.{p}_us"))
    # idle
    d, a, h = (pick(rows, "idle", t, "srv") for t in ("direct", "atls", "haproxy"))
    held = get(a, "held")
    ok = None
    if a is not None and get(a, "rss_per_conn_kb") is not None:
        # The KB bound is judged at the count reached; fewer than 10,000 held is flagged in the
        # metric name, and so is a different count for HAProxy (a descriptor limit stops it at
        # half of what stops atls-proxy, whose backend sockets take no descriptor).
        ok = get(a, "rss_per_conn_kb") * 1024 <= 12000
    h_held = get(h, "held")
    h_note = f"; HAProxy {int(h_held)}" if h_held is not None and h_held != held else ""
    add(f"idle KiB RSS per connection ({int(held or 0)} held{'' if (held or 0) >= 10000 else ', not 10,000'}{h_note})",
        None, get(a, "rss_per_conn_kb"), get(h, "rss_per_conn_kb"), "atls <= 12 KB", ok, (a,))
    # storm
    # *-normal-prio: the same rows through instances with [proxy] worker_priority = normal, for
    # comparison (run.sh runs the others at its --worker-priority, realtime by default).
    for label in ("pg", "srv", "srv-normal-prio", "srv-attested", "pg-attested", "pg-fifo",
                  "pg-fifo-normal-prio", "pg-attested-fifo"):
        d, a, h = (pick(rows, "storm", t, label) for t in ("direct", "atls", "haproxy"))
        if a is None:
            continue
        rr = get(a, "p99_ratio")
        judged = not label.endswith("-normal-prio")
        # The storm's handshakes: attested ones each carry their own certificate; mTLS ones take
        # a pool in turn since run.sh gives them one (cert_pool > 0). Older mTLS rows gave every
        # storm handshake client.crt, which the gateway took from its cache of verified chains
        # (HAProxy verified each): its best case, said beside the target.
        tgt = "atls <= 2x" if judged else "(comparison)"
        if a.get("auth") == "mtls":
            tgt += (f" (storm: {a['cert_pool']:,} certs in turn)" if a.get("cert_pool")
                    else " (storm: one cert, the gateway cache's best case)")
        add(f"storm: p99 with storm / p99 alone ({label})", get(d, "p99_ratio"), rr,
            get(h, "p99_ratio"), tgt, None if rr is None or not judged else rr <= 2.0, (a,))
        if cache_cell(a) is not None:
            add(f"  gateway client-chain cache hits (probe and storm)", None, cache_cell(a), None)
        add(f"  p99 us alone", get(d, "latency.p99_us"), get(a, "latency.p99_us"),
            get(h, "latency.p99_us"))
        add(f"  p99 us during storm", get(d, "latency_storm.p99_us"),
            get(a, "latency_storm.p99_us"), get(h, "latency_storm.p99_us"))
        add(f"  p50 us alone", get(d, "latency.p50_us"), get(a, "latency.p50_us"),
            get(h, "latency.p50_us"))
        add(f"  p50 us during storm", get(d, "latency_storm.p50_us"),
            get(a, "latency_storm.p50_us"), get(h, "latency_storm.p50_us"))
        add(f"  storm handshakes/s", get(d, "storm_rate_per_s"), get(a, "storm_rate_per_s"),
            get(h, "storm_rate_per_s"))
        def st(r):
            if r is None or r.get("steal_ms_storm") is None:
                return None
            return f"{r['steal_ms_alone']:.0f} / {r['steal_ms_storm']:.0f}"
        add(f"  CPU steal ms alone / during storm", st(d), st(a), st(h))
    # pgbench
    d = pick(rows, "pgbench", "direct", "pg")
    a = pick(rows, "pgbench", "atls", "pg-tls")
    h = pick(rows, "pgbench", "haproxy", "pg-tcp-hop")
    ra = ratio(get(a, "tps"), get(d, "tps"))
    # libpq 15 cannot do direct TLS and HAProxy cannot answer SSLRequest: HAProxy's pgbench row
    # is a plain TCP hop, so atls/HAProxy there compares TLS with no TLS.
    add("pgbench -S tps (atls: TLS; haproxy: plain TCP hop)", get(d, "tps"), get(a, "tps"),
        get(h, "tps"), "atls >= 0.80x direct", None if ra is None else ra >= 0.8, (d, a),
        ah_note=" (TLS vs HAProxy's plain TCP hop, not TLS)")

    out.append(f"pinning: {pin}")
    # Row order (run.sh --order): in how many groups of rows atls-proxy ran before HAProxy.
    orders = {}
    for r in rows:
        o = r.get("run_order")
        if o and r["target"] in ("atls", "haproxy"):
            key = ((r["scenario"],) if r["scenario"] == "pgbench" else  # labels differ there
                   (r["scenario"], r.get("label"), r.get("direction"), r.get("connections")))
            orders.setdefault(key, o)
    if orders:
        first = [o.split(",").index("atls") < o.split(",").index("haproxy")
                 for o in orders.values() if "atls" in o.split(",") and "haproxy" in o.split(",")]
        out.append(f"row order: direct first; atls-proxy before HAProxy in {sum(first)} groups "
                   f"of rows, after it in {len(first) - sum(first)} (each row's run_order)")
    prio = {}
    for r in rows:
        if r.get("proxy_priority") and r["target"] in ("atls", "haproxy"):
            prio.setdefault(r["target"], [])
            if r["proxy_priority"] not in prio[r["target"]]:
                prio[r["target"]].append(r["proxy_priority"])
    if prio:
        out.append("priority: " + "; ".join(
            f"{'atls-proxy' if t == 'atls' else 'HAProxy'} {' / '.join(v)}"
            for t, v in sorted(prio.items())) +
            " (atls-proxy realtime: SCHED_FIFO 1 only while established sessions move bytes and"
            " its worker is below 80% CPU)")
    out.append("")
    out.append("| metric | direct | atls-proxy | HAProxy | atls/HAProxy | atls/direct | target | |")
    out.append("|---|---:|---:|---:|---:|---:|---|---|")
    for l in lines:
        out.append("| " + " | ".join(l) + " |")
    ciphers = sorted({(r["target"], r.get("cipher", ""), r.get("group", "")) for r in rows
                      if r.get("cipher")})
    out.append("")
    out.append("negotiated: " + "; ".join(f"{t} {c} {g}" for t, c, g in ciphers))
    n_sup = sum(1 for r in (all_rows or []) if r.get("superseded"))
    if n_sup:
        out.append("")
        out.append(f"re-run because the host stole CPU during them: {n_sup} results (kept in the "
                   "JSON with \"superseded\": \"steal\", left out above)")
    if flagged:
        out.append("")
        out.append(f"CPU steal (the hypervisor ran something else; >= {STEAL_FLAG_PCT:.0f}% of a "
                   f"throughput run, >= {STEAL_FLAG_MS:.0f} ms in a latency section) during: " +
                   "; ".join(f"{r['scenario']} {r['target']} {r.get('label', '')}{steal_note(r)}"
                             for r in flagged))
    errs = [r for r in rows if r.get("errors")]
    for r in errs:
        out.append(f"errors: {r['scenario']} {r['target']} {r.get('label')}: {r['errors']} "
                   f"({r.get('first_error', '')})")
    return "\n".join(out)


def spread(paths):
    """One row per metric: atls/HAProxy and atls/direct of every run, and how often the target
    was met, so run-to-run noise on the shared machine is visible."""
    per_run = []
    for p in paths:
        raw = []
        table(load(p), "?", raw)
        per_run.append(raw)
    out = ["| metric | atls/HAProxy per run | atls/direct per run | target met |",
           "|---|---|---|---|"]
    # Sub-rows ("  proxy CPU-s/GB") repeat: key them by the row they belong to.
    keyed, order = [], []
    for run in per_run:
        d, top = {}, ""
        for m, rh, rd, ok in run:
            top = m if not m.startswith("  ") else top
            k = m if not m.startswith("  ") else top + "|" + m
            d[k] = (m, rh, rd, ok)
            if k not in order:
                order.append(k)
        keyed.append(d)
    for k in order:
        cells = [d.get(k) for d in keyed]
        name = next(c[0] for c in cells if c is not None)
        rh = " / ".join(fmt(c[1]) if c else "-" for c in cells)
        rd = " / ".join(fmt(c[2]) if c else "-" for c in cells)
        oks = [c[3] for c in cells if c is not None and c[3] is not None]
        met = f"{sum(oks)} of {len(oks)}" if oks else ""
        if rh.replace("-", "").replace("/", "").strip() or met:
            out.append(f"| {name} | {rh} | {rd} | {met} |")
    return "\n".join(out)


def ab(rows):
    """The storm A/B (run.sh --only storm-ab): per row and worker priority, the p99 during the
    storm and the ratio to the p99 alone in each round, and how many rounds met <= 2x."""
    groups = {}
    for r in rows:
        label = r.get("label", "")
        if r["scenario"] == "storm" and label.startswith("ab-"):
            groups.setdefault(label, []).append(r)
    out = ["| row, worker priority | p99 us during storm, each round | p99 ratio, each round | <= 2x "
           "| CPU steal ms alone+storm, each round |",
           "|---|---|---|---|---|"]
    for label in sorted(groups):
        rs = groups[label]
        during = " / ".join(fmt(get(r, "latency_storm.p99_us")) for r in rs)
        ratios = " / ".join(fmt(get(r, "p99_ratio")) for r in rs)
        met = sum(1 for r in rs if get(r, "p99_ratio") is not None and get(r, "p99_ratio") <= 2.0)
        steal = " / ".join("-" if r.get("steal_ms_storm") is None else
                           f"{r['steal_ms_alone']:.0f}+{r['steal_ms_storm']:.0f}" for r in rs)
        out.append(f"| {label[3:]} | {during} | {ratios} | {met} of {len(rs)} | {steal} |")
    return "\n".join(out)


def charts(rows, outdir, prefix):
    if shutil.which("gnuplot") is None:
        print("report.py: gnuplot not installed, no charts", file=sys.stderr)
        return
    os.makedirs(outdir, exist_ok=True)
    targets = ("direct", "atls", "haproxy")
    sets = []

    def val(r, key):
        if r is None:
            return 0.0
        v = r
        for k in key.split("."):
            v = v.get(k, 0) if isinstance(v, dict) else 0
        return max(float(v), 0.0)

    hs = [("mTLS srv", [val(pick(rows, "handshake", t, "srv"), "rate_per_s") for t in targets]),

          ("mTLS pg", [val(pick(rows, "handshake", t, "pg"), "rate_per_s") for t in targets]),
          ("attested srv", [0.0, val(pick(rows, "handshake", "atls", "srv-attested"),
                                     "rate_per_s"), 0.0])]
    if any(pick(rows, "handshake", t, "srv-mtls-distinct") for t in targets):
        hs.insert(1, ("mTLS srv distinct certs",
                      [val(pick(rows, "handshake", t, "srv-mtls-distinct"), "rate_per_s")
                       for t in targets]))
    sets.append(("handshakes", "new connections per second", hs))
    bulk = []
    for r in rows:
        if r["scenario"] == "bulk" and r["target"] == "atls":
            key = f"{r['direction']} x{r['connections']} {r['label']}"
            bulk.append((key, [val(pick(rows, "bulk", t, r["label"], connections=r["connections"],
                                        direction=r["direction"]), "gbit_per_s")
                               for t in targets]))
    sets.append(("bulk", "Gbit/s", bulk))
    q = [(p, [val(pick(rows, "query", t, "pg"), f"latency.{p}_us") for t in targets])
         for p in ("p50", "p99", "p999")]
    sets.append(("query_latency", "SELECT 1 latency, microseconds", q))
    st = []
    for label in ("pg", "srv", "srv-attested"):
        for t in targets:
            r = pick(rows, "storm", t, label)
            if r is not None:
                st.append((f"{t} {label}", [val(r, "latency.p99_us"),
                                            val(r, "latency_storm.p99_us")]))
    for name, ylabel, data in sets:
        if not data:
            continue
        dat = os.path.join(outdir, f"{prefix}-{name}.dat")
        with open(dat, "w") as f:
            f.write("group direct atls-proxy HAProxy\n")
            for k, vs in data:
                f.write(f"\"{k}\" " + " ".join(f"{v:.3f}" for v in vs) + "\n")
        plot(dat, os.path.join(outdir, f"{prefix}-{name}.png"), ylabel, 3)
    if st:
        dat = os.path.join(outdir, f"{prefix}-storm.dat")
        with open(dat, "w") as f:
            f.write("target alone during-storm\n")
            for k, vs in st:
                f.write(f"\"{k}\" {vs[0]:.1f} {vs[1]:.1f}\n")
        plot(dat, os.path.join(outdir, f"{prefix}-storm.png"), "SELECT 1 p99 latency, microseconds", 2)


def plot(dat, png, ylabel, ncols):
    script = f"""
set terminal pngcairo size 900,500 noenhanced
set output '{png}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right autotitle columnheader
set ylabel '{ylabel}'
set yrange [0:*]
set grid ytics
set xtics rotate by -20
plot '{dat}' using 2:xtic(1)""" + "".join(f", '' using {i}" for i in range(3, ncols + 2)) + "\n"
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        # pngcairo may be missing from gnuplot-nox builds: fall back to the gd png terminal.
        r = subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True,
                           capture_output=True)
    if r.returncode != 0:
        print(f"report.py: gnuplot failed for {png}: {r.stderr.strip()}", file=sys.stderr)


def main(argv):
    if len(argv) >= 2 and argv[1] == "--line":
        for line in sys.stdin:
            if line.strip():
                print(summary(json.loads(line)))
        return 0
    if len(argv) >= 3 and argv[1] == "--table":
        rows = load(argv[2])
        pin = argv[argv.index("--pin") + 1] if "--pin" in argv else "?"
        print(table(rows, pin, all_rows=load(argv[2], superseded=True)))
        if "--charts" in argv:
            prefix = os.path.basename(argv[2]).rsplit(".", 1)[0]
            charts(rows, argv[argv.index("--charts") + 1], prefix)
        return 0
    if len(argv) >= 2 and argv[1] == "--steal-check":
        rows = [json.loads(l) for l in sys.stdin if l.strip()]
        note = steal_note(rows[-1]) if rows else ""
        if note:
            print(note.strip(" ()"))
        return 0 if note else 1
    if len(argv) >= 3 and argv[1] == "--supersede":
        with open(argv[2]) as f:
            lines = [l for l in f.read().split("\n") if l.strip()]
        last = json.loads(lines[-1])
        last["superseded"] = "steal"
        lines[-1] = json.dumps(last, separators=(",", ":"))
        with open(argv[2], "w") as f:
            f.write("\n".join(lines) + "\n")
        return 0
    if len(argv) >= 3 and argv[1] == "--ab":
        print(ab(load(argv[2])))
        return 0
    if len(argv) >= 3 and argv[1] == "--spread":
        print(spread(argv[2:]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
